//! What a link can carry, as its sender sees it (sans-IO, `now` passed in): the link's
//! writer reports each frame it writes and the media still queued behind it; while the
//! queue stays backlogged for a whole window, what was written in that window is what the
//! link carries. While it is not, the estimate grows slowly toward a little more than what
//! the link carries now (a probe: the far side, asking up to its budget, finds out whether
//! a little more fits; a link that got wider is found again), never to far above it, so
//! that the far side never asks for a burst the link cannot take.
//! No estimate at all until the link has once been backlogged: a wide link is never
//! limited by a guess.
//!
//! The sender tells the far side (`rate` messages), which asks for no more than fits:
//! a meeting's trunk gets its share as its budget (`xaso_sfu::core`'s budget module).

use std::time::{Duration, Instant};

/// One measurement.
const WINDOW: Duration = Duration::from_millis(500);
/// Queued media bytes that count as a backlog (a frame or two of video always wait a
/// moment; a backlog is a queue that does not empty in a whole window).
const BACKLOG: usize = 24 * 1024;
/// A queue this deep for [`DEEP_WINDOW`] ends its window at once, as backlogged: the far
/// side is told sooner when far too much is sent.
const DEEP_BACKLOG: usize = 64 * 1024;
const DEEP_WINDOW: Duration = Duration::from_millis(150);
/// A backlogged window sets the estimate to this share of what it carried.
const BACKLOG_DRAIN: f64 = 0.9;
/// A window not backlogged grows the estimate by this factor at most (about 10 % a
/// second)...
const PROBE_STEP: f64 = 1.05;
/// ...up to this much more than the window carried.
const PROBE_ABOVE: f64 = 1.25;
/// The far side is told again when the estimate moved by more than this share, or after
/// [`TELL_EVERY`].
const TELL_CHANGE: f64 = 0.1;
const TELL_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct RateMeter {
    window: Option<Window>,
    estimate: Option<u64>,
    told: Option<(u64, Instant)>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    bytes: u64,
    /// The least media queued after any write of the window.
    min_queued: usize,
}

impl RateMeter {
    /// The link's estimate, bits per second (`None` until it was once backlogged).
    pub fn estimate(&self) -> Option<u64> {
        self.estimate
    }

    /// `bytes` were written; `queued` media bytes still wait behind them.
    pub fn sent(&mut self, now: Instant, bytes: usize, queued: usize) {
        self.roll(now);
        let w = self.window.get_or_insert(Window {
            start: now,
            bytes: 0,
            min_queued: usize::MAX,
        });
        w.bytes += bytes as u64;
        w.min_queued = w.min_queued.min(queued);
    }

    /// Closes the window if it is over.
    fn roll(&mut self, now: Instant) {
        let Some(w) = &self.window else { return };
        let took = now.saturating_duration_since(w.start);
        let deep =
            took >= DEEP_WINDOW && w.min_queued != usize::MAX && w.min_queued >= DEEP_BACKLOG;
        if took < WINDOW && !deep {
            return;
        }
        let bps = (w.bytes as f64 * 8.0 / took.as_secs_f64()) as u64;
        let backlogged = w.min_queued != usize::MAX && w.min_queued >= BACKLOG;
        self.window = None;
        if backlogged {
            // A little under what it carried, so that the queue drains.
            self.estimate = Some(((bps as f64 * BACKLOG_DRAIN) as u64).max(1));
        } else if let Some(e) = self.estimate {
            let toward = (bps as f64 * PROBE_ABOVE) as u64;
            if toward > e {
                self.estimate = Some(toward.min((e as f64 * PROBE_STEP) as u64));
            }
        }
    }

    /// The estimate to tell the far side now, if due.
    pub fn poll_tell(&mut self, now: Instant) -> Option<u64> {
        self.roll(now);
        let e = self.estimate?;
        let due = match self.told {
            None => true,
            Some((t, at)) => {
                (e as f64 - t as f64).abs() > t as f64 * TELL_CHANGE
                    || now.saturating_duration_since(at) >= TELL_EVERY
            }
        };
        due.then(|| {
            self.told = Some((e, now));
            e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `rate` bits per second for `secs`, in 1,200-byte frames, with `queued` bytes
    /// waiting after each; returns what was told meanwhile.
    fn run(m: &mut RateMeter, t: &mut Instant, rate: u64, secs: f64, queued: usize) -> Vec<u64> {
        let every = Duration::from_secs_f64(1200.0 * 8.0 / rate as f64);
        let end = *t + Duration::from_secs_f64(secs);
        let mut told = Vec::new();
        while *t < end {
            m.sent(*t, 1200, queued);
            told.extend(m.poll_tell(*t));
            *t += every;
        }
        told
    }

    #[test]
    fn a_link_never_backlogged_has_no_estimate() {
        let (mut m, mut t) = (RateMeter::default(), Instant::now());
        assert!(run(&mut m, &mut t, 50_000_000, 3.0, 0).is_empty());
        assert_eq!(m.estimate(), None);
    }

    #[test]
    fn a_backlog_measures_the_link_and_the_far_side_is_told() {
        let (mut m, mut t) = (RateMeter::default(), Instant::now());
        let told = run(&mut m, &mut t, 6_000_000, 2.0, 200_000);
        let e = m.estimate().unwrap();
        assert!((5_100_000..5_700_000).contains(&e), "{e}");
        assert!(!told.is_empty() && told.len() <= 2, "{told:?}");
        // Used near it without a backlog: it grows slowly, to a quarter above the use, and
        // is told again.
        let told = run(&mut m, &mut t, 5_800_000, 1.2, 0);
        let grown = m.estimate().unwrap();
        assert!(grown > e && grown < e * 12 / 10, "{e} → {grown}");
        let told2 = run(&mut m, &mut t, 5_800_000, 10.0, 0);
        let grown = m.estimate().unwrap();
        assert!((7_000_000..7_400_000).contains(&grown), "{e} → {grown}");
        assert!(!told.is_empty() || !told2.is_empty(), "the growth is told");
        // Little used: it holds.
        run(&mut m, &mut t, 500_000, 4.0, 0);
        assert_eq!(m.estimate(), Some(grown));
        // A backlog again at a lower rate: the estimate follows at once.
        run(&mut m, &mut t, 3_000_000, 1.2, 300_000);
        let e = m.estimate().unwrap();
        assert!((2_500_000..2_900_000).contains(&e), "{e}");
    }

    #[test]
    fn a_deep_queue_is_told_within_a_fraction_of_a_window() {
        let (mut m, mut t) = (RateMeter::default(), Instant::now());
        let told = run(&mut m, &mut t, 6_000_000, 0.2, 100_000);
        assert_eq!(told.len(), 1, "{told:?}");
    }

    #[test]
    fn a_queue_that_empties_within_the_window_is_no_backlog() {
        let (mut m, mut t) = (RateMeter::default(), Instant::now());
        let every = Duration::from_millis(2);
        for i in 0..1000 {
            // Bursts of queued frames, then an empty queue.
            let queued = if i % 50 < 40 { 100_000 } else { 0 };
            m.sent(t, 1200, queued);
            t += every;
        }
        assert_eq!(m.estimate(), None);
    }
}
