//! Helpers shared by the integration tests: starting a camera, running ffmpeg tools, a tiny
//! raw RTSP client, and a retina client that summarizes what it received.
#![allow(dead_code)]

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use xaso_simcam::{Clip, Config, SimCamera};

pub async fn start() -> SimCamera {
    start_with(Config::default()).await
}

pub async fn start_with(config: Config) -> SimCamera {
    SimCamera::start_with("127.0.0.1:0".parse().unwrap(), Clip::builtin(), config)
        .await
        .expect("start the simulated camera")
}

/// Checks that `tool` (ffmpeg, ffprobe) can be run. A missing tool fails the test rather
/// than skipping it: `scripts/install-test-deps` installs it.
pub fn have(tool: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{tool}` is not installed: run scripts/install-test-deps (Debian's ffmpeg)"
    );
    ok
}

/// Runs a command with a time limit.
pub async fn run(program: &str, args: &[&str], limit: Duration) -> Output {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(limit, child)
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} took longer than {limit:?}"))
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Polls `f` every 20 ms until it is true or `limit` passes.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw RTSP client over one TCP connection, for what real clients don't do on purpose.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    pub session: Option<String>,
    /// Bytes of interleaved data skipped while waiting for responses or read by `read_data`.
    pub data_bytes: usize,
}

pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl RawClient {
    pub async fn connect(sim: &SimCamera) -> RawClient {
        RawClient {
            stream: TcpStream::connect(sim.local_addr()).await.unwrap(),
            buf: Vec::new(),
            cseq: 0,
            session: None,
            data_bytes: 0,
        }
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Sends a request with the next CSeq (and the session, if any) and reads its response.
    pub async fn request(&mut self, method: &str, url: &str, headers: &[&str]) -> RawResponse {
        self.cseq += 1;
        let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        if let Some(s) = &self.session {
            text.push_str(&format!("Session: {s}\r\n"));
        }
        for h in headers {
            text.push_str(h);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        self.send_raw(text.as_bytes()).await;
        let r = self.response().await.expect("a response");
        assert_eq!(r.header("CSeq"), Some(self.cseq.to_string().as_str()));
        if let Some(s) = r.header("Session") {
            self.session = Some(s.split(';').next().unwrap().to_owned());
        }
        r
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
            .await
            .expect("server answers within 5 s")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads the next response, skipping interleaved data. `None` on EOF.
    pub async fn response(&mut self) -> Option<RawResponse> {
        loop {
            while self.buf.first() == Some(&b'$') && self.buf.len() >= 4 {
                let len = 4 + usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                if self.buf.len() < len {
                    break;
                }
                self.data_bytes += len;
                self.buf.drain(..len);
            }
            if self.buf.first() != Some(&b'$')
                && let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n")
            {
                let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                let r = RawResponse {
                    status: head[9..12].parse().unwrap(),
                    head,
                    body: Vec::new(),
                };
                let body_len: usize = r.header("Content-Length").map_or(0, |v| v.parse().unwrap());
                while self.buf.len() < end + 4 + body_len {
                    if !self.fill().await {
                        return None;
                    }
                }
                let body = self.buf[end + 4..end + 4 + body_len].to_vec();
                self.buf.drain(..end + 4 + body_len);
                return Some(RawResponse { body, ..r });
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// DESCRIBE, SETUP both tracks interleaved, PLAY.
    pub async fn play_tcp(&mut self, url: &str) {
        assert_eq!(self.request("DESCRIBE", url, &[]).await.status, 200);
        for (i, ch) in [(0, "0-1"), (1, "2-3")] {
            let r = self
                .request(
                    "SETUP",
                    &format!("{url}/trackID={i}"),
                    &[&format!("Transport: RTP/AVP/TCP;unicast;interleaved={ch}")],
                )
                .await;
            assert_eq!(r.status, 200);
        }
        assert_eq!(self.request("PLAY", url, &[]).await.status, 200);
    }

    /// Reads interleaved data for `d`; returns false if the server closed the connection.
    pub async fn read_for(&mut self, d: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + d;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return true,
                Ok(Ok(0)) | Ok(Err(_)) => return false,
                Ok(Ok(n)) => self.data_bytes += n,
            }
        }
    }
}

/// What a retina client received.
#[derive(Debug, Default)]
pub struct Received {
    pub video_frames: usize,
    pub first_video_is_key: bool,
    pub keyframes: usize,
    /// Last minus first video timestamp, in seconds.
    pub video_span: f64,
    pub audio_frames: usize,
    pub audio_span: f64,
    pub sender_reports: usize,
    pub loss: u64,
    pub dimensions: Option<(u32, u32)>,
    pub audio_rate: Option<u32>,
}

/// Receives from `url` with retina until `secs` seconds of video timestamps have passed,
/// checking on the way that video and audio timestamps strictly increase.
pub async fn retina_receive(url: &str, udp: bool, secs: f64) -> Received {
    use retina::client::{
        PlayOptions, Session, SessionGroup, SessionOptions, SetupOptions, Transport,
    };
    use retina::codec::{CodecItem, ParametersRef};

    let group = Arc::new(SessionGroup::default());
    let url = url::Url::parse(url).unwrap();
    let mut session =
        Session::describe(url, SessionOptions::default().session_group(group.clone()))
            .await
            .expect("DESCRIBE");
    let transport: Transport = if udp { "udp" } else { "tcp" }.parse().unwrap();
    let n = session.streams().len();
    assert_eq!(n, 2, "video and audio streams");
    assert_eq!(session.streams()[0].encoding_name(), "h264");
    assert_eq!(session.streams()[1].encoding_name(), "mpeg4-generic");
    for i in 0..n {
        session
            .setup(i, SetupOptions::default().transport(transport.clone()))
            .await
            .expect("SETUP");
    }
    let mut demuxed = session
        .play(PlayOptions::default())
        .await
        .expect("PLAY")
        .demuxed()
        .expect("demuxed");
    let mut r = Received::default();
    let (mut first_v, mut last_v, mut first_a, mut last_a) = (None, None::<i64>, None, None::<i64>);
    let overall = tokio::time::Instant::now() + Duration::from_secs_f64(secs + 10.0);
    loop {
        let item = tokio::time::timeout_at(overall, demuxed.next())
            .await
            .expect("received enough before the deadline")
            .expect("stream does not end")
            .expect("no retina error");
        match item {
            CodecItem::VideoFrame(f) => {
                let ts = f.timestamp().timestamp();
                if r.video_frames == 0 {
                    r.first_video_is_key = f.is_random_access_point();
                }
                if let Some(last) = last_v {
                    assert!(
                        ts > last,
                        "video timestamps strictly increase: {last} then {ts}"
                    );
                }
                r.loss += u64::from(f.loss());
                r.video_frames += 1;
                r.keyframes += usize::from(f.is_random_access_point());
                first_v.get_or_insert(ts);
                last_v = Some(ts);
                r.video_span = (ts - first_v.unwrap()) as f64 / 90_000.0;
                if r.video_span >= secs {
                    break;
                }
            }
            CodecItem::AudioFrame(f) => {
                let ts = f.timestamp();
                if let Some(last) = last_a {
                    assert!(ts.timestamp() > last, "audio timestamps strictly increase");
                }
                r.loss += u64::from(f.loss());
                r.audio_frames += 1;
                first_a.get_or_insert(ts.timestamp());
                last_a = Some(ts.timestamp());
                r.audio_span =
                    (ts.timestamp() - first_a.unwrap()) as f64 / f64::from(ts.clock_rate().get());
            }
            CodecItem::Rtcp(p)
                if p.pkts()
                    .any(|p| matches!(p.as_sender_report(), Ok(Some(_)))) =>
            {
                r.sender_reports += 1;
            }
            _ => {}
        }
    }
    for s in demuxed.streams() {
        match s.parameters() {
            Some(ParametersRef::Video(v)) => r.dimensions = Some(v.pixel_dimensions()),
            Some(ParametersRef::Audio(a)) => r.audio_rate = Some(a.clock_rate()),
            _ => {}
        }
    }
    drop(demuxed);
    // Waits for retina's TEARDOWN (UDP) so the server sees the session end.
    let _ = tokio::time::timeout(Duration::from_secs(5), group.await_teardown()).await;
    r
}
