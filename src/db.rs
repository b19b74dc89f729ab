//! The database edge: opening the pool (SQLite by default, PostgreSQL by URL), running the
//! embedded, numbered migrations of the matching backend, and turning "that file is not a
//! database" into an error a person understands.
//!
//! Queries elsewhere use only SQL that both backends run (`$1` placeholders, `RETURNING`,
//! integers for times and booleans) through sqlx's `Any` driver.

use crate::error::{Error, ErrorKind, Result};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection, Executor};
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(Error::new(
                ErrorKind::InvalidArgument,
                "unsupported database URL",
            ))
        }
    }
}

/// Opens the database at `url`, creating an SQLite file if needed, and brings its schema up
/// to date.
/// A fresh SQLite database in `dir`, for unit tests.
#[cfg(test)]
pub async fn open_in(dir: &std::path::Path) -> AnyPool {
    open(&format!("sqlite://{}?mode=rwc", dir.join("x.db").display()))
        .await
        .unwrap()
}

pub async fn open(url: &str) -> Result<AnyPool> {
    install_default_drivers();
    let backend = Backend::of_url(url)?;
    let shown = redact_url(url);
    if backend == Backend::Sqlite {
        // One connection first: WAL mode (so the CLI can work while the server runs) is
        // also the first real read of the file, so a file that is not a database fails here,
        // clearly, instead of as a pool time-out.
        let mut conn = sqlx::AnyConnection::connect(url).await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot open database {shown}"),
            )
            .with_source(e)
        })?;
        conn.execute("PRAGMA journal_mode = WAL")
            .await
            .map_err(|e| {
                let msg = if e.to_string().contains("not a database") {
                    format!(
                        "{shown} is not an SQLite database (is database_url or data_dir wrong?)"
                    )
                } else {
                    format!("cannot use database {shown}")
                };
                Error::new(ErrorKind::FailedPrecondition, msg).with_source(e)
            })?;
        conn.close().await?;
    }
    let pool = AnyPoolOptions::new()
        .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot open database {shown}"),
            )
            .with_source(e)
        })?;
    let migrator = match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    };
    migrator.run(&pool).await.map_err(|e| {
        Error::new(
            ErrorKind::FailedPrecondition,
            format!("cannot migrate database {shown}"),
        )
        .with_source(e)
    })?;
    Ok(pool)
}

/// The URL without a password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// SQL booleans are stored as 0/1 integers on both backends.
pub fn to_bool(v: i64) -> bool {
    v != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn migrations_of_both_backends_stay_in_step() {
        let names = |m: &Migrator| -> Vec<(i64, String)> {
            m.iter()
                .map(|x| (x.version, x.description.to_string()))
                .collect()
        };
        assert_eq!(names(&SQLITE_MIGRATIONS), names(&POSTGRES_MIGRATIONS));
    }

    #[tokio::test]
    async fn a_file_that_is_not_sqlite_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xaso.db");
        std::fs::write(&path, vec![b'x'; 8192]).unwrap();
        let e = open(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap_err();
        assert!(e.message().contains("not an SQLite database"), "{e}");
    }

    #[tokio::test]
    async fn opens_twice_without_migrating_again() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
        open(&url).await.unwrap().close().await;
        let pool = open(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
