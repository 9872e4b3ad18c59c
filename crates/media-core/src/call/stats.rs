//! A call's media statistics: the inbound stream as RFC 3550 sees it, and the one
//! snapshot of everything the call's media measured ([`CallStats`]).

use crate::jitter::JitterStats;
use crate::tick::GridStats;

/// RFC 3550 interarrival jitter and sequence-gap loss of an inbound stream (sans-IO).
#[derive(Debug, Clone, Copy, Default)]
pub struct InboundStats {
    started: bool,
    last_arrival_us: i64,
    last_ts: u32,
    jitter_us: f64,
    jitter_sum: f64,
    samples: u64,
    max_jitter_us: f64,
    base_seq: u64,
    max_seq: u64,
    received: u64,
    /// Longest run of missing sequence numbers since the last [`Self::take_max_burst`].
    max_burst: u64,
    /// Expected, received and late counts at the end of the previous interval.
    interval_start: (u64, u64, u64),
}

/// What one report interval saw of an inbound stream ([`InboundStats::take_interval`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IntervalLoss {
    /// Packets lost in the interval, percent of those expected in it.
    pub loss_pct: f32,
    /// Packets late (arrived but not played) in the interval, percent of those received.
    pub late_pct: f32,
    /// Longest run of consecutive missing packets in the interval.
    pub max_burst: u32,
}

impl InboundStats {
    /// One packet with sequence number `seq` and 16 kHz timestamp `ts` arrived at
    /// `arrival_us` (microseconds on any steady clock).
    pub fn on_packet(&mut self, arrival_us: i64, seq: u16, ts: u32) {
        if !self.started {
            self.started = true;
            self.base_seq = u64::from(seq) + (1 << 32);
            self.max_seq = self.base_seq;
        } else {
            let transit_diff = (arrival_us - self.last_arrival_us) as f64
                - f64::from(ts.wrapping_sub(self.last_ts) as i32) * 62.5;
            self.jitter_us += (transit_diff.abs() - self.jitter_us) / 16.0;
            self.jitter_sum += self.jitter_us;
            self.samples += 1;
            self.max_jitter_us = self.max_jitter_us.max(self.jitter_us);
            // Unwrap the sequence number around the highest seen.
            let delta = i64::from(seq.wrapping_sub(self.max_seq as u16) as i16);
            let ext = (self.max_seq as i64 + delta) as u64;
            if ext > self.max_seq {
                self.max_burst = self.max_burst.max(ext - self.max_seq - 1);
            }
            self.max_seq = self.max_seq.max(ext);
        }
        self.last_arrival_us = arrival_us;
        self.last_ts = ts;
        self.received += 1;
    }

    /// Mean interarrival jitter over the stream, milliseconds.
    pub fn mean_jitter_ms(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.jitter_sum / self.samples as f64 / 1000.0
        }
    }

    /// The largest jitter estimate seen, milliseconds.
    pub fn max_jitter_ms(&self) -> f64 {
        self.max_jitter_us / 1000.0
    }

    /// Packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets missing from the sequence (expected minus received, never negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// The longest run of missing sequence numbers (a gap ahead of the highest seen)
    /// since the previous call; starts a new interval.
    pub fn take_max_burst(&mut self) -> u64 {
        std::mem::take(&mut self.max_burst)
    }

    /// Ends a report interval: its loss, late share and longest burst since the
    /// previous call. `late_total` is the receiver's running count of packets that
    /// came too late to play (the jitter buffer's late + overflow).
    pub fn take_interval(&mut self, late_total: u64) -> IntervalLoss {
        let now = (self.expected(), self.received, late_total);
        let (e0, r0, l0) = std::mem::replace(&mut self.interval_start, now);
        let pct = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                (100.0 * part as f64 / whole as f64) as f32
            }
        };
        let (de, dr) = (now.0.saturating_sub(e0), now.1.saturating_sub(r0));
        IntervalLoss {
            loss_pct: pct(de.saturating_sub(dr), de),
            late_pct: pct(now.2.saturating_sub(l0), dr),
            max_burst: u32::try_from(self.take_max_burst()).unwrap_or(u32::MAX),
        }
    }

    /// Lost packets in percent of expected (0 before any packet).
    pub fn loss_pct(&self) -> f64 {
        let expected = self.expected();
        if expected == 0 {
            0.0
        } else {
            100.0 * self.lost() as f64 / expected as f64
        }
    }

    fn expected(&self) -> u64 {
        if self.started {
            self.max_seq - self.base_seq + 1
        } else {
            0
        }
    }
}

/// Everything a call's media measured: one `Copy` snapshot, written by the call's
/// [`CallMedia`](super::CallMedia) (once a second and at the end).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallStats {
    /// Mean inbound interarrival jitter (RFC 3550 estimator), ms.
    pub inbound_jitter_ms: f64,
    /// Largest inbound jitter estimate, ms.
    pub max_inbound_jitter_ms: f64,
    /// Inbound packets lost (sequence gaps), percent of expected.
    pub loss_pct: f64,
    /// Media packets received.
    pub packets_received: u64,
    /// Inbound packets missing from the sequence.
    pub packets_lost: u64,
    /// Media packets the link took for sending.
    pub packets_sent: u64,
    /// Media packets the link refused.
    pub packets_refused: u64,
    /// Frames encoded (one per send tick that had audio or sent silence).
    pub frames_encoded: u64,
    /// Frames played out to the application.
    pub frames_played: u64,
    /// Played frames with concealed samples.
    pub frames_concealed: u64,
    /// Send ticks that found the source empty while sending was active.
    pub send_underruns: u64,
    /// The unmixed streams, both ways (all 0 without unmixed audio).
    pub unmixed: super::UnmixedStats,
    /// The jitter buffer (W3C webrtc-stats names).
    pub jitter_buffer: JitterStats,
    /// The playout clock (ticks run, late, skipped).
    pub playout: GridStats,
    /// The send clock.
    pub send: GridStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_stats_count_gaps_across_wrap() {
        let mut s = InboundStats::default();
        let mut t = 0i64;
        for (i, seq) in [65_530u16, 65_531, 65_533, 65_534, 0, 1, 3]
            .iter()
            .enumerate()
        {
            t += 20_000;
            s.on_packet(t, *seq, (i as u32) * 320);
        }
        assert_eq!(s.received(), 7);
        // 65530..=3 is 10 sequence numbers: 3 missing.
        assert_eq!(s.lost(), 3);
        assert_eq!(s.take_max_burst(), 1);
        assert_eq!(s.take_max_burst(), 0);
        assert!((s.loss_pct() - 30.0).abs() < 1e-9);
    }

    #[test]
    fn steady_arrivals_have_no_jitter_and_late_ones_do() {
        let mut s = InboundStats::default();
        for i in 0..50u16 {
            s.on_packet(i64::from(i) * 20_000, i, u32::from(i) * 320);
        }
        assert_eq!(s.mean_jitter_ms(), 0.0);
        // One packet 16 ms late: |D| = 16 ms, jitter += 16/16 = 1 ms.
        s.on_packet(50 * 20_000 + 16_000, 50, 50 * 320);
        assert!((s.max_jitter_ms() - 1.0).abs() < 1e-9);
    }
}
