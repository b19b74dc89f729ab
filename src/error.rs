//! The one error type of the binary: a kind (what went wrong, in terms a client can act on),
//! a message, and an optional source. Kinds become HTTP statuses in exactly one place,
//! [`ErrorKind::status`]; 5xx details go to the log, never to the client.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use std::fmt;

/// What went wrong, as a client or operator should read it (gRPC-style kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Too many attempts; `retry_after_secs` says when to try again.
    ResourceExhausted,
    FailedPrecondition,
    /// This build cannot do it (e.g. built without a cargo feature).
    Unimplemented,
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// The one mapping from kinds to HTTP statuses.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::AlreadyExists => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::FailedPrecondition => StatusCode::CONFLICT,
            ErrorKind::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `code` string clients see.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::Unimplemented => "unimplemented",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error with a kind, a message for people, and maybe a cause.
pub struct Error {
    kind: ErrorKind,
    msg: String,
    retry_after_secs: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error {
            kind,
            msg: msg.into(),
            retry_after_secs: None,
            source: None,
        }
    }

    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.msg
    }
}

/// `err!(Kind, "format {}", args)` builds an [`Error`].
#[macro_export]
macro_rules! err {
    ($kind:ident, $($arg:tt)+) => {
        $crate::error::Error::new($crate::error::ErrorKind::$kind, format!($($arg)+))
    };
}

/// `bail!(Kind, "format {}", args)` returns an [`Error`].
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)+) => {
        return Err($crate::err!($kind, $($arg)+))
    };
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.msg)?;
        let mut src = self.source.as_deref().map(|e| e as &dyn std::error::Error);
        while let Some(e) = src {
            write!(f, ": {e}")?;
            src = e.source();
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Error::new(ErrorKind::AlreadyExists, "already exists").with_source(e);
            }
            if db.is_foreign_key_violation() {
                return Error::new(
                    ErrorKind::InvalidArgument,
                    "refers to something that does not exist",
                )
                .with_source(e);
            }
        }
        if matches!(
            e,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
        ) {
            return Error::new(ErrorKind::Unavailable, "database unavailable").with_source(e);
        }
        Error::new(ErrorKind::Internal, "database error").with_source(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorKind::Internal, "I/O error").with_source(e)
    }
}

impl Error {
    /// What the client is told: the message, except for internal faults (logged here, and
    /// told only in general terms). An unavailable service says which and why (the camera
    /// is not streaming, the link toward its node is down, the database): those messages
    /// are written for the user, and their causes (`source`) stay in the log.
    pub fn public_message(&self) -> String {
        match self.kind {
            ErrorKind::Internal => {
                tracing::error!(error = %self, "request failed");
                "internal error; the details are in the server log".to_owned()
            }
            ErrorKind::Unavailable => {
                tracing::warn!(error = %self, "request failed");
                self.msg.clone()
            }
            _ => self.msg.clone(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let message = self.public_message();
        let body = serde_json::json!({ "error": { "code": self.kind.code(), "message": message } });
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_code() {
        let kinds = [
            ErrorKind::InvalidArgument,
            ErrorKind::Unauthenticated,
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::PayloadTooLarge,
            ErrorKind::UnsupportedMediaType,
            ErrorKind::ResourceExhausted,
            ErrorKind::FailedPrecondition,
            ErrorKind::Unimplemented,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ];
        let codes: std::collections::HashSet<_> = kinds.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), kinds.len());
    }

    #[test]
    fn display_includes_the_cause_chain() {
        let e = err!(NotFound, "camera {}", 7).with_source(std::io::Error::other("gone"));
        assert_eq!(e.to_string(), "not_found: camera 7: gone");
    }
}
