//! Many clients, clients that misbehave, and shutdown.

mod common;

use std::time::Duration;

use common::RawClient;
use xaso_simcam::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_clients_at_once() {
    let sim = common::start().await;
    let url = sim.url("sim");
    let clients: Vec<_> = (0..10)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move { common::retina_receive(&url, i % 2 == 1, 2.0).await })
        })
        .collect();
    assert!(
        common::eventually(Duration::from_secs(5), || sim.sessions() == 10).await,
        "10 sessions play at once (saw {})",
        sim.sessions()
    );
    for c in clients {
        let r = c.await.unwrap();
        assert!(r.first_video_is_key && r.video_span >= 2.0, "{r:?}");
        assert!(r.audio_frames > 0);
    }
    assert!(
        common::eventually(Duration::from_secs(5), || sim.connections() == 0).await,
        "all connections closed ({} left)",
        sim.connections()
    );
    assert_eq!(sim.sessions(), 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_client_is_cleaned_up() {
    let sim = common::start().await;
    let mut c = RawClient::connect(&sim).await;
    c.play_tcp(&sim.url("sim")).await;
    assert!(c.read_for(Duration::from_millis(500)).await);
    assert!(c.data_bytes > 10_000, "media flows: {} bytes", c.data_bytes);
    assert_eq!((sim.connections(), sim.sessions()), (1, 1));
    drop(c); // no TEARDOWN
    assert!(
        common::eventually(Duration::from_secs(2), || sim.connections() == 0
            && sim.sessions() == 0)
        .await
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_times_out() {
    let sim = common::start_with(Config::default().session_timeout(Duration::from_secs(1))).await;
    let mut c = RawClient::connect(&sim).await;
    c.play_tcp(&sim.url("sim")).await;
    let start = tokio::time::Instant::now();
    // The client reads media but never sends a keepalive: the server ends the session.
    let open = c.read_for(Duration::from_secs(4)).await;
    assert!(!open, "server closed the connection");
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(common::eventually(Duration::from_secs(1), || sim.sessions() == 0).await);

    // A client that sends keepalives stays.
    let mut c = RawClient::connect(&sim).await;
    c.play_tcp(&sim.url("sim")).await;
    for _ in 0..4 {
        assert!(c.read_for(Duration::from_millis(400)).await);
        let url = sim.url("sim");
        assert_eq!(c.request("GET_PARAMETER", &url, &[]).await.status, 200);
    }
    assert_eq!(sim.sessions(), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests() {
    let sim = common::start().await;
    let url = sim.url("sim");
    let mut c = RawClient::connect(&sim).await;
    assert_eq!(c.request("FOO", &url, &[]).await.status, 501);
    assert_eq!(
        c.request("DESCRIBE", &sim.url("nope"), &[]).await.status,
        404
    );
    let r = c.request("PLAY", &url, &[]).await;
    assert_eq!(r.status, 455, "PLAY before SETUP");
    let r = c
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &["Transport: RTP/AVP;multicast"],
        )
        .await;
    assert_eq!(r.status, 461);
    // Garbage: 400, then the server closes the connection (it cannot resync).
    c.send_raw(b"\x16\x03\x01 this is not RTSP\r\n\r\n").await;
    let r = c.response().await.expect("a 400 response");
    assert_eq!(r.status, 400);
    assert!(c.response().await.is_none(), "closed after 400");
    // An endless header is refused without buffering it.
    let mut c = RawClient::connect(&sim).await;
    c.send_raw(b"OPTIONS * RTSP/1.0\r\nX: ").await;
    c.send_raw(&[b'a'; 20_000]).await;
    assert_eq!(c.response().await.expect("a 400 response").status, 400);
    // The server still works.
    let mut c = RawClient::connect(&sim).await;
    assert_eq!(c.request("OPTIONS", &url, &[]).await.status, 200);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_everything() {
    let sim = common::start().await;
    let addr = sim.local_addr();
    let mut c = RawClient::connect(&sim).await;
    c.play_tcp(&sim.url("sim")).await;
    assert!(c.read_for(Duration::from_millis(200)).await);
    tokio::time::timeout(Duration::from_secs(5), sim.shutdown())
        .await
        .expect("shutdown is prompt");
    assert!(
        !c.read_for(Duration::from_secs(2)).await,
        "connection closed"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_stops_the_server() {
    let sim = common::start().await;
    let addr = sim.local_addr();
    drop(sim);
    let closed = common::eventually(Duration::from_secs(2), || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err()
    })
    .await;
    assert!(closed);
}
