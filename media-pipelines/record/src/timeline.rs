//! Camera time to wall-clock time: a track's decode times come from the camera's RTP
//! timestamps (exact spacing between frames), slewed by at most `MAX_SLEW_PPM` so that they
//! follow the local clock (cameras' clocks drift by tens to hundreds of ppm). See
//! `docs/design/time.md`.
//!
//! Sans-IO: each call passes the sample's raw timestamp and the local time it arrived.

use std::collections::VecDeque;

/// The fastest the recorded timeline may be sped up or slowed down to follow the local clock.
pub const MAX_SLEW_PPM: i64 = 500;
/// How much media time each correction looks back over.
const WINDOW_MS: i64 = 5_000;
/// A timestamp jump larger than this (either way) ends the run.
const MAX_JUMP_MS: i64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Decode time (track timescale, since the run's origin) and wall-clock time (ms).
    Sample { dts: u64, wall_ms: i64 },
    /// The camera's clock jumped: start a new run.
    Discontinuity,
}

#[derive(Debug)]
pub struct Timeline {
    timescale: i64,
    origin_wall_ms: i64,
    last_raw: i64,
    dts: u64,
    slew_ppm: i64,
    acc: i64,
    window_start_dts: u64,
    /// (local arrival − predicted wall time) of the samples in the current window, ms.
    lags: VecDeque<i64>,
}

impl Timeline {
    /// Starts a track whose first sample has camera timestamp `raw` and arrived at local
    /// time `local_ms`; decode times count from the run's `origin_wall_ms`.
    pub fn new(timescale: u32, raw: i64, local_ms: i64, origin_wall_ms: i64) -> (Self, Step) {
        let timescale = i64::from(timescale.max(1));
        let dts = ((local_ms - origin_wall_ms).max(0) * timescale / 1000) as u64;
        let t = Timeline {
            timescale,
            origin_wall_ms,
            last_raw: raw,
            dts,
            slew_ppm: 0,
            acc: 0,
            window_start_dts: dts,
            lags: VecDeque::new(),
        };
        let step = Step::Sample {
            dts,
            wall_ms: t.wall_ms(dts),
        };
        (t, step)
    }

    pub fn wall_ms(&self, dts: u64) -> i64 {
        self.origin_wall_ms + (dts as i64) * 1000 / self.timescale
    }

    pub fn slew_ppm(&self) -> i64 {
        self.slew_ppm
    }

    pub fn push(&mut self, raw: i64, local_ms: i64) -> Step {
        let delta = raw - self.last_raw;
        if delta < 0 || delta > MAX_JUMP_MS * self.timescale / 1000 {
            return Step::Discontinuity;
        }
        self.last_raw = raw;
        self.acc += delta * self.slew_ppm;
        let adj = self.acc / 1_000_000;
        self.acc %= 1_000_000;
        self.dts += (delta + adj).max(0) as u64;
        let wall_ms = self.wall_ms(self.dts);
        self.lags.push_back(local_ms - wall_ms);
        let window_ticks = (WINDOW_MS * self.timescale / 1000) as u64;
        if self.dts - self.window_start_dts >= window_ticks {
            // Network delay only ever adds lag, so the least lag in the window is the best
            // estimate of how far the timeline is from the local clock. Absorb it over the
            // next window, within the slew limit.
            let lag = self.lags.iter().copied().min().unwrap_or(0);
            self.slew_ppm = (lag * 1_000_000 / WINDOW_MS).clamp(-MAX_SLEW_PPM, MAX_SLEW_PPM);
            self.lags.clear();
            self.window_start_dts = self.dts;
        }
        Step::Sample {
            dts: self.dts,
            wall_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera whose clock runs `ppm` fast, frames every 40 ms of true time, arriving with
    /// 0–30 ms of network jitter; after an hour the recorded time of the last frame is
    /// within one frame of when it was taken.
    fn drift(ppm: i64) -> (i64, i64, i64) {
        let t0 = 1_795_000_000_000i64;
        let mut seed = 42u64;
        let mut jitter = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % 30) as i64
        };
        let raw_at = |true_ms: i64| (true_ms - t0) * 90 * (1_000_000 + ppm) / 1_000_000;
        let (mut tl, first) = Timeline::new(90_000, raw_at(t0), t0 + jitter(), t0);
        assert!(matches!(first, Step::Sample { dts: _, .. }));
        let mut last = (0, 0, 0);
        for i in 1..=(3600 * 25) {
            let true_ms = t0 + i * 40;
            match tl.push(raw_at(true_ms), true_ms + jitter()) {
                Step::Sample { wall_ms, .. } => last = (wall_ms, true_ms, tl.slew_ppm()),
                Step::Discontinuity => panic!("no jump here"),
            }
        }
        last
    }

    #[test]
    fn follows_a_fast_or_slow_camera_clock_within_a_frame() {
        for ppm in [-300, -100, 0, 100, 300] {
            let (wall, truth, slew) = drift(ppm);
            assert!(
                (wall - truth).abs() <= 40,
                "{ppm} ppm: recorded {wall}, true {truth}"
            );
            // Uncorrected, 300 ppm would put the last frame 1.08 s off: the slew did that work.
            assert!(slew.abs() <= MAX_SLEW_PPM);
        }
    }

    #[test]
    fn jumps_end_the_run() {
        let (mut tl, _) = Timeline::new(90_000, 1000, 0, 0);
        assert!(matches!(
            tl.push(4600, 40),
            Step::Sample {
                dts: 3600,
                wall_ms: 40
            }
        ));
        assert_eq!(tl.push(100, 80), Step::Discontinuity);
        assert_eq!(tl.push(4600 + 90_000 * 11, 11_000), Step::Discontinuity);
        assert!(matches!(tl.push(8200, 80), Step::Sample { dts: 7200, .. }));
    }

    #[test]
    fn a_late_track_starts_at_its_offset_from_the_origin() {
        let (_, s) = Timeline::new(8000, 0, 1_250, 1_000);
        assert_eq!(
            s,
            Step::Sample {
                dts: 2000,
                wall_ms: 1_250
            }
        );
    }
}
