//! Meetings across nodes in the forwarding core: several cores (a district and its
//! communes), each with its own real WebRTC participants (str0m clients), joined by
//! trunks that the test carries between them as the federation link does, over
//! simulated time. Checks that everyone sees and hears everyone, that each track crosses
//! each trunk once and only in the layers someone behind it needs.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use xaso_sfu::participant::{Offer, Participant};
use xaso_sfu::{Core, Input, Output, Proto, SessionId, SlotsUpdate, TrackKind, Transmit};

const ROOM: i64 = 7;

/// One end of a trunk: (core, its trunk id).
type End = (usize, u64);
/// A packet that crossed a trunk: (publisher, track, rid, seq) in the sender's ids.
type Crossed = (SessionId, TrackKind, Option<String>, u64);

struct Tree {
    now: Instant,
    cores: Vec<Core>,
    servers: Vec<SocketAddr>,
    /// (core, id in that core, address, participant).
    parts: Vec<(usize, SessionId, SocketAddr, Participant)>,
    flight: Vec<(Instant, Transmit)>,
    /// Each trunk's two ends.
    trunks: Vec<(End, End)>,
    /// Packets each core sent on each of its trunks: (core, trunk) → (publisher, track,
    /// rid, seq) in the sender's ids.
    crossed: HashMap<End, Vec<Crossed>>,
    slots: Vec<(usize, SlotsUpdate)>,
    /// Trunk traffic held back (a link that is down).
    cut: HashSet<usize>,
}

impl Tree {
    fn new(n: usize) -> Tree {
        xaso_sfu::init_crypto();
        Tree {
            now: Instant::now(),
            cores: (0..n)
                .map(|i| Core::new(7 + i as u64).without_estimate())
                .collect(),
            servers: (0..n)
                .map(|i| SocketAddr::from(([127, 0, 1, i as u8 + 1], 5000)))
                .collect(),
            parts: Vec::new(),
            flight: Vec::new(),
            trunks: Vec::new(),
            crossed: HashMap::new(),
            slots: Vec::new(),
            cut: HashSet::new(),
        }
    }

    /// Joins cores `a` and `b` by a trunk into the room.
    fn link(&mut self, a: usize, b: usize) -> usize {
        let id = self.trunks.len() as u64 + 1;
        self.cores[a].open_trunk(ROOM, id);
        self.cores[b].open_trunk(ROOM, id);
        self.trunks.push(((a, id), (b, id)));
        self.trunks.len() - 1
    }

    fn join(&mut self, core: usize, o: Offer) -> usize {
        let n = self.parts.len();
        let addr = SocketAddr::from(([127, 0, 2, 1], 6000 + n as u16));
        let (mut p, offer, tracks) = Participant::offer_as(self.now, addr, n as u8 + 1, o);
        let (id, answer) = self.cores[core]
            .join(
                self.now,
                ROOM,
                &offer,
                &tracks,
                &[(Proto::Udp, self.servers[core])],
            )
            .expect("the core answers");
        p.answer(&answer).expect("the participant takes the answer");
        self.parts.push((core, id, addr, p));
        n
    }

    /// The far end of core `c`'s trunk `t`, unless that trunk is cut.
    fn far(&self, c: usize, t: u64) -> Option<End> {
        let i = self
            .trunks
            .iter()
            .position(|(a, b)| *a == (c, t) || *b == (c, t))?;
        if self.cut.contains(&i) {
            return None;
        }
        let (a, b) = self.trunks[i];
        Some(if a == (c, t) { b } else { a })
    }

    fn poll(&mut self) {
        let now = self.now;
        let mut work = true;
        while work {
            work = false;
            for c in 0..self.cores.len() {
                while let Some(o) = self.cores[c].poll_output() {
                    work = true;
                    match o {
                        Output::Transmit(t) => self.flight.push((now, t)),
                        Output::Slots(u) => self.slots.push((c, u)),
                        Output::TrunkRtp {
                            trunk,
                            publisher,
                            packet,
                        } => {
                            self.crossed.entry((c, trunk)).or_default().push((
                                publisher,
                                packet.track,
                                packet.rid.clone(),
                                packet.seq,
                            ));
                            if let Some((fc, ft)) = self.far(c, trunk) {
                                self.cores[fc].trunk_rtp(now, ft, publisher, packet);
                            }
                        }
                        Output::TrunkPublish {
                            trunk,
                            publisher,
                            tracks,
                        } => {
                            if let Some((fc, ft)) = self.far(c, trunk) {
                                self.cores[fc].trunk_publish(now, ft, publisher, tracks);
                            }
                        }
                        Output::TrunkUnpublish { trunk, publisher } => {
                            if let Some((fc, ft)) = self.far(c, trunk) {
                                self.cores[fc].trunk_unpublish(ft, publisher);
                            }
                        }
                        Output::TrunkWant { trunk, wants } => {
                            if let Some((fc, ft)) = self.far(c, trunk) {
                                self.cores[fc].trunk_want(now, ft, &wants);
                            }
                        }
                        Output::TrunkKeyframe {
                            trunk,
                            publisher,
                            track,
                            rid,
                        } => {
                            if let Some((fc, _)) = self.far(c, trunk) {
                                self.cores[fc].trunk_keyframe(
                                    now,
                                    publisher,
                                    track,
                                    rid.as_deref(),
                                );
                            }
                        }
                        Output::Layers { peer, active, .. } => {
                            if let Some(p) = self.parts.iter_mut().find(|x| x.0 == c && x.1 == peer)
                            {
                                p.3.paused = ["l", "m", "h"]
                                    .into_iter()
                                    .filter(|r| !active.iter().any(|a| a == r))
                                    .map(Into::into)
                                    .collect();
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Moves time on by `d` in 5 ms steps, everyone publishing audio every 20 ms and video
    /// every 40 ms.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        let mut step = 0u64;
        while self.now < end {
            let now = self.now;
            let mut out = Vec::new();
            for (_, _, _, p) in self.parts.iter_mut() {
                if p.timeout() <= now {
                    p.handle_timeout(now, &mut out);
                }
                if step.is_multiple_of(4) {
                    p.send_audio(now, &mut out);
                }
                if step.is_multiple_of(8) {
                    p.send_video(now, 50, 3000, &mut out);
                }
            }
            self.flight.extend(out.into_iter().map(|t| (now, t)));
            let arrived: Vec<(Instant, Transmit)> = std::mem::take(&mut self.flight);
            for (_, t) in arrived {
                let mut out = Vec::new();
                if let Some(p) = self.parts.iter_mut().find(|x| x.2 == t.destination) {
                    p.3.handle_receive(now, t.source, t.destination, &t.contents, &mut out);
                } else if let Some(c) = self.servers.iter().position(|s| *s == t.destination) {
                    self.cores[c].handle_input(
                        now,
                        Input::Datagram {
                            proto: Proto::Udp,
                            source: t.source,
                            destination: t.destination,
                            data: &t.contents,
                        },
                    );
                }
                self.flight.extend(out.into_iter().map(|t| (now, t)));
                self.poll();
            }
            for c in &mut self.cores {
                c.handle_input(now, Input::Timeout);
            }
            self.poll();
            self.now += Duration::from_millis(5);
            step += 1;
        }
    }

    fn part(&self, i: usize) -> &Participant {
        &self.parts[i].3
    }

    /// The tags of the publishers participant `i`'s video (audio) slots carried.
    fn from(&self, i: usize, video: bool) -> Vec<u8> {
        let p = self.part(i);
        let mids = if video {
            &p.video_slots
        } else {
            &p.audio_slots
        };
        let mut v: Vec<u8> = mids
            .iter()
            .flat_map(|m| p.slots[m].publishers.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The last slot report of participant `peer` at core `c`.
    fn last_slots(&self, c: usize, peer: SessionId) -> &SlotsUpdate {
        &self
            .slots
            .iter()
            .rev()
            .find(|(x, u)| *x == c && u.peer == peer)
            .expect("a slot report")
            .1
    }

    /// Packets core `c` sent on trunk `t`, and how many of them were duplicates.
    fn crossed(&self, c: usize, t: u64) -> (usize, usize) {
        let v = self.crossed.get(&(c, t)).map_or(&[][..], Vec::as_slice);
        let unique: HashSet<_> = v.iter().collect();
        (v.len(), v.len() - unique.len())
    }
}

/// A district (core 0) with two communes (cores 1 and 2), and one participant at the
/// district: everyone sees and hears the three others, each track crossing each trunk
/// once, with continuous numbering.
#[test]
fn participants_at_three_nodes_see_and_hear_each_other_through_the_district() {
    let mut t = Tree::new(3);
    t.link(0, 1);
    t.link(0, 2);
    for core in [1, 1, 2, 0] {
        t.join(core, Offer::slots(4, 4));
    }
    t.run(Duration::from_secs(4));
    for i in 0..4 {
        let p = t.part(i);
        assert!(p.connected, "participant {i} connected");
        let others: Vec<u8> = (1..=4).filter(|x| *x != p.tag).collect();
        assert_eq!(t.from(i, true), others, "participant {i} sees the others");
        assert_eq!(t.from(i, false), others, "participant {i} hears the others");
        for m in p.video_slots.iter().chain(&p.audio_slots) {
            let s = &p.slots[m];
            if s.packets > 0 {
                assert_eq!(s.holes(), 0, "slot {m} of {i}: no holes");
            }
        }
        for m in &p.video_slots {
            let s = &p.slots[m];
            if s.packets > 0 {
                assert!(s.frames >= 50, "slot {m} of {i}: {} frames", s.frames);
                assert_eq!(s.runs_started_on_keyframe(), vec![true], "{m} of {i}");
            }
        }
    }
    // Commune 1's two participants cross to the district once each, whatever number of
    // subscribers behind it (the district's own and commune 2's); none goes twice.
    for (c, tr) in [(1, 1), (0, 1), (2, 2), (0, 2)] {
        let (n, dup) = t.crossed(c, tr);
        assert!(n > 0, "core {c} sent on trunk {tr}");
        assert_eq!(dup, 0, "core {c} sent no packet twice on trunk {tr}");
    }
    // Commune 1 sends its two participants' tracks (4 tracks) and the district sends the
    // other two participants' (4 tracks): the same order of packets each way.
    let publishers = |c: usize, tr: u64| -> HashSet<(SessionId, TrackKind)> {
        t.crossed[&(c, tr)].iter().map(|x| (x.0, x.1)).collect()
    };
    assert_eq!(
        publishers(1, 1).len(),
        4,
        "two participants' mic and camera up"
    );
    assert_eq!(publishers(0, 1).len(), 4, "two others' down to commune 1");
    assert_eq!(publishers(0, 2).len(), 6, "three others' down to commune 2");
}

/// A simulcast publisher at commune 1 shown small at commune 2: only its low layer
/// crosses either trunk; shown large at the district, the high layer crosses the first
/// trunk only.
#[test]
fn only_the_layers_someone_behind_a_trunk_needs_cross_it() {
    let mut t = Tree::new(3);
    t.link(0, 1);
    t.link(0, 2);
    let a = t.join(
        1,
        Offer {
            simulcast: true,
            ..Offer::slots(1, 1)
        },
    );
    let b = t.join(2, Offer::slots(1, 1));
    t.run(Duration::from_secs(1));
    // The remote ids of A at the district and at commune 2, from their slot reports.
    let id_of_a = |t: &Tree, c: usize| -> SessionId {
        t.slots
            .iter()
            .rev()
            .filter(|(x, _)| *x == c)
            .flat_map(|(_, u)| u.video.iter().filter_map(|(_, f)| *f))
            .map(|f| f.publisher)
            .next()
            .expect("a video slot carries A")
    };
    let b_id = t.parts[b].1;
    let a_at_2 = id_of_a(&t, 2);
    t.cores[2].set_view(b_id, &[(a_at_2, 120)]);
    t.run(Duration::from_secs(3));
    assert_eq!(t.from(b, true), vec![t.part(a).tag], "B sees A");
    let layers = |t: &Tree, c: usize, tr: u64, since: usize| -> HashSet<Option<String>> {
        t.crossed[&(c, tr)][since..]
            .iter()
            .filter(|x| x.1 == TrackKind::Camera)
            .map(|x| x.2.clone())
            .collect()
    };
    let l = HashSet::from([Some("l".to_string())]);
    let mark_up = t.crossed[&(1, 1)].len();
    let mark_down = t.crossed[&(0, 2)].len();
    t.run(Duration::from_secs(2));
    assert_eq!(layers(&t, 1, 1, mark_up), l, "only l goes up");
    assert_eq!(layers(&t, 0, 2, mark_down), l, "only l goes down");
    // A district participant who shows A large: h goes up to the district, and still only
    // l goes on to commune 2.
    let d = t.join(0, Offer::slots(1, 1));
    t.run(Duration::from_millis(500));
    let d_id = t.parts[d].1;
    let a_at_0 = t
        .slots
        .iter()
        .rev()
        .filter(|(c, u)| *c == 0 && u.peer == d_id)
        .flat_map(|(_, u)| u.video.iter().filter_map(|(_, f)| *f))
        .map(|f| f.publisher)
        .next()
        .expect("D's slot carries A");
    t.cores[0].set_view(d_id, &[(a_at_0, 720)]);
    t.run(Duration::from_secs(4));
    let mark_up = t.crossed[&(1, 1)].len();
    let mark_down = t.crossed[&(0, 2)].len();
    t.run(Duration::from_secs(1));
    assert!(
        layers(&t, 1, 1, mark_up).contains(&Some("h".into())),
        "h goes up for the district: {:?}",
        layers(&t, 1, 1, mark_up)
    );
    assert_eq!(layers(&t, 0, 2, mark_down), l, "still only l to commune 2");
    let p = t.part(d);
    let s = &p.slots[&p.video_slots[0]];
    assert_eq!(s.last_layer, Some(3), "the district shows A's high layer");
}

/// A trunk that goes down takes its publishers out of the rooms at both ends; opened
/// again, they come back and media flows again without anyone rejoining.
#[test]
fn a_trunk_closed_and_opened_again_brings_the_far_side_back() {
    let mut t = Tree::new(2);
    let tr = t.link(0, 1);
    let a = t.join(0, Offer::slots(2, 2));
    let b = t.join(1, Offer::slots(2, 2));
    t.run(Duration::from_secs(2));
    assert_eq!(t.from(a, true), vec![t.part(b).tag]);
    t.cut.insert(tr);
    t.cores[0].close_trunk(1);
    t.cores[1].close_trunk(1);
    t.run(Duration::from_millis(300));
    let last = |t: &Tree, c: usize, peer: SessionId| -> SlotsUpdate {
        t.slots
            .iter()
            .rev()
            .find(|(x, u)| *x == c && u.peer == peer)
            .map(|x| x.1.clone())
            .expect("a report")
    };
    let u = last(&t, 0, t.parts[a].1);
    assert!(
        u.video.iter().all(|(_, f)| f.is_none()),
        "A's slots are empty once the trunk is gone: {u:?}"
    );
    let before = t.part(a).slots.values().map(|s| s.frames).sum::<u64>();
    t.cut.clear();
    t.cores[0].open_trunk(ROOM, 1);
    t.cores[1].open_trunk(ROOM, 1);
    t.run(Duration::from_secs(2));
    let after = t.part(a).slots.values().map(|s| s.frames).sum::<u64>();
    assert!(
        after > before + 20,
        "B's video flows to A again: {before} → {after}"
    );
}

/// The publishers (district ids) whose camera crossed trunk 1 down to the commune over
/// the next `d`.
fn pictures_within(t: &mut Tree, d: Duration) -> HashSet<SessionId> {
    let mark = t.crossed[&(0, 1)].len();
    t.run(d);
    t.crossed[&(0, 1)][mark..]
        .iter()
        .filter(|x| x.1 == TrackKind::Camera)
        .map(|x| x.0)
        .collect()
}

/// A commune whose link has room for every voice and two small pictures: it asks for all
/// the audio and the two best ranked videos at their lowest layer, its participant's
/// slots carry those, and nothing else crosses; the budget lifted, everyone comes.
#[test]
fn a_narrow_link_gets_every_voice_and_the_pictures_that_fit() {
    let mut t = Tree::new(2);
    t.link(0, 1);
    let speakers: Vec<usize> = (0..6)
        .map(|_| {
            t.join(
                0,
                Offer {
                    simulcast: true,
                    ..Offer::slots(1, 1)
                },
            )
        })
        .collect();
    let c = t.join(1, Offer::slots(6, 6));
    t.run(Duration::from_secs(2));
    // The commune's tiles are large: each would take the high layer.
    let c_id = t.parts[c].1;
    let remote_ids: Vec<SessionId> = t
        .slots
        .iter()
        .rev()
        .find(|(x, u)| *x == 1 && u.peer == c_id && u.video.iter().all(|v| v.1.is_some()))
        .expect("the commune's slots carry the district's six")
        .1
        .video
        .iter()
        .filter_map(|v| v.1.map(|f| f.publisher))
        .collect();
    let view: Vec<(SessionId, u32)> = remote_ids.iter().map(|id| (*id, 720)).collect();
    t.cores[1].set_view(c_id, &view);
    t.run(Duration::from_secs(4));
    assert_eq!(
        t.from(c, true).len(),
        6,
        "without a budget, all six pictures"
    );

    // Room for the six voices (about 58 kbit/s each on the link) and two pictures of
    // 167 kbit/s, not for a third nor for a better layer.
    t.cores[1].set_trunk_budget(1, Some(760_000));
    t.run(Duration::from_secs(3));
    let mark = t.crossed[&(0, 1)].len();
    t.run(Duration::from_secs(2));
    let since = &t.crossed[&(0, 1)][mark..];
    let videos: HashSet<(SessionId, Option<String>)> = since
        .iter()
        .filter(|x| x.1 == TrackKind::Camera)
        .map(|x| (x.0, x.2.clone()))
        .collect();
    let voices: HashSet<SessionId> = since
        .iter()
        .filter(|x| x.1 == TrackKind::Mic)
        .map(|x| x.0)
        .collect();
    assert_eq!(voices.len(), 6, "every voice crosses: {voices:?}");
    assert_eq!(
        videos.len(),
        2,
        "two pictures cross, at one layer each: {videos:?}"
    );
    assert!(
        videos.iter().all(|v| v.1.as_deref() == Some("l")),
        "at the lowest layer: {videos:?}"
    );
    let p = t.part(c);
    let carrying: Vec<_> = p
        .video_slots
        .iter()
        .filter(|m| !p.slots[*m].publishers.is_empty())
        .collect();
    assert!(!carrying.is_empty());
    let last = t.last_slots(1, c_id);
    let given = last.video.iter().filter(|v| v.1.is_some()).count();
    assert_eq!(given, 2, "two tiles are given a picture: {last:?}");
    let heard = last.audio.iter().filter(|v| v.1.is_some()).count();
    assert_eq!(heard, 6, "all six are heard: {last:?}");

    // The last of the six speaks: the active speaker's picture is one of the two.
    let last_speaker = speakers[5];
    t.parts[last_speaker].3.level = 20;
    t.run(Duration::from_secs(3));
    let district_id = t.parts[last_speaker].1;
    let pictures = pictures_within(&mut t, Duration::from_secs(1));
    assert!(
        pictures.contains(&district_id) && pictures.len() == 2,
        "the speaker ({district_id}) among two pictures: {pictures:?}"
    );
    assert!(
        t.from(c, true).contains(&t.part(last_speaker).tag),
        "the commune shows the speaker"
    );

    // The commune's official asks to see one whose picture does not fit (a focus): it is
    // asked for over the trunk, ranked right after the speaker, and takes the first tile.
    let given = |t: &Tree| -> Vec<SessionId> {
        let last = t.last_slots(1, c_id);
        last.video
            .iter()
            .filter_map(|v| v.1.map(|f| f.publisher))
            .collect()
    };
    let shown = given(&t);
    let wanted = *remote_ids
        .iter()
        .find(|id| !shown.contains(id))
        .expect("someone not shown");
    t.cores[1].set_focus(c_id, Some(wanted));
    t.run(Duration::from_secs(3));
    let last = t.last_slots(1, c_id).clone();
    assert_eq!(
        last.video[0].1.map(|f| f.publisher),
        Some(wanted),
        "the focus takes the first tile: {last:?}"
    );
    assert_eq!(given(&t).len(), 2, "still two pictures: {last:?}");
    let pictures = pictures_within(&mut t, Duration::from_secs(1));
    assert_eq!(pictures.len(), 2, "{pictures:?}");
    assert!(
        pictures.contains(&district_id),
        "the speaker still: {pictures:?}"
    );
    t.cores[1].set_focus(c_id, None);

    // The chair (featured: the meetings hub names them at every node) is seen by all
    // whether they speak or not: their picture is one of the two.
    let shown = given(&t);
    let chair = *remote_ids
        .iter()
        .find(|id| !shown.contains(id) && **id != wanted)
        .expect("someone else not shown");
    t.cores[1].set_featured(ROOM, Some(chair));
    t.run(Duration::from_secs(3));
    let now_given = given(&t);
    assert!(
        now_given.contains(&chair),
        "the chair's picture is given: {now_given:?}"
    );
    assert_eq!(now_given.len(), 2, "{now_given:?}");
    t.cores[1].set_featured(ROOM, None);

    // Lifted: the six again, and better layers.
    t.cores[1].set_trunk_budget(1, None);
    t.run(Duration::from_secs(5));
    let mark = t.crossed[&(0, 1)].len();
    t.run(Duration::from_secs(1));
    let videos: HashSet<(SessionId, Option<String>)> = t.crossed[&(0, 1)][mark..]
        .iter()
        .filter(|x| x.1 == TrackKind::Camera)
        .map(|x| (x.0, x.2.clone()))
        .collect();
    let pictures: HashSet<SessionId> = videos.iter().map(|v| v.0).collect();
    assert_eq!(pictures.len(), 6, "{videos:?}");
    assert!(
        videos.iter().any(|v| v.1.as_deref() == Some("h")),
        "{videos:?}"
    );
}
