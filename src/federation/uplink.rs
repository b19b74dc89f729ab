//! The child's end: dials the parent named by `[parent] url` over TLS pinned to the key in
//! the join token, opens the link's WebSocket with the token's secret, reports the tree
//! below this node, serves the camera streams the parent asks for (`relay::serve_watch`),
//! and dials again with backoff whenever the link ends.

use super::archive::{self, Credit};
use super::link::{self, End, Side};
use super::proto::{LinkCore, Msg, PROTO};
use super::relay::{self, Outbox};
use super::token::{self, JoinToken};
use super::trunks::LinkKey;
use super::{Federation, LinkState, UplinkView};
use crate::live_sources::Stream;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;

/// The path of the link's WebSocket at the parent.
pub const LINK_PATH: &str = "/api/federation/link";
/// Waits between attempts after a link that was up or a parent that did not answer: the
/// link is back within a few seconds of the path's return.
const BACKOFF: [Duration; 4] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// Between attempts after the parent refused this node (revoked token, wrong key).
const REFUSED_BACKOFF: Duration = Duration::from_secs(30);
/// Each step of dialling (TLS, WebSocket) gives up after this.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP's connect gives up sooner: while the path is down, each attempt's SYN is retried by
/// the kernel after 1 s and then 2 s more, so a short attempt and the next one 2 s later
/// find a returning path within about 3 s, where a 5 s attempt could take 4.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why dialling failed.
#[derive(Debug)]
pub enum DialError {
    /// The parent could not be reached or did not answer: try again soon.
    Unreachable(String),
    /// The parent is not the one in the token, or refused the token: an admin must act.
    Refused(String),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Unreachable(m) | DialError::Refused(m) => f.write_str(m),
        }
    }
}

/// The parent's host, port and base path from `[parent] url` (`https://host[:port][/base]`).
pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let u: http::Uri = url
        .trim()
        .parse()
        .map_err(|e| format!("not a URL ({e}): {url:?}"))?;
    if u.scheme_str() != Some("https") {
        return Err(format!(
            "the parent's URL must be https:// (the link is encrypted): {url:?}"
        ));
    }
    let host = u
        .host()
        .ok_or_else(|| format!("no host in {url:?}"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = u.port_u16().unwrap_or(443);
    let base = u.path().trim_end_matches('/').to_owned();
    Ok((host, port, base))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens the link: TCP, TLS checked against the pinned key, then the WebSocket.
pub async fn dial(url: &str, token: &JoinToken) -> Result<Ws, DialError> {
    use tungstenite::client::IntoClientRequest;
    let (host, port, base) = parse_url(url).map_err(DialError::Refused)?;
    let what = format!("cannot reach the parent at {host}:{port}");
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(DialError::Unreachable(format!("{what}: {e}"))),
        Err(_) => {
            return Err(DialError::Unreachable(format!(
                "{what}: no answer in {} s",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
    };
    let _ = tcp.set_nodelay(true);
    // Relayed media waits in the link's outbox, where a backlog is seen and skipped, rather
    // than in the kernel's send buffer, which would grow to seconds of a slow uplink.
    let _ = socket2::SockRef::from(&tcp).set_tcp_notsent_lowat(super::NOTSENT_LOWAT);
    let cfg = token::client_config(token.pin).map_err(|e| DialError::Refused(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| DialError::Refused(format!("bad host {host:?}: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tls = match tokio::time::timeout(STEP_TIMEOUT, tls.connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.to_string().contains(token::IMPOSTOR) => {
            return Err(DialError::Refused(token::IMPOSTOR.into()));
        }
        Ok(Err(e)) => return Err(DialError::Unreachable(format!("TLS with the parent: {e}"))),
        Err(_) => {
            return Err(DialError::Unreachable(
                "TLS with the parent: no answer".into(),
            ));
        }
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = format!("wss://{authority}{base}{LINK_PATH}")
        .into_client_request()
        .map_err(|e| DialError::Refused(e.to_string()))?;
    req.headers_mut().insert(
        http::header::AUTHORIZATION,
        format!("Bearer {}", token.secret)
            .parse()
            .expect("a base64url secret is a header value"),
    );
    match tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::client_async(req, tls)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(r))) => {
            let status = r.status();
            let body = r
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect::<String>();
            let msg = format!("the parent answered {status}: {body}");
            if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
                Err(DialError::Refused(msg))
            } else {
                Err(DialError::Unreachable(msg))
            }
        }
        Ok(Err(e)) => Err(DialError::Unreachable(format!("opening the link: {e}"))),
        Err(_) => Err(DialError::Unreachable("opening the link: no answer".into())),
    }
}

struct Up<'a> {
    fed: &'a Arc<Federation>,
    out: Arc<Outbox>,
    /// The streams the parent asked for, by channel.
    watches: HashMap<u32, tokio::task::AbortHandle>,
    /// The requests for footage being served, by id.
    requests: HashMap<u32, (tokio::task::AbortHandle, Arc<Credit>)>,
}

/// At most this many footage requests served at once for the parent.
const MAX_REQUESTS: usize = 64;

/// At most this many streams relayed up at once (each is a camera's stream on the link).
const MAX_WATCHES: usize = 256;

impl Up<'_> {
    fn set(&self, f: impl FnOnce(&mut UplinkView)) {
        if let Some(v) = self.fed.uplink.lock().unwrap().as_mut() {
            f(v);
        }
    }

    /// Reports the tree and the cameras below this node (after the welcome, and whenever
    /// either changed).
    fn report(&self, core: &mut LinkCore) {
        core.send(&Msg::Tree {
            nodes: self.fed.tree(),
        });
        core.send(&Msg::Cameras {
            cameras: self.fed.cameras(),
        });
    }
}

impl Side for Up<'_> {
    fn on_msg(&mut self, core: &mut LinkCore, m: Msg) -> Result<(), String> {
        match m {
            Msg::Welcome {
                proto,
                version,
                name,
                level,
            } => {
                if proto < PROTO {
                    return Err(format!(
                        "the parent speaks link protocol {proto}; this node needs {PROTO}"
                    ));
                }
                tracing::info!(%name, %level, parent_version = %version, "linked to the parent");
                self.set(|v| {
                    v.name = Some(name);
                    v.level = Some(level);
                    v.parent_version = Some(version);
                });
                self.report(core);
            }
            Msg::Watch {
                ch,
                camera,
                stream,
                by,
            } => {
                self.watches.retain(|_, h| !h.is_finished());
                if self.watches.len() >= MAX_WATCHES && !self.watches.contains_key(&ch) {
                    self.out.send_in_order(&Msg::Unwatched {
                        ch,
                        reason: format!("this node relays {MAX_WATCHES} streams at most"),
                    });
                    return Ok(());
                }
                let want = if stream == "sub" {
                    Stream::Sub
                } else {
                    Stream::Main
                };
                let by: String = by.chars().take(64).collect();
                tracing::info!(ch, camera, %stream, %by, "the parent watches a camera");
                let task =
                    relay::serve_watch(self.fed.clone(), self.out.clone(), ch, camera, want, by);
                if let Some(old) = self.watches.insert(ch, tokio::spawn(task).abort_handle()) {
                    old.abort();
                }
            }
            Msg::Req {
                id,
                method,
                path,
                headers,
                by,
                credit,
            } => {
                self.requests.retain(|_, (h, _)| !h.is_finished());
                if self.requests.len() >= MAX_REQUESTS {
                    self.out.send_in_order(&Msg::Res {
                        id,
                        status: 503,
                        headers: vec![],
                    });
                    self.out.send_in_order(&Msg::ResEnd { id, error: None });
                    return Ok(());
                }
                tracing::info!(id, %method, %path, %by, "the parent asks for footage");
                let c = Credit::new(credit);
                let task = archive::serve_request(
                    self.fed.clone(),
                    self.out.clone(),
                    c.clone(),
                    id,
                    method,
                    path,
                    headers,
                    by,
                );
                if let Some((old, _)) = self
                    .requests
                    .insert(id, (tokio::spawn(task).abort_handle(), c))
                {
                    old.abort();
                }
            }
            Msg::Credit { id, bytes } => {
                if let Some((_, c)) = self.requests.get(&id) {
                    c.add(bytes);
                }
            }
            Msg::Cancel { id } => {
                if let Some((h, _)) = self.requests.remove(&id) {
                    h.abort();
                }
            }
            m @ Msg::MeetingInfo { .. } => self.fed.meeting_from_parent(m)?,
            Msg::Meeting { meeting, op } => self.fed.meeting_msg(LinkKey::Parent, meeting, op)?,
            Msg::Rate { bps } => self.fed.link_rate(LinkKey::Parent, Some(bps), None),
            Msg::Unwatch { ch } => {
                if let Some(h) = self.watches.remove(&ch) {
                    h.abort();
                }
            }
            other => tracing::debug!(msg = ?other, "link message ignored"),
        }
        Ok(())
    }

    fn on_binary(&mut self, _: &mut LinkCore, frame: bytes::Bytes) {
        // (A frame that does not parse is dropped: the parent is trusted more than a
        // child, whose link such a frame ends.)
        let r = match frame.first() {
            Some(&super::meetings::MEETING_RTP) => self.fed.meeting_frame(LinkKey::Parent, &frame),
            Some(&super::documents::DOC_CHUNK) => self.fed.document_chunk(LinkKey::Parent, &frame),
            _ => Ok(()),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "a broken frame from the parent");
        }
    }

    fn on_wake(&mut self, core: &mut LinkCore) {
        self.report(core);
    }

    fn publish(&mut self, core: &LinkCore) {
        let mut f = core.figures().clone();
        self.watches.retain(|_, h| !h.is_finished());
        f.streams_sent = self.watches.len() as u32;
        self.set(|v| v.figures = f);
    }
}

/// Keeps the link to the parent for the life of the server.
pub async fn run(fed: Arc<Federation>, url: String, token: JoinToken) {
    *fed.uplink.lock().unwrap() = Some(UplinkView {
        url: url.clone(),
        state: LinkState::Connecting,
        since_ms: fed.now_ms(),
        error: None,
        name: None,
        level: None,
        parent_version: None,
        figures: Default::default(),
    });
    let set_state = |state: LinkState, error: Option<String>| {
        let now = fed.now_ms();
        if let Some(v) = fed.uplink.lock().unwrap().as_mut() {
            if v.state != state {
                v.since_ms = now;
            }
            v.state = state;
            v.error = error;
        }
    };
    let mut failures = 0usize;
    // Kicks come from the far side only; this end never closes its uplink on purpose.
    let (_kick, mut kick_rx) = tokio::sync::watch::channel(None);
    loop {
        let wait = match dial(&url, &token).await {
            Ok(mut ws) => {
                failures = 0;
                set_state(LinkState::Up, None);
                let mut core = LinkCore::new(tokio::time::Instant::now().into_std());
                core.send(&Msg::Hello {
                    proto: PROTO,
                    version: env!("CARGO_PKG_VERSION").into(),
                });
                // A tree change while the link was down is reported at the welcome.
                let out = Arc::new(Outbox::default());
                fed.parent_linked(Some(out.clone()));
                let mut side = Up {
                    fed: &fed,
                    out: out.clone(),
                    watches: HashMap::new(),
                    requests: HashMap::new(),
                };
                let end = link::drive(
                    &mut ws,
                    &mut core,
                    &mut side,
                    &mut kick_rx,
                    &fed.tree_changed,
                    &out,
                )
                .await;
                fed.parent_linked(None);
                fed.link_ended(LinkKey::Parent);
                // The parent asks again for what it still watches on the next link.
                for (_, h) in side.watches.drain() {
                    h.abort();
                }
                for (_, (h, _)) in side.requests.drain() {
                    h.abort();
                }
                if let Some(v) = fed.uplink.lock().unwrap().as_mut() {
                    v.figures.streams_sent = 0;
                }
                tracing::warn!(reason = %end, "the link to the parent ended");
                match end {
                    End::Closed(r) if r.contains("removed") => {
                        set_state(LinkState::Refused, Some(r));
                        REFUSED_BACKOFF
                    }
                    e => {
                        set_state(LinkState::Down, Some(e.to_string()));
                        BACKOFF[0]
                    }
                }
            }
            Err(DialError::Refused(m)) => {
                tracing::error!(error = %m, url = %url, "the parent refused this node");
                set_state(LinkState::Refused, Some(m));
                REFUSED_BACKOFF
            }
            Err(DialError::Unreachable(m)) => {
                if failures == 0 {
                    tracing::warn!(error = %m, url = %url, "cannot link to the parent");
                }
                set_state(LinkState::Down, Some(m));
                let w = BACKOFF[failures.min(BACKOFF.len() - 1)];
                failures += 1;
                w
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_url_is_https_with_an_optional_port_and_base() {
        assert_eq!(
            parse_url("https://huyen-a.example:8443").unwrap(),
            ("huyen-a.example".into(), 8443, String::new())
        );
        assert_eq!(
            parse_url("https://198.51.100.2/xaso/").unwrap(),
            ("198.51.100.2".into(), 443, "/xaso".into())
        );
        assert_eq!(
            parse_url("https://[2001:db8::1]:9443").unwrap(),
            ("2001:db8::1".into(), 9443, String::new())
        );
        for bad in ["http://a:8080", "huyen-a", "", "ftp://x"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
