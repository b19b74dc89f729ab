//! Media vocabulary shared by ingest, recording, playback and forwarding.

/// Codecs xaso records as they come, without transcoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    H264,
    H265,
    Aac,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// Opus: only made by xaso itself (AAC transcoded for live view), never recorded.
    Opus,
}

impl Codec {
    pub fn is_video(self) -> bool {
        matches!(self, Codec::H264 | Codec::H265)
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Aac => "aac",
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
            Codec::Opus => "opus",
        }
    }

    /// From a sample entry's four-character code.
    pub fn from_fourcc(f: &[u8; 4]) -> Option<Codec> {
        Some(match f {
            b"avc1" | b"avc3" => Codec::H264,
            b"hvc1" | b"hev1" => Codec::H265,
            b"mp4a" => Codec::Aac,
            b"ulaw" => Codec::Pcmu,
            b"alaw" => Codec::Pcma,
            _ => return None,
        })
    }
}
