//! API tokens for scripts (`Authorization: Bearer <token>`): `/api/tokens`. A token acts as
//! the user it belongs to; only its hash is stored, so it is shown once, at creation.

use super::AppState;
use super::caller::Caller;
use super::extract::{ApiJson, ApiPath};
use super::rfc3339;
use crate::auth;
use crate::error::Result;
use crate::store::{self, TokenInfo};
use axum::Router;
use axum::extract::State;
use axum::routing::{delete, get};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{id}", delete(revoke))
}

#[derive(Serialize, ToSchema)]
pub struct TokenOut {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// Present only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<TokenInfo> for TokenOut {
    fn from(t: TokenInfo) -> Self {
        TokenOut {
            id: t.id,
            user_id: t.user_id,
            username: t.username,
            name: t.name,
            created_at: rfc3339(t.created_ms),
            last_used_at: t.last_used_ms.map(rfc3339),
            token: None,
        }
    }
}

/// All API tokens (admin).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens", responses((status = 200, body = [TokenOut]), (status = 401), (status = 403)))]
async fn list(State(st): State<AppState>, caller: Caller) -> Result<axum::Json<Vec<TokenOut>>> {
    caller.require_admin()?;
    Ok(axum::Json(
        store::list_tokens(&st.db)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub user_id: i64,
    pub name: String,
}

/// Create a token for a user (admin); the answer is the only time the token is shown.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = TokenOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewToken>,
) -> Result<(StatusCode, axum::Json<TokenOut>)> {
    caller.require_admin()?;
    let secret = auth::new_secret("xaso_");
    let info = store::create_token(
        &st.db,
        req.user_id,
        req.name.trim(),
        &auth::secret_hash(&secret),
        st.now_ms(),
    )
    .await?;
    let mut ev = caller.event("token.create");
    ev.detail = Some(
        serde_json::json!({ "token_id": info.id, "for_user": info.username, "name": info.name }),
    );
    st.audit(ev).await?;
    let mut out = TokenOut::from(info);
    out.token = Some(secret);
    Ok((StatusCode::CREATED, axum::Json(out)))
}

/// Revoke a token (admin).
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn revoke(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    caller.require_admin()?;
    store::delete_token(&st.db, id).await?;
    let mut ev = caller.event("token.revoke");
    ev.detail = Some(serde_json::json!({ "token_id": id }));
    st.audit(ev).await?;
    Ok(StatusCode::NO_CONTENT)
}
