//! Meetings over HTTP: schedule, list and read meetings, and the signalling WebSocket that
//! carries a participant through one (docs/design/meetings.md). The room itself is
//! `crate::meetings`.

use super::AppState;
use super::caller::{Caller, ClientAddr};
use super::extract::{ApiJson, ApiPath};
use super::meeting_docs::{self, DocumentOut};
use crate::auth::Role;
use crate::error::{Error, Result};
use crate::meetings::{Meetings, Out, Who, link, store};
use crate::{bail, err};
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use xaso_sfu::TrackKind;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/meetings", get(list).post(create))
        .route("/meetings/{id}", get(one))
        .route("/meetings/{id}/ws", get(socket))
        .route("/meetings/{id}/record", get(record))
        .route("/meetings/{id}/whip", axum::routing::post(whip))
        .route("/meetings/{id}/whep", axum::routing::post(whep))
        .route(
            "/meetings/{id}/{door}/{key}",
            axum::routing::delete(door_end).patch(door_trickle),
        )
        .route(
            "/meetings/{id}/documents/{doc}",
            get(meeting_docs::download),
        )
        .route(
            "/meetings/{id}/documents",
            axum::routing::post(meeting_docs::upload)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMeeting {
    title: String,
    /// RFC 3339.
    start: String,
    end: String,
    #[serde(default)]
    invitees: Vec<String>,
    #[serde(default)]
    guests: Vec<String>,
    /// Nodes below this one to invite, by path (`huyen-a`, `huyen-a/xa-b`): the meeting
    /// appears at each under the same id, and their users join it there.
    #[serde(default)]
    nodes: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserRef {
    id: i64,
    username: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeetingOut {
    id: i64,
    title: String,
    start: String,
    end: String,
    chair: UserRef,
    invitees: Vec<String>,
    guests: Vec<String>,
    /// The nodes it invites (their paths); at a node the meeting came to from its
    /// parent, relative to this node, `""` being this node.
    nodes: Vec<String>,
    /// It was made at a node above this one (its chair is there).
    from_parent: bool,
    /// `upcoming`, `now`, `past` or `ended`.
    phase: &'static str,
    locked: bool,
    /// Participants in the room now.
    participants: usize,
    /// The signed guest link (the chair and admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    join_url: Option<String>,
    /// Each invited guest's own link, in the order of `guests` (the chair and admins
    /// only): whoever joins with it is that guest, with one ballot.
    #[serde(skip_serializing_if = "Option::is_none")]
    guest_links: Option<Vec<GuestLink>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GuestLink {
    guest: String,
    join_url: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeetingList {
    meetings: Vec<MeetingOut>,
}

/// Longest meeting that may be scheduled.
const MAX_LENGTH_MS: i64 = 24 * 3600 * 1000;

async fn link_key(st: &AppState) -> Result<Vec<u8>> {
    store::server_key(&st.db, "meeting_links").await
}

fn phase(m: &store::Meeting, now: i64) -> &'static str {
    if m.ended_ms.is_some() {
        "ended"
    } else if now < m.start_ms {
        "upcoming"
    } else if now <= m.end_ms {
        "now"
    } else {
        "past"
    }
}

fn may_manage(caller: &Caller, m: &store::Meeting) -> bool {
    caller.user.role == Role::Admin || is_chair(caller, m)
}

/// Whether the caller chairs `m` (nobody here chairs a meeting from the parent).
fn is_chair(caller: &Caller, m: &store::Meeting) -> bool {
    caller.user.id == m.chair_id && !m.is_mirror()
}

async fn out(st: &AppState, caller: &Caller, m: store::Meeting) -> Result<MeetingOut> {
    let (join_url, guest_links) = if may_manage(caller, &m) {
        let key = link_key(st).await?;
        let exp = m.end_ms + link::GRACE_MS;
        let url = |token: String| format!("/#/meet/{}?t={token}", m.id);
        let guests = m.guests.iter().enumerate().map(|(i, g)| GuestLink {
            guest: g.clone(),
            join_url: url(link::sign_guest(&key, m.id, exp, i)),
        });
        (
            Some(url(link::sign(&key, m.id, exp))),
            Some(guests.collect()),
        )
    } else {
        (None, None)
    };
    let participants = st.meetings.as_ref().map_or(0, |h| h.occupancy(m.id));
    Ok(MeetingOut {
        id: m.id,
        title: m.title.clone(),
        start: super::rfc3339(m.start_ms),
        end: super::rfc3339(m.end_ms),
        chair: UserRef {
            id: m.chair_id,
            username: m.chair.clone(),
        },
        phase: phase(&m, st.now_ms()),
        locked: m.locked,
        participants,
        from_parent: m.is_mirror(),
        invitees: m.invitees,
        guests: m.guests,
        nodes: m.nodes,
        join_url,
        guest_links,
    })
}

/// Whether the caller may see and join meeting `m` as a user (chair, invitee, admin).
pub(super) async fn may_attend(st: &AppState, caller: &Caller, m: &store::Meeting) -> Result<bool> {
    Ok(may_manage(caller, m) || store::is_invited(&st.db, m.id, caller.user.id).await?)
}

#[utoipa::path(post, path = "/api/meetings", tag = "meetings", request_body = NewMeeting,
    responses((status = 201, body = MeetingOut), (status = 400), (status = 401)))]
async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewMeeting>,
) -> Result<(StatusCode, axum::Json<MeetingOut>)> {
    let title = req.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        bail!(InvalidArgument, "title: 1 to 200 characters");
    }
    let start = super::parse_rfc3339("start", &req.start)?;
    let end = super::parse_rfc3339("end", &req.end)?;
    if end <= start {
        bail!(InvalidArgument, "end must be after start");
    }
    if end - start > MAX_LENGTH_MS {
        bail!(InvalidArgument, "a meeting lasts at most 24 hours");
    }
    if req.invitees.len() > 500 || req.guests.len() > 500 {
        bail!(InvalidArgument, "at most 500 invitees and 500 guests");
    }
    let mut ids = Vec::new();
    for name in &req.invitees {
        let name = name.trim();
        match crate::store::user_by_name(&st.db, name).await? {
            Some((u, _)) if !ids.contains(&u.id) => ids.push(u.id),
            Some(_) => {}
            None => bail!(InvalidArgument, "invitees: no user named {name:?}"),
        }
    }
    let guests: Vec<String> = req
        .guests
        .iter()
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    if guests.iter().any(|g| g.chars().count() > 200) {
        bail!(InvalidArgument, "guests: at most 200 characters each");
    }
    let mut nodes: Vec<String> = Vec::new();
    if !req.nodes.is_empty() {
        if req.nodes.len() > 1000 {
            bail!(InvalidArgument, "at most 1000 nodes");
        }
        let known = st.federation.known_paths();
        for p in &req.nodes {
            let p = p.trim();
            crate::federation::store::validate_path(p)?;
            if !known.iter().any(|k| k == p) {
                bail!(InvalidArgument, "nodes: no node {p:?} below this one");
            }
            if !nodes.iter().any(|n| n == p) {
                nodes.push(p.to_owned());
            }
        }
    }
    let m = store::create(
        &st.db,
        &store::NewMeeting {
            title,
            start_ms: start,
            end_ms: end,
            chair_id: caller.user.id,
            invitee_ids: &ids,
            guests: &guests,
            nodes: &nodes,
        },
        st.now_ms(),
    )
    .await?;
    st.federation.meeting_changed(&m);
    let mut ev = caller.event("meeting.create");
    ev.detail = Some(json!({"meeting": m.id, "title": m.title, "nodes": m.nodes}));
    st.audit(ev).await?;
    Ok((StatusCode::CREATED, axum::Json(out(&st, &caller, m).await?)))
}

#[utoipa::path(get, path = "/api/meetings", tag = "meetings",
    responses((status = 200, body = MeetingList), (status = 401)))]
async fn list(State(st): State<AppState>, caller: Caller) -> Result<axum::Json<MeetingList>> {
    let of = (caller.user.role != Role::Admin).then_some(caller.user.id);
    let mut meetings = Vec::new();
    for m in store::list(&st.db, of).await? {
        meetings.push(out(&st, &caller, m).await?);
    }
    Ok(axum::Json(MeetingList { meetings }))
}

#[utoipa::path(get, path = "/api/meetings/{id}", tag = "meetings", params(("id" = i64, Path)),
    responses((status = 200, body = MeetingOut), (status = 401), (status = 404)))]
async fn one(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<MeetingOut>> {
    let m = store::get(&st.db, id).await?;
    if !may_attend(&st, &caller, &m).await? {
        // Meetings of others are not probed.
        bail!(NotFound, "no meeting with id {id}");
    }
    Ok(axum::Json(out(&st, &caller, m).await?))
}

#[derive(Deserialize)]
struct WsQuery {
    t: Option<String>,
}

/// Who the socket belongs to: a user (cookie or token) who may attend, or a guest with a
/// valid link. `None` for a guest (the name comes in `join`), with the invitation its link
/// is for, if it is an invited guest's own.
async fn admit(
    st: &AppState,
    caller: std::result::Result<Caller, Error>,
    token: Option<&str>,
    m: &store::Meeting,
) -> Result<(Option<Caller>, Option<usize>)> {
    if let Some(t) = token {
        let key = link_key(st).await?;
        let invite =
            link::verify(&key, m.id, t, st.now_ms()).map_err(|e| err!(PermissionDenied, "{e}"))?;
        if invite.is_some_and(|g| g >= m.guests.len()) {
            bail!(PermissionDenied, "the meeting has no such guest");
        }
        // A logged-in user with the link still joins under their account.
        return Ok(match caller {
            Ok(c) => (Some(c), None),
            Err(_) => (None, invite),
        });
    }
    let caller = caller?;
    if !may_attend(st, &caller, m).await? {
        bail!(PermissionDenied, "you are not invited to this meeting");
    }
    Ok((Some(caller), None))
}

/// The signalling WebSocket of one participant (protocol: docs/design/meetings.md).
#[utoipa::path(get, path = "/api/meetings/{id}/ws", tag = "meetings", params(("id" = i64, Path), ("t" = Option<String>, Query, description = "guest link token")),
    responses((status = 101, description = "WebSocket: JSON messages, docs/design/meetings.md"),
              (status = 400, description = "not a WebSocket request")))]
async fn socket(
    State(st): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    ClientAddr(address): ClientAddr,
    ApiPath(id): ApiPath<i64>,
    Query(q): Query<WsQuery>,
    ws: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    let Ok(ws) = ws else {
        if q.t.is_none() {
            caller?;
        }
        bail!(InvalidArgument, "open this address as a WebSocket");
    };
    let ws = ws.max_message_size(256 * 1024);
    let admitted = async {
        let hub = st
            .meetings
            .clone()
            .ok_or_else(|| err!(Unavailable, "meetings are not running on this server"))?;
        let m = store::get(&st.db, id).await?;
        let who = admit(&st, caller, q.t.as_deref(), &m).await?;
        Ok::<_, Error>((hub, m, who))
    }
    .await;
    match admitted {
        Err(e) => Ok(ws
            .on_upgrade(move |s| super::live::refuse(s, e))
            .into_response()),
        Ok((hub, m, (who, invite))) => Ok(ws
            .on_upgrade(move |s| run(st, hub, m, (who, invite), address, s))
            .into_response()),
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum In {
    Join {
        #[serde(default)]
        name: Option<String>,
    },
    Offer {
        sdp: String,
        #[serde(default)]
        tracks: std::collections::HashMap<String, String>,
    },
    State {
        #[serde(default)]
        mic: bool,
        #[serde(default)]
        camera: bool,
        #[serde(default)]
        screen: bool,
    },
    Hand {
        raised: bool,
    },
    Chat {
        text: String,
    },
    View {
        tiles: std::collections::HashMap<String, TileSize>,
    },
    /// See this participant's picture whatever the ranking (`null`: back to it).
    Focus {
        #[serde(default)]
        participant: Option<u64>,
    },
    Chair {
        action: String,
        #[serde(default)]
        participant: Option<u64>,
        #[serde(default)]
        kind: Option<String>,
        /// For `add_camera` and `remove_camera`.
        #[serde(default)]
        camera: Option<i64>,
    },
    VoteOpen {
        question: String,
        options: Vec<String>,
        #[serde(default)]
        secret: bool,
    },
    VoteCast {
        vote: i64,
        option: i64,
    },
    VoteClose {
        vote: i64,
    },
    Leave,
}

/// A tile's size in CSS pixels (the height chooses the simulcast layer).
#[derive(Deserialize)]
struct TileSize {
    #[serde(default, rename = "w")]
    _w: u32,
    #[serde(default)]
    h: u32,
}

fn error_message(e: &Error) -> String {
    json!({
        "type": "error", "status": e.kind().status().as_u16(), "code": e.kind().code(),
        "message": e.public_message(),
    })
    .to_string()
}

/// A socket that sends nothing and answers no ping (one each 3 s) this long is gone: the
/// others see the participant leave.
const SILENCE: Duration = Duration::from_secs(6);

async fn run(
    st: AppState,
    hub: Arc<Meetings>,
    m: store::Meeting,
    (caller, invite): (Option<Caller>, Option<usize>),
    address: Option<String>,
    socket: WebSocket,
) {
    use futures::{SinkExt, StreamExt};
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    // The writer: the hub's messages, and a ping every 3 s.
    let writer = tokio::spawn(async move {
        let every = Duration::from_secs(3);
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                o = rx.recv() => match o {
                    Some(Out::Text(t)) => {
                        if sink.send(Message::Text(t.into())).await.is_err() {
                            return;
                        }
                    }
                    Some(Out::Close(code, reason)) => {
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame { code, reason: reason.into() })))
                            .await;
                        return;
                    }
                    None => return,
                },
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let say = |e: &Error| {
        let _ = tx.send(Out::Text(error_message(e)));
    };
    let mut me: Option<u64> = None;
    loop {
        let msg = match tokio::time::timeout(SILENCE, stream.next()).await {
            Ok(Some(Ok(msg))) => msg,
            Ok(Some(Err(_))) | Ok(None) => break,
            Err(_) => {
                tracing::info!(meeting = m.id, "a participant's socket went silent");
                break;
            }
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => break,
            Message::Binary(_) => {
                say(&err!(InvalidArgument, "messages are JSON text"));
                continue;
            }
            _ => continue,
        };
        let parsed: In = match serde_json::from_str(&text) {
            Ok(p) => p,
            Err(e) => {
                say(&err!(InvalidArgument, "malformed message: {e}"));
                continue;
            }
        };
        if matches!(parsed, In::Leave) {
            break;
        }
        let joining = matches!(parsed, In::Join { .. }) && me.is_none();
        let res: Result<()> = async {
            match (parsed, me) {
                (In::Join { name }, None) => {
                    let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
                    let name = match (&caller, name) {
                        (_, Some(n)) if n.chars().count() > 60 => {
                            bail!(InvalidArgument, "name: at most 60 characters")
                        }
                        (_, Some(n)) => n,
                        (Some(c), None) => c.user.username.clone(),
                        // An invited guest invited by name is that name.
                        (None, None) => match invite.map(|g| m.guests[g].trim()) {
                            Some(g) if !g.is_empty() && !crate::meetings::mail::is_email(g) => {
                                g.chars().take(60).collect()
                            }
                            _ => bail!(InvalidArgument, "a guest must give a name"),
                        },
                    };
                    let who = Who {
                        name,
                        invite,
                        user_id: caller.as_ref().map(|c| c.user.id),
                        chair: caller.as_ref().is_some_and(|c| is_chair(c, &m)),
                        admin: caller.as_ref().is_some_and(|c| c.user.role == Role::Admin),
                        address: address.clone(),
                    };
                    let extra = json!({
                        "ice_servers": st.cfg.webrtc.ice_servers,
                        "simulcast": st.cfg.meetings.simulcast,
                    });
                    let (pid, welcome) = hub.join(&m, who.clone(), tx.clone(), extra).await?;
                    me = Some(pid);
                    let _ = tx.send(Out::Text(welcome.to_string()));
                    let mut ev = match &caller {
                        Some(c) => c.event("meeting.join"),
                        None => crate::audit::Event {
                            action: "meeting.join",
                            address: address.clone(),
                            ..Default::default()
                        },
                    };
                    ev.detail =
                        Some(json!({"meeting": m.id, "name": who.name, "guest": caller.is_none()}));
                    st.audit(ev).await
                }
                (In::Join { .. }, Some(_)) => bail!(InvalidArgument, "already joined"),
                (_, None) => bail!(FailedPrecondition, "send \"join\" first"),
                (In::Offer { sdp, tracks }, Some(pid)) => {
                    if sdp.len() > 128 * 1024 {
                        bail!(PayloadTooLarge, "the SDP offer is too large");
                    }
                    let mut labelled = Vec::new();
                    for (mid, t) in tracks {
                        let t = TrackKind::parse(&t).ok_or_else(|| {
                            err!(
                                InvalidArgument,
                                "tracks: {t:?} is not mic, camera or screen"
                            )
                        })?;
                        labelled.push((mid, t));
                    }
                    let answer = hub.offer(m.id, pid, sdp, labelled).await?;
                    let _ = tx.send(Out::Text(
                        json!({"type": "answer", "sdp": answer}).to_string(),
                    ));
                    hub.answered(m.id, pid);
                    Ok(())
                }
                (
                    In::State {
                        mic,
                        camera,
                        screen,
                    },
                    Some(pid),
                ) => hub.state(m.id, pid, mic, camera, screen).await,
                (In::Hand { raised }, Some(pid)) => hub.hand(m.id, pid, raised),
                (In::Focus { participant }, Some(pid)) => hub.focus(m.id, pid, participant).await,
                (In::Chat { text }, Some(pid)) => hub.chat(m.id, pid, &text).await,
                (In::View { tiles }, Some(pid)) => {
                    if tiles.len() > 100 {
                        bail!(InvalidArgument, "tiles: at most 100");
                    }
                    let mut t = Vec::new();
                    for (id, size) in tiles {
                        let id: u64 = id.parse().map_err(|_| {
                            err!(InvalidArgument, "tiles: {id:?} is not a participant id")
                        })?;
                        t.push((id, size.h.min(10_000)));
                    }
                    hub.view(m.id, pid, &t).await;
                    Ok(())
                }
                (
                    In::Chair {
                        action,
                        camera: Some(cam),
                        ..
                    },
                    Some(pid),
                ) if action == "add_camera" || action == "remove_camera" => {
                    // The chair's own grant on the camera decides, as for live view.
                    let c = caller
                        .as_ref()
                        .ok_or_else(|| err!(PermissionDenied, "only the chair may do this"))?;
                    c.require_camera(&st, cam, crate::auth::CameraUse::Live)
                        .await?;
                    if action == "add_camera" {
                        let name = crate::store::local_camera(&st.db, cam).await?.name;
                        hub.add_camera(m.id, pid, cam, &name).await?;
                    } else {
                        hub.remove_camera(m.id, pid, cam).await?;
                    }
                    let mut ev = c.event("meeting.camera");
                    ev.camera_id = Some(cam);
                    ev.detail = Some(json!({"meeting": m.id, "action": action}));
                    st.audit(ev).await
                }
                (
                    In::Chair {
                        action,
                        participant,
                        kind,
                        ..
                    },
                    Some(pid),
                ) => {
                    let kind = match kind.as_deref() {
                        None => None,
                        Some(k) => Some(TrackKind::parse(k).ok_or_else(|| {
                            err!(InvalidArgument, "kind: {k:?} is not mic or camera")
                        })?),
                    };
                    hub.chair(m.id, pid, &action, participant, kind).await
                }
                (
                    In::VoteOpen {
                        question,
                        options,
                        secret,
                    },
                    Some(pid),
                ) => hub
                    .vote_open(m.id, pid, &question, &options, secret)
                    .await
                    .map(|_| ()),
                (In::VoteCast { vote, option }, Some(pid)) => {
                    hub.vote_cast(m.id, pid, vote, option).await
                }
                (In::VoteClose { vote }, Some(pid)) => hub.vote_close(m.id, pid, vote).await,
                (In::Leave, Some(_)) => Ok(()),
            }
        }
        .await;
        match res {
            Ok(()) => {}
            Err(e) => {
                say(&e);
                // Refused at the door (locked, ended): the socket closes, after the
                // client had its close frame (its reply is read, so that the connection
                // is not reset under it).
                if joining && e.kind() != crate::error::ErrorKind::InvalidArgument {
                    let _ = tx.send(Out::Close(
                        4000 + e.kind().status().as_u16(),
                        e.public_message(),
                    ));
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(m)) = stream.next().await {
                            if matches!(m, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                    break;
                }
            }
        }
    }
    if let Some(pid) = me {
        hub.leave(m.id, pid).await;
        let ev = match &caller {
            Some(c) => c.event("meeting.leave"),
            None => crate::audit::Event {
                action: "meeting.leave",
                address: address.clone(),
                ..Default::default()
            },
        };
        let mut ev = ev;
        ev.detail = Some(json!({"meeting": m.id}));
        if let Err(e) = st.audit(ev).await {
            tracing::error!(error = %e, "cannot audit a meeting leave");
        }
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttendanceOut {
    name: String,
    guest: bool,
    role: String,
    joined: String,
    left: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ChatOut {
    from: String,
    at: String,
    text: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecordOut {
    meeting: MeetingOut,
    attendance: Vec<AttendanceOut>,
    chat: Vec<ChatOut>,
    documents: Vec<DocumentOut>,
    /// Each vote with its tally and, unless secret, who chose what.
    #[schema(value_type = Vec<Object>)]
    votes: Vec<Value>,
}

/// The meeting's record: who came and left when, the chat, the documents and the votes.
/// For the chair and admins.
#[utoipa::path(get, path = "/api/meetings/{id}/record", tag = "meetings", params(("id" = i64, Path)),
    responses((status = 200, body = RecordOut), (status = 401), (status = 403), (status = 404)))]
async fn record(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<RecordOut>> {
    let m = store::get(&st.db, id).await?;
    if !may_manage(&caller, &m) {
        if may_attend(&st, &caller, &m).await? {
            bail!(
                PermissionDenied,
                "only the chair and admins may read the record"
            );
        }
        bail!(NotFound, "no meeting with id {id}");
    }
    let attendance = store::attendance(&st.db, id)
        .await?
        .into_iter()
        .map(|a| AttendanceOut {
            name: a.name,
            guest: a.user_id.is_none(),
            role: a.role,
            joined: super::rfc3339(a.joined_ms),
            left: a.left_ms.map(super::rfc3339),
        })
        .collect();
    let chat = store::chat(&st.db, id)
        .await?
        .into_iter()
        .map(|c| ChatOut {
            from: c.name,
            at: super::rfc3339(c.at_ms),
            text: c.text,
        })
        .collect();
    let documents = store::documents(&st.db, id)
        .await?
        .iter()
        .map(DocumentOut::from)
        .collect();
    let votes = store::votes(&st.db, id)
        .await?
        .iter()
        .map(|v| {
            let mut j = crate::meetings::vote_json(v);
            // The record shows the tally even of a vote still open.
            j["tally"] = json!(v.tally);
            j
        })
        .collect();
    let mut ev = caller.event("meeting.record");
    ev.detail = Some(json!({"meeting": id}));
    st.audit(ev).await?;
    Ok(axum::Json(RecordOut {
        meeting: out(&st, &caller, m).await?,
        attendance,
        chat,
        documents,
        votes,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DoorQuery {
    /// The meeting's guest link token (instead of a session or a Bearer token).
    t: Option<String>,
    /// The name shown to the others (default: the account's, or "WHIP"/"WHEP").
    name: Option<String>,
}

/// WHIP (RFC 9725): publishes a stream into the meeting as a participant (OBS, GStreamer's
/// whipsink, a hall camera encoder). The offer must only send.
#[utoipa::path(post, path = "/api/meetings/{id}/whip", tag = "meetings", params(("id" = i64, Path), DoorQuery),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer (sendonly)"),
    responses((status = 201, description = "SDP answer; Location names the resource (DELETE to leave)"),
              (status = 400), (status = 401), (status = 403), (status = 404), (status = 415)))]
async fn whip(
    State(st): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    ClientAddr(address): ClientAddr,
    ApiPath(id): ApiPath<i64>,
    Query(q): Query<DoorQuery>,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    door(st, caller, address, id, q, headers, body, "whip").await
}

/// WHEP: receives the meeting as the offer asks: one video per video transceiver (the
/// participants' videos, most recent speakers first; a single one gets the active speaker)
/// and, per audio transceiver, a participant's audio (most recent speakers first).
#[utoipa::path(post, path = "/api/meetings/{id}/whep", tag = "meetings", params(("id" = i64, Path), DoorQuery),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer (recvonly)"),
    responses((status = 201, description = "SDP answer; Location names the resource (DELETE to leave)"),
              (status = 400), (status = 401), (status = 403), (status = 404), (status = 415)))]
async fn whep(
    State(st): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    ClientAddr(address): ClientAddr,
    ApiPath(id): ApiPath<i64>,
    Query(q): Query<DoorQuery>,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    door(st, caller, address, id, q, headers, body, "whep").await
}

#[allow(clippy::too_many_arguments)]
async fn door(
    st: AppState,
    caller: std::result::Result<Caller, Error>,
    address: Option<String>,
    id: i64,
    q: DoorQuery,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
    kind: &'static str,
) -> Result<Response> {
    // Who is calling comes first: an anonymous request learns nothing else.
    let caller = match (caller, q.t.is_some()) {
        (Err(e), false) => return Err(e),
        (c, _) => c,
    };
    let hub = st
        .meetings
        .clone()
        .ok_or_else(|| err!(Unavailable, "meetings are not running on this server"))?;
    let m = store::get(&st.db, id).await?;
    let (caller, invite) = admit(&st, caller, q.t.as_deref(), &m).await?;
    let is_sdp = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/sdp")
        });
    if !is_sdp {
        bail!(
            UnsupportedMediaType,
            "send the SDP offer as application/sdp"
        );
    }
    if body.len() > 128 * 1024 {
        bail!(PayloadTooLarge, "the SDP offer is too large");
    }
    let sdp = std::str::from_utf8(&body)
        .map_err(|_| err!(InvalidArgument, "the SDP offer is not UTF-8 text"))?
        .to_string();
    // WHIP only sends, WHEP only receives.
    let dirs: Vec<&str> = sdp
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("a=")?;
            ["sendonly", "recvonly", "sendrecv"]
                .into_iter()
                .find(|d| *d == l)
        })
        .collect();
    let wrong = if kind == "whip" {
        "recvonly"
    } else {
        "sendonly"
    };
    if dirs.iter().any(|d| *d == wrong || *d == "sendrecv") {
        bail!(
            InvalidArgument,
            "{}",
            if kind == "whip" {
                "a WHIP offer only sends (sendonly); use WHEP to receive"
            } else {
                "a WHEP offer only receives (recvonly); use WHIP to publish"
            }
        );
    }
    let name = q
        .name
        .map(|n| n.trim().chars().take(60).collect::<String>())
        .filter(|n| !n.is_empty())
        .or_else(|| caller.as_ref().map(|c| c.user.username.clone()))
        .unwrap_or_else(|| kind.to_uppercase());
    let who = Who {
        name: name.clone(),
        invite,
        user_id: caller.as_ref().map(|c| c.user.id),
        chair: false,
        admin: caller.as_ref().is_some_and(|c| c.user.role == Role::Admin),
        address: address.clone(),
    };
    // Nobody reads this participant's messages: a door has no socket.
    let (tx, _) = mpsc::unbounded_channel();
    let (pid, welcome) = hub.join(&m, who, tx, Value::Null).await?;
    let answer = match hub.offer(m.id, pid, sdp, Vec::new()).await {
        Ok(a) => a,
        Err(e) => {
            hub.leave(m.id, pid).await;
            return Err(e);
        }
    };
    let key = welcome["key"].as_str().unwrap_or_default().to_string();
    let mut ev = match &caller {
        Some(c) => c.event("meeting.join"),
        None => crate::audit::Event {
            action: "meeting.join",
            address,
            ..Default::default()
        },
    };
    ev.detail = Some(json!({"meeting": m.id, "name": name, "door": kind}));
    st.audit(ev).await?;
    let mut headers = vec![
        (http::header::CONTENT_TYPE, "application/sdp".to_string()),
        (
            http::header::LOCATION,
            format!("/api/meetings/{}/{kind}/{key}", m.id),
        ),
        (http::header::CACHE_CONTROL, "no-store".to_string()),
    ];
    for link in super::live::ice_server_links(&st.cfg.webrtc.ice_servers) {
        headers.push((http::header::LINK, link));
    }
    let mut res = (StatusCode::CREATED, answer).into_response();
    for (k, v) in headers {
        if let Ok(v) = http::HeaderValue::from_str(&v) {
            res.headers_mut().append(k, v);
        }
    }
    Ok(res)
}

/// Ends a WHIP or WHEP participant (its resource URL holds its secret key).
async fn door_end(
    State(st): State<AppState>,
    ApiPath((id, door, key)): ApiPath<(i64, String, String)>,
) -> Result<StatusCode> {
    let hub = st
        .meetings
        .clone()
        .ok_or_else(|| err!(NotFound, "no such resource"))?;
    match hub.by_key(&key) {
        Some(h) if h.meeting == id && (door == "whip" || door == "whep") => {
            hub.leave(id, h.participant).await;
            Ok(StatusCode::OK)
        }
        _ => Err(err!(NotFound, "no such resource")),
    }
}

/// Trickle ICE (PATCH): accepted and not needed (the server is ICE-lite and learns the
/// client's address from its checks).
async fn door_trickle(
    State(st): State<AppState>,
    ApiPath((id, _door, key)): ApiPath<(i64, String, String)>,
) -> Result<StatusCode> {
    let found = st
        .meetings
        .as_ref()
        .and_then(|h| h.by_key(&key))
        .is_some_and(|h| h.meeting == id);
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(err!(NotFound, "no such resource"))
    }
}
