//! Time-stretching of decoded PCM: remove or insert one pitch period with an
//! overlap-add.
//!
//! This is the classic NetEQ *accelerate* / *preemptive expand* operation (a one-step
//! WSOLA): find the lag `p` (2.5-10 ms) at which the signal best repeats itself, by
//! normalised cross-correlation ([`find_period`]), then
//!
//! * remove `p` samples: `out = ola(x[0..p] -> x[p..2p]) ++ x[2p..]` (length `n - p`),
//! * insert `p` samples: `out = x[0..p] ++ ola(x[p..2p] -> x[0..p]) ++ x[p..]`
//!   (length `n + p`),
//!
//! where `ola` overlap-adds the two periods under a smooth window whose weights sum to
//! one. Both keep the first and the last sample of the input in place, so consecutive
//! chunks join without a click. The caller decides where a stretch is allowed (the
//! receive pipeline: quiet frames, or a correlation of at least
//! [`ReceiveConfig::min_correlation`](crate::playout::ReceiveConfig::min_correlation)
//! between two periods of similar energy, [`is_stationary`]); on quiet input any length
//! works (there is no pitch to match).
//!
//! # Realtime safety
//! Pure functions on caller-owned slices; no allocation.

use crate::frame::FRAME_SAMPLES;

/// Shortest period searched: 2.5 ms at 16 kHz (400 Hz).
pub const MIN_PERIOD: usize = 40;
/// Longest period searched: 10 ms at 16 kHz (100 Hz); also the longest removal or
/// insertion of one operation (it needs two periods inside one 20 ms frame).
pub const MAX_PERIOD: usize = FRAME_SAMPLES / 2;
/// Longest output of [`insert`]: one frame plus one period.
pub const MAX_STRETCHED: usize = FRAME_SAMPLES + MAX_PERIOD;

/// Longest input [`find_period`] reads: 30 ms, two of the longest pitch periods the
/// PCM concealment searches (15 ms); longer inputs are cut to their first
/// `MAX_SEARCH` samples.
pub const MAX_SEARCH: usize = 3 * FRAME_SAMPLES / 2;

/// Finds the lag in `[min_p, max_p]` where `x` best matches itself shifted, and the
/// normalised correlation there (-1..1; 0 for an all-zero input).
///
/// The comparison window is the first `x.len() - max_p` samples for every lag, so the
/// scores are comparable. At most [`MAX_SEARCH`] samples are read and `max_p` is at
/// most half of them.
///
/// As NetEQ does, the search runs in two stages: every lag on the signal decimated to
/// 8 kHz (pairs averaged), then the full-rate lags around the two best coarse lags
/// (±2 samples). Integer dot products (exact, vectorised) replace the float loop: the
/// whole search costs about a tenth of the exhaustive one (≈ 19,000 multiply-adds), so
/// a buffer that tries to accelerate on every tick stays cheap.
pub fn find_period(x: &[i16], min_p: usize, max_p: usize) -> (usize, f32) {
    let x = &x[..x.len().min(MAX_SEARCH)];
    let n = x.len();
    let max_p = max_p.min(n / 2);
    let min_p = min_p.clamp(1, max_p.max(1));
    if n < 8 || max_p < min_p {
        return (min_p, 0.0);
    }
    let w = n - max_p;
    // Prefix sums of squares give the energy of each shifted window in O(1).
    let mut pre = [0i64; MAX_SEARCH + 1];
    prefix_energy(x, &mut pre);
    if pre[w] == 0 {
        return (min_p, 0.0);
    }
    // Stage 1: 8 kHz, every lag. Pairs are summed and scaled down by 32 (12-bit
    // samples), so a window's dot product fits an i32 and vectorises to
    // multiply-add-pairs instructions.
    let mut d = [0i16; MAX_SEARCH / 2];
    let nd = n / 2;
    for (i, v) in d[..nd].iter_mut().enumerate() {
        *v = ((i32::from(x[2 * i]) + i32::from(x[2 * i + 1])) >> 5) as i16;
    }
    let d = &d[..nd];
    let mut pre_d = [0i64; MAX_SEARCH / 2 + 1];
    prefix_energy(d, &mut pre_d);
    let wd = w / 2;
    let (lo, hi) = (min_p.div_ceil(2).max(1), max_p / 2);
    let mut top = [(0usize, f64::MIN); 2];
    for pd in lo..=hi {
        if wd == 0 || pd + wd > nd {
            break;
        }
        let num = i64::from(dot_small(&d[..wd], &d[pd..pd + wd]));
        let c = normalised(num, pre_d[wd], pre_d[pd + wd] - pre_d[pd]);
        if c > top[0].1 {
            top = [(pd, c), top[0]];
        } else if c > top[1].1 {
            top[1] = (pd, c);
        }
    }
    // Stage 2: full rate around the best two coarse lags (everywhere if the coarse
    // stage had no lag to offer).
    let mut best = (min_p, f32::MIN);
    let mut try_lag = |p: usize| {
        if p < min_p || p > max_p || p + w > n {
            return;
        }
        let c = normalised(dot(&x[..w], &x[p..p + w]), pre[w], pre[p + w] - pre[p]) as f32;
        if c > best.1 {
            best = (p, c);
        }
    };
    if top[0].1 == f64::MIN {
        (min_p..=max_p).for_each(&mut try_lag);
    }
    for &(pd, c) in &top {
        if c > f64::MIN {
            ((2 * pd).saturating_sub(2)..=2 * pd + 2).for_each(&mut try_lag);
        }
    }
    best
}

/// `pre[i]` = energy of `x[..i]`.
fn prefix_energy(x: &[i16], pre: &mut [i64]) {
    pre[0] = 0;
    for (i, &v) in x.iter().enumerate() {
        pre[i + 1] = pre[i] + i64::from(i32::from(v) * i32::from(v));
    }
}

/// Exact dot product of two equally long sample slices.
fn dot(a: &[i16], b: &[i16]) -> i64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i64::from(i32::from(x) * i32::from(y)))
        .sum()
}

/// Dot product of at most 240 samples (`MAX_SEARCH / 2`) with |v| <= 2048: the sum
/// stays below 240 * 2^22 < 2^30.
fn dot_small(a: &[i16], b: &[i16]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

/// `num / sqrt(e0 * e1)`, 0 when either window is silent.
fn normalised(num: i64, e0: i64, e1: i64) -> f64 {
    if e0 <= 0 || e1 <= 0 {
        return 0.0;
    }
    num as f64 / ((e0 as f64) * (e1 as f64)).sqrt()
}

/// Overlap-add of `a` fading out and `b` fading in over `out.len()` samples, with a
/// smooth window (`w(t) = 3t² - 2t³`, the raised cosine's cubic twin: its slope is 0 at
/// both ends, so neither side starts or stops with a kink). The two weights sum to 1:
/// the level holds when `a` and `b` are aligned, which the pitch search ensures.
fn xfade(a: &[i16], b: &[i16], out: &mut [i16]) {
    let l = out.len() as i64;
    if l == 0 {
        return;
    }
    // Fixed point: t = (i + 0.5) / l in units of 1/(2l); w in units of 1/(2l)^3.
    let d = 2 * l;
    let d3 = d * d * d;
    for (i, o) in out.iter_mut().enumerate() {
        let t = 2 * i as i64 + 1;
        let w = t * t * (3 * d - 2 * t);
        let v = (i64::from(a[i]) * (d3 - w) + i64::from(b[i]) * w) / d3;
        *o = v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16;
    }
}

/// True when the two periods `x[..p]` and `x[p..2p]` have energies within a factor of
/// two (3 dB) of each other: a stationary stretch of signal, not an onset or a decay,
/// where removing or repeating one period is inaudible (needs `2p <= x.len()`).
pub fn is_stationary(x: &[i16], p: usize) -> bool {
    if p == 0 || 2 * p > x.len() {
        return false;
    }
    let e = |s: &[i16]| s.iter().map(|&v| i64::from(v) * i64::from(v)).sum::<i64>();
    let (e0, e1) = (e(&x[..p]), e(&x[p..2 * p]));
    e0 <= 2 * e1 && e1 <= 2 * e0
}

/// Removes `p` samples from `x` (needs `2p <= x.len()`), writing `x.len() - p` samples
/// into `out`. Returns the output length, or `None` when `p` does not fit.
pub fn remove(x: &[i16], p: usize, out: &mut [i16]) -> Option<usize> {
    let n = x.len();
    if p == 0 || 2 * p > n || out.len() < n - p {
        return None;
    }
    xfade(&x[..p], &x[p..2 * p], &mut out[..p]);
    out[p..n - p].copy_from_slice(&x[2 * p..]);
    Some(n - p)
}

/// Inserts `p` samples into `x` (needs `2p <= x.len()`), writing `x.len() + p` samples
/// into `out`. Returns the output length, or `None` when `p` does not fit.
pub fn insert(x: &[i16], p: usize, out: &mut [i16]) -> Option<usize> {
    let n = x.len();
    if p == 0 || 2 * p > n || out.len() < n + p {
        return None;
    }
    out[..p].copy_from_slice(&x[..p]);
    xfade(&x[p..2 * p], &x[..p], &mut out[p..2 * p]);
    out[2 * p..n + p].copy_from_slice(&x[p..]);
    Some(n + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(period: usize) -> [i16; FRAME_SAMPLES] {
        let mut x = [0i16; FRAME_SAMPLES];
        for (i, s) in x.iter_mut().enumerate() {
            let ph = (i % period) as f32 / period as f32;
            *s = ((ph * std::f32::consts::TAU).sin() * 8000.0
                + (ph * 2.0 * std::f32::consts::TAU).sin() * 3000.0) as i16;
        }
        x
    }

    #[test]
    fn finds_the_period_of_a_periodic_signal() {
        let x = tone(97);
        let (p, c) = find_period(&x, MIN_PERIOD, MAX_PERIOD);
        assert_eq!(p, 97);
        assert!(c > 0.99, "corr {c}");
    }

    /// The exhaustive float search the two-stage one replaced.
    fn exhaustive(x: &[i16], min_p: usize, max_p: usize) -> (usize, f32) {
        let w = x.len() - max_p;
        let e = |a: &[i16]| a.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
        let e0 = e(&x[..w]);
        let mut best = (min_p, f32::MIN);
        for p in min_p..=max_p {
            let num: f64 = (0..w).map(|i| f64::from(x[i]) * f64::from(x[i + p])).sum();
            let c = (num / (e0 * e(&x[p..p + w])).sqrt()) as f32;
            if c > best.1 {
                best = (p, c);
            }
        }
        best
    }

    #[test]
    fn two_stage_search_matches_the_exhaustive_one_on_speech() {
        // Voiced speech-like frames (a glottal-pulse train through a resonance, with
        // noise), pitch 100-400 Hz: the two-stage search finds a lag as good as the
        // exhaustive search's on (nearly) every frame.
        let mut rng = 0x1234_5678u32;
        let mut noise = || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            (rng % 2001) as f32 - 1000.0
        };
        let (mut same, mut worse) = (0, 0);
        let frames = 400;
        for k in 0..frames {
            let period = 40 + (k * 7919) % 121;
            let mut x = [0i16; FRAME_SAMPLES];
            let (mut y1, mut y2) = (0f32, 0f32);
            for (i, s) in x.iter_mut().enumerate() {
                let pulse = if i % period == 0 { 6000.0 } else { 0.0 };
                let y = pulse + 1.6 * y1 - 0.8 * y2 + 0.3 * noise() * (k % 3) as f32;
                y2 = y1;
                y1 = y;
                *s = y.clamp(-32000.0, 32000.0) as i16;
            }
            let (p, c) = find_period(&x, MIN_PERIOD, MAX_PERIOD);
            let (pe, ce) = exhaustive(&x, MIN_PERIOD, MAX_PERIOD);
            if p == pe {
                same += 1;
            }
            if c < ce - 0.02 {
                worse += 1;
            }
            assert!(c <= ce + 1e-4, "frame {k}: {c} beats the exhaustive {ce}?");
        }
        eprintln!("two-stage vs exhaustive: same lag {same}/{frames}, worse by > 0.02: {worse}");
        assert!(worse * 100 <= frames, "{worse} of {frames} frames worse");
        assert!(
            same * 10 >= frames * 9,
            "same lag on only {same} of {frames}"
        );
    }

    #[test]
    fn only_periods_of_similar_energy_are_stationary() {
        let x = tone(80);
        assert!(is_stationary(&x, 80));
        // An onset: the second period is 4 times (12 dB) louder than the first.
        let mut onset = x;
        for v in &mut onset[..80] {
            *v /= 4;
        }
        assert!(!is_stationary(&onset, 80));
        assert!(!is_stationary(&x, 161));
        assert!(!is_stationary(&x, 0));
    }

    #[test]
    fn the_overlap_window_is_smooth_and_keeps_the_level() {
        // Equal inputs come out unchanged (the weights sum to one) ...
        let a = [1000i16; 64];
        let mut out = [0i16; 64];
        xfade(&a, &a, &mut out);
        assert!(out.iter().all(|&v| (999..=1000).contains(&v)), "{out:?}");
        // ... and a fade from 0 to 10000 starts and ends flat (slope ~0 at both ends,
        // steepest in the middle), monotonic throughout.
        xfade(&[0; 64], &[10_000; 64], &mut out);
        let steps: Vec<i32> = out
            .windows(2)
            .map(|w| i32::from(w[1]) - i32::from(w[0]))
            .collect();
        assert!(steps.iter().all(|&d| d >= 0));
        assert!(steps[0] < 20 && steps[62] < 20, "{steps:?}");
        assert!(steps[31] > 200, "{steps:?}");
    }

    #[test]
    fn silence_and_short_input() {
        assert_eq!(
            find_period(&[0; FRAME_SAMPLES], MIN_PERIOD, MAX_PERIOD).1,
            0.0
        );
        assert_eq!(find_period(&[5; 4], MIN_PERIOD, MAX_PERIOD).1, 0.0);
    }

    #[test]
    fn remove_and_insert_keep_the_ends_and_change_the_length() {
        let x = tone(80);
        let mut out = [0i16; MAX_STRETCHED];
        let n = remove(&x, 80, &mut out).expect("fits");
        assert_eq!(n, 240);
        assert_eq!(out[0], x[0]);
        assert_eq!(out[n - 1], x[FRAME_SAMPLES - 1]);
        // For an exactly periodic signal the result is the same waveform, shorter.
        for i in 0..n {
            assert!((i32::from(out[i]) - i32::from(x[i % 80])).abs() <= 1);
        }
        let n = insert(&x, 80, &mut out).expect("fits");
        assert_eq!(n, 400);
        assert_eq!(out[0], x[0]);
        assert_eq!(out[n - 1], x[FRAME_SAMPLES - 1]);
        for i in 0..n {
            assert!((i32::from(out[i]) - i32::from(x[i % 80])).abs() <= 1);
        }
        assert!(remove(&x, 161, &mut out).is_none());
        assert!(insert(&x, 0, &mut out).is_none());
    }
}
