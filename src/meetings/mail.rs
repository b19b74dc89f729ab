//! Meeting reminders by e-mail through the commune's SMTP relay (`[meetings.smtp]`): the
//! message is composed here with no I/O ([`compose`]), and sent over one SMTP conversation
//! ([`send`]: EHLO, STARTTLS when configured, AUTH PLAIN or LOGIN when a login is given,
//! MAIL FROM, RCPT TO per recipient, DATA), each reply checked and every step under a
//! timeout. The relay may be a plain one on the LAN (port 25), or want TLS (STARTTLS on
//! 587, or TLS from the start on 465) and a login; its certificate is checked against the
//! public roots and an optional CA file (a relay with a private CA).

use base64::Engine;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A plausible e-mail address (one `@`, something on both sides, no spaces or brackets):
/// guests are listed by name or by address, and only addresses get mail.
pub fn is_email(s: &str) -> bool {
    let s = s.trim();
    let Some((user, domain)) = s.split_once('@') else {
        return false;
    };
    !user.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !s.contains([' ', '<', '>', ',', ';', '"', '\r', '\n'])
}

fn encoded_word(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }
}

/// The whole message (headers and a base64 UTF-8 text body), lines ending in CRLF.
pub fn compose(
    from: &str,
    to: &[String],
    subject: &str,
    body: &str,
    date_rfc2822: &str,
    id: &str,
) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    let mut m = String::new();
    m += &format!("From: xaso <{from}>\r\n");
    m += &format!("To: {}\r\n", to.join(", "));
    m += &format!("Subject: {}\r\n", encoded_word(subject));
    m += &format!("Date: {date_rfc2822}\r\n");
    m += &format!("Message-ID: <{id}>\r\n");
    m += "MIME-Version: 1.0\r\n";
    m += "Content-Type: text/plain; charset=UTF-8\r\n";
    m += "Content-Transfer-Encoding: base64\r\n\r\n";
    for chunk in b64.as_bytes().chunks(76) {
        m += std::str::from_utf8(chunk).expect("base64 is ASCII");
        m += "\r\n";
    }
    m
}

/// Why a message could not be sent.
#[derive(Debug)]
pub struct MailError(pub String);

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the connection to the relay is secured (`[meetings.smtp] tls`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a relay on the LAN, usually port 25).
    #[default]
    None,
    /// Plain, then upgraded with STARTTLS before anything else is said (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// Where and how to hand messages over.
pub struct Relay<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: SmtpTls,
    /// User name and password for AUTH (only ever sent over TLS).
    pub login: Option<(&'a str, &'a str)>,
    /// PEM certificates to trust beside the public roots (a relay with a private CA).
    pub ca_file: Option<&'a std::path::Path>,
}

const STEP: Duration = Duration::from_secs(20);

/// A connection to the relay, plain or TLS.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// One SMTP conversation: replies read line by line, commands written whole.
struct Session {
    io: BufReader<Box<dyn Conn>>,
}

impl Session {
    /// One reply (multi-line replies end with "NNN "), its code checked: its lines' texts.
    async fn reply(&mut self, want: u16, what: &str) -> Result<Vec<String>, MailError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(STEP, self.io.read_line(&mut line))
                .await
                .map_err(|_| MailError(format!("SMTP: no answer to {what} within 20 s")))?
                .map_err(|e| MailError(format!("SMTP: {e}")))?;
            if n == 0 {
                return Err(MailError(format!(
                    "SMTP: the relay closed the connection at {what}"
                )));
            }
            let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(|| {
                MailError(format!(
                    "SMTP: a malformed answer to {what}: {:?}",
                    line.trim_end()
                ))
            })?;
            lines.push(line.get(4..).unwrap_or("").trim_end().to_string());
            if line.as_bytes().get(3) == Some(&b'-') {
                continue;
            }
            if code / 100 != want / 100 {
                return Err(MailError(format!(
                    "SMTP: the relay refused {what}: {}",
                    line.trim_end()
                )));
            }
            return Ok(lines);
        }
    }

    async fn write(&mut self, s: &str) -> Result<(), MailError> {
        let w = self.io.get_mut();
        tokio::time::timeout(STEP, async {
            w.write_all(s.as_bytes()).await?;
            w.flush().await
        })
        .await
        .map_err(|_| MailError("SMTP: the relay took nothing for 20 s".into()))?
        .map_err(|e| MailError(format!("SMTP: {e}")))
    }

    /// A command and its reply.
    async fn command(
        &mut self,
        line: &str,
        want: u16,
        what: &str,
    ) -> Result<Vec<String>, MailError> {
        self.write(&format!("{line}\r\n")).await?;
        self.reply(want, what).await
    }
}

/// The relay's TLS client settings: the public roots and `ca_file`'s certificates.
fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, MailError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(p) = ca_file {
        let certs = CertificateDer::pem_file_iter(p)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| MailError(format!("SMTP: the CA file {}: {e}", p.display())))?;
        if certs.is_empty() {
            return Err(MailError(format!(
                "SMTP: no certificate in {}",
                p.display()
            )));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| MailError(format!("SMTP: the CA file {}: {e}", p.display())))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MailError(format!("SMTP: TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)))
}

/// `conn` with TLS on top, the relay's certificate checked against `host`.
async fn secure(
    conn: Box<dyn Conn>,
    host: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<Box<dyn Conn>, MailError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| MailError(format!("SMTP: {host} as a TLS name: {e}")))?;
    let tls = tokio::time::timeout(STEP, tls_connector(ca_file)?.connect(name, conn))
        .await
        .map_err(|_| MailError("SMTP: no TLS handshake within 20 s".into()))?
        .map_err(|e| MailError(format!("SMTP: TLS with {host}: {e}")))?;
    Ok(Box::new(tls))
}

/// Whether an EHLO reply offers `ext` (its first word), and that line's words.
fn extension<'a>(ehlo: &'a [String], ext: &str) -> Option<Vec<&'a str>> {
    ehlo.iter().skip(1).find_map(|l| {
        let mut w = l.split_whitespace();
        w.next()
            .filter(|x| x.eq_ignore_ascii_case(ext))
            .map(|_| w.collect())
    })
}

/// Sends `message` from `from` to `to` through `relay`: TLS as configured (a relay that
/// does not offer STARTTLS when it is asked for is refused, never used in the clear), then
/// AUTH PLAIN or LOGIN when a login is given.
pub async fn send(
    relay: &Relay<'_>,
    helo: &str,
    from: &str,
    to: &[String],
    message: &str,
) -> Result<(), MailError> {
    let (host, port) = (relay.host, relay.port);
    let tcp = tokio::time::timeout(STEP, TcpStream::connect((host, port)))
        .await
        .map_err(|_| MailError(format!("SMTP {host}:{port}: no connection within 20 s")))?
        .map_err(|e| MailError(format!("SMTP {host}:{port}: {e}")))?;
    let mut conn: Box<dyn Conn> = Box::new(tcp);
    if relay.tls == SmtpTls::Tls {
        conn = secure(conn, host, relay.ca_file).await?;
    }
    let mut s = Session {
        io: BufReader::new(conn),
    };
    s.reply(220, "the greeting").await?;
    let mut ehlo = s.command(&format!("EHLO {helo}"), 250, "EHLO").await?;
    if relay.tls == SmtpTls::Starttls {
        if extension(&ehlo, "STARTTLS").is_none() {
            return Err(MailError(format!(
                "SMTP {host}:{port}: the relay does not offer STARTTLS"
            )));
        }
        s.command("STARTTLS", 220, "STARTTLS").await?;
        // (nothing may follow the 220 in the clear: what was read ahead is dropped)
        let conn = s.io.into_inner();
        s = Session {
            io: BufReader::new(secure(conn, host, relay.ca_file).await?),
        };
        ehlo = s
            .command(&format!("EHLO {helo}"), 250, "EHLO over TLS")
            .await?;
    }
    if let Some((user, password)) = relay.login {
        let mechs = extension(&ehlo, "AUTH").unwrap_or_default();
        let has = |m: &str| mechs.iter().any(|x| x.eq_ignore_ascii_case(m));
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        if has("PLAIN") {
            let token = b64(format!("\0{user}\0{password}").as_bytes());
            s.command(
                &format!("AUTH PLAIN {token}"),
                235,
                "the sign-in (AUTH PLAIN)",
            )
            .await?;
        } else if has("LOGIN") {
            s.command("AUTH LOGIN", 334, "AUTH LOGIN").await?;
            s.command(&b64(user.as_bytes()), 334, "the user name")
                .await?;
            s.command(&b64(password.as_bytes()), 235, "the sign-in (AUTH LOGIN)")
                .await?;
        } else {
            return Err(MailError(format!(
                "SMTP {host}:{port}: the relay offers no sign-in this server knows (PLAIN, LOGIN): {mechs:?}"
            )));
        }
    }
    s.command(&format!("MAIL FROM:<{from}>"), 250, "MAIL FROM")
        .await?;
    for t in to {
        s.command(&format!("RCPT TO:<{t}>"), 250, &format!("RCPT TO {t}"))
            .await?;
    }
    s.command("DATA", 354, "DATA").await?;
    s.write(message).await?;
    s.command(".", 250, "the message").await?;
    let _ = s.command("QUIT", 221, "QUIT").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_told_from_names() {
        assert!(is_email("ong.a@xa.vn"));
        assert!(is_email(" canbo@huyen.gov.vn "));
        for n in [
            "Ông A",
            "a@b",
            "@xa.vn",
            "a@.vn",
            "a@xa.",
            "a b@xa.vn",
            "a@b@xa.vn",
            "<a@xa.vn>",
            "a@xa.vn\r\nBcc: x@y.z",
        ] {
            assert!(!is_email(n), "{n:?}");
        }
    }

    #[test]
    fn ehlo_extensions_are_found_by_their_first_word() {
        let ehlo: Vec<String> = [
            "relay.xa.vn Hello",
            "SIZE 33554432",
            "starttls",
            "AUTH LOGIN PLAIN",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(extension(&ehlo, "STARTTLS"), Some(vec![]));
        assert_eq!(extension(&ehlo, "AUTH"), Some(vec!["LOGIN", "PLAIN"]));
        assert_eq!(extension(&ehlo, "PIPELINING"), None);
        // The greeting line is the relay's name, not an extension.
        assert_eq!(extension(&ehlo, "relay.xa.vn"), None);
    }

    /// A relay that answers `script` (one reply per line the client sends, after the
    /// greeting) and records what it was sent.
    async fn scripted_relay(
        script: &'static [&'static str],
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let h = tokio::spawn(async move {
            let (c, _) = l.accept().await.unwrap();
            let (r, mut w) = c.into_split();
            let mut r = BufReader::new(r);
            w.write_all(b"220 relay ready\r\n").await.unwrap();
            let mut got = Vec::new();
            for answer in script {
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                got.push(line.trim_end().to_string());
                w.write_all(answer.as_bytes()).await.unwrap();
            }
            let mut rest = String::new();
            while r.read_line(&mut rest).await.unwrap_or(0) > 0 {
                got.push(rest.trim_end().to_string());
                rest.clear();
            }
            got
        });
        (port, h)
    }

    /// What sending a message through the relay on `port` fails with.
    async fn failure(port: u16, tls: SmtpTls, login: (&str, &str)) -> MailError {
        let r = Relay {
            host: "127.0.0.1",
            port,
            tls,
            login: Some(login),
            ca_file: None,
        };
        let to = ["a@xa.test".to_string()];
        send(&r, "xaso.test", "xaso@xa.test", &to, "x\r\n")
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_relay_without_starttls_is_refused_before_anything_is_sent() {
        let (port, h) = scripted_relay(&["250-relay\r\n250 AUTH PLAIN\r\n"]).await;
        let e = failure(port, SmtpTls::Starttls, ("xaso", "mật khẩu")).await;
        assert!(e.0.contains("does not offer STARTTLS"), "{e}");
        let got = h.await.unwrap();
        assert_eq!(
            got,
            vec!["EHLO xaso.test"],
            "no login, no mail in the clear"
        );
    }

    #[tokio::test]
    async fn a_refused_login_is_a_clear_error_that_shows_no_password() {
        // (a plain relay is enough to test the conversation: the configuration refuses a
        // login without TLS, see config.rs)
        let (port, h) = scripted_relay(&[
            "250-relay\r\n250 AUTH LOGIN\r\n",
            "334 VXNlcm5hbWU6\r\n",
            "334 UGFzc3dvcmQ6\r\n",
            "535 5.7.8 Authentication credentials invalid\r\n",
        ])
        .await;
        let e = failure(port, SmtpTls::None, ("xaso", "mật-khẩu-sai")).await;
        assert!(e.0.contains("refused the sign-in (AUTH LOGIN): 535"), "{e}");
        assert!(
            !e.0.contains("mật")
                && !e
                    .0
                    .contains(&base64::engine::general_purpose::STANDARD.encode("mật-khẩu-sai")),
            "{e}"
        );
        let got = h.await.unwrap();
        assert_eq!(got[1], "AUTH LOGIN");
        assert_eq!(
            got[2],
            base64::engine::general_purpose::STANDARD.encode("xaso")
        );
        assert!(!got.iter().any(|l| l.starts_with("MAIL")), "{got:?}");
    }

    #[test]
    fn messages_encode_vietnamese_subjects_and_bodies() {
        let m = compose(
            "xaso@xa.vn",
            &["ong.a@xa.vn".to_string()],
            "Nhắc lịch họp: Giao ban",
            "Cuộc họp bắt đầu lúc 08:00.",
            "Fri, 27 Nov 2026 08:00:00 +0700",
            "1@xa.vn",
        );
        assert!(m.contains("Subject: =?UTF-8?B?"), "{m}");
        assert!(m.contains("To: ong.a@xa.vn\r\n"));
        let body = m.split("\r\n\r\n").nth(1).unwrap().replace("\r\n", "");
        let text = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "Cuộc họp bắt đầu lúc 08:00."
        );
        assert!(m.lines().all(|l| l.len() <= 998));
    }
}
