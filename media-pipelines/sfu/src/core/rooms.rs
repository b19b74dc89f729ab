//! A room's decisions: what each participant's slots carry ([`Core::assign_room`]: screens,
//! the featured participant, the last to have spoken; a participant's own focus first),
//! which simulcast layer each video slot gets within its estimate
//! ([`Core::allocate_room`]), and the active speaker ([`Core::tick_rooms`]).

use super::*;

impl Core {
    /// Participant `id` asks to see `publisher`'s camera, here or at another node, whether
    /// they speak or not (the chair looking at one commune of two hundred); `None`: back
    /// to the ranking. The focused picture takes the first video slot; a trunk's budget on
    /// the way ranks it right after the active speaker.
    pub fn set_focus(&mut self, id: SessionId, publisher: Option<SessionId>) {
        let Some(room) = self
            .rooms
            .iter()
            .find(|(_, r)| r.peers.contains(&id))
            .map(|(k, _)| *k)
        else {
            return;
        };
        let r = self.rooms.get_mut(&room).expect("found");
        let before = match publisher {
            Some(p) => r.focus.insert(id, p),
            None => r.focus.remove(&id),
        };
        if before != publisher {
            self.timeout_due = false;
            self.assign_room(room);
        }
    }

    /// Whose picture every participant of `room` gets, speaking or not (the chair, here or
    /// at another node), after screens and before the last speakers.
    pub fn set_featured(&mut self, room: RoomId, publisher: Option<SessionId>) {
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if r.featured != publisher {
            r.featured = publisher;
            self.timeout_due = false;
            self.assign_room(room);
        }
    }

    /// Chooses the simulcast layer of every video slot in `room` ([`allocate`]), asks for
    /// keyframes of newly chosen layers, and tells publishers which layers anyone wants
    /// ([`Output::Layers`]; the others are paused at the page).
    pub(super) fn allocate_room(&mut self, now: Instant, room: RoomId) {
        // What the trunks' budgets allow, with what the tiles took last time.
        if self.apply_budgets(room) {
            self.assign_room(room);
        }
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let ids = r.peers.clone();
        // Each feed's layers that can be chosen, and the stalled ones ([`Peer::layer_choice`]):
        // a stalled layer is not offered, as a slot on it would show a frozen picture.
        // While a tile would take it if it arrived, it is not paused either, so that the
        // page sends it as soon as its estimate allows (it is then offered again).
        let mut choice: HashMap<Feed, LayerChoice> = HashMap::new();
        for id in &ids {
            if let Some(p) = self.peers.get(id) {
                for t in p.published.iter().filter(|t| t.track.is_video()) {
                    let feed = Feed {
                        publisher: *id,
                        track: t.track,
                    };
                    choice.insert(feed, p.layer_choice(t.mid, t.track, now));
                }
            }
        }
        for id in &r.remotes {
            if let Some(x) = self.remote_peers.get(id) {
                for t in x.tracks.iter().filter(|t| t.track.is_video()) {
                    if let Some(c) = x.layer_choice(t.track) {
                        let feed = Feed {
                            publisher: *id,
                            track: t.track,
                        };
                        choice.insert(feed, c);
                    }
                }
            }
        }
        // What each participant's microphone sends now (RED doubles it): the audio a
        // subscriber gets comes out of its estimate before the video is chosen.
        let mic: HashMap<SessionId, u64> = ids
            .iter()
            .filter_map(|id| self.peers.get(id).map(|p| (*id, p.mic_bps(now))))
            .chain(
                r.remotes
                    .iter()
                    .filter_map(|id| self.remote_peers.get(id).map(|x| (*id, x.mic_bps()))),
            )
            .collect();
        let mut keyframes = Vec::new();
        let mut wanted: HashMap<Feed, Vec<Option<Rid>>> = HashMap::new();
        // Each remote video's best layer any tile here would take (for its trunk's budget).
        let mut ideal_of: HashMap<Feed, usize> = HashMap::new();
        // Stalled layers a tile would take if they arrived: kept on at their page.
        let mut awaited: HashSet<(Feed, Option<Rid>)> = HashSet::new();
        for sid in &ids {
            let Some(sub) = self.peers.get_mut(sid) else {
                continue;
            };
            let slots: Vec<(usize, Feed)> = sub
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.video)
                .filter_map(|(i, s)| s.feed.map(|f| (i, f)))
                .collect();
            let wants: Vec<Want> = slots
                .iter()
                .map(|(_, f)| Want {
                    layers: choice
                        .get(f)
                        .map(|c| c.usable.iter().map(|x| x.1).collect())
                        .unwrap_or_default(),
                    tile_height: sub.view.get(&f.publisher).copied(),
                    screen: f.track == TrackKind::Screen,
                })
                .collect();
            // 85 % of the estimate, less the audio it receives, for video: RTCP and
            // retransmissions need room too.
            let audio: u64 = sub
                .slots
                .iter()
                .filter(|s| !s.video)
                .filter_map(|s| s.feed.and_then(|f| mic.get(&f.publisher)))
                .sum();
            let budget = sub.bwe_bps.map(|b| (b * 85 / 100).saturating_sub(audio));
            let pick = allocate(budget, &wants);
            // The same with the stalled layers offered as if they arrived.
            let stalled = |f: &Feed| choice.get(f).filter(|c| !c.stalled.is_empty());
            let with_stalled: Vec<Want> = slots
                .iter()
                .zip(&wants)
                .map(|((_, f), w)| match stalled(f) {
                    Some(c) => Want {
                        layers: c.all.iter().map(|x| x.1).collect(),
                        ..*w
                    },
                    None => w.clone(),
                })
                .collect();
            if slots.iter().any(|(_, f)| stalled(f).is_some()) {
                for ((_, f), k) in slots.iter().zip(allocate(budget, &with_stalled)) {
                    if let Some(c) = stalled(f) {
                        awaited.insert((*f, c.all[k.min(c.all.len() - 1)].0));
                    }
                }
            }
            // What the tiles would take at their best, with the audio and room for RTCP:
            // the estimator probes toward it. Stalled layers count (a page leaves out its
            // top layers until its own estimate grows: the way to them must be open when
            // they come).
            let ideal = allocate(None, &with_stalled);
            for ((_, f), k) in slots.iter().zip(&ideal) {
                if self.remote_peers.contains_key(&f.publisher) {
                    let e = ideal_of.entry(*f).or_default();
                    *e = (*e).max(*k);
                }
            }
            sub.set_bitrate(
                cost(&wants, &pick),
                (cost(&with_stalled, &ideal) + audio) * 100 / 85 + 100_000,
            );
            tracing::debug!(peer = sid, bwe = ?sub.bwe_bps, audio, ?wants, ?pick, "simulcast allocation");
            for ((i, f), k) in slots.into_iter().zip(pick) {
                // (A feed whose other layers stalled has one usable layer: the slot goes
                // to it. Only a feed without simulcast has nothing to choose.)
                let Some(ls) = choice
                    .get(&f)
                    .filter(|c| c.all.len() > 1)
                    .map(|c| &c.usable)
                else {
                    continue;
                };
                let rid = ls[k.min(ls.len() - 1)].0;
                let s = &mut sub.slots[i];
                // Hysteresis: a first choice applies at once; a step down once chosen for
                // 1 s, a step up for 3 s (each switch costs a keyframe).
                let index = |r: Option<Rid>| ls.iter().position(|x| x.0 == r);
                let apply = match (s.want, s.pending) {
                    (w, _) if w == rid => {
                        s.pending = None;
                        false
                    }
                    (None, _) => true,
                    // The layer wanted is no longer offered (it stopped arriving): at once.
                    (w, _) if index(w).is_none() => true,
                    (w, Some((p, since))) if p == rid => {
                        let hold = if index(rid) < index(w) {
                            LAYER_DOWN_HOLD
                        } else {
                            LAYER_UP_HOLD
                        };
                        now.saturating_duration_since(since) >= hold
                    }
                    _ => {
                        s.pending = Some((rid, now));
                        false
                    }
                };
                if apply {
                    let (from, to) = (s.want, rid);
                    tracing::debug!(peer = sid, feed = ?f, ?from, ?to, usable = ?ls, "slot layer");
                    s.want = rid;
                    s.pending = None;
                    if s.layer != rid {
                        keyframes.push((f, rid));
                    }
                }
                wanted.entry(f).or_default().extend([rid, s.layer]);
            }
        }
        for (f, rid) in keyframes {
            self.ask_keyframe_of(now, f, rid);
        }
        // Layers a trunk needs run too.
        for (f, rid) in self.trunk_layers(room) {
            wanted.entry(f).or_default().push(rid);
        }
        // What other trunks need of a remote video counts in its ideal too.
        if let Some(r) = self.rooms.get(&room) {
            for tid in &r.trunks {
                let Some(t) = self.trunks.get(tid) else {
                    continue;
                };
                for (p, k, rid) in &t.wants {
                    let feed = Feed {
                        publisher: *p,
                        track: *k,
                    };
                    let Some(c) = choice.get(&feed) else { continue };
                    if let Some(i) = c.all.iter().position(|l| l.0 == *rid) {
                        let e = ideal_of.entry(feed).or_default();
                        *e = (*e).max(i);
                    }
                }
            }
            let remotes: HashSet<SessionId> = r.remotes.iter().copied().collect();
            self.trunk_ideal
                .retain(|f, _| !remotes.contains(&f.publisher));
        }
        self.trunk_ideal.extend(ideal_of);
        for (f, c) in &choice {
            if c.all.len() < 2 || f.track != TrackKind::Camera {
                continue;
            }
            // The lowest layer always runs, so that a newcomer gets a picture at once (even
            // while it looks stalled: it is the one the page drops last).
            let w = wanted.get(f);
            let mut active: Vec<String> = c
                .usable
                .iter()
                .filter(|(rid, _)| w.is_some_and(|w| w.contains(rid)))
                .map(|(rid, _)| *rid)
                .chain(c.all.first().map(|(rid, _)| *rid))
                .chain(
                    c.stalled
                        .iter()
                        .filter(|r| awaited.contains(&(*f, Some(**r))))
                        .map(|r| Some(*r)),
                )
                .filter_map(|rid| rid.map(|r| r.to_string()))
                .collect();
            active.sort();
            active.dedup();
            if let Some(active) = self
                .peers
                .get_mut(&f.publisher)
                .and_then(|p| p.tell_layers(f.track, &active, now))
            {
                self.out.push_back(Output::Layers {
                    peer: f.publisher,
                    track: f.track,
                    active,
                });
            }
        }
        self.tell_trunks(room);
    }

    /// Decides what every slot of room `room` carries, and tells the pages that changed.
    pub(super) fn assign_room(&mut self, room: RoomId) {
        self.apply_budgets(room);
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let ids = r.peers.clone();
        let (featured, focus) = (r.featured, r.focus.clone());
        // Every published track: (feed, rank key) with screens first, then the featured
        // participant's camera, then the most recent speakers, then by join time.
        let class = |feed: &Feed| -> u8 {
            if feed.track == TrackKind::Screen {
                0
            } else if Some(feed.publisher) == featured {
                1
            } else {
                2
            }
        };
        let mut feeds: Vec<(Feed, u8, Option<Instant>, Instant)> = Vec::new();
        for id in &ids {
            let Some(p) = self.peers.get(id) else {
                continue;
            };
            for t in &p.published {
                let feed = Feed {
                    publisher: *id,
                    track: t.track,
                };
                feeds.push((feed, class(&feed), p.last_spoke, p.joined));
            }
        }
        for id in &r.remotes {
            if let Some(x) = self.remote_peers.get(id) {
                // (What its trunk's budget leaves out goes to no slot.)
                for t in x.tracks.iter().filter(|t| x.admits(t.track)) {
                    let feed = Feed {
                        publisher: *id,
                        track: t.track,
                    };
                    feeds.push((feed, class(&feed), x.last_spoke, x.joined));
                }
            }
        }
        for (cam, added) in &r.cameras {
            let publisher = CAMERA_PUBLISHER + *cam as u64;
            let tracks = self
                .sources
                .get(cam)
                .map(|s| s.tracks().clone())
                .unwrap_or_default();
            if tracks
                .video
                .as_ref()
                .is_some_and(|v| v.codec == Codec::H264)
            {
                let track = TrackKind::Camera;
                feeds.push((Feed { publisher, track }, 2, None, *added));
            }
            if matches!(tracks.audio, Some(Codec::Pcmu | Codec::Pcma | Codec::Opus)) {
                let track = TrackKind::Mic;
                feeds.push((Feed { publisher, track }, 2, None, *added));
            }
        }
        feeds.sort_by(|a, b| {
            a.1.cmp(&b.1)
                .then(b.2.cmp(&a.2)) // Some(later) first, None last
                .then(a.3.cmp(&b.3))
        });
        let mut keyframes = Vec::new();
        for sid in &ids {
            let Some(sub) = self.peers.get_mut(sid) else {
                continue;
            };
            let others = || feeds.iter().map(|f| f.0).filter(|f| f.publisher != *sid);
            let mut video: Vec<Feed> = others().filter(|f| f.track.is_video()).collect();
            // Its own focus first (the camera of the participant it asked to see).
            if let Some(i) = focus.get(sid).and_then(|p| {
                video
                    .iter()
                    .position(|f| f.publisher == *p && f.track == TrackKind::Camera)
            }) {
                let f = video.remove(i);
                video.insert(0, f);
            }
            let audio: Vec<Feed> = others().filter(|f| !f.track.is_video()).collect();
            let mut update = SlotsUpdate {
                peer: *sid,
                video: Vec::new(),
                audio: Vec::new(),
                need_video: video.len().min(LAST_N),
                need_audio: audio.len(),
            };
            for (is_video, ranked, cap) in [(true, &video, LAST_N), (false, &audio, usize::MAX)] {
                let current: Vec<Option<Feed>> = sub
                    .slots
                    .iter()
                    .filter(|s| s.video == is_video)
                    .map(|s| s.feed)
                    .collect();
                let mut next = choose(&current, ranked, cap).into_iter();
                for s in sub.slots.iter_mut().filter(|s| s.video == is_video) {
                    let f = next.next().flatten();
                    s.set_feed(f);
                    if let Some(f) = f.filter(|_| s.waiting()) {
                        keyframes.push(f);
                    }
                    let entry = (s.mid.to_string(), f);
                    if is_video {
                        update.video.push(entry);
                    } else {
                        update.audio.push(entry);
                    }
                }
            }
            if self.reported.get(sid) != Some(&update) {
                self.reported.insert(*sid, update.clone());
                self.out.push_back(Output::Slots(update));
            }
        }
        if let Some(now) = self.now {
            for f in keyframes {
                self.ask_keyframe(now, f);
            }
        }
        self.tell_trunks(room);
    }

    /// Every [`ROOM_TICK`]: the active speaker of each room (the loudest microphone, loud
    /// enough, for [`SPEAKER_TICKS`] ticks in a row).
    pub(super) fn tick_rooms(&mut self, now: Instant) {
        let rooms: Vec<RoomId> = self.rooms.keys().copied().collect();
        for room in rooms.iter().copied() {
            self.allocate_room(now, room);
        }
        for room in rooms {
            let Some(r) = self.rooms.get(&room) else {
                continue;
            };
            let loudest =
                r.peers
                    .iter()
                    .filter_map(|id| self.peers.get(id).map(|p| (*id, p.loudness_at(now))))
                    .chain(r.remotes.iter().filter_map(|id| {
                        self.remote_peers.get(id).map(|x| (*id, x.loudness_at(now)))
                    }))
                    .filter(|(_, l)| *l >= SPEAKER_LOUDNESS)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(id, _)| id);
            let r = self.rooms.get_mut(&room).expect("listed above");
            let Some(loudest) = loudest else {
                r.candidate = None;
                continue;
            };
            if r.speaker == Some(loudest) {
                r.candidate = None;
                self.spoke(loudest, now);
                continue;
            }
            let n = match r.candidate {
                Some((c, n)) if c == loudest => n + 1,
                _ => 1,
            };
            r.candidate = Some((loudest, n));
            if n >= SPEAKER_TICKS {
                r.speaker = Some(loudest);
                r.candidate = None;
                self.spoke(loudest, now);
                self.out.push_back(Output::Speaker {
                    room,
                    peer: loudest,
                });
                self.assign_room(room);
            }
        }
    }

    /// Notes that `id` (a participant here or behind a trunk) is speaking.
    fn spoke(&mut self, id: SessionId, now: Instant) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.last_spoke = Some(now);
        }
        if let Some(x) = self.remote_peers.get_mut(&id) {
            x.last_spoke = Some(now);
        }
    }
}
