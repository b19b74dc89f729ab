//! RTSP/1.0 message syntax, sans I/O: parsing what a client sends on the control connection
//! (requests, and interleaved `$` frames such as RTCP receiver reports) and serializing
//! responses. Also the `Transport` header. Nothing here panics on any input; sizes are capped
//! so a client cannot make the server buffer without bound.

use std::fmt::Write as _;

/// Most bytes of a request line plus headers.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most bytes of a request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Most header lines in a request.
pub const MAX_HEADERS: usize = 64;

/// A parsed RTSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `DESCRIBE` (case-sensitive per RFC 2326).
    pub method: String,
    /// The request URI as sent, e.g. `rtsp://127.0.0.1:8554/sim/trackID=0` or `*`.
    pub uri: String,
    /// Header fields in order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `CSeq` header.
    pub fn cseq(&self) -> Option<&str> {
        self.header("CSeq")
    }

    /// The session id of the `Session` header, without parameters such as `;timeout=`.
    pub fn session_id(&self) -> Option<&str> {
        self.header("Session")
            .map(|s| s.split(';').next().unwrap_or("").trim())
    }

    /// The path of the request URI without leading and trailing slashes and without query,
    /// or `None` for `*` and URIs that are not `rtsp://`/`rtsps://` or absolute paths.
    pub fn path(&self) -> Option<&str> {
        uri_path(&self.uri)
    }
}

/// The path of an RTSP URI, without the surrounding slashes and the query.
pub fn uri_path(uri: &str) -> Option<&str> {
    let rest = if uri.starts_with('/') {
        uri
    } else {
        let after = strip_prefix_ci(uri, "rtsp://").or_else(|| strip_prefix_ci(uri, "rtsps://"))?;
        match after.find('/') {
            Some(i) => &after[i..],
            None => "",
        }
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    Some(rest.trim_matches('/'))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// What a client sent on its control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A complete request.
    Request(Request),
    /// An interleaved binary frame (`$`, channel, length, data): e.g. an RTCP receiver report.
    Data {
        /// Interleaved channel.
        channel: u8,
        /// Length of the data.
        len: usize,
    },
    /// Empty lines between messages (some clients send them as keepalives).
    Blank,
}

/// A message that cannot be parsed: answer `status` and close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 400, 413 or 505.
    pub status: u16,
    /// Why, for the log.
    pub reason: String,
    /// The request's `CSeq`, if it could be found.
    pub cseq: Option<String>,
}

impl ParseError {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        ParseError {
            status,
            reason: reason.into(),
            cseq: None,
        }
    }

    /// The response to send.
    pub fn response(&self) -> Response {
        let mut r = Response::new(self.status);
        if let Some(c) = &self.cseq {
            r = r.header("CSeq", c);
        }
        r
    }
}

/// Parses the first message in `buf`. Returns `Ok(None)` when more bytes are needed, else the
/// message and how many bytes of `buf` it used.
pub fn parse(buf: &[u8]) -> Result<Option<(Input, usize)>, ParseError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == b'$' {
        let Some(h) = buf.get(..4) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if buf.len() < 4 + len {
            return Ok(None);
        }
        return Ok(Some((Input::Data { channel: h[1], len }, 4 + len)));
    }
    let blank = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if blank > 0 {
        return Ok(Some((Input::Blank, blank)));
    }

    let window = &buf[..buf.len().min(MAX_HEAD + 4)];
    let Some((head_len, sep_len)) = find_head_end(window) else {
        if buf.len() > MAX_HEAD {
            return Err(ParseError::new(400, "request head too long"));
        }
        return Ok(None);
    };
    if head_len > MAX_HEAD {
        return Err(ParseError::new(400, "request head too long"));
    }
    let head = std::str::from_utf8(&buf[..head_len])
        .map_err(|_| ParseError::new(400, "request head is not UTF-8"))?;
    let mut request = parse_head(head).map_err(|mut e| {
        e.cseq = find_cseq(head);
        e
    })?;
    let body_len = match request.header("Content-Length") {
        None => 0,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n <= MAX_BODY => n,
            Ok(_) => {
                return Err(ParseError {
                    cseq: request.cseq().map(str::to_owned),
                    ..ParseError::new(413, "body too large")
                });
            }
            Err(_) => {
                return Err(ParseError {
                    cseq: request.cseq().map(str::to_owned),
                    ..ParseError::new(400, "bad Content-Length")
                });
            }
        },
    };
    let total = head_len + sep_len + body_len;
    let Some(body) = buf.get(head_len + sep_len..total) else {
        return Ok(None);
    };
    request.body = body.to_vec();
    Ok(Some((Input::Request(request), total)))
}

/// Finds the blank line ending a message head: (head length, separator length).
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    for i in 0..buf.len() {
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        if buf[i..].starts_with(b"\n\n") {
            return Some((i, 2));
        }
        if buf[i..].starts_with(b"\n\r\n") {
            return Some((i, 3));
        }
    }
    None
}

fn find_cseq(head: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        let v = v.trim();
        (k.trim().eq_ignore_ascii_case("cseq") && is_valid_value(v)).then(|| v.to_owned())
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_valid_value(s: &str) -> bool {
    s.chars().all(|c| c == '\t' || !c.is_control())
}

fn parse_head(head: &str) -> Result<Request, ParseError> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::new(400, "bad request line"));
    };
    if !is_token(method) {
        return Err(ParseError::new(400, "bad method"));
    }
    if uri.is_empty() || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParseError::new(400, "bad request URI"));
    }
    if version != "RTSP/1.0" {
        let status = if version.starts_with("RTSP/") {
            505
        } else {
            400
        };
        return Err(ParseError::new(status, "unsupported protocol version"));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in lines {
        if l.starts_with([' ', '\t']) {
            // Obsolete line folding: continues the previous header.
            let Some((_, v)) = headers.last_mut() else {
                return Err(ParseError::new(400, "continuation before any header"));
            };
            v.push(' ');
            v.push_str(l.trim());
            continue;
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err(ParseError::new(400, "header line without colon"));
        };
        let (k, v) = (k.trim(), v.trim());
        if !is_token(k) || !is_valid_value(v) {
            return Err(ParseError::new(400, "bad header"));
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ParseError::new(400, "too many headers"));
        }
        headers.push((k.to_owned(), v.to_owned()));
    }
    Ok(Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
        headers,
        body: Vec::new(),
    })
}

/// The reason phrase of a status code (RFC 2326 section 7.1.1).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        451 => "Parameter Not Understood",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        551 => "Option not supported",
        _ => "Unknown",
    }
}

/// An RTSP response under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// Body (`Content-Length` is added when serializing).
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status` and no headers.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body and its `Content-Type`.
    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = body;
        self
    }

    /// The first header named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serializes the response, adding `Content-Length` when there is a body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            "RTSP/1.0 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        for (k, v) in &self.headers {
            // Values are built by this crate; strip line breaks anyway so a header can never
            // be split.
            let v: String = v.chars().filter(|&c| c != '\r' && c != '\n').collect();
            let _ = write!(s, "{k}: {v}\r\n");
        }
        if !self.body.is_empty() {
            let _ = write!(s, "Content-Length: {}\r\n", self.body.len());
        }
        s.push_str("\r\n");
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The transport a client asked for in a `SETUP` `Transport` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportSpec {
    /// `RTP/AVP/TCP;interleaved=a-b` (channels absent: the server chooses).
    Tcp {
        /// Requested RTP and RTCP channels.
        channels: Option<(u8, u8)>,
    },
    /// `RTP/AVP;unicast;client_port=a-b`.
    Udp {
        /// Client RTP and RTCP ports.
        client_ports: (u16, u16),
    },
}

/// Picks the first transport of a `Transport` header (a comma-separated list of choices) that
/// this server supports: unicast RTP over TCP or UDP. `None` if none is.
pub fn parse_transport(value: &str) -> Option<TransportSpec> {
    value.split(',').find_map(parse_one_transport)
}

fn parse_one_transport(spec: &str) -> Option<TransportSpec> {
    let mut parts = spec.split(';').map(str::trim);
    let proto = parts.next()?.to_ascii_uppercase();
    let tcp = match proto.as_str() {
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        "RTP/AVP/TCP" => true,
        _ => return None,
    };
    let mut channels = None;
    let mut client_ports = None;
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        match k.to_ascii_lowercase().as_str() {
            "multicast" => return None,
            "interleaved" => channels = Some(parse_pair(v, |s| s.parse::<u8>().ok())?),
            "client_port" => client_ports = Some(parse_pair(v, |s| s.parse::<u16>().ok())?),
            "mode" if !v.trim_matches('"').eq_ignore_ascii_case("play") => return None,
            _ => {}
        }
    }
    if tcp {
        Some(TransportSpec::Tcp { channels })
    } else {
        let ports = client_ports?;
        (ports.0 != 0 && ports.1 != 0).then_some(TransportSpec::Udp {
            client_ports: ports,
        })
    }
}

/// Parses `a-b` or `a` (then `b = a + 1`).
fn parse_pair<T: Copy + TryFrom<u32>>(v: &str, f: impl Fn(&str) -> Option<T>) -> Option<(T, T)>
where
    u32: From<T>,
{
    match v.split_once('-') {
        Some((a, b)) => Some((f(a)?, f(b)?)),
        None => {
            let a = f(v)?;
            let b = T::try_from(u32::from(a) + 1).ok()?;
            Some((a, b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: &[u8]) -> Request {
        match parse(bytes) {
            Ok(Some((Input::Request(r), n))) => {
                assert_eq!(n, bytes.len());
                r
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_requests() {
        let r = request(b"OPTIONS rtsp://127.0.0.1:8554/sim RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n");
        assert_eq!(r.method, "OPTIONS");
        assert_eq!(r.cseq(), Some("1"));
        assert_eq!(r.header("user-agent"), Some("Lavf59.27.100"));
        assert_eq!(r.path(), Some("sim"));

        let r = request(b"SET_PARAMETER rtsp://h/sim/ RTSP/1.0\r\nCSeq: 9\r\nSession: abc;timeout=60\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(r.body, b"hello");
        assert_eq!(r.session_id(), Some("abc"));
        assert_eq!(r.path(), Some("sim"));

        // LF-only line ends and folded headers.
        let r = request(b"PLAY /sim RTSP/1.0\nCSeq: 3\nX-A: one\n two\n\n");
        assert_eq!(r.header("x-a"), Some("one two"));
        assert_eq!(r.path(), Some("sim"));
    }

    #[test]
    fn incremental_and_interleaved() {
        let full = b"$\x01\x00\x03abcDESCRIBE rtsp://h/sim RTSP/1.0\r\nCSeq: 2\r\n\r\n";
        for cut in 0..full.len() {
            let expected = (cut >= 7).then_some((Input::Data { channel: 1, len: 3 }, 7));
            assert_eq!(parse(&full[..cut]).unwrap(), expected, "{cut}");
        }
        let (_, n) = parse(full).unwrap().unwrap();
        assert_eq!(n, 7);
        assert!(matches!(
            parse(&full[7..]).unwrap(),
            Some((Input::Request(_), _))
        ));
        assert_eq!(parse(b"\r\n\r\nOPT").unwrap(), Some((Input::Blank, 4)));
    }

    #[test]
    fn rejects_malformed() {
        let bad: &[(&[u8], u16)] = &[
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n", 505),
            (b"OPT IONS * RTSP/1.0\r\n\r\n", 400),
            (b"OPTIONS * RTSP/1.0\r\nNoColon\r\n\r\n", 400),
            (b"OPTIONS * RTSP/1.0\r\n folded-first\r\n\r\n", 400),
            (b"OPTIONS * RTSP/1.0\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"OPTIONS * RTSP/1.0\r\nCSeq: 4\r\nContent-Length: 999999\r\n\r\n",
                413,
            ),
            (b"OPTIONS \xff RTSP/1.0\r\n\r\n", 400),
            (b"O(PTIONS * RTSP/1.0\r\nCSeq: 5\r\n\r\n", 400),
        ];
        for (b, status) in bad {
            let e = parse(b).unwrap_err();
            assert_eq!(e.status, *status, "{}", String::from_utf8_lossy(b));
        }
        let e = parse(b"O(PTIONS * RTSP/1.0\r\nCSeq: 5\r\n\r\n").unwrap_err();
        assert_eq!(e.cseq.as_deref(), Some("5"), "CSeq echoed even on 400");
        assert!(
            e.response()
                .to_bytes()
                .starts_with(b"RTSP/1.0 400 Bad Request\r\nCSeq: 5\r\n")
        );
        // An endless head is refused once it exceeds the cap, not buffered forever.
        let mut long = b"OPTIONS * RTSP/1.0\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse(&long).unwrap_err().status, 400);
        assert_eq!(parse(&long[..MAX_HEAD - 10]).unwrap(), None);
    }

    #[test]
    fn builds_responses() {
        let r = Response::new(200)
            .header("CSeq", "3")
            .header("X-Evil", "a\r\nInjected: 1")
            .body("application/sdp", b"v=0\r\n".to_vec());
        assert_eq!(
            r.to_bytes(),
            b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nX-Evil: aInjected: 1\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
        );
        assert_eq!(
            Response::new(501).to_bytes(),
            b"RTSP/1.0 501 Not Implemented\r\n\r\n"
        );
    }

    #[test]
    fn transports() {
        assert_eq!(
            parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1"),
            Some(TransportSpec::Tcp {
                channels: Some((0, 1))
            })
        );
        assert_eq!(
            parse_transport("RTP/AVP/TCP;unicast;interleaved=4"),
            Some(TransportSpec::Tcp {
                channels: Some((4, 5))
            })
        );
        assert_eq!(
            parse_transport("RTP/AVP/TCP;unicast"),
            Some(TransportSpec::Tcp { channels: None })
        );
        assert_eq!(
            parse_transport("RTP/AVP;unicast;client_port=5000-5001"),
            Some(TransportSpec::Udp {
                client_ports: (5000, 5001)
            })
        );
        assert_eq!(
            parse_transport(
                "RTP/AVP;multicast;port=5000-5001,RTP/AVP/UDP;unicast;client_port=6000-6001"
            ),
            Some(TransportSpec::Udp {
                client_ports: (6000, 6001)
            })
        );
        assert_eq!(
            parse_transport("RTP/AVP;unicast"),
            None,
            "UDP needs client_port"
        );
        assert_eq!(parse_transport("RTP/AVP;unicast;client_port=0-1"), None);
        assert_eq!(
            parse_transport("RTP/AVP/TCP;interleaved=255"),
            None,
            "256 overflows"
        );
        assert_eq!(parse_transport("RTP/AVP/TCP;interleaved=x-y"), None);
        assert_eq!(parse_transport("RTP/AVP/TCP;mode=record"), None);
        assert_eq!(parse_transport("RAW/RAW/UDP;unicast"), None);
        assert_eq!(parse_transport(""), None);
    }

    #[test]
    fn paths() {
        assert_eq!(
            uri_path("rtsp://127.0.0.1:554/sim/trackID=1"),
            Some("sim/trackID=1")
        );
        assert_eq!(uri_path("RTSP://host"), Some(""));
        assert_eq!(uri_path("rtsp://host/sim/?x=1"), Some("sim"));
        assert_eq!(uri_path("*"), None);
        assert_eq!(uri_path("http://host/sim"), None);
        assert_eq!(uri_path("rtsp://"), Some(""));
        assert_eq!(uri_path("rtsp:/"), None);
        assert_eq!(uri_path("rtsp://hé/sim"), Some("sim"));
        assert_eq!(
            uri_path("rtspé"),
            None,
            "no slicing inside a UTF-8 character"
        );
    }

    /// A small deterministic generator (xorshift) so the fuzz test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn fuzz_never_panics() {
        let seeds: &[&[u8]] = &[
            b"SETUP rtsp://127.0.0.1:8554/sim/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
            b"$\x00\x00\x08\x80\xc9\x00\x01\x00\x00\x00\x01",
            b"SET_PARAMETER * RTSP/1.0\r\nContent-Length: 3\r\nCSeq: 1\r\n\r\nabc",
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..20_000 {
            let mut b = seeds[round % seeds.len()].to_vec();
            for _ in 0..1 + rng.next() % 6 {
                let i = (rng.next() as usize) % b.len();
                match rng.next() % 5 {
                    0 => b[i] = rng.next() as u8,
                    1 => b.insert(i, rng.next() as u8),
                    2 => {
                        b.remove(i);
                    }
                    3 => b[i] = b"\r\n:;-=$ \xc3"[(rng.next() % 9) as usize],
                    _ => b.truncate(i.max(1)),
                }
                if b.is_empty() {
                    b.push(b'$');
                }
            }
            let mut rest = &b[..];
            while let Ok(Some((input, n))) = parse(rest) {
                assert!(n > 0 && n <= rest.len());
                if let Input::Request(r) = &input {
                    let _ = r.path();
                    let _ = r.session_id();
                    if let Some(t) = r.header("Transport") {
                        let _ = parse_transport(t);
                    }
                }
                rest = &rest[n..];
            }
            let _ = parse_transport(&String::from_utf8_lossy(&b));
            let _ = uri_path(&String::from_utf8_lossy(&b));
        }
    }
}
