//! One meeting participant: a str0m `Rtc` in RTP mode (ICE-lite) that both publishes (the
//! page's sendonly microphone, camera and screen tracks) and receives through *slots* (the
//! page's recvonly transceivers), each slot carrying one other participant's track at a
//! time. The room logic that decides which track a slot carries is in [`crate::core`];
//! here are the per-peer mechanics: negotiation, what arrived, and writing a forwarded
//! packet under the slot's own sequence numbers and timestamps (docs/design/meetings.md).
//!
//! str0m stays behind this type as it does behind [`crate::session`]; every call into it
//! runs under `catch_unwind`.

use crate::session::{
    Endpoint, Proto, Section, SessionError, Transmit, add_candidates, guard, sections,
};
use crate::vp8::Renumber;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::SdpOffer;
use str0m::format::Codec as RtcCodec;
use str0m::media::{KeyframeRequestKind, Mid, Pt, Rid};
use str0m::rtp::{ExtensionValues, RtpWrite, Vp8Descriptor};
use str0m::{Event, IceConnectionState, Input, Rtc};

/// What a published track is, as the page labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Mic,
    Camera,
    Screen,
}

impl TrackKind {
    pub fn parse(s: &str) -> Option<TrackKind> {
        match s {
            "mic" => Some(TrackKind::Mic),
            "camera" => Some(TrackKind::Camera),
            "screen" => Some(TrackKind::Screen),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Mic => "mic",
            TrackKind::Camera => "camera",
            TrackKind::Screen => "screen",
        }
    }

    pub fn is_video(self) -> bool {
        self != TrackKind::Mic
    }
}

/// A track the participant publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub mid: Mid,
    pub track: TrackKind,
}

/// Which publisher's track a slot carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Feed {
    pub publisher: u64,
    pub track: TrackKind,
}

/// A recvonly transceiver of the page: one other participant's track at a time.
pub struct Slot {
    pub mid: Mid,
    pub video: bool,
    pub feed: Option<Feed>,
    /// Publisher payload type → ours for the same codec (`None`: this slot cannot take it),
    /// and whether a RED payload goes out as its primary block (the page has no RED).
    pt_map: Vec<(Pt, Option<(Pt, bool)>)>,
    /// Next outgoing sequence number (extended; below 2^16 at start, RFC 3711 ROC 0).
    next_seq: u64,
    /// Set at the first packet forwarded from the current feed (a keyframe's first, for
    /// video): outgoing = incoming + offset; packets older than `first_in` are dropped.
    seq_offset: Option<i64>,
    first_in: u64,
    ts_offset: u32,
    last_ts: Option<u32>,
    pub packets_sent: u64,
    /// The simulcast layer forwarded now, and the one chosen for the slot (switched to at
    /// its next keyframe). `None` without simulcast.
    pub layer: Option<Rid>,
    pub want: Option<Rid>,
    /// A different layer the allocator has chosen, and since when: applied once it has
    /// held for a while (hysteresis: a noisy estimate must not flap the layer).
    pub pending: Option<(Option<Rid>, Instant)>,
    /// VP8 picture numbering, continuous across the layers and publishers the slot has
    /// carried (kept when the feed changes).
    vp8: Renumber,
}

impl Slot {
    fn new(mid: Mid, video: bool, seq: u64) -> Slot {
        Slot {
            mid,
            video,
            feed: None,
            pt_map: Vec::new(),
            next_seq: seq,
            seq_offset: None,
            first_in: 0,
            ts_offset: 0,
            last_ts: None,
            packets_sent: 0,
            layer: None,
            want: None,
            pending: None,
            vp8: Renumber::default(),
        }
    }

    /// Points the slot at another feed (or none): the next packet that may start it (any
    /// for audio, a keyframe's first for video) re-bases its numbering.
    pub fn set_feed(&mut self, feed: Option<Feed>) {
        if self.feed != feed {
            self.feed = feed;
            self.seq_offset = None;
            self.pt_map.clear();
            self.layer = None;
            self.want = None;
            self.pending = None;
        }
    }

    /// Whether the slot waits for a keyframe of its feed (to start, or to switch layer).
    pub fn waiting(&self) -> bool {
        self.feed.is_some()
            && (self.seq_offset.is_none() || (self.want.is_some() && self.want != self.layer))
    }

    /// The layer a keyframe is wanted of, when [`Slot::waiting`].
    pub fn waiting_for(&self) -> Option<Rid> {
        self.want.or(self.layer)
    }
}

/// A published track's layers ([`Peer::layer_choice`]), each with its bitrate, lowest
/// first.
pub struct LayerChoice {
    pub all: Vec<(Option<Rid>, u64)>,
    /// Those a slot may be given.
    pub usable: Vec<(Option<Rid>, u64)>,
    /// Those that run at the page and yet do not arrive.
    pub stalled: Vec<Rid>,
}

/// A packet the participant published.
#[derive(Clone, Debug)]
pub struct RtpIn {
    pub mid: Mid,
    pub rid: Option<Rid>,
    pub pt: Pt,
    pub codec: RtcCodec,
    /// Extended sequence number.
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    /// The first packet of a keyframe (video), or any packet (audio).
    pub starts: bool,
    /// RFC 6464 level, 0 (loudest) to 127 dBov below; `None` when the packet had none.
    pub audio_level: Option<u8>,
    pub payload: Arc<[u8]>,
    /// A RED packet's (RFC 2198) primary block: what a subscriber without RED gets, with
    /// the codec's own payload type. `None` for any other packet.
    pub plain: Option<Arc<[u8]>>,
    /// VP8's payload descriptor, parsed once on the way in.
    pub vp8: Option<Vp8Descriptor>,
    /// VP9's, likewise.
    pub vp9: Option<crate::vp9::Descriptor>,
    pub at: Instant,
}

/// What happened on a peer that the room has to act on.
#[derive(Debug)]
pub enum PeerEvent {
    Rtp(RtpIn),
    /// The page asked for a keyframe on one of its slots.
    KeyframeWanted(Mid),
    Connected,
}

pub struct Peer {
    rtc: Rtc,
    pub room: i64,
    pub published: Vec<Published>,
    pub slots: Vec<Slot>,
    connected: bool,
    pub ended: Option<String>,
    timeout: Instant,
    pub bytes_sent: u64,
    pub joined: Instant,
    /// Tracks the chair stopped: not forwarded.
    pub blocked: Vec<TrackKind>,
    /// Smoothed loudness of the microphone.
    pub loudness: Loudness,
    /// When the participant was last the active speaker (for "last N").
    pub last_spoke: Option<Instant>,
    /// Keyframe requests sent to the page, per track (at most one each 500 ms).
    last_pli: HashMap<(Mid, Option<Rid>), Instant>,
    /// Keyframe requests sent to this participant (each PLI, per layer).
    pub keyframes_asked: u64,
    pub events: Vec<PeerEvent>,
    /// The latest video packets of each published track, in arrival order: a slot that
    /// starts on a keyframe's first packet also gets those of its frame that arrived
    /// before it (reordered on the way in).
    pub recent: HashMap<Mid, std::collections::VecDeque<RtpIn>>,
    /// Bitrate of each published track (of each layer of a video one), measured over the
    /// last second.
    rates: HashMap<(Mid, Option<Rid>), Rate>,
    /// Tile heights this participant shows, per publisher (from the page's `view`).
    pub view: HashMap<u64, u32>,
    /// The simulcast layers each published track's offer declared.
    declared: HashMap<Mid, Vec<Rid>>,
    /// The layers each published track runs at the page, as the page was last told
    /// (none told yet: all run), and since when each was resumed (the page starts with
    /// all of them on, at its join).
    told: HashMap<TrackKind, Vec<String>>,
    resumed: HashMap<(TrackKind, Rid), Instant>,
    /// When each layer was last wanted (see [`LAYER_PAUSE_DELAY`]).
    wanted_at: HashMap<(TrackKind, Rid), Instant>,
    /// The bandwidth estimated toward this participant (transport-wide congestion
    /// control), bits per second.
    pub bwe_bps: Option<u64>,
    /// The time of the latest input.
    now: Instant,
    /// What [`Peer::set_bitrate`] last gave the estimator: (carried, desired).
    pub(crate) bitrate_set: Option<(u64, u64)>,
    rnd: u64,
    /// Payload type → codec of what the participant sends, and whether the type is the
    /// codec's RED (looked up once per type).
    codecs: Vec<(Pt, RtcCodec, bool)>,
    /// Packets were forwarded to it since its last [`Peer::flush`] (the core's to do).
    unflushed: bool,
    /// It has a bandwidth estimate, and with it str0m's pacer.
    paced: bool,
}

#[derive(Clone, Copy, Default)]
struct Rate {
    bytes: u64,
    since: Option<Instant>,
    bps: u64,
    last: Option<Instant>,
    /// When the current run of packets began: the first packet after a gap longer than
    /// [`LAYER_GAP`] (or ever).
    run: Option<Instant>,
}

/// A layer with no packet for longer is paused (or left out by the page's encoder).
const LAYER_GAP: Duration = Duration::from_millis(500);

/// How long a layer that runs at its page may take to arrive before slots leave it.
const LAYER_START: Duration = Duration::from_secs(1);
/// A layer that no tile wants any more runs on at the page this long before it is paused:
/// the speaker's enlarged tile moves from one participant to another every few seconds,
/// and each layer paused and resumed again costs its publisher a keyframe of it (LiveKit's
/// dynacast waits 5 s as well). Wanted again, a layer is resumed at once.
pub const LAYER_PAUSE_DELAY: Duration = Duration::from_secs(5);

/// Video packets kept per published track for [`Peer::recent`].
const RECENT: usize = 128;

/// How long a peer may stay unconnected after its offer.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The codec of payload type `pt` in `rtc`'s negotiated configuration, and whether `pt` is
/// that codec's RED type.
pub(crate) fn codec_of_pt(rtc: &Rtc, pt: Pt) -> Option<(RtcCodec, bool)> {
    rtc.codec_config()
        .params()
        .iter()
        .find(|c| c.pt() == pt || c.red() == Some(pt))
        .map(|c| (c.spec().codec, c.pt() != pt))
}

/// The RED payload type of `codec` on media `mid`, when both sides negotiated RED.
pub(crate) fn red_pt_on(rtc: &Rtc, mid: Mid, codec: RtcCodec) -> Option<Pt> {
    let media = rtc.media(mid)?;
    rtc.codec_config()
        .params()
        .iter()
        .filter(|p| p.spec().codec == codec && media.remote_pts().contains(&p.pt()))
        .find_map(|p| p.red())
}

/// Adds `usedtx=1` to the answer's Opus format lines: a silent microphone then sends next
/// to nothing, and the speaker detection takes the silence for quiet. (str0m's Opus with
/// RED has no DTX parameter; the answer is what the sender reads.)
fn ask_for_dtx(answer: &str) -> String {
    let opus: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, c)| c.to_ascii_lowercase().starts_with("opus/"))
        .map(|(pt, _)| pt)
        .collect();
    let mut out = String::with_capacity(answer.len() + 16 * opus.len());
    for line in answer.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let is_opus = body
            .strip_prefix("a=fmtp:")
            .and_then(|l| l.split_once(' '))
            .is_some_and(|(pt, _)| opus.contains(&pt));
        if is_opus && !body.contains("usedtx=") {
            out.push_str(body);
            out.push_str(";usedtx=1");
            out.push_str(&line[body.len()..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// The send layers each media section of an offer declares (`a=rid:X send`), by mid.
fn declared_rids(sdp: &str) -> HashMap<Mid, Vec<Rid>> {
    let mut out = HashMap::new();
    for s in sections(sdp) {
        let rids: Vec<Rid> = s
            .lines()
            .filter_map(|l| l.strip_prefix("a=rid:"))
            .filter_map(|r| {
                let mut w = r.split_whitespace();
                let id = w.next()?;
                (w.next() == Some("send")).then(|| Rid::from(id))
            })
            .collect();
        if !rids.is_empty() {
            out.insert(s.mid, rids);
        }
    }
    out
}

/// Whether an RTP payload is the first packet of a keyframe.
/// What the core reads of a published payload once, on the way in.
pub(crate) struct Parsed {
    /// A RED payload's primary block (see [`RtpIn::plain`]).
    pub plain: Option<Arc<[u8]>>,
    pub vp8: Option<Vp8Descriptor>,
    pub vp9: Option<crate::vp9::Descriptor>,
    /// See [`RtpIn::starts`].
    pub starts: bool,
}

/// Parses a payload of `codec` (RED-wrapped when `red`); `None` for a malformed RED
/// payload, which is dropped.
pub(crate) fn parse_payload(codec: RtcCodec, red: bool, payload: &[u8]) -> Option<Parsed> {
    // RED: its primary block, for subscribers without RED.
    let plain = match red.then(|| crate::red::primary(payload)) {
        None => None,
        Some(Some((_, r))) => Some(Arc::from(&payload[r])),
        Some(None) => return None,
    };
    let vp8 = match codec {
        RtcCodec::Vp8 => crate::vp8::descriptor(payload),
        _ => None,
    };
    let vp9 = match codec {
        RtcCodec::Vp9 => crate::vp9::Descriptor::parse(payload),
        _ => None,
    };
    let starts = match (vp8, vp9, codec) {
        (Some(d), _, _) => d.starts_keyframe(payload),
        (_, Some(d), _) => d.starts_keyframe(),
        // A VP8 or VP9 payload whose descriptor did not parse starts nothing.
        (None, None, RtcCodec::Vp8 | RtcCodec::Vp9) => false,
        (None, None, _) => !codec.is_video() || keyframe_start(codec, payload),
    };
    Some(Parsed {
        plain,
        vp8,
        vp9,
        starts,
    })
}

pub fn keyframe_start(codec: RtcCodec, p: &[u8]) -> bool {
    match codec {
        RtcCodec::Vp8 => crate::vp8::keyframe_start(p),
        RtcCodec::Vp9 => crate::vp9::Descriptor::parse(p).is_some_and(|d| d.starts_keyframe()),
        RtcCodec::Av1 => crate::av1::keyframe_start(p),
        RtcCodec::H264 => h264_keyframe_start(p),
        _ => false,
    }
}

/// H.264 (RFC 6184): a packet holding an SPS or an IDR slice, or the first fragment of one.
fn h264_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let key = |t: u8| t == 5 || t == 7;
    match b0 & 0x1f {
        24 => {
            // STAP-A: 16-bit sizes, then NAL units.
            let mut i = 1;
            while i + 2 < p.len() {
                let n = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if n > 0 && key(p[i + 2] & 0x1f) {
                    return true;
                }
                i += 2 + n;
            }
            false
        }
        28 => p.get(1).is_some_and(|h| h & 0x80 != 0 && key(h & 0x1f)),
        t => key(t),
    }
}

impl Peer {
    /// Answers the participant's first offer. `tracks` labels the page's sendonly
    /// transceivers by mid.
    pub fn join(
        now: Instant,
        room: i64,
        offer: &str,
        tracks: &[(String, TrackKind)],
        candidates: &[(Proto, SocketAddr)],
        seed: u64,
        estimate: bool,
    ) -> Result<(Peer, String), SessionError> {
        let mut cfg = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .clear_codecs()
            // Transport-wide congestion control toward the participant (with `estimate`):
            // the estimate chooses the simulcast layers it gets. It comes with a pacer
            // that spreads what is sent over time; without layers to choose from, it would
            // only delay what cannot be reduced anyway.
            .enable_bwe(estimate.then_some(str0m::bwe::Bitrate::kbps(1500)))
            .set_stats_interval(None);
        // Opus first (the answer's first codec is what the browser sends), with in-band
        // FEC, and RED (RFC 2198) where the offer has it: str0m then lists it before Opus,
        // and the browser sends each packet with a copy of the previous one. DTX is asked
        // of the senders in the answer (`usedtx=1`, see `ask_for_dtx`).
        let codecs = cfg.codec_config();
        codecs.enable_opus(true, true);
        codecs.enable_vp8(true);
        codecs.enable_h264(true);
        // VP9 (profile 0, the one every browser decodes) and AV1 after them: a page sends
        // VP8 unless it prefers one of these (a WHIP encoder may send only these).
        for (pt, rtx, codec, profile) in [
            (98, 99, RtcCodec::Vp9, Some(0)),
            (45, 46, RtcCodec::Av1, None),
        ] {
            codecs.add_config(
                Pt::from(pt),
                Some(Pt::from(rtx)),
                codec,
                str0m::media::Frequency::NINETY_KHZ,
                None,
                str0m::format::FormatParams {
                    profile_id: profile,
                    ..Default::default()
                },
            );
        }
        // G.711 for cameras in the meeting (a camera's audio, forwarded as it is), after
        // Opus.
        codecs.enable_pcmu(true, false);
        codecs.enable_pcma(true, false);
        let mut rtc = guard(move || {
            let mut rtc = cfg.build(now);
            add_candidates(&mut rtc, candidates);
            rtc
        })
        .map_err(|p| SessionError::BadSdp(format!("internal error ({p})")))?;
        let _ = &mut rtc;
        let mut peer = Peer {
            rtc,
            room,
            published: Vec::new(),
            slots: Vec::new(),
            connected: false,
            ended: None,
            timeout: now,
            bytes_sent: 0,
            joined: now,
            blocked: Vec::new(),
            loudness: Loudness::default(),
            last_spoke: None,
            last_pli: HashMap::new(),
            keyframes_asked: 0,
            events: Vec::new(),
            recent: HashMap::new(),
            rates: HashMap::new(),
            view: HashMap::new(),
            declared: HashMap::new(),
            told: HashMap::new(),
            resumed: HashMap::new(),
            wanted_at: HashMap::new(),
            now,
            bitrate_set: None,
            bwe_bps: None,
            rnd: seed | 1,
            codecs: Vec::new(),
            unflushed: false,
            paced: estimate,
        };
        let answer = peer.renegotiate(now, offer, tracks)?;
        Ok((peer, answer))
    }

    fn rand(&mut self) -> u64 {
        let mut r = self.rnd;
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        self.rnd = r;
        r
    }

    /// Answers a later offer of the page (more slots, a screen share added or removed).
    /// Slots and published tracks follow the answer; existing slots keep their state.
    pub fn renegotiate(
        &mut self,
        now: Instant,
        offer: &str,
        tracks: &[(String, TrackKind)],
    ) -> Result<String, SessionError> {
        if self.ended.is_some() {
            return Err(SessionError::BadSdp("the participant has left".into()));
        }
        let parsed =
            SdpOffer::from_sdp_string(offer).map_err(|e| SessionError::BadSdp(e.to_string()))?;
        let answer = guard(|| self.rtc.sdp_api().accept_offer(parsed))
            .map_err(|p| SessionError::BadSdp(format!("the offer could not be handled ({p})")))?
            .map_err(|e| SessionError::BadSdp(e.to_string()))?
            .to_sdp_string();
        let answer = ask_for_dtx(&answer);
        self.codecs.clear();
        let mut published = Vec::new();
        let mut slots = Vec::new();
        for Section {
            mid, video, dir, ..
        } in sections(&answer)
        {
            match dir {
                // We receive: a track the page publishes.
                "recvonly" | "sendrecv" => {
                    let label = tracks.iter().find(|(m, _)| m.as_str() == &*mid);
                    let track = match label {
                        Some((_, t)) if t.is_video() == video => *t,
                        Some((_, t)) => {
                            return Err(SessionError::BadSdp(format!(
                                "track {} is labelled {} but its m-line is {}",
                                &*mid,
                                t.as_str(),
                                if video { "video" } else { "audio" }
                            )));
                        }
                        None if video => TrackKind::Camera,
                        None => TrackKind::Mic,
                    };
                    if dir == "recvonly" {
                        published.push(Published { mid, track });
                    }
                }
                // We send: a slot.
                "sendonly" => {
                    let old = self
                        .slots
                        .iter()
                        .position(|s| s.mid == mid)
                        .map(|i| self.slots.swap_remove(i));
                    let seq = self.rand() & 0x7fff;
                    slots.push(old.unwrap_or_else(|| Slot::new(mid, video, seq)));
                }
                _ => {}
            }
        }
        // At most one published track of each kind counts (the first).
        let mut seen = Vec::new();
        published.retain(|p| {
            let fresh = !seen.contains(&p.track);
            seen.push(p.track);
            fresh
        });
        self.declared = declared_rids(offer);
        self.published = published;
        self.slots = slots;
        let mut sink = Vec::new();
        self.settle(now, &mut sink);
        if let Some(e) = &self.ended {
            return Err(SessionError::BadSdp(e.clone()));
        }
        Ok(answer)
    }

    fn settle(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        self.input(Input::Timeout(now), out);
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn timeout(&self) -> Instant {
        self.timeout
    }

    /// The track published on `mid`.
    pub fn track_of(&self, mid: Mid) -> Option<TrackKind> {
        self.published
            .iter()
            .find(|p| p.mid == mid)
            .map(|p| p.track)
    }

    pub fn mid_of(&self, track: TrackKind) -> Option<Mid> {
        self.published
            .iter()
            .find(|p| p.track == track)
            .map(|p| p.mid)
    }

    pub fn close(&mut self, reason: &str) {
        if self.ended.is_none() {
            let _ = guard(|| self.rtc.disconnect());
            self.ended = Some(reason.to_string());
        }
    }

    /// The bitrate of the microphone as it arrives (RED included), bits per second; 0 when
    /// it sent nothing for a second (muted, or silent with DTX).
    pub fn mic_bps(&self, now: Instant) -> u64 {
        let Some(mid) = self.mid_of(TrackKind::Mic) else {
            return 0;
        };
        self.rates
            .get(&(mid, None))
            .filter(|r| {
                r.last
                    .is_some_and(|l| now.saturating_duration_since(l) <= Duration::from_secs(1))
            })
            .map_or(0, |r| r.bps)
    }

    /// The layers of published track `mid` ([`Peer::layers`]), those of them that can be
    /// chosen, and the stalled ones. Chosen can be: a layer that arrives, one the page was
    /// told to pause (chosen, it is resumed), and one resumed less than [`LAYER_START`]
    /// ago. A layer that runs at the page and yet does not arrive (the page's encoder left
    /// it out: its own uplink estimate is too low for it) is stalled, but only while
    /// another layer of the track has arrived without a break for [`LAYER_GAP`] at least:
    /// when every layer stopped together (the page, the link or this server stalled), the
    /// first layer back does not make the others look stalled before they had time to
    /// follow it.
    pub fn layer_choice(&self, mid: Mid, track: TrackKind, now: Instant) -> LayerChoice {
        let all = self.layers(mid);
        let told = self.told.get(&track);
        // Whether a layer other than `rid` has arrived without a break for LAYER_GAP.
        let others_flow = |rid: Option<Rid>| {
            all.iter().any(|(x, _)| {
                *x != rid
                    && self.arriving(mid, *x, now)
                    && self
                        .rates
                        .get(&(mid, *x))
                        .and_then(|r| r.run)
                        .is_some_and(|run| now.saturating_duration_since(run) >= LAYER_GAP)
            })
        };
        let (usable, stuck): (Vec<_>, Vec<_>) = all.iter().copied().partition(|(rid, _)| {
            let Some(r) = rid else { return true };
            let paused = told.is_some_and(|a| !a.iter().any(|x| x == &**r));
            let since = self.resumed.get(&(track, *r)).copied();
            paused
                || self.arriving(mid, *rid, now)
                || now.saturating_duration_since(since.unwrap_or(self.joined)) < LAYER_START
                || !others_flow(*rid)
        });
        if usable.is_empty() {
            return LayerChoice {
                usable: all.clone(),
                all,
                stalled: Vec::new(),
            };
        }
        LayerChoice {
            all,
            usable,
            stalled: stuck.into_iter().filter_map(|x| x.0).collect(),
        }
    }

    /// Notes that layers `wanted` of `track` are wanted now; the page is to run them and,
    /// for [`LAYER_PAUSE_DELAY`] after they were last wanted, those it runs already.
    /// Returns the layers it is to run (sorted) when that is news to it (a `layers` message
    /// is due).
    pub fn tell_layers(
        &mut self,
        track: TrackKind,
        wanted: &[String],
        now: Instant,
    ) -> Option<Vec<String>> {
        for r in wanted {
            self.wanted_at.insert((track, Rid::from(r.as_str())), now);
        }
        let before = self.told.get(&track);
        let recently = |r: &String| {
            self.wanted_at
                .get(&(track, Rid::from(r.as_str())))
                .is_some_and(|t| now.saturating_duration_since(*t) < LAYER_PAUSE_DELAY)
        };
        let mut active = wanted.to_vec();
        active.extend(
            before
                .into_iter()
                .flatten()
                .filter(|r| recently(r))
                .cloned(),
        );
        active.sort();
        active.dedup();
        if before.is_some_and(|b| *b == active) {
            return None;
        }
        for r in &active {
            if before.is_some_and(|b| !b.contains(r)) {
                self.resumed.insert((track, Rid::from(r.as_str())), now);
            }
        }
        self.told.insert(track, active.clone());
        Some(active)
    }

    /// Whether video of layer `rid` of track `mid` arrived within [`LAYER_GAP`].
    pub fn arriving(&self, mid: Mid, rid: Option<Rid>, now: Instant) -> bool {
        self.rates
            .get(&(mid, rid))
            .and_then(|r| r.last)
            .is_some_and(|l| now.saturating_duration_since(l) <= LAYER_GAP)
    }

    /// Tells the bandwidth estimator what this participant's video needs: `minimum` what
    /// its slots carry now (padding holds the estimate up to it), `desired` what its tiles
    /// would take at their best (the estimator probes toward it, so that a participant
    /// whose tiles grow can get higher layers).
    pub fn set_bitrate(&mut self, minimum: u64, desired: u64) {
        if self.bitrate_set == Some((minimum, desired)) || self.ended.is_some() {
            return;
        }
        self.bitrate_set = Some((minimum, desired));
        let _ = guard(|| {
            self.rtc.bwe().set_bitrate(
                str0m::bwe::Bitrate::bps(minimum.min(desired)),
                str0m::bwe::Bitrate::bps(desired),
            )
        });
    }

    /// The layers of a published track seen so far, lowest bitrate first, with their
    /// bitrates (as last measured: a paused layer keeps its figure).
    ///
    /// The layers are those the offer declared (`a=rid:… send`), so that one paused before
    /// its first packet can still be chosen and resumed, and any seen arriving. They are
    /// ordered by their names where those say (`l`/`q` < `m` < `h`/`f`, as pages name
    /// them), else by bitrate. A layer never measured (paused before its first packet) is
    /// taken to cost twice the layer below it, as pages scale each layer by two.
    pub fn layers(&self, mid: Mid) -> Vec<(Option<Rid>, u64)> {
        let mut rids: Vec<Option<Rid>> = self
            .rates
            .keys()
            .filter(|(m, _)| *m == mid)
            .map(|(_, r)| *r)
            .collect();
        for r in self.declared.get(&mid).into_iter().flatten() {
            if !rids.contains(&Some(*r)) {
                rids.push(Some(*r));
            }
        }
        let rank = |r: &Option<Rid>| match r.as_deref() {
            Some("l" | "q" | "low") => Some(0u8),
            Some("m" | "mid") => Some(1),
            Some("h" | "f" | "high" | "full") => Some(2),
            _ => None,
        };
        let mut v: Vec<(Option<Rid>, u64, Option<u8>)> = rids
            .into_iter()
            .map(|rid| {
                let measured = self.rates.get(&(mid, rid)).map(|r| r.bps).unwrap_or(0);
                (rid, measured, rank(&rid))
            })
            .collect();
        if v.iter().all(|x| x.2.is_some()) {
            v.sort_by_key(|x| x.2);
        } else {
            v.sort_by_key(|x| (x.1, x.0.map(|r| r.to_string())));
        }
        let mut below = 0;
        for x in &mut v {
            if x.1 == 0 {
                x.1 = if below == 0 { 150_000 } else { below * 2 };
            }
            below = x.1;
        }
        v.into_iter().map(|(rid, bps, _)| (rid, bps)).collect()
    }

    /// Asks the page for a keyframe of its track `mid` (layer `rid`, or every layer), at
    /// most one each 500 ms per layer. Returns the requests sent (one per layer).
    pub fn request_keyframe(
        &mut self,
        now: Instant,
        mid: Mid,
        rid: Option<Rid>,
        out: &mut Vec<Transmit>,
    ) -> u64 {
        let key = (mid, rid);
        if self
            .last_pli
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_millis(500))
        {
            return 0;
        }
        self.last_pli.insert(key, now);
        let rids: Vec<Option<Rid>> = match rid {
            Some(r) => vec![Some(r)],
            None => self
                .rates
                .keys()
                .filter(|(m, _)| *m == mid)
                .map(|(_, r)| *r)
                .chain([None])
                .collect(),
        };
        let asked = guard(|| {
            let mut api = self.rtc.direct_api();
            let mut n = 0;
            for rid in rids {
                if let Some(s) = api.stream_rx_by_mid(mid, rid) {
                    s.request_keyframe(KeyframeRequestKind::Pli);
                    n += 1;
                }
            }
            n
        })
        .unwrap_or(0);
        if asked > 0 {
            self.keyframes_asked += asked;
            self.input(Input::Timeout(now), out);
        }
        asked
    }

    /// The codec of a payload type the participant sends, and whether the type is its RED.
    fn codec_of(&mut self, pt: Pt) -> Option<(RtcCodec, bool)> {
        if let Some((_, c, red)) = self.codecs.iter().find(|(p, ..)| *p == pt) {
            return Some((*c, *red));
        }
        let (codec, red) = codec_of_pt(&self.rtc, pt)?;
        self.codecs.push((pt, codec, red));
        Some((codec, red))
    }

    /// Our payload type for `codec` on slot `i` (the page's first that fits).
    fn our_pt(&self, i: usize, codec: RtcCodec) -> Option<Pt> {
        let media = self.rtc.media(self.slots[i].mid)?;
        let params = self.rtc.codec_config().params();
        media.remote_pts().iter().copied().find(|pt| {
            params.iter().any(|p| {
                p.pt() == *pt
                    && p.spec().codec == codec
                    && (codec != RtcCodec::H264 || p.spec().format.packetization_mode == Some(1))
            })
        })
    }

    /// Our RED payload type for `codec` on slot `i`, when the page negotiated RED.
    fn our_red_pt(&self, i: usize, codec: RtcCodec) -> Option<Pt> {
        red_pt_on(&self.rtc, self.slots[i].mid, codec)
    }

    /// Forwards a packet of the slot's feed. Returns whether it was written (str0m then
    /// needs a [`Peer::flush`] before its datagrams come out).
    pub fn forward(&mut self, i: usize, p: &RtpIn) -> bool {
        if !self.connected || self.ended.is_some() || i >= self.slots.len() {
            return false;
        }
        let pt = match self.slots[i].pt_map.iter().find(|(a, _)| *a == p.pt) {
            Some((_, b)) => *b,
            None => {
                let b = match p.plain {
                    Some(_) => self
                        .our_red_pt(i, p.codec)
                        .map(|r| (r, false))
                        .or_else(|| self.our_pt(i, p.codec).map(|o| (o, true))),
                    None => self.our_pt(i, p.codec).map(|o| (o, false)),
                };
                self.slots[i].pt_map.push((p.pt, b));
                b
            }
        };
        let Some((pt, strip)) = pt else { return false };
        let step = if self.slots[i].video { 3000 } else { 960 };
        let seed = self.rand() as u32;
        let s = &mut self.slots[i];
        if p.rid != s.layer {
            // Another simulcast layer: switch to it at its keyframe if it is the one wanted
            // (or, before any is chosen, the first that brings one).
            // A slot that has not started takes the first keyframe of any layer (the one
            // wanted may be paused at the publisher until asked for); a started one
            // switches only to the layer wanted, so it never goes black meanwhile.
            let fresh = s.layer.is_none() && s.seq_offset.is_none();
            let target = fresh || s.want.is_some_and(|w| p.rid == Some(w));
            if !(target && p.starts) {
                return false;
            }
            s.layer = p.rid;
            s.seq_offset = None;
        }
        let offset = match s.seq_offset {
            Some(o) => o,
            None if p.starts => {
                let o = s.next_seq as i64 - p.seq as i64;
                s.seq_offset = Some(o);
                s.first_in = p.seq;
                let start = s.last_ts.map_or(seed, |t| t.wrapping_add(step));
                s.ts_offset = start.wrapping_sub(p.ts);
                if let Some(d) = &p.vp8 {
                    s.vp8.restart(d, &p.payload);
                }
                if let Some(d) = &p.vp9 {
                    s.vp8.restart_at(d.numbered(), d.tl0_pic_idx);
                }
                o
            }
            None => return false,
        };
        if p.seq < s.first_in {
            return false; // from before the switch
        }
        let seq = (p.seq as i64 + offset) as u64;
        let ts = p.ts.wrapping_add(s.ts_offset);
        let (mid, video) = (s.mid, s.video);
        let mut ext = ExtensionValues::default();
        if let Some(l) = p.audio_level {
            ext.audio_level = Some(-(l.min(127) as i8));
        }
        let patch = p.vp8.as_ref().and_then(|d| s.vp8.patch(d, &p.payload));
        let payload = match (&p.plain, &p.vp9) {
            (Some(plain), _) if strip => plain.clone(),
            (_, Some(d)) => {
                // VP9: renumbered in a copy (str0m patches only VP8's descriptor).
                let (pic, tl0) = s.vp8.map(d.numbered(), d.tl0_pic_idx);
                if pic == d.picture_id.map(|x| x.0) && tl0 == d.tl0_pic_idx {
                    p.payload.clone()
                } else {
                    Arc::from(crate::vp9::rewrite(&p.payload, d, pic, tl0))
                }
            }
            _ => p.payload.clone(),
        };
        let written = guard(|| {
            let mut api = self.rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(mid, None) else {
                return false;
            };
            let mut w = RtpWrite::new(pt, seq.into(), ts, p.at, payload)
                .marker(p.marker)
                .ext_vals(ext)
                .nackable(video);
            if let Some(patch) = patch {
                w = w.vp8_patch(patch);
            }
            stream.write_rtp(w);
            true
        });
        match written {
            Ok(true) => {
                let s = &mut self.slots[i];
                s.next_seq = s.next_seq.max(seq + 1);
                s.last_ts = Some(ts);
                s.packets_sent += 1;
                true
            }
            Ok(false) => false,
            Err(e) => {
                self.close(&format!("internal error in the WebRTC stack: {e}"));
                false
            }
        }
    }

    /// Lets str0m send what [`Peer::forward`] queued.
    pub fn flush(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        self.unflushed = false;
        self.input(Input::Timeout(now), out);
    }

    /// After packets were forwarded to it. With a pacer (the bandwidth estimate), str0m
    /// lets one packet out per flush, so it is flushed now (a batch would wait behind the
    /// pacer). Without, the core flushes it once for a whole batch of inputs: returns
    /// whether the core has yet to note it.
    pub fn wrote(&mut self, now: Instant, out: &mut Vec<Transmit>) -> bool {
        if self.paced {
            self.flush(now, out);
            false
        } else {
            !std::mem::replace(&mut self.unflushed, true)
        }
    }

    /// Feeds the microphone's loudness from a packet's audio level.
    pub fn hear(&mut self, at: Instant, level: Option<u8>) {
        self.loudness.hear(at, level);
    }

    /// The microphone's loudness now (0 after 300 ms without a packet: DTX silence).
    pub fn loudness_at(&self, now: Instant) -> f32 {
        self.loudness.at(now)
    }
}

/// A microphone's smoothed loudness (0-127, louder higher), from its packets' audio levels.
#[derive(Default)]
pub struct Loudness {
    level: f32,
    at: Option<Instant>,
}

impl Loudness {
    pub fn hear(&mut self, at: Instant, level: Option<u8>) {
        let Some(level) = level else { return };
        let x = 127.0 - f32::from(level.min(127));
        self.level = match self.at {
            Some(t) if at.duration_since(t) < Duration::from_millis(300) => {
                self.level * 0.85 + x * 0.15
            }
            _ => x,
        };
        self.at = Some(at);
    }

    /// The loudness now (0 after 300 ms without a packet: DTX silence).
    pub fn at(&self, now: Instant) -> f32 {
        match self.at {
            Some(t) if now.duration_since(t) < Duration::from_millis(300) => self.level,
            _ => 0.0,
        }
    }
}

impl Endpoint for Peer {
    fn rtc(&self) -> &Rtc {
        &self.rtc
    }

    fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    fn rtc_mut(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    fn fail(&mut self, reason: String) {
        self.close(&reason);
    }

    fn at(&mut self, now: Instant) {
        self.now = now;
    }

    fn drain(&mut self, out: &mut Vec<Transmit>) {
        if self.ended.is_some() {
            return;
        }
        let raw = match crate::session::poll_output(&mut self.rtc, out, &mut self.bytes_sent) {
            Ok(Ok((t, raw))) => {
                self.timeout = t;
                raw
            }
            Ok(Err(e)) => return self.close(&format!("WebRTC error: {e}")),
            Err(p) => return self.close(&format!("internal error in the WebRTC stack: {p}")),
        };
        for e in raw {
            match e {
                Event::Connected => {
                    self.connected = true;
                    self.events.push(PeerEvent::Connected);
                }
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    self.close("the participant's connection is gone")
                }
                Event::KeyframeRequest(k) => self.events.push(PeerEvent::KeyframeWanted(k.mid)),
                Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. })
                | Event::EgressBitrateEstimate(str0m::bwe::BweKind::Remb { estimate, .. }) => {
                    self.bwe_bps = Some(estimate.as_u64());
                }
                Event::RtpPacket(p) => {
                    let ssrc = p.header.ssrc;
                    let Some((mid, rid)) = guard(|| {
                        self.rtc
                            .direct_api()
                            .stream_rx(&ssrc)
                            .map(|s| (s.mid(), s.rid()))
                    })
                    .ok()
                    .flatten() else {
                        continue;
                    };
                    let pt = p.header.payload_type;
                    let Some((codec, red)) = self.codec_of(pt) else {
                        continue;
                    };
                    let video = codec.is_video();
                    let Some(Parsed {
                        plain,
                        vp8,
                        vp9,
                        starts,
                    }) = parse_payload(codec, red, &p.payload)
                    else {
                        continue;
                    };
                    let r = RtpIn {
                        mid,
                        rid,
                        pt,
                        codec,
                        seq: *p.seq_no,
                        ts: p.header.timestamp,
                        marker: p.header.marker,
                        starts,
                        audio_level: p.header.ext_vals.audio_level.map(|l| l.unsigned_abs()),
                        payload: p.payload,
                        plain,
                        vp8,
                        vp9,
                        at: p.timestamp,
                    };
                    // Our clock, not the packet's stamp: bitrates are measured on arrival.
                    let at = self.now;
                    let rate = self.rates.entry((mid, rid)).or_default();
                    // A layer back from a pause starts a new window (the pause is not
                    // part of its bitrate).
                    let broke = rate
                        .last
                        .is_none_or(|l| at.saturating_duration_since(l) > LAYER_GAP);
                    if broke {
                        rate.bytes = 0;
                        rate.since = None;
                        rate.run = Some(at);
                    }
                    rate.bytes += r.payload.len() as u64 + 12;
                    rate.last = Some(at);
                    let since = *rate.since.get_or_insert(at);
                    let d = at.duration_since(since);
                    if d >= Duration::from_secs(1) {
                        rate.bps = rate.bytes * 8 * 1000 / d.as_millis().max(1) as u64;
                        rate.bytes = 0;
                        rate.since = Some(at);
                    }
                    if video {
                        let q = self.recent.entry(mid).or_default();
                        if q.len() == RECENT {
                            q.pop_front();
                        }
                        q.push_back(r.clone());
                    }
                    self.events.push(PeerEvent::Rtp(r));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_keyframes_in_single_stap_and_fu() {
        assert!(h264_keyframe_start(&[0x65, 0x88]));
        assert!(h264_keyframe_start(&[0x67, 0x42]));
        assert!(!h264_keyframe_start(&[0x41, 0x9a]));
        // STAP-A with SPS and PPS.
        assert!(h264_keyframe_start(&[
            0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce
        ]));
        // STAP-A of non-IDR units, and a truncated one.
        assert!(!h264_keyframe_start(&[0x18, 0x00, 0x02, 0x41, 0x9a]));
        assert!(!h264_keyframe_start(&[0x18, 0x00, 0x09, 0x41]));
        // FU-A: the start of an IDR, a middle of one, the start of a P slice.
        assert!(h264_keyframe_start(&[0x7c, 0x85, 0x00]));
        assert!(!h264_keyframe_start(&[0x7c, 0x05, 0x00]));
        assert!(!h264_keyframe_start(&[0x7c, 0x81, 0x00]));
        assert!(!h264_keyframe_start(&[]));
        // Deterministic garbage never panics.
        for bytes in crate::testutil::garbage(0x2545_f491_4f6c_dd1d, 10_000, 11) {
            let _ = h264_keyframe_start(&bytes);
        }
    }

    #[test]
    fn sections_give_mids_kinds_and_directions() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n\
                   m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=sendonly\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n";
        let s: Vec<(Mid, bool, &str)> = sections(sdp)
            .into_iter()
            .map(|s| (s.mid, s.video, s.dir))
            .collect();
        assert_eq!(
            s,
            vec![
                (Mid::from("0"), false, "recvonly"),
                (Mid::from("1"), true, "sendonly")
            ]
        );
    }
}
