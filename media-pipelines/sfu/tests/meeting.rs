//! Meeting rooms in the forwarding core against real WebRTC participants (str0m clients
//! that publish and receive as the page does), with no sockets: datagrams go between them
//! in memory over simulated time, with seeded loss and jitter both ways when asked.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use xaso_sfu::participant::{Offer, Participant, SlotStats};
use xaso_sfu::peer::LAYER_PAUSE_DELAY;
use xaso_sfu::{Core, Input, Output, Proto, SessionId, SlotsUpdate, TrackKind, Transmit};

const SERVER: &str = "127.0.0.2:5000";

/// How a participant joins: as [`Participant::offer`], with three simulcast layers, or
/// offering RED for its audio (as Chrome does).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Join {
    Plain,
    Simulcast,
    Red,
}

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
    layer_msgs: Vec<(SessionId, Vec<String>)>,
    /// A rate-limited link toward one address (bits per second): datagrams queue behind
    /// each other, and are dropped when the queue holds over 300 ms.
    throttle: Option<(SocketAddr, u64)>,
    link_free: Instant,
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
            layer_msgs: Vec::new(),
            throttle: None,
            link_free: Instant::now(),
        }
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn join(&mut self, room: i64, video_slots: usize, audio_slots: usize) -> usize {
        self.join_with(room, video_slots, audio_slots, Join::Plain)
    }

    /// As [`Net::join`], publishing three simulcast layers.
    fn join_simulcast(&mut self, room: i64, video_slots: usize, audio_slots: usize) -> usize {
        self.join_with(room, video_slots, audio_slots, Join::Simulcast)
    }

    fn join_with(&mut self, room: i64, video_slots: usize, audio_slots: usize, how: Join) -> usize {
        let n = self.parts.len();
        let addr = SocketAddr::from(([127, 0, 0, 3], 6000 + n as u16));
        let (now, tag) = (self.now, n as u8 + 1);
        let o = Offer {
            simulcast: how == Join::Simulcast,
            red: how == Join::Red,
            ..Offer::slots(video_slots, audio_slots)
        };
        let (mut p, offer, tracks) = Participant::offer_as(now, addr, tag, o);
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
        let mut due = self.now + Duration::from_millis(delay);
        if let Some((addr, bps)) = self.throttle
            && t.destination == addr
        {
            let start = self.link_free.max(self.now);
            if start.duration_since(self.now) > Duration::from_millis(300) {
                return; // the queue is full
            }
            let tx = Duration::from_micros((t.contents.len() as u64 + 28) * 8 * 1_000_000 / bps);
            self.link_free = start + tx;
            due = self.link_free + Duration::from_millis(delay);
        }
        self.flight.push((due, t));
    }

    fn poll_core(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Transmit(t) => self.send(t),
                Output::Slots(u) => self.slots.push(u),
                Output::Speaker { peer, .. } => self.speakers.push(peer),
                Output::Layers { peer, active, .. } => {
                    // The page pauses the layers nobody wants.
                    if let Some(p) = self.parts.iter_mut().find(|x| x.0 == peer) {
                        p.2.paused = ["l", "m", "h"]
                            .into_iter()
                            .filter(|r| !active.iter().any(|a| a == r))
                            .map(Into::into)
                            .collect();
                    }
                    self.layer_msgs.push((peer, active));
                }
                Output::Closed(c) => self.closed.push(c.session),
                Output::Timeout(_) => {}
                _ => {} // trunks: tests/trunk.rs
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

    fn estimates(&self) -> Vec<Option<u64>> {
        self.parts.iter().map(|p| self.core.bwe_of(p.0)).collect()
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
    each_receives_the_two_others(Net::new(1));
}

/// Without the bandwidth estimate (a server whose meetings have no simulcast), packets
/// forwarded to a participant are flushed in batches: the same media arrives whole.
#[test]
fn without_the_estimate_the_same_media_arrives() {
    let mut net = Net::new(1);
    net.core = Core::new(7).without_estimate();
    let net = each_receives_the_two_others(net);
    assert_eq!(net.estimates(), vec![None; 3], "no estimate was made");
}

fn each_receives_the_two_others(mut net: Net) -> Net {
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
    net
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
    let asked_before = net.core.keyframes_asked_of(net.id(2));
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
    // Each publisher numbers its pictures from its own start: the slot's numbering goes
    // on across the switch, or the receiver would drop the new publisher's frames.
    assert_eq!(
        slot.numbering_breaks(),
        0,
        "VP8 picture IDs stay continuous"
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
    // The switch asked the new publisher for a keyframe. (Whether the request arrived
    // is up to the lossy network: when it is lost and the publisher's next regular
    // keyframe comes before the retry, none arrives, and the switch still lands on a
    // keyframe, as checked above.)
    assert!(net.core.keyframes_asked_of(net.id(2)) > asked_before);
    // The core's counter (for metrics) has every request to every publisher.
    let each: u64 = (0..3).map(|i| net.core.keyframes_asked_of(net.id(i))).sum();
    assert_eq!(net.core.counters().keyframe_requests, each);
}

#[test]
fn vp9_publishers_switch_on_a_slot_at_keyframes_with_continuous_picture_numbers() {
    let mut net = Net::new(0x9);
    for _ in 0..3 {
        net.join(1, 1, 2);
    }
    // Participants 0 and 2 send VP9 (as a WHIP encoder may); 1 watches through one slot.
    net.parts[0].2.vp9 = true;
    net.parts[2].2.vp9 = true;
    net.parts[0].2.level = 20;
    net.run(Duration::from_secs(2), |_| true);
    net.parts[0].2.level = 127;
    net.parts[2].2.level = 15;
    net.run(Duration::from_secs(3), |_| true);
    let p = net.part(1);
    let slot = &p.slots[&p.video_slots[0]];
    assert_eq!(slot.publishers, vec![1, 3], "the slot follows the speaker");
    assert_eq!(slot.runs_started_on_keyframe(), vec![true, true]);
    // Each publisher numbers its pictures from its own start; the slot renumbers them.
    assert!(slot.numbered_frames() > 80, "{}", slot.numbered_frames());
    assert_eq!(
        slot.numbering_breaks(),
        0,
        "VP9 picture IDs stay continuous"
    );
    assert_eq!(slot.holes(), 0);
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

/// `n` simulcast participants in room `room`, each with `video` and `audio` slots, and no
/// bandwidth estimate: the layers follow the tiles and what arrives, nothing else (the
/// estimate's part is the throttled test's).
fn simulcast_net(seed: u64, room: i64, n: usize, video: usize, audio: usize) -> Net {
    let mut net = Net::new(seed);
    net.core = Core::new(seed).without_estimate();
    for _ in 0..n {
        net.join_simulcast(room, video, audio);
    }
    net
}

#[test]
fn simulcast_layers_follow_tile_sizes_switch_on_keyframes_and_unwanted_ones_pause() {
    let mut net = simulcast_net(11, 5, 3, 2, 2);
    let b = net.id(1);
    // A shows B small, C shows B large.
    net.core.set_view(net.id(0), &[(b, 120)]);
    net.core.set_view(net.id(2), &[(b, 720)]);
    net.run(Duration::from_secs(4), |_| true);
    let carrying = |net: &Net, i: usize| -> SlotStats {
        let p = net.part(i);
        p.video_slots
            .iter()
            .map(|m| p.slots[m].clone())
            .find(|s| s.publishers.contains(&2))
            .expect("a slot carries B")
    };
    assert_eq!(
        carrying(&net, 0).last_layer,
        Some(1),
        "small tile: the low layer"
    );
    assert_eq!(
        carrying(&net, 2).last_layer,
        Some(3),
        "large tile: the high layer"
    );
    // The lowest layer is never paused, from the very first message on (before every layer
    // was measured).
    assert!(
        net.layer_msgs
            .iter()
            .all(|(_, a)| a.iter().any(|r| r == "l")),
        "{:?}",
        net.layer_msgs
    );
    // Nobody wants B's middle layer: B is told to keep only l and h (once nobody has wanted
    // m for LAYER_PAUSE_DELAY: a first allocation, before the layers were measured, may
    // have taken it).
    net.run(LAYER_PAUSE_DELAY, |_| true);
    let told = net
        .layer_msgs
        .iter()
        .rev()
        .find(|(p, _)| *p == b)
        .map(|x| x.1.clone());
    assert_eq!(told, Some(vec!["h".to_string(), "l".to_string()]));
    // A enlarges B: A's slot switches to h (once the choice has held for 3 s), at a
    // keyframe, without a gap.
    net.core.set_view(net.id(0), &[(b, 720)]);
    net.run(Duration::from_secs(2), |_| true);
    assert_eq!(
        carrying(&net, 0).last_layer,
        Some(1),
        "not yet: a step up waits 3 s"
    );
    net.run(Duration::from_secs(3), |_| true);
    let s = carrying(&net, 0);
    assert_eq!(s.last_layer, Some(3));
    let runs = s.layer_runs();
    assert!(runs.len() >= 2, "{runs:?}");
    assert!(
        runs.iter().all(|(_, key)| *key),
        "every layer run starts on a keyframe: {runs:?}"
    );
    assert_eq!(
        s.holes(),
        0,
        "switching layers leaves no gap in the sequence numbers"
    );
    assert_eq!(
        s.numbering_breaks(),
        0,
        "nor in the VP8 picture IDs and TL0PICIDX"
    );
}

/// Two simulcast publishers A and B, with no bandwidth estimate (the layers follow the tile
/// and what arrives, nothing else); A shows B large, and after 2 s its slot carries B's
/// high layer. Returns the net and B's id.
fn a_shows_b_large(seed: u64) -> (Net, SessionId) {
    let mut net = simulcast_net(seed, 6, 2, 1, 1);
    let b = net.id(1);
    net.core.set_view(net.id(0), &[(b, 720)]);
    net.run(Duration::from_secs(2), |_| true);
    let s = slot(&net);
    assert_eq!(s.last_layer, Some(3), "{:?}", s.layer_runs());
    (net, b)
}

/// A's (participant 0's) video slot.
fn slot(net: &Net) -> SlotStats {
    let p = net.part(0);
    p.slots[&p.video_slots[0]].clone()
}

/// A's slot went to layer `layer` on keyframes with unbroken numbering, and its picture
/// goes on (20 frames in the next second).
fn moved_to(net: &mut Net, layer: u8) {
    let s = slot(net);
    assert_eq!(s.last_layer, Some(layer), "{:?}", s.layer_runs());
    assert!(
        s.layer_runs().iter().all(|(_, key)| *key),
        "{:?}",
        s.layer_runs()
    );
    assert_eq!(s.numbering_breaks(), 0);
    let frames = s.frames;
    net.run(Duration::from_secs(1), |_| true);
    assert!(
        slot(net).frames >= frames + 20,
        "{} then {}",
        frames,
        slot(net).frames
    );
}

#[test]
fn a_layer_that_stops_arriving_is_left_for_one_that_arrives() {
    let (mut net, b) = a_shows_b_large(17);
    // B's encoder leaves its high layer out (its uplink estimate fell), though the server
    // still wants it: A's slot goes down to a layer that arrives, at once (no 1 s hold),
    // at a keyframe, and its picture goes on.
    net.parts[1].2.withheld = vec!["h".into()];
    let told = net.layer_msgs.len();
    net.run(Duration::from_millis(1500), |_| true);
    moved_to(&mut net, 2);
    // Meanwhile h stays on at B's page (it is not paused and resumed over and over), so
    // that B sends it as soon as it can; when it does, A's slot steps up to it again
    // (after the 3 s a step up holds).
    net.run(Duration::from_secs(4), |_| true);
    let b_msgs: Vec<&Vec<String>> = net.layer_msgs[told..]
        .iter()
        .filter(|(p, _)| *p == b)
        .map(|(_, a)| a)
        .collect();
    assert!(
        b_msgs.iter().all(|a| a.iter().any(|r| r == "h")),
        "{b_msgs:?}"
    );
    assert_eq!(slot(&net).last_layer, Some(2));
    net.parts[1].2.withheld.clear();
    net.run(Duration::from_secs(2), |_| true);
    assert_eq!(slot(&net).last_layer, Some(2), "a step up holds 3 s");
    net.run(Duration::from_secs(2), |_| true);
    let s = slot(&net);
    assert_eq!(s.last_layer, Some(3), "{:?}", s.layer_runs());
    assert_eq!(s.numbering_breaks(), 0);
    // Withheld again, and A's tile shrinks so that the lowest layer is enough: no tile
    // would take h even if it arrived, so it is paused like any layer nobody wants (once
    // nobody wanted it for LAYER_PAUSE_DELAY).
    net.parts[1].2.withheld = vec!["h".into()];
    net.run(Duration::from_secs(1), |_| true);
    net.core.set_view(net.id(0), &[(b, 180)]);
    net.run(Duration::from_secs(3) + LAYER_PAUSE_DELAY, |_| true);
    let last = net.layer_msgs.iter().rev().find(|(p, _)| *p == b);
    assert_eq!(last.map(|(_, a)| a.clone()), Some(vec!["l".to_string()]));
    assert_eq!(slot(&net).last_layer, Some(1));
}

#[test]
fn a_layer_nobody_wants_any_more_runs_on_a_while_before_it_is_paused() {
    // A's tile of B shrinks and grows back every 2 s, as the speaker's enlarged tile moves
    // from one participant to another. B's high layer is not paused and resumed each time
    // (each resume costs B a keyframe of it): B's page is told nothing. Once A's tile stays
    // small, h is paused, LAYER_PAUSE_DELAY after it was last wanted at the soonest.
    let (mut net, b) = a_shows_b_large(31);
    // (A first allocation, before the layers were measured, may have wanted m: its pause
    // comes first.)
    net.run(LAYER_PAUSE_DELAY, |_| true);
    let told = net.layer_msgs.len();
    let to_b = |net: &Net| -> Vec<Vec<String>> {
        net.layer_msgs[told..]
            .iter()
            .filter(|(p, _)| *p == b)
            .map(|(_, a)| a.clone())
            .collect()
    };
    for _ in 0..3 {
        net.core.set_view(net.id(0), &[(b, 180)]);
        net.run(Duration::from_secs(2), |_| true);
        net.core.set_view(net.id(0), &[(b, 720)]);
        net.run(Duration::from_secs(2), |_| true);
    }
    assert_eq!(to_b(&net), Vec::<Vec<String>>::new());
    net.core.set_view(net.id(0), &[(b, 180)]);
    net.run(LAYER_PAUSE_DELAY - Duration::from_millis(500), |_| true);
    assert_eq!(to_b(&net), Vec::<Vec<String>>::new());
    net.run(Duration::from_secs(3), |_| true);
    assert_eq!(to_b(&net), vec![vec!["l".to_string()]]);
    assert_eq!(slot(&net).last_layer, Some(1));
}

#[test]
fn a_slot_goes_to_the_only_layer_that_arrives() {
    // As above, but B's encoder leaves out both its high and its middle layer: the lowest
    // is then the only layer to choose from, and A's slot must still go to it (a feed with
    // one usable layer is not a feed without simulcast).
    let (mut net, _) = a_shows_b_large(19);
    // (Within 3 s: the paused middle layer is tried first, as choosing a paused layer
    // resumes it, and left once it does not arrive either.)
    net.parts[1].2.withheld = vec!["m".into(), "h".into()];
    net.run(Duration::from_millis(3000), |_| true);
    moved_to(&mut net, 1);
}

#[test]
fn a_layer_that_never_arrives_from_the_start_is_left() {
    // B's encoder leaves its high layer out from the start (as Chrome does while its uplink
    // estimate ramps up); A shows B large. A's slot must not wait for h: within 2 s it
    // carries m, on a keyframe, and its picture goes on.
    let mut net = simulcast_net(29, 6, 2, 1, 1);
    net.parts[1].2.withheld = vec!["h".into()];
    let b = net.id(1);
    net.core.set_view(net.id(0), &[(b, 720)]);
    net.run(Duration::from_secs(2), |_| true);
    moved_to(&mut net, 2);
    // The estimate toward A is still probed toward the high layer (taken to cost twice the
    // middle one until it is measured), not only toward what arrives: when B's page sends
    // it, the way is open. (Probing toward m alone would ask about 1.7 times m with the
    // audio and the headroom; toward h, about 2.8 times.)
    let (carried, desired) = net.core.bitrate_asked_of(net.id(0)).expect("asked");
    assert!(
        desired >= 2 * carried,
        "carried {carried}, probed toward {desired}"
    );
}

#[test]
fn a_publisher_that_stops_and_comes_back_keeps_the_slots_on_their_layers() {
    // B's whole camera stops for 0.8 s (its page, its link or the server stalled) and comes
    // back a layer at a time, the lowest first, the others 0.3 s later. No layer was
    // missing while another had flowed for 0.5 s, so none is taken for stalled: A's slot
    // stays on the high layer, without a switch (each would cost a keyframe, and the slot
    // a step back up 3 s later).
    let (mut net, _) = a_shows_b_large(23);
    let runs = slot(&net).layer_runs();
    net.parts[1].2.withheld = vec!["l".into(), "m".into(), "h".into()];
    net.run(Duration::from_millis(800), |_| true);
    net.parts[1].2.withheld = vec!["m".into(), "h".into()];
    net.run(Duration::from_millis(300), |_| true);
    net.parts[1].2.withheld = Vec::new();
    net.run(Duration::from_secs(1), |_| true);
    let s = slot(&net);
    assert_eq!(s.layer_runs(), runs, "{:?}", s.layer_runs());
    assert_eq!(s.last_layer, Some(3));
}

#[test]
fn a_throttled_subscriber_gets_the_low_layer_another_the_high_one() {
    let mut net = Net::new(12);
    for _ in 0..3 {
        net.join_simulcast(6, 2, 2);
    }
    // The link toward participant 0 carries 450 kbit/s; the others are unlimited. Each
    // publisher sends l ≈ 150, m ≈ 300, h ≈ 600 kbit/s (and audio), and everyone shows its
    // tiles large: the throttled one fits two low layers, not a middle one.
    net.throttle = Some((net.parts[0].1, 450_000));
    for i in 0..3 {
        let tiles: Vec<(SessionId, u32)> = (0..3)
            .filter(|j| *j != i)
            .map(|j| (net.id(j), 720))
            .collect();
        net.core.set_view(net.id(i), &tiles);
    }
    net.run(Duration::from_secs(15), |_| true);
    let layers_of = |net: &Net, i: usize| -> Vec<Option<u8>> {
        let p = net.part(i);
        p.video_slots
            .iter()
            .map(|m| p.slots[m].last_layer)
            .collect()
    };
    let throttled = layers_of(&net, 0);
    let free = layers_of(&net, 1);
    eprintln!(
        "throttled: {throttled:?}, free: {free:?}, estimates: {:?}",
        net.estimates()
    );
    assert!(throttled.iter().all(|l| *l == Some(1)), "{throttled:?}");
    assert!(free.iter().all(|l| *l == Some(3)), "{free:?}");
    // The throttled participant still gets frames from both (the low layer fits).
    let p = net.part(0);
    for m in &p.video_slots {
        assert!(p.slots[m].frames > 100, "{}", p.slots[m].frames);
    }
}

/// The core's answer to the offer `make` gives (now, a local address).
fn answer_to(
    make: impl FnOnce(Instant, SocketAddr) -> (Participant, String, Vec<(String, TrackKind)>),
) -> String {
    xaso_sfu::init_crypto();
    let now = Instant::now();
    let mut core = Core::new(1);
    let (_, offer, tracks) = make(now, SocketAddr::from(([127, 0, 0, 3], 6300)));
    let server = [(Proto::Udp, SERVER.parse().unwrap())];
    core.join(now, 1, &offer, &tracks, &server).unwrap().1
}

#[test]
fn the_answer_asks_senders_for_opus_dtx_and_fec() {
    let answer = answer_to(|now, addr| Participant::offer(now, addr, 1, 1, 1));
    let fmtp = answer
        .lines()
        .find(|l| l.starts_with("a=fmtp:111"))
        .unwrap_or_else(|| panic!("no Opus fmtp: {answer}"));
    assert!(
        fmtp.contains("usedtx=1") && fmtp.contains("useinbandfec=1"),
        "{fmtp}"
    );
    // Opus is the answer's first audio codec: browsers send the first one.
    let mline = answer.lines().find(|l| l.starts_with("m=audio")).unwrap();
    assert_eq!(mline.split_whitespace().nth(3), Some("111"), "{mline}");
}

#[test]
fn red_audio_goes_on_as_red_to_pages_that_have_it_and_as_opus_to_the_others() {
    let mut net = Net::new(11);
    let a = net.join_with(1, 2, 2, Join::Red);
    let b = net.join_with(1, 2, 2, Join::Red);
    let c = net.join(1, 2, 2);
    net.run(Duration::from_secs(4), |_| true);
    // What each participant's audio slots got from each publisher (tags are index + 1):
    // (packets, as RED, unlike the microphone's Opus, holes).
    let got = |net: &Net, i: usize, from: usize| {
        let p = net.part(i);
        let s = p
            .audio_slots
            .iter()
            .map(|m| &p.slots[m])
            .find(|s| s.publishers == [from as u8 + 1])
            .unwrap_or_else(|| panic!("no audio slot of {i} carries only {from}"));
        (s.packets, s.red, s.audio_unlike_mic, s.holes())
    };
    for (i, from) in [(a, b), (b, a)] {
        let (packets, red, unlike, holes) = got(&net, i, from);
        assert!(packets > 100, "{i} from {from}: {packets} packets");
        assert_eq!((red, unlike, holes), (packets, 0, 0), "{i} from {from}");
    }
    // The page without RED gets the primary blocks, as Opus.
    for from in [a, b] {
        let (packets, red, unlike, holes) = got(&net, c, from);
        assert!(packets > 100, "c from {from}: {packets} packets");
        assert_eq!((red, unlike, holes), (0, 0, 0), "c from {from}");
    }
    // Plain Opus stays plain for the pages with RED.
    for i in [a, b] {
        let (packets, red, unlike, _) = got(&net, i, c);
        assert!(packets > 100 && red == 0 && unlike == 0, "{i} from c");
    }
}

#[test]
fn an_offer_with_red_gets_red_first_and_dtx_asked() {
    let answer = answer_to(|now, addr| {
        Participant::offer_as(
            now,
            addr,
            1,
            Offer {
                red: true,
                ..Offer::slots(1, 1)
            },
        )
    });
    let pt_of = |name: &str| {
        answer
            .lines()
            .filter_map(|l| l.strip_prefix("a=rtpmap:"))
            .find(|l| l.contains(name))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {name} in {answer}"))
            .to_string()
    };
    let (red, opus) = (pt_of("red/48000"), pt_of("opus/48000"));
    let mline = answer.lines().find(|l| l.starts_with("m=audio")).unwrap();
    assert_eq!(
        mline.split_whitespace().nth(3),
        Some(red.as_str()),
        "{mline}"
    );
    let fmtp = answer
        .lines()
        .find(|l| l.starts_with(&format!("a=fmtp:{opus} ")))
        .unwrap_or_else(|| panic!("no Opus fmtp: {answer}"));
    assert!(
        fmtp.ends_with(";usedtx=1") && fmtp.contains("useinbandfec=1"),
        "{fmtp}"
    );
}
