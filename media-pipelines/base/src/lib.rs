//! Foundations shared by every xaso crate: the clocks that all time-dependent logic reads
//! through, so that tests can drive time without sleeping, and the media vocabulary
//! (codecs) that ingest, recording and forwarding share.
//!
//! Nothing here does I/O. Protocol and media logic takes `now` as an argument or a
//! `&dyn Clocks`; only the edges (the binary's wiring) create [`RealClocks`].

pub mod clock;
pub mod media;

pub use clock::{Clocks, RealClocks, SimulatedClocks};
pub use media::Codec;
