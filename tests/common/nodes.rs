//! Helpers of the tests that run trees of real `xaso serve` processes (`tests/federation*.rs`):
//! the environment of a node, join tokens from `xaso node add`, the admin's client, a
//! WebSocket pinned to a node's own key, and waiting for the tree and the camera catalogue
//! to show something.

use super::proc::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

pub const PW: &str = "admin-password-1";

pub fn env<'a>(tls: bool, parent: Option<(&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    let mut e = vec![
        ("XASO_ADMIN_PASSWORD", PW),
        ("XASO_RECORDING__SIMULATED_CAMERA", "false"),
    ];
    if tls {
        e.push(("XASO_TLS", "self-signed"));
    }
    if let Some((url, token)) = parent {
        e.push(("XASO_PARENT__URL", url));
        e.push(("XASO_PARENT__TOKEN", token));
    }
    e
}

/// `xaso node add` on the node whose data is in `dir`: the token, the one line it prints.
pub fn node_add(dir: &Path, name: &str, level: &str) -> String {
    let o = run(
        xaso(dir)
            .env("XASO_TLS", "self-signed")
            .args(["node", "add", name, "--level", level]),
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one line and nothing else: {out:?}");
    assert!(lines[0].starts_with("xn1."), "{out:?}");
    lines[0].to_owned()
}

pub async fn admin(url: &str) -> reqwest::Client {
    let c = client();
    assert_eq!(login(&c, url, "admin", PW).await, 200);
    c
}

/// Polls `GET /api/nodes` until `ok` holds (or panics after `limit`, showing the last).
pub async fn wait_nodes(
    c: &reqwest::Client,
    url: &str,
    limit: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let t0 = Instant::now();
    loop {
        let v = get_json(c, &format!("{url}/api/nodes")).await;
        if ok(&v) {
            return (v, t0.elapsed());
        }
        if t0.elapsed() > limit {
            panic!("{what}: not within {limit:?}; last /api/nodes: {v:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn child<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
}

/// Waits (up to 5 s) for a camera named `name` at node `node` in `GET /api/cameras`.
pub async fn wait_camera(c: &reqwest::Client, url: &str, node: &str, name: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let cams = get_json(c, &format!("{url}/api/cameras")).await;
        if let Some(cam) = cams
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["node"] == node && c["name"] == name)
        {
            return cam.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no camera {name:?} at {node} within 5 s: {cams}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Three levels on loopback: a top node (HTTPS), a middle one (HTTPS, joined to the top as
/// `huyen-a`), a leaf (plain HTTP, joined to the middle as `xa-tan-lap`), with the tokens
/// made by `xaso node add` before any of them ran.
pub struct ThreeLevels {
    pub top_dir: tempfile::TempDir,
    pub mid_dir: tempfile::TempDir,
    pub leaf_dir: tempfile::TempDir,
    pub mid_token: String,
    pub leaf_token: String,
    pub top: Server,
    pub mid: Server,
    pub leaf: Server,
    /// Just before the leaf was started.
    pub leaf_started: Instant,
}

pub fn three_levels() -> ThreeLevels {
    three_levels_with(&[])
}

/// [`three_levels`], the leaf with more environment (e.g. a short recording segment).
pub fn three_levels_with(leaf_env: &[(&str, &str)]) -> ThreeLevels {
    let (top_dir, mid_dir, leaf_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // Tokens are made before the servers ever ran: `node add` makes the key it pins.
    let mid_token = node_add(top_dir.path(), "huyen-a", "district");
    let leaf_token = node_add(mid_dir.path(), "xa-tan-lap", "commune");
    let top = start(top_dir.path(), &env(true, None), &[]);
    let mid = start(
        mid_dir.path(),
        &env(true, Some((&top.url, &mid_token))),
        &[],
    );
    let leaf_started = Instant::now();
    let mut e = env(false, Some((&mid.url, &leaf_token)));
    e.extend_from_slice(leaf_env);
    let leaf = start(leaf_dir.path(), &e, &[]);
    ThreeLevels {
        top_dir,
        mid_dir,
        leaf_dir,
        mid_token,
        leaf_token,
        top,
        mid,
        leaf,
        leaf_started,
    }
}

/// A parent (HTTPS, on every address of this namespace) and its child `xa-c` in a network
/// namespace of its own on 198.51.100.2, joined to this one (198.51.100.1) by a veth pair
/// shaped to 6 Mbit/s each way (`vp` here, `vc` there). Needs a namespace of the test's own
/// (`netns::runtime_in_netns`). `child_env`: more of the child's environment.
pub fn parent_and_child_behind_veth(
    parent_dir: &Path,
    child_dir: &Path,
    child_env: &[(&str, &str)],
) -> (Server, Server, String) {
    let token = node_add(parent_dir, "xa-c", "commune");
    let parent = start(parent_dir, &env(true, None), &["--listen", "0.0.0.0:0"]);
    let port = parent.url.rsplit(':').next().unwrap().to_owned();
    let parent_url = format!("https://198.51.100.1:{port}");
    let mut c = super::netns::in_new_netns(Path::new(BIN), "vc", "198.51.100.2", "6mbit");
    without_xaso_env(&mut c);
    c.arg("--data-dir").arg(child_dir);
    c.args(["serve", "--listen", "198.51.100.2:0"]);
    for (k, v) in env(false, Some((&parent_url, &token))) {
        c.env(k, v);
    }
    for (k, v) in child_env {
        c.env(k, v);
    }
    let child = start_command(c, |pid| {
        super::netns::veth_into(pid, "vp", "vc", "198.51.100.1", "6mbit");
    });
    (parent, child, token)
}

/// A WebSocket (Bearer `token`) at a node that serves HTTPS with its self-signed key, which
/// `pin` (from a join token it issued) names.
pub async fn wss(
    base: &str,
    path: &str,
    token: &str,
    pin: xaso::federation::token::KeyPin,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let authority = base.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(authority).await.unwrap();
    let cfg = xaso::federation::token::client_config(pin).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("wss://{authority}{path}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::client_async(req, tls).await.unwrap().0
}

/// Makes a meeting at `url` (now, for an hour) inviting `nodes`.
pub async fn schedule(c: &reqwest::Client, url: &str, title: &str, nodes: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp_millis();
    let r = c
        .post(format!("{url}/api/meetings"))
        .json(&json!({
            "title": title, "start": rfc(now - 60_000), "end": rfc(now + 3_600_000),
            "nodes": nodes,
        }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v
}

/// Waits up to 5 s for meeting `id` in `GET /api/meetings` at `url`.
pub async fn wait_meeting(c: &reqwest::Client, url: &str, id: &Value) -> Value {
    let t0 = Instant::now();
    loop {
        let l = get_json(c, &format!("{url}/api/meetings")).await;
        if let Some(m) = l["meetings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == *id)
        {
            return m.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "meeting {id} not at {url} within 5 s: {l}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The guest socket of meeting `m` as node `base` lists it (its own guest link).
pub fn guest_ws(base: &str, m: &Value) -> String {
    format!(
        "{}/api/meetings/{}/ws?t={}",
        base.replace("http://", "ws://"),
        m["id"],
        join_token(m)
    )
}
