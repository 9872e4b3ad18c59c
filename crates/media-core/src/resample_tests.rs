//! Unit tests of `resample`.

use super::*;

fn sine(rate: u32, freq: f64, amp: f64, frames: usize, channels: usize) -> Vec<i16> {
    let mut v = Vec::with_capacity(frames * channels);
    for i in 0..frames {
        let x = (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
            .round() as i16;
        for _ in 0..channels {
            v.push(x);
        }
    }
    v
}

proptest::proptest! {
    /// The 16 kHz output does not depend on how the device chunks its input, even
    /// when chunks split interleaved frames.
    #[test]
    fn capture_output_is_independent_of_chunking(
        chunks in proptest::collection::vec(0usize..2_000, 1..30),
        ch in 1u16..=3,
        drift in proptest::bool::ANY,
    ) {
        let mode = if drift { ResamplerMode::DriftFollowing } else { ResamplerMode::LowDelay };
        let fmt = DeviceFormat::new(44_100, ch);
        let input = sine(44_100, 997.0, 9_000.0, 8_820, usize::from(ch));
        let mut whole = Vec::new();
        let mut cap = CaptureResampler::new(fmt, mode).expect("ok");
        cap.process(&input, |b| whole.extend_from_slice(b)).expect("ok");
        let mut pieces = Vec::new();
        let mut cap = CaptureResampler::new(fmt, mode).expect("ok");
        let mut rest = &input[..];
        for &c in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at(c.max(1).min(rest.len()));
            cap.process(now, |b| pieces.extend_from_slice(b)).expect("ok");
            rest = later;
        }
        proptest::prop_assert_eq!(whole, pieces);
    }
}

#[test]
fn rejects_unsupported_formats() {
    assert_eq!(
        CaptureResampler::new(DeviceFormat::new(22_050, 1), ResamplerMode::LowDelay)
            .expect_err("rate"),
        ResamplerSetupError::UnsupportedRate(22_050)
    );
    assert_eq!(
        PlayoutResampler::new(DeviceFormat::new(48_000, 0), ResamplerMode::LowDelay)
            .expect_err("channels"),
        ResamplerSetupError::UnsupportedChannels(0)
    );
}

#[test]
fn every_rate_gives_exactly_20_ms_per_20_ms() {
    for mode in [ResamplerMode::LowDelay, ResamplerMode::DriftFollowing] {
        for rate in SUPPORTED_RATES {
            for ch in [1u16, 2] {
                let fmt = DeviceFormat::new(rate, ch);
                let mut cap = CaptureResampler::new(fmt, mode).expect("supported");
                let mut play = PlayoutResampler::new(fmt, mode).expect("supported");
                let input = vec![0i16; fmt.frame_len() * usize::from(ch) * 10];
                let mut total = 0;
                // Odd chunk sizes, splitting interleaved frames.
                for c in input.chunks(333) {
                    cap.process(c, |b| total += b.len()).expect("process");
                }
                // The FFT engine is exact; the sinc engine may lag by a few
                // samples while its fractional position settles.
                let tol = if mode == ResamplerMode::LowDelay {
                    0
                } else {
                    8
                };
                assert!(total.abs_diff(3200) <= tol, "{rate} {ch} {mode:?}: {total}");
                let mut out = vec![0i16; play.max_output_len()];
                let mut total = 0;
                for _ in 0..10 {
                    total += play.process(&[0; 320], &mut out).expect("process");
                }
                let want = fmt.frame_len() * usize::from(ch) * 10;
                assert!(
                    total.abs_diff(want) <= tol * 3 * usize::from(ch),
                    "{rate} {ch} {mode:?}: {total} vs {want}"
                );
            }
        }
    }
}

#[test]
fn passthrough_at_16k_is_exact_and_downmix_averages() {
    let fmt = DeviceFormat::new(16_000, 2);
    let mut cap = CaptureResampler::new(fmt, ResamplerMode::LowDelay).expect("ok");
    assert_eq!(cap.delay_samples(), 0);
    let mut input = Vec::new();
    for i in 0..640i32 {
        input.push((i * 10) as i16);
        input.push((i * 10 + 4) as i16);
    }
    let mut got = Vec::new();
    cap.process(&input, |b| got.extend_from_slice(b))
        .expect("ok");
    let want: Vec<i16> = (0..640i32).map(|i| (i * 10 + 2) as i16).collect();
    assert_eq!(got, want);

    let mut play = PlayoutResampler::new(fmt, ResamplerMode::LowDelay).expect("ok");
    let frame: [i16; 320] = std::array::from_fn(|i| i as i16 - 100);
    let mut out = vec![0; play.max_output_len()];
    assert_eq!(play.process(&frame, &mut out).expect("ok"), 640);
    for (i, pair) in out.chunks_exact(2).enumerate() {
        assert_eq!(pair, [frame[i], frame[i]]);
    }
    assert_eq!(
        play.process(&frame, &mut out[..10]),
        Err(ResampleError::OutputTooSmall { needed: 640 })
    );
}

#[test]
fn low_delay_mode_has_5_ms_delay_and_fixed_ratio() {
    let mut cap =
        CaptureResampler::new(DeviceFormat::new(48_000, 1), ResamplerMode::LowDelay).expect("ok");
    assert_eq!(cap.delay_samples(), 80); // 5 ms at 16 kHz
    assert_eq!(
        cap.set_ratio_relative(1.001),
        Err(RatioError::NotAdjustable)
    );
    let play =
        PlayoutResampler::new(DeviceFormat::new(48_000, 1), ResamplerMode::LowDelay).expect("ok");
    assert_eq!(play.delay_samples(), 240); // 5 ms at 48 kHz
}

/// A 48 kHz playout device whose clock runs 300 ppm fast drains the ring a little
/// faster than 50 frames/s fill it; the controller speeds the resampler up to
/// match and the ring level stays put.
#[test]
fn drift_controller_follows_a_fast_device_clock() {
    let fmt = DeviceFormat::new(48_000, 1);
    let mut play = PlayoutResampler::new(fmt, ResamplerMode::DriftFollowing).expect("ok");
    let mut ctl = DriftController::new(1_920, 48_000); // 40 ms target
    let mut out = vec![0i16; play.max_output_len()];
    let frame = [0i16; FRAME_SAMPLES];
    let mut level: f64 = 1_920.0;
    let drain = 960.0 * (1.0 + 300e-6);
    let mut worst_late = 0.0f64;
    for tick in 0..10_000 {
        let n = play.process(&frame, &mut out).expect("ok");
        level += n as f64 - drain;
        assert!(level > 0.0, "underrun at tick {tick}");
        let rel = ctl.update(level as usize);
        play.set_ratio_relative(rel).expect("in range");
        if tick > 5_000 {
            worst_late = worst_late.max((level - 1_920.0).abs());
        }
    }
    let rel = ctl.ratio_relative();
    assert!((rel - 1.0003).abs() < 2e-5, "settled ratio {rel}");
    // After settling the level stays within 1 ms of target.
    assert!(worst_late < 48.0, "{worst_late} samples off target");
}

#[test]
fn drift_following_ratio_changes_the_output_rate() {
    let fmt = DeviceFormat::new(48_000, 1);
    let mut cap = CaptureResampler::new(fmt, ResamplerMode::DriftFollowing).expect("ok");
    assert_eq!(cap.set_ratio_relative(1.5), Err(RatioError::OutOfRange));
    assert_eq!(
        cap.set_ratio_relative(f64::NAN),
        Err(RatioError::OutOfRange)
    );
    cap.set_ratio_relative(1.01).expect("in range");
    assert_eq!(cap.ratio_relative(), 1.01);
    let input = sine(48_000, 440.0, 8000.0, 48_000, 1);
    let mut total = 0usize;
    cap.process(&input, |b| total += b.len()).expect("ok");
    // 1 s in, 1 % more out (less the filter delay's worth of ramp-in).
    assert!((16_100..=16_170).contains(&total), "{total}");
    cap.reset();
    assert_eq!(cap.ratio_relative(), 1.0);
}
