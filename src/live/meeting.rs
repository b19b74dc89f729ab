//! Meeting participants' side of the live task: the commands the meetings hub sends the
//! forwarding core (a participant's offers, the chair's blocks, the tiles a page shows,
//! its focus, the featured participant) and what the core tells the hub back
//! ([`MeetingMedia`]).

use super::trunk::Trunks;
use super::{Cmd, Live, LiveError};
use std::time::Instant;
use tokio::sync::oneshot;
use xaso_sfu::{Core, SessionError, SessionId, SlotsUpdate, TrackKind};

pub(super) enum MeetingCmd {
    Join {
        room: i64,
        /// The meeting's id of the participant (trunks announce publishers by it).
        participant: u64,
        offer: String,
        tracks: Vec<(String, TrackKind)>,
        reply: oneshot::Sender<Result<(SessionId, String), SessionError>>,
    },
    Renegotiate {
        peer: SessionId,
        offer: String,
        tracks: Vec<(String, TrackKind)>,
        reply: oneshot::Sender<Result<String, SessionError>>,
    },
    Block {
        peer: SessionId,
        track: TrackKind,
        blocked: bool,
    },
    View {
        peer: SessionId,
        tiles: Vec<(SessionId, u32)>,
    },
    Focus {
        peer: SessionId,
        publisher: Option<SessionId>,
    },
    Featured {
        room: i64,
        publisher: Option<SessionId>,
    },
}

/// What the forwarding core tells the meetings hub (`crate::meetings`).
#[derive(Debug)]
pub enum MeetingMedia {
    Slots(SlotsUpdate),
    Speaker {
        room: i64,
        peer: SessionId,
    },
    /// The simulcast layers of a participant's track someone wants (pause the others).
    Layers {
        peer: SessionId,
        track: TrackKind,
        active: Vec<String>,
    },
    /// A participant's connection ended (ICE gone, error, never connected).
    Left {
        room: i64,
        peer: SessionId,
        reason: String,
    },
    /// A trunk announced a participant at another node: the core's `peer` publishes for it.
    Remote {
        room: i64,
        peer: SessionId,
        participant: u64,
    },
    /// That publisher is gone (it left, or its trunk closed).
    RemoteGone {
        room: i64,
        peer: SessionId,
    },
}

impl Live {
    /// A meeting participant's first offer: joins room `room` (the meeting id).
    pub async fn join_meeting(
        &self,
        room: i64,
        participant: u64,
        offer: String,
        tracks: Vec<(String, TrackKind)>,
    ) -> Result<(SessionId, String), LiveError> {
        self.ask(|reply| MeetingCmd::Join {
            room,
            participant,
            offer,
            tracks,
            reply,
        })
        .await
    }

    /// A participant's later offer.
    pub async fn renegotiate(
        &self,
        peer: SessionId,
        offer: String,
        tracks: Vec<(String, TrackKind)>,
    ) -> Result<String, LiveError> {
        self.ask(|reply| MeetingCmd::Renegotiate {
            peer,
            offer,
            tracks,
            reply,
        })
        .await
    }

    /// Sends the command `make` builds around a reply channel, and waits for the reply.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, SessionError>>) -> MeetingCmd,
    ) -> Result<T, LiveError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Meeting(make(reply)))
            .await
            .map_err(|_| LiveError::Stopped)?;
        rx.await
            .map_err(|_| LiveError::Stopped)?
            .map_err(LiveError::Session)
    }

    /// Stops or resumes forwarding a participant's track (the chair's mute).
    pub async fn block(&self, peer: SessionId, track: TrackKind, blocked: bool) {
        let _ = self
            .cmd
            .send(Cmd::Meeting(MeetingCmd::Block {
                peer,
                track,
                blocked,
            }))
            .await;
    }

    /// The tile heights a participant shows, per publisher (simulcast layer choice).
    pub async fn view(&self, peer: SessionId, tiles: Vec<(SessionId, u32)>) {
        let _ = self
            .cmd
            .send(Cmd::Meeting(MeetingCmd::View { peer, tiles }))
            .await;
    }

    /// Participant `peer` asks to see `publisher`'s camera, speaking or not (`None`: back to
    /// the ranking).
    pub async fn focus(&self, peer: SessionId, publisher: Option<SessionId>) {
        let _ = self
            .cmd
            .send(Cmd::Meeting(MeetingCmd::Focus { peer, publisher }))
            .await;
    }

    /// Whose picture everyone in meeting `room` gets, speaking or not (the chair).
    pub async fn feature(&self, room: i64, publisher: Option<SessionId>) {
        let _ = self
            .cmd
            .send(Cmd::Meeting(MeetingCmd::Featured { room, publisher }))
            .await;
    }
}

pub(super) fn handle(
    core: &mut Core,
    now: Instant,
    cmd: MeetingCmd,
    trunks: &mut Trunks,
    live: &std::sync::Weak<Live>,
) {
    match cmd {
        MeetingCmd::Join {
            room,
            participant,
            offer,
            tracks,
            reply,
        } => {
            let Some(live) = live.upgrade() else { return };
            let r = core.join(now, room, &offer, &tracks, &live.candidates);
            if let Ok((id, _)) = &r {
                trunks.participants.insert(*id, participant);
            }
            let _ = reply.send(r);
        }
        MeetingCmd::Renegotiate {
            peer,
            offer,
            tracks,
            reply,
        } => {
            let _ = reply.send(core.renegotiate(now, peer, &offer, &tracks));
        }
        MeetingCmd::Block {
            peer,
            track,
            blocked,
        } => core.set_blocked(peer, track, blocked),
        MeetingCmd::View { peer, tiles } => core.set_view(peer, &tiles),
        MeetingCmd::Focus { peer, publisher } => core.set_focus(peer, publisher),
        MeetingCmd::Featured { room, publisher } => core.set_featured(room, publisher),
    }
}
