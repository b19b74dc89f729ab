//! Live view under load: the real `xaso serve` process with a real RTSP camera (GStreamer's
//! RTSP server), and 50 WHEP viewers from the load client (`examples/whep_load.rs`, on the
//! server's own WebRTC library) receiving for 60 s over UDP on 127.0.0.1.

mod common;

#[allow(dead_code)]
#[path = "../examples/whep_load.rs"]
mod whep_load;

use common::camera::TestCamera;
use common::proc::*;
use serde_json::Value;
use std::time::Duration;

const ADMIN_PW: &str = "admin-password-1";

#[tokio::test(flavor = "multi_thread")]
async fn fifty_viewers_receive_one_camera_for_a_minute() {
    xaso_sfu::init_crypto();
    let cam = TestCamera::start(&["--video", "h264", "--audio", "pcmu", "--gop", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xaso.toml");
    std::fs::write(
        &cfg,
        format!(
            "[recording]\nsimulated_camera = false\n\n[[camera]]\nname = \"Cổng\"\nurl = \"{}\"\n",
            cam.url
        ),
    )
    .unwrap();
    let s = start(
        dir.path(),
        &[("XASO_ADMIN_PASSWORD", ADMIN_PW)],
        &["--config", cfg.to_str().unwrap()],
    );
    let c = client();
    assert_eq!(login(&c, &s.url, "admin", ADMIN_PW).await, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let st: Value = get_json(&c, &format!("{}/api/cameras/1/status", s.url)).await;
        if st["state"] == "streaming" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "camera not streaming: {st}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tok = post_json(
        &c,
        &format!("{}/api/tokens", s.url),
        &serde_json::json!({"user_id": 1, "name": "load"}),
    )
    .await;
    let token = tok["token"].as_str().unwrap().to_string();
    let url = format!("{}/api/cameras/1/whep", s.url);
    let reports = whep_load::run(&url, &token, 50, 60).await;
    let mut failures = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        match r {
            Ok(r) if r.ok() && r.stats.frames >= 60 * 25 - 50 && r.stats.audio_packets > 1000 => {}
            other => failures.push(format!("viewer {i}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // Every session ended (DELETE) and each start and end is in the audit log (the end is
    // written by a task of its own, just after the session closes).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ends: Value = get_json(
            &c,
            &format!("{}/api/audit?action=live.end&limit=100", s.url),
        )
        .await;
        let n = ends["entries"].as_array().unwrap().len();
        if n == 50 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} live.end entries: {ends}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let starts: Value = get_json(
        &c,
        &format!("{}/api/audit?action=live.start&limit=100", s.url),
    )
    .await;
    assert_eq!(starts["entries"].as_array().unwrap().len(), 50);
    // The forwarding latency is in /metrics.
    let m = get_text(&c, &format!("{}/metrics", s.url)).await;
    assert!(m.contains("xaso_live_forward_seconds_count"), "{m}");
    assert!(m.contains("xaso_live_sessions 0"), "{m}");
    assert!(stop(s).success());
}
