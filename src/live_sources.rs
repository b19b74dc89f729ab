//! Camera streams pulled for live view alone, on demand: a camera's sub-stream (grid
//! tiles, low-bandwidth mode), and the main stream of a camera that is not recorded. A
//! stream is opened when a viewer asks for it and closed once nobody has watched it for
//! [`LINGER`]; a recorded camera's main stream comes from the recorder's own connection.
//!
//! Each pull runs on the ingest runtimes (like recording) and feeds a [`Tap`] of its own:
//! the main stream's tap has the camera's id, the sub-stream's the negated id.

use crate::live::{Live, Tap};
use crate::store::Camera;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use xaso_ingest::{IngestError, IngestErrorKind, Opener, Source};

/// How long a stream stays open with nobody watching (a viewer switching tiles or
/// reconnecting finds it still there).
pub const LINGER: Duration = Duration::from_secs(20);
/// A camera silent this long is reconnected.
const STALL: Duration = Duration::from_secs(10);

/// Which of a camera's streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Main,
    Sub,
}

impl Stream {
    /// The tap (and forwarding-core source) id of this stream of `camera`.
    pub fn tap_id(self, camera: i64) -> i64 {
        match self {
            Stream::Main => camera,
            Stream::Sub => -camera,
        }
    }
}

/// The tap id of the H.264 transcode of `camera`'s H.265 main stream (see
/// `Live::transcoded`).
pub fn transcoded_tap_id(camera: i64) -> i64 {
    camera + (1 << 40)
}

pub struct LiveSources {
    opener: Arc<dyn Opener>,
    live: Weak<Live>,
    /// Running pulls by tap id, with the source they pull (a changed URL restarts it).
    running: Mutex<HashMap<i64, (Source, tokio::task::AbortHandle)>>,
}

impl LiveSources {
    pub fn new(opener: Arc<dyn Opener>, live: &Arc<Live>) -> Arc<LiveSources> {
        Arc::new(LiveSources {
            opener,
            live: Arc::downgrade(live),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Makes sure `src` feeds tap `tap_id`, and waits (up to `wait`) until it streams.
    /// `true` once it does.
    pub async fn ensure(self: &Arc<Self>, tap_id: i64, src: Source, wait: Duration) -> bool {
        let Some(live) = self.live.upgrade() else {
            return false;
        };
        let tap = live.tap(tap_id);
        {
            let mut running = self.running.lock().expect("sources lock");
            let current = running.get(&tap_id);
            let alive = current.is_some_and(|(s, h)| *s == src && !h.is_finished());
            if !alive {
                if let Some((_, h)) = running.remove(&tap_id) {
                    h.abort();
                }
                // Counted as watched from now: the pull must not end before the viewer
                // that asked for it subscribes.
                tap.touch();
                let me = self.clone();
                let (t, s) = (tap.clone(), src.clone());
                let h = crate::recorder::ingest_runtime(tap_id)
                    .spawn(async move { me.pull(tap_id, t, s).await })
                    .abort_handle();
                running.insert(tap_id, (src, h));
            }
        }
        tap.wait_keyframe(wait).await
    }

    /// Stops pulling `tap_id` (its camera is now recorded: the recorder feeds the tap).
    pub fn stop(&self, tap_id: i64) {
        if let Some((_, h)) = self.running.lock().expect("sources lock").remove(&tap_id) {
            h.abort();
            if let Some(live) = self.live.upgrade() {
                live.tap(tap_id).stopped(); // the next feed starts a new timeline
            }
        }
    }

    /// Pulls streams now, for metrics.
    pub fn count(&self) -> usize {
        let mut running = self.running.lock().expect("sources lock");
        running.retain(|_, (_, h)| !h.is_finished());
        running.len()
    }

    /// Pulls until nobody has watched for the linger time; reconnects with a backoff.
    async fn pull(self: Arc<Self>, tap_id: i64, tap: Arc<Tap>, src: Source) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let res = self.session(&tap, &src).await;
            tap.stopped();
            match res {
                Ok(()) => break, // nobody watches
                Err(e) => {
                    tracing::info!(tap = tap_id, error = %e, "live-only stream ended");
                    if tap.idle_for() >= LINGER {
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        let mut running = self.running.lock().expect("sources lock");
        if running.get(&tap_id).is_some_and(|(s, _)| *s == src) {
            running.remove(&tap_id);
        }
    }

    /// One connection: `Ok` when it was closed for want of viewers.
    async fn session(&self, tap: &Tap, src: &Source) -> Result<(), IngestError> {
        let open = tokio::time::timeout(STALL, self.opener.open(src));
        let mut stream = open.await.map_err(|_| {
            IngestError::new(IngestErrorKind::Timeout, "the camera did not answer")
        })??;
        let codecs = stream.codecs().to_vec();
        let mut check = tokio::time::interval(Duration::from_secs(1));
        loop {
            let next = tokio::select! {
                r = tokio::time::timeout(STALL, stream.next()) => r,
                _ = check.tick() => {
                    if tap.idle_for() >= LINGER {
                        return Ok(());
                    }
                    continue;
                }
            };
            let frame = match next {
                Err(_) => {
                    return Err(IngestError::new(
                        IngestErrorKind::Timeout,
                        "no frame for 10 s",
                    ));
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(None)) => {
                    return Err(IngestError::new(
                        IngestErrorKind::Network,
                        "the camera ended the stream",
                    ));
                }
                Ok(Ok(Some(f))) => f,
            };
            tap.ingest_frame(&codecs, &frame);
        }
    }
}

/// How long a viewer's request waits for a stream pulled on demand to show a keyframe.
pub const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(8);

/// The tap a viewer of this node's camera `cam` watches for `want`: the sub-stream when asked for and
/// configured (pulled on demand; the main stream if it cannot be had); the main stream of
/// a camera that is not recorded is pulled on demand too. A recorded camera's main stream
/// is the recorder's.
pub async fn prepare(live: &Arc<Live>, cam: &Camera, want: Stream, wait: Duration) -> i64 {
    let transport = if cam.transport == "udp" {
        xaso_ingest::Transport::Udp
    } else {
        xaso_ingest::Transport::Tcp
    };
    let pull = |url: &str, stream: Stream| {
        let src = xaso_ingest::Source {
            url: url.to_string(),
            transport,
        };
        let sources = live.sources.get().cloned();
        async move {
            match sources {
                Some(s) => s.ensure(stream.tap_id(cam.id), src, wait).await,
                None => false,
            }
        }
    };
    if want == Stream::Sub
        && let Some(url) = &cam.substream_url
        && pull(url, Stream::Sub).await
    {
        return Stream::Sub.tap_id(cam.id);
    }
    if !cam.record {
        pull(&cam.url, Stream::Main).await;
    }
    Stream::Main.tap_id(cam.id)
}
