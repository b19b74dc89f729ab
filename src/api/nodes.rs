//! The tree of nodes: `/api/nodes` (admin) lists this node's parent and children with their
//! links, registers a child (the answer carries its join token, shown once) and removes one;
//! `GET /api/federation/link` is the WebSocket a child's link opens, authenticated by the
//! child's secret rather than a user.

use super::AppState;
use super::caller::{Caller, ClientAddr};
use super::extract::{ApiJson, ApiPath};
use super::rfc3339;
use crate::auth::secret_hash;
use crate::error::Result;
use crate::federation::proto::{LinkFigures, TreeNode};
use crate::federation::token::{JoinToken, own_pin};
use crate::federation::{ChildView, LinkState, UplinkView, downlink, store};
use crate::{bail, err};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/nodes", get(list).post(create))
        .route("/nodes/{id}", delete(remove))
        .route("/nodes/below", get(below))
        .route("/federation/link", get(link))
}

/// A link's figures: both ends count the link's messages (not TCP/TLS overhead).
#[derive(Serialize, ToSchema, Default)]
pub struct LinkOut {
    pub state: Option<LinkState>,
    /// When the link last went up or down.
    pub since: Option<String>,
    /// The last ping's round trip.
    pub rtt_ms: Option<f64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Media streams crossing the link each way.
    pub streams_sent: u32,
    pub streams_received: u32,
    /// What this end estimates it can send on the link, and what the far end said it can
    /// (bits per second; none until the link was once full that way).
    pub rate_out_bps: Option<u64>,
    pub rate_in_bps: Option<u64>,
}

impl LinkOut {
    fn new(state: LinkState, since_ms: Option<i64>, f: &LinkFigures) -> LinkOut {
        LinkOut {
            state: Some(state),
            since: since_ms.map(rfc3339),
            rtt_ms: f.rtt.map(|d| d.as_secs_f64() * 1e3),
            bytes_sent: f.bytes_sent,
            bytes_received: f.bytes_received,
            streams_sent: f.streams_sent,
            streams_received: f.streams_received,
            rate_out_bps: f.rate_out_bps,
            rate_in_bps: f.rate_in_bps,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ParentOut {
    pub url: String,
    #[serde(flatten)]
    pub link: LinkOut,
    /// Why the link is not up.
    pub error: Option<String>,
    pub version: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ChildOut {
    pub id: i64,
    pub name: String,
    pub level: String,
    pub created_at: String,
    #[serde(flatten)]
    pub link: LinkOut,
    /// The address the child last connected from.
    pub address: Option<String>,
    pub version: Option<String>,
    /// The nodes below it, as it reports them.
    pub nodes: Vec<TreeNode>,
}

#[derive(Serialize, ToSchema)]
pub struct NodesOut {
    /// What the parent calls this node (from the link; none at the top of the tree or
    /// before the first link).
    pub name: Option<String>,
    pub level: Option<String>,
    pub parent: Option<ParentOut>,
    pub children: Vec<ChildOut>,
}

fn parent_out(v: UplinkView) -> ParentOut {
    ParentOut {
        url: v.url,
        link: LinkOut::new(v.state, Some(v.since_ms), &v.figures),
        error: v.error,
        version: v.parent_version,
    }
}

fn child_out(c: ChildView) -> ChildOut {
    ChildOut {
        id: c.row.id,
        name: c.row.name,
        level: c.row.level,
        created_at: rfc3339(c.row.created_ms),
        link: LinkOut::new(c.state, c.since_ms, &c.figures),
        address: c.address,
        version: c.version,
        nodes: c.tree,
    }
}

/// This node's parent and children, with their links (admin).
#[utoipa::path(get, path = "/api/nodes", tag = "nodes",
    responses((status = 200, body = NodesOut), (status = 401), (status = 403)))]
async fn list(State(st): State<AppState>, caller: Caller) -> Result<axum::Json<NodesOut>> {
    caller.require_admin()?;
    st.federation.refresh().await?;
    let up = st.federation.uplink();
    Ok(axum::Json(NodesOut {
        name: up.as_ref().and_then(|u| u.name.clone()),
        level: up.as_ref().and_then(|u| u.level.clone()),
        parent: up.map(parent_out),
        children: st
            .federation
            .children()
            .into_iter()
            .map(child_out)
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct BelowOut {
    pub nodes: Vec<crate::federation::KnownNode>,
}

/// The nodes below this one (any signed-in user: a meeting's chair invites them by path).
#[utoipa::path(get, path = "/api/nodes/below", tag = "nodes",
    responses((status = 200, body = BelowOut), (status = 401)))]
async fn below(State(st): State<AppState>, _caller: Caller) -> Result<axum::Json<BelowOut>> {
    Ok(axum::Json(BelowOut {
        nodes: st.federation.known_nodes(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNode {
    /// A path segment: lower-case letters, digits and '-', e.g. `xa-tan-lap`.
    pub name: String,
    /// Free text, e.g. `commune`.
    pub level: String,
}

#[derive(Serialize, ToSchema)]
pub struct NewNodeOut {
    pub id: i64,
    pub name: String,
    pub level: String,
    pub created_at: String,
    /// The child's join token (`[parent] token` in its configuration); shown only here.
    pub token: String,
}

/// Register a child node (admin); the answer is the only time its join token is shown.
/// Needs HTTPS on this node (the token binds the child to its key).
#[utoipa::path(post, path = "/api/nodes", tag = "nodes", request_body = NewNode,
    responses((status = 201, body = NewNodeOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewNode>,
) -> Result<(StatusCode, axum::Json<NewNodeOut>)> {
    caller.require_admin()?;
    store::validate_name(&req.name)?;
    store::validate_level(&req.level)?;
    let cfg = st.cfg.clone();
    let pin = tokio::task::spawn_blocking(move || own_pin(&cfg))
        .await
        .map_err(|e| err!(Internal, "{e}"))?
        .map_err(|e| err!(FailedPrecondition, "{e:#}"))?;
    let token = JoinToken::generate(pin);
    let n = store::create(
        &st.db,
        &req.name,
        &req.level,
        &secret_hash(&token.secret),
        st.now_ms(),
    )
    .await?;
    st.federation.refresh().await?;
    let mut ev = caller.event("node.add");
    ev.detail = Some(serde_json::json!({ "node": n.name, "level": n.level }));
    st.audit(ev).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewNodeOut {
            id: n.id,
            name: n.name,
            level: n.level,
            created_at: rfc3339(n.created_ms),
            token: token.encode(),
        }),
    ))
}

/// Remove a child node (admin): its link ends at once and its token stops working.
#[utoipa::path(delete, path = "/api/nodes/{id}", tag = "nodes", params(("id" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    caller.require_admin()?;
    let n = store::delete(&st.db, id).await?;
    st.federation
        .kick(id, "this node was removed by the parent's admin");
    st.federation.refresh().await?;
    let mut ev = caller.event("node.remove");
    ev.detail = Some(serde_json::json!({ "node": n.name, "level": n.level }));
    st.audit(ev).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A child node's link (WebSocket; `Authorization: Bearer <the child's secret>`).
#[utoipa::path(get, path = "/api/federation/link", tag = "nodes",
    responses((status = 101), (status = 400), (status = 401)))]
async fn link(
    State(st): State<AppState>,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    ws: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            err!(
                Unauthenticated,
                "a node's link needs its secret (Authorization: Bearer)"
            )
        })?;
    let Some(node) = store::by_token_hash(&st.db, &secret_hash(secret)).await? else {
        tracing::warn!(address = ?address, "a node link with an unknown or revoked token was refused");
        bail!(Unauthenticated, "unknown or revoked node token");
    };
    let Ok(ws) = ws else {
        bail!(InvalidArgument, "open this address as a WebSocket");
    };
    let fed = st.federation.clone();
    Ok(ws
        .max_message_size(4 << 20)
        .on_upgrade(move |s| downlink::serve(fed, node, s, address))
        .into_response())
}
