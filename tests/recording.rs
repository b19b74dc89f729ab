//! Recording real RTSP cameras (GStreamer's RTSP server, not xaso's own simulator) with the
//! real `xaso serve` process, and checking the footage with ffprobe and ffmpeg: every
//! codec and transport the issue names, digest authentication, crash safety under SIGKILL,
//! and a camera that keeps dropping the connection.

mod common;

use common::camera::TestCamera;
use common::proc::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ADMIN_PW: &str = "admin-password-1";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Writes a config recording `cameras` (name, url, transport) into `dir`.
fn config(dir: &Path, segment_secs: u32, cameras: &[(&str, String, &str)]) -> PathBuf {
    let mut t = format!("[recording]\nsegment_secs = {segment_secs}\nsimulated_camera = false\n");
    for (name, url, transport) in cameras {
        t.push_str(&format!(
            "\n[[camera]]\nname = \"{name}\"\nurl = \"{url}\"\ntransport = \"{transport}\"\n"
        ));
    }
    let p = dir.join("xaso.toml");
    std::fs::write(&p, t).unwrap();
    p
}

fn serve(dir: &Path, cfg: &Path) -> Server {
    start(
        dir,
        &[("XASO_ADMIN_PASSWORD", ADMIN_PW)],
        &["--config", cfg.to_str().unwrap()],
    )
}

/// Waits until camera `id` is recording; returns its status.
async fn wait_recording(s: &Server, id: i64, within: Duration) -> Value {
    let c = client();
    assert_eq!(login(&c, &s.url, "admin", ADMIN_PW).await, 200);
    let deadline = std::time::Instant::now() + within;
    loop {
        let st: Value = get_json(&c, &format!("{}/api/cameras/{id}/status", s.url)).await;
        if st["recording"] == true {
            return st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "camera {id} not recording: {st}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[derive(Debug, Clone)]
struct Seg {
    path: String,
    start_ms: i64,
    end_ms: i64,
    bytes: i64,
    video: i64,
    audio: i64,
    open: i64,
}

async fn segments(dir: &Path, camera: i64) -> Vec<Seg> {
    segments_in(&dir.join("xaso.db"), camera).await
}

async fn segments_in(db: &Path, camera: i64) -> Vec<Seg> {
    use sqlx::Row;
    let pool = xaso::db::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT path, start_ms, end_ms, bytes, video_samples, audio_samples, open FROM segments WHERE camera_id = $1 ORDER BY start_ms",
    )
    .bind(camera)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| Seg {
            path: r.get(0),
            start_ms: r.get(1),
            end_ms: r.get(2),
            bytes: r.get(3),
            video: r.get(4),
            audio: r.get(5),
            open: r.get(6),
        })
        .collect()
}

fn ffprobe(file: &Path) -> Value {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
            "-count_packets",
        ])
        .arg(file)
        .output()
        .expect("ffprobe (Debian's ffmpeg): run scripts/install-test-deps");
    assert!(
        o.status.success(),
        "ffprobe {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// What `ffmpeg -v error -i FILE -enc_time_base:v -1 -f null -` prints: nothing for a clean
/// file.
fn decode_errors(file: &Path) -> String {
    // The frames keep the file's own time base (`-enc_time_base:v -1`). By default ffmpeg
    // 5.1 re-stamps them in 1/frame-rate, guessed from the file: with a gap in a clip the
    // guess can be the average rate (12.5 fps for 25 fps with half of it missing), and then
    // two frames round to one stamp and the null muxer reports "non monotonically
    // increasing dts" for a file whose own stamps are fine. Its own stamps are still
    // checked: they reach the muxer unchanged.
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-enc_time_base:v", "-1", "-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stream<'a>(probe: &'a Value, kind: &str) -> Option<&'a Value> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
}

/// Checks a finished recording of one camera: closed, contiguous segments; recorded time
/// matching wall-clock time within 1 s; files that ffprobe reads as `video`/`audio` and
/// ffmpeg decodes without an error; the index's frame counts equal the files'.
async fn check_footage(
    dir: &Path,
    camera: i64,
    stopped_at_ms: i64,
    min_ms: i64,
    video: &str,
    audio: Option<&str>,
) -> Vec<Seg> {
    let segs = segments(dir, camera).await;
    assert!(segs.len() >= 2, "{segs:?}");
    assert!(
        segs.iter().all(|s| s.open == 0),
        "every segment closed at a clean stop: {segs:?}"
    );
    for w in segs.windows(2) {
        assert!(
            (w[1].start_ms - w[0].end_ms).abs() <= 50,
            "segments of one run follow each other: {w:?}"
        );
    }
    let (first, last) = (&segs[0], segs.last().unwrap());
    let total = last.end_ms - first.start_ms;
    assert!(total >= min_ms, "recorded {total} ms");
    assert!(
        (last.end_ms - stopped_at_ms).abs() <= 1000,
        "footage ends {} ms from the stop",
        last.end_ms - stopped_at_ms
    );
    let mut media_ms = 0.0;
    for s in &segs {
        let f = dir.join(&s.path);
        assert_eq!(
            std::fs::metadata(&f).unwrap().len() as i64,
            s.bytes,
            "{}",
            s.path
        );
        let p = ffprobe(&f);
        let v = stream(&p, "video").expect("a video stream");
        assert_eq!(v["codec_name"], video, "{}", s.path);
        assert_eq!(
            v["nb_read_packets"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap(),
            s.video,
            "{}",
            s.path
        );
        match (audio, stream(&p, "audio")) {
            (Some(codec), Some(a)) => {
                assert_eq!(a["codec_name"], codec, "{}", s.path);
                assert_eq!(
                    a["nb_read_packets"]
                        .as_str()
                        .unwrap()
                        .parse::<i64>()
                        .unwrap(),
                    s.audio
                );
                assert!(s.audio > 0);
            }
            (None, None) => {}
            (want, got) => panic!("{}: audio {want:?}, file has {got:?}", s.path),
        }
        media_ms += v["duration"].as_str().unwrap().parse::<f64>().unwrap() * 1000.0;
        let errs = decode_errors(&f);
        assert!(
            errs.is_empty(),
            "{} does not decode cleanly: {errs}",
            s.path
        );
    }
    assert!(
        (media_ms - total as f64).abs() <= 1000.0,
        "files hold {media_ms} ms, the index says {total} ms"
    );
    segs
}

struct Case {
    args: &'static [&'static str],
    transport: &'static str,
    video: &'static str,
    audio: Option<&'static str>,
}

async fn record_case(c: &Case) {
    let cam = TestCamera::start(
        &[
            c.args,
            &["--user", "cam", "--password", "p@ss:1", "--auth", "digest"],
        ]
        .concat(),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        10,
        &[("test", cam.url_with("cam", "p@ss:1"), c.transport)],
    );
    let s = serve(dir.path(), &cfg);
    let st = wait_recording(&s, 1, Duration::from_secs(20)).await;
    assert_eq!(
        st["video_codec"],
        if c.video == "hevc" { "h265" } else { "h264" }
    );
    assert!(st["last_error"].is_null(), "{st}");
    tokio::time::sleep(Duration::from_secs(21)).await;
    let stopped = now_ms();
    assert!(stop(s).success());
    check_footage(dir.path(), 1, stopped, 20_000, c.video, c.audio).await;
}

/// H.264, H.264+AAC, H.264+PCMU and H.265+PCMA, over TCP and UDP, with digest
/// authentication, each for over 20 seconds (run side by side).
#[tokio::test(flavor = "multi_thread")]
async fn records_every_codec_over_tcp_and_udp() {
    let cases = [
        Case {
            args: &["--video", "h264"],
            transport: "tcp",
            video: "h264",
            audio: None,
        },
        Case {
            args: &["--video", "h264", "--audio", "aac"],
            transport: "udp",
            video: "h264",
            audio: Some("aac"),
        },
        Case {
            args: &["--video", "h264", "--audio", "pcmu"],
            transport: "tcp",
            video: "h264",
            audio: Some("pcm_mulaw"),
        },
        Case {
            args: &["--video", "h265", "--audio", "pcma"],
            transport: "udp",
            video: "hevc",
            audio: Some("pcm_alaw"),
        },
        Case {
            args: &["--video", "h264", "--slices", "--audio", "aac"],
            transport: "tcp",
            video: "h264",
            audio: Some("aac"),
        },
    ];
    futures::future::join_all(cases.iter().map(record_case)).await;
}

/// A wrong password is reported on the camera's status, and the server keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_are_reported() {
    let cam = TestCamera::start(&["--user", "cam", "--password", "right", "--auth", "digest"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        10,
        &[("test", cam.url_with("cam", "wrong"), "tcp")],
    );
    let s = serve(dir.path(), &cfg);
    let c = client();
    assert_eq!(login(&c, &s.url, "admin", ADMIN_PW).await, 200);
    let mut last = Value::Null;
    for _ in 0..50 {
        last = get_json(&c, &format!("{}/api/cameras/1/status", s.url)).await;
        if last["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last["state"], "failed", "{last}");
    let err = last["last_error"].as_str().unwrap();
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "no password in messages: {err}");
    assert_eq!(
        c.get(format!("{}/healthz", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// The two-command promise: a start with no configuration records the built-in simulated
/// camera (a real RTSP server in the process), H.264 and AAC, that ffmpeg decodes.
#[tokio::test(flavor = "multi_thread")]
async fn first_start_records_the_simulated_camera() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[("XASO_ADMIN_PASSWORD", ADMIN_PW)], &[]);
    assert!(
        s.stdout.join("\n").contains("simulated camera"),
        "{:?}",
        s.stdout
    );
    let st = wait_recording(&s, 1, Duration::from_secs(15)).await;
    assert_eq!(
        (st["video_codec"].as_str(), st["audio_codec"].as_str()),
        (Some("h264"), Some("aac"))
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stopped = now_ms();
    assert!(stop(s).success());
    let segs = segments(dir.path(), 1).await;
    assert_eq!(segs.len(), 1, "{segs:?}");
    let seg = &segs[0];
    assert!(
        seg.open == 0 && seg.end_ms - seg.start_ms >= 3500,
        "{seg:?}"
    );
    assert!((seg.end_ms - stopped).abs() <= 1000);
    let f = dir.path().join(&seg.path);
    let p = ffprobe(&f);
    assert_eq!(stream(&p, "video").unwrap()["codec_name"], "h264");
    assert_eq!(stream(&p, "audio").unwrap()["codec_name"], "aac");
    assert_eq!(stream(&p, "video").unwrap()["width"], 640);
    assert!(decode_errors(&f).is_empty());
}

/// Every indexed segment is closed (but, with `running`, the ones being written), its file
/// exists with exactly the indexed size, and the file holds the indexed number of frames and
/// decodes cleanly; no file lacks a row.
async fn check_index_matches_files(dir: &Path, camera: i64, running: bool) -> Vec<Seg> {
    check_files(dir, &dir.join("xaso.db"), camera, running).await
}

async fn check_files(dir: &Path, db: &Path, camera: i64, running: bool) -> Vec<Seg> {
    check_files_with(dir, db, camera, running, true).await
}

async fn check_files_with(
    dir: &Path,
    db: &Path,
    camera: i64,
    running: bool,
    sidecars_required: bool,
) -> Vec<Seg> {
    let segs = segments_in(db, camera).await;
    let mut on_disk: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.join("recordings")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "mp4") {
                on_disk.push(e.path());
            }
        }
    }
    assert_eq!(
        on_disk.len(),
        segs.len(),
        "a file for every row and a row for every file"
    );
    for s in &segs {
        if running && s.open == 1 {
            continue;
        }
        assert_eq!(s.open, 0, "{s:?}");
        let f = dir.join(&s.path);
        // A closed segment keeps its sample tables beside it, matching the file.
        // (On a full disk writing it may fail: then the segment is scanned instead.)
        match std::fs::read(format!("{}.idx", f.display())) {
            Ok(idx) => assert!(
                xaso_record::scan::sidecar::decode(&idx, s.bytes as u64).is_some(),
                "stale sidecar for {}",
                s.path
            ),
            Err(_) => assert!(!sidecars_required, "no sidecar for {}", s.path),
        }
        assert_eq!(
            std::fs::metadata(&f).unwrap().len() as i64,
            s.bytes,
            "{s:?}"
        );
        let p = ffprobe(&f);
        let v = stream(&p, "video").unwrap();
        assert_eq!(
            v["nb_read_packets"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap(),
            s.video,
            "{s:?}"
        );
        let errs = decode_errors(&f);
        assert!(errs.is_empty(), "{}: {errs}", s.path);
    }
    segs
}

/// A tiny deterministic generator, so a failing run can be repeated.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

/// SIGKILL at random moments, ten times, restarting each time: the index always matches
/// the files, and at most 1 s of what the camera sent before each crash is lost.
#[tokio::test(flavor = "multi_thread")]
async fn survives_sigkill_at_random_moments() {
    let cam = TestCamera::start(&["--audio", "aac"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 4, &[("test", cam.url.clone(), "tcp")]);
    let mut seed = 20261127;
    let mut crashes = Vec::new();
    for _ in 0..10 {
        let mut s = serve(dir.path(), &cfg);
        wait_recording(&s, 1, Duration::from_secs(20)).await;
        // The start repaired what the previous crash left.
        check_index_matches_files(dir.path(), 1, true).await;
        tokio::time::sleep(Duration::from_millis(1500 + lcg(&mut seed) % 4500)).await;
        let killed_at = now_ms();
        s.child.kill().unwrap(); // SIGKILL
        s.child.wait().unwrap();
        crashes.push(killed_at);
    }
    let s = serve(dir.path(), &cfg);
    wait_recording(&s, 1, Duration::from_secs(20)).await;
    stop(s);
    let segs = check_index_matches_files(dir.path(), 1, false).await;
    let mut lost = Vec::new();
    for k in crashes {
        let last_before = segs
            .iter()
            .filter(|s| s.start_ms < k)
            .map(|s| s.end_ms)
            .max()
            .unwrap();
        let resumed = segs
            .iter()
            .filter(|s| s.start_ms > k)
            .map(|s| s.start_ms)
            .min()
            .unwrap();
        lost.push((k - last_before, resumed - k));
        assert!(
            k - last_before <= 1000,
            "{} ms of footage lost before the crash at {k}",
            k - last_before
        );
    }
    eprintln!("(lost before crash ms, gap until recording resumed ms): {lost:?}");
}

fn rss_kb_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

/// A camera that drops the connection every 4 s: recording resumes within 2 s each time,
/// with no growth in memory or open files.
#[tokio::test(flavor = "multi_thread")]
async fn resumes_after_the_camera_drops_the_connection() {
    let cam = TestCamera::start(&["--drop-every", "4", "--audio", "pcmu"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 300, &[("test", cam.url.clone(), "tcp")]);
    let s = serve(dir.path(), &cfg);
    let pid = s.child.id();
    wait_recording(&s, 1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    let (rss0, fds0) = rss_kb_and_fds(pid);
    tokio::time::sleep(Duration::from_secs(24)).await;
    let (rss1, fds1) = rss_kb_and_fds(pid);
    let c = client();
    assert_eq!(login(&c, &s.url, "admin", ADMIN_PW).await, 200);
    let st: Value = get_json(&c, &format!("{}/api/cameras/1/status", s.url)).await;
    stop(s);
    assert!(st["reconnects"].as_u64().unwrap() >= 6, "{st}");
    assert!(fds1 <= fds0 + 2, "open files grew from {fds0} to {fds1}");
    assert!(
        rss1 <= rss0 + 4096,
        "memory grew from {rss0} kB to {rss1} kB"
    );
    let segs = check_index_matches_files(dir.path(), 1, false).await;
    assert!(segs.len() >= 7, "a segment per connection: {}", segs.len());
    let gaps: Vec<i64> = segs
        .windows(2)
        .map(|w| w[1].start_ms - w[0].end_ms)
        .collect();
    eprintln!("gaps between connections (ms): {gaps:?}");
    assert!(
        gaps.iter().all(|&g| g <= 2000),
        "recording resumed late: {gaps:?}"
    );
}

/// A tmpfs mounted for one test (the tests run as root, as CI does), unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        SmallDisk { path }
    }

    fn free(&self) -> u64 {
        let o = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The footage disk fills up: the write fails, the oldest footage is freed, and recording
/// goes on; the index still matches the files.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_frees_the_oldest_footage_and_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("disk"), "6m");
    // Leave about 1.5 MB for footage (the built-in camera writes about 90 kB/s).
    let ballast = disk.free().saturating_sub(1_500_000);
    std::fs::write(disk.path.join("ballast"), vec![0u8; ballast as usize]).unwrap();
    let db = dir.path().join("xaso.db");
    let cfg = dir.path().join("xaso.toml");
    std::fs::write(
        &cfg,
        format!(
            "database_url = \"sqlite://{}?mode=rwc\"\n[recording]\nsegment_secs = 2\nkeep_free_gb = 0.0005\n",
            db.display()
        ),
    )
    .unwrap();
    let s = start(
        &disk.path,
        &[("XASO_ADMIN_PASSWORD", ADMIN_PW)],
        &["--config", cfg.to_str().unwrap()],
    );
    wait_recording(&s, 1, Duration::from_secs(15)).await;
    let c = client();
    assert_eq!(login(&c, &s.url, "admin", ADMIN_PW).await, 200);
    let metric = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .map_or(0, |v| v.parse().unwrap())
    };
    let mut errors = 0;
    let mut m = String::new();
    for _ in 0..120 {
        m = get_text(&c, &format!("{}/metrics", s.url)).await;
        errors = metric(&m, "xaso_disk_write_errors_total");
        if errors > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        errors > 0,
        "the disk never filled (free: {} bytes): {m}",
        disk.free()
    );
    let full_at = now_ms();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let st: Value = get_json(&c, &format!("{}/api/cameras/1/status", s.url)).await;
    assert_eq!(st["recording"], true, "recording goes on: {st}");
    let audit: Value = get_json(&c, &format!("{}/api/audit?action=footage.retention", s.url)).await;
    assert!(
        !audit["entries"].as_array().unwrap().is_empty(),
        "retention ran and was audited"
    );
    stop(s);
    let segs = check_files_with(&disk.path, &db, 1, false, false).await;
    assert!(
        segs.last().unwrap().end_ms > full_at + 5000,
        "footage after the disk filled: {segs:?}"
    );
    assert!(
        segs[0].start_ms > full_at - 60_000 || segs.len() < 40,
        "the oldest footage went"
    );
    drop(disk);
}

/// Footage issue: record a real camera for about a minute with a pause in it, then list
/// spans and gaps, export an inner 20 s range and a range across the gap, and check the
/// files with ffprobe/ffmpeg, byte ranges, ETags, snapshots and the audit log.
#[tokio::test(flavor = "multi_thread")]
async fn recorded_footage_is_listed_and_exported() {
    let cam = TestCamera::start(&["--audio", "aac"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 10, &[]);
    let s = serve(dir.path(), &cfg);
    let c = client();
    assert_eq!(login(&c, &s.url, "admin", ADMIN_PW).await, 200);
    let r = c
        .post(format!("{}/api/cameras", s.url))
        .json(&serde_json::json!({"name": "Cổng", "url": cam.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    wait_recording(&s, id, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(38)).await;
    let pause = |rec: bool| {
        c.patch(format!("{}/api/cameras/{id}", s.url))
            .json(&serde_json::json!({ "record": rec }))
            .send()
    };
    assert_eq!(pause(false).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(pause(true).await.unwrap().status(), 200);
    wait_recording(&s, id, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(16)).await;
    let segs = segments(dir.path(), id).await;
    let first_start = segs[0].start_ms;
    let now = now_ms();

    // Spans and the gap.
    let list: Value = get_json(
        &c,
        &format!(
            "{}/api/cameras/{id}/recordings?start={}&end={}",
            s.url,
            rfc(first_start - 5000),
            rfc(now)
        ),
    )
    .await;
    let spans = list["spans"].as_array().unwrap();
    let gaps = list["gaps"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{list}");
    let ms = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let (a_end, b_start) = (ms(&spans[0]["end"]), ms(&spans[1]["start"]));
    assert!(b_start - a_end >= 5000, "{list}");
    assert!(
        gaps.iter()
            .any(|g| ms(&g["start"]) == a_end && ms(&g["end"]) == b_start),
        "{list}"
    );
    assert_eq!(spans[0]["video_codec"], "h264");
    assert_eq!(spans[0]["audio_codec"], "aac");

    // An inner 20 s range.
    let (x0, x1) = (first_start + 2_500, first_start + 22_500);
    let url = format!(
        "{}/api/cameras/{id}/export.mp4?start={}&end={}",
        s.url,
        rfc(x0),
        rfc(x1)
    );
    let (status, h, full) = get_bytes(&c, &url, None).await;
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "video/mp4");
    let disp = h["content-disposition"].to_str().unwrap();
    assert!(
        disp.starts_with("attachment; filename=\"C-ng_")
            && disp.contains("filename*=UTF-8''C%E1%BB%95ng_"),
        "{disp}"
    );
    let clip = dir.path().join("clip.mp4");
    std::fs::write(&clip, &full).unwrap();
    let p = ffprobe(&clip);
    let dur: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((dur - 20.0).abs() <= 0.04, "duration {dur}");
    assert!(decode_errors(&clip).is_empty(), "{}", decode_errors(&clip));
    let frames = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&clip)
        .output()
        .unwrap();
    let frames: i64 = String::from_utf8_lossy(&frames.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!((frames - 500).abs() <= 1, "20 s at 25 fps: {frames} frames");
    assert_eq!(stream(&p, "audio").unwrap()["codec_name"], "aac");

    // Byte ranges are exactly slices of the whole; HEAD, ETag and 304.
    for (range, want) in [
        ("bytes=0-99", 0..100),
        ("bytes=1000-5000", 1000..5001),
        ("bytes=-100", full.len() - 100..full.len()),
    ] {
        let (status, h, part) = get_bytes(&c, &url, Some(range)).await;
        assert_eq!(status, 206, "{range}");
        assert_eq!(part, full[want.clone()], "{range}");
        assert_eq!(
            h["content-range"],
            format!("bytes {}-{}/{}", want.start, want.end - 1, full.len())
        );
    }
    let (status, h, _) = get_bytes(&c, &url, Some(&format!("bytes={}-", full.len() + 10))).await;
    assert_eq!(status, 416);
    assert_eq!(h["content-range"], format!("bytes */{}", full.len()));
    let head = c.head(&url).send().await.unwrap();
    assert_eq!(
        head.headers()["content-length"],
        full.len().to_string().as_str()
    );
    let etag = head.headers()["etag"].to_str().unwrap().to_owned();
    let again = c
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304, "same range, same ETag");

    // The same file for a <video> element: inline, byte ranges, audited as playback.
    let purl = url.replace("/export.mp4?", "/playback.mp4?");
    let (status, h, head) = get_bytes(&c, &purl, Some("bytes=0-")).await;
    assert_eq!(status, 206);
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
    assert_eq!(head, full, "playback and export serve the same bytes");

    // Snapshots: the frame at a time, as JPEG; the same picture ffmpeg decodes from the
    // export at that offset (the clock overlay changes each second, so a wrong frame differs).
    let snap_url =
        |at: i64, w: &str| format!("{}/api/cameras/{id}/snapshot.jpg?at={}{w}", s.url, rfc(at));
    let r = c.get(snap_url(x0 + 5_000, "")).send().await.unwrap();
    if xaso_pipelines::available() {
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        let snap = dir.path().join("snap.jpg");
        std::fs::write(&snap, r.bytes().await.unwrap()).unwrap();
        let p = ffprobe(&snap);
        assert_eq!(
            (
                p["streams"][0]["codec_name"].as_str(),
                p["streams"][0]["width"].as_i64()
            ),
            (Some("mjpeg"), Some(640))
        );
        // `at` may fall on a frame boundary: compare with the frames either side of 5 s.
        let psnr_with = |ss: &str| -> f64 {
            let reference = dir.path().join(format!("ref{ss}.png"));
            let o = Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-y", "-ss", ss, "-i"])
                .arg(&clip)
                .args(["-frames:v", "1"])
                .arg(&reference)
                .output()
                .unwrap();
            assert!(o.status.success());
            let o = Command::new("ffmpeg")
                .args(["-nostdin", "-i"])
                .arg(&snap)
                .arg("-i")
                .arg(&reference)
                .args(["-lavfi", "psnr", "-f", "null", "-"])
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&o.stderr).into_owned();
            log.split("average:")
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no PSNR in {log}"))
        };
        let psnr = psnr_with("4.96").max(psnr_with("5"));
        // JPEG (GStreamer) against PNG (ffmpeg) of the same frame measured 23-28 dB here; a
        // blank, grey or garbled picture is far below 20 dB.
        assert!(
            psnr >= 20.0,
            "snapshot differs from the frame at that time: PSNR {psnr}"
        );
        let r = c
            .get(snap_url(x0 + 5_000, "&width=320"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        std::fs::write(&snap, r.bytes().await.unwrap()).unwrap();
        assert_eq!(ffprobe(&snap)["streams"][0]["width"], 320);
    } else {
        assert_eq!(r.status(), 501, "without the gstreamer feature");
    }

    // Across the gap: both sides, and the file's timeline is wall-clock time.
    let (g0, g1) = (a_end - 3000, b_start + 3000);
    let gap_url = format!(
        "{}/api/cameras/{id}/export.mp4?start={}&end={}",
        s.url,
        rfc(g0),
        rfc(g1)
    );
    let (status, _, bytes) = get_bytes(&c, &gap_url, None).await;
    assert_eq!(status, 200);
    let gclip = dir.path().join("gap.mp4");
    std::fs::write(&gclip, &bytes).unwrap();
    let dur: f64 = ffprobe(&gclip)["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (dur * 1000.0 - (g1 - g0) as f64).abs() <= 100.0,
        "gap clip {dur} s for {} ms",
        g1 - g0
    );
    let errs = decode_errors(&gclip);
    assert!(
        errs.is_empty(),
        "the clip across the gap does not decode cleanly: {errs}"
    );

    // Bad input.
    let bad = |q: String| {
        c.get(format!("{}/api/cameras/{id}/export.mp4?{q}", s.url))
            .send()
    };
    for (q, code) in [
        (format!("start={}&end={}", rfc(x1), rfc(x0)), 400),
        (
            format!(
                "start={}&end={}",
                rfc(now + 3_600_000),
                rfc(now + 7_200_000)
            ),
            400,
        ),
        (format!("start=yesterday&end={}", rfc(x1)), 400),
        (
            format!("start={}&end={}", rfc(x0 - 25 * 3_600_000), rfc(x1)),
            400,
        ),
        (
            format!(
                "start={}&end={}",
                rfc(first_start - 600_000),
                rfc(first_start - 300_000)
            ),
            404,
        ),
    ] {
        let r = bad(q.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), code, "{q}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"]["message"].is_string(), "{q}: {v}");
    }
    let r = c
        .get(format!(
            "{}/api/cameras/999/export.mp4?start={}&end={}",
            s.url,
            rfc(x0),
            rfc(x1)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A reviewer without a grant is refused, and the attempt is audited.
    let r = c
        .post(format!("{}/api/users", s.url))
        .json(&serde_json::json!({"username": "reviewer1", "password": "reviewer-pass-1", "role": "reviewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rc = client();
    assert_eq!(
        login(&rc, &s.url, "reviewer1", "reviewer-pass-1").await,
        200
    );
    assert_eq!(rc.get(&url).send().await.unwrap().status(), 403);
    let audit: Value = get_json(&c, &format!("{}/api/audit?camera={id}", s.url)).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"footage.export_denied"), "{actions:?}");
    assert!(
        actions.iter().filter(|a| **a == "footage.export").count() >= 2,
        "{actions:?}"
    );
    assert!(actions.contains(&"footage.playback"), "{actions:?}");
    if xaso_pipelines::available() {
        assert!(actions.contains(&"footage.snapshot"), "{actions:?}");
    }
    stop(s);
}
