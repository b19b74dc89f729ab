//! Footage across links. A parent's request for the recordings, playback, export or a
//! snapshot of a camera at a node below is authorised and audited at the parent, then sent
//! to the child on the link (`req`); the child serves it with its own HTTP application (the
//! same handlers, ranges and ETags as for its own users), audits it as `parent:<user>`, and
//! answers `res` (status, headers), the body in binary chunks, and `res_end`. A camera
//! further down is the child's remote row: its handler sends the request on, one hop more.
//!
//! Flow control is per request: the parent grants the child credit ([`WINDOW`] bytes
//! ahead of what its client has read, `credit` as it reads), so an export runs at the pace
//! of the slowest of the link and the client without filling memory; and the child queues
//! a chunk only while less than [`BULK_LIMIT`] bytes of media wait on the link, so a live
//! stream keeps its place ahead of bulk. A dropped link ends the requests on it (the client
//! sees a cut download and resumes it with `Range`).

use super::Federation;
use super::proto::Msg;
use super::relay::Outbox;
use axum::body::Body;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

/// The first byte of a binary frame carrying a chunk of a response body.
pub const CHUNK: u8 = 2;
/// The type and the request id (u32, big-endian) before the chunk's bytes.
pub const CHUNK_HEADER: usize = 5;
/// A response body is sent in chunks of at most this many bytes.
const CHUNK_SIZE: usize = 32 * 1024;
/// How far ahead of its client's reading a parent lets a child send.
pub const WINDOW: u32 = 512 * 1024;
/// A child queues a chunk only while less than this much waits on the link.
pub const BULK_LIMIT: usize = 128 * 1024;
/// How long a parent waits for the child's answer to start.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Response headers that cross the link (the others are the hop's own).
const PASSED_HEADERS: [&str; 9] = [
    "content-type",
    "content-length",
    "content-range",
    "content-disposition",
    "accept-ranges",
    "etag",
    "cache-control",
    "x-xaso-start",
    "x-xaso-end",
];
/// Request headers that cross the link.
const PASSED_REQUEST_HEADERS: [&str; 2] = ["range", "if-none-match"];

/// Marks a request that a node's own HTTP application serves for its parent: only the
/// link puts it there (a client cannot set a request's extensions).
#[derive(Clone, Debug)]
pub struct ParentRequest {
    /// The parent's user the request is for (audited as `parent:<by>`).
    pub by: String,
}

/// This node's own HTTP application, which serves its parent's requests (set by `serve`:
/// the federation does not import the API).
pub type LocalHttp = Box<
    dyn Fn(http::Request<Body>) -> futures::future::BoxFuture<'static, http::Response<Body>>
        + Send
        + Sync,
>;

/// The paths a parent may ask for: reading a camera's footage, nothing else.
pub fn allowed(method: &str, path_and_query: &str) -> bool {
    if method != "GET" && method != "HEAD" {
        return false;
    }
    let path = path_and_query.split('?').next().unwrap_or("");
    let Some(rest) = path.strip_prefix("/api/cameras/") else {
        return false;
    };
    let Some((id, what)) = rest.split_once('/') else {
        return false;
    };
    !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && matches!(
            what,
            "recordings" | "export.mp4" | "playback.mp4" | "snapshot.jpg"
        )
}

/// The headers named in `names` that `h` has, as the link carries them.
fn pick(h: &http::HeaderMap, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|k| Some(((*k).to_owned(), h.get(*k)?.to_str().ok()?.to_owned())))
        .collect()
}

pub fn encode_chunk(id: u32, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(CHUNK_HEADER + data.len());
    b.put_u8(CHUNK);
    b.put_u32(id);
    b.put_slice(data);
    b.freeze()
}

fn decode_chunk(b: &Bytes) -> Result<(u32, Bytes), String> {
    if b.len() < CHUNK_HEADER || b[0] != CHUNK {
        return Err(format!("not a body chunk ({} bytes)", b.len()));
    }
    let id = u32::from_be_bytes(b[1..5].try_into().expect("4 bytes"));
    Ok((id, b.slice(CHUNK_HEADER..)))
}

type Head = Result<(u16, Vec<(String, String)>), String>;

struct Pending {
    head: Option<oneshot::Sender<Head>>,
    body: mpsc::UnboundedSender<Result<Bytes, String>>,
    /// Bytes granted to the child, and received from it: it may not send beyond its credit.
    granted: u64,
    received: u64,
}

/// The requests a parent has open on one child's link.
#[derive(Default)]
pub struct Requests {
    open: HashMap<u32, Pending>,
    next: u32,
}

impl Requests {
    fn open(
        &mut self,
    ) -> (
        u32,
        oneshot::Receiver<Head>,
        mpsc::UnboundedReceiver<Result<Bytes, String>>,
    ) {
        self.next = self.next.wrapping_add(1);
        let (head, head_rx) = oneshot::channel();
        let (body, body_rx) = mpsc::unbounded_channel();
        self.open.insert(
            self.next,
            Pending {
                head: Some(head),
                body,
                granted: u64::from(WINDOW),
                received: 0,
            },
        );
        (self.next, head_rx, body_rx)
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// `res`: the answer's status and headers.
    pub fn head(&mut self, id: u32, status: u16, headers: Vec<(String, String)>) {
        if let Some(h) = self.open.get_mut(&id).and_then(|p| p.head.take()) {
            let _ = h.send(Ok((status, headers)));
        }
    }

    /// A chunk of a body; an error ends the link (a child sending beyond its credit).
    pub fn chunk(&mut self, b: &Bytes) -> Result<(), String> {
        let (id, data) = decode_chunk(b)?;
        let Some(p) = self.open.get_mut(&id) else {
            return Ok(()); // cancelled meanwhile
        };
        p.received += data.len() as u64;
        if p.received > p.granted {
            return Err(format!(
                "request {id}: {} bytes sent with credit for {}",
                p.received, p.granted
            ));
        }
        let _ = p.body.send(Ok(data));
        Ok(())
    }

    /// `res_end`: the body is complete, or broke off with `error`.
    pub fn end(&mut self, id: u32, error: Option<String>) {
        if let Some(mut p) = self.open.remove(&id) {
            if let Some(h) = p.head.take() {
                let _ = h.send(Err(error.clone().unwrap_or_else(|| "no answer".into())));
            }
            if let Some(e) = error {
                let _ = p.body.send(Err(e));
            }
        }
    }

    fn grant(&mut self, id: u32, bytes: u64) {
        if let Some(p) = self.open.get_mut(&id) {
            p.granted += bytes;
        }
    }

    fn cancel(&mut self, id: u32) {
        self.open.remove(&id);
    }

    /// The link ended: every open request fails.
    pub fn close_all(&mut self, why: &str) {
        for (_, mut p) in self.open.drain() {
            if let Some(h) = p.head.take() {
                let _ = h.send(Err(why.to_owned()));
            }
            let _ = p.body.send(Err(why.to_owned()));
        }
    }
}

/// A response body read from the link: grants the child more credit as it is read, and
/// cancels the request when dropped before its end (the client went away).
struct LinkBody {
    rx: mpsc::UnboundedReceiver<Result<Bytes, String>>,
    id: u32,
    out: Arc<Outbox>,
    requests: Arc<Mutex<Requests>>,
    unacked: u64,
    done: bool,
}

impl futures::Stream for LinkBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.unacked += b.len() as u64;
                if self.unacked >= u64::from(WINDOW / 4) {
                    let bytes = std::mem::take(&mut self.unacked);
                    let id = self.id;
                    self.requests.lock().unwrap().grant(id, bytes);
                    self.out.send(&Msg::Credit {
                        id,
                        bytes: bytes as u32,
                    });
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for LinkBody {
    fn drop(&mut self) {
        if !self.done {
            self.requests.lock().unwrap().cancel(self.id);
            self.out.send(&Msg::Cancel { id: self.id });
        }
    }
}

impl Federation {
    /// Sends a request for footage of a camera at the child `node` (the path with the
    /// child's id of it) and answers with the child's response, its body streamed from the
    /// link. `Err` when the link is down or the child does not answer.
    pub async fn forward(
        &self,
        node: i64,
        method: &http::Method,
        path_and_query: String,
        headers: &http::HeaderMap,
        by: &str,
    ) -> Result<http::Response<Body>, String> {
        let Some(super::ChildIo { out, requests, .. }) = self.child_io(node) else {
            return Err("the link toward that node is down".into());
        };
        let (id, head_rx, body_rx) = requests.lock().unwrap().open();
        let passed = pick(headers, &PASSED_REQUEST_HEADERS);
        out.send(&Msg::Req {
            id,
            method: method.as_str().to_owned(),
            path: path_and_query,
            headers: passed,
            by: by.to_owned(),
            credit: WINDOW,
        });
        let head = match tokio::time::timeout(HEAD_TIMEOUT, head_rx).await {
            Ok(Ok(h)) => h,
            Ok(Err(_)) => Err("the link toward that node dropped".into()),
            Err(_) => {
                requests.lock().unwrap().cancel(id);
                out.send(&Msg::Cancel { id });
                Err(format!(
                    "no answer from that node in {} s",
                    HEAD_TIMEOUT.as_secs()
                ))
            }
        };
        let (status, hs) = head?;
        let body = LinkBody {
            rx: body_rx,
            id,
            out,
            requests,
            unacked: 0,
            done: false,
        };
        let mut resp = http::Response::new(Body::from_stream(body));
        *resp.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        for (k, v) in hs {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(&v),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
        Ok(resp)
    }
}

/// What the child keeps of a request it serves: the credit its parent granted.
#[derive(Default)]
pub struct Credit {
    bytes: Mutex<u64>,
    more: Notify,
}

impl Credit {
    pub fn new(bytes: u32) -> Arc<Credit> {
        let c = Credit::default();
        *c.bytes.lock().unwrap() = u64::from(bytes);
        Arc::new(c)
    }

    pub fn add(&self, bytes: u32) {
        *self.bytes.lock().unwrap() += u64::from(bytes);
        self.more.notify_one();
    }

    /// Waits until `n` bytes may be sent, and takes them.
    async fn take(&self, n: u64) {
        loop {
            let more = self.more.notified();
            {
                let mut b = self.bytes.lock().unwrap();
                if *b >= n {
                    *b -= n;
                    return;
                }
            }
            more.await;
        }
    }
}

/// Serves request `id` from the parent with this node's own HTTP application, sending the
/// answer back on the link. Runs until the body is sent, or the task is aborted (`cancel`,
/// the link's end).
#[allow(clippy::too_many_arguments)]
pub async fn serve_request(
    fed: Arc<Federation>,
    out: Arc<Outbox>,
    credit: Arc<Credit>,
    id: u32,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    by: String,
) {
    let error = answer(&fed, &out, &credit, id, &method, &path, &headers, &by)
        .await
        .err();
    if let Some(e) = &error {
        tracing::info!(id, %path, error = %e, "a request from the parent broke off");
    }
    out.send_in_order(&Msg::ResEnd { id, error });
}

#[allow(clippy::too_many_arguments)]
async fn answer(
    fed: &Federation,
    out: &Outbox,
    credit: &Credit,
    id: u32,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    by: &str,
) -> Result<(), String> {
    let refuse = |status: u16| {
        out.send_in_order(&Msg::Res {
            id,
            status,
            headers: vec![],
        });
        Ok(())
    };
    if !allowed(method, path) {
        return refuse(403);
    }
    let Some(http) = fed.local_http.get() else {
        return refuse(503);
    };
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        if PASSED_REQUEST_HEADERS.contains(&k.as_str()) {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    let Ok(mut req) = req.body(Body::empty()) else {
        return refuse(400);
    };
    let by = by.strip_prefix("parent:").unwrap_or(by);
    req.extensions_mut().insert(ParentRequest {
        by: by.chars().take(64).collect(),
    });
    let resp = http(req).await;
    let hs = pick(resp.headers(), &PASSED_HEADERS);
    out.send_in_order(&Msg::Res {
        id,
        status: resp.status().as_u16(),
        headers: hs,
    });
    let mut body = resp.into_body().into_data_stream();
    while let Some(data) = body.next().await {
        let data = data.map_err(|e| format!("reading the answer: {e}"))?;
        for piece in data.chunks(CHUNK_SIZE) {
            credit.take(piece.len() as u64).await;
            out.push_bulk(encode_chunk(id, piece), BULK_LIMIT).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_footage_reads_cross_the_link() {
        for ok in [
            (
                "GET",
                "/api/cameras/4/recordings?start=2026-12-07T00:00:00Z",
            ),
            ("GET", "/api/cameras/12/export.mp4?start=a&end=b"),
            ("HEAD", "/api/cameras/12/playback.mp4"),
            ("GET", "/api/cameras/1/snapshot.jpg?at=x"),
        ] {
            assert!(allowed(ok.0, ok.1), "{ok:?}");
        }
        for bad in [
            ("POST", "/api/cameras/4/recordings"),
            ("DELETE", "/api/cameras/4"),
            ("GET", "/api/cameras/4"),
            ("GET", "/api/users"),
            ("GET", "/api/cameras/4/mse"),
            ("GET", "/api/cameras//recordings"),
            ("GET", "/api/cameras/-1/recordings"),
            ("GET", "/api/cameras/4/recordings/../../users"),
            ("GET", "/api/cameras/4/../../users/recordings"),
        ] {
            assert!(!allowed(bad.0, bad.1), "{bad:?}");
        }
    }

    #[test]
    fn a_child_may_not_send_beyond_its_credit() {
        let mut r = Requests::default();
        let (id, mut head, mut body) = r.open();
        r.head(
            id,
            206,
            vec![("content-range".into(), "bytes 0-9/10".into())],
        );
        assert_eq!(head.try_recv().unwrap().unwrap().0, 206);
        let chunk = vec![7u8; CHUNK_SIZE];
        for _ in 0..(WINDOW as usize / CHUNK_SIZE) {
            r.chunk(&encode_chunk(id, &chunk)).unwrap();
        }
        r.grant(id, 1);
        r.chunk(&encode_chunk(id, b"x")).unwrap();
        assert!(
            r.chunk(&encode_chunk(id, b"z")).is_err(),
            "beyond the window"
        );
        // A chunk of a request cancelled meanwhile is dropped.
        r.cancel(id);
        r.chunk(&encode_chunk(id, b"y")).unwrap();
        let mut got = 0;
        while let Ok(Ok(b)) = body.try_recv() {
            got += b.len();
        }
        assert_eq!(got, WINDOW as usize + 1);
        assert!(decode_chunk(&Bytes::from_static(b"\x02\x00")).is_err());
    }

    #[test]
    fn a_dropped_link_fails_what_is_open() {
        let mut r = Requests::default();
        let (_, mut head, _) = r.open();
        let (id2, _, mut body2) = r.open();
        r.head(id2, 200, vec![]);
        r.close_all("the link dropped");
        assert!(head.try_recv().unwrap().is_err());
        assert_eq!(body2.try_recv().unwrap(), Err("the link dropped".into()));
        assert!(r.is_empty());
    }
}
