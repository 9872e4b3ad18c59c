//! The bridge's statistics: plain `Copy` values owned and written by the bridge thread,
//! published to [`DeviceBridge::stats`](super::DeviceBridge::stats) without ever
//! blocking a tick.
//!
//! The thread keeps its counters in [`PlaybackStats`] / [`CaptureStats`] fields of the
//! sides that own them and, after each wake-up's ticks, copies one [`BridgeStats`] into
//! a mutex with `try_lock`. A reader copying the snapshot out at that instant makes
//! `try_lock` fail: that publish is skipped and the next wake-up (20 ms later) publishes.
//! The reader never sees a half-written snapshot and the thread never waits for it. The
//! device callbacks' own counters ([`CounterSnapshot`]) stay atomics in
//! [`crate::stream`] and are read by the handle, which owns the streams.

use std::sync::{Mutex, MutexGuard, TryLockError};

use serde::Serialize;

use crate::CounterSnapshot;

/// Statistics of the receive → playback side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PlaybackStats {
    /// Frames taken from the call.
    pub frames_received: u64,
    /// Frames resampled and written to the device ring or sink.
    pub frames_played: u64,
    /// Received frames dropped because the ring held more than `target + max_excess`.
    pub dropped_frames: u64,
    /// 20 ms silence frames padded because nothing was received and the ring ran low.
    pub padded_frames: u64,
    /// Times the ring ran low with nothing received (each starts a run of padding).
    pub starvations: u64,
    /// Resampled values the ring had no room for.
    pub ring_overflow_samples: u64,
    /// One-time slips that moved the settled level onto the target after a start.
    pub recentres: u64,
    /// Audio those slips inserted (positive) or skipped (negative), ms.
    pub recentred_ms: f64,
    /// Ring level after the last tick's push, ms (0 for sinks).
    pub level_ms: f64,
    /// Target level, ms.
    pub target_ms: f64,
    /// Current relative resampling ratio (1.0 = nominal).
    pub ratio: f64,
    /// Smallest ratio applied so far.
    pub ratio_min: f64,
    /// Largest ratio applied so far.
    pub ratio_max: f64,
    /// Resampling or sink write failures (see [`DeviceBridge::last_error`]).
    ///
    /// [`DeviceBridge::last_error`]: super::DeviceBridge::last_error
    pub errors: u64,
    /// The device callbacks' counters (underruns are silence the device played), `None`
    /// for sinks.
    pub device: Option<CounterSnapshot>,
}

/// Statistics of the capture → send side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CaptureStats {
    /// Captured 20 ms frames enqueued for sending.
    pub frames_sent: u64,
    /// Silence frames enqueued because no captured frame was ready (start-up priming and
    /// underruns).
    pub padded_frames: u64,
    /// Times the framer ran dry while running (each re-primes to the target).
    pub underruns: u64,
    /// Captured frames dropped because the framer held more than `target + max_excess`.
    pub dropped_frames: u64,
    /// Frames discarded while the call was not taking audio (send queue not draining for
    /// 200 ms: no peer yet, or the call ended).
    pub discarded_idle_frames: u64,
    /// 16 kHz samples the framer refused (full).
    pub framer_overflow_samples: u64,
    /// One-time slips that moved the settled level onto the target after a start.
    pub recentres: u64,
    /// Audio those slips inserted (positive) or skipped (negative), ms.
    pub recentred_ms: f64,
    /// Enqueues refused by a full send queue.
    pub send_queue_full: u64,
    /// Framer level after the last tick, ms.
    pub level_ms: f64,
    /// Target level, ms.
    pub target_ms: f64,
    /// Current relative resampling ratio (1.0 = nominal).
    pub ratio: f64,
    /// Smallest ratio applied so far.
    pub ratio_min: f64,
    /// Largest ratio applied so far.
    pub ratio_max: f64,
    /// Resampling failures (see [`DeviceBridge::last_error`]).
    ///
    /// [`DeviceBridge::last_error`]: super::DeviceBridge::last_error
    pub errors: u64,
    /// The device callbacks' counters (overruns are captured audio lost before the ring),
    /// `None` for sources.
    pub device: Option<CounterSnapshot>,
}

/// A snapshot of a bridge's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BridgeStats {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks that started more than one tick (20 ms) after their scheduled instant. The
    /// tick that resynchronises the schedule runs on time on the new grid and counts in
    /// `resyncs` instead.
    pub late_ticks: u64,
    /// Times the schedule was restarted at the present after a stall longer than 200 ms
    /// (the tick grid's restarts).
    pub resyncs: u64,
    /// Ticks those resyncs skipped instead of running them in a burst.
    pub skipped_ticks: u64,
    /// The bridge stopped ticking: its frame input closed (the call ended) or it was
    /// stopped.
    pub finished: bool,
    /// The playback side, if any.
    pub playback: Option<PlaybackStats>,
    /// The capture side, if any.
    pub capture: Option<CaptureStats>,
}

/// Ratio statistics kept by a side: the ratio now and the range it has covered.
pub(crate) trait RatioStats {
    /// Records the ratio just applied.
    fn set_ratio(&mut self, r: f64);
}

macro_rules! ratio_stats {
    ($t:ty) => {
        impl $t {
            /// Fresh counters for a side holding `target_ms`: nominal ratio.
            pub(crate) fn starting(target_ms: f64) -> Self {
                Self {
                    target_ms,
                    ratio: 1.0,
                    ratio_min: 1.0,
                    ratio_max: 1.0,
                    ..Self::default()
                }
            }
        }

        impl RatioStats for $t {
            fn set_ratio(&mut self, r: f64) {
                self.ratio = r;
                self.ratio_min = self.ratio_min.min(r);
                self.ratio_max = self.ratio_max.max(r);
            }
        }
    };
}

ratio_stats!(PlaybackStats);
ratio_stats!(CaptureStats);

/// What the bridge thread hands to its handle.
#[derive(Debug, Default)]
struct Published {
    stats: BridgeStats,
    /// The bridge thread's first error (moved in once; never replaced).
    first_error: Option<String>,
}

/// The one place the snapshot lives between the bridge thread and its handle.
#[derive(Debug)]
pub(crate) struct StatsCell(Mutex<Published>);

impl StatsCell {
    /// A cell holding `initial` (published before the thread starts).
    pub(crate) fn new(initial: BridgeStats) -> Self {
        Self(Mutex::new(Published {
            stats: initial,
            first_error: None,
        }))
    }

    /// Publishes `stats` (and moves `error` in, if any) unless the reader holds the lock
    /// right now; returns whether it did. Never blocks, never allocates.
    pub(crate) fn try_publish(&self, stats: &BridgeStats, error: &mut Option<String>) -> bool {
        let mut g = match self.0.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        Self::write(&mut g, stats, error);
        true
    }

    /// Publishes, waiting for the reader if needed: for the thread's last publish, after
    /// its last tick.
    pub(crate) fn publish(&self, stats: &BridgeStats, error: &mut Option<String>) {
        Self::write(&mut self.lock(), stats, error);
    }

    fn write(g: &mut Published, stats: &BridgeStats, error: &mut Option<String>) {
        g.stats = *stats;
        if g.first_error.is_none() {
            g.first_error = error.take();
        }
    }

    /// The last snapshot published.
    pub(crate) fn stats(&self) -> BridgeStats {
        self.lock().stats
    }

    /// The bridge thread's first error, once published.
    pub(crate) fn first_error(&self) -> Option<String> {
        self.lock().first_error.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Published> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The first error of the bridge thread, formatted when it happens (the error path's one
/// allocation) and kept until it is published.
#[derive(Debug, Default)]
pub(crate) struct FirstError {
    seen: bool,
    pending: Option<String>,
}

impl FirstError {
    /// Records an error; only the first one is formatted and kept.
    pub(crate) fn record(&mut self, what: impl FnOnce() -> String) {
        if !self.seen {
            self.seen = true;
            self.pending = Some(what());
        }
    }

    /// The error waiting to be published, if any.
    pub(crate) fn pending(&mut self) -> &mut Option<String> {
        &mut self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_skips_the_publish_and_the_next_one_lands() {
        let cell = StatsCell::new(BridgeStats::default());
        let mut err = None;
        let s = BridgeStats {
            ticks: 7,
            ..BridgeStats::default()
        };
        {
            let _reader = cell.lock();
            assert!(
                !cell.try_publish(&s, &mut err),
                "never waits for the reader"
            );
        }
        assert_eq!(cell.stats().ticks, 0);
        let mut first = FirstError::default();
        first.record(|| "first".to_owned());
        first.record(|| unreachable!("only the first error is formatted"));
        assert!(cell.try_publish(&s, first.pending()));
        assert_eq!(cell.stats().ticks, 7);
        assert_eq!(cell.first_error().as_deref(), Some("first"));
        assert!(first.pending().is_none());
    }

    #[test]
    fn ratios_track_their_range() {
        let mut p = PlaybackStats::starting(60.0);
        assert_eq!((p.ratio, p.ratio_min, p.ratio_max), (1.0, 1.0, 1.0));
        p.set_ratio(0.995);
        p.set_ratio(1.002);
        assert_eq!((p.ratio, p.ratio_min, p.ratio_max), (1.002, 0.995, 1.002));
    }
}
