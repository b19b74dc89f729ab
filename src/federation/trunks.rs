//! Meetings across levels, the links' side. A meeting that invites nodes below its own is
//! sent down each link toward them (`meeting_info`), and kept at every node on the way
//! under the same id (`meetings::store::upsert_mirror`). While a link is up, each meeting
//! on it has a trunk there: the forwarding cores of the two nodes exchange the tracks
//! their participants need through it (`live::trunk`, `xaso_sfu::core`'s trunk module),
//! with the link's outbox as the trunk's sink and its frames of type 3 and `meeting`
//! messages as what comes in (`federation::meetings` is the wire).
//!
//! A link that drops closes its trunks at both ends: each node's part of the meeting goes
//! on with its own participants, and the trunks open again when the link returns.

use super::Federation;
use super::meetings::{self as wire, TrunkMsg};
use super::proto::Msg;
use super::relay::Outbox;
use crate::live::{TrunkIn, TrunkOut, TrunkSink};
use crate::meetings::store::{self, Meeting};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use xaso_sfu::{SessionId, TrunkId, TrunkRtp};

/// How long after its end a meeting is still sent to a child whose link comes up (so that
/// one that ended while the link was down is seen ended there).
const ENDED_KEPT_MS: i64 = 24 * 3600 * 1000;

/// Which link a trunk is on: the uplink, or one connection of a child's (a child that
/// dials again gets new trunks on its new link).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkKey {
    Parent,
    Child(u64),
}

/// A meeting's trunk on one link, and that link's outbox.
pub type LinkTrunkOf = (TrunkId, Arc<Outbox>);

/// What a link can bring this node: the far side's estimate of what it can send
/// (`federation::rate`), and the camera streams it brings meanwhile.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkRate {
    pub far_bps: Option<u64>,
    pub relay_bps: u64,
}

/// The share of a link's estimate that meetings may ask for: the rest is room for RTCP-like
/// control, retransmitted keyframes, footage and the estimate's own error.
const MEETING_SHARE: u64 = 85;
/// The least a meeting's trunk is given (a few voices), however full the link.
const TRUNK_FLOOR_BPS: u64 = 100_000;

/// What the meetings hub does with what other nodes say of a meeting (set at start).
pub trait MeetingHub: Send + Sync {
    /// The row of a meeting from the parent was written: apply a lock or an end here.
    fn mirrored(self: Arc<Self>, m: &Meeting);
    /// Room state from another node (`Parts`, `Chat`, `Chair`, `Vote`, `Ballot`), come over
    /// link `via`.
    fn from_node(self: Arc<Self>, meeting: i64, via: LinkKey, op: TrunkMsg);
    /// A link ended: what came over it is gone.
    fn link_gone(&self, via: LinkKey);
    /// A document of a meeting came from another node and is kept here now.
    fn document_added(&self, doc: &store::Document);
}

/// A trunk's sink: the link's outbox.
struct LinkTrunk {
    meeting: i64,
    out: Arc<Outbox>,
}

/// Media a link may hold unsent before a meeting's packets are dropped: about 130 ms of a
/// 6 Mbit/s link. Less than a camera's stream may queue ([`super::relay::MEDIA_BUDGET`]):
/// a conversation suffers more from delay than from a lost picture, and the far side's
/// budget (`federation::rate`) soon asks for less.
const MEETING_QUEUE: usize = 96 * 1024;
/// Voices may queue this much more: on a link too full, pictures are dropped first.
const VOICE_EXTRA: usize = 32 * 1024;

impl TrunkSink for LinkTrunk {
    fn rtp(&self, publisher: SessionId, p: &TrunkRtp) {
        // A full outbox drops the packet: the far side's pages ask for what they miss.
        let limit = if p.track.is_video() {
            MEETING_QUEUE
        } else {
            MEETING_QUEUE + VOICE_EXTRA
        };
        self.out
            .push_media_within(wire::encode(self.meeting, publisher, p), limit);
    }

    fn control(&self, c: TrunkOut) {
        let op = match c {
            TrunkOut::Publish {
                publisher,
                participant,
                tracks,
            } => TrunkMsg::Publish {
                publisher,
                participant,
                tracks: wire::tracks_out(&tracks),
            },
            TrunkOut::Open => TrunkMsg::Open,
            TrunkOut::Unpublish { publisher } => TrunkMsg::Unpublish { publisher },
            TrunkOut::Want(w) => TrunkMsg::Want {
                wants: wire::wants_out(&w),
            },
            TrunkOut::Keyframe {
                publisher,
                track,
                rid,
            } => TrunkMsg::Keyframe {
                publisher,
                track: track.as_str().into(),
                rid,
            },
        };
        self.out.send(&Msg::Meeting {
            meeting: self.meeting,
            op,
        });
    }
}

/// Each trunk's budget on a link: what meetings may ask of it, shared evenly.
fn trunk_budgets(r: LinkRate, trunks: &[TrunkId]) -> Vec<(TrunkId, Option<u64>)> {
    let each = r.far_bps.map(|far| {
        let free = (far * MEETING_SHARE / 100).saturating_sub(r.relay_bps);
        (free / trunks.len().max(1) as u64).max(TRUNK_FLOOR_BPS)
    });
    trunks.iter().map(|t| (*t, each)).collect()
}

/// The `meeting_info` message of `m` for a child, with `nodes` relative to it.
fn info(m: &Meeting, nodes: Vec<String>) -> Msg {
    Msg::MeetingInfo {
        id: m.id,
        title: m.title.clone(),
        start_ms: m.start_ms,
        end_ms: m.end_ms,
        chair: m.chair.clone(),
        locked: m.locked,
        ended_ms: m.ended_ms,
        nodes,
    }
}

impl Federation {
    /// Where meetings from the parent are applied (the meetings hub).
    pub fn set_meeting_hub(&self, hub: Arc<dyn MeetingHub>) {
        let _ = self.meeting_hub.set(hub);
    }

    /// A meeting was made, or changed (locked, ended), here: the children it invites (or
    /// nodes below them) are told, and its trunks on their links open or close.
    pub fn meeting_changed(self: &Arc<Self>, m: &Meeting) {
        let names: Vec<(i64, String)> = self
            .registered
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.id, r.name.clone()))
            .collect();
        for (id, name) in names {
            let nodes = m.nodes_at(&name);
            if nodes.is_empty() {
                continue;
            }
            let link = self.children.lock().unwrap().get(&id).map(|c| c.link);
            if let (Some(link), Some(io)) = (link, self.child_io(id)) {
                io.out.send(&info(m, nodes));
                self.set_trunk(LinkKey::Child(link), m, io.out.clone());
            }
        }
    }

    /// A child's link came up: it is told of the meetings that invite it or nodes below
    /// it, and their trunks open.
    pub(super) fn child_linked(self: &Arc<Self>, link: u64, name: String, out: Arc<Outbox>) {
        let me = self.clone();
        tokio::spawn(async move {
            let since = me.now_ms() - ENDED_KEPT_MS;
            let meetings = match store::with_nodes(&me.db, since).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the meetings for a child");
                    return;
                }
            };
            for m in meetings {
                let nodes = m.nodes_at(&name);
                if !nodes.is_empty() {
                    out.send(&info(&m, nodes));
                    me.set_trunk(LinkKey::Child(link), &m, out.clone());
                }
            }
        });
    }

    /// The uplink is up (`Some`, with its outbox) or down.
    pub(super) fn parent_linked(&self, out: Option<Arc<Outbox>>) {
        *self.uplink_out.lock().unwrap() = out;
    }

    /// What link `key` can bring changed (the far side's estimate, `None`: unchanged; or
    /// the rate of camera streams on it): the meetings' trunks on it share it again.
    pub(super) fn link_rate(&self, key: LinkKey, far_bps: Option<u64>, relay_bps: Option<u64>) {
        let r = {
            let mut rates = self.link_rates.lock().unwrap();
            let r = rates.entry(key).or_default();
            if far_bps.is_some() {
                r.far_bps = far_bps;
            }
            if let Some(b) = relay_bps {
                r.relay_bps = b;
            }
            *r
        };
        let trunks: Vec<TrunkId> = self
            .trunks
            .lock()
            .unwrap()
            .iter()
            .filter(|((k, _), _)| *k == key)
            .map(|(_, v)| v.0)
            .collect();
        tracing::debug!(?key, far = ?r.far_bps, relay = r.relay_bps, trunks = trunks.len(), "a link's rate");
        if let Some(live) = self.live.get() {
            for (t, b) in trunk_budgets(r, &trunks) {
                live.trunk_in(t, TrunkIn::Budget(b));
            }
        }
    }

    /// A link ended: its trunks close (each node's part of its meetings goes on alone).
    pub(super) fn link_ended(&self, key: LinkKey) {
        self.link_rates.lock().unwrap().remove(&key);
        self.documents_link_gone(key);
        let gone: Vec<TrunkId> = {
            let mut t = self.trunks.lock().unwrap();
            let ids = t.iter().filter(|((k, _), _)| *k == key).map(|(_, v)| v.0);
            let ids: Vec<TrunkId> = ids.collect();
            t.retain(|(k, _), _| *k != key);
            ids
        };
        if let Some(hub) = self.meeting_hub.get() {
            hub.link_gone(key);
        }
        if let Some(live) = self.live.get().cloned() {
            tokio::spawn(async move {
                for id in gone {
                    live.close_trunk(id).await;
                }
            });
        }
    }

    /// Opens the trunk of meeting `m` on link `key` (once), or closes it when `m` ended.
    fn set_trunk(&self, key: LinkKey, m: &Meeting, out: Arc<Outbox>) {
        let Some(live) = self.live.get().cloned() else {
            return;
        };
        let mut t = self.trunks.lock().unwrap();
        if m.ended_ms.is_some() {
            if let Some((id, _)) = t.remove(&(key, m.id)) {
                tokio::spawn(async move { live.close_trunk(id).await });
            }
            return;
        }
        if t.contains_key(&(key, m.id)) {
            return;
        }
        let id = self.next_trunk.fetch_add(1, Ordering::Relaxed);
        t.insert((key, m.id), (id, out.clone()));
        let sink = Arc::new(LinkTrunk { meeting: m.id, out });
        let room = m.id;
        // The link's budget shared again, this trunk's once it is open.
        let on_link: Vec<TrunkId> = t
            .iter()
            .filter(|((k, _), _)| *k == key)
            .map(|(_, v)| v.0)
            .collect();
        drop(t);
        let rate = self.link_rates.lock().unwrap().get(&key).copied();
        let budgets = rate.map(|r| trunk_budgets(r, &on_link)).unwrap_or_default();
        tokio::spawn(async move {
            live.open_trunk(room, id, sink).await;
            for (t, b) in budgets {
                live.trunk_in(t, TrunkIn::Budget(b));
            }
        });
        self.offer_all_documents(key, m.id);
    }

    /// The parent sent a meeting (new, or changed): kept here, applied to the room, passed
    /// on toward the nodes below that it invites, and its trunk to the parent opened.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn meeting_from_parent(self: &Arc<Self>, m: Msg) -> Result<(), String> {
        let Msg::MeetingInfo {
            id,
            title,
            start_ms,
            end_ms,
            chair,
            locked,
            ended_ms,
            nodes,
        } = m
        else {
            return Ok(());
        };
        if title.chars().count() > 200 || chair.chars().count() > 200 || nodes.len() > 1000 {
            return Err("a meeting from the parent with too long a title, chair or list".into());
        }
        for n in nodes.iter().filter(|n| !n.is_empty()) {
            super::store::validate_path(n).map_err(|e| format!("a meeting's node: {e}"))?;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mirror = store::Mirror {
                id,
                title: &title,
                start_ms,
                end_ms,
                chair: &chair,
                locked,
                ended_ms,
                nodes: &nodes,
            };
            if let Err(e) = store::upsert_mirror(&me.db, &mirror, me.now_ms()).await {
                tracing::warn!(meeting = id, error = %e, "cannot keep a meeting from the parent");
                return;
            }
            let m = match store::get(&me.db, id).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(meeting = id, error = %e, "cannot read a meeting back");
                    return;
                }
            };
            if let Some(hub) = me.meeting_hub.get() {
                hub.clone().mirrored(&m);
            }
            let out = me.uplink_out.lock().unwrap().clone();
            if let Some(out) = out {
                me.set_trunk(LinkKey::Parent, &m, out);
            }
            me.meeting_changed(&m);
        });
        Ok(())
    }

    /// Sends room state of `meeting` over its trunks: every one but `except`'s, and with
    /// `down_only` only toward the children.
    pub fn meeting_share(
        &self,
        meeting: i64,
        op: &TrunkMsg,
        except: Option<LinkKey>,
        down_only: bool,
    ) {
        let outs: Vec<Arc<Outbox>> = self
            .trunks
            .lock()
            .unwrap()
            .iter()
            .filter(|((k, m), _)| {
                *m == meeting && Some(*k) != except && !(down_only && *k == LinkKey::Parent)
            })
            .map(|(_, v)| v.1.clone())
            .collect();
        for out in outs {
            out.send(&Msg::Meeting {
                meeting,
                op: op.clone(),
            });
        }
    }

    /// Sends room state of `meeting` up its trunk to the parent; `false` when it has none
    /// (this node is the meeting's home, or the uplink is down).
    pub fn meeting_up(&self, meeting: i64, op: &TrunkMsg) -> bool {
        let out = self
            .trunks
            .lock()
            .unwrap()
            .get(&(LinkKey::Parent, meeting))
            .map(|v| v.1.clone());
        match out {
            Some(out) => {
                out.send(&Msg::Meeting {
                    meeting,
                    op: op.clone(),
                });
                true
            }
            None => false,
        }
    }

    /// Whether meeting `meeting` has a trunk to the parent (it came from above).
    pub fn has_parent_trunk(&self, meeting: i64) -> bool {
        self.trunks
            .lock()
            .unwrap()
            .contains_key(&(LinkKey::Parent, meeting))
    }

    /// The name of the child whose link is `link`, while it is up.
    fn link_name(&self, link: u64) -> Option<String> {
        let id = self
            .children
            .lock()
            .unwrap()
            .iter()
            .find(|(_, c)| c.link == link)
            .map(|(id, _)| *id)?;
        let reg = self.registered.lock().unwrap();
        reg.iter().find(|r| r.id == id).map(|r| r.name.clone())
    }

    /// The meetings that have a trunk on some link now.
    pub fn linked_meetings(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.trunks.lock().unwrap().keys().map(|k| k.1).collect();
        v.sort();
        v.dedup();
        v
    }

    /// A `meeting` message arrived on link `key`.
    pub(super) fn meeting_msg(
        &self,
        key: LinkKey,
        meeting: i64,
        op: TrunkMsg,
    ) -> Result<(), String> {
        let Some(trunk) = self
            .trunks
            .lock()
            .unwrap()
            .get(&(key, meeting))
            .map(|v| v.0)
        else {
            return Ok(()); // a meeting this node does not take part in (or not yet)
        };
        if let TrunkMsg::Parts { .. }
        | TrunkMsg::Chat { .. }
        | TrunkMsg::Chair { .. }
        | TrunkMsg::Vote { .. }
        | TrunkMsg::Ballot { .. } = op
        {
            return self.room_state(key, meeting, op);
        }
        if let TrunkMsg::Document(_) | TrunkMsg::DocumentWant { .. } = op {
            wire::check_state(&op)?;
            self.document_msg(key, meeting, op);
            return Ok(());
        }
        let Some(live) = self.live.get() else {
            return Ok(());
        };
        let m = match op {
            TrunkMsg::Open => {
                // The far side's end is there now: it may not have had our documents' offers.
                self.offer_all_documents(key, meeting);
                TrunkIn::Open
            }
            TrunkMsg::Publish {
                publisher,
                participant,
                tracks,
            } => TrunkIn::Publish {
                far: publisher,
                participant,
                tracks: wire::tracks_in(&tracks)?,
            },
            TrunkMsg::Unpublish { publisher } => TrunkIn::Unpublish { far: publisher },
            TrunkMsg::Want { wants } => TrunkIn::Want(wire::wants_in(&wants)?),
            TrunkMsg::Keyframe {
                publisher,
                track,
                rid,
            } => TrunkIn::Keyframe {
                publisher,
                track: wire::keyframe_in(&track, &rid)?,
                rid,
            },
            TrunkMsg::Unknown
            | TrunkMsg::Document(_)
            | TrunkMsg::DocumentWant { .. }
            | TrunkMsg::Parts { .. }
            | TrunkMsg::Chat { .. }
            | TrunkMsg::Chair { .. }
            | TrunkMsg::Vote { .. }
            | TrunkMsg::Ballot { .. } => return Ok(()),
        };
        live.trunk_in(trunk, m);
        Ok(())
    }

    /// Room state (`parts`, `chat`, `chair`, `vote`, `ballot`) of `meeting` from link `key`:
    /// checked (which way each may go, its bounds), named with the child it came from, and
    /// given to the meetings hub.
    fn room_state(&self, key: LinkKey, meeting: i64, op: TrunkMsg) -> Result<(), String> {
        match (&op, key) {
            (TrunkMsg::Chair { .. }, LinkKey::Child(_)) => {
                return Err("a chair's action from a child".into());
            }
            (TrunkMsg::Vote { .. }, LinkKey::Child(_)) => {
                return Err("a vote's state from a child".into());
            }
            (TrunkMsg::Ballot { .. }, LinkKey::Parent) => {
                return Err("a ballot from the parent".into());
            }
            _ => {}
        }
        wire::check_state(&op)?;
        // Where a participant list or a ballot comes from: each hop up puts the child's
        // name in front (see `TrunkMsg::Parts`, `TrunkMsg::Ballot`).
        let child = match key {
            LinkKey::Child(link) => match self.link_name(link) {
                Some(name) => Some(name),
                None => return Ok(()), // (a link going away)
            },
            LinkKey::Parent => None,
        };
        let op = match (op, child) {
            (TrunkMsg::Parts { from, node, list }, Some(child)) => TrunkMsg::Parts {
                from,
                node: if node.is_empty() {
                    child
                } else {
                    format!("{child}/{node}")
                },
                list,
            },
            (
                TrunkMsg::Ballot {
                    vote,
                    voter,
                    name,
                    option,
                },
                Some(child),
            ) => TrunkMsg::Ballot {
                vote,
                voter: format!("{child}/{voter}"),
                name,
                option,
            },
            (op, _) => op,
        };
        if let Some(hub) = self.meeting_hub.get() {
            hub.clone().from_node(meeting, key, op);
        }
        Ok(())
    }

    /// A meeting packet arrived on link `key`.
    pub(super) fn meeting_frame(&self, key: LinkKey, frame: &[u8]) -> Result<(), String> {
        let (meeting, far, packet) = wire::decode(frame)?;
        let trunk = self
            .trunks
            .lock()
            .unwrap()
            .get(&(key, meeting))
            .map(|v| v.0);
        if let (Some(trunk), Some(live)) = (trunk, self.live.get()) {
            live.trunk_in(trunk, TrunkIn::Rtp { far, packet });
        }
        Ok(())
    }
}
