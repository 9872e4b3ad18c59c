//! Target-delay estimation, NetEQ style.
//!
//! Every packet gives a *transit* value, `arrival - timestamp` (both in microseconds,
//! the timestamp converted from 16 kHz samples). The *relative delay* of a packet is its
//! transit minus the smallest transit seen in a sliding window (2 s by default):
//! `max(0, (arrival - arrival_min) - (ts - ts_min))` in the words of NetEQ, where
//! `(arrival_min, ts_min)` is the fastest packet of the window. The largest relative
//! delay of each interval (NetEQ: 500 ms, our default 200 ms) feeds a histogram with a
//! forget factor (0.983); the target delay is one of its quantiles (NetEQ: the 95th
//! percentile of 500 ms peaks; our default, the 90th of 200 ms peaks, means about 1 %
//! late packets for independent delays, see
//! [`JitterConfig::quantile`](super::JitterConfig::quantile)).
//!
//! The forget factor starts at 0 and grows as `n / (n + 1)` up to the configured value,
//! so the first estimates are plain empirical distributions (the start delay, 80 ms, is
//! replaced by the first measured interval) and old observations lose weight later:
//! after a delay spike the target comes back down instead of getting stuck high.
//!
//! # Clock drift
//! The smallest transit of each interval (the lower envelope, which jitter only ever
//! raises) is kept for the last [`DRIFT_POINTS`] intervals (10 s); the drift is the
//! median of the slopes between each point and the one half the window later (robust
//! to a delay spike covering less than half of the window), or zero unless at least
//! 80 % of those slopes have its sign (jitter that wanders, as on a mobile path,
//! scatters them around zero). A sender whose clock runs slow makes the transit grow
//! (positive drift, µs per second), a fast one shrink.
//!
//! # Realtime safety
//! All storage (the transit window and the histogram) is allocated by [`DelayManager::new`];
//! updates never allocate.

/// One entry of the monotonic transit window.
#[derive(Debug, Clone, Copy, Default)]
struct Transit {
    arrival_us: i64,
    transit_us: i64,
}

/// Parameters of the [`DelayManager`] (all times in microseconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DelayParams {
    pub(crate) start_us: i64,
    pub(crate) min_us: i64,
    pub(crate) max_us: i64,
    pub(crate) bucket_us: i64,
    pub(crate) quantile: f64,
    pub(crate) forget_factor: f64,
    pub(crate) interval_us: i64,
    pub(crate) window_us: i64,
}

/// Estimates the target delay from packet arrivals.
#[derive(Debug)]
pub(crate) struct DelayManager {
    p: DelayParams,
    // Monotonic deque (increasing transit) over a fixed ring: front is the window minimum.
    ring: Box<[Transit]>,
    head: usize,
    len: usize,
    hist: Box<[f64]>,
    updates: u64,
    interval_start_us: Option<i64>,
    interval_max_us: i64,
    target_us: i64,
    last_relative_us: i64,
    interval_min_transit_us: i64,
    /// (interval start, smallest transit of the interval), oldest first from `drift_head`.
    drift_points: [(i64, i64); DRIFT_POINTS],
    drift_head: usize,
    drift_len: usize,
    drift_us_per_s: Option<f64>,
}

const RING: usize = 512;
/// Intervals the drift estimate looks back over (10 s of 200 ms intervals).
pub(crate) const DRIFT_POINTS: usize = 50;

impl DelayManager {
    pub(crate) fn new(p: DelayParams) -> Self {
        let buckets = ((p.max_us + p.bucket_us - 1) / p.bucket_us).max(1) as usize + 1;
        Self {
            p,
            ring: vec![Transit::default(); RING].into_boxed_slice(),
            head: 0,
            len: 0,
            hist: vec![0.0; buckets].into_boxed_slice(),
            updates: 0,
            interval_start_us: None,
            interval_max_us: 0,
            target_us: p.start_us.clamp(p.min_us, p.max_us),
            last_relative_us: 0,
            interval_min_transit_us: 0,
            drift_points: [(0, 0); DRIFT_POINTS],
            drift_head: 0,
            drift_len: 0,
            drift_us_per_s: None,
        }
    }

    /// The sender's clock drift against ours: how fast the transit grows, µs per
    /// second (positive: the sender's clock runs slow and the margin of the packets
    /// shrinks). None until the window is full.
    pub(crate) fn drift_us_per_s(&self) -> Option<f64> {
        self.drift_us_per_s
    }

    fn add_drift_point(&mut self, at_us: i64, min_transit_us: i64) {
        let idx = (self.drift_head + self.drift_len) % DRIFT_POINTS;
        self.drift_points[idx] = (at_us, min_transit_us);
        if self.drift_len == DRIFT_POINTS {
            self.drift_head = (self.drift_head + 1) % DRIFT_POINTS;
        } else {
            self.drift_len += 1;
        }
        if self.drift_len < DRIFT_POINTS {
            return;
        }
        const HALF: usize = DRIFT_POINTS / 2;
        let mut slopes = [0.0f64; HALF];
        let mut n = 0;
        for i in 0..HALF {
            let (x0, y0) = self.drift_points[(self.drift_head + i) % DRIFT_POINTS];
            let (x1, y1) = self.drift_points[(self.drift_head + i + HALF) % DRIFT_POINTS];
            if x1 > x0 {
                slopes[n] = (y1 - y0) as f64 * 1e6 / (x1 - x0) as f64;
                n += 1;
            }
        }
        if n == 0 {
            return;
        }
        let slopes = &mut slopes[..n];
        slopes.sort_unstable_by(f64::total_cmp);
        // Drift only when at least 80 % of the slopes agree on its sign: wandering
        // jitter (a mobile path) scatters them around zero.
        let (low, median, high) = (slopes[n / 5], slopes[n / 2], slopes[n - 1 - n / 5]);
        self.drift_us_per_s = Some(if low > 0.0 || high < 0.0 { median } else { 0.0 });
    }

    /// Current target delay in microseconds.
    pub(crate) fn target_us(&self) -> i64 {
        self.target_us
    }

    /// Smallest transit in the window (None before the first packet).
    pub(crate) fn min_transit_us(&self) -> Option<i64> {
        (self.len > 0).then(|| self.ring[self.head].transit_us)
    }

    /// Relative delay of the last packet.
    pub(crate) fn last_relative_us(&self) -> i64 {
        self.last_relative_us
    }

    /// Forgets the transit window (the sender's timeline changed); keeps the histogram.
    pub(crate) fn reset_window(&mut self) {
        self.head = 0;
        self.len = 0;
        self.interval_start_us = None;
        self.interval_max_us = 0;
        self.drift_head = 0;
        self.drift_len = 0;
        self.drift_us_per_s = None;
    }

    fn back_index(&self) -> usize {
        (self.head + self.len - 1) % RING
    }

    /// Records one packet arrival: `arrival_us` on the receiver clock, `ts_us` the media
    /// timestamp converted to microseconds.
    pub(crate) fn update(&mut self, arrival_us: i64, ts_us: i64) {
        let transit_us = arrival_us - ts_us;
        // Expire old entries.
        while self.len > 0 && self.ring[self.head].arrival_us < arrival_us - self.p.window_us {
            self.head = (self.head + 1) % RING;
            self.len -= 1;
        }
        // Keep the deque increasing in transit.
        while self.len > 0 && self.ring[self.back_index()].transit_us >= transit_us {
            self.len -= 1;
        }
        if self.len == RING {
            self.head = (self.head + 1) % RING;
            self.len -= 1;
        }
        let idx = (self.head + self.len) % RING;
        self.ring[idx] = Transit {
            arrival_us,
            transit_us,
        };
        self.len += 1;
        let min = self.ring[self.head].transit_us;
        let relative = (transit_us - min).max(0);
        self.last_relative_us = relative;

        match self.interval_start_us {
            None => {
                self.interval_start_us = Some(arrival_us);
                self.interval_max_us = relative;
                self.interval_min_transit_us = transit_us;
            }
            Some(start) if arrival_us - start >= self.p.interval_us => {
                let peak = self.interval_max_us;
                self.add_to_histogram(peak);
                self.add_drift_point(start, self.interval_min_transit_us);
                self.interval_start_us = Some(arrival_us);
                self.interval_max_us = relative;
                self.interval_min_transit_us = transit_us;
            }
            Some(_) => {
                self.interval_max_us = self.interval_max_us.max(relative);
                self.interval_min_transit_us = self.interval_min_transit_us.min(transit_us);
            }
        }
    }

    fn add_to_histogram(&mut self, relative_us: i64) {
        let n = self.updates as f64;
        let f = (n / (n + 1.0)).min(self.p.forget_factor);
        for b in self.hist.iter_mut() {
            *b *= f;
        }
        // Bucket i holds ((i - 1) * width, i * width]: bucket 0 is exactly zero, so a
        // jitter-free path gives a zero target.
        let idx = ((relative_us.max(0) + self.p.bucket_us - 1) / self.p.bucket_us) as usize;
        let idx = idx.min(self.hist.len() - 1);
        self.hist[idx] += 1.0 - f;
        self.updates += 1;

        let total: f64 = self.hist.iter().sum();
        let want = self.p.quantile * total;
        let mut acc = 0.0;
        let mut q = self.hist.len() - 1;
        for (i, b) in self.hist.iter().enumerate() {
            acc += b;
            if acc >= want {
                q = i;
                break;
            }
        }
        // The upper edge of the bucket: conservative by up to one bucket width.
        let target = q as i64 * self.p.bucket_us;
        self.target_us = target.clamp(self.p.min_us, self.p.max_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> DelayParams {
        DelayParams {
            start_us: 80_000,
            min_us: 0,
            max_us: 1_000_000,
            bucket_us: 2_000,
            quantile: 0.95,
            forget_factor: 0.983,
            interval_us: 500_000,
            window_us: 2_000_000,
        }
    }

    #[test]
    fn starts_at_80ms_and_adapts_down_on_a_clean_network() {
        let mut d = DelayManager::new(params());
        assert_eq!(d.target_us(), 80_000);
        for k in 0..200i64 {
            d.update(k * 20_000 + 40_000, k * 20_000);
        }
        assert_eq!(d.target_us(), 0);
    }

    /// 20 s of packets from a sender whose clock runs `ppm` slow, with a jitter of
    /// about `sigma_us` (a sum of uniforms) and a 150 ms spike; returns the drift
    /// estimate.
    fn drift_of(ppm: i64, sigma_us: i64) -> Option<f64> {
        let mut p = params();
        p.interval_us = 200_000;
        let mut d = DelayManager::new(p);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for k in 0..1000i64 {
            let send = k * 20_000 + k * 20_000 * ppm / 1_000_000;
            // Twelve uniforms: variance 1 around 6.
            let normal: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
            let jitter = 3 * sigma_us + (normal * sigma_us as f64) as i64;
            let spike = if (400..410).contains(&k) { 150_000 } else { 0 };
            d.update(send + 40_000 + jitter + spike, k * 20_000);
        }
        d.drift_us_per_s()
    }

    #[test]
    fn drift_is_the_transit_slope_despite_jitter_and_a_spike() {
        for ppm in [5_000i64, -5_000, 1_000] {
            let got = drift_of(ppm, 2_000).expect("10 s of intervals");
            assert!(
                (got - ppm as f64).abs() < 250.0,
                "{ppm} ppm estimated as {got:.0} us/s"
            );
        }
        // No drift, or jitter that drowns a small one (the cellular profile's 12 ms).
        assert_eq!(drift_of(0, 2_000), Some(0.0));
        assert_eq!(drift_of(0, 12_000), Some(0.0));
        assert_eq!(drift_of(300, 12_000), Some(0.0));
        let mut d = DelayManager::new(params());
        for k in 0..100i64 {
            d.update(k * 20_000 + 40_000, k * 20_000);
        }
        assert_eq!(d.drift_us_per_s(), None, "2 s are not enough");
    }

    #[test]
    fn grows_with_sustained_jitter_then_comes_back_down() {
        let mut d = DelayManager::new(params());
        let mut t = 0i64;
        let mut k = 0i64;
        // 20 s clean.
        for _ in 0..1000 {
            d.update(k * 20_000 + 40_000, k * 20_000);
            k += 1;
        }
        let low = d.target_us();
        // 10 s where every 4th packet is 60 ms late.
        for _ in 0..500 {
            let extra = if k % 4 == 0 { 60_000 } else { 0 };
            d.update(k * 20_000 + 40_000 + extra, k * 20_000);
            k += 1;
        }
        let high = d.target_us();
        assert!(high >= 60_000, "target after jitter {high}");
        // 60 s clean again: the estimate must come back down.
        for _ in 0..3000 {
            d.update(k * 20_000 + 40_000, k * 20_000);
            k += 1;
            t += 1;
        }
        assert!(t > 0);
        let back = d.target_us();
        assert!(
            back <= low + 2_000,
            "stuck high: {back} (low {low}, high {high})"
        );
    }
}
