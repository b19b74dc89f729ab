//! Camera ingest: getting frames out of cameras, as they come, without decoding.
//!
//! [`Opener`] and [`Stream`] are the seam: the recorder and the forwarding core see only
//! these traits, so tests can feed them files or scripted streams; [`RetinaOpener`] is the
//! real RTSP client (the `retina` crate), the only code here that touches the network.

mod rtsp;

pub use rtsp::RetinaOpener;

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use xaso_base::Codec;

/// Where and how to reach a camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `rtsp://user:password@host:port/path`.
    pub url: String,
    pub transport: Transport,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// RTP interleaved in the RTSP TCP connection: passes NAT and firewalls.
    #[default]
    Tcp,
    Udp,
}

/// What a track carries, as far as recording and forwarding need to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackInfo {
    pub codec: Codec,
    /// Units per second of the track's timestamps.
    pub clock_rate: u32,
    /// The ISO BMFF sample entry, when the client library can build it (H.264, H.265, AAC).
    pub sample_entry: Option<Vec<u8>>,
    /// Video: pixel size. Audio: 0.
    pub width: u16,
    pub height: u16,
    /// Audio: channels. Video: 0.
    pub channels: u16,
    /// RFC 6381 codec string (`avc1.640028`), when known.
    pub rfc6381: Option<String>,
}

/// One access unit (video) or audio frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Index of the track in [`Stream::tracks`] order.
    pub track: usize,
    /// Timestamp in `clock_rate` units since the stream began (unwrapped, so monotonic for
    /// a well-behaved camera).
    pub ts: i64,
    pub is_sync: bool,
    /// Video: NAL units with 4-byte length prefixes. Audio: one raw frame.
    pub data: Bytes,
    /// Set on a track's first frame and whenever its parameters change (e.g. a new
    /// resolution): the new description.
    pub params: Option<TrackInfo>,
    /// Packets lost just before this frame.
    pub loss: u16,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A camera stream being received.
pub trait Stream: Send {
    /// The codecs of the tracks, in the order `Frame::track` refers to. Known from the
    /// camera's SDP; video sizes may only be known with the first frame's `params`.
    fn codecs(&self) -> &[Codec];
    /// What is known of each track now (from the camera's SDP before the first frame):
    /// audio is usually described at once, video sometimes only by its first frame.
    fn params(&self) -> Vec<Option<TrackInfo>>;
    /// The next frame; `Ok(None)` when the camera ended the stream.
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Frame>, IngestError>>;
}

/// Opens streams. One per kind of source (RTSP; a file or a script in tests).
pub trait Opener: Send + Sync + 'static {
    fn open<'a>(&'a self, src: &'a Source) -> BoxFuture<'a, Result<Box<dyn Stream>, IngestError>>;
}

/// Why a camera could not be read. Messages never contain credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestError {
    pub kind: IngestErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IngestErrorKind {
    /// Bad URL or configuration: retrying will not help until it changes.
    InvalidSource,
    /// The camera refused the credentials.
    Unauthorized,
    /// Could not connect, or the connection broke.
    Network,
    /// No data within the timeout.
    Timeout,
    /// The camera answered something we cannot use (a malformed or unexpected reply).
    Protocol,
    /// No track in a codec we record.
    Unsupported,
}

impl IngestError {
    pub fn new(kind: IngestErrorKind, message: impl Into<String>) -> Self {
        IngestError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IngestError {}

/// Removes the camera's credentials (`user:password@`, and the password anywhere else) from
/// a message about `url`.
pub fn redact(msg: &str, url: &str) -> String {
    let mut out = msg.to_owned();
    if let Ok(u) = url::Url::parse(url) {
        let (user, pass) = (u.username(), u.password().unwrap_or(""));
        if !user.is_empty() {
            out = out
                .replace(&format!("{user}:{pass}@"), "")
                .replace(&format!("{user}@"), "");
        }
        if !pass.is_empty() {
            out = out.replace(pass, "***");
        }
    }
    out
}
