//! The tree of nodes with real processes: three levels on loopback joined with `xaso node
//! add` tokens, a middle node that restarts, a child removed from the shell, a child pointed
//! at a server that is not the parent in its token; and a child in a network namespace of
//! its own behind a 6 Mbit/s veth pair whose path is cut, briefly and for longer.

mod common;

use common::netns::{runtime_in_netns, sh};
use common::nodes::*;
use common::proc::*;
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test]
async fn three_levels_join_survive_a_restart_and_a_removed_child_is_cut_off() {
    let ThreeLevels {
        top_dir,
        mid_dir,
        leaf_dir: _leaf_dir,
        mid_token,
        leaf_token,
        top,
        mid,
        leaf,
        leaf_started: t_leaf,
    } = three_levels();
    let (ct, cm, cl) = (
        admin(&top.url).await,
        admin(&mid.url).await,
        admin(&leaf.url).await,
    );

    // The top sees its child and its grandchild, both up, with the link's figures.
    let (v, _) = wait_nodes(&ct, &top.url, Duration::from_secs(15), "tree up", |v| {
        child(v, "huyen-a").is_some_and(|c| {
            c["state"] == "up"
                && c["rtt_ms"].is_number()
                && c["nodes"][0]["name"] == "xa-tan-lap"
                && c["nodes"][0]["up"] == true
        })
    })
    .await;
    println!(
        "three levels linked {:?} after the leaf was started",
        t_leaf.elapsed()
    );
    let c = child(&v, "huyen-a").unwrap();
    assert_eq!(c["level"], "district");
    assert!(c["bytes_sent"].as_u64().unwrap() > 0, "{c}");
    assert!(c["bytes_received"].as_u64().unwrap() > 0, "{c}");
    assert!(
        c["address"].as_str().unwrap().starts_with("127.0.0.1"),
        "{c}"
    );
    assert_eq!(c["nodes"][0]["level"], "commune");
    assert!(v["parent"].is_null(), "the top has no parent: {v}");
    // The middle knows what the top calls it; the leaf is up below it.
    let (v, _) = wait_nodes(&cm, &mid.url, Duration::from_secs(5), "mid", |v| {
        v["parent"]["state"] == "up" && child(v, "xa-tan-lap").is_some_and(|c| c["state"] == "up")
    })
    .await;
    assert_eq!(v["name"], "huyen-a");
    assert_eq!(v["level"], "district");
    assert!(v["parent"]["rtt_ms"].as_f64().unwrap() < 1000.0, "{v}");
    assert!(v["parent"]["error"].is_null(), "{v}");
    let (v, _) = wait_nodes(&cl, &leaf.url, Duration::from_secs(5), "leaf", |v| {
        v["parent"]["state"] == "up"
    })
    .await;
    assert_eq!(v["name"], "xa-tan-lap");
    assert_eq!(v["parent"]["url"], mid.url.as_str());
    // Only admins see the tree.
    let r = client()
        .get(format!("{}/api/nodes", top.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Cameras across levels: the leaf's camera is listed at the middle node and at the top,
    // with the node it is at; names may repeat across nodes; nothing goes down the tree.
    let leaf_cam = add_camera(&cl, &leaf.url, "Cổng UBND xã").await;
    let top_cam = add_camera(&ct, &top.url, "Cổng UBND xã").await;
    let t0 = Instant::now();
    let remote = wait_camera(&ct, &top.url, "huyen-a/xa-tan-lap", "Cổng UBND xã").await;
    println!(
        "a camera added at the leaf was listed at the top {:?} later",
        t0.elapsed()
    );
    assert_eq!(remote["origin"], "remote", "{remote}");
    assert_ne!(remote["id"], top_cam);
    let rid = remote["id"].as_i64().unwrap();
    wait_camera(&cm, &mid.url, "xa-tan-lap", "Cổng UBND xã").await;
    let at_leaf: Vec<Value> = get_json(&cl, &format!("{}/api/cameras", leaf.url))
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        at_leaf.len(),
        1,
        "a child never sees its parent's cameras: {at_leaf:?}"
    );
    assert_eq!(at_leaf[0]["id"], leaf_cam);
    assert!(at_leaf[0].get("node").is_none(), "{at_leaf:?}");
    let st = get_json(&ct, &format!("{}/api/cameras/{rid}/status", top.url)).await;
    assert_eq!(st["state"], "stopped", "not recorded at the leaf: {st}");
    // Managed at its node; not yet watched through the tree (a clear refusal).
    let r = ct
        .patch(format!("{}/api/cameras/{rid}", top.url))
        .json(&serde_json::json!({"record": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("huyen-a/xa-tan-lap"));
    // Its footage is read at the leaf, two hops down (tests/federation_live.rs plays it):
    // not recorded there, so no spans, under the top's id.
    let r = ct
        .get(format!("{}/api/cameras/{rid}/recordings", top.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["camera_id"], rid, "{list}");
    assert_eq!(list["spans"], serde_json::json!([]), "{list}");
    // The top's rights: an operator there sees it only with a grant there.
    let r = ct
        .post(format!("{}/api/users", top.url))
        .json(&serde_json::json!({"username": "cong-an-huyen", "password": "officer-pass-1", "role": "operator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let officer_id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let co = client();
    assert_eq!(
        login(&co, &top.url, "cong-an-huyen", "officer-pass-1").await,
        200
    );
    let seen = get_json(&co, &format!("{}/api/cameras", top.url)).await;
    assert_eq!(seen.as_array().unwrap().len(), 0, "{seen}");
    let r = co
        .get(format!("{}/api/cameras/{rid}/status", top.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = ct
        .put(format!("{}/api/users/{officer_id}/grants", top.url))
        .json(&serde_json::json!({"camera_ids": [rid]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = get_json(&co, &format!("{}/api/cameras", top.url)).await;
    assert_eq!(seen[0]["id"], rid, "{seen}");
    assert_eq!(seen[0]["node"], "huyen-a/xa-tan-lap", "{seen}");
    // Renamed at the leaf: the same id (and grant) at the top, with the new name.
    let r = cl
        .patch(format!("{}/api/cameras/{leaf_cam}", leaf.url))
        .json(&serde_json::json!({"name": "Cổng trụ sở"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let renamed = wait_camera(&co, &top.url, "huyen-a/xa-tan-lap", "Cổng trụ sở").await;
    assert_eq!(renamed["id"], rid);

    // `node list` in the shell shows the link as the server recorded it.
    let o = run(xaso(top_dir.path()).args(["node", "list"]), None);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let row = out.lines().find(|l| l.starts_with("huyen-a")).expect(&out);
    assert!(
        row.contains("district") && row.contains(" up ") && row.contains("127.0.0.1"),
        "{out}"
    );

    // The middle node goes away: the leaf keeps serving on its own, both ends see the
    // link down, and it comes back by itself when the middle node is back.
    assert!(stop(mid).success());
    let (_, took) = wait_nodes(
        &ct,
        &top.url,
        Duration::from_secs(6),
        "top sees mid down",
        |v| child(v, "huyen-a").is_some_and(|c| c["state"] == "down"),
    )
    .await;
    println!("top saw the middle node's link down {took:?} after its process exited");
    let (v, _) = wait_nodes(
        &cl,
        &leaf.url,
        Duration::from_secs(6),
        "leaf sees mid down",
        |v| v["parent"]["state"] == "down",
    )
    .await;
    assert!(v["parent"]["error"].is_string(), "{v}");
    let st = get_json(&ct, &format!("{}/api/cameras/{rid}/status", top.url)).await;
    assert_eq!(st["state"], "offline", "{st}");
    assert!(
        st["last_error"].as_str().unwrap().contains("huyen-a"),
        "{st}"
    );
    assert_eq!(
        cl.get(format!("{}/api/cameras", leaf.url))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the leaf keeps working without its parent"
    );
    let mid_url = mid_url_port(&v);
    let t0 = Instant::now();
    let mid = start(
        mid_dir.path(),
        &env(true, Some((&top.url, &mid_token))),
        &["--listen", &mid_url],
    );
    wait_nodes(&ct, &top.url, Duration::from_secs(10), "tree back", |v| {
        child(v, "huyen-a").is_some_and(|c| c["state"] == "up" && c["nodes"][0]["up"] == true)
    })
    .await;
    println!(
        "tree back up {:?} after the middle node was started again",
        t0.elapsed()
    );

    // Removing the leaf in the middle node's shell cuts its link within 5 s; its token is
    // refused from then on, and the top's view of the tree follows.
    let o = run(
        xaso(mid_dir.path()).args(["node", "remove", "xa-tan-lap"]),
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let t0 = Instant::now();
    let (v, _) = wait_nodes(
        &cl,
        &leaf.url,
        Duration::from_secs(5),
        "leaf refused",
        |v| v["parent"]["state"] == "refused",
    )
    .await;
    println!(
        "removed child's link cut {:?} after `node remove`",
        t0.elapsed()
    );
    assert!(
        v["parent"]["error"].as_str().unwrap().contains("removed"),
        "{v}"
    );
    wait_nodes(&ct, &top.url, Duration::from_secs(5), "top's tree", |v| {
        child(v, "huyen-a").is_some_and(|c| c["nodes"].as_array().unwrap().is_empty())
    })
    .await;
    let r = client()
        .get(format!("{}/api/federation/link", mid.url))
        .bearer_auth(leaf_secret(&leaf_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a removed node's token no longer works");
    let o = run(xaso(mid_dir.path()).args(["node", "list"]), None);
    assert!(!text(&o).contains("xa-tan-lap"), "{}", text(&o));
    // Its cameras went with it, at both levels above it (and the grant with the row).
    let t0 = Instant::now();
    loop {
        let top_cams = get_json(&ct, &format!("{}/api/cameras", top.url)).await;
        let mid_cams = get_json(&cm, &format!("{}/api/cameras", mid.url)).await;
        if top_cams.as_array().unwrap().len() == 1 && mid_cams.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "a removed node's cameras stay: {top_cams} {mid_cams}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((top, mid, leaf));
}

/// Adds a camera that is not recorded (nothing listens at its address); its id.
async fn add_camera(c: &reqwest::Client, url: &str, name: &str) -> Value {
    let r = c
        .post(format!("{url}/api/cameras"))
        .json(&serde_json::json!({"name": name, "url": "rtsp://127.0.0.1:9/x", "record": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].clone()
}

/// The middle node's `--listen` address, from the URL the leaf dials.
fn mid_url_port(leaf_nodes: &Value) -> String {
    let url = leaf_nodes["parent"]["url"].as_str().unwrap();
    url.trim_start_matches("https://").to_owned()
}

/// The secret inside a join token, as the child sends it (`xns.` and the first 32 bytes).
fn leaf_secret(token: &str) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_start_matches("xn1."))
        .unwrap();
    format!(
        "xns.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&b[..32])
    )
}

#[tokio::test]
async fn a_child_refuses_a_parent_whose_key_is_not_the_one_in_its_token() {
    let (real_dir, other_dir, child_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let token = node_add(real_dir.path(), "xa-b", "commune");
    // Another server, with its own self-signed key, at the address the child is given.
    let other = start(other_dir.path(), &env(true, None), &[]);
    let child = start(
        child_dir.path(),
        &env(false, Some((&other.url, &token))),
        &[],
    );
    let c = admin(&child.url).await;
    let (v, _) = wait_nodes(&c, &child.url, Duration::from_secs(10), "refused", |v| {
        v["parent"]["state"] == "refused"
    })
    .await;
    let e = v["parent"]["error"].as_str().unwrap();
    assert!(e.contains("not the one in the join token"), "{v}");
    // The impostor never saw the secret: TLS stopped before any request was sent.
    let co = admin(&other.url).await;
    let v = get_json(&co, &format!("{}/api/nodes", other.url)).await;
    assert!(v["children"].as_array().unwrap().is_empty(), "{v}");
    let log: Vec<String> = other.stderr.try_iter().collect();
    assert!(
        !log.iter().any(|l| l.contains("node link")),
        "no link request reached the impostor: {log:#?}"
    );

    // A token that does not decode is refused at start with a clear message.
    let o = run(
        xaso(child_dir.path())
            .env("XASO_PARENT__URL", &other.url)
            .env("XASO_PARENT__TOKEN", "xn1.abc")
            .args(["serve", "--listen", "127.0.0.1:0"]),
        None,
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("parent.token"), "{}", text(&o));
}

/// The child's `since` of its uplink and the parent's `since` of the child's link.
async fn since_both(
    c: &reqwest::Client,
    parent: &str,
    cc: &reqwest::Client,
    child: &str,
) -> (Value, Value) {
    let p = get_json(c, &format!("{parent}/api/nodes")).await;
    let ch = get_json(cc, &format!("{child}/api/nodes")).await;
    (child_of(&p)["since"].clone(), ch["parent"]["since"].clone())
}

fn child_of(v: &Value) -> &Value {
    child(v, "xa-c").unwrap_or(&Value::Null)
}

#[test]
fn a_link_over_a_6_mbit_veth_rides_out_a_short_cut_and_comes_back_after_a_long_one() {
    let Some(rt) = runtime_in_netns(
        "a_link_over_a_6_mbit_veth_rides_out_a_short_cut_and_comes_back_after_a_long_one",
    ) else {
        return;
    };
    // In this test's own namespace: the parent on 198.51.100.1 (and loopback, for the test);
    // the child in a namespace of its own on 198.51.100.2, the two joined by a veth pair
    // shaped to 6 Mbit/s each way.
    rt.block_on(async {
        let (parent_dir, child_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (parent, child_srv, _token) =
            parent_and_child_behind_veth(parent_dir.path(), child_dir.path(), &[]);
        assert!(
            child_srv.url.starts_with("http://198.51.100.2:"),
            "{}",
            child_srv.url
        );
        let (cp, cc) = (admin(&parent.url).await, admin(&child_srv.url).await);
        let (v, _) = wait_nodes(&cp, &parent.url, Duration::from_secs(15), "linked", |v| {
            child_of(v)["state"] == "up" && child_of(v)["rtt_ms"].is_number()
        })
        .await;
        let c = child_of(&v);
        assert_eq!(c["address"], "198.51.100.2", "{c}");
        println!("round trip over the veth: {} ms", c["rtt_ms"]);
        let before = since_both(&cp, &parent.url, &cc, &child_srv.url).await;

        // A 1 s cut: TCP retransmits across it, neither end declares the link dead.
        sh("ip link set vp down");
        tokio::time::sleep(Duration::from_secs(1)).await;
        sh("ip link set vp up");
        tokio::time::sleep(Duration::from_secs(4)).await;
        let v = get_json(&cp, &format!("{}/api/nodes", parent.url)).await;
        assert_eq!(child_of(&v)["state"], "up", "{v}");
        assert_eq!(
            since_both(&cp, &parent.url, &cc, &child_srv.url).await,
            before,
            "the link rode out a 1 s cut without being dropped"
        );

        // An 8 s cut: the parent declares the silent link dead after 4 s; once the path is
        // back, the child dials again by itself.
        sh("ip link set vp down");
        let cut = Instant::now();
        let (_, _) = wait_nodes(&cp, &parent.url, Duration::from_secs(7), "dead link", |v| {
            child_of(v)["state"] == "down"
        })
        .await;
        println!(
            "parent saw the silent link down {:?} into the cut",
            cut.elapsed()
        );
        assert!(
            cut.elapsed() >= Duration::from_secs(3),
            "not before the dead time"
        );
        tokio::time::sleep(Duration::from_secs(8).saturating_sub(cut.elapsed())).await;
        sh("ip link set vp up");
        let (_, took) = wait_nodes(&cp, &parent.url, Duration::from_secs(5), "link back", |v| {
            child_of(v)["state"] == "up"
        })
        .await;
        println!("link back up {took:?} after the path returned");
        let (v, _) = wait_nodes(
            &cc,
            &child_srv.url,
            Duration::from_secs(2),
            "child's view",
            |v| v["parent"]["state"] == "up",
        )
        .await;
        assert_ne!(v["parent"]["since"], before.1, "a new link: {v}");
        drop((parent, child_srv));
    });
}
