//! Meeting rooms in the forwarding core against real WebRTC participants (str0m clients
//! that publish and receive as the page does), with no sockets: datagrams go between them
//! in memory over simulated time, with seeded loss and jitter both ways when asked.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use xaso_sfu::participant::Participant;
use xaso_sfu::{Core, Input, Output, Proto, SessionId, SlotsUpdate, TrackKind, Transmit};

const SERVER: &str = "127.0.0.2:5000";

struct Net {
    now: Instant,
    core: Core,
    parts: Vec<(SessionId, SocketAddr, Participant)>,
    /// Datagrams in flight: (due, to server?, transmit).
    flight: Vec<(Instant, Transmit)>,
    rng: u64,
    /// Per mille of datagrams lost (each way), and the largest extra delay.
    loss: u64,
    jitter_ms: u64,
    slots: Vec<SlotsUpdate>,
    speakers: Vec<SessionId>,
    closed: Vec<SessionId>,
}

impl Net {
    fn new(seed: u64) -> Net {
        xaso_sfu::init_crypto();
        Net {
            now: Instant::now(),
            core: Core::new(7),
            parts: Vec::new(),
            flight: Vec::new(),
            rng: seed | 1,
            loss: 0,
            jitter_ms: 0,
            slots: Vec::new(),
            speakers: Vec::new(),
            closed: Vec::new(),
        }
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn join(&mut self, room: i64, video_slots: usize, audio_slots: usize) -> usize {
        let n = self.parts.len();
        let addr = SocketAddr::from(([127, 0, 0, 3], 6000 + n as u16));
        let (mut p, offer, tracks) =
            Participant::offer(self.now, addr, n as u8 + 1, video_slots, audio_slots);
        let (id, answer) = self
            .core
            .join(
                self.now,
                room,
                &offer,
                &tracks,
                &[(Proto::Udp, SERVER.parse().unwrap())],
            )
            .expect("the core answers a participant's offer");
        p.answer(&answer).expect("the participant takes the answer");
        self.parts.push((id, addr, p));
        n
    }

    fn send(&mut self, t: Transmit) {
        if self.loss > 0 && self.rand() % 1000 < self.loss {
            return;
        }
        let delay = if self.jitter_ms > 0 {
            self.rand() % (self.jitter_ms + 1)
        } else {
            0
        };
        self.flight
            .push((self.now + Duration::from_millis(delay), t));
    }

    fn poll_core(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Transmit(t) => self.send(t),
                Output::Slots(u) => self.slots.push(u),
                Output::Speaker { peer, .. } => self.speakers.push(peer),
                Output::Closed(c) => self.closed.push(c.session),
                Output::Timeout(_) => {}
            }
        }
    }

    /// Moves time on by `d` in 5 ms steps: audio every 20 ms and video every 40 ms from
    /// every participant for which `publishing(i)`; datagrams delivered when due.
    fn run(&mut self, d: Duration, publishing: impl Fn(usize) -> bool) {
        let end = self.now + d;
        let mut step = 0u64;
        while self.now < end {
            let now = self.now;
            let mut out = Vec::new();
            for (i, (_, _, p)) in self.parts.iter_mut().enumerate() {
                if p.timeout() <= now {
                    p.handle_timeout(now, &mut out);
                }
                if publishing(i) {
                    if step.is_multiple_of(4) {
                        p.send_audio(now, &mut out);
                    }
                    if step.is_multiple_of(8) {
                        p.send_video(now, 50, 3000, &mut out);
                    }
                }
            }
            for t in out {
                self.send(t);
            }
            // Deliver what is due, in order of due time.
            self.flight.sort_by_key(|f| f.0);
            let due = self.flight.partition_point(|f| f.0 <= now);
            let arrived: Vec<(Instant, Transmit)> = self.flight.drain(..due).collect();
            for (_, t) in arrived {
                let mut out = Vec::new();
                if let Some((_, _, p)) = self.parts.iter_mut().find(|x| x.1 == t.destination) {
                    p.handle_receive(now, t.source, t.destination, &t.contents, &mut out);
                } else {
                    self.core.handle_input(
                        now,
                        Input::Datagram {
                            proto: Proto::Udp,
                            source: t.source,
                            destination: t.destination,
                            data: &t.contents,
                        },
                    );
                }
                for t in out {
                    self.send(t);
                }
                self.poll_core();
            }
            self.core.handle_input(now, Input::Timeout);
            self.poll_core();
            self.now += Duration::from_millis(5);
            step += 1;
        }
    }

    fn part(&self, i: usize) -> &Participant {
        &self.parts[i].2
    }

    fn id(&self, i: usize) -> SessionId {
        self.parts[i].0
    }

    /// The latest slot assignment of participant `i`.
    fn slots_of(&self, i: usize) -> &SlotsUpdate {
        let id = self.id(i);
        self.slots
            .iter()
            .rev()
            .find(|u| u.peer == id)
            .expect("slots reported")
    }
}

#[test]
fn three_participants_each_receive_the_two_others() {
    let mut net = Net::new(1);
    for _ in 0..3 {
        net.join(1, 4, 4);
    }
    net.run(Duration::from_secs(4), |_| true);
    for i in 0..3 {
        let p = net.part(i);
        assert!(p.connected, "participant {i} connected");
        let u = net.slots_of(i);
        assert_eq!((u.need_video, u.need_audio), (2, 2));
        let mut video_from: Vec<u8> = p
            .video_slots
            .iter()
            .flat_map(|m| p.slots[m].publishers.clone())
            .collect();
        video_from.sort();
        let others: Vec<u8> = (1..=3).filter(|t| *t != p.tag).collect();
        assert_eq!(
            video_from, others,
            "participant {i} sees the two others' video"
        );
        let mut audio_from: Vec<u8> = p
            .audio_slots
            .iter()
            .flat_map(|m| p.slots[m].publishers.clone())
            .collect();
        audio_from.sort();
        assert_eq!(audio_from, others, "participant {i} hears the two others");
        for m in &p.video_slots {
            let s = &p.slots[m];
            if s.packets == 0 {
                continue;
            }
            assert!(
                s.frames >= 60,
                "slot {m} of {i}: {} frames in 4 s",
                s.frames
            );
            assert_eq!(s.runs_started_on_keyframe(), vec![true], "{m} of {i}");
            assert_eq!(s.holes(), 0);
        }
        for m in &p.audio_slots {
            let s = &p.slots[m];
            if s.packets > 0 {
                assert!(s.packets >= 150, "audio slot {m} of {i}: {}", s.packets);
                assert_eq!(s.holes(), 0);
            }
        }
    }
}

#[test]
fn loss_and_jitter_are_repaired_by_nack_and_switches_land_on_keyframes() {
    let mut net = Net::new(0x5eed);
    // One video slot each: "last N" with N = 1 swaps the slot's publisher when the
    // speaker changes.
    for _ in 0..3 {
        net.join(1, 1, 2);
    }
    net.parts[0].2.level = 20; // participant 0 speaks first
    net.run(Duration::from_secs(1), |_| true);
    // Then 3 % loss and up to 30 ms of jitter on every datagram, both ways, seeded.
    net.loss = 30;
    net.jitter_ms = 30;
    net.run(Duration::from_secs(2), |_| true);
    net.parts[0].2.level = 127;
    net.parts[2].2.level = 15; // then participant 2
    net.run(Duration::from_secs(3), |_| true);
    net.loss = 0;
    net.jitter_ms = 0;
    net.run(Duration::from_secs(1), |_| true);
    assert_eq!(
        net.speakers,
        vec![net.id(0), net.id(2)],
        "the active speaker follows the loudest microphone"
    );
    // Participant 1's one video slot showed participant 0, then switched to 2.
    let p = net.part(1);
    let slot = &p.slots[&p.video_slots[0]];
    assert_eq!(slot.publishers, vec![1, 3], "the slot follows the speaker");
    assert_eq!(
        slot.runs_started_on_keyframe(),
        vec![true, true],
        "each publisher's video began at a keyframe on the slot"
    );
    // Video is NACKed and retransmitted; audio is not (a late Opus packet is worthless:
    // the decoder conceals it), so audio shows the loss the network made: about 6 % end
    // to end. A video packet stays lost only when it was lost on both hops and the
    // receiver's NACKs ran out while the server was still getting it back (under 1 %).
    let audio_holes: u64 = p.audio_slots.iter().map(|m| p.slots[m].holes()).sum();
    let audio: u64 = p.audio_slots.iter().map(|m| p.slots[m].packets).sum();
    eprintln!(
        "video: {} holes in {} packets ({:?}); audio: {audio_holes} holes in {audio}",
        slot.holes(),
        slot.packets,
        slot.missing()
    );
    assert!(
        audio_holes * 100 > audio * 2,
        "the network lost packets: {audio_holes} of {audio}"
    );
    assert!(
        slot.holes() * 100 < slot.packets,
        "lost video packets were retransmitted (NACK): {} holes in {}",
        slot.holes(),
        slot.packets
    );
    assert!(slot.frames > 100, "{} frames", slot.frames);
    // The switch asked the new publisher for a keyframe.
    assert!(net.part(2).keyframe_requests > 0);
}

#[test]
fn a_blocked_microphone_is_not_forwarded_and_a_leaver_is_dropped() {
    let mut net = Net::new(3);
    for _ in 0..3 {
        net.join(9, 2, 2);
    }
    net.run(Duration::from_secs(2), |_| true);
    let heard = |net: &Net, i: usize, tag: u8| -> u64 {
        let p = net.part(i);
        p.audio_slots
            .iter()
            .map(|m| &p.slots[m])
            .filter(|s| s.publishers.contains(&tag))
            .map(|s| s.packets)
            .sum()
    };
    let before = heard(&net, 0, 2);
    assert!(before > 50);
    net.core.set_blocked(net.id(1), TrackKind::Mic, true);
    net.run(Duration::from_millis(100), |_| true); // what was in flight
    let blocked = heard(&net, 0, 2);
    net.run(Duration::from_secs(1), |_| true);
    assert_eq!(
        heard(&net, 0, 2),
        blocked,
        "no audio from a blocked microphone"
    );
    assert!(heard(&net, 0, 3) > before, "the others are still heard");
    net.core.set_blocked(net.id(1), TrackKind::Mic, false);
    net.run(Duration::from_secs(1), |_| true);
    assert!(
        heard(&net, 0, 2) > blocked + 30,
        "heard again once unblocked"
    );
    // Participant 2 leaves: the others' slots no longer carry it.
    let gone = net.id(2);
    assert!(net.core.close(gone, "left"));
    net.poll_core();
    assert!(net.closed.contains(&gone));
    let u = net.slots_of(0);
    assert_eq!((u.need_video, u.need_audio), (1, 1));
    assert!(
        u.video
            .iter()
            .chain(&u.audio)
            .all(|(_, f)| f.is_none_or(|f| f.publisher != gone)),
        "{u:?}"
    );
}

#[test]
fn more_microphones_than_slots_asks_for_more_slots() {
    let mut net = Net::new(4);
    for _ in 0..4 {
        net.join(2, 1, 1);
    }
    net.run(Duration::from_millis(500), |_| true);
    let u = net.slots_of(0);
    assert_eq!(u.need_audio, 3, "three other microphones");
    assert_eq!(u.need_video, 3);
    assert_eq!(u.audio.len(), 1);
    assert!(u.audio[0].1.is_some() && u.video[0].1.is_some());
}

#[test]
fn garbage_offers_are_refused_and_hurt_nobody() {
    let mut net = Net::new(5);
    net.join(3, 2, 2);
    net.join(3, 2, 2);
    for bad in [
        "",
        "v=0",
        "not sdp at all\r\n",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    ] {
        assert!(net.core.join(net.now, 3, bad, &[], &[]).is_err(), "{bad:?}");
    }
    net.run(Duration::from_secs(2), |_| true);
    let p = net.part(0);
    assert!(p.slots.values().map(|s| s.packets).sum::<u64>() > 100);
}
