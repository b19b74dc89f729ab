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

#[allow(dead_code)]
#[path = "common/janus.rs"]
mod janus;

use janus::{Session, sdp_of};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use whep_load::{Report, receive, summarize};
use xaso_sfu::viewer::Viewer;

async fn viewer(base: String, mount: u64, ip: IpAddr, secs: u64) -> Result<Report, String> {
    let s = Session::create(&base).await?;
    let h = s.attach("janus.plugin.streaming").await?;
    let t0 = Instant::now();
    s.message(h, json!({"request": "watch", "id": mount}), None)
        .await?;
    let e = s
        .event(h, Duration::from_secs(15), |e| sdp_of(e).is_some())
        .await
        .map_err(|e| format!("no offer from Janus: {e}"))?;
    let offer = sdp_of(&e).unwrap_or_default();
    let sock = whep_load::bind(SocketAddr::new(ip, 0)).await?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let (mut v, answer) = Viewer::accept_offer(Instant::now(), local, &offer)?;
    s.message(
        h,
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
    )
    .await?;
    let keepalive = s.keepalive();
    let first_frame = receive(&mut v, &sock, t0, t0 + Duration::from_secs(secs)).await;
    keepalive.abort();
    let deleted = s.destroy().await;
    Ok(Report::end(v, first_frame, deleted))
}

/// Waits until the mountpoint has had media in the last second (its first RTSP session
/// sometimes gets none and reconnects after 5 s; a `watch` before media hangs).
async fn wait_for_media(base: &str, mount: u64) -> Result<(), String> {
    let s = Session::create(base).await?;
    let h = s.attach("janus.plugin.streaming").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = s
            .message(h, json!({"request": "info", "id": mount}), None)
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
    s.destroy().await;
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
