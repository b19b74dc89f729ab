//! The camera catalogue: `/api/cameras` and `/api/cameras/{id}`. Admins manage it; operators
//! and reviewers see the cameras granted to them. URLs go out without credentials.

use super::AppState;
use super::caller::Caller;
use super::extract::{ApiJson, ApiPath};
use super::rfc3339;
use crate::auth::{CameraUse, Role};
use crate::bail;
use crate::error::Result;
use crate::store::{self, Camera};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cameras", get(list).post(create))
        .route("/cameras/{id}", get(one).patch(update).delete(remove))
        .route("/cameras/{id}/status", get(status))
}

#[derive(Serialize, ToSchema)]
pub struct CameraOut {
    pub id: i64,
    pub name: String,
    /// The RTSP URL without user name and password.
    pub url: String,
    pub record: bool,
    pub created_at: String,
    pub substream_url: Option<String>,
    /// `tcp` or `udp`.
    pub transport: String,
    /// Null: the global default.
    pub retention_days: Option<i64>,
    pub quota_gb: Option<f64>,
    /// `api`, `config` (declared in the config file), `builtin` (the simulated camera) or
    /// `remote` (at a node below this one).
    pub origin: String,
    /// The node a remote camera is at, as a path from this node (`huyen-a/xa-b`); absent
    /// for this node's own cameras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl From<Camera> for CameraOut {
    fn from(c: Camera) -> Self {
        CameraOut {
            url: store::redact_rtsp_url(&c.url),
            substream_url: c.substream_url.as_deref().map(store::redact_rtsp_url),
            id: c.id,
            name: c.name,
            record: c.record,
            created_at: rfc3339(c.created_ms),
            transport: c.transport,
            retention_days: c.retention_days,
            quota_gb: c.quota_bytes.map(bytes_to_gb),
            origin: c.origin,
            node: c.remote.map(|r| r.path),
        }
    }
}

pub fn gb_to_bytes(gb: f64) -> i64 {
    (gb * 1e9).round() as i64
}

fn bytes_to_gb(b: i64) -> f64 {
    (b as f64 / 1e7).round() / 100.0
}

/// Recording state of a camera, as the recorder last saw it.
#[utoipa::path(get, path = "/api/cameras/{id}/status", tag = "cameras", params(("id" = i64, Path)),
    responses((status = 200, body = crate::recorder::CameraStatus), (status = 401), (status = 403), (status = 404)))]
async fn status(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<crate::recorder::CameraStatus>> {
    caller.require_camera(&st, id, CameraUse::See).await?;
    let cam = store::camera(&st.db, id).await?;
    if let Some(r) = &cam.remote {
        // As its node last reported it; `offline` while the link toward it is down.
        let state = st.federation.remote_state(r);
        return Ok(axum::Json(crate::recorder::CameraStatus {
            recording: cam.record && state == "streaming",
            last_error: (state == crate::federation::cameras::OFFLINE)
                .then(|| format!("the link toward node {} is down", r.path)),
            state,
            ..Default::default()
        }));
    }
    let s = st
        .recorder
        .as_ref()
        .and_then(|r| r.status(id))
        .unwrap_or_else(|| crate::recorder::CameraStatus {
            state: if cam.record { "connecting" } else { "stopped" }.into(),
            ..Default::default()
        });
    Ok(axum::Json(s))
}

/// The cameras the caller may see.
#[utoipa::path(get, path = "/api/cameras", tag = "cameras", responses((status = 200, body = [CameraOut]), (status = 401), (status = 403)))]
async fn list(State(st): State<AppState>, caller: Caller) -> Result<axum::Json<Vec<CameraOut>>> {
    let cams = match caller.user.role {
        Role::Admin => store::list_cameras(&st.db, None).await?,
        r if r.may(CameraUse::See) => store::list_cameras(&st.db, Some(caller.user.id)).await?,
        _ => bail!(PermissionDenied, "this account has no access to cameras"),
    };
    Ok(axum::Json(cams.into_iter().map(CameraOut::from).collect()))
}

/// One camera, if the caller may see it.
#[utoipa::path(get, path = "/api/cameras/{id}", tag = "cameras", params(("id" = i64, Path)),
    responses((status = 200, body = CameraOut), (status = 401), (status = 403), (status = 404)))]
async fn one(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<CameraOut>> {
    caller.require_camera(&st, id, CameraUse::See).await?;
    Ok(axum::Json(store::camera(&st.db, id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCamera {
    pub name: String,
    /// `rtsp://user:password@host:port/path`; the credentials are kept but never returned.
    pub url: String,
    #[serde(default = "yes")]
    pub record: bool,
    pub substream_url: Option<String>,
    /// `tcp` (default) or `udp`.
    pub transport: Option<String>,
    pub retention_days: Option<i64>,
    pub quota_gb: Option<f64>,
}

fn yes() -> bool {
    true
}

/// Add a camera (admin).
#[utoipa::path(post, path = "/api/cameras", tag = "cameras", request_body = NewCamera,
    responses((status = 201, body = CameraOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewCamera>,
) -> Result<(StatusCode, axum::Json<CameraOut>)> {
    caller.require_admin()?;
    let settings = store::CameraSettings {
        name: req.name.trim().to_owned(),
        url: req.url,
        record: req.record,
        substream_url: req.substream_url,
        transport: req.transport.unwrap_or_else(|| "tcp".into()),
        retention_days: req.retention_days,
        quota_bytes: req.quota_gb.map(gb_to_bytes),
    };
    let cam = store::create_camera(&st.db, &settings, "api", st.now_ms()).await?;
    st.cameras_changed().await;
    let mut ev = caller.event("camera.create");
    ev.camera_id = Some(cam.id);
    ev.detail =
        Some(serde_json::json!({ "name": cam.name, "url": store::redact_rtsp_url(&cam.url) }));
    st.audit(ev).await?;
    Ok((StatusCode::CREATED, axum::Json(cam.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    pub record: Option<bool>,
    pub substream_url: Option<String>,
    pub transport: Option<String>,
    pub retention_days: Option<i64>,
    pub quota_gb: Option<f64>,
}

/// Change a camera (admin).
#[utoipa::path(patch, path = "/api/cameras/{id}", tag = "cameras", request_body = CameraPatch, params(("id" = i64, Path)),
    responses((status = 200, body = CameraOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn update(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CameraPatch>,
) -> Result<axum::Json<CameraOut>> {
    caller.require_admin()?;
    let cur = store::camera(&st.db, id).await?;
    refuse_remote(&cur)?;
    let mut c = store::CameraSettings::of(&cur);
    if let Some(n) = &req.name {
        c.name = n.trim().to_owned();
    }
    if let Some(u) = &req.url {
        c.url = u.clone();
    }
    if let Some(r) = req.record {
        c.record = r;
    }
    if let Some(u) = &req.substream_url {
        c.substream_url = (!u.is_empty()).then(|| u.clone());
    }
    if let Some(t) = &req.transport {
        c.transport = t.clone();
    }
    if let Some(d) = req.retention_days {
        c.retention_days = Some(d);
    }
    if let Some(q) = req.quota_gb {
        c.quota_bytes = Some(gb_to_bytes(q));
    }
    let cam = store::update_camera(&st.db, id, &c).await?;
    st.cameras_changed().await;
    let mut ev = caller.event("camera.update");
    ev.camera_id = Some(id);
    ev.detail = Some(serde_json::json!({
        "name": req.name, "url": req.url.as_deref().map(store::redact_rtsp_url), "record": req.record,
    }));
    st.audit(ev).await?;
    Ok(axum::Json(cam.into()))
}

/// Remove a camera from the catalogue (admin).
#[utoipa::path(delete, path = "/api/cameras/{id}", tag = "cameras", params(("id" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    caller.require_admin()?;
    refuse_remote(&store::camera(&st.db, id).await?)?;
    let cam = store::delete_camera(&st.db, id).await?;
    st.cameras_changed().await;
    let mut ev = caller.event("camera.delete");
    ev.camera_id = Some(id);
    ev.detail = Some(serde_json::json!({ "name": cam.name }));
    st.audit(ev).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A camera of another node is managed there.
fn refuse_remote(c: &Camera) -> Result<()> {
    if let Some(r) = &c.remote {
        bail!(
            FailedPrecondition,
            "camera {:?} belongs to node {}: change or remove it there",
            c.name,
            r.path
        );
    }
    Ok(())
}
