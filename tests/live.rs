//! Live view against the real `xaso serve` process with a real RTSP camera (GStreamer's RTSP
//! server): 50 WHEP viewers from the load client (`examples/whep_load.rs`, on the server's
//! own WebRTC library) receiving for 60 s over UDP on 127.0.0.1; and the MSE fallback
//! (fragmented MP4 over a WebSocket), whose stream ffmpeg must decode.

mod common;

#[allow(dead_code)]
#[path = "../examples/whep_load.rs"]
mod whep_load;

use common::camera::TestCamera;
use common::probe::probe_video;
use common::proc::*;
use serde_json::Value;
use std::time::Duration;

const ADMIN_PW: &str = "admin-password-1";
/// A TURN server in the configuration (none runs: only handed to viewers).
const TURN: &str = "[[webrtc.ice_servers]]\nurls = [\"turn:127.0.0.1:3478?transport=udp\"]\nusername = \"xaso\"\ncredential = \"turn-secret\"\n";

/// A GStreamer camera (H.264 + PCMU, a keyframe every 2 s) recorded by `xaso serve`, the
/// admin logged in, once the camera streams.
async fn serve_one_camera() -> (TestCamera, tempfile::TempDir, Server, reqwest::Client) {
    let cam = TestCamera::start(&["--video", "h264", "--audio", "pcmu", "--gop", "50"]);
    let cameras = format!(
        "{TURN}\n[[camera]]\nname = \"Cổng\"\nurl = \"{}\"\n",
        cam.url
    );
    let (dir, s, c) = serve(&cameras).await;
    (cam, dir, s, c)
}

/// A new API token of the admin (user 1).
async fn admin_token(c: &reqwest::Client, url: &str, name: &str) -> String {
    let t = post_json(
        c,
        &format!("{url}/api/tokens"),
        &serde_json::json!({"user_id": 1, "name": name}),
    )
    .await;
    t["token"].as_str().unwrap().to_string()
}

/// `xaso serve` with `config` (after `[recording] simulated_camera = false`), the admin
/// logged in, once camera 1 streams.
async fn serve(config: &str) -> (tempfile::TempDir, Server, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xaso.toml");
    std::fs::write(
        &cfg,
        format!("[recording]\nsimulated_camera = false\n\n{config}"),
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
    (dir, s, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_viewers_receive_one_camera_for_a_minute() {
    xaso_sfu::init_crypto();
    let (_cam, _dir, s, c) = serve_one_camera().await;
    let token = admin_token(&c, &s.url, "load").await;
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

/// A WebSocket to `url` with a Bearer token.
async fn ws_connect(
    url: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The refusal a WebSocket gets: the error message, then the close code.
async fn ws_refusal(url: &str, token: &str) -> (Value, u16) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = ws_connect(url, token).await;
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no error message from {url}");
    };
    let err: Value = serde_json::from_str(&t).unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(f)))) => (err, u16::from(f.code)),
        other => panic!("no close frame from {url}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mse_fallback_streams_fragmented_mp4_that_decodes() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (_cam, dir, s, c) = serve_one_camera().await;
    let token = |user_id: i64| {
        let c = c.clone();
        let url = s.url.clone();
        async move {
            let t = post_json(
                &c,
                &format!("{url}/api/tokens"),
                &serde_json::json!({"user_id": user_id, "name": "mse"}),
            )
            .await;
            t["token"].as_str().unwrap().to_string()
        }
    };
    let admin = token(1).await;
    let ws_base = s.url.replacen("http://", "ws://", 1);

    // Six seconds of the camera: text "init", its init segment, then a fragment per frame.
    let mut ws = ws_connect(&format!("{ws_base}/api/cameras/1/mse"), &admin).await;
    let Some(Ok(Message::Text(init))) = ws.next().await else {
        panic!("no init message");
    };
    let init: Value = serde_json::from_str(&init).unwrap();
    assert_eq!(init["type"], "init");
    let mime = init["mime"].as_str().unwrap();
    assert!(mime.starts_with("video/mp4; codecs=\"avc1."), "{mime}");
    let mut file = Vec::new();
    let mut fragments = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                if !file.is_empty() {
                    fragments += 1;
                }
                file.extend_from_slice(&b);
            }
            other => panic!("unexpected message: {other:?}"),
        }
    }
    ws.send(Message::Close(None)).await.unwrap();
    drop(ws);
    // The GOP came first (from the last keyframe, up to 2 s of it), then 25 frames a second.
    assert!(fragments >= 6 * 25 - 10, "{fragments} fragments");
    let path = dir.path().join("mse.mp4");
    std::fs::write(&path, &file).unwrap();
    let st = probe_video(&path, "codec_name,width,height,nb_read_frames", true);
    let p = &st;
    assert_eq!(st["codec_name"], "h264", "{p}");
    assert_eq!(
        (st["width"].as_i64(), st["height"].as_i64()),
        (Some(640), Some(360))
    );
    let frames: usize = st["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert_eq!(frames, fragments, "one frame per fragment: {p}");
    let decode = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "ffmpeg decode errors: {}",
        String::from_utf8_lossy(&decode.stderr)
    );

    // Refusals come inside the socket, with the HTTP status in the message and close code.
    let (err, code) = ws_refusal(&format!("{ws_base}/api/cameras/99/mse"), &admin).await;
    assert_eq!((err["status"].as_i64(), code), (Some(404), 4404), "{err}");
    let user: Value = post_json(
        &c,
        &format!("{}/api/users", s.url),
        &serde_json::json!({"username": "guard", "password": "guard-password-1", "role": "operator"}),
    )
    .await;
    let guard = token(user["id"].as_i64().unwrap()).await;
    let (err, code) = ws_refusal(&format!("{ws_base}/api/cameras/1/mse"), &guard).await;
    assert_eq!((err["status"].as_i64(), code), (Some(403), 4403), "{err}");
    // A plain GET is told to use a WebSocket.
    let r = c
        .get(format!("{}/api/cameras/1/mse", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Start, refusal and end are audited; the end says how much was sent.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let end = loop {
        let ends: Value =
            get_json(&c, &format!("{}/api/audit?action=live.end&limit=10", s.url)).await;
        if let Some(e) = ends["entries"].as_array().unwrap().first() {
            break e.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no live.end entry");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(end["detail"]["transport"], "mse", "{end}");
    assert!(
        end["detail"]["bytes_sent"].as_u64().unwrap() >= file.len() as u64,
        "{end}"
    );
    let denied: Value = get_json(
        &c,
        &format!("{}/api/audit?action=live.denied&limit=10", s.url),
    )
    .await;
    assert_eq!(denied["entries"].as_array().unwrap().len(), 1, "{denied}");
    let m = get_text(&c, &format!("{}/metrics", s.url)).await;
    assert!(m.contains("xaso_live_mse_sessions 0"), "{m}");

    // The configured TURN server is handed to viewers: to the Live page as JSON, to WHEP
    // clients as a Link header of the answer.
    let ice: Value = get_json(&c, &format!("{}/api/live/config", s.url)).await;
    assert_eq!(ice["aac_to_opus"], cfg!(feature = "gstreamer"), "{ice}");
    assert_eq!(
        ice["ice_servers"][0]["urls"][0], "turn:127.0.0.1:3478?transport=udp",
        "{ice}"
    );
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (_v, offer) = xaso_sfu::viewer::Viewer::offer(
        std::time::Instant::now(),
        sock.local_addr().unwrap(),
        true,
    );
    let r = c
        .post(format!("{}/api/cameras/1/whep", s.url))
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(
        link,
        "<turn:127.0.0.1:3478?transport=udp>; rel=\"ice-server\"; username=\"xaso\"; credential=\"turn-secret\"; credential-type=\"password\""
    );
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let answer = r.text().await.unwrap();
    // ICE-TCP: a passive TCP candidate besides the UDP one.
    assert!(
        answer.contains(" tcp ") && answer.contains("tcptype passive"),
        "{answer}"
    );
    let del = c
        .delete(format!("{}{location}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert!(stop(s).success());
}

/// Collects an MSE stream for `secs` seconds; returns its mime type and the bytes (init
/// segment and fragments), a playable fragmented MP4.
async fn mse_capture(url: &str, token: &str, secs: u64) -> (String, Vec<u8>) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = ws_connect(url, token).await;
    let Some(Ok(Message::Text(init))) = ws.next().await else {
        panic!("no init message from {url}");
    };
    let init: Value = serde_json::from_str(&init).unwrap();
    let mut file = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => file.extend_from_slice(&b),
            other => panic!("unexpected message: {other:?}"),
        }
    }
    ws.send(Message::Close(None)).await.unwrap();
    (init["mime"].as_str().unwrap().to_string(), file)
}

/// Width and height of the video in an MP4 file, by ffprobe.
fn probe_size(path: &std::path::Path) -> (i64, i64) {
    let s = probe_video(path, "width,height", false);
    (s["width"].as_i64().unwrap(), s["height"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn sub_streams_and_unrecorded_cameras_are_pulled_on_demand() {
    xaso_sfu::init_crypto();
    let main = TestCamera::start(&["--video", "h264", "--gop", "50"]);
    let sub = TestCamera::start(&["--video", "h264", "--gop", "50", "--size", "320x180"]);
    let unrecorded = TestCamera::start(&["--video", "h264", "--gop", "50", "--size", "480x270"]);
    let (dir, s, c) = serve(&format!(
        "[[camera]]\nname = \"Cổng\"\nurl = \"{}\"\nsubstream_url = \"{}\"\n\n\
         [[camera]]\nname = \"Sân\"\nurl = \"{}\"\nrecord = false\n",
        main.url, sub.url, unrecorded.url
    ))
    .await;
    let token = admin_token(&c, &s.url, "pull").await;
    let ws = s.url.replacen("http://", "ws://", 1);
    let metric = |name: &'static str| {
        let (c, url) = (c.clone(), s.url.clone());
        async move {
            let m = get_text(&c, &format!("{url}/metrics")).await;
            m.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
                .unwrap()
        }
    };
    assert_eq!(metric("xaso_live_pulled_streams").await, 0);

    // Each stream as asked: the sub-stream (pulled on demand), the recorded main stream,
    // the main stream of the camera that is not recorded (pulled on demand).
    for (path, want) in [
        ("cameras/1/mse?stream=sub", (320, 180)),
        ("cameras/1/mse?stream=main", (640, 360)),
        ("cameras/2/mse", (480, 270)),
        ("cameras/2/mse?stream=sub", (480, 270)), // no sub-stream: the main one
    ] {
        let (mime, file) = mse_capture(&format!("{ws}/api/{path}"), &token, 3).await;
        assert!(mime.starts_with("video/mp4"), "{mime}");
        let f = dir.path().join("pulled.mp4");
        std::fs::write(&f, &file).unwrap();
        assert_eq!(probe_size(&f), want, "{path}");
    }
    assert_eq!(metric("xaso_live_pulled_streams").await, 2);
    // WebRTC takes the same sub-stream.
    let reports = whep_load::run(
        &format!("{}/api/cameras/1/whep?stream=sub", s.url),
        &token,
        2,
        4,
    )
    .await;
    for r in &reports {
        let r = r.as_ref().unwrap();
        assert!(r.ok() && r.stats.frames >= 50, "{r:?}");
    }
    // Nobody watches: the pulls end after the linger time, and come back when asked.
    let deadline = std::time::Instant::now() + xaso::live_sources::LINGER + Duration::from_secs(10);
    while metric("xaso_live_pulled_streams").await != 0 {
        assert!(std::time::Instant::now() < deadline, "pulls still running");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, file) = mse_capture(&format!("{ws}/api/cameras/2/mse"), &token, 2).await;
    assert!(file.len() > 10_000);
    assert!(stop(s).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn h265_goes_to_viewers_that_take_it_and_the_others_get_h264() {
    xaso_sfu::init_crypto();
    let main = TestCamera::start(&["--video", "h265", "--gop", "50"]);
    let sub = TestCamera::start(&["--video", "h264", "--gop", "50", "--size", "320x180"]);
    let lone = TestCamera::start(&["--video", "h265", "--gop", "50"]);
    let (_dir, s, c) = serve(&format!(
        "[[camera]]\nname = \"Cổng\"\nurl = \"{}\"\nsubstream_url = \"{}\"\n\n\
         [[camera]]\nname = \"Kho\"\nurl = \"{}\"\n",
        main.url, sub.url, lone.url
    ))
    .await;
    let token = admin_token(&c, &s.url, "h265").await;
    let url = format!("{}/api/cameras/1/whep", s.url);
    let (with, without) = tokio::join!(
        whep_load::viewer_with(url.clone(), token.clone(), 4, true),
        whep_load::viewer_with(url, token.clone(), 4, false),
    );
    let with = with.unwrap();
    assert!(with.ok() && with.stats.frames >= 50, "{with:?}");
    assert_eq!(with.stats.video_codec.as_deref(), Some("H265"));
    let without = without.unwrap();
    assert!(without.ok() && without.stats.frames >= 50, "{without:?}");
    assert_eq!(without.stats.video_codec.as_deref(), Some("H264"));
    // No sub-stream to fall back on: an H.264 transcode where the build has pipelines,
    // else a clear refusal, not a black picture.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while get_json(&c, &format!("{}/api/cameras/2/status", s.url)).await["state"] != "streaming" {
        assert!(
            std::time::Instant::now() < deadline,
            "camera 2 not streaming"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url2 = format!("{}/api/cameras/2/whep", s.url);
    if cfg!(feature = "gstreamer") {
        let r = whep_load::viewer_with(url2, token, 5, false).await.unwrap();
        assert!(r.ok() && r.stats.frames >= 75, "{r:?}");
        assert_eq!(r.stats.video_codec.as_deref(), Some("H264"), "{r:?}");
    } else {
        let err = whep_load::viewer_with(url2, token, 2, false)
            .await
            .unwrap_err();
        assert!(err.contains("400") && err.contains("H.265"), "{err}");
    }
    assert!(stop(s).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn aac_is_heard_as_opus_where_the_server_transcodes() {
    xaso_sfu::init_crypto();
    let cam = TestCamera::start(&["--video", "h264", "--audio", "aac", "--gop", "50"]);
    let (_dir, s, c) = serve(&format!(
        "[[camera]]\nname = \"Cổng\"\nurl = \"{}\"\n",
        cam.url
    ))
    .await;
    let token = admin_token(&c, &s.url, "aac").await;
    let reports = whep_load::run(&format!("{}/api/cameras/1/whep", s.url), &token, 2, 5).await;
    for r in &reports {
        let r = r.as_ref().unwrap();
        assert!(r.ok() && r.stats.frames >= 100, "{r:?}");
        if cfg!(feature = "gstreamer") {
            // 20 ms Opus packets: about 50 a second once the transcoder runs.
            assert_eq!(r.stats.audio_codec.as_deref(), Some("opus"), "{r:?}");
            assert!(r.stats.audio_packets >= 150, "{r:?}");
        } else {
            assert_eq!(r.stats.audio_packets, 0, "{r:?}");
        }
    }
    assert!(stop(s).success());
}
