//! Units of time: media time counted in samples at a known rate, and the 100 ns ticks
//! of the bot-facing API (the `Timestamp` of Microsoft's audio buffers).

use std::time::Duration;

/// A point on a media clock: a count of samples at `rate` Hz.
///
/// Arithmetic between two `MediaTime`s requires the same rate; use
/// [`MediaTime::rebase`] to convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MediaTime {
    samples: u64,
    rate: u32,
}

impl MediaTime {
    /// `samples` samples at `rate` Hz. `rate` must not be zero.
    pub const fn new(samples: u64, rate: u32) -> Self {
        assert!(rate > 0, "sample rate must be positive");
        Self { samples, rate }
    }

    /// Time zero at `rate` Hz.
    pub const fn zero(rate: u32) -> Self {
        Self::new(0, rate)
    }

    /// The sample count.
    pub const fn samples(self) -> u64 {
        self.samples
    }

    /// The clock rate in Hz.
    pub const fn rate(self) -> u32 {
        self.rate
    }

    /// The same instant on a clock of another rate (rounded down).
    pub const fn rebase(self, rate: u32) -> Self {
        let samples = (self.samples as u128 * rate as u128 / self.rate as u128) as u64;
        Self::new(samples, rate)
    }

    /// Elapsed time since zero.
    pub fn as_duration(self) -> Duration {
        let nanos = self.samples as u128 * 1_000_000_000 / self.rate as u128;
        Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
    }

    /// This time plus `samples` samples (wrapping is impossible in practice: 2^64
    /// samples at 48 kHz is 12 million years).
    pub const fn add_samples(self, samples: u64) -> Self {
        Self::new(self.samples.saturating_add(samples), self.rate)
    }

    /// The time as 100 ns ticks.
    pub fn to_ticks(self) -> Ticks100ns {
        Ticks100ns((self.samples as u128 * 10_000_000 / self.rate as u128) as i64)
    }
}

/// A timestamp in 100 ns ticks, as in the bot-facing audio buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticks100ns(pub i64);

impl Ticks100ns {
    /// Ticks in one 20 ms frame.
    pub const PER_FRAME: i64 = 200_000;
    /// Ticks in one second.
    pub const PER_SECOND: i64 = 10_000_000;

    /// From a duration (saturating).
    pub fn from_duration(d: Duration) -> Self {
        Self((d.as_nanos() / 100).min(i64::MAX as u128) as i64)
    }

    /// As a duration (negative values clamp to zero).
    pub fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0.max(0) as u64 * 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_frame_is_200k_ticks() {
        assert_eq!(
            MediaTime::new(320, 16_000).to_ticks(),
            Ticks100ns(Ticks100ns::PER_FRAME)
        );
        assert_eq!(MediaTime::new(960, 48_000).rebase(16_000).samples(), 320);
        assert_eq!(
            MediaTime::new(16_000, 16_000).as_duration(),
            Duration::from_secs(1)
        );
        assert_eq!(
            Ticks100ns::from_duration(Duration::from_millis(20)),
            Ticks100ns(200_000)
        );
    }
}
