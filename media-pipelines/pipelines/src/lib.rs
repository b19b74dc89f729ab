//! Media pipelines that decode or transcode: the only place xaso does either, and only when
//! built with the `gstreamer` feature (so the default build needs no system media
//! libraries). Without it every function answers [`PipelineError::NotBuilt`].
//!
//! Why GStreamer rather than ffmpeg-next: its Rust bindings are generated ahead of time (no
//! bindgen/libclang at build time), the same plugins already serve as the test cameras, and
//! the live-view issue's AAC→Opus transcoding is one more pipeline string. See
//! `docs/design/pipelines.md`.

#[cfg(feature = "gstreamer")]
mod gst_impl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineError {
    /// This build has no pipelines (built without the `gstreamer` feature).
    NotBuilt,
    /// The input could not be decoded.
    Decode(String),
    /// GStreamer is missing a plugin or failed to start.
    Setup(String),
}

impl std::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PipelineError::NotBuilt => f.write_str(
                "this server was built without media pipelines (build with: cargo build --release --features gstreamer)",
            ),
            PipelineError::Decode(m) => write!(f, "could not decode the footage: {m}"),
            PipelineError::Setup(m) => write!(f, "media pipeline unavailable: {m}"),
        }
    }
}

impl std::error::Error for PipelineError {}

/// Whether this build can decode.
pub fn available() -> bool {
    cfg!(feature = "gstreamer")
}

/// An H.264 access unit out of [`H265ToH264`].
#[derive(Clone, Debug)]
pub struct H264Frame {
    /// NAL units with 4-byte length prefixes.
    pub data: Vec<u8>,
    /// Time in 90 kHz ticks, as given with the input.
    pub ts: u64,
    pub keyframe: bool,
    /// The stream's `avcC` record, its width and height.
    pub avcc: Vec<u8>,
    pub width: u16,
    pub height: u16,
}

/// Where [`H265ToH264`] hands each access unit (called on a GStreamer thread).
pub type H264Sink = Box<dyn Fn(H264Frame) + Send + Sync>;

/// H.265 to H.264 for browsers that cannot decode H.265 and cameras with no H.264
/// sub-stream: decode and re-encode (x264, zero latency, a keyframe every 2 s). The costly
/// last resort; stopped when dropped.
pub struct H265ToH264 {
    #[cfg(feature = "gstreamer")]
    inner: gst_impl::H265ToH264,
}

impl H265ToH264 {
    /// A transcoder for H.265 described by its `hvcC` record.
    pub fn new(hvcc: &[u8], out: H264Sink) -> Result<H265ToH264, PipelineError> {
        #[cfg(feature = "gstreamer")]
        {
            Ok(H265ToH264 {
                inner: gst_impl::H265ToH264::new(hvcc, out)?,
            })
        }
        #[cfg(not(feature = "gstreamer"))]
        {
            let _ = (hvcc, out);
            Err(PipelineError::NotBuilt)
        }
    }

    /// One H.265 access unit (4-byte length prefixes) with its time in 90 kHz ticks.
    pub fn push(&self, au: &[u8], ts: u64, keyframe: bool) {
        #[cfg(feature = "gstreamer")]
        self.inner.push(au, ts, keyframe);
        #[cfg(not(feature = "gstreamer"))]
        let _ = (au, ts, keyframe);
    }
}

/// Where [`AacToOpus`] hands each Opus packet: its bytes and its time in 48 kHz ticks
/// (called on a GStreamer thread).
pub type OpusSink = Box<dyn Fn(Vec<u8>, u64) + Send + Sync>;

/// AAC to Opus for live view (browsers' WebRTC has no AAC): a running pipeline that takes
/// raw AAC frames and hands out 20 ms Opus packets. Stopped when dropped.
pub struct AacToOpus {
    #[cfg(feature = "gstreamer")]
    inner: gst_impl::AacToOpus,
}

impl AacToOpus {
    /// A transcoder for AAC described by its AudioSpecificConfig `asc`, at `sample_rate`
    /// with `channels`; `out` receives the Opus packets.
    pub fn new(
        asc: &[u8],
        sample_rate: u32,
        channels: u16,
        out: OpusSink,
    ) -> Result<AacToOpus, PipelineError> {
        #[cfg(feature = "gstreamer")]
        {
            Ok(AacToOpus {
                inner: gst_impl::AacToOpus::new(asc, sample_rate, channels, out)?,
            })
        }
        #[cfg(not(feature = "gstreamer"))]
        {
            let _ = (asc, sample_rate, channels, out);
            Err(PipelineError::NotBuilt)
        }
    }

    /// One raw AAC frame, with its time in nanoseconds. Never blocks for long: the
    /// pipeline queues, and drops what it cannot keep up with.
    pub fn push(&self, frame: &[u8], pts_ns: u64) {
        #[cfg(feature = "gstreamer")]
        self.inner.push(frame, pts_ns);
        #[cfg(not(feature = "gstreamer"))]
        let _ = (frame, pts_ns);
    }
}

/// Decodes a small MP4 (one GOP up to the wanted frame) and returns its **last** video frame
/// as a JPEG, scaled to `width` pixels wide (keeping the aspect ratio) when given.
/// Blocking: call it off the async workers.
pub fn last_frame_jpeg(mp4: &[u8], width: Option<u32>) -> Result<Vec<u8>, PipelineError> {
    #[cfg(feature = "gstreamer")]
    {
        gst_impl::last_frame_jpeg(mp4, width)
    }
    #[cfg(not(feature = "gstreamer"))]
    {
        let _ = (mp4, width);
        Err(PipelineError::NotBuilt)
    }
}
