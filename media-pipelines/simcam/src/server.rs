//! The only I/O of the crate: [`SimCamera`], a tokio RTSP server around the sans-IO cores.
//!
//! One task accepts connections; one task per connection reads requests, answers them through
//! [`Connection`] and sleeps until its [`crate::rtp::Streamer`] has the next frame due, then
//! writes the packets (interleaved in the TCP connection, or as UDP datagrams from one shared
//! pair of server sockets). One more task drains those UDP sockets and notes when each UDP
//! client last sent RTCP, which keeps its session alive. A connection ends on EOF, a write
//! that stalls for [`WRITE_TIMEOUT`], or no sign of life for the session timeout; a watch
//! channel stops everything on [`SimCamera::shutdown`] or drop.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::clip::Clip;
use crate::rtp::Packet;
use crate::rtsp::{self, Input};
use crate::session::{ConnConfig, Connection, Transport};

/// A connection whose socket accepts no bytes for this long is closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the simulated camera serves its clip.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The served path, without slashes: `rtsp://HOST:PORT/{path}`.
    pub path: String,
    /// Session timeout advertised in `Session: ID;timeout=N`; a client that sends no request
    /// (nor RTCP) for this long is dropped.
    pub session_timeout: Duration,
    /// Offer RTP over UDP (binds a pair of UDP ports) besides RTP interleaved over TCP.
    pub udp: bool,
    /// Connections beyond this many are refused (closed at once).
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: SimCamera::DEFAULT_PATH.to_owned(),
            session_timeout: Duration::from_secs(60),
            udp: true,
            max_connections: 256,
        }
    }
}

impl Config {
    /// Sets [`Config::path`].
    pub fn path(mut self, path: &str) -> Self {
        self.path = path.trim_matches('/').to_owned();
        self
    }

    /// Sets [`Config::session_timeout`] (at least one second).
    pub fn session_timeout(mut self, t: Duration) -> Self {
        self.session_timeout = t.max(Duration::from_secs(1));
        self
    }

    /// Sets [`Config::udp`].
    pub fn udp(mut self, udp: bool) -> Self {
        self.udp = udp;
        self
    }
}

#[derive(Default)]
struct Stats {
    connections: AtomicUsize,
    sessions: AtomicUsize,
}

/// Decrements a counter when dropped.
struct CountGuard<'a>(&'a AtomicUsize);

impl<'a> CountGuard<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        CountGuard(c)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// State shared by all tasks of one server.
struct Shared {
    clip: Clip,
    conn_config: ConnConfig,
    stats: Stats,
    udp: Option<(UdpSocket, UdpSocket)>,
    /// When each UDP client's RTCP address last sent something.
    udp_seen: Mutex<HashMap<SocketAddr, Instant>>,
    max_connections: usize,
}

/// A running simulated IP camera: an RTSP server looping a [`Clip`] to every client.
///
/// Dropping it stops the server (its tasks end shortly after); [`SimCamera::shutdown`] also
/// waits for them.
pub struct SimCamera {
    addr: SocketAddr,
    udp_ports: Option<(u16, u16)>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimCamera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCamera")
            .field("addr", &self.addr)
            .field("udp_ports", &self.udp_ports)
            .finish()
    }
}

impl SimCamera {
    /// The path served by [`SimCamera::start`].
    pub const DEFAULT_PATH: &'static str = "sim";

    /// Starts serving `clip` at `rtsp://ADDR/sim` over TCP and UDP. Port 0 picks a free port
    /// (see [`SimCamera::local_addr`]). Must be called within a tokio runtime.
    pub async fn start(addr: SocketAddr, clip: Clip) -> io::Result<SimCamera> {
        SimCamera::start_with(addr, clip, Config::default()).await
    }

    /// Starts with explicit [`Config`].
    pub async fn start_with(addr: SocketAddr, clip: Clip, config: Config) -> io::Result<SimCamera> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let udp = if config.udp {
            Some(bind_udp_pair(addr.ip()).await?)
        } else {
            None
        };
        let udp_ports = match &udp {
            Some((a, b)) => Some((a.local_addr()?.port(), b.local_addr()?.port())),
            None => None,
        };
        let shared = Arc::new(Shared {
            clip,
            conn_config: ConnConfig {
                path: config.path.trim_matches('/').to_owned(),
                session_timeout: config.session_timeout,
                udp_ports,
            },
            stats: Stats::default(),
            udp,
            udp_seen: Mutex::new(HashMap::new()),
            max_connections: config.max_connections,
        });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), rx));
        info!(%addr, ?udp_ports, path = %shared.conn_config.path, "simulated camera started");
        Ok(SimCamera {
            addr,
            udp_ports,
            shared,
            shutdown,
            task: Some(task),
        })
    }

    /// The address the RTSP server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's RTP and RTCP UDP ports, if UDP is enabled.
    pub fn udp_ports(&self) -> Option<(u16, u16)> {
        self.udp_ports
    }

    /// `rtsp://ADDR/{path}`; an unspecified listen address becomes the loopback address.
    pub fn url(&self, path: &str) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        format!("rtsp://{addr}/{}", path.trim_start_matches('/'))
    }

    /// The URL of the served clip.
    pub fn default_url(&self) -> String {
        self.url(&self.shared.conn_config.path)
    }

    /// Open RTSP connections.
    pub fn connections(&self) -> usize {
        self.shared.stats.connections.load(Ordering::Relaxed)
    }

    /// Sessions currently playing (or paused).
    pub fn sessions(&self) -> usize {
        self.shared.stats.sessions.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection and waits until all tasks have ended.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        info!(addr = %self.addr, "simulated camera stopped");
    }
}

impl Drop for SimCamera {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Binds an even UDP port and the odd one after it (RTP, RTCP) on `ip`.
async fn bind_udp_pair(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..64 {
        let rtp = UdpSocket::bind((ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)).await {
            return Ok((rtp, rtcp));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free pair of UDP ports for RTP/RTCP",
    ))
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    if shared.udp.is_some() {
        tasks.spawn(udp_loop(shared.clone(), shutdown.clone()));
    }
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    if shared.stats.connections.load(Ordering::Relaxed) >= shared.max_connections {
                        warn!(%peer, "too many connections; refusing");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    tasks.spawn(serve_connection(stream, peer, shared.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    // Connection tasks watch the same channel and end by themselves; abort any stragglers.
    let deadline = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(deadline);
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            _ = &mut deadline => break,
        }
    }
    tasks.shutdown().await;
}

/// Drains the shared UDP sockets (clients' RTCP reports and hole-punching packets) and notes
/// when each RTCP address was last heard from.
async fn udp_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let Some((rtp, rtcp)) = shared.udp.as_ref() else {
        return;
    };
    let mut buf = vec![0u8; 2048];
    let mut discard = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            r = rtcp.recv_from(&mut buf) => {
                if let Ok((_, from)) = r {
                    let mut seen = shared.udp_seen.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(t) = seen.get_mut(&from) {
                        *t = Instant::now();
                    }
                }
            }
            _ = rtp.recv_from(&mut discard) => {}
        }
    }
}

/// Registered while a session plays: counts it and keeps its UDP RTCP addresses in
/// `udp_seen`.
struct PlayingGuard<'a> {
    shared: &'a Shared,
    udp_addrs: Vec<SocketAddr>,
    _count: CountGuard<'a>,
}

impl<'a> PlayingGuard<'a> {
    fn new(shared: &'a Shared, conn: &Connection) -> Self {
        let udp_addrs: Vec<SocketAddr> = (0..2)
            .filter_map(|i| match conn.transport(i) {
                Some(Transport::Udp { rtcp, .. }) => Some(rtcp),
                _ => None,
            })
            .collect();
        let now = Instant::now();
        let mut seen = shared
            .udp_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for a in &udp_addrs {
            seen.insert(*a, now);
        }
        PlayingGuard {
            shared,
            udp_addrs,
            _count: CountGuard::new(&shared.stats.sessions),
        }
    }

    /// The latest time any of the session's UDP clients sent RTCP.
    fn last_rtcp(&self) -> Option<Instant> {
        let seen = self
            .shared
            .udp_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.udp_addrs
            .iter()
            .filter_map(|a| seen.get(a).copied())
            .max()
    }
}

impl Drop for PlayingGuard<'_> {
    fn drop(&mut self) {
        let mut seen = self
            .shared
            .udp_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for a in &self.udp_addrs {
            seen.remove(a);
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _count = CountGuard::new(&shared.stats.connections);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    debug!(%peer, "connection opened");
    let (mut rd, mut wr) = stream.into_split();
    let mut conn = Connection::new(shared.clip.clone(), shared.conn_config.clone(), peer, local);
    let mut rng = rand::rngs::StdRng::from_entropy();
    let timeout = shared.conn_config.session_timeout;
    let mut inbuf: Vec<u8> = Vec::with_capacity(4096);
    let mut outbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut packets: Vec<Packet> = Vec::with_capacity(64);
    let mut udp_out: Vec<(SocketAddr, bool, Packet)> = Vec::new();
    let mut scratch: Vec<u8> = Vec::with_capacity(2048);
    let mut last_heard = Instant::now();
    let mut playing: Option<PlayingGuard<'_>> = None;
    let reason = loop {
        let idle_deadline = last_heard + timeout;
        let wake = match conn.streamer_mut().and_then(|s| s.next_deadline()) {
            Some(media) => media.min(idle_deadline),
            None => idle_deadline,
        };
        let mut close = false;
        tokio::select! {
            biased;
            _ = shutdown.changed() => break "server shutdown",
            r = rd.read_buf(&mut inbuf) => match r {
                Ok(0) => break "closed by client",
                Err(_) => break "read error",
                Ok(_) => {
                    last_heard = Instant::now();
                    close = handle_input(&mut conn, &mut inbuf, &mut outbuf, &mut rng, peer);
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }

        match (&playing, conn.is_playing()) {
            (None, true) => {
                info!(%peer, "session playing");
                playing = Some(PlayingGuard::new(&shared, &conn));
            }
            (Some(_), false) => {
                info!(%peer, "session torn down");
                playing = None;
            }
            _ => {}
        }

        let now = Instant::now();
        if let Some(last) = playing.as_ref().and_then(PlayingGuard::last_rtcp) {
            last_heard = last_heard.max(last);
        }
        if now >= last_heard + timeout {
            break "session timed out";
        }

        if let Some(s) = conn.streamer_mut() {
            s.poll(now, &mut packets);
        }
        for p in packets.drain(..) {
            match conn.transport(p.stream) {
                Some(Transport::Interleaved { rtp, rtcp }) => {
                    let ch = if p.rtcp { rtcp } else { rtp };
                    outbuf.push(b'$');
                    outbuf.push(ch);
                    outbuf.extend_from_slice(&(p.len() as u16).to_be_bytes());
                    p.write_to(&mut outbuf);
                }
                Some(Transport::Udp { rtp, rtcp }) => {
                    let to = if p.rtcp { rtcp } else { rtp };
                    udp_out.push((to, p.rtcp, p));
                }
                None => {}
            }
        }

        if !outbuf.is_empty() {
            match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&outbuf)).await {
                Ok(Ok(())) => outbuf.clear(),
                Ok(Err(_)) => break "write error",
                Err(_) => break "write stalled",
            }
        }
        if close {
            break "malformed request";
        }
        if let Some((rtp_sock, rtcp_sock)) = shared.udp.as_ref() {
            for (to, is_rtcp, p) in udp_out.drain(..) {
                scratch.clear();
                p.write_to(&mut scratch);
                let sock = if is_rtcp { rtcp_sock } else { rtp_sock };
                if let Err(e) = sock.send_to(&scratch, to).await {
                    debug!(%to, error = %e, "UDP send failed");
                }
            }
        }
        udp_out.clear();
    };
    let _ = wr.shutdown().await;
    debug!(%peer, reason, "connection closed");
    drop(playing);
}

/// Parses and answers every complete message in `inbuf`. Returns true if the connection must
/// be closed after the answers are written (unparseable input: the stream cannot resync).
fn handle_input(
    conn: &mut Connection,
    inbuf: &mut Vec<u8>,
    outbuf: &mut Vec<u8>,
    rng: &mut rand::rngs::StdRng,
    peer: SocketAddr,
) -> bool {
    loop {
        match rtsp::parse(inbuf) {
            Ok(None) => return false,
            Ok(Some((input, used))) => {
                inbuf.drain(..used);
                if let Input::Request(req) = input {
                    let resp = conn.handle(&req, Instant::now(), SystemTime::now(), rng);
                    debug!(%peer, method = %req.method, uri = %req.uri, status = resp.status, "request");
                    outbuf.extend_from_slice(&resp.to_bytes());
                }
            }
            Err(e) => {
                warn!(%peer, status = e.status, reason = %e.reason, "unparseable request");
                outbuf.extend_from_slice(&e.response().to_bytes());
                inbuf.clear();
                return true;
            }
        }
    }
}
