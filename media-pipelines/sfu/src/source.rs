//! A publisher as the forwarding core holds it: its tracks' parameters, each frame
//! packetized once into shared RTP payloads (every viewer sends the same `Arc<[u8]>`), and
//! the current group of pictures, so that a viewer who joins starts from the last keyframe
//! at once instead of waiting for the next one (cameras over RTSP ignore keyframe requests).

use crate::h264::{self, ParameterSets};
use std::sync::Arc;
use xaso_base::Codec;

/// One RTP payload of a frame, shared by every subscriber.
#[derive(Clone, Debug)]
pub struct Packet {
    pub payload: Arc<[u8]>,
    /// Marks the last packet of a video frame.
    pub marker: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Video,
    Audio,
}

/// A frame, packetized.
#[derive(Debug)]
pub struct Frame {
    pub kind: Kind,
    pub codec: Codec,
    /// RTP timestamp in the track's clock (wrapping).
    pub ts: u32,
    pub keyframe: bool,
    pub packets: Vec<Packet>,
    pub bytes: usize,
}

/// A frame as the ingest hands it over.
pub struct MediaFrame<'a> {
    pub kind: Kind,
    /// In the track's clock since the stream began.
    pub ts: i64,
    pub keyframe: bool,
    /// Video: NAL units with 4-byte lengths. Audio: one raw frame.
    pub data: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoTrack {
    pub codec: Codec,
    pub params: ParameterSets,
}

/// What a source carries, for negotiating with a viewer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracks {
    pub video: Option<VideoTrack>,
    pub audio: Option<Codec>,
}

/// Keep at most this much of a GOP (a camera with a very long GOP or a huge keyframe
/// interval): past it, the cache is dropped until the next keyframe.
const GOP_MAX_BYTES: usize = 8 << 20;

#[derive(Default)]
pub struct Source {
    tracks: Tracks,
    gop: Vec<Arc<Frame>>,
    gop_bytes: usize,
    /// Frames packetized since the start.
    pub frames: u64,
}

impl Source {
    pub fn tracks(&self) -> &Tracks {
        &self.tracks
    }

    /// Sets the video track (a camera reconfigured to a new resolution sets it again; the
    /// GOP of the old one is dropped).
    pub fn set_video(&mut self, codec: Codec, params: ParameterSets) {
        let t = VideoTrack { codec, params };
        if self.tracks.video.as_ref() != Some(&t) {
            self.tracks.video = Some(t);
            self.gop.clear();
            self.gop_bytes = 0;
        }
    }

    /// Forgets the tracks and the GOP (the frames stopped coming through, e.g. when nobody
    /// watched for a while; they will be set again).
    pub fn reset(&mut self) {
        self.tracks = Tracks::default();
        self.gop.clear();
        self.gop_bytes = 0;
    }

    /// Drops the cached GOP (the stream it belongs to ended).
    pub fn clear_gop(&mut self) {
        self.gop.clear();
        self.gop_bytes = 0;
    }

    pub fn set_audio(&mut self, codec: Option<Codec>) {
        self.tracks.audio = codec;
    }

    /// The frames since the last keyframe (empty until the first keyframe).
    pub fn gop(&self) -> &[Arc<Frame>] {
        &self.gop
    }

    /// Packetizes a frame. `None` for a track the source does not forward (no video track
    /// set, AAC: browsers cannot take it without transcoding).
    pub fn push(&mut self, f: MediaFrame<'_>) -> Option<Arc<Frame>> {
        let (codec, packets) = match f.kind {
            Kind::Video => {
                let v = self.tracks.video.as_ref()?;
                let packetize = match v.codec {
                    Codec::H264 => h264::packetize,
                    Codec::H265 => crate::h265::packetize,
                    _ => return None,
                };
                let mut packets = Vec::new();
                packetize(
                    f.data,
                    Some(&v.params),
                    h264::MAX_PAYLOAD,
                    |payload: Vec<u8>, marker| {
                        packets.push(Packet {
                            payload: payload.into(),
                            marker,
                        })
                    },
                );
                (v.codec, packets)
            }
            Kind::Audio => {
                let c = self.tracks.audio?;
                // G.711 as the camera sends it; Opus made from AAC by the binary's pipeline.
                if !matches!(c, Codec::Pcmu | Codec::Pcma | Codec::Opus) || f.data.is_empty() {
                    return None;
                }
                let p = Packet {
                    payload: f.data.into(),
                    marker: false,
                };
                (c, vec![p])
            }
        };
        if packets.is_empty() {
            return None;
        }
        let frame = Arc::new(Frame {
            kind: f.kind,
            codec,
            ts: f.ts as u32,
            keyframe: f.keyframe && f.kind == Kind::Video,
            bytes: packets.iter().map(|p| p.payload.len()).sum(),
            packets,
        });
        self.frames += 1;
        if frame.kind == Kind::Video {
            if frame.keyframe {
                self.gop.clear();
                self.gop_bytes = 0;
            }
            if (frame.keyframe || !self.gop.is_empty())
                && self.gop_bytes + frame.bytes <= GOP_MAX_BYTES
            {
                self.gop_bytes += frame.bytes;
                self.gop.push(frame.clone());
            } else {
                self.gop.clear();
                self.gop_bytes = 0;
            }
        }
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(kind: u8, len: usize) -> Vec<u8> {
        let mut v = (len as u32).to_be_bytes().to_vec();
        v.push(kind);
        v.extend(std::iter::repeat_n(7, len - 1));
        v
    }

    fn video(s: &mut Source, ts: i64, key: bool) -> Option<Arc<Frame>> {
        let data = au(if key { 0x65 } else { 0x41 }, 3000);
        s.push(MediaFrame {
            kind: Kind::Video,
            ts,
            keyframe: key,
            data: &data,
        })
    }

    #[test]
    fn the_gop_starts_at_the_last_keyframe() {
        let mut s = Source::default();
        assert!(video(&mut s, 0, true).is_none(), "no video track yet");
        s.set_video(Codec::H264, ParameterSets::default());
        video(&mut s, 0, false);
        assert!(s.gop().is_empty(), "nothing before the first keyframe");
        let k = video(&mut s, 3600, true).unwrap();
        assert_eq!(k.packets.len(), 3);
        assert!(k.packets[2].marker && !k.packets[0].marker);
        video(&mut s, 7200, false);
        assert_eq!(s.gop().len(), 2);
        video(&mut s, 10800, true);
        assert_eq!(s.gop().len(), 1);
        assert_eq!(s.gop()[0].ts, 10800);
        // A new resolution: the old GOP is useless.
        s.set_video(
            Codec::H264,
            ParameterSets {
                sps: vec![vec![0x67]],
                pps: vec![vec![0x68]],
                ..Default::default()
            },
        );
        assert!(s.gop().is_empty());
    }

    #[test]
    fn audio_passes_g711_and_opus_only() {
        let mut s = Source::default();
        s.set_audio(Some(Codec::Aac));
        let f = |s: &mut Source| {
            s.push(MediaFrame {
                kind: Kind::Audio,
                ts: 160,
                keyframe: true,
                data: &[1; 160],
            })
        };
        assert!(f(&mut s).is_none(), "AAC needs transcoding");
        s.set_audio(Some(Codec::Pcmu));
        let a = f(&mut s).unwrap();
        assert_eq!((a.packets.len(), a.bytes, a.keyframe), (1, 160, false));
        assert!(s.gop().is_empty(), "audio is not cached");
        s.set_audio(Some(Codec::Opus));
        assert!(f(&mut s).is_some(), "Opus (transcoded from AAC) passes");
    }

    #[test]
    fn an_endless_gop_is_dropped_not_grown() {
        let mut s = Source::default();
        s.set_video(Codec::H264, ParameterSets::default());
        video(&mut s, 0, true);
        for i in 1..4000 {
            video(&mut s, i * 3600, false);
        }
        assert!(s.gop_bytes <= GOP_MAX_BYTES);
        assert!(s.gop().is_empty(), "past the cap the GOP is dropped");
    }
}
