//! The catalogue's queries: users, sessions, API tokens, cameras and grants. Plain functions
//! over an `AnyPool`, portable SQL only (see `db`). Validation of names and URLs that the
//! database cannot express lives here too, so the CLI and the API share it.

use crate::auth::Role;
use crate::db::to_bool;
use crate::error::{Error, ErrorKind, Result};
use crate::{bail, err};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// Maps a unique-constraint violation to `AlreadyExists` with a message naming the thing.
fn exists_as(what: String) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| match Error::from(e) {
        e if e.kind() == ErrorKind::AlreadyExists => Error::new(ErrorKind::AlreadyExists, what),
        e => e,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_ms: i64,
    /// Where meeting reminders for the user go.
    pub email: Option<String>,
}

const USER_COLS: &str = "u.id, u.username, u.role, u.disabled, u.created_ms, u.email";

fn user_from(r: &AnyRow) -> Result<User> {
    let role: String = r.try_get(2)?;
    Ok(User {
        id: r.try_get(0)?,
        username: r.try_get(1)?,
        role: Role::parse(&role)
            .ok_or_else(|| err!(Internal, "unknown role {role:?} in database"))?,
        disabled: to_bool(r.try_get(3)?),
        created_ms: r.try_get(4)?,
        email: r.try_get(5)?,
    })
}

/// User names: 2 to 64 characters of ASCII letters, digits, `.`, `_`, `-`.
pub fn validate_username(name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !(2..=64).contains(&name.len()) || !ok_chars {
        bail!(
            InvalidArgument,
            "username must be 2 to 64 characters: letters a-z, digits, '.', '_' or '-'"
        );
    }
    Ok(())
}

pub fn validate_password(pw: &str, min_len: usize) -> Result<()> {
    if pw.chars().count() < min_len {
        bail!(
            InvalidArgument,
            "password must be at least {min_len} characters"
        );
    }
    if pw.len() > 1024 {
        bail!(InvalidArgument, "password must be at most 1024 bytes");
    }
    Ok(())
}

pub async fn count_users(db: &AnyPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db)
        .await?)
}

pub async fn create_user(
    db: &AnyPool,
    username: &str,
    role: Role,
    password_hash: &str,
    now_ms: i64,
) -> Result<User> {
    validate_username(username)?;
    let r = sqlx::query(
        "INSERT INTO users (username, role, password_hash, disabled, created_ms, password_changed_ms) \
         VALUES ($1, $2, $3, 0, $4, $4) RETURNING id",
    )
    .bind(username)
    .bind(role.as_str())
    .bind(password_hash)
    .bind(now_ms)
    .fetch_one(db)
    .await
    .map_err(exists_as(format!("user {username:?} already exists")))?;
    Ok(User {
        id: r.try_get(0)?,
        username: username.to_owned(),
        role,
        disabled: false,
        created_ms: now_ms,
        email: None,
    })
}

/// The user and their password hash.
pub async fn user_by_name(db: &AnyPool, username: &str) -> Result<Option<(User, String)>> {
    let r = sqlx::query(&format!(
        "SELECT {USER_COLS}, u.password_hash FROM users u WHERE u.username = $1"
    ))
    .bind(username)
    .fetch_optional(db)
    .await?;
    r.map(|r| Ok((user_from(&r)?, r.try_get(6)?))).transpose()
}

pub async fn user_by_id(db: &AnyPool, id: i64) -> Result<User> {
    let r = sqlx::query(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    match r {
        Some(r) => user_from(&r),
        None => bail!(NotFound, "no user with id {id}"),
    }
}

pub async fn list_users(db: &AnyPool) -> Result<Vec<User>> {
    let rows = sqlx::query(&format!(
        "SELECT {USER_COLS} FROM users u ORDER BY u.username"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(user_from).collect()
}

/// Refuses a change that would leave no enabled admin.
async fn ensure_other_admin(db: &AnyPool, id: i64) -> Result<()> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id <> $1",
    )
    .bind(id)
    .fetch_one(db)
    .await?;
    if n == 0 {
        bail!(
            FailedPrecondition,
            "this is the last enabled admin; make another admin first"
        );
    }
    Ok(())
}

pub async fn update_user(
    db: &AnyPool,
    id: i64,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Result<User> {
    let cur = user_by_id(db, id).await?;
    let new_role = role.unwrap_or(cur.role);
    let new_disabled = disabled.unwrap_or(cur.disabled);
    if cur.role == Role::Admin && !cur.disabled && (new_role != Role::Admin || new_disabled) {
        ensure_other_admin(db, id).await?;
    }
    sqlx::query("UPDATE users SET role = $1, disabled = $2 WHERE id = $3")
        .bind(new_role.as_str())
        .bind(i64::from(new_disabled))
        .bind(id)
        .execute(db)
        .await?;
    if new_disabled {
        delete_sessions_of(db, id, None).await?;
    }
    user_by_id(db, id).await
}

/// Sets a new password hash and ends every session of the user except `keep_session`.
pub async fn set_password(
    db: &AnyPool,
    id: i64,
    hash: &str,
    now_ms: i64,
    keep_session: Option<&str>,
) -> Result<()> {
    let n =
        sqlx::query("UPDATE users SET password_hash = $1, password_changed_ms = $2 WHERE id = $3")
            .bind(hash)
            .bind(now_ms)
            .bind(id)
            .execute(db)
            .await?
            .rows_affected();
    if n == 0 {
        bail!(NotFound, "no user with id {id}");
    }
    delete_sessions_of(db, id, keep_session).await
}

pub async fn delete_user(db: &AnyPool, id: i64) -> Result<User> {
    let cur = user_by_id(db, id).await?;
    if cur.role == Role::Admin && !cur.disabled {
        ensure_other_admin(db, id).await?;
    }
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(cur)
}

// ---- sessions ----

pub async fn create_session(
    db: &AnyPool,
    token_hash: &str,
    user_id: i64,
    now_ms: i64,
    expires_ms: i64,
    address: Option<&str>,
) -> Result<()> {
    sqlx::query("INSERT INTO sessions (token_hash, user_id, created_ms, expires_ms, address) VALUES ($1, $2, $3, $4, $5)")
        .bind(token_hash)
        .bind(user_id)
        .bind(now_ms)
        .bind(expires_ms)
        .bind(address)
        .execute(db)
        .await?;
    Ok(())
}

/// The enabled user owning an unexpired session.
pub async fn session_user(db: &AnyPool, token_hash: &str, now_ms: i64) -> Result<Option<User>> {
    let r = sqlx::query(&format!(
        "SELECT {USER_COLS} FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires_ms > $2 AND u.disabled = 0"
    ))
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(db)
    .await?;
    r.as_ref().map(user_from).transpose()
}

pub async fn delete_session(db: &AnyPool, token_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete_sessions_of(db: &AnyPool, user_id: i64, keep: Option<&str>) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR token_hash <> $2)")
        .bind(user_id)
        .bind(keep)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete_expired_sessions(db: &AnyPool, now_ms: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1")
        .bind(now_ms)
        .execute(db)
        .await?
        .rows_affected())
}

// ---- API tokens ----

#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

pub async fn create_token(
    db: &AnyPool,
    user_id: i64,
    name: &str,
    token_hash: &str,
    now_ms: i64,
) -> Result<TokenInfo> {
    if name.trim().is_empty() || name.len() > 100 {
        bail!(InvalidArgument, "token name must be 1 to 100 characters");
    }
    let user = user_by_id(db, user_id).await?;
    let r = sqlx::query("INSERT INTO api_tokens (user_id, name, token_hash, created_ms) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(now_ms)
        .fetch_one(db)
        .await?;
    Ok(TokenInfo {
        id: r.try_get(0)?,
        user_id,
        username: user.username,
        name: name.to_owned(),
        created_ms: now_ms,
        last_used_ms: None,
    })
}

/// The enabled user owning a token; marks the token used.
pub async fn token_user(db: &AnyPool, token_hash: &str, now_ms: i64) -> Result<Option<User>> {
    let r = sqlx::query(&format!(
        "SELECT {USER_COLS}, t.id FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND u.disabled = 0"
    ))
    .bind(token_hash)
    .fetch_optional(db)
    .await?;
    let Some(r) = r else { return Ok(None) };
    let token_id: i64 = r.try_get(6)?;
    sqlx::query("UPDATE api_tokens SET last_used_ms = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(token_id)
        .execute(db)
        .await?;
    Ok(Some(user_from(&r)?))
}

pub async fn list_tokens(db: &AnyPool) -> Result<Vec<TokenInfo>> {
    let rows = sqlx::query(
        "SELECT t.id, t.user_id, u.username, t.name, t.created_ms, t.last_used_ms \
         FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id",
    )
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenInfo {
                id: r.try_get(0)?,
                user_id: r.try_get(1)?,
                username: r.try_get(2)?,
                name: r.try_get(3)?,
                created_ms: r.try_get(4)?,
                last_used_ms: r.try_get(5)?,
            })
        })
        .collect()
}

pub async fn delete_token(db: &AnyPool, id: i64) -> Result<()> {
    let n = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?
        .rows_affected();
    if n == 0 {
        bail!(NotFound, "no API token with id {id}");
    }
    Ok(())
}

// ---- cameras and grants ----

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Camera {
    pub id: i64,
    pub name: String,
    /// As configured, credentials included: never send it out; see [`redact_rtsp_url`].
    pub url: String,
    pub record: bool,
    pub created_ms: i64,
    /// A lower-resolution stream for live tiles, credentials included like `url`.
    pub substream_url: Option<String>,
    /// `tcp` or `udp`.
    pub transport: String,
    /// None: the global default.
    pub retention_days: Option<i64>,
    pub quota_bytes: Option<i64>,
    /// `api`, `config`, `builtin`, or `remote` (at a node below this one).
    pub origin: String,
    /// Where a remote camera is (None for this node's own).
    pub remote: Option<RemoteRef>,
}

/// A camera at a node below this one, reached through the child `node_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    pub node_id: i64,
    /// Its id at that child.
    pub remote_id: i64,
    /// The node it is at, relative to this one: `huyen-a` or `huyen-a/xa-b`.
    pub path: String,
    /// Its state there, as last reported (`recording`, `streaming`, `failed`, ...).
    pub state: Option<String>,
}

impl Camera {
    /// A camera at another node: recorded and watched there, listed here.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }
}

/// The `name` column of a remote camera: the node's path and the camera's own name joined
/// by a control character, which local names cannot hold, so names never collide.
pub fn remote_name_key(path: &str, name: &str) -> String {
    format!("{REMOTE_SEP}{path}{REMOTE_SEP}{name}")
}
const REMOTE_SEP: char = '\u{1}';

fn camera_from(r: &AnyRow) -> Result<Camera> {
    let name: String = r.try_get(1)?;
    let node_id: Option<i64> = r.try_get(10)?;
    let remote = match node_id {
        Some(node_id) => Some(RemoteRef {
            node_id,
            remote_id: r.try_get::<Option<i64>, _>(11)?.unwrap_or_default(),
            path: r.try_get::<Option<String>, _>(12)?.unwrap_or_default(),
            state: r.try_get(13)?,
        }),
        None => None,
    };
    let name = match &remote {
        Some(rr) => name
            .strip_prefix(&remote_name_key(&rr.path, ""))
            .map(str::to_owned)
            .unwrap_or(name),
        None => name,
    };
    Ok(Camera {
        id: r.try_get(0)?,
        name,
        url: r.try_get(2)?,
        record: to_bool(r.try_get(3)?),
        created_ms: r.try_get(4)?,
        substream_url: r.try_get(5)?,
        transport: r.try_get(6)?,
        retention_days: r.try_get(7)?,
        quota_bytes: r.try_get(8)?,
        origin: r.try_get(9)?,
        remote,
    })
}

/// Everything about a camera that can be set (by the API or the config file).
#[derive(Clone, Debug, PartialEq)]
pub struct CameraSettings {
    pub name: String,
    pub url: String,
    pub record: bool,
    pub substream_url: Option<String>,
    pub transport: String,
    pub retention_days: Option<i64>,
    pub quota_bytes: Option<i64>,
}

impl CameraSettings {
    pub fn validate(&self) -> Result<()> {
        validate_camera_name(&self.name)?;
        validate_rtsp_url(&self.url)?;
        if let Some(u) = &self.substream_url {
            validate_rtsp_url(u)?;
        }
        if !matches!(self.transport.as_str(), "tcp" | "udp") {
            bail!(InvalidArgument, "transport must be \"tcp\" or \"udp\"");
        }
        if self
            .retention_days
            .is_some_and(|d| !(1..=3650).contains(&d))
        {
            bail!(InvalidArgument, "retention_days must be between 1 and 3650");
        }
        if self.quota_bytes.is_some_and(|q| q < 1 << 20) {
            bail!(InvalidArgument, "quota must be at least 1 MB");
        }
        Ok(())
    }

    pub fn from_config(c: &crate::config::CameraConfig) -> Self {
        CameraSettings {
            name: c.name.trim().to_owned(),
            url: c.url.clone(),
            record: c.record,
            substream_url: c.substream_url.clone(),
            transport: c.transport.clone(),
            retention_days: c.retention_days.map(i64::from),
            quota_bytes: c.quota_gb.map(|g| (g * 1e9).round() as i64),
        }
    }

    pub fn of(c: &Camera) -> Self {
        CameraSettings {
            name: c.name.clone(),
            url: c.url.clone(),
            record: c.record,
            substream_url: c.substream_url.clone(),
            transport: c.transport.clone(),
            retention_days: c.retention_days,
            quota_bytes: c.quota_bytes,
        }
    }
}

/// Camera names: 1 to 100 characters, any script (Vietnamese names are expected).
pub fn validate_camera_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        bail!(
            InvalidArgument,
            "camera name must be 1 to 100 printable characters"
        );
    }
    Ok(())
}

pub fn validate_rtsp_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("rtsp://")
        .or_else(|| url.strip_prefix("rtsps://"))
        .ok_or_else(|| {
            err!(
                InvalidArgument,
                "camera url must start with rtsp:// or rtsps://"
            )
        })?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty()
        || url.len() > 2048
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!(
            InvalidArgument,
            "camera url must name a host, with no spaces"
        );
    }
    Ok(())
}

/// The URL with any `user:password@` removed, safe to show and log.
pub fn redact_rtsp_url(url: &str) -> String {
    let Some(s) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[s + 3..];
    let auth_end = rest.find('/').unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..s + 3], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

const CAMERA_COLS: &str = "c.id, c.name, c.url, c.record, c.created_ms, c.substream_url, c.transport, c.retention_days, c.quota_bytes, c.origin, c.node_id, c.remote_id, c.node_path, c.remote_state";
/// This node's own cameras first, then each node's, by name.
const CAMERA_ORDER: &str = "ORDER BY c.node_path IS NOT NULL, c.node_path, c.name";

pub async fn create_camera(
    db: &AnyPool,
    c: &CameraSettings,
    origin: &str,
    now_ms: i64,
) -> Result<Camera> {
    c.validate()?;
    let r = sqlx::query(
        "INSERT INTO cameras (name, url, record, created_ms, substream_url, transport, retention_days, quota_bytes, origin) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(&c.name)
    .bind(&c.url)
    .bind(i64::from(c.record))
    .bind(now_ms)
    .bind(c.substream_url.clone())
    .bind(&c.transport)
    .bind(c.retention_days)
    .bind(c.quota_bytes)
    .bind(origin)
    .fetch_one(db)
    .await
    .map_err(exists_as(format!("a camera named {:?} already exists", c.name)))?;
    camera(db, r.try_get(0)?).await
}

pub async fn camera(db: &AnyPool, id: i64) -> Result<Camera> {
    let r = sqlx::query(&format!(
        "SELECT {CAMERA_COLS} FROM cameras c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    match r {
        Some(r) => camera_from(&r),
        None => bail!(NotFound, "no camera with id {id}"),
    }
}

/// A camera of this node's own: one at another node is refused with a clear error (its
/// footage and live view are at that node).
pub async fn local_camera(db: &AnyPool, id: i64) -> Result<Camera> {
    let c = camera(db, id).await?;
    if let Some(r) = &c.remote {
        bail!(
            FailedPrecondition,
            "camera {:?} is at node {}: its live view and recordings are not yet reachable through this node (open them at {})",
            c.name,
            r.path,
            r.path
        );
    }
    Ok(c)
}

/// This node's own cameras (what it records and serves), without those of nodes below.
pub async fn local_cameras(db: &AnyPool) -> Result<Vec<Camera>> {
    let rows = sqlx::query(&format!(
        "SELECT {CAMERA_COLS} FROM cameras c WHERE c.node_id IS NULL ORDER BY c.name"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(camera_from).collect()
}

/// All cameras (this node's and those of the nodes below it), or with `granted_to`, those
/// granted to that user.
pub async fn list_cameras(db: &AnyPool, granted_to: Option<i64>) -> Result<Vec<Camera>> {
    let rows = match granted_to {
        None => {
            sqlx::query(&format!(
                "SELECT {CAMERA_COLS} FROM cameras c {CAMERA_ORDER}"
            ))
            .fetch_all(db)
            .await?
        }
        Some(uid) => {
            sqlx::query(&format!(
                "SELECT {CAMERA_COLS} FROM cameras c WHERE {GRANTED} {CAMERA_ORDER}"
            ))
            .bind(uid)
            .fetch_all(db)
            .await?
        }
    };
    rows.iter().map(camera_from).collect()
}

pub async fn update_camera(db: &AnyPool, id: i64, c: &CameraSettings) -> Result<Camera> {
    c.validate()?;
    let n = sqlx::query(
        "UPDATE cameras SET name = $1, url = $2, record = $3, substream_url = $4, transport = $5, \
         retention_days = $6, quota_bytes = $7 WHERE id = $8",
    )
    .bind(&c.name)
    .bind(&c.url)
    .bind(i64::from(c.record))
    .bind(c.substream_url.clone())
    .bind(&c.transport)
    .bind(c.retention_days)
    .bind(c.quota_bytes)
    .bind(id)
    .execute(db)
    .await
    .map_err(exists_as(format!(
        "a camera named {:?} already exists",
        c.name
    )))?
    .rows_affected();
    if n == 0 {
        bail!(NotFound, "no camera with id {id}");
    }
    camera(db, id).await
}

pub async fn delete_camera(db: &AnyPool, id: i64) -> Result<Camera> {
    let cur = camera(db, id).await?;
    sqlx::query("DELETE FROM cameras WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(cur)
}

pub async fn granted_camera_ids(db: &AnyPool, user_id: i64) -> Result<Vec<i64>> {
    Ok(
        sqlx::query_scalar("SELECT camera_id FROM grants WHERE user_id = $1 ORDER BY camera_id")
            .bind(user_id)
            .fetch_all(db)
            .await?,
    )
}

/// Sets (or with `None` clears) the account's e-mail address.
pub async fn set_user_email(db: &AnyPool, user_id: i64, email: Option<&str>) -> Result<()> {
    let r = sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
        .bind(email)
        .bind(user_id)
        .execute(db)
        .await?;
    if r.rows_affected() == 0 {
        bail!(NotFound, "no user with id {user_id}");
    }
    Ok(())
}

/// Whether camera `c` is granted to user `$1`: by itself, or by a grant of the node it is
/// at or of a node above it (node names hold no `%` or `_`, so LIKE matches exactly).
const GRANTED: &str = "(EXISTS (SELECT 1 FROM grants g WHERE g.user_id = $1 AND g.camera_id = c.id) \
     OR EXISTS (SELECT 1 FROM node_grants n WHERE n.user_id = $1 \
        AND (c.node_path = n.path OR c.node_path LIKE n.path || '/%')))";

pub async fn has_grant(db: &AnyPool, user_id: i64, camera_id: i64) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM cameras c WHERE c.id = $2 AND {GRANTED}"
    ))
    .bind(user_id)
    .bind(camera_id)
    .fetch_one(db)
    .await?;
    Ok(n > 0)
}

/// Replaces the user's grants with `camera_ids` (all of which must exist).
pub async fn set_grants(db: &AnyPool, user_id: i64, camera_ids: &[i64]) -> Result<Vec<i64>> {
    user_by_id(db, user_id).await?;
    let mut ids = camera_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM grants WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for &cid in &ids {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cameras WHERE id = $1")
            .bind(cid)
            .fetch_one(&mut *tx)
            .await?;
        if n == 0 {
            bail!(InvalidArgument, "no camera with id {cid}");
        }
        sqlx::query("INSERT INTO grants (user_id, camera_id) VALUES ($1, $2)")
            .bind(user_id)
            .bind(cid)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_urls() {
        assert_eq!(
            redact_rtsp_url("rtsp://u:p@cam.local:554/s1"),
            "rtsp://cam.local:554/s1"
        );
        assert_eq!(redact_rtsp_url("rtsp://u:p@w@h/x@y"), "rtsp://h/x@y");
        assert_eq!(redact_rtsp_url("rtsp://h/x"), "rtsp://h/x");
        assert!(validate_rtsp_url("rtsp://u:p@127.0.0.1:8554/cam").is_ok());
        assert!(validate_rtsp_url("http://h/x").is_err());
        assert!(validate_rtsp_url("rtsp://u:p@/x").is_err());
        assert!(validate_rtsp_url("rtsp://h/a b").is_err());
    }

    #[test]
    fn names() {
        assert!(validate_username("an.nguyen").is_ok());
        assert!(validate_username("a").is_err());
        assert!(validate_username("ấn").is_err());
        assert!(validate_camera_name("Cổng UBND xã").is_ok());
        assert!(validate_camera_name("  ").is_err());
    }
}
