//! A meeting's documents over HTTP: upload (streamed, checked as it arrives) and download,
//! for participants in the room (by their key) and users who may attend.

use super::AppState;
use super::caller::Caller;
use super::extract::ApiPath;
use super::meetings::may_attend;
use crate::error::{Error, Result};
use crate::meetings::store;
use crate::{bail, err};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Who is using a meeting's HTTP routes: a participant in the room (by the key `welcome`
/// gave it, header `X-Meeting-Key` or `?k=`), or a user who may attend.
async fn attendee(
    st: &AppState,
    caller: std::result::Result<Caller, Error>,
    key: Option<&str>,
    id: i64,
) -> Result<(String, Option<i64>)> {
    if let Some(k) = key {
        let hub = st
            .meetings
            .as_ref()
            .ok_or_else(|| err!(Unavailable, "meetings are not running on this server"))?;
        return match hub.by_key(k) {
            Some(h) if h.meeting == id => Ok((h.name, h.user_id)),
            _ => Err(err!(
                PermissionDenied,
                "not a participant of meeting {id} now"
            )),
        };
    }
    let caller = caller?;
    let m = store::get(&st.db, id).await?;
    if !may_attend(st, &caller, &m).await? {
        bail!(NotFound, "no meeting with id {id}");
    }
    Ok((caller.user.username.clone(), Some(caller.user.id)))
}

fn meeting_key<'a>(headers: &'a http::HeaderMap, q: &'a DocQuery) -> Option<&'a str> {
    headers
        .get("x-meeting-key")
        .and_then(|v| v.to_str().ok())
        .or(q.k.as_deref())
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DocQuery {
    /// The file's name (upload).
    name: Option<String>,
    /// The participant key (instead of the `X-Meeting-Key` header).
    k: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DocumentOut {
    id: i64,
    name: String,
    mime: String,
    size: i64,
    from: String,
    at: String,
    url: String,
}

impl From<&store::Document> for DocumentOut {
    fn from(d: &store::Document) -> Self {
        DocumentOut {
            id: d.id,
            name: d.name.clone(),
            mime: d.mime.clone(),
            size: d.bytes,
            from: d.uploader.clone(),
            at: super::rfc3339(d.at_ms),
            url: format!("/api/meetings/{}/documents/{}", d.meeting_id, d.id),
        }
    }
}

/// Shares a document with the meeting: the body is the file, `?name=` its name. PDF,
/// Office documents, images and text, checked by content; at most `[meetings]
/// max_document_mb`.
#[utoipa::path(post, path = "/api/meetings/{id}/documents", tag = "meetings", params(("id" = i64, Path), DocQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = DocumentOut), (status = 400), (status = 401), (status = 403),
              (status = 413, description = "over the size limit"), (status = 415, description = "a type that may not be shared, or content that does not match the name")))]
pub async fn upload(
    State(st): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    ApiPath(id): ApiPath<i64>,
    Query(q): Query<DocQuery>,
    headers: http::HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, axum::Json<DocumentOut>)> {
    let mut stream = body.into_data_stream();
    let r = receive(&st, caller, id, &q, &headers, &mut stream).await;
    if r.is_err() {
        discard_rest(stream);
    }
    r
}

/// How much of a refused upload is still read (and dropped), and for how long.
const DISCARD_MAX: u64 = 1 << 30;
const DISCARD_FOR: Duration = Duration::from_secs(60);

/// Reads and drops what the client still sends of a refused upload, while the refusal goes
/// out (up to [`DISCARD_MAX`] bytes within [`DISCARD_FOR`]). A server that closes its socket
/// with data unread resets the connection, and the client, still sending, then sees a
/// broken connection instead of the refusal ("at most 20 MB" on the page).
fn discard_rest(mut stream: axum::body::BodyDataStream) {
    use futures::StreamExt;
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + DISCARD_FOR;
        let mut n = 0u64;
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
            n += chunk.len() as u64;
            if n > DISCARD_MAX {
                break;
            }
        }
    });
}

/// [`upload`]'s work: the caller checked, the file received into the meeting's folder and
/// recorded.
async fn receive(
    st: &AppState,
    caller: std::result::Result<Caller, Error>,
    id: i64,
    q: &DocQuery,
    headers: &http::HeaderMap,
    stream: &mut axum::body::BodyDataStream,
) -> Result<(StatusCode, axum::Json<DocumentOut>)> {
    use futures::StreamExt;
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;
    let (uploader, user_id) = attendee(st, caller, meeting_key(headers, q), id).await?;
    let name = q
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| err!(InvalidArgument, "?name= (the file's name) is missing"))?;
    // Only the last path component, no control characters.
    let name: String = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let max = u64::from(st.cfg.meetings.max_document_mb) << 20;
    if let Some(len) = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > max
    {
        bail!(
            PayloadTooLarge,
            "documents may be at most {} MB",
            st.cfg.meetings.max_document_mb
        );
    }
    let dir = st.cfg.data_dir.join("meetings").join(id.to_string());
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| err!(Internal, "cannot create {}: {e}", dir.display()))?;
    let part = dir.join(format!("upload-{}.part", crate::auth::new_secret("")));
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| err!(Internal, "cannot create {}: {e}", part.display()))?;
    let result: Result<(String, u64, &'static str)> = async {
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        let mut head = Vec::new();
        let mut mime = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| err!(InvalidArgument, "upload interrupted: {e}"))?;
            size += chunk.len() as u64;
            if size > max {
                bail!(
                    PayloadTooLarge,
                    "documents may be at most {} MB",
                    st.cfg.meetings.max_document_mb
                );
            }
            if mime.is_none() {
                head.extend_from_slice(&chunk[..chunk.len().min(512 - head.len().min(512))]);
                if head.len() >= 512 {
                    mime = Some(doc_type(&name, &head)?);
                }
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| err!(Unavailable, "cannot store the document: {e}"))?;
        }
        let mime = match mime {
            Some(m) => m,
            None => doc_type(&name, &head)?,
        };
        file.sync_all()
            .await
            .map_err(|e| err!(Unavailable, "cannot store the document: {e}"))?;
        let sha: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((sha, size, mime))
    }
    .await;
    let (sha, size, mime) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    if size == 0 {
        let _ = tokio::fs::remove_file(&part).await;
        bail!(InvalidArgument, "the document is empty");
    }
    let path = dir.join(&sha);
    tokio::fs::rename(&part, &path)
        .await
        .map_err(|e| err!(Internal, "cannot store the document: {e}"))?;
    let doc_id = store::add_document(
        &st.db,
        id,
        &name,
        mime,
        size as i64,
        &sha,
        &uploader,
        user_id,
        st.now_ms(),
    )
    .await?;
    let doc = store::document(&st.db, id, doc_id).await?;
    if let Some(h) = &st.meetings {
        h.document_shared(&doc);
    }
    // (The other nodes in the meeting get it too.)
    st.federation.document_offer(&doc, None);
    Ok((StatusCode::CREATED, axum::Json(DocumentOut::from(&doc))))
}

fn doc_type(name: &str, head: &[u8]) -> Result<&'static str> {
    crate::meetings::doctype::check(name, head).map_err(|e| err!(UnsupportedMediaType, "{e}"))
}

/// A shared document, as an attachment.
#[utoipa::path(get, path = "/api/meetings/{id}/documents/{doc}", tag = "meetings",
    params(("id" = i64, Path), ("doc" = i64, Path), DocQuery),
    responses((status = 200, description = "the file"), (status = 401), (status = 403), (status = 404)))]
pub async fn download(
    State(st): State<AppState>,
    caller: std::result::Result<Caller, Error>,
    ApiPath((id, doc)): ApiPath<(i64, String)>,
    Query(q): Query<DocQuery>,
    headers: http::HeaderMap,
) -> Result<Response> {
    attendee(&st, caller, meeting_key(&headers, &q), id).await?;
    // Read after the caller is known: an anonymous caller learns nothing from the path.
    let doc: i64 = doc
        .parse()
        .map_err(|_| err!(NotFound, "no document {doc:?} in meeting {id}"))?;
    let d = store::document(&st.db, id, doc).await?;
    let path = st
        .cfg
        .data_dir
        .join("meetings")
        .join(id.to_string())
        .join(&d.sha256);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| err!(NotFound, "the document's file is gone: {e}"))?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    // RFC 6266: an ASCII fallback and the UTF-8 name.
    let ascii: String = d
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let utf8: String = d
        .name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok((
        [
            (http::header::CONTENT_TYPE, d.mime.clone()),
            (http::header::CONTENT_LENGTH, d.bytes.to_string()),
            (
                http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{utf8}"),
            ),
        ],
        body,
    )
        .into_response())
}
