//! The audit log: an append-only table of who did what, when, and from where, whose rows
//! are chained by SHA-256 so that editing or deleting a row is evident ([`verify`]).
//!
//! Row hash = SHA-256(previous row's hash, hex ‖ canonical JSON of this row's fields). The
//! first row's previous hash is 64 zeros. Appends are serialised in the process by a lock;
//! several nodes sharing one PostgreSQL catalogue will need a database lock here too.

use crate::error::Result;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use tokio::sync::Mutex;

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One thing to record. `user_id`/`username` are None for anonymous events.
#[derive(Clone, Debug, Default)]
pub struct Event {
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub action: &'static str,
    pub camera_id: Option<i64>,
    pub address: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// A stored row, as read back.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub action: String,
    pub camera_id: Option<i64>,
    pub address: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Appends to the log. Cheap to share; clones are not needed (keep it in an `Arc`).
#[derive(Debug, Default)]
pub struct AuditLog {
    lock: Mutex<()>,
}

impl AuditLog {
    pub fn new() -> Self {
        AuditLog::default()
    }

    /// Appends `ev` at `at_ms`; returns the new row's id.
    pub async fn append(&self, db: &AnyPool, at_ms: i64, ev: Event) -> Result<i64> {
        let _guard = self.lock.lock().await;
        // No transaction: on SQLite a deferred transaction that reads, then writes while another
        // connection writes (the recording index) fails at once with "database is locked"
        // instead of waiting. Appends are serialised by the lock above; the INSERT alone waits
        // for the write lock, and the id is the primary key, so a concurrent appender in
        // another process (the CLI) fails cleanly instead of forking the chain.
        let last = sqlx::query("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_optional(db)
            .await?;
        let (prev_id, prev_hash) = match last {
            Some(r) => (r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?),
            None => (0, GENESIS_HASH.to_owned()),
        };
        let id = prev_id + 1;
        let detail = ev.detail.map(|mut d| {
            // Keys whose value is null say nothing; keep rows short and readable.
            if let Some(o) = d.as_object_mut() {
                o.retain(|_, v| !v.is_null());
            }
            d.to_string()
        });
        let hash = row_hash(
            &prev_hash,
            id,
            at_ms,
            ev.user_id,
            ev.username.as_deref(),
            ev.action,
            ev.camera_id,
            ev.address.as_deref(),
            detail.as_deref(),
        );
        sqlx::query(
            "INSERT INTO audit_log (id, at_ms, user_id, username, action, camera_id, address, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(at_ms)
        .bind(ev.user_id)
        .bind(ev.username)
        .bind(ev.action)
        .bind(ev.camera_id)
        .bind(ev.address)
        .bind(detail)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(db)
        .await?;
        Ok(id)
    }
}

#[allow(clippy::too_many_arguments)]
fn row_hash(
    prev_hash: &str,
    id: i64,
    at_ms: i64,
    user_id: Option<i64>,
    username: Option<&str>,
    action: &str,
    camera_id: Option<i64>,
    address: Option<&str>,
    detail: Option<&str>,
) -> String {
    let canonical = serde_json::json!([
        id, at_ms, user_id, username, action, camera_id, address, detail
    ])
    .to_string();
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

/// Filters for reading the log; all optional.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub username: Option<String>,
    pub action: Option<String>,
    pub camera_id: Option<i64>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only rows with id < before (paging backwards).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Newest first.
pub async fn list(db: &AnyPool, q: &Query) -> Result<Vec<AuditRow>> {
    // Each filter is "$n IS NULL OR col = $n", so one statement serves every combination.
    let rows = sqlx::query(
        "SELECT id, at_ms, user_id, username, action, camera_id, address, detail, prev_hash, hash \
         FROM audit_log \
         WHERE ($1 IS NULL OR username = $1) AND ($2 IS NULL OR action = $2) \
           AND ($3 IS NULL OR camera_id = $3) AND ($4 IS NULL OR at_ms >= $4) \
           AND ($5 IS NULL OR at_ms < $5) AND ($6 IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7",
    )
    .bind(q.username.clone())
    .bind(q.action.clone())
    .bind(q.camera_id)
    .bind(q.from_ms)
    .bind(q.to_ms)
    .bind(q.before)
    .bind(q.limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(row_from).collect()
}

fn row_from(r: &sqlx::any::AnyRow) -> Result<AuditRow> {
    Ok(AuditRow {
        id: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        user_id: r.try_get(2)?,
        username: r.try_get(3)?,
        action: r.try_get(4)?,
        camera_id: r.try_get(5)?,
        address: r.try_get(6)?,
        detail: r.try_get(7)?,
        prev_hash: r.try_get(8)?,
        hash: r.try_get(9)?,
    })
}

/// The outcome of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every row checks out.
    /// `last_hash` anchors the chain: keep it elsewhere to detect a rewritten tail later.
    Intact { rows: u64, last_hash: String },
    /// The first row that does not, and why.
    Broken { id: i64, reason: String },
}

/// Recomputes the chain from the first row, in pages, and reports the first break.
pub async fn verify(db: &AnyPool) -> Result<Verdict> {
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut expected_id = 1;
    let mut rows = 0u64;
    loop {
        let page = sqlx::query(
            "SELECT id, at_ms, user_id, username, action, camera_id, address, detail, prev_hash, hash \
             FROM audit_log WHERE id >= $1 ORDER BY id LIMIT 1000",
        )
        .bind(expected_id)
        .fetch_all(db)
        .await?;
        if page.is_empty() {
            return Ok(Verdict::Intact {
                rows,
                last_hash: prev_hash,
            });
        }
        for r in &page {
            let r = row_from(r)?;
            if r.id != expected_id {
                return Ok(Verdict::Broken {
                    id: r.id,
                    reason: format!("row {expected_id} is missing"),
                });
            }
            if r.prev_hash != prev_hash {
                return Ok(Verdict::Broken {
                    id: r.id,
                    reason:
                        "does not follow the previous row (a row before it was changed or removed)"
                            .into(),
                });
            }
            let want = row_hash(
                &r.prev_hash,
                r.id,
                r.at_ms,
                r.user_id,
                r.username.as_deref(),
                &r.action,
                r.camera_id,
                r.address.as_deref(),
                r.detail.as_deref(),
            );
            if want != r.hash {
                return Ok(Verdict::Broken {
                    id: r.id,
                    reason: "its content does not match its hash (the row was edited)".into(),
                });
            }
            prev_hash = r.hash;
            expected_id += 1;
            rows += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (tempfile::TempDir, AnyPool) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
        let pool = crate::db::open(&url).await.unwrap();
        (dir, pool)
    }

    fn ev(action: &'static str, user: &str) -> Event {
        Event {
            user_id: Some(1),
            username: Some(user.into()),
            action,
            address: Some("127.0.0.1".into()),
            detail: Some(serde_json::json!({"k": "v"})),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn chain_verifies_and_edits_are_caught() {
        let (_d, pool) = db().await;
        let log = AuditLog::new();
        assert!(matches!(
            verify(&pool).await.unwrap(),
            Verdict::Intact { rows: 0, .. }
        ));
        for i in 0..5 {
            log.append(&pool, 1000 + i, ev("login", "an"))
                .await
                .unwrap();
        }
        assert!(matches!(
            verify(&pool).await.unwrap(),
            Verdict::Intact { rows: 5, .. }
        ));

        sqlx::query("UPDATE audit_log SET username = 'binh' WHERE id = 3")
            .execute(&pool)
            .await
            .unwrap();
        assert!(matches!(
            verify(&pool).await.unwrap(),
            Verdict::Broken { id: 3, .. }
        ));
    }

    #[tokio::test]
    async fn deleting_a_row_is_caught() {
        let (_d, pool) = db().await;
        let log = AuditLog::new();
        for i in 0..4 {
            log.append(&pool, i, ev("login", "an")).await.unwrap();
        }
        sqlx::query("DELETE FROM audit_log WHERE id = 2")
            .execute(&pool)
            .await
            .unwrap();
        assert!(matches!(
            verify(&pool).await.unwrap(),
            Verdict::Broken { id: 3, .. }
        ));
    }

    #[tokio::test]
    async fn list_filters_and_pages() {
        let (_d, pool) = db().await;
        let log = AuditLog::new();
        log.append(&pool, 10, ev("login", "an")).await.unwrap();
        log.append(&pool, 20, ev("logout", "an")).await.unwrap();
        log.append(&pool, 30, ev("login", "binh")).await.unwrap();
        let q = |f: fn(&mut Query)| {
            let mut q = Query {
                limit: 100,
                ..Default::default()
            };
            f(&mut q);
            q
        };
        let ids = |rows: Vec<AuditRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(list(&pool, &q(|_| {})).await.unwrap()), vec![3, 2, 1]);
        assert_eq!(
            ids(list(&pool, &q(|q| q.action = Some("login".into())))
                .await
                .unwrap()),
            vec![3, 1]
        );
        assert_eq!(
            ids(list(&pool, &q(|q| q.username = Some("an".into())))
                .await
                .unwrap()),
            vec![2, 1]
        );
        assert_eq!(
            ids(list(
                &pool,
                &q(|q| {
                    q.from_ms = Some(15);
                    q.to_ms = Some(30)
                })
            )
            .await
            .unwrap()),
            vec![2]
        );
        assert_eq!(
            ids(list(
                &pool,
                &q(|q| {
                    q.before = Some(3);
                    q.limit = 1
                })
            )
            .await
            .unwrap()),
            vec![2]
        );
    }
}
