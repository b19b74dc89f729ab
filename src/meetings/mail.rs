//! Meeting reminders by e-mail through the commune's SMTP relay (`[meetings.smtp]`): the
//! message is composed here with no I/O ([`compose`]), and sent over one plain SMTP
//! conversation ([`send`]: EHLO, MAIL FROM, RCPT TO per recipient, DATA), each reply checked
//! and every step under a timeout. A relay on the LAN that takes mail from the box without
//! authentication is what this is for; TLS and AUTH are not built (docs/design/meetings.md).

use base64::Engine;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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

const STEP: Duration = Duration::from_secs(20);

/// Sends `message` to `to` through the relay at `host:port`.
pub async fn send(
    host: &str,
    port: u16,
    helo: &str,
    from: &str,
    to: &[String],
    message: &str,
) -> Result<(), MailError> {
    let io = |e: std::io::Error| MailError(format!("SMTP {host}:{port}: {e}"));
    let stream = tokio::time::timeout(STEP, TcpStream::connect((host, port)))
        .await
        .map_err(|_| MailError(format!("SMTP {host}:{port}: no connection within 20 s")))?
        .map_err(io)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    // One reply (multi-line replies end with "NNN "), its code checked.
    async fn reply(
        r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
        want: u16,
        what: &str,
    ) -> Result<(), MailError> {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(STEP, r.read_line(&mut line))
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
            if line.as_bytes().get(3) == Some(&b'-') {
                continue;
            }
            if code / 100 != want / 100 {
                return Err(MailError(format!(
                    "SMTP: the relay refused {what}: {}",
                    line.trim_end()
                )));
            }
            return Ok(());
        }
    }
    reply(&mut r, 220, "the greeting").await?;
    w.write_all(format!("EHLO {helo}\r\n").as_bytes())
        .await
        .map_err(io)?;
    reply(&mut r, 250, "EHLO").await?;
    w.write_all(format!("MAIL FROM:<{from}>\r\n").as_bytes())
        .await
        .map_err(io)?;
    reply(&mut r, 250, "MAIL FROM").await?;
    for t in to {
        w.write_all(format!("RCPT TO:<{t}>\r\n").as_bytes())
            .await
            .map_err(io)?;
        reply(&mut r, 250, &format!("RCPT TO {t}")).await?;
    }
    w.write_all(b"DATA\r\n").await.map_err(io)?;
    reply(&mut r, 354, "DATA").await?;
    w.write_all(message.as_bytes()).await.map_err(io)?;
    w.write_all(b".\r\n").await.map_err(io)?;
    reply(&mut r, 250, "the message").await?;
    w.write_all(b"QUIT\r\n").await.map_err(io)?;
    let _ = reply(&mut r, 221, "QUIT").await;
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
