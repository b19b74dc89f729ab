//! A camera's [`Tap`]: where its task puts its frames for live view. It keeps the current
//! GOP (shared buffers, no copy) for a new viewer's first picture, counts who watches (WHEP
//! sessions through the live task, MSE viewers and relays through [`MseFeed`]), and passes
//! frames on only while someone does; AAC → Opus and H.265 → H.264 start here while watched.

use super::{Cmd, Live};
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use xaso_base::Codec;
use xaso_sfu::Kind;
use xaso_sfu::h264::{self, ParameterSets};

/// Frames of a GOP kept per camera at most (a camera with a huge GOP is not cached whole).
const GOP_MAX_BYTES: usize = 8 << 20;

#[derive(Clone)]
pub(crate) struct TapFrame {
    pub(crate) kind: Kind,
    /// In the track's clock rate (90 kHz for video).
    pub(crate) ts: i64,
    pub(crate) key: bool,
    pub(crate) data: Bytes,
    /// When the camera task handed the frame over (for the forwarding latency).
    pub(crate) at: Option<Instant>,
}

#[derive(Clone, Default, PartialEq)]
pub(crate) struct TapTracks {
    pub(crate) video: Option<(Codec, ParameterSets)>,
    /// The video track's ISO BMFF sample entry (`avc1`/`hvc1`), for the MSE fallback.
    pub(crate) video_entry: Option<Arc<[u8]>>,
    pub(crate) audio: Option<Codec>,
    /// The camera's audio as it comes (codec and sample entry), before any transcode: what
    /// a child node relays up to its parent (`federation::relay`).
    pub(crate) audio_in: Option<(Codec, Option<Arc<[u8]>>)>,
}

/// What the tap passes to MSE viewers (`crate::mse`), in order.
#[derive(Clone)]
pub(crate) enum MseEvent {
    Frame(TapFrame),
    Tracks(TapTracks),
    /// The camera reconnected: its timestamps start anew.
    Restart,
}

/// Frames an MSE viewer may fall behind before it skips to the next keyframe.
pub(super) const MSE_QUEUE: usize = 256;

#[derive(Default)]
pub(super) struct TapInner {
    pub(super) gop: Vec<TapFrame>,
    pub(super) gop_bytes: usize,
    pub(super) tracks: TapTracks,
    pub(super) streaming: bool,
    pub(super) watched: bool,
    /// MSE viewers (WebSocket fallback) of this camera.
    pub(super) mse_viewers: usize,
    /// When someone last watched (or asked to): live-only pulls stop after a while without.
    pub(super) last_watched: Option<Instant>,
    /// Counted as watched until then: a node below is being asked for the stream on behalf of
    /// a relay (`Tap::hold`), which lingers nowhere but at the node its viewers are at.
    pub(super) held_until: Option<Instant>,
    /// The camera's AAC configuration, when its audio is AAC.
    pub(super) aac: Option<xaso_simcam::mp4::AacConfig>,
    /// AAC → Opus while someone watches over WebRTC (`gstreamer` builds).
    pub(super) opus: Option<xaso_pipelines::AacToOpus>,
    /// H.265 → H.264 into another tap, while that one is watched (`Live::transcoded`).
    pub(super) transcoder: Option<xaso_pipelines::H265ToH264>,
}

/// Where a camera task puts its frames for live view.
pub struct Tap {
    pub(super) camera: i64,
    pub(super) inner: Mutex<TapInner>,
    pub(super) cmd: mpsc::Sender<Cmd>,
    pub(super) dropped: Arc<AtomicU64>,
    pub(super) mse: tokio::sync::broadcast::Sender<MseEvent>,
}

impl Tap {
    /// A frame from the camera, of a track with `codec`. `new_params` is set (to the
    /// track's sample entry, if any) when the frame comes with a new track description.
    pub fn frame(
        &self,
        kind: Kind,
        codec: Codec,
        ts: i64,
        key: bool,
        data: &Bytes,
        new_params: Option<Option<&[u8]>>,
    ) {
        let mut t = self.inner.lock().expect("tap lock");
        t.streaming = true;
        // A track is known from its first description, or from its codec alone (retina
        // describes no parameters for G.711).
        let unknown = match kind {
            Kind::Video => t.tracks.video.is_none(),
            Kind::Audio => t.tracks.audio.is_none(),
        };
        let info = new_params.or(if unknown { Some(None) } else { None });
        if let Some(entry) = info {
            let mut tracks = t.tracks.clone();
            match kind {
                Kind::Video => {
                    let ps = entry
                        .and_then(h264::parameter_sets_from_sample_entry)
                        .unwrap_or_default();
                    tracks.video = Some((codec, ps));
                    tracks.video_entry = entry.map(Arc::from);
                }
                Kind::Audio => {
                    // AAC reaches browsers as Opus where this build can transcode.
                    t.aac = entry.and_then(xaso_simcam::mp4::aac_config_of_sample_entry);
                    t.opus = None;
                    let opus =
                        codec == Codec::Aac && t.aac.is_some() && xaso_pipelines::available();
                    tracks.audio = Some(if opus { Codec::Opus } else { codec });
                    tracks.audio_in = Some((codec, entry.map(Arc::from)));
                }
            }
            if tracks != t.tracks {
                if kind == Kind::Video {
                    t.gop.clear();
                    t.gop_bytes = 0;
                }
                t.tracks = tracks.clone();
                if t.mse_viewers > 0 {
                    let _ = self.mse.send(MseEvent::Tracks(tracks.clone()));
                }
                if t.watched {
                    self.send(Cmd::Tracks(self.camera, tracks));
                }
            }
        }
        if kind == Kind::Video {
            if key {
                t.gop.clear();
                t.gop_bytes = 0;
            }
            if (key || !t.gop.is_empty()) && t.gop_bytes + data.len() <= GOP_MAX_BYTES {
                t.gop_bytes += data.len();
                t.gop.push(TapFrame {
                    kind,
                    ts,
                    key,
                    data: data.clone(),
                    at: None,
                });
            } else {
                t.gop.clear();
                t.gop_bytes = 0;
            }
        }
        if t.mse_viewers > 0 {
            let _ = self.mse.send(MseEvent::Frame(TapFrame {
                kind,
                ts,
                key,
                data: data.clone(),
                at: None,
            }));
        }
        if kind == Kind::Audio && codec == Codec::Aac && t.watched {
            self.transcode(&mut t, ts, data);
        }
        if kind == Kind::Video
            && let Some(tr) = &t.transcoder
        {
            tr.push(data, u64::try_from(ts).unwrap_or(0), key);
        }
        // Only G.711 audio is forwarded as it comes: other audio would wake the live task
        // for nothing.
        let forwarded = kind == Kind::Video
            || (codec != Codec::Aac && matches!(t.tracks.audio, Some(Codec::Pcmu | Codec::Pcma)));
        if t.watched && forwarded {
            self.send(Cmd::Frame(
                self.camera,
                TapFrame {
                    kind,
                    ts,
                    key,
                    data: data.clone(),
                    at: Some(Instant::now()),
                },
            ));
        }
    }

    /// A frame as the ingest crate gives it, of a stream whose tracks have `codecs`.
    pub fn ingest_frame(&self, codecs: &[Codec], frame: &xaso_ingest::Frame) {
        let Some(&codec) = codecs.get(frame.track) else {
            return;
        };
        let kind = if codec.is_video() {
            Kind::Video
        } else {
            Kind::Audio
        };
        let params = frame.params.as_ref().map(|p| p.sample_entry.as_deref());
        self.frame(kind, codec, frame.ts, frame.is_sync, &frame.data, params);
    }

    /// Hands an AAC frame to the camera's transcoder (started on the first frame someone
    /// watches); its Opus packets go to the live task as audio frames.
    fn transcode(&self, t: &mut TapInner, ts: i64, data: &Bytes) {
        let Some(aac) = t.aac.clone() else { return };
        if t.opus.is_none() {
            let (cmd, camera, dropped) = (self.cmd.clone(), self.camera, self.dropped.clone());
            let out = Box::new(move |data: Vec<u8>, ticks: u64| {
                let f = TapFrame {
                    kind: Kind::Audio,
                    ts: ticks as i64,
                    key: false,
                    data: Bytes::from(data),
                    at: None,
                };
                if cmd.try_send(Cmd::Frame(camera, f)).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            });
            match xaso_pipelines::AacToOpus::new(
                &aac.audio_specific_config,
                aac.sample_rate,
                aac.channels,
                out,
            ) {
                Ok(p) => t.opus = Some(p),
                Err(e) => {
                    tracing::warn!(camera = self.camera, error = %e, "no AAC to Opus: video only");
                    t.aac = None;
                    return;
                }
            }
        }
        if let Some(p) = &t.opus {
            let rate = u64::from(aac.sample_rate.max(1));
            p.push(data, u64::try_from(ts).unwrap_or(0) * 1_000_000_000 / rate);
        }
    }

    /// The camera's connection ended: nothing to show until it is back, and then its
    /// timestamps start anew (viewers stay, and go on from the next keyframe).
    pub fn stopped(&self) {
        let mut t = self.inner.lock().expect("tap lock");
        t.streaming = false;
        t.gop.clear();
        t.gop_bytes = 0;
        t.opus = None;
        t.transcoder = None; // started again on the camera's next frames, if still watched
        if t.mse_viewers > 0 {
            let _ = self.mse.send(MseEvent::Restart);
        }
        if t.watched {
            self.send(Cmd::Restart(self.camera));
        }
    }

    /// Someone is about to watch: counts as watched now.
    pub fn touch(&self) {
        self.inner.lock().expect("tap lock").last_watched = Some(Instant::now());
    }

    /// Counts as watched for `d` from now, without counting as a viewer that left (which
    /// would keep the stream for the linger time): a relay for the node above opening it.
    pub fn hold(&self, d: std::time::Duration) {
        let mut t = self.inner.lock().expect("tap lock");
        let until = Instant::now() + d;
        t.held_until = Some(t.held_until.map_or(until, |h| h.max(until)));
    }

    /// How long nobody has watched (zero while someone does).
    pub fn idle_for(&self) -> std::time::Duration {
        let t = self.inner.lock().expect("tap lock");
        if t.watched || t.mse_viewers > 0 || t.held_until.is_some_and(|h| h > Instant::now()) {
            return std::time::Duration::ZERO;
        }
        t.last_watched
            .map_or(std::time::Duration::MAX, |at| at.elapsed())
    }

    /// Streaming, with a keyframe in hand: a new viewer gets a picture at once.
    pub fn has_keyframe(&self) -> bool {
        let t = self.inner.lock().expect("tap lock");
        t.streaming && !t.gop.is_empty()
    }

    /// Waits up to `wait` for [`Tap::has_keyframe`] (a stream just opened); whether it came.
    pub async fn wait_keyframe(&self, wait: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.has_keyframe() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        true
    }

    fn send(&self, c: Cmd) {
        if self.cmd.try_send(c).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Gives `main` (an H.265 stream) a transcoder into `derived` unless it has one. `None`
/// when it cannot (not H.265, no `hvcC`, no pipeline); else whether one was started.
pub(super) fn start_transcoder(main: &Arc<Tap>, derived: &Arc<Tap>) -> Option<bool> {
    let mut t = main.inner.lock().expect("tap lock");
    if t.transcoder.is_some() {
        return Some(false);
    }
    let Some((Codec::H265, _)) = t.tracks.video else {
        return None;
    };
    let entry = t.tracks.video_entry.clone()?;
    let at = entry.windows(4).position(|w| w == b"hvcC")?;
    let size = u32::from_be_bytes(entry.get(at - 4..at)?.try_into().ok()?) as usize;
    let hvcc = entry.get(at + 4..(at - 4 + size).min(entry.len()))?;
    let d = derived.clone();
    let sink = Box::new(move |f: xaso_pipelines::H264Frame| {
        let entry = f
            .keyframe
            .then(|| xaso_record::fmp4::avc1_sample_entry(f.width, f.height, &f.avcc));
        d.frame(
            Kind::Video,
            Codec::H264,
            f.ts as i64,
            f.keyframe,
            &Bytes::from(f.data),
            entry.as_deref().map(Some),
        );
    });
    let tr = match xaso_pipelines::H265ToH264::new(hvcc, sink) {
        Ok(tr) => tr,
        Err(e) => {
            tracing::warn!(camera = main.camera, error = %e, "no H.265 to H.264 transcode");
            return None;
        }
    };
    for f in &t.gop {
        tr.push(&f.data, u64::try_from(f.ts).unwrap_or(0), f.key);
    }
    t.transcoder = Some(tr);
    tracing::info!(
        camera = main.camera,
        "transcoding H.265 to H.264 for live view"
    );
    Some(true)
}

/// An MSE viewer's start (see [`Live::watch_mse`]).
pub(crate) struct MseFeed {
    pub(crate) gop: Vec<TapFrame>,
    pub(crate) tracks: TapTracks,
    pub(crate) events: tokio::sync::broadcast::Receiver<MseEvent>,
    pub(super) tap: Arc<Tap>,
    pub(super) live: Arc<Live>,
    /// A viewer's (the stream lingers after it leaves), not a relay's ([`Live::watch_relay`]).
    pub(super) viewer: bool,
}

impl Drop for MseFeed {
    fn drop(&mut self) {
        let mut t = self.tap.inner.lock().expect("tap lock");
        t.mse_viewers = t.mse_viewers.saturating_sub(1);
        if self.viewer {
            t.last_watched = Some(Instant::now());
            self.live.mse_sessions.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
