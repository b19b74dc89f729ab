//! Live view across the tree with real processes: a GStreamer camera at a commune (the
//! leaf), not recorded there, watched at the province (the top) two links up through the
//! MSE fallback by two viewers at once. The stream must decode (ffprobe), cross each link
//! once (the links' stream counts, and the leaf's uplink bytes against one viewer's), be
//! audited at every level, and stop crossing once nobody watches. And a camera wider than
//! its commune's 6 Mbit/s uplink (a veth pair shaped with `tc tbf`, the commune in a network
//! namespace of its own) stays live at the parent: frames are skipped, the delay is not.
//! Footage too: a commune's recording listed, exported (byte for byte the commune's own
//! export), played by ranges and snapshotted at the top, audited at both ends, and a clear
//! 503 while the link toward it is down.

mod common;

use common::camera::TestCamera;
use common::netns::{runtime_in_netns, sh};
use common::nodes::*;
use common::probe::probe_video;
use common::proc::*;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// What one MSE viewer got: the bytes (a fragmented MP4) and when its first fragment came.
struct Capture {
    file: Vec<u8>,
    mime: String,
    first_fragment: Duration,
}

async fn capture(
    base: &str,
    path: &str,
    token: &str,
    pin: xaso::federation::token::KeyPin,
    secs: u64,
) -> Capture {
    let t0 = Instant::now();
    let mut ws = wss(base, path, token, pin).await;
    let Some(Ok(Message::Text(init))) = ws.next().await else {
        panic!("no init message from {path}");
    };
    let init: Value = serde_json::from_str(&init).unwrap();
    assert_eq!(init["type"], "init", "{init}");
    let mut file = Vec::new();
    let mut first = None;
    let mut binaries = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                binaries += 1;
                if binaries == 2 {
                    first = Some(t0.elapsed()); // the init segment, then a fragment
                }
                file.extend_from_slice(&b);
            }
            other => panic!("unexpected message: {other:?}"),
        }
    }
    ws.send(Message::Close(None)).await.unwrap();
    Capture {
        file,
        mime: init["mime"].as_str().unwrap().to_owned(),
        first_fragment: first.expect("no fragment"),
    }
}

/// ffprobe's width, height and decoded frame count of an MP4 file.
fn probe(path: &std::path::Path) -> (i64, i64, i64) {
    let s = probe_video(path, "width,height,nb_read_frames", true);
    let n = |k: &str| {
        s[k].as_i64()
            .or_else(|| s[k].as_str().and_then(|x| x.parse().ok()))
            .unwrap()
    };
    (n("width"), n("height"), n("nb_read_frames"))
}

async fn rows(c: &reqwest::Client, url: &str, action: &str) -> Vec<Value> {
    get_json(c, &format!("{url}/api/audit?action={action}")).await["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Adds camera `name` at `url` (recorded or not) at the node `below` and waits until the node
/// `above` lists it at node path `path`: its id at each.
async fn add_camera_below(
    below: (&reqwest::Client, &str),
    above: (&reqwest::Client, &str),
    path: &str,
    (name, url, record): (&str, &str, bool),
) -> (i64, i64) {
    let r = below
        .0
        .post(format!("{}/api/cameras", below.1))
        .json(&serde_json::json!({"name": name, "url": url, "record": record}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let above_id = wait_camera(above.0, above.1, path, name).await["id"]
        .as_i64()
        .unwrap();
    (id, above_id)
}

/// A new API token of the admin (user 1) at the node `url`, for a viewer.
async fn viewer_token(c: &reqwest::Client, url: &str) -> String {
    post_json(
        c,
        &format!("{url}/api/tokens"),
        &serde_json::json!({"user_id": 1, "name": "viewer"}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commune_camera_is_watched_at_the_top_and_crosses_each_link_once() {
    let cam = TestCamera::start(&["--video", "h264", "--audio", "pcmu", "--gop", "25"]);
    let sub = TestCamera::start(&["--video", "h264", "--size", "320x180", "--gop", "25"]);
    // The data directories are kept (bound) until the end: the servers run in them.
    let ThreeLevels {
        top_dir,
        mid_dir: _mid_dir,
        leaf_dir: _leaf_dir,
        mid_token,
        leaf_token: _,
        top,
        mid,
        leaf,
        leaf_started: _,
    } = three_levels();
    let top_pin = xaso::federation::token::JoinToken::decode(&mid_token)
        .unwrap()
        .pin;
    let (ct, cm, cl) = (
        admin(&top.url).await,
        admin(&mid.url).await,
        admin(&leaf.url).await,
    );
    wait_nodes(&ct, &top.url, Duration::from_secs(15), "tree up", |v| {
        child(v, "huyen-a").is_some_and(|c| c["state"] == "up" && c["nodes"][0]["up"] == true)
    })
    .await;

    // The camera is the leaf's, pulled only while someone watches (not recorded).
    let (leaf_id, rid) = add_camera_below(
        (&cl, &leaf.url),
        (&ct, &top.url),
        "huyen-a/xa-tan-lap",
        ("Cổng UBND xã", &cam.url, false),
    )
    .await;
    // Its sub-stream, for grid tiles, is another camera stream at the leaf.
    let r = cl
        .patch(format!("{}/api/cameras/{leaf_id}", leaf.url))
        .json(&serde_json::json!({ "substream_url": sub.url }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = viewer_token(&ct, &top.url).await;
    let path = format!("/api/cameras/{rid}/mse");

    let leaf_sent = |v: &Value| v["parent"]["bytes_sent"].as_u64().unwrap();
    let before = leaf_sent(&get_json(&cl, &format!("{}/api/nodes", leaf.url)).await);
    // Two viewers at the top at once, for 6 s; the second starts 2 s after the first.
    let first = capture(&top.url, &path, &token, top_pin, 8);
    let second = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        capture(&top.url, &path, &token, top_pin, 6).await
    };
    let counts = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = get_json(&ct, &format!("{}/api/nodes", top.url)).await;
        let m = get_json(&cm, &format!("{}/api/nodes", mid.url)).await;
        let l = get_json(&cl, &format!("{}/api/nodes", leaf.url)).await;
        (t, m, l)
    };
    let (a, b, (t, m, l)) = tokio::join!(first, second, counts);
    let after = leaf_sent(&get_json(&cl, &format!("{}/api/nodes", leaf.url)).await);
    println!(
        "first fragment at the top: {:?} (the camera pulled at the leaf on demand), {:?} (a second viewer of the relayed stream)",
        a.first_fragment, b.first_fragment
    );
    assert!(a.mime.contains("avc1"), "{}", a.mime);
    // Each link carries the stream once, however many watch it above.
    assert_eq!(
        child(&t, "huyen-a").unwrap()["streams_received"],
        1,
        "{t:#}"
    );
    assert_eq!(m["parent"]["streams_sent"], 1, "{m:#}");
    assert_eq!(
        child(&m, "xa-tan-lap").unwrap()["streams_received"],
        1,
        "{m:#}"
    );
    assert_eq!(l["parent"]["streams_sent"], 1, "{l:#}");
    let uplink = after - before;
    println!(
        "the leaf's uplink carried {uplink} bytes while two viewers at the top got {} and {} bytes",
        a.file.len(),
        b.file.len()
    );
    assert!(
        (uplink as f64) < 1.3 * a.file.len() as f64,
        "the stream crossed the leaf's link more than once: {uplink} bytes for a viewer's {}",
        a.file.len()
    );

    // What the viewers got decodes: the camera's 640x360 at 25 fps, most of its frames.
    for (i, c) in [&a, &b].into_iter().enumerate() {
        let f = top_dir.path().join(format!("relayed-{i}.mp4"));
        std::fs::write(&f, &c.file).unwrap();
        let (w, h, frames) = probe(&f);
        assert_eq!((w, h), (640, 360));
        println!("viewer {i}: {frames} frames decoded");
        assert!(frames >= 100, "viewer {i}: only {frames} frames decoded");
    }

    // Audited at each level: the viewers at the top, the relayed stream below it.
    let top_rows = rows(&ct, &top.url, "live.start").await;
    assert_eq!(
        top_rows
            .iter()
            .filter(|r| r["camera_id"] == rid && r["username"] == "admin")
            .count(),
        2,
        "{top_rows:?}"
    );
    for (c, url) in [(&cm, &mid.url), (&cl, &leaf.url)] {
        let r = rows(c, url, "live.start").await;
        assert!(
            r.iter().any(|r| r["username"] == "parent:admin"
                && r["detail"].to_string().contains("federation")),
            "{url}: {r:?}"
        );
    }

    // The sub-stream crosses on a channel of its own (the main one still lingers at the top).
    let c = capture(&top.url, &format!("{path}?stream=sub"), &token, top_pin, 3).await;
    let f = top_dir.path().join("relayed-sub.mp4");
    std::fs::write(&f, &c.file).unwrap();
    let (w, h, frames) = probe(&f);
    assert_eq!((w, h), (320, 180), "the sub-stream");
    assert!(frames >= 40, "sub-stream: only {frames} frames decoded");
    let t = get_json(&ct, &format!("{}/api/nodes", top.url)).await;
    assert_eq!(
        child(&t, "huyen-a").unwrap()["streams_received"],
        2,
        "{t:#}"
    );

    // Nobody watching: after the linger time the stream stops crossing, at every link.
    let t0 = Instant::now();
    wait_nodes(
        &cl,
        &leaf.url,
        Duration::from_secs(30),
        "stream stopped",
        |v| v["parent"]["streams_sent"] == 0,
    )
    .await;
    println!(
        "the stream stopped crossing {:?} after the last viewer left",
        t0.elapsed()
    );
    let t = get_json(&ct, &format!("{}/api/nodes", top.url)).await;
    assert_eq!(
        child(&t, "huyen-a").unwrap()["streams_received"],
        0,
        "{t:#}"
    );
    let ended = rows(&cl, &leaf.url, "live.end").await;
    assert!(
        ended.iter().any(|r| r["username"] == "parent:admin"),
        "{ended:?}"
    );
    drop((top, mid, leaf, cam, sub));
}

/// Watches camera `id` at `base` over MSE for `secs`: for each frame, when it came (s from
/// the first message) and its decode time (s); and the bytes received.
async fn watch_frames(
    base: &str,
    id: i64,
    token: &str,
    pin: xaso::federation::token::KeyPin,
    secs: u64,
) -> (Vec<(f64, f64)>, usize) {
    let mut ws = wss(base, &format!("/api/cameras/{id}/mse"), token, pin).await;
    let Some(Ok(Message::Text(_))) = ws.next().await else {
        panic!("no init message");
    };
    let t0 = Instant::now();
    let mut seen = Vec::new();
    let mut bytes = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                bytes += b.len();
                if let Some(dts) = fragment_dts(&b) {
                    seen.push((t0.elapsed().as_secs_f64(), dts as f64 / 90_000.0));
                }
            }
            other => panic!("unexpected message: {other:?}"),
        }
    }
    ws.send(Message::Close(None)).await.unwrap();
    (seen, bytes)
}

/// Of the frames that came between `from` and `to` (s): how many a second of the camera's
/// time, and the worst delay of one behind the first frame of the whole view (arrival
/// time minus media time, both from the first frame).
fn frame_stats(seen: &[(f64, f64)], from: f64, to: f64) -> (f64, f64) {
    let (a0, d0) = seen[0];
    let part: Vec<&(f64, f64)> = seen
        .iter()
        .filter(|(a, _)| *a >= from && *a <= to)
        .collect();
    let worst = part
        .iter()
        .map(|(a, d)| (a - a0) - (d - d0))
        .fold(f64::MIN, f64::max);
    let span = part.last().unwrap().1 - part[0].1;
    (part.len() as f64 / span.max(1e-3), worst)
}

/// The decode time (90 kHz) in an MSE fragment's `tfdt` box (version 1).
fn fragment_dts(b: &[u8]) -> Option<u64> {
    let at = b.windows(4).position(|w| w == b"tfdt")?;
    let t = b.get(at + 8..at + 16)?;
    Some(u64::from_be_bytes(t.try_into().ok()?))
}

/// A parent in this test's namespace and a commune (`xa-c`) behind a 6 Mbit/s veth pair,
/// with a camera on the commune's own network (`cam_args` for `rtsp_camera.py`) added
/// there as "Chợ"; the admin's clients at both, the parent's key pin, the camera's id at
/// the commune and at the parent, and a viewer's token at the parent.
struct Commune {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    parent: Server,
    child: Server,
    cam: TestCamera,
    cp: reqwest::Client,
    cc: reqwest::Client,
    pin: xaso::federation::token::KeyPin,
    leaf_id: i64,
    rid: i64,
    viewer: String,
}

async fn commune_with_camera(
    child_env: &[(&str, &str)],
    cam_args: &[&str],
    record: bool,
) -> Commune {
    let (parent_dir, child_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (parent, child, token) =
        parent_and_child_behind_veth(parent_dir.path(), child_dir.path(), child_env);
    let pin = xaso::federation::token::JoinToken::decode(&token)
        .unwrap()
        .pin;
    let cam = TestCamera::start_in_netns_of(child.child.id(), cam_args);
    let (cp, cc) = (admin(&parent.url).await, admin(&child.url).await);
    let (leaf_id, rid) = add_camera_below(
        (&cc, &child.url),
        (&cp, &parent.url),
        "xa-c",
        ("Chợ", &cam.url, record),
    )
    .await;
    let viewer = viewer_token(&cp, &parent.url).await;
    Commune {
        _dirs: (parent_dir, child_dir),
        parent,
        child,
        cam,
        cp,
        cc,
        pin,
        leaf_id,
        rid,
        viewer,
    }
}

#[test]
fn a_camera_wider_than_a_6_mbit_uplink_stays_live_at_the_parent() {
    let Some(rt) = runtime_in_netns("a_camera_wider_than_a_6_mbit_uplink_stays_live_at_the_parent")
    else {
        return;
    };
    rt.block_on(async {
        // 720p at about 12 Mbit/s, a keyframe every second.
        let args = ["--size", "1280x720", "--bitrate", "12000", "--gop", "25"];
        let Commune {
            parent,
            child: child_srv,
            cam,
            cp: _cp,
            cc,
            pin,
            rid,
            viewer,
            _dirs,
            ..
        } = commune_with_camera(&[], &args, false).await;
        let uplink = |v: &Value| v["parent"]["bytes_sent"].as_u64().unwrap();
        let nodes = format!("{}/api/nodes", child_srv.url);
        // 20 s at the parent; the uplink's rate from 5 s to 19 s.
        let sampler = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (t5, b5) = (Instant::now(), uplink(&get_json(&cc, &nodes).await));
            tokio::time::sleep(Duration::from_secs(14)).await;
            let b = uplink(&get_json(&cc, &nodes).await);
            (b - b5) as f64 * 8.0 / t5.elapsed().as_secs_f64() / 1e6
        };
        let ((seen, _), rate) =
            tokio::join!(watch_frames(&parent.url, rid, &viewer, pin, 20), sampler);
        let (fps, _) = frame_stats(&seen, 0.0, f64::MAX);
        let (_, worst_last) = frame_stats(&seen, 15.0, f64::MAX);
        let media_secs = seen.last().unwrap().1 - seen[0].1;
        println!(
            "over a 6 Mbit/s uplink: {} frames in {media_secs:.1} s of the camera's time ({fps:.1} a second of its 25), \
             the uplink carrying {rate:.2} Mbit/s; each frame's delay behind the first: at most {worst_last:.3} s in the last 5 s",
            seen.len()
        );
        assert!(
            rate > 4.5,
            "the link was not full ({rate:.2} Mbit/s): the camera was not wider than it"
        );
        assert!(fps < 22.0, "no frame was skipped ({fps:.1} fps): the camera was not wider than the link");
        assert!(
            worst_last < 1.0,
            "the stream fell behind: {worst_last:.3} s in the last 5 s"
        );
        drop((cam, child_srv, parent));
    });
}

fn ms_of(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commune_recording_is_listed_exported_and_played_at_the_top() {
    let cam = TestCamera::start(&["--video", "h264", "--gop", "25"]);
    let ThreeLevels {
        top_dir,
        mid_dir,
        leaf_dir: _leaf_dir,
        mid_token: _,
        leaf_token: _,
        top,
        mid,
        leaf,
        leaf_started: _,
    } = three_levels_with(&[("XASO_RECORDING__SEGMENT_SECS", "4")]);
    let (ct, cl) = (admin(&top.url).await, admin(&leaf.url).await);
    wait_nodes(&ct, &top.url, Duration::from_secs(15), "tree up", |v| {
        child(v, "huyen-a").is_some_and(|c| c["state"] == "up" && c["nodes"][0]["up"] == true)
    })
    .await;
    let (leaf_id, rid) = add_camera_below(
        (&cl, &leaf.url),
        (&ct, &top.url),
        "huyen-a/xa-tan-lap",
        ("Cổng UBND xã", &cam.url, true),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(14)).await;

    // The spans, as the commune lists them, under the top's id.
    let now = chrono::Utc::now().timestamp_millis();
    let q = format!("start={}&end={}", rfc(now - 60_000), rfc(now));
    let at_top = get_json(
        &ct,
        &format!("{}/api/cameras/{rid}/recordings?{q}", top.url),
    )
    .await;
    let at_leaf = get_json(
        &cl,
        &format!("{}/api/cameras/{leaf_id}/recordings?{q}", leaf.url),
    )
    .await;
    assert_eq!(at_top["camera_id"], rid, "{at_top}");
    assert_eq!(at_top["spans"], at_leaf["spans"], "{at_top} {at_leaf}");
    let span = &at_top["spans"][0];
    assert_eq!(span["video_codec"], "h264", "{at_top}");
    let (s0, s1) = (ms_of(&span["start"]), ms_of(&span["end"]));
    assert!(s1 - s0 >= 8_000, "{at_top}");

    // An export of 6 s: the very bytes the commune exports itself.
    let range = format!("start={}&end={}", rfc(s0 + 1_000), rfc(s0 + 7_000));
    let t0 = Instant::now();
    let (st, h, top_file) = get_bytes(
        &ct,
        &format!("{}/api/cameras/{rid}/export.mp4?{range}", top.url),
        None,
    )
    .await;
    let took = t0.elapsed();
    assert_eq!(st, 200);
    let (_, lh, leaf_file) = get_bytes(
        &cl,
        &format!("{}/api/cameras/{leaf_id}/export.mp4?{range}", leaf.url),
        None,
    )
    .await;
    println!(
        "an export of 6 s ({} bytes) fetched at the top, two links up, in {took:?}",
        top_file.len()
    );
    assert_eq!(
        top_file, leaf_file,
        "the export at the top is the commune's"
    );
    assert_eq!(h["etag"], lh["etag"]);
    assert_eq!(h["content-type"], "video/mp4");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let f = top_dir.path().join("remote-export.mp4");
    std::fs::write(&f, &top_file).unwrap();
    let (w, hgt, frames) = probe(&f);
    assert_eq!((w, hgt), (640, 360));
    assert!(
        (140..=160).contains(&frames),
        "{frames} frames in 6 s at 25 fps"
    );

    // Playback by ranges, as a <video> element asks, and the cache check.
    let purl = format!("{}/api/cameras/{rid}/playback.mp4?{range}", top.url);
    let (st, h, part) = get_bytes(&ct, &purl, Some("bytes=1000-4999")).await;
    assert_eq!(st, 206);
    assert_eq!(part, top_file[1000..5000]);
    assert_eq!(
        h["content-range"].to_str().unwrap(),
        format!("bytes 1000-4999/{}", top_file.len())
    );
    let r = ct
        .get(&purl)
        .header("if-none-match", h["etag"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let (st, _, _) = get_bytes(&ct, &purl, Some(&format!("bytes={}-", top_file.len()))).await;
    assert_eq!(st, 416);

    // A snapshot, decoded at the commune.
    let (st, h, jpeg) = get_bytes(
        &ct,
        &format!(
            "{}/api/cameras/{rid}/snapshot.jpg?at={}&width=320",
            top.url,
            rfc(s0 + 3_000)
        ),
        None,
    )
    .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&jpeg));
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(&jpeg[..2], b"\xff\xd8");

    // Audited at the top (the user) and at the commune (for the parent's user).
    let top_rows = rows(&ct, &top.url, "footage.export").await;
    assert!(
        top_rows.iter().any(|r| r["username"] == "admin"
            && r["camera_id"] == rid
            && r["detail"]["node"] == "huyen-a/xa-tan-lap"),
        "{top_rows:?}"
    );
    let leaf_rows = rows(&cl, &leaf.url, "footage.export").await;
    assert!(
        leaf_rows
            .iter()
            .any(|r| r["username"] == "parent:admin" && r["camera_id"] == leaf_id),
        "{leaf_rows:?}"
    );
    assert!(
        !rows(&cl, &leaf.url, "footage.snapshot").await.is_empty(),
        "the snapshot is audited at the commune"
    );

    // The middle node gone: a clear 503 at the top, at once.
    assert!(stop(mid).success());
    wait_nodes(&ct, &top.url, Duration::from_secs(10), "mid down", |v| {
        child(v, "huyen-a").is_some_and(|c| c["state"] == "down")
    })
    .await;
    let t0 = Instant::now();
    let r = ct
        .get(format!("{}/api/cameras/{rid}/export.mp4?{range}", top.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(
        body.to_string().contains("huyen-a/xa-tan-lap") && body.to_string().contains("down"),
        "{body}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    drop((top, leaf, mid_dir));
}

#[test]
fn an_export_shares_a_6_mbit_uplink_with_live_viewers_who_keep_every_frame() {
    let Some(rt) =
        runtime_in_netns("an_export_shares_a_6_mbit_uplink_with_live_viewers_who_keep_every_frame")
    else {
        return;
    };
    rt.block_on(async {
        // A camera of about 2.5 Mbit/s, recorded at the commune.
        let args = ["--size", "1280x720", "--bitrate", "2500", "--gop", "25"];
        let Commune {
            parent,
            child: child_srv,
            cam,
            cp,
            cc,
            pin,
            leaf_id,
            rid,
            viewer,
            _dirs,
            ..
        } = commune_with_camera(&[("XASO_RECORDING__SEGMENT_SECS", "4")], &args, true).await;
        tokio::time::sleep(Duration::from_secs(24)).await;
        let now = chrono::Utc::now().timestamp_millis();
        let q = format!("start={}&end={}", rfc(now - 22_000), rfc(now - 6_000));

        // Two live viewers at the parent for 20 s; 4 s in, an export of 16 s of footage. The
        // veth's own counter says what crossed the link meanwhile.
        let rx = || common::netns::dev_bytes("vp").0;
        let rx0 = rx();
        let export = async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            let t = Instant::now();
            let url = format!("{}/api/cameras/{rid}/export.mp4?{q}", parent.url);
            let (st, h, body) = get_bytes(&cp, &url, None).await;
            (t.elapsed(), st, h, body)
        };
        let ((seen, viewer_bytes), (_, second_bytes), (took, st, h, body)) = tokio::join!(
            watch_frames(&parent.url, rid, &viewer, pin, 20),
            watch_frames(&parent.url, rid, &viewer, pin, 20),
            export
        );
        let crossed = rx() - rx0;
        assert_eq!(st, 200);
        let once = (viewer_bytes + body.len()) as f64;
        println!(
            "the veth carried {crossed} bytes up while two viewers got {viewer_bytes} and {second_bytes} bytes and the export {}: {:.2} times one stream and the export",
            body.len(),
            crossed as f64 / once
        );
        assert!(
            (crossed as f64) < 1.2 * once,
            "the stream crossed the link more than once: {crossed} bytes for {once}"
        );
        let mbps = body.len() as f64 * 8.0 / took.as_secs_f64() / 1e6;
        let during = (4.0, 4.0 + took.as_secs_f64());
        let (fps, worst) = frame_stats(&seen, during.0, during.1);
        let (_, worst_all) = frame_stats(&seen, 0.0, f64::MAX);
        println!(
            "over a 6 Mbit/s uplink: an export of 16 s ({} bytes) took {took:?} ({mbps:.2} Mbit/s) beside a live view that got \
             {fps:.1} frames a second of its 25 meanwhile, no frame more than {worst:.3} s behind the first ({worst_all:.3} s over 20 s)",
            body.len()
        );
        // The commune's own export of the range: the same bytes (its ETag).
        let r = cc
            .head(format!("{}/api/cameras/{leaf_id}/export.mp4?{q}", child_srv.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["etag"], h["etag"]);
        assert_eq!(
            r.headers()["content-length"].to_str().unwrap(),
            body.len().to_string()
        );
        assert!(mbps > 2.0, "the export crawled: {mbps:.2} Mbit/s");
        assert!(fps > 23.0, "the live view lost frames to the export: {fps:.1} fps");
        assert!(worst < 0.5, "the live view fell behind during the export: {worst:.3} s");
        drop((cam, child_srv, parent));
    });
}

#[test]
fn a_live_view_at_the_parent_comes_back_by_itself_when_the_link_returns() {
    let Some(rt) =
        runtime_in_netns("a_live_view_at_the_parent_comes_back_by_itself_when_the_link_returns")
    else {
        return;
    };
    rt.block_on(async {
        let args = ["--bitrate", "800", "--gop", "25"];
        let Commune {
            parent,
            child: child_srv,
            cam,
            cp,
            pin,
            rid,
            viewer,
            _dirs,
            ..
        } = commune_with_camera(&[], &args, false).await;
        // One viewer at the parent for 26 s, who keeps its socket across the cut: 5 s in,
        // the path to the commune goes silent for 8 s (the link is taken for dead after 4).
        let mut ws = wss(&parent.url, &format!("/api/cameras/{rid}/mse"), &viewer, pin).await;
        let t0 = Instant::now();
        let watch = async {
            let mut fragments = Vec::new();
            while t0.elapsed() < Duration::from_secs(26) {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) if fragment_dts(&b).is_some() => {
                        fragments.push(t0.elapsed());
                    }
                    Some(Ok(Message::Binary(_) | Message::Text(_))) => {} // init again
                    other => panic!("the viewer's socket ended: {other:?}"),
                }
            }
            fragments
        };
        let cut = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            sh("ip link set vp down");
            tokio::time::sleep(Duration::from_secs(8)).await;
            sh("ip link set vp up");
            t0.elapsed()
        };
        let (fragments, back) = tokio::join!(watch, cut);
        let before = fragments
            .iter()
            .filter(|t| **t < Duration::from_secs(5))
            .count();
        let again = fragments
            .iter()
            .find(|t| **t > back)
            .copied()
            .expect("no frame after the path returned");
        let after = fragments.iter().filter(|t| **t > again).count();
        println!(
            "frames at the parent again {:?} after the path to the commune returned ({before} frames before the cut, {after} after)",
            again - back
        );
        assert!(before > 50, "{before} frames before the cut");
        assert!(
            again - back < Duration::from_secs(5),
            "frames came back {:?} after the path",
            again - back
        );
        assert!(after > 100, "{after} frames after");
        let v = get_json(&cp, &format!("{}/api/nodes", parent.url)).await;
        assert_eq!(child(&v, "xa-c").unwrap()["state"], "up", "{v}");
        drop((cam, child_srv, parent));
    });
}
