//! Holding a buffer's fill level near a target: [`FillController`] (the drift loop) and
//! [`Settle`] (where a level lands after a start, taken as it is or moved by one slip).

use std::time::Duration;

use media_core::frame::FRAMES_PER_SECOND;

/// Settings of a [`FillController`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerSettings {
    /// Proportional gain, per second: the loop's speed. The integral gain is `gain² / 4`
    /// (critically damped, time constant `2 / gain`). Default 0.5 (4 s).
    pub gain_per_s: f64,
    /// Largest correction of the ratio, either way (default 0.01 = ±1 %, twice the ±0.5 %
    /// of real device clocks, within the resampler's ±2 %).
    pub max_deviation: f64,
    /// Largest change of the ratio per update (default 1e-4: 0 → 0.5 % in one second),
    /// so that corrections never become an audible pitch jump.
    pub max_step: f64,
    /// Level smoothing per update (exponential, default 0.02: about 1 s at 50 updates/s):
    /// the level moves in 20 ms steps (device callbacks, resampler blocks) and with the
    /// bridge thread's scheduling; the ratio should not.
    pub smoothing: f64,
    /// Level errors within ± this are left alone (default 5 ms): a level offset of a
    /// fraction of a frame, set by the phase between device callbacks and ticks, is not
    /// worth a pitch change. Beyond it the loop acts on the excess.
    pub deadband: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        Self {
            gain_per_s: 0.5,
            max_deviation: 0.01,
            max_step: 1e-4,
            smoothing: 0.02,
            deadband: Duration::from_millis(5),
        }
    }
}

impl ControllerSettings {
    /// Why these settings are unusable, if they are.
    pub(crate) fn problem(&self) -> Option<String> {
        let finite = [
            self.gain_per_s,
            self.max_deviation,
            self.max_step,
            self.smoothing,
            self.deadband.as_secs_f64(),
        ]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0);
        let ok = finite
            && self.max_deviation <= 0.02
            && self.smoothing <= 1.0
            && self.gain_per_s <= 25.0;
        (!ok).then(|| {
            format!(
                "controller {self:?}: gains must be finite and non-negative, max_deviation \
                 ≤ 0.02 (the resampler's range), smoothing ≤ 1, gain_per_s ≤ 25"
            )
        })
    }
}

/// Holds a buffer's fill level near a target by nudging a resampler's relative ratio.
///
/// Call [`update`](Self::update) once per 20 ms tick with the level, and pass the result
/// to the `DriftFollowing` resampler's `set_ratio_relative`. A level above target returns
/// a ratio below 1.0 ("produce fewer samples per input"): for playback the level is the
/// device ring's queued frames after the tick's push, for capture the 16 kHz samples
/// waiting in the framer after the tick took its frames.
///
/// The loop is proportional-integral on the smoothed level error in seconds (less a small
/// dead band), critically damped; the correction is clamped to `±max_deviation` (the
/// integral is clamped with it, so it never winds up) and changes by at most `max_step`
/// per update. A steady drift `d` (|d| < `max_deviation`) leaves no level error beyond the
/// dead band once settled; the transient error after a step of 0.5 % peaks near 10 ms
/// beyond the dead band at the defaults (the level also moves in 20 ms steps as callbacks
/// come and go).
///
/// Unlike media-core's `DriftController` (±0.5 %, 10 s), the wider bound means a device
/// 0.5 % off still converges back to the target.
///
/// ```
/// use devices::{ControllerSettings, FillController};
///
/// // 60 ms of a 48 kHz ring.
/// let mut ctl = FillController::new(2_880, 48_000, ControllerSettings::default());
/// assert_eq!(ctl.update(2_880), 1.0); // at target: nominal
/// // 100 ms too full for a second: produce less, a little more each tick (at most 1e-4).
/// let mut last = 1.0;
/// for _ in 0..50 {
///     let r = ctl.update(2_880 + 4_800);
///     assert!(r <= last && last - r <= 1e-4 + 1e-12);
///     last = r;
/// }
/// assert!(last < 0.996 && last >= 0.99, "{last}");
/// ```
///
/// # Realtime safety
/// Plain arithmetic on a few floats.
#[derive(Debug, Clone)]
pub struct FillController {
    settings: ControllerSettings,
    target: f64,
    rate: f64,
    smoothed: Option<f64>,
    integral: f64,
    correction: f64,
}

impl FillController {
    /// A controller holding `target_level` samples of a buffer that runs at `rate` samples
    /// per second (per channel; `update` must use the same unit).
    pub fn new(target_level: usize, rate: u32, settings: ControllerSettings) -> Self {
        Self {
            settings,
            target: target_level as f64,
            rate: f64::from(rate.max(1)),
            smoothed: None,
            integral: 0.0,
            correction: 0.0,
        }
    }

    /// Feeds the current level; returns the relative ratio to apply.
    pub fn update(&mut self, level: usize) -> f64 {
        let s = &self.settings;
        let level = level as f64;
        let smoothed = match self.smoothed {
            Some(prev) => prev + s.smoothing * (level - prev),
            None => level,
        };
        self.smoothed = Some(smoothed);
        let dt = 1.0 / f64::from(FRAMES_PER_SECOND);
        let raw = (smoothed - self.target) / self.rate;
        let band = s.deadband.as_secs_f64();
        let error = raw.signum() * (raw.abs() - band).max(0.0);
        let ki = s.gain_per_s * s.gain_per_s / 4.0;
        if ki > 0.0 {
            let bound = s.max_deviation / ki;
            self.integral = (self.integral + error * dt).clamp(-bound, bound);
        }
        let wanted =
            (s.gain_per_s * error + ki * self.integral).clamp(-s.max_deviation, s.max_deviation);
        let step = (wanted - self.correction).clamp(-s.max_step, s.max_step);
        self.correction += step;
        1.0 - self.correction
    }

    /// The last ratio returned (1.0 before the first update).
    pub fn ratio_relative(&self) -> f64 {
        1.0 - self.correction
    }

    /// Forgets the smoothed level (after the level was moved on purpose, e.g. by a
    /// re-centring slip); the drift estimate (the integral) is kept.
    pub fn reset_level(&mut self) {
        self.smoothed = None;
    }

    /// Moves the target (e.g. onto the level a start settled at).
    pub fn set_target(&mut self, target_level: f64) {
        self.target = target_level;
    }

    /// The dead band, in level units.
    pub fn deadband(&self) -> f64 {
        self.settings.deadband.as_secs_f64() * self.rate
    }

    /// The smoothed level (`None` before the first update).
    pub fn smoothed_level(&self) -> Option<f64> {
        self.smoothed
    }

    /// The target level.
    pub fn target(&self) -> f64 {
        self.target
    }
}

/// Ticks a side runs after (re)starting before its level is judged: the first second,
/// whose second half is averaged.
const SETTLE_TICKS: u32 = 50;

/// What to do once a (re)started side's level has settled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Settled {
    /// Close enough: the controller now holds the level where it settled.
    Adopted,
    /// Too far off: move the level by this much (level units; positive: insert silence,
    /// negative: skip audio) in one slip, then hold the configured target.
    Slip(f64),
}

/// Measures the mean level over the second half of the first second after a (re)start,
/// and decides how the controller takes it over.
///
/// Where the level settles after a start depends on the phase between device callbacks,
/// resampler blocks and ticks (up to a frame either way), and on how much the sound server
/// buffers at start, not on clock drift. Correcting that through the ratio would bend the
/// pitch by up to `max_deviation` for seconds. So a level that settles within one frame
/// (plus the dead band) of the target becomes the controller's target as it is (latency
/// off by about a frame at most; no glitch, no pitch bend); one further off is moved onto
/// the target once, by a slip (silence inserted or audio skipped, counted), while the
/// audio is just starting.
#[derive(Debug, Default)]
pub(crate) struct Settle {
    ticks: u32,
    sum: f64,
    n: u32,
}

impl Settle {
    /// Starts measuring again (the side just (re)started).
    pub(crate) fn restart(&mut self) {
        *self = Self::default();
    }

    /// The measurement is over: the controller runs.
    pub(crate) fn done(&self) -> bool {
        self.ticks >= SETTLE_TICKS
    }

    /// Feeds a tick's level. At the end of the window, points `ctl` at the level to hold
    /// and says whether a slip of `frame` (level units) or more is needed to get there.
    pub(crate) fn feed(
        &mut self,
        level: usize,
        target: usize,
        frame: usize,
        ctl: &mut FillController,
    ) -> Option<Settled> {
        self.ticks += 1;
        if self.ticks > SETTLE_TICKS / 2 {
            self.sum += level as f64;
            self.n += 1;
        }
        if self.ticks != SETTLE_TICKS {
            return None;
        }
        let mean = self.sum / f64::from(self.n.max(1));
        let offset = mean - target as f64;
        ctl.reset_level();
        if offset.abs() <= frame as f64 + ctl.deadband() {
            ctl.set_target(mean);
            Some(Settled::Adopted)
        } else {
            ctl.set_target(target as f64);
            Some(Settled::Slip(-offset))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_near_the_target_is_adopted_and_a_far_one_slips() {
        let s = ControllerSettings::default();
        let mut ctl = FillController::new(2_880, 48_000, s);
        let mut settle = Settle::default();
        let mut out = None;
        for _ in 0..SETTLE_TICKS {
            assert!(!settle.done());
            out = settle.feed(2_880 + 500, 2_880, 960, &mut ctl);
        }
        assert!(settle.done());
        assert_eq!(out, Some(Settled::Adopted));
        assert_eq!(ctl.target(), 3_380.0);

        let mut ctl = FillController::new(2_880, 48_000, s);
        settle.restart();
        for _ in 0..SETTLE_TICKS {
            out = settle.feed(2_880 + 4_800, 2_880, 960, &mut ctl);
        }
        assert_eq!(out, Some(Settled::Slip(-4_800.0)));
        assert_eq!(ctl.target(), 2_880.0);
        assert_eq!(settle.feed(0, 2_880, 960, &mut ctl), None, "once only");
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(ControllerSettings::default().problem().is_none());
        let bad = ControllerSettings {
            max_deviation: 0.05,
            ..ControllerSettings::default()
        };
        assert!(bad.problem().is_some_and(|m| m.contains("max_deviation")));
        let nan = ControllerSettings {
            gain_per_s: f64::NAN,
            ..ControllerSettings::default()
        };
        assert!(nan.problem().is_some());
    }
}
