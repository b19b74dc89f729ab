//! One WebRTC subscriber (a WHEP viewer): a str0m `Rtc` in RTP mode with ICE-lite that
//! answers the viewer's offer and sends a source's shared packets under this viewer's own
//! sequence numbers and timestamps (the only bytes that differ per viewer; the payload is
//! the source's `Arc<[u8]>`).
//!
//! str0m stays behind this type: the rest of xaso sees SDP strings, datagrams and
//! [`SessionError`]s. Every call into it runs under `catch_unwind`, so a bug that panics in
//! one peer's state ends that peer's session, never the server (str0m's own advice).

use crate::source::{Frame, Kind, Tracks};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::SdpOffer;
use str0m::format::Codec as RtcCodec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use xaso_base::Codec;

/// Why an offer was refused: each maps to a 4xx for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The SDP does not parse or str0m refuses it.
    BadSdp(String),
    /// Nothing in the offer can carry the source's media.
    NoCompatibleCodec(String),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::BadSdp(m) => write!(f, "malformed SDP offer: {m}"),
            SessionError::NoCompatibleCodec(m) => write!(f, "no compatible codec: {m}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// How a datagram travels: UDP, or a TCP connection framed as RFC 4571 says (ICE-TCP,
/// for networks that let no UDP through).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    fn str0m(self) -> Protocol {
        match self {
            Proto::Udp => Protocol::Udp,
            Proto::Tcp => Protocol::Tcp,
        }
    }
}

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit {
    pub proto: Proto,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// One negotiated outgoing track.
struct Tx {
    mid: Mid,
    pt: Pt,
    /// Next sequence number (extended: str0m takes the rollover counter from it).
    seq: u64,
    /// Added to the source's timestamps; set at this viewer's first frame of the track.
    ts_offset: Option<u32>,
    /// The last timestamp sent, so that after the source restarts (a camera reconnected,
    /// its clock starting anew) this viewer's timestamps go on forward.
    last_ts: Option<u32>,
}

pub struct Session {
    rtc: Rtc,
    video: Option<Tx>,
    audio: Option<Tx>,
    connected: bool,
    /// Whether video has started (from the GOP, or from the next keyframe).
    video_started: bool,
    seed: u64,
    pub bytes_sent: u64,
    pub packets_sent: u64,
    /// Set when the session is over, with the reason.
    pub ended: Option<String>,
    timeout: Instant,
}

pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into())
    })
}

impl Session {
    /// Answers a WHEP offer for a source with `tracks`, offering `candidates` (host
    /// candidates on the shared UDP port, and passive TCP ones for ICE-TCP). Returns the
    /// session and the SDP answer.
    pub fn answer(
        now: Instant,
        offer: &str,
        tracks: &Tracks,
        candidates: &[(Proto, SocketAddr)],
        seed: u64,
    ) -> Result<(Session, String), SessionError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| SessionError::BadSdp(e.to_string()))?;
        let video_codec = tracks.video.as_ref().map(|v| v.codec);
        let want_video = match video_codec {
            Some(Codec::H264) => Some(RtcCodec::H264),
            Some(Codec::H265) => Some(RtcCodec::H265),
            _ => None,
        };
        let mut cfg = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .clear_codecs()
            // Only the MID header extension: without transport-wide sequence numbers the
            // viewer sends no transport-cc feedback (10-20 datagrams a second per viewer),
            // which a camera feed, whose bitrate nobody adapts, has no use for. Losses are
            // still repaired (NACK) and reported (receiver reports).
            .clear_extension_map()
            .set_extension(4, str0m::rtp::Extension::RtpMid)
            .set_stats_interval(None);
        match video_codec {
            Some(Codec::H264) => cfg = cfg.enable_h264(true),
            Some(Codec::H265) => cfg = cfg.enable_h265(true),
            _ => {}
        }
        match tracks.audio {
            Some(Codec::Pcmu) => cfg = cfg.enable_pcmu(true, false),
            Some(Codec::Pcma) => cfg = cfg.enable_pcma(true, false),
            Some(Codec::Opus) => cfg = cfg.enable_opus(true, false),
            _ => {}
        }
        let (mut rtc, answer) = guard(move || {
            let mut rtc = cfg.build(now);
            add_candidates(&mut rtc, candidates);
            let answer = rtc.sdp_api().accept_offer(offer);
            (rtc, answer)
        })
        .map_err(|p| SessionError::BadSdp(format!("the offer could not be handled ({p})")))?;
        let answer = answer.map_err(|e| SessionError::BadSdp(e.to_string()))?;
        let answer = answer.to_sdp_string();
        // The media the answer accepted (str0m reports them as events only once connected).
        let added = accepted_media(&answer);
        let mut timeout = now;
        let drained = guard(|| {
            for _ in 0..10_000 {
                match rtc.poll_output() {
                    Ok(Output::Event(_)) | Ok(Output::Transmit(_)) => {}
                    Ok(Output::Timeout(t)) => {
                        timeout = t;
                        return Ok(());
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err("str0m did not settle".to_string())
        });
        match drained {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => return Err(SessionError::BadSdp(e)),
        }
        let pick = |rtc: &Rtc, mid: Mid, want: RtcCodec| -> Option<Pt> {
            let media = rtc.media(mid)?;
            let params = rtc.codec_config().params();
            let ok = |pt: &Pt| {
                params.iter().find(|p| p.pt() == *pt).is_some_and(|p| {
                    let s = p.spec();
                    s.codec == want
                        && (want != RtcCodec::H264 || s.format.packetization_mode == Some(1))
                })
            };
            // Prefer the viewer's first choice among those that fit; for H.264 a matching
            // profile first (a decoder accepts any profile in practice, but be exact).
            let pts: Vec<Pt> = media.remote_pts().iter().copied().filter(ok).collect();
            let profile = tracks
                .video
                .as_ref()
                .and_then(|v| v.params.profile_level_id())
                .map(|p| p >> 16);
            pts.iter()
                .copied()
                .find(|pt| {
                    want == RtcCodec::H264
                        && params.iter().any(|p| {
                            p.pt() == *pt
                                && p.spec().format.profile_level_id.map(|x| x >> 16) == profile
                        })
                })
                .or_else(|| pts.first().copied())
        };
        let mut video = None;
        let mut audio = None;
        for (mid, kind) in added {
            match kind {
                MediaKind::Video if video.is_none() => {
                    if let Some(pt) = want_video.and_then(|w| pick(&rtc, mid, w)) {
                        video = Some((mid, pt));
                    }
                }
                MediaKind::Audio if audio.is_none() => {
                    let want = match tracks.audio {
                        Some(Codec::Pcmu) => Some(RtcCodec::PCMU),
                        Some(Codec::Pcma) => Some(RtcCodec::PCMA),
                        Some(Codec::Opus) => Some(RtcCodec::Opus),
                        _ => None,
                    };
                    if let Some(pt) = want.and_then(|w| pick(&rtc, mid, w)) {
                        audio = Some((mid, pt));
                    }
                }
                _ => {}
            }
        }
        // A camera's picture is what a viewer comes for: no session without it (a caller
        // may then try the camera's other stream).
        if video.is_none() && (video_codec.is_some() || audio.is_none()) {
            let what = match video_codec {
                Some(Codec::H264) => "the offer has no H.264 (packetization-mode 1) video",
                Some(Codec::H265) => {
                    "the camera sends H.265 and this browser does not take H.265 over WebRTC"
                }
                Some(_) => "the camera's video codec cannot be sent to browsers",
                None => "the camera has sent no video yet",
            };
            return Err(SessionError::NoCompatibleCodec(what.into()));
        }
        let mut r = seed;
        let mut rnd = move || {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            r
        };
        let tx = |(mid, pt): (Mid, Pt), r: u64| Tx {
            mid,
            pt,
            seq: r & 0x7fff,
            ts_offset: None,
            last_ts: None,
        };
        let s = Session {
            video: video.map(|v| tx(v, rnd())),
            audio: audio.map(|a| tx(a, rnd())),
            rtc,
            connected: false,
            video_started: false,
            seed: rnd(),
            bytes_sent: 0,
            packets_sent: 0,
            ended: None,
            timeout,
        };
        Ok((s, answer))
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the session sends video (else audio only).
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// When str0m next needs [`Endpoint::handle_timeout`].
    pub fn timeout(&self) -> Instant {
        self.timeout
    }
}

/// Polls str0m until it asks for a timeout: its datagrams go into `out` (their bytes
/// counted in `bytes_sent`); returns that timeout and the events, str0m's error, or the
/// panic it raised (caught).
pub(crate) fn poll_output(
    rtc: &mut Rtc,
    out: &mut Vec<Transmit>,
    bytes_sent: &mut u64,
) -> std::result::Result<std::result::Result<(Instant, Vec<Event>), String>, String> {
    guard(|| {
        let mut events = Vec::new();
        for _ in 0..100_000 {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok((t, events)),
                Ok(Output::Transmit(t)) => {
                    *bytes_sent += t.contents.len() as u64;
                    out.push(Transmit {
                        proto: if t.proto == Protocol::Udp {
                            Proto::Udp
                        } else {
                            Proto::Tcp
                        },
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    });
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("str0m did not settle".to_string())
    })
}

/// What a live viewer ([`Session`]) and a meeting participant ([`crate::peer::Peer`])
/// share: a str0m `Rtc` that is fed datagrams and timeouts, and that stops taking them
/// once it ended.
pub trait Endpoint {
    fn rtc(&self) -> &Rtc;

    fn rtc_mut(&mut self) -> &mut Rtc;

    fn is_ended(&self) -> bool;

    /// str0m failed (an error, or a panic caught): the endpoint ends with `reason`.
    fn fail(&mut self, reason: String);

    /// Takes str0m's output after an input: datagrams into `out`, events handled.
    fn drain(&mut self, out: &mut Vec<Transmit>);

    /// The time of the input about to be fed (for endpoints that keep their own clock).
    fn at(&mut self, _now: Instant) {}

    /// Feeds str0m one input; `out` gets what to send.
    fn input(&mut self, input: Input<'_>, out: &mut Vec<Transmit>) {
        if self.is_ended() {
            return;
        }
        self.at(match &input {
            Input::Timeout(t) | Input::Receive(t, _) => *t,
        });
        match guard(|| self.rtc_mut().handle_input(input)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(format!("WebRTC error: {e}")),
            Err(p) => self.fail(format!("internal error in the WebRTC stack: {p}")),
        }
        self.drain(out);
    }

    /// Whether this datagram belongs to this endpoint (ICE ufrag, or a known remote).
    fn accepts(
        &self,
        now: Instant,
        proto: Proto,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        if self.is_ended() {
            return false;
        }
        let Some(input) = receive(now, proto, source, destination, data) else {
            return false;
        };
        guard(|| self.rtc().accepts(&input)).unwrap_or(false)
    }

    /// Feeds a datagram that [`Endpoint::accepts`]; `out` gets what to send back.
    fn handle_receive(
        &mut self,
        now: Instant,
        proto: Proto,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
        out: &mut Vec<Transmit>,
    ) {
        if let Some(input) = receive(now, proto, source, destination, data) {
            self.input(input, out);
        }
    }

    fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        self.input(Input::Timeout(now), out);
    }
}

impl Endpoint for Session {
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
        self.end(reason);
    }

    /// Collects what str0m wants to send and its next timeout.
    fn drain(&mut self, out: &mut Vec<Transmit>) {
        if self.ended.is_some() {
            return;
        }
        match poll_output(&mut self.rtc, out, &mut self.bytes_sent) {
            Ok(Ok((t, events))) => {
                self.timeout = t;
                for e in events {
                    match e {
                        Event::Connected => self.connected = true,
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            self.end("the viewer went away".into())
                        }
                        _ => {}
                    }
                }
            }
            Ok(Err(e)) => self.end(format!("WebRTC error: {e}")),
            Err(p) => self.end(format!("internal error in the WebRTC stack: {p}")),
        }
    }
}

impl Session {
    /// Ends the session (a DELETE, or the server's decision).
    pub fn close(&mut self, reason: &str) {
        if self.ended.is_none() {
            let _ = guard(|| self.rtc.disconnect());
            self.end(reason.to_string());
        }
    }

    fn end(&mut self, reason: String) {
        if self.ended.is_none() {
            tracing::debug!(reason, "WebRTC session ended");
            self.ended = Some(reason);
        }
    }

    /// Starts video with the source's current group of pictures: its frames go at once,
    /// with timestamps squeezed together so the browser decodes them all and shows the
    /// newest now, not a GOP late; live frames then follow at their own pace.
    pub fn start_video(&mut self, now: Instant, gop: &[Arc<Frame>], out: &mut Vec<Transmit>) {
        if self.video_started || !self.connected || self.video.is_none() {
            return;
        }
        let Some(last) = gop.last() else {
            self.video_started = true;
            return; // no keyframe yet: video starts at the next one
        };
        let base = self.seed as u32;
        for (i, f) in gop.iter().enumerate() {
            if !self.write(Kind::Video, now, f, base.wrapping_add(i as u32)) {
                return; // str0m's stream is not there yet: try again at the next frame
            }
        }
        self.video_started = true;
        let end = base.wrapping_add(gop.len() as u32 - 1);
        if let Some(v) = self.video.as_mut() {
            v.ts_offset = Some(end.wrapping_sub(last.ts));
        }
        // str0m releases written packets when time moves (its queue is stamped there).
        self.input(Input::Timeout(now), out);
    }

    /// Sends a live frame of the source.
    pub fn wants_start(&self) -> bool {
        self.connected && !self.video_started && self.video.is_some() && self.ended.is_none()
    }

    pub fn send(&mut self, now: Instant, f: &Frame, out: &mut Vec<Transmit>) {
        if self.ended.is_some() || !self.connected {
            return;
        }
        let tx = match f.kind {
            Kind::Video => {
                if !self.video_started {
                    return;
                }
                self.video.as_mut()
            }
            Kind::Audio => self.audio.as_mut(),
        };
        let Some(tx) = tx else { return };
        let offset = match tx.ts_offset {
            Some(o) => o,
            // A track starts at a keyframe (video) or any frame (audio); after a restart,
            // a little after the last timestamp sent (100 ms at 90 kHz, 12.5 ms at 8 kHz).
            None if f.kind == Kind::Audio || f.keyframe => {
                let start = tx
                    .last_ts
                    .map_or(self.seed as u32, |t| t.wrapping_add(9000));
                let o = start.wrapping_sub(f.ts);
                tx.ts_offset = Some(o);
                o
            }
            None => return,
        };
        if self.write(f.kind, now, f, f.ts.wrapping_add(offset)) {
            self.input(Input::Timeout(now), out);
        }
    }

    /// The source restarted (its timestamps begin anew): video waits for the next keyframe
    /// and both tracks go on from a little after their last timestamp; sequence numbers
    /// simply continue.
    pub fn restart(&mut self) {
        for tx in [self.video.as_mut(), self.audio.as_mut()]
            .into_iter()
            .flatten()
        {
            tx.ts_offset = None;
        }
    }

    /// Writes a frame's packets; `false` if str0m has no stream for the track yet.
    fn write(&mut self, kind: Kind, now: Instant, f: &Frame, ts: u32) -> bool {
        let tx = match kind {
            Kind::Video => self.video.as_mut(),
            Kind::Audio => self.audio.as_mut(),
        };
        let Some(tx) = tx else { return false };
        let (mid, pt) = (tx.mid, tx.pt);
        tx.last_ts = Some(ts);
        let first = tx.seq;
        let res = guard(|| {
            let mut api = self.rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(mid, None) else {
                return false;
            };
            for (i, p) in f.packets.iter().enumerate() {
                let w = RtpWrite::new(pt, (first + i as u64).into(), ts, now, p.payload.clone())
                    .marker(p.marker)
                    .nackable(kind == Kind::Video);
                stream.write_rtp(w);
            }
            true
        });
        match res {
            Ok(true) => {
                self.packets_sent += f.packets.len() as u64;
                if let Some(tx) = match kind {
                    Kind::Video => self.video.as_mut(),
                    Kind::Audio => self.audio.as_mut(),
                } {
                    tx.seq += f.packets.len() as u64;
                }
                true
            }
            Ok(false) => false,
            Err(p) => {
                self.end(format!("internal error in the WebRTC stack: {p}"));
                false
            }
        }
    }
}

/// The `(mid, kind)` of each media section of an SDP answer that is not rejected (port 0)
/// and sends (`sendonly`/`sendrecv`).
fn accepted_media(sdp: &str) -> Vec<(Mid, MediaKind)> {
    sections(sdp)
        .into_iter()
        .filter(|s| s.dir == "sendonly" || s.dir == "sendrecv")
        .map(|s| {
            let kind = if s.video {
                MediaKind::Video
            } else {
                MediaKind::Audio
            };
            (s.mid, kind)
        })
        .collect()
}

/// An audio or video section of an SDP that is not rejected (port 0).
#[derive(Debug)]
pub(crate) struct Section<'a> {
    pub mid: Mid,
    pub video: bool,
    /// `sendrecv`, `sendonly`, `recvonly` or `inactive`.
    pub dir: &'a str,
    /// From the kind to the next `m=` line.
    body: &'a str,
}

impl Section<'_> {
    /// The section's lines, trimmed.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.body.lines().map(str::trim)
    }
}

/// The audio and video sections of an SDP with a mid, rejected ones left out.
pub(crate) fn sections(sdp: &str) -> Vec<Section<'_>> {
    let mut out = Vec::new();
    for body in sdp.split("\nm=").skip(1) {
        let mut words = body.split_whitespace();
        let video = match words.next() {
            Some("video") => true,
            Some("audio") => false,
            _ => continue,
        };
        if words.next() == Some("0") {
            continue;
        }
        let lines = || body.lines().map(str::trim);
        let dir = lines()
            .find_map(|l| {
                ["sendrecv", "sendonly", "recvonly", "inactive"]
                    .into_iter()
                    .find(|d| l.strip_prefix("a=") == Some(*d))
            })
            .unwrap_or("sendrecv");
        if let Some(mid) = lines().find_map(|l| l.strip_prefix("a=mid:")) {
            out.push(Section {
                mid: Mid::from(mid),
                video,
                dir,
                body,
            });
        }
    }
    out
}

/// Offers the server's host candidates: UDP on the shared port, and passive TCP for ICE-TCP.
pub(crate) fn add_candidates(rtc: &mut Rtc, candidates: &[(Proto, SocketAddr)]) {
    for &(proto, addr) in candidates {
        let c = match proto {
            Proto::Udp => Candidate::host(addr, "udp"),
            Proto::Tcp => Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build(),
        };
        if let Ok(c) = c {
            rtc.add_local_candidate(c);
        }
    }
}

/// How long a session may stay unconnected before it is dropped (a viewer that posted an
/// offer and never came).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A received datagram as str0m takes it (`None` if it cannot be one).
pub(crate) fn receive(
    now: Instant,
    proto: Proto,
    source: SocketAddr,
    destination: SocketAddr,
    data: &[u8],
) -> Option<Input<'_>> {
    let contents = data.try_into().ok()?;
    Some(Input::Receive(
        now,
        Receive {
            proto: proto.str0m(),
            source,
            destination,
            contents,
        },
    ))
}

/// For the test clients ([`crate::viewer`], [`crate::participant`]): takes the server's SDP
/// answer to the offer that `pending` holds.
pub(crate) fn take_answer(
    rtc: &mut Rtc,
    pending: &mut Option<str0m::change::SdpPendingOffer>,
    sdp: &str,
) -> std::result::Result<(), String> {
    let answer = str0m::change::SdpAnswer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
    let pending = pending.take().ok_or("answer already taken")?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| e.to_string())
}

/// For the test clients: feeds a UDP datagram from the server; whether str0m took it (its
/// output is then to be polled).
pub(crate) fn take_datagram(
    rtc: &mut Rtc,
    now: Instant,
    source: SocketAddr,
    destination: SocketAddr,
    data: &[u8],
) -> bool {
    receive(now, Proto::Udp, source, destination, data)
        .is_some_and(|input| rtc.accepts(&input) && rtc.handle_input(input).is_ok())
}
