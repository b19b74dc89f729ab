//! Accounts and camera grants, for admins: `/api/users`, `/api/users/{id}`,
//! `/api/users/{id}/grants`.

use super::AppState;
use super::caller::Caller;
use super::extract::{ApiJson, ApiPath};
use super::rfc3339;
use super::session::blocking;
use crate::auth::{self, Role};
use crate::bail;
use crate::error::Result;
use crate::federation::store as nodes;
use crate::store::{self, User};
use axum::Router;
use axum::extract::State;
use axum::routing::{get, put};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", axum::routing::patch(update).delete(remove))
        .route("/users/{id}/grants", put(set_grants))
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    /// Where meeting reminders for this user go; `null` without one.
    pub email: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub camera_ids: Vec<i64>,
    /// Nodes below this one granted whole (each with every node below it): `huyen-a/xa-b`.
    pub node_paths: Vec<String>,
}

async fn user_out(st: &AppState, u: User) -> Result<UserOut> {
    Ok(UserOut {
        camera_ids: store::granted_camera_ids(&st.db, u.id).await?,
        node_paths: nodes::granted_paths(&st.db, u.id).await?,
        email: u.email,
        id: u.id,
        username: u.username,
        role: u.role,
        disabled: u.disabled,
        created_at: rfc3339(u.created_ms),
    })
}

/// All users (admin).
#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = [UserOut]), (status = 401), (status = 403)))]
async fn list(State(st): State<AppState>, caller: Caller) -> Result<axum::Json<Vec<UserOut>>> {
    caller.require_admin()?;
    let mut out = Vec::new();
    for u in store::list_users(&st.db).await? {
        out.push(user_out(&st, u).await?);
    }
    Ok(axum::Json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    /// Optional: where meeting reminders for this user go.
    #[serde(default)]
    pub email: Option<String>,
}

/// An e-mail address as given: trimmed, `None` when empty; 400 when it is not one.
fn email_field(s: &str) -> Result<Option<String>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 254 || !crate::meetings::mail::is_email(s) {
        crate::bail!(InvalidArgument, "not an e-mail address: {s:?}");
    }
    Ok(Some(s.to_string()))
}

/// Create a user (admin).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewUser>,
) -> Result<(StatusCode, axum::Json<UserOut>)> {
    caller.require_admin()?;
    store::validate_username(&req.username)?;
    store::validate_password(&req.password, st.cfg.auth.min_password_len)?;
    let email = email_field(req.email.as_deref().unwrap_or_default())?;
    let pw = req.password;
    let hash = blocking(move || auth::hash_password(&pw)).await?;
    let mut user = store::create_user(&st.db, &req.username, req.role, &hash, st.now_ms()).await?;
    if let Some(e) = &email {
        store::set_user_email(&st.db, user.id, Some(e)).await?;
        user.email = email.clone();
    }
    let mut ev = caller.event("user.create");
    ev.detail = Some(
        serde_json::json!({ "user": user.username, "role": user.role, "email": email.is_some() }),
    );
    st.audit(ev).await?;
    Ok((StatusCode::CREATED, axum::Json(user_out(&st, user).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// A new password; ends all of the user's sessions.
    pub password: Option<String>,
    /// A new e-mail address; `""` removes it.
    pub email: Option<String>,
}

/// Change a user's role, disable/enable them, or reset their password (admin).
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", request_body = UserPatch, params(("id" = i64, Path)),
    responses((status = 200, body = UserOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn update(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<UserPatch>,
) -> Result<axum::Json<UserOut>> {
    caller.require_admin()?;
    if let Some(pw) = &req.password {
        store::validate_password(pw, st.cfg.auth.min_password_len)?;
    }
    let email = req.email.as_deref().map(email_field).transpose()?;
    let mut user = store::user_by_id(&st.db, id).await?;
    if let Some(e) = &email {
        store::set_user_email(&st.db, id, e.as_deref()).await?;
        user.email = e.clone();
    }
    if req.role.is_some() || req.disabled.is_some() {
        user = store::update_user(&st.db, id, req.role, req.disabled).await?;
    }
    let password_reset = req.password.is_some();
    if let Some(pw) = req.password {
        let hash = blocking(move || auth::hash_password(&pw)).await?;
        store::set_password(&st.db, id, &hash, st.now_ms(), None).await?;
    }
    let mut ev = caller.event("user.update");
    ev.detail = Some(serde_json::json!({
        "user": user.username, "role": req.role, "disabled": req.disabled,
        "password_reset": password_reset,
        "email": email.as_ref().map(|e| if e.is_some() { "set" } else { "removed" }),
    }));
    st.audit(ev).await?;
    Ok(axum::Json(user_out(&st, user).await?))
}

/// Delete a user (admin). The last enabled admin cannot be deleted.
#[utoipa::path(delete, path = "/api/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    caller.require_admin()?;
    let user = store::delete_user(&st.db, id).await?;
    let mut ev = caller.event("user.delete");
    ev.detail = Some(serde_json::json!({ "user": user.username }));
    st.audit(ev).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    pub camera_ids: Vec<i64>,
    /// Nodes below this one to grant whole, each with every node below it and every camera
    /// they have or add later (`huyen-a`, `huyen-a/xa-b`); absent: left as they are.
    #[serde(default)]
    pub node_paths: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct GrantsOut {
    pub camera_ids: Vec<i64>,
    pub node_paths: Vec<String>,
}

/// Replace the cameras (and nodes) granted to a user (admin).
#[utoipa::path(put, path = "/api/users/{id}/grants", tag = "users", request_body = Grants, params(("id" = i64, Path)),
    responses((status = 200, body = GrantsOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn set_grants(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<Grants>,
) -> Result<axum::Json<GrantsOut>> {
    caller.require_admin()?;
    let user = store::user_by_id(&st.db, id).await?;
    let before = store::granted_camera_ids(&st.db, id).await?;
    let paths_before = nodes::granted_paths(&st.db, id).await?;
    if let Some(paths) = &req.node_paths {
        // The nodes linked below now, and those the catalogue holds cameras of (a grant may
        // be given while a link is down).
        let mut known = st.federation.known_paths();
        for c in store::list_cameras(&st.db, None).await? {
            if let Some(r) = c.remote {
                known.push(r.path);
            }
        }
        for p in paths {
            nodes::validate_path(p)?;
            if !known.contains(p) {
                bail!(InvalidArgument, "no node {p:?} below this one");
            }
        }
    }
    let camera_ids = store::set_grants(&st.db, id, &req.camera_ids).await?;
    let node_paths = match &req.node_paths {
        Some(p) => nodes::set_granted_paths(&st.db, id, p).await?,
        None => paths_before.clone(),
    };
    let mut ev = caller.event("grant.set");
    ev.detail = Some(serde_json::json!({
        "user": user.username, "before": before, "after": camera_ids,
        "nodes_before": paths_before, "nodes_after": node_paths,
    }));
    st.audit(ev).await?;
    Ok(axum::Json(GrantsOut {
        camera_ids,
        node_paths,
    }))
}
