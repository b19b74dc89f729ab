//! Live camera streams across links. A viewer at a node of a camera at a node below it
//! watches a tap of its own node, like any viewer; the first one makes this node ask the
//! child (`watch`), the child sends the camera's frames on the link as binary frames, and
//! this node feeds them into that tap, which its WHEP and MSE viewers, and its own parent's
//! requests, read. So a stream crosses each link once however many watch it above; once
//! nobody has watched for [`LINGER`], this node sends `unwatch`.
//!
//! - The wire ([`MediaHeader`], [`encode`], [`decode`]): sans-IO.
//! - [`Outbox`]: what other tasks send on a link, control before media, with a bound on the
//!   media waiting; [`Pacer`] is a sender's policy under it (skip to the next keyframe).
//! - The parent's side: [`Inbound`], a child link's channels into taps, and one feed task per
//!   watched remote tap ([`Federation::watch_remote`]).
//! - The child's side: [`serve_watch`], one task per channel its parent asked for.

use super::Federation;
use super::proto::{Msg, TrackInfo};
use crate::live::{Live, MseEvent, Tap, TapFrame, TapTracks};
use crate::live_sources::{LINGER, Stream};
use crate::store::Camera;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use xaso_base::Codec;
use xaso_sfu::Kind;

/// The first byte of a binary frame that carries a media frame (others are reserved).
const MEDIA: u8 = 1;
/// Bytes before the payload: the type, the channel (u32), the flags, the timestamp (i64),
/// big-endian.
pub const HEADER_LEN: usize = 14;
const FLAG_VIDEO: u8 = 1;
const FLAG_KEY: u8 = 2;

/// What precedes a relayed frame's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaHeader {
    pub ch: u32,
    pub kind: Kind,
    pub key: bool,
    /// In the track's clock rate (90 kHz for video), as the camera's tap has it.
    pub ts: i64,
}

pub fn encode(h: &MediaHeader, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + payload.len());
    b.put_u8(MEDIA);
    b.put_u32(h.ch);
    let mut flags = 0;
    if h.kind == Kind::Video {
        flags |= FLAG_VIDEO;
    }
    if h.key {
        flags |= FLAG_KEY;
    }
    b.put_u8(flags);
    b.put_i64(h.ts);
    b.put_slice(payload);
    b.freeze()
}

/// A binary frame's header and payload (the payload shares the frame's buffer).
pub fn decode(b: &Bytes) -> Result<(MediaHeader, Bytes), String> {
    if b.len() < HEADER_LEN {
        return Err(format!("a binary frame of {} bytes", b.len()));
    }
    if b[0] != MEDIA {
        return Err(format!("a binary frame of unknown type {}", b[0]));
    }
    let ch = u32::from_be_bytes(b[1..5].try_into().expect("4 bytes"));
    let flags = b[5];
    let ts = i64::from_be_bytes(b[6..14].try_into().expect("8 bytes"));
    let kind = if flags & FLAG_VIDEO != 0 {
        Kind::Video
    } else {
        Kind::Audio
    };
    let h = MediaHeader {
        ch,
        kind,
        key: flags & FLAG_KEY != 0,
        ts,
    };
    Ok((h, b.slice(HEADER_LEN..)))
}

/// Media a link may hold unsent before senders drop frames (and then skip to the next
/// keyframe): about half a second of a 6 Mbit/s link, so a stream wider than its link
/// stays live instead of falling ever further behind.
pub const MEDIA_BUDGET: usize = 384 * 1024;

/// What a link sends on behalf of other tasks. Control messages go first; the stream queue
/// holds media frames and the messages that must stay in order with them (`tracks`,
/// `restart`, `unwatched`).
#[derive(Default)]
pub struct Outbox {
    inner: Mutex<OutboxInner>,
    ready: Notify,
    /// Wakes bulk senders ([`Outbox::push_bulk`]) as the stream queue drains.
    drained: Notify,
}

#[derive(Default)]
struct OutboxInner {
    text: Vec<String>,
    stream: VecDeque<super::link::Frame>,
    media_bytes: usize,
}

impl Outbox {
    /// Queues a control message (sent before any media waiting).
    pub fn send(&self, m: &Msg) {
        let t = serde_json::to_string(m).expect("messages serialize");
        self.inner.lock().unwrap().text.push(t);
        self.ready.notify_one();
    }

    /// Queues a message in order with the media frames queued before it.
    pub fn send_in_order(&self, m: &Msg) {
        let t = serde_json::to_string(m).expect("messages serialize");
        self.inner
            .lock()
            .unwrap()
            .stream
            .push_back(super::link::Frame::Text(t));
        self.ready.notify_one();
    }

    /// Queues a media frame unless [`MEDIA_BUDGET`] bytes already wait; `false` then (the
    /// frame is not queued).
    pub fn push_media(&self, b: Bytes) -> bool {
        self.push_media_within(b, MEDIA_BUDGET)
    }

    /// Queues a media frame unless `limit` bytes already wait; `false` then.
    pub fn push_media_within(&self, b: Bytes, limit: usize) -> bool {
        let mut o = self.inner.lock().unwrap();
        if o.media_bytes >= limit {
            return false;
        }
        o.media_bytes += b.len();
        o.stream.push_back(super::link::Frame::Binary(b));
        drop(o);
        self.ready.notify_one();
        true
    }

    /// Queues a chunk of bulk data (`federation::archive`) once less than `limit` bytes
    /// wait, so that media, which may fill the queue up to [`MEDIA_BUDGET`], goes first.
    pub async fn push_bulk(&self, b: Bytes, limit: usize) {
        loop {
            // Registered before the check, so a drain between the two is not missed.
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let mut o = self.inner.lock().unwrap();
                if o.media_bytes < limit {
                    o.media_bytes += b.len();
                    o.stream.push_back(super::link::Frame::Binary(b));
                    drop(o);
                    self.ready.notify_one();
                    return;
                }
            }
            drained.await;
        }
    }

    /// Media bytes waiting.
    pub fn media_waiting(&self) -> usize {
        self.inner.lock().unwrap().media_bytes
    }

    pub(super) fn take_text(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap().text)
    }

    pub(super) fn has_media(&self) -> bool {
        !self.inner.lock().unwrap().stream.is_empty()
    }

    pub(super) fn pop_stream(&self) -> Option<super::link::Frame> {
        let mut o = self.inner.lock().unwrap();
        let f = o.stream.pop_front()?;
        if let super::link::Frame::Binary(b) = &f {
            o.media_bytes -= b.len();
            self.drained.notify_waiters();
        }
        Some(f)
    }

    pub(super) async fn ready(&self) {
        self.ready.notified().await
    }
}

/// A sender's side of one channel: a frame the outbox cannot take is dropped, and after a
/// dropped video frame every video frame until the next keyframe (the ones between would
/// not decode).
pub struct Pacer {
    need_key: bool,
    pub sent: u64,
    pub dropped: u64,
    pub bytes: u64,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            need_key: true,
            sent: 0,
            dropped: 0,
            bytes: 0,
        }
    }
}

impl Pacer {
    pub fn offer(&mut self, out: &Outbox, h: &MediaHeader, payload: &[u8]) {
        let video = h.kind == Kind::Video;
        if video && self.need_key && !h.key {
            self.dropped += 1;
            return;
        }
        let b = encode(h, payload);
        let len = b.len() as u64;
        if out.push_media(b) {
            if video {
                self.need_key = false;
            }
            self.sent += 1;
            self.bytes += len;
        } else {
            self.dropped += 1;
            if video {
                self.need_key = true;
            }
        }
    }

    /// What follows starts anew (new tracks, a reconnected camera, a lag): wait for a
    /// keyframe.
    pub fn restart(&mut self) {
        self.need_key = true;
    }
}

/// A codec by the name [`Codec::name`] gives it.
fn codec_named(s: &str) -> Option<Codec> {
    [
        Codec::H264,
        Codec::H265,
        Codec::Aac,
        Codec::Pcmu,
        Codec::Pcma,
    ]
    .into_iter()
    .find(|c| c.name() == s)
}

fn track_info(codec: Codec, entry: Option<&[u8]>) -> TrackInfo {
    TrackInfo {
        codec: codec.name().to_owned(),
        entry: entry.map(|e| B64.encode(e)),
    }
}

/// The `tracks` message of a tap's tracks.
pub(crate) fn tracks_msg(ch: u32, t: &TapTracks) -> Msg {
    Msg::Tracks {
        ch,
        video: t
            .video
            .as_ref()
            .map(|(c, _)| track_info(*c, t.video_entry.as_deref())),
        audio: t
            .audio_in
            .as_ref()
            .map(|(c, e)| track_info(*c, e.as_deref())),
    }
}

/// One track of a channel as the parent knows it: its codec, and the sample entry still to
/// be handed to the tap with the next frame.
#[derive(Default)]
struct InTrack {
    codec: Option<Codec>,
    pending: Option<Option<Arc<[u8]>>>,
}

impl InTrack {
    fn set(&mut self, info: Option<TrackInfo>) -> Result<(), String> {
        let Some(info) = info else {
            *self = InTrack::default();
            return Ok(());
        };
        let codec = codec_named(&info.codec)
            .ok_or_else(|| format!("a track of unknown codec {:?}", info.codec))?;
        let entry = match info.entry {
            Some(e) => {
                Some(Arc::from(B64.decode(e).map_err(|e| {
                    format!("a sample entry that is not base64: {e}")
                })?))
            }
            None => None,
        };
        self.codec = Some(codec);
        self.pending = Some(entry);
        Ok(())
    }
}

struct Chan {
    tap: Arc<Tap>,
    video: InTrack,
    audio: InTrack,
}

/// The channels of one child link, each feeding a tap of this node (the parent's side).
#[derive(Default)]
pub struct Inbound {
    chans: HashMap<u32, Chan>,
    next: u32,
    /// Frames that named no open channel, or a track not described.
    pub stray: u64,
}

impl Inbound {
    /// A new channel into `tap`; its number for the `watch`.
    pub fn open(&mut self, tap: Arc<Tap>) -> u32 {
        self.next = self.next.wrapping_add(1);
        let ch = self.next;
        self.chans.insert(
            ch,
            Chan {
                tap,
                video: InTrack::default(),
                audio: InTrack::default(),
            },
        );
        ch
    }

    pub fn is_open(&self, ch: u32) -> bool {
        self.chans.contains_key(&ch)
    }

    pub fn len(&self) -> usize {
        self.chans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chans.is_empty()
    }

    /// The channel's tracks (a `tracks` message); an error ends the link.
    pub fn tracks(
        &mut self,
        ch: u32,
        video: Option<TrackInfo>,
        audio: Option<TrackInfo>,
    ) -> Result<(), String> {
        let Some(c) = self.chans.get_mut(&ch) else {
            return Ok(()); // closed meanwhile
        };
        c.video.set(video)?;
        c.audio.set(audio)
    }

    /// The channel's camera reconnected: its timestamps start anew.
    pub fn restart(&mut self, ch: u32) {
        if let Some(c) = self.chans.get(&ch) {
            c.tap.stopped();
        }
    }

    /// Closes a channel; its tap shows the stream stopped.
    pub fn close(&mut self, ch: u32) {
        if let Some(c) = self.chans.remove(&ch) {
            c.tap.stopped();
        }
    }

    /// The link ended: every channel closes.
    pub fn close_all(&mut self) {
        for (_, c) in self.chans.drain() {
            c.tap.stopped();
        }
    }

    /// A binary frame from the child, into its channel's tap; an error ends the link.
    pub fn frame(&mut self, b: &Bytes) -> Result<(), String> {
        let (h, payload) = decode(b)?;
        let Some(c) = self.chans.get_mut(&h.ch) else {
            self.stray += 1;
            return Ok(());
        };
        let track = match h.kind {
            Kind::Video => &mut c.video,
            Kind::Audio => &mut c.audio,
        };
        let Some(codec) = track.codec else {
            self.stray += 1;
            return Ok(());
        };
        let pending = track.pending.take();
        let params = pending.as_ref().map(|e| e.as_deref());
        c.tap.frame(h.kind, codec, h.ts, h.key, &payload, params);
        Ok(())
    }
}

/// How often a feed task looks at its tap and its channel.
const FEED_CHECK: Duration = Duration::from_millis(500);
/// How long a feed waits before asking a child again (a link down, a camera not streaming).
const FEED_RETRY: Duration = Duration::from_secs(1);

impl Federation {
    /// The tap a viewer of `cam` watches for `want`: this node's own camera as
    /// `live_sources::prepare` gives it, or a camera below, relayed over the link toward it.
    /// `by` names who asks (for the audit logs of the nodes below); `relay` says it is the
    /// node above asking, not a viewer here (then nothing lingers here after it).
    pub async fn source_for(
        self: &Arc<Self>,
        live: &Arc<Live>,
        cam: &Camera,
        want: Stream,
        by: &str,
        relay: bool,
        wait: Duration,
    ) -> i64 {
        match &cam.remote {
            None => crate::live_sources::prepare(live, cam, want, wait).await,
            Some(r) => {
                let tap_id = want.tap_id(cam.id);
                let tap = live.tap(tap_id);
                if relay {
                    tap.hold(wait + FEED_CHECK);
                } else {
                    tap.touch();
                }
                {
                    let mut feeds = self.remote_feeds.lock().unwrap();
                    let alive = feeds.get(&tap_id).is_some_and(|h| !h.is_finished());
                    if !alive {
                        let me = self.clone();
                        let (node, remote_id, by) = (r.node_id, r.remote_id, by.to_owned());
                        let t = tap.clone();
                        let h = tokio::spawn(async move {
                            me.feed(t, node, remote_id, want, by).await;
                        });
                        feeds.insert(tap_id, h.abort_handle());
                    }
                }
                tap.wait_keyframe(wait).await;
                tap_id
            }
        }
    }

    /// Feeds `tap` from the child `node` while anyone watches it: asks for the stream on the
    /// child's current link, asks again after the link drops, and says `unwatch` once
    /// nobody has watched for [`LINGER`].
    async fn feed(&self, tap: Arc<Tap>, node: i64, remote_id: i64, want: Stream, by: String) {
        let stream = match want {
            Stream::Main => "main",
            Stream::Sub => "sub",
        };
        while tap.idle_for() < LINGER {
            let Some(super::ChildIo { out, inbound, .. }) = self.child_io(node) else {
                tokio::time::sleep(FEED_RETRY).await;
                continue;
            };
            let ch = inbound.lock().unwrap().open(tap.clone());
            out.send(&Msg::Watch {
                ch,
                camera: remote_id,
                stream: stream.into(),
                by: by.clone(),
            });
            loop {
                tokio::time::sleep(FEED_CHECK).await;
                if !inbound.lock().unwrap().is_open(ch) {
                    break; // the link ended, or the child could not serve it
                }
                if tap.idle_for() >= LINGER {
                    out.send(&Msg::Unwatch { ch });
                    inbound.lock().unwrap().close(ch);
                    return;
                }
            }
            tokio::time::sleep(FEED_RETRY).await;
        }
    }
}

/// Serves channel `ch` that the parent asked for, until the parent says `unwatch` (the task
/// is aborted) or the stream cannot go on (the parent is told why).
pub async fn serve_watch(
    fed: Arc<Federation>,
    out: Arc<Outbox>,
    ch: u32,
    camera: i64,
    want: Stream,
    by: String,
) {
    let sent = Arc::new(AtomicU64::new(0));
    let reason = match relay(&fed, &out, ch, camera, want, &by, &sent).await {
        Ok(()) => "the stream ended".to_owned(),
        Err(e) => e,
    };
    tracing::info!(ch, camera, %reason, "a relayed stream ended");
    out.send_in_order(&Msg::Unwatched { ch, reason });
}

/// Audits the end of a relayed stream, however it ends (an `unwatch` aborts its task).
struct Ended {
    fed: Arc<Federation>,
    camera: i64,
    by: String,
    bytes: Arc<AtomicU64>,
    started_ms: i64,
}

impl Drop for Ended {
    fn drop(&mut self) {
        let fed = self.fed.clone();
        let ev = crate::audit::Event {
            user_id: None,
            username: Some(format!("parent:{}", self.by)),
            action: "live.end",
            camera_id: Some(self.camera),
            address: None,
            detail: Some(serde_json::json!({
                "transport": "federation",
                "bytes_sent": self.bytes.load(Ordering::Relaxed),
                "seconds": (fed.now_ms() - self.started_ms) as f64 / 1000.0,
            })),
        };
        tokio::spawn(async move { fed.audit(ev).await });
    }
}

async fn relay(
    fed: &Arc<Federation>,
    out: &Outbox,
    ch: u32,
    camera: i64,
    want: Stream,
    by: &str,
    sent: &Arc<AtomicU64>,
) -> Result<(), String> {
    let live = fed
        .live
        .get()
        .cloned()
        .ok_or("live view is not running at this node")?;
    let cam = crate::store::camera(&fed.db, camera)
        .await
        .map_err(|e| e.public_message())?;
    let tap_id = fed
        .source_for(&live, &cam, want, by, true, crate::live_sources::OPEN_WAIT)
        .await;
    let mut feed = live
        .watch_relay(tap_id)
        .map_err(|_| format!("camera {:?} is not streaming right now", cam.name))?;
    fed.audit(crate::audit::Event {
        user_id: None,
        username: Some(format!("parent:{by}")),
        action: "live.start",
        camera_id: Some(camera),
        address: None,
        detail: Some(serde_json::json!({ "transport": "federation", "channel": ch })),
    })
    .await;
    let _ended = Ended {
        fed: fed.clone(),
        camera,
        by: by.to_owned(),
        bytes: sent.clone(),
        started_ms: fed.now_ms(),
    };
    let mut pacer = Pacer::default();
    let header = |f: &TapFrame| MediaHeader {
        ch,
        kind: f.kind,
        key: f.key,
        ts: f.ts,
    };
    out.send_in_order(&tracks_msg(ch, &feed.tracks));
    for f in std::mem::take(&mut feed.gop) {
        pacer.offer(out, &header(&f), &f.data);
    }
    loop {
        sent.store(pacer.bytes, Ordering::Relaxed);
        match feed.events.recv().await {
            Ok(MseEvent::Frame(f)) => pacer.offer(out, &header(&f), &f.data),
            Ok(MseEvent::Tracks(t)) => {
                out.send_in_order(&tracks_msg(ch, &t));
                pacer.restart();
            }
            Ok(MseEvent::Restart) => {
                out.send_in_order(&Msg::Restart { ch });
                pacer.restart();
            }
            Err(RecvError::Lagged(n)) => {
                tracing::debug!(ch, n, "a relayed stream lagged: on from the next keyframe");
                pacer.restart();
            }
            Err(RecvError::Closed) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_media_frame_round_trips_and_bad_ones_are_refused() {
        let h = MediaHeader {
            ch: 7,
            kind: Kind::Video,
            key: true,
            ts: -90_000,
        };
        let b = encode(&h, b"\x00\x00\x00\x01\x65");
        assert_eq!(b.len(), HEADER_LEN + 5);
        let (h2, p) = decode(&b).unwrap();
        assert_eq!(h2, h);
        assert_eq!(&p[..], b"\x00\x00\x00\x01\x65");
        let a = MediaHeader {
            ch: u32::MAX,
            kind: Kind::Audio,
            key: false,
            ts: i64::MAX,
        };
        assert_eq!(decode(&encode(&a, b"")).unwrap().0, a);
        assert!(decode(&Bytes::from_static(b"\x01\x00")).is_err());
        let mut other = encode(&a, b"x").to_vec();
        other[0] = 9;
        assert!(decode(&Bytes::from(other)).is_err());
    }

    fn frame(ch: u32, key: bool) -> (MediaHeader, Vec<u8>) {
        let h = MediaHeader {
            ch,
            kind: Kind::Video,
            key,
            ts: 0,
        };
        (h, vec![0; 100 * 1024])
    }

    #[test]
    fn a_full_outbox_drops_frames_until_the_next_keyframe() {
        let out = Outbox::default();
        let mut p = Pacer::default();
        // Nothing before the first keyframe.
        let (h, d) = frame(1, false);
        p.offer(&out, &h, &d);
        assert_eq!((p.sent, p.dropped), (0, 1));
        let (k, d) = frame(1, true);
        p.offer(&out, &k, &d);
        for _ in 0..3 {
            p.offer(&out, &h, &d);
        }
        assert_eq!(p.sent, 4, "400 kB queued: the budget is reached");
        p.offer(&out, &h, &d);
        assert_eq!(p.dropped, 2);
        // Drained: the frames after the drop still wait for a keyframe.
        while out.pop_stream().is_some() {}
        assert_eq!(out.media_waiting(), 0);
        p.offer(&out, &h, &d);
        assert_eq!((p.sent, p.dropped), (4, 3));
        p.offer(&out, &k, &d);
        p.offer(&out, &h, &d);
        assert_eq!((p.sent, p.dropped), (6, 3));
        // Messages in order with the frames are not bounded, control goes apart.
        out.send_in_order(&Msg::Restart { ch: 1 });
        out.send(&Msg::Unwatch { ch: 1 });
        assert_eq!(out.take_text().len(), 1);
        let kinds: Vec<bool> = std::iter::from_fn(|| out.pop_stream())
            .map(|f| matches!(f, super::super::link::Frame::Text(_)))
            .collect();
        assert_eq!(kinds, [false, false, true]);
    }

    #[test]
    fn tracks_are_described_before_frames_reach_a_tap() {
        let mut inb = Inbound::default();
        // A frame of a channel never opened is counted, not an error.
        let (h, d) = frame(5, true);
        inb.frame(&encode(&h, &d)).unwrap();
        assert_eq!(inb.stray, 1);
        let mut t = InTrack::default();
        assert!(
            t.set(Some(TrackInfo {
                codec: "vp8".into(),
                entry: None
            }))
            .is_err()
        );
        assert!(
            t.set(Some(TrackInfo {
                codec: "h264".into(),
                entry: Some("not base64!".into())
            }))
            .is_err()
        );
        t.set(Some(track_info(Codec::H264, Some(b"avc1..."))))
            .unwrap();
        assert_eq!(t.codec, Some(Codec::H264));
        assert_eq!(
            t.pending.as_ref().unwrap().as_deref(),
            Some(&b"avc1..."[..])
        );
        assert!(inb.frame(&Bytes::from_static(b"short")).is_err());
    }
}
