//! A receive-only WebRTC viewer on the same library as the server, for the load client
//! (`examples/whep_load.rs`) and the tests: makes a recvonly offer, takes the answer, and
//! checks what arrives: RTP sequence numbers in order without gaps, and H.264 payloads
//! that reassemble into NAL units (frames counted at the marker bit). Sans-IO like the
//! rest: the caller moves datagrams and time.

use crate::h264;
use crate::session::Transmit;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;
use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// What a viewer has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewerStats {
    pub connected: bool,
    pub video_packets: u64,
    pub audio_packets: u64,
    pub bytes: u64,
    /// Whole video frames that reassembled into NAL units.
    pub frames: u64,
    /// Video frames whose payloads did not reassemble.
    pub bad_frames: u64,
    /// Video packets never received (lost and not retransmitted in time).
    pub gaps: u64,
    /// Video packets that came after a later one (retransmissions that filled a hole).
    pub reordered: u64,
    pub disconnected: bool,
    /// The negotiated video codec (`H264`, `H265`), once video arrives.
    pub video_codec: Option<String>,
    /// The audio codec (`PCMU`, `PCMA`, `opus`), once audio arrives.
    pub audio_codec: Option<String>,
}

pub struct Viewer {
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    pub stats: ViewerStats,
    video_mid: Option<str0m::media::Mid>,
    /// Packets not yet assembled, by sequence number (a small jitter buffer, so that a
    /// retransmitted packet can still fill its hole).
    buf: BTreeMap<u64, (bool, Vec<u8>)>,
    /// The next sequence number to assemble from.
    next: Option<u64>,
    max_seq: u64,
    timeout: Instant,
}

/// Packets held waiting for a hole to be filled before it is given up.
const JITTER_PACKETS: usize = 512;

impl Viewer {
    /// A viewer whose socket is `local`; returns it and its SDP offer (video and, with
    /// `audio`, audio, both recvonly).
    pub fn offer(now: Instant, local: SocketAddr, audio: bool) -> (Viewer, String) {
        Self::offer_codecs(now, local, audio, true)
    }

    /// As [`Viewer::offer`]; `h265: false` offers H.264 alone (a browser without H.265).
    pub fn offer_codecs(
        now: Instant,
        local: SocketAddr,
        audio: bool,
        h265: bool,
    ) -> (Viewer, String) {
        let mut rtc = Self::rtc(now, local, h265);
        let mut api = rtc.sdp_api();
        let video_mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        if audio {
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = api.apply().expect("a fresh offer");
        let mut v = Self::new(now, rtc, Some(video_mid));
        v.pending = Some(pending);
        (v, offer.to_sdp_string())
    }

    /// A viewer answering a server's offer (servers that offer first, as Janus does, with
    /// full ICE): returns it and its SDP answer, with `local` as its host candidate.
    pub fn accept_offer(
        now: Instant,
        local: SocketAddr,
        sdp: &str,
    ) -> Result<(Viewer, String), String> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let mut rtc = Self::rtc(now, local, true);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| e.to_string())?;
        // The video mid: the a=mid of the offer's first m=video section.
        let video_mid = sdp
            .lines()
            .skip_while(|l| !l.starts_with("m=video"))
            .find_map(|l| l.trim().strip_prefix("a=mid:"))
            .map(str0m::media::Mid::from);
        Ok((Self::new(now, rtc, video_mid), answer.to_sdp_string()))
    }

    /// A receiving `Rtc` on `local`; G.711 offered besides Opus, as a browser does.
    fn rtc(now: Instant, local: SocketAddr, h265: bool) -> Rtc {
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .enable_pcmu(true, false)
            .enable_pcma(true, false)
            .enable_h265(h265)
            .build(now);
        if let Ok(c) = Candidate::host(local, "udp") {
            rtc.add_local_candidate(c);
        }
        rtc
    }

    fn new(now: Instant, rtc: Rtc, video_mid: Option<str0m::media::Mid>) -> Viewer {
        Viewer {
            rtc,
            pending: None,
            stats: ViewerStats::default(),
            video_mid,
            buf: BTreeMap::new(),
            next: None,
            max_seq: 0,
            timeout: now,
        }
    }

    /// Takes the server's SDP answer.
    pub fn answer(&mut self, sdp: &str) -> Result<(), String> {
        crate::session::take_answer(&mut self.rtc, &mut self.pending, sdp)
    }

    pub fn timeout(&self) -> Instant {
        self.timeout
    }

    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
        out: &mut Vec<Transmit>,
    ) {
        if crate::session::take_datagram(&mut self.rtc, now, source, destination, data) {
            self.drain(out);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        if self.rtc.handle_input(Input::Timeout(now)).is_ok() {
            self.drain(out);
        }
    }

    /// Ends the viewer's side (the load client stops).
    pub fn disconnect(&mut self) {
        self.rtc.disconnect();
    }

    fn drain(&mut self, out: &mut Vec<Transmit>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => out.push(Transmit {
                    proto: crate::Proto::Udp,
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Ok(Output::Event(e)) => self.event(e),
                Err(_) => {
                    self.stats.disconnected = true;
                    return;
                }
            }
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Connected => self.stats.connected = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.stats.disconnected = true
            }
            Event::RtpPacket(p) => {
                self.stats.bytes += p.payload.len() as u64;
                let video = self
                    .rtc
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .is_some_and(|s| Some(s.mid()) == self.video_mid);
                let pt = p.header.payload_type;
                let codec = |rtc: &Rtc| {
                    rtc.codec_config()
                        .params()
                        .iter()
                        .find(|c| c.pt() == pt)
                        .map(|c| c.spec().codec.to_string())
                };
                if !video {
                    self.stats.audio_packets += 1;
                    if self.stats.audio_codec.is_none() {
                        self.stats.audio_codec = codec(&self.rtc);
                    }
                    return;
                }
                self.stats.video_packets += 1;
                if self.stats.video_codec.is_none() {
                    self.stats.video_codec = codec(&self.rtc);
                }
                self.video_packet(*p.seq_no, p.header.marker, p.payload.to_vec());
            }
            _ => {}
        }
    }

    fn video_packet(&mut self, seq: u64, marker: bool, payload: Vec<u8>) {
        let next = *self.next.get_or_insert(seq);
        if seq < next || self.buf.contains_key(&seq) {
            return; // a duplicate, or too late
        }
        if seq < self.max_seq {
            self.stats.reordered += 1;
        }
        self.max_seq = self.max_seq.max(seq);
        self.buf.insert(seq, (marker, payload));
        self.assemble(false);
    }

    /// Takes whole frames off the front of the buffer; with `flush` (or when the buffer is
    /// full), gives up on the first hole.
    fn assemble(&mut self, flush: bool) {
        loop {
            let Some(n) = self.next else { return };
            // A whole frame: contiguous packets from `n` to a marker.
            let mut end = None;
            let mut k = n;
            while let Some((m, _)) = self.buf.get(&k) {
                if *m {
                    end = Some(k);
                    break;
                }
                k += 1;
            }
            if let Some(end) = end {
                let parts: Vec<Vec<u8>> = (n..=end)
                    .filter_map(|s| self.buf.remove(&s))
                    .map(|p| p.1)
                    .collect();
                let depacketize = if self.stats.video_codec.as_deref() == Some("H265") {
                    crate::h265::depacketize
                } else {
                    h264::depacketize
                };
                match depacketize(parts.iter().map(Vec::as_slice)) {
                    Some(nals) if !nals.is_empty() => self.stats.frames += 1,
                    _ => self.stats.bad_frames += 1,
                }
                self.next = Some(end + 1);
                continue;
            }
            if !(flush || self.buf.len() > JITTER_PACKETS) {
                return;
            }
            // Give up the hole: count what is missing, drop the broken frame, resume at the
            // first packet after its marker.
            if self.buf.is_empty() {
                return;
            }
            let after = self.buf.range(n..).find(|(_, (m, _))| *m).map(|(s, _)| *s);
            let Some(after) = after else {
                if flush {
                    self.buf.clear();
                }
                return;
            };
            let dropped: Vec<u64> = self.buf.range(..=after).map(|(s, _)| *s).collect();
            self.stats.gaps += (after + 1 - n) - dropped.len() as u64;
            for s in dropped {
                self.buf.remove(&s);
            }
            self.stats.bad_frames += 1;
            self.next = Some(after + 1);
        }
    }

    /// Counts what is still missing (call at the end).
    pub fn finish(&mut self) {
        self.assemble(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of two FU-A packets, then a single-NAL frame, numbered from `seq`.
    fn packets(seq: u64) -> Vec<(u64, bool, Vec<u8>)> {
        vec![
            (seq, false, vec![0x7c, 0x85, 1, 2]),
            (seq + 1, true, vec![0x7c, 0x45, 3, 4]),
            (seq + 2, true, vec![0x41, 9, 9]),
        ]
    }

    fn viewer() -> Viewer {
        Viewer::offer(Instant::now(), "127.0.0.1:9".parse().unwrap(), false).0
    }

    #[test]
    fn in_order_and_reordered_packets_make_whole_frames() {
        let mut v = viewer();
        for (s, m, p) in packets(100) {
            v.video_packet(s, m, p);
        }
        assert_eq!((v.stats.frames, v.stats.gaps, v.stats.reordered), (2, 0, 0));
        // A retransmission that arrives after the next packet still completes its frame.
        let p = packets(103);
        v.video_packet(p[1].0, p[1].1, p[1].2.clone());
        v.video_packet(p[2].0, p[2].1, p[2].2.clone());
        assert_eq!(v.stats.frames, 2, "waits for the hole");
        v.video_packet(p[0].0, p[0].1, p[0].2.clone());
        v.finish();
        assert_eq!((v.stats.frames, v.stats.gaps, v.stats.reordered), (4, 0, 1));
        assert_eq!(v.stats.bad_frames, 0);
    }

    #[test]
    fn a_packet_never_received_is_a_gap_and_a_broken_frame() {
        let mut v = viewer();
        let p = packets(7);
        v.video_packet(p[0].0, p[0].1, p[0].2.clone());
        v.video_packet(p[2].0, p[2].1, p[2].2.clone());
        v.finish();
        assert_eq!(v.stats.gaps, 1);
        assert_eq!(v.stats.bad_frames, 1);
        assert_eq!(v.stats.frames, 0, "the frame after the hole went with it");
    }
}
