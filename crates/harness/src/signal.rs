//! Test signals and the measures the tests and the load tool use (delay search,
//! correlation, per-frame level envelopes). WAV files: `media_core::wav`.
//!
//! The speech-like signal is media-core's deterministic (seeded) synthetic talker,
//! [`SpeechLike`] (the source of [`media_core::speech::speech_like`], streamed without
//! its peak normalisation): words of syllables with a moving pitch through gliding
//! formants, separated by pauses, at about -18 dBFS while talking. Its pitch never
//! repeats exactly, so a cross-correlation finds one clear delay.

use media_core::frame::{FRAME_SAMPLES, PCM16K_RATE};
use media_core::speech::SpeechLike;

/// A deterministic generator of test audio, one 20 ms frame at a time.
#[derive(Debug, Clone)]
pub struct SignalGenerator {
    kind: SignalKind,
    n: u64,
    // Boxed: the talker's RNG state is large and generators are moved around.
    speech: Box<SpeechLike>,
}

/// Which signal a [`SignalGenerator`] makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SignalKind {
    /// Speech-like syllables (see the module docs).
    Speech,
    /// A sine tone: frequency in Hz, amplitude 0..1.
    Tone(f64, f64),
    /// Digital silence.
    Silence,
}

impl SignalGenerator {
    /// A generator; `seed` varies the speech signal.
    pub fn new(kind: SignalKind, seed: u64) -> Self {
        Self {
            kind,
            n: 0,
            speech: Box::new(SpeechLike::new(seed)),
        }
    }

    /// Speech-like signal with `seed`.
    pub fn speech(seed: u64) -> Self {
        Self::new(SignalKind::Speech, seed)
    }

    /// Fills the next 20 ms.
    pub fn fill(&mut self, out: &mut [i16; FRAME_SAMPLES]) {
        for s in out.iter_mut() {
            *s = match self.kind {
                SignalKind::Speech => self.speech.next_sample(),
                SignalKind::Tone(hz, amp) => {
                    let v = amp
                        * (2.0 * std::f64::consts::PI * hz * self.n as f64
                            / f64::from(PCM16K_RATE))
                        .sin();
                    (v * 32767.0).clamp(-32768.0, 32767.0) as i16
                }
                SignalKind::Silence => 0,
            };
            self.n += 1;
        }
    }

    /// `seconds` of the signal as one buffer.
    pub fn take_seconds(&mut self, seconds: f64) -> Vec<i16> {
        let frames = (seconds * 50.0).ceil() as usize;
        let mut v = Vec::with_capacity(frames * FRAME_SAMPLES);
        let mut f = [0i16; FRAME_SAMPLES];
        for _ in 0..frames {
            self.fill(&mut f);
            v.extend_from_slice(&f);
        }
        v
    }
}

/// Pearson correlation of two equally long sequences (0 when either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let (ma, mb) = (
        a[..n].iter().sum::<f64>() / n as f64,
        b[..n].iter().sum::<f64>() / n as f64,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] - ma, b[i] - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Correlation of `reference` with `received` delayed by `lag` samples, over their
/// overlap.
pub fn correlation_at(reference: &[i16], received: &[i16], lag: usize) -> f64 {
    if lag >= received.len() {
        return 0.0;
    }
    let n = reference.len().min(received.len() - lag);
    let a: Vec<f64> = reference[..n].iter().map(|&s| f64::from(s)).collect();
    let b: Vec<f64> = received[lag..lag + n]
        .iter()
        .map(|&s| f64::from(s))
        .collect();
    pearson(&a, &b)
}

fn dot_at(a: &[f64], b: &[f64], lag: usize, len: usize) -> f64 {
    if lag + len > b.len() || len > a.len() {
        return f64::MIN;
    }
    let (mut ab, mut bb) = (0.0, 0.0);
    for i in 0..len {
        ab += a[i] * b[lag + i];
        bb += b[lag + i] * b[lag + i];
    }
    if bb == 0.0 { 0.0 } else { ab / bb.sqrt() }
}

const DECIMATION: usize = 4;

/// 4× decimation by averaging (a crude low-pass; enough for delay searches).
fn decimate(x: &[i16]) -> Vec<f64> {
    decimate_by(x, DECIMATION)
}

fn decimate_by(x: &[i16], d: usize) -> Vec<f64> {
    x.chunks_exact(d)
        .map(|c| c.iter().map(|&s| f64::from(s)).sum::<f64>() / d as f64)
        .collect()
}

/// The correlation from which [`segment_correlations`] takes a segment's lag as the
/// timeline's: above what another talker's 250 ms reach at full rate (their mean stays
/// below 0.3 in this module's tests), below what a segment with a time-stretch inside
/// still reaches.
pub const FOLLOW_CORRELATION: f64 = 0.6;

/// Decimation of [`segment_correlations`] (16 kHz → 1 kHz).
const SEGMENT_DECIMATION: usize = 16;

/// Splits `reference` into segments of `seg` samples, aligns each one on its own and
/// returns each segment's correlation at full rate. Each segment is searched on 16×
/// decimated signals (1 kHz: the pitch and the syllable envelope) within `lag ± search`
/// samples, then refined at full rate within one decimation step of the best coarse
/// lag and of the lag followed so far: a decimated comparison alone loses most of its
/// correlation to a shift of half a millisecond (half a decimated sample), which a
/// drift-following resampler or a time-stretch makes all the time. The search follows the timeline: after each segment
/// that matches recognisably (≥ [`FOLLOW_CORRELATION`]) it is re-centred on that
/// segment's lag, so the accumulated shifts a jitter buffer makes when it conceals or
/// time-stretches do not push later segments out of reach. A segment in which such a
/// shift happens matches only in part (0.6–0.9), and a path whose latency converges
/// after its start (a jitter buffer shrinking its start-up delay, a device ring slipping
/// onto its target) makes several of them in a row: following only clear matches lost
/// the timeline there, and every later segment was searched in the wrong place.
pub fn segment_correlations(
    reference: &[i16],
    received: &[i16],
    seg: usize,
    lag: usize,
    search: usize,
) -> Vec<f64> {
    const D: usize = SEGMENT_DECIMATION;
    let (a, b) = (decimate_by(reference, D), decimate_by(received, D));
    let (a1, b1) = (decimate_by(reference, 1), decimate_by(received, 1));
    let seg_d = (seg / D).max(1);
    let seg1 = seg_d * D;
    let (mut lag_d, search_d) = (lag / D, search / D);
    let mut out = Vec::new();
    let mut start = 0;
    while start + seg_d <= a.len() {
        let sa = &a[start..start + seg_d];
        let mut coarse: Option<(f64, usize)> = None;
        for l in lag_d.saturating_sub(search_d)..=lag_d + search_d {
            let from = start + l;
            if from + seg_d > b.len() {
                break;
            }
            let c = pearson(sa, &b[from..from + seg_d]);
            if coarse.is_none_or(|(bc, _)| c > bc) {
                coarse = Some((c, l));
            }
        }
        let Some((_, l)) = coarse else {
            out.push(0.0);
            start += seg_d;
            continue;
        };
        // Refine around the coarse lag and around the lag followed so far (a shift of
        // a fraction of a decimated sample can hand the coarse search a neighbouring
        // pitch peak).
        let s1 = start * D;
        let sa1 = &a1[s1..s1 + seg1];
        let mut fine: Option<(f64, usize)> = None;
        let try_lag = |l1: usize, fine: &mut Option<(f64, usize)>| {
            let from = s1 + l1;
            if from + seg1 <= b1.len() {
                let c = pearson(sa1, &b1[from..from + seg1]);
                if fine.is_none_or(|(bc, _)| c > bc) {
                    *fine = Some((c, l1));
                }
            }
        };
        // Every lag: the peak of a segment that is mostly near-silent background with
        // a little speech is one sample wide (the background decorrelates at a
        // one-sample shift), so stepping by two missed odd lags and scored an exact
        // echo at 0.2.
        let centres = if lag_d == l {
            vec![l * D]
        } else {
            vec![lag_d * D, l * D]
        };
        for centre in centres {
            for l1 in centre.saturating_sub(D)..=centre + D {
                try_lag(l1, &mut fine);
            }
        }
        match fine {
            Some((c, l1)) => {
                if c >= FOLLOW_CORRELATION {
                    lag_d = (l1 + D / 2) / D;
                }
                out.push(c);
            }
            None => out.push(0.0),
        }
        start += seg_d;
    }
    out
}

/// Finds how many samples `received` lags `reference` (0..=`max_lag`), by normalised
/// cross-correlation: coarse on a 4× decimated signal, then refined at full rate.
/// `None` when the signals are too short or silent.
pub fn find_delay(reference: &[i16], received: &[i16], max_lag: usize) -> Option<usize> {
    // Stage 1: 1 kHz (16x decimated), every lag; a window of up to 1.5 s.
    const C: usize = 16;
    let (a, b) = (decimate_by(reference, C), decimate_by(received, C));
    let max_c = (max_lag / C).min(b.len().saturating_sub(1));
    let len = a.len().min(b.len().saturating_sub(max_c)).min(24_000 / C);
    if len < 100 {
        return None;
    }
    let best = best_lag(&a, &b, 0..=max_c, len)?;
    // Stage 2: 4 kHz around it.
    let (a4, b4) = (decimate(reference), decimate(received));
    let center = best * (C / DECIMATION);
    let len4 = len * (C / DECIMATION);
    let lo = center.saturating_sub(2 * C / DECIMATION);
    let hi = (center + 2 * C / DECIMATION).min(max_lag / DECIMATION);
    let best = best_lag(&a4, &b4, lo..=hi, len4)?;
    // Stage 3: full rate.
    let (a1, b1): (Vec<f64>, Vec<f64>) = (
        reference.iter().map(|&s| f64::from(s)).collect(),
        received.iter().map(|&s| f64::from(s)).collect(),
    );
    let center = best * DECIMATION;
    let lo = center.saturating_sub(2 * DECIMATION);
    let hi = (center + 2 * DECIMATION).min(max_lag);
    best_lag(&a1, &b1, lo..=hi, len4 * DECIMATION)
}

/// The lag in `lags` with the largest normalised dot product over `len` samples.
fn best_lag(
    a: &[f64],
    b: &[f64],
    lags: std::ops::RangeInclusive<usize>,
    len: usize,
) -> Option<usize> {
    let mut best = (0usize, f64::MIN);
    for lag in lags {
        let n = len.min(b.len().saturating_sub(lag)).min(a.len());
        if n == 0 {
            break;
        }
        let c = dot_at(a, b, lag, n);
        if c > best.1 {
            best = (lag, c);
        }
    }
    (best.1 > 0.0).then_some(best.0)
}

/// Per-20 ms RMS levels (linear, full scale = 1).
pub fn frame_rms_envelope(samples: &[i16]) -> Vec<f64> {
    samples
        .chunks_exact(FRAME_SAMPLES)
        .map(|c| {
            let ms = c.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / c.len() as f64;
            ms.sqrt() / 32768.0
        })
        .collect()
}

/// Correlation of the per-20 ms RMS envelopes of `reference` and `received` delayed by
/// `lag` samples.
pub fn envelope_correlation(reference: &[i16], received: &[i16], lag: usize) -> f64 {
    if lag >= received.len() {
        return 0.0;
    }
    let a = frame_rms_envelope(reference);
    let b = frame_rms_envelope(&received[lag..]);
    pearson(&a, &b)
}

/// The median of the segments that have a value (`None` if none has).
pub fn median(segments: &[Option<f64>]) -> Option<f64> {
    let mut v: Vec<f64> = segments.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// An envelope in dB (floored at −80 dBFS): pauses and onsets weigh as much as peaks.
fn db(envelope: &[f64]) -> Vec<f64> {
    envelope
        .iter()
        .map(|&e| 20.0 * e.max(1e-4).log10())
        .collect()
}

/// Samples per segment of [`segment_envelope_correlations`] (1 s: 50 envelope frames).
pub const ENVELOPE_SEGMENT: usize = 16_000;

/// Step of [`segment_envelope_correlations`]'s lag search, samples (5 ms: a quarter of an
/// envelope frame).
const ENVELOPE_STEP: usize = 80;

/// Splits `reference` into 1 s segments and correlates each one's per-20 ms RMS envelope
/// (in dB) with the received one's, each segment aligned on its own within `lag ± search`
/// samples of the lag followed so far (re-centred after every segment that matches
/// recognisably, ≥ [`FOLLOW_CORRELATION`], as in [`segment_correlations`]). `None` for a
/// segment whose reference is silent (every frame below −45 dBFS): nothing to compare.
///
/// Where the waveform measure of [`segment_correlations`] needs the echo's timeline to
/// hold to a fraction of a pitch period within 250 ms, this one asks only that the
/// syllables come back in order within each second: it stays near 1 through a
/// drift-following resampler's ±1 % and through slips, and near 0 for another talker.
pub fn segment_envelope_correlations(
    reference: &[i16],
    received: &[i16],
    lag: usize,
    search: usize,
) -> Vec<Option<f64>> {
    let quiet = 10f64.powf(-45.0 / 20.0);
    let mut followed = lag;
    let mut out = Vec::new();
    for seg in reference.chunks_exact(ENVELOPE_SEGMENT) {
        let start = out.len() * ENVELOPE_SEGMENT;
        let a = frame_rms_envelope(seg);
        if a.iter().all(|&e| e < quiet) {
            out.push(None);
            continue;
        }
        let a = db(&a);
        let mut best: Option<(f64, usize)> = None;
        let mut l = followed.saturating_sub(search);
        while l <= followed + search {
            let from = start + l;
            if from + ENVELOPE_SEGMENT > received.len() {
                break;
            }
            let c = pearson(
                &a,
                &db(&frame_rms_envelope(
                    &received[from..from + ENVELOPE_SEGMENT],
                )),
            );
            if best.is_none_or(|(bc, _)| c > bc) {
                best = Some((c, l));
            }
            l += ENVELOPE_STEP;
        }
        match best {
            Some((c, l)) => {
                if c >= FOLLOW_CORRELATION {
                    followed = l;
                }
                out.push(Some(c));
            }
            None => out.push(Some(0.0)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_sub_millisecond_shifts_and_reject_another_signal() {
        // The echo: 200 ms late, and every second 8 samples (half a millisecond) later
        // again, as a drift-following resampler or a time-stretch makes it.
        let sent = SignalGenerator::speech(5).take_seconds(6.0);
        let mut echo = vec![0i16; 3_200];
        for (k, chunk) in sent.chunks(16_000).enumerate() {
            echo.extend(std::iter::repeat_n(0, if k > 0 { 8 } else { 0 }));
            echo.extend_from_slice(chunk);
        }
        let own = segment_correlations(&sent, &echo, 4_000, 3_200, 1_600);
        assert_eq!(own.len(), 24);
        // A segment that straddles a shift matches only in part; every other segment
        // is the signal itself.
        let clean: Vec<f64> = own
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 4 != 0 || *i == 0)
            .map(|(_, &c)| c)
            .collect();
        assert!(clean.iter().all(|&c| c > 0.999), "{own:?}");
        let other = SignalGenerator::speech(6).take_seconds(6.0);
        let crossed = segment_correlations(&other, &echo, 4_000, 3_200, 1_600);
        // (The synthetic talker repeats its vowels, so a rare segment can match.)
        let mean = crossed.iter().sum::<f64>() / crossed.len() as f64;
        let matched = crossed.iter().filter(|&&c| c >= 0.9).count();
        assert!(mean < 0.3 && matched <= 1, "{crossed:?}");
    }

    #[test]
    fn segments_follow_a_latency_that_converges_in_steps() {
        // The echo starts 400 ms late and sheds 45 ms four times, a quarter into four
        // consecutive segments (as a jitter buffer's start-up accelerations and a device
        // ring's slip do): 180 ms in all, more than the ±100 ms searched around the lag
        // followed, and no segment in between matches clearly.
        let sent = SignalGenerator::speech(5).take_seconds(6.0);
        let mut echo = vec![0i16; 6_400];
        let cuts = [5_000usize, 9_000, 13_000, 17_000];
        let mut from = 0;
        for &cut in &cuts {
            echo.extend_from_slice(&sent[from..cut]);
            from = cut + 720;
        }
        echo.extend_from_slice(&sent[from..]);
        let own = segment_correlations(&sent, &echo, 4_000, 6_400, 1_600);
        let after: Vec<f64> = own[5..].to_vec();
        assert!(after.iter().all(|&c| c > 0.99), "{own:?}");
    }

    #[test]
    fn envelope_segments_hold_through_a_stretched_echo_and_reject_another_signal() {
        // The echo: 300 ms late, played 1 % slow (a drift-following resampler at its
        // bound), with a 120 ms slip after 3 s: the waveform measure fails on most of
        // its 250 ms segments, the envelope measure does not.
        let sent = SignalGenerator::speech(5).take_seconds(6.0);
        let mut echo = vec![0i16; 4_800];
        let stretched: Vec<i16> = (0..(sent.len() as f64 * 1.01) as usize)
            .map(|i| sent[((i as f64 / 1.01) as usize).min(sent.len() - 1)])
            .collect();
        echo.extend_from_slice(&stretched[..48_000]);
        echo.extend_from_slice(&stretched[48_000 + 1_920..]);
        let own = segment_envelope_correlations(&sent, &echo, 4_800, 8_000);
        assert_eq!(own.len(), 6);
        assert!(own.iter().flatten().all(|&c| c > 0.99), "{own:?}");
        let other = SignalGenerator::speech(6).take_seconds(6.0);
        let crossed = segment_envelope_correlations(&other, &echo, 4_800, 8_000);
        // (The synthetic talker repeats its rhythm, so a rare segment can match.)
        assert!(median(&crossed).is_some_and(|m| m < 0.8), "{crossed:?}");
    }

    #[test]
    fn speech_has_level_and_pauses() {
        let x = SignalGenerator::speech(1).take_seconds(4.0);
        let env = frame_rms_envelope(&x);
        let loud = env.iter().filter(|&&e| e > 0.02).count();
        let quiet = env.iter().filter(|&&e| e < 0.003).count();
        assert!(loud > 50, "loud frames {loud}");
        assert!(quiet > 10, "quiet frames {quiet}");
    }

    #[test]
    fn finds_a_known_delay() {
        let x = SignalGenerator::speech(7).take_seconds(3.0);
        for delay in [0usize, 1, 37, 1234, 3201] {
            let mut y = vec![0i16; delay];
            y.extend_from_slice(&x);
            assert_eq!(find_delay(&x, &y, 4000), Some(delay));
            assert!(correlation_at(&x, &y, delay) > 0.999);
            assert!(envelope_correlation(&x, &y, delay) > 0.999);
        }
    }
}
