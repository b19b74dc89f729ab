//! Janus load client, the peer side of `benches/live_load.py --janus`: N receive-only
//! viewers of one Janus 1.1.2 streaming mountpoint, on the same str0m viewer and the same
//! checks as `whep_load` (RTP in order, H.264 payloads that reassemble), so that both
//! servers carry exactly the same load.
//!
//!     cargo run --release --example janus_load -- BASE MOUNT LOCAL_IP [VIEWERS] [SECONDS]
//!
//! BASE is Janus's HTTP API (`http://127.0.0.2:8088`), MOUNT the mountpoint id, LOCAL_IP
//! the address the viewers bind and offer (Janus must be able to route to it; see
//! `benches/janus/README.md`). Per viewer: create a session, attach the streaming plugin,
//! `watch`, take the offer from the long poll, answer, `start`, keep the session alive,
//! receive, `destroy`. Prints what `whep_load` prints.

#[allow(dead_code)]
#[path = "whep_load.rs"]
mod whep_load;

use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use whep_load::{Report, receive, summarize};
use xaso_sfu::viewer::Viewer;

async fn post(http: &reqwest::Client, url: &str, body: Value) -> Result<Value, String> {
    let r = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let v: Value = r.json().await.map_err(|e| format!("{url}: {e}"))?;
    if v["janus"] == "error" {
        return Err(format!("{url}: {v}"));
    }
    Ok(v)
}

/// A new Janus session with the streaming plugin attached: the session's URL and the handle.
async fn attach(http: &reqwest::Client, base: &str) -> Result<(String, u64), String> {
    let s = post(
        http,
        &format!("{base}/janus"),
        json!({"janus": "create", "transaction": "c"}),
    )
    .await?["data"]["id"]
        .as_u64()
        .ok_or("no session id")?;
    let session = format!("{base}/janus/{s}");
    let h = post(
        http,
        &session,
        json!({"janus": "attach", "plugin": "janus.plugin.streaming", "transaction": "a"}),
    )
    .await?["data"]["id"]
        .as_u64()
        .ok_or("no handle id")?;
    Ok((session, h))
}

/// The first JSEP offer among the events of a long poll (one event or an array of them).
fn offer_in(events: &Value) -> Option<String> {
    let list = match events {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    list.into_iter()
        .find_map(|e| e["jsep"]["sdp"].as_str().map(str::to_string))
}

async fn viewer(base: String, mount: u64, ip: IpAddr, secs: u64) -> Result<Report, String> {
    let http = reqwest::Client::new();
    let (session, h) = attach(&http, &base).await?;
    let handle = format!("{session}/{h}");
    let t0 = Instant::now();
    post(
        &http,
        &handle,
        json!({"janus": "message", "transaction": "w", "body": {"request": "watch", "id": mount}}),
    )
    .await?;
    let offer = loop {
        let r = http
            .get(format!("{session}?maxev=5"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let events: Value = r.json().await.map_err(|e| e.to_string())?;
        if let Some(o) = offer_in(&events) {
            break o;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            return Err("no offer from Janus in 15 s".into());
        }
    };
    let sock = whep_load::bind(SocketAddr::new(ip, 0)).await?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let (mut v, answer) = Viewer::accept_offer(Instant::now(), local, &offer)?;
    post(
        &http,
        &handle,
        json!({"janus": "message", "transaction": "s", "body": {"request": "start"},
               "jsep": {"type": "answer", "sdp": answer}}),
    )
    .await?;
    // Janus ends a session that says nothing for 60 s.
    let keepalive = {
        let (http, session) = (http.clone(), session.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let _ = post(
                    &http,
                    &session,
                    json!({"janus": "keepalive", "transaction": "k"}),
                )
                .await;
            }
        })
    };
    let first_frame = receive(&mut v, &sock, t0, t0 + Duration::from_secs(secs)).await;
    keepalive.abort();
    let deleted = post(
        &http,
        &session,
        json!({"janus": "destroy", "transaction": "d"}),
    )
    .await
    .is_ok();
    Ok(Report::end(v, first_frame, deleted))
}

/// Waits until the mountpoint has had media in the last second (its first RTSP session
/// sometimes gets none and reconnects after 5 s; a `watch` before media hangs).
async fn wait_for_media(base: &str, mount: u64) -> Result<(), String> {
    let http = reqwest::Client::new();
    let (session, h) = attach(&http, base).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = post(
            &http,
            &format!("{session}/{h}"),
            json!({"janus": "message", "transaction": "i", "body": {"request": "info", "id": mount}}),
        )
        .await?;
        let age = info["plugindata"]["data"]["info"]["media"][0]["age_ms"].as_u64();
        if age.is_some_and(|a| a < 1000) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("mountpoint {mount} has no media: {info}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = post(
        &http,
        &session,
        json!({"janus": "destroy", "transaction": "d"}),
    )
    .await;
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: janus_load BASE MOUNT LOCAL_IP [VIEWERS] [SECONDS]");
        std::process::exit(2);
    }
    let base = args[0].trim_end_matches('/').to_string();
    let mount: u64 = args[1].parse().expect("MOUNT is a number");
    let ip: IpAddr = args[2].parse().expect("LOCAL_IP is an address");
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(50);
    let secs: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(60);
    xaso_sfu::init_crypto();
    if let Err(e) = wait_for_media(&base, mount).await {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(viewer(base.clone(), mount, ip, secs)))
        .collect();
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.map_err(|e| e.to_string()).and_then(|r| r));
    }
    std::process::exit(summarize(n, secs, &reports));
}
