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
    let r = h
        .call(
            Method::DELETE,
            &format!("/api/nodes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = h
        .call(
            Method::DELETE,
            &format!("/api/nodes/{id}"),
            Some(&admin),
            None,
        )
        .await;
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
