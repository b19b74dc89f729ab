//! WHEP load client: N receive-only WebRTC viewers of one camera, on the server's own
//! WebRTC library (str0m, through `xaso_sfu::viewer`), each with its own UDP socket on
//! 127.0.0.1. Every viewer checks that RTP arrives in order without gaps and that the
//! H.264 payloads reassemble into whole frames; at the end each `DELETE`s its session.
//!
//!     cargo run --release --example whep_load -- URL TOKEN [VIEWERS] [SECONDS]
//!
//! URL is a camera's WHEP endpoint (`http://127.0.0.1:8080/api/cameras/1/whep`), TOKEN an
//! API token (`POST /api/tokens`). Prints one line per viewer and a JSON summary; exits 1
//! if any viewer failed to connect, was dropped, lost packets or got a broken frame.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use xaso_sfu::viewer::{Viewer, ViewerStats};

#[derive(Debug, Clone)]
pub struct Report {
    pub stats: ViewerStats,
    /// From the POST to the first whole video frame.
    pub first_frame: Option<Duration>,
    pub deleted: bool,
}

impl Report {
    /// Ends the viewer and counts what it is still missing.
    pub fn end(mut v: Viewer, first_frame: Option<Duration>, deleted: bool) -> Report {
        v.disconnect();
        v.finish();
        Report {
            stats: v.stats,
            first_frame,
            deleted,
        }
    }

    pub fn ok(&self) -> bool {
        self.stats.connected
            && !self.stats.disconnected
            && self.stats.frames > 0
            && self.stats.gaps == 0
            && self.stats.bad_frames == 0
            && self.deleted
    }
}

/// One viewer for `secs` seconds (offering H.265 besides H.264).
pub async fn viewer(url: String, token: String, secs: u64) -> Result<Report, String> {
    viewer_with(url, token, secs, true).await
}

/// One viewer; `h265: false` offers H.264 alone (a browser without H.265).
pub async fn viewer_with(
    url: String,
    token: String,
    secs: u64,
    h265: bool,
) -> Result<Report, String> {
    let sock = bind("127.0.0.1:0".parse().expect("an address")).await?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let (mut v, offer) = Viewer::offer_codecs(t0, local, true, h265);
    let http = reqwest::Client::new();
    let res = http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status().as_u16() != 201 {
        let s = res.status();
        return Err(format!(
            "WHEP answered {s}: {}",
            res.text().await.unwrap_or_default()
        ));
    }
    let location = res
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or("no Location")?
        .to_string();
    let answer = res.text().await.map_err(|e| e.to_string())?;
    v.answer(&answer)?;
    let first_frame = receive(&mut v, &sock, t0, t0 + Duration::from_secs(secs)).await;
    let base: SocketAddr = {
        let u = reqwest::Url::parse(&url).map_err(|e| e.to_string())?;
        u.socket_addrs(|| None)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or("no address")?
    };
    let deleted = http
        .delete(format!("http://{base}{location}"))
        .bearer_auth(&token)
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() == 204);
    Ok(Report::end(v, first_frame, deleted))
}

/// A viewer's UDP socket, with a 1 MB receive buffer as browsers set (a keyframe arrives
/// as a burst of datagrams; the kernel's default buffer holds about 90 of them).
pub async fn bind(addr: SocketAddr) -> Result<UdpSocket, String> {
    let sock = UdpSocket::bind(addr).await.map_err(|e| e.to_string())?;
    socket2::SockRef::from(&sock)
        .set_recv_buffer_size(1 << 20)
        .map_err(|e| e.to_string())?;
    Ok(sock)
}

/// Moves `v`'s datagrams and time on `sock` until `end` or a disconnection; returns when
/// (after `t0`) the first whole video frame arrived.
pub async fn receive(
    v: &mut Viewer,
    sock: &UdpSocket,
    t0: Instant,
    end: Instant,
) -> Option<Duration> {
    let local = sock.local_addr().ok()?;
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    let mut first_frame = None;
    v.handle_timeout(Instant::now(), &mut out);
    loop {
        for t in out.drain(..) {
            let _ = sock.send_to(&t.contents, t.destination).await;
        }
        if first_frame.is_none() && v.stats.frames > 0 {
            first_frame = Some(t0.elapsed());
        }
        let now = Instant::now();
        if now >= end || v.stats.disconnected {
            return first_frame;
        }
        let wake = v.timeout().min(end);
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    v.handle_receive(Instant::now(), from, local, &buf[..n], &mut out);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => v.handle_timeout(Instant::now(), &mut out),
        }
    }
}

/// `n` viewers at once; their reports in order.
pub async fn run(url: &str, token: &str, n: usize, secs: u64) -> Vec<Result<Report, String>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(viewer(url.to_string(), token.to_string(), secs)))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.map_err(|e| e.to_string()).and_then(|r| r));
    }
    out
}

#[allow(dead_code)]
#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: whep_load URL TOKEN [VIEWERS] [SECONDS]");
        std::process::exit(2);
    }
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(60);
    xaso_sfu::init_crypto();
    let reports = run(&args[0], &args[1], n, secs).await;
    std::process::exit(summarize(n, secs, &reports));
}

/// Prints a line per viewer and the JSON summary; the exit code (1 if any viewer failed).
pub fn summarize(n: usize, secs: u64, reports: &[Result<Report, String>]) -> i32 {
    let mut failed = 0;
    let mut first: Vec<f64> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        match r {
            Ok(r) => {
                if !r.ok() {
                    failed += 1;
                }
                if let Some(f) = r.first_frame {
                    first.push(f.as_secs_f64() * 1000.0);
                }
                println!(
                    "viewer {i}: {} frames, {} video packets, {} audio packets, {} gaps, {} reordered, {} bad frames, first frame {:?}, deleted {}",
                    r.stats.frames,
                    r.stats.video_packets,
                    r.stats.audio_packets,
                    r.stats.gaps,
                    r.stats.reordered,
                    r.stats.bad_frames,
                    r.first_frame,
                    r.deleted
                );
            }
            Err(e) => {
                failed += 1;
                println!("viewer {i}: FAILED: {e}");
            }
        }
    }
    first.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        first
            .get(((first.len() as f64 - 1.0) * p).round() as usize)
            .copied()
    };
    let json = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.1}"));
    println!(
        "{{\"viewers\": {n}, \"seconds\": {secs}, \"failed\": {failed}, \"first_frame_ms_p50\": {}, \"first_frame_ms_max\": {}}}",
        json(pct(0.5)),
        json(first.last().copied())
    );
    i32::from(failed > 0)
}
