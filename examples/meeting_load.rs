//! Meeting load client: N participants join one meeting through its guest link, each over
//! its own UDP socket on 127.0.0.1 and the signalling WebSocket, on the server's own WebRTC
//! library (`xaso_sfu::participant`). Each publishes a microphone (50 packets a second
//! with an audio level) and a camera (25 frames a second of `--kbps`), and receives the
//! others through its slots as the page does; at the end it reports, per participant, the
//! frames received per slot, packets never received, and the added latency (a packet's
//! send stamp to its arrival at another participant, all in this one process).
//!
//!     cargo run --release --example meeting_load -- WS_URL N SECONDS [KBPS] [--simulcast] [--tile-height PX]
//!
//! WS_URL is the meeting's socket with its link token:
//! `ws://127.0.0.1:8080/api/meetings/1/ws?t=TOKEN`; or several, comma-separated, each as
//! `LABEL=URL` (N participants at each: one meeting across several nodes), which prints,
//! after the summary, one JSON line per participant (`"per_participant"`: its label, tag,
//! bytes a second received per publisher tag and layer, and p50/p99 added latency per
//! publisher tag, all in this one process's clock). With `--simulcast` each camera goes
//! out in three layers (a quarter, half and all of KBPS) and the participant tells the
//! server its tiles are PX high (default 360: a 3×3 grid on a laptop), so that the server
//! picks the layers. Each receives at most 9 videos ("last N"). Prints a JSON summary,
//! with the lowest received frame rate of any slot over the last SECONDS - 5 s.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;
use xaso_sfu::participant::{Mid, Offer, Participant, SlotStats};

#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub connected: bool,
    pub disconnected: bool,
    /// Per video slot: (publisher tags, frames, holes).
    pub video: Vec<(Vec<u8>, u64, u64)>,
    /// The mids of the video slots, in the order of `video`.
    pub video_mids: Vec<String>,
    /// Per audio slot: (publisher tags, packets, holes).
    pub audio: Vec<(Vec<u8>, u64, u64)>,
    /// Added latency samples, microseconds (video and audio).
    pub latency_us: Vec<u64>,
    /// The last `slots` message.
    pub slots: Value,
    pub first_frame: Option<Duration>,
    /// Video frames sent.
    pub frames_sent: u64,
    /// Per video slot carrying someone: frames received per second after the warm-up.
    pub fps: Vec<f64>,
    /// Per video slot: the simulcast layer of its last packet (1 `l`, 2 `m`, 3 `h`, 0 none).
    pub layers: Vec<Option<u8>>,
    /// Per video slot: the longest wait between two frames.
    pub video_gaps: Vec<Duration>,
    /// The largest added latency of each second since the run's epoch, over all slots,
    /// microseconds.
    pub worst_by_second: std::collections::BTreeMap<u64, u64>,
    /// After the warm-up, over all slots: payload bytes per (publisher tag, layer), and
    /// added latency samples per publisher tag.
    pub bytes_by: std::collections::BTreeMap<(u8, u8), u64>,
    pub latency_by: std::collections::BTreeMap<u8, Vec<u64>>,
}

/// How each participant of a run behaves.
#[derive(Clone, Debug)]
pub struct Options {
    pub secs: u64,
    /// When every participant of the run stops (`None`: `secs` after its own start), so
    /// that the last to join still receives the others until its counting window ends.
    pub end: Option<Instant>,
    pub kbps: u64,
    pub simulcast: bool,
    /// The tile height told to the server (`view`), when simulcast.
    pub tile_height: u32,
}

/// Frames are counted for [`Report::fps`] after this long.
pub const WARM_UP: Duration = Duration::from_secs(5);
/// Between two participants' joins.
pub const JOIN_GAP: Duration = Duration::from_millis(50);

impl Report {
    pub fn video_frames(&self) -> u64 {
        self.video.iter().map(|v| v.1).sum()
    }
}

fn summary_of(p: &Participant, mids: &[Mid]) -> Vec<(Vec<u8>, u64, u64)> {
    mids.iter()
        .map(|m| {
            let s: &SlotStats = &p.slots[m];
            let count = if p.video_slots.contains(m) {
                s.frames
            } else {
                s.packets
            };
            (s.publishers.clone(), count, s.holes())
        })
        .collect()
}

/// A participant's connection: TCP, or TLS to a node with a self-signed key.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}
type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

/// Opens the meeting's socket: `ws://…`, or `wss://…#sha256=HEX` at a node that serves HTTPS
/// with a self-signed key, HEX its key pin (the last 32 bytes of a join token it issued).
async fn connect(url: &str) -> Result<Ws, String> {
    let (url, pin) = match url.split_once("#sha256=") {
        Some((u, p)) => (u, Some(p)),
        None => (url, None),
    };
    let authority = url
        .split_once("://")
        .map(|x| x.1)
        .and_then(|r| r.split('/').next())
        .ok_or("a socket URL without a host")?;
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect {authority}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match (url.starts_with("wss://"), pin) {
        (false, _) => Box::new(tcp),
        (true, None) => return Err("wss:// needs #sha256=PIN (the node's key)".into()),
        (true, Some(hex_pin)) => {
            let mut pin = [0u8; 32];
            hex::decode_to_slice(hex_pin, &mut pin).map_err(|e| format!("pin: {e}"))?;
            let cfg = xaso::federation::token::client_config(xaso::federation::token::KeyPin(pin))
                .map_err(|e| e.to_string())?;
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
            let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            Box::new(tls)
        }
    };
    tokio_tungstenite::client_async(url, io)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| format!("websocket: {e}"))
}

async fn recv_json(ws: &mut Ws, want: &str) -> Result<Value, String> {
    use futures::StreamExt;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| format!("no {want:?} message within 10 s"))?
            .ok_or("the socket closed")?
            .map_err(|e| e.to_string())?;
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
            if v["type"] == want {
                return Ok(v);
            }
            if v["type"] == "error" {
                return Err(format!("server error: {v}"));
            }
        }
    }
}

/// One participant for `secs` seconds, with `slots` video and audio slots.
pub async fn participant(
    ws_url: String,
    name: String,
    tag: u8,
    slots: usize,
    o: Options,
    epoch: Instant,
) -> Result<Report, String> {
    let sock = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    participant_on(sock, ws_url, name, tag, slots, o, epoch).await
}

/// As [`participant`], on a socket the caller bound (to know its port beforehand).
pub async fn participant_on(
    sock: UdpSocket,
    ws_url: String,
    name: String,
    tag: u8,
    slots: usize,
    o: Options,
    epoch: Instant,
) -> Result<Report, String> {
    let (secs, kbps) = (o.secs, o.kbps);
    use futures::SinkExt;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let mut ws = connect(&ws_url).await?;
    ws.send(Message::Text(
        json!({"type": "join", "name": name}).to_string().into(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    let welcome = recv_json(&mut ws, "welcome").await?;
    let me = welcome["you"].clone();
    let start = Instant::now();
    let (mut p, offer, tracks) = Participant::offer_as(
        start,
        local,
        tag,
        Offer {
            simulcast: o.simulcast,
            ..Offer::slots(slots.min(9), slots)
        },
    );
    p.set_epoch(epoch);
    p.count_from = Some(start + WARM_UP);
    let labels: serde_json::Map<String, Value> = tracks
        .iter()
        .map(|(m, t)| (m.clone(), Value::from(t.as_str())))
        .collect();
    ws.send(Message::Text(
        json!({"type": "offer", "sdp": offer, "tracks": labels})
            .to_string()
            .into(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    let answer = recv_json(&mut ws, "answer").await?;
    p.answer(answer["sdp"].as_str().ok_or("answer without sdp")?)?;
    let end = o.end.unwrap_or(start + Duration::from_secs(secs));
    let mut signalling = Signalling {
        ws: &mut ws,
        me,
        options: &o,
        slots: Value::Null,
    };
    let sent = pump(&mut p, &sock, end, kbps, Some(&mut signalling)).await?;
    let (first_frame, frames_sent, slots_msg) = (sent.first_frame, sent.frames, signalling.slots);
    let _ = ws
        .send(Message::Text(json!({"type": "leave"}).to_string().into()))
        .await;
    let _ = ws.close(None).await;
    p.disconnect();
    let counted = end.saturating_duration_since(start + WARM_UP);
    Ok(Report::of(
        &name,
        &p,
        counted,
        first_frame,
        frames_sent,
        slots_msg,
    ))
}

impl Report {
    /// What `p` received; frames per second over `counted`, the time from its
    /// [`Participant::count_from`] to the end.
    pub fn of(
        name: &str,
        p: &Participant,
        counted: Duration,
        first_frame: Option<Duration>,
        frames_sent: u64,
        slots: Value,
    ) -> Report {
        Report {
            name: name.to_string(),
            connected: p.connected,
            disconnected: p.disconnected,
            video: summary_of(p, &p.video_slots),
            video_mids: p.video_slots.iter().map(|m| m.to_string()).collect(),
            audio: summary_of(p, &p.audio_slots),
            latency_us: p
                .slots
                .values()
                .flat_map(|s| s.latency_us.iter().copied())
                .collect(),
            slots,
            first_frame,
            frames_sent,
            layers: p
                .video_slots
                .iter()
                .map(|m| p.slots[m].last_layer)
                .collect(),
            bytes_by: p.slots.values().flat_map(|s| s.bytes_by.iter()).fold(
                std::collections::BTreeMap::new(),
                |mut m, (k, b)| {
                    *m.entry(*k).or_default() += *b;
                    m
                },
            ),
            latency_by: p.slots.values().flat_map(|s| s.latency_by.iter()).fold(
                std::collections::BTreeMap::new(),
                |mut m: std::collections::BTreeMap<u8, Vec<u64>>, (k, v)| {
                    m.entry(*k).or_default().extend(v);
                    m
                },
            ),
            worst_by_second: p
                .slots
                .values()
                .flat_map(|s| s.worst_by_second.iter())
                .fold(std::collections::BTreeMap::new(), |mut m, (sec, us)| {
                    let w: &mut u64 = m.entry(*sec).or_default();
                    *w = (*w).max(*us);
                    m
                }),
            video_gaps: p
                .video_slots
                .iter()
                .map(|m| p.slots[m].longest_gap)
                .collect(),
            fps: p
                .video_slots
                .iter()
                .map(|m| &p.slots[m])
                .filter(|s| s.frames > 0)
                .map(|s| s.frames_counted as f64 / counted.as_secs_f64().max(1.0))
                .collect(),
        }
    }
}

/// `n` participants at once (joining 50 ms apart), each with enough slots for all others.
pub async fn run(ws_url: &str, n: usize, secs: u64, kbps: u64) -> Vec<Result<Report, String>> {
    let o = Options {
        secs,
        kbps,
        simulcast: false,
        tile_height: 360,
        end: None,
    };
    run_with(ws_url, n, o).await
}

/// As [`run`]; all participants stop together, `secs` after the last one's start.
pub async fn run_with(ws_url: &str, n: usize, mut o: Options) -> Vec<Result<Report, String>> {
    let epoch = Instant::now();
    o.end = Some(epoch + JOIN_GAP * n as u32 + Duration::from_secs(o.secs));
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = ws_url.to_string();
        tasks.push(tokio::spawn(participant(
            url,
            format!("Đại biểu {}", i + 1),
            (i % 250) as u8 + 1,
            n.saturating_sub(1).max(1),
            o.clone(),
            epoch,
        )));
        tokio::time::sleep(JOIN_GAP).await;
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    out
}

/// `n` participants at each of `urls` (label, socket), all in one meeting and one clock,
/// joining 50 ms apart and stopping together; each with its label and tag.
pub async fn run_many(
    urls: &[(String, String)],
    n: usize,
    mut o: Options,
) -> Vec<(String, u8, Result<Report, String>)> {
    let epoch = Instant::now();
    let all = urls.len() * n;
    o.end = Some(epoch + JOIN_GAP * all as u32 + Duration::from_secs(o.secs));
    let mut tasks = Vec::new();
    for (i, (label, url)) in urls
        .iter()
        .flat_map(|u| std::iter::repeat_n(u, n))
        .enumerate()
    {
        let tag = (i % 250) as u8 + 1;
        let name = format!(
            "{} {}",
            if label.is_empty() {
                "Đại biểu"
            } else {
                label
            },
            i + 1
        );
        let t = tokio::spawn(participant(
            url.clone(),
            name,
            tag,
            all.saturating_sub(1).max(1),
            o.clone(),
            epoch,
        ));
        tasks.push((label.clone(), tag, t));
        tokio::time::sleep(JOIN_GAP).await;
    }
    let mut out = Vec::new();
    for (label, tag, t) in tasks {
        out.push((label, tag, t.await.unwrap_or_else(|e| Err(e.to_string()))));
    }
    out
}

/// The `p` quantile of `v` (sorted in place); 0 when empty.
pub fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub fn summarize(reports: &[Result<Report, String>]) -> Value {
    let mut lat: Vec<u64> = reports
        .iter()
        .flatten()
        .flat_map(|r| r.latency_us.iter().copied())
        .collect();
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    let all: Vec<f64> = reports
        .iter()
        .flatten()
        .flat_map(|r| r.fps.iter().copied())
        .collect();
    let mean_fps = all.iter().sum::<f64>() / all.len().max(1) as f64;
    json!({
        "participants": reports.len(),
        "failed": failed,
        "connected": reports.iter().flatten().filter(|r| r.connected).count(),
        "video_frames_received": reports.iter().flatten().map(Report::video_frames).sum::<u64>(),
        "video_frames_sent": reports.iter().flatten().map(|r| r.frames_sent).sum::<u64>(),
        "holes": reports.iter().flatten().flat_map(|r| r.video.iter().map(|v| v.2)).sum::<u64>(),
        "min_fps": reports.iter().flatten().flat_map(|r| r.fps.iter().copied()).fold(f64::INFINITY, f64::min),
        "mean_fps": mean_fps,
        "latency_ms": {
            "p50": percentile(&mut lat, 0.5) as f64 / 1000.0,
            "p99": percentile(&mut lat, 0.99) as f64 / 1000.0,
        },
    })
}

#[tokio::main]
#[allow(dead_code)]
async fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let simulcast = args.iter().any(|a| a == "--simulcast");
    args.retain(|a| a != "--simulcast");
    let mut tile_height = 360;
    if let Some(i) = args.iter().position(|a| a == "--tile-height") {
        tile_height = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .expect("--tile-height PX");
        args.drain(i..i + 2);
    }
    if args.len() < 4 {
        eprintln!("usage: meeting_load WS_URL N SECONDS [KBPS] [--simulcast] [--tile-height PX]");
        std::process::exit(2);
    }
    xaso_sfu::init_crypto();
    let n: usize = args[2].parse().expect("N");
    let secs: u64 = args[3].parse().expect("SECONDS");
    let kbps: u64 = args.get(4).map_or(500, |k| k.parse().expect("KBPS"));
    let o = Options {
        secs,
        kbps,
        simulcast,
        tile_height,
        end: None,
    };
    // Several sockets, or one with a label: one meeting across nodes.
    if args[1].contains(',') || !args[1].starts_with("ws") {
        let urls: Vec<(String, String)> = args[1]
            .split(',')
            .map(
                |x| match x.split_once('=').filter(|(l, _)| !l.contains('/')) {
                    Some((l, u)) => (l.to_string(), u.to_string()),
                    None => (String::new(), x.to_string()),
                },
            )
            .collect();
        let reports = run_many(&urls, n, o).await;
        let flat: Vec<Result<Report, String>> = reports.iter().map(|r| r.2.clone()).collect();
        println!("{}", summarize(&flat));
        let counted = secs.saturating_sub(WARM_UP.as_secs()).max(1) as f64;
        let per: Vec<Value> = reports
            .iter()
            .map(|(label, tag, r)| match r {
                Err(e) => json!({"label": label, "tag": tag, "error": e}),
                Ok(r) => json!({
                    "label": label,
                    "tag": tag,
                    "bytes_per_s": r.bytes_by.iter().map(|((t, l), b)| json!([t, l, *b as f64 / counted])).collect::<Vec<_>>(),
                    "latency_ms": r.latency_by.iter().map(|(t, v)| {
                        let mut v = v.clone();
                        json!([t, percentile(&mut v, 0.5) as f64 / 1e3, percentile(&mut v, 0.99) as f64 / 1e3, v.len()])
                    }).collect::<Vec<_>>(),
                    "fps": r.fps,
                }),
            })
            .collect();
        println!("{}", json!({ "per_participant": per }));
        return;
    }
    let reports = run_with(&args[1], n, o).await;
    for r in &reports {
        match r {
            Ok(r) => println!(
                "{}: connected={} frames={} first_frame={:?}",
                r.name,
                r.connected,
                r.video_frames(),
                r.first_frame
            ),
            Err(e) => println!("failed: {e}"),
        }
    }
    println!("{}", summarize(&reports));
}

/// Runs a participant's media for `secs` with no signalling socket (a WHIP publisher or
/// WHEP receiver, whose offer and answer went over HTTP); returns it for its counts.
pub async fn drive(p: Participant, sock: UdpSocket, secs: u64, kbps: u64) -> Participant {
    drive_until(p, sock, Instant::now() + Duration::from_secs(secs), kbps)
        .await
        .0
}

/// As [`drive`], until `end`; also says what it sent.
pub async fn drive_until(
    mut p: Participant,
    sock: UdpSocket,
    end: Instant,
    kbps: u64,
) -> (Participant, Sent) {
    let sent = pump(&mut p, &sock, end, kbps, None).await;
    let sent = sent.unwrap_or(Sent {
        frames: 0,
        first_frame: None,
    });
    (p, sent)
}

/// A meeting's signalling socket, as the media loop answers it.
struct Signalling<'a> {
    ws: &'a mut Ws,
    /// This participant's id in the meeting.
    me: Value,
    options: &'a Options,
    /// The last `slots` message.
    slots: Value,
}

impl Signalling<'_> {
    async fn next(s: &mut Option<&mut Signalling<'_>>) -> Option<Result<Message, String>> {
        use futures::StreamExt;
        match s {
            Some(s) => s.ws.next().await.map(|m| m.map_err(|e| e.to_string())),
            None => std::future::pending().await,
        }
    }

    /// Acts on a server message: `layers` pauses the layers nobody wants; `participants`
    /// (with simulcast) tells the server every other participant's tile height.
    async fn on(&mut self, p: &mut Participant, text: &str) {
        use futures::SinkExt;
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        match v["type"].as_str() {
            Some("slots") => self.slots = v,
            Some("layers") => {
                let active: Vec<&str> = v["active"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                p.paused = ["l", "m", "h"]
                    .into_iter()
                    .filter(|r| !active.contains(r))
                    .map(Into::into)
                    .collect();
            }
            Some("participants") if self.options.simulcast => {
                let h = self.options.tile_height;
                let tiles: serde_json::Map<String, Value> = v["list"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|x| x["id"] != self.me)
                    .map(|x| (x["id"].to_string(), json!({"w": h * 16 / 9, "h": h})))
                    .collect();
                let m = json!({"type": "view", "tiles": tiles}).to_string();
                let _ = self.ws.send(Message::Text(m.into())).await;
            }
            _ => {}
        }
    }
}

/// What [`pump`] sent and when the first frame came.
pub struct Sent {
    pub frames: u64,
    pub first_frame: Option<Duration>,
}

/// The media loop of one participant until `end`: a microphone packet every 20 ms and a
/// camera frame of `kbps` every 40 ms (a keyframe every 100 frames or when asked), what
/// arrives fed to the participant, and the meeting's signalling answered when there is
/// one. Fails only when that socket closes.
async fn pump(
    p: &mut Participant,
    sock: &UdpSocket,
    end: Instant,
    kbps: u64,
    mut signalling: Option<&mut Signalling<'_>>,
) -> Result<Sent, String> {
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let frame_bytes = (kbps * 1000 / 8 / 25) as usize;
    let (mut next_audio, mut next_video) = (start, start);
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    let mut sent = Sent {
        frames: 0,
        first_frame: None,
    };
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(sent);
        }
        if now >= next_audio {
            p.send_audio(now, &mut out);
            next_audio += Duration::from_millis(20);
        }
        if now >= next_video {
            if p.connected && kbps > 0 {
                sent.frames += 1;
            }
            p.send_video(now, 100, frame_bytes, &mut out);
            next_video += Duration::from_millis(40);
        }
        if p.timeout() <= now {
            p.handle_timeout(now, &mut out);
        }
        for t in out.drain(..) {
            let _ = sock.send_to(&t.contents, t.destination).await;
        }
        let wake = p.timeout().min(next_audio).min(next_video).min(end);
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    p.handle_receive(Instant::now(), from, local, &buf[..n], &mut out);
                    if sent.first_frame.is_none() && p.slots.values().any(|s| s.frames > 0) {
                        sent.first_frame = Some(start.elapsed());
                    }
                }
            }
            m = Signalling::next(&mut signalling) => match m {
                Some(Ok(Message::Text(t))) => {
                    if let Some(s) = signalling.as_deref_mut() {
                        s.on(p, &t).await;
                    }
                }
                Some(Ok(_)) => {}
                _ => return Err("the signalling socket closed".into()),
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}
