//! Meetings against the real `xaso serve` process: scheduling and who may see a meeting,
//! guest links (good, tampered, expired), the signalling socket's handling of bad input,
//! a participant who vanishes, and four participants (the load client,
//! `examples/meeting_load.rs`, on the server's own WebRTC library over UDP on 127.0.0.1)
//! publishing audio and video to each other for 10 s.

mod common;

#[allow(dead_code)]
#[path = "../examples/meeting_load.rs"]
mod meeting_load;

use common::netns::{runtime_in_netns, sh};
use common::proc::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const ADMIN_PW: &str = "admin-password-1";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve() -> (tempfile::TempDir, Server, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xaso.toml");
    std::fs::write(&cfg, "[recording]\nsimulated_camera = false\n").unwrap();
    // TEST_XASO_LOG=debug (say) shows more of the server's log in a failing test's output.
    let log = std::env::var("TEST_XASO_LOG").unwrap_or_else(|_| "info".into());
    let s = start(
        dir.path(),
        &[("XASO_ADMIN_PASSWORD", ADMIN_PW), ("XASO_LOG", &log)],
        &["--config", cfg.to_str().unwrap()],
    );
    let c = client();
    assert_eq!(login(&c, &s.url, "admin", ADMIN_PW).await, 200);
    (dir, s, c)
}

/// A meeting from now for an hour; returns its JSON.
async fn schedule(c: &reqwest::Client, url: &str, title: &str, invitees: &[&str]) -> Value {
    let now = chrono::Utc::now();
    let r = c
        .post(format!("{url}/api/meetings"))
        .json(&json!({
            "title": title,
            "start": now.to_rfc3339(),
            "end": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "invitees": invitees,
            "guests": ["Ông Trưởng Công an huyện"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

fn ws_url(url: &str, path: &str) -> String {
    format!("{}{path}", url.replacen("http", "ws", 1))
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(Message::Close(f)))) => {
                return Some(json!({"closed": f.map(|f| u16::from(f.code))}));
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// Messages until one of type `want` (or the socket closes).
async fn until(ws: &mut Ws, want: &str) -> Value {
    loop {
        let v = next_json(ws).await.expect("a message");
        if v["type"] == want || v.get("closed").is_some() {
            return v;
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn meetings_are_scheduled_and_seen_by_whom_they_concern() {
    let (_dir, s, c) = serve().await;
    let url = &s.url;
    for (name, role) in [("canbo", "member"), ("khac", "member")] {
        let r = c
            .post(format!("{url}/api/users"))
            .json(&json!({"username": name, "password": "member-password-1", "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let m = schedule(&c, url, "Họp giao ban tháng 11", &["canbo"]).await;
    assert_eq!(m["phase"], "now");
    assert_eq!(m["chair"]["username"], "admin");
    assert_eq!(m["invitees"], json!(["canbo"]));
    let join = m["join_url"].as_str().unwrap();
    assert!(
        join.starts_with(&format!("/#/meet/{}?t=", m["id"])),
        "{join}"
    );
    // Bad requests.
    for (body, why) in [
        (
            json!({"title": "", "start": "2026-11-27T08:00:00Z", "end": "2026-11-27T09:00:00Z"}),
            "title",
        ),
        (
            json!({"title": "x", "start": "2026-11-27T09:00:00Z", "end": "2026-11-27T08:00:00Z"}),
            "end must be after",
        ),
        (
            json!({"title": "x", "start": "hôm nay", "end": "2026-11-27T08:00:00Z"}),
            "RFC 3339",
        ),
        (
            json!({"title": "x", "start": "2026-11-27T08:00:00Z", "end": "2026-11-29T08:00:00Z"}),
            "24 hours",
        ),
        (
            json!({"title": "x", "start": "2026-11-27T08:00:00Z", "end": "2026-11-27T09:00:00Z", "invitees": ["nobody"]}),
            "no user",
        ),
    ] {
        let r = c
            .post(format!("{url}/api/meetings"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let t = r.text().await.unwrap();
        assert!(t.contains(why), "{t}");
    }
    // The invitee sees it (without the link); someone else does not (404, not 403).
    let member = client();
    assert_eq!(login(&member, url, "canbo", "member-password-1").await, 200);
    let list: Value = get_json(&member, &format!("{url}/api/meetings")).await;
    assert_eq!(list["meetings"].as_array().unwrap().len(), 1);
    assert!(list["meetings"][0].get("join_url").is_none());
    let other = client();
    assert_eq!(login(&other, url, "khac", "member-password-1").await, 200);
    let list: Value = get_json(&other, &format!("{url}/api/meetings")).await;
    assert_eq!(list["meetings"], json!([]));
    let r = other
        .get(format!("{url}/api/meetings/{}", m["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Nor may they open its socket without the link.
    let (mut ws, _) = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = ws_url(url, &format!("/api/meetings/{}/ws", m["id"]))
            .into_client_request()
            .unwrap();
        let token = {
            let t: Value = post_json(
                &c,
                &format!("{url}/api/tokens"),
                &json!({"user_id": 3, "name": "khac"}),
            )
            .await;
            t["token"].as_str().unwrap().to_string()
        };
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        tokio_tungstenite::connect_async(req).await.unwrap()
    };
    let e = next_json(&mut ws).await.unwrap();
    assert_eq!(e["status"], 403, "{e}");
    assert_eq!(next_json(&mut ws).await.unwrap()["closed"], 4403);
    // The audit log has the creation.
    let a: Value = get_json(&c, &format!("{url}/api/audit?action=meeting.create")).await;
    assert_eq!(a["entries"].as_array().unwrap().len(), 1);
    assert!(stop(s).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_links_and_bad_messages_are_handled_cleanly() {
    let (_dir, s, c) = serve().await;
    let m = schedule(&c, &s.url, "Họp", &[]).await;
    let join = m["join_url"].as_str().unwrap();
    let token = join.split("?t=").nth(1).unwrap();
    let path = |t: &str| format!("/api/meetings/{}/ws?t={t}", m["id"]);
    // A tampered signature, a longer expiry under the old signature, garbage: refused in
    // the socket with 4403, saying why.
    let (exp, sig) = token.split_once('.').unwrap();
    // The last of 43 base64 characters carries 4 bits and 2 zero bits: 'A' and 'E' are
    // both valid there ('B' would be malformed, not a wrong signature).
    let flipped = format!(
        "{exp}.{}{}",
        &sig[..sig.len() - 1],
        if sig.ends_with('A') { "E" } else { "A" }
    );
    for (bad, why) in [
        (flipped, "signature"),
        (
            format!("{}.{sig}", exp.parse::<i64>().unwrap() + 1000),
            "signature",
        ),
        ("garbage".to_string(), "malformed"),
        (format!("1000.{sig}"), "signature"),
    ] {
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&s.url, &path(&bad)))
            .await
            .unwrap();
        let e = next_json(&mut ws).await.unwrap();
        assert_eq!(e["status"], 403, "{e}");
        assert!(e["message"].as_str().unwrap().contains(why), "{e}");
        assert_eq!(next_json(&mut ws).await.unwrap()["closed"], 4403);
    }
    // The good link: bad messages get an error and the socket stays open.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&s.url, &path(token)))
        .await
        .unwrap();
    for bad in [
        "not json".to_string(),
        json!({"type": "teleport"}).to_string(),
        json!({"type": "offer", "sdp": "v=0", "tracks": {}}).to_string(),
        json!({"type": "join"}).to_string(),
        json!({"type": "join", "name": "x".repeat(61)}).to_string(),
    ] {
        ws.send(Message::Text(bad.clone().into())).await.unwrap();
        let e = next_json(&mut ws).await.unwrap();
        assert_eq!(e["type"], "error", "{bad}: {e}");
        assert!(e["status"] == 400 || e["status"] == 409, "{bad}: {e}");
    }
    send(&mut ws, json!({"type": "join", "name": "Chị Lan"})).await;
    let w = until(&mut ws, "welcome").await;
    assert_eq!(w["role"], "participant");
    assert_eq!(w["participants"][0]["name"], "Chị Lan");
    assert_eq!(w["participants"][0]["guest"], true);
    // A broken offer, a chair action from a participant, an empty chat: errors, still in.
    for (bad, status) in [
        (
            json!({"type": "offer", "sdp": "v=0\r\nm=video 9 X 96\r\n", "tracks": {}}),
            400,
        ),
        (
            json!({"type": "offer", "sdp": "v=0", "tracks": {"0": "loudspeaker"}}),
            400,
        ),
        (json!({"type": "chair", "action": "end"}), 403),
        (json!({"type": "chat", "text": "   "}), 400),
    ] {
        send(&mut ws, bad.clone()).await;
        let e = until(&mut ws, "error").await;
        assert_eq!(e["status"], status, "{bad}: {e}");
    }
    send(&mut ws, json!({"type": "chat", "text": "Xin chào"})).await;
    let chat = until(&mut ws, "chat").await;
    assert_eq!(
        (chat["text"].as_str(), chat["from"]["name"].as_str()),
        (Some("Xin chào"), Some("Chị Lan"))
    );
    // An oversized message closes the socket (256 kB limit) without harming the server.
    let _ = ws.send(Message::Text("x".repeat(300 * 1024).into())).await;
    let r = c
        .get(format!("{}/api/meetings", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(stop(s).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invited_guests_own_link_is_one_ballot_under_any_name() {
    let (_dir, s, c) = serve().await;
    let now = chrono::Utc::now();
    let m: Value = post_json(
        &c,
        &format!("{}/api/meetings", s.url),
        &json!({
            "title": "Họp với khách mời",
            "start": now.to_rfc3339(),
            "end": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "guests": ["Ông Ba", "ba@xa.test"],
        }),
    )
    .await;
    let id = m["id"].as_i64().unwrap();
    // The chair sees each guest's own link, in the order of the guests.
    let links = m["guest_links"].as_array().unwrap();
    let token = |i: usize| {
        assert_eq!(links[i]["guest"], m["guests"][i]);
        let url = links[i]["join_url"].as_str().unwrap();
        url.split("?t=").nth(1).unwrap().to_string()
    };
    let (t0, t1) = (token(0), token(1));
    assert!(t0.contains(".g0.") && t1.contains(".g1."), "{t0} {t1}");
    let base = ws_url(&s.url, &format!("/api/meetings/{id}/ws"));
    // Guest 1's signature under guest 0's number, and a guest the meeting does not have:
    // refused with 4403.
    let sig1 = t1.rsplit('.').next().unwrap();
    let exp = t1.split('.').next().unwrap();
    for bad in [format!("{exp}.g0.{sig1}"), format!("{exp}.g7.{sig1}")] {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}?t={bad}"))
            .await
            .unwrap();
        let e = next_json(&mut ws).await.unwrap();
        assert_eq!(e["status"], 403, "{e}");
        assert_eq!(next_json(&mut ws).await.unwrap()["closed"], 4403);
    }
    let token_c: Value = post_json(
        &c,
        &format!("{}/api/tokens", s.url),
        &json!({"user_id": 1, "name": "chair"}),
    )
    .await;
    let mut chair = ws_bearer(&base, token_c["token"].as_str().unwrap()).await;
    send(&mut chair, json!({"type": "join"})).await;
    until(&mut chair, "welcome").await;
    send(
        &mut chair,
        json!({"type": "vote_open", "question": "Thông qua?", "options": ["Có", "Không"]}),
    )
    .await;
    let vid = until(&mut chair, "vote").await["vote"]["id"].clone();
    // Guest 0, invited by name, joins as that name without giving one, and votes.
    let (mut g0, _) = tokio_tungstenite::connect_async(format!("{base}?t={t0}"))
        .await
        .unwrap();
    send(&mut g0, json!({"type": "join"})).await;
    let w = until(&mut g0, "welcome").await;
    let me = w["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == w["you"])
        .cloned()
        .unwrap();
    assert_eq!(me["name"], "Ông Ba", "{w}");
    send(
        &mut g0,
        json!({"type": "vote_cast", "vote": vid, "option": 0}),
    )
    .await;
    vote_until(&mut g0, |v| v["cast"] == 1).await;
    // Back under another name with the same link: the same invitation, no second ballot.
    g0.close(None).await.unwrap();
    let (mut g0, _) = join_guest(&base, &t0, "Người khác").await;
    send(
        &mut g0,
        json!({"type": "vote_cast", "vote": vid, "option": 1}),
    )
    .await;
    let e = until(&mut g0, "error").await;
    assert_eq!(e["status"], 409, "{e}");
    // Guest 1, invited by address, gives a name, and has a ballot of its own.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}?t={t1}"))
        .await
        .unwrap();
    send(&mut ws, json!({"type": "join"})).await;
    assert_eq!(until(&mut ws, "error").await["status"], 400);
    send(&mut ws, json!({"type": "join", "name": "Anh Ba"})).await;
    until(&mut ws, "welcome").await;
    send(
        &mut ws,
        json!({"type": "vote_cast", "vote": vid, "option": 1}),
    )
    .await;
    vote_until(&mut ws, |v| v["cast"] == 2).await;
    send(&mut chair, json!({"type": "vote_close", "vote": vid})).await;
    let done = vote_until(&mut chair, |v| v["open"] == false).await;
    assert_eq!(done["tally"], json!([1, 1]), "{done}");
    assert!(stop(s).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_participant_who_vanishes_is_seen_leaving() {
    let (_dir, s, c) = serve().await;
    let m = schedule(&c, &s.url, "Họp", &[]).await;
    let token = join_token(&m);
    let url = ws_url(&s.url, &format!("/api/meetings/{}/ws?t={token}", m["id"]));
    let (mut a, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    send(&mut a, json!({"type": "join", "name": "A"})).await;
    until(&mut a, "welcome").await;
    // B joins over a raw TCP connection it then stops answering (no close, no FIN): as a
    // laptop whose network went away. The server's pings go unanswered.
    let (mut b, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    send(&mut b, json!({"type": "join", "name": "B"})).await;
    until(&mut b, "welcome").await;
    loop {
        let p = until(&mut a, "participants").await;
        if p["list"].as_array().unwrap().len() == 2 {
            break;
        }
    }
    let t0 = std::time::Instant::now();
    std::mem::forget(b); // keeps the socket open, reads nothing, answers no ping
    let gone = loop {
        let p = until(&mut a, "participants").await;
        if p["list"].as_array().unwrap().len() == 1 {
            break t0.elapsed();
        }
    };
    println!("measure: vanished participant seen leaving after {gone:?}");
    assert!(gone < Duration::from_secs(10), "{gone:?}");
    // Its attendance row is closed.
    assert!(stop(s).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn four_participants_see_and_hear_each_other() {
    xaso_sfu::init_crypto();
    let (_dir, s, c) = serve().await;
    let m = schedule(&c, &s.url, "Họp bốn người", &[]).await;
    let token = join_token(&m);
    let url = ws_url(&s.url, &format!("/api/meetings/{}/ws?t={token}", m["id"]));
    let reports = meeting_load::run(&url, 4, 10, 400).await;
    let summary = meeting_load::summarize(&reports);
    println!("measure: {summary}");
    for r in &reports {
        let r = r.as_ref().expect("participant ran");
        assert!(r.connected && !r.disconnected, "{r:?}");
        // Three others, each on its own video and audio slot, most of 10 s of 25 fps.
        let mut from: Vec<u8> = r.video.iter().flat_map(|v| v.0.clone()).collect();
        from.sort();
        from.dedup();
        assert_eq!(from.len(), 3, "{r:?}");
        for (tags, frames, holes) in r.video.iter().filter(|v| !v.0.is_empty()) {
            assert!(*frames >= 200, "{} from {tags:?}: {frames} frames", r.name);
            assert_eq!(*holes, 0, "{r:?}");
        }
        let heard: Vec<u64> = r
            .audio
            .iter()
            .filter(|a| !a.0.is_empty())
            .map(|a| a.1)
            .collect();
        assert_eq!(heard.len(), 3, "{r:?}");
        assert!(heard.iter().all(|n| *n >= 400), "{heard:?}");
        // The page was told whose media each slot carries: three others, by name, also
        // those who joined after it (the core placed them before the hub knew their ids).
        for kind in ["video", "audio"] {
            let named: Vec<&Value> = r.slots[kind]
                .as_object()
                .unwrap()
                .values()
                .filter_map(|f| f.get("participant"))
                .collect();
            assert_eq!(named.len(), 3, "{kind} slots of {}: {}", r.name, r.slots);
        }
        assert!(
            r.first_frame.is_some_and(|t| t < Duration::from_secs(3)),
            "{r:?}"
        );
    }
    // Everyone has left: the meeting is empty again, and the audit log has the joins.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let one: Value = get_json(&c, &format!("{}/api/meetings/{}", s.url, m["id"])).await;
    assert_eq!(one["participants"], 0, "{one}");
    let a: Value = get_json(&c, &format!("{}/api/audit?action=meeting.join", s.url)).await;
    assert_eq!(a["entries"].as_array().unwrap().len(), 4);
    assert!(stop(s).success());
}

/// A guest in the meeting whose socket is `base`, through its link token `link`: the
/// socket and the participant's key.
async fn join_guest(base: &str, link: &str, name: &str) -> (Ws, String) {
    let (mut g, _) = tokio_tungstenite::connect_async(format!("{base}?t={link}"))
        .await
        .unwrap();
    send(&mut g, json!({"type": "join", "name": name})).await;
    let key = until(&mut g, "welcome").await["key"]
        .as_str()
        .unwrap()
        .to_string();
    (g, key)
}

/// A WebSocket with a Bearer token.
async fn ws_bearer(url: &str, token: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The next `vote` message about vote `id` that satisfies `pred`.
async fn vote_until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = until(ws, "vote").await;
        if pred(&v["vote"]) {
            return v["vote"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn votes_documents_and_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xaso.toml");
    std::fs::write(
        &cfg,
        "[recording]\nsimulated_camera = false\n\n[meetings]\nmax_document_mb = 1\n",
    )
    .unwrap();
    let s = start(
        dir.path(),
        &[("XASO_ADMIN_PASSWORD", ADMIN_PW)],
        &["--config", cfg.to_str().unwrap()],
    );
    let c = client();
    assert_eq!(login(&c, &s.url, "admin", ADMIN_PW).await, 200);
    let m = schedule(&c, &s.url, "Họp biểu quyết", &[]).await;
    let id = m["id"].as_i64().unwrap();
    let token: Value = post_json(
        &c,
        &format!("{}/api/tokens", s.url),
        &json!({"user_id": 1, "name": "chair"}),
    )
    .await;
    let link = join_token(&m);
    let base = ws_url(&s.url, &format!("/api/meetings/{id}/ws"));
    // The chair (the admin, who scheduled it) and two guests.
    let mut chair = ws_bearer(&base, token["token"].as_str().unwrap()).await;
    send(&mut chair, json!({"type": "join"})).await;
    let w = until(&mut chair, "welcome").await;
    assert_eq!(w["role"], "chair");
    let mut guests = Vec::new();
    let mut keys = Vec::new();
    for name in ["Anh Minh", "Chị Hoa"] {
        let (g, key) = join_guest(&base, &link, name).await;
        keys.push(key);
        guests.push(g);
    }
    // A guest may not open a vote.
    send(
        &mut guests[0],
        json!({"type": "vote_open", "question": "?", "options": ["a", "b"]}),
    )
    .await;
    assert_eq!(until(&mut guests[0], "error").await["status"], 403);
    // A public vote with three options, cast by all three.
    send(
        &mut chair,
        json!({"type": "vote_open", "question": "Thông qua kế hoạch?", "options": ["Đồng ý", "Không đồng ý", "Ý kiến khác"]}),
    )
    .await;
    let v = vote_until(&mut guests[1], |v| v["open"] == true).await;
    let vid = v["id"].as_i64().unwrap();
    assert_eq!(v["tally"], Value::Null, "no tally while open");
    send(
        &mut chair,
        json!({"type": "vote_cast", "vote": vid, "option": 0}),
    )
    .await;
    send(
        &mut guests[0],
        json!({"type": "vote_cast", "vote": vid, "option": 0}),
    )
    .await;
    send(
        &mut guests[1],
        json!({"type": "vote_cast", "vote": vid, "option": 2}),
    )
    .await;
    vote_until(&mut chair, |v| v["cast"] == 3).await;
    // Twice, or a missing option, or closing as a guest: refused.
    send(
        &mut guests[1],
        json!({"type": "vote_cast", "vote": vid, "option": 1}),
    )
    .await;
    let e = until(&mut guests[1], "error").await;
    assert_eq!(e["status"], 409, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("already voted"),
        "{e}"
    );
    // Nor by leaving and joining again under the same name (its case and spacing aside).
    guests[1].close(None).await.unwrap();
    (guests[1], keys[1]) = join_guest(&base, &link, " chị  HOA").await;
    send(
        &mut guests[1],
        json!({"type": "vote_cast", "vote": vid, "option": 1}),
    )
    .await;
    let e = until(&mut guests[1], "error").await;
    assert_eq!(e["status"], 409, "a guest who came back votes once: {e}");
    send(
        &mut guests[0],
        json!({"type": "vote_cast", "vote": vid, "option": 7}),
    )
    .await;
    assert_eq!(until(&mut guests[0], "error").await["status"], 400);
    send(&mut guests[0], json!({"type": "vote_close", "vote": vid})).await;
    assert_eq!(until(&mut guests[0], "error").await["status"], 403);
    send(&mut chair, json!({"type": "vote_close", "vote": vid})).await;
    let done = vote_until(&mut guests[0], |v| v["open"] == false).await;
    assert_eq!(done["tally"], json!([2, 0, 1]));
    let ballots = done["ballots"].as_array().unwrap();
    assert_eq!(ballots.len(), 3);
    assert!(
        ballots.contains(&json!({"name": "Chị Hoa", "option": 2})),
        "{done}"
    );
    send(
        &mut guests[0],
        json!({"type": "vote_cast", "vote": vid, "option": 1}),
    )
    .await;
    assert_eq!(until(&mut guests[0], "error").await["status"], 409);
    // A secret ballot: the tally, never who chose what.
    send(
        &mut chair,
        json!({"type": "vote_open", "question": "Bầu tổ trưởng", "options": ["Ông A", "Bà B"], "secret": true}),
    )
    .await;
    let sv = vote_until(&mut guests[0], |v| v["open"] == true && v["secret"] == true).await;
    let sid = sv["id"].as_i64().unwrap();
    for g in guests.iter_mut() {
        send(g, json!({"type": "vote_cast", "vote": sid, "option": 1})).await;
    }
    vote_until(&mut chair, |v| v["id"] == sid && v["cast"] == 2).await;
    send(&mut chair, json!({"type": "vote_close", "vote": sid})).await;
    let sdone = vote_until(&mut chair, |v| v["id"] == sid && v["open"] == false).await;
    assert_eq!(sdone["tally"], json!([0, 2]));
    assert_eq!(sdone["ballots"], Value::Null);

    // Documents: a guest shares a PDF with its key; everyone is told; it downloads whole.
    let pdf = [b"%PDF-1.4\n".as_slice(), &[b'x'; 4000]].concat();
    let up = |name: &str, body: Vec<u8>, key: Option<&str>| {
        let mut r = c
            .post(format!("{}/api/meetings/{id}/documents?name={name}", s.url))
            .body(body);
        if let Some(k) = key {
            r = r.header("x-meeting-key", k);
        }
        r.send()
    };
    let guest = client(); // no session: the key alone
    let r = guest
        .post(format!(
            "{}/api/meetings/{id}/documents?name=Kế hoạch.pdf",
            s.url
        ))
        .header("x-meeting-key", &keys[0])
        .body(pdf.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["from"], "Anh Minh");
    assert_eq!(doc["mime"], "application/pdf");
    let told = until(&mut guests[1], "document").await;
    assert_eq!(told["name"], "Kế hoạch.pdf");
    let got = guest
        .get(format!(
            "{}{}?k={}",
            s.url,
            doc["url"].as_str().unwrap(),
            keys[1]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let cd = got.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cd.contains("filename*=UTF-8''K%E1%BA%BF%20ho%E1%BA%A1ch.pdf"),
        "{cd}"
    );
    assert_eq!(got.bytes().await.unwrap().as_ref(), pdf.as_slice());
    // Refused: a program named .pdf, a type not allowed, over the limit, a bad key.
    let r = up(
        "bienban.pdf",
        [b"MZ\x90\x00".as_slice(), &[0; 600]].concat(),
        Some(&keys[0]),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("a program"));
    let r = up("x.exe", b"MZ".to_vec(), Some(&keys[0])).await.unwrap();
    assert_eq!(r.status(), 415);
    // Over the limit, by its length (refused at once) and sent without one (refused once 1
    // MB has come): the client, still sending, reads the refusal and its words, not a
    // reset connection (the server reads and drops the rest).
    let big = [b"%PDF-".as_slice(), &vec![0; 48 << 20]].concat();
    let r = up("big.pdf", big.clone(), Some(&keys[0])).await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("at most 1 MB"));
    let chunks: Vec<std::io::Result<Vec<u8>>> =
        big.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
    let r = c
        .post(format!(
            "{}/api/meetings/{id}/documents?name=big.pdf",
            s.url
        ))
        .header("x-meeting-key", &keys[0])
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = guest
        .post(format!("{}/api/meetings/{id}/documents?name=a.pdf", s.url))
        .header("x-meeting-key", "mk_wrong")
        .body(pdf.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = guest
        .get(format!("{}{}", s.url, doc["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no key, no session");
    // No partial files are left behind.
    let files: Vec<_> = std::fs::read_dir(dir.path().join("meetings").join(id.to_string()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");

    // Chat, then the record.
    send(
        &mut guests[1],
        json!({"type": "chat", "text": "Tôi đồng ý"}),
    )
    .await;
    until(&mut chair, "chat").await;
    drop(guests.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rec: Value = get_json(&c, &format!("{}/api/meetings/{id}/record", s.url)).await;
    let att = rec["attendance"].as_array().unwrap();
    // Chị Hoa's two attendances (she left and came back), each with its leaving time.
    assert_eq!(att.len(), 4, "{rec}");
    assert!(
        att.iter()
            .any(|a| a["name"] == "Chị Hoa" && a["left"].is_string()),
        "{rec}"
    );
    assert!(
        att.iter()
            .any(|a| a["name"] == "chị  HOA" && a["left"].is_string()),
        "{rec}"
    );
    assert!(
        att.iter()
            .any(|a| a["name"] == "Anh Minh" && a["left"].is_null()),
        "{rec}"
    );
    assert_eq!(rec["chat"][0]["text"], "Tôi đồng ý");
    assert_eq!(rec["documents"].as_array().unwrap().len(), 1);
    assert_eq!(rec["votes"][0]["tally"], json!([2, 0, 1]));
    assert_eq!(rec["votes"][1]["ballots"], Value::Null);
    assert_eq!(rec["votes"][1]["voters"].as_array().unwrap().len(), 2);
    assert!(stop(s).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chair_adds_a_camera_and_everyone_sees_it() {
    use common::camera::TestCamera;
    xaso_sfu::init_crypto();
    let cam = TestCamera::start(&["--video", "h264", "--audio", "pcmu", "--gop", "25"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xaso.toml");
    std::fs::write(
        &cfg,
        format!(
            "[recording]\nsimulated_camera = false\n\n[[camera]]\nname = \"Cổng UBND\"\nurl = \"{}\"\n",
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
    while get_json(&c, &format!("{}/api/cameras/1/status", s.url)).await["state"] != "streaming" {
        assert!(
            std::time::Instant::now() < deadline,
            "the camera does not stream"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A member may chair a meeting but has no live view of cameras: refused.
    let r = c
        .post(format!("{}/api/users", s.url))
        .json(&json!({"username": "thuky", "password": "member-password-1", "role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let member = client();
    assert_eq!(
        login(&member, &s.url, "thuky", "member-password-1").await,
        200
    );
    let mm = schedule(&member, &s.url, "Họp của thư ký", &[]).await;
    let t: Value = post_json(
        &c,
        &format!("{}/api/tokens", s.url),
        &json!({"user_id": 2, "name": "thuky"}),
    )
    .await;
    let mut ws = ws_bearer(
        &ws_url(&s.url, &format!("/api/meetings/{}/ws", mm["id"])),
        t["token"].as_str().unwrap(),
    )
    .await;
    send(&mut ws, json!({"type": "join"})).await;
    assert_eq!(until(&mut ws, "welcome").await["role"], "chair");
    send(
        &mut ws,
        json!({"type": "chair", "action": "add_camera", "camera": 1}),
    )
    .await;
    let e = until(&mut ws, "error").await;
    assert_eq!(e["status"], 403, "{e}");

    // The admin chairs a meeting and adds the camera; two participants see its video.
    let m = schedule(&c, &s.url, "Họp có camera", &[]).await;
    let t: Value = post_json(
        &c,
        &format!("{}/api/tokens", s.url),
        &json!({"user_id": 1, "name": "chair"}),
    )
    .await;
    let mut chair = ws_bearer(
        &ws_url(&s.url, &format!("/api/meetings/{}/ws", m["id"])),
        t["token"].as_str().unwrap(),
    )
    .await;
    send(&mut chair, json!({"type": "join"})).await;
    until(&mut chair, "welcome").await;
    send(
        &mut chair,
        json!({"type": "chair", "action": "add_camera", "camera": 1}),
    )
    .await;
    let cam_pid = loop {
        let p = until(&mut chair, "participants").await;
        if let Some(c) = p["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["role"] == "camera")
        {
            assert_eq!(c["name"], "Cổng UBND");
            break c["id"].as_u64().unwrap();
        }
    };
    let token = join_token(&m);
    let url = ws_url(&s.url, &format!("/api/meetings/{}/ws?t={token}", m["id"]));
    // The chair's socket is read meanwhile (its pings answered: a socket that answers
    // none for 6 s is taken for gone).
    let mut load = tokio::spawn(async move { meeting_load::run(&url, 2, 8, 300).await });
    let reports = loop {
        tokio::select! {
            r = &mut load => break r.unwrap(),
            _ = next_json(&mut chair) => {}
        }
    };
    for r in &reports {
        let r = r.as_ref().expect("participant ran");
        let mid = r.slots["video"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, f)| f["participant"] == cam_pid)
            .map(|(m, _)| m.clone())
            .unwrap_or_else(|| panic!("no slot carries the camera: {}", r.slots));
        let k = r.video_mids.iter().position(|m| *m == mid).unwrap();
        let frames = r.video[k].1;
        // 25 fps for about 8 s, from the first keyframe (GOP 1 s).
        assert!(frames >= 150, "{}: {frames} camera frames", r.name);
        assert_eq!(r.video[k].2, 0, "no packet lost");
        // Its G.711 audio on an audio slot.
        let amid = r.slots["audio"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, f)| f["participant"] == cam_pid)
            .map(|(m, _)| m.clone());
        assert!(amid.is_some(), "the camera's audio has a slot: {}", r.slots);
    }
    // Removing it: gone from the list; the audit log has both.
    send(
        &mut chair,
        json!({"type": "chair", "action": "remove_camera", "camera": 1}),
    )
    .await;
    loop {
        let p = until(&mut chair, "participants").await;
        if !p["list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["role"] == "camera")
        {
            break;
        }
    }
    // (The audit row is written just after the room is told.)
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let a: Value = get_json(&c, &format!("{}/api/audit?action=meeting.camera", s.url)).await;
        if a["entries"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stop(s).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn whip_publishes_into_a_meeting_and_whep_receives_it() {
    use xaso_sfu::participant::{Offer, Participant};
    xaso_sfu::init_crypto();
    let (_dir, s, c) = serve().await;
    let m = schedule(&c, &s.url, "Họp có cửa WHIP", &[]).await;
    let id = m["id"].as_i64().unwrap();
    let token = join_token(&m);
    let anon = client();
    let post = |door: &str, sdp: String, t: Option<&str>| {
        let mut url = format!("{}/api/meetings/{id}/{door}?name=Hội trường", s.url);
        if let Some(t) = t {
            url += &format!("&t={t}");
        }
        anon.post(url)
            .header("content-type", "application/sdp")
            .body(sdp)
            .send()
    };
    // Refusals: no credentials, a bad token, the wrong direction, not SDP.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let now = std::time::Instant::now();
    let (pubr, pub_offer, _) = Participant::offer_as(now, local, 9, Offer::slots(0, 0));
    assert_eq!(
        post("whip", pub_offer.clone(), None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        post("whip", pub_offer.clone(), Some("1.x"))
            .await
            .unwrap()
            .status(),
        403
    );
    let r = post("whep", pub_offer.clone(), Some(&token)).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("WHEP offer only receives"));
    let r = anon
        .post(format!("{}/api/meetings/{id}/whip?t={token}", s.url))
        .body(pub_offer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // A WHIP publisher (a hall encoder), a WHEP receiver (a recorder: one video, one audio)
    // and a participant on the page's protocol.
    let r = post("whip", pub_offer, Some(&token)).await.unwrap();
    assert_eq!(r.status(), 201);
    let whip_at = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        whip_at.starts_with(&format!("/api/meetings/{id}/whip/")),
        "{whip_at}"
    );
    let mut pubr = pubr;
    pubr.answer(&r.text().await.unwrap()).unwrap();
    let publisher = tokio::spawn(meeting_load::drive(pubr, sock, 8, 400));

    let rsock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rlocal = rsock.local_addr().unwrap();
    let (mut recv, recv_offer, _) = Participant::offer_as(
        now,
        rlocal,
        10,
        Offer {
            publish: false,
            ..Offer::slots(1, 1)
        },
    );
    let r = post("whep", recv_offer, Some(&token)).await.unwrap();
    assert_eq!(r.status(), 201);
    let whep_at = r.headers()["location"].to_str().unwrap().to_string();
    recv.answer(&r.text().await.unwrap()).unwrap();
    let receiver = tokio::spawn(meeting_load::drive(recv, rsock, 8, 0));

    let url = ws_url(&s.url, &format!("/api/meetings/{id}/ws?t={token}"));
    let reports = meeting_load::run(&url, 1, 8, 300).await;
    let page = reports[0].as_ref().expect("participant ran");
    // The page participant sees the WHIP publisher's video (tag 9) and hears it.
    let got: Vec<u8> = page.video.iter().flat_map(|v| v.0.clone()).collect();
    assert!(got.contains(&9), "{page:?}");
    let k = page.video.iter().position(|v| v.0.contains(&9)).unwrap();
    assert!(page.video[k].1 >= 120, "{page:?}");
    assert!(
        page.audio.iter().any(|a| a.0.contains(&9) && a.1 > 200),
        "{page:?}"
    );
    let publisher = publisher.await.unwrap();
    let receiver = receiver.await.unwrap();
    assert!(publisher.connected);
    // The WHEP receiver's one video transceiver carries the most recent speaker (here the
    // only ones: the WHIP publisher or the page participant), its audio one a microphone.
    let v = &receiver.slots[&receiver.video_slots[0]];
    assert!(v.frames >= 100, "WHEP video: {v:?}");
    let a = &receiver.slots[&receiver.audio_slots[0]];
    assert!(a.packets >= 200, "WHEP audio: {a:?}");
    // DELETE ends them; a second DELETE is 404.
    for at in [&whip_at, &whep_at] {
        let r = anon.delete(format!("{}{at}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{at}");
        let r = anon.delete(format!("{}{at}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{at}");
    }
    let one: Value = get_json(&c, &format!("{}/api/meetings/{id}", s.url)).await;
    assert_eq!(one["participants"], 0, "{one}");
    assert!(stop(s).success());
}

#[test]
fn a_throttled_participant_steps_down_to_the_low_layer() {
    let Some(rt) = runtime_in_netns("a_throttled_participant_steps_down_to_the_low_layer") else {
        return;
    };
    // Inside the namespace: its loopback, shaped with an HTB class of 450 kbit/s for
    // whatever goes to the throttled participant's UDP port.
    rt.block_on(async {
        xaso_sfu::init_crypto();
        let (_dir, s, c) = serve().await;
        let m = schedule(&c, &s.url, "Họp mạng yếu", &[]).await;
        let token = join_token(&m);
        let url = ws_url(&s.url, &format!("/api/meetings/{}/ws?t={token}", m["id"]));
        let slow = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = slow.local_addr().unwrap().port();
        sh("tc qdisc add dev lo root handle 1: htb default 10");
        sh("tc class add dev lo parent 1: classid 1:10 htb rate 10gbit quantum 60000");
        sh("tc class add dev lo parent 1: classid 1:20 htb rate 450kbit ceil 450kbit burst 15k");
        sh(&format!(
            "tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip protocol 17 0xff \
             match ip dport {port} 0xffff flowid 1:20"
        ));
        // Three participants publishing 150/300/600 kbit/s layers, all showing the others
        // in large tiles (each wants the high layer).
        let o = meeting_load::Options {
            secs: 25,
            kbps: 600,
            simulcast: true,
            tile_height: 720,
            end: None,
        };
        let epoch = std::time::Instant::now();
        let mut tasks = Vec::new();
        for i in 0..2u8 {
            let (url, o) = (url.clone(), o.clone());
            tasks.push(tokio::spawn(meeting_load::participant(
                url,
                format!("Đủ băng thông {i}"),
                i + 1,
                2,
                o,
                epoch,
            )));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let throttled = tokio::spawn(meeting_load::participant_on(
            slow,
            url.clone(),
            "Mạng yếu".into(),
            3,
            2,
            o.clone(),
            epoch,
        ));
        let throttled = throttled.await.unwrap().expect("throttled participant ran");
        let free: Vec<_> = futures::future::join_all(tasks).await;
        println!(
            "measure: layers received, throttled {:?} (fps {:?}), unthrottled {:?}",
            throttled.layers,
            throttled.fps,
            free.iter()
                .map(|r| r.as_ref().unwrap().as_ref().unwrap().layers.clone())
                .collect::<Vec<_>>()
        );
        // The throttled participant never gets a high layer though its tiles ask for it,
        // and steps down to the low one (for both publishers in most runs: the estimate
        // over this shaped loopback hovers around the link's rate, and one middle layer
        // sometimes fits it). Still moving.
        assert!(
            !throttled.layers.contains(&Some(3)) && throttled.layers.contains(&Some(1)),
            "{:?}",
            throttled.layers
        );
        assert!(throttled.fps.iter().all(|f| *f > 15.0), "{throttled:?}");
        // The others are not held back by the throttled one: what they get follows the
        // estimate toward them, which in this debug build with every participant in one
        // process on 2 cores settles between 0.6 and 1.6 Mbit/s (so `l`, `m` or `h`): printed
        // above, not asserted. That a free subscriber gets the high layer while a
        // throttled one gets the low one is asserted sans-IO (media-pipelines/sfu/tests/
        // meeting.rs) and in Chromium (tests/browser/meetings.test.mjs: the throttled page
        // steps down, and back up when the limit goes).
        assert!(stop(s).success());
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn reminders_go_out_by_email_fifteen_minutes_before() {
    use base64::Engine;
    // A real SMTP server (aiosmtpd, Debian's python3-aiosmtpd) printing what it receives.
    let (_smtp, port, rx) = smtp_relay(&[
        "-u",
        "-m",
        "aiosmtpd",
        "-n",
        "-c",
        "aiosmtpd.handlers.Debugging",
        "-l",
        "127.0.0.1:{port}",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let s = schedule_reminders(
        dir.path(),
        &format!("host = \"127.0.0.1\"\nport = {port}\nfrom = \"xaso@xa.test\"\n"),
    )
    .await;
    // Within two checks (every 10 s): one message to each guest listed by address, with
    // the guest's own link, and one to the invited user whose (enabled) account has an
    // address, with the shared link.
    let body = |lines: &[String]| {
        let b64: String = lines
            .iter()
            .skip_while(|l| !l.is_empty())
            .take_while(|l| !l.contains("END MESSAGE"))
            .map(|l| l.trim())
            .collect();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    let mut got = Vec::new();
    for _ in 0..3 {
        let lines = lines_until(&rx, "END MESSAGE", 25, Some(&s));
        let to = lines
            .iter()
            .find_map(|l| l.strip_prefix("To: "))
            .unwrap_or_else(|| panic!("no To: {lines:?}"))
            .to_string();
        let text = lines.join("\n");
        assert!(text.contains("Subject: =?UTF-8?B?"), "{text}");
        got.push((to, body(&lines)));
    }
    got.sort();
    let link = |b: &str| {
        // (Meeting ids are random: any id, then its token.)
        let at = b
            .find("https://xaso.xa.test:8443/#/meet/")
            .unwrap_or_else(|| panic!("{b}"));
        let link = b[at..].split_whitespace().next().unwrap().to_string();
        assert!(link.contains("?t="), "{link}");
        link
    };
    let tos: Vec<&str> = got.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(
        tos,
        ["canbo@huyen.test", "ong.a@xa.test", "to.truong@xa.test"]
    );
    for (_, b) in &got {
        assert!(b.contains("Cuộc họp \"Họp giao ban\" bắt đầu lúc"), "{b}");
        assert!(!b.contains("Họp chiều"));
    }
    // The guests' links are their own (ong.a is guest 0, canbo guest 2); the user's is the
    // shared one.
    let token = |b: &str| link(b).split("?t=").nth(1).unwrap().to_string();
    assert!(token(&got[0].1).contains(".g2."), "{}", got[0].1);
    assert!(token(&got[1].1).contains(".g0."), "{}", got[1].1);
    assert_eq!(token(&got[2].1).matches('.').count(), 1, "{}", got[2].1);
    assert!(!got.iter().any(|(to, _)| to.contains("nghi.huu")));
    // Once only: the next check sends nothing more.
    std::thread::sleep(Duration::from_secs(11));
    let more: Vec<String> = rx.try_iter().collect();
    assert!(
        !more.iter().any(|l| l.contains("MESSAGE FOLLOWS")),
        "{more:?}"
    );
    assert!(stop(s).success());
}

/// A relay process, stopped when dropped (also when a test fails).
struct Relay(std::process::Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real SMTP relay on a free port of 127.0.0.1, started by `args` (`{port}` replaced),
/// and the lines it prints.
fn smtp_relay(args: &[&str]) -> (Relay, u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(args.iter().map(|a| a.replace("{port}", &port.to_string())))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3-aiosmtpd (scripts/install-test-deps)");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Relay(child), port, rx)
}

/// The lines `rx` prints until one contains `until`, within `secs` seconds (else what it
/// printed, and what `server` logged).
fn lines_until(
    rx: &std::sync::mpsc::Receiver<String>,
    until: &str,
    secs: u64,
    server: Option<&Server>,
) -> Vec<String> {
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !lines.iter().any(|l: &String| l.contains(until)) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let log: Vec<String> = server
                    .map(|s| s.stderr.try_iter().collect())
                    .unwrap_or_default();
                panic!("no {until:?} within {secs} s: {lines:?}; the server logged {log:#?}")
            }
        }
    }
    lines
}

/// xaso with `[meetings.smtp]` set to `smtp` (TOML lines), and two meetings scheduled: one
/// in 10 minutes (its reminder is due at once), one in 2 hours; each for the guests
/// ong.a@xa.test, "Bà Trưởng thôn" and canbo@huyen.test, and the invited users `totruong`
/// (whose account has the address to.truong@xa.test), `phoban` (none) and `nghihuu`
/// (an address, but the account is disabled).
async fn schedule_reminders(dir: &std::path::Path, smtp: &str) -> Server {
    let cfg = dir.join("xaso.toml");
    std::fs::write(
        &cfg,
        format!(
            "[recording]\nsimulated_camera = false\n\n[meetings]\npublic_url = \"https://xaso.xa.test:8443\"\n\n\
             [meetings.smtp]\n{smtp}"
        ),
    )
    .unwrap();
    let s = start(
        dir,
        &[("XASO_ADMIN_PASSWORD", ADMIN_PW)],
        &["--config", cfg.to_str().unwrap()],
    );
    let c = client();
    assert_eq!(login(&c, &s.url, "admin", ADMIN_PW).await, 200);
    for (name, email) in [
        ("totruong", Some("to.truong@xa.test")),
        ("phoban", None),
        ("nghihuu", Some("nghi.huu@xa.test")),
    ] {
        let r = c
            .post(format!("{}/api/users", s.url))
            .json(&json!({"username": name, "password": "mat-khau-dai-1", "role": "member", "email": email}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        if name == "nghihuu" {
            let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
            let r = c
                .patch(format!("{}/api/users/{id}", s.url))
                .json(&json!({"disabled": true}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let now = chrono::Utc::now();
    for (title, mins) in [("Họp giao ban", 10), ("Họp chiều", 120)] {
        let r = c
            .post(format!("{}/api/meetings", s.url))
            .json(&json!({
                "title": title,
                "start": (now + chrono::Duration::minutes(mins)).to_rfc3339(),
                "end": (now + chrono::Duration::minutes(mins + 60)).to_rfc3339(),
                "guests": ["ong.a@xa.test", "Bà Trưởng thôn", "canbo@huyen.test"],
                "invitees": ["totruong", "phoban", "nghihuu"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    s
}

/// tests/support/smtp_relay.py (TLS as `mode` says, the login xaso / mật-khẩu-đúng, and
/// `refuse_once` refused once), its certificate written to `dir`; returns the relay, its
/// lines, and the `[meetings.smtp]` lines that reach it signing in with `password`.
fn tls_relay(
    dir: &std::path::Path,
    mode: &str,
    password: &str,
    refuse_once: Option<&str>,
) -> (Relay, std::sync::mpsc::Receiver<String>, String) {
    // The relay's certificate (for 127.0.0.1), trusted through ca_file.
    let (cert, key) = xaso::tls::self_signed(&xaso::config::Config::default()).unwrap();
    let (cert_file, key_file) = (dir.join("relay.pem"), dir.join("relay.key"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_relay.py");
    let (cert_s, key_s) = (cert_file.to_str().unwrap(), key_file.to_str().unwrap());
    let mut args = vec![
        "-u",
        script,
        "{port}",
        cert_s,
        key_s,
        "xaso",
        "mật-khẩu-đúng",
        mode,
    ];
    args.extend(refuse_once);
    let (relay, port, rx) = smtp_relay(&args);
    lines_until(&rx, "READY", 10, None);
    let smtp = format!(
        "host = \"127.0.0.1\"\nport = {port}\nfrom = \"xaso@xa.test\"\ntls = \"{mode}\"\n\
         username = \"xaso\"\npassword = \"{password}\"\nca_file = \"{cert_s}\"\n"
    );
    (relay, rx, smtp)
}

#[tokio::test(flavor = "multi_thread")]
async fn reminders_go_through_a_relay_that_wants_tls_and_a_login() {
    // STARTTLS and the right login: the message goes over TLS, signed in. TLS from the
    // first byte and a wrong password: refused, nothing sent, and the server goes on
    // serving (the reminder is tried again at the next check).
    for (mode, password, until) in [
        ("starttls", "mật-khẩu-đúng", "END MESSAGE"),
        ("tls", "mật-khẩu-sai", "AUTH REFUSED"),
    ] {
        let sub = tempfile::tempdir().unwrap();
        let (relay, rx, smtp) = tls_relay(sub.path(), mode, password, None);
        let s = schedule_reminders(sub.path(), &smtp).await;
        let text = lines_until(&rx, until, 25, Some(&s)).join("\n");
        if mode == "starttls" {
            // (The first of the meeting's messages: the first guest's.)
            assert!(text.contains("SESSION tls=True auth=xaso"), "{text}");
            assert!(
                text.contains("FROM xaso@xa.test TO ong.a@xa.test\n"),
                "{text}"
            );
            assert!(text.contains("To: ong.a@xa.test\n"), "{text}");
        } else {
            assert!(!text.contains("END MESSAGE"), "{text}");
            assert_eq!(login(&client(), &s.url, "admin", ADMIN_PW).await, 200);
            std::thread::sleep(Duration::from_secs(1));
            assert!(!rx.try_iter().any(|l| l.contains("END MESSAGE")));
        }
        assert!(stop(s).success());
        drop(relay);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_reminder_is_tried_again_alone() {
    // The relay refuses canbo@huyen.test's first message with a temporary failure: the
    // first check reaches the others, the next one (10 s later) canbo alone, and nobody
    // gets a message twice.
    let dir = tempfile::tempdir().unwrap();
    let (_relay, rx, smtp) = tls_relay(
        dir.path(),
        "starttls",
        "mật-khẩu-đúng",
        Some("canbo@huyen.test"),
    );
    let s = schedule_reminders(dir.path(), &smtp).await;
    let envelope = |lines: &[String]| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix("FROM xaso@xa.test TO "))
            .unwrap_or_else(|| panic!("no envelope: {lines:?}"))
            .to_string()
    };
    let mut first = Vec::new();
    let mut refused = false;
    for _ in 0..2 {
        let lines = lines_until(&rx, "END MESSAGE", 25, Some(&s));
        refused |= lines.iter().any(|l| l == "REFUSED canbo@huyen.test");
        first.push(envelope(&lines));
    }
    first.sort();
    assert_eq!(first, ["ong.a@xa.test", "to.truong@xa.test"]);
    let t = std::time::Instant::now();
    let lines = lines_until(&rx, "END MESSAGE", 25, Some(&s));
    refused |= lines.iter().any(|l| l == "REFUSED canbo@huyen.test");
    assert!(refused, "{lines:?}");
    assert_eq!(envelope(&lines), "canbo@huyen.test");
    // The retry came with a later check (every 10 s), not in the same one.
    assert!(t.elapsed() > Duration::from_secs(3), "{:?}", t.elapsed());
    // And that was the last: the meeting is reminded.
    std::thread::sleep(Duration::from_secs(11));
    let more: Vec<String> = rx.try_iter().collect();
    assert!(!more.iter().any(|l| l.contains("END MESSAGE")), "{more:?}");
    assert!(stop(s).success());
}
