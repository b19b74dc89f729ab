//! Applying retention: asks [`xaso_record::retention::plan`] what to delete, then removes
//! the index rows first and the files after (so the index never points at a missing file),
//! and writes one audit row per pass that deleted anything. Runs every minute, and at once
//! when a write fails (a full disk).

use crate::audit::{AuditLog, Event};
use crate::error::Result;
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use xaso_base::Clocks;
use xaso_record::retention::{CameraLimits, Policy, Reason, SegmentInfo, plan};

/// Free space of the disk holding a path. A trait so tests can fill a disk at will.
pub trait DiskSpace: Send + Sync + 'static {
    fn free_bytes(&self, path: &Path) -> std::io::Result<u64>;
}

/// The real disk, through statvfs(2).
pub struct StatVfs;

impl DiskSpace for StatVfs {
    fn free_bytes(&self, path: &Path) -> std::io::Result<u64> {
        let s = rustix::fs::statvfs(path)?;
        Ok(s.f_bavail.saturating_mul(s.f_frsize))
    }
}

#[derive(Clone, Debug)]
pub struct RetentionConfig {
    pub data_dir: PathBuf,
    pub default_retention_days: u32,
    pub keep_free_bytes: u64,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub deleted: u32,
    pub bytes: u64,
    pub by_age: u32,
    pub by_quota: u32,
    pub for_space: u32,
}

/// One pass: plans and deletes.
pub async fn enforce(
    db: &AnyPool,
    cfg: &RetentionConfig,
    clocks: &dyn Clocks,
    space: &dyn DiskSpace,
    audit: &AuditLog,
) -> Result<Report> {
    let rows =
        sqlx::query("SELECT id, camera_id, start_ms, end_ms, bytes, open, path FROM segments")
            .fetch_all(db)
            .await?;
    let mut segs = Vec::with_capacity(rows.len());
    let mut paths = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: i64 = r.try_get(0)?;
        segs.push(SegmentInfo {
            id,
            camera_id: r.try_get(1)?,
            start_ms: r.try_get(2)?,
            end_ms: r.try_get(3)?,
            bytes: u64::try_from(r.try_get::<i64, _>(4)?).unwrap_or(0),
            open: r.try_get::<i64, _>(5)? != 0,
        });
        paths.insert(id, r.try_get::<String, _>(6)?);
    }
    let mut cameras = HashMap::new();
    for c in crate::store::local_cameras(db).await? {
        cameras.insert(
            c.id,
            CameraLimits {
                retention_days: c.retention_days.and_then(|d| u32::try_from(d).ok()),
                quota_bytes: c.quota_bytes.and_then(|q| u64::try_from(q).ok()),
            },
        );
    }
    let free_bytes = space.free_bytes(&cfg.data_dir)?;
    let policy = Policy {
        now_ms: clocks.realtime_ms(),
        default_retention_days: cfg.default_retention_days,
        cameras,
        free_bytes,
        keep_free_bytes: cfg.keep_free_bytes,
    };
    let doomed = plan(&segs, &policy);
    let mut report = Report::default();
    for (id, reason) in &doomed {
        sqlx::query("DELETE FROM segments WHERE id = $1")
            .bind(id)
            .execute(db)
            .await?;
        let path = cfg.data_dir.join(&paths[id]);
        let _ = std::fs::remove_file(super::disk::sidecar_path(&path));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not delete footage")
            }
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir(dir); // only succeeds when empty
        }
        report.deleted += 1;
        report.bytes += segs.iter().find(|s| s.id == *id).map_or(0, |s| s.bytes);
        match reason {
            Reason::Age => report.by_age += 1,
            Reason::Quota => report.by_quota += 1,
            Reason::DiskFull => report.for_space += 1,
        }
    }
    if report.deleted > 0 {
        tracing::info!(?report, free_bytes, "retention deleted old footage");
        audit
            .append(
                db,
                clocks.realtime_ms(),
                Event {
                    action: "footage.retention",
                    address: Some("local".into()),
                    detail: Some(serde_json::json!({
                        "segments": report.deleted, "bytes": report.bytes, "by_age": report.by_age,
                        "by_quota": report.by_quota, "for_disk_space": report.for_space,
                    })),
                    ..Default::default()
                },
            )
            .await?;
    }
    Ok(report)
}

/// Runs [`enforce`] every `every`, and when `wake` is notified.
pub fn spawn(
    db: AnyPool,
    cfg: RetentionConfig,
    clocks: Arc<dyn Clocks>,
    audit: Arc<AuditLog>,
    wake: Arc<tokio::sync::Notify>,
    every: Duration,
) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = enforce(&db, &cfg, clocks.as_ref(), &StatVfs, &audit).await {
                tracing::error!(error = %e, "retention pass failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = wake.notified() => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use xaso_base::SimulatedClocks;

    struct FakeDisk(AtomicU64);

    impl DiskSpace for FakeDisk {
        fn free_bytes(&self, _: &Path) -> std::io::Result<u64> {
            Ok(self.0.load(Ordering::SeqCst))
        }
    }

    const DAY: i64 = 86_400_000;

    #[tokio::test]
    async fn deletes_old_and_over_quota_footage_rows_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open_in(dir.path()).await;
        let t0 = 1_795_000_000_000;
        let clocks = SimulatedClocks::new(t0);
        let mut settings = crate::store::CameraSettings {
            name: "A".into(),
            url: "rtsp://127.0.0.1/a".into(),
            record: true,
            substream_url: None,
            transport: "tcp".into(),
            retention_days: Some(2),
            quota_bytes: None,
        };
        let a = crate::store::create_camera(&db, &settings, "api", t0)
            .await
            .unwrap();
        settings.name = "B".into();
        settings.retention_days = None;
        settings.quota_bytes = Some(3 << 20);
        let b = crate::store::create_camera(&db, &settings, "api", t0)
            .await
            .unwrap();
        // One 1 MiB segment per camera per hour for four days.
        for h in 0..96i64 {
            for cam in [a.id, b.id] {
                let path = format!("recordings/{cam}/{h}.mp4");
                std::fs::create_dir_all(dir.path().join(format!("recordings/{cam}"))).unwrap();
                std::fs::write(dir.path().join(&path), b"x").unwrap();
                sqlx::query("INSERT INTO segments (camera_id, path, run_id, start_ms, end_ms, bytes, video_codec, open) VALUES ($1, $2, 1, $3, $4, $5, 'h264', $6)")
                    .bind(cam)
                    .bind(&path)
                    .bind(t0 + h * 3_600_000)
                    .bind(t0 + (h + 1) * 3_600_000)
                    .bind(1i64 << 20)
                    .bind(i64::from(h == 95))
                    .execute(&db)
                    .await
                    .unwrap();
            }
        }
        clocks.advance(Duration::from_millis((4 * DAY) as u64));
        let cfg = RetentionConfig {
            data_dir: dir.path().to_owned(),
            default_retention_days: 30,
            keep_free_bytes: 1 << 30,
        };
        let disk = FakeDisk(AtomicU64::new(10 << 30));
        let log = AuditLog::new();
        let r = enforce(&db, &cfg, &clocks, &disk, &log).await.unwrap();
        // Camera A keeps what ended within 2 days (hours 47..96: hour 47 ends exactly two
        // days ago); camera B keeps 3 MiB: its 3 newest.
        assert_eq!((r.by_age, r.by_quota, r.for_space), (47, 93, 0));
        let left = |cam: i64| {
            let db = db.clone();
            async move {
                let v: Vec<i64> = sqlx::query_scalar(
                    "SELECT start_ms FROM segments WHERE camera_id = $1 ORDER BY start_ms",
                )
                .bind(cam)
                .fetch_all(&db)
                .await
                .unwrap();
                v.iter().map(|s| (s - t0) / 3_600_000).collect::<Vec<_>>()
            }
        };
        assert_eq!(left(a.id).await, (47..96).collect::<Vec<_>>());
        assert_eq!(left(b.id).await, vec![93, 94, 95]);
        assert!(
            !dir.path()
                .join(format!("recordings/{}/0.mp4", a.id))
                .exists()
        );
        assert!(
            dir.path()
                .join(format!("recordings/{}/50.mp4", a.id))
                .exists()
        );
        assert!(matches!(
            crate::audit::verify(&db).await.unwrap(),
            crate::audit::Verdict::Intact { rows: 1, .. }
        ));

        // The disk fills: the oldest footage goes, whichever camera, the open ones never.
        disk.0.store((1 << 30) - (5 << 20), Ordering::SeqCst);
        let r = enforce(&db, &cfg, &clocks, &disk, &log).await.unwrap();
        assert_eq!(r.for_space, 5);
        assert_eq!(left(a.id).await, (52..96).collect::<Vec<_>>());
        assert_eq!(left(b.id).await, vec![93, 94, 95]);
        // Nothing more to do.
        disk.0.store(10 << 30, Ordering::SeqCst);
        assert_eq!(
            enforce(&db, &cfg, &clocks, &disk, &log).await.unwrap(),
            Report::default()
        );
    }
}
