//! Recording every camera around the clock: one task per camera (ingest → [`run::RunState`]
//! → the disk thread), reconnecting with capped exponential backoff, never affecting the
//! other cameras; the index task; and the repair of segments left open by a crash.
//! [`Recorder::sync`] starts and stops tasks to match the camera table.

pub mod disk;
pub mod index;
pub mod retention;
pub mod run;

use crate::store::{self, Camera};
use disk::{DiskCmd, DiskHandle};
use run::{Out, RunConfig, RunState};
use serde::Serialize;
use sqlx::AnyPool;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use xaso_base::Clocks;
use xaso_ingest::{IngestError, IngestErrorKind, Opener, Source, Transport};

/// Settings of the recorder (from `[recording]`).
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    pub data_dir: PathBuf,
    pub segment_ms: i64,
    pub fragment_ms: u32,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// A camera that sends nothing for this long is reconnected.
    pub stall_timeout: Duration,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct CameraStatus {
    /// `connecting`, `streaming`, `failed` or `stopped`.
    pub state: String,
    pub recording: bool,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: u16,
    pub height: u16,
    /// Video frames per second over the last few seconds.
    pub fps: f64,
    /// Received bitrate, kbit/s, over the last few seconds.
    pub bitrate_kbps: f64,
    pub last_error: Option<String>,
    /// RFC 3339.
    pub last_frame_at: Option<String>,
    pub frames_received: u64,
    /// Frames not recorded because the disk could not keep up.
    pub frames_dropped: u64,
    pub reconnects: u64,
}

pub struct Recorder {
    cfg: RecorderConfig,
    db: AnyPool,
    opener: Arc<dyn Opener>,
    clocks: Arc<dyn Clocks>,
    disk: DiskHandle,
    statuses: Mutex<HashMap<i64, CameraStatus>>,
    tasks: Mutex<HashMap<i64, Task>>,
    pub dropped_total: AtomicU64,
    /// Notified when the disk fails a write: retention should free space now.
    pub disk_trouble: Arc<tokio::sync::Notify>,
    /// Live view, when it runs: camera tasks hand it their frames.
    live: std::sync::OnceLock<Arc<crate::live::Live>>,
}

struct Task {
    camera: Camera,
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Repairs what a crash left open, then starts the index task and the disk thread.
    /// Call [`Recorder::sync`] to start the cameras.
    pub async fn start(
        db: AnyPool,
        cfg: RecorderConfig,
        opener: Arc<dyn Opener>,
        clocks: Arc<dyn Clocks>,
    ) -> crate::error::Result<Arc<Recorder>> {
        let report = index::repair(&db, &cfg.data_dir).await?;
        if report != index::RepairReport::default() {
            tracing::info!(?report, "recording index repaired after an unclean stop");
        }
        let (itx, irx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(index::run(db.clone(), cfg.data_dir.clone(), irx));
        let disk_trouble = Arc::new(tokio::sync::Notify::new());
        let disk = disk::start(cfg.data_dir.clone(), 4096, itx, disk_trouble.clone());
        Ok(Arc::new(Recorder {
            cfg,
            db,
            opener,
            clocks,
            disk,
            statuses: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
            dropped_total: AtomicU64::new(0),
            disk_trouble,
            live: std::sync::OnceLock::new(),
        }))
    }

    /// Starts tasks for cameras to record, stops those of removed, changed or paused ones.
    pub async fn sync(self: &Arc<Self>) -> crate::error::Result<()> {
        let wanted: HashMap<i64, Camera> = store::local_cameras(&self.db)
            .await?
            .into_iter()
            .filter(|c| c.record)
            .map(|c| (c.id, c))
            .collect();
        let mut stopped = Vec::new();
        {
            let mut tasks = self.tasks.lock().expect("tasks lock");
            let stale: Vec<i64> = tasks
                .iter()
                .filter(|(id, t)| wanted.get(id) != Some(&t.camera))
                .map(|(id, _)| *id)
                .collect();
            for id in stale {
                let t = tasks.remove(&id).expect("listed");
                let _ = t.stop.send(true);
                stopped.push(t.join);
            }
        }
        for j in stopped {
            let _ = j.await;
        }
        let mut tasks = self.tasks.lock().expect("tasks lock");
        self.statuses
            .lock()
            .expect("status lock")
            .retain(|id, _| wanted.contains_key(id));
        for (id, cam) in wanted {
            if tasks.contains_key(&id) {
                continue;
            }
            // A camera just switched to recording may still be pulled for live view alone:
            // the tap must have one feed.
            if let Some(sources) = self.live.get().and_then(|l| l.sources.get()) {
                sources.stop(id);
            }
            let (stop, rx) = watch::channel(false);
            let me = self.clone();
            let c = cam.clone();
            let join = ingest_runtime(id).spawn(async move { me.camera_task(c, rx).await });
            tasks.insert(
                id,
                Task {
                    camera: cam,
                    stop,
                    join,
                },
            );
        }
        Ok(())
    }

    /// Connects live view: from now on camera tasks feed its taps. Call before `sync`.
    pub fn set_live(&self, live: Arc<crate::live::Live>) {
        let _ = self.live.set(live);
    }

    /// Stops every camera, closing their segments.
    pub async fn shutdown(&self) {
        let tasks: Vec<Task> = self
            .tasks
            .lock()
            .expect("tasks lock")
            .drain()
            .map(|(_, t)| t)
            .collect();
        for t in &tasks {
            let _ = t.stop.send(true);
        }
        for t in tasks {
            let _ = t.join.await;
        }
        self.disk.flush().await;
    }

    /// Waits until all footage received so far is on disk and indexed.
    pub async fn flush(&self) {
        self.disk.flush().await;
    }

    pub fn disk_stats(&self) -> &disk::DiskStats {
        &self.disk.stats
    }

    pub fn status(&self, camera_id: i64) -> Option<CameraStatus> {
        self.statuses
            .lock()
            .expect("status lock")
            .get(&camera_id)
            .cloned()
    }

    pub fn statuses(&self) -> HashMap<i64, CameraStatus> {
        self.statuses.lock().expect("status lock").clone()
    }

    fn publish(&self, id: i64, f: impl FnOnce(&mut CameraStatus)) {
        let mut m = self.statuses.lock().expect("status lock");
        f(m.entry(id).or_default());
    }

    async fn camera_task(self: Arc<Self>, cam: Camera, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            self.publish(cam.id, |s| s.state = "connecting".into());
            let mut streamed = false;
            let res = self.session(&cam, &mut stop, &mut streamed).await;
            let Err(e) = res else {
                self.publish(cam.id, |s| {
                    s.state = "stopped".into();
                    s.recording = false;
                });
                return;
            };
            tracing::warn!(camera = cam.id, name = %cam.name, error = %e, "camera session ended");
            self.publish(cam.id, |s| {
                s.state = "failed".into();
                s.recording = false;
                s.last_error = Some(e.message.clone());
                s.reconnects += 1;
            });
            if streamed {
                // The camera worked until now: try again at once, not after a long backoff.
                backoff = Duration::from_millis(250);
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(self.cfg.reconnect_max);
            if e.kind == IngestErrorKind::InvalidSource {
                backoff = self.cfg.reconnect_max;
            }
        }
    }

    /// One connection to the camera. `Ok(())` when told to stop; `streamed` is set once a
    /// frame arrives.
    async fn session(
        &self,
        cam: &Camera,
        stop: &mut watch::Receiver<bool>,
        streamed: &mut bool,
    ) -> Result<(), IngestError> {
        let src = Source {
            url: cam.url.clone(),
            transport: if cam.transport == "udp" {
                Transport::Udp
            } else {
                Transport::Tcp
            },
        };
        let open = self.opener.open(&src);
        let mut stream = tokio::select! {
            r = tokio::time::timeout(self.cfg.stall_timeout + Duration::from_secs(5), open) => match r {
                Ok(r) => r?,
                Err(_) => return Err(IngestError::new(IngestErrorKind::Timeout, "the camera did not answer in time")),
            },
            _ = stop.changed() => return Ok(()),
        };
        let mut rs = RunState::new(
            RunConfig {
                camera_id: cam.id,
                segment_ms: self.cfg.segment_ms,
                fragment_ms: self.cfg.fragment_ms,
            },
            stream.params(),
        );
        let failed = Arc::new(AtomicBool::new(false));
        let mut meter = Meter::default();
        let tap = self.live.get().map(|l| l.tap(cam.id));
        let codecs = stream.codecs().to_vec();
        let mut last_publish = self.clocks.monotonic();
        // One stall timer and one stop watch for the whole session, not one per frame: the
        // timer is moved on only when it fires (a frame per 40 ms would otherwise touch the
        // timer wheel and the watch's waiter list 25 times a second per camera).
        let stall = tokio::time::sleep(self.cfg.stall_timeout);
        tokio::pin!(stall);
        let stopped = stop.changed();
        tokio::pin!(stopped);
        let mut last_frame = tokio::time::Instant::now();
        let result = loop {
            let next = tokio::select! {
                biased;
                r = stream.next() => r,
                _ = &mut stall => {
                    let due = last_frame + self.cfg.stall_timeout;
                    if tokio::time::Instant::now() >= due {
                        break Err(IngestError::new(
                            IngestErrorKind::Timeout,
                            format!("no frame for {} s", self.cfg.stall_timeout.as_secs()),
                        ));
                    }
                    stall.as_mut().reset(due);
                    continue;
                }
                _ = &mut stopped => break Ok(()),
            };
            let frame = match next {
                Err(e) => break Err(e),
                Ok(None) => {
                    break Err(IngestError::new(
                        IngestErrorKind::Network,
                        "the camera ended the stream",
                    ));
                }
                Ok(Some(f)) => f,
            };
            *streamed = true;
            let now = self.clocks.monotonic();
            last_frame = tokio::time::Instant::now();
            let local_ms = self.clocks.realtime_ms();
            meter.add(now, &frame, stream.codecs());
            if let Some(p) = &frame.params {
                let p = p.clone();
                self.publish(cam.id, move |s| {
                    if p.codec.is_video() {
                        s.video_codec = Some(p.codec.name().into());
                        (s.width, s.height) = (p.width, p.height);
                    } else {
                        s.audio_codec = Some(p.codec.name().into());
                    }
                });
            }
            if let Some(tap) = &tap {
                tap.ingest_frame(&codecs, &frame);
            }
            if failed.swap(false, Ordering::Relaxed) {
                rs.abandon_segment();
            }
            let outs = rs.on_frame(frame, local_ms);
            self.send_all(outs, &failed, &mut rs);
            if now.duration_since(last_publish) >= Duration::from_secs(1) {
                last_publish = now;
                let (fps, kbps) = meter.rates(now);
                let recording = rs.is_recording();
                self.publish(cam.id, |s| {
                    s.state = "streaming".into();
                    s.recording = recording;
                    s.fps = fps;
                    s.bitrate_kbps = kbps;
                    s.frames_received = meter.frames;
                    s.last_frame_at = Some(crate::api::rfc3339(local_ms));
                });
            }
        };
        if let Some(tap) = &tap {
            tap.stopped();
        }
        let mut outs = Vec::new();
        rs.end_run(&mut outs);
        self.send_all(outs, &failed, &mut rs);
        result
    }

    fn send_all(&self, outs: Vec<Out>, failed: &Arc<AtomicBool>, rs: &mut RunState) {
        for o in outs {
            let (cmd, samples) = match o {
                Out::Create { meta, init } => (
                    DiskCmd::Create {
                        meta,
                        init,
                        failed: failed.clone(),
                    },
                    0,
                ),
                Out::Append { path, bytes, frag } => {
                    let n = u64::from(frag.video_samples);
                    (DiskCmd::Append { path, bytes, frag }, n)
                }
                Out::Close { path } => (DiskCmd::Close { path }, 0),
            };
            if let Err(cmd) = self.disk.try_send(cmd) {
                self.dropped_total.fetch_add(samples, Ordering::Relaxed);
                if let DiskCmd::Create { meta, .. } = &cmd {
                    tracing::warn!(
                        camera = meta.camera_id,
                        "disk queue full: segment not started"
                    );
                    rs.abandon_segment();
                } else {
                    tracing::warn!(samples, "disk queue full: frames dropped");
                }
                if samples > 0 {
                    let id = match &cmd {
                        DiskCmd::Append { path, .. } => {
                            path.split('/').nth(1).and_then(|s| s.parse().ok())
                        }
                        _ => None,
                    };
                    if let Some(id) = id {
                        self.publish(id, |s| s.frames_dropped += samples);
                    }
                }
            }
        }
    }
}

/// The runtimes camera tasks run on: single-threaded tokio runtimes, one per two cores,
/// each on its own thread, each camera always on the same one. Under load a camera's
/// packets are then handled in long runs on one thread, instead of waking the shared
/// runtime's workers one after the other (see docs/benchmarks.md for what it saves).
/// HTTP, the index and live view stay on the main runtime.
pub(crate) fn ingest_runtime(camera_id: i64) -> tokio::runtime::Handle {
    static POOL: std::sync::OnceLock<Vec<tokio::runtime::Handle>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..(cores / 2).clamp(1, 8))
            .map(|i| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building an ingest runtime");
                let handle = rt.handle().clone();
                std::thread::Builder::new()
                    .name(format!("xaso-ingest-{i}"))
                    .spawn(move || rt.block_on(std::future::pending::<()>()))
                    .expect("spawning an ingest thread");
                handle
            })
            .collect()
    });
    pool[camera_id.rem_euclid(pool.len() as i64) as usize].clone()
}

/// Frame rate and bitrate over a sliding window of a few seconds.
#[derive(Default)]
struct Meter {
    window: std::collections::VecDeque<(std::time::Instant, bool, usize)>,
    frames: u64,
}

impl Meter {
    fn add(
        &mut self,
        now: std::time::Instant,
        f: &xaso_ingest::Frame,
        codecs: &[xaso_base::Codec],
    ) {
        self.frames += 1;
        let video = codecs.get(f.track).is_some_and(|c| c.is_video());
        self.window.push_back((now, video, f.data.len()));
        while self
            .window
            .front()
            .is_some_and(|w| now.duration_since(w.0) > Duration::from_secs(5))
        {
            self.window.pop_front();
        }
    }

    /// Rates over the window: what arrived after its first entry, divided by the time
    /// since that entry (counting the first too would overstate them by one frame).
    fn rates(&self, now: std::time::Instant) -> (f64, f64) {
        let Some(first) = self.window.front() else {
            return (0.0, 0.0);
        };
        let secs = now.duration_since(first.0).as_secs_f64();
        if secs < 0.5 {
            return (0.0, 0.0);
        }
        let later = self.window.iter().skip(1);
        let frames = later.clone().filter(|w| w.1).count() as f64;
        let bytes: usize = later.map(|w| w.2).sum();
        (
            (frames / secs * 10.0).round() / 10.0,
            (bytes as f64 * 8.0 / 1000.0 / secs).round(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_reports_frame_rate_and_bitrate() {
        let t0 = std::time::Instant::now();
        let mut m = Meter::default();
        let codecs = [xaso_base::Codec::H264];
        for i in 0..=125u64 {
            let f = run::frame(0, 0, false, bytes::Bytes::from(vec![0; 500]), None);
            m.add(t0 + Duration::from_millis(i * 40), &f, &codecs);
        }
        // A 5 s window of 25 fps, 500-byte frames: 25 fps and 100 kbit/s.
        assert_eq!(m.rates(t0 + Duration::from_millis(5000)), (25.0, 100.0));
    }
}
