//! Reading the audit log: `GET /api/audit` (admins), filtered and paged newest first.

use super::caller::Caller;
use super::extract::ApiQuery;
use super::{AppState, parse_rfc3339, rfc3339};
use crate::audit::{self, AuditRow};
use crate::bail;
use crate::error::Result;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// User name.
    pub user: Option<String>,
    /// Action, e.g. `login`, `login_failed`, `user.create`.
    pub action: Option<String>,
    /// Camera id.
    pub camera: Option<i64>,
    /// RFC 3339; entries at or after.
    pub from: Option<String>,
    /// RFC 3339; entries before.
    pub to: Option<String>,
    /// Entries with a smaller id (the `next_before` of the previous page).
    pub before: Option<i64>,
    /// 1 to 1000, default 100.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub username: Option<String>,
    pub action: String,
    pub camera_id: Option<i64>,
    pub address: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; null at the end.
    pub next_before: Option<i64>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            at: rfc3339(r.at_ms),
            username: r.username,
            action: r.action,
            camera_id: r.camera_id,
            address: r.address,
            detail: r.detail.and_then(|d| serde_json::from_str(&d).ok()),
        }
    }
}

/// Audit log entries, newest first (admin).
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 400), (status = 401), (status = 403)))]
async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<axum::Json<AuditPage>> {
    caller.require_admin()?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        bail!(InvalidArgument, "limit must be between 1 and 1000");
    }
    let from_ms = p
        .from
        .as_deref()
        .map(|v| parse_rfc3339("from", v))
        .transpose()?;
    let to_ms =
        p.to.as_deref()
            .map(|v| parse_rfc3339("to", v))
            .transpose()?;
    if let (Some(f), Some(t)) = (from_ms, to_ms)
        && f > t
    {
        bail!(InvalidArgument, "from must not be after to");
    }
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let q = audit::Query {
        username: nonempty(p.user),
        action: nonempty(p.action),
        camera_id: p.camera,
        from_ms,
        to_ms,
        before: p.before,
        limit: limit + 1,
    };
    let mut rows = audit::list(&st.db, &q).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_before = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        entries: rows.into_iter().map(Into::into).collect(),
        next_before,
    }))
}
