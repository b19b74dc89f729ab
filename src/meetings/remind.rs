//! The meetings' e-mail reminders (`[meetings.smtp]`): which are due, and the message.

use super::{link, mail, store};
use crate::error::Result;
use sqlx::AnyPool;

/// How long before a meeting its reminder goes out.
pub const REMIND_AHEAD_MS: i64 = 15 * 60_000;

/// Sends the e-mail reminders that are due (`[meetings.smtp]`): to each guest listed by
/// address, a message with its own signed link (whoever joins with it is that guest); to
/// the invited users whose enabled accounts have an address, one message with the
/// meeting's shared link (a user who is signed in joins under the account). Each address
/// the relay accepted a message for is recorded, and is not written to again: when a
/// message fails, only its recipients are tried at the next call. A meeting is marked
/// reminded once every address has had its message (or when it has none). Returns the
/// messages sent.
pub async fn remind_due(
    db: &AnyPool,
    cfg: &crate::config::MeetingsConfig,
    now_ms: i64,
) -> Result<usize> {
    let Some(smtp) = &cfg.smtp else {
        return Ok(0);
    };
    let mut sent = 0;
    for m in store::due_reminders(db, now_ms, REMIND_AHEAD_MS).await? {
        let key = store::server_key(db, "meeting_links").await?;
        let done = store::reminded_addresses(db, m.id).await?;
        let reached = |a: &str| done.contains(&a.trim().to_ascii_lowercase());
        let exp = m.end_ms + link::GRACE_MS;
        let url = |token: String| {
            format!(
                "{}/#/meet/{}?t={token}",
                cfg.public_url.trim_end_matches('/'),
                m.id
            )
        };
        // (recipients, the link they get)
        let mut messages: Vec<(Vec<String>, String)> = m
            .guests
            .iter()
            .enumerate()
            .map(|(i, g)| (g.trim().to_string(), i))
            .filter(|(g, _)| mail::is_email(g) && !reached(g))
            .map(|(g, i)| (vec![g], url(link::sign_guest(&key, m.id, exp, i))))
            .collect();
        let mut users: Vec<String> = Vec::new();
        for e in store::invitee_emails(db, m.id).await? {
            // (A guest's address is left out here even once reached: it had its own link.)
            let guest = m.guests.iter().any(|g| g.trim().eq_ignore_ascii_case(&e));
            let known = guest || users.iter().any(|u| u.eq_ignore_ascii_case(&e));
            if mail::is_email(&e) && !known && !reached(&e) {
                users.push(e);
            }
        }
        if !users.is_empty() {
            messages.push((users, url(link::sign(&key, m.id, exp))));
        }
        let mut failed = false;
        for (i, (to, url)) in messages.iter().enumerate() {
            match send_reminder(smtp, &m, to, url, now_ms, i).await {
                Ok(()) => {
                    sent += 1;
                    store::add_reminded(db, m.id, to, now_ms).await?;
                    tracing::info!(
                        meeting = m.id,
                        recipients = to.len(),
                        "meeting reminder sent"
                    );
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(meeting = m.id, error = %e, "meeting reminder not sent; trying again");
                }
            }
        }
        if !failed {
            store::set_reminded(db, m.id, now_ms).await?;
        }
    }
    Ok(sent)
}

/// One reminder of meeting `m` to `to`, with the join link `url` (Vietnamese, then
/// English); `n` tells the meeting's messages apart in their Message-IDs.
async fn send_reminder(
    smtp: &crate::config::SmtpConfig,
    m: &store::Meeting,
    to: &[String],
    url: &str,
    now_ms: i64,
    n: usize,
) -> std::result::Result<(), String> {
    let vn = chrono::FixedOffset::east_opt(7 * 3600).expect("UTC+7");
    let start = chrono::DateTime::from_timestamp_millis(m.start_ms)
        .unwrap_or_default()
        .with_timezone(&vn);
    let when_vi = start.format("%H:%M ngày %d/%m/%Y").to_string();
    let when_en = start.format("%H:%M on %d/%m/%Y").to_string();
    let subject = format!("Nhắc lịch họp: {} ({})", m.title, start.format("%H:%M"));
    let body = format!(
        "Kính gửi quý đại biểu,\n\n\
         Cuộc họp \"{title}\" bắt đầu lúc {when_vi} (giờ Việt Nam), do {chair} chủ trì.\n\
         Vào họp bằng trình duyệt Chrome theo đường dẫn sau (không cần cài đặt):\n{url}\n\n\
         ---\n\
         Reminder: the meeting \"{title}\" starts at {when_en} (Vietnam time), chaired by \
         {chair}. Join in Chrome, nothing to install:\n{url}\n",
        title = m.title,
        chair = m.chair,
    );
    let date = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .with_timezone(&vn)
        .to_rfc2822();
    let host = smtp.from.split('@').nth(1).unwrap_or("xaso");
    let msg = mail::compose(
        &smtp.from,
        to,
        &subject,
        &body,
        &date,
        &format!("meeting-{}-{now_ms}-{n}@{host}", m.id),
    );
    let relay = mail::Relay {
        host: &smtp.host,
        port: smtp.port,
        tls: smtp.tls,
        login: smtp.username.as_deref().zip(smtp.password.as_deref()),
        ca_file: smtp.ca_file.as_deref(),
    };
    mail::send(&relay, host, &smtp.from, to, &msg)
        .await
        .map_err(|e| e.to_string())
}
