//! The tick grid: when a 20 ms tick is due, sans-IO.
//!
//! Everything that runs at the media rate (a call's send and playout, the reactor that
//! drives many calls, the bridge to audio devices) runs on a fixed grid of instants
//! `start + k × period`. A tick that runs late keeps its scheduled instant, and the
//! next one is due one period after that scheduled instant, not after the late run:
//! a stall is caught up at once and the long-run rate stays exactly 50 per second. A
//! grid that falls more than [`MAX_BEHIND`] behind restarts at the present instead of
//! bursting, and counts the ticks it skipped.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use media_core::tick::{TICK, TickGrid};
//!
//! let t0 = Instant::now();
//! let mut grid = TickGrid::new(t0);
//! assert_eq!(grid.next_deadline(), t0);
//! // A driver that wakes 7 ms late runs the tick scheduled at t0 ...
//! let tick = grid.poll(t0 + Duration::from_millis(7)).expect("due");
//! assert_eq!((tick.index, tick.scheduled), (0, t0));
//! assert_eq!(tick.lateness, Duration::from_millis(7));
//! // ... and the next one is still due at t0 + 20 ms.
//! assert_eq!(grid.next_deadline(), t0 + TICK);
//! assert!(grid.poll(t0 + Duration::from_millis(19)).is_none());
//! ```

use std::time::{Duration, Instant};

use crate::frame::FRAME_MS;

/// The media tick: one 20 ms frame.
pub const TICK: Duration = Duration::from_millis(FRAME_MS as u64);

/// A tick that runs more than this after its scheduled instant counts as late.
pub const LATE_TICK: Duration = Duration::from_millis(5);

/// A grid further behind than this restarts at the present and counts the ticks it
/// skipped.
pub const MAX_BEHIND: Duration = Duration::from_millis(200);

/// One tick that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Ticks run before this one on this grid (0 for the first).
    pub index: u64,
    /// The instant the tick was scheduled for (the media clock: use it, not the
    /// present, as the tick's time).
    pub scheduled: Instant,
    /// How late it runs: the present minus `scheduled`.
    pub lateness: Duration,
}

impl Tick {
    /// True if it runs more than [`LATE_TICK`] late.
    pub fn is_late(&self) -> bool {
        self.lateness > LATE_TICK
    }
}

/// Counters of a grid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GridStats {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks that ran more than [`LATE_TICK`] late.
    pub late: u64,
    /// Ticks skipped because the grid fell more than [`MAX_BEHIND`] behind.
    pub skipped: u64,
    /// Times the grid restarted at the present.
    pub restarts: u64,
}

/// A fixed grid of instants `start + k × period` (see the [module documentation](self)).
#[derive(Debug, Clone, Copy)]
pub struct TickGrid {
    period: Duration,
    next: Instant,
    stats: GridStats,
}

impl TickGrid {
    /// A 20 ms grid whose first tick is due at `start`.
    pub fn new(start: Instant) -> Self {
        Self::with_period(start, TICK)
    }

    /// A grid of `period` (at least 1 ms) whose first tick is due at `start`. A period
    /// off the nominal 20 ms simulates a clock that drifts against the receiver's.
    pub fn with_period(start: Instant, period: Duration) -> Self {
        Self {
            period: period.max(Duration::from_millis(1)),
            next: start,
            stats: GridStats::default(),
        }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// When the next tick is due.
    pub fn next_deadline(&self) -> Instant {
        self.next
    }

    /// The tick due at `now`, if any, and advances the grid by one period. Call again
    /// until `None` to catch up after a stall. A grid more than [`MAX_BEHIND`] behind
    /// restarts at `now` first (the skipped ticks are counted, not run).
    pub fn poll(&mut self, now: Instant) -> Option<Tick> {
        if now < self.next {
            return None;
        }
        let behind = now - self.next;
        if behind > MAX_BEHIND {
            let skipped = behind.as_nanos() / self.period.as_nanos();
            self.stats.skipped += u64::try_from(skipped).unwrap_or(u64::MAX);
            self.stats.restarts += 1;
            self.next = now;
        }
        let tick = Tick {
            index: self.stats.ticks,
            scheduled: self.next,
            lateness: now - self.next,
        };
        self.stats.ticks += 1;
        if tick.is_late() {
            self.stats.late += 1;
        }
        self.next += self.period;
        Some(tick)
    }

    /// The counters.
    pub fn stats(&self) -> GridStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ticks_stay_on_the_grid_and_catch_up() {
        let t0 = Instant::now();
        let mut g = TickGrid::new(t0);
        let mut seen = Vec::new();
        // A driver waking every 1 ms for one second: 50 ticks, each on time.
        for i in 0..1000 {
            while let Some(t) = g.poll(t0 + ms(i)) {
                assert!(!t.is_late());
                seen.push(t.scheduled);
            }
        }
        assert_eq!(seen.len(), 50);
        for (k, t) in seen.iter().enumerate() {
            assert_eq!(*t, t0 + TICK * k as u32);
        }
        // A 101 ms stall: the 6 ticks due (1000..=1100) run at once, on the grid.
        let now = t0 + ms(1100);
        let mut burst = Vec::new();
        while let Some(t) = g.poll(now) {
            burst.push(t);
        }
        assert_eq!(burst.len(), 6);
        assert_eq!(burst[5].scheduled, t0 + ms(1100));
        assert_eq!(burst[0].lateness, ms(100));
        assert_eq!(
            g.stats().late,
            5,
            "all but the last ran more than 5 ms late"
        );
        assert_eq!(g.stats().skipped, 0);
    }

    #[test]
    fn a_long_stall_restarts_the_grid_and_counts_what_it_skipped() {
        let t0 = Instant::now();
        let mut g = TickGrid::new(t0);
        assert!(g.poll(t0).is_some());
        assert!(g.poll(t0 + ms(20)).is_some());
        // Due at 40; the driver comes back at 520: 480 ms behind, 24 ticks skipped.
        let t = g.poll(t0 + ms(520)).expect("due");
        assert_eq!(t.scheduled, t0 + ms(520));
        assert_eq!(t.lateness, Duration::ZERO);
        assert_eq!(g.stats().skipped, 24);
        assert_eq!(g.stats().restarts, 1);
        assert!(
            g.poll(t0 + ms(520)).is_none(),
            "restarted: nothing else due"
        );
        assert_eq!(g.next_deadline(), t0 + ms(540));
    }

    #[test]
    fn a_drifting_period_keeps_its_own_rate() {
        let t0 = Instant::now();
        let mut g = TickGrid::with_period(t0, Duration::from_micros(20_100));
        let mut n = 0;
        for i in 0..=10_000 {
            while g.poll(t0 + ms(i)).is_some() {
                n += 1;
            }
        }
        // 10 s / 20.1 ms = 497.5: ticks 0..=497 are due by the end.
        assert_eq!(n, 498);
        assert_eq!(g.stats().late, 0);
    }
}
