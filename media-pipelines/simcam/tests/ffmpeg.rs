//! The simulated camera against FFmpeg 5.1's RTSP client: ffprobe over TCP and UDP, and a
//! 12 s recording (across the 10 s loop point) that decodes without error.

mod common;

use std::time::Duration;

async fn probe(transport: &str) {
    if !common::have("ffprobe") {
        return;
    }
    let sim = common::start().await;
    let url = sim.url("sim");
    let out = common::run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-show_entries",
            "stream=codec_name,profile,width,height,sample_rate,channels",
            "-of",
            "compact",
            &url,
        ],
        Duration::from_secs(30),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed: {stderr}");
    assert!(
        stdout.contains("codec_name=h264|profile=Constrained Baseline|width=640|height=360"),
        "{stdout}"
    );
    assert!(
        stdout.contains("codec_name=aac|profile=LC|sample_rate=48000|channels=1"),
        "{stdout}"
    );
    assert!(stderr.is_empty(), "ffprobe complained: {stderr}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_tcp() {
    probe("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_udp() {
    probe("udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_records_across_the_loop() {
    if !common::have("ffmpeg") || !common::have("ffprobe") {
        return;
    }
    let sim = common::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mkv = dir.path().join("out.mkv");
    let mkv = mkv.to_str().unwrap();
    let url = sim.url("sim");
    let out = common::run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            &url,
            "-t",
            "12",
            "-c",
            "copy",
            mkv,
        ],
        Duration::from_secs(40),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sim.shutdown().await;

    // Decodes with no error at all.
    let out = common::run(
        "ffmpeg",
        &["-v", "error", "-i", mkv, "-f", "null", "-"],
        Duration::from_secs(30),
    )
    .await;
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "decoding errors");

    // 12 s of 25 fps video with increasing timestamps across the loop point.
    let out = common::run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
            mkv,
        ],
        Duration::from_secs(30),
    )
    .await;
    let pts: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(pts.len() >= 280, "{} video packets", pts.len());
    for w in pts.windows(2) {
        assert!(w[1] > w[0], "video pts increase: {} then {}", w[0], w[1]);
    }
    let duration = pts.last().unwrap() - pts.first().unwrap() + 0.04;
    assert!((duration - 12.0).abs() <= 0.5, "video duration {duration}");
    let audio = common::run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            mkv,
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&audio.stdout).trim(), "aac");
}
