//! The bridge's drift controller ([`FillController`]) against simulated device clocks: a
//! 48 kHz stereo playback device and capture device whose clocks run 0.5 % fast or slow,
//! through the real drift-following resamplers and framer.
#![allow(clippy::unwrap_used)]

use devices::{ControllerSettings, FillController};
use media_core::frame::FRAME_SAMPLES;
use media_core::framer::Framer;
use media_core::resample::{CaptureResampler, DeviceFormat, PlayoutResampler, ResamplerMode};

/// Per-second mean levels of a simulated run, in ms.
struct DriftRun {
    /// Mean ratio over the second half.
    ratio: f64,
    /// Ratio range over the second half.
    ratio_span: (f64, f64),
    min_level_ms: f64,
    max_level_ms: f64,
    late_mean_error_ms: f64,
}

/// Mean level, mean ratio and ratio range of `(level, ratio)` pairs.
fn summarize(v: &[(f64, f64)]) -> (f64, f64, (f64, f64)) {
    let n = v.len() as f64;
    let level = v.iter().map(|p| p.0).sum::<f64>() / n;
    let ratio = v.iter().map(|p| p.1).sum::<f64>() / n;
    let lo = v.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = v.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    (level, ratio, (lo, hi))
}

/// A 48 kHz stereo playback device whose clock is `drift` fast drains the ring in 960-frame
/// callbacks; the bridge pushes one resampled 20 ms frame per tick and updates the ratio.
fn simulate_playback(drift: f64, seconds: u32) -> DriftRun {
    let fmt = DeviceFormat::new(48_000, 2);
    let mut play = PlayoutResampler::new(fmt, ResamplerMode::DriftFollowing).unwrap();
    let target = 2_880; // 60 ms
    let mut ctl = FillController::new(target, 48_000, ControllerSettings::default());
    let mut out = vec![0i16; play.max_output_len()];
    let frame = [0i16; FRAME_SAMPLES];
    let (mut level, mut device_clock) = (target as i64, 0.0f64);
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    let ticks = seconds * 50;
    let mut late = Vec::new();
    for tick in 0..ticks {
        // The device consumes whole callbacks of 960 frames at its own (fast) clock.
        device_clock += 960.0 * (1.0 + drift);
        while device_clock >= 960.0 {
            level -= 960;
            device_clock -= 960.0;
        }
        min = min.min(level);
        assert!(level > 0, "underrun at tick {tick}: level {level}");
        let n = play.process(&frame, &mut out).unwrap() / 2;
        level += n as i64;
        max = max.max(level);
        let rel = ctl.update(level as usize);
        play.set_ratio_relative(rel).unwrap();
        if tick >= ticks / 2 {
            late.push((level as f64, rel));
        }
    }
    let (mean, ratio, ratio_span) = summarize(&late);
    DriftRun {
        ratio,
        ratio_span,
        min_level_ms: min as f64 / 48.0,
        max_level_ms: max as f64 / 48.0,
        late_mean_error_ms: (mean - target as f64) / 48.0,
    }
}

/// A 48 kHz stereo capture device whose clock is `drift` fast delivers 960-frame callbacks
/// into the resampler and framer; the bridge takes one 20 ms frame per tick.
fn simulate_capture(drift: f64, seconds: u32) -> DriftRun {
    let fmt = DeviceFormat::new(48_000, 2);
    let mut cap = CaptureResampler::new(fmt, ResamplerMode::DriftFollowing).unwrap();
    let target = 640; // 40 ms at 16 kHz
    let mut ctl = FillController::new(target, 16_000, ControllerSettings::default());
    let mut framer = Framer::pcm16k(64);
    framer.push(&[0; 960]); // primed: target + one frame
    let callback = vec![0i16; 960 * 2];
    let mut frame = [0i16; FRAME_SAMPLES];
    let mut device_clock = 0.0f64;
    let (mut min, mut max) = (usize::MAX, 0usize);
    let ticks = seconds * 50;
    let mut late = Vec::new();
    for tick in 0..ticks {
        device_clock += 960.0 * (1.0 + drift);
        while device_clock >= 960.0 {
            assert_eq!(cap.process_into_framer(&callback, &mut framer).unwrap(), 0);
            device_clock -= 960.0;
        }
        max = max.max(framer.buffered());
        assert!(
            framer.pop_frame(&mut frame),
            "capture underrun at tick {tick}"
        );
        let level = framer.buffered();
        min = min.min(level);
        let rel = ctl.update(level);
        cap.set_ratio_relative(rel).unwrap();
        if tick >= ticks / 2 {
            late.push((level as f64, rel));
        }
    }
    let (mean, ratio, ratio_span) = summarize(&late);
    DriftRun {
        ratio,
        ratio_span,
        min_level_ms: min as f64 / 16.0,
        max_level_ms: max as f64 / 16.0,
        late_mean_error_ms: (mean - target as f64) / 16.0,
    }
}

/// Device clocks 0.5 % fast (and slow): the controller converges to the matching ratio and
/// the ring level stays bounded and returns to its target.
#[test]
fn fill_controller_follows_a_device_clock_0_5_percent_off() {
    for drift in [0.005, -0.005] {
        let p = simulate_playback(drift, 40);
        println!(
            "playback, device {:+.1} %: ratio over the last 20 s {:.5} [{:.5}, {:.5}], level \
             {:.1}..{:.1} ms (target 60), mean error over the last 20 s {:+.2} ms",
            drift * 100.0,
            p.ratio,
            p.ratio_span.0,
            p.ratio_span.1,
            p.min_level_ms,
            p.max_level_ms,
            p.late_mean_error_ms
        );
        assert!((p.ratio - (1.0 + drift)).abs() < 5e-4, "ratio {}", p.ratio);
        assert!(
            p.min_level_ms > 15.0 && p.max_level_ms < 110.0,
            "level bounds"
        );
        // Settled within the controller's dead band (5 ms), and a little.
        assert!(
            p.late_mean_error_ms.abs() < 6.0,
            "mean error {}",
            p.late_mean_error_ms
        );

        let c = simulate_capture(drift, 40);
        println!(
            "capture, device {:+.1} %: ratio over the last 20 s {:.5} [{:.5}, {:.5}], level \
             {:.1}..{:.1} ms (target 40), mean error over the last 20 s {:+.2} ms",
            drift * 100.0,
            c.ratio,
            c.ratio_span.0,
            c.ratio_span.1,
            c.min_level_ms,
            c.max_level_ms,
            c.late_mean_error_ms
        );
        assert!(
            (c.ratio - 1.0 / (1.0 + drift)).abs() < 5e-4,
            "ratio {}",
            c.ratio
        );
        assert!(
            c.min_level_ms > 5.0 && c.max_level_ms < 110.0,
            "level bounds"
        );
        assert!(
            c.late_mean_error_ms.abs() < 6.0,
            "mean error {}",
            c.late_mean_error_ms
        );
    }
}

/// The correction never leaves its bound, whatever the level does, and moves by at most
/// `max_step` per update.
#[test]
fn fill_controller_is_bounded_and_slew_limited() {
    let s = ControllerSettings::default();
    let mut ctl = FillController::new(1_000, 16_000, s);
    let mut last = 1.0;
    for i in 0..5_000usize {
        let level = if (i / 500) % 2 == 0 { 100_000 } else { 0 };
        let r = ctl.update(level);
        assert!((r - 1.0).abs() <= s.max_deviation + 1e-12, "{r}");
        assert!((r - last).abs() <= s.max_step + 1e-12, "{r} after {last}");
        last = r;
    }
    // At target it rests at nominal.
    let mut ctl = FillController::new(1_000, 16_000, s);
    for _ in 0..100 {
        assert_eq!(ctl.update(1_000), 1.0);
    }
}
