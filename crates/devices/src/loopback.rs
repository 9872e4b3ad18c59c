//! Loopback measurement: play a known signal to an output device, record an input device
//! that hears it (a null sink's monitor, a cable), and measure what came back.
//!
//! The signal is a logarithmic sine sweep (100 Hz up to 0.4 × the rate, at most 15 kHz, at
//! -6 dBFS, with 10 ms fades) preceded by 100 ms of silence and followed by enough silence to
//! cover the longest latency searched. The runner behaves like the engine: every 20 ms tick
//! it pushes the audio due by the wall clock into the playback ring and drains the capture
//! ring. So the measured latency is the engine's round trip: from a sample entering the
//! playback ring to the same sample leaving the capture ring (it includes the playback
//! prefill cushion, the device buffers and the server's own latency).
//!
//! Analysis: cross-correlation (FFT) of the captured mono mix against the reference gives the
//! integer lag; a parabolic fit of the peak gives the fractional part; the reference is then
//! shifted by that fractional delay (FFT phase shift) before computing, over the sweep, the
//! normalised correlation coefficient and the SNR after a least-squares gain fit.

use std::f64::consts::PI;
use std::time::{Duration, Instant};

use ringbuf::traits::{Consumer, Observer};
use serde::Serialize;

use crate::stream::push_frames;
use crate::{
    CaptureStream, CounterSnapshot, DeviceError, DeviceSelector, PlaybackStream, SampleType,
    StreamFormat,
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct LoopbackConfig {
    /// Where the signal is played (default: the default output, the null sink `loop`).
    pub output: DeviceSelector,
    /// Where it is recorded (default: the default input, `loop.monitor`).
    pub input: DeviceSelector,
    /// Rate of both streams; `None`: the output device's default rate.
    pub sample_rate: Option<u32>,
    /// Channels of both streams; `None`: the output device's default channel count.
    pub channels: Option<u16>,
    /// Length of the sweep in seconds.
    pub sweep_seconds: f64,
    /// Sample type exchanged with the devices.
    pub sample_type: SampleType,
    /// Frames per device callback; `None`: 20 ms.
    pub buffer_frames: Option<u32>,
    /// Silence in the playback ring before the stream starts (the engine's cushion).
    pub prefill_ms: u32,
    /// Longest latency searched for.
    pub max_latency_ms: u32,
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        Self {
            output: DeviceSelector::default(),
            input: DeviceSelector::default(),
            sample_rate: None,
            channels: None,
            sweep_seconds: 1.0,
            sample_type: SampleType::I16,
            buffer_frames: None,
            prefill_ms: 40,
            max_latency_ms: 500,
        }
    }
}

/// The result of [`run_loopback`].
#[derive(Debug, Clone, Serialize)]
pub struct LoopbackReport {
    /// Output device, `host:id`.
    pub output_device: String,
    /// Input device, `host:id`.
    pub input_device: String,
    /// Rate of both streams.
    pub sample_rate: u32,
    /// Channels of both streams.
    pub channels: u16,
    /// Frames per device callback.
    pub buffer_frames: u32,
    /// Sample type exchanged with the devices.
    pub sample_type: SampleType,
    /// The signal played.
    pub signal: String,
    /// Playback prefill cushion (included in the latency).
    pub prefill_ms: u32,
    /// Round-trip latency as the engine sees it, in milliseconds: from the tick that pushed a
    /// sample into the playback ring to the tick that popped it from the capture ring
    /// (averaged over the sweep; includes the time spent queued in both rings).
    pub latency_ms: f64,
    /// Of that, the mean time a sample waited in the playback ring (the cushion), in ms.
    pub playback_queue_ms: f64,
    /// Offset of the capture against the reference in the sample streams (fractional frames;
    /// the capture stream starts when the first sample is pushed).
    pub alignment_frames: f64,
    /// Normalised correlation coefficient between the aligned reference and the capture over
    /// the sweep (1.0: identical up to gain).
    pub correlation: f64,
    /// Signal-to-noise ratio of the capture after alignment and gain fit, in dB.
    pub snr_db: f64,
    /// Gain from reference to capture, in dB.
    pub gain_db: f64,
    /// Alignment of successive eighths of the sweep, in ms (NaN where not measurable). Equal
    /// values: one continuous timeline. A step means audio was dropped or inserted somewhere
    /// the ring counters cannot see (the server, a client thread starved of CPU).
    pub segment_lags_ms: Vec<f64>,
    /// Steps between successive segment alignments larger than 0.25 ms (2 frames at least).
    pub timeline_slips: usize,
    /// Playback stream counters over the run.
    pub playback: CounterSnapshot,
    /// Capture stream counters over the run.
    pub capture: CounterSnapshot,
    /// Seconds of audio captured and analysed.
    pub captured_seconds: f64,
}

const TICK: Duration = Duration::from_millis(20);
const LEAD_S: f64 = 0.1;
const FADE_S: f64 = 0.01;
const AMPLITUDE: f64 = 0.5;

/// A log sweep with fades, `seconds` long.
pub fn log_sweep(sample_rate: u32, seconds: f64, f0: f64, f1: f64) -> Vec<f64> {
    let fs = f64::from(sample_rate);
    let n = (seconds * fs).round() as usize;
    let k = (f1 / f0).ln();
    let fade = ((FADE_S * fs) as usize).max(1);
    (0..n)
        .map(|i| {
            let t = i as f64 / fs;
            let phase = 2.0 * PI * f0 * seconds / k * ((t / seconds * k).exp() - 1.0);
            let edge = i.min(n - 1 - i);
            let w = if edge < fade {
                0.5 - 0.5 * (PI * edge as f64 / fade as f64).cos()
            } else {
                1.0
            };
            AMPLITUDE * w * phase.sin()
        })
        .collect()
}

/// Plays the sweep, records it back and measures latency and fidelity.
pub fn run_loopback(config: &LoopbackConfig) -> Result<LoopbackReport, DeviceError> {
    // Capture first, so it is running when the signal arrives; its format follows the output.
    let mut out_fmt = StreamFormat {
        sample_rate: config.sample_rate,
        channels: config.channels,
        buffer_frames: config.buffer_frames,
        sample_type: config.sample_type,
        ring_ms: 200 + config.prefill_ms,
        prefill_ms: config.prefill_ms,
    };
    if out_fmt.sample_rate.is_none() || out_fmt.channels.is_none() {
        // Learn the output's defaults without keeping it open long.
        let (probe, _prod) = PlaybackStream::open(&config.output, out_fmt)?;
        out_fmt.sample_rate = Some(probe.format().sample_rate);
        out_fmt.channels = Some(probe.format().channels);
    }
    let in_fmt = StreamFormat {
        prefill_ms: 0,
        ring_ms: 500,
        ..out_fmt
    };
    let (capture, mut cons) = CaptureStream::open(&config.input, in_fmt)?;
    let fs = capture.format().sample_rate;
    let ch = usize::from(capture.format().channels);
    let input_label = capture.format().device.clone();
    let fail = |detail: String| DeviceError::Loopback {
        output: config.output.to_string(),
        input: input_label.clone(),
        detail,
    };
    if !(0.05..=30.0).contains(&config.sweep_seconds) {
        return Err(fail(format!(
            "sweep length {} s outside 0.05..=30 s",
            config.sweep_seconds
        )));
    }

    // The reference: lead-in silence, sweep, tail long enough for the latency searched.
    let f0 = 100.0;
    let f1 = (0.4 * f64::from(fs)).min(15_000.0);
    let sweep = log_sweep(fs, config.sweep_seconds, f0, f1);
    let lead = (LEAD_S * f64::from(fs)) as usize;
    let tail = (u64::from(fs) * u64::from(config.max_latency_ms + 100) / 1000) as usize;
    let mut reference = vec![0.0f64; lead];
    reference.extend_from_slice(&sweep);
    reference.resize(lead + sweep.len() + tail, 0.0);
    let mut played: Vec<i16> = Vec::with_capacity(reference.len() * ch);
    for &v in &reference {
        let s = (v * 32767.0).round() as i16;
        played.extend(std::iter::repeat_n(s, ch));
    }

    let (playback, mut prod) = PlaybackStream::open(&config.output, out_fmt)?;
    let pb_before = playback.counters();
    // Discard what was captured before the first sample is pushed: capture index 0 is now.
    cons.clear();
    let cap_before = capture.counters();
    let start = Instant::now();
    let mut pushed = 0usize; // samples
    let mut captured: Vec<i16> = Vec::with_capacity(played.len() + fs as usize * ch);
    let mut buf = vec![0i16; fs as usize * ch];
    let silence = vec![0i16; fs as usize * ch];
    let deadline = Duration::from_secs_f64(reference.len() as f64 / f64::from(fs) + 3.0);
    // (frames pushed / captured so far, seconds since start) after each tick.
    let mut push_log: Vec<(usize, f64)> = Vec::new();
    let mut pop_log: Vec<(usize, f64)> = Vec::new();
    let (mut queue_sum, mut queue_n) = (0usize, 0usize);
    let mut tick = 0u32;
    while captured.len() < played.len() {
        let elapsed = start.elapsed();
        if elapsed > deadline {
            return Err(fail(format!(
                "captured only {} of {} frames in {:.1} s (capture counters {:?}, last error {:?})",
                captured.len() / ch,
                played.len() / ch,
                elapsed.as_secs_f64(),
                capture.counters(),
                capture.last_error()
            )));
        }
        // The engine tick: push what is due by the end of this tick, drain the capture ring.
        // After the reference, keep the output fed with silence (as the engine would), so the
        // counters only show real underruns.
        let due = ((elapsed + TICK).as_secs_f64() * f64::from(fs)) as usize * ch;
        if due > pushed {
            if pushed < played.len() {
                pushed += push_frames(&mut prod, &played[pushed..due.min(played.len())], ch as u16);
                queue_sum += prod.occupied_len() / ch;
                queue_n += 1;
            } else {
                let n = (due - pushed).min(silence.len());
                pushed += push_frames(&mut prod, &silence[..n], ch as u16);
            }
        }
        push_log.push((pushed / ch, start.elapsed().as_secs_f64()));
        loop {
            let n = cons.pop_slice(&mut buf);
            if n == 0 {
                break;
            }
            captured.extend_from_slice(&buf[..n]);
        }
        pop_log.push((captured.len() / ch, start.elapsed().as_secs_f64()));
        tick += 1;
        let next = TICK * tick;
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let pb_counters = playback.counters().since(&pb_before);
    let cap_counters = capture.counters().since(&cap_before);
    let output_device = playback.format().device.clone();
    let input_device = capture.format().device.clone();
    let buffer_frames = playback.format().buffer_frames;
    drop(playback);
    drop(capture);

    let mono: Vec<f64> = captured
        .chunks_exact(ch)
        .map(|f| f.iter().map(|&s| f64::from(s)).sum::<f64>() / (ch as f64 * 32767.0))
        .collect();
    let max_lag = (u64::from(fs) * u64::from(config.max_latency_ms) / 1000) as usize;
    let a = analyse(&reference, &mono, lead, sweep.len(), max_lag).map_err(|e| {
        fail(format!(
            "{e} (playback {pb_counters:?}, capture {cap_counters:?})"
        ))
    })?;
    let seg_lags = segment_lags(
        &reference,
        &mono,
        lead,
        sweep.len(),
        a.lag,
        8,
        fs as usize / 20,
    );
    let slip_threshold = (f64::from(fs) / 4000.0).max(2.0);
    let timeline_slips = seg_lags
        .windows(2)
        .filter(|w| (w[1] - w[0]).abs() > slip_threshold)
        .count();
    // Round trip per sample: the tick that popped it minus the tick that pushed it, averaged
    // over the sweep.
    let shift = a.lag.round() as usize;
    let time_of = |log: &[(usize, f64)], frame: usize| {
        let i = log.partition_point(|&(count, _)| count <= frame);
        log.get(i).map(|&(_, t)| t)
    };
    let step = (fs as usize / 1000).max(1);
    let (mut rt_sum, mut rt_n) = (0.0, 0usize);
    for m in (lead..lead + sweep.len()).step_by(step) {
        if let (Some(t_push), Some(t_pop)) = (time_of(&push_log, m), time_of(&pop_log, m + shift)) {
            rt_sum += t_pop - t_push;
            rt_n += 1;
        }
    }
    if rt_n == 0 {
        return Err(fail("no aligned sample was both pushed and popped".into()));
    }
    let playback_queue_ms = if queue_n > 0 {
        queue_sum as f64 / queue_n as f64 * 1000.0 / f64::from(fs)
    } else {
        0.0
    };
    Ok(LoopbackReport {
        output_device,
        input_device,
        sample_rate: fs,
        channels: ch as u16,
        buffer_frames,
        sample_type: config.sample_type,
        signal: format!(
            "log sweep {f0:.0}-{f1:.0} Hz, {:.2} s, -6 dBFS",
            config.sweep_seconds
        ),
        prefill_ms: config.prefill_ms,
        latency_ms: rt_sum / rt_n as f64 * 1000.0,
        playback_queue_ms,
        alignment_frames: a.lag,
        correlation: a.correlation,
        snr_db: a.snr_db,
        gain_db: a.gain_db,
        segment_lags_ms: seg_lags
            .iter()
            .map(|l| l * 1000.0 / f64::from(fs))
            .collect(),
        timeline_slips,
        playback: pb_counters,
        capture: cap_counters,
        captured_seconds: mono.len() as f64 / f64::from(fs),
    })
}

/// Alignment and fidelity of a capture against a reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// Lag of the capture behind the reference, in (fractional) samples.
    pub lag: f64,
    /// Normalised correlation coefficient over the active region.
    pub correlation: f64,
    /// SNR after gain fit, dB.
    pub snr_db: f64,
    /// Fitted gain, dB.
    pub gain_db: f64,
}

/// Finds `captured` ≈ gain × `reference` delayed by a lag in `0..=max_lag` samples and
/// measures the match over the active region `active_start..active_start + active_len` of
/// the reference.
pub fn analyse(
    reference: &[f64],
    captured: &[f64],
    active_start: usize,
    active_len: usize,
    max_lag: usize,
) -> Result<Alignment, String> {
    let energy_y: f64 = captured.iter().map(|v| v * v).sum();
    if captured.is_empty() || energy_y <= 1e-12 {
        return Err("captured only silence".into());
    }
    let n = (reference.len() + captured.len()).next_power_of_two();
    let tw = twiddles(n);
    let (mut xr, mut xi) = (vec![0.0; n], vec![0.0; n]);
    xr[..reference.len()].copy_from_slice(reference);
    fft(&mut xr, &mut xi, &tw, false);
    let (mut yr, mut yi) = (vec![0.0; n], vec![0.0; n]);
    yr[..captured.len()].copy_from_slice(captured);
    fft(&mut yr, &mut yi, &tw, false);
    // r[l] = sum_m x[m] y[m + l]  <=>  R = conj(X) Y.
    let (mut rr, mut ri) = (vec![0.0; n], vec![0.0; n]);
    for k in 0..n {
        rr[k] = xr[k] * yr[k] + xi[k] * yi[k];
        ri[k] = xr[k] * yi[k] - xi[k] * yr[k];
    }
    fft(&mut rr, &mut ri, &tw, true);
    let last = max_lag.min(captured.len() - 1);
    let mut best = 0;
    for l in 0..=last {
        if rr[l].abs() > rr[best].abs() {
            best = l;
        }
    }
    let mut frac = 0.0;
    if best > 0 && best < last {
        let (a, b, c) = (rr[best - 1], rr[best], rr[best + 1]);
        let den = a - 2.0 * b + c;
        if den.abs() > f64::EPSILON {
            frac = (0.5 * (a - c) / den).clamp(-0.5, 0.5);
        }
    }
    let lag = best as f64 + frac;
    // Shift the reference by the fractional lag: multiply X by e^{-j 2 pi k lag / n}.
    for k in 0..n {
        let kk = if k <= n / 2 {
            k as f64
        } else {
            k as f64 - n as f64
        };
        let ang = -2.0 * PI * kk * lag / n as f64;
        let (s, c) = ang.sin_cos();
        let (re, im) = (xr[k], xi[k]);
        xr[k] = re * c - im * s;
        xi[k] = re * s + im * c;
    }
    fft(&mut xr, &mut xi, &tw, true);
    let from = active_start + best;
    let to = (active_start + active_len + best).min(captured.len());
    if to <= from + 16 {
        return Err(format!(
            "the capture ends before the signal (lag {best} samples, {} captured)",
            captured.len()
        ));
    }
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in from..to {
        let (x, y) = (xr[i], captured[i]);
        sxy += x * y;
        sxx += x * x;
        syy += y * y;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return Err("no signal in the aligned region".into());
    }
    let correlation = sxy / (sxx * syy).sqrt();
    let gain = sxy / sxx;
    let mut noise = 0.0;
    for i in from..to {
        let e = captured[i] - gain * xr[i];
        noise += e * e;
    }
    let signal = gain * gain * sxx;
    let snr_db = if noise > 0.0 {
        10.0 * (signal / noise).log10()
    } else {
        f64::INFINITY
    };
    Ok(Alignment {
        lag,
        correlation,
        snr_db: snr_db.min(200.0),
        gain_db: 20.0 * gain.abs().max(1e-12).log10(),
    })
}

/// Lag (in samples, fractional) of each of `segments` equal parts of the active region,
/// searched within `search` samples of `global_lag`. NaN for a part that cannot be aligned.
pub fn segment_lags(
    reference: &[f64],
    captured: &[f64],
    active_start: usize,
    active_len: usize,
    global_lag: f64,
    segments: usize,
    search: usize,
) -> Vec<f64> {
    let base = global_lag.round().max(0.0) as usize;
    (0..segments)
        .map(|k| {
            let s0 = active_start + k * active_len / segments;
            let s1 = active_start + (k + 1) * active_len / segments;
            let c0 = (s0 + base).saturating_sub(search);
            let c1 = (s1 + base + search).min(captured.len());
            if s1 > reference.len() || c1 <= c0 + (s1 - s0) / 2 {
                return f64::NAN;
            }
            match analyse(
                &reference[s0..s1],
                &captured[c0..c1],
                0,
                s1 - s0,
                c1 - c0 - 1,
            ) {
                Ok(a) => c0 as f64 + a.lag - s0 as f64,
                Err(_) => f64::NAN,
            }
        })
        .collect()
}

/// `e^{-j 2 pi k / n}` for `k < n / 2`.
fn twiddles(n: usize) -> Vec<(f64, f64)> {
    (0..n / 2)
        .map(|k| {
            let (s, c) = (-2.0 * PI * k as f64 / n as f64).sin_cos();
            (c, s)
        })
        .collect()
}

/// In-place radix-2 FFT (`inverse` includes the 1/n scaling). `re.len()` is a power of two.
fn fft(re: &mut [f64], im: &mut [f64], tw: &[(f64, f64)], inverse: bool) {
    let n = re.len();
    let mut j = 0usize;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let half = len / 2;
        let stride = n / len;
        for start in (0..n).step_by(len) {
            for k in 0..half {
                let (wr, wi0) = tw[k * stride];
                let wi = if inverse { -wi0 } else { wi0 };
                let (a, b) = (start + k, start + k + half);
                let tr = re[b] * wr - im[b] * wi;
                let ti = re[b] * wi + im[b] * wr;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
    if inverse {
        let s = 1.0 / n as f64;
        for (r, i) in re.iter_mut().zip(im.iter_mut()) {
            *r *= s;
            *i *= s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_round_trip_and_matches_dft() {
        let n = 16;
        let x: Vec<f64> = (0..n).map(|i| ((i * 7 % 5) as f64) - 2.0).collect();
        let (mut re, mut im) = (x.clone(), vec![0.0; n]);
        let tw = twiddles(n);
        fft(&mut re, &mut im, &tw, false);
        for k in 0..n {
            let (mut dr, mut di) = (0.0, 0.0);
            for (t, v) in x.iter().enumerate() {
                let a = -2.0 * PI * (k * t) as f64 / n as f64;
                dr += v * a.cos();
                di += v * a.sin();
            }
            assert!((re[k] - dr).abs() < 1e-9 && (im[k] - di).abs() < 1e-9);
        }
        fft(&mut re, &mut im, &tw, true);
        for (a, b) in re.iter().zip(&x) {
            assert!((a - b).abs() < 1e-9);
        }
    }

    #[test]
    fn analyse_finds_integer_and_fractional_delays() {
        let fs = 16_000;
        let sweep = log_sweep(fs, 0.25, 100.0, 6000.0);
        let lead = 800;
        let mut reference = vec![0.0; lead];
        reference.extend_from_slice(&sweep);
        reference.resize(reference.len() + 4000, 0.0);
        // Integer delay 1234, gain 0.5, a little noise.
        let mut captured = vec![0.0; 1234];
        captured.extend(reference.iter().map(|v| 0.5 * v));
        let mut seed = 1u32;
        for v in &mut captured {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *v += 1e-4 * (f64::from(seed >> 8) / f64::from(1u32 << 24) - 0.5);
        }
        let a = analyse(&reference, &captured, lead, sweep.len(), 3000).expect("aligned");
        assert!((a.lag - 1234.0).abs() < 0.05, "{a:?}");
        assert!(a.correlation > 0.999, "{a:?}");
        assert!((a.gain_db + 6.02).abs() < 0.05, "{a:?}");
        assert!(a.snr_db > 50.0, "{a:?}");
        // Half-sample delay (linear interpolation is a poor delay at high frequencies, so use
        // a low band): c2[n] = x(n - 100 + 0.5), so the lag is 99.5.
        let low = log_sweep(fs, 0.25, 100.0, 1500.0);
        let mut r2 = vec![0.0; lead];
        r2.extend_from_slice(&low);
        r2.resize(r2.len() + 1000, 0.0);
        let mut c2 = vec![0.0; 100];
        c2.extend(r2.windows(2).map(|w| 0.5 * (w[0] + w[1])));
        let a = analyse(&r2, &c2, lead, low.len(), 500).expect("aligned");
        assert!((a.lag - 99.5).abs() < 0.1, "{a:?}");
        assert!(a.correlation > 0.99, "{a:?}");
    }

    #[test]
    fn segment_lags_reveal_a_dropped_block() {
        let fs = 16_000;
        let sweep = log_sweep(fs, 0.5, 100.0, 6000.0);
        let lead = 800;
        let mut reference = vec![0.0; lead];
        reference.extend_from_slice(&sweep);
        reference.resize(reference.len() + 3000, 0.0);
        let mut clean = vec![0.0; 500];
        clean.extend_from_slice(&reference);
        let lags = segment_lags(&reference, &clean, lead, sweep.len(), 500.0, 8, 800);
        assert!(lags.iter().all(|l| (l - 500.0).abs() < 0.5), "{lags:?}");
        // Drop 320 samples (one 20 ms block) in the middle of the sweep.
        let mut slipped = clean.clone();
        slipped.drain(500 + lead + 4000..500 + lead + 4320);
        let lags = segment_lags(&reference, &slipped, lead, sweep.len(), 500.0, 8, 800);
        assert!((lags[0] - 500.0).abs() < 0.5, "{lags:?}");
        assert!((lags[7] - 180.0).abs() < 0.5, "{lags:?}");
    }

    #[test]
    fn analyse_rejects_silence_and_unrelated_noise_scores_low() {
        let reference = log_sweep(8000, 0.2, 100.0, 3000.0);
        assert!(analyse(&reference, &vec![0.0; 3000], 0, reference.len(), 100).is_err());
        let mut seed = 7u32;
        let noise: Vec<f64> = (0..3000)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                f64::from(seed >> 8) / f64::from(1u32 << 24) - 0.5
            })
            .collect();
        let a = analyse(&reference, &noise, 0, reference.len(), 1000).expect("some peak");
        assert!(a.correlation.abs() < 0.3, "{a:?}");
    }
}
