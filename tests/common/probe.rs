//! ffprobe on what the server serves (MP4 files, captures of live streams).

use serde_json::Value;

/// The first video stream's `entries` (ffprobe `-show_entries stream=…`) of an MP4 file.
pub fn probe_video(path: &std::path::Path, entries: &str, count_frames: bool) -> Value {
    let mut cmd = std::process::Command::new("ffprobe");
    cmd.args(["-v", "error", "-select_streams", "v:0"]);
    if count_frames {
        cmd.arg("-count_frames");
    }
    let out = cmd
        .args(["-show_entries", &format!("stream={entries}"), "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    p["streams"][0].clone()
}
