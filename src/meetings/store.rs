//! The meetings' rows: meetings, invitees, attendance (join/leave), chat, and the server's
//! key for signing guest links. Plain functions over an `AnyPool`, portable SQL (see `db`).

use crate::bail;
use crate::db::to_bool;
use crate::error::Result;
use base64::Engine;
use rand::RngCore;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meeting {
    pub id: i64,
    pub title: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub chair_id: i64,
    pub chair: String,
    pub guests: Vec<String>,
    pub locked: bool,
    pub ended_ms: Option<i64>,
    pub invitees: Vec<String>,
    /// The nodes below this one that the meeting invites (their paths); for a meeting
    /// from the parent, relative to this node, `""` being this node itself.
    pub nodes: Vec<String>,
    /// `None`: made here; `Some("parent")`: it came from the parent (federation).
    pub home: Option<String>,
}

impl Meeting {
    /// Whether it came from the parent.
    pub fn is_mirror(&self) -> bool {
        self.home.is_some()
    }

    /// Whether this node itself is invited (always, for a meeting made here).
    pub fn invites_here(&self) -> bool {
        !self.is_mirror() || self.nodes.iter().any(|n| n.is_empty())
    }

    /// The paths of what it invites at child `name` and below, relative to that child
    /// (`""` for the child itself); empty when it invites nothing there.
    pub fn nodes_at(&self, name: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| {
                if n == name {
                    Some(String::new())
                } else {
                    n.strip_prefix(name)
                        .and_then(|r| r.strip_prefix('/'))
                        .map(str::to_owned)
                }
            })
            .collect()
    }
}

/// What a new meeting is made of (validated by the caller).
pub struct NewMeeting<'a> {
    pub title: &'a str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub chair_id: i64,
    pub invitee_ids: &'a [i64],
    pub guests: &'a [String],
    /// Paths of the nodes below to invite (checked by the caller).
    pub nodes: &'a [String],
}

/// A meeting as the parent sends it down (federation), to keep here under its id.
pub struct Mirror<'a> {
    pub id: i64,
    pub title: &'a str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub chair: &'a str,
    pub locked: bool,
    pub ended_ms: Option<i64>,
    /// Relative to this node (`""`: this node).
    pub nodes: &'a [String],
}

/// A new meeting's id: random, above 2^32 and below 2^52, so that the meetings of every
/// node in the tree have ids of their own (a meeting keeps its id at every node it
/// invites) and they stay exact in JavaScript.
fn new_id() -> i64 {
    let r = rand::thread_rng().next_u64() % ((1u64 << 52) - (1u64 << 32));
    (r + (1u64 << 32)) as i64
}

const COLS: &str = "m.id, m.title, m.start_ms, m.end_ms, m.chair_id, \
    COALESCE(m.chair_name, u.username), m.guests, m.locked, m.ended_ms, m.home";

fn meeting_from(r: &AnyRow) -> Result<Meeting> {
    let guests: String = r.try_get(6)?;
    Ok(Meeting {
        id: r.try_get(0)?,
        title: r.try_get(1)?,
        start_ms: r.try_get(2)?,
        end_ms: r.try_get(3)?,
        chair_id: r.try_get(4)?,
        chair: r.try_get(5)?,
        guests: serde_json::from_str(&guests).unwrap_or_default(),
        locked: to_bool(r.try_get(7)?),
        ended_ms: r.try_get(8)?,
        invitees: Vec::new(),
        nodes: Vec::new(),
        home: r.try_get(9)?,
    })
}

async fn with_invitees(db: &AnyPool, mut m: Meeting) -> Result<Meeting> {
    let rows = sqlx::query(
        "SELECT u.username FROM meeting_invitees i JOIN users u ON u.id = i.user_id \
         WHERE i.meeting_id = $1 ORDER BY u.username",
    )
    .bind(m.id)
    .fetch_all(db)
    .await?;
    m.invitees = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    m.nodes =
        sqlx::query_scalar("SELECT path FROM meeting_nodes WHERE meeting_id = $1 ORDER BY path")
            .bind(m.id)
            .fetch_all(db)
            .await?;
    Ok(m)
}

/// The e-mail addresses of the meeting's invited users (enabled accounts that have one).
pub async fn invitee_emails(db: &AnyPool, meeting: i64) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT u.email FROM meeting_invitees i JOIN users u ON u.id = i.user_id \
         WHERE i.meeting_id = $1 AND u.email IS NOT NULL AND u.disabled = 0 ORDER BY u.username",
    )
    .bind(meeting)
    .fetch_all(db)
    .await?)
}

pub async fn create(db: &AnyPool, m: &NewMeeting<'_>, now_ms: i64) -> Result<Meeting> {
    let mut tx = db.begin().await?;
    let r = sqlx::query(
        "INSERT INTO meetings (id, title, start_ms, end_ms, chair_id, guests, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(new_id())
    .bind(m.title)
    .bind(m.start_ms)
    .bind(m.end_ms)
    .bind(m.chair_id)
    .bind(serde_json::to_string(m.guests).expect("strings serialize"))
    .bind(now_ms)
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = r.try_get(0)?;
    for uid in m.invitee_ids {
        sqlx::query("INSERT INTO meeting_invitees (meeting_id, user_id) VALUES ($1, $2)")
            .bind(id)
            .bind(*uid)
            .execute(&mut *tx)
            .await?;
    }
    for path in m.nodes {
        sqlx::query("INSERT INTO meeting_nodes (meeting_id, path) VALUES ($1, $2)")
            .bind(id)
            .bind(path)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    get(db, id).await
}

/// Keeps (or updates) a meeting the parent sent down. An id that names a meeting made
/// here is refused (ids are random over 2^52: only a parent that misbehaves repeats one).
pub async fn upsert_mirror(db: &AnyPool, m: &Mirror<'_>, now_ms: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let home: Option<Option<String>> =
        sqlx::query_scalar("SELECT home FROM meetings WHERE id = $1")
            .bind(m.id)
            .fetch_optional(&mut *tx)
            .await?;
    if home == Some(None) {
        bail!(AlreadyExists, "meeting {} was made here", m.id);
    }
    // The chair is at the parent: the row names them, and points at this node's first
    // account only because the column must name one (it gives no rights: nobody chairs a
    // meeting from the parent here).
    sqlx::query(
        "INSERT INTO meetings (id, title, start_ms, end_ms, chair_id, chair_name, locked, \
         ended_ms, home, created_ms) \
         VALUES ($1, $2, $3, $4, (SELECT MIN(id) FROM users), $5, $6, $7, 'parent', $8) \
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, start_ms = excluded.start_ms, \
         end_ms = excluded.end_ms, chair_name = excluded.chair_name, \
         locked = excluded.locked, ended_ms = excluded.ended_ms",
    )
    .bind(m.id)
    .bind(m.title)
    .bind(m.start_ms)
    .bind(m.end_ms)
    .bind(m.chair)
    .bind(i64::from(m.locked))
    .bind(m.ended_ms)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM meeting_nodes WHERE meeting_id = $1")
        .bind(m.id)
        .execute(&mut *tx)
        .await?;
    for path in m.nodes {
        sqlx::query("INSERT INTO meeting_nodes (meeting_id, path) VALUES ($1, $2)")
            .bind(m.id)
            .bind(path)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The meetings that invite nodes below this one and have not ended more than `since_ms`
/// ago (what the children are told of when their links come up).
pub async fn with_nodes(db: &AnyPool, since_ms: i64) -> Result<Vec<Meeting>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM meetings m JOIN users u ON u.id = m.chair_id \
         WHERE (m.ended_ms IS NULL OR m.ended_ms >= $1) AND m.end_ms >= $1 AND EXISTS \
         (SELECT 1 FROM meeting_nodes n WHERE n.meeting_id = m.id AND n.path <> '') \
         ORDER BY m.start_ms LIMIT 1000"
    ))
    .bind(since_ms)
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(with_invitees(db, meeting_from(r)?).await?);
    }
    Ok(out)
}

pub async fn get(db: &AnyPool, id: i64) -> Result<Meeting> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM meetings m JOIN users u ON u.id = m.chair_id WHERE m.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    match r {
        Some(r) => with_invitees(db, meeting_from(&r)?).await,
        None => bail!(NotFound, "no meeting with id {id}"),
    }
}

/// All meetings here (`None`: those made here, and those from above that invite this node,
/// not those only passing through to nodes below), or those a user chairs or is invited
/// to; newest start first.
pub async fn list(db: &AnyPool, of_user: Option<i64>) -> Result<Vec<Meeting>> {
    let rows = match of_user {
        None => {
            sqlx::query(&format!(
                "SELECT {COLS} FROM meetings m JOIN users u ON u.id = m.chair_id \
                 WHERE m.home IS NULL OR m.id IN \
                 (SELECT meeting_id FROM meeting_nodes WHERE path = '') \
                 ORDER BY m.start_ms DESC, m.id DESC LIMIT 500"
            ))
            .fetch_all(db)
            .await?
        }
        Some(uid) => {
            sqlx::query(&format!(
                "SELECT {COLS} FROM meetings m JOIN users u ON u.id = m.chair_id \
                 WHERE (m.chair_id = $1 AND m.home IS NULL) OR m.id IN \
                 (SELECT meeting_id FROM meeting_invitees WHERE user_id = $1) OR \
                 (m.home IS NOT NULL AND m.id IN \
                 (SELECT meeting_id FROM meeting_nodes WHERE path = '')) \
                 ORDER BY m.start_ms DESC, m.id DESC LIMIT 500"
            ))
            .bind(uid)
            .fetch_all(db)
            .await?
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(with_invitees(db, meeting_from(r)?).await?);
    }
    Ok(out)
}

/// Whether the user is invited: by name, or as a user of a node the meeting from the
/// parent invites (a meeting across levels invites the node's officials).
pub async fn is_invited(db: &AnyPool, meeting: i64, user: i64) -> Result<bool> {
    let r = sqlx::query(
        "SELECT 1 FROM meeting_invitees WHERE meeting_id = $1 AND user_id = $2 \
         UNION ALL SELECT 1 FROM meetings m JOIN meeting_nodes n ON n.meeting_id = m.id \
         WHERE m.id = $1 AND m.home IS NOT NULL AND n.path = ''",
    )
    .bind(meeting)
    .bind(user)
    .fetch_optional(db)
    .await?;
    Ok(r.is_some())
}

pub async fn set_locked(db: &AnyPool, id: i64, locked: bool) -> Result<()> {
    sqlx::query("UPDATE meetings SET locked = $1 WHERE id = $2")
        .bind(i64::from(locked))
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn set_ended(db: &AnyPool, id: i64, now_ms: i64) -> Result<()> {
    sqlx::query("UPDATE meetings SET ended_ms = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Someone entered the room; returns the attendance row's id (for [`left`]).
pub async fn joined(
    db: &AnyPool,
    meeting: i64,
    name: &str,
    user_id: Option<i64>,
    role: &str,
    address: Option<&str>,
    now_ms: i64,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO meeting_attendance (meeting_id, name, user_id, guest, role, address, joined_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(meeting)
    .bind(name)
    .bind(user_id)
    .bind(i64::from(user_id.is_none()))
    .bind(role)
    .bind(address)
    .bind(now_ms)
    .fetch_one(db)
    .await?;
    Ok(r.try_get(0)?)
}

pub async fn left(db: &AnyPool, attendance: i64, now_ms: i64) -> Result<()> {
    sqlx::query("UPDATE meeting_attendance SET left_ms = $1 WHERE id = $2 AND left_ms IS NULL")
        .bind(now_ms)
        .bind(attendance)
        .execute(db)
        .await?;
    Ok(())
}

/// Closes attendance rows left open by a crash (at start).
pub async fn close_open_attendance(db: &AnyPool, now_ms: i64) -> Result<u64> {
    let r = sqlx::query("UPDATE meeting_attendance SET left_ms = $1 WHERE left_ms IS NULL")
        .bind(now_ms)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attendance {
    pub name: String,
    pub user_id: Option<i64>,
    pub role: String,
    pub joined_ms: i64,
    pub left_ms: Option<i64>,
}

pub async fn attendance(db: &AnyPool, meeting: i64) -> Result<Vec<Attendance>> {
    let rows = sqlx::query(
        "SELECT name, user_id, role, joined_ms, left_ms FROM meeting_attendance \
         WHERE meeting_id = $1 ORDER BY joined_ms, id",
    )
    .bind(meeting)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Attendance {
                name: r.try_get(0)?,
                user_id: r.try_get(1)?,
                role: r.try_get(2)?,
                joined_ms: r.try_get(3)?,
                left_ms: r.try_get(4)?,
            })
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub id: i64,
    pub name: String,
    pub user_id: Option<i64>,
    pub at_ms: i64,
    pub text: String,
}

pub async fn add_chat(
    db: &AnyPool,
    meeting: i64,
    name: &str,
    user_id: Option<i64>,
    text: &str,
    now_ms: i64,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO meeting_chat (meeting_id, name, user_id, at_ms, text) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(meeting)
    .bind(name)
    .bind(user_id)
    .bind(now_ms)
    .bind(text)
    .fetch_one(db)
    .await?;
    Ok(r.try_get(0)?)
}

pub async fn chat(db: &AnyPool, meeting: i64) -> Result<Vec<ChatMessage>> {
    let rows = sqlx::query(
        "SELECT id, name, user_id, at_ms, text FROM meeting_chat WHERE meeting_id = $1 \
         ORDER BY id",
    )
    .bind(meeting)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ChatMessage {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                user_id: r.try_get(2)?,
                at_ms: r.try_get(3)?,
                text: r.try_get(4)?,
            })
        })
        .collect()
}

/// The server's key named `name`, made (32 random bytes) on first use.
pub async fn server_key(db: &AnyPool, name: &str) -> Result<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let get = || async {
        let r = sqlx::query("SELECT value FROM server_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(db)
            .await?;
        Ok::<_, crate::error::Error>(match r {
            Some(r) => Some(r.try_get::<String, _>(0)?),
            None => None,
        })
    };
    if let Some(v) = get().await? {
        return Ok(b64.decode(v).unwrap_or_default());
    }
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    // Two servers racing on one catalogue: the first insert wins, both read it back.
    let _ = sqlx::query("INSERT INTO server_keys (name, value) VALUES ($1, $2)")
        .bind(name)
        .bind(b64.encode(key))
        .execute(db)
        .await;
    let v = get().await?.unwrap_or_default();
    Ok(b64.decode(v).unwrap_or_default())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub id: i64,
    pub meeting_id: i64,
    pub name: String,
    pub mime: String,
    pub bytes: i64,
    pub sha256: String,
    pub uploader: String,
    pub at_ms: i64,
}

/// Records a document whose bytes are already on disk; returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn add_document(
    db: &AnyPool,
    meeting: i64,
    name: &str,
    mime: &str,
    bytes: i64,
    sha256: &str,
    uploader: &str,
    user_id: Option<i64>,
    now_ms: i64,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO meeting_documents (meeting_id, name, mime, bytes, sha256, uploader, user_id, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(meeting)
    .bind(name)
    .bind(mime)
    .bind(bytes)
    .bind(sha256)
    .bind(uploader)
    .bind(user_id)
    .bind(now_ms)
    .fetch_one(db)
    .await?;
    Ok(r.try_get(0)?)
}

fn document_from(r: &AnyRow) -> Result<Document> {
    Ok(Document {
        id: r.try_get(0)?,
        meeting_id: r.try_get(1)?,
        name: r.try_get(2)?,
        mime: r.try_get(3)?,
        bytes: r.try_get(4)?,
        sha256: r.try_get(5)?,
        uploader: r.try_get(6)?,
        at_ms: r.try_get(7)?,
    })
}

const DOC_COLS: &str = "id, meeting_id, name, mime, bytes, sha256, uploader, at_ms";

pub async fn documents(db: &AnyPool, meeting: i64) -> Result<Vec<Document>> {
    let rows = sqlx::query(&format!(
        "SELECT {DOC_COLS} FROM meeting_documents WHERE meeting_id = $1 ORDER BY id"
    ))
    .bind(meeting)
    .fetch_all(db)
    .await?;
    rows.iter().map(document_from).collect()
}

pub async fn document(db: &AnyPool, meeting: i64, id: i64) -> Result<Document> {
    let r = sqlx::query(&format!(
        "SELECT {DOC_COLS} FROM meeting_documents WHERE meeting_id = $1 AND id = $2"
    ))
    .bind(meeting)
    .bind(id)
    .fetch_optional(db)
    .await?;
    match r {
        Some(r) => document_from(&r),
        None => bail!(NotFound, "no document {id} in meeting {meeting}"),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub id: i64,
    pub question: String,
    pub options: Vec<String>,
    pub secret: bool,
    pub opened_ms: i64,
    pub closed_ms: Option<i64>,
    /// Votes per option.
    pub tally: Vec<i64>,
    /// (name, option) per ballot; the option is `None` for a secret ballot.
    pub ballots: Vec<(String, Option<i64>)>,
}

pub async fn open_vote(
    db: &AnyPool,
    meeting: i64,
    question: &str,
    options: &[String],
    secret: bool,
    now_ms: i64,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO meeting_votes (meeting_id, question, options, secret, opened_ms) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(meeting)
    .bind(question)
    .bind(serde_json::to_string(options).expect("strings serialize"))
    .bind(i64::from(secret))
    .bind(now_ms)
    .fetch_one(db)
    .await?;
    Ok(r.try_get(0)?)
}

/// Casts a ballot: once per voter, while the vote is open, for an existing option. The
/// transaction starts with its write (SQLite: two voters at once wait for each other
/// instead of failing to upgrade a read lock), and the ballot goes in only while the vote
/// is open.
pub async fn cast(
    db: &AnyPool,
    vote: i64,
    voter: &str,
    name: &str,
    option: i64,
    now_ms: i64,
) -> Result<()> {
    let r = sqlx::query("SELECT options, secret FROM meeting_votes WHERE id = $1")
        .bind(vote)
        .fetch_optional(db)
        .await?;
    let Some(r) = r else {
        bail!(NotFound, "no vote {vote}");
    };
    let options: Vec<String> =
        serde_json::from_str(&r.try_get::<String, _>(0)?).unwrap_or_default();
    let secret = to_bool(r.try_get(1)?);
    if option < 0 || option as usize >= options.len() {
        bail!(
            InvalidArgument,
            "option must be 0 to {}",
            options.len().saturating_sub(1)
        );
    }
    let mut tx = db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO meeting_ballots (vote_id, voter, name, option_index, cast_ms) \
         SELECT $1, $2, $3, $4, $5 WHERE EXISTS \
         (SELECT 1 FROM meeting_votes WHERE id = $1 AND closed_ms IS NULL)",
    )
    .bind(vote)
    .bind(voter)
    .bind(name)
    .bind((!secret).then_some(option))
    .bind(now_ms)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(r) if r.rows_affected() == 0 => bail!(FailedPrecondition, "this vote is closed"),
        Ok(_) => {}
        Err(e) => {
            let e = crate::error::Error::from(e);
            if e.kind() == crate::error::ErrorKind::AlreadyExists {
                bail!(AlreadyExists, "you have already voted");
            }
            return Err(e);
        }
    }
    sqlx::query(
        "INSERT INTO meeting_tally (vote_id, option_index, votes) VALUES ($1, $2, 1) \
         ON CONFLICT (vote_id, option_index) DO UPDATE SET votes = meeting_tally.votes + 1",
    )
    .bind(vote)
    .bind(option)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Closes an open vote of `meeting`; `false` if it was closed already.
pub async fn close_vote(db: &AnyPool, meeting: i64, vote: i64, now_ms: i64) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE meeting_votes SET closed_ms = $1 WHERE id = $2 AND meeting_id = $3 AND closed_ms IS NULL",
    )
    .bind(now_ms)
    .bind(vote)
    .bind(meeting)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn vote(db: &AnyPool, meeting: i64, id: i64) -> Result<Vote> {
    let r = sqlx::query(
        "SELECT id, question, options, secret, opened_ms, closed_ms FROM meeting_votes \
         WHERE id = $1 AND meeting_id = $2",
    )
    .bind(id)
    .bind(meeting)
    .fetch_optional(db)
    .await?;
    let Some(r) = r else {
        bail!(NotFound, "no vote {id} in meeting {meeting}");
    };
    let options: Vec<String> =
        serde_json::from_str(&r.try_get::<String, _>(2)?).unwrap_or_default();
    let mut tally = vec![0; options.len()];
    for t in sqlx::query("SELECT option_index, votes FROM meeting_tally WHERE vote_id = $1")
        .bind(id)
        .fetch_all(db)
        .await?
    {
        let i: i64 = t.try_get(0)?;
        if let Some(x) = tally.get_mut(i as usize) {
            *x = t.try_get(1)?;
        }
    }
    let ballots = sqlx::query(
        "SELECT name, option_index FROM meeting_ballots WHERE vote_id = $1 ORDER BY cast_ms, name",
    )
    .bind(id)
    .fetch_all(db)
    .await?
    .iter()
    .map(|b| Ok((b.try_get(0)?, b.try_get(1)?)))
    .collect::<Result<Vec<_>>>()?;
    Ok(Vote {
        id,
        question: r.try_get(1)?,
        options,
        secret: to_bool(r.try_get(3)?),
        opened_ms: r.try_get(4)?,
        closed_ms: r.try_get(5)?,
        tally,
        ballots,
    })
}

pub async fn votes(db: &AnyPool, meeting: i64) -> Result<Vec<Vote>> {
    let ids: Vec<i64> =
        sqlx::query("SELECT id FROM meeting_votes WHERE meeting_id = $1 ORDER BY id")
            .bind(meeting)
            .fetch_all(db)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
    let mut out = Vec::new();
    for id in ids {
        out.push(vote(db, meeting, id).await?);
    }
    Ok(out)
}

/// Meetings whose e-mail reminder is due: starting within `ahead_ms` (or started less than
/// 5 minutes ago), not ended, not reminded yet.
pub async fn due_reminders(db: &AnyPool, now_ms: i64, ahead_ms: i64) -> Result<Vec<Meeting>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM meetings m JOIN users u ON u.id = m.chair_id \
         WHERE m.ended_ms IS NULL AND m.reminded_ms IS NULL \
         AND m.start_ms <= $1 AND m.start_ms > $2 ORDER BY m.start_ms"
    ))
    .bind(now_ms + ahead_ms)
    .bind(now_ms - 5 * 60_000)
    .fetch_all(db)
    .await?;
    rows.iter().map(meeting_from).collect()
}

/// The addresses (ASCII lower case) that meeting `id`'s reminder has already reached.
pub async fn reminded_addresses(db: &AnyPool, id: i64) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT address FROM meeting_reminders WHERE meeting_id = $1")
            .bind(id)
            .fetch_all(db)
            .await?,
    )
}

/// Records that meeting `id`'s reminder reached `addresses` (stored in ASCII lower case,
/// as addresses are compared; one already recorded is left as it is).
pub async fn add_reminded(db: &AnyPool, id: i64, addresses: &[String], now_ms: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    for a in addresses {
        sqlx::query(
            "INSERT INTO meeting_reminders (meeting_id, address, sent_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (meeting_id, address) DO NOTHING",
        )
        .bind(id)
        .bind(a.to_ascii_lowercase())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn set_reminded(db: &AnyPool, id: i64, now_ms: i64) -> Result<()> {
    sqlx::query("UPDATE meetings SET reminded_ms = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
