//! WHEP (WebRTC-HTTP egress protocol) per camera: `POST /api/cameras/{id}/whep` with an SDP
//! offer answers `201 Created`, the SDP answer and a `Location` for the session; `DELETE`
//! on it ends the session; `PATCH` with trickle-ICE fragments is accepted (every server
//! candidate is in the answer, and ICE-lite learns the viewer's address from its checks).
//! Same authentication as the rest of `/api`; every session start, refusal and end is
//! audited (the end, with bytes sent, by the task `serve` runs over [`crate::live::Ended`]).

use super::AppState;
use super::caller::Caller;
use super::extract::{ApiPath, ApiQuery};
use crate::auth::CameraUse;
use crate::error::Result;
use crate::live::{Live, LiveError, SessionInfo, Viewer};
use crate::live_sources::{OPEN_WAIT, Stream};
use crate::{bail, err, store};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use http::{HeaderMap, StatusCode, header};
use std::sync::Arc;
use xaso_sfu::SessionError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/live/config", get(live_config))
        .route("/cameras/{id}/mse", get(mse))
        .route("/cameras/{id}/whep", post(offer))
        .route("/cameras/{id}/whep/{session}", patch(trickle).delete(end))
}

/// Largest SDP offer accepted (a browser's is 3–6 kB).
const MAX_OFFER: usize = 64 * 1024;

fn content_type_is(h: &HeaderMap, want: &str) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

#[utoipa::path(post, path = "/api/cameras/{id}/whep", tag = "live", params(("id" = i64, Path), StreamQuery),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer"),
    responses((status = 201, description = "SDP answer; Location names the session"), (status = 400), (status = 401),
              (status = 403), (status = 404), (status = 415), (status = 503, description = "the camera is not streaming")))]
async fn offer(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    let cam = may_watch(&st, &caller, id).await?;
    if !content_type_is(&headers, "application/sdp") {
        bail!(
            UnsupportedMediaType,
            "send the SDP offer as application/sdp"
        );
    }
    if body.len() > MAX_OFFER {
        bail!(
            PayloadTooLarge,
            "the SDP offer is larger than {MAX_OFFER} bytes"
        );
    }
    let offer = std::str::from_utf8(&body)
        .map_err(|_| err!(InvalidArgument, "the SDP offer is not UTF-8 text"))?
        .to_string();
    let Some(live) = st.live.clone() else {
        bail!(Unavailable, "live view is not running on this server");
    };
    let info = SessionInfo {
        camera: id,
        viewer: Viewer {
            user_id: caller.user.id,
            username: caller.user.username.clone(),
            address: caller.address.clone(),
        },
        started_ms: st.now_ms(),
    };
    let source = prepare_source(&st, &caller, &live, &cam, q.stream()).await;
    let mut res = live.subscribe(source, offer.clone(), info.clone()).await;
    // A browser that cannot take the main stream's codec (H.265) gets the sub-stream.
    if matches!(
        &res,
        Err(LiveError::Session(SessionError::NoCompatibleCodec(_)))
    ) && cam.substream_url.is_some()
        && source == Stream::Main.tap_id(id)
    {
        let sub = prepare_source(&st, &caller, &live, &cam, Stream::Sub).await;
        if sub != source {
            res = live.subscribe(sub, offer.clone(), info.clone()).await;
        }
    }
    // No sub-stream either: an H.264 transcode, where this build has pipelines.
    if matches!(
        &res,
        Err(LiveError::Session(SessionError::NoCompatibleCodec(_)))
    ) && let Some(tid) = live.transcoded(id, OPEN_WAIT).await
    {
        res = live.subscribe(tid, offer, info).await;
    }
    let (session, answer) = match res {
        Ok(x) => x,
        Err(LiveError::NotStreaming) => {
            bail!(Unavailable, "the camera is not streaming right now")
        }
        Err(LiveError::Stopped) => bail!(Unavailable, "live view is shutting down"),
        Err(LiveError::Session(SessionError::BadSdp(m))) => {
            bail!(InvalidArgument, "malformed SDP offer: {m}")
        }
        Err(LiveError::Session(SessionError::NoCompatibleCodec(m))) => {
            bail!(InvalidArgument, "no compatible codec in the offer: {m}")
        }
    };
    let mut ev = caller.event("live.start");
    ev.camera_id = Some(id);
    ev.detail = Some(serde_json::json!({ "session": session }));
    st.audit(ev).await?;
    let mut res = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (
                header::LOCATION,
                format!("/api/cameras/{id}/whep/{session}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        answer,
    )
        .into_response();
    // The configured STUN/TURN servers, as WHEP clients expect them (RFC 9725, 4.6).
    for link in ice_server_links(&st.cfg.webrtc.ice_servers) {
        if let Ok(v) = http::HeaderValue::from_str(&link) {
            res.headers_mut().append(header::LINK, v);
        }
    }
    Ok(res)
}

/// `Link` header values for ICE servers: one per URL.
pub(crate) fn ice_server_links(servers: &[crate::config::IceServer]) -> Vec<String> {
    let quote = |s: &str| s.replace(['"', '\\'], "");
    let mut out = Vec::new();
    for s in servers {
        for url in &s.urls {
            let mut l = format!("<{url}>; rel=\"ice-server\"");
            if let (Some(u), Some(c)) = (&s.username, &s.credential) {
                l.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    quote(u),
                    quote(c)
                ));
            }
            out.push(l);
        }
    }
    out
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct LiveConfig {
    /// The STUN/TURN servers a viewer should use (`[webrtc] ice_servers`; empty unless
    /// configured), for the browser's `RTCPeerConnection`.
    ice_servers: Vec<crate::config::IceServer>,
    /// Whether AAC audio reaches browsers (as Opus); without, AAC cameras play video only.
    aac_to_opus: bool,
}

/// What the Live page needs to know of the server. Any signed-in user.
#[utoipa::path(get, path = "/api/live/config", tag = "live",
    responses((status = 200, body = LiveConfig), (status = 401)))]
async fn live_config(State(st): State<AppState>, _caller: Caller) -> axum::Json<LiveConfig> {
    axum::Json(LiveConfig {
        ice_servers: st.cfg.webrtc.ice_servers.clone(),
        aac_to_opus: xaso_pipelines::available(),
    })
}

/// `?stream=main|sub`: which of the camera's streams a viewer wants (main by default).
#[derive(serde::Deserialize, utoipa::IntoParams)]
struct StreamQuery {
    /// `sub`: the camera's sub-stream, when one is configured (else the main stream).
    stream: Option<String>,
}

impl StreamQuery {
    fn stream(&self) -> Stream {
        match self.stream.as_deref() {
            Some("sub") => Stream::Sub,
            _ => Stream::Main,
        }
    }
}

/// The caller may watch this camera live (a refusal is audited), and it exists.
async fn may_watch(st: &AppState, caller: &Caller, id: i64) -> Result<store::Camera> {
    if let Err(e) = caller.require_camera(st, id, CameraUse::Live).await {
        if e.kind() == crate::error::ErrorKind::PermissionDenied {
            let mut ev = caller.event("live.denied");
            ev.camera_id = Some(id);
            st.audit(ev).await?;
        }
        return Err(e);
    }
    // A camera below this node is watched through the link toward it.
    store::camera(&st.db, id).await
}

/// The tap a viewer of `cam` watches for `want`: see `Federation::source_for` (this
/// node's camera, or one below relayed over the link toward it).
async fn prepare_source(
    st: &AppState,
    caller: &Caller,
    live: &Arc<Live>,
    cam: &store::Camera,
    want: Stream,
) -> i64 {
    st.federation
        .source_for(live, cam, want, &caller.user.username, false, OPEN_WAIT)
        .await
}

/// The MSE fallback: the camera as fragmented MP4 over a WebSocket (see [`crate::mse`]).
///
/// A refusal of a WebSocket request comes inside the socket, since browsers do not show
/// scripts a failed handshake's status: a text message
/// `{"type":"error","status":403,"code":…,"message":…}`, then a close with code
/// 4000 + status. A request that is not a WebSocket gets the plain HTTP error.
#[utoipa::path(get, path = "/api/cameras/{id}/mse", tag = "live", params(("id" = i64, Path), StreamQuery),
    responses((status = 101, description = "WebSocket: {\"type\":\"init\",\"mime\":…} text messages, each followed by an init segment, then one fMP4 fragment per frame"),
              (status = 400, description = "not a WebSocket request"), (status = 401), (status = 403), (status = 404),
              (status = 503, description = "the camera is not streaming")))]
async fn mse(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    ws: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let cam = match may_watch(&st, &caller, id).await {
        Ok(cam) => cam,
        Err(e) => {
            return match ws {
                Ok(ws) => Ok(ws.on_upgrade(move |s| refuse(s, e)).into_response()),
                Err(_) => Err(e),
            };
        }
    };
    let Ok(ws) = ws else {
        bail!(InvalidArgument, "open this address as a WebSocket");
    };
    let feed = match start_mse(&st, &caller, &cam, q.stream()).await {
        Ok(feed) => feed,
        Err(e) => return Ok(ws.on_upgrade(move |s| refuse(s, e)).into_response()),
    };
    let started_ms = st.now_ms();
    Ok(ws
        .on_upgrade(move |socket| async move {
            let now = {
                let st = st.clone();
                move || st.now_ms()
            };
            let s = crate::mse::run(socket, feed, now).await;
            let mut ev = caller.event("live.end");
            ev.camera_id = Some(id);
            ev.detail = Some(serde_json::json!({
                "transport": "mse",
                "bytes_sent": s.bytes_sent,
                "seconds": (st.now_ms() - started_ms) as f64 / 1000.0,
                "reason": s.reason,
            }));
            if let Err(e) = st.audit(ev).await {
                tracing::error!(error = %e, "cannot audit the end of an MSE session");
            }
        })
        .into_response())
}

async fn start_mse(
    st: &AppState,
    caller: &Caller,
    cam: &store::Camera,
    want: Stream,
) -> Result<crate::live::MseFeed> {
    let Some(live) = st.live.clone() else {
        bail!(Unavailable, "live view is not running on this server");
    };
    let source = prepare_source(st, caller, &live, cam, want).await;
    let feed = match live.watch_mse(source) {
        Ok(f) => f,
        Err(_) => bail!(Unavailable, "the camera is not streaming right now"),
    };
    let mut ev = caller.event("live.start");
    ev.camera_id = Some(cam.id);
    ev.detail = Some(serde_json::json!({ "transport": "mse" }));
    st.audit(ev).await?;
    Ok(feed)
}

pub(crate) async fn refuse(mut socket: WebSocket, e: crate::error::Error) {
    let status = e.kind().status().as_u16();
    let message = e.public_message();
    let text = serde_json::json!({
        "type": "error", "status": status, "code": e.kind().code(), "message": message,
    });
    let _ = socket.send(Message::Text(text.to_string().into())).await;
    // A close reason holds 123 bytes at most.
    let mut reason = String::new();
    for c in message.chars() {
        if reason.len() + c.len_utf8() > 120 {
            break;
        }
        reason.push(c);
    }
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 4000 + status,
            reason: reason.into(),
        })))
        .await;
    // Read what the client sent meanwhile until its close reply (2 s at most): dropping a
    // connection with unread data resets it, and the client would see 1006, not the code.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// The session, if it exists, is for this camera and belongs to the caller (or the caller
/// is an admin). Anything else is 404: sessions of others are not probed.
fn owned(st: &AppState, caller: &Caller, id: i64, session: u64) -> Result<()> {
    let live = st
        .live
        .as_ref()
        .ok_or_else(|| err!(NotFound, "no such live session"))?;
    match live.session(session) {
        Some(s)
            if s.camera == id
                && (s.viewer.user_id == caller.user.id
                    || caller.user.role == crate::auth::Role::Admin) =>
        {
            Ok(())
        }
        _ => Err(err!(NotFound, "no such live session")),
    }
}

#[utoipa::path(delete, path = "/api/cameras/{id}/whep/{session}", tag = "live",
    params(("id" = i64, Path), ("session" = u64, Path)),
    responses((status = 204), (status = 401), (status = 404)))]
async fn end(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath((id, session)): ApiPath<(i64, u64)>,
) -> Result<StatusCode> {
    owned(&st, &caller, id, session)?;
    let live = st.live.clone().expect("checked by owned");
    if !live.close(session).await {
        bail!(NotFound, "no such live session");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(patch, path = "/api/cameras/{id}/whep/{session}", tag = "live",
    params(("id" = i64, Path), ("session" = u64, Path)),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag"),
    responses((status = 204), (status = 401), (status = 404), (status = 415)))]
async fn trickle(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath((id, session)): ApiPath<(i64, u64)>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    owned(&st, &caller, id, session)?;
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        bail!(
            UnsupportedMediaType,
            "send ICE fragments as application/trickle-ice-sdpfrag"
        );
    }
    // ICE-lite: the viewer's candidates are learned from its connectivity checks.
    Ok(StatusCode::NO_CONTENT)
}
