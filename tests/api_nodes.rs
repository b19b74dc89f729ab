//! `/api/nodes` on a node that serves HTTPS: registering a child gives a token bound to this
//! node's key, shown once; the list shows it down until it links; removing it revokes the
//! token. The links themselves run between real processes in `tests/federation.rs`.

mod common;

use common::*;
use http::{Method, StatusCode};
use serde_json::json;
use xaso::config::{Config, TlsMode};
use xaso::federation::token::{JoinToken, key_pin_of_pem_file};

async fn https_harness() -> Harness {
    Harness::with_config(Config {
        tls: TlsMode::SelfSigned,
        ..Config::default()
    })
    .await
}

#[tokio::test]
async fn a_child_is_registered_with_a_token_bound_to_this_nodes_key_and_revoked() {
    let h = https_harness().await;
    let admin = h.admin().await;
    let r = h
        .call(
            Method::POST,
            "/api/nodes",
            Some(&admin),
            Some(json!({"name": "xa-tan-lap", "level": "commune"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_i64().unwrap();
    let token = r.json["token"].as_str().unwrap().to_owned();
    let t = JoinToken::decode(&token).unwrap();
    let pin = key_pin_of_pem_file(&h.dir.path().join("tls/cert.pem")).unwrap();
    assert_eq!(t.pin, pin, "the token pins this node's TLS key");

    // Listed, down, and the token is never shown again.
    let r = h.get("/api/nodes", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["parent"].is_null(), "{}", r.text);
    let c = &r.json["children"][0];
    assert_eq!(c["name"], "xa-tan-lap");
    assert_eq!(c["level"], "commune");
    assert_eq!(c["state"], "down");
    assert_eq!(c["bytes_sent"], 0);
    assert!(c["nodes"].as_array().unwrap().is_empty());
    assert!(!r.text.contains(&token) && !r.text.contains(&t.secret));

    // Bad input gets a clear error and changes nothing.
    for (body, want) in [
        (json!({"name": "xa-tan-lap", "level": "commune"}), 409),
        (json!({"name": "Xã Tân Lập", "level": "commune"}), 400),
        (json!({"name": "", "level": "commune"}), 400),
        (json!({"name": "xa-b", "level": ""}), 400),
        (json!({"name": "xa-b", "level": "commune", "url": "x"}), 400),
        (json!({"name": "-xa", "level": "commune"}), 400),
    ] {
        let r = h
            .call(Method::POST, "/api/nodes", Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(r.status.as_u16(), want, "{body}: {}", r.text);
        assert!(r.json["error"]["message"].is_string(), "{}", r.text);
    }
    assert_eq!(
        h.get("/api/nodes", &admin).await.json["children"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The link's door: the token's secret, and only as a WebSocket.
    let link = |auth: Option<String>| {
        let mut req = Harness::request(Method::GET, "/api/federation/link", None, None);
        if let Some(a) = auth {
            req.headers_mut()
                .insert("authorization", a.parse().unwrap());
        }
        h.raw(req)
    };
    assert_eq!(link(None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        link(Some("Bearer xns.not-the-secret".into())).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = link(Some(format!("Bearer {}", t.secret))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("WebSocket"), "{}", r.text);

    // Removed: gone from the list, its secret refused, and both steps audited.
    let r = h.delete(&format!("/api/nodes/{id}"), &admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = h.delete(&format!("/api/nodes/{id}"), &admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        h.get("/api/nodes", &admin).await.json["children"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        link(Some(format!("Bearer {}", t.secret))).await.status,
        StatusCode::UNAUTHORIZED
    );
    let log = h.get("/api/audit?limit=1000", &admin).await;
    let actions: Vec<&str> = log.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"node.add") && actions.contains(&"node.remove"),
        "{}",
        log.text
    );
    assert!(!log.text.contains(&t.secret));

    // The name is free again.
    let r = h
        .call(
            Method::POST,
            "/api/nodes",
            Some(&admin),
            Some(json!({"name": "xa-tan-lap", "level": "commune"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_ne!(r.json["token"].as_str().unwrap(), token, "a new token");
}

/// A child's camera report, as the link would apply it, seen through the API: listed with
/// its node, managed there (409 here), offline while no link is up, its footage 503 then,
/// and granted like any camera. On SQLite and, in the PostgreSQL run, on PostgreSQL.
#[tokio::test]
async fn cameras_reported_by_a_child_are_listed_with_their_node_and_granted_like_any() {
    use xaso::federation::cameras::{OFFLINE, sync_remote};
    use xaso::federation::proto::CameraInfo;
    let h = https_harness().await;
    let admin = h.admin().await;
    let local = h.add_camera(&admin, "Cổng chính").await;
    let r = h
        .call(
            Method::POST,
            "/api/nodes",
            Some(&admin),
            Some(json!({"name": "huyen-a", "level": "district"})),
        )
        .await;
    let node = r.json["id"].as_i64().unwrap();
    let report = [("Cổng chính", ""), ("Chợ", "xa-b")].map(|(name, at)| CameraInfo {
        id: if at.is_empty() { 4 } else { 9 },
        name: name.into(),
        node: at.into(),
        record: true,
        state: Some("streaming".into()),
    });
    assert!(
        sync_remote(&h.st.db, node, "huyen-a", &report, 1)
            .await
            .unwrap()
    );
    let r = h.get("/api/cameras", &admin).await;
    let cams = r.json.as_array().unwrap();
    let shown: Vec<(&str, Option<&str>, &str)> = cams
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["node"].as_str(),
                c["origin"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("Cổng chính", None, "api"),
            ("Cổng chính", Some("huyen-a"), "remote"),
            ("Chợ", Some("huyen-a/xa-b"), "remote"),
        ]
    );
    let remote = cams[2]["id"].as_i64().unwrap();
    assert_eq!(cams[2]["url"], "");
    // No link is up in this harness: the camera is offline, with why.
    let st = h
        .get(&format!("/api/cameras/{remote}/status"), &admin)
        .await;
    assert_eq!(st.json["state"], OFFLINE, "{}", st.text);
    assert!(
        st.json["last_error"]
            .as_str()
            .unwrap()
            .contains("huyen-a/xa-b")
    );
    for (m, path, body) in [
        (
            Method::PATCH,
            format!("/api/cameras/{remote}"),
            Some(json!({"record": false})),
        ),
        (Method::DELETE, format!("/api/cameras/{remote}"), None),
    ] {
        let r = h.call(m.clone(), &path, Some(&admin), body).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{m} {path}: {}", r.text);
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("huyen-a/xa-b"),
            "{}",
            r.text
        );
    }
    // Its footage is read over the link toward its node, which is down here: 503, naming
    // the node (tests/federation_live.rs reads it over a real link).
    let range = "start=2026-11-01T00:00:00Z&end=2026-11-01T00:10:00Z";
    for path in [
        format!("/api/cameras/{remote}/recordings?{range}"),
        format!("/api/cameras/{remote}/export.mp4?{range}"),
        format!("/api/cameras/{remote}/playback.mp4?{range}"),
        format!("/api/cameras/{remote}/snapshot.jpg?at=2026-11-01T00:00:00Z"),
    ] {
        let r = h.get(&path, &admin).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            r.text
        );
        let msg = r.json["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("huyen-a/xa-b") && msg.contains("down"),
            "{msg}"
        );
    }
    // Rights are this node's: a grant shows it to an operator.
    let uid = h.add_user(&admin, "cong-an", "operator").await;
    let op = h.login("cong-an", PASSWORD).await;
    assert_eq!(h.get("/api/cameras", &op).await.json, json!([]));
    let r = h
        .call(
            Method::PUT,
            &format!("/api/users/{uid}/grants"),
            Some(&admin),
            Some(json!({"camera_ids": [remote]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let seen = h.get("/api/cameras", &op).await.json;
    assert_eq!(seen[0]["id"], remote, "{seen}");
    assert_eq!(seen[0]["node"], "huyen-a/xa-b");
    // The child removed: its cameras and the grant go; the local camera stays.
    let r = h.delete(&format!("/api/nodes/{node}"), &admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let left = h.get("/api/cameras", &admin).await.json;
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left[0]["id"], local);
    assert_eq!(h.get("/api/cameras", &op).await.json, json!([]));
}

/// A grant of a whole node shows a user every camera at it and below it, including those it
/// reports later; a grant of a node further down, only those; a removed node takes its
/// grants with it.
#[tokio::test]
async fn a_node_granted_whole_shows_every_camera_below_it() {
    use xaso::federation::cameras::sync_remote;
    use xaso::federation::proto::CameraInfo;
    let h = https_harness().await;
    let admin = h.admin().await;
    h.add_camera(&admin, "Sân trụ sở").await;
    let r = h
        .call(
            Method::POST,
            "/api/nodes",
            Some(&admin),
            Some(json!({"name": "huyen-a", "level": "district"})),
        )
        .await;
    let node = r.json["id"].as_i64().unwrap();
    let cam = |id: i64, name: &str, at: &str| CameraInfo {
        id,
        name: name.into(),
        node: at.into(),
        record: true,
        state: None,
    };
    let report = vec![cam(1, "Cổng huyện", ""), cam(2, "Chợ xã", "xa-b")];
    sync_remote(&h.st.db, node, "huyen-a", &report, 1)
        .await
        .unwrap();
    let uid = h.add_user(&admin, "cong-an", "operator").await;
    let op = h.login("cong-an", PASSWORD).await;
    let grants_path = format!("/api/users/{uid}/grants");
    let grant =
        |body: serde_json::Value| h.call(Method::PUT, &grants_path, Some(&admin), Some(body));
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };

    let r = grant(json!({"camera_ids": [], "node_paths": ["huyen-a"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["node_paths"], json!(["huyen-a"]));
    assert_eq!(
        names(&h.get("/api/cameras", &op).await.json),
        ["Cổng huyện", "Chợ xã"]
    );
    // A camera the node adds later is covered too.
    let more = vec![
        cam(1, "Cổng huyện", ""),
        cam(2, "Chợ xã", "xa-b"),
        cam(3, "Trạm y tế", "xa-c"),
    ];
    sync_remote(&h.st.db, node, "huyen-a", &more, 2)
        .await
        .unwrap();
    let seen = h.get("/api/cameras", &op).await.json;
    assert_eq!(seen.as_array().unwrap().len(), 3, "{seen}");
    let id3 = seen[2]["id"].as_i64().unwrap();
    assert_eq!(
        h.get(&format!("/api/cameras/{id3}/status"), &op)
            .await
            .status,
        StatusCode::OK
    );
    let me = h.get("/api/me", &op).await.json;
    assert_eq!(me["camera_ids"].as_array().unwrap().len(), 3, "{me}");

    // Only the commune: its camera, not the district's own.
    let r = grant(json!({"camera_ids": [], "node_paths": ["huyen-a/xa-b"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(names(&h.get("/api/cameras", &op).await.json), ["Chợ xã"]);
    assert_eq!(
        h.get(&format!("/api/cameras/{id3}/status"), &op)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // The users list shows it; camera grants alone leave node grants as they are.
    let users = h.get("/api/users", &admin).await.json;
    let u = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == uid)
        .unwrap();
    assert_eq!(u["node_paths"], json!(["huyen-a/xa-b"]));
    let r = grant(json!({"camera_ids": [id3]})).await;
    assert_eq!(r.json["node_paths"], json!(["huyen-a/xa-b"]), "{}", r.text);
    assert_eq!(
        names(&h.get("/api/cameras", &op).await.json),
        ["Chợ xã", "Trạm y tế"]
    );

    // Unknown or malformed paths are refused and change nothing.
    for bad in ["huyen-z", "huyen-a/", "Huyện A", "huyen-a/xa-b/../x"] {
        let r = grant(json!({"camera_ids": [], "node_paths": [bad]})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    assert_eq!(
        names(&h.get("/api/cameras", &op).await.json),
        ["Chợ xã", "Trạm y tế"]
    );

    // The node removed: its cameras and the grants of it go.
    let r = h.delete(&format!("/api/nodes/{node}"), &admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let users = h.get("/api/users", &admin).await.json;
    let u = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == uid)
        .unwrap();
    assert_eq!(u["node_paths"], json!([]), "{u}");
    assert_eq!(h.get("/api/cameras", &op).await.json, json!([]));
}

/// Meetings across levels, the rows: a new meeting may invite registered nodes below (and
/// only those); a meeting from the parent is kept under its own id, seen by this node's
/// users as one it is invited to (chaired at the parent), updated when the parent says so,
/// and never overwrites a meeting made here.
#[tokio::test]
async fn meetings_invite_nodes_below_and_meetings_from_above_are_kept_under_their_id() {
    use xaso::meetings::store::{Mirror, upsert_mirror};
    let h = https_harness().await;
    let admin = h.admin().await;
    let now = h.st.now_ms();
    let when = |title: &str, nodes: serde_json::Value| {
        json!({"title": title, "start": xaso::api::rfc3339(now),
            "end": xaso::api::rfc3339(now + 3_600_000), "nodes": nodes})
    };
    let r = h
        .call(
            Method::POST,
            "/api/meetings",
            Some(&admin),
            Some(when("a", json!(["huyen-a"]))),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("huyen-a"), "{}", r.text);
    h.call(
        Method::POST,
        "/api/nodes",
        Some(&admin),
        Some(json!({"name": "huyen-a", "level": "district"})),
    )
    .await;
    let r = h
        .call(
            Method::POST,
            "/api/meetings",
            Some(&admin),
            Some(when("Giao ban", json!(["huyen-a", "huyen-a"]))),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["nodes"], json!(["huyen-a"]));
    assert_eq!(r.json["from_parent"], false);
    let local = r.json["id"].as_i64().unwrap();
    assert!(local > 1 << 32, "ids are random above 2^32: {local}");

    // From the parent: a meeting that invites this node ("") and one below it.
    let id = (1i64 << 50) + 7;
    let nodes = vec![String::new(), "xa-b".to_string()];
    let mut m = Mirror {
        id,
        title: "Hội nghị tỉnh",
        start_ms: now,
        end_ms: now + 7_200_000,
        chair: "chu-tich-tinh",
        locked: false,
        ended_ms: None,
        nodes: &nodes,
    };
    upsert_mirror(&h.st.db, &m, now).await.unwrap();
    let user = {
        h.add_user(&admin, "can-bo", "member").await;
        h.login("can-bo", PASSWORD).await
    };
    let r = h.get("/api/meetings", &user).await;
    let list = r.json["meetings"].as_array().unwrap();
    assert_eq!(
        list.len(),
        1,
        "the user sees the meeting from above only: {}",
        r.text
    );
    let got = &list[0];
    assert_eq!(got["id"], id);
    assert_eq!(got["title"], "Hội nghị tỉnh");
    assert_eq!(got["chair"]["username"], "chu-tich-tinh");
    assert_eq!(got["from_parent"], true);
    assert_eq!(got["nodes"], json!(["", "xa-b"]));
    assert!(got["join_url"].is_null(), "a user here does not manage it");
    let r = h.get(&format!("/api/meetings/{id}"), &user).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The parent locks and ends it: kept.
    m.locked = true;
    m.ended_ms = Some(now + 1000);
    upsert_mirror(&h.st.db, &m, now).await.unwrap();
    let r = h.get(&format!("/api/meetings/{id}"), &admin).await;
    assert_eq!(
        (r.json["locked"].clone(), r.json["phase"].clone()),
        (json!(true), json!("ended"))
    );
    assert!(
        r.json["join_url"].is_string(),
        "the admin here has the link for its officials"
    );

    // A meeting made here is never overwritten from above.
    let bad = Mirror { id: local, ..m };
    let e = upsert_mirror(&h.st.db, &bad, now).await.unwrap_err();
    assert!(e.to_string().contains("made here"), "{e}");
    let r = h.get(&format!("/api/meetings/{local}"), &admin).await;
    assert_eq!(r.json["title"], "Giao ban");
}
