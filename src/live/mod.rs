//! Live view: the binary's side of the forwarding core (`xaso-sfu`).
//!
//! - Each camera task hands its frames to the camera's [`Tap`]. The tap keeps the current
//!   GOP as shared buffers (no copy) and passes frames on only while someone watches, so an
//!   unwatched camera costs a lock and a refcount per frame.
//! - One task owns the [`Core`] and the UDP sockets (one port; a socket per offered
//!   address), fed by a bounded command queue: frames, datagrams, WHEP offers, closings.
//!   ICE-TCP connections (a listener per address) feed the same queue; the task writes
//!   back to them through each connection's own writer task.
//! - The HTTP handlers (`api::live`) talk to it through [`Live`].
//! - [`net`]: the task's sockets (stamped UDP reads, ICE-TCP, batched sends).
//! - [`meeting`]: meeting participants' commands (join, offers, the chair's blocks, views,
//!   focus, the featured participant) and what the core tells the meetings hub.
//! - [`trunk`]: meetings' trunks to other nodes (federation).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
mod meeting;
mod net;
mod tap;
mod trunk;
use meeting::MeetingCmd;
pub use meeting::MeetingMedia;
use net::{LiveSocket, TcpConns, accept_tcp, live_runtime, read_socket, send_all};
pub use tap::Tap;
use tap::{MSE_QUEUE, TapInner, start_transcoder};
pub(crate) use tap::{MseEvent, MseFeed, TapFrame, TapTracks};
use trunk::{TrunkCmd, Trunks};
pub use trunk::{TrunkIn, TrunkOut, TrunkSink};

use xaso_sfu::{Core, Input, MediaFrame, Output, Proto, SessionError, SessionId};

enum Cmd {
    Frame(i64, TapFrame),
    Restart(i64),
    Tracks(i64, TapTracks),
    Datagram {
        proto: Proto,
        source: SocketAddr,
        destination: SocketAddr,
        data: Vec<u8>,
        /// When it reached this host ([`recv_stamped`]).
        received: Instant,
    },
    Subscribe {
        camera: i64,
        offer: String,
        reply: oneshot::Sender<Result<(SessionId, String), SessionError>>,
    },
    Close {
        session: SessionId,
        reply: oneshot::Sender<bool>,
    },
    Trunk(TrunkCmd),
    Meeting(MeetingCmd),
    /// A camera joins (or leaves) a meeting's room.
    MeetingCamera {
        room: i64,
        camera: i64,
        join: bool,
    },
}

/// Who holds a session, for the audit log and for DELETE.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub user_id: i64,
    pub username: String,
    pub address: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub camera: i64,
    pub viewer: Viewer,
    pub started_ms: i64,
}

/// A finished session, for the audit log.
#[derive(Debug)]
pub struct Ended {
    pub session: SessionId,
    pub info: SessionInfo,
    pub bytes_sent: u64,
    pub reason: String,
}

/// Why a viewer cannot have a session.
#[derive(Debug)]
pub enum LiveError {
    /// The camera is not streaming (yet).
    NotStreaming,
    Session(SessionError),
    /// The live task is gone (shutting down).
    Stopped,
}

pub struct Live {
    cmd: mpsc::Sender<Cmd>,
    taps: Mutex<HashMap<i64, Arc<Tap>>>,
    sessions: Mutex<HashMap<SessionId, SessionInfo>>,
    /// The host candidates offered to every viewer (UDP, then ICE-TCP).
    pub candidates: Vec<(Proto, SocketAddr)>,
    pub dropped: Arc<AtomicU64>,
    /// Frame handed over by the camera task → its last datagram sent to every viewer.
    pub latency: Histogram,
    /// How long datagrams waited between reaching this host and the forwarding core.
    pub receive_wait: Histogram,
    /// Times the live task woke for the forwarding core's timers, and datagrams it got.
    pub timer_wakeups: AtomicU64,
    pub datagrams_in: AtomicU64,
    /// Microphone packets received from meeting participants, and of those with redundant
    /// audio (RED): the core's counters, copied after each batch of inputs.
    pub meeting_audio_in: AtomicU64,
    pub meeting_red_in: AtomicU64,
    /// Keyframe requests sent to meeting participants (the core's counter, likewise).
    pub meeting_keyframe_requests: AtomicU64,
    mse_sessions: std::sync::atomic::AtomicUsize,
    /// Streams pulled for live view alone (set once at start; see `live_sources`).
    pub sources: std::sync::OnceLock<Arc<crate::live_sources::LiveSources>>,
    /// Where meeting media events go (set once by the meetings hub).
    pub meeting_events: std::sync::OnceLock<mpsc::UnboundedSender<MeetingMedia>>,
}

/// Upper bounds of the buckets of the live task's histograms (forwarding latency, receive
/// wait), in microseconds.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10_000, 20_000, 50_000,
];

/// A fixed-bucket latency histogram (Prometheus style), lock-free.
#[derive(Default)]
pub struct Histogram {
    /// One count per bucket of [`LATENCY_BUCKETS_US`], then the overflow.
    pub counts: [AtomicU64; 15],
    pub sum_us: AtomicU64,
}

impl Histogram {
    pub fn record(&self, d: std::time::Duration) {
        let us = d.as_micros() as u64;
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// The addresses to offer: configured ones, else the HTTP listen address when specific,
/// else loopback and the default route's address (found by "connecting" a UDP socket,
/// which sends nothing).
pub fn candidate_ips(configured: &[IpAddr], listen: IpAddr) -> Vec<IpAddr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    if !listen.is_unspecified() {
        return vec![listen];
    }
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0")
        && s.connect("10.255.255.255:9").is_ok()
        && let Ok(a) = s.local_addr()
        && !a.ip().is_unspecified()
        && !ips.contains(&a.ip())
    {
        ips.push(a.ip());
    }
    ips
}

impl Live {
    /// Binds the UDP port (and, with `tcp_port`, the ICE-TCP port) on every address and
    /// starts the task. `estimate`: meeting participants get a bandwidth estimate (for
    /// simulcast). `ended` receives each finished session (the caller audits it).
    pub async fn start(
        ips: &[IpAddr],
        port: u16,
        tcp_port: Option<u16>,
        estimate: bool,
        ended: mpsc::UnboundedSender<Ended>,
    ) -> std::io::Result<Arc<Live>> {
        xaso_sfu::init_crypto();
        // Bound here (errors go to the caller), then handed to the live thread, whose
        // reactor polls them: a datagram or a frame wakes that one thread, not the shared
        // runtime's workers one after the other.
        let mut udp = Vec::new();
        let mut port = port;
        for ip in ips {
            let s = std::net::UdpSocket::bind(SocketAddr::new(*ip, port))?;
            s.set_nonblocking(true)?;
            let local = s.local_addr()?;
            port = local.port();
            let gso = quinn_udp::UdpSocketState::new((&s).into())?;
            udp.push((local, s, gso));
        }
        let mut candidates: Vec<(Proto, SocketAddr)> =
            udp.iter().map(|(a, _, _)| (Proto::Udp, *a)).collect();
        let mut tcp_listeners = Vec::new();
        if let Some(mut port) = tcp_port {
            for ip in ips {
                let l = std::net::TcpListener::bind(SocketAddr::new(*ip, port))?;
                l.set_nonblocking(true)?;
                let local = l.local_addr()?;
                port = local.port();
                candidates.push((Proto::Tcp, local));
                tcp_listeners.push((local, l));
            }
        }
        let (tx, rx) = mpsc::channel(8192);
        let live = Arc::new(Live {
            cmd: tx.clone(),
            taps: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            candidates,
            dropped: Arc::new(AtomicU64::new(0)),
            latency: Histogram::default(),
            receive_wait: Histogram::default(),
            timer_wakeups: AtomicU64::new(0),
            datagrams_in: AtomicU64::new(0),
            meeting_audio_in: AtomicU64::new(0),
            meeting_red_in: AtomicU64::new(0),
            meeting_keyframe_requests: AtomicU64::new(0),
            mse_sessions: Default::default(),
            sources: std::sync::OnceLock::new(),
            meeting_events: std::sync::OnceLock::new(),
        });
        let seed = rand::random::<u64>();
        let weak = Arc::downgrade(&live);
        let (ready_tx, ready_rx) = oneshot::channel();
        live_runtime().spawn(async move {
            let started = (|| {
                let mut sockets = Vec::new();
                for (local, s, gso) in udp {
                    let sock = Arc::new(UdpSocket::from_std(s)?);
                    tokio::spawn(read_socket(local, sock.clone(), tx.clone()));
                    sockets.push(LiveSocket { local, sock, gso });
                }
                let tcp = TcpConns::default();
                for (local, l) in tcp_listeners {
                    let l = TcpListener::from_std(l)?;
                    tokio::spawn(accept_tcp(local, l, tx.clone(), tcp.clone()));
                }
                std::io::Result::Ok((sockets, tcp))
            })();
            match started {
                Ok((sockets, tcp)) => {
                    let _ = ready_tx.send(Ok(()));
                    let core = if estimate {
                        Core::new(seed)
                    } else {
                        Core::new(seed).without_estimate()
                    };
                    run(core, sockets, tcp, rx, weak, ended).await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
        ready_rx
            .await
            .map_err(|_| std::io::Error::other("the live thread did not start"))??;
        tracing::info!(candidates = ?live.candidates, "live view (WebRTC) listening");
        Ok(live)
    }

    /// The tap a camera task writes to.
    pub fn tap(&self, camera: i64) -> Arc<Tap> {
        self.taps
            .lock()
            .expect("taps lock")
            .entry(camera)
            .or_insert_with(|| {
                Arc::new(Tap {
                    camera,
                    inner: Mutex::new(TapInner::default()),
                    cmd: self.cmd.clone(),
                    dropped: self.dropped.clone(),
                    mse: tokio::sync::broadcast::channel(MSE_QUEUE).0,
                })
            })
            .clone()
    }

    pub fn is_streaming(&self, camera: i64) -> bool {
        self.taps
            .lock()
            .expect("taps lock")
            .get(&camera)
            .is_some_and(|t| t.inner.lock().expect("tap lock").streaming)
    }

    /// Starts an MSE viewer of a camera's stream (`source`: the tap id): the current GOP
    /// and tracks, then every event, with no frame missed or repeated between the two.
    /// Dropping the feed ends the viewer.
    pub(crate) fn watch_mse(self: &Arc<Self>, source: i64) -> Result<MseFeed, LiveError> {
        self.feed(source, true)
    }

    /// A tap's frames as they come, for the node above (`federation::relay`): like an MSE
    /// viewer's feed, but not counted as an MSE session, and its end leaves no linger time
    /// (the node above lingers for its own viewers).
    pub(crate) fn watch_relay(self: &Arc<Self>, source: i64) -> Result<MseFeed, LiveError> {
        self.feed(source, false)
    }

    fn feed(self: &Arc<Self>, source: i64, viewer: bool) -> Result<MseFeed, LiveError> {
        let tap = self.tap(source);
        let mut t = tap.inner.lock().expect("tap lock");
        if !t.streaming {
            return Err(LiveError::NotStreaming);
        }
        t.mse_viewers += 1;
        if viewer {
            self.mse_sessions.fetch_add(1, Ordering::Relaxed);
        }
        Ok(MseFeed {
            gop: t.gop.clone(),
            tracks: t.tracks.clone(),
            events: tap.mse.subscribe(),
            tap: tap.clone(),
            live: self.clone(),
            viewer,
        })
    }

    /// The H.264 transcode of a camera's H.265 main stream, for browsers that take no H.265
    /// when the camera has no H.264 sub-stream: started if needed (from the cached GOP, so
    /// the decoder starts at a keyframe), stopped once nobody has watched it for
    /// `live_sources::LINGER`. Waits up to `wait` for its first keyframe; the tap id, or
    /// `None` in builds without pipelines or when the camera is not H.265.
    pub async fn transcoded(
        self: &Arc<Self>,
        camera: i64,
        wait: std::time::Duration,
    ) -> Option<i64> {
        if !xaso_pipelines::available() {
            return None;
        }
        let id = crate::live_sources::transcoded_tap_id(camera);
        let (main, derived) = (self.tap(camera), self.tap(id));
        derived.touch();
        let started = start_transcoder(&main, &derived)?;
        if started {
            // Restarted after a camera reconnect while watched; stopped when nobody watches.
            let (main, derived) = (main.clone(), derived.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if derived.idle_for() >= crate::live_sources::LINGER {
                        main.inner.lock().expect("tap lock").transcoder = None;
                        derived.stopped();
                        return;
                    }
                    if main.inner.lock().expect("tap lock").streaming {
                        let _ = start_transcoder(&main, &derived);
                    }
                }
            });
        }
        derived.wait_keyframe(wait).await.then_some(id)
    }

    /// MSE (WebSocket) viewers now.
    pub fn mse_session_count(&self) -> usize {
        self.mse_sessions.load(Ordering::Relaxed)
    }

    /// Answers a WHEP offer for one of a camera's streams (`source`: the tap id, see
    /// `live_sources::Stream::tap_id`).
    pub async fn subscribe(
        &self,
        source: i64,
        offer: String,
        info: SessionInfo,
    ) -> Result<(SessionId, String), LiveError> {
        if !self.is_streaming(source) {
            return Err(LiveError::NotStreaming);
        }
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Subscribe {
                camera: source,
                offer,
                reply,
            })
            .await
            .map_err(|_| LiveError::Stopped)?;
        let (id, answer) = rx
            .await
            .map_err(|_| LiveError::Stopped)?
            .map_err(LiveError::Session)?;
        self.sessions
            .lock()
            .expect("sessions lock")
            .insert(id, info);
        Ok((id, answer))
    }

    pub fn session(&self, id: SessionId) -> Option<SessionInfo> {
        self.sessions
            .lock()
            .expect("sessions lock")
            .get(&id)
            .cloned()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.lock().expect("sessions lock").len()
    }

    /// A camera joins or leaves meeting `room` (the meeting id).
    pub async fn meeting_camera(&self, room: i64, camera: i64, join: bool) {
        let _ = self
            .cmd
            .send(Cmd::MeetingCamera { room, camera, join })
            .await;
    }

    /// Ends a session; `false` if there was none.
    pub async fn close(&self, session: SessionId) -> bool {
        let (reply, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Close { session, reply }).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

fn media_frame(f: &TapFrame) -> MediaFrame<'_> {
    MediaFrame {
        kind: f.kind,
        ts: f.ts,
        keyframe: f.key,
        data: &f.data,
    }
}

fn set_tracks(core: &mut Core, camera: i64, t: &TapTracks) {
    let s = core.source(camera);
    if let Some((codec, ps)) = &t.video {
        s.set_video(*codec, ps.clone());
    }
    s.set_audio(t.audio);
}

/// The first viewer of a camera (or its first meeting): the core's copy of the source
/// starts from the tap's GOP, and from now on the tap passes every frame on.
fn watch(core: &mut Core, live: &Live, camera: i64, now: Instant) {
    let tap = live.tap(camera);
    let (gop, tracks) = {
        let mut t = tap.inner.lock().expect("tap lock");
        t.watched = true;
        (t.gop.clone(), t.tracks.clone())
    };
    core.source(camera).reset();
    set_tracks(core, camera, &tracks);
    for f in &gop {
        core.handle_input(now, Input::Frame(camera, media_frame(f)));
    }
}

/// The last viewer of a camera left: the tap stops passing frames on.
fn unwatch(live: &Live, camera: i64) {
    if let Some(tap) = live.taps.lock().expect("taps lock").get(&camera) {
        let mut t = tap.inner.lock().expect("tap lock");
        t.watched = false;
        t.last_watched = Some(Instant::now());
        t.opus = None; // nobody listens: no transcoding
    }
}

async fn run(
    mut core: Core,
    sockets: Vec<LiveSocket>,
    tcp: TcpConns,
    mut rx: mpsc::Receiver<Cmd>,
    live: std::sync::Weak<Live>,
    ended: mpsc::UnboundedSender<Ended>,
) {
    let mut deadline: Option<Instant> = None;
    let mut viewers: HashMap<i64, usize> = HashMap::new();
    // The frame whose datagrams are being sent, for the latency histogram.
    let mut forwarding: Option<Instant> = None;
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    // The next input, when one was already waiting (see the end of the loop), and how
    // many inputs in a row went in without the output being polled.
    let mut next: Option<Cmd> = None;
    let mut batch = 0;
    let mut trunks = Trunks::default();
    loop {
        if let Some(c) = next.take() {
            handle_cmd(
                &mut core,
                c,
                &mut trunks,
                &live,
                &mut viewers,
                &mut forwarding,
                &mut deadline,
            );
            // Inputs that are already waiting go into the core before its output is
            // polled: each participant's stack is flushed once per batch, not per packet
            // (a bound keeps the first packet's wait short).
            if batch < MAX_BATCH
                && let Ok(c) = rx.try_recv()
            {
                batch += 1;
                next = Some(c);
                continue;
            }
        }
        batch = 0;
        // Everything the core wants done, then wait for the next input or its timeout.
        while let Some(o) = core.poll_output() {
            let Some(o) = trunks.output(o) else { continue };
            match o {
                Output::Transmit(t) => out.push(t),
                Output::Slots(u) => {
                    if let Some(tx) = live.upgrade().and_then(|l| l.meeting_events.get().cloned()) {
                        let _ = tx.send(MeetingMedia::Slots(u));
                    }
                }
                Output::Layers {
                    peer,
                    track,
                    active,
                } => {
                    if let Some(tx) = live.upgrade().and_then(|l| l.meeting_events.get().cloned()) {
                        let _ = tx.send(MeetingMedia::Layers {
                            peer,
                            track,
                            active,
                        });
                    }
                }
                Output::Speaker { room, peer } => {
                    if let Some(tx) = live.upgrade().and_then(|l| l.meeting_events.get().cloned()) {
                        let _ = tx.send(MeetingMedia::Speaker { room, peer });
                    }
                }
                Output::Closed(c) if c.peer => {
                    trunks.participants.remove(&c.session);
                    if let Some(tx) = live.upgrade().and_then(|l| l.meeting_events.get().cloned()) {
                        let _ = tx.send(MeetingMedia::Left {
                            room: c.source,
                            peer: c.session,
                            reason: c.reason,
                        });
                    }
                }
                Output::Closed(c) => {
                    let Some(live) = live.upgrade() else { return };
                    let info = live
                        .sessions
                        .lock()
                        .expect("sessions lock")
                        .remove(&c.session);
                    let n = viewers.entry(c.source).or_default();
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        viewers.remove(&c.source);
                        unwatch(&live, c.source);
                    }
                    if let Some(info) = info {
                        let _ = ended.send(Ended {
                            session: c.session,
                            info,
                            bytes_sent: c.bytes_sent,
                            reason: c.reason,
                        });
                    }
                }
                Output::Timeout(t) => deadline = Some(t),
                // (Taken by `trunks.output` above.)
                Output::TrunkRtp { .. }
                | Output::TrunkPublish { .. }
                | Output::TrunkUnpublish { .. }
                | Output::TrunkWant { .. }
                | Output::TrunkKeyframe { .. } => {}
            }
        }
        send_all(&sockets, &tcp, &mut out, &mut scratch).await;
        if let Some(live) = live.upgrade() {
            if let Some(at) = forwarding.take() {
                live.latency.record(at.elapsed());
            }
            let c = core.counters();
            live.meeting_audio_in
                .store(c.audio_packets, Ordering::Relaxed);
            live.meeting_red_in.store(c.red_packets, Ordering::Relaxed);
            live.meeting_keyframe_requests
                .store(c.keyframe_requests, Ordering::Relaxed);
        }
        let cmd = match deadline {
            Some(d) => tokio::select! {
                c = rx.recv() => c,
                _ = tokio::time::sleep_until(d.into()) => {
                    deadline = None;
                    if let Some(live) = live.upgrade() {
                        live.timer_wakeups.fetch_add(1, Ordering::Relaxed);
                    }
                    core.handle_input(Instant::now(), Input::Timeout);
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(cmd) = cmd else { return };
        next = Some(cmd);
    }
}

/// Inputs the live loop feeds the core before it polls the core's output.
const MAX_BATCH: usize = 16;

/// One input of the live loop.
fn handle_cmd(
    core: &mut Core,
    cmd: Cmd,
    trunks: &mut Trunks,
    live: &std::sync::Weak<Live>,
    viewers: &mut HashMap<i64, usize>,
    forwarding: &mut Option<Instant>,
    deadline: &mut Option<Instant>,
) {
    let now = Instant::now();
    match cmd {
        Cmd::Frame(camera, f) => {
            if viewers.contains_key(&camera) {
                *forwarding = f.at;
            }
            core.handle_input(now, Input::Frame(camera, media_frame(&f)))
        }
        Cmd::Tracks(camera, t) => set_tracks(core, camera, &t),
        Cmd::Restart(camera) => core.restart_source(camera),
        Cmd::Datagram {
            proto,
            source,
            destination,
            data,
            received,
        } => {
            if let Some(live) = live.upgrade() {
                live.datagrams_in.fetch_add(1, Ordering::Relaxed);
                live.receive_wait
                    .record(now.saturating_duration_since(received));
            }
            core.handle_input(
                now,
                Input::Datagram {
                    proto,
                    source,
                    destination,
                    data: &data,
                },
            );
        }
        Cmd::Subscribe {
            camera,
            offer,
            reply,
        } => {
            let Some(live) = live.upgrade() else { return };
            if !viewers.contains_key(&camera) {
                watch(core, &live, camera, now);
            }
            let res = core.subscribe(now, camera, &offer, &live.candidates);
            if res.is_ok() {
                *viewers.entry(camera).or_default() += 1;
            } else if !viewers.contains_key(&camera)
                && let Some(tap) = live.taps.lock().expect("taps lock").get(&camera)
            {
                tap.inner.lock().expect("tap lock").watched = false;
            }
            let _ = reply.send(res);
            *deadline = None;
        }
        Cmd::Close { session, reply } => {
            let _ = reply.send(core.close(session, "ended by the viewer"));
        }
        Cmd::Meeting(c) => {
            meeting::handle(core, now, c, trunks, live);
            *deadline = None;
        }
        Cmd::Trunk(c) => {
            let events = live.upgrade().and_then(|l| l.meeting_events.get().cloned());
            trunks.handle(core, now, c, events.as_ref());
            *deadline = None;
        }
        Cmd::MeetingCamera { room, camera, join } => {
            let Some(live) = live.upgrade() else { return };
            if join {
                if !viewers.contains_key(&camera) {
                    watch(core, &live, camera, now);
                }
                *viewers.entry(camera).or_default() += 1;
                core.add_camera(now, room, camera);
            } else {
                core.remove_camera(room, camera);
                if let Some(n) = viewers.get_mut(&camera) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        viewers.remove(&camera);
                        unwatch(&live, camera);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::net::*;
    use super::*;
    use nix::sys::socket::sockopt::ReceiveTimestampns;
    use std::time::{Duration, SystemTime};
    use xaso_sfu::Transmit;

    #[test]
    fn a_kernel_stamp_becomes_the_monotonic_time_of_arrival() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let ms = Duration::from_millis;
        assert_eq!(arrival(now, wall, wall - ms(30)), now - ms(30));
        // A stamp from the future, or from before the wall clock was stepped: now.
        assert_eq!(arrival(now, wall, wall + ms(5)), now);
        assert_eq!(arrival(now, wall, wall - Duration::from_secs(60)), now);
    }

    #[tokio::test]
    async fn a_datagram_read_late_keeps_the_time_it_arrived() {
        // The datagram waits 100 ms in the socket before it is read: its arrival time is
        // the kernel's, 100 ms back, not the time of the read. (The kernel turns arrival
        // stamps on for the whole system in deferred work once a socket asks: a datagram
        // sent at once may still come unstamped and be stamped when read, so it is tried
        // again, three times at most.)
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        nix::sys::socket::setsockopt(&s, ReceiveTimestampns, &true).unwrap();
        let from = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut waits = Vec::new();
        for _ in 0..3 {
            from.send_to(b"hello", s.local_addr().unwrap()).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut buf = [0u8; 64];
            let (n, source, received) = s
                .async_io(tokio::io::Interest::READABLE, || recv_stamped(&s, &mut buf))
                .await
                .unwrap();
            assert_eq!(
                (&buf[..n], source),
                (&b"hello"[..], from.local_addr().unwrap())
            );
            waits.push(Instant::now().saturating_duration_since(received));
            if waits
                .last()
                .is_some_and(|w| *w >= Duration::from_millis(90))
            {
                return;
            }
        }
        panic!("every datagram read as just arrived: {waits:?}");
    }

    fn t(to: u16, len: usize) -> Transmit {
        Transmit {
            proto: Proto::Udp,
            source: "127.0.0.1:9000".parse().unwrap(),
            destination: SocketAddr::from(([127, 0, 0, 1], to)),
            contents: vec![0; len],
        }
    }

    #[test]
    fn datagrams_are_grouped_by_rtp_stream() {
        let rtp = |ssrc: u32, seq: u8| {
            let mut d = vec![0x80, 96, 0, seq, 0, 0, 0, 0];
            d.extend_from_slice(&ssrc.to_be_bytes());
            d.extend_from_slice(&[0; 20]);
            d
        };
        assert_eq!(rtp_ssrc(&rtp(0xdead_beef, 1)), 0xdead_beef);
        // RTCP (a receiver report), STUN, truncated: no stream.
        assert_eq!(rtp_ssrc(&[0x81, 201, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8]), 0);
        assert_eq!(
            rtp_ssrc(&[0x00, 0x01, 0, 8, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4]),
            0
        );
        assert_eq!(rtp_ssrc(&[0x80, 96, 0]), 0);
        // Interleaved streams to one viewer come out grouped, each in its own order.
        let mut out: Vec<Transmit> = [(1, 1), (2, 1), (1, 2), (2, 2), (1, 3)]
            .into_iter()
            .map(|(ssrc, seq)| Transmit {
                contents: rtp(ssrc, seq),
                ..t(1, 0)
            })
            .collect();
        group_by_stream(&mut out);
        let order: Vec<(u32, u8)> = out
            .iter()
            .map(|t| (rtp_ssrc(&t.contents), t.contents[3]))
            .collect();
        assert_eq!(order, vec![(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]);
    }

    #[tokio::test]
    async fn send_all_delivers_every_datagram_in_each_streams_order() {
        let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std_sock.set_nonblocking(true).unwrap();
        let local = std_sock.local_addr().unwrap();
        let gso = quinn_udp::UdpSocketState::new((&std_sock).into()).unwrap();
        let sock = Arc::new(UdpSocket::from_std(std_sock).unwrap());
        let sockets = [LiveSocket { local, sock, gso }];
        let mut receivers = Vec::new();
        for _ in 0..3 {
            receivers.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        // What the core puts out for three participants, streams interleaved: per
        // participant 40 audio packets of 60-120 bytes (ssrc 10 + k), three video frames
        // (a 40-byte packet, three of 1200 and a short one, ssrc 20 + k), and two RTCP packets.
        let rtp = |ssrc: u32, seq: u16, len: usize| {
            let mut d = vec![0u8; len];
            d[0] = 0x80;
            d[1] = 96;
            d[2..4].copy_from_slice(&seq.to_be_bytes());
            d[8..12].copy_from_slice(&ssrc.to_be_bytes());
            d
        };
        let mut out = Vec::new();
        for seq in 0..40u16 {
            for (k, r) in receivers.iter().enumerate() {
                let destination = r.local_addr().unwrap();
                let k = k as u32;
                let mut push = |contents: Vec<u8>| {
                    out.push(Transmit {
                        proto: Proto::Udp,
                        source: local,
                        destination,
                        contents,
                    })
                };
                push(rtp(10 + k, seq, 60 + usize::from(seq) % 61));
                if seq % 13 == 0 {
                    // A small first packet (parameter sets) goes alone, before the run.
                    for i in 0..5u16 {
                        let len = [40, 1200, 1200, 1200, 300][usize::from(i)];
                        push(rtp(20 + k, seq * 5 + i, len));
                    }
                }
                if seq % 20 == 0 {
                    push(vec![0x80, 200, 0, 6, 0, 0, 0, 1]);
                }
            }
        }
        let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
        for t in &out {
            let k = receivers
                .iter()
                .position(|r| r.local_addr().unwrap() == t.destination)
                .unwrap();
            expected[k].push(t.contents.clone());
        }
        let tcp = TcpConns::default();
        let mut scratch = Vec::new();
        send_all(&sockets, &tcp, &mut out, &mut scratch).await;
        assert!(out.is_empty());
        let mut buf = vec![0u8; 2048];
        for (k, r) in receivers.iter().enumerate() {
            let mut got = Vec::new();
            while got.len() < expected[k].len() {
                let (n, from) =
                    tokio::time::timeout(std::time::Duration::from_secs(5), r.recv_from(&mut buf))
                        .await
                        .expect("every datagram arrives")
                        .unwrap();
                assert_eq!(from, local);
                got.push(buf[..n].to_vec());
            }
            // Each stream's datagrams in the order they were put out; all of them.
            for ssrc in [10 + k as u32, 20 + k as u32, 0] {
                let of = |v: &Vec<Vec<u8>>| -> Vec<Vec<u8>> {
                    v.iter().filter(|d| rtp_ssrc(d) == ssrc).cloned().collect()
                };
                assert_eq!(of(&got), of(&expected[k]), "stream {ssrc} to receiver {k}");
            }
            assert_eq!(got.len(), expected[k].len());
        }
    }

    #[test]
    fn gso_runs_follow_the_kernels_rule() {
        // A frame to viewer 1 (three full packets, a short last one), then its audio, then
        // the same frame to viewer 2.
        let out = [
            t(1, 1216),
            t(1, 1216),
            t(1, 1216),
            t(1, 300),
            t(1, 172),
            t(2, 1216),
            t(2, 1216),
            t(2, 300),
        ];
        assert_eq!(gso_runs(&out, 64), vec![0..4, 4..5, 5..8]);
        // A bigger datagram after a smaller one starts a new run (SPS/PPS before an IDR).
        let out = [t(1, 40), t(1, 1216), t(1, 1216)];
        assert_eq!(gso_runs(&out, 64), vec![0..1, 1..3]);
        // The socket's segment limit; without GSO, every datagram alone.
        let out = [t(1, 1216), t(1, 1216), t(1, 1216)];
        assert_eq!(gso_runs(&out, 2), vec![0..2, 2..3]);
        assert_eq!(gso_runs(&out, 1), vec![0..1, 1..2, 2..3]);
        assert_eq!(gso_runs(&[], 64), Vec::<std::ops::Range<usize>>::new());
    }
}
