//! The simulated camera against retina 0.4.21, the RTSP client xaso's ingest uses: 12 s of
//! video (across the loop point) over TCP and over UDP, keyframe first, timestamps strictly
//! increasing, AAC frames and RTCP sender reports.

mod common;

async fn receive_12s(udp: bool) {
    let sim = common::start().await;
    let r = common::retina_receive(&sim.url("sim"), udp, 12.0).await;
    assert!(r.first_video_is_key, "{r:?}");
    assert!(r.video_span >= 12.0, "{r:?}");
    assert!((300..=305).contains(&r.video_frames), "{r:?}");
    assert_eq!(r.keyframes, 13, "one IDR per second, 0 to 12 s: {r:?}");
    assert_eq!(r.dimensions, Some((640, 360)));
    assert_eq!(r.audio_rate, Some(48_000));
    // 46.875 AAC frames per second.
    assert!(r.audio_frames >= 540, "{r:?}");
    assert!(r.audio_span >= 11.5, "{r:?}");
    assert!(
        r.sender_reports >= 4,
        "SRs every 5 s on both streams: {r:?}"
    );
    assert_eq!(r.loss, 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_tcp() {
    receive_12s(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_udp() {
    receive_12s(true).await;
}
