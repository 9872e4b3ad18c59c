//! Platform health: `Normal` / `HeavilyLoaded` / `Overloaded`, computed from measured
//! per-call tick load.
//!
//! Every call records how long its ticks took, and once a second how many ticks it ran
//! and how many of them started late ([`LoadMeter`], lock-free atomics shared by the
//! reactor threads). Once per window the platform turns the window's figures into a
//! [`HealthReport`] with [`HealthMonitor::evaluate`] (sans-IO, time is an argument):
//! the *load* is the reactor threads' busy time (packets, QUIC and ticks) divided by
//! their wall time, and the *late-tick share* is the fraction of ticks that started
//! more than [`LATE_TICK`] after their scheduled instant. Health rises at once and falls only after
//! [`HealthSettings::recover_windows`] calm windows, so it does not flap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

pub use media_core::tick::LATE_TICK;

/// How loaded the platform is (Microsoft's `MediaPlatformHealthStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Health {
    /// Plenty of headroom.
    Normal,
    /// Working hard: consider steering new calls elsewhere.
    HeavilyLoaded,
    /// Media quality is at risk: new media sessions are refused.
    Overloaded,
}

/// Thresholds of the health estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthSettings {
    /// Length of one evaluation window (default 1 s).
    pub window: Duration,
    /// Load (busy / worker wall time) at or above which health is `HeavilyLoaded`
    /// (default 0.6).
    pub heavy_load: f64,
    /// Load at or above which health is `Overloaded` (default 0.85).
    pub overload: f64,
    /// Late-tick percentage at or above which health is `HeavilyLoaded` (default 1 %).
    pub heavy_late_pct: f64,
    /// Late-tick percentage at or above which health is `Overloaded` (default 5 %).
    pub overload_late_pct: f64,
    /// Ticks a window needs before its late-tick share counts (default 50).
    pub min_ticks: u64,
    /// Consecutive calmer windows needed before health falls a level (default 2).
    pub recover_windows: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(1),
            heavy_load: 0.6,
            overload: 0.85,
            heavy_late_pct: 1.0,
            overload_late_pct: 5.0,
            min_ticks: 50,
            recover_windows: 2,
        }
    }
}

/// One evaluation of the platform's health.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HealthReport {
    /// The health after this window.
    pub health: Health,
    /// Busy time of call ticks / (window × worker threads), 0..(can exceed 1 when
    /// load was injected).
    pub load: f64,
    /// Percentage of ticks in the window that started more than [`LATE_TICK`] late.
    pub late_tick_pct: f64,
    /// Ticks run in the window.
    pub ticks: u64,
}

impl Default for HealthReport {
    fn default() -> Self {
        Self {
            health: Health::Normal,
            load: 0.0,
            late_tick_pct: 0.0,
            ticks: 0,
        }
    }
}

/// Lock-free tick accounting shared by every call task.
///
/// Window counters are read and reset by the health task; the cumulative counters
/// only grow (the load tool reads them).
#[derive(Debug, Default)]
pub struct LoadMeter {
    window_busy_ns: AtomicU64,
    window_ticks: AtomicU64,
    window_late: AtomicU64,
    total_busy_ns: AtomicU64,
    total_ticks: AtomicU64,
    total_late: AtomicU64,
    total_skipped: AtomicU64,
    window_injected_ns: AtomicU64,
}

/// Cumulative tick counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TickTotals {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks that started more than [`LATE_TICK`] late.
    pub late: u64,
    /// Ticks skipped because a call fell more than 200 ms behind.
    pub skipped: u64,
    /// Busy time in call ticks, nanoseconds.
    pub busy_ns: u64,
}

impl TickTotals {
    /// Late ticks in percent of all ticks (0 when no ticks ran).
    pub fn late_pct(&self) -> f64 {
        if self.ticks == 0 {
            0.0
        } else {
            100.0 * self.late as f64 / self.ticks as f64
        }
    }

    /// The counters accumulated since `earlier`.
    pub fn since(&self, earlier: &TickTotals) -> TickTotals {
        TickTotals {
            ticks: self.ticks.saturating_sub(earlier.ticks),
            late: self.late.saturating_sub(earlier.late),
            skipped: self.skipped.saturating_sub(earlier.skipped),
            busy_ns: self.busy_ns.saturating_sub(earlier.busy_ns),
        }
    }
}

impl LoadMeter {
    /// Records the time one call spent in its ticks.
    pub fn record_busy(&self, busy: Duration) {
        let ns = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        self.window_busy_ns.fetch_add(ns, Ordering::Relaxed);
        self.total_busy_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Records ticks a call ran since its last report: how many, how many of them
    /// late, and how many it skipped after a stall.
    pub fn record_ticks(&self, ticks: u64, late: u64, skipped: u64) {
        self.window_ticks.fetch_add(ticks, Ordering::Relaxed);
        self.window_late.fetch_add(late, Ordering::Relaxed);
        self.total_ticks.fetch_add(ticks, Ordering::Relaxed);
        self.total_late.fetch_add(late, Ordering::Relaxed);
        self.total_skipped.fetch_add(skipped, Ordering::Relaxed);
    }

    /// Adds busy time to the current window without a tick (load injection for drills
    /// and tests, see `MediaPlatform::inject_load`).
    pub fn add_busy(&self, busy: Duration) {
        let ns = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        self.window_busy_ns.fetch_add(ns, Ordering::Relaxed);
        self.window_injected_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Reads and resets the busy time [`LoadMeter::add_busy`] injected in this
    /// window (also part of [`LoadMeter::take_window`]'s busy time).
    pub fn take_injected(&self) -> Duration {
        Duration::from_nanos(self.window_injected_ns.swap(0, Ordering::Relaxed))
    }

    /// Reads and resets the window counters: (busy, ticks, late).
    pub fn take_window(&self) -> (Duration, u64, u64) {
        let busy = self.window_busy_ns.swap(0, Ordering::Relaxed);
        let ticks = self.window_ticks.swap(0, Ordering::Relaxed);
        let late = self.window_late.swap(0, Ordering::Relaxed);
        (Duration::from_nanos(busy), ticks, late)
    }

    /// The cumulative counters.
    pub fn totals(&self) -> TickTotals {
        TickTotals {
            ticks: self.total_ticks.load(Ordering::Relaxed),
            late: self.total_late.load(Ordering::Relaxed),
            skipped: self.total_skipped.load(Ordering::Relaxed),
            busy_ns: self.total_busy_ns.load(Ordering::Relaxed),
        }
    }
}

/// The sans-IO health state machine.
#[derive(Debug, Clone)]
pub struct HealthMonitor {
    settings: HealthSettings,
    current: Health,
    calm: u32,
}

impl HealthMonitor {
    /// Starts `Normal`.
    pub fn new(settings: HealthSettings) -> Self {
        Self {
            settings,
            current: Health::Normal,
            calm: 0,
        }
    }

    /// The current health.
    pub fn health(&self) -> Health {
        self.current
    }

    /// The level one window's figures point to, before hysteresis.
    pub fn level(&self, load: f64, late_pct: f64, ticks: u64) -> Health {
        let s = &self.settings;
        let late = if ticks >= s.min_ticks { late_pct } else { 0.0 };
        if load >= s.overload || late >= s.overload_late_pct {
            Health::Overloaded
        } else if load >= s.heavy_load || late >= s.heavy_late_pct {
            Health::HeavilyLoaded
        } else {
            Health::Normal
        }
    }

    /// Evaluates one window: `busy` tick time over `wall` elapsed on `workers` threads.
    pub fn evaluate(
        &mut self,
        busy: Duration,
        wall: Duration,
        workers: usize,
        ticks: u64,
        late: u64,
    ) -> HealthReport {
        let capacity = wall.as_secs_f64() * workers.max(1) as f64;
        let load = if capacity > 0.0 {
            busy.as_secs_f64() / capacity
        } else {
            0.0
        };
        let late_tick_pct = if ticks == 0 {
            0.0
        } else {
            100.0 * late as f64 / ticks as f64
        };
        let level = self.level(load, late_tick_pct, ticks);
        if level >= self.current {
            self.current = level;
            self.calm = 0;
        } else {
            self.calm += 1;
            if self.calm >= self.settings.recover_windows {
                self.current = level;
                self.calm = 0;
            }
        }
        HealthReport {
            health: self.current,
            load,
            late_tick_pct,
            ticks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Feeds one monitor a 1 s window per step, in order — (busy, workers, ticks, late
    /// ticks) — and checks the health after each.
    fn expect_health(steps: &[(Duration, usize, u64, u64, Health)]) {
        let mut m = HealthMonitor::new(HealthSettings::default());
        for (i, &(busy, workers, ticks, late, want)) in steps.iter().enumerate() {
            let got = m.evaluate(busy, S, workers, ticks, late).health;
            assert_eq!(got, want, "step {i}: {:?}", steps[i]);
        }
    }

    #[test]
    fn rises_at_once_and_falls_after_calm_windows() {
        let ms = Duration::from_millis;
        expect_health(&[
            (ms(100), 1, 1000, 0, Health::Normal),
            (ms(900), 1, 1000, 0, Health::Overloaded),
            // One calm window is not enough.
            (Duration::ZERO, 1, 1000, 0, Health::Overloaded),
            (Duration::ZERO, 1, 1000, 0, Health::Normal),
            // Two workers halve the load.
            (ms(1400), 2, 1000, 0, Health::HeavilyLoaded),
        ]);
    }

    #[test]
    fn late_ticks_count_only_with_enough_ticks() {
        expect_health(&[
            (Duration::ZERO, 1, 10, 5, Health::Normal),
            (Duration::ZERO, 1, 1000, 20, Health::HeavilyLoaded),
            (Duration::ZERO, 1, 1000, 60, Health::Overloaded),
        ]);
    }

    #[test]
    fn meter_windows_reset_and_totals_accumulate() {
        let meter = LoadMeter::default();
        meter.record_busy(Duration::from_micros(10));
        meter.record_busy(Duration::from_micros(30));
        meter.record_ticks(2, 1, 0);
        let (busy, ticks, late) = meter.take_window();
        assert_eq!((busy, ticks, late), (Duration::from_micros(40), 2, 1));
        assert_eq!(meter.take_window(), (Duration::ZERO, 0, 0));
        let t = meter.totals();
        assert_eq!((t.ticks, t.late, t.busy_ns), (2, 1, 40_000));
        assert!((t.late_pct() - 50.0).abs() < 1e-9);
    }
}
