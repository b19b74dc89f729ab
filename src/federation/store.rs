//! The `nodes` table: the children registered at this node, their join secrets (hashed) and
//! the state of their links as last recorded.

use crate::bail;
use crate::error::{Error, ErrorKind, Result};
use sqlx::{AnyPool, Row};

/// A registered child.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRow {
    pub id: i64,
    pub name: String,
    pub level: String,
    pub created_ms: i64,
    pub link_up: bool,
    pub link_since_ms: Option<i64>,
    pub link_address: Option<String>,
}

const COLS: &str = "id, name, level, created_ms, link_up, link_since_ms, link_address";

fn row(r: &sqlx::any::AnyRow) -> Result<NodeRow> {
    Ok(NodeRow {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        level: r.try_get(2)?,
        created_ms: r.try_get(3)?,
        link_up: r.try_get::<i64, _>(4)? != 0,
        link_since_ms: r.try_get(5)?,
        link_address: r.try_get(6)?,
    })
}

/// A node's name is one segment of a path such as `huyen-a/xa-b`: 1 to 63 lower-case ASCII
/// letters, digits and '-', not starting or ending with '-'.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            InvalidArgument,
            "name: 1-63 lower-case letters (a-z), digits and '-', e.g. \"xa-tan-lap\" (got {name:?})"
        );
    }
    Ok(())
}

pub fn validate_level(level: &str) -> Result<()> {
    if level.trim().is_empty() || level.chars().count() > 40 || level.chars().any(char::is_control)
    {
        bail!(
            InvalidArgument,
            "level: 1-40 characters of free text, e.g. \"commune\" or \"district\""
        );
    }
    Ok(())
}

pub async fn create(
    db: &AnyPool,
    name: &str,
    level: &str,
    token_hash: &str,
    now_ms: i64,
) -> Result<NodeRow> {
    validate_name(name)?;
    validate_level(level)?;
    let r = sqlx::query(
        "INSERT INTO nodes (name, level, token_hash, created_ms) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(level.trim())
    .bind(token_hash)
    .bind(now_ms)
    .fetch_one(db)
    .await
    .map_err(|e| match Error::from(e) {
        e if e.kind() == ErrorKind::AlreadyExists => {
            Error::new(ErrorKind::AlreadyExists, format!("a node named {name:?} already exists"))
        }
        e => e,
    })?;
    by_id(db, r.try_get(0)?).await
}

pub async fn list(db: &AnyPool) -> Result<Vec<NodeRow>> {
    let rows = sqlx::query(&format!("SELECT {COLS} FROM nodes ORDER BY name"))
        .fetch_all(db)
        .await?;
    rows.iter().map(row).collect()
}

pub async fn by_id(db: &AnyPool, id: i64) -> Result<NodeRow> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM nodes WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    match r {
        Some(r) => row(&r),
        None => bail!(NotFound, "no node with id {id}"),
    }
}

pub async fn by_name(db: &AnyPool, name: &str) -> Result<NodeRow> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM nodes WHERE name = $1"))
        .bind(name)
        .fetch_optional(db)
        .await?;
    match r {
        Some(r) => row(&r),
        None => bail!(NotFound, "no node named {name:?}"),
    }
}

/// The child whose secret hashes to `token_hash`, if it is still registered.
pub async fn by_token_hash(db: &AnyPool, token_hash: &str) -> Result<Option<NodeRow>> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM nodes WHERE token_hash = $1"))
        .bind(token_hash)
        .fetch_optional(db)
        .await?;
    r.as_ref().map(row).transpose()
}

/// Removes a child: its row, its cameras (by the foreign key) and the grants of it and of
/// the nodes below it (a node added again later under the same name is another node).
pub async fn delete(db: &AnyPool, id: i64) -> Result<NodeRow> {
    let n = by_id(db, id).await?;
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM node_grants WHERE path = $1 OR path LIKE $2")
        .bind(&n.name)
        .bind(format!("{}/%", n.name))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM nodes WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// A node path as grants name it: node names joined by `/` (`huyen-a/xa-b`).
pub fn validate_path(path: &str) -> Result<()> {
    if path.split('/').all(|s| validate_name(s).is_ok()) {
        Ok(())
    } else {
        bail!(
            InvalidArgument,
            "{path:?} is not a node path (node names joined by '/', e.g. huyen-a/xa-b)"
        )
    }
}

/// The nodes granted whole to a user, sorted.
pub async fn granted_paths(db: &AnyPool, user_id: i64) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT path FROM node_grants WHERE user_id = $1 ORDER BY path")
            .bind(user_id)
            .fetch_all(db)
            .await?,
    )
}

/// Replaces the nodes granted whole to a user (the caller checked that they exist).
pub async fn set_granted_paths(
    db: &AnyPool,
    user_id: i64,
    paths: &[String],
) -> Result<Vec<String>> {
    let mut paths = paths.to_vec();
    for p in &paths {
        validate_path(p)?;
    }
    paths.sort();
    paths.dedup();
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM node_grants WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for p in &paths {
        sqlx::query("INSERT INTO node_grants (user_id, path) VALUES ($1, $2)")
            .bind(user_id)
            .bind(p)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(paths)
}

/// The ids of every registered child (the server checks its links against them, so that a
/// child removed by `xaso node remove`, from another process, loses its link).
pub async fn ids(db: &AnyPool) -> Result<Vec<i64>> {
    let rows = sqlx::query("SELECT id FROM nodes").fetch_all(db).await?;
    rows.iter()
        .map(|r| r.try_get::<i64, _>(0).map_err(Into::into))
        .collect()
}

/// Records that a child's link went up (from `address`) or down.
pub async fn set_link(
    db: &AnyPool,
    id: i64,
    up: bool,
    address: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE nodes SET link_up = $1, link_since_ms = $2, link_address = COALESCE($3, link_address) WHERE id = $4",
    )
    .bind(i64::from(up))
    .bind(now_ms)
    .bind(address)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// At start: no link is up yet (the last run may have ended without recording it).
pub async fn mark_all_down(db: &AnyPool, now_ms: i64) -> Result<u64> {
    let r = sqlx::query("UPDATE nodes SET link_up = 0, link_since_ms = $1 WHERE link_up <> 0")
        .bind(now_ms)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_path_segments() {
        for ok in ["xa-b", "huyen-a", "a", "x1", &"a".repeat(63)] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "Xa-b",
            "xa b",
            "xa/b",
            "-a",
            "a-",
            "xã",
            &"a".repeat(64),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        validate_level("xã (commune)").unwrap();
        assert!(validate_level(" ").is_err());
        assert!(validate_level("a\nb").is_err());
    }

    #[tokio::test]
    async fn a_node_is_found_by_its_secret_until_it_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open_in(dir.path()).await;
        let n = create(&db, "xa-b", "commune", "h1", 5).await.unwrap();
        assert_eq!(
            (n.name.as_str(), n.level.as_str(), n.link_up),
            ("xa-b", "commune", false)
        );
        let e = create(&db, "xa-b", "commune", "h2", 6).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(by_token_hash(&db, "h1").await.unwrap().unwrap().id, n.id);
        assert!(by_token_hash(&db, "h2").await.unwrap().is_none());
        set_link(&db, n.id, true, Some("192.0.2.4"), 7)
            .await
            .unwrap();
        let up = by_name(&db, "xa-b").await.unwrap();
        assert_eq!(
            (up.link_up, up.link_since_ms, up.link_address.as_deref()),
            (true, Some(7), Some("192.0.2.4"))
        );
        assert_eq!(mark_all_down(&db, 8).await.unwrap(), 1);
        let down = by_id(&db, n.id).await.unwrap();
        assert_eq!(
            (down.link_up, down.link_address.as_deref()),
            (false, Some("192.0.2.4"))
        );
        assert_eq!(ids(&db).await.unwrap(), vec![n.id]);
        delete(&db, n.id).await.unwrap();
        assert!(by_token_hash(&db, "h1").await.unwrap().is_none());
        assert_eq!(
            by_id(&db, n.id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}
