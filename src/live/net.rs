//! The live task's sockets: UDP reads stamped by the kernel, ICE-TCP connections (RFC 4571
//! framing), and batched sends (GSO runs per destination and stream).

use super::Cmd;
use nix::sys::socket::sockopt::ReceiveTimestampns;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use xaso_sfu::{Proto, Transmit};

pub(super) async fn read_socket(destination: SocketAddr, s: Arc<UdpSocket>, tx: mpsc::Sender<Cmd>) {
    // The kernel stamps each datagram as it arrives, for the histogram of how long
    // datagrams wait for the live thread (`receive_wait`: tens to hundreds of milliseconds
    // were seen while browsers on the same cores kept it waiting). The WebRTC stack still
    // gets the time the core takes a datagram as its arrival: see docs/design/sfu.md.
    if let Err(e) = nix::sys::socket::setsockopt(&*s, ReceiveTimestampns, &true) {
        tracing::warn!(error = %e, "no kernel receive timestamps: arrival times are taken when read");
    }
    let mut buf = vec![0u8; 2048];
    loop {
        match s
            .async_io(tokio::io::Interest::READABLE, || recv_stamped(&s, &mut buf))
            .await
        {
            Ok((n, source, received)) => {
                let c = Cmd::Datagram {
                    proto: Proto::Udp,
                    source,
                    destination,
                    data: buf[..n].to_vec(),
                    received,
                };
                if tx.send(c).await.is_err() {
                    return;
                }
            }
            // ICMP errors (a viewer that went away) surface here on Linux: not fatal.
            Err(e) => tracing::debug!(error = %e, "UDP receive"),
        }
    }
}

/// Reads one datagram from `s`: its length, its sender, and when it reached this host (the
/// kernel's stamp, or now when there is none).
pub(super) fn recv_stamped(
    s: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, Instant)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let m =
        recvmsg::<SockaddrStorage>(s.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())?;
    let (now, wall) = (Instant::now(), std::time::SystemTime::now());
    let mut received = now;
    for c in m.cmsgs().into_iter().flatten() {
        if let ControlMessageOwned::ScmTimestampns(ts) = c
            && let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec()), u32::try_from(ts.tv_nsec()))
        {
            let stamp = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
            received = arrival(now, wall, stamp);
        }
    }
    let source = m.address.as_ref().and_then(|a| match a.family() {
        Some(nix::sys::socket::AddressFamily::Inet) => a
            .as_sockaddr_in()
            .map(|x| SocketAddr::V4(std::net::SocketAddrV4::from(*x))),
        Some(nix::sys::socket::AddressFamily::Inet6) => a
            .as_sockaddr_in6()
            .map(|x| SocketAddr::V6(std::net::SocketAddrV6::from(*x))),
        _ => None,
    });
    let source = source.ok_or_else(|| std::io::Error::other("a datagram without a sender"))?;
    Ok((m.bytes, source, received))
}

/// The monotonic time of a kernel receive stamp `stamp` (wall clock), read at `now` /
/// `wall`: `now` for a stamp in the future or older than [`MAX_STAMP_AGE`] (the wall clock
/// was stepped in between).
pub(super) fn arrival(
    now: Instant,
    wall: std::time::SystemTime,
    stamp: std::time::SystemTime,
) -> Instant {
    match wall.duration_since(stamp) {
        Ok(age) if age <= MAX_STAMP_AGE => now.checked_sub(age).unwrap_or(now),
        _ => now,
    }
}

/// A kernel receive stamp older than this is not believed (see [`arrival`]).
pub(super) const MAX_STAMP_AGE: std::time::Duration = std::time::Duration::from_secs(2);

/// ICE-TCP connections by the viewer's address: where to write its framed datagrams.
pub(super) type TcpConns = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

/// Open ICE-TCP connections at most (each costs two small tasks and a queue).
const MAX_TCP_CONNECTIONS: usize = 1024;
/// Largest datagram accepted over ICE-TCP (browsers send well under 1500 bytes).
const MAX_TCP_DATAGRAM: usize = 4096;
/// A connection silent this long is closed (ICE consent checks come every few seconds).
const TCP_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn accept_tcp(
    local: SocketAddr,
    listener: TcpListener,
    tx: mpsc::Sender<Cmd>,
    conns: TcpConns,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if conns.lock().expect("tcp lock").len() >= MAX_TCP_CONNECTIONS {
                    tracing::warn!(%peer, "too many ICE-TCP connections: refused");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                tokio::spawn(tcp_connection(
                    local,
                    peer,
                    stream,
                    tx.clone(),
                    conns.clone(),
                ));
            }
            Err(e) => {
                tracing::debug!(error = %e, "ICE-TCP accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// One ICE-TCP connection: RFC 4571 frames (a 16-bit length, then a datagram) both ways.
async fn tcp_connection(
    local: SocketAddr,
    peer: SocketAddr,
    stream: TcpStream,
    tx: mpsc::Sender<Cmd>,
    conns: TcpConns,
) {
    let (mut rd, mut wr) = stream.into_split();
    // Media a slow connection cannot take is dropped here (NACK repairs what it can).
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(512);
    conns.lock().expect("tcp lock").insert(peer, out_tx);
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; MAX_TCP_DATAGRAM];
    loop {
        let mut len = [0u8; 2];
        let Ok(Ok(_)) = tokio::time::timeout(TCP_IDLE, rd.read_exact(&mut len)).await else {
            break;
        };
        let n = usize::from(u16::from_be_bytes(len));
        if n == 0 || n > MAX_TCP_DATAGRAM {
            tracing::debug!(%peer, n, "ICE-TCP: bad frame length, closing");
            break;
        }
        let Ok(Ok(_)) = tokio::time::timeout(TCP_IDLE, rd.read_exact(&mut buf[..n])).await else {
            break;
        };
        let c = Cmd::Datagram {
            proto: Proto::Tcp,
            source: peer,
            destination: local,
            data: buf[..n].to_vec(),
            received: Instant::now(),
        };
        if tx.send(c).await.is_err() {
            break;
        }
    }
    conns.lock().expect("tcp lock").remove(&peer);
    writer.abort();
}

/// The live thread: one current-thread runtime for the forwarding core, its sockets and
/// its connections.
pub(super) fn live_runtime() -> tokio::runtime::Handle {
    static RT: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building the live runtime");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("xaso-live".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("spawning the live thread");
        handle
    })
    .clone()
}

/// A UDP socket of the live task, with what the kernel offers for sending in batches.
pub(super) struct LiveSocket {
    pub(super) local: SocketAddr,
    pub(super) sock: Arc<UdpSocket>,
    /// Segmentation offload (GSO): several datagrams to one address in one `sendmsg`.
    pub(super) gso: quinn_udp::UdpSocketState,
}

/// Each destination's datagrams together, each RTP stream's in its order (a stable sort):
/// a frame's packets then leave in one GSO send even when the stack interleaved streams.
pub(super) fn group_by_stream(out: &mut [Transmit]) {
    out.sort_by_key(|t| (t.source, t.destination, rtp_ssrc(&t.contents)));
}

/// The SSRC of an (S)RTP datagram (its header is not encrypted), 0 for anything else.
pub(super) fn rtp_ssrc(d: &[u8]) -> u32 {
    match d {
        // RTP version 2, not RTCP (payload types 200-206 with the marker bit).
        [b0, b1, _, _, _, _, _, _, s0, s1, s2, s3, ..]
            if b0 >> 6 == 2 && !(200..=206).contains(b1) =>
        {
            u32::from_be_bytes([*s0, *s1, *s2, *s3])
        }
        _ => 0,
    }
}

/// Splits `t` into runs that one GSO send can carry: consecutive datagrams from one socket to
/// one address, all of the first one's size but the last, which may be shorter (the kernel
/// cuts the buffer into datagrams of the first one's size), `max` at most.
pub(super) fn gso_runs(t: &[Transmit], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < t.len() {
        let (first, size) = (&t[start], t[start].contents.len());
        let mut end = start + 1;
        while end < t.len()
            && end - start < max
            && t[end].source == first.source
            && t[end].destination == first.destination
            && t[end].contents.len() <= size
        {
            end += 1;
            if t[end - 1].contents.len() < size {
                break; // a shorter one ends the run
            }
        }
        runs.push(start..end);
        start = end;
    }
    runs
}

/// Sends what the core put out: ICE-TCP datagrams to their connection's writer, UDP ones
/// batched per viewer with GSO where the kernel can.
pub(super) async fn send_all(
    sockets: &[LiveSocket],
    tcp: &TcpConns,
    out: &mut Vec<Transmit>,
    scratch: &mut Vec<u8>,
) {
    if out.iter().any(|t| t.proto == Proto::Tcp) {
        let conns = tcp.lock().expect("tcp lock");
        out.retain(|t| {
            if t.proto == Proto::Udp {
                return true;
            }
            if let Some(c) = conns.get(&t.destination)
                && let Ok(len) = u16::try_from(t.contents.len())
            {
                let mut frame = Vec::with_capacity(t.contents.len() + 2);
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(&t.contents);
                let _ = c.try_send(frame);
            }
            false
        });
    }
    let max = sockets.first().map_or(1, |s| s.gso.max_gso_segments());
    group_by_stream(out);
    for run in gso_runs(out, max) {
        let batch = &out[run];
        let first = &batch[0];
        let Some(s) = sockets
            .iter()
            .find(|s| s.local == first.source)
            .or(sockets.first())
        else {
            return;
        };
        let sent = if batch.len() > 1 {
            scratch.clear();
            for t in batch {
                scratch.extend_from_slice(&t.contents);
            }
            let t = quinn_udp::Transmit {
                destination: first.destination,
                ecn: None,
                contents: scratch,
                segment_size: Some(first.contents.len()),
                src_ip: None,
            };
            send_one(s, &t).await
        } else {
            Err(std::io::Error::other("single"))
        };
        // One at a time: a single datagram, or GSO refused (the state then stops using it).
        if sent.is_err() {
            for t in batch {
                let t = quinn_udp::Transmit {
                    destination: t.destination,
                    ecn: None,
                    contents: &t.contents,
                    segment_size: None,
                    src_ip: None,
                };
                if let Err(e) = send_one(s, &t).await {
                    tracing::debug!(error = %e, to = %t.destination, "UDP send");
                }
            }
        }
    }
    out.clear();
}

pub(super) async fn send_one(s: &LiveSocket, t: &quinn_udp::Transmit<'_>) -> std::io::Result<()> {
    loop {
        match s.sock.try_io(tokio::io::Interest::WRITABLE, || {
            s.gso.try_send((&*s.sock).into(), t)
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => s.sock.writable().await?,
            r => return r,
        }
    }
}
