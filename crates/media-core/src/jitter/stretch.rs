//! Time-stretching of decoded PCM: remove or insert one pitch period with a crossfade.
//!
//! This is the classic NetEQ *accelerate* / *preemptive expand* operation (a one-step
//! WSOLA): find the lag `p` (2.5-10 ms) at which the signal best repeats itself, then
//!
//! * remove `p` samples: `out = xfade(x[0..p] -> x[p..2p]) ++ x[2p..]` (length `n - p`),
//! * insert `p` samples: `out = x[0..p] ++ xfade(x[p..2p] -> x[0..p]) ++ x[p..]`
//!   (length `n + p`).
//!
//! Both keep the first and the last sample of the input in place, so consecutive chunks
//! join without a click. On quiet input any length works (there is no pitch to match).
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

/// Finds the lag in `[min_p, max_p]` where `x` best matches itself shifted, and the
/// normalised correlation there (-1..1; 0 for an all-zero input).
///
/// The comparison window is the first `x.len() - max_p` samples for every lag, so the
/// scores are comparable.
pub fn find_period(x: &[i16], min_p: usize, max_p: usize) -> (usize, f32) {
    let x = &x[..x.len().min(FRAME_SAMPLES)];
    let n = x.len();
    let max_p = max_p.min(n / 2);
    let min_p = min_p.clamp(1, max_p.max(1));
    if n < 2 || max_p < min_p {
        return (min_p, 0.0);
    }
    let w = n - max_p;
    // Prefix sums of squares to get the energy of each shifted window in O(1).
    let mut pre = [0f64; FRAME_SAMPLES + 1];
    let m = n;
    for i in 0..m {
        pre[i + 1] = pre[i] + f64::from(x[i]) * f64::from(x[i]);
    }
    let e0 = pre[w.min(m)];
    if e0 <= 0.0 {
        return (min_p, 0.0);
    }
    let mut best = (min_p, f32::MIN);
    for p in min_p..=max_p {
        if p + w > m {
            break;
        }
        let mut num = 0f64;
        for i in 0..w {
            num += f64::from(x[i]) * f64::from(x[i + p]);
        }
        let ep = pre[p + w] - pre[p];
        let c = if ep > 0.0 {
            (num / (e0 * ep).sqrt()) as f32
        } else {
            0.0
        };
        if c > best.1 {
            best = (p, c);
        }
    }
    best
}

fn xfade(a: &[i16], b: &[i16], out: &mut [i16]) {
    let l = out.len() as i32;
    for (i, o) in out.iter_mut().enumerate() {
        let i = i as i32;
        let v = (i32::from(a[i as usize]) * (l - i) + i32::from(b[i as usize]) * i) / l.max(1);
        *o = v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
    }
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
