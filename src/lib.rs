//! xaso ("xã số", the digital commune): one server that records a commune's cameras, shows
//! them live, plays back and exports footage, and hosts meetings.
//!
//! This crate is the binary's wiring: command line ([`cli`]), configuration ([`config`]),
//! the HTTP control plane ([`api`]), the catalogue database ([`db`], [`store`]), accounts
//! ([`auth`]), the audit log ([`audit`]), metrics, TLS and the embedded web UI. The media
//! core lives in the `media-pipelines/` crates.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod federation;
pub mod footage;
pub mod live;
pub mod live_sources;
pub mod meetings;
pub mod metrics;
pub(crate) mod mse;
pub mod recorder;
pub mod serve;
pub mod store;
pub mod tls;
pub mod web;
