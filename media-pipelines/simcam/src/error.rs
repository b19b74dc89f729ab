//! The crate's error type: why a clip could not be loaded.
//!
//! Network input never produces an [`Error`]: a bad RTSP request is answered with a 4xx status
//! (see `rtsp.rs`), and I/O failures of the server are `std::io::Error`s.

use std::fmt;

/// Why a clip could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The file is not a well-formed MP4 (truncated box, out-of-range sample, inconsistent
    /// sample tables...).
    Malformed(String),
    /// The file is well-formed but holds something the simulated camera cannot stream
    /// (no H.264 track, fragmented MP4, a codec other than H.264/AAC...).
    Unsupported(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(m) => write!(f, "malformed MP4: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported clip: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for `Err(Error::Malformed(format!(...)))`.
macro_rules! malformed {
    ($($arg:tt)*) => {
        Err($crate::error::Error::Malformed(format!($($arg)*)))
    };
}

/// Shorthand for `Err(Error::Unsupported(format!(...)))`.
macro_rules! unsupported {
    ($($arg:tt)*) => {
        Err($crate::error::Error::Unsupported(format!($($arg)*)))
    };
}

pub(crate) use {malformed, unsupported};
