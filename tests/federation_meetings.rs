//! Meetings across levels with real processes: a district (HTTPS) and two communes
//! (joined to it), a meeting made at the district that invites both communes. It appears
//! at each commune under the same id; two officials at each commune join at their own
//! node (the `meeting_load` participant: the server's WebRTC library over UDP), and each
//! sees and hears the three others, the other commune's through the district. Each link
//! carries its side's two participants once, however many subscribers are behind it (the
//! links' own byte counts). A meeting that invites only a grandchild is relayed through
//! the middle node without appearing there.

mod common;

#[path = "../examples/meeting_load.rs"]
#[allow(dead_code)]
mod meeting_load;

use common::nodes::*;
use common::proc::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Makes a meeting at `url` (now, for an hour) inviting `nodes`.
async fn schedule(c: &reqwest::Client, url: &str, title: &str, nodes: &[&str]) -> Value {
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
async fn wait_meeting(c: &reqwest::Client, url: &str, id: &Value) -> Value {
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

/// The link figures of child `name` at `url`: (bytes sent to it, bytes received from it).
async fn link_bytes(c: &reqwest::Client, url: &str, name: &str) -> (u64, u64) {
    let v = get_json(c, &format!("{url}/api/nodes")).await;
    let ch = child(&v, name).unwrap_or_else(|| panic!("no child {name}: {v}"));
    (
        ch["bytes_sent"].as_u64().unwrap(),
        ch["bytes_received"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_communes_meet_through_their_district() {
    xaso_sfu::init_crypto();
    let (d_dir, a_dir, b_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a_token = node_add(d_dir.path(), "xa-a", "commune");
    let b_token = node_add(d_dir.path(), "xa-b", "commune");
    let d = start(d_dir.path(), &env(true, None), &[]);
    let a = start(a_dir.path(), &env(false, Some((&d.url, &a_token))), &[]);
    let b = start(b_dir.path(), &env(false, Some((&d.url, &b_token))), &[]);
    let (cd, ca, cb) = (
        admin(&d.url).await,
        admin(&a.url).await,
        admin(&b.url).await,
    );
    wait_nodes(
        &cd,
        &d.url,
        Duration::from_secs(10),
        "both communes up",
        |v| {
            ["xa-a", "xa-b"]
                .iter()
                .all(|n| child(v, n).is_some_and(|c| c["state"] == "up"))
        },
    )
    .await;

    // Invitations: only nodes below; an unknown one is refused.
    let now = chrono::Utc::now().timestamp_millis();
    let r = cd
        .post(format!("{}/api/meetings", d.url))
        .json(
            &json!({"title": "x", "start": rfc(now), "end": rfc(now + 60_000),
            "nodes": ["xa-z"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let m = schedule(&cd, &d.url, "Giao ban huyện", &["xa-a", "xa-b"]).await;
    assert_eq!(m["nodes"], json!(["xa-a", "xa-b"]));
    let id = m["id"].clone();
    let at_a = wait_meeting(&ca, &a.url, &id).await;
    let at_b = wait_meeting(&cb, &b.url, &id).await;
    for x in [&at_a, &at_b] {
        assert_eq!(x["title"], "Giao ban huyện");
        assert_eq!(x["from_parent"], true, "{x}");
        assert_eq!(x["chair"]["username"], "admin", "the district's chair: {x}");
        assert_eq!(x["phase"], "now");
    }

    // Two officials at each commune, each through its own node's guest link.
    let ws = |base: &str, m: &Value| {
        let token = join_token(m);
        format!(
            "{}/api/meetings/{}/ws?t={token}",
            base.replace("http://", "ws://"),
            m["id"]
        )
    };
    let before_a = link_bytes(&cd, &d.url, "xa-a").await;
    let before_b = link_bytes(&cd, &d.url, "xa-b").await;
    let epoch = Instant::now();
    let o = meeting_load::Options {
        secs: 10,
        end: Some(epoch + Duration::from_secs(11)),
        kbps: 300,
        simulcast: false,
        tile_height: 360,
    };
    let mut tasks = Vec::new();
    for (i, url) in [
        ws(&a.url, &at_a),
        ws(&a.url, &at_a),
        ws(&b.url, &at_b),
        ws(&b.url, &at_b),
    ]
    .into_iter()
    .enumerate()
    {
        tasks.push(tokio::spawn(meeting_load::participant(
            url,
            format!("Đại biểu {}", i + 1),
            i as u8 + 1,
            3,
            o.clone(),
            epoch,
        )));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.unwrap().expect("participant ran"));
    }
    let after_a = link_bytes(&cd, &d.url, "xa-a").await;
    let after_b = link_bytes(&cd, &d.url, "xa-b").await;
    for (i, r) in reports.iter().enumerate() {
        let me = i as u8 + 1;
        let mut seen: Vec<u8> = r.video.iter().flat_map(|v| v.0.clone()).collect();
        seen.sort();
        seen.dedup();
        let others: Vec<u8> = (1..=4).filter(|t| *t != me).collect();
        assert_eq!(seen, others, "{} sees the three others: {r:?}", r.name);
        let mut heard: Vec<u8> = r.audio.iter().flat_map(|v| v.0.clone()).collect();
        heard.sort();
        heard.dedup();
        assert_eq!(heard, others, "{} hears the three others: {r:?}", r.name);
        for (tags, frames, _) in r.video.iter().filter(|v| !v.0.is_empty()) {
            assert!(*frames >= 150, "{}: {frames} frames from {tags:?}", r.name);
        }
        for (tags, packets, _) in r.audio.iter().filter(|v| !v.0.is_empty()) {
            assert!(
                *packets >= 300,
                "{}: {packets} packets from {tags:?}",
                r.name
            );
        }
        assert!(
            r.first_frame.is_some_and(|t| t < Duration::from_secs(3)),
            "{r:?}"
        );
    }
    // Each link carries two participants' tracks each way, once: what goes down to a
    // commune (the other commune's two, for two subscribers there) is about what came
    // up from the other one, not twice it.
    let up_a = after_a.1 - before_a.1;
    let up_b = after_b.1 - before_b.1;
    let down_a = after_a.0 - before_a.0;
    let down_b = after_b.0 - before_b.0;
    println!(
        "measure: up from xa-a {up_a} B, down to xa-b {down_b} B; up from xa-b {up_b} B, \
         down to xa-a {down_a} B (10 s, 2 participants at 300 kbit/s each side)"
    );
    // Two cameras of 300 kbit/s and two microphones for ~10 s: ~0.8 MB.
    assert!(up_a > 500_000 && up_b > 500_000, "{up_a} {up_b}");
    for (down, up) in [(down_b, up_a), (down_a, up_b)] {
        let ratio = down as f64 / up as f64;
        assert!(
            (0.8..1.25).contains(&ratio),
            "down {down} B against up {up} B: each track once ({ratio:.2})"
        );
    }

    for s in [d, a, b] {
        assert!(stop(s).success());
    }
}
