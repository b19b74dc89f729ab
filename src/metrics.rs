//! Prometheus metrics: request counts and latency by route (the matched route pattern, never
//! the raw path, so ids do not explode the label space), rendered at `GET /metrics`.
//! Later subsystems add their own series to [`Metrics`].

use crate::api::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(String, String), RouteStats>>,
}

#[derive(Default)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    sum_secs: f64,
    count: u64,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        let mut m = self.http.lock().expect("metrics lock");
        let s = m.entry((method.to_owned(), route.to_owned())).or_default();
        *s.by_status.entry(status).or_default() += 1;
        for (b, le) in s.buckets.iter_mut().zip(BUCKETS) {
            if secs <= le {
                *b += 1;
            }
        }
        s.sum_secs += secs;
        s.count += 1;
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP xaso_build_info The running xaso version.");
        let _ = writeln!(out, "# TYPE xaso_build_info gauge");
        let _ = writeln!(
            out,
            "xaso_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let m = self.http.lock().expect("metrics lock");
        let _ = writeln!(
            out,
            "# HELP xaso_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE xaso_http_requests_total counter");
        for ((method, route), s) in m.iter() {
            for (status, n) in &s.by_status {
                let _ = writeln!(
                    out,
                    "xaso_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP xaso_http_request_duration_seconds HTTP request latency by route."
        );
        let _ = writeln!(out, "# TYPE xaso_http_request_duration_seconds histogram");
        for ((method, route), s) in m.iter() {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            for (n, le) in s.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "xaso_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "xaso_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "xaso_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_secs
            );
            let _ = writeln!(
                out,
                "xaso_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: times every request and files it under its matched route.
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = match req.extensions().get::<MatchedPath>() {
        Some(p) => p.as_str().to_owned(),
        None if req.uri().path().starts_with("/api/") => "/api/(unmatched)".to_owned(),
        None => "(static)".to_owned(),
    };
    let start = st.clocks.monotonic();
    let resp = next.run(req).await;
    let secs = st
        .clocks
        .monotonic()
        .saturating_duration_since(start)
        .as_secs_f64();
    st.metrics
        .observe(&method, &route, resp.status().as_u16(), secs);
    resp
}

/// `GET /metrics`.
pub async fn render(State(st): State<AppState>) -> impl IntoResponse {
    let mut text = st.metrics.render();
    if let Some(r) = &st.recorder {
        render_recorder(&mut text, r);
    }
    if let Some(l) = &st.live {
        render_live(&mut text, l);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Live view: sessions, frames dropped on the way to the forwarding task, and the
/// forwarding latency (frame from the camera task → its datagrams sent to every viewer).
fn render_live(out: &mut String, l: &crate::live::Live) {
    use std::sync::atomic::Ordering::Relaxed;
    scalars(
        out,
        "gauge",
        &[
            (
                "xaso_live_sessions",
                "WebRTC viewers connected now.",
                l.session_count() as u64,
            ),
            (
                "xaso_live_pulled_streams",
                "Camera streams pulled for live view alone now (sub-streams, cameras not recorded).",
                l.sources.get().map_or(0, |s| s.count()) as u64,
            ),
            (
                "xaso_live_mse_sessions",
                "Viewers on the MSE fallback (fragmented MP4 over WebSocket) now.",
                l.mse_session_count() as u64,
            ),
        ],
    );
    scalars(
        out,
        "counter",
        &[
            (
                "xaso_live_frames_dropped_total",
                "Frames not forwarded because the live queue was full.",
                l.dropped.load(Relaxed),
            ),
            (
                "xaso_live_timer_wakeups_total",
                "Times the live task woke for the forwarding core's timers.",
                l.timer_wakeups.load(Relaxed),
            ),
            (
                "xaso_live_datagrams_received_total",
                "Datagrams received from viewers (UDP and ICE-TCP).",
                l.datagrams_in.load(Relaxed),
            ),
            (
                "xaso_meeting_audio_packets_received_total",
                "Microphone packets received from meeting participants.",
                l.meeting_audio_in.load(Relaxed),
            ),
            (
                "xaso_meeting_red_packets_received_total",
                "Of those, packets with redundant audio (RED, RFC 2198).",
                l.meeting_red_in.load(Relaxed),
            ),
            (
                "xaso_meeting_keyframe_requests_total",
                "Keyframe requests (PLI) sent to meeting participants: many mean pictures are being lost.",
                l.meeting_keyframe_requests.load(Relaxed),
            ),
        ],
    );
    histogram(
        out,
        "xaso_live_forward_seconds",
        "From a camera frame handed to live view to its last datagram sent to every viewer.",
        &l.latency,
    );
    histogram(
        out,
        "xaso_live_receive_wait_seconds",
        "From a datagram reaching this host (the kernel's stamp) to the forwarding core: long waits mean the box is short of CPU.",
        &l.receive_wait,
    );
}

/// One of the live task's histograms, in seconds.
fn histogram(out: &mut String, name: &str, help: &str, h: &crate::live::Histogram) {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cum = 0;
    for (i, b) in crate::live::LATENCY_BUCKETS_US.iter().enumerate() {
        cum += h.counts[i].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cum}", *b as f64 / 1e6);
    }
    cum += h.counts[crate::live::LATENCY_BUCKETS_US.len()].load(Relaxed);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
    let _ = writeln!(
        out,
        "{name}_sum {}\n{name}_count {cum}",
        h.sum_us.load(Relaxed) as f64 / 1e6
    );
}

type StatusField = fn(&crate::recorder::CameraStatus) -> f64;

/// Per-camera series (labelled by camera id) and the disk writer's counters.
fn render_recorder(out: &mut String, r: &crate::recorder::Recorder) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut cams: Vec<_> = r.statuses().into_iter().collect();
    cams.sort_by_key(|(id, _)| *id);
    let series: [(&str, &str, &str, StatusField); 7] = [
        (
            "xaso_camera_streaming",
            "gauge",
            "1 while the camera delivers frames.",
            |s| f64::from(u8::from(s.state == "streaming")),
        ),
        (
            "xaso_camera_recording",
            "gauge",
            "1 while the camera's footage is being written.",
            |s| f64::from(u8::from(s.recording)),
        ),
        (
            "xaso_camera_fps",
            "gauge",
            "Video frames per second received.",
            |s| s.fps,
        ),
        (
            "xaso_camera_bitrate_kbps",
            "gauge",
            "Kilobits per second received.",
            |s| s.bitrate_kbps,
        ),
        (
            "xaso_camera_frames_received_total",
            "counter",
            "Frames received.",
            |s| s.frames_received as f64,
        ),
        (
            "xaso_camera_frames_dropped_total",
            "counter",
            "Frames not recorded because the disk could not keep up.",
            |s| s.frames_dropped as f64,
        ),
        (
            "xaso_camera_reconnects_total",
            "counter",
            "Times the camera connection was lost and retried.",
            |s| s.reconnects as f64,
        ),
    ];
    for (name, kind, help, f) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (id, s) in &cams {
            let _ = writeln!(out, "{name}{{camera=\"{id}\"}} {}", f(s));
        }
    }
    let d = r.disk_stats();
    scalars(
        out,
        "counter",
        &[
            (
                "xaso_disk_bytes_written_total",
                "Footage bytes written.",
                d.bytes_written.load(Relaxed),
            ),
            (
                "xaso_disk_write_errors_total",
                "Failed footage writes.",
                d.write_errors.load(Relaxed),
            ),
            (
                "xaso_disk_syncs_total",
                "Syncs of footage to disk (one syncfs per batch of files, or fdatasync).",
                d.syncs.load(Relaxed),
            ),
            (
                "xaso_frames_dropped_total",
                "Frames dropped because the disk queue was full.",
                r.dropped_total.load(Relaxed),
            ),
        ],
    );
}

/// Series with one value each, of the same Prometheus `kind`: (name, help, value).
fn scalars(out: &mut String, kind: &str, series: &[(&str, &str, u64)]) {
    for (name, help, v) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.observe("GET", "/api/users", 200, 0.002);
        m.observe("GET", "/api/users", 403, 0.5);
        let t = m.render();
        assert!(t.contains(
            "xaso_http_requests_total{method=\"GET\",route=\"/api/users\",status=\"200\"} 1"
        ));
        assert!(t.contains(
            "xaso_http_requests_total{method=\"GET\",route=\"/api/users\",status=\"403\"} 1"
        ));
        assert!(t.contains("xaso_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/users\",le=\"0.0025\"} 1"));
        assert!(t.contains("xaso_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/users\",le=\"1\"} 2"));
        assert!(t.contains(
            "xaso_http_request_duration_seconds_count{method=\"GET\",route=\"/api/users\"} 2"
        ));
    }
}
