//! RTP packetizing and pacing, sans I/O.
//!
//! - H.264 per RFC 6184, packetization mode 1: a NAL unit of up to [`MAX_PAYLOAD`] bytes goes
//!   in one packet, a larger one in FU-A fragments; the marker bit ends each access unit.
//!   SPS and PPS precede every IDR frame in-band (the clip loader puts them there).
//! - AAC per RFC 3640 `mpeg4-generic` AAC-hbr: one access unit per packet behind a 16-bit
//!   AU header (13-bit size, 3-bit index).
//! - RTCP: a compound sender report (SR + SDES CNAME) per stream every [`SR_INTERVAL`], its
//!   NTP time the wall clock and its RTP time the matching media time.
//!
//! [`Streamer`] is one client's playback: it is driven by `now` (`poll(now)`), tells when it
//! next has something to send (`next_deadline`), and emits [`Packet`]s whose bodies are
//! [`Bytes`] slices of the shared clip. Loop `k` of the clip is shifted by `k` clip durations,
//! so RTP sequence numbers and timestamps continue across loops with no backward jump.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::clip::{Clip, VIDEO_CLOCK, ticks_to};
use crate::sdp::{AUDIO_PT, VIDEO_PT};

/// Largest RTP payload: NAL units above this are fragmented (fits a 1500-byte MTU).
pub const MAX_PAYLOAD: usize = 1400;

/// Interval between RTCP sender reports of a stream.
pub const SR_INTERVAL: Duration = Duration::from_secs(5);

/// Most frames emitted by one [`Streamer::poll`], so a stalled task catches up in bounded
/// steps.
const MAX_FRAMES_PER_POLL: usize = 64;

/// Seconds from 1900 (NTP era 0) to 1970 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Stream index of the video stream (SDP order).
pub const VIDEO: usize = 0;
/// Stream index of the audio stream.
pub const AUDIO: usize = 1;

/// The random starting values of one RTP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    /// Synchronization source identifier.
    pub ssrc: u32,
    /// Sequence number of the first packet.
    pub initial_seq: u16,
    /// RTP timestamp of media time 0.
    pub initial_ts: u32,
}

impl StreamParams {
    /// Random values, as RFC 3550 asks.
    pub fn random(rng: &mut impl rand::RngCore) -> Self {
        StreamParams {
            ssrc: rng.next_u32(),
            initial_seq: rng.next_u32() as u16,
            initial_ts: rng.next_u32(),
        }
    }
}

/// One RTP or RTCP packet ready to send: a small header part and a body shared with the clip.
#[derive(Clone)]
pub struct Packet {
    /// Stream index ([`VIDEO`] or [`AUDIO`]).
    pub stream: usize,
    /// True for RTCP (goes on the odd interleaved channel / RTCP port).
    pub rtcp: bool,
    head: [u8; 64],
    head_len: u8,
    /// The rest of the packet after [`Packet::head`].
    pub body: Bytes,
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packet")
            .field("stream", &self.stream)
            .field("rtcp", &self.rtcp)
            .field("len", &self.len())
            .finish()
    }
}

impl Packet {
    fn new(stream: usize, rtcp: bool, head: &[u8], body: Bytes) -> Packet {
        let mut h = [0u8; 64];
        let n = head.len().min(64);
        h[..n].copy_from_slice(&head[..n]);
        Packet {
            stream,
            rtcp,
            head: h,
            head_len: n as u8,
            body,
        }
    }

    /// Header bytes (RTP header plus payload header, or a whole RTCP packet).
    pub fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.head_len) + self.body.len()
    }

    /// Never true: every packet has at least a header.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the whole packet to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.head());
        out.extend_from_slice(&self.body);
    }

    /// The packet as one contiguous buffer (tests, debugging).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.write_to(&mut v);
        v
    }
}

/// Writes a 12-byte RTP header.
fn rtp_header(marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = 0x80; // version 2, no padding, no extension, no CSRC
    h[1] = (u8::from(marker) << 7) | (pt & 0x7f);
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&ts.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

/// Splits one NAL unit into RTP payloads: `(payload header, body)` pairs. A NAL of at most
/// `max` bytes is one payload with no header; a larger one is FU-A fragments whose two-byte
/// header (FU indicator, FU header) precedes a slice of the NAL after its first byte.
pub fn h264_payloads(nal: &Bytes, max: usize) -> Vec<(Option<[u8; 2]>, Bytes)> {
    if nal.len() <= max {
        return vec![(None, nal.clone())];
    }
    let Some(&hdr) = nal.first() else {
        return Vec::new();
    };
    let chunk = max.saturating_sub(2).max(1);
    let indicator = (hdr & 0xe0) | 28;
    let nal_type = hdr & 0x1f;
    let mut out = Vec::with_capacity((nal.len() - 1).div_ceil(chunk));
    let mut pos = 1;
    while pos < nal.len() {
        let end = (pos + chunk).min(nal.len());
        let start_bit = if pos == 1 { 0x80 } else { 0 };
        let end_bit = if end == nal.len() { 0x40 } else { 0 };
        out.push((
            Some([indicator, start_bit | end_bit | nal_type]),
            nal.slice(pos..end),
        ));
        pos = end;
    }
    out
}

/// The RFC 3640 AU header section for one AAC frame of `size` (< 8192) bytes.
pub fn aac_au_header(size: usize) -> [u8; 4] {
    let size = (size as u16) & 0x1fff;
    // AU-headers-length = 16 bits; AU-size (13 bits) then AU-Index = 0 (3 bits).
    [0x00, 0x10, (size >> 5) as u8, ((size & 0x1f) << 3) as u8]
}

/// A 64-bit NTP timestamp of a wall-clock time.
pub fn ntp_time(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// A duration in NTP 32.32 fixed point.
fn ntp_duration(d: Duration) -> u64 {
    (d.as_secs() << 32) + ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

/// Builds a compound RTCP packet: sender report (no report blocks) + SDES CNAME.
fn sender_report(ssrc: u32, ntp: u64, rtp_ts: u32, packets: u32, octets: u32) -> Vec<u8> {
    const CNAME: &[u8] = b"xaso-simcam";
    let mut p = Vec::with_capacity(56);
    p.extend_from_slice(&[0x80, 200, 0, 6]); // V=2, RC=0, PT=SR, length 6 words after this
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&ntp.to_be_bytes());
    p.extend_from_slice(&rtp_ts.to_be_bytes());
    p.extend_from_slice(&packets.to_be_bytes());
    p.extend_from_slice(&octets.to_be_bytes());
    // SDES: one chunk (SSRC, CNAME item, end) padded to a 32-bit boundary.
    let chunk_len = 4 + 2 + CNAME.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    let words = (4 + padded) / 4 - 1;
    p.extend_from_slice(&[0x81, 202]);
    p.extend_from_slice(&(words as u16).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[1, CNAME.len() as u8]);
    p.extend_from_slice(CNAME);
    p.resize(p.len() + (padded - chunk_len) + 1, 0);
    p
}

/// Per-stream sending state.
#[derive(Debug)]
struct StreamState {
    params: StreamParams,
    /// Sequence number of the next packet.
    seq: u16,
    packets: u32,
    octets: u32,
    /// Loop number and frame index of the next frame to send.
    loop_k: u64,
    index: usize,
}

/// One client's playback of a [`Clip`], paced by the caller's `now`.
pub struct Streamer {
    clip: Clip,
    streams: [Option<StreamState>; 2],
    /// The instant of media time 0 (moved forward by pauses).
    epoch: Instant,
    /// The wall-clock time of media time 0, as NTP.
    ntp_epoch: u64,
    /// Media time of the next sender reports.
    next_sr: Duration,
    paused_at: Option<Instant>,
}

impl std::fmt::Debug for Streamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamer")
            .field("streams", &self.streams)
            .field("paused", &self.paused_at.is_some())
            .finish()
    }
}

impl Streamer {
    /// Starts playback at `now` (wall clock `wall`) of the streams that have `params`
    /// (index [`VIDEO`], [`AUDIO`]); an audio entry is ignored if the clip has no audio.
    pub fn new(
        clip: Clip,
        params: [Option<StreamParams>; 2],
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        let has_audio = clip.inner.audio.is_some();
        let state = |p: Option<StreamParams>| {
            p.map(|params| StreamState {
                params,
                seq: params.initial_seq,
                packets: 0,
                octets: 0,
                loop_k: 0,
                index: 0,
            })
        };
        Streamer {
            streams: [state(params[0]), state(params[1].filter(|_| has_audio))],
            clip,
            epoch: now,
            ntp_epoch: ntp_time(wall),
            next_sr: Duration::ZERO,
            paused_at: None,
        }
    }

    /// The `RTP-Info` values of stream `i`: sequence number and RTP timestamp of its next packet.
    pub fn rtp_info(&self, i: usize) -> Option<(u16, u32)> {
        let s = self.streams.get(i)?.as_ref()?;
        let (_, ts) = self.frame_time(i, s.loop_k, s.index)?;
        Some((s.seq, ts))
    }

    /// Streams being sent.
    pub fn active_streams(&self) -> impl Iterator<Item = usize> + '_ {
        (0..2).filter(|&i| self.streams[i].is_some())
    }

    /// Stops sending until [`Streamer::resume`].
    pub fn pause(&mut self, now: Instant) {
        if self.paused_at.is_none() {
            self.paused_at = Some(now);
        }
    }

    /// Continues where [`Streamer::pause`] stopped; media time does not advance while paused.
    pub fn resume(&mut self, now: Instant) {
        if let Some(at) = self.paused_at.take() {
            let paused = now.saturating_duration_since(at);
            self.epoch += paused;
            self.ntp_epoch = self.ntp_epoch.wrapping_add(ntp_duration(paused));
        }
    }

    /// True between [`Streamer::pause`] and [`Streamer::resume`].
    pub fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// Media time and RTP timestamp of frame `index` of loop `loop_k` of stream `i`.
    fn frame_time(&self, i: usize, loop_k: u64, index: usize) -> Option<(Duration, u32)> {
        let s = self.streams.get(i)?.as_ref()?;
        let v = &self.clip.inner.video;
        let loop_base = loop_k.checked_mul(v.loop_ticks)?;
        if i == VIDEO {
            let f = v.frames.get(index)?;
            let t = ticks_to(loop_base + f.dts, v.timescale, 1_000_000_000);
            let ts = ticks_to(loop_base + f.pts, v.timescale, VIDEO_CLOCK);
            Some((
                Duration::from_nanos(t),
                s.params.initial_ts.wrapping_add(ts as u32),
            ))
        } else {
            let a = self.clip.inner.audio.as_ref()?;
            let f = a.frames.get(index)?;
            let t = ticks_to(loop_base, v.timescale, 1_000_000_000)
                + ticks_to(f.dts, a.timescale, 1_000_000_000);
            let ts = ticks_to(loop_base, v.timescale, a.sample_rate)
                + ticks_to(f.dts, a.timescale, a.sample_rate);
            Some((
                Duration::from_nanos(t),
                s.params.initial_ts.wrapping_add(ts as u32),
            ))
        }
    }

    /// Media time of the next frame of stream `i`, normalizing the cursor past loop ends.
    fn next_frame_time(&self, i: usize) -> Option<Duration> {
        let s = self.streams[i].as_ref()?;
        self.frame_time(i, s.loop_k, s.index).map(|(t, _)| t)
    }

    /// Moves stream `i`'s cursor to the next frame, wrapping to the next loop.
    fn advance(&mut self, i: usize) {
        let len = match i {
            VIDEO => self.clip.inner.video.frames.len(),
            _ => self.clip.inner.audio.as_ref().map_or(0, |a| a.frames.len()),
        };
        if let Some(s) = self.streams[i].as_mut() {
            s.index += 1;
            if s.index >= len {
                s.index = 0;
                s.loop_k += 1;
            }
        }
    }

    /// The media time of the next thing to send (a frame or sender reports).
    fn next_event(&self) -> Option<Duration> {
        let frames = (0..2).filter_map(|i| self.next_frame_time(i)).min()?;
        Some(frames.min(self.next_sr))
    }

    /// When [`Streamer::poll`] next has something to send; `None` while paused or idle.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.paused_at.is_some() {
            return None;
        }
        self.next_event().map(|t| self.epoch + t)
    }

    /// Appends to `out` every packet due at `now`, in time order.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Packet>) {
        if self.paused_at.is_some() {
            return;
        }
        let elapsed = now.saturating_duration_since(self.epoch);
        for _ in 0..MAX_FRAMES_PER_POLL {
            let Some(next) = self.next_event() else {
                return;
            };
            if next > elapsed {
                return;
            }
            if self.next_sr <= next {
                self.emit_sender_reports(out);
                continue;
            }
            // The stream whose frame is due first; video first on a tie.
            let i = if self.next_frame_time(VIDEO) == Some(next) {
                VIDEO
            } else {
                AUDIO
            };
            self.emit_frame(i, out);
            self.advance(i);
        }
    }

    fn emit_sender_reports(&mut self, out: &mut Vec<Packet>) {
        let t = self.next_sr;
        let ntp = self.ntp_epoch.wrapping_add(ntp_duration(t));
        for i in 0..2 {
            let Some(s) = self.streams[i].as_ref() else {
                continue;
            };
            let clock = if i == VIDEO {
                VIDEO_CLOCK
            } else {
                self.clip.inner.audio.as_ref().map_or(1, |a| a.sample_rate)
            };
            let rtp =
                s.params
                    .initial_ts
                    .wrapping_add(ticks_to(t.as_nanos() as u64, 1_000_000_000, clock) as u32);
            let sr = sender_report(s.params.ssrc, ntp, rtp, s.packets, s.octets);
            out.push(Packet::new(i, true, &sr, Bytes::new()));
        }
        self.next_sr += SR_INTERVAL;
    }

    fn emit_frame(&mut self, i: usize, out: &mut Vec<Packet>) {
        let Some(s) = self.streams[i].as_ref() else {
            return;
        };
        let Some((_, ts)) = self.frame_time(i, s.loop_k, s.index) else {
            return;
        };
        let index = s.index;
        let clip = self.clip.clone();
        let Some(s) = self.streams[i].as_mut() else {
            return;
        };
        let ssrc = s.params.ssrc;
        let mut push = |marker: bool, pt: u8, extra: &[u8], body: Bytes| {
            let mut head = [0u8; 16];
            head[..12].copy_from_slice(&rtp_header(marker, pt, s.seq, ts, ssrc));
            head[12..12 + extra.len()].copy_from_slice(extra);
            let p = Packet::new(i, false, &head[..12 + extra.len()], body);
            s.seq = s.seq.wrapping_add(1);
            s.packets = s.packets.wrapping_add(1);
            s.octets = s.octets.wrapping_add((p.len() - 12) as u32);
            out.push(p);
        };
        if i == VIDEO {
            let Some(frame) = clip.inner.video.frames.get(index) else {
                return;
            };
            let n = frame.nals.len();
            for (k, nal) in frame.nals.iter().enumerate() {
                let payloads = h264_payloads(nal, MAX_PAYLOAD);
                let m = payloads.len();
                for (j, (fu, body)) in payloads.into_iter().enumerate() {
                    let marker = k + 1 == n && j + 1 == m;
                    match fu {
                        Some(fu) => push(marker, VIDEO_PT, &fu, body),
                        None => push(marker, VIDEO_PT, &[], body),
                    }
                }
            }
        } else {
            let Some(frame) = clip.inner.audio.as_ref().and_then(|a| a.frames.get(index)) else {
                return;
            };
            push(
                true,
                AUDIO_PT,
                &aac_au_header(frame.data.len()),
                frame.data.clone(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(len: usize, hdr: u8) -> Bytes {
        let mut v: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        v[0] = hdr;
        Bytes::from(v)
    }

    /// Reassembles FU-A fragments (the receiver's side of RFC 6184 section 5.8).
    fn reassemble(payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        for p in payloads {
            match p[0] & 0x1f {
                28 => {
                    let (ind, fu) = (p[0], p[1]);
                    if fu & 0x80 != 0 {
                        assert!(cur.is_none(), "start inside a fragmented NAL");
                        cur = Some(vec![(ind & 0xe0) | (fu & 0x1f)]);
                    }
                    let c = cur.as_mut().expect("continuation without start");
                    c.extend_from_slice(&p[2..]);
                    if fu & 0x40 != 0 {
                        nals.push(cur.take().unwrap());
                    }
                }
                1..=23 => {
                    assert!(cur.is_none());
                    nals.push(p.clone());
                }
                t => panic!("unexpected type {t}"),
            }
        }
        assert!(cur.is_none(), "unterminated FU-A");
        nals
    }

    #[test]
    fn fu_a_round_trip() {
        for len in [1, 2, 100, 1400, 1401, 1402, 2797, 2798, 2799, 50_000] {
            let n = nal(len, 0x65);
            let payloads: Vec<Vec<u8>> = h264_payloads(&n, MAX_PAYLOAD)
                .into_iter()
                .map(|(h, b)| {
                    let mut v = h.map(|h| h.to_vec()).unwrap_or_default();
                    v.extend_from_slice(&b);
                    assert!(v.len() <= MAX_PAYLOAD, "payload of {}", v.len());
                    v
                })
                .collect();
            if len <= MAX_PAYLOAD {
                assert_eq!(payloads.len(), 1);
            } else {
                assert_eq!(payloads.len(), (len - 1).div_ceil(MAX_PAYLOAD - 2));
                assert_eq!(payloads[0][0], 0x60 | 28, "NRI kept, type 28");
                assert_eq!(payloads[0][1], 0x80 | 5, "start bit, type 5");
                assert_eq!(payloads.last().unwrap()[1], 0x40 | 5, "end bit");
            }
            assert_eq!(reassemble(&payloads), vec![n.to_vec()], "len {len}");
        }
    }

    #[test]
    fn aac_header() {
        assert_eq!(aac_au_header(300), [0, 16, 0x09, 0x60]);
        let h = aac_au_header(8191);
        assert_eq!(u16::from_be_bytes([h[2], h[3]]) >> 3, 8191);
    }

    #[test]
    fn sender_report_layout() {
        let sr = sender_report(0x11223344, 0xaabb_ccdd_0011_2233, 77, 5, 6);
        assert_eq!(sr.len() % 4, 0);
        assert_eq!(&sr[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&sr[8..16], &0xaabb_ccdd_0011_2233u64.to_be_bytes());
        let sdes = &sr[28..];
        assert_eq!(sdes[1], 202);
        assert_eq!(
            usize::from(u16::from_be_bytes([sdes[2], sdes[3]])),
            sdes.len() / 4 - 1
        );
        assert_eq!(&sdes[10..21], b"xaso-simcam");
    }

    #[test]
    fn ntp_of_unix_epoch() {
        assert_eq!(ntp_time(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
        let half = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(ntp_time(half), ((NTP_UNIX_OFFSET + 1) << 32) | (1 << 31));
    }

    struct Rtp {
        stream: usize,
        marker: bool,
        pt: u8,
        seq: u16,
        ts: u32,
        ssrc: u32,
        at: Duration,
        payload: Vec<u8>,
    }

    /// Plays `secs` seconds of the builtin clip, polling every 10 ms of simulated time.
    fn play(secs: u64, params: [Option<StreamParams>; 2]) -> (Vec<Rtp>, Vec<(Duration, Packet)>) {
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut s = Streamer::new(Clip::builtin(), params, t0, wall);
        let mut rtp = Vec::new();
        let mut rtcp = Vec::new();
        let mut out = Vec::new();
        let mut now = Duration::ZERO;
        while now <= Duration::from_secs(secs) {
            s.poll(t0 + now, &mut out);
            for p in out.drain(..) {
                if p.rtcp {
                    rtcp.push((now, p));
                    continue;
                }
                let b = p.to_vec();
                rtp.push(Rtp {
                    stream: p.stream,
                    marker: b[1] & 0x80 != 0,
                    pt: b[1] & 0x7f,
                    seq: u16::from_be_bytes([b[2], b[3]]),
                    ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                    ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
                    at: now,
                    payload: b[12..].to_vec(),
                });
            }
            // Deadlines are never in the past after a poll.
            if let Some(d) = s.next_deadline() {
                assert!(d > t0 + now);
            }
            now += Duration::from_millis(10);
        }
        (rtp, rtcp)
    }

    const P_VIDEO: StreamParams = StreamParams {
        ssrc: 0xdead_beef,
        initial_seq: 65_000,            // wraps during the test
        initial_ts: u32::MAX - 200_000, // wraps too
    };
    const P_AUDIO: StreamParams = StreamParams {
        ssrc: 0x0bad_cafe,
        initial_seq: 7,
        initial_ts: 1234,
    };

    #[test]
    fn continuity_across_loops() {
        let (rtp, rtcp) = play(25, [Some(P_VIDEO), Some(P_AUDIO)]);
        for (stream, p, clock, pt) in [
            (VIDEO, P_VIDEO, 90_000u64, VIDEO_PT),
            (AUDIO, P_AUDIO, 48_000, AUDIO_PT),
        ] {
            let pkts: Vec<&Rtp> = rtp.iter().filter(|r| r.stream == stream).collect();
            assert_eq!(pkts[0].seq, p.initial_seq);
            assert_eq!(pkts[0].ts, p.initial_ts);
            let mut last_ts = 0u64; // unwrapped, relative to the initial ts
            for w in pkts.windows(2) {
                assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "no gap in seq");
                assert_eq!(w[1].ssrc, p.ssrc);
                assert_eq!(w[1].pt, pt);
                let d = w[1].ts.wrapping_sub(w[0].ts);
                assert!(d < clock as u32, "ts never jumps back or far ahead: {d}");
                last_ts += u64::from(d);
                // Paced: a packet is sent at its media time (within the 10 ms poll step).
                let media = Duration::from_nanos(last_ts * 1_000_000_000 / clock);
                assert!(w[1].at >= media && w[1].at < media + Duration::from_millis(10));
            }
            // Two loops and a half were played: timestamps advanced by that much.
            assert!(last_ts > 24 * clock && last_ts <= 25 * clock, "{last_ts}");
        }
        // Video frame steps are exactly 3600 ticks (25 fps), across loop boundaries too.
        let video: Vec<&Rtp> = rtp.iter().filter(|r| r.stream == VIDEO).collect();
        let frame_ts: Vec<u32> = video.iter().filter(|r| r.marker).map(|r| r.ts).collect();
        assert_eq!(
            frame_ts.len(),
            626,
            "25 s of 25 fps and the frame at 25.000"
        );
        for w in frame_ts.windows(2) {
            assert_eq!(w[1].wrapping_sub(w[0]), 3600);
        }
        // Audio: 1024 samples per frame, except at the loop point where the last partial
        // frame ends (480000 - 468*1024 = 768).
        let audio: Vec<&Rtp> = rtp.iter().filter(|r| r.stream == AUDIO).collect();
        for (k, w) in audio.windows(2).enumerate() {
            let d = w[1].ts.wrapping_sub(w[0].ts);
            assert!(d == 1024 || (d == 768 && (k + 1) % 469 == 0), "{k}: {d}");
            assert!(w[0].marker);
            let size = (usize::from(w[0].payload[2]) << 5) | usize::from(w[0].payload[3] >> 3);
            assert_eq!(size + 4, w[0].payload.len());
        }
        // Every IDR access unit starts with SPS, PPS.
        let starts = (0..video.len()).filter(|&i| i == 0 || video[i - 1].marker);
        let mut idr = 0;
        for i in starts {
            if video[i].payload[0] & 0x1f == 7 {
                assert_eq!(video[i + 1].payload[0] & 0x1f, 8);
                idr += 1;
            }
        }
        assert_eq!(idr, 26);
        // Sender reports: every 5 s for both streams, RTP time consistent with frame times.
        assert_eq!(rtcp.len(), 2 * 6);
        for (at, p) in &rtcp {
            let b = p.to_vec();
            let sr_rtp = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
            let base = if p.stream == VIDEO { P_VIDEO } else { P_AUDIO };
            let clock = if p.stream == VIDEO { 90_000 } else { 48_000 };
            let expected = base.initial_ts.wrapping_add((at.as_secs() * clock) as u32);
            assert_eq!(sr_rtp, expected);
            let ntp = u64::from_be_bytes(b[8..16].try_into().unwrap());
            let wall = (NTP_UNIX_OFFSET + 1_700_000_000 + at.as_secs()) << 32;
            assert_eq!(ntp, wall);
        }
    }

    #[test]
    fn video_only_and_rtp_info() {
        let s = Streamer::new(
            Clip::builtin(),
            [Some(P_VIDEO), None],
            Instant::now(),
            SystemTime::now(),
        );
        assert_eq!(
            s.rtp_info(VIDEO),
            Some((P_VIDEO.initial_seq, P_VIDEO.initial_ts))
        );
        assert_eq!(s.rtp_info(AUDIO), None);
        let (rtp, _) = play(2, [Some(P_VIDEO), None]);
        assert!(rtp.iter().all(|r| r.stream == VIDEO));
        assert_eq!(rtp.iter().filter(|r| r.marker).count(), 51);
    }

    #[test]
    fn pause_and_resume() {
        let t0 = Instant::now();
        let mut s = Streamer::new(
            Clip::builtin(),
            [Some(P_VIDEO), None],
            t0,
            SystemTime::now(),
        );
        let mut out = Vec::new();
        s.poll(t0 + Duration::from_millis(1000), &mut out);
        let frames = |o: &Vec<Packet>| {
            o.iter()
                .filter(|p| !p.rtcp && p.head()[1] & 0x80 != 0)
                .count()
        };
        assert_eq!(frames(&out), 26);
        s.pause(t0 + Duration::from_millis(1010));
        assert_eq!(s.next_deadline(), None);
        s.poll(t0 + Duration::from_secs(5), &mut out);
        assert_eq!(frames(&out), 26);
        s.resume(t0 + Duration::from_secs(5));
        s.poll(t0 + Duration::from_millis(5030), &mut out);
        assert_eq!(frames(&out), 27, "continues with the next frame");
    }

    #[test]
    fn stalled_poll_catches_up_in_steps() {
        let t0 = Instant::now();
        let mut s = Streamer::new(
            Clip::builtin(),
            [Some(P_VIDEO), Some(P_AUDIO)],
            t0,
            SystemTime::now(),
        );
        let mut out = Vec::new();
        s.poll(t0 + Duration::from_secs(60), &mut out);
        let first = out.len();
        assert!(first > 0);
        let mut polls = 1;
        while s
            .next_deadline()
            .is_some_and(|d| d <= t0 + Duration::from_secs(60))
        {
            s.poll(t0 + Duration::from_secs(60), &mut out);
            polls += 1;
        }
        assert!(polls > 10, "bounded work per poll");
    }
}
