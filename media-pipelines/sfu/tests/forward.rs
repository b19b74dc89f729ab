//! The forwarding core against a real WebRTC peer (a str0m client, as the load client and
//! browsers are), with no sockets: datagrams go between them in memory over simulated
//! time, with seeded loss when asked.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input as RtcInput, Output as RtcOutput, Rtc};
use xaso_base::Codec;
use xaso_sfu::h264::{self, ParameterSets};
use xaso_sfu::{Core, Input, Kind, MediaFrame, Output, Proto};

// Loopback addresses only, though nothing here touches a socket.
const SERVER: &str = "127.0.0.2:5000";

fn params() -> ParameterSets {
    ParameterSets {
        sps: vec![vec![0x67, 0x42, 0xe0, 0x1f, 0xaa]],
        pps: vec![vec![0x68, 0xce, 0x3c, 0x80]],
        ..Default::default()
    }
}

/// Frame `i` of a synthetic 25 fps stream with a keyframe every `gop` frames: its NAL unit
/// bytes encode `i` so that the receiver can check what it got.
fn frame(i: u32, gop: u32) -> (bool, Vec<u8>) {
    let key = i.is_multiple_of(gop);
    let len = if key {
        4000
    } else {
        700 + (i as usize % 5) * 300
    };
    let mut nal = vec![if key { 0x65 } else { 0x41 }];
    nal.extend_from_slice(&i.to_be_bytes());
    nal.extend((0..len).map(|k| (k as u32 ^ i) as u8));
    let mut au = (nal.len() as u32).to_be_bytes().to_vec();
    au.extend_from_slice(&nal);
    (key, au)
}

struct Viewer {
    rtc: Rtc,
    addr: SocketAddr,
    /// (seq, rtp time, marker, payload) in arrival order.
    packets: Vec<(u64, u32, bool, Vec<u8>)>,
    connected: bool,
    next: Instant,
}

impl Viewer {
    fn offer(
        now: Instant,
        addr: SocketAddr,
        audio: bool,
    ) -> (Viewer, String, str0m::change::SdpPendingOffer) {
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .enable_h265(true)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        if audio {
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = api.apply().unwrap();
        let v = Viewer {
            rtc,
            addr,
            packets: Vec::new(),
            connected: false,
            next: now,
        };
        (v, offer.to_sdp_string(), pending)
    }

    /// Drains the viewer's output: datagrams for the server, packets received.
    fn drain(&mut self, to_server: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        loop {
            match self.rtc.poll_output().unwrap() {
                RtcOutput::Timeout(t) => {
                    self.next = t;
                    return;
                }
                RtcOutput::Transmit(t) => {
                    to_server.push((t.source, t.destination, t.contents.into()))
                }
                RtcOutput::Event(Event::Connected) => self.connected = true,
                RtcOutput::Event(Event::RtpPacket(p)) => self.packets.push((
                    *p.seq_no,
                    p.header.timestamp,
                    p.header.marker,
                    p.payload.to_vec(),
                )),
                RtcOutput::Event(_) => {}
            }
        }
    }
}

/// Runs the core and viewers together: `frames` video frames at 25 fps (pushed from the
/// start, so the first viewers meet a GOP already cached), datagrams from the server to
/// the viewers dropped when `lose(n)` says so.
struct Net {
    now: Instant,
    core: Core,
    viewers: Vec<Viewer>,
    lose: Box<dyn FnMut(u64) -> bool>,
    sent: u64,
    to_server: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
}

impl Net {
    fn new() -> Net {
        xaso_sfu::init_crypto();
        let now = Instant::now();
        let mut core = Core::new(42);
        core.source(1).set_video(Codec::H264, params());
        Net {
            now,
            core,
            viewers: Vec::new(),
            lose: Box::new(|_| false),
            sent: 0,
            to_server: Vec::new(),
        }
    }

    fn join(&mut self) -> Result<usize, xaso_sfu::SessionError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 40000 + self.viewers.len() as u16));
        let (mut v, offer, pending) = Viewer::offer(self.now, addr, false);
        let (_, answer) = self.core.subscribe(
            self.now,
            1,
            &offer,
            &[(Proto::Udp, SERVER.parse().unwrap())],
        )?;
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        v.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        self.viewers.push(v);
        Ok(self.viewers.len() - 1)
    }

    /// Moves time on by `d`, delivering datagrams both ways.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            let mut to_server = std::mem::take(&mut self.to_server);
            for v in &mut self.viewers {
                if v.next <= self.now {
                    v.rtc.handle_input(RtcInput::Timeout(self.now)).unwrap();
                }
                v.drain(&mut to_server);
            }
            for (source, destination, data) in to_server {
                self.core.handle_input(
                    self.now,
                    Input::Datagram {
                        proto: Proto::Udp,
                        source,
                        destination,
                        data: &data,
                    },
                );
            }
            self.core.handle_input(self.now, Input::Timeout);
            self.deliver();
            self.now += Duration::from_millis(5);
        }
    }

    fn deliver(&mut self) {
        while let Some(o) = self.core.poll_output() {
            let Output::Transmit(t) = o else { continue };
            self.sent += 1;
            if (self.lose)(self.sent) {
                continue;
            }
            let v = self.viewers.iter_mut().find(|v| v.addr == t.destination);
            let Some(v) = v else { continue };
            let input = RtcInput::Receive(
                self.now,
                Receive {
                    proto: Protocol::Udp,
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.as_slice().try_into().unwrap(),
                },
            );
            assert!(
                v.rtc.accepts(&input),
                "the viewer takes every datagram sent to it"
            );
            v.rtc.handle_input(input).unwrap();
            // str0m holds one received packet until polled: poll after every datagram.
            v.drain(&mut self.to_server);
        }
    }

    fn push(&mut self, i: u32, gop: u32) {
        self.push_at(i, gop, i as i64 * 3600);
    }

    /// Frame `i` with the source timestamp `ts`.
    fn push_at(&mut self, i: u32, gop: u32, ts: i64) {
        let (key, au) = frame(i, gop);
        self.push_au(key, &au, ts);
    }

    fn push_au(&mut self, key: bool, au: &[u8], ts: i64) {
        self.core.handle_input(
            self.now,
            Input::Frame(
                1,
                MediaFrame {
                    kind: Kind::Video,
                    ts,
                    keyframe: key,
                    data: au,
                },
            ),
        );
        self.deliver();
    }
}

/// The frames a viewer got: depacketized access units, in order, with their RTP times.
fn frames_of(packets: &[(u64, u32, bool, Vec<u8>)]) -> Vec<(u32, Vec<Vec<u8>>)> {
    frames_with(packets, |p| h264::depacketize(p.iter().map(Vec::as_slice)))
}

fn frames_with(
    packets: &[(u64, u32, bool, Vec<u8>)],
    depacketize: impl Fn(&[Vec<u8>]) -> Option<Vec<Vec<u8>>>,
) -> Vec<(u32, Vec<Vec<u8>>)> {
    let mut sorted = packets.to_vec();
    sorted.sort_by_key(|p| p.0);
    sorted.dedup_by_key(|p| p.0);
    let mut out = Vec::new();
    let mut cur: Vec<Vec<u8>> = Vec::new();
    for (_, ts, marker, payload) in sorted {
        cur.push(payload);
        if marker {
            let nals = depacketize(&cur).unwrap_or_else(|| {
                panic!(
                    "malformed frame: {:?}",
                    cur.iter()
                        .map(|p| (p.len(), p.get(..2).map(<[u8]>::to_vec)))
                        .collect::<Vec<_>>()
                )
            });
            out.push((ts, nals));
            cur.clear();
        }
    }
    out
}

/// The number each frame carries (see [`frame`]).
fn frame_ids(frames: &[(u32, Vec<Vec<u8>>)]) -> Vec<u32> {
    frames
        .iter()
        .map(|(_, nals)| {
            let n = nals.last().unwrap();
            u32::from_be_bytes([n[1], n[2], n[3], n[4]])
        })
        .collect()
}

#[test]
fn a_viewer_starts_from_the_cached_gop_and_gets_every_frame_in_order() {
    let mut net = Net::new();
    // 30 frames before anybody watches: the GOP (keyframe every 25) holds frames 25..29.
    for i in 0..30 {
        net.push(i, 25);
    }
    net.join().unwrap();
    net.run(Duration::from_secs(2));
    assert!(net.viewers[0].connected, "ICE and DTLS completed");
    for i in 30..80 {
        net.push(i, 25);
        net.run(Duration::from_millis(40));
    }
    let got = frames_of(&net.viewers[0].packets);
    let ids = frame_ids(&got);
    assert_eq!(
        ids,
        (25..80).collect::<Vec<_>>(),
        "from the cached keyframe on, none missing"
    );
    // The keyframe came with the parameter sets, and every frame's bytes are intact.
    assert_eq!(&got[0].1[0], &params().sps[0]);
    assert_eq!(&got[0].1[1], &params().pps[0]);
    for (k, (_, nals)) in got.iter().enumerate() {
        let (_, au) = frame(25 + k as u32, 25);
        assert_eq!(nals.last().unwrap().as_slice(), &au[4..]);
    }
    // The cached frames are squeezed together; live frames are 3600 apart.
    let ts: Vec<u32> = got.iter().map(|g| g.0).collect();
    assert!(ts[1].wrapping_sub(ts[0]) < 10, "{ts:?}");
    assert_eq!(ts[10].wrapping_sub(ts[9]), 3600);
    // Sequence numbers are contiguous.
    let mut seqs: Vec<u64> = net.viewers[0].packets.iter().map(|p| p.0).collect();
    seqs.sort();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn lost_packets_are_retransmitted_after_nack() {
    let mut net = Net::new();
    net.push(0, 50);
    net.join().unwrap();
    net.run(Duration::from_secs(2));
    assert!(net.viewers[0].connected);
    // From now on, lose one datagram in 20 (seeded, repeatable).
    let mut x: u64 = 7;
    net.lose = Box::new(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x.is_multiple_of(20)
    });
    for i in 1..100 {
        net.push(i, 50);
        net.run(Duration::from_millis(40));
    }
    net.lose = Box::new(|_| false);
    net.run(Duration::from_secs(1));
    let got = frames_of(&net.viewers[0].packets);
    assert_eq!(got.len(), 100, "every frame complete after retransmission");
}

#[test]
fn fifty_viewers_of_one_camera_all_receive() {
    let mut net = Net::new();
    net.push(0, 25);
    for _ in 0..50 {
        net.join().unwrap();
    }
    net.run(Duration::from_secs(2));
    assert!(net.viewers.iter().all(|v| v.connected));
    for i in 1..50 {
        net.push(i, 25);
        net.run(Duration::from_millis(40));
    }
    for v in &net.viewers {
        assert_eq!(frames_of(&v.packets).len(), 50);
    }
    assert_eq!(net.core.sessions(), 50);
}

#[test]
fn bad_offers_are_refused_cleanly() {
    let mut net = Net::new();
    let now = net.now;
    let c = [(Proto::Udp, SERVER.parse().unwrap())];
    assert!(matches!(
        net.core.subscribe(now, 1, "this is not SDP", &c),
        Err(xaso_sfu::SessionError::BadSdp(_))
    ));
    assert!(matches!(
        net.core.subscribe(now, 1, "", &c),
        Err(xaso_sfu::SessionError::BadSdp(_))
    ));
    // An offer with audio only, for a source with video only.
    let (_, offer, _) = {
        let mut rtc = Rtc::builder().build(now);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        ((), offer.to_sdp_string(), pending)
    };
    assert!(matches!(
        net.core.subscribe(now, 1, &offer, &c),
        Err(xaso_sfu::SessionError::NoCompatibleCodec(_))
    ));
    // Truncated and mangled offers: never a panic.
    let (_, good, _) = Viewer::offer(now, "127.0.0.1:40000".parse().unwrap(), true);
    for cut in (0..good.len()).step_by(37) {
        let _ = net.core.subscribe(now, 1, &good[..cut], &c);
    }
    let mangled = good
        .replace("a=fingerprint", "a=fingerprnt")
        .replace("m=video 9", "m=video x");
    let _ = net.core.subscribe(now, 1, &mangled, &c);
    // And the core still serves: a proper viewer joins and connects.
    net.push(0, 25);
    net.join().unwrap();
    net.run(Duration::from_secs(2));
    assert!(net.viewers[0].connected);
}

#[test]
fn after_the_camera_reconnects_a_viewer_goes_on_from_the_next_keyframe() {
    let mut net = Net::new();
    net.push(0, 25);
    net.join().unwrap();
    net.run(Duration::from_secs(2));
    for i in 1..30 {
        net.push(i, 25);
        net.run(Duration::from_millis(40));
    }
    // The camera reconnects: its clock starts at 0 again; frames 30..49 come, the first
    // keyframe of the new stream is frame 50 (frame(i, 25) is a keyframe at i = 50).
    net.core.restart_source(1);
    for i in 30..60 {
        net.push_at(i, 25, (i as i64 - 30) * 3600);
        net.run(Duration::from_millis(40));
    }
    let got = frames_of(&net.viewers[0].packets);
    let ids = frame_ids(&got);
    let want: Vec<u32> = (0..30).chain(50..60).collect();
    assert_eq!(
        ids, want,
        "the old stream, then the new one from its keyframe"
    );
    // Timestamps only go forward across the restart.
    let ts: Vec<u32> = got.iter().map(|g| g.0).collect();
    assert!(
        ts.windows(2).all(|w| {
            let d = w[1].wrapping_sub(w[0]);
            d > 0 && d < 90_000
        }),
        "{ts:?}"
    );
}

#[test]
fn h265_goes_to_viewers_that_take_it_and_is_refused_to_the_others() {
    let mut net = Net::new();
    let params = ParameterSets {
        vps: vec![vec![0x40, 0x01, 0x0c, 0x01]],
        sps: vec![vec![0x42, 0x01, 0x01, 0x01, 0x60]],
        pps: vec![vec![0x44, 0x01, 0xc1, 0x72]],
    };
    net.core.source(1).set_video(Codec::H265, params.clone());
    // Frame i: an IDR_W_RADL picture every 25 frames, else TRAIL_R, carrying i; large
    // enough for fragmentation units.
    let au = |i: u32| {
        let key = i.is_multiple_of(25);
        let mut nal = vec![if key { 19 << 1 } else { 1 << 1 }, 0x01];
        nal.extend_from_slice(&i.to_be_bytes());
        nal.extend((0..if key { 5000 } else { 900 }).map(|k| (k as u32 ^ i) as u8));
        let mut au = (nal.len() as u32).to_be_bytes().to_vec();
        au.extend_from_slice(&nal);
        (key, au, nal)
    };
    // A browser that offers no H.265 is refused, with the reason.
    let mut rtc = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_h264(true)
        .build(net.now);
    rtc.add_local_candidate(Candidate::host("127.0.0.1:39999".parse().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, _) = api.apply().unwrap();
    let c = [(Proto::Udp, SERVER.parse().unwrap())];
    match net.core.subscribe(net.now, 1, &offer.to_sdp_string(), &c) {
        Err(xaso_sfu::SessionError::NoCompatibleCodec(m)) => assert!(m.contains("H.265"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // One that offers it gets every frame from the cached keyframe, parameter sets first.
    for i in 0..3 {
        let (key, a, _) = au(i);
        net.push_au(key, &a, i as i64 * 3600);
    }
    net.join().unwrap();
    net.run(Duration::from_secs(2));
    assert!(net.viewers[0].connected);
    for i in 3..60 {
        let (key, a, _) = au(i);
        net.push_au(key, &a, i as i64 * 3600);
        net.run(Duration::from_millis(40));
    }
    let got = frames_with(&net.viewers[0].packets, |p| {
        xaso_sfu::h265::depacketize(p.iter().map(Vec::as_slice))
    });
    assert_eq!(got.len(), 60);
    assert_eq!(
        got[0].1[..3],
        [
            params.vps[0].clone(),
            params.sps[0].clone(),
            params.pps[0].clone()
        ]
    );
    for (i, (_, nals)) in got.iter().enumerate() {
        assert_eq!(nals.last().unwrap(), &au(i as u32).2, "frame {i}");
    }
}
