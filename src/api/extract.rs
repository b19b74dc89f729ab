//! Extractors that turn axum's rejections (bad JSON, oversized bodies, malformed paths and
//! query strings) into our [`Error`], so every client error has the same JSON shape.

use crate::error::{Error, ErrorKind};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct ApiJson<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct ApiPath<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct ApiQuery<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for ApiJson<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        let kind = match r.status().as_u16() {
            413 => ErrorKind::PayloadTooLarge,
            415 => ErrorKind::UnsupportedMediaType,
            _ => ErrorKind::InvalidArgument,
        };
        let msg = match kind {
            ErrorKind::PayloadTooLarge => "request body too large".to_owned(),
            ErrorKind::UnsupportedMediaType => "expected Content-Type: application/json".to_owned(),
            _ => r.body_text(),
        };
        Error::new(kind, msg)
    }
}

impl From<PathRejection> for Error {
    fn from(r: PathRejection) -> Self {
        Error::new(ErrorKind::InvalidArgument, r.body_text())
    }
}

impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Error::new(ErrorKind::InvalidArgument, r.body_text())
    }
}
