//! The recording index in the database: segment rows written after their data is durable
//! (from the disk thread's events, batched once a second), and the repair at start that
//! closes rows a crash left open, from what their files really hold.

use super::disk::IndexEvent;
use super::run::FragMeta;
use crate::error::Result;
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use std::io::Seek;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use xaso_record::scan::{ScanError, scan};

#[derive(Default)]
struct Pending {
    end_ms: i64,
    bytes: u64,
    video: i64,
    audio: i64,
    keyframes: String,
}

/// Applies index events to the database until the channel closes.
pub async fn run(
    db: AnyPool,
    data_dir: std::path::PathBuf,
    mut rx: UnboundedReceiver<Vec<IndexEvent>>,
) {
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            evs = rx.recv() => {
                let Some(evs) = evs else { break };
                for ev in evs {
                    if let Err(e) = apply(&db, &data_dir, &mut pending, ev).await {
                        tracing::error!(error = %e, "recording index update failed");
                    }
                }
            }
            _ = tick.tick() => {
                if let Err(e) = flush_all(&db, &mut pending).await {
                    tracing::error!(error = %e, "recording index update failed");
                }
            }
        }
    }
    for (path, p) in pending.drain() {
        let _ = flush(&db, &path, &p, false).await;
    }
}

async fn apply(
    db: &AnyPool,
    data_dir: &Path,
    pending: &mut HashMap<String, Pending>,
    ev: IndexEvent,
) -> Result<()> {
    match ev {
        IndexEvent::Created { meta, bytes } => {
            sqlx::query(
                "INSERT INTO segments (camera_id, path, run_id, start_ms, end_ms, bytes, video_codec, audio_codec, width, height, open) \
                 VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, 1)",
            )
            .bind(meta.camera_id)
            .bind(&meta.path)
            .bind(meta.run_id)
            .bind(meta.start_ms)
            .bind(bytes as i64)
            .bind(meta.video_codec.name())
            .bind(meta.audio_codec.map(|c| c.name()))
            .bind(i64::from(meta.width))
            .bind(i64::from(meta.height))
            .execute(db)
            .await?;
        }
        IndexEvent::Appended { path, bytes, frag } => {
            let p = pending.entry(path).or_default();
            add(p, bytes, &frag);
        }
        IndexEvent::Closed { path } => {
            let p = pending.remove(&path).unwrap_or_default();
            flush(db, &path, &p, true).await?;
            // A segment that ended before its first fragment (e.g. the disk was full) holds
            // no footage: it goes, row and file.
            let n = sqlx::query("DELETE FROM segments WHERE path = $1 AND video_samples = 0")
                .bind(&path)
                .execute(db)
                .await?
                .rows_affected();
            if n > 0 {
                let full = data_dir.join(&path);
                let _ = std::fs::remove_file(super::disk::sidecar_path(&full));
                let _ = std::fs::remove_file(full);
            }
        }
        IndexEvent::Barrier(tx) => {
            flush_all(db, pending).await?;
            let _ = tx.send(());
        }
    }
    Ok(())
}

fn add(p: &mut Pending, bytes: u64, f: &FragMeta) {
    p.end_ms = p.end_ms.max(f.end_ms);
    p.bytes = bytes;
    p.video += i64::from(f.video_samples);
    p.audio += i64::from(f.audio_samples);
    if let Some((ms, off)) = f.keyframe {
        if !p.keyframes.is_empty() {
            p.keyframes.push(',');
        }
        p.keyframes.push_str(&format!("{ms}:{off}"));
    }
}

/// Writes every pending update in one transaction (one commit per second for all cameras).
async fn flush_all(db: &AnyPool, pending: &mut HashMap<String, Pending>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for (path, p) in pending.drain() {
        flush(&mut *tx, &path, &p, false).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn flush<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    path: &str,
    p: &Pending,
    close: bool,
) -> Result<()> {
    // Keyframes accumulate: a row's list is its old list plus this batch's.
    sqlx::query(
        "UPDATE segments SET \
           end_ms = CASE WHEN $1 > end_ms THEN $1 ELSE end_ms END, \
           bytes = CASE WHEN $2 > bytes THEN $2 ELSE bytes END, \
           video_samples = video_samples + $3, audio_samples = audio_samples + $4, \
           keyframes = CASE WHEN $5 = '' THEN keyframes WHEN keyframes = '' THEN $5 ELSE keyframes || ',' || $5 END, \
           open = CASE WHEN $6 = 1 THEN 0 ELSE open END \
         WHERE path = $7",
    )
    .bind(p.end_ms)
    .bind(p.bytes as i64)
    .bind(p.video)
    .bind(p.audio)
    .bind(p.keyframes.clone())
    .bind(i64::from(close))
    .bind(path)
    .execute(db)
    .await?;
    Ok(())
}

/// What [`repair`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    pub closed: u32,
    pub truncated_bytes: u64,
    pub removed: u32,
    /// Files written just before a crash whose row was not yet in the index.
    pub adopted: u32,
}

/// Closes every segment row a crash left open: scans its file, cuts a partial tail, and
/// sets the row from what the file holds. Rows whose file is gone or unreadable are
/// removed (with the file).
pub async fn repair(db: &AnyPool, data_dir: &Path) -> Result<RepairReport> {
    let rows = sqlx::query("SELECT id, path, start_ms FROM segments WHERE open = 1")
        .fetch_all(db)
        .await?;
    let mut report = RepairReport::default();
    for r in rows {
        let (id, path, start_ms): (i64, String, i64) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        let full = data_dir.join(&path);
        let scanned = tokio::task::spawn_blocking(move || repair_file(&full))
            .await
            .map_err(|e| crate::err!(Internal, "repair worker: {e}"))?;
        match scanned {
            Ok(fix) if fix.video > 0 => {
                sqlx::query(
                    "UPDATE segments SET end_ms = $1, bytes = $2, video_samples = $3, audio_samples = $4, keyframes = $5, open = 0 WHERE id = $6",
                )
                .bind(fix.end_ms.unwrap_or(start_ms).max(start_ms))
                .bind(fix.len as i64)
                .bind(fix.video)
                .bind(fix.audio)
                .bind(fix.keyframes_from(start_ms))
                .bind(id)
                .execute(db)
                .await?;
                report.closed += 1;
                report.truncated_bytes += fix.truncated;
                tracing::info!(
                    path,
                    truncated = fix.truncated,
                    "repaired a segment left open"
                );
            }
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "it holds no complete fragment".into(),
                };
                tracing::warn!(path, why, "removing a segment with no usable footage");
                sqlx::query("DELETE FROM segments WHERE id = $1")
                    .bind(id)
                    .execute(db)
                    .await?;
                let _ = std::fs::remove_file(super::disk::sidecar_path(&data_dir.join(&path)));
                let _ = std::fs::remove_file(data_dir.join(&path));
                report.removed += 1;
            }
        }
    }
    adopt_orphans(db, data_dir, &mut report).await?;
    Ok(report)
}

/// A crash between creating a segment file and indexing it leaves a file with no row. Only
/// a camera's newest files can be such orphans: those in its latest day directory that
/// start after its newest indexed segment. Each is repaired and indexed, or removed when it
/// holds no footage.
async fn adopt_orphans(db: &AnyPool, data_dir: &Path, report: &mut RepairReport) -> Result<()> {
    let root = data_dir.join("recordings");
    let Ok(cams) = std::fs::read_dir(&root) else {
        return Ok(());
    };
    for cam in cams.flatten() {
        let Some(camera_id) = cam.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) else {
            continue;
        };
        let Some(day) = std::fs::read_dir(cam.path())
            .ok()
            .and_then(|d| d.flatten().map(|e| e.file_name()).max())
        else {
            continue;
        };
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(start_ms) FROM segments WHERE camera_id = $1")
                .bind(camera_id)
                .fetch_one(db)
                .await?;
        let Ok(files) = std::fs::read_dir(cam.path().join(&day)) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let Some(start_ms) = name
                .strip_suffix(".mp4")
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            if newest.is_some_and(|n| start_ms <= n) {
                continue;
            }
            let rel = format!("recordings/{camera_id}/{}/{name}", day.to_string_lossy());
            let full = f.path();
            let scanned = tokio::task::spawn_blocking(move || repair_file(&full))
                .await
                .map_err(|e| crate::err!(Internal, "repair worker: {e}"))?;
            match scanned {
                Ok(fix) if fix.video > 0 => {
                    let tracks = &fix.tracks;
                    let video = tracks
                        .iter()
                        .find(|t| t.codec.is_some_and(|c| c.is_video()));
                    let audio = tracks
                        .iter()
                        .find(|t| t.codec.is_some_and(|c| !c.is_video()));
                    sqlx::query(
                        "INSERT INTO segments (camera_id, path, run_id, start_ms, end_ms, bytes, video_samples, audio_samples, \
                         video_codec, audio_codec, width, height, keyframes, open) \
                         VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0)",
                    )
                    .bind(camera_id)
                    .bind(&rel)
                    .bind(start_ms)
                    .bind(fix.end_ms.unwrap_or(start_ms).max(start_ms))
                    .bind(fix.len as i64)
                    .bind(fix.video)
                    .bind(fix.audio)
                    .bind(video.and_then(|t| t.codec).map_or("h264", |c| c.name()))
                    .bind(audio.and_then(|t| t.codec).map(|c| c.name()))
                    .bind(video.map_or(0, |t| i64::from(t.width)))
                    .bind(video.map_or(0, |t| i64::from(t.height)))
                    .bind(fix.keyframes_from(start_ms))
                    .execute(db)
                    .await?;
                    tracing::info!(path = rel, "indexed a segment written just before a crash");
                    report.adopted += 1;
                }
                _ => {
                    let _ = std::fs::remove_file(super::disk::sidecar_path(&data_dir.join(&rel)));
                    let _ = std::fs::remove_file(data_dir.join(&rel));
                    report.removed += 1;
                }
            }
        }
    }
    Ok(())
}

struct Fix {
    len: u64,
    truncated: u64,
    end_ms: Option<i64>,
    video: i64,
    audio: i64,
    /// (wall ms, byte offset) of fragments that start with a keyframe.
    keyframes: Vec<(i64, u64)>,
    tracks: Vec<xaso_record::scan::ScannedTrack>,
}

impl Fix {
    fn keyframes_from(&self, start_ms: i64) -> String {
        self.keyframes
            .iter()
            .map(|(ms, off)| format!("{}:{off}", ms - start_ms))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn repair_file(path: &Path) -> std::result::Result<Fix, ScanError> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.seek(std::io::SeekFrom::End(0))?;
    let s = scan(&mut f, len)?;
    if s.valid_len < len {
        f.set_len(s.valid_len)?;
        f.sync_data()?;
    }
    // A stale sidecar (from before a crash) no longer matches; write the true one.
    let _ = std::fs::remove_file(super::disk::sidecar_path(path));
    if !s.fragments.is_empty() {
        let _ = std::fs::write(
            super::disk::sidecar_path(path),
            xaso_record::scan::sidecar::encode(&s, s.valid_len),
        );
    }
    let primary = s
        .tracks
        .iter()
        .position(|t| t.codec.is_some_and(|c| c.is_video()))
        .unwrap_or(0);
    let primary_id = s.tracks[primary].track_id;
    let ts = i64::from(s.tracks[primary].timescale);
    let (mut video, mut audio) = (0, 0);
    let mut end_ms = None;
    let mut keyframes = Vec::new();
    for fr in &s.fragments {
        for t in &fr.trafs {
            if t.track_id == primary_id {
                video += t.samples.len() as i64;
                let dur: u64 = t.samples.iter().map(|s| u64::from(s.duration)).sum();
                if let Some(w) = fr.wall_ms {
                    end_ms = Some(w + (dur as i64) * 1000 / ts);
                    if t.samples.first().is_some_and(|s| s.is_sync) {
                        keyframes.push((w, fr.offset));
                    }
                }
            } else {
                audio += t.samples.len() as i64;
            }
        }
    }
    Ok(Fix {
        len: s.valid_len,
        truncated: len - s.valid_len,
        end_ms,
        video,
        audio,
        keyframes,
        tracks: s.tracks,
    })
}
