//! The real `xaso` binary as a process on a free loopback port: first start, login over
//! HTTP, restart, the shell commands (`user`, `config check`, `audit verify`), HTTPS with a
//! self-signed certificate, and refusing a database file that is not SQLite.

mod common;

use common::proc::*;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn first_start_login_and_users_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[], &[]);
    let banner = s.stdout.join("\n");
    assert!(banner.contains("First start"), "{banner}");
    let password = s
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("Password:"))
        .map(|p| p.trim().to_owned())
        .expect("generated password printed");
    assert_eq!(password.len(), 16, "{banner}");
    assert!(dir.path().join("xaso.db").is_file());

    let c = client();
    assert_eq!(login(&c, &s.url, "admin", &password).await, 200);
    let r = c
        .post(format!("{}/api/users", s.url))
        .json(&json!({"username": "officer", "password": "officer-pass-1", "role": "operator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let page = c.get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));
    assert!(stop(s).success(), "graceful exit on SIGTERM");

    let s = start(dir.path(), &[], &[]);
    assert!(
        !s.stdout.join("\n").contains("First start"),
        "admin made once only"
    );
    let c = client();
    assert_eq!(login(&c, &s.url, "officer", "officer-pass-1").await, 200);
    let me: Value = c
        .get(format!("{}/api/me", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "operator");
    assert_eq!(
        login(&client(), &s.url, "admin", &password).await,
        200,
        "admin password kept"
    );
}

#[tokio::test]
async fn audit_verify_catches_an_edited_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        dir.path(),
        &[("XASO_ADMIN_PASSWORD", "admin-password-1")],
        &[],
    );
    let c = client();
    assert_eq!(login(&c, &s.url, "admin", "admin-password-1").await, 200);
    assert_eq!(
        login(&client(), &s.url, "admin", "wrong-password").await,
        401
    );
    stop(s);

    let ok = run(xaso(dir.path()).args(["audit", "verify"]), None);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("intact: 3 rows"), "{}", text(&ok));

    let url = format!("sqlite://{}", dir.path().join("xaso.db").display());
    let pool = xaso::db::open(&url).await.unwrap();
    sqlx::query("UPDATE audit_log SET action = 'login' WHERE action = 'login_failed'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let bad = run(xaso(dir.path()).args(["audit", "verify"]), None);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("TAMPERED at row 3"), "{}", text(&bad));
}

#[tokio::test]
async fn user_commands_manage_accounts_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        xaso(dir.path()).args(["user", "add", "an.nguyen", "--role", "reviewer"]),
        Some("pass-of-an-1\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        xaso(dir.path()).args(["user", "add", "an.nguyen", "--role", "reviewer"]),
        Some("pass-of-an-1\n"),
    );
    assert!(
        !o.status.success() && text(&o).contains("already exists"),
        "{}",
        text(&o)
    );
    let o = run(
        xaso(dir.path()).args(["user", "add", "x2", "--role", "root"]),
        Some("pass-of-an-1\n"),
    );
    assert!(
        !o.status.success() && text(&o).contains("unknown role"),
        "{}",
        text(&o)
    );
    let o = run(
        xaso(dir.path()).args(["user", "add", "x3"]),
        Some("short\n"),
    );
    assert!(
        !o.status.success() && text(&o).contains("at least 8"),
        "{}",
        text(&o)
    );
    let o = run(
        xaso(dir.path()).args(["user", "passwd", "an.nguyen", "--generate-password"]),
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let generated = text(&o)
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    let o = run(xaso(dir.path()).args(["user", "list"]), None);
    assert!(
        text(&o).contains("an.nguyen") && text(&o).contains("reviewer"),
        "{}",
        text(&o)
    );

    // The server's first start sees a user already and creates no admin.
    let s = start(dir.path(), &[], &[]);
    assert!(!s.stdout.join("\n").contains("First start"));
    assert_eq!(
        login(&client(), &s.url, "an.nguyen", "pass-of-an-1").await,
        401
    );
    assert_eq!(login(&client(), &s.url, "an.nguyen", &generated).await, 200);
    drop(s);
    let o = run(xaso(dir.path()).args(["audit", "verify"]), None);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn config_check_points_at_the_wrong_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/config/xaso.example.toml");
    let o = run(xaso(dir.path()).args(["config", "check", good]), None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ok"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:9000\"\n[auth]\nsesion_ttl_minutes = 5\n",
    )
    .unwrap();
    let o = run(xaso(dir.path()).args(["config", "check"]).arg(&bad), None);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(
        t.contains("line 3") && t.contains("sesion_ttl_minutes"),
        "{t}"
    );
    let o = run(
        xaso(dir.path())
            .env("XASO_LISTN", "x")
            .args(["config", "check", good]),
        None,
    );
    assert!(
        !o.status.success() && text(&o).contains("XASO_LISTN"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_database_file_that_is_not_sqlite_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("xaso.db"),
        "this is not a database\n".repeat(500),
    )
    .unwrap();
    let o = run(
        xaso(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]),
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("is not an SQLite database"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[tokio::test]
async fn https_with_a_self_signed_certificate_and_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        dir.path(),
        &[
            ("XASO_TLS", "self-signed"),
            ("XASO_ADMIN_PASSWORD", "admin-password-1"),
        ],
        &["--log-format", "json"],
    );
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    assert!(dir.path().join("tls/cert.pem").is_file());
    let c = client();
    let r = c
        .post(format!("{}/api/login", s.url))
        .json(&json!({"username": "admin", "password": "admin-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(
        c.get(format!("{}/healthz", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let plain = reqwest::Client::new()
        .get(s.url.replace("https://", "http://") + "/healthz")
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "no plain HTTP on the TLS port"
    );
    let line = s
        .stderr
        .recv_timeout(Duration::from_secs(5))
        .expect("a log line");
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
}

#[test]
fn every_example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cfgs = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config")).unwrap();
    let mut n = 0;
    for f in cfgs {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let o = run(xaso(dir.path()).args(["config", "check"]).arg(&p), None);
            assert!(o.status.success(), "{}: {}", p.display(), text(&o));
            n += 1;
        }
    }
    assert!(n >= 2);
}

/// The install script stages a complete installation (binary, unit, configuration).
#[test]
fn install_script_stages_an_installation() {
    let stage = tempfile::tempdir().unwrap();
    let o = run(
        Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/install.sh"))
            .env("DESTDIR", stage.path())
            .env("BINARY", BIN),
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let s = stage.path();
    for f in [
        "usr/local/bin/xaso",
        "etc/xaso/xaso.toml",
        "etc/systemd/system/xaso.service",
    ] {
        assert!(s.join(f).is_file(), "{f} missing");
    }
    let unit = std::fs::read_to_string(s.join("etc/systemd/system/xaso.service")).unwrap();
    assert!(
        unit.contains("User=xaso")
            && unit.contains("ExecStart=/usr/local/bin/xaso --config /etc/xaso/xaso.toml serve")
    );
    let o = run(
        Command::new(s.join("usr/local/bin/xaso")).arg("--version"),
        None,
    );
    assert!(text(&o).contains(env!("CARGO_PKG_VERSION")));
}
