//! Logging in and out, and the caller's own account: `POST /api/login`, `POST /api/logout`,
//! `GET /api/me`, `POST /api/me/password`.

use super::AppState;
use super::caller::{Caller, ClientAddr, SESSION_COOKIE};
use super::extract::ApiJson;
use crate::audit::Event;
use crate::auth::{self, Role};
use crate::error::{Error, Result};
use crate::store::{self, User};
use crate::{bail, err};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/me/password", post(change_password))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    pub user: UserBrief,
}

#[derive(Serialize, ToSchema)]
pub struct UserBrief {
    pub id: i64,
    pub username: String,
    pub role: Role,
}

impl From<&User> for UserBrief {
    fn from(u: &User) -> Self {
        UserBrief {
            id: u.id,
            username: u.username.clone(),
            role: u.role,
        }
    }
}

/// Runs CPU-heavy password work off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(crate::error::ErrorKind::Internal, "worker failed").with_source(e))
}

/// Log in with a user name and password; sets the session cookie.
#[utoipa::path(post, path = "/api/login", tag = "session", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, description = "wrong user name or password"),
              (status = 429, description = "too many failed attempts; see Retry-After")))]
async fn login(
    State(st): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response> {
    let user_key = format!("u:{}", req.username.to_lowercase());
    let addr_key = format!("a:{}", addr.as_deref().unwrap_or("unknown"));
    let now = st.clocks.monotonic();
    let failed = |reason: &'static str| Event {
        username: Some(req.username.chars().take(64).collect()),
        action: "login_failed",
        address: addr.clone(),
        detail: Some(serde_json::json!({ "reason": reason })),
        ..Default::default()
    };
    let limited = {
        let mut l = st.limiter.lock().expect("limiter lock");
        l.check(&user_key, st.cfg.auth.login_max_failures_per_user, now)
            .and_then(|()| l.check(&addr_key, st.cfg.auth.login_max_failures_per_address, now))
    };
    if let Err(wait) = limited {
        st.audit(failed("rate_limited")).await?;
        return Err(err!(
            ResourceExhausted,
            "too many failed logins; try again in {} s",
            wait.as_secs()
        )
        .retry_after(wait.as_secs()));
    }
    let found = store::user_by_name(&st.db, &req.username).await?;
    let hash = found
        .as_ref()
        .map_or_else(|| auth::dummy_hash().to_owned(), |(_, h)| h.clone());
    let password = req.password.clone();
    let ok = blocking(move || auth::verify_password(&password, &hash)).await?;
    let user = match found {
        Some((u, _)) if ok && !u.disabled => u,
        other => {
            {
                let mut l = st.limiter.lock().expect("limiter lock");
                l.record_failure(&user_key, now);
                l.record_failure(&addr_key, now);
            }
            let reason = match other {
                None => "unknown_user",
                Some((u, _)) if u.disabled && ok => "disabled",
                Some(_) => "wrong_password",
            };
            st.audit(failed(reason)).await?;
            bail!(Unauthenticated, "wrong user name or password");
        }
    };
    st.limiter.lock().expect("limiter lock").reset(&user_key);

    let secret = auth::new_secret("");
    let now_ms = st.now_ms();
    let ttl_ms = i64::try_from(st.cfg.auth.session_ttl_minutes * 60_000).unwrap_or(i64::MAX);
    store::create_session(
        &st.db,
        &auth::secret_hash(&secret),
        user.id,
        now_ms,
        now_ms.saturating_add(ttl_ms),
        addr.as_deref(),
    )
    .await?;
    store::delete_expired_sessions(&st.db, now_ms).await?;
    st.audit(Event {
        user_id: Some(user.id),
        username: Some(user.username.clone()),
        action: "login",
        address: addr,
        ..Default::default()
    })
    .await?;
    let cookie = session_cookie(&st, &secret, ttl_ms / 1000);
    Ok((
        [(header::SET_COOKIE, cookie)],
        axum::Json(LoginResponse {
            user: (&user).into(),
        }),
    )
        .into_response())
}

fn session_cookie(st: &AppState, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if st.cfg.https() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie is ASCII")
}

/// End the current session (and clear the cookie).
#[utoipa::path(post, path = "/api/logout", tag = "session", responses((status = 204), (status = 401)))]
async fn logout(State(st): State<AppState>, caller: Caller) -> Result<Response> {
    if let Some(s) = &caller.session {
        store::delete_session(&st.db, s).await?;
    }
    st.audit(caller.event("logout")).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session_cookie(&st, "", 0))],
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub id: i64,
    pub username: String,
    pub role: Role,
    /// Cameras granted to this user, one by one or with their node (admins see every
    /// camera regardless).
    pub camera_ids: Vec<i64>,
}

/// Who am I.
#[utoipa::path(get, path = "/api/me", tag = "session", responses((status = 200, body = Me), (status = 401)))]
async fn me(State(st): State<AppState>, caller: Caller) -> Result<axum::Json<Me>> {
    // Granted one by one or with their node.
    let camera_ids = store::list_cameras(&st.db, Some(caller.user.id))
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    Ok(axum::Json(Me {
        id: caller.user.id,
        username: caller.user.username,
        role: caller.user.role,
        camera_ids,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Change my own password; ends my other sessions.
#[utoipa::path(post, path = "/api/me/password", tag = "session", request_body = PasswordChange,
    responses((status = 204), (status = 400), (status = 401), (status = 403, description = "current password wrong")))]
async fn change_password(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<StatusCode> {
    store::validate_password(&req.new_password, st.cfg.auth.min_password_len)?;
    let (_, hash) = store::user_by_name(&st.db, &caller.user.username)
        .await?
        .ok_or_else(|| err!(Unauthenticated, "user no longer exists"))?;
    let current = req.current_password.clone();
    if !blocking(move || auth::verify_password(&current, &hash)).await? {
        bail!(PermissionDenied, "current password is wrong");
    }
    let new = req.new_password.clone();
    let new_hash = blocking(move || auth::hash_password(&new)).await?;
    store::set_password(
        &st.db,
        caller.user.id,
        &new_hash,
        st.now_ms(),
        caller.session.as_deref(),
    )
    .await?;
    let mut ev = caller.event("user.password");
    ev.detail = Some(serde_json::json!({ "user": caller.user.username }));
    st.audit(ev).await?;
    Ok(StatusCode::NO_CONTENT)
}
