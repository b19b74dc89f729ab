//! The chair's moderation: mute (and allow to unmute), stop a camera, remove, lock and end
//! the meeting, here or, for a participant at another node, down the tree to the node that
//! has them (`remote`); and the commune cameras the chair adds to the room.

use super::*;

impl Meetings {
    /// A chair's action. `target` is a participant id where the action needs one.
    pub async fn chair(
        &self,
        meeting: i64,
        pid: u64,
        action: &str,
        target: Option<u64>,
        kind: Option<TrackKind>,
    ) -> Result<()> {
        self.chair_as(meeting, Some(pid), action, target, kind)
            .await
    }

    /// A chair's action, by participant `by` here, or (`None`) by the chair at a node
    /// above, whose action came down the tree.
    pub(crate) async fn chair_as(
        &self,
        meeting: i64,
        by: Option<u64>,
        action: &str,
        target: Option<u64>,
        kind: Option<TrackKind>,
    ) -> Result<()> {
        let pid = by.unwrap_or(0);
        let mut block = None;
        let mut close_peers = Vec::new();
        let mut ended = false;
        let mut removed = None;
        {
            let mut inner = self.inner.lock().expect("meetings lock");
            let room = inner.rooms.get_mut(&meeting).ok_or_else(absent)?;
            if by.is_some() {
                let me = room.parts.get(&pid).ok_or_else(absent)?;
                if !me.who.chair {
                    bail!(PermissionDenied, "only the chair may do this");
                }
            }
            // A participant at another node: the action goes down the tree to them.
            if let Some(t) = target
                && remote::crosses_down(action)
                && !room.parts.contains_key(&t)
                && room.has_remote(t)
            {
                drop(inner);
                self.chair_down(meeting, action, t, kind);
                return Ok(());
            }
            let target_part = |room: &mut Room| -> Result<u64> {
                let t = target.ok_or_else(|| err!(InvalidArgument, "participant is missing"))?;
                if !room.parts.contains_key(&t) {
                    bail!(NotFound, "no participant {t} in this meeting");
                }
                Ok(t)
            };
            match action {
                "mute" | "allow_unmute" => {
                    let t = target_part(room)?;
                    let k = match kind {
                        Some(TrackKind::Screen) | None => {
                            bail!(InvalidArgument, "kind must be \"mic\" or \"camera\"")
                        }
                        Some(k) => k,
                    };
                    let p = room.parts.get_mut(&t).expect("checked");
                    if action == "mute" {
                        p.chair_muted.set(k, true);
                        p.may_unmute.set(k, false);
                        match k {
                            TrackKind::Mic => p.mic = false,
                            _ => p.camera = false,
                        }
                        block = p.peer.map(|peer| (peer, k, true));
                    } else if p.chair_muted.get(k) {
                        p.may_unmute.set(k, true);
                    }
                    send(
                        p,
                        &json!({
                            "type": "chair", "action": action, "kind": k.as_str(),
                            "may_unmute": action == "allow_unmute",
                        }),
                    );
                    room.broadcast_participants();
                }
                "remove" => {
                    let t = target_part(room)?;
                    if t == pid {
                        bail!(
                            InvalidArgument,
                            "the chair cannot remove themselves; leave instead"
                        );
                    }
                    removed = Some(t);
                }
                "lock" | "unlock" => {
                    room.locked = action == "lock";
                    let locked = room.locked;
                    room.broadcast(&json!({"type": "locked", "locked": locked}));
                }
                "end" => {
                    ended = true;
                    for p in room.parts.values() {
                        send(
                            p,
                            &json!({"type": "ended", "reason": "the chair ended the meeting"}),
                        );
                        let _ = p.tx.send(Out::Close(1000, "meeting ended".into()));
                        close_peers.extend(p.peer);
                    }
                }
                other => bail!(InvalidArgument, "unknown chair action {other:?}"),
            }
        }
        if let Some(t) = removed {
            if let Ok(p) = self.inner.lock().expect("meetings lock").part(meeting, t) {
                send(
                    p,
                    &json!({"type": "removed", "reason": "the chair removed you"}),
                );
                let _ = p.tx.send(Out::Close(1000, "removed by the chair".into()));
            }
            self.leave(meeting, t).await;
        }
        match action {
            "lock" | "unlock" => {
                store::set_locked(&self.db, meeting, action == "lock").await?;
                self.tell_nodes(meeting).await;
            }
            _ => {}
        }
        if let (Some(live), Some((peer, k, b))) = (&self.live, block) {
            live.block(peer, k, b).await;
        }
        if ended {
            store::set_ended(&self.db, meeting, self.now_ms()).await?;
            self.tell_nodes(meeting).await;
            let pids: Vec<u64> = {
                let inner = self.inner.lock().expect("meetings lock");
                inner
                    .rooms
                    .get(&meeting)
                    .map(|r| r.parts.keys().copied().collect())
                    .unwrap_or_default()
            };
            for p in pids {
                self.leave(meeting, p).await;
            }
            let _ = close_peers;
        }
        Ok(())
    }

    /// The chair adds one of the commune's cameras to the meeting (the caller checked the
    /// chair's grant on it): everyone sees its live feed as a tile.
    pub async fn add_camera(&self, meeting: i64, pid: u64, camera: i64, name: &str) -> Result<()> {
        self.chair_check(meeting, pid)?;
        let Some(live) = &self.live else {
            bail!(Unavailable, "media is not running on this server");
        };
        {
            let mut inner = self.inner.lock().expect("meetings lock");
            let Some(r) = inner.rooms.get_mut(&meeting) else {
                return Err(absent());
            };
            if r.cameras.insert(camera, name.to_string()).is_some() {
                bail!(AlreadyExists, "camera {camera} is in the meeting already");
            }
            r.broadcast_participants();
        }
        live.meeting_camera(meeting, camera, true).await;
        Ok(())
    }

    pub async fn remove_camera(&self, meeting: i64, pid: u64, camera: i64) -> Result<()> {
        self.chair_check(meeting, pid)?;
        let removed = {
            let mut inner = self.inner.lock().expect("meetings lock");
            let r = inner.rooms.get_mut(&meeting);
            let removed = r.as_ref().is_some_and(|r| r.cameras.contains_key(&camera));
            if let Some(r) = r {
                r.cameras.remove(&camera);
                r.broadcast_participants();
            }
            removed
        };
        if !removed {
            bail!(NotFound, "camera {camera} is not in this meeting");
        }
        if let Some(live) = &self.live {
            live.meeting_camera(meeting, camera, false).await;
        }
        Ok(())
    }

    pub(super) fn chair_check(&self, meeting: i64, pid: u64) -> Result<()> {
        let inner = self.inner.lock().expect("meetings lock");
        let p = inner.part(meeting, pid)?;
        if !p.who.chair {
            bail!(PermissionDenied, "only the chair may do this");
        }
        Ok(())
    }
}
