//! The forwarding core: sources (a camera now, a meeting participant later) and WebRTC
//! sessions subscribed to them, driven by [`Core::handle_input`] with `now` passed in, and
//! drained by [`Core::poll_output`]. No sockets, no clocks, no threads: the binary runs one
//! thin task around it that owns the UDP socket, and tests drive it directly.
//!
//! A source's frame is packetized once; each subscriber then writes the same payloads under
//! its own sequence numbers and timestamps. Datagrams are demultiplexed to sessions by
//! their remote address once known; a datagram from a new address goes to the session
//! that accepts it (ICE ufrag), which teaches the core that address.
//!
//! Meeting rooms live here too: each participant is a [`Peer`] that publishes tracks and
//! receives through slots. The core decides what each slot carries ([`choose`]: screen
//! shares, then the most recent speakers, "last N" for video, every microphone for audio),
//! picks the active speaker from the microphones' audio levels, and forwards each packet a
//! participant publishes to the slots that carry it (docs/design/meetings.md).

mod budget;
mod rooms;
mod trunk;

pub use budget::{BudgetFeed, fit as fit_budget, link_cost};
use trunk::{Remote, Trunk};
pub use trunk::{TrunkCodec, TrunkId, TrunkRtp, TrunkTrack, TrunkWant};

use crate::alloc::{Want, allocate, cost};
use crate::peer::RtpIn;
use crate::peer::{Feed, LayerChoice, PEER_CONNECT_TIMEOUT, Peer, PeerEvent, TrackKind};
use crate::session::{CONNECT_TIMEOUT, Endpoint, Proto, Session, SessionError, Transmit};
use crate::source::{Frame, Kind, MediaFrame, Source};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::format::Codec as RtcCodec;
use str0m::media::Rid;
use str0m::media::{Mid, Pt};
use xaso_base::Codec;

pub type SourceId = i64;
pub type SessionId = u64;

/// What the core is told.
pub enum Input<'a> {
    /// A frame from a source.
    Frame(SourceId, MediaFrame<'a>),
    /// A datagram that arrived on the shared UDP socket (or an ICE-TCP connection).
    Datagram {
        proto: Proto,
        source: SocketAddr,
        destination: SocketAddr,
        data: &'a [u8],
    },
    /// Time passed (at or after the last [`Output::Timeout`]).
    Timeout,
}

/// What the core asks for.
#[derive(Debug)]
pub enum Output {
    Transmit(Transmit),
    /// A session is over (DELETE, the viewer left, an error): for the audit log.
    Closed(Closed),
    /// Call [`Core::handle_input`] with [`Input::Timeout`] at this time if nothing else
    /// comes first.
    Timeout(Instant),
    /// What a participant's slots carry changed: tell the page.
    Slots(SlotsUpdate),
    /// A room's active speaker changed.
    Speaker {
        room: RoomId,
        peer: SessionId,
    },
    /// The simulcast layers (rids) of a participant's track that someone wants: the page
    /// keeps those sending and pauses the others.
    Layers {
        peer: SessionId,
        track: TrackKind,
        active: Vec<String>,
    },
    /// A packet of our `publisher` for a trunk (federation: see [`trunk`]).
    TrunkRtp {
        trunk: TrunkId,
        publisher: SessionId,
        packet: TrunkRtp,
    },
    /// Tell the trunk's far side that our `publisher` gives these tracks (new or changed).
    TrunkPublish {
        trunk: TrunkId,
        publisher: SessionId,
        tracks: Vec<TrunkTrack>,
    },
    /// Tell the far side that our `publisher` is gone.
    TrunkUnpublish {
        trunk: TrunkId,
        publisher: SessionId,
    },
    /// Tell the far side which of its publishers' tracks and layers to send (all of them:
    /// it replaces the last list).
    TrunkWant {
        trunk: TrunkId,
        wants: Vec<TrunkWant>,
    },
    /// Ask the far side for a keyframe of its `publisher`'s track.
    TrunkKeyframe {
        trunk: TrunkId,
        publisher: u64,
        track: TrackKind,
        rid: Option<String>,
    },
}

pub type RoomId = i64;

/// Cameras in a meeting publish as `CAMERA_PUBLISHER + camera` (the source id), next to
/// the participants' ids (small numbers), in [`Feed::publisher`].
pub const CAMERA_PUBLISHER: u64 = 1 << 48;

/// What each slot of a participant carries (by the page's mid), and how many slots of each
/// kind it should have (more than it offered: the page adds transceivers and offers again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotsUpdate {
    pub peer: SessionId,
    pub video: Vec<(String, Option<Feed>)>,
    pub audio: Vec<(String, Option<Feed>)>,
    pub need_video: usize,
    pub need_audio: usize,
}

/// Video tracks a participant receives at most ("last N").
pub const LAST_N: usize = 9;

/// Loudness (127 - dBov) a microphone must pass to be the speaker, and for how many room
/// ticks in a row it must be the loudest.
const SPEAKER_LOUDNESS: f32 = 40.0;
const SPEAKER_TICKS: u32 = 3;
const ROOM_TICK: Duration = Duration::from_millis(200);
/// How long a lower (higher) simulcast layer must stay chosen before a slot switches to it.
const LAYER_DOWN_HOLD: Duration = Duration::from_secs(1);
const LAYER_UP_HOLD: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Room {
    peers: Vec<SessionId>,
    /// Cameras the chair added, and when.
    cameras: Vec<(SourceId, Instant)>,
    speaker: Option<SessionId>,
    candidate: Option<(SessionId, u32)>,
    /// The room's trunks (other nodes in the meeting) and the publishers behind them.
    trunks: Vec<TrunkId>,
    remotes: Vec<SessionId>,
    /// Whose picture everyone gets whether they speak or not (the chair), and whose each
    /// participant asked for ([`Core::set_focus`]).
    featured: Option<SessionId>,
    focus: HashMap<SessionId, SessionId>,
}

impl Room {
    /// Nobody and nothing left in it.
    fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.cameras.is_empty() && self.trunks.is_empty()
    }
}

/// The feeds a slot set should carry: the first `cap` of `ranked` (best first), each kept
/// in the slot it already has, the others in the free slots in rank order.
pub fn choose(current: &[Option<Feed>], ranked: &[Feed], cap: usize) -> Vec<Option<Feed>> {
    let chosen = &ranked[..ranked.len().min(cap).min(current.len())];
    let mut out: Vec<Option<Feed>> = current
        .iter()
        .map(|f| f.filter(|f| chosen.contains(f)))
        .collect();
    let placed = out.clone();
    let mut rest = chosen.iter().filter(|f| !placed.contains(&Some(**f)));
    for slot in out.iter_mut().filter(|s| s.is_none()) {
        match rest.next() {
            Some(f) => *slot = Some(*f),
            None => break,
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub session: SessionId,
    pub source: SourceId,
    pub bytes_sent: u64,
    pub reason: String,
    /// A meeting participant (then `source` is the room), not a camera viewer.
    pub peer: bool,
}

struct Entry {
    session: Session,
    source: SourceId,
    created: Instant,
}

#[derive(Default)]
pub struct Core {
    sources: HashMap<SourceId, Source>,
    sessions: HashMap<SessionId, Entry>,
    subscribers: HashMap<SourceId, Vec<SessionId>>,
    /// Remote address → session, learned from the datagrams each session accepted.
    remotes: HashMap<SocketAddr, SessionId>,
    next_id: SessionId,
    peers: HashMap<SessionId, Peer>,
    rooms: HashMap<RoomId, Room>,
    trunks: HashMap<TrunkId, Trunk>,
    /// Publishers at other nodes, behind the trunks.
    remote_peers: HashMap<SessionId, Remote>,
    /// Per remote publisher's video: the layer index this node's tiles (or its other
    /// trunks) would take at best, for its trunk's budget ([`budget`]).
    trunk_ideal: HashMap<Feed, usize>,
    reported: HashMap<SessionId, SlotsUpdate>,
    camera_seq: HashMap<(SourceId, Kind), u64>,
    room_tick: Option<Instant>,
    /// The time of the last input (keyframe requests made outside one are stamped there).
    now: Option<Instant>,
    out: VecDeque<Output>,
    scratch: Vec<Transmit>,
    /// Participants with forwarded packets not yet handed to their WebRTC stack's output
    /// (see [`Peer::wrote`]): flushed once in [`Core::poll_output`], so that a batch of
    /// inputs costs each one flush (str0m's flush walks all of a participant's streams),
    /// not one per packet.
    unflushed: Vec<SessionId>,
    /// Participants get no bandwidth estimate ([`Core::without_estimate`]).
    no_estimate: bool,
    /// Set after [`Core::poll_output`] has returned everything but the timeout.
    timeout_due: bool,
    seed: u64,
    counters: Counters,
}

/// What the core has received from meeting participants since it started (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Microphone packets.
    pub audio_packets: u64,
    /// Of those, the ones with redundant audio (RED, RFC 2198).
    pub red_packets: u64,
    /// Keyframe requests (PLI) sent to participants, per video layer: a slot that starts
    /// or switches, or a page that lost a picture.
    pub keyframe_requests: u64,
}

impl Core {
    /// `seed` makes each session's first sequence number and timestamp unpredictable
    /// (RFC 3550); pass a random number (tests pass a constant).
    pub fn new(seed: u64) -> Core {
        Core {
            next_id: 1,
            seed: seed | 1,
            ..Default::default()
        }
    }

    /// Participants joining from now on get no bandwidth estimate (nor its pacer): for a
    /// server whose meetings have no simulcast, where there are no layers to choose.
    pub fn without_estimate(mut self) -> Core {
        self.no_estimate = true;
        self
    }

    /// The source's state (created empty on first use).
    pub fn source(&mut self, id: SourceId) -> &mut Source {
        self.sources.entry(id).or_default()
    }

    pub fn has_source(&self, id: SourceId) -> bool {
        self.sources.contains_key(&id)
    }

    /// Removes a source (its camera was deleted); its viewers' sessions end.
    pub fn remove_source(&mut self, id: SourceId, reason: &str) {
        self.sources.remove(&id);
        for s in self.subscribers.remove(&id).unwrap_or_default() {
            self.close(s, reason);
        }
    }

    /// The source's stream started anew (a camera reconnected): its cached GOP is stale,
    /// and its viewers' timestamps must go on from where they were.
    pub fn restart_source(&mut self, id: SourceId) {
        if let Some(s) = self.sources.get_mut(&id) {
            s.clear_gop();
        }
        for sid in self.subscribers.get(&id).map_or(&[][..], Vec::as_slice) {
            if let Some(e) = self.sessions.get_mut(sid) {
                e.session.restart();
            }
        }
    }

    /// Number of live sessions (all sources).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn session_source(&self, id: SessionId) -> Option<SourceId> {
        self.sessions.get(&id).map(|e| e.source)
    }

    /// Answers a viewer's SDP offer for a source: a new session and the SDP answer.
    pub fn subscribe(
        &mut self,
        now: Instant,
        source: SourceId,
        offer: &str,
        candidates: &[(Proto, SocketAddr)],
    ) -> Result<(SessionId, String), SessionError> {
        let tracks = self.source(source).tracks().clone();
        let id = self.next_id;
        self.next_id += 1;
        let seed = (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.seed) | 1;
        let (session, answer) = Session::answer(now, offer, &tracks, candidates, seed)?;
        self.sessions.insert(
            id,
            Entry {
                session,
                source,
                created: now,
            },
        );
        self.subscribers.entry(source).or_default().push(id);
        self.timeout_due = false;
        Ok((id, answer))
    }

    /// Ends a session (a DELETE). `false` if there is no such session.
    pub fn close(&mut self, id: SessionId, reason: &str) -> bool {
        if let Some(mut p) = self.peers.remove(&id) {
            self.timeout_due = false;
            self.remotes.retain(|_, s| *s != id);
            self.reported.remove(&id);
            p.close(reason);
            let room = p.room;
            if let Some(r) = self.rooms.get_mut(&room) {
                r.peers.retain(|s| *s != id);
                r.focus.remove(&id);
                if r.speaker == Some(id) {
                    r.speaker = None;
                }
                if r.is_empty() {
                    self.rooms.remove(&room);
                }
            }
            self.out.push_back(Output::Closed(Closed {
                session: id,
                source: room,
                bytes_sent: p.bytes_sent,
                reason: p.ended.clone().unwrap_or_else(|| reason.into()),
                peer: true,
            }));
            self.assign_room(room);
            return true;
        }
        let Some(mut e) = self.sessions.remove(&id) else {
            return false;
        };
        self.timeout_due = false;
        self.remotes.retain(|_, s| *s != id);
        e.session.close(reason);
        if let Some(v) = self.subscribers.get_mut(&e.source) {
            v.retain(|s| *s != id);
        }
        self.out.push_back(Output::Closed(Closed {
            session: id,
            source: e.source,
            bytes_sent: e.session.bytes_sent,
            reason: e.session.ended.clone().unwrap_or_else(|| reason.into()),
            peer: false,
        }));
        true
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.timeout_due = false;
        self.now = Some(now);
        if !self.rooms.is_empty() && self.room_tick.is_none() {
            self.room_tick = Some(now + ROOM_TICK);
        }
        match input {
            Input::Frame(id, f) => {
                let source = self.sources.entry(id).or_default();
                let subs = self.subscribers.get(&id).map_or(&[][..], Vec::as_slice);
                // Viewers connected since the last frame start from the GOP so far.
                for sid in subs {
                    if let Some(e) = self.sessions.get_mut(sid)
                        && e.session.wants_start()
                    {
                        e.session.start_video(now, source.gop(), &mut self.scratch);
                    }
                }
                let Some(frame) = source.push(f) else {
                    self.flush_scratch();
                    return;
                };
                for sid in subs {
                    if let Some(e) = self.sessions.get_mut(sid) {
                        e.session.send(now, &frame, &mut self.scratch);
                    }
                }
                if self
                    .rooms
                    .values()
                    .any(|r| r.cameras.iter().any(|(c, _)| *c == id))
                {
                    self.forward_camera(now, id, &frame);
                }
                self.flush_scratch();
            }
            Input::Datagram {
                proto,
                source,
                destination,
                data,
            } => {
                let known = self
                    .remotes
                    .get(&source)
                    .copied()
                    .filter(|id| self.sessions.contains_key(id) || self.peers.contains_key(id));
                let id = known
                    .or_else(|| {
                        self.sessions
                            .iter()
                            .find(|(_, e)| e.session.accepts(now, proto, source, destination, data))
                            .map(|(id, _)| *id)
                    })
                    .or_else(|| {
                        self.peers
                            .iter()
                            .find(|(_, p)| p.accepts(now, proto, source, destination, data))
                            .map(|(id, _)| *id)
                    });
                let Some(id) = id else {
                    tracing::trace!(%source, "datagram for no session");
                    return;
                };
                self.remotes.insert(source, id);
                let endpoint: Option<&mut dyn Endpoint> = match self.sessions.get_mut(&id) {
                    Some(e) => Some(&mut e.session),
                    None => self.peers.get_mut(&id).map(|p| p as &mut dyn Endpoint),
                };
                if let Some(e) = endpoint {
                    e.handle_receive(now, proto, source, destination, data, &mut self.scratch);
                }
                if self.peers.contains_key(&id) {
                    self.peer_events(now, id);
                }
                self.flush_scratch();
            }
            Input::Timeout => {
                for e in self.sessions.values_mut() {
                    if e.session.timeout() <= now {
                        e.session.handle_timeout(now, &mut self.scratch);
                    }
                    if !e.session.is_connected()
                        && e.session.ended.is_none()
                        && now.duration_since(e.created) > CONNECT_TIMEOUT
                    {
                        e.session.close("the viewer never connected");
                    }
                }
                let due: Vec<SessionId> = self
                    .peers
                    .iter_mut()
                    .filter_map(|(id, p)| {
                        if !p.is_connected()
                            && p.ended.is_none()
                            && now.duration_since(p.joined) > PEER_CONNECT_TIMEOUT
                        {
                            p.close("the participant's browser never connected");
                        }
                        (p.timeout() <= now).then_some(*id)
                    })
                    .collect();
                for id in due {
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.handle_timeout(now, &mut self.scratch);
                    }
                    self.peer_events(now, id);
                }
                if self.room_tick.is_some_and(|t| t <= now) {
                    self.room_tick = None;
                    self.tick_rooms(now);
                }
                self.flush_scratch();
            }
        }
        self.reap();
    }

    /// A participant joins room `room` with its first SDP offer (`tracks` labels the page's
    /// sendonly transceivers by mid). Returns the participant's id and the SDP answer.
    pub fn join(
        &mut self,
        now: Instant,
        room: RoomId,
        offer: &str,
        tracks: &[(String, TrackKind)],
        candidates: &[(Proto, SocketAddr)],
    ) -> Result<(SessionId, String), SessionError> {
        self.now = Some(now);
        let id = self.next_id;
        self.next_id += 1;
        let seed = (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.seed) | 1;
        let (peer, answer) = Peer::join(
            now,
            room,
            offer,
            tracks,
            candidates,
            seed,
            !self.no_estimate,
        )?;
        self.peers.insert(id, peer);
        self.rooms.entry(room).or_default().peers.push(id);
        self.timeout_due = false;
        self.assign_room(room);
        Ok((id, answer))
    }

    /// A later offer of a participant (slots added, a screen share started or stopped).
    pub fn renegotiate(
        &mut self,
        now: Instant,
        id: SessionId,
        offer: &str,
        tracks: &[(String, TrackKind)],
    ) -> Result<String, SessionError> {
        self.now = Some(now);
        let p = self
            .peers
            .get_mut(&id)
            .ok_or_else(|| SessionError::BadSdp("no such participant".into()))?;
        let room = p.room;
        let answer = p.renegotiate(now, offer, tracks)?;
        p.flush(now, &mut self.scratch);
        self.flush_scratch();
        self.timeout_due = false;
        self.assign_room(room);
        Ok(answer)
    }

    /// What the core has received from participants since it started.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The bandwidth estimated toward participant `id`, bits per second.
    pub fn bwe_of(&self, id: SessionId) -> Option<u64> {
        self.peers.get(&id).and_then(|p| p.bwe_bps)
    }

    /// What the core last asked of the estimator toward participant `id`, bits per second:
    /// the rate its slots carry, and the rate it probes toward (what its tiles would take).
    pub fn bitrate_asked_of(&self, id: SessionId) -> Option<(u64, u64)> {
        self.peers.get(&id).and_then(|p| p.bitrate_set)
    }

    /// How many keyframe requests (PLI) the core sent participant `id` as a publisher.
    pub fn keyframes_asked_of(&self, id: SessionId) -> u64 {
        self.peers.get(&id).map_or(0, |p| p.keyframes_asked)
    }

    /// A camera joins a room as a participant: its stream goes to the slots that choose it,
    /// forwarded as it is (H.264 video; G.711 or Opus audio). Its frames must come in as
    /// [`Input::Frame`] of source `camera`.
    pub fn add_camera(&mut self, now: Instant, room: RoomId, camera: SourceId) {
        let r = self.rooms.entry(room).or_default();
        if !r.cameras.iter().any(|(c, _)| *c == camera) {
            r.cameras.push((camera, now));
        }
        self.assign_room(room);
    }

    pub fn remove_camera(&mut self, room: RoomId, camera: SourceId) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.cameras.retain(|(c, _)| *c != camera);
            if r.is_empty() {
                self.rooms.remove(&room);
            }
        }
        self.assign_room(room);
    }

    /// Forwards a camera's packetized frame to the meeting slots that carry it.
    fn forward_camera(&mut self, now: Instant, camera: SourceId, frame: &Frame) {
        let feed = Feed {
            publisher: CAMERA_PUBLISHER + camera as u64,
            track: match frame.kind {
                Kind::Video => TrackKind::Camera,
                Kind::Audio => TrackKind::Mic,
            },
        };
        let codec = match frame.codec {
            Codec::H264 => RtcCodec::H264,
            Codec::Pcmu => RtcCodec::PCMU,
            Codec::Pcma => RtcCodec::PCMA,
            Codec::Opus => RtcCodec::Opus,
            _ => return,
        };
        let subs: Vec<SessionId> = self
            .rooms
            .values()
            .filter(|r| r.cameras.iter().any(|(c, _)| *c == camera))
            .flat_map(|r| r.peers.iter().copied())
            .collect();
        // Sequence numbers of the camera's own, one per packet, as if it spoke RTP.
        let seq = self.camera_seq.entry((camera, frame.kind)).or_insert(1);
        let base = *seq;
        *seq += frame.packets.len() as u64;
        if subs.is_empty() {
            return;
        }
        let packets: Vec<RtpIn> = frame
            .packets
            .iter()
            .enumerate()
            .map(|(i, p)| RtpIn {
                mid: Mid::from("camera"),
                rid: None,
                pt: Pt::from(0),
                codec,
                seq: base + i as u64,
                ts: frame.ts,
                marker: p.marker,
                starts: frame.kind == Kind::Audio || (frame.keyframe && i == 0),
                audio_level: None,
                payload: p.payload.clone(),
                plain: None,
                vp9: None,
                vp8: None,
                at: now,
            })
            .collect();
        for sid in subs {
            let Some(sub) = self.peers.get_mut(&sid) else {
                continue;
            };
            let mut wrote = false;
            for i in 0..sub.slots.len() {
                if sub.slots[i].feed == Some(feed) {
                    for p in &packets {
                        wrote |= sub.forward(i, p);
                    }
                }
            }
            if wrote && sub.wrote(now, &mut self.scratch) {
                self.unflushed.push(sid);
            }
        }
    }

    pub fn is_peer(&self, id: SessionId) -> bool {
        self.peers.contains_key(&id)
    }

    /// Stops (or resumes) forwarding a participant's track: the chair muted it.
    pub fn set_blocked(&mut self, id: SessionId, track: TrackKind, blocked: bool) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.blocked.retain(|t| *t != track);
            if blocked {
                p.blocked.push(track);
            }
        }
    }

    /// Acts on what happened on participant `id`: forwards what it published, passes
    /// keyframe requests of its slots to their publishers.
    fn peer_events(&mut self, now: Instant, id: SessionId) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        if p.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut p.events);
        let room = p.room;
        let subs: Vec<SessionId> = self
            .rooms
            .get(&room)
            .map(|r| r.peers.iter().copied().filter(|s| *s != id).collect())
            .unwrap_or_default();
        for e in events {
            match e {
                PeerEvent::Connected => self.assign_room(room),
                PeerEvent::KeyframeWanted(mid) => {
                    let feed = self
                        .peers
                        .get(&id)
                        .and_then(|p| p.slots.iter().find(|s| s.mid == mid))
                        .and_then(|s| s.feed);
                    if let Some(f) = feed {
                        self.ask_keyframe(now, f);
                    }
                }
                PeerEvent::Rtp(r) => {
                    let Some(p) = self.peers.get_mut(&id) else {
                        return;
                    };
                    let Some(track) = p.track_of(r.mid) else {
                        continue;
                    };
                    if track == TrackKind::Mic {
                        self.counters.audio_packets += 1;
                        self.counters.red_packets += u64::from(r.plain.is_some());
                    }
                    if p.blocked.contains(&track) {
                        continue;
                    }
                    if track == TrackKind::Mic {
                        p.hear(r.at, r.audio_level);
                    }
                    let feed = Feed {
                        publisher: id,
                        track,
                    };
                    let (want_key, started) = self.forward_to_slots(now, feed, &r, &subs);
                    for rid in want_key {
                        self.ask_keyframe_of(now, feed, rid);
                    }
                    self.forward_to_trunks(room, feed, &r, None);
                    // A slot that just started on this keyframe also gets the packets of
                    // the frame that overtook its first one.
                    if !started.is_empty() {
                        let later: Vec<_> = self
                            .peers
                            .get(&id)
                            .and_then(|p| p.recent.get(&r.mid))
                            .map(|q| {
                                q.iter()
                                    .filter(|x| x.rid == r.rid && x.seq > r.seq)
                                    .cloned()
                                    .collect()
                            })
                            .unwrap_or_default();
                        for (sid, i) in started {
                            if let Some(sub) = self.peers.get_mut(&sid) {
                                for x in &later {
                                    sub.forward(i, x);
                                }
                                if sub.wrote(now, &mut self.scratch) {
                                    self.unflushed.push(sid);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Forwards a packet of `feed` to the slots of `subs` that carry it. Returns the
    /// layers a waiting slot needs a keyframe of, and the slots that started on it.
    fn forward_to_slots(
        &mut self,
        now: Instant,
        feed: Feed,
        r: &RtpIn,
        subs: &[SessionId],
    ) -> (Vec<Option<Rid>>, Vec<(SessionId, usize)>) {
        let mut want_key = Vec::new();
        let mut started = Vec::new();
        for sid in subs {
            let Some(sub) = self.peers.get_mut(sid) else {
                continue;
            };
            let mut wrote = false;
            for i in 0..sub.slots.len() {
                if sub.slots[i].feed == Some(feed) {
                    let waiting = sub.slots[i].waiting();
                    let w = sub.forward(i, r);
                    if w && waiting && feed.track.is_video() {
                        started.push((*sid, i));
                    }
                    wrote |= w;
                    if sub.slots[i].waiting() && sub.is_connected() {
                        let rid = sub.slots[i].waiting_for();
                        if !want_key.contains(&rid) {
                            want_key.push(rid);
                        }
                    }
                }
            }
            if wrote && sub.wrote(now, &mut self.scratch) {
                self.unflushed.push(*sid);
            }
        }
        (want_key, started)
    }

    /// Asks a publisher for a keyframe of a video track (rate-limited in the peer).
    fn ask_keyframe(&mut self, now: Instant, f: Feed) {
        self.ask_keyframe_of(now, f, None);
    }

    /// As [`Core::ask_keyframe`], of one simulcast layer (`None`: every layer).
    fn ask_keyframe_of(&mut self, now: Instant, f: Feed, rid: Option<Rid>) {
        if !f.track.is_video() || self.ask_remote_keyframe(now, f.publisher, f.track, rid) {
            return;
        }
        if let Some(p) = self.peers.get_mut(&f.publisher)
            && let Some(mid) = p.mid_of(f.track)
        {
            self.counters.keyframe_requests += p.request_keyframe(now, mid, rid, &mut self.scratch);
        }
    }

    /// The tile heights participant `id` shows, per publisher.
    pub fn set_view(&mut self, id: SessionId, tiles: &[(SessionId, u32)]) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.view = tiles.iter().copied().collect();
        }
    }

    /// Lets every participant's WebRTC stack send what was forwarded to it.
    fn flush_peers(&mut self) {
        let now = self.now.unwrap_or_else(Instant::now);
        for id in std::mem::take(&mut self.unflushed) {
            if let Some(p) = self.peers.get_mut(&id) {
                p.flush(now, &mut self.scratch);
            }
        }
        self.flush_scratch();
    }

    fn flush_scratch(&mut self) {
        self.out
            .extend(self.scratch.drain(..).map(Output::Transmit));
    }

    /// Removes the sessions that ended by themselves.
    fn reap(&mut self) {
        let ended: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.session.ended.is_some())
            .map(|(id, _)| *id)
            .chain(
                self.peers
                    .iter()
                    .filter(|(_, p)| p.ended.is_some())
                    .map(|(id, _)| *id),
            )
            .collect();
        for id in ended {
            self.close(id, "ended");
        }
    }

    /// The next thing to do: datagrams and closings first, then the time of the next
    /// timeout (or `None` when there are no sessions).
    pub fn poll_output(&mut self) -> Option<Output> {
        if !self.unflushed.is_empty() {
            self.flush_peers();
        }
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        if self.timeout_due {
            return None;
        }
        self.timeout_due = true;
        self.sessions
            .values()
            .map(|e| e.session.timeout())
            .chain(self.peers.values().map(|p| p.timeout()))
            .chain(self.room_tick)
            .min()
            .map(Output::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(p: u64) -> Feed {
        Feed {
            publisher: p,
            track: TrackKind::Camera,
        }
    }

    #[test]
    fn choose_keeps_slots_stable_and_fills_in_rank_order() {
        // Empty slots take the best feeds in order.
        assert_eq!(
            choose(&[None, None, None], &[f(1), f(2)], 9),
            vec![Some(f(1)), Some(f(2)), None]
        );
        // A feed still chosen keeps its slot; the one that fell out is replaced in place.
        assert_eq!(
            choose(&[Some(f(2)), Some(f(3))], &[f(4), f(2), f(3)], 2),
            vec![Some(f(2)), Some(f(4))]
        );
        // Fewer slots than feeds: the best ones only.
        assert_eq!(choose(&[None], &[f(5), f(6)], 9), vec![Some(f(5))]);
        // The cap ("last N") holds even with more slots.
        assert_eq!(
            choose(&[Some(f(1)), Some(f(2)), None], &[f(2), f(1), f(3)], 2),
            vec![Some(f(1)), Some(f(2)), None]
        );
        // A publisher that left is cleared.
        assert_eq!(choose(&[Some(f(9))], &[], 9), vec![None]);
        assert_eq!(choose(&[], &[f(1)], 9), Vec::<Option<Feed>>::new());
    }
}
