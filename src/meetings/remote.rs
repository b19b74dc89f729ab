//! The room across nodes (federation: `federation::trunks` carries it). Every node in a
//! meeting sends the others the list of its own participants (on every change, and every
//! few seconds so that a list missed or gone stale heals), and shows its pages everyone's;
//! chat messages go to every node and are kept at each; the chair's actions on someone at
//! another node go down the tree to the node that has them, which applies them as the
//! chair's; votes live at the meeting's home, which sends their state down, and ballots
//! cast below go up to it to be counted once. Media is not here: the forwarding cores'
//! trunks carry it.

use super::{Meetings, Room, rfc3339, store};
use crate::federation::Federation;
use crate::federation::meetings::{PARTS_EXPIRE_MS, TrunkMsg};
use crate::federation::trunks::{LinkKey, MeetingHub};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xaso_sfu::TrackKind;

/// How often the hub looks for lists to send, and sends them all regardless.
const SHARE_TICK: Duration = Duration::from_millis(250);
const SHARE_ALL: Duration = Duration::from_secs(5);

/// The chair's actions on one participant, which go down the tree to a participant at
/// another node (a lock or an end travels as the meeting's row instead).
pub(super) fn crosses_down(action: &str) -> bool {
    matches!(action, "mute" | "allow_unmute" | "remove")
}

/// One other node's participants, as it last sent them.
pub(super) struct RemoteParts {
    via: LinkKey,
    node: String,
    list: Vec<Value>,
    at_ms: i64,
}

impl Room {
    /// The participants of the other nodes, each marked with its node.
    pub(super) fn remote_list(&self) -> Vec<Value> {
        self.remote
            .values()
            .flat_map(|r| {
                r.list.iter().filter_map(|p| {
                    let mut p = p.clone();
                    let o = p.as_object_mut()?;
                    o.insert("node".into(), Value::from(r.node.clone()));
                    o.insert("remote".into(), Value::from(true));
                    Some(p)
                })
            })
            .collect()
    }

    /// Whether participant `id` is at another node.
    pub(super) fn has_remote(&self, id: u64) -> bool {
        self.remote
            .values()
            .any(|r| r.list.iter().any(|p| p["id"].as_u64() == Some(id)))
    }

    /// This node's own participants, as the other nodes are to show them.
    fn local_list(&self) -> Vec<Value> {
        let all = self.participants();
        all["list"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter(|p| p["role"] != "camera" && p.get("remote").is_none())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Meetings {
    /// The tree of nodes; from now on this hub shares its rooms with the other nodes.
    pub fn set_federation(self: &Arc<Self>, f: Arc<Federation>) {
        if self.federation.set(f.clone()).is_err() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SHARE_TICK);
            let mut all_at = Instant::now();
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { return };
                let all = all_at.elapsed() >= SHARE_ALL;
                if all {
                    all_at = Instant::now();
                }
                me.share(&f, all);
                me.feature_chairs().await;
                if all {
                    me.share_votes(&f).await;
                }
            }
        });
    }

    /// Sends this node's participants of every meeting linked to other nodes whose list
    /// changed (or of all of them); drops the lists of nodes not heard of lately.
    fn share(&self, f: &Federation, all: bool) {
        let now = self.now_ms();
        let mut out = Vec::new();
        {
            let mut inner = self.inner.lock().expect("meetings lock");
            for meeting in f.linked_meetings() {
                let list = match inner.rooms.get(&meeting) {
                    Some(r) if r.changed.replace(false) || all => r.local_list(),
                    Some(_) => continue,
                    None if all => Vec::new(),
                    None => continue,
                };
                out.push((meeting, list));
            }
            for r in inner.rooms.values_mut() {
                let before = r.remote.len();
                r.remote.retain(|_, x| now - x.at_ms < PARTS_EXPIRE_MS);
                if r.remote.len() != before {
                    r.broadcast_participants();
                }
            }
        }
        for (meeting, list) in out {
            // (`node` is this one: each link up names it, see `federation::trunks`.)
            let op = TrunkMsg::Parts {
                from: self.node_key.clone(),
                node: String::new(),
                list,
            };
            f.meeting_share(meeting, &op, None, false);
        }
    }

    /// A chat message written here goes to the other nodes.
    pub(super) fn chat_to_nodes(&self, meeting: i64, pid: u64, name: &str, text: &str, at: i64) {
        if let Some(f) = self.federation.get() {
            let op = TrunkMsg::Chat {
                from: self.node_key.clone(),
                name: name.into(),
                participant: pid,
                text: text.into(),
                at_ms: at,
            };
            f.meeting_share(meeting, &op, None, false);
        }
    }

    /// A vote's state here, at the meeting's home, goes down to the nodes it invites.
    pub(super) fn vote_to_nodes(&self, meeting: i64, vote: Value) {
        if let Some(f) = self.federation.get() {
            f.meeting_share(meeting, &TrunkMsg::Vote { vote }, None, true);
        }
    }

    /// Every vote of the meetings made here goes down again (a node that came late, or
    /// missed a change, has them within one round).
    async fn share_votes(&self, f: &Federation) {
        for meeting in f.linked_meetings() {
            let local = {
                let inner = self.inner.lock().expect("meetings lock");
                !inner.remote_votes.contains_key(&meeting)
            };
            if !local || f.has_parent_trunk(meeting) {
                continue; // a meeting from above: its home sends its votes
            }
            match store::votes(&self.db, meeting).await {
                Ok(votes) => {
                    for v in &votes {
                        self.vote_to_nodes(meeting, super::vote_json(v));
                    }
                }
                Err(e) => tracing::warn!(meeting, error = %e, "cannot read a meeting's votes"),
            }
        }
    }

    /// A ballot cast here in a vote of a meeting from above (`v`, its state as the home last
    /// sent it): checked as far as this node can, then sent up to be counted at the home.
    pub(super) fn ballot_up(
        &self,
        meeting: i64,
        vote: i64,
        v: &Value,
        voter: String,
        name: String,
        option: i64,
    ) -> crate::error::Result<()> {
        use crate::bail;
        if v["open"] != true {
            bail!(FailedPrecondition, "this vote is closed");
        }
        let n = v["options"].as_array().map_or(0, |o| o.len()) as i64;
        if option < 0 || option >= n {
            bail!(InvalidArgument, "option must be 0 to {}", (n - 1).max(0));
        }
        let Some(f) = self.federation.get() else {
            bail!(Unavailable, "the link to the meeting's home is down");
        };
        let mut inner = self.inner.lock().expect("meetings lock");
        if inner.remote_cast.contains(&(meeting, vote, voter.clone())) {
            bail!(AlreadyExists, "you have already voted");
        }
        let op = TrunkMsg::Ballot {
            vote,
            voter: voter.clone(),
            name,
            option,
        };
        if !f.meeting_up(meeting, &op) {
            bail!(
                Unavailable,
                "the link to the meeting's home is down: vote again once it is back"
            );
        }
        inner.remote_cast.insert((meeting, vote, voter));
        Ok(())
    }

    /// The chair's action on participant `target` at a node below goes down to it.
    pub(super) fn chair_down(
        &self,
        meeting: i64,
        action: &str,
        target: u64,
        kind: Option<TrackKind>,
    ) {
        if let Some(f) = self.federation.get() {
            let op = TrunkMsg::Chair {
                action: action.into(),
                target,
                kind: kind.map(|k| k.as_str().into()),
            };
            f.meeting_share(meeting, &op, None, true);
        }
    }
}

impl MeetingHub for Meetings {
    fn mirrored(self: Arc<Self>, m: &store::Meeting) {
        let (id, locked, ended) = (m.id, m.locked, m.ended_ms.is_some());
        {
            let mut inner = self.inner.lock().expect("meetings lock");
            if let Some(r) = inner.rooms.get_mut(&id)
                && r.locked != locked
            {
                r.locked = locked;
                r.broadcast(&json!({"type": "locked", "locked": locked}));
            }
        }
        if ended {
            {
                let mut inner = self.inner.lock().expect("meetings lock");
                inner.remote_votes.remove(&id);
                inner.remote_cast.retain(|(m, _, _)| *m != id);
            }
            tokio::spawn(async move { self.end_room(id, "the chair ended the meeting").await });
        }
    }

    fn from_node(self: Arc<Self>, meeting: i64, via: LinkKey, op: TrunkMsg) {
        let Some(f) = self.federation.get().cloned() else {
            return;
        };
        match op {
            TrunkMsg::Parts { from, node, list } => {
                if from == self.node_key {
                    return;
                }
                let op = TrunkMsg::Parts {
                    from: from.clone(),
                    node: node.clone(),
                    list: list.clone(),
                };
                f.meeting_share(meeting, &op, Some(via), false);
                let mut inner = self.inner.lock().expect("meetings lock");
                if let Some(r) = inner.rooms.get_mut(&meeting) {
                    let known = r.remote.contains_key(&from);
                    let changed = r.remote.get(&from).is_none_or(|x| x.list != list);
                    let at_ms = self.now_ms();
                    r.remote.insert(
                        from,
                        RemoteParts {
                            via,
                            node,
                            list,
                            at_ms,
                        },
                    );
                    if changed {
                        // (Only what came from elsewhere changed: not news for the others,
                        // unless that node is new here: it gets this node's list at once
                        // rather than at the next full round.)
                        let keep = r.changed.get();
                        r.broadcast_participants();
                        r.changed.set(keep || !known);
                    }
                }
            }
            TrunkMsg::Chat {
                ref from,
                ref name,
                participant,
                ref text,
                at_ms,
            } => {
                if *from == self.node_key {
                    return;
                }
                f.meeting_share(meeting, &op, Some(via), false);
                let (name, text) = (name.clone(), text.clone());
                tokio::spawn(async move {
                    let id = match store::add_chat(&self.db, meeting, &name, None, &text, at_ms)
                        .await
                    {
                        Ok(id) => id,
                        Err(e) => {
                            tracing::warn!(meeting, error = %e, "cannot keep a chat message from another node");
                            return;
                        }
                    };
                    let inner = self.inner.lock().expect("meetings lock");
                    if let Some(r) = inner.rooms.get(&meeting) {
                        r.broadcast(&json!({
                            "type": "chat", "id": id, "from": {"id": participant, "name": name},
                            "text": text, "at": rfc3339(at_ms),
                        }));
                    }
                });
            }
            TrunkMsg::Chair {
                ref action,
                target,
                ref kind,
            } => {
                // (A lock or an end comes as the meeting's row: see `mirrored`.)
                if !crosses_down(action) {
                    return;
                }
                let here = {
                    let inner = self.inner.lock().expect("meetings lock");
                    inner
                        .rooms
                        .get(&meeting)
                        .is_some_and(|r| r.parts.contains_key(&target))
                };
                if !here {
                    f.meeting_share(meeting, &op, Some(via), true);
                    return;
                }
                let kind = kind.as_deref().and_then(TrackKind::parse);
                let action = action.clone();
                tokio::spawn(async move {
                    if let Err(e) = self
                        .chair_as(meeting, None, &action, Some(target), kind)
                        .await
                    {
                        tracing::warn!(meeting, target, %action, error = %e, "a chair's action from above failed");
                    }
                });
            }
            TrunkMsg::Vote { vote } => {
                let Some(id) = vote["id"].as_i64() else {
                    return;
                };
                f.meeting_share(
                    meeting,
                    &TrunkMsg::Vote { vote: vote.clone() },
                    Some(via),
                    true,
                );
                let mut inner = self.inner.lock().expect("meetings lock");
                let votes = inner.remote_votes.entry(meeting).or_default();
                if votes.get(&id) == Some(&vote) {
                    return; // (the periodic round: nothing new)
                }
                votes.insert(id, vote.clone());
                if let Some(r) = inner.rooms.get(&meeting) {
                    r.broadcast(&json!({"type": "vote", "vote": vote}));
                }
            }
            TrunkMsg::Ballot {
                vote,
                ref voter,
                ref name,
                option,
            } => {
                let from_above = {
                    let inner = self.inner.lock().expect("meetings lock");
                    inner
                        .remote_votes
                        .get(&meeting)
                        .is_some_and(|v| v.contains_key(&vote))
                };
                if from_above {
                    // Not this node's vote: on up toward the meeting's home.
                    if !f.meeting_up(meeting, &op) {
                        tracing::warn!(
                            meeting,
                            vote,
                            "a ballot from below lost: the uplink is down"
                        );
                    }
                    return;
                }
                let (voter, name) = (voter.clone(), name.clone());
                tokio::spawn(async move {
                    // The vote must be this meeting's; one ballot per voter and node.
                    let r = match store::vote(&self.db, meeting, vote).await {
                        Ok(_) => {
                            store::cast(&self.db, vote, &voter, &name, option, self.now_ms()).await
                        }
                        Err(e) => Err(e),
                    };
                    match r {
                        Ok(()) => {
                            if let Err(e) = self.broadcast_vote(meeting, vote).await {
                                tracing::warn!(meeting, vote, error = %e, "cannot tell a vote");
                            }
                        }
                        Err(e) => {
                            tracing::info!(meeting, vote, %voter, error = %e, "a ballot from below refused")
                        }
                    }
                });
            }
            _ => {}
        }
    }

    fn document_added(&self, doc: &store::Document) {
        self.document_shared(doc);
    }

    fn link_gone(&self, via: LinkKey) {
        let mut inner = self.inner.lock().expect("meetings lock");
        for r in inner.rooms.values_mut() {
            let before = r.remote.len();
            r.remote.retain(|_, x| x.via != via);
            if r.remote.len() != before {
                let keep = r.changed.get();
                r.broadcast_participants();
                r.changed.set(keep);
            }
        }
    }
}
