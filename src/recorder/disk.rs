//! The disk writer: one thread per data directory that appends segment bytes, makes them
//! durable (fdatasync, in batches: every command that waited while the previous batch was
//! written is written, then each touched file is synced once), and only then tells the
//! index. Camera tasks hand it commands with `try_send` and never wait for the disk: when
//! it cannot keep up, the frames are dropped and counted.
//!
//! Batching: commands are written as they arrive and synced together every [`SYNC_EVERY`]
//! (or at once for a flush), with one `syncfs` for all files when several are dirty.

use super::run::{FragMeta, SegmentMeta};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

pub enum DiskCmd {
    Create {
        meta: SegmentMeta,
        init: Vec<u8>,
        failed: Arc<AtomicBool>,
    },
    Append {
        path: String,
        bytes: xaso_record::fmp4::FragmentBytes,
        frag: FragMeta,
    },
    Close {
        path: String,
    },
    /// Answered once everything queued before it is durable and indexed.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// What is durable on disk, for the index.
#[derive(Debug)]
pub enum IndexEvent {
    Created {
        meta: SegmentMeta,
        bytes: u64,
    },
    Appended {
        path: String,
        bytes: u64,
        frag: FragMeta,
    },
    Closed {
        path: String,
    },
    Barrier(tokio::sync::oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct DiskHandle {
    tx: SyncSender<DiskCmd>,
    pub stats: Arc<DiskStats>,
}

#[derive(Default, Debug)]
pub struct DiskStats {
    pub bytes_written: AtomicU64,
    pub write_errors: AtomicU64,
    pub syncs: AtomicU64,
    pub trouble: Arc<tokio::sync::Notify>,
}

impl DiskHandle {
    /// Waits until everything queued so far is on disk and in the index.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = self.tx.clone();
        // The queue may be full for a moment: wait for room off the async workers.
        let _ = tokio::task::spawn_blocking(move || sender.send(DiskCmd::Barrier(tx))).await;
        let _ = rx.await;
    }

    /// Queues a command; gives it back when the queue is full.
    pub fn try_send(&self, cmd: DiskCmd) -> Result<(), DiskCmd> {
        self.tx.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(c) | TrySendError::Disconnected(c) => c,
        })
    }
}

/// Starts the writer thread for `data_dir`.
/// `trouble` is notified when a write fails (a full disk: retention should run now).
pub fn start(
    data_dir: PathBuf,
    queue: usize,
    index: UnboundedSender<Vec<IndexEvent>>,
    trouble: Arc<tokio::sync::Notify>,
) -> DiskHandle {
    let (tx, rx) = sync_channel(queue);
    let stats = Arc::new(DiskStats {
        trouble,
        ..Default::default()
    });
    let s = stats.clone();
    std::thread::Builder::new()
        .name("xaso-disk".into())
        .spawn(move || writer(data_dir, rx, index, s))
        .expect("spawning the disk thread");
    DiskHandle { tx, stats }
}

struct Open {
    file: File,
    len: u64,
    /// Tells the camera task that its segment ended (it then starts a new one). The task
    /// clears it, so the writer keeps its own record in `broken`.
    failed: Arc<AtomicBool>,
    broken: bool,
    dirty: bool,
}

/// How long the writer gathers commands before it syncs them. A fragment waits at most this
/// long (plus the write) to become durable, so the loss bound after a crash stays under one
/// second with `fragment_ms` ≤ 700; and with many cameras one sync covers all their files.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);

fn writer(
    dir: PathBuf,
    rx: Receiver<DiskCmd>,
    index: UnboundedSender<Vec<IndexEvent>>,
    stats: Arc<DiskStats>,
) {
    let mut files: HashMap<String, Open> = HashMap::new();
    let mut done: Vec<IndexEvent> = Vec::new();
    // `syncfs` on this directory syncs every file of its filesystem in one call; when it
    // cannot be opened (or fails) each file is synced by itself.
    let dir_fd = File::open(&dir).ok();
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + SYNC_EVERY;
        let mut next = Some(first);
        let mut barriers = Vec::new();
        while let Some(cmd) = next.take() {
            handle(&dir, cmd, &mut files, &mut done, &mut barriers, &stats);
            let urgent = !barriers.is_empty();
            let wait = deadline.saturating_duration_since(Instant::now());
            next = if urgent || wait.is_zero() {
                rx.try_recv().ok()
            } else {
                rx.recv_timeout(wait).ok()
            };
        }
        sync_dirty(dir_fd.as_ref(), &mut files, &stats);
        // Only what is durable reaches the index. A failed file is closed at its last
        // durable fragment.
        let failed: Vec<String> = files
            .iter()
            .filter(|(_, f)| f.broken)
            .map(|(p, _)| p.clone())
            .collect();
        for path in failed {
            files.remove(&path);
            done.push(IndexEvent::Closed { path });
        }
        // Barriers go last: what they wait for includes the segments that failed in this
        // round (at shutdown, a segment whose first write failed on a full disk was left
        // open in the index, its `Closed` after the barrier the process stopped at).
        done.extend(barriers.into_iter().map(IndexEvent::Barrier));
        if !done.is_empty() {
            let _ = index.send(std::mem::take(&mut done));
        }
    }
}

/// Makes every dirty file durable: one `syncfs` when several are dirty (its cost hardly
/// grows with the number of files, where one `fdatasync` per file does), else `fdatasync`.
/// When `syncfs` reports an error, each file is synced by itself to find which failed.
fn sync_dirty(dir_fd: Option<&File>, files: &mut HashMap<String, Open>, stats: &DiskStats) {
    let dirty = files.values().filter(|f| f.dirty).count();
    if dirty == 0 {
        return;
    }
    if dirty >= 2
        && let Some(d) = dir_fd
    {
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        if rustix::fs::syncfs(d).is_ok() {
            for f in files.values_mut() {
                f.dirty = false;
            }
            return;
        }
    }
    for (path, f) in files.iter_mut().filter(|(_, f)| f.dirty) {
        f.dirty = false;
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = f.file.sync_data() {
            fail(path, f, &e, stats);
        }
    }
}

fn fail(path: &str, f: &mut Open, e: &std::io::Error, stats: &DiskStats) {
    stats.write_errors.fetch_add(1, Ordering::Relaxed);
    stats.trouble.notify_one();
    tracing::error!(path, error = %e, "writing footage failed; the segment ends here");
    f.broken = true;
    f.failed.store(true, Ordering::Relaxed);
}

fn handle(
    dir: &Path,
    cmd: DiskCmd,
    files: &mut HashMap<String, Open>,
    done: &mut Vec<IndexEvent>,
    barriers: &mut Vec<tokio::sync::oneshot::Sender<()>>,
    stats: &DiskStats,
) {
    match cmd {
        DiskCmd::Create { meta, init, failed } => {
            let full = dir.join(&meta.path);
            let res = (|| -> std::io::Result<File> {
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&full)?;
                f.write_all(&init)?;
                Ok(f)
            })();
            match res {
                Ok(file) => {
                    stats
                        .bytes_written
                        .fetch_add(init.len() as u64, Ordering::Relaxed);
                    let len = init.len() as u64;
                    files.insert(
                        meta.path.clone(),
                        Open {
                            file,
                            len,
                            failed,
                            broken: false,
                            dirty: true,
                        },
                    );
                    done.push(IndexEvent::Created { meta, bytes: len });
                }
                Err(e) => {
                    // Leave no partial file behind (it would have no row).
                    let _ = std::fs::remove_file(&full);
                    stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    stats.trouble.notify_one();
                    tracing::error!(path = %full.display(), error = %e, "cannot create a segment file");
                    failed.store(true, Ordering::Relaxed);
                }
            }
        }
        DiskCmd::Append { path, bytes, frag } => {
            let Some(f) = files.get_mut(&path) else {
                return;
            };
            if f.broken {
                return;
            }
            match bytes.write_to(&mut f.file) {
                Ok(()) => {
                    f.len += bytes.len() as u64;
                    f.dirty = true;
                    stats
                        .bytes_written
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    done.push(IndexEvent::Appended {
                        path,
                        bytes: f.len,
                        frag,
                    });
                }
                Err(e) => {
                    // A partial write leaves a partial fragment: cut it off so the file
                    // stays valid up to its last whole fragment.
                    let _ = f.file.set_len(f.len);
                    fail(&path, f, &e, stats);
                }
            }
        }
        // Held until the round's sync and failed segments (see `writer`).
        DiskCmd::Barrier(tx) => barriers.push(tx),
        DiskCmd::Close { path } => {
            if let Some(mut f) = files.remove(&path) {
                if let Err(e) = f.file.sync_data() {
                    fail(&path, &mut f, &e, stats);
                }
                drop(f);
                write_sidecar(&dir.join(&path));
                done.push(IndexEvent::Closed { path });
            }
        }
    }
}

/// Where a segment's sample tables are kept once it is closed.
pub fn sidecar_path(segment: &Path) -> PathBuf {
    let mut p = segment.as_os_str().to_owned();
    p.push(".idx");
    PathBuf::from(p)
}

/// Writes `<segment>.idx` (see `xaso_record::scan::sidecar`). Best effort: without it the
/// segment is scanned instead.
pub fn write_sidecar(segment: &Path) {
    let res = (|| -> std::io::Result<()> {
        let mut f = File::open(segment)?;
        let len = f.metadata()?.len();
        let s = xaso_record::scan(&mut f, len).map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::write(
            sidecar_path(segment),
            xaso_record::scan::sidecar::encode(&s, len),
        )
    })();
    if let Err(e) = res {
        tracing::warn!(path = %segment.display(), error = %e, "could not write the segment's sample tables");
    }
}

/// The scan of a segment: from its sidecar when that matches the file, else by scanning.
/// A closed segment found without one gets it (segments from before sidecars existed, or
/// whose sidecar could not be written when the disk was full).
pub fn read_scan(segment: &Path, closed: bool) -> std::io::Result<xaso_record::scan::Scanned> {
    let mut f = File::open(segment)?;
    let len = f.metadata()?.len();
    if let Ok(b) = std::fs::read(sidecar_path(segment))
        && let Some(s) = xaso_record::scan::sidecar::decode(&b, len)
    {
        return Ok(s);
    }
    let s = xaso_record::scan(&mut f, len).map_err(|e| std::io::Error::other(e.to_string()))?;
    if closed && s.valid_len == len {
        let _ = std::fs::write(
            sidecar_path(segment),
            xaso_record::scan::sidecar::encode(&s, len),
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment whose first fragment fails to be written (a full disk) is closed in the
    /// index before a barrier queued with it is answered: at shutdown the barrier is the
    /// last thing awaited, and the segment was left open.
    #[test]
    fn a_barrier_comes_after_the_segments_that_failed_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .status();
        if !mounted.is_ok_and(|s| s.success()) {
            eprintln!("skipped: mounting a small tmpfs needs root");
            return;
        }
        let (itx, mut irx) = tokio::sync::mpsc::unbounded_channel();
        let disk = start(dir.path().to_owned(), 16, itx, Default::default());
        let path = "recordings/1/seg.mp4".to_string();
        let meta = SegmentMeta {
            camera_id: 1,
            path: path.clone(),
            run_id: 1,
            start_ms: 0,
            video_codec: xaso_base::Codec::H264,
            audio_codec: None,
            width: 640,
            height: 360,
        };
        let failed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let too_big = xaso_record::fmp4::FragmentBytes {
            head: vec![0; 8],
            data: vec![bytes::Bytes::from(vec![0u8; 256 << 10])],
        };
        let frag = FragMeta {
            end_ms: 1000,
            video_samples: 25,
            audio_samples: 0,
            keyframe: Some((0, 1000)),
        };
        for cmd in [
            DiskCmd::Create {
                meta,
                init: vec![0; 1000],
                failed: failed.clone(),
            },
            DiskCmd::Append {
                path: path.clone(),
                bytes: too_big,
                frag,
            },
            DiskCmd::Barrier(tx),
        ] {
            assert!(disk.try_send(cmd).is_ok());
        }
        let mut events = Vec::new();
        while let Some(batch) = irx.blocking_recv() {
            let end = batch.iter().any(|e| matches!(e, IndexEvent::Barrier(_)));
            events.extend(batch);
            if end {
                break;
            }
        }
        let names: Vec<&str> = events
            .iter()
            .map(|e| match e {
                IndexEvent::Created { .. } => "created",
                IndexEvent::Appended { .. } => "appended",
                IndexEvent::Closed { .. } => "closed",
                IndexEvent::Barrier(_) => "barrier",
            })
            .collect();
        assert_eq!(names, ["created", "closed", "barrier"]);
        assert!(failed.load(Ordering::Relaxed));
        assert_eq!(disk.stats.write_errors.load(Ordering::Relaxed), 1);
        drop(rx);
        drop(disk);
        let _ = std::process::Command::new("umount")
            .arg(dir.path())
            .status();
    }
}
