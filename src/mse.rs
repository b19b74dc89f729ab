//! The live-view fallback for networks where WebRTC cannot pass: fragmented MP4 over a
//! WebSocket, played with Media Source Extensions.
//!
//! - [`Muxer`] (sans-IO) turns a camera's tap events into what the socket carries: a text
//!   message `{"type":"init","mime":…}` and the init segment whenever the video track is
//!   (re)described, then one `moof`+`mdat` fragment per frame, one frame late (a frame's
//!   duration is known when the next one arrives).
//! - [`run`] drives it over one socket: the camera's current GOP first (a picture at once),
//!   then live frames; a viewer that falls behind skips to the next keyframe.
//!
//! Video only: browsers' MSE plays H.264 (and H.265 where the platform decodes it), not
//! G.711. The HTTP side (auth, audit) is `api::live`.

use crate::live::{MseEvent, MseFeed, TapFrame, TapTracks};
use axum::extract::ws::{Message, WebSocket};
use tokio::sync::broadcast::error::RecvError;
use xaso_record::fmp4::{self, Sample, SegmentWriter, TrackConfig};
use xaso_sfu::Kind;

/// What the socket should carry next.
#[derive(Debug, PartialEq)]
pub enum Out {
    /// The MIME type (with codecs) of what follows, then its init segment.
    Init {
        mime: String,
        segment: Vec<u8>,
    },
    Fragment(Vec<u8>),
    /// The camera's video cannot be played over MSE; said once.
    Unplayable(String),
}

/// A camera's frames as MSE fragments.
#[derive(Default)]
pub struct Muxer {
    writer: Option<SegmentWriter>,
    /// The first frame's timestamp: decode times count from it.
    base_ts: Option<i64>,
    /// Frames are dropped until the next keyframe (start, lag, new track).
    need_key: bool,
    unplayable_said: bool,
    entry: Option<std::sync::Arc<[u8]>>,
}

impl Muxer {
    /// The camera's (new) tracks; the init segment when the video track changed.
    pub fn tracks(&mut self, t: &TapTracks) -> Option<Out> {
        if t.video_entry == self.entry && self.writer.is_some() {
            return None;
        }
        self.entry = t.video_entry.clone();
        self.writer = None;
        self.base_ts = None;
        self.need_key = true;
        let entry = self.entry.as_deref()?;
        let (codec, _) = t.video.as_ref()?;
        let Some(codecs) = fmp4::rfc6381_codec(entry) else {
            if self.unplayable_said {
                return None;
            }
            self.unplayable_said = true;
            return Some(Out::Unplayable(format!(
                "the camera's {} video cannot be described for the browser",
                codec.name()
            )));
        };
        let (width, height) = match entry.get(32..36) {
            Some(b) => (
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            ),
            None => (0, 0),
        };
        let writer = SegmentWriter::new(
            vec![TrackConfig {
                codec: *codec,
                timescale: 90_000,
                sample_entry: entry.to_vec(),
                width,
                height,
            }],
            // Fragments are taken per frame; this only bounds one that is never taken.
            1000,
        );
        let segment = writer.init_segment();
        self.writer = Some(writer);
        Some(Out::Init {
            mime: format!("video/mp4; codecs=\"{codecs}\""),
            segment,
        })
    }

    /// A frame of the camera; the fragment it completes (the previous frame), if any.
    pub fn frame(&mut self, f: &TapFrame, wall_ms: i64) -> Option<Out> {
        if f.kind != Kind::Video {
            return None;
        }
        let w = self.writer.as_mut()?;
        if self.need_key {
            if !f.key {
                return None;
            }
            self.need_key = false;
        }
        let base = *self.base_ts.get_or_insert(f.ts);
        let sample = Sample {
            track: 0,
            dts: u64::try_from(f.ts - base).unwrap_or(0),
            is_sync: f.key,
            data: f.data.clone(),
            wall_ms,
        };
        if w.push(sample).is_err() {
            // Time went backwards or jumped: start again from the next keyframe.
            self.restart();
            return None;
        }
        w.take_fragment()
            .map(|frag| Out::Fragment(frag.bytes.to_vec()))
    }

    /// The camera reconnected or the viewer fell behind: a new timeline from the next
    /// keyframe. The browser appends in "sequence" mode, so time goes on smoothly there.
    pub fn restart(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            let _ = w.finish();
            *w = SegmentWriter::new(w.tracks().to_vec(), 1000);
        }
        self.base_ts = None;
        self.need_key = true;
    }
}

/// Why an MSE session ended, for the audit log.
pub struct Summary {
    pub bytes_sent: u64,
    pub reason: &'static str,
}

async fn send(socket: &mut WebSocket, out: Out, bytes: &mut u64) -> Result<(), axum::Error> {
    match out {
        Out::Init { mime, segment } => {
            let text = serde_json::json!({ "type": "init", "mime": mime }).to_string();
            *bytes += (text.len() + segment.len()) as u64;
            socket.send(Message::Text(text.into())).await?;
            socket.send(Message::Binary(segment.into())).await
        }
        Out::Fragment(b) => {
            *bytes += b.len() as u64;
            socket.send(Message::Binary(b.into())).await
        }
        Out::Unplayable(message) => {
            let text = serde_json::json!({ "type": "unplayable", "message": message }).to_string();
            socket.send(Message::Text(text.into())).await
        }
    }
}

/// Streams a camera to one MSE viewer until either side ends.
pub async fn run(mut socket: WebSocket, mut feed: MseFeed, now_ms: impl Fn() -> i64) -> Summary {
    let mut mux = Muxer::default();
    let mut bytes = 0u64;
    let mut first: Vec<Out> = mux.tracks(&feed.tracks).into_iter().collect();
    for f in std::mem::take(&mut feed.gop) {
        first.extend(mux.frame(&f, now_ms()));
    }
    for out in first {
        if send(&mut socket, out, &mut bytes).await.is_err() {
            return Summary {
                bytes_sent: bytes,
                reason: "the connection broke",
            };
        }
    }
    let reason = loop {
        let out = tokio::select! {
            ev = feed.events.recv() => match ev {
                Ok(MseEvent::Frame(f)) => mux.frame(&f, now_ms()),
                Ok(MseEvent::Tracks(t)) => mux.tracks(&t),
                Ok(MseEvent::Restart) => {
                    mux.restart();
                    None
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "MSE viewer behind: skipping to the next keyframe");
                    mux.restart();
                    None
                }
                Err(RecvError::Closed) => break "the server is stopping",
            },
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break "ended by the viewer",
                Some(Ok(_)) => None,
            },
        };
        if let Some(out) = out
            && send(&mut socket, out, &mut bytes).await.is_err()
        {
            break "the connection broke";
        }
    };
    let _ = socket.send(Message::Close(None)).await;
    Summary {
        bytes_sent: bytes,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;
    use xaso_base::Codec;
    use xaso_record::boxes::write_box;

    fn tracks() -> TapTracks {
        let mut entry = Vec::new();
        write_box(&mut entry, b"avc1", |o| {
            o.extend_from_slice(&[0; 24]);
            o.extend_from_slice(&640u16.to_be_bytes());
            o.extend_from_slice(&360u16.to_be_bytes());
            o.extend_from_slice(&[0; 50]);
            write_box(o, b"avcC", |o| {
                o.extend_from_slice(&[1, 0x42, 0xc0, 0x1e, 0xff])
            });
        });
        TapTracks {
            video: Some((Codec::H264, Default::default())),
            video_entry: Some(Arc::from(entry)),
            audio: None,
            audio_in: None,
        }
    }

    fn frame(ts: i64, key: bool) -> TapFrame {
        TapFrame {
            kind: Kind::Video,
            ts,
            key,
            data: Bytes::from(vec![0, 0, 0, 2, if key { 0x65 } else { 0x41 }, ts as u8]),
            at: None,
        }
    }

    fn fragment(out: Option<Out>) -> Vec<u8> {
        match out {
            Some(Out::Fragment(b)) => b,
            other => panic!("expected a fragment, got {other:?}"),
        }
    }

    #[test]
    fn init_then_a_fragment_per_frame_from_a_keyframe() {
        let mut m = Muxer::default();
        let Some(Out::Init { mime, segment }) = m.tracks(&tracks()) else {
            panic!("no init segment");
        };
        assert_eq!(mime, "video/mp4; codecs=\"avc1.42c01e\"");
        assert_eq!(&segment[4..8], b"ftyp");
        // The same tracks again: nothing new for the browser.
        assert_eq!(m.tracks(&tracks()), None);
        // Frames before the first keyframe cannot be decoded: dropped.
        assert_eq!(m.frame(&frame(1000, false), 0), None);
        // The keyframe is held until its duration is known.
        assert_eq!(m.frame(&frame(4000, true), 0), None);
        let f = fragment(m.frame(&frame(7600, false), 0));
        let moof = f.windows(4).position(|w| w == b"moof").unwrap();
        let tfdt = f.windows(4).position(|w| w == b"tfdt").unwrap();
        // tfdt version 1: decode time 0 (counted from the keyframe).
        assert_eq!(&f[tfdt + 8..tfdt + 16], &0u64.to_be_bytes());
        let trun = f.windows(4).position(|w| w == b"trun").unwrap();
        // sample count 1, then data offset, then duration 3600 and size 6.
        assert_eq!(&f[trun + 8..trun + 12], &1u32.to_be_bytes());
        assert_eq!(&f[trun + 16..trun + 20], &3600u32.to_be_bytes());
        assert_eq!(&f[trun + 20..trun + 24], &6u32.to_be_bytes());
        assert!(moof < tfdt);
        assert!(f.ends_with(&[0, 0, 0, 2, 0x65, 4000u16 as u8]));
        let f = fragment(m.frame(&frame(11200, false), 0));
        assert_eq!(
            &f[f.windows(4).position(|w| w == b"tfdt").unwrap() + 8..][..8],
            &3600u64.to_be_bytes()
        );
    }

    #[test]
    fn restart_waits_for_a_keyframe_and_counts_time_anew() {
        let mut m = Muxer::default();
        m.tracks(&tracks());
        m.frame(&frame(0, true), 0);
        fragment(m.frame(&frame(3600, false), 0));
        m.restart();
        assert_eq!(m.frame(&frame(900_000, false), 0), None);
        assert_eq!(m.frame(&frame(5, true), 0), None);
        let f = fragment(m.frame(&frame(3605, false), 0));
        let tfdt = f.windows(4).position(|w| w == b"tfdt").unwrap();
        assert_eq!(&f[tfdt + 8..tfdt + 16], &0u64.to_be_bytes());
        // Time going backwards without a restart (a broken camera) restarts too.
        assert_eq!(m.frame(&frame(100, true), 0), None);
        assert_eq!(m.frame(&frame(50, false), 0), None);
    }

    #[test]
    fn video_that_cannot_be_described_is_said_once() {
        let mut m = Muxer::default();
        let mut t = tracks();
        t.video_entry = Some(Arc::from(vec![0u8; 20]));
        assert!(matches!(m.tracks(&t), Some(Out::Unplayable(_))));
        t.video_entry = Some(Arc::from(vec![1u8; 20]));
        assert_eq!(m.tracks(&t), None);
        assert_eq!(m.frame(&frame(0, true), 0), None);
        // No description at all (audio-only camera): nothing to send.
        let mut m = Muxer::default();
        assert_eq!(m.tracks(&TapTracks::default()), None);
    }
}
