//! Device tests against a real PulseAudio null sink (`loop`) and its monitor.

mod common;

use std::time::{Duration, Instant};

use common::with_pulse;
use devices::ringbuf::traits::{Consumer, Observer};
use devices::{
    Backend, CaptureStream, DeviceSelector, DeviceSink, DeviceSource, Direction, HostKind,
    LoopbackConfig, PlaybackStream, SampleSink, SampleSource, SampleType, StreamFormat, WavSink,
    WavSource, list_devices, list_host_devices, push_frames, run_loopback,
};

fn monitor() -> DeviceSelector {
    DeviceSelector::named("loop.monitor").on(Backend::PulseAudio)
}

fn sink() -> DeviceSelector {
    DeviceSelector::named("loop").on(Backend::PulseAudio)
}

#[test]
fn listing_shows_the_null_sink_and_its_monitor() {
    with_pulse("listing_shows_the_null_sink_and_its_monitor", || {
        let pulse = list_host_devices(HostKind::PulseAudio).expect("PulseAudio host");
        for d in &pulse {
            println!("{d:?}");
        }
        let sink = pulse
            .iter()
            .find(|d| d.id == "loop" && d.direction == Direction::Output)
            .expect("null sink `loop` listed");
        assert!(sink.is_default, "{sink:?}");
        let cfg = sink.default_config.expect("sink default config");
        assert_eq!((cfg.sample_rate, cfg.channels), (48_000, 2));
        let mon = pulse
            .iter()
            .find(|d| d.id == "loop.monitor" && d.direction == Direction::Input)
            .expect("monitor `loop.monitor` listed");
        assert!(mon.is_default, "{mon:?}");
        assert!(
            !pulse
                .iter()
                .any(|d| d.id == "loop" && d.direction == Direction::Input)
        );
        // The combined listing has them too (ALSA follows, if present).
        let all = list_devices();
        assert!(
            all.iter()
                .any(|d| d.host == HostKind::PulseAudio && d.id == "loop.monitor")
        );
        println!(
            "all hosts: {} devices, ALSA: {}",
            all.len(),
            all.iter().filter(|d| d.host == HostKind::Alsa).count()
        );
    });
}

#[test]
fn unknown_device_is_a_clear_error() {
    with_pulse("unknown_device_is_a_clear_error", || {
        let sel = DeviceSelector::named("no-such-sink").on(Backend::PulseAudio);
        let err = PlaybackStream::open(&sel, StreamFormat::pcm16k_mono())
            .err()
            .expect("no such device");
        let msg = err.to_string();
        println!("{msg}");
        assert!(
            msg.contains("no-such-sink") && msg.contains("loop"),
            "{msg}"
        );
    });
}

/// Attempts per loopback measurement. A run whose timeline slipped (audio dropped or inserted
/// by a CPU-starved client or server thread, visible as a step in the segment alignments) is
/// disturbed by machine load, not a defect of the path; it is reported and measured again.
const ATTEMPTS: usize = 3;

fn loopback(rate: u32, channels: u16, sample_type: SampleType) -> devices::LoopbackReport {
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        let report = run_loopback(&LoopbackConfig {
            output: sink(),
            input: monitor(),
            sample_rate: Some(rate),
            channels: Some(channels),
            sample_type,
            // Half a second of sweep keeps the test short; the latency searched (300 ms) is
            // still far above the ~80 ms measured.
            sweep_seconds: 0.5,
            max_latency_ms: 300,
            ..LoopbackConfig::default()
        })
        .expect("loopback run");
        println!(
            "loopback {rate} Hz {channels} ch {sample_type:?} (attempt {attempt}): latency {:.1} ms \
             (playback queue {:.1} ms), correlation {:.4}, SNR {:.1} dB, gain {:.2} dB, \
             timeline slips {}, playback underruns {} ({} frames), capture overruns {}",
            report.latency_ms,
            report.playback_queue_ms,
            report.correlation,
            report.snr_db,
            report.gain_db,
            report.timeline_slips,
            report.playback.underruns,
            report.playback.underrun_frames,
            report.capture.overruns
        );
        if report.timeline_slips > 0 {
            println!("  segment alignments (ms): {:.2?}", report.segment_lags_ms);
        }
        let disturbed = report.timeline_slips > 0
            || report.playback.underruns > 0
            || report.capture.overruns > 0;
        last = Some(report);
        if !disturbed {
            break;
        }
    }
    let report = last.expect("at least one attempt");
    assert_eq!(report.timeline_slips, 0, "{report:#?}");
    assert!(
        report.latency_ms > 0.0 && report.latency_ms < 300.0,
        "{report:#?}"
    );
    assert!(report.correlation >= 0.9, "{report:#?}");
    assert!(report.snr_db >= 10.0, "{report:#?}");
    assert_eq!(
        report.playback.errors + report.capture.errors,
        0,
        "{report:#?}"
    );
    assert_eq!(
        report.playback.underruns + report.capture.overruns,
        0,
        "{report:#?}"
    );
    report
}

#[test]
fn loopback_48k_stereo() {
    with_pulse("loopback_48k_stereo", || {
        let r = loopback(48_000, 2, SampleType::I16);
        assert_eq!(
            (r.sample_rate, r.channels, r.buffer_frames),
            (48_000, 2, 960)
        );
        assert_eq!(r.output_device, "PulseAudio:loop");
        assert_eq!(r.input_device, "PulseAudio:loop.monitor");
    });
}

#[test]
fn loopback_16k_mono() {
    with_pulse("loopback_16k_mono", || {
        let r = loopback(16_000, 1, SampleType::I16);
        assert_eq!(
            (r.sample_rate, r.channels, r.buffer_frames),
            (16_000, 1, 320)
        );
    });
}

#[test]
fn loopback_16k_mono_f32_callbacks() {
    with_pulse("loopback_16k_mono_f32_callbacks", || {
        loopback(16_000, 1, SampleType::F32);
    });
}

/// Pops everything available.
fn drain(cons: &mut devices::HeapCons<i16>, into: &mut Vec<i16>) {
    let mut buf = [0i16; 4096];
    loop {
        let n = cons.pop_slice(&mut buf);
        if n == 0 {
            break;
        }
        into.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn idle_output_counts_underruns_and_plays_silence() {
    with_pulse("idle_output_counts_underruns_and_plays_silence", || {
        let fmt = StreamFormat::pcm16k_mono();
        let (capture, mut cons) = CaptureStream::open(&monitor(), fmt).expect("capture");
        let (playback, mut prod) = PlaybackStream::open(&sink(), fmt).expect("playback");
        assert_eq!(playback.format().buffer_frames, 320);
        // Idle: nothing pushed for 300 ms.
        std::thread::sleep(Duration::from_millis(100));
        cons.clear();
        let mut heard = Vec::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(300) {
            drain(&mut cons, &mut heard);
            std::thread::sleep(Duration::from_millis(20));
        }
        drain(&mut cons, &mut heard);
        let idle = playback.counters();
        println!("idle playback {idle:?}, heard {} samples", heard.len());
        assert!(idle.callbacks >= 5, "{idle:?}");
        assert_eq!(idle.frames, 0, "{idle:?}");
        assert!(idle.underruns >= 5, "{idle:?}");
        // 400 ms of wall clock at 16 kHz, minus start-up slack.
        assert!(idle.underrun_frames >= 3_000, "{idle:?}");
        assert!(
            heard.len() >= 3_000,
            "capture delivered {} samples",
            heard.len()
        );
        assert!(heard.iter().all(|&s| s == 0), "idle output was not silent");

        // Now feed a tone at the engine's pace: the monitor hears it.
        let tone: Vec<i16> = (0..320 * 15)
            .map(|i| {
                (8000.0 * (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 16_000.0).sin()) as i16
            })
            .collect();
        heard.clear();
        for frame in tone.chunks(320) {
            assert_eq!(push_frames(&mut prod, frame, 1), 320);
            std::thread::sleep(Duration::from_millis(20));
            drain(&mut cons, &mut heard);
        }
        std::thread::sleep(Duration::from_millis(100));
        drain(&mut cons, &mut heard);
        let fed = playback.counters().since(&idle);
        let loud = heard.iter().filter(|s| s.unsigned_abs() > 1000).count();
        println!("fed playback {fed:?}, {loud} loud samples heard");
        assert!(fed.frames >= 4_000, "{fed:?}");
        assert!(loud > 2_000, "the tone was not heard ({loud} loud samples)");
        assert_eq!(capture.counters().overruns, 0);
    });
}

#[test]
fn unread_capture_ring_counts_overruns() {
    with_pulse("unread_capture_ring_counts_overruns", || {
        let fmt = StreamFormat {
            ring_ms: 40,
            ..StreamFormat::pcm16k_mono()
        };
        let (capture, cons) = CaptureStream::open(&monitor(), fmt).expect("capture");
        assert_eq!(capture.format().ring_frames, 640);
        std::thread::sleep(Duration::from_millis(300));
        let c = capture.counters();
        println!("unread capture {c:?}, ring {}", cons.occupied_len());
        assert_eq!(cons.occupied_len(), 640, "ring should be full");
        assert!(c.overruns >= 3, "{c:?}");
        assert!(c.overrun_frames >= 1_000, "{c:?}");
        assert_eq!(c.frames, 640, "{c:?}");
    });
}

#[test]
fn wav_file_plays_through_the_device_into_a_wav_file() {
    with_pulse("wav_file_plays_through_the_device_into_a_wav_file", || {
        let dir = std::env::temp_dir();
        let src_path = dir.join(format!("devices-src-{}.wav", std::process::id()));
        let dst_path = dir.join(format!("devices-dst-{}.wav", std::process::id()));
        // 0.5 s sweep at 16 kHz mono as the "microphone" file.
        let sweep = devices::loopback::log_sweep(16_000, 0.5, 200.0, 5000.0);
        let mut w = WavSink::create(&src_path, 16_000, 1).expect("create");
        let samples: Vec<i16> = sweep.iter().map(|v| (v * 32767.0) as i16).collect();
        w.write(&samples).expect("write");
        w.finalize().expect("finalize");

        let x: Vec<f64> = samples.iter().map(|&s| f64::from(s) / 32767.0).collect();
        let mut result = None;
        for attempt in 1..=ATTEMPTS {
            let y = play_and_record(&src_path, &dst_path);
            let a = devices::loopback::analyse(&x, &y, 0, x.len(), 8_000).expect("align");
            let lags = devices::loopback::segment_lags(&x, &y, 0, x.len(), a.lag, 4, 800);
            let slips = lags
                .windows(2)
                .filter(|w| (w[1] - w[0]).abs() > 2.0)
                .count();
            println!(
                "wav -> device -> wav (attempt {attempt}): {} frames recorded, {a:?}, {slips} slips",
                y.len()
            );
            result = Some((a, slips));
            if slips == 0 {
                break;
            }
        }
        let (a, slips) = result.expect("at least one attempt");
        assert_eq!(slips, 0);
        assert!(a.correlation >= 0.9, "{a:?}");
        std::fs::remove_file(&src_path).ok();
        std::fs::remove_file(&dst_path).ok();
    });
}

/// Plays the WAV file at `src` to the sink through a [`DeviceSink`] and records the monitor
/// through a [`DeviceSource`] into the WAV file at `dst`, at the engine's pace (1 s); returns
/// the recording.
fn play_and_record(src_path: &std::path::Path, dst_path: &std::path::Path) -> Vec<f64> {
    let fmt = StreamFormat {
        prefill_ms: 40,
        ..StreamFormat::pcm16k_mono()
    };
    let mut mic = DeviceSource::open(&monitor(), fmt).expect("capture");
    let mut speaker = DeviceSink::open(&sink(), fmt).expect("playback");
    let mut file_in = WavSource::open(src_path, false).expect("open wav");
    let mut file_out =
        WavSink::create(dst_path, mic.sample_rate(), mic.channels()).expect("create");
    // The engine loop, with trait objects: file -> device, device -> file.
    let src: &mut dyn SampleSource = &mut file_in;
    let snk: &mut dyn SampleSink = &mut speaker;
    let cap: &mut dyn SampleSource = &mut mic;
    let rec: &mut dyn SampleSink = &mut file_out;
    let mut frame = [0i16; 320];
    let start = Instant::now();
    for tick in 1..=50u32 {
        let n = src.read(&mut frame);
        frame[n..].fill(0);
        snk.write(&frame).expect("device write");
        loop {
            let n = cap.read(&mut frame);
            if n == 0 {
                break;
            }
            rec.write(&frame[..n]).expect("wav write");
        }
        // Absolute deadlines: the engine's 20 ms clock does not drift.
        if let Some(wait) = (Duration::from_millis(20) * tick).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    file_out.finalize().expect("finalize");
    let recorded = WavSource::open(dst_path, false).expect("read back");
    recorded
        .samples()
        .iter()
        .map(|&s| f64::from(s) / 32767.0)
        .collect()
}

#[test]
fn alsa_fallback_lists_and_runs_the_pulse_plugin_device() {
    with_pulse(
        "alsa_fallback_lists_and_runs_the_pulse_plugin_device",
        || {
            let alsa = list_host_devices(HostKind::Alsa).expect("ALSA host");
            for dir in [Direction::Output, Direction::Input] {
                assert!(
                    alsa.iter().any(|d| d.id == "default" && d.direction == dir),
                    "ALSA `default` {dir} missing: {alsa:?}"
                );
            }
            // ALSA's `default` goes through the pulse plugin to the null sink: play the sweep
            // there and record it from the monitor through PulseAudio. The audio arrives
            // intact, but cpal's ALSA backend reports thousands of `snd_pcm_avail_delay` I/O
            // errors per second with the pulse plugin (the flaky route REFERENCE.md warns
            // about), so errors are printed, not asserted.
            let sel = "alsa:default"
                .parse::<DeviceSelector>()
                .expect("infallible");
            let mut last = None;
            for attempt in 1..=ATTEMPTS {
                let r = run_loopback(&LoopbackConfig {
                    output: sel.clone(),
                    input: monitor(),
                    sample_rate: Some(48_000),
                    channels: Some(2),
                    sweep_seconds: 0.5,
                    max_latency_ms: 300,
                    ..LoopbackConfig::default()
                })
                .expect("loopback through ALSA");
                println!(
                    "ALSA default -> PulseAudio monitor (attempt {attempt}): latency {:.1} ms, \
                 correlation {:.4}, slips {}, playback {:?}",
                    r.latency_ms, r.correlation, r.timeline_slips, r.playback
                );
                let ok = r.timeline_slips == 0 && r.correlation >= 0.9;
                last = Some(r);
                if ok {
                    break;
                }
            }
            let r = last.expect("at least one attempt");
            assert_eq!(r.output_device, "ALSA:default");
            assert!(r.playback.callbacks > 0 && r.playback.frames > 0, "{r:#?}");
            assert_eq!(r.timeline_slips, 0, "{r:#?}");
            assert!(r.correlation >= 0.9, "{r:#?}");
        },
    );
}
