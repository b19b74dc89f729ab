//! The forwarding core: sources (a camera now, a meeting participant later) and WebRTC
//! sessions subscribed to them, driven by [`Core::handle_input`] with `now` passed in, and
//! drained by [`Core::poll_output`]. No sockets, no clocks, no threads: the binary runs one
//! thin task around it that owns the UDP socket, and tests drive it directly.
//!
//! A source's frame is packetized once; each subscriber then writes the same payloads under
//! its own sequence numbers and timestamps. Datagrams are demultiplexed to sessions by
//! their remote address once known; a datagram from a new address goes to the session
//! that accepts it (ICE ufrag), which teaches the core that address.

use crate::session::{CONNECT_TIMEOUT, Proto, Session, SessionError, Transmit};
use crate::source::{MediaFrame, Source};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

pub type SourceId = i64;
pub type SessionId = u64;

/// What the core is told.
pub enum Input<'a> {
    /// A frame from a source.
    Frame(SourceId, MediaFrame<'a>),
    /// A datagram that arrived on the shared UDP socket.
    Datagram {
        proto: Proto,
        source: SocketAddr,
        destination: SocketAddr,
        data: &'a [u8],
    },
    /// Time passed (at or after the last [`Output::Timeout`]).
    Timeout,
}

/// What the core asks for.
#[derive(Debug)]
pub enum Output {
    Transmit(Transmit),
    /// A session is over (DELETE, the viewer left, an error): for the audit log.
    Closed(Closed),
    /// Call [`Core::handle_input`] with [`Input::Timeout`] at this time if nothing else
    /// comes first.
    Timeout(Instant),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub session: SessionId,
    pub source: SourceId,
    pub bytes_sent: u64,
    pub reason: String,
}

struct Entry {
    session: Session,
    source: SourceId,
    created: Instant,
}

#[derive(Default)]
pub struct Core {
    sources: HashMap<SourceId, Source>,
    sessions: HashMap<SessionId, Entry>,
    subscribers: HashMap<SourceId, Vec<SessionId>>,
    /// Remote address → session, learned from the datagrams each session accepted.
    remotes: HashMap<SocketAddr, SessionId>,
    next_id: SessionId,
    out: VecDeque<Output>,
    scratch: Vec<Transmit>,
    /// Set after [`Core::poll_output`] has returned everything but the timeout.
    timeout_due: bool,
    seed: u64,
}

impl Core {
    /// `seed` makes each session's first sequence number and timestamp unpredictable
    /// (RFC 3550); pass a random number (tests pass a constant).
    pub fn new(seed: u64) -> Core {
        Core {
            next_id: 1,
            seed: seed | 1,
            ..Default::default()
        }
    }

    /// The source's state (created empty on first use).
    pub fn source(&mut self, id: SourceId) -> &mut Source {
        self.sources.entry(id).or_default()
    }

    pub fn has_source(&self, id: SourceId) -> bool {
        self.sources.contains_key(&id)
    }

    /// Removes a source (its camera was deleted); its viewers' sessions end.
    pub fn remove_source(&mut self, id: SourceId, reason: &str) {
        self.sources.remove(&id);
        for s in self.subscribers.remove(&id).unwrap_or_default() {
            self.close(s, reason);
        }
    }

    /// The source's stream started anew (a camera reconnected): its cached GOP is stale,
    /// and its viewers' timestamps must go on from where they were.
    pub fn restart_source(&mut self, id: SourceId) {
        if let Some(s) = self.sources.get_mut(&id) {
            s.clear_gop();
        }
        for sid in self.subscribers.get(&id).map_or(&[][..], Vec::as_slice) {
            if let Some(e) = self.sessions.get_mut(sid) {
                e.session.restart();
            }
        }
    }

    /// Number of live sessions (all sources).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn session_source(&self, id: SessionId) -> Option<SourceId> {
        self.sessions.get(&id).map(|e| e.source)
    }

    /// Answers a viewer's SDP offer for a source: a new session and the SDP answer.
    pub fn subscribe(
        &mut self,
        now: Instant,
        source: SourceId,
        offer: &str,
        candidates: &[(Proto, SocketAddr)],
    ) -> Result<(SessionId, String), SessionError> {
        let tracks = self.source(source).tracks().clone();
        let id = self.next_id;
        self.next_id += 1;
        let seed = (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.seed) | 1;
        let (session, answer) = Session::answer(now, offer, &tracks, candidates, seed)?;
        self.sessions.insert(
            id,
            Entry {
                session,
                source,
                created: now,
            },
        );
        self.subscribers.entry(source).or_default().push(id);
        self.timeout_due = false;
        Ok((id, answer))
    }

    /// Ends a session (a DELETE). `false` if there is no such session.
    pub fn close(&mut self, id: SessionId, reason: &str) -> bool {
        let Some(mut e) = self.sessions.remove(&id) else {
            return false;
        };
        self.timeout_due = false;
        self.remotes.retain(|_, s| *s != id);
        e.session.close(reason);
        if let Some(v) = self.subscribers.get_mut(&e.source) {
            v.retain(|s| *s != id);
        }
        self.out.push_back(Output::Closed(Closed {
            session: id,
            source: e.source,
            bytes_sent: e.session.bytes_sent,
            reason: e.session.ended.clone().unwrap_or_else(|| reason.into()),
        }));
        true
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.timeout_due = false;
        match input {
            Input::Frame(id, f) => {
                let source = self.sources.entry(id).or_default();
                let subs = self.subscribers.get(&id).map_or(&[][..], Vec::as_slice);
                // Viewers connected since the last frame start from the GOP so far.
                for sid in subs {
                    if let Some(e) = self.sessions.get_mut(sid)
                        && e.session.wants_start()
                    {
                        e.session.start_video(now, source.gop(), &mut self.scratch);
                    }
                }
                let Some(frame) = source.push(f) else {
                    self.flush_scratch();
                    return;
                };
                for sid in subs {
                    if let Some(e) = self.sessions.get_mut(sid) {
                        e.session.send(now, &frame, &mut self.scratch);
                    }
                }
                self.flush_scratch();
            }
            Input::Datagram {
                proto,
                source,
                destination,
                data,
            } => {
                let known = self
                    .remotes
                    .get(&source)
                    .copied()
                    .filter(|id| self.sessions.contains_key(id));
                let id = known.or_else(|| {
                    self.sessions
                        .iter()
                        .find(|(_, e)| e.session.accepts(now, proto, source, destination, data))
                        .map(|(id, _)| *id)
                });
                let Some(id) = id else {
                    tracing::trace!(%source, "datagram for no session");
                    return;
                };
                self.remotes.insert(source, id);
                let e = self.sessions.get_mut(&id).expect("found above");
                e.session
                    .handle_receive(now, proto, source, destination, data, &mut self.scratch);
                self.flush_scratch();
            }
            Input::Timeout => {
                for e in self.sessions.values_mut() {
                    if e.session.timeout() <= now {
                        e.session.handle_timeout(now, &mut self.scratch);
                    }
                    if !e.session.is_connected()
                        && e.session.ended.is_none()
                        && now.duration_since(e.created) > CONNECT_TIMEOUT
                    {
                        e.session.close("the viewer never connected");
                    }
                }
                self.flush_scratch();
            }
        }
        self.reap();
    }

    fn flush_scratch(&mut self) {
        self.out
            .extend(self.scratch.drain(..).map(Output::Transmit));
    }

    /// Removes the sessions that ended by themselves.
    fn reap(&mut self) {
        let ended: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.session.ended.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.close(id, "ended");
        }
    }

    /// The next thing to do: datagrams and closings first, then the time of the next
    /// timeout (or `None` when there are no sessions).
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        if self.timeout_due {
            return None;
        }
        self.timeout_due = true;
        self.sessions
            .values()
            .map(|e| e.session.timeout())
            .min()
            .map(Output::Timeout)
    }
}
