//! Who is calling: the session cookie or `Authorization: Bearer` token resolved to a user,
//! and the checks handlers make on that user (role, per-camera grant). Also the client's
//! address, for the audit log and the login limiter.

use super::AppState;
use crate::audit::Event;
use crate::auth::{CameraUse, Role, secret_hash};
use crate::error::{Error, Result};
use crate::store::{self, User};
use crate::{bail, err};
use axum::extract::{ConnectInfo, FromRequestParts};
use http::header;
use http::request::Parts;
use std::net::SocketAddr;

pub const SESSION_COOKIE: &str = "xaso_session";

/// The client's address, when the server knows it (always, except in socket-less tests).
#[derive(Clone, Debug, Default)]
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ci| ci.0.ip().to_string()),
        ))
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    /// The hash of the session cookie's secret, when authenticated by cookie.
    pub session: Option<String>,
    pub address: Option<String>,
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self> {
        // The parent's request for footage, served through its link (see
        // `federation::archive`): the parent authorised its user and trusts nobody else.
        if let Some(p) = parts
            .extensions
            .get::<crate::federation::archive::ParentRequest>()
        {
            return Ok(Caller::for_parent(&p.by));
        }
        let address = ClientAddr::from_request_parts(parts, st)
            .await
            .unwrap_or_default()
            .0;
        let now = st.now_ms();
        if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
            let token = v
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| err!(Unauthenticated, "Authorization must be \"Bearer <token>\""))?;
            return match store::token_user(&st.db, &secret_hash(token), now).await? {
                Some(user) => Ok(Caller {
                    user,
                    session: None,
                    address,
                }),
                None => bail!(Unauthenticated, "unknown or revoked API token"),
            };
        }
        let Some(secret) = cookie(parts, SESSION_COOKIE) else {
            bail!(Unauthenticated, "log in first");
        };
        let hash = secret_hash(secret);
        match store::session_user(&st.db, &hash, now).await? {
            Some(user) => Ok(Caller {
                user,
                session: Some(hash),
                address,
            }),
            None => bail!(Unauthenticated, "session expired or ended; log in again"),
        }
    }
}

impl Caller {
    /// The parent node acting for its user `by`: an admin of this node's cameras, with user
    /// id 0 (no row), audited as `parent:<by>`. Only the link's requests, which reach the
    /// footage routes alone (`federation::archive::allowed`), are made with it.
    pub fn for_parent(by: &str) -> Caller {
        Caller {
            user: User {
                id: 0,
                username: format!("parent:{by}"),
                role: Role::Admin,
                disabled: false,
                created_ms: 0,
                email: None,
            },
            session: None,
            address: None,
        }
    }

    pub fn require_admin(&self) -> Result<()> {
        if self.user.role != Role::Admin {
            bail!(PermissionDenied, "only an admin may do this");
        }
        Ok(())
    }

    /// Checks role and grant for `what` on `camera_id`. A camera that does not exist is 404
    /// for admins and 403 for others (no probing for camera ids).
    pub async fn require_camera(
        &self,
        st: &AppState,
        camera_id: i64,
        what: CameraUse,
    ) -> Result<()> {
        if self.user.role == Role::Admin {
            store::camera(&st.db, camera_id).await?;
            return Ok(());
        }
        if self.user.role.may(what) && store::has_grant(&st.db, self.user.id, camera_id).await? {
            return Ok(());
        }
        Err(err!(PermissionDenied, "no access to camera {camera_id}"))
    }

    /// An audit event attributed to this caller.
    pub fn event(&self, action: &'static str) -> Event {
        Event {
            // The parent's caller has no row here.
            user_id: (self.user.id != 0).then_some(self.user.id),
            username: Some(self.user.username.clone()),
            action,
            address: self.address.clone(),
            ..Default::default()
        }
    }
}
