//! The link protocol between a child node and its parent, sans I/O: the control messages
//! (JSON text frames of one WebSocket) and [`LinkCore`], which keeps a link's clock — pings
//! every second, the round-trip time, the byte counts, and the verdict that a silent link is
//! dead — driven by `now` passed in, so tests run it without a socket.
//!
//! The child speaks first (`hello`), the parent answers (`welcome`, with the name and level
//! it registered the child under); then either side may send any message. A message of a
//! type this version does not know is ignored, so a newer node can talk to an older one.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The protocol version a node speaks; `hello` and `welcome` carry it.
pub const PROTO: u32 = 1;
/// Each side sends a ping this often.
pub const PING_EVERY: Duration = Duration::from_secs(1);
/// A link on which nothing arrived for this long is dead (the far side is gone, or the path
/// to it): it is closed, and the child dials again.
pub const DEAD_AFTER: Duration = Duration::from_secs(4);

/// One control message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Msg {
    /// Child → parent, first: what the child runs.
    Hello {
        proto: u32,
        version: String,
    },
    /// Parent → child, first: what the parent calls the child.
    Welcome {
        proto: u32,
        version: String,
        name: String,
        level: String,
    },
    /// `id` is the sender's clock (µs since its side of the link began); echoed in `pong`.
    Ping {
        id: u64,
    },
    Pong {
        id: u64,
    },
    /// Child → parent: the nodes below the child, as it sees them; sent after `welcome` and
    /// whenever that changes.
    Tree {
        nodes: Vec<TreeNode>,
    },
    /// Child → parent: every camera at the child and below it, sent after `welcome` and
    /// whenever the list or a camera's state changes.
    Cameras {
        cameras: Vec<CameraInfo>,
    },
    /// Parent → child: send a camera's stream on channel `ch` (see `federation::relay`).
    /// `camera` is the child's id of it; `by` names the parent's user who asked first.
    Watch {
        ch: u32,
        camera: i64,
        /// `main` or `sub`.
        #[serde(default)]
        stream: String,
        #[serde(default)]
        by: String,
    },
    /// Parent → child: nobody above watches channel `ch` any more.
    Unwatch {
        ch: u32,
    },
    /// Child → parent: the tracks of channel `ch`, before its first frame and whenever they
    /// change (a camera's new parameters).
    Tracks {
        ch: u32,
        video: Option<TrackInfo>,
        audio: Option<TrackInfo>,
    },
    /// Child → parent: the camera of channel `ch` reconnected; its timestamps start anew.
    Restart {
        ch: u32,
    },
    /// Child → parent: channel `ch` is not (or no longer) served, and why.
    Unwatched {
        ch: u32,
        reason: String,
    },
    /// Parent → child: serve this request for footage (`federation::archive`), sending at
    /// most `credit` bytes of its body until granted more.
    Req {
        id: u32,
        method: String,
        path: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
        #[serde(default)]
        by: String,
        credit: u32,
    },
    /// Parent → child: the parent's client read this much more of request `id`'s body.
    Credit {
        id: u32,
        bytes: u32,
    },
    /// Parent → child: the parent's client went away; stop sending request `id`.
    Cancel {
        id: u32,
    },
    /// Child → parent: the answer to request `id` begins (its body follows in chunks).
    Res {
        id: u32,
        status: u16,
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// Child → parent: the body of request `id` is complete, or broke off with `error`.
    ResEnd {
        id: u32,
        #[serde(default)]
        error: Option<String>,
    },
    /// Parent → child: a meeting that invites the child or nodes below it (new, or
    /// changed), `nodes` relative to the child (`""` is the child itself).
    MeetingInfo {
        id: i64,
        title: String,
        start_ms: i64,
        end_ms: i64,
        chair: String,
        #[serde(default)]
        locked: bool,
        #[serde(default)]
        ended_ms: Option<i64>,
        nodes: Vec<String>,
    },
    /// Either side: the trunk of meeting `meeting` on this link (`federation::meetings`).
    Meeting {
        meeting: i64,
        #[serde(flatten)]
        op: super::meetings::TrunkMsg,
    },
    /// Either side: what it estimates it can send on this link now, bits per second
    /// (`federation::rate`); the far side asks for no more than fits.
    Rate {
        bps: u64,
    },
    /// Either side, before it closes the link on purpose (e.g. the child was removed).
    Bye {
        reason: String,
    },
    /// A message of a later version.
    #[serde(other)]
    Unknown,
}

/// A node below the sender, and the nodes below it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TreeNode {
    pub name: String,
    pub level: String,
    /// Whether its link to its parent is up.
    pub up: bool,
    /// When that link last went up or down (ms since the epoch, the reporting node's clock).
    pub since_ms: Option<i64>,
    pub rtt_ms: Option<f64>,
    #[serde(default)]
    #[schema(no_recursion)]
    pub nodes: Vec<TreeNode>,
}

/// A camera as a child reports it up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraInfo {
    /// Its id at the reporting node (for a camera further down, the reporting node's id of
    /// it: each hop knows only its children's ids).
    pub id: i64,
    pub name: String,
    /// The node it is at, relative to the reporting node: empty for the reporter's own, else
    /// a path such as `xa-b` or `xa-b/thon-1`.
    #[serde(default)]
    pub node: String,
    /// Whether it is recorded at its node.
    pub record: bool,
    /// Its state there (`recording`, `streaming`, `connecting`, `failed`, `stopped`).
    #[serde(default)]
    pub state: Option<String>,
}

/// A track of a relayed stream: its codec (`h264`, `h265`, `aac`, `pcmu`, `pcma`) and its
/// ISO BMFF sample entry (base64), when it has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub codec: String,
    #[serde(default)]
    pub entry: Option<String>,
}

/// What ended a link.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkError {
    /// Nothing arrived for [`DEAD_AFTER`].
    Silent,
    /// The far side broke the protocol.
    Protocol(String),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Silent => write!(
                f,
                "nothing heard for {} s: the link is taken for dead",
                DEAD_AFTER.as_secs()
            ),
            LinkError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

/// The figures of a link, as the API shows them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkFigures {
    pub rtt: Option<Duration>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Camera streams crossing the link each way (`federation::relay`).
    pub streams_sent: u32,
    pub streams_received: u32,
    /// What this side estimates it can send, and what the far side said it can, bits per
    /// second (`None` until the link was once full that way).
    pub rate_out_bps: Option<u64>,
    pub rate_in_bps: Option<u64>,
}

/// One side of a link: the ping clock, the round-trip time, the byte counts.
#[derive(Debug)]
pub struct LinkCore {
    started: Instant,
    last_rx: Instant,
    next_ping: Instant,
    out: VecDeque<String>,
    figures: LinkFigures,
    meter: super::rate::RateMeter,
}

impl LinkCore {
    pub fn new(now: Instant) -> Self {
        LinkCore {
            started: now,
            last_rx: now,
            next_ping: now,
            out: VecDeque::new(),
            figures: LinkFigures::default(),
            meter: Default::default(),
        }
    }

    pub fn figures(&self) -> &LinkFigures {
        &self.figures
    }

    /// Queues a message for the far side.
    pub fn send(&mut self, m: &Msg) {
        self.out
            .push_back(serde_json::to_string(m).expect("messages serialize"));
    }

    /// The next text frame to write, counted as sent.
    pub fn poll_transmit(&mut self) -> Option<String> {
        let f = self.out.pop_front()?;
        self.figures.bytes_sent += f.len() as u64;
        Some(f)
    }

    /// A frame of the link's stream queue (relayed media, or a message in order with it)
    /// was written, counted as sent and measured, with `queued` media bytes behind it.
    pub fn sent_stream(&mut self, now: Instant, len: usize, queued: usize) {
        self.figures.bytes_sent += len as u64;
        self.meter.sent(now, len, queued);
    }

    /// Queues an already serialized message (from [`super::relay::Outbox`]).
    pub fn send_text(&mut self, t: String) {
        self.out.push_back(t);
    }

    /// Sends the ping that is due, if one is, without judging the link: a driver that was
    /// busy writing may not have read what arrived meanwhile.
    pub fn ping_if_due(&mut self, now: Instant) {
        if let Some(bps) = self.meter.poll_tell(now) {
            self.send(&Msg::Rate { bps });
        }
        self.figures.rate_out_bps = self.meter.estimate();
        if now >= self.next_ping {
            let id = (now - self.started).as_micros() as u64;
            self.send(&Msg::Ping { id });
            self.next_ping = now + PING_EVERY;
        }
    }

    /// A binary frame arrived (relayed media): counted, and it keeps the link alive.
    pub fn handle_binary(&mut self, now: Instant, len: usize) {
        self.last_rx = now;
        self.figures.bytes_received += len as u64;
    }

    /// A text frame arrived. Pings are answered and pongs measured here; any other message
    /// is returned to the caller.
    pub fn handle_text(&mut self, now: Instant, text: &str) -> Result<Option<Msg>, LinkError> {
        self.last_rx = now;
        self.figures.bytes_received += text.len() as u64;
        let m: Msg = serde_json::from_str(text).map_err(|e| {
            LinkError::Protocol(format!(
                "not a link message ({e}): {:?}",
                text.chars().take(80).collect::<String>()
            ))
        })?;
        match m {
            Msg::Ping { id } => {
                self.send(&Msg::Pong { id });
                Ok(None)
            }
            Msg::Pong { id } => {
                let sent = self.started + Duration::from_micros(id);
                if sent <= now {
                    self.figures.rtt = Some(now - sent);
                }
                Ok(None)
            }
            Msg::Unknown => Ok(None),
            Msg::Rate { bps } => {
                self.figures.rate_in_bps = Some(bps);
                Ok(Some(m))
            }
            m => Ok(Some(m)),
        }
    }

    /// When [`LinkCore::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_ping.min(self.last_rx + DEAD_AFTER)
    }

    /// Sends the ping that is due; fails once the far side has been silent too long.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), LinkError> {
        if now >= self.last_rx + DEAD_AFTER {
            return Err(LinkError::Silent);
        }
        self.ping_if_due(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(c: &mut LinkCore) -> Vec<String> {
        std::iter::from_fn(|| c.poll_transmit()).collect()
    }

    #[test]
    fn pings_are_answered_and_the_round_trip_measured() {
        let t0 = Instant::now();
        let (mut a, mut b) = (LinkCore::new(t0), LinkCore::new(t0));
        a.handle_timeout(t0).unwrap();
        let ping = drain(&mut a);
        assert_eq!(ping.len(), 1);
        assert!(ping[0].contains("\"t\":\"ping\""), "{ping:?}");
        // 30 ms later b reads the ping and answers; 30 ms after that a reads the pong.
        let t1 = t0 + Duration::from_millis(30);
        assert_eq!(b.handle_text(t1, &ping[0]).unwrap(), None);
        let pong = drain(&mut b);
        assert!(pong[0].contains("pong"));
        let t2 = t1 + Duration::from_millis(30);
        assert_eq!(a.handle_text(t2, &pong[0]).unwrap(), None);
        assert_eq!(a.figures().rtt, Some(Duration::from_millis(60)));
        assert_eq!(a.figures().bytes_sent, ping[0].len() as u64);
        assert_eq!(a.figures().bytes_received, pong[0].len() as u64);
        assert_eq!(b.figures().rtt, None, "b has not pinged yet");
    }

    #[test]
    fn one_ping_a_second_and_a_silent_link_dies_after_four() {
        let t0 = Instant::now();
        let mut a = LinkCore::new(t0);
        let mut pings = 0;
        let mut t = t0;
        // Ticks every 100 ms with nothing arriving.
        let dead_at = loop {
            if let Err(e) = a.handle_timeout(t) {
                assert_eq!(e, LinkError::Silent);
                break t;
            }
            pings += drain(&mut a).len();
            assert!(a.poll_timeout() > t);
            t += Duration::from_millis(100);
        };
        assert_eq!(dead_at - t0, DEAD_AFTER);
        assert_eq!(pings, 4, "at 0, 1, 2 and 3 s");
    }

    #[test]
    fn what_arrives_keeps_the_link_alive() {
        let t0 = Instant::now();
        let mut a = LinkCore::new(t0);
        for s in 1..=10 {
            let now = t0 + Duration::from_secs(3 * s);
            a.handle_text(now - Duration::from_millis(1), r#"{"t":"pong","id":0}"#)
                .unwrap();
            a.handle_timeout(now).unwrap();
        }
        let now = t0 + Duration::from_secs(30);
        a.handle_binary(now, 1200);
        assert!(a.handle_timeout(now + Duration::from_secs(3)).is_ok());
        assert_eq!(a.handle_timeout(now + DEAD_AFTER), Err(LinkError::Silent));
    }

    #[test]
    fn unknown_messages_are_ignored_and_garbage_is_an_error() {
        let t0 = Instant::now();
        let mut a = LinkCore::new(t0);
        assert_eq!(
            a.handle_text(t0, r#"{"t":"from_the_future","x":1}"#)
                .unwrap(),
            None
        );
        let m = a
            .handle_text(t0, r#"{"t":"hello","proto":1,"version":"9.9.9"}"#)
            .unwrap();
        assert_eq!(
            m,
            Some(Msg::Hello {
                proto: 1,
                version: "9.9.9".into()
            })
        );
        for bad in ["", "{", "[1,2]", r#"{"t":"hello"}"#, r#"{"no_type":1}"#] {
            match a.handle_text(t0, bad) {
                Err(LinkError::Protocol(_)) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_tree_round_trips() {
        let m = Msg::Tree {
            nodes: vec![TreeNode {
                name: "xa-b".into(),
                level: "commune".into(),
                up: true,
                since_ms: Some(1),
                rtt_ms: Some(2.5),
                nodes: vec![TreeNode {
                    name: "thon-c".into(),
                    level: "village".into(),
                    up: false,
                    since_ms: None,
                    rtt_ms: None,
                    nodes: vec![],
                }],
            }],
        };
        let t = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Msg>(&t).unwrap(), m);
    }
}
