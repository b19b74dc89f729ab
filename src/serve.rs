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
    let tls_files = tls::prepare(&cfg)?;
    let listener = std::net::TcpListener::bind(cfg.listen).with_context(|| {
        format!(
            "cannot listen on {} (in use? try --listen 127.0.0.1:8081)",
            cfg.listen
        )
    })?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    print_banner(&cfg, local, &url, first.as_ref());
    if !crate::web::has_index() {
        tracing::error!("the web UI was not embedded in this build");
    }

    let state = AppState::new(pool.clone(), cfg.clone(), clocks.clone());
    tokio::spawn(sweep_sessions(pool.clone(), clocks.clone()));
    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    let make = app(state).into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(%local, tls = ?cfg.tls, "serving");
    match tls_files {
        None => {
            axum_server::from_tcp(listener)
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
            axum_server::from_tcp_rustls(listener, rc)
                .handle(handle)
                .serve(make)
                .await?
        }
    }
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn print_banner(cfg: &Config, local: SocketAddr, db_url: &str, first: Option<&FirstAdmin>) {
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
