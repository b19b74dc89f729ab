//! A meeting participant on the same library as the server, for the tests and the load
//! client: publishes a microphone (Opus-sized packets with an audio level) and a camera
//! (VP8-shaped frames, a keyframe every `gop` frames), receives through video and audio
//! slots as the page does, and checks what arrives on each slot: from whom, whether it
//! began at a keyframe, and whether any packet is missing. Every payload ends with its
//! publisher's tag byte, so the receiver can tell publishers apart. Sans-IO: the caller
//! moves datagrams and time.

use crate::session::Transmit;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Instant;
use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::format::Codec as RtcCodec;
pub use str0m::media::Mid;
use str0m::media::{Direction, MediaKind, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::rtp::{ExtensionValues, RedEncoder, RedundantBlock, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// What arrived on one slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotStats {
    pub packets: u64,
    /// Video frames completed (marker bits).
    pub frames: u64,
    /// Of those, the ones after [`Participant::count_from`] (a load run's steady state).
    pub frames_counted: u64,
    /// Publisher tags seen, in order of first appearance.
    pub publishers: Vec<u8>,
    /// Video packets per simulcast layer (0 none, 1 `l`, 2 `m`, 3 `h`), and the latest.
    pub layers: BTreeMap<u8, u64>,
    pub last_layer: Option<u8>,
    /// Sequence numbers received (to count holes at the end), with the publisher's tag
    /// and whether the packet starts a keyframe.
    seqs: BTreeMap<u64, (u8, u8, bool)>,
    /// VP8 picture ID and TL0PICIDX of each frame's first packet, by sequence number.
    pictures: BTreeMap<u64, (u16, u8)>,
    /// Added latency samples, microseconds: arrival - send (the payload carries its send
    /// time), from [`Participant::count_from`] on (the steady state, not the joins).
    pub latency_us: Vec<u64>,
    /// The largest added latency of each second since the epoch ([`Participant::set_epoch`]),
    /// microseconds, from the first packet on (to see when a delay happened).
    pub worst_by_second: BTreeMap<u64, u64>,
    /// From [`Participant::count_from`] on, per publisher tag and simulcast layer (0 for
    /// audio or without simulcast): payload bytes, and added latency samples (a load run's
    /// per-path figures: which node each publisher is at is the caller's).
    pub bytes_by: BTreeMap<(u8, u8), u64>,
    pub latency_by: BTreeMap<u8, Vec<u64>>,
    /// When the last video frame completed, and the longest wait between two (a stall:
    /// a link that dropped and came back).
    pub last_frame: Option<Instant>,
    pub longest_gap: std::time::Duration,
    /// Audio packets that came as RED (RFC 2198).
    pub red: u64,
    /// Audio packets whose payload (a RED packet's primary block) does not begin as the
    /// test microphone's do (0x78): a RED packet passed on as plain Opus counts here.
    pub audio_unlike_mic: u64,
}

impl SlotStats {
    /// Frames, in sequence order, whose VP8 picture ID or TL0PICIDX does not follow the
    /// previous frame's (forward by 1, or a little more when whole frames were lost). A
    /// receiver drops frames numbered behind the last it decoded, so a slot that switches
    /// layer or publisher must keep the numbering going.
    pub fn numbering_breaks(&self) -> u64 {
        let mut breaks = 0;
        let mut last: Option<(u16, u8)> = None;
        for (pic, tl0) in self.pictures.values() {
            if let Some((p, t)) = last {
                let dp = pic.wrapping_sub(p) & 0x7fff;
                let dt = tl0.wrapping_sub(t);
                if !(1..=16).contains(&dp) || !(1..=16).contains(&dt) {
                    breaks += 1;
                }
            }
            last = Some((*pic, *tl0));
        }
        breaks
    }

    /// Frames whose picture ID and TL0PICIDX were read (what [`SlotStats::numbering_breaks`]
    /// looks at).
    pub fn numbered_frames(&self) -> usize {
        self.pictures.len()
    }

    /// Sequence numbers never received between the first and the last.
    pub fn holes(&self) -> u64 {
        match (self.seqs.first_key_value(), self.seqs.last_key_value()) {
            (Some(a), Some(b)) => b.0 - a.0 + 1 - self.seqs.len() as u64,
            _ => 0,
        }
    }

    /// In sequence order, each run of one publisher's packets: whether it began with a
    /// keyframe's first packet (video slots; a slot switches publishers on a keyframe).
    pub fn runs_started_on_keyframe(&self) -> Vec<bool> {
        let mut out = Vec::new();
        let mut last = None;
        for (tag, _, key) in self.seqs.values() {
            if last != Some(*tag) {
                last = Some(*tag);
                out.push(*key);
            }
        }
        out
    }

    /// In sequence order, each run of one (publisher, layer): the layer and whether the run
    /// began with a keyframe's first packet (a layer switch lands on a keyframe).
    pub fn layer_runs(&self) -> Vec<(u8, bool)> {
        let mut out = Vec::new();
        let mut last = None;
        for (tag, layer, key) in self.seqs.values() {
            if last != Some((*tag, *layer)) {
                last = Some((*tag, *layer));
                out.push((*layer, *key));
            }
        }
        out
    }
}

pub struct Participant {
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    pub tag: u8,
    pub mic: Mid,
    pub camera: Mid,
    pub video_slots: Vec<Mid>,
    pub audio_slots: Vec<Mid>,
    pub slots: HashMap<Mid, SlotStats>,
    pub connected: bool,
    pub disconnected: bool,
    pub keyframe_requests: u64,
    timeout: Instant,
    frame: u64,
    audio_frame: u64,
    vseq: u64,
    aseq: u64,
    /// The audio level this participant "speaks" at (RFC 6464: 0 loudest, 127 silence).
    pub level: u8,
    /// Keyframe wanted by the server (sent with the next frame).
    force_key: bool,
    epoch: Instant,
    /// Simulcast: the camera's layers (rid, share of the frame size, next sequence
    /// number), lowest first; empty without simulcast.
    layers: Vec<(Rid, usize, u64)>,
    /// Layers the server asked to pause (a `layers` message; the load client applies it).
    pub paused: Vec<Rid>,
    /// Layers the encoder leaves out whatever the server asked (as a browser does when
    /// its own uplink estimate is too low for them).
    pub withheld: Vec<Rid>,
    /// Frames are also counted in [`SlotStats::frames_counted`] from this time on.
    pub count_from: Option<Instant>,
    /// The latest microphone payload (the next RED packet's redundant block).
    last_audio: Option<Vec<u8>>,
    /// The camera sends VP9 instead of VP8.
    pub vp9: bool,
}

/// A layer's VP8 picture ID and TL0PICIDX for a frame: each layer of each participant
/// counts from its own start, as browsers' encoders do, so that a slot switching layer or
/// publisher sees the numbers jump (the server renumbers them).
fn numbering(tag: u8, rid: Option<Rid>, frame: u64) -> (u16, u8) {
    let layer = match rid.as_deref() {
        Some("l") => 1u64,
        Some("m") => 2,
        Some("h") => 3,
        _ => 0,
    };
    let start = (u64::from(tag) * 7919 + layer * 11_003) % 32_768;
    let pic = ((start + frame) % 32_768) as u16;
    let tl0 = ((u64::from(tag) * 31 + layer * 89 + frame) % 256) as u8;
    (pic, tl0)
}

fn tx(t: str0m::net::Transmit) -> Transmit {
    Transmit {
        proto: crate::Proto::Udp,
        source: t.source,
        destination: t.destination,
        contents: t.contents.into(),
    }
}

/// What a test participant offers ([`Participant::offer_as`]).
#[derive(Clone, Copy, Debug)]
pub struct Offer {
    /// Video and audio slots: what it receives.
    pub video: usize,
    pub audio: usize,
    /// The camera goes out in three layers (`l`, `m`, `h`: a quarter, half and all of each
    /// frame's size), as the page sends.
    pub simulcast: bool,
    /// `false`: a receiver only (a WHEP client: a recorder, a projector in the hall).
    pub publish: bool,
    /// RED (RFC 2198) offered for Opus, as Chrome does: once the answer has it too, each
    /// microphone packet carries a copy of the previous one.
    pub red: bool,
}

impl Offer {
    /// A publisher with these slots, one layer, no RED.
    pub fn slots(video: usize, audio: usize) -> Offer {
        Offer {
            video,
            audio,
            simulcast: false,
            publish: true,
            red: false,
        }
    }
}

impl Participant {
    /// A participant on `local` with `video_slots` and `audio_slots`; returns it, its SDP
    /// offer and the track labels for the signalling (`mid` → `mic`/`camera`).
    pub fn offer(
        now: Instant,
        local: SocketAddr,
        tag: u8,
        video_slots: usize,
        audio_slots: usize,
    ) -> (Participant, String, Vec<(String, crate::TrackKind)>) {
        Self::offer_as(now, local, tag, Offer::slots(video_slots, audio_slots))
    }

    /// As [`Participant::offer`], as `o` says (simulcast, RED, receiving only).
    pub fn offer_as(
        now: Instant,
        local: SocketAddr,
        tag: u8,
        o: Offer,
    ) -> (Participant, String, Vec<(String, crate::TrackKind)>) {
        let rtc = Self::rtc(now, local, o.red);
        Self::offer_on(rtc, now, tag, (o.video, o.audio), o.simulcast, o.publish)
    }

    fn offer_on(
        mut rtc: Rtc,
        now: Instant,
        tag: u8,
        (video_slots, audio_slots): (usize, usize),
        simulcast: bool,
        publish: bool,
    ) -> (Participant, String, Vec<(String, crate::TrackKind)>) {
        let mut api = rtc.sdp_api();
        let sim = simulcast.then(|| {
            let mut s = Simulcast::new();
            for rid in ["l", "m", "h"] {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let (mic, camera) = if publish {
            (
                api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None),
                api.add_media(MediaKind::Video, Direction::SendOnly, None, None, sim),
            )
        } else {
            (Mid::from("none-a"), Mid::from("none-v"))
        };
        let video: Vec<Mid> = (0..video_slots)
            .map(|_| api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None))
            .collect();
        let audio: Vec<Mid> = (0..audio_slots)
            .map(|_| api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None))
            .collect();
        let (offer, pending) = api.apply().expect("a fresh offer");
        let labels = if publish {
            vec![
                (mic.to_string(), crate::TrackKind::Mic),
                (camera.to_string(), crate::TrackKind::Camera),
            ]
        } else {
            Vec::new()
        };
        let mut p = Self::new(now, rtc, tag, (mic, camera), video, audio, simulcast);
        p.pending = Some(pending);
        (p, offer.to_sdp_string(), labels)
    }

    /// A receiver that answers a server's offer (an SFU that offers its subscribers, as
    /// Janus's videoroom does): each sendonly section of the offer becomes a slot. Returns
    /// it and the SDP answer.
    pub fn accept_offer(
        now: Instant,
        local: SocketAddr,
        tag: u8,
        offer: &str,
    ) -> Result<(Participant, String), String> {
        let parsed = SdpOffer::from_sdp_string(offer).map_err(|e| e.to_string())?;
        let mut rtc = Self::rtc(now, local, false);
        let answer = rtc
            .sdp_api()
            .accept_offer(parsed)
            .map_err(|e| e.to_string())?
            .to_sdp_string();
        let (mut video, mut audio) = (Vec::new(), Vec::new());
        for s in crate::session::sections(&answer) {
            if s.dir == "recvonly" {
                if s.video { &mut video } else { &mut audio }.push(s.mid);
            }
        }
        let none = (Mid::from("none-a"), Mid::from("none-v"));
        Ok((Self::new(now, rtc, tag, none, video, audio, false), answer))
    }

    /// A browser-like `Rtc` on `local`: Opus (with RED if `red`), VP8 and VP9, and H.264
    /// and G.711 too (a camera in the meeting sends those).
    fn rtc(now: Instant, local: SocketAddr, red: bool) -> Rtc {
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, red)
            .enable_vp8(true)
            .enable_vp9(true)
            .enable_h264(true)
            .enable_pcmu(true, false)
            .build(now);
        if let Ok(c) = Candidate::host(local, "udp") {
            rtc.add_local_candidate(c);
        }
        rtc
    }

    fn new(
        now: Instant,
        rtc: Rtc,
        tag: u8,
        (mic, camera): (Mid, Mid),
        video: Vec<Mid>,
        audio: Vec<Mid>,
        simulcast: bool,
    ) -> Participant {
        Participant {
            rtc,
            pending: None,
            tag,
            mic,
            camera,
            slots: video
                .iter()
                .chain(&audio)
                .map(|m| (*m, SlotStats::default()))
                .collect(),
            video_slots: video,
            audio_slots: audio,
            connected: false,
            disconnected: false,
            keyframe_requests: 0,
            timeout: now,
            frame: 0,
            audio_frame: 0,
            vseq: 1000 + u64::from(tag) * 7,
            aseq: 2000 + u64::from(tag) * 11,
            level: 127,
            force_key: false,
            epoch: now,
            layers: if simulcast {
                vec![
                    (Rid::from("l"), 4, 3000),
                    (Rid::from("m"), 2, 4000),
                    (Rid::from("h"), 1, 5000),
                ]
            } else {
                Vec::new()
            },
            paused: Vec::new(),
            withheld: Vec::new(),
            count_from: None,
            last_audio: None,
            vp9: false,
        }
    }

    /// The time that payload send stamps count from (one for all participants of a load
    /// client, so that a receiver can compute the latency of another's packets).
    pub fn set_epoch(&mut self, epoch: Instant) {
        self.epoch = epoch;
    }

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
            self.drain(now, out);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        if self.rtc.handle_input(Input::Timeout(now)).is_ok() {
            self.drain(now, out);
        }
    }

    pub fn disconnect(&mut self) {
        self.rtc.disconnect();
    }

    /// The codec of a payload type this participant receives.
    fn codec_of(&self, pt: Pt) -> Option<RtcCodec> {
        crate::peer::codec_of_pt(&self.rtc, pt).map(|c| c.0)
    }

    /// The RED payload type of Opus on `mid`, when both sides have RED.
    fn red_pt(&self, mid: Mid) -> Option<Pt> {
        crate::peer::red_pt_on(&self.rtc, mid, RtcCodec::Opus)
    }

    fn pt(&self, mid: Mid, codec: RtcCodec) -> Option<Pt> {
        let media = self.rtc.media(mid)?;
        let params = self.rtc.codec_config().params();
        media.remote_pts().iter().copied().find(|pt| {
            params
                .iter()
                .any(|p| p.pt() == *pt && p.spec().codec == codec)
        })
    }

    /// Sends the next camera frame (40 ms of a 25 fps stream; a keyframe every `gop`
    /// frames or when the server asked): `size` bytes in packets of at most 1100.
    pub fn send_video(&mut self, now: Instant, gop: u64, size: usize, out: &mut Vec<Transmit>) {
        if !self.connected {
            return;
        }
        let codec = if self.vp9 {
            RtcCodec::Vp9
        } else {
            RtcCodec::Vp8
        };
        let Some(pt) = self.pt(self.camera, codec) else {
            return;
        };
        let key = self.frame.is_multiple_of(gop) || std::mem::take(&mut self.force_key);
        let ts = (self.frame * 3600) as u32;
        let frame = self.frame;
        self.frame += 1;
        let sent_us = now.duration_since(self.epoch).as_micros() as u64;
        // Each layer: (rid, its frame size, its next sequence number).
        let plan: Vec<(Option<Rid>, usize, u64)> = if self.layers.is_empty() {
            vec![(None, size, self.vseq)]
        } else {
            self.layers
                .iter()
                .filter(|(rid, _, _)| !self.paused.contains(rid) && !self.withheld.contains(rid))
                .map(|(rid, div, seq)| (Some(*rid), size / div, *seq))
                .collect()
        };
        let tag = self.tag;
        let camera = self.camera;
        let mut api = self.rtc.direct_api();
        let mut sent = Vec::new();
        for (rid, size, mut seq) in plan {
            let Some(stream) = api.stream_tx_by_mid(self.camera, rid) else {
                continue;
            };
            let n = size.div_ceil(1100).max(1);
            for i in 0..n {
                // VP8 payload descriptor as browsers write it: X, S on the first packet; a
                // 15-bit picture ID, TL0PICIDX and TID 0, each layer numbered from its own
                // start; then the frame header's P bit. The tag byte before ours says the
                // layer (0 without simulcast).
                let (pic, tl0) = numbering(tag, rid, frame);
                let mut p = if codec == RtcCodec::Vp9 {
                    // VP9 (non-flexible mode): I, P unless a keyframe, L, B on the first
                    // packet, E on the last; a 15-bit picture ID, TID/SID 0, TL0PICIDX.
                    let b0 = 0xa0
                        | if key { 0 } else { 0x40 }
                        | if i == 0 { 0x08 } else { 0 }
                        | if i == n - 1 { 0x04 } else { 0 };
                    vec![b0, 0x80 | (pic >> 8) as u8, pic as u8, 0x00, tl0]
                } else {
                    let mut p = vec![
                        if i == 0 { 0x90 } else { 0x80 },
                        0xe0,
                        0x80 | (pic >> 8) as u8,
                        pic as u8,
                        tl0,
                        0x00,
                    ];
                    if i == 0 {
                        p.push(if key { 0x00 } else { 0x01 });
                    }
                    p
                };
                p.extend_from_slice(&sent_us.to_be_bytes());
                p.resize((size / n).max(12), 0x55);
                p.push(match rid.as_deref() {
                    Some("l") => 1,
                    Some("m") => 2,
                    Some("h") => 3,
                    _ => 0,
                });
                p.push(tag);
                // MID and RID header extensions on every packet, as browsers send them:
                // they tell the server which layer an SSRC is (the offer has no a=ssrc).
                let ext = ExtensionValues {
                    mid: Some(camera),
                    rid,
                    ..Default::default()
                };
                stream.write_rtp(
                    RtpWrite::new(pt, seq.into(), ts, now, p)
                        .marker(i == n - 1)
                        .ext_vals(ext)
                        .nackable(true),
                );
                seq += 1;
            }
            sent.push((rid, seq));
        }
        for (rid, seq) in sent {
            match rid {
                None => self.vseq = seq,
                Some(r) => {
                    if let Some(l) = self.layers.iter_mut().find(|l| l.0 == r) {
                        l.2 = seq;
                    }
                }
            }
        }
        self.handle_timeout(now, out);
    }

    /// Sends the next 20 ms of microphone audio, with this participant's audio level.
    pub fn send_audio(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        if !self.connected {
            return;
        }
        let Some(pt) = self.pt(self.mic, RtcCodec::Opus) else {
            return;
        };
        let ts = (self.audio_frame * 960) as u32;
        self.audio_frame += 1;
        let sent_us = now.duration_since(self.epoch).as_micros() as u64;
        let mut p = vec![0x78];
        p.extend_from_slice(&sent_us.to_be_bytes());
        // Opus packets vary in size (60-120 bytes here, voice at about 32 kbit/s).
        p.resize(
            60 + ((self.audio_frame * 37 + u64::from(self.tag) * 11) % 61) as usize,
            0x33,
        );
        p.push(self.tag);
        let ext = ExtensionValues {
            audio_level: Some(-(self.level as i8)),
            voice_activity: Some(self.level < 60),
            ..Default::default()
        };
        // With RED negotiated: the packet, after a copy of the previous one.
        let red = self.red_pt(self.mic);
        let prev = match red {
            Some(_) => self.last_audio.replace(p.clone()),
            None => None,
        };
        let (pt, p) = match (red, prev) {
            (Some(red), Some(prev)) => {
                let block = RedundantBlock {
                    pt: *pt,
                    timestamp_offset: 960,
                    payload: prev,
                };
                (red, RedEncoder::encode(*pt, &p, &[block]))
            }
            (Some(red), None) => (red, RedEncoder::encode(*pt, &p, &[])),
            (None, _) => (pt, p),
        };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(self.mic, None) else {
            return;
        };
        stream.write_rtp(RtpWrite::new(pt, self.aseq.into(), ts, now, p).ext_vals(ext));
        self.aseq += 1;
        self.handle_timeout(now, out);
    }

    fn drain(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => out.push(tx(t)),
                Ok(Output::Event(e)) => self.event(now, e),
                Err(_) => {
                    self.disconnected = true;
                    return;
                }
            }
        }
    }

    fn event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Connected => self.connected = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.disconnected = true
            }
            Event::KeyframeRequest(_) => {
                self.keyframe_requests += 1;
                self.force_key = true;
            }
            Event::RtpPacket(p) => {
                let Some(mid) = self
                    .rtc
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|s| s.mid())
                else {
                    return;
                };
                let video = self.video_slots.contains(&mid);
                let vp9 = video && self.codec_of(p.header.payload_type) == Some(RtcCodec::Vp9);
                // RED: the primary block's send stamp (its tag is the last byte too).
                let red = !video && Some(p.header.payload_type) == self.red_pt(mid);
                let Some(s) = self.slots.get_mut(&mid) else {
                    return;
                };
                let Some(&tag) = p.payload.last() else { return };
                let payload = match red.then(|| crate::red::primary(&p.payload)) {
                    Some(Some((_, r))) => &p.payload[r],
                    Some(None) => return,
                    None => &p.payload[..],
                };
                if red {
                    s.red += 1;
                }
                if !video && payload.first() != Some(&0x78) {
                    s.audio_unlike_mic += 1;
                }
                if video && p.payload.len() >= 2 {
                    let layer = p.payload[p.payload.len() - 2];
                    *s.layers.entry(layer).or_default() += 1;
                    s.last_layer = Some(layer);
                }
                s.packets += 1;
                if self.count_from.is_some_and(|t| now >= t) {
                    let layer = if video && p.payload.len() >= 2 {
                        p.payload[p.payload.len() - 2]
                    } else {
                        0
                    };
                    *s.bytes_by.entry((tag, layer)).or_default() += p.payload.len() as u64;
                }
                let codec = if vp9 { RtcCodec::Vp9 } else { RtcCodec::Vp8 };
                let key = video && crate::peer::keyframe_start(codec, &p.payload);
                let layer = if video && p.payload.len() >= 2 {
                    p.payload[p.payload.len() - 2]
                } else {
                    0
                };
                s.seqs.insert(*p.seq_no, (tag, layer, key));
                if vp9 {
                    if let Some(d) =
                        crate::vp9::Descriptor::parse(&p.payload).filter(|d| d.starts_frame)
                        && let (Some((pic, _)), Some(tl0)) = (d.picture_id, d.tl0_pic_idx)
                    {
                        s.pictures.insert(*p.seq_no, (pic, tl0));
                    }
                } else if video
                    && p.payload[0] & 0x10 != 0
                    && let Some(d) = crate::vp8::descriptor(&p.payload)
                    && let (Some(pic), Some(tl0)) = (d.picture_id(), d.tl0_pic_idx())
                {
                    s.pictures.insert(*p.seq_no, (pic, tl0));
                }
                if !s.publishers.contains(&tag) {
                    s.publishers.push(tag);
                }
                if video && p.header.marker {
                    if let Some(last) = s.last_frame {
                        s.longest_gap = s.longest_gap.max(now.saturating_duration_since(last));
                    }
                    s.last_frame = Some(now);
                    s.frames += 1;
                    if self.count_from.is_some_and(|t| now >= t) {
                        s.frames_counted += 1;
                    }
                }
                // The send time (same epoch only in one process: the tests and load client).
                let at = match payload.first() {
                    _ if vp9 => 5,
                    Some(&0x90) if video => 7,
                    Some(&0x80) if video => 6,
                    _ => 1,
                };
                if let Some(b) = payload.get(at..at + 8) {
                    let sent = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                    let now_us = now.duration_since(self.epoch).as_micros() as u64;
                    let lat = now_us.saturating_sub(sent);
                    if s.latency_us.len() < 100_000 && self.count_from.is_some_and(|t| now >= t) {
                        s.latency_us.push(lat);
                        let by = s.latency_by.entry(tag).or_default();
                        if by.len() < 20_000 {
                            by.push(lat);
                        }
                    }
                    let w = s.worst_by_second.entry(now_us / 1_000_000).or_default();
                    *w = (*w).max(lat);
                }
            }
            _ => {}
        }
    }
}

impl SlotStats {
    /// The missing sequence numbers (debugging aid).
    pub fn missing(&self) -> Vec<(u64, Option<u8>)> {
        let mut out = Vec::new();
        let mut prev: Option<(u64, u8)> = None;
        for (s, (tag, _, _)) in &self.seqs {
            if let Some((p, t)) = prev {
                for m in p + 1..*s {
                    out.push((m, if t == *tag { Some(t) } else { None }));
                }
            }
            prev = Some((*s, *tag));
        }
        out
    }
}
