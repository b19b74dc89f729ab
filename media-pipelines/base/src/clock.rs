//! Clocks: wall-clock time (for timestamps people read, audit rows, expiries) and monotonic
//! time (for intervals), behind one trait.
//!
//! [`SimulatedClocks`] advances only when told, so rate limits, session expiry and (later)
//! retention are tested deterministically.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time. Implementations must be cheap to call and thread-safe.
pub trait Clocks: Send + Sync + 'static {
    /// Wall-clock time in milliseconds since the Unix epoch (UTC).
    fn realtime_ms(&self) -> i64;
    /// A monotonic instant; only differences between two values mean anything.
    fn monotonic(&self) -> Instant;
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealClocks;

impl Clocks for RealClocks {
    fn realtime_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// Clocks that move only when [`SimulatedClocks::advance`] is called. Clones share one time.
#[derive(Clone, Debug)]
pub struct SimulatedClocks(Arc<SimState>);

#[derive(Debug)]
struct SimState {
    boot_realtime_ms: i64,
    boot_instant: Instant,
    elapsed_ms: AtomicI64,
}

impl SimulatedClocks {
    /// Starts at `realtime_ms` milliseconds since the Unix epoch.
    pub fn new(realtime_ms: i64) -> Self {
        SimulatedClocks(Arc::new(SimState {
            boot_realtime_ms: realtime_ms,
            boot_instant: Instant::now(),
            elapsed_ms: AtomicI64::new(0),
        }))
    }

    /// Moves both clocks forward.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clocks for SimulatedClocks {
    fn realtime_ms(&self) -> i64 {
        self.0.boot_realtime_ms + self.0.elapsed_ms.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Instant {
        let ms = self.0.elapsed_ms.load(Ordering::SeqCst);
        self.0.boot_instant + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clocks_move_only_when_advanced() {
        let c = SimulatedClocks::new(1_700_000_000_000);
        let m0 = c.monotonic();
        assert_eq!(c.realtime_ms(), 1_700_000_000_000);
        c.advance(Duration::from_secs(90));
        assert_eq!(c.realtime_ms(), 1_700_000_090_000);
        assert_eq!(c.monotonic() - m0, Duration::from_secs(90));
        let shared = c.clone();
        shared.advance(Duration::from_millis(5));
        assert_eq!(c.realtime_ms(), 1_700_000_090_005);
    }

    #[test]
    fn real_clocks_are_after_2020() {
        assert!(RealClocks.realtime_ms() > 1_577_836_800_000);
    }
}
