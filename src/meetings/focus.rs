//! Whose picture a page asks for, speaking or not (`focus`: the chair looking at one
//! commune of two hundred), and whose every page gets (the chair, here or at the node
//! that hosts the meeting: the room's featured participant), from participant ids to the
//! forwarding core's sessions. The core ranks them in each page's slots and in the link
//! budgets on the way (`xaso_sfu`'s `core::rooms`, `core::budget`).

use super::{Inner, Meetings};
use crate::err;
use crate::error::Result;
use xaso_sfu::SessionId;

impl Inner {
    /// The core's session of participant `pid` of `meeting`: its own connection here, or
    /// the publisher that stands for it behind a trunk.
    pub(super) fn session_of(&self, meeting: i64, pid: u64) -> Option<SessionId> {
        if let Some(p) = self.rooms.get(&meeting)?.parts.get(&pid) {
            return p.peer;
        }
        self.peers
            .iter()
            .find(|(_, v)| **v == (meeting, pid))
            .map(|(k, _)| *k)
    }

    /// The chair's session in `meeting`: the chair here, or the one another node lists.
    fn chair_session(&self, meeting: i64) -> Option<SessionId> {
        let room = self.rooms.get(&meeting)?;
        if let Some(p) = room
            .parts
            .values()
            .find(|p| p.who.chair && p.peer.is_some())
        {
            return p.peer;
        }
        room.remote_list()
            .iter()
            .filter(|p| p["role"] == "chair")
            .filter_map(|p| p["id"].as_u64())
            .find_map(|pid| self.session_of(meeting, pid))
    }
}

impl Meetings {
    /// Participant `pid` asks to see participant `target` whatever the ranking (`None`:
    /// back to it).
    pub async fn focus(&self, meeting: i64, pid: u64, target: Option<u64>) -> Result<()> {
        let (peer, publisher) = {
            let inner = self.inner.lock().expect("meetings lock");
            let p = inner.part(meeting, pid)?;
            let Some(peer) = p.peer else {
                return Ok(()); // not connected yet: nothing to show it
            };
            let publisher = match target {
                None => None,
                Some(t) => Some(inner.session_of(meeting, t).ok_or_else(|| {
                    err!(
                        NotFound,
                        "participant {t} publishes nothing in this meeting"
                    )
                })?),
            };
            (peer, publisher)
        };
        if let Some(live) = &self.live {
            live.focus(peer, publisher).await;
        }
        Ok(())
    }

    /// Tells the core each room's chair as its featured participant, where it changed.
    pub(super) async fn feature_chairs(&self) {
        let changed: Vec<(i64, Option<SessionId>)> = {
            let mut inner = self.inner.lock().expect("meetings lock");
            let rooms: Vec<i64> = inner.rooms.keys().copied().collect();
            let mut out = Vec::new();
            for m in rooms {
                let chair = inner.chair_session(m);
                if inner.featured.get(&m) != Some(&chair) {
                    inner.featured.insert(m, chair);
                    out.push((m, chair));
                }
            }
            let live_rooms: Vec<i64> = inner.rooms.keys().copied().collect();
            inner.featured.retain(|m, _| live_rooms.contains(m));
            out
        };
        if let Some(live) = &self.live {
            for (room, chair) in changed {
                live.feature(room, chair).await;
            }
        }
    }
}
