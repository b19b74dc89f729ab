//! Recording without decoding: footage goes to disk as fragmented-MP4 segment files that any
//! player opens, and comes back out of them.
//!
//! Everything here is sans-IO: [`fmp4::SegmentWriter`] turns samples into bytes to append,
//! [`scan`] reads those bytes back (to repair a segment cut short by a crash, or to index
//! one); the binary owns the files, threads and database. See `docs/design/recording.md`.

pub mod boxes;
pub mod export;
pub mod fmp4;
pub mod retention;
pub mod scan;
pub mod timeline;

pub use fmp4::{Codec, Sample, SegmentWriter, TrackConfig};
pub use scan::{ScanError, Scanned, scan};
