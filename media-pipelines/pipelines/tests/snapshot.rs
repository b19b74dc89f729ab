//! Decoding with real GStreamer: the last frame of an MP4 made by ffmpeg, as JPEG.

#![cfg(feature = "gstreamer")]

use std::process::Command;

fn clip(dir: &std::path::Path, codec: &str) -> Vec<u8> {
    let out = dir.join(format!("clip-{codec}.mp4"));
    let o = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-t",
            "2",
            "-c:v",
            codec,
        ])
        .args([
            "-g",
            "25",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ])
        .arg(&out)
        .output()
        .expect("ffmpeg (scripts/install-test-deps)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out).unwrap()
}

fn jpeg_size(jpeg: &[u8]) -> (u16, u16) {
    // The SOF0/SOF2 marker carries height then width.
    let mut i = 2;
    while i + 9 < jpeg.len() {
        assert_eq!(jpeg[i], 0xff, "JPEG marker");
        let marker = jpeg[i + 1];
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if (0xc0..=0xc2).contains(&marker) {
            let h = u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]);
            let w = u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]);
            return (w, h);
        }
        i += 2 + len;
    }
    panic!("no SOF marker");
}

#[test]
fn last_frame_of_h264_and_h265_as_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    for codec in ["libx264", "libx265"] {
        let mp4 = clip(dir.path(), codec);
        let jpeg = xaso_pipelines::last_frame_jpeg(&mp4, None).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "{codec}: JPEG SOI");
        assert_eq!(jpeg_size(&jpeg), (320, 240), "{codec}");
        let small = xaso_pipelines::last_frame_jpeg(&mp4, Some(160)).unwrap();
        assert_eq!(
            jpeg_size(&small),
            (160, 120),
            "{codec}: scaled, aspect kept"
        );
    }
}

#[test]
fn garbage_is_an_error_not_a_hang() {
    let e = xaso_pipelines::last_frame_jpeg(b"not an mp4 at all", None).unwrap_err();
    assert!(
        matches!(e, xaso_pipelines::PipelineError::Decode(_)),
        "{e:?}"
    );
}
