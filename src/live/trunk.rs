//! The live task's trunks: a meeting's part at another node, joined to this node's room
//! through a federation link (`federation::trunks` owns the links; the forwarding core's
//! side is `xaso_sfu::core`'s trunk module). What the core emits for a trunk goes to its
//! [`TrunkSink`]; what arrives for it comes in as a [`TrunkIn`]. The task also keeps which
//! meeting participant each publisher is, as trunks announce publishers by it.

use super::{Cmd, Live, MeetingMedia};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc::error::TrySendError;
use xaso_sfu::{Core, Output, SessionId, TrackKind, TrunkId, TrunkRtp, TrunkTrack, TrunkWant};

/// What a trunk's far side is told (besides packets).
#[derive(Debug, Clone, PartialEq)]
pub enum TrunkOut {
    Publish {
        publisher: SessionId,
        participant: u64,
        tracks: Vec<TrunkTrack>,
    },
    Unpublish {
        publisher: SessionId,
    },
    Want(Vec<TrunkWant>),
    Keyframe {
        publisher: u64,
        track: TrackKind,
        rid: Option<String>,
    },
    /// This end is open: the far side is to say everything again.
    Open,
}

/// Where a trunk's output goes (a federation link).
pub trait TrunkSink: Send + Sync {
    fn rtp(&self, publisher: SessionId, p: &TrunkRtp);
    fn control(&self, c: TrunkOut);
}

/// What arrived for a trunk from its far side.
#[derive(Debug)]
pub enum TrunkIn {
    /// The far side's end opened.
    Open,
    Publish {
        far: u64,
        participant: u64,
        tracks: Vec<TrunkTrack>,
    },
    Unpublish {
        far: u64,
    },
    Want(Vec<TrunkWant>),
    Keyframe {
        publisher: SessionId,
        track: TrackKind,
        rid: Option<String>,
    },
    Rtp {
        far: u64,
        packet: TrunkRtp,
    },
    /// What this node may ask for over the trunk, bits per second (`None`: no limit).
    Budget(Option<u64>),
}

pub(super) enum TrunkCmd {
    Open {
        room: i64,
        trunk: TrunkId,
        sink: Arc<dyn TrunkSink>,
    },
    Close(TrunkId),
    In(TrunkId, TrunkIn),
}

/// The live task's state of its trunks.
#[derive(Default)]
pub(super) struct Trunks {
    sinks: HashMap<TrunkId, (i64, Arc<dyn TrunkSink>)>,
    /// Publisher → meeting participant id (this node's participants and the far sides').
    pub participants: HashMap<SessionId, u64>,
    /// Remote publishers by (trunk, far id): to tell the hub when they go.
    remotes: HashMap<(TrunkId, u64), SessionId>,
}

impl Live {
    /// Joins room `room` to another node's part of the meeting through `sink`.
    pub async fn open_trunk(&self, room: i64, trunk: TrunkId, sink: Arc<dyn TrunkSink>) {
        let _ = self
            .cmd
            .send(Cmd::Trunk(TrunkCmd::Open { room, trunk, sink }))
            .await;
    }

    pub async fn close_trunk(&self, trunk: TrunkId) {
        let _ = self.cmd.send(Cmd::Trunk(TrunkCmd::Close(trunk))).await;
    }

    /// Something arrived for `trunk` (from a link's reader, which cannot wait): packets
    /// are dropped when the live task is overloaded, control waits in a task of its own.
    pub fn trunk_in(&self, trunk: TrunkId, m: TrunkIn) {
        let rtp = matches!(m, TrunkIn::Rtp { .. });
        match self.cmd.try_send(Cmd::Trunk(TrunkCmd::In(trunk, m))) {
            Ok(()) => {}
            Err(TrySendError::Full(c)) if !rtp => {
                let tx = self.cmd.clone();
                tokio::spawn(async move {
                    let _ = tx.send(c).await;
                });
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Trunks {
    pub(super) fn handle(
        &mut self,
        core: &mut Core,
        now: Instant,
        c: TrunkCmd,
        events: Option<&tokio::sync::mpsc::UnboundedSender<MeetingMedia>>,
    ) {
        match c {
            TrunkCmd::Open { room, trunk, sink } => {
                core.open_trunk(room, trunk);
                sink.control(TrunkOut::Open);
                self.sinks.insert(trunk, (room, sink));
            }
            TrunkCmd::Close(trunk) => {
                let room = self.sinks.remove(&trunk).map(|s| s.0);
                core.close_trunk(trunk);
                let gone: Vec<_> = self
                    .remotes
                    .iter()
                    .filter(|((t, _), _)| *t == trunk)
                    .map(|(k, v)| (*k, *v))
                    .collect();
                for (k, peer) in gone {
                    self.remotes.remove(&k);
                    self.participants.remove(&peer);
                    if let (Some(tx), Some(room)) = (events, room) {
                        let _ = tx.send(MeetingMedia::RemoteGone { room, peer });
                    }
                }
            }
            TrunkCmd::In(trunk, m) => {
                let Some(room) = self.sinks.get(&trunk).map(|s| s.0) else {
                    return;
                };
                match m {
                    TrunkIn::Open => core.trunk_reset(trunk),
                    TrunkIn::Publish {
                        far,
                        participant,
                        tracks,
                    } => {
                        if let Some(peer) = core.trunk_publish(now, trunk, far, tracks) {
                            self.remotes.insert((trunk, far), peer);
                            if self.participants.insert(peer, participant) != Some(participant)
                                && let Some(tx) = events
                            {
                                let _ = tx.send(MeetingMedia::Remote {
                                    room,
                                    peer,
                                    participant,
                                });
                            }
                        }
                    }
                    TrunkIn::Unpublish { far } => {
                        core.trunk_unpublish(trunk, far);
                        if let Some(peer) = self.remotes.remove(&(trunk, far)) {
                            self.participants.remove(&peer);
                            if let Some(tx) = events {
                                let _ = tx.send(MeetingMedia::RemoteGone { room, peer });
                            }
                        }
                    }
                    TrunkIn::Want(w) => core.trunk_want(now, trunk, &w),
                    TrunkIn::Keyframe {
                        publisher,
                        track,
                        rid,
                    } => core.trunk_keyframe(now, publisher, track, rid.as_deref()),
                    TrunkIn::Rtp { far, packet } => core.trunk_rtp(now, trunk, far, packet),
                    TrunkIn::Budget(bps) => core.set_trunk_budget(trunk, bps),
                }
            }
        }
    }

    /// Passes a trunk output of the core to its sink; gives back anything else.
    pub(super) fn output(&self, o: Output) -> Option<Output> {
        let (trunk, out) = match o {
            Output::TrunkRtp {
                trunk,
                publisher,
                packet,
            } => {
                if let Some((_, s)) = self.sinks.get(&trunk) {
                    s.rtp(publisher, &packet);
                }
                return None;
            }
            Output::TrunkPublish {
                trunk,
                publisher,
                tracks,
            } => {
                // Every publisher has its participant: local ones from their join, remote
                // ones from their trunk's announcement.
                let Some(participant) = self.participants.get(&publisher).copied() else {
                    tracing::debug!(publisher, "a trunk announcement of an unknown publisher");
                    return None;
                };
                (
                    trunk,
                    TrunkOut::Publish {
                        publisher,
                        participant,
                        tracks,
                    },
                )
            }
            Output::TrunkUnpublish { trunk, publisher } => {
                (trunk, TrunkOut::Unpublish { publisher })
            }
            Output::TrunkWant { trunk, wants } => (trunk, TrunkOut::Want(wants)),
            Output::TrunkKeyframe {
                trunk,
                publisher,
                track,
                rid,
            } => (
                trunk,
                TrunkOut::Keyframe {
                    publisher,
                    track,
                    rid,
                },
            ),
            other => return Some(other),
        };
        if let Some((_, s)) = self.sinks.get(&trunk) {
            s.control(out);
        }
        None
    }
}
