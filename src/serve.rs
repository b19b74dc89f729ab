//! `xaso serve`: opens the database, creates the first admin on first start, and serves the
//! HTTP(S) application until SIGINT/SIGTERM, shutting down gracefully.

use crate::api::{AppState, app};
use crate::audit::{AuditLog, Event};
use crate::auth::{self, Role};
use crate::config::{Config, TlsMode};
use crate::{db, store, tls};
use anyhow::Context;
use sqlx::AnyPool;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use xaso_base::{Clocks, RealClocks};
use xaso_ingest::RetinaOpener;

/// The account created on first start.
pub struct FirstAdmin {
    pub username: String,
    /// The generated password, or None when it came from `XASO_ADMIN_PASSWORD`.
    pub generated_password: Option<String>,
}

/// On an empty user table, creates `admin` with `env_password` or a generated password.
pub async fn bootstrap_admin(
    db: &AnyPool,
    clocks: &dyn Clocks,
    env_password: Option<String>,
    min_len: usize,
) -> anyhow::Result<Option<FirstAdmin>> {
    if store::count_users(db).await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match env_password.filter(|p| !p.is_empty()) {
        Some(p) => {
            store::validate_password(&p, min_len).context("XASO_ADMIN_PASSWORD")?;
            (p, false)
        }
        None => (auth::generate_password(), true),
    };
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw)).await?;
    let now = clocks.realtime_ms();
    let user = store::create_user(db, "admin", Role::Admin, &hash, now).await?;
    AuditLog::new()
        .append(
            db,
            now,
            Event {
                action: "user.create",
                address: Some("local".into()),
                detail: Some(serde_json::json!({ "user": user.username, "role": "admin", "via": "first start" })),
                ..Default::default()
            },
        )
        .await?;
    Ok(Some(FirstAdmin {
        username: user.username,
        generated_password: generated.then_some(password),
    }))
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    let url = cfg.database_url();
    let pool = db::open(&url).await?;
    let clocks: Arc<dyn Clocks> = Arc::new(RealClocks);
    let first = bootstrap_admin(
        &pool,
        clocks.as_ref(),
        std::env::var("XASO_ADMIN_PASSWORD").ok(),
        cfg.auth.min_password_len,
    )
    .await?;
    sync_config_cameras(&pool, &cfg, clocks.as_ref()).await?;
    let sim = simulated_camera(&pool, &cfg, clocks.as_ref()).await?;
    let tls_files = tls::prepare(&cfg)?;
    let listener = std::net::TcpListener::bind(cfg.listen).with_context(|| {
        format!(
            "cannot listen on {} (in use? try --listen 127.0.0.1:8081)",
            cfg.listen
        )
    })?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    print_banner(&cfg, local, &url, first.as_ref(), sim.is_some());
    if !crate::web::has_index() {
        tracing::error!("the web UI was not embedded in this build");
    }

    let recorder = crate::recorder::Recorder::start(
        pool.clone(),
        recorder_config(&cfg),
        Arc::new(RetinaOpener::default()),
        clocks.clone(),
    )
    .await?;
    let mut state = AppState::new(pool.clone(), cfg.clone(), clocks.clone());
    state.recorder = Some(recorder.clone());
    let (ended_tx, ended_rx) = tokio::sync::mpsc::unbounded_channel();
    let ips = crate::live::candidate_ips(&cfg.webrtc.addresses, cfg.listen.ip());
    let w = &cfg.webrtc;
    let tcp_port = w.ice_tcp.then_some(w.tcp_port);
    // Meeting participants get a bandwidth estimate only to choose simulcast layers.
    let estimate = cfg.meetings.simulcast;
    let live = crate::live::Live::start(&ips, w.udp_port, tcp_port, estimate, ended_tx)
        .await
        .with_context(|| {
            format!(
                "cannot bind the WebRTC UDP port {} (ICE-TCP port {:?}) on {ips:?} ([webrtc] in the config)",
                w.udp_port, tcp_port
            )
        })?;
    let _ = live.sources.set(crate::live_sources::LiveSources::new(
        Arc::new(RetinaOpener::default()),
        &live,
    ));
    tokio::spawn(audit_live_sessions(state.clone(), ended_rx));
    recorder.set_live(live.clone());
    let closed = crate::meetings::store::close_open_attendance(&pool, clocks.realtime_ms()).await?;
    if closed > 0 {
        tracing::info!(
            closed,
            "closed the attendance of meetings left open by the last run"
        );
    }
    if cfg.meetings.smtp.is_some() {
        // E-mail reminders, checked every 10 s.
        let (db, mcfg, clocks) = (pool.clone(), cfg.meetings.clone(), clocks.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                tick.tick().await;
                if let Err(e) = crate::meetings::remind_due(&db, &mcfg, clocks.realtime_ms()).await
                {
                    tracing::error!(error = %e, "cannot check meeting reminders");
                }
            }
        });
    }
    state.meetings = Some(crate::meetings::Meetings::start(
        pool.clone(),
        clocks.clone(),
        Some(live.clone()),
    ));
    state.live = Some(live);
    recorder.sync().await?;
    crate::recorder::retention::spawn(
        pool.clone(),
        crate::recorder::retention::RetentionConfig {
            data_dir: cfg.data_dir.clone(),
            default_retention_days: cfg.recording.retention_days,
            keep_free_bytes: (cfg.recording.keep_free_gb * 1e9) as u64,
        },
        clocks.clone(),
        state.audit_log.clone(),
        recorder.disk_trouble.clone(),
        Duration::from_secs(60),
    );
    tokio::spawn(sweep_sessions(pool.clone(), clocks.clone()));
    let rec = recorder.clone();
    if let Some(live) = &state.live {
        state
            .federation
            .set_live(live.clone(), state.audit_log.clone());
    }
    state.federation.set_local_states(Box::new(move || {
        rec.statuses()
            .into_iter()
            .map(|(id, s)| (id, s.state))
            .collect()
    }));
    if let Some(m) = &state.meetings {
        m.set_federation(state.federation.clone());
        state.federation.set_meeting_hub(m.clone());
    }
    let parent = cfg.parent.target();
    if let Some((url, _)) = &parent {
        tracing::info!(%url, "joining the parent node");
    }
    state
        .federation
        .set_documents(crate::federation::documents::DocumentsAt {
            dir: cfg.data_dir.join("meetings"),
            max_bytes: u64::from(cfg.meetings.max_document_mb) << 20,
        });
    state.federation.start(parent).await?;
    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    // The parent's requests for footage are served by this same application.
    let own_app = app(state.clone());
    state.federation.set_local_http(Box::new(move |req| {
        let app = own_app.clone();
        Box::pin(async move {
            use tower::ServiceExt;
            match app.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        })
    }));
    let make = app(state).into_make_service_with_connect_info::<SocketAddr>();
    use axum_server::tls_rustls::RustlsAcceptor;
    tracing::info!(%local, tls = ?cfg.tls, "serving");
    match tls_files {
        None => {
            axum_server::from_tcp(listener)
                .acceptor(Acceptor)
                .handle(handle)
                .serve(make)
                .await?
        }
        Some((cert, key)) => {
            let rc = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load TLS certificate {} / key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            axum_server::from_tcp(listener)
                .acceptor(RustlsAcceptor::new(rc).acceptor(Acceptor))
                .handle(handle)
                .serve(make)
                .await?
        }
    }
    recorder.shutdown().await;
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How every connection is set up:
/// - `TCP_NODELAY`: WebSockets (meetings' signalling, the MSE fallback, child nodes' links)
///   send small messages that Nagle's algorithm would hold back until the far side's
///   delayed ACK, 40 ms on Linux (a child's first round trips read 41 ms);
/// - `TCP_NOTSENT_LOWAT`: what a child's link sends down waits in the link's outbox, where
///   a backlog is seen (and the link's rate estimated, `federation::rate`), rather than in
///   the kernel's send buffer, which would grow to seconds of a slow link. Other
///   responses only write in smaller steps.
#[derive(Clone, Copy)]
struct Acceptor;

impl<S> axum_server::accept::Accept<tokio::net::TcpStream, S> for Acceptor {
    type Stream = tokio::net::TcpStream;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let _ =
            socket2::SockRef::from(&stream).set_tcp_notsent_lowat(crate::federation::NOTSENT_LOWAT);
        std::future::ready(stream.set_nodelay(true).map(|()| (stream, service)))
    }
}

/// Writes the end of every live session to the audit log (user, camera, duration, bytes).
async fn audit_live_sessions(
    st: AppState,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<crate::live::Ended>,
) {
    while let Some(e) = rx.recv().await {
        let ev = crate::audit::Event {
            user_id: Some(e.info.viewer.user_id),
            username: Some(e.info.viewer.username.clone()),
            action: "live.end",
            camera_id: Some(e.info.camera),
            address: e.info.viewer.address.clone(),
            detail: Some(serde_json::json!({
                "session": e.session,
                "bytes_sent": e.bytes_sent,
                "seconds": (st.now_ms() - e.info.started_ms) as f64 / 1000.0,
                "reason": e.reason,
            })),
        };
        if let Err(err) = st.audit(ev).await {
            tracing::error!(error = %err, "cannot audit the end of a live session");
        }
    }
}

pub fn recorder_config(cfg: &Config) -> crate::recorder::RecorderConfig {
    let r = &cfg.recording;
    crate::recorder::RecorderConfig {
        data_dir: cfg.data_dir.clone(),
        segment_ms: i64::from(r.segment_secs) * 1000,
        fragment_ms: r.fragment_ms,
        reconnect_max: Duration::from_millis(u64::from(r.reconnect_max_ms)),
        stall_timeout: Duration::from_secs(u64::from(r.stall_timeout_secs)),
    }
}

/// Makes the catalogue hold the cameras of the config file as declared: adds new ones,
/// updates changed ones, removes those no longer declared (their footage stays until
/// retention removes it).
pub async fn sync_config_cameras(
    db: &AnyPool,
    cfg: &Config,
    clocks: &dyn Clocks,
) -> anyhow::Result<()> {
    let existing = store::local_cameras(db).await?;
    for c in &cfg.cameras {
        let want = store::CameraSettings::from_config(c);
        match existing.iter().find(|e| e.name == want.name) {
            Some(e) if e.origin == "config" && store::CameraSettings::of(e) == want => {}
            Some(e) if e.origin == "config" => {
                store::update_camera(db, e.id, &want).await?;
                tracing::info!(camera = %want.name, "camera updated from the config file");
            }
            Some(_) => anyhow::bail!(
                "camera {:?} of the config file has the name of a camera added through the API; rename one",
                want.name
            ),
            None => {
                store::create_camera(db, &want, "config", clocks.realtime_ms()).await?;
                tracing::info!(camera = %want.name, "camera added from the config file");
            }
        }
    }
    for e in existing.iter().filter(|e| e.origin == "config") {
        if !cfg.cameras.iter().any(|c| c.name.trim() == e.name) {
            store::delete_camera(db, e.id).await?;
            tracing::info!(camera = %e.name, "camera no longer in the config file: removed (footage kept)");
        }
    }
    Ok(())
}

/// Name of the built-in simulated camera.
pub const SIMULATED_CAMERA: &str = "Camera mô phỏng (simulated)";

/// With no real camera and `simulated_camera` on, serves the built-in clip over RTSP on a
/// loopback port and keeps a `builtin` camera pointing at it, so a first start records
/// something at once. Once a real camera exists, the built-in one is removed (its footage
/// stays until retention).
pub async fn simulated_camera(
    db: &AnyPool,
    cfg: &Config,
    clocks: &dyn Clocks,
) -> anyhow::Result<Option<xaso_simcam::SimCamera>> {
    let cams = store::local_cameras(db).await?;
    let builtin = cams.iter().find(|c| c.origin == "builtin");
    let real = cams.iter().any(|c| c.origin != "builtin");
    if real || !cfg.recording.simulated_camera {
        if let Some(b) = builtin {
            store::delete_camera(db, b.id).await?;
        }
        return Ok(None);
    }
    let sim = xaso_simcam::SimCamera::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        xaso_simcam::Clip::builtin(),
    )
    .await
    .context("starting the simulated camera")?;
    let settings = store::CameraSettings {
        name: SIMULATED_CAMERA.into(),
        url: sim.url("sim"),
        record: true,
        substream_url: None,
        transport: "tcp".into(),
        retention_days: Some(1),
        quota_bytes: None,
    };
    match builtin {
        Some(b) => {
            store::update_camera(db, b.id, &settings).await?;
        }
        None => {
            store::create_camera(db, &settings, "builtin", clocks.realtime_ms()).await?;
        }
    }
    tracing::info!(url = %sim.url("sim"), "no camera configured: recording the built-in simulated camera");
    Ok(Some(sim))
}

fn print_banner(
    cfg: &Config,
    local: SocketAddr,
    db_url: &str,
    first: Option<&FirstAdmin>,
    simulated: bool,
) {
    let scheme = if cfg.tls == TlsMode::Off {
        "http"
    } else {
        "https"
    };
    let host = if local.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), local.port())
    } else {
        local
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "xaso {} is running.", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "  Open:     {scheme}://{host}/");
    if local.ip().is_unspecified() {
        let _ = writeln!(
            out,
            "            (and on every address of this machine, port {})",
            local.port()
        );
    }
    let _ = writeln!(out, "  Data:     {}", cfg.data_dir.display());
    let _ = writeln!(out, "  Database: {}", db::redact_url(db_url));
    if simulated {
        let _ = writeln!(
            out,
            "  Cameras:  none configured; recording the built-in simulated camera"
        );
        let _ = writeln!(
            out,
            "            (add real cameras on the Admin page or in the config file)"
        );
    }
    if let Some(f) = first {
        let _ = writeln!(out, "First start: an admin account was created.");
        let _ = writeln!(out, "  User:     {}", f.username);
        match &f.generated_password {
            Some(p) => {
                let _ = writeln!(out, "  Password: {p}");
                let _ = writeln!(
                    out,
                    "  (shown only this once; change it after logging in, or with `xaso user passwd admin`)"
                );
            }
            None => {
                let _ = writeln!(out, "  Password: the value of XASO_ADMIN_PASSWORD");
            }
        }
    }
    let _ = out.flush();
}

async fn sweep_sessions(db: AnyPool, clocks: Arc<dyn Clocks>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match store::delete_expired_sessions(&db, clocks.realtime_ms()).await {
            Ok(n) if n > 0 => tracing::info!(n, "removed expired sessions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not remove expired sessions"),
        }
    }
}

async fn shutdown_on_signal(handle: axum_server::Handle) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    handle.graceful_shutdown(Some(Duration::from_secs(10)));
}
