//! Meetings: the hub that knows who is in each room (names, roles, switches, hands, what
//! the chair did), relays the signalling of `api::meetings`' WebSocket to the forwarding
//! core (`crate::live`), and turns the core's events (what each slot carries, the active
//! speaker, a connection gone) into messages for the pages. The protocol is in
//! docs/design/meetings.md.
//!
//! - [`store`]: the rows (meetings, invitees, attendance, chat, the link key).
//! - [`link`]: signed guest links (pure).
//! - [`doctype`]: which documents may be shared (pure).
//! - [`remind`]: the e-mail reminders before a meeting.
//! - `remote`: the room across nodes (federation): participants, chat, votes and the
//!   chair's actions exchanged with the other nodes in the meeting.
//! - `chair`: the chair's moderation (mute, remove, lock, end, cameras in the room).
//! - `focus`: whose picture a page asks for, and the chair featured at every node.
//! - `votes`: the chair's votes and the ballots (the room's side; rows in [`store`]).
//!
//! The hub's state is in memory, behind one lock held only for short, non-async steps;
//! what must last (attendance, chat) is written to the database.

mod chair;
pub mod doctype;
mod focus;
pub mod link;
pub mod mail;
pub mod remind;
mod remote;
pub mod store;
mod votes;

pub use votes::vote_json;

use crate::error::{Error, Result};
use crate::live::{Live, LiveError, MeetingMedia};
use crate::{bail, err};
use serde_json::{Value, json};
use sqlx::AnyPool;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use xaso_base::Clocks;
use xaso_sfu::core::CAMERA_PUBLISHER;
use xaso_sfu::{Feed, SessionId, SlotsUpdate, TrackKind};

/// What the hub sends down a participant's socket.
#[derive(Debug)]
pub enum Out {
    Text(String),
    /// Close the socket with this code and reason (after the texts before it).
    Close(u16, String),
}

/// Who is joining.
#[derive(Clone, Debug)]
pub struct Who {
    pub name: String,
    /// The invited guest (its number in the meeting's guest list) whose own link it came
    /// with.
    pub invite: Option<usize>,
    pub user_id: Option<i64>,
    pub chair: bool,
    /// Admins enter locked rooms.
    pub admin: bool,
    pub address: Option<String>,
}

#[derive(Default, Clone, Copy)]
struct PerKind {
    mic: bool,
    camera: bool,
}

impl PerKind {
    fn get(&self, k: TrackKind) -> bool {
        match k {
            TrackKind::Mic => self.mic,
            _ => self.camera,
        }
    }

    fn set(&mut self, k: TrackKind, v: bool) {
        match k {
            TrackKind::Mic => self.mic = v,
            _ => self.camera = v,
        }
    }
}

struct Part {
    who: Who,
    tx: mpsc::UnboundedSender<Out>,
    peer: Option<SessionId>,
    mic: bool,
    camera: bool,
    screen: bool,
    hand: Option<i64>,
    /// Tracks the chair muted, and whether the participant may turn them back on.
    chair_muted: PerKind,
    may_unmute: PerKind,
    attendance: i64,
    connected: bool,
    /// The participant's secret for the meeting's HTTP routes (documents), sent in
    /// `welcome`: guests have no session.
    key: String,
    /// Its first SDP answer went out: `slots` messages may follow (never before it).
    answered: bool,
}

impl Part {
    /// Someone who just joined: microphone and camera on, no media connection yet.
    fn new(who: Who, tx: mpsc::UnboundedSender<Out>, attendance: i64, key: String) -> Part {
        Part {
            who,
            tx,
            peer: None,
            mic: true,
            camera: true,
            screen: false,
            hand: None,
            chair_muted: PerKind::default(),
            may_unmute: PerKind::default(),
            attendance,
            connected: false,
            key,
            answered: false,
        }
    }

    /// Who votes: one ballot per user account, per invited guest who came with its own
    /// link (under whatever name), or else per guest's name in the meeting (so a guest who
    /// leaves and joins again under that name cannot vote twice; case and spacing do not
    /// make a new name).
    fn voter(&self) -> String {
        match (self.who.user_id, self.who.invite) {
            (Some(u), _) => format!("user:{u}"),
            (None, Some(g)) => format!("invite:{g}"),
            (None, None) => format!("guest:{}", guest_voter(&self.who.name)),
        }
    }
}

/// A guest's name as a ballot's voter: lower case, words joined by one space.
fn guest_voter(name: &str) -> String {
    name.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A participant found by its key.
#[derive(Clone, Debug)]
pub struct KeyHolder {
    pub meeting: i64,
    pub participant: u64,
    pub name: String,
    pub user_id: Option<i64>,
}

#[derive(Default)]
struct Room {
    parts: BTreeMap<u64, Part>,
    /// Cameras the chair added: camera id → name. Shown as participants whose id is
    /// `CAMERA_PUBLISHER + camera`.
    cameras: BTreeMap<i64, String>,
    locked: bool,
    speaker: Option<u64>,
    /// Participants at other nodes (federation), by the key of the node that sent them.
    remote: BTreeMap<String, remote::RemoteParts>,
    /// The participants here changed since they were last sent to the other nodes.
    changed: std::cell::Cell<bool>,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<i64, Room>,
    /// Forwarding-core participant → (meeting, participant id).
    peers: HashMap<SessionId, (i64, u64)>,
    /// Participant key → (meeting, participant).
    keys: HashMap<String, (i64, u64)>,
    /// The core's last slot report of each of its participants, kept to be told again when
    /// it named someone the hub did not know yet (see [`Inner::learned`]).
    slots: HashMap<SessionId, SlotsUpdate>,
    next_pid: u64,
    /// The votes of meetings from above, as their home last sent them (meeting → vote id
    /// → `vote_json`), and the voters here who cast a ballot in one (federation).
    remote_votes: HashMap<i64, BTreeMap<i64, Value>>,
    /// (Keyed by meeting too: vote ids are each home's own, two homes may share one.)
    remote_cast: std::collections::HashSet<(i64, i64, String)>,
    /// Each room's featured participant as the core was last told (`focus`).
    featured: HashMap<i64, Option<SessionId>>,
}

impl Inner {
    /// Participant `pid` of `meeting`, in its room now.
    fn part(&self, meeting: i64, pid: u64) -> Result<&Part> {
        self.rooms
            .get(&meeting)
            .and_then(|r| r.parts.get(&pid))
            .ok_or_else(absent)
    }

    /// The hub learned that core participant `peer` is participant `pid` of `meeting`:
    /// the slot reports the core made before (which named `peer` as nobody) go out again,
    /// this time naming it. (`peer`'s own report waits for its answer: [`Inner::answered`].)
    fn learned(&mut self, peer: SessionId, meeting: i64, pid: u64) {
        self.peers.insert(peer, (meeting, pid));
        let Some(room) = self.rooms.get(&meeting) else {
            return;
        };
        // (Only this meeting's participants: their reports are the ones that can name it.)
        for p in room.parts.values().filter(|p| p.answered) {
            let Some(u) = p.peer.and_then(|sub| self.slots.get(&sub)) else {
                continue;
            };
            let names_it = u
                .video
                .iter()
                .chain(&u.audio)
                .any(|(_, f)| f.is_some_and(|f| f.publisher == peer));
            if names_it {
                send(p, &slots_message(u, &self.peers));
            }
        }
    }

    /// Participant `pid` of `meeting` was sent its first answer: from now on it is told
    /// what its slots carry, starting with the core's latest report.
    fn answered(&mut self, meeting: i64, pid: u64) {
        let Some(p) = self
            .rooms
            .get_mut(&meeting)
            .and_then(|r| r.parts.get_mut(&pid))
        else {
            return;
        };
        if std::mem::replace(&mut p.answered, true) {
            return;
        }
        if let Some(u) = p.peer.and_then(|peer| self.slots.get(&peer)) {
            send(p, &slots_message(u, &self.peers));
        }
    }
}

pub struct Meetings {
    db: AnyPool,
    clocks: Arc<dyn Clocks>,
    live: Option<Arc<Live>>,
    inner: Mutex<Inner>,
    /// The tree of nodes, told when a meeting that invites nodes below changes (set at
    /// start; tests without it have none).
    federation: std::sync::OnceLock<Arc<crate::federation::Federation>>,
    /// This process's key among the nodes of a meeting (who sent a participants list).
    node_key: String,
}

/// The caller's participant is not (or no longer) in the room.
fn absent() -> Error {
    err!(FailedPrecondition, "you are not in this meeting")
}

fn send(p: &Part, v: &Value) {
    let _ = p.tx.send(Out::Text(v.to_string()));
}

pub fn rfc3339(ms: i64) -> String {
    crate::api::rfc3339(ms)
}

impl Room {
    fn participants(&self) -> Value {
        let cameras = self.cameras.iter().map(|(cam, name)| {
            json!({
                "id": CAMERA_PUBLISHER + *cam as u64, "name": name, "role": "camera",
                "camera_id": cam, "guest": false, "mic": true, "camera": true, "screen": false,
                "hand": null, "muted_by_chair": {"mic": false, "camera": false},
                "connected": true,
            })
        });
        let list: Vec<Value> = self
            .parts
            .iter()
            .map(|(id, p)| {
                json!({
                    "id": id,
                    "name": p.who.name,
                    "role": if p.who.chair { "chair" } else { "participant" },
                    "guest": p.who.user_id.is_none(),
                    "mic": p.mic,
                    "camera": p.camera,
                    "screen": p.screen,
                    "hand": p.hand.map(rfc3339),
                    "muted_by_chair": { "mic": p.chair_muted.mic, "camera": p.chair_muted.camera },
                    "connected": p.connected,
                })
            })
            .chain(cameras)
            .chain(self.remote_list())
            .collect();
        json!({ "type": "participants", "list": list })
    }

    fn broadcast(&self, v: &Value) {
        for p in self.parts.values() {
            send(p, v);
        }
    }

    fn broadcast_participants(&self) {
        self.changed.set(true);
        self.broadcast(&self.participants());
    }
}

impl Meetings {
    /// The hub; with live view running, it also listens to the forwarding core.
    pub fn start(db: AnyPool, clocks: Arc<dyn Clocks>, live: Option<Arc<Live>>) -> Arc<Meetings> {
        let m = Arc::new(Meetings {
            db,
            clocks,
            live: live.clone(),
            federation: std::sync::OnceLock::new(),
            node_key: crate::auth::new_secret("n_"),
            inner: Mutex::new(Inner {
                // Participant ids are the meeting's across nodes (federation): each node
                // counts from a random start below 2^46 (never near the cameras' ids,
                // `CAMERA_PUBLISHER` = 2^48).
                next_pid: rand::random::<u64>() % (1 << 46) + 1,
                ..Default::default()
            }),
        });
        if let Some(live) = live {
            let (tx, mut rx) = mpsc::unbounded_channel();
            if live.meeting_events.set(tx).is_ok() {
                let weak = Arc::downgrade(&m);
                tokio::spawn(async move {
                    while let Some(ev) = rx.recv().await {
                        let Some(m) = weak.upgrade() else { return };
                        m.media_event(ev).await;
                    }
                });
            }
        }
        m
    }

    fn now_ms(&self) -> i64 {
        self.clocks.realtime_ms()
    }

    /// Meeting `id` was locked, unlocked or ended here: the nodes below it invites are told.
    async fn tell_nodes(&self, id: i64) {
        let Some(f) = self.federation.get() else {
            return;
        };
        match store::get(&self.db, id).await {
            Ok(m) if !m.nodes.is_empty() => f.meeting_changed(&m),
            Ok(_) => {}
            Err(e) => tracing::warn!(meeting = id, error = %e, "cannot tell the nodes below"),
        }
    }

    /// Ends the room of meeting `meeting` here: every participant is told and leaves.
    async fn end_room(&self, meeting: i64, reason: &str) {
        let pids: Vec<u64> = {
            let inner = self.inner.lock().expect("meetings lock");
            let Some(room) = inner.rooms.get(&meeting) else {
                return;
            };
            for p in room.parts.values() {
                send(p, &json!({"type": "ended", "reason": reason}));
                let _ = p.tx.send(Out::Close(1000, "meeting ended".into()));
            }
            room.parts.keys().copied().collect()
        };
        for p in pids {
            self.leave(meeting, p).await;
        }
    }

    /// Whether someone is in meeting `id` now.
    pub fn occupancy(&self, id: i64) -> usize {
        let inner = self.inner.lock().expect("meetings lock");
        inner.rooms.get(&id).map_or(0, |r| r.parts.len())
    }

    /// Enters the room; returns the participant's id and the `welcome` message.
    pub async fn join(
        &self,
        meeting: &store::Meeting,
        who: Who,
        tx: mpsc::UnboundedSender<Out>,
        extra: Value,
    ) -> Result<(u64, Value)> {
        if meeting.ended_ms.is_some() {
            bail!(FailedPrecondition, "this meeting has ended");
        }
        {
            let inner = self.inner.lock().expect("meetings lock");
            let locked = inner
                .rooms
                .get(&meeting.id)
                .map_or(meeting.locked, |r| r.locked);
            if locked && !who.chair && !who.admin {
                bail!(PermissionDenied, "the chair has locked this meeting");
            }
        }
        let role = if who.chair { "chair" } else { "participant" };
        let attendance = store::joined(
            &self.db,
            meeting.id,
            &who.name,
            who.user_id,
            role,
            who.address.as_deref(),
            self.now_ms(),
        )
        .await?;
        let chat = store::chat(&self.db, meeting.id).await?;
        let documents = store::documents(&self.db, meeting.id).await?;
        let votes = store::votes(&self.db, meeting.id).await?;
        let key = crate::auth::new_secret("mk_");
        let mut inner = self.inner.lock().expect("meetings lock");
        let mut votes: Vec<Value> = votes.iter().map(vote_json).collect();
        votes.extend(
            inner
                .remote_votes
                .get(&meeting.id)
                .into_iter()
                .flat_map(|v| v.values().cloned()),
        );
        let next = inner.next_pid;
        inner.keys.insert(key.clone(), (meeting.id, next));
        let pid = inner.next_pid;
        inner.next_pid += 1;
        let room = inner.rooms.entry(meeting.id).or_insert_with(|| Room {
            locked: meeting.locked,
            ..Default::default()
        });
        room.parts
            .insert(pid, Part::new(who, tx, attendance, key.clone()));
        let chat: Vec<Value> = chat
            .iter()
            .map(|c| json!({"id": c.id, "from": {"name": c.name}, "text": c.text, "at": rfc3339(c.at_ms)}))
            .collect();
        let mut welcome = json!({
            "type": "welcome",
            "you": pid,
            "role": role,
            "meeting": {
                "id": meeting.id, "title": meeting.title, "start": rfc3339(meeting.start_ms),
                "end": rfc3339(meeting.end_ms), "locked": room.locked,
            },
            "participants": room.participants()["list"],
            "chat": chat,
            "documents": documents.iter().map(document_json).collect::<Vec<_>>(),
            "votes": votes,
            "key": key,
        });
        if let (Value::Object(w), Value::Object(e)) = (&mut welcome, extra) {
            w.extend(e);
        }
        room.broadcast_participants();
        if let Some(s) = room.speaker {
            let p = &room.parts[&pid];
            send(p, &json!({"type": "speaker", "participant": s}));
        }
        Ok((pid, welcome))
    }

    fn part_peer(&self, meeting: i64, pid: u64) -> Result<Option<SessionId>> {
        let inner = self.inner.lock().expect("meetings lock");
        let p = inner.part(meeting, pid)?;
        Ok(p.peer)
    }

    /// An SDP offer from a participant; returns the answer.
    pub async fn offer(
        &self,
        meeting: i64,
        pid: u64,
        sdp: String,
        tracks: Vec<(String, TrackKind)>,
    ) -> Result<String> {
        let Some(live) = self.live.clone() else {
            bail!(Unavailable, "media is not running on this server");
        };
        let live_err = |e: LiveError| -> Error {
            match e {
                LiveError::Session(e) => err!(InvalidArgument, "{e}"),
                _ => err!(Unavailable, "the media server is not running"),
            }
        };
        match self.part_peer(meeting, pid)? {
            Some(peer) => live.renegotiate(peer, sdp, tracks).await.map_err(live_err),
            None => {
                let (peer, answer) = live
                    .join_meeting(meeting, pid, sdp, tracks)
                    .await
                    .map_err(live_err)?;
                let blocked = {
                    let mut inner = self.inner.lock().expect("meetings lock");
                    let part = inner
                        .rooms
                        .get_mut(&meeting)
                        .and_then(|r| r.parts.get_mut(&pid));
                    match part {
                        Some(p) => {
                            p.peer = Some(peer);
                            p.connected = true;
                            let b = p.chair_muted;
                            inner.learned(peer, meeting, pid);
                            if let Some(r) = inner.rooms.get(&meeting) {
                                r.broadcast_participants();
                            }
                            Some(b)
                        }
                        None => None,
                    }
                };
                match blocked {
                    // Left while the offer was being answered.
                    None => {
                        live.close(peer).await;
                        return Err(absent());
                    }
                    Some(b) => {
                        for k in [TrackKind::Mic, TrackKind::Camera] {
                            if b.get(k) {
                                live.block(peer, k, true).await;
                            }
                        }
                    }
                }
                Ok(answer)
            }
        }
    }

    /// The participant's first SDP answer went out (`slots` messages may follow it).
    pub fn answered(&self, meeting: i64, pid: u64) {
        self.inner
            .lock()
            .expect("meetings lock")
            .answered(meeting, pid);
    }

    /// The participant's own switches.
    pub async fn state(
        &self,
        meeting: i64,
        pid: u64,
        mic: bool,
        camera: bool,
        screen: bool,
    ) -> Result<()> {
        let mut unblock = Vec::new();
        let refused = {
            let mut inner = self.inner.lock().expect("meetings lock");
            let room = inner.rooms.get_mut(&meeting).ok_or_else(absent)?;
            let p = room.parts.get_mut(&pid).ok_or_else(absent)?;
            let mut refused = None;
            for (k, on) in [(TrackKind::Mic, mic), (TrackKind::Camera, camera)] {
                if on && p.chair_muted.get(k) {
                    if p.may_unmute.get(k) {
                        p.chair_muted.set(k, false);
                        p.may_unmute.set(k, false);
                        if let Some(peer) = p.peer {
                            unblock.push((peer, k));
                        }
                    } else {
                        refused = Some(k);
                        continue;
                    }
                }
                match k {
                    TrackKind::Mic => p.mic = on,
                    _ => p.camera = on,
                }
            }
            p.screen = screen;
            room.broadcast_participants();
            refused
        };
        if let Some(live) = &self.live {
            for (peer, k) in unblock {
                live.block(peer, k, false).await;
            }
        }
        if let Some(k) = refused {
            bail!(
                PermissionDenied,
                "the chair muted your {}; you may turn it on when the chair allows",
                if k == TrackKind::Mic {
                    "microphone"
                } else {
                    "camera"
                }
            );
        }
        Ok(())
    }

    pub fn hand(&self, meeting: i64, pid: u64, raised: bool) -> Result<()> {
        let now = self.now_ms();
        let mut inner = self.inner.lock().expect("meetings lock");
        let room = inner.rooms.get_mut(&meeting).ok_or_else(absent)?;
        let p = room.parts.get_mut(&pid).ok_or_else(absent)?;
        p.hand = match (raised, p.hand) {
            (true, Some(t)) => Some(t),
            (true, None) => Some(now),
            (false, _) => None,
        };
        room.broadcast_participants();
        Ok(())
    }

    pub async fn chat(&self, meeting: i64, pid: u64, text: &str) -> Result<()> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 2000 {
            bail!(InvalidArgument, "a chat message has 1 to 2000 characters");
        }
        let (name, user_id) = {
            let inner = self.inner.lock().expect("meetings lock");
            let p = inner.part(meeting, pid)?;
            (p.who.name.clone(), p.who.user_id)
        };
        let now = self.now_ms();
        let id = store::add_chat(&self.db, meeting, &name, user_id, text, now).await?;
        {
            let inner = self.inner.lock().expect("meetings lock");
            if let Some(r) = inner.rooms.get(&meeting) {
                r.broadcast(&json!({
                    "type": "chat", "id": id, "from": {"id": pid, "name": name},
                    "text": text, "at": rfc3339(now),
                }));
            }
        }
        self.chat_to_nodes(meeting, pid, &name, text, now);
        Ok(())
    }

    /// The participant left (the socket closed, `leave`, removed, the meeting ended).
    pub async fn leave(&self, meeting: i64, pid: u64) {
        let mut cameras_out = Vec::new();
        let part = {
            let mut inner = self.inner.lock().expect("meetings lock");
            let part = inner
                .rooms
                .get_mut(&meeting)
                .and_then(|r| r.parts.remove(&pid));
            if let Some(peer) = part.as_ref().and_then(|p| p.peer) {
                inner.peers.remove(&peer);
                inner.slots.remove(&peer);
            }
            if let Some(p) = &part {
                inner.keys.remove(&p.key);
            }
            if let Some(r) = inner.rooms.get_mut(&meeting) {
                if r.speaker == Some(pid) {
                    r.speaker = None;
                }
                if r.parts.is_empty() {
                    // Nobody left to watch: the cameras leave too.
                    cameras_out.extend(r.cameras.keys().copied());
                    inner.rooms.remove(&meeting);
                } else {
                    r.broadcast_participants();
                }
            }
            part
        };
        if let Some(live) = &self.live {
            for cam in cameras_out {
                live.meeting_camera(meeting, cam, false).await;
            }
        }
        let Some(part) = part else { return };
        if let (Some(live), Some(peer)) = (&self.live, part.peer) {
            live.close(peer).await;
        }
        if let Err(e) = store::left(&self.db, part.attendance, self.now_ms()).await {
            tracing::error!(error = %e, "cannot record a participant leaving");
        }
    }

    /// The tile heights a participant shows, by participant id (the page's `view`).
    pub async fn view(&self, meeting: i64, pid: u64, tiles: &[(u64, u32)]) {
        let (peer, mapped) = {
            let inner = self.inner.lock().expect("meetings lock");
            let Some(room) = inner.rooms.get(&meeting) else {
                return;
            };
            let Some(peer) = room.parts.get(&pid).and_then(|p| p.peer) else {
                return;
            };
            // (Participants at other nodes too: their layers come over a trunk.)
            let mapped: Vec<(SessionId, u32)> = tiles
                .iter()
                .filter_map(|(id, h)| inner.session_of(meeting, *id).map(|s| (s, *h)))
                .collect();
            (peer, mapped)
        };
        if let Some(live) = &self.live {
            live.view(peer, mapped).await;
        }
    }

    /// The participant holding `key`, if they are in a room now.
    pub fn by_key(&self, key: &str) -> Option<KeyHolder> {
        let inner = self.inner.lock().expect("meetings lock");
        let &(meeting, pid) = inner.keys.get(key)?;
        let p = inner.rooms.get(&meeting)?.parts.get(&pid)?;
        Some(KeyHolder {
            meeting,
            participant: pid,
            name: p.who.name.clone(),
            user_id: p.who.user_id,
        })
    }

    /// Tells the room a document was shared.
    pub fn document_shared(&self, doc: &store::Document) {
        let inner = self.inner.lock().expect("meetings lock");
        if let Some(r) = inner.rooms.get(&doc.meeting_id) {
            let mut v = document_json(doc);
            v["type"] = "document".into();
            r.broadcast(&v);
        }
    }

    async fn media_event(&self, ev: MeetingMedia) {
        match ev {
            MeetingMedia::Remote {
                room,
                peer,
                participant,
            } => {
                self.inner
                    .lock()
                    .expect("meetings lock")
                    .learned(peer, room, participant);
            }
            MeetingMedia::RemoteGone { peer, .. } => {
                let mut inner = self.inner.lock().expect("meetings lock");
                inner.peers.remove(&peer);
                inner.slots.remove(&peer);
            }
            MeetingMedia::Slots(u) => {
                let mut inner = self.inner.lock().expect("meetings lock");
                if let Some(&(meeting, pid)) = inner.peers.get(&u.peer)
                    && let Some(p) = inner.rooms.get(&meeting).and_then(|r| r.parts.get(&pid))
                    && p.answered
                {
                    send(p, &slots_message(&u, &inner.peers));
                }
                inner.slots.insert(u.peer, u);
            }
            MeetingMedia::Layers {
                peer,
                track,
                active,
            } => {
                let inner = self.inner.lock().expect("meetings lock");
                let Some(&(meeting, pid)) = inner.peers.get(&peer) else {
                    return;
                };
                if let Some(p) = inner.rooms.get(&meeting).and_then(|r| r.parts.get(&pid)) {
                    send(
                        p,
                        &json!({"type": "layers", "track": track.as_str(), "active": active}),
                    );
                }
            }
            MeetingMedia::Speaker { room, peer } => {
                let mut inner = self.inner.lock().expect("meetings lock");
                let Some(&(meeting, pid)) = inner.peers.get(&peer) else {
                    return;
                };
                if meeting != room {
                    return;
                }
                if let Some(r) = inner.rooms.get_mut(&meeting) {
                    r.speaker = Some(pid);
                    r.broadcast(&json!({"type": "speaker", "participant": pid}));
                }
            }
            MeetingMedia::Left { room, peer, reason } => {
                let found = {
                    let mut inner = self.inner.lock().expect("meetings lock");
                    inner.slots.remove(&peer);
                    inner.peers.get(&peer).copied().filter(|(m, _)| *m == room)
                };
                let Some((meeting, pid)) = found else { return };
                tracing::info!(
                    meeting,
                    participant = pid,
                    reason,
                    "a participant's media ended"
                );
                if let Ok(p) = self.inner.lock().expect("meetings lock").part(meeting, pid) {
                    send(
                        p,
                        &json!({"type": "error", "status": 410, "code": "media_lost",
                                "message": format!("your connection to the meeting was lost: {reason}")}),
                    );
                    let _ = p.tx.send(Out::Close(4410, "connection lost".into()));
                }
                self.leave(meeting, pid).await;
            }
        }
    }
}

pub fn document_json(d: &store::Document) -> Value {
    json!({
        "id": d.id, "name": d.name, "mime": d.mime, "size": d.bytes,
        "from": d.uploader, "at": rfc3339(d.at_ms),
        "url": format!("/api/meetings/{}/documents/{}", d.meeting_id, d.id),
    })
}

/// The `slots` message for one participant, publishers named by participant id.
fn slots_message(u: &SlotsUpdate, peers: &HashMap<SessionId, (i64, u64)>) -> Value {
    let feed = |f: &Option<Feed>| -> Value {
        let pid = |f: &Feed| -> Option<u64> {
            if f.publisher >= CAMERA_PUBLISHER {
                Some(f.publisher)
            } else {
                peers.get(&f.publisher).map(|(_, pid)| *pid)
            }
        };
        match f.and_then(|f| pid(&f).map(|pid| (pid, f.track))) {
            Some((pid, t)) => json!({"participant": pid, "track": t.as_str()}),
            None => Value::Null,
        }
    };
    let map = |v: &[(String, Option<Feed>)]| -> Value {
        Value::Object(v.iter().map(|(mid, f)| (mid.clone(), feed(f))).collect())
    };
    json!({
        "type": "slots",
        "video": map(&u.video),
        "audio": map(&u.audio),
        "need": {"video": u.need_video, "audio": u.need_audio},
    })
}

pub use remind::{REMIND_AHEAD_MS, remind_due};

#[cfg(test)]
mod tests {
    use super::*;

    /// A participant of meeting 1 with core id `peer` (once known), and what it is sent.
    fn part(name: &str, peer: Option<SessionId>) -> (Part, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let who = Who {
            name: name.into(),
            invite: None,
            user_id: None,
            chair: false,
            admin: false,
            address: None,
        };
        let mut p = Part::new(who, tx, 0, String::new());
        p.peer = peer;
        p.connected = peer.is_some();
        (p, rx)
    }

    fn report(peer: SessionId, publisher: SessionId) -> SlotsUpdate {
        let feed = |track| Some(Feed { publisher, track });
        SlotsUpdate {
            peer,
            video: vec![("0".into(), feed(TrackKind::Camera))],
            audio: vec![("1".into(), feed(TrackKind::Mic))],
            need_video: 1,
            need_audio: 1,
        }
    }

    fn texts(rx: &mut mpsc::UnboundedReceiver<Out>) -> Vec<Value> {
        let mut v = Vec::new();
        while let Ok(Out::Text(t)) = rx.try_recv() {
            v.push(serde_json::from_str(&t).unwrap());
        }
        v
    }

    #[test]
    fn slot_reports_wait_for_the_answer_and_are_told_again_once_a_newcomer_is_known() {
        // Participants 1 and 3 are known to the hub as core ids 10 and 30; participant 2
        // has just been placed by the core as 20, which reported the room before the hub
        // learned that 20 is participant 2.
        let (p1, mut rx1) = part("Một", Some(10));
        let (p2, mut rx2) = part("Hai", Some(20));
        let (p3, mut rx3) = part("Ba", Some(30));
        let mut room = Room::default();
        room.parts.extend([(1, p1), (2, p2), (3, p3)]);
        let mut inner = Inner {
            rooms: HashMap::from([(1, room)]),
            peers: HashMap::from([(10, (1, 1)), (30, (1, 3))]),
            keys: HashMap::new(),
            slots: HashMap::from([
                (10, report(10, 20)), // 1 watches 2: was told "nobody"
                (20, report(20, 10)), // 2 watches 1: was not told at all
                (30, report(30, 10)), // 3 watches 1: was told right
            ]),
            next_pid: 4,
            ..Default::default()
        };
        for (_, r) in inner
            .rooms
            .get_mut(&1)
            .unwrap()
            .parts
            .iter_mut()
            .filter(|(pid, _)| **pid != 2)
        {
            r.answered = true;
        }
        let before = slots_message(&inner.slots[&10], &inner.peers);
        assert_eq!(before["video"]["0"], Value::Null);
        inner.learned(20, 1, 2);
        let told = texts(&mut rx1);
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0]["video"]["0"]["participant"], 2);
        assert_eq!(told[0]["audio"]["1"]["participant"], 2);
        assert!(
            texts(&mut rx3).is_empty(),
            "a report that named no newcomer"
        );
        // The newcomer hears of its slots only after its answer went out, once.
        assert!(texts(&mut rx2).is_empty());
        inner.answered(1, 2);
        let told = texts(&mut rx2);
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0]["video"]["0"]["participant"], 1);
        inner.answered(1, 2);
        assert!(texts(&mut rx2).is_empty(), "once");
    }
}
