//! Trunks: a meeting room's part at another node (federation), seen by this core as one
//! neighbour that publishes the tracks of the participants behind it and takes the
//! tracks someone behind it needs. Nothing of WebRTC: packets cross as [`TrunkRtp`] with
//! the publisher's own sequence numbers and timestamps, and each side's slots renumber
//! them as they do a local publisher's.
//!
//! What crosses a trunk (docs/design/federation.md, "Meetings across levels"):
//! - each side announces the publishers it can give ([`Output::TrunkPublish`]: this
//!   node's participants and those of its other trunks, never the trunk's own), with each
//!   track's simulcast layers and their bitrates;
//! - each side says which of the other's tracks and layers its slots (or its other
//!   trunks) need ([`Output::TrunkWant`]); only those are sent, each once, whatever the
//!   number of subscribers behind the trunk;
//! - keyframe requests of a remote track go to its trunk ([`Output::TrunkKeyframe`]).
//!
//! Publisher ids are each core's own: a remote publisher gets a local [`SessionId`], and
//! the trunk translates (`far` ids are the other side's).

use super::budget::Cap;
use super::*;
use crate::peer::{LayerChoice, Loudness};
use std::sync::Arc;

/// A trunk, named by the caller (one per meeting on one federation link).
pub type TrunkId = u64;

/// A published packet as it crosses a trunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkRtp {
    pub track: TrackKind,
    pub rid: Option<String>,
    /// The publisher's payload type (kept: a slot maps it to its own for the codec).
    pub pt: u8,
    pub codec: TrunkCodec,
    /// A RED payload (RFC 2198) around `codec`.
    pub red: bool,
    /// The publisher's extended sequence number, of its layer.
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub audio_level: Option<u8>,
    pub payload: Arc<[u8]>,
}

/// The codecs a trunk carries, as numbers for the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TrunkCodec {
    Opus = 1,
    Pcmu = 2,
    Pcma = 3,
    Vp8 = 4,
    Vp9 = 5,
    H264 = 6,
    Av1 = 7,
    H265 = 8,
}

impl TrunkCodec {
    pub fn from_u8(b: u8) -> Option<TrunkCodec> {
        use TrunkCodec::*;
        [Opus, Pcmu, Pcma, Vp8, Vp9, H264, Av1, H265]
            .into_iter()
            .find(|c| *c as u8 == b)
    }

    fn of(c: RtcCodec) -> Option<TrunkCodec> {
        Some(match c {
            RtcCodec::Opus => TrunkCodec::Opus,
            RtcCodec::PCMU => TrunkCodec::Pcmu,
            RtcCodec::PCMA => TrunkCodec::Pcma,
            RtcCodec::Vp8 => TrunkCodec::Vp8,
            RtcCodec::Vp9 => TrunkCodec::Vp9,
            RtcCodec::H264 => TrunkCodec::H264,
            RtcCodec::Av1 => TrunkCodec::Av1,
            RtcCodec::H265 => TrunkCodec::H265,
            _ => return None,
        })
    }

    fn rtc(self) -> RtcCodec {
        match self {
            TrunkCodec::Opus => RtcCodec::Opus,
            TrunkCodec::Pcmu => RtcCodec::PCMU,
            TrunkCodec::Pcma => RtcCodec::PCMA,
            TrunkCodec::Vp8 => RtcCodec::Vp8,
            TrunkCodec::Vp9 => RtcCodec::Vp9,
            TrunkCodec::H264 => RtcCodec::H264,
            TrunkCodec::Av1 => RtcCodec::Av1,
            TrunkCodec::H265 => RtcCodec::H265,
        }
    }
}

/// A track a trunk's side can give: its simulcast layers (`None` without simulcast),
/// lowest first, with their bitrates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkTrack {
    pub track: TrackKind,
    pub layers: Vec<(Option<String>, u64)>,
}

/// A track (and layer) one side of a trunk needs of the other's publisher `publisher`
/// (in the other side's ids).
pub type TrunkWant = (u64, TrackKind, Option<String>);

/// Keyframe requests to a remote publisher, at most one each this often per layer.
const TRUNK_PLI_EVERY: Duration = Duration::from_millis(300);

#[derive(Default)]
pub(super) struct Trunk {
    pub room: RoomId,
    /// The far side's publisher id → ours.
    pub far: HashMap<u64, SessionId>,
    /// What the far side needs of our publishers (ours ids).
    pub wants: HashSet<(SessionId, TrackKind, Option<Rid>)>,
    /// What we last asked of the far side, and last announced to it.
    asked: Vec<TrunkWant>,
    told: HashMap<SessionId, Vec<TrunkTrack>>,
    /// What this side may ask for over the trunk, bits per second (`None`: no limit known).
    pub budget: Option<u64>,
}

/// A publisher at another node, behind a trunk.
pub(super) struct Remote {
    pub trunk: TrunkId,
    pub far: u64,
    pub tracks: Vec<TrunkTrack>,
    pub joined: Instant,
    pub last_spoke: Option<Instant>,
    loudness: Loudness,
    pli_at: HashMap<(TrackKind, Option<Rid>), Instant>,
    /// What its trunk's budget allows of each track (none: all of it).
    pub(super) caps: HashMap<TrackKind, Cap>,
}

impl Remote {
    pub fn loudness_at(&self, now: Instant) -> f32 {
        self.loudness.at(now)
    }

    /// The track's layers as the allocator takes them: those its trunk's budget allows are
    /// usable, the ones above them are given as stalled (a tile's ideal still counts them).
    /// The node that has the publisher keeps its stalled ones out of its announcement.
    pub fn layer_choice(&self, track: TrackKind) -> Option<LayerChoice> {
        let t = self.tracks.iter().find(|t| t.track == track)?;
        let all: Vec<(Option<Rid>, u64)> = t
            .layers
            .iter()
            .map(|(r, b)| (r.as_deref().map(Rid::from), *b))
            .collect();
        let upto = match self.caps.get(&track) {
            Some(Cap::Out) => return None,
            Some(Cap::Upto(i)) => (*i + 1).min(all.len()),
            None => all.len(),
        };
        Some(LayerChoice {
            usable: all[..upto].to_vec(),
            stalled: all[upto..].iter().filter_map(|l| l.0).collect(),
            all,
        })
    }

    /// Whether its trunk's budget lets any of `track` be asked for.
    pub fn admits(&self, track: TrackKind) -> bool {
        self.caps.get(&track) != Some(&Cap::Out)
    }

    /// Whether its trunk's budget lets `track` (layer `rid`) be asked for.
    pub fn allows(&self, track: TrackKind, rid: Option<Rid>) -> bool {
        match self.caps.get(&track) {
            None => true,
            Some(Cap::Out) => false,
            Some(Cap::Upto(i)) => {
                let Some(t) = self.tracks.iter().find(|t| t.track == track) else {
                    return false;
                };
                let at = t
                    .layers
                    .iter()
                    .position(|l| l.0.as_deref().map(Rid::from) == rid)
                    .unwrap_or(0);
                at <= *i
            }
        }
    }

    pub fn mic_bps(&self) -> u64 {
        self.tracks
            .iter()
            .find(|t| t.track == TrackKind::Mic)
            .and_then(|t| t.layers.first())
            .map_or(0, |l| l.1)
    }
}

impl Core {
    /// Opens trunk `trunk` into room `room` (a node that takes part in the meeting).
    pub fn open_trunk(&mut self, room: RoomId, trunk: TrunkId) {
        self.trunks.entry(trunk).or_insert_with(|| Trunk {
            room,
            ..Default::default()
        });
        let r = self.rooms.entry(room).or_default();
        if !r.trunks.contains(&trunk) {
            r.trunks.push(trunk);
        }
        self.timeout_due = false;
        self.assign_room(room);
    }

    /// Closes a trunk (its link went down, or the node left the meeting): its publishers
    /// leave the room.
    pub fn close_trunk(&mut self, trunk: TrunkId) {
        let Some(t) = self.trunks.remove(&trunk) else {
            return;
        };
        for id in t.far.values() {
            self.remote_peers.remove(id);
        }
        if let Some(r) = self.rooms.get_mut(&t.room) {
            r.trunks.retain(|x| *x != trunk);
            r.remotes.retain(|id| !t.far.values().any(|x| x == id));
            if r.speaker.is_some_and(|s| t.far.values().any(|x| *x == s)) {
                r.speaker = None;
            }
            if r.is_empty() {
                self.rooms.remove(&t.room);
            }
        }
        self.assign_room(t.room);
    }

    /// The far side opened its end of the trunk (perhaps after ours, so that it missed
    /// what we said): everything is said again.
    pub fn trunk_reset(&mut self, trunk: TrunkId) {
        let Some(t) = self.trunks.get_mut(&trunk) else {
            return;
        };
        t.told.clear();
        t.asked.clear();
        let room = t.room;
        self.timeout_due = false;
        // (An empty want list is news too: the far side may hold an older one.)
        self.out.push_back(Output::TrunkWant {
            trunk,
            wants: Vec::new(),
        });
        self.tell_trunks(room);
    }

    /// The far side announced (or changed) publisher `far`: returns our id of it.
    pub fn trunk_publish(
        &mut self,
        now: Instant,
        trunk: TrunkId,
        far: u64,
        tracks: Vec<TrunkTrack>,
    ) -> Option<SessionId> {
        let t = self.trunks.get_mut(&trunk)?;
        let room = t.room;
        let id = match t.far.get(&far) {
            Some(id) => *id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                t.far.insert(far, id);
                self.rooms.entry(room).or_default().remotes.push(id);
                self.remote_peers.insert(
                    id,
                    Remote {
                        trunk,
                        far,
                        tracks: Vec::new(),
                        joined: now,
                        last_spoke: None,
                        loudness: Loudness::default(),
                        pli_at: HashMap::new(),
                        caps: HashMap::new(),
                    },
                );
                id
            }
        };
        let r = self.remote_peers.get_mut(&id).expect("inserted above");
        let kinds = |v: &[TrunkTrack]| v.iter().map(|t| t.track).collect::<Vec<_>>();
        let changed = kinds(&r.tracks) != kinds(&tracks);
        r.tracks = tracks;
        if changed {
            self.assign_room(room);
        }
        Some(id)
    }

    /// The far side's publisher `far` left.
    pub fn trunk_unpublish(&mut self, trunk: TrunkId, far: u64) {
        let Some(t) = self.trunks.get_mut(&trunk) else {
            return;
        };
        let Some(id) = t.far.remove(&far) else { return };
        let room = t.room;
        self.remote_peers.remove(&id);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.remotes.retain(|x| *x != id);
            if r.speaker == Some(id) {
                r.speaker = None;
            }
        }
        self.assign_room(room);
    }

    /// What the far side needs of our publishers now (replaces what it needed before).
    pub fn trunk_want(&mut self, now: Instant, trunk: TrunkId, wants: &[TrunkWant]) {
        let Some(t) = self.trunks.get_mut(&trunk) else {
            return;
        };
        let next: HashSet<(SessionId, TrackKind, Option<Rid>)> = wants
            .iter()
            .map(|(p, k, r)| (*p, *k, r.as_deref().map(Rid::from)))
            .collect();
        let fresh: Vec<_> = next.difference(&t.wants).copied().collect();
        t.wants = next;
        let room = t.room;
        for (p, k, rid) in fresh {
            self.ask_keyframe_of(
                now,
                Feed {
                    publisher: p,
                    track: k,
                },
                rid,
            );
        }
        // Other trunks may now need what only this one wanted, or no longer.
        self.tell_trunks(room);
    }

    /// The far side asks for a keyframe of our publisher's track.
    pub fn trunk_keyframe(
        &mut self,
        now: Instant,
        publisher: SessionId,
        track: TrackKind,
        rid: Option<&str>,
    ) {
        let feed = Feed { publisher, track };
        self.ask_keyframe_of(now, feed, rid.map(Rid::from));
    }

    /// A packet of the far side's publisher `far`: to the slots that carry it, and to the
    /// other trunks that need it.
    pub fn trunk_rtp(&mut self, now: Instant, trunk: TrunkId, far: u64, p: TrunkRtp) {
        self.now = Some(now);
        self.timeout_due = false;
        let Some(t) = self.trunks.get(&trunk) else {
            return;
        };
        let Some(id) = t.far.get(&far).copied() else {
            return;
        };
        let room = t.room;
        let codec = p.codec.rtc();
        let Some(parsed) = crate::peer::parse_payload(codec, p.red, &p.payload) else {
            return;
        };
        if p.track == TrackKind::Mic
            && let Some(r) = self.remote_peers.get_mut(&id)
        {
            r.loudness.hear(now, p.audio_level);
        }
        let r = RtpIn {
            mid: Mid::from("trunk"),
            rid: p.rid.as_deref().map(Rid::from),
            pt: Pt::from(p.pt),
            codec,
            seq: p.seq,
            ts: p.ts,
            marker: p.marker,
            starts: parsed.starts,
            audio_level: p.audio_level,
            payload: p.payload,
            plain: parsed.plain,
            vp8: parsed.vp8,
            vp9: parsed.vp9,
            at: now,
        };
        let feed = Feed {
            publisher: id,
            track: p.track,
        };
        let subs: Vec<SessionId> = self
            .rooms
            .get(&room)
            .map(|r| r.peers.clone())
            .unwrap_or_default();
        let (want_key, _) = self.forward_to_slots(now, feed, &r, &subs);
        for rid in want_key {
            self.ask_keyframe_of(now, feed, rid);
        }
        self.forward_to_trunks(room, feed, &r, Some(trunk));
        self.flush_scratch();
    }

    /// Sends a packet of `feed` to every trunk of `room` that needs it (but `except`, the
    /// one it came from).
    pub(super) fn forward_to_trunks(
        &mut self,
        room: RoomId,
        feed: Feed,
        r: &RtpIn,
        except: Option<TrunkId>,
    ) {
        let Some(room) = self.rooms.get(&room) else {
            return;
        };
        if room.trunks.is_empty() {
            return;
        }
        let Some(codec) = TrunkCodec::of(r.codec) else {
            return;
        };
        for tid in &room.trunks {
            if Some(*tid) == except {
                continue;
            }
            let Some(t) = self.trunks.get(tid) else {
                continue;
            };
            if !t.wants.contains(&(feed.publisher, feed.track, r.rid)) {
                continue;
            }
            self.out.push_back(Output::TrunkRtp {
                trunk: *tid,
                publisher: feed.publisher,
                packet: TrunkRtp {
                    track: feed.track,
                    rid: r.rid.map(|x| x.to_string()),
                    pt: *r.pt,
                    codec,
                    red: r.plain.is_some(),
                    seq: r.seq,
                    ts: r.ts,
                    marker: r.marker,
                    audio_level: r.audio_level,
                    payload: r.payload.clone(),
                },
            });
        }
    }

    /// Asks the far side for a keyframe of remote publisher `id`'s track (rate-limited).
    /// `false` if `id` is not a remote publisher.
    pub(super) fn ask_remote_keyframe(
        &mut self,
        now: Instant,
        id: SessionId,
        track: TrackKind,
        rid: Option<Rid>,
    ) -> bool {
        let Some(r) = self.remote_peers.get_mut(&id) else {
            return false;
        };
        let layers: Vec<Option<Rid>> = match rid {
            Some(x) => vec![Some(x)],
            None => r
                .tracks
                .iter()
                .filter(|t| t.track == track)
                .flat_map(|t| t.layers.iter().map(|l| l.0.as_deref().map(Rid::from)))
                .collect(),
        };
        for rid in layers {
            let last = r.pli_at.get(&(track, rid));
            if last.is_some_and(|t| now.saturating_duration_since(*t) < TRUNK_PLI_EVERY) {
                continue;
            }
            r.pli_at.insert((track, rid), now);
            self.out.push_back(Output::TrunkKeyframe {
                trunk: r.trunk,
                publisher: r.far,
                track,
                rid: rid.map(|x| x.to_string()),
            });
        }
        true
    }

    /// Tells each trunk of `room` what this side can give it (publishers that came or
    /// left, tracks or layers that changed) and what it needs of the far side's.
    pub(super) fn tell_trunks(&mut self, room: RoomId) {
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        if r.trunks.is_empty() {
            return;
        }
        let now = self.now.unwrap_or_else(Instant::now);
        // Every publisher of the room, with its tracks and where it comes from.
        let mut publishers: Vec<(SessionId, Option<TrunkId>, Vec<TrunkTrack>)> = Vec::new();
        for id in &r.peers {
            let Some(p) = self.peers.get(id) else {
                continue;
            };
            let tracks: Vec<TrunkTrack> = p
                .published
                .iter()
                .map(|t| TrunkTrack {
                    track: t.track,
                    layers: if t.track.is_video() {
                        let c = p.layer_choice(t.mid, t.track, now);
                        c.usable
                            .iter()
                            .map(|(r, b)| (r.map(|x| x.to_string()), *b))
                            .collect()
                    } else {
                        // What it sends now (a muted one little), for the far side's budget.
                        vec![(None, p.mic_bps(now))]
                    },
                })
                .collect();
            if !tracks.is_empty() {
                publishers.push((*id, None, tracks));
            }
        }
        for id in &r.remotes {
            if let Some(x) = self.remote_peers.get(id) {
                publishers.push((*id, Some(x.trunk), x.tracks.clone()));
            }
        }
        // What this side's slots need of each remote feed.
        let mut need: HashSet<(SessionId, TrackKind, Option<Rid>)> = HashSet::new();
        for sid in &r.peers {
            let Some(p) = self.peers.get(sid) else {
                continue;
            };
            for s in &p.slots {
                let Some(f) = s.feed else { continue };
                let Some(remote) = self.remote_peers.get(&f.publisher) else {
                    continue;
                };
                if !s.video {
                    need.insert((f.publisher, f.track, None));
                    continue;
                }
                let mut rids: Vec<Option<Rid>> =
                    [s.want, s.layer].into_iter().flatten().map(Some).collect();
                if rids.is_empty() {
                    // A slot that has not started: the lowest layer (or the only one).
                    let lowest = remote
                        .layer_choice(f.track)
                        .and_then(|c| c.all.first().map(|l| l.0));
                    rids.push(lowest.flatten());
                }
                for rid in rids {
                    need.insert((f.publisher, f.track, rid));
                }
            }
        }
        let trunks = r.trunks.clone();
        // What the trunks need (of each other's publishers).
        for tid in &trunks {
            if let Some(t) = self.trunks.get(tid) {
                for w in &t.wants {
                    if self.remote_peers.get(&w.0).is_some_and(|x| x.trunk != *tid) {
                        need.insert(*w);
                    }
                }
            }
        }
        for tid in trunks {
            let Some(t) = self.trunks.get_mut(&tid) else {
                continue;
            };
            // Announcements: every publisher not behind this trunk.
            let mine: HashMap<SessionId, Vec<TrunkTrack>> = publishers
                .iter()
                .filter(|(_, via, _)| *via != Some(tid))
                .map(|(id, _, tracks)| (*id, tracks.clone()))
                .collect();
            for (id, tracks) in &mine {
                if t.told.get(id).is_none_or(|told| differs(told, tracks)) {
                    t.told.insert(*id, tracks.clone());
                    self.out.push_back(Output::TrunkPublish {
                        trunk: tid,
                        publisher: *id,
                        tracks: tracks.clone(),
                    });
                }
            }
            let gone: Vec<SessionId> = t
                .told
                .keys()
                .filter(|id| !mine.contains_key(id))
                .copied()
                .collect();
            for id in gone {
                t.told.remove(&id);
                t.wants.retain(|w| w.0 != id);
                self.out.push_back(Output::TrunkUnpublish {
                    trunk: tid,
                    publisher: id,
                });
            }
            // Wants: of this trunk's publishers, in the far side's ids.
            let mut asked: Vec<TrunkWant> = need
                .iter()
                .filter_map(|(id, k, rid)| {
                    let x = self
                        .remote_peers
                        .get(id)
                        .filter(|x| x.trunk == tid && x.allows(*k, *rid))?;
                    Some((x.far, *k, rid.map(|r| r.to_string())))
                })
                .collect();
            asked.sort_by(|a, b| (a.0, a.1.as_str(), &a.2).cmp(&(b.0, b.1.as_str(), &b.2)));
            if asked != t.asked {
                t.asked = asked.clone();
                self.out.push_back(Output::TrunkWant {
                    trunk: tid,
                    wants: asked,
                });
            }
        }
    }

    /// The layers of feeds of `room`'s local publishers that its trunks need (for the
    /// publishers' own layer choice: a layer only a trunk needs must keep running).
    pub(super) fn trunk_layers(&self, room: RoomId) -> Vec<(Feed, Option<Rid>)> {
        let Some(r) = self.rooms.get(&room) else {
            return Vec::new();
        };
        r.trunks
            .iter()
            .filter_map(|t| self.trunks.get(t))
            .flat_map(|t| t.wants.iter())
            .map(|(p, k, rid)| {
                (
                    Feed {
                        publisher: *p,
                        track: *k,
                    },
                    *rid,
                )
            })
            .collect()
    }
}

/// Whether an announcement is due: a track or layer came or went, or a layer's bitrate
/// moved by a quarter or more, and by 16 kbit/s or more, since it was last announced (not
/// with every measurement).
fn differs(told: &[TrunkTrack], now: &[TrunkTrack]) -> bool {
    told.len() != now.len()
        || told.iter().zip(now).any(|(a, b)| {
            a.track != b.track
                || a.layers.len() != b.layers.len()
                || a.layers.iter().zip(&b.layers).any(|(x, y)| {
                    let d = x.1.abs_diff(y.1);
                    x.0 != y.0 || (d * 4 > x.1.max(y.1) && d >= 16_000)
                })
        })
}
