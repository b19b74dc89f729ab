//! The HTTP control plane: [`app`] builds the whole router from per-feature `router()`s;
//! handlers stay thin (parse, authorise, call `store`, audit, answer). Shared state is
//! [`AppState`]; the caller's identity comes from the [`caller::Caller`] extractor.

pub mod audit;
pub mod caller;
pub mod cameras;
pub mod extract;
pub mod live;
pub mod meeting_docs;
pub mod meetings;
pub mod nodes;
pub mod openapi;
pub mod recordings;
pub mod session;
pub mod tokens;
pub mod users;

use crate::audit::{AuditLog, Event};
use crate::auth::LoginLimiter;
use crate::config::Config;
use crate::error::Result;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use sqlx::AnyPool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_http::set_header::SetResponseHeaderLayer;
use xaso_base::Clocks;

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: AnyPool,
    pub cfg: Arc<Config>,
    pub clocks: Arc<dyn Clocks>,
    pub limiter: Arc<Mutex<LoginLimiter>>,
    pub audit_log: Arc<AuditLog>,
    pub metrics: Arc<Metrics>,
    /// None in tests that run without recording.
    pub recorder: Option<Arc<crate::recorder::Recorder>>,
    /// None in tests that run without live view.
    pub live: Option<Arc<crate::live::Live>>,
    /// The meetings hub (None in tests that run without it).
    pub meetings: Option<Arc<crate::meetings::Meetings>>,
    /// This node's links to its parent and children.
    pub federation: Arc<crate::federation::Federation>,
}

impl AppState {
    pub fn new(db: AnyPool, cfg: Config, clocks: Arc<dyn Clocks>) -> Self {
        let window = Duration::from_secs(cfg.auth.login_window_secs);
        let federation = crate::federation::Federation::new(db.clone(), clocks.clone());
        AppState {
            db,
            cfg: Arc::new(cfg),
            clocks,
            limiter: Arc::new(Mutex::new(LoginLimiter::new(window))),
            federation,
            audit_log: Arc::new(AuditLog::new()),
            metrics: Arc::new(Metrics::default()),
            recorder: None,
            live: None,
            meetings: None,
        }
    }

    /// Tells the recorder, and the parent node, that the camera table changed.
    pub async fn cameras_changed(&self) {
        if let Some(r) = &self.recorder
            && let Err(e) = r.sync().await
        {
            tracing::error!(error = %e, "could not apply camera changes to the recorder");
        }
        if let Err(e) = self.federation.refresh().await {
            tracing::warn!(error = %e, "could not report camera changes to the parent node");
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clocks.realtime_ms()
    }

    /// Writes an audit row stamped now.
    pub async fn audit(&self, ev: Event) -> Result<()> {
        self.audit_log
            .append(&self.db, self.now_ms(), ev)
            .await
            .map(|_| ())
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(session::router())
        .merge(users::router())
        .merge(cameras::router())
        .merge(recordings::router())
        .merge(live::router())
        .merge(meetings::router())
        .merge(nodes::router())
        .merge(tokens::router())
        .merge(audit::router())
        .merge(openapi::router())
        .fallback(api_not_found);
    let max_body = state.cfg.http.max_body_bytes;
    Router::new()
        .nest("/api", api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::render))
        .fallback(crate::web::static_file)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .with_state(state)
}

async fn api_not_found() -> crate::error::Error {
    crate::err!(NotFound, "no such API route")
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers.
async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    match sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&st.db)
        .await
    {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}

/// RFC 3339 (UTC, milliseconds) for API answers.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time from a query parameter.
pub fn parse_rfc3339(name: &str, v: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            crate::err!(
                InvalidArgument,
                "{name}: not an RFC 3339 time ({e}), e.g. 2026-11-27T08:00:00+07:00"
            )
        })
}
