//! Recorded footage: `GET /api/cameras/{id}/recordings` (spans and gaps in a time range).
//! Export and playback join here.

use super::caller::Caller;
use super::extract::{ApiPath, ApiQuery};
use super::{AppState, parse_rfc3339, rfc3339};
use crate::auth::CameraUse;
use crate::bail;
use crate::error::Result;
use crate::{err, footage, store};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cameras/{id}/recordings", get(list))
        .route("/cameras/{id}/export.mp4", get(export))
        .route("/cameras/{id}/playback.mp4", get(playback))
        .route("/cameras/{id}/snapshot.jpg", get(snapshot))
}

/// A camera at a node below this one: the request goes there over the link, with that
/// node's id of the camera, and its answer (status, headers, body) comes back as it is.
/// The caller was authorised here (and is audited here by the handler); the node audits
/// it too, as `parent:<user>`.
async fn forwarded(
    st: &AppState,
    caller: &Caller,
    cam: &store::Camera,
    what: &str,
    query: Option<String>,
    method: &http::Method,
    headers: &http::HeaderMap,
) -> Result<Response> {
    let r = cam.remote.as_ref().expect("a remote camera");
    let mut path = format!("/api/cameras/{}/{what}", r.remote_id);
    if let Some(q) = query {
        path.push('?');
        path.push_str(&q);
    }
    st.federation
        .forward(r.node_id, method, path, headers, &caller.user.username)
        .await
        .map_err(|e| {
            err!(
                Unavailable,
                "camera {:?} is at node {}: {e}",
                cam.name,
                r.path
            )
        })
}

/// The longest range the span listing answers for.
const MAX_LIST_MS: i64 = 31 * 86_400_000;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RangeParams {
    /// RFC 3339; default: 24 hours before `end`.
    pub start: Option<String>,
    /// RFC 3339; default: now.
    pub end: Option<String>,
}

/// Parses and checks a range: `start < end`, not starting in the future, at most `max_ms`.
pub fn parse_range(st: &AppState, p: &RangeParams, max_ms: i64) -> Result<(i64, i64)> {
    let now = st.now_ms();
    let end = p
        .end
        .as_deref()
        .map(|v| parse_rfc3339("end", v))
        .transpose()?
        .unwrap_or(now);
    let start = p
        .start
        .as_deref()
        .map(|v| parse_rfc3339("start", v))
        .transpose()?
        .unwrap_or(end - 86_400_000);
    if start >= end {
        bail!(
            InvalidArgument,
            "start must be before end (the range is empty or reversed)"
        );
    }
    if start > now {
        bail!(InvalidArgument, "start is in the future");
    }
    if end - start > max_ms {
        bail!(
            InvalidArgument,
            "the range is longer than the limit of {} hours",
            max_ms / 3_600_000
        );
    }
    Ok((start, end))
}

#[derive(Serialize, ToSchema)]
pub struct SpanOut {
    pub start: String,
    pub end: String,
    pub video_codec: String,
    pub audio_codec: Option<String>,
    pub width: i64,
    pub height: i64,
}

#[derive(Serialize, ToSchema)]
pub struct GapOut {
    pub start: String,
    pub end: String,
}

#[derive(Serialize, ToSchema)]
pub struct Recordings {
    pub camera_id: i64,
    pub start: String,
    pub end: String,
    /// Continuous footage, oldest first, clipped to the range.
    pub spans: Vec<SpanOut>,
    /// Parts of the range with no footage.
    pub gaps: Vec<GapOut>,
}

/// Recorded spans and gaps of a camera in a time range (playback permission needed).
#[utoipa::path(get, path = "/api/cameras/{id}/recordings", tag = "recordings", params(("id" = i64, Path), RangeParams),
    responses((status = 200, body = Recordings), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<RangeParams>,
    RawQuery(query): RawQuery,
    headers: http::HeaderMap,
) -> Result<Response> {
    caller.require_camera(&st, id, CameraUse::Playback).await?;
    let cam = store::camera(&st.db, id).await?;
    if cam.is_remote() {
        let get = http::Method::GET;
        let resp = forwarded(&st, &caller, &cam, "recordings", query, &get, &headers).await?;
        if resp.status() != http::StatusCode::OK {
            return Ok(resp);
        }
        // The node's answer names its own id of the camera: this node's is the caller's.
        let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .map_err(|e| err!(Unavailable, "the recordings of camera {id} broke off: {e}"))?;
        let mut v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| err!(Unavailable, "the recordings of camera {id}: {e}"))?;
        v["camera_id"] = serde_json::json!(id);
        return Ok(axum::Json(v).into_response());
    }
    let (start, end) = parse_range(&st, &p, MAX_LIST_MS)?;
    let segs = footage::segments(&st.db, id, start, end).await?;
    let (spans, gaps) = footage::spans(&segs, start, end);
    Ok(axum::Json(Recordings {
        camera_id: id,
        start: rfc3339(start),
        end: rfc3339(end),
        spans: spans
            .into_iter()
            .map(|s| SpanOut {
                start: rfc3339(s.start_ms),
                end: rfc3339(s.end_ms),
                video_codec: s.video_codec,
                audio_codec: s.audio_codec,
                width: s.width,
                height: s.height,
            })
            .collect(),
        gaps: gaps
            .into_iter()
            .map(|(a, b)| GapOut {
                start: rfc3339(a),
                end: rfc3339(b),
            })
            .collect(),
    })
    .into_response())
}

/// Format version of exported files: part of every ETag, so that when the bytes written for
/// the same footage change (a change to `xaso_record::export`), cached copies are not
/// reused. Bump it whenever the golden digest in `tests/recording.rs` changes.
pub const EXPORT_FORMAT: u32 = 1;

/// Scans segment files, spread over the machine's cores.
fn scan_all(
    files: &[(std::path::PathBuf, bool)],
) -> std::io::Result<Vec<xaso_record::scan::Scanned>> {
    let scan_one =
        |(p, closed): &(std::path::PathBuf, bool)| crate::recorder::disk::read_scan(p, *closed);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    if files.len() < 8 || threads == 1 {
        return files.iter().map(scan_one).collect();
    }
    let per = files.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(scan_one)
                        .collect::<std::io::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(files.len());
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| std::io::Error::other("scan thread panicked"))??,
            );
        }
        Ok(out)
    })
}

/// Plans the MP4 of a range: the segment files (paths) and the plan over them.
pub async fn export_plan(
    st: &AppState,
    camera: i64,
    start: i64,
    end: i64,
) -> Result<(Vec<std::path::PathBuf>, xaso_record::export::Plan, String)> {
    let segs = footage::segments(&st.db, camera, start, end).await?;
    let files: Vec<std::path::PathBuf> =
        segs.iter().map(|s| st.cfg.data_dir.join(&s.path)).collect();
    let scan_files: Vec<(std::path::PathBuf, bool)> = files
        .iter()
        .cloned()
        .zip(segs.iter().map(|s| !s.open))
        .collect();
    let scans = tokio::task::spawn_blocking(move || scan_all(&scan_files))
        .await
        .map_err(|e| crate::err!(Internal, "export worker: {e}"))??;
    let sources: Vec<xaso_record::export::Source<'_>> = scans
        .iter()
        .enumerate()
        .map(|(i, scan)| xaso_record::export::Source { file: i, scan })
        .collect();
    let plan = xaso_record::export::plan(&sources, start, end).map_err(|e| match e {
        xaso_record::export::ExportError::NoFootage => {
            crate::err!(NotFound, "no footage in that range")
        }
        other => crate::err!(Internal, "{other}"),
    })?;
    // The same footage and range give the same bytes: name them by what they are made of.
    let mut h = sha2::Sha256::new();
    use sha2::Digest;
    h.update(format!(
        "{EXPORT_FORMAT}:{camera}:{start}:{end}:{}",
        plan.len
    ));
    for s in &segs {
        h.update(format!(":{}:{}:{}", s.id, s.bytes, s.end_ms));
    }
    let etag = format!("\"{}\"", &hex::encode(h.finalize())[..32]);
    Ok((files, plan, etag))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
}

/// A `Range` header that cannot be satisfied (answered with 416).
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// A single `Range: bytes=...` of a `len`-byte body: `Ok(None)` for none (or several,
/// which we may ignore), `Err(Unsatisfiable)` when it cannot be served.
pub fn parse_byte_range(
    h: Option<&http::HeaderValue>,
    len: u64,
) -> std::result::Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(v) = h.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| Unsatisfiable)?;
        if n == 0 {
            return Err(Unsatisfiable);
        }
        (len.saturating_sub(n), len.saturating_sub(1))
    } else {
        let s: u64 = a.parse().map_err(|_| Unsatisfiable)?;
        let e: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| Unsatisfiable)?
                .min(len.saturating_sub(1))
        };
        (s, e)
    };
    if len == 0 || start > end || start >= len {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

/// The bytes `[from, to]` of the planned file, read from the segment files as the client
/// takes them (64 KiB at a time), never the whole file in memory.
fn body(
    files: Vec<std::path::PathBuf>,
    parts: Vec<xaso_record::export::Part>,
    from: u64,
    to: u64,
) -> axum::body::Body {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    use xaso_record::export::Part;
    let mut pieces = Vec::new();
    let mut at = 0u64;
    for p in parts {
        let (a, b) = (at, at + p.len());
        at = b;
        if b <= from || a > to {
            continue;
        }
        let skip = from.saturating_sub(a);
        let take = (to + 1).min(b) - a - skip;
        pieces.push((p, skip, take));
    }
    let stream = futures::stream::unfold(
        (pieces.into_iter(), None::<(tokio::fs::File, u64)>),
        move |(mut it, mut cur)| {
            let files = files.clone();
            async move {
                loop {
                    if let Some((mut f, left)) = cur.take() {
                        if left == 0 {
                            continue;
                        }
                        let mut buf = vec![0u8; left.min(64 << 10) as usize];
                        return match f.read_exact(&mut buf).await {
                            Ok(_) => {
                                let n = buf.len() as u64;
                                Some((
                                    Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                                    (it, Some((f, left - n))),
                                ))
                            }
                            Err(e) => Some((Err(e), (it, None))),
                        };
                    }
                    let (p, skip, take) = it.next()?;
                    match p {
                        Part::Bytes(b) => {
                            let s = b.slice(skip as usize..(skip + take) as usize);
                            return Some((Ok(s), (it, None)));
                        }
                        Part::File { file, offset, .. } => {
                            let opened = async {
                                let mut f = tokio::fs::File::open(&files[file]).await?;
                                f.seek(std::io::SeekFrom::Start(offset + skip)).await?;
                                Ok::<_, std::io::Error>(f)
                            }
                            .await;
                            match opened {
                                Ok(f) => cur = Some((f, take)),
                                Err(e) => return Some((Err(e), (it, None))),
                            }
                        }
                    }
                }
            }
        },
    );
    axum::body::Body::from_stream(stream)
}

fn download_name(camera: &str, start_ms: i64, end_ms: i64) -> (String, String) {
    use chrono::TimeZone;
    let t = |ms| {
        chrono::Local
            .timestamp_millis_opt(ms)
            .single()
            .unwrap_or_default()
    };
    let (a, b) = (t(start_ms), t(end_ms));
    let stem = format!(
        "{}_{}_{}-{}",
        camera,
        a.format("%Y-%m-%d"),
        a.format("%H%M%S"),
        b.format("%H%M%S")
    );
    let ascii: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let utf8: String = stem
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    (format!("{ascii}.mp4"), format!("{utf8}.mp4"))
}

/// Download or watch: the same MP4, two permissions and audit actions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mp4Use {
    Export,
    Playback,
}

/// A standard MP4 of a range, as a download (export permission needed): starts at the
/// keyframe at or before `start`, with an edit list so players begin at `start`; supports
/// `Range`, `HEAD` and `If-None-Match`. Every export is audited.
#[utoipa::path(get, path = "/api/cameras/{id}/export.mp4", tag = "recordings", params(("id" = i64, Path), ExportParams),
    responses((status = 200, description = "video/mp4"), (status = 206, description = "a byte range"), (status = 304),
              (status = 400), (status = 401), (status = 403), (status = 404), (status = 416)))]
async fn export(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<ExportParams>,
    RawQuery(query): RawQuery,
    method: http::Method,
    headers: http::HeaderMap,
) -> Result<axum::response::Response> {
    let req = Mp4Request {
        p,
        query,
        method,
        headers,
    };
    serve_mp4(st, caller, id, req, Mp4Use::Export).await
}

/// The same MP4 for a `<video>` element (playback permission needed): inline, seekable by
/// byte ranges (the `moov` comes first), time 0 = `start`. Audited once per playback (the
/// request that starts at byte 0).
#[utoipa::path(get, path = "/api/cameras/{id}/playback.mp4", tag = "recordings", params(("id" = i64, Path), ExportParams),
    responses((status = 200, description = "video/mp4"), (status = 206, description = "a byte range"), (status = 304),
              (status = 400), (status = 401), (status = 403), (status = 404), (status = 416)))]
async fn playback(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<ExportParams>,
    RawQuery(query): RawQuery,
    method: http::Method,
    headers: http::HeaderMap,
) -> Result<axum::response::Response> {
    let req = Mp4Request {
        p,
        query,
        method,
        headers,
    };
    serve_mp4(st, caller, id, req, Mp4Use::Playback).await
}

/// What an export or playback request asks for.
struct Mp4Request {
    p: ExportParams,
    query: Option<String>,
    method: http::Method,
    headers: http::HeaderMap,
}

async fn serve_mp4(
    st: AppState,
    caller: Caller,
    id: i64,
    req: Mp4Request,
    what: Mp4Use,
) -> Result<axum::response::Response> {
    let Mp4Request {
        p,
        query,
        method,
        headers,
    } = req;
    let (need, action, denied) = match what {
        Mp4Use::Export => (CameraUse::Export, "footage.export", "footage.export_denied"),
        Mp4Use::Playback => (
            CameraUse::Playback,
            "footage.playback",
            "footage.playback_denied",
        ),
    };
    use http::{StatusCode, header};
    if let Err(e) = caller.require_camera(&st, id, need).await {
        if e.kind() == crate::error::ErrorKind::PermissionDenied {
            let mut ev = caller.event(denied);
            ev.camera_id = Some(id);
            ev.detail = Some(serde_json::json!({ "start": p.start, "end": p.end }));
            st.audit(ev).await?;
        }
        return Err(e);
    }
    let cam = store::camera(&st.db, id).await?;
    if let Some(r) = &cam.remote {
        // Audited here once per playback or download, as for this node's cameras (the
        // request that starts at byte 0), with the node it is fetched from.
        let from_start = headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.trim().starts_with("bytes=0-"));
        if method == http::Method::GET && from_start {
            let mut ev = caller.event(action);
            ev.camera_id = Some(id);
            ev.detail = Some(serde_json::json!({
                "node": r.path, "requested_start": p.start, "requested_end": p.end,
            }));
            st.audit(ev).await?;
        }
        let file = match what {
            Mp4Use::Export => "export.mp4",
            Mp4Use::Playback => "playback.mp4",
        };
        return forwarded(&st, &caller, &cam, file, query, &method, &headers).await;
    }
    let max_ms = i64::from(st.cfg.playback.max_export_hours) * 3_600_000;
    let range = RangeParams {
        start: Some(p.start.clone()),
        end: Some(p.end.clone()),
    };
    let (start, end) = parse_range(&st, &range, max_ms)?;
    let (files, plan, etag) = export_plan(&st, id, start, end).await?;
    let len = plan.len;
    let (name_ascii, name_utf8) = download_name(&cam.name, start, end);
    let mut resp_headers = http::HeaderMap::new();
    let hv = |s: &str| http::HeaderValue::from_str(s).expect("ASCII header");
    resp_headers.insert(header::ETAG, hv(&etag));
    resp_headers.insert(header::ACCEPT_RANGES, hv("bytes"));
    resp_headers.insert(header::CACHE_CONTROL, hv("private, max-age=3600"));
    resp_headers.insert(
        header::CONTENT_DISPOSITION,
        hv(&format!(
            "{}; filename=\"{name_ascii}\"; filename*=UTF-8''{name_utf8}",
            if what == Mp4Use::Export {
                "attachment"
            } else {
                "inline"
            }
        )),
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Ok((StatusCode::NOT_MODIFIED, resp_headers).into_response());
    }
    let requested = match parse_byte_range(headers.get(header::RANGE), len) {
        Ok(r) => r,
        Err(Unsatisfiable) => {
            resp_headers.insert(header::CONTENT_RANGE, hv(&format!("bytes */{len}")));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, resp_headers).into_response());
        }
    };
    let (from, to) = requested.unwrap_or((0, len - 1));
    if method == http::Method::GET && from == 0 {
        let mut ev = caller.event(action);
        ev.camera_id = Some(id);
        ev.detail = Some(serde_json::json!({
            "start": rfc3339(plan.start_ms), "end": rfc3339(plan.end_ms), "bytes": len,
            "requested_start": p.start, "requested_end": p.end,
        }));
        st.audit(ev).await?;
    }
    resp_headers.insert(header::CONTENT_TYPE, hv("video/mp4"));
    resp_headers.insert(header::CONTENT_LENGTH, hv(&(to - from + 1).to_string()));
    resp_headers.insert("x-xaso-start", hv(&rfc3339(plan.start_ms)));
    resp_headers.insert("x-xaso-end", hv(&rfc3339(plan.end_ms)));
    let status = if requested.is_some() {
        resp_headers.insert(
            header::CONTENT_RANGE,
            hv(&format!("bytes {from}-{to}/{len}")),
        );
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let b = if method == http::Method::HEAD {
        axum::body::Body::empty()
    } else {
        body(files, plan.parts, from, to)
    };
    Ok((status, resp_headers, b).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges() {
        let h = |v: &str| http::HeaderValue::from_str(v).unwrap();
        assert_eq!(parse_byte_range(None, 100), Ok(None));
        assert_eq!(
            parse_byte_range(Some(&h("bytes=0-9")), 100),
            Ok(Some((0, 9)))
        );
        assert_eq!(
            parse_byte_range(Some(&h("bytes=90-")), 100),
            Ok(Some((90, 99)))
        );
        assert_eq!(
            parse_byte_range(Some(&h("bytes=-10")), 100),
            Ok(Some((90, 99)))
        );
        assert_eq!(
            parse_byte_range(Some(&h("bytes=50-500")), 100),
            Ok(Some((50, 99)))
        );
        assert_eq!(parse_byte_range(Some(&h("bytes=0-1,5-6")), 100), Ok(None));
        assert_eq!(parse_byte_range(Some(&h("items=0-1")), 100), Ok(None));
        for bad in [
            "bytes=100-",
            "bytes=9-3",
            "bytes=x-1",
            "bytes=-0",
            "bytes=5",
        ] {
            assert_eq!(
                parse_byte_range(Some(&h(bad)), 100),
                Err(Unsatisfiable),
                "{bad}"
            );
        }
    }

    #[test]
    fn download_names_are_safe_and_keep_vietnamese() {
        let (ascii, utf8) = download_name("Cổng \"A\"/1", 1_795_000_000_000, 1_795_000_020_000);
        assert!(
            ascii.starts_with("C-ng--A--1_") && ascii.ends_with(".mp4"),
            "{ascii}"
        );
        assert!(!ascii.contains('"') && !ascii.contains('/'));
        assert!(utf8.starts_with("C%E1%BB%95ng%20%22A%22%2F1_"), "{utf8}");
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SnapshotParams {
    /// RFC 3339: the frame shown at this time.
    pub at: String,
    /// Scale to this many pixels wide (thumbnails), keeping the aspect ratio.
    pub width: Option<u32>,
}

/// The frame at a time as JPEG (playback permission needed), decoded from the keyframe at or
/// before it; audited. Answers 501 when the server was built without media pipelines.
#[utoipa::path(get, path = "/api/cameras/{id}/snapshot.jpg", tag = "recordings", params(("id" = i64, Path), SnapshotParams),
    responses((status = 200, description = "image/jpeg"), (status = 400), (status = 401), (status = 403), (status = 404),
              (status = 501, description = "built without the gstreamer feature")))]
async fn snapshot(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<SnapshotParams>,
    RawQuery(query): RawQuery,
    headers: http::HeaderMap,
) -> Result<axum::response::Response> {
    if let Err(e) = caller.require_camera(&st, id, CameraUse::Playback).await {
        if e.kind() == crate::error::ErrorKind::PermissionDenied {
            let mut ev = caller.event("footage.snapshot_denied");
            ev.camera_id = Some(id);
            ev.detail = Some(serde_json::json!({ "at": p.at }));
            st.audit(ev).await?;
        }
        return Err(e);
    }
    let cam = store::camera(&st.db, id).await?;
    if let Some(r) = &cam.remote {
        let mut ev = caller.event("footage.snapshot");
        ev.camera_id = Some(id);
        ev.detail = Some(serde_json::json!({ "at": p.at, "width": p.width, "node": r.path }));
        st.audit(ev).await?;
        let get = http::Method::GET;
        return forwarded(&st, &caller, &cam, "snapshot.jpg", query, &get, &headers).await;
    }
    if !xaso_pipelines::available() {
        bail!(Unimplemented, "{}", xaso_pipelines::PipelineError::NotBuilt);
    }
    let at = parse_rfc3339("at", &p.at)?;
    if at > st.now_ms() {
        bail!(InvalidArgument, "at is in the future");
    }
    if p.width.is_some_and(|w| !(16..=3840).contains(&w)) {
        bail!(InvalidArgument, "width must be between 16 and 3840");
    }
    // The MP4 from the keyframe at or before `at` to the frame at `at`, presented from the
    // keyframe (an edit list starting at `at` would have the decoder clip the frames
    // before it, the one we want among them).
    let (_, first, _) = export_plan(&st, id, at, at + 1).await?;
    let (files, plan, _) = export_plan(&st, id, first.keyframe_ms.min(at), at + 1).await?;
    let width = p.width;
    let jpeg = tokio::task::spawn_blocking(
        move || -> std::result::Result<Vec<u8>, crate::error::Error> {
            let mut mp4 = Vec::with_capacity(plan.len as usize);
            for part in &plan.parts {
                match part {
                    xaso_record::export::Part::Bytes(b) => mp4.extend_from_slice(b),
                    xaso_record::export::Part::File { file, offset, len } => {
                        use std::io::{Read, Seek};
                        let mut f = std::fs::File::open(&files[*file])?;
                        f.seek(std::io::SeekFrom::Start(*offset))?;
                        let start = mp4.len();
                        mp4.resize(start + *len as usize, 0);
                        f.read_exact(&mut mp4[start..])?;
                    }
                }
            }
            xaso_pipelines::last_frame_jpeg(&mp4, width).map_err(|e| crate::err!(Internal, "{e}"))
        },
    )
    .await
    .map_err(|e| crate::err!(Internal, "snapshot worker: {e}"))??;
    let mut ev = caller.event("footage.snapshot");
    ev.camera_id = Some(id);
    ev.detail = Some(serde_json::json!({ "at": rfc3339(at), "width": width }));
    st.audit(ev).await?;
    Ok((
        [
            (http::header::CONTENT_TYPE, "image/jpeg"),
            (http::header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        jpeg,
    )
        .into_response())
}
