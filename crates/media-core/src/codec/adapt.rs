//! Loss-adaptive encoding: the sender's in-band FEC follows the receiver's reports.
//!
//! Opus in-band FEC (LBRR) puts a low-bitrate copy of each frame into the next packet,
//! and libopus pays for it out of the same bitrate (`packet_loss_perc` tunes how much):
//! on a clean path that budget only lowers quality (about 0.35 PESQ-WB at 24 kb/s for a
//! 10 % budget). So the encoder starts with no FEC and the receiver's
//! [`QualityReport`]s (about once a second on the control channel) drive it.
//!
//! # Control law ([`LossAdapter::on_report`])
//! * **Loss seen by the decoder** in the last report interval: `L` is the interval's
//!   loss plus its late packets, in percent (a packet that came too late to play is
//!   lost to the decoder as well, and FEC in the packet after it recovers it just the
//!   same).
//! * **Estimate**: attack at once, release by half per report:
//!   `E = max(L, E / 2)`. One report after loss appears, `E ≥ L`; after loss stops,
//!   a 10 % estimate falls below the off threshold in about 5 reports.
//! * **Switch with hysteresis**: FEC turns on when `E ≥ 1 %` and off when
//!   `E < 0.5 %` (a single lost packet in a 1 s interval is 2 %: it turns FEC on).
//! * **Budget**: while on, `packet_loss_perc = clamp(ceil(E), 1, cap)`, `cap` the
//!   configured [`OpusConfig::max_loss_percent`](super::OpusConfig::max_loss_percent).
//!   Bursts are reported ([`QualityReport::max_burst`]) but do not raise the budget:
//!   LBRR covers one frame back, so only the last packet of a burst is recovered, and
//!   a larger budget would not change that.
//!
//! With reports every second and the report applied when it arrives, FEC follows
//! loss within 1 s plus the one-way delay, and is dropped about 5 s after loss stops.
//!
//! # Realtime safety
//! A few floats of state; `on_report` neither allocates nor blocks. Applying the
//! result is one libopus control call ([`AudioEncoder::set_expected_loss`](super::AudioEncoder::set_expected_loss)).

use crate::control::QualityReport;

/// Estimate at or above which FEC turns on (percent).
pub const FEC_ON_PERCENT: f32 = 1.0;
/// Estimate below which FEC turns off again (percent).
pub const FEC_OFF_PERCENT: f32 = 0.5;
/// Factor applied to the estimate per report when the loss falls.
pub const RELEASE_PER_REPORT: f32 = 0.5;

/// The control law of loss-adaptive FEC. See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossAdapter {
    cap: u8,
    estimate: f32,
    current: u8,
}

impl LossAdapter {
    /// A law starting with no FEC, never asking for more than `cap` percent.
    pub fn new(cap: u8) -> Self {
        Self {
            cap: cap.min(100),
            estimate: 0.0,
            current: 0,
        }
    }

    /// The expected loss in force (percent; 0: no FEC).
    pub fn expected_loss(&self) -> u8 {
        self.current
    }

    /// Feeds one report of the receiver; returns the new expected loss in percent
    /// when it changes (0: FEC off).
    pub fn on_report(&mut self, report: &QualityReport) -> Option<u8> {
        let seen = report.interval_loss_pct + report.late_pct;
        let seen = if seen.is_finite() {
            seen.clamp(0.0, 100.0)
        } else {
            0.0
        };
        self.estimate = seen.max(self.estimate * RELEASE_PER_REPORT);
        let on = if self.current > 0 {
            self.estimate >= FEC_OFF_PERCENT
        } else {
            self.estimate >= FEC_ON_PERCENT
        };
        let next = if on && self.cap > 0 {
            (self.estimate.ceil() as u8).clamp(1, self.cap)
        } else {
            0
        };
        (next != self.current).then(|| {
            self.current = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(loss: f32, late: f32) -> QualityReport {
        QualityReport {
            interval_loss_pct: loss,
            late_pct: late,
            ..QualityReport::default()
        }
    }

    #[test]
    fn follows_loss_at_once_and_releases_slowly() {
        let mut a = LossAdapter::new(20);
        assert_eq!(a.on_report(&report(0.0, 0.0)), None, "clean: no FEC");
        assert_eq!(
            a.on_report(&report(0.4, 0.0)),
            None,
            "below the on threshold"
        );
        assert_eq!(a.on_report(&report(4.2, 1.0)), Some(6));
        assert_eq!(a.on_report(&report(5.0, 0.0)), Some(5));
        // Loss stops: 2.5, 1.25, 0.63 (still on), 0.31 (off).
        assert_eq!(a.on_report(&report(0.0, 0.0)), Some(3));
        assert_eq!(a.on_report(&report(0.0, 0.0)), Some(2));
        assert_eq!(a.on_report(&report(0.0, 0.0)), Some(1));
        assert_eq!(a.on_report(&report(0.0, 0.0)), Some(0));
        assert_eq!(a.expected_loss(), 0);
        assert_eq!(a.on_report(&report(60.0, 0.0)), Some(20), "capped");
        assert_eq!(a.on_report(&report(f32::NAN, 0.0)), None, "ignored, 30 %");
    }

    #[test]
    fn a_zero_cap_never_turns_fec_on() {
        let mut a = LossAdapter::new(0);
        assert_eq!(a.on_report(&report(30.0, 0.0)), None);
        assert_eq!(a.expected_loss(), 0);
    }
}
