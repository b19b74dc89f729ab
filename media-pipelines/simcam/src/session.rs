//! One RTSP control connection's state machine, sans I/O: requests in, responses out, and at
//! most one session (SETUP → PLAY ⇄ PAUSE → TEARDOWN) whose [`Streamer`] the server polls.
//!
//! Time (`now`, wall clock) and randomness (session ids, SSRCs, initial sequence numbers and
//! timestamps) come in as arguments, so every answer is reproducible in tests.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use crate::clip::Clip;
use crate::rtp::{StreamParams, Streamer};
use crate::rtsp::{Request, Response, TransportSpec, parse_transport};
use crate::sdp;

/// What the server is configured with, shared by all connections.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// The served path, without slashes (e.g. `sim`).
    pub path: String,
    /// Advertised session timeout: a session with no request and no RTCP from its client for
    /// this long is closed.
    pub session_timeout: Duration,
    /// The server's RTP and RTCP UDP ports; `None` disables the UDP transport.
    pub udp_ports: Option<(u16, u16)>,
}

/// Where a stream's packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved in the RTSP TCP connection on these channels.
    Interleaved {
        /// RTP channel.
        rtp: u8,
        /// RTCP channel.
        rtcp: u8,
    },
    /// UDP datagrams to the client's ports.
    Udp {
        /// Client RTP address.
        rtp: SocketAddr,
        /// Client RTCP address.
        rtcp: SocketAddr,
    },
}

#[derive(Debug)]
struct Session {
    id: String,
    setups: [Option<(Transport, StreamParams)>; 2],
    streamer: Option<Streamer>,
}

/// The state of one control connection.
#[derive(Debug)]
pub struct Connection {
    clip: Clip,
    config: ConnConfig,
    peer: SocketAddr,
    local: SocketAddr,
    session: Option<Session>,
}

const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
const SERVER: &str = concat!("xaso-simcam/", env!("CARGO_PKG_VERSION"));

impl Connection {
    /// A new connection from `peer` accepted on `local`.
    pub fn new(clip: Clip, config: ConnConfig, peer: SocketAddr, local: SocketAddr) -> Self {
        Connection {
            clip,
            config,
            peer,
            local,
            session: None,
        }
    }

    /// The playing (or paused) session's streamer.
    pub fn streamer_mut(&mut self) -> Option<&mut Streamer> {
        self.session.as_mut()?.streamer.as_mut()
    }

    /// True once PLAY started a session that TEARDOWN has not ended.
    pub fn is_playing(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.streamer.is_some())
    }

    /// The transport of stream `i` of the session.
    pub fn transport(&self, i: usize) -> Option<Transport> {
        self.session.as_ref()?.setups.get(i)?.map(|(t, _)| t)
    }

    /// Answers one request.
    pub fn handle(
        &mut self,
        req: &Request,
        now: Instant,
        wall: SystemTime,
        rng: &mut impl rand::RngCore,
    ) -> Response {
        let mut resp = self.dispatch(req, now, wall, rng);
        let mut headers = Vec::with_capacity(resp.headers.len() + 2);
        if let Some(c) = req.cseq() {
            headers.push(("CSeq".to_owned(), c.to_owned()));
        }
        headers.push(("Server".to_owned(), SERVER.to_owned()));
        headers.append(&mut resp.headers);
        resp.headers = headers;
        resp
    }

    fn dispatch(
        &mut self,
        req: &Request,
        now: Instant,
        wall: SystemTime,
        rng: &mut impl rand::RngCore,
    ) -> Response {
        if req.cseq().is_none() {
            return Response::new(400);
        }
        if let Some(r) = req.header("Require") {
            return Response::new(551).header("Unsupported", r);
        }
        match req.method.as_str() {
            "OPTIONS" => Response::new(200).header("Public", PUBLIC),
            "DESCRIBE" => self.describe(req, rng),
            "SETUP" => self.setup(req, rng),
            "PLAY" => self.play(req, now, wall),
            "PAUSE" => self.pause(req, now),
            "TEARDOWN" => match self.check_session(req) {
                Err(r) => r,
                Ok(()) => {
                    self.session = None;
                    Response::new(200)
                }
            },
            "GET_PARAMETER" | "SET_PARAMETER" => {
                if let Some(id) = req.session_id()
                    && self.session.as_ref().is_none_or(|s| s.id != id)
                {
                    return Response::new(454);
                }
                if req.method == "SET_PARAMETER" && !req.body.is_empty() {
                    return Response::new(451);
                }
                self.with_session(Response::new(200))
            }
            _ => Response::new(501).header("Public", PUBLIC),
        }
    }

    /// Adds the `Session` header of the current session, if any.
    fn with_session(&self, r: Response) -> Response {
        match &self.session {
            Some(s) => r.header(
                "Session",
                format!("{};timeout={}", s.id, self.config.session_timeout.as_secs()),
            ),
            None => r,
        }
    }

    /// Checks that the request names the current session.
    fn check_session(&self, req: &Request) -> Result<(), Response> {
        match (&self.session, req.session_id()) {
            (Some(s), Some(id)) if s.id == id => Ok(()),
            (None, None) => Err(Response::new(455)),
            _ => Err(Response::new(454)),
        }
    }

    /// Is the request URI the served presentation (or one of its tracks)?
    fn is_ours(&self, req: &Request) -> bool {
        req.uri == "*"
            || req.path().is_some_and(|p| {
                p == self.config.path
                    || p.strip_prefix(self.config.path.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }

    /// The track index a SETUP URI names.
    fn track_of(&self, req: &Request) -> Option<usize> {
        let path = req.path()?;
        if path == self.config.path && self.clip.stream_count() == 1 {
            return Some(0);
        }
        let rest = path
            .strip_prefix(self.config.path.as_str())?
            .strip_prefix('/')?;
        (0..self.clip.stream_count()).find(|&i| rest == sdp::track_control(i))
    }

    /// The aggregate URL with a trailing slash: the `Content-Base`.
    fn base_url(&self, req: &Request) -> String {
        let mut uri = req.uri.split(['?', '#']).next().unwrap_or("").to_owned();
        if uri == "*" || uri.starts_with('/') || uri.is_empty() {
            uri = format!("rtsp://{}/{}", self.local, self.config.path);
        }
        let uri = uri.trim_end_matches('/');
        let uri = match uri.rsplit_once('/') {
            Some((head, last)) if last.starts_with("trackID=") => head,
            _ => uri,
        };
        format!("{uri}/")
    }

    fn describe(&self, req: &Request, rng: &mut impl rand::RngCore) -> Response {
        if req.path() != Some(self.config.path.as_str()) {
            return Response::new(404);
        }
        let origin = match self.local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4([127, 0, 0, 1].into()),
            ip => ip,
        };
        let body = sdp::describe(&self.clip, u64::from(rng.next_u32()), origin);
        Response::new(200)
            .header("Content-Base", self.base_url(req))
            .body("application/sdp", body.into_bytes())
    }

    fn setup(&mut self, req: &Request, rng: &mut impl rand::RngCore) -> Response {
        let Some(track) = self.track_of(req) else {
            return Response::new(404);
        };
        let Some(header) = req.header("Transport") else {
            return Response::new(400);
        };
        let Some(spec) = parse_transport(header) else {
            return Response::new(461);
        };
        match (&self.session, req.session_id()) {
            (Some(s), Some(id)) if s.id != id => return Response::new(454),
            (None, Some(_)) => return Response::new(454),
            (Some(s), _) if s.streamer.is_some() => return Response::new(455),
            _ => {}
        }
        let (transport, reply) = match spec {
            TransportSpec::Tcp { channels } => {
                let t = track as u8;
                let (rtp, rtcp) = channels.unwrap_or((2 * t, 2 * t + 1));
                (
                    Transport::Interleaved { rtp, rtcp },
                    format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp}"),
                )
            }
            TransportSpec::Udp {
                client_ports: (a, b),
            } => {
                let Some((sa, sb)) = self.config.udp_ports else {
                    return Response::new(461);
                };
                let ip = self.peer.ip();
                (
                    Transport::Udp {
                        rtp: SocketAddr::new(ip, a),
                        rtcp: SocketAddr::new(ip, b),
                    },
                    format!("RTP/AVP;unicast;client_port={a}-{b};server_port={sa}-{sb}"),
                )
            }
        };
        let params = StreamParams::random(rng);
        let session = self.session.get_or_insert_with(|| Session {
            id: format!("{:08X}{:08X}", rng.next_u32(), rng.next_u32()),
            setups: [None, None],
            streamer: None,
        });
        session.setups[track] = Some((transport, params));
        let reply = format!("{reply};ssrc={:08X}", params.ssrc);
        self.with_session(Response::new(200).header("Transport", reply))
    }

    fn play(&mut self, req: &Request, now: Instant, wall: SystemTime) -> Response {
        if let Err(r) = self.check_session(req) {
            return r;
        }
        if !self.is_ours(req) {
            return Response::new(404);
        }
        let base = self.base_url(req);
        let clip = self.clip.clone();
        let Some(session) = self.session.as_mut() else {
            return Response::new(455);
        };
        let streamer = match &mut session.streamer {
            Some(s) => {
                s.resume(now);
                s
            }
            None => {
                let params = session.setups.map(|s| s.map(|(_, p)| p));
                session
                    .streamer
                    .insert(Streamer::new(clip, params, now, wall))
            }
        };
        let rtp_info: Vec<String> = streamer
            .active_streams()
            .filter_map(|i| {
                let (seq, ts) = streamer.rtp_info(i)?;
                Some(format!(
                    "url={base}{};seq={seq};rtptime={ts}",
                    sdp::track_control(i)
                ))
            })
            .collect();
        self.with_session(
            Response::new(200)
                .header("Range", "npt=0.000-")
                .header("RTP-Info", rtp_info.join(",")),
        )
    }

    fn pause(&mut self, req: &Request, now: Instant) -> Response {
        if let Err(r) = self.check_session(req) {
            return r;
        }
        if let Some(s) = self.streamer_mut() {
            s.pause(now);
        }
        self.with_session(Response::new(200))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::{Input, parse};
    use rand::SeedableRng;

    fn conn(udp: bool) -> Connection {
        Connection::new(
            Clip::builtin(),
            ConnConfig {
                path: "sim".into(),
                session_timeout: Duration::from_secs(60),
                udp_ports: udp.then_some((6970, 6971)),
            },
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:8554".parse().unwrap(),
        )
    }

    fn req(text: &str) -> Request {
        let text = text.replace('\n', "\r\n") + "\r\n";
        match parse(text.as_bytes()) {
            Ok(Some((Input::Request(r), _))) => r,
            other => panic!("{other:?}"),
        }
    }

    struct Client {
        conn: Connection,
        rng: rand::rngs::StdRng,
        now: Instant,
    }

    impl Client {
        fn new(udp: bool) -> Self {
            Client {
                conn: conn(udp),
                rng: rand::rngs::StdRng::seed_from_u64(7),
                now: Instant::now(),
            }
        }
        fn send(&mut self, text: &str) -> Response {
            let r = req(text);
            self.conn
                .handle(&r, self.now, SystemTime::now(), &mut self.rng)
        }
    }

    #[test]
    fn full_tcp_session() {
        let mut c = Client::new(false);
        let r = c.send("OPTIONS rtsp://127.0.0.1:8554/sim RTSP/1.0\nCSeq: 1\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.get("CSeq"), Some("1"));
        assert!(r.get("Public").unwrap().contains("DESCRIBE"));

        let r = c.send(
            "DESCRIBE rtsp://127.0.0.1:8554/sim RTSP/1.0\nCSeq: 2\nAccept: application/sdp\n",
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.get("Content-Base"), Some("rtsp://127.0.0.1:8554/sim/"));
        assert_eq!(r.get("Content-Type"), Some("application/sdp"));
        assert!(
            String::from_utf8(r.body.clone())
                .unwrap()
                .contains("m=audio")
        );

        let r = c.send("SETUP rtsp://127.0.0.1:8554/sim/trackID=0 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\n");
        assert_eq!(r.status, 200);
        let session = r.get("Session").unwrap().to_owned();
        assert!(session.ends_with(";timeout=60"), "{session}");
        let id = session.split(';').next().unwrap().to_owned();
        let t = r.get("Transport").unwrap();
        assert!(
            t.starts_with("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc="),
            "{t}"
        );
        assert_eq!(
            t.len(),
            "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=".len() + 8
        );

        let r = c.send(&format!("SETUP rtsp://127.0.0.1:8554/sim/trackID=1 RTSP/1.0\nCSeq: 4\nSession: {id}\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\n"));
        assert_eq!(r.status, 200);
        assert_eq!(
            c.conn.transport(1),
            Some(Transport::Interleaved { rtp: 2, rtcp: 3 })
        );
        assert!(!c.conn.is_playing());

        let r = c.send(&format!(
            "PLAY rtsp://127.0.0.1:8554/sim/ RTSP/1.0\nCSeq: 5\nSession: {id}\nRange: npt=0.000-\n"
        ));
        assert_eq!(r.status, 200);
        let info = r.get("RTP-Info").unwrap();
        assert!(
            info.starts_with("url=rtsp://127.0.0.1:8554/sim/trackID=0;seq="),
            "{info}"
        );
        assert!(
            info.contains(",url=rtsp://127.0.0.1:8554/sim/trackID=1;seq="),
            "{info}"
        );
        assert!(c.conn.is_playing());
        let mut out = Vec::new();
        c.conn.streamer_mut().unwrap().poll(c.now, &mut out);
        assert!(out.iter().any(|p| !p.rtcp && p.stream == 0));

        // SETUP while playing is refused; keepalives are answered.
        let r = c.send(&format!("SETUP rtsp://127.0.0.1:8554/sim/trackID=1 RTSP/1.0\nCSeq: 6\nSession: {id}\nTransport: RTP/AVP/TCP;interleaved=2-3\n"));
        assert_eq!(r.status, 455);
        let r = c.send(&format!(
            "GET_PARAMETER rtsp://127.0.0.1:8554/sim/ RTSP/1.0\nCSeq: 7\nSession: {id}\n"
        ));
        assert_eq!(r.status, 200);
        let r =
            c.send("GET_PARAMETER rtsp://127.0.0.1:8554/sim/ RTSP/1.0\nCSeq: 8\nSession: nope\n");
        assert_eq!(r.status, 454);

        let r = c.send(&format!(
            "PAUSE rtsp://127.0.0.1:8554/sim/ RTSP/1.0\nCSeq: 9\nSession: {id}\n"
        ));
        assert_eq!(r.status, 200);
        assert!(c.conn.streamer_mut().unwrap().is_paused());
        let r = c.send(&format!(
            "PLAY rtsp://127.0.0.1:8554/sim/ RTSP/1.0\nCSeq: 10\nSession: {id}\n"
        ));
        assert_eq!(r.status, 200);
        assert!(!c.conn.streamer_mut().unwrap().is_paused());

        let r = c.send(&format!(
            "TEARDOWN rtsp://127.0.0.1:8554/sim/ RTSP/1.0\nCSeq: 11\nSession: {id}\n"
        ));
        assert_eq!(r.status, 200);
        assert!(!c.conn.is_playing());
        assert_eq!(c.conn.transport(0), None);
    }

    #[test]
    fn udp_setup() {
        let mut c = Client::new(true);
        let r = c.send("SETUP rtsp://127.0.0.1:8554/sim/trackID=0 RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP;unicast;client_port=5000-5001\n");
        assert_eq!(r.status, 200);
        let t = r.get("Transport").unwrap();
        assert!(
            t.starts_with("RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc="),
            "{t}"
        );
        assert_eq!(
            c.conn.transport(0),
            Some(Transport::Udp {
                rtp: "127.0.0.1:5000".parse().unwrap(),
                rtcp: "127.0.0.1:5001".parse().unwrap()
            })
        );
        // Without UDP sockets, UDP is an unsupported transport.
        let mut c = Client::new(false);
        let r = c.send("SETUP rtsp://127.0.0.1:8554/sim/trackID=0 RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP;unicast;client_port=5000-5001\n");
        assert_eq!(r.status, 461);
    }

    #[test]
    fn errors() {
        let mut c = Client::new(false);
        let cases = [
            (
                "DESCRIBE rtsp://127.0.0.1:8554/other RTSP/1.0\nCSeq: 1\n",
                404,
            ),
            ("DESCRIBE rtsp://127.0.0.1:8554/sim RTSP/1.0\n", 400),
            ("RECORD rtsp://127.0.0.1:8554/sim RTSP/1.0\nCSeq: 1\n", 501),
            ("FOO rtsp://127.0.0.1:8554/sim RTSP/1.0\nCSeq: 1\n", 501),
            (
                "SETUP rtsp://127.0.0.1:8554/sim/trackID=7 RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP/TCP\n",
                404,
            ),
            (
                "SETUP rtsp://127.0.0.1:8554/sim/trackID=0 RTSP/1.0\nCSeq: 1\n",
                400,
            ),
            (
                "SETUP rtsp://127.0.0.1:8554/sim/trackID=0 RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP;multicast\n",
                461,
            ),
            (
                "SETUP rtsp://127.0.0.1:8554/sim/trackID=0 RTSP/1.0\nCSeq: 1\nSession: x\nTransport: RTP/AVP/TCP\n",
                454,
            ),
            ("PLAY rtsp://127.0.0.1:8554/sim RTSP/1.0\nCSeq: 1\n", 455),
            (
                "PLAY rtsp://127.0.0.1:8554/sim RTSP/1.0\nCSeq: 1\nSession: x\n",
                454,
            ),
            (
                "TEARDOWN rtsp://127.0.0.1:8554/sim RTSP/1.0\nCSeq: 1\nSession: x\n",
                454,
            ),
            ("OPTIONS * RTSP/1.0\nCSeq: 1\nRequire: implicit-play\n", 551),
            (
                "SET_PARAMETER * RTSP/1.0\nCSeq: 1\nContent-Length: 3\n\nx=1",
                451,
            ),
        ];
        for (text, status) in cases {
            let r = req(text);
            let resp = c.conn.handle(&r, c.now, SystemTime::now(), &mut c.rng);
            assert_eq!(resp.status, status, "{text}");
            assert_eq!(resp.get("CSeq"), r.cseq());
        }
    }
}
