//! Running the real `xaso` binary in tests: start it on a free loopback port and read the
//! URL it prints, log in over HTTP, stop it with SIGTERM, run its shell commands.

use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_xaso");

/// A running server, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub stdout: Vec<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn xaso(data_dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    without_xaso_env(&mut c);
    c.arg("--data-dir").arg(data_dir);
    c
}

/// The server treats unknown `XASO_` variables as errors: pass none of the test's through.
pub fn without_xaso_env(c: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("XASO_") {
            c.env_remove(k);
        }
    }
}

/// Starts `xaso serve` on a free loopback port (or at `--listen` when `extra` has it).
pub fn start(data_dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Server {
    let mut c = xaso(data_dir);
    c.arg("serve");
    if !extra.contains(&"--listen") {
        c.args(["--listen", "127.0.0.1:0"]);
    }
    c.args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    start_command(c, |_| {})
}

/// Starts the server command `c` (made like [`start`]'s; perhaps behind a wrapper), calls
/// `spawned` with its process id, then reads the banner.
pub fn start_command(mut c: Command, spawned: impl FnOnce(u32)) -> Server {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    spawned(child.id());
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (etx, erx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = etx.send(line);
        }
    });
    let mut stdout = Vec::new();
    let mut url = None;
    // The banner ends with the data/database lines and, on first start, the login.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        if let Some(u) = line.trim().strip_prefix("Open:") {
            url = Some(u.trim().trim_end_matches('/').to_owned());
        }
        let done = line.contains("Database:")
            && !stdout.iter().any(|l: &String| l.contains("First start"));
        stdout.push(line.clone());
        if line.contains("Password:") || (done && url.is_some()) {
            // Give a first-start banner its remaining lines.
            while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
                stdout.push(l);
            }
            break;
        }
    }
    let url = url.unwrap_or_else(|| {
        let err: Vec<String> = erx.try_iter().collect();
        panic!("no URL printed; stdout: {stdout:?}; stderr: {err:?}")
    });
    Server {
        child,
        url,
        stdout,
        stderr: erx,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
        .unwrap()
}

pub async fn login(c: &reqwest::Client, url: &str, user: &str, pw: &str) -> reqwest::StatusCode {
    c.post(format!("{url}/api/login"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap()
        .status()
}

pub fn stop(mut s: Server) -> std::process::ExitStatus {
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    for _ in 0..100 {
        if let Some(st) = s.child.try_wait().unwrap() {
            return st;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("server did not stop within 10 s of SIGTERM");
}

pub fn run(c: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// GET `url` and parse the answer as JSON (panics on a transport error or a non-JSON body).
pub async fn get_json(c: &reqwest::Client, url: &str) -> serde_json::Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

/// GET `url` as text (e.g. `/metrics`).
pub async fn get_text(c: &reqwest::Client, url: &str) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// POST `body` as JSON to `url` and parse the answer as JSON.
pub async fn post_json(
    c: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    c.post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The link token of a meeting's `join_url` (what follows `?t=`).
pub fn join_token(m: &serde_json::Value) -> String {
    let url = m["join_url"].as_str().expect("a join_url");
    url.split("?t=")
        .nth(1)
        .expect("a token in the join_url")
        .to_owned()
}

/// RFC 3339 (UTC, milliseconds), as the API takes times.
pub fn rfc(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A GET (with an optional `Range`): status, headers, body.
pub async fn get_bytes(
    c: &reqwest::Client,
    url: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut r = c.get(url);
    if let Some(v) = range {
        r = r.header("range", v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}
