//! A call's audio bound to real devices and to WAV files through [`DeviceBridge`]: a real
//! `MediaPlatform` on 127.0.0.1, a real `Peer` over QUIC, real PulseAudio null sinks.
//!
//! * `pulse_call_*`: the peer speaks; the bot plays what it receives to a null sink at
//!   48 kHz stereo, captures the sink's monitor at 48 kHz stereo and sends that back; the
//!   peer hears its own voice.
//! * `wav_call_*`: the same with a WAV sink and a WAV source: compared exactly.
//! * `fill_controller_*`: the drift controller against simulated device clocks.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bot::device::{
    BridgeConfig, BridgeError, CaptureEnd, ControllerSettings, DeviceBridge, FillController,
    FrameInput, PlaybackEnd,
};
use devices::ringbuf::traits::Producer;
use devices::{Backend, DeviceSelector, SampleSink, StreamFormat, WavSink, WavSource};
use harness::signal::{self, SignalGenerator};
use harness::{Peer, PeerConfig};
use media_core::frame::FRAME_SAMPLES;
use media_core::framer::Framer;
use media_core::jitter::JitterConfig;
use media_core::playout::ReceiveConfig;
use media_core::resample::{CaptureResampler, DeviceFormat, PlayoutResampler, ResamplerMode};
use platform::{
    AudioFrame, AudioSender, Codec, FrameDelivery, MediaPlatform, MediaPlatformSettings,
    ServerTrust,
};
use transport::TransportSettings;

// ---------------------------------------------------------------------------------------
// PulseAudio: a real server with a null sink (as in crates/devices/tests/common).
// ---------------------------------------------------------------------------------------

use devices::testing::with_pulse;

/// A null sink of this test process alone (48 kHz stereo, like `loop`): what other test
/// processes play to the shared `loop` sink cannot leak into its monitor. Unloaded on drop.
/// Falls back to `loop` when the module cannot be loaded.
struct NullSink {
    name: String,
    module: Option<String>,
}

impl NullSink {
    fn load() -> NullSink {
        let name = format!("bridge_test_{}", std::process::id());
        let out = Command::new("pactl")
            .args([
                "load-module",
                "module-null-sink",
                &format!("sink_name={name}"),
                "rate=48000",
                "channels=2",
                "format=s16le",
                &format!("sink_properties=device.description={name}"),
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => NullSink {
                name,
                module: Some(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
            },
            other => {
                eprintln!("cannot load a private null sink ({other:?}); using `loop`");
                NullSink {
                    name: "loop".into(),
                    module: None,
                }
            }
        }
    }

    fn sink(&self) -> DeviceSelector {
        DeviceSelector::named(self.name.clone()).on(Backend::PulseAudio)
    }

    fn monitor(&self) -> DeviceSelector {
        DeviceSelector::named(format!("{}.monitor", self.name)).on(Backend::PulseAudio)
    }
}

impl Drop for NullSink {
    fn drop(&mut self) {
        if let Some(m) = &self.module {
            let _ = Command::new("pactl").args(["unload-module", m]).output();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The platform and the peer.
// ---------------------------------------------------------------------------------------

/// A fixed 60 ms jitter buffer that does not time-stretch (as in the platform's echo
/// tests), so the audio stays sample-aligned for exact and per-segment comparisons.
fn receive_config() -> ReceiveConfig {
    ReceiveConfig {
        jitter: JitterConfig {
            start_delay: Duration::from_millis(60),
            min_delay: Duration::from_millis(60),
            window: Duration::from_secs(60),
            accelerate_hysteresis: Duration::from_secs(1),
            expand_tolerance: Duration::from_millis(40),
            ..JitterConfig::default()
        },
        ..ReceiveConfig::default()
    }
}

fn start_platform() -> MediaPlatform {
    let mut s = MediaPlatformSettings::dev_loopback();
    s.receive = receive_config();
    s.transport = TransportSettings::default().with_idle_timeout(Duration::from_secs(2));
    MediaPlatform::start(s).unwrap()
}

fn peer_config(
    platform: &MediaPlatform,
    source: SignalGenerator,
    send: f64,
    run: f64,
) -> PeerConfig {
    let mut c = PeerConfig::new(ServerTrust::pinned(platform.certificate_fingerprint()));
    c.codecs = vec![Codec::Pcm16k];
    c.source = harness::PeerSource::Signal(source);
    c.send_for = Duration::from_secs_f64(send);
    c.run_for = Duration::from_secs_f64(run);
    c.receive = receive_config();
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bot-device-call-{}-{tag}.wav", std::process::id()))
}

/// Per-segment correlations at full rate: `reference` is cut into segments of `seg`
/// samples, each aligned on its own within `search` samples of the running lag (which follows
/// every segment that matches clearly, as [`signal::segment_correlations`] does).
///
/// Unlike `signal::segment_correlations` (a coarse search on 16× decimated signals, refined
/// at full rate around the coarse lag and the lag followed so far), every lag within
/// `search` is tried at full rate: a drift-following resampler can move the timeline by
/// more than a millisecond between segments, where the coarse search may settle on a
/// neighbouring pitch peak (13 of 15 segments instead of 15 with the same audio).
fn segment_correlations(
    reference: &[i16],
    received: &[i16],
    seg: usize,
    lag: usize,
    search: usize,
) -> Vec<f64> {
    let a: Vec<f64> = reference.iter().map(|&s| f64::from(s)).collect();
    let b: Vec<f64> = received.iter().map(|&s| f64::from(s)).collect();
    let mut lag = lag;
    let mut out = Vec::new();
    for start in (0..a.len().saturating_sub(seg - 1)).step_by(seg) {
        let sa = &a[start..start + seg];
        let mut best: Option<(f64, usize)> = None;
        for l in lag.saturating_sub(search)..=lag + search {
            let Some(sb) = b.get(start + l..start + l + seg) else {
                break;
            };
            let c = signal::pearson(sa, sb);
            if best.is_none_or(|(bc, _)| c > bc) {
                best = Some((c, l));
            }
        }
        let (c, l) = best.unwrap_or((0.0, lag));
        if c >= 0.9 {
            lag = l;
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Test A: real devices.
// ---------------------------------------------------------------------------------------

/// The peer speaks; the bot plays it to a PulseAudio null sink (48 kHz stereo), captures the
/// sink's monitor (48 kHz stereo) and sends it back; the peer hears its own voice.
#[test]
fn pulse_call_plays_received_audio_and_sends_captured_audio_back() {
    with_pulse(
        "pulse_call_plays_received_audio_and_sends_captured_audio_back",
        || runtime().block_on(pulse_call()),
    );
}

async fn pulse_call() {
    let null = NullSink::load();
    let platform = start_platform();
    let (blob, mut socket) = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    let frames = socket.take_frames().unwrap();
    let stereo48k = StreamFormat::with_rate_channels(48_000, 2);
    let bridge = DeviceBridge::builder(BridgeConfig::default())
        .playback(
            PlaybackEnd::device(&null.sink(), stereo48k).unwrap(),
            FrameInput::Channel(frames),
        )
        .capture(
            CaptureEnd::device(&null.monitor(), stereo48k).unwrap(),
            socket.sender(),
        )
        .start()
        .unwrap();
    assert_eq!(
        bridge.playback_format().unwrap(),
        (
            DeviceFormat::new(48_000, 2),
            format!("PulseAudio:{}", null.name).as_str()
        )
    );
    assert_eq!(
        bridge.capture_format().unwrap().0,
        DeviceFormat::new(48_000, 2)
    );

    let (send_s, run_s) = (4.0, 5.0);
    let started = Instant::now();
    let peer = Peer::connect(
        &blob,
        peer_config(&platform, SignalGenerator::speech(11), send_s, run_s),
    )
    .await
    .unwrap();
    // Mid-call: the rings sit near their targets.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mid = bridge.stats();
    let report = peer.finish().await;
    // The peer left: the call ends, the frame channel closes, the bridge finishes.
    let deadline = Instant::now() + Duration::from_secs(4);
    while !bridge.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(bridge.is_finished(), "the bridge did not see the call end");
    let error = bridge.last_error();
    let stats = bridge.stop().unwrap();
    drop(socket);
    let qoe_elapsed = started.elapsed();

    let (play, cap) = (stats.playback.unwrap(), stats.capture.unwrap());
    let (mplay, mcap) = (mid.playback.unwrap(), mid.capture.unwrap());
    println!(
        "bridge after {qoe_elapsed:.1?}: ticks {}, late {}, resyncs {}",
        stats.ticks, stats.late_ticks, stats.resyncs
    );
    println!(
        "  playback: received {}, played {}, padded {}, dropped {}, starvations {}, \
         ring overflow {}, re-centred {} by {:+.1} ms, mid-call level {:.1} ms (target {:.0}), ratio {:.5} \
         [{:.5}, {:.5}], device {:?}",
        play.frames_received,
        play.frames_played,
        play.padded_frames,
        play.dropped_frames,
        play.starvations,
        play.ring_overflow_samples,
        play.recentres,
        play.recentred_ms,
        mplay.level_ms,
        play.target_ms,
        play.ratio,
        play.ratio_min,
        play.ratio_max,
        play.device
    );
    println!(
        "  capture: sent {}, padded {}, underruns {}, dropped {}, idle-discarded {}, \
         framer overflow {}, queue full {}, re-centred {} by {:+.1} ms, mid-call level {:.1} ms (target {:.0}), ratio {:.5} \
         [{:.5}, {:.5}], device {:?}",
        cap.frames_sent,
        cap.padded_frames,
        cap.underruns,
        cap.dropped_frames,
        cap.discarded_idle_frames,
        cap.framer_overflow_samples,
        cap.send_queue_full,
        cap.recentres,
        cap.recentred_ms,
        mcap.level_ms,
        cap.target_ms,
        cap.ratio,
        cap.ratio_min,
        cap.ratio_max,
        cap.device
    );
    println!(
        "  last error: {error:?}; peer stats {:?}",
        report.stats.jitter
    );

    // What came back is the peer's own voice, through both devices.
    let delay = report
        .echo_delay(Duration::from_millis(1_500))
        .expect("the peer's signal came back");
    let span = Duration::from_secs_f64(send_s).min(Duration::from_secs_f64(run_s) - delay);
    let lag = (delay.as_secs_f64() * 16_000.0).round() as usize;
    let n = ((span.as_secs_f64() - 0.1) * 16_000.0) as usize;
    let segs = segment_correlations(&report.sent[..n], &report.received, 4_000, lag, 320);
    let good = segs.iter().filter(|&&c| c >= 0.9).count();
    let mean = segs.iter().sum::<f64>() / segs.len().max(1) as f64;
    println!(
        "  round trip peer -> bot -> {} -> {}.monitor -> bot -> peer: latency {:.1} ms, \
         {good}/{} segments of 250 ms correlate >= 0.9 (mean {mean:.3}, min {:.3})",
        null.name,
        null.name,
        delay.as_secs_f64() * 1000.0,
        segs.len(),
        segs.iter().copied().fold(f64::INFINITY, f64::min),
    );
    println!("  segments: {segs:.3?}");
    assert!(segs.len() >= 10, "{segs:?}");
    assert!(
        good * 10 >= segs.len() * 8,
        "only {good} of {} segments correlate >= 0.9: {segs:.3?}",
        segs.len()
    );
    assert!(delay < Duration::from_millis(800), "latency {delay:?}");

    // Both sides moved audio and stayed near their targets.
    assert!(play.frames_played >= 200, "{play:?}");
    assert!(cap.frames_sent >= 200, "{cap:?}");
    assert!(
        (mplay.level_ms - play.target_ms).abs() <= 45.0,
        "playback level {} ms",
        mplay.level_ms
    );
    assert!(
        (mcap.level_ms - cap.target_ms).abs() <= 45.0,
        "capture level {} ms",
        mcap.level_ms
    );
    // The null sink runs on the system clock: the controllers barely move.
    for r in [play.ratio_min, play.ratio_max, cap.ratio_min, cap.ratio_max] {
        assert!((r - 1.0).abs() <= 0.01, "ratio {r}");
    }
    assert_eq!(play.errors + cap.errors, 0, "{error:?}");
    let dev = play.device.unwrap();
    assert_eq!(dev.errors, 0, "{dev:?}");
}

/// A device that does not exist, and a format the resampler cannot convert, are clear
/// errors naming the device.
#[test]
fn pulse_bad_devices_are_clear_errors() {
    with_pulse("pulse_bad_devices_are_clear_errors", || {
        let sel = DeviceSelector::named("no-such-sink").on(Backend::PulseAudio);
        let err = PlaybackEnd::device(&sel, StreamFormat::with_rate_channels(48_000, 2))
            .expect_err("no such device");
        println!("{err}");
        assert!(matches!(err, BridgeError::Device(_)), "{err:?}");
        assert!(err.to_string().contains("no-such-sink"), "{err}");
        let mon = DeviceSelector::named("loop.monitor").on(Backend::PulseAudio);
        let err = CaptureEnd::device(&mon, StreamFormat::with_rate_channels(22_050, 2))
            .expect_err("22.05 kHz is not supported");
        println!("{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("loop.monitor") && msg.contains("22050"),
            "{msg}"
        );
    });
}

// ---------------------------------------------------------------------------------------
// Test B: WAV files instead of devices, compared exactly.
// ---------------------------------------------------------------------------------------

/// 16 kHz mono speech up-sampled to 48 kHz stereo (the "microphone" file's content).
fn speech_48k_stereo(seconds: f64) -> Vec<i16> {
    let speech = SignalGenerator::speech(5).take_seconds(seconds);
    let mut up =
        PlayoutResampler::new(DeviceFormat::new(48_000, 2), ResamplerMode::LowDelay).unwrap();
    let mut out = vec![0i16; up.max_output_len()];
    let mut all = Vec::new();
    for f in speech.chunks_exact(FRAME_SAMPLES) {
        let n = up.process(f.try_into().unwrap(), &mut out).unwrap();
        all.extend_from_slice(&out[..n]);
    }
    all
}

/// What the bridge's capture side makes of `samples` (48 kHz stereo): 20 ms frames.
fn expected_sent(samples: &[i16], mode: ResamplerMode) -> Vec<[i16; FRAME_SAMPLES]> {
    let mut cap = CaptureResampler::new(DeviceFormat::new(48_000, 2), mode).unwrap();
    let mut framer = Framer::pcm16k(samples.len() / 960 + 4);
    // One tick's worth at a time, as the bridge reads a file.
    for chunk in samples.chunks(960 * 2) {
        cap.process_into_framer(chunk, &mut framer).unwrap();
    }
    let mut frames = Vec::new();
    let mut f = [0i16; FRAME_SAMPLES];
    while framer.pop_frame(&mut f) {
        frames.push(f);
    }
    frames
}

/// What the bridge's playback side makes of the received frames (48 kHz stereo).
fn expected_played(received: &[i16], mode: ResamplerMode) -> Vec<i16> {
    let mut play = PlayoutResampler::new(DeviceFormat::new(48_000, 2), mode).unwrap();
    let mut out = vec![0i16; play.max_output_len()];
    let mut all = Vec::new();
    for f in received.chunks_exact(FRAME_SAMPLES) {
        let n = play.process(f.try_into().unwrap(), &mut out).unwrap();
        all.extend_from_slice(&out[..n]);
    }
    all
}

/// Finds each expected frame in `received` sample-exactly, following the timeline (a
/// concealed or inserted frame on the way shifts the rest); returns how many were found
/// and the first frame's offset.
fn find_frames(expected: &[[i16; FRAME_SAMPLES]], received: &[i16]) -> (usize, Option<usize>) {
    let first = (0..received.len().saturating_sub(FRAME_SAMPLES))
        .find(|&i| received[i..i + FRAME_SAMPLES] == expected[0]);
    let Some(mut at) = first else {
        return (0, None);
    };
    let mut found = 0;
    for f in expected {
        let hit = [0isize, -1, 1, -2, 2, -3, 3].iter().find_map(|&k| {
            let pos = at as isize + k * FRAME_SAMPLES as isize;
            let pos = usize::try_from(pos).ok()?;
            (received.get(pos..pos + FRAME_SAMPLES)? == f).then_some(pos)
        });
        if let Some(pos) = hit {
            found += 1;
            at = pos;
        }
        at += FRAME_SAMPLES;
    }
    (found, first)
}

/// The same call with a WAV sink and a WAV source at 48 kHz stereo: the sink holds exactly
/// the received frames, resampled; the peer receives exactly the source, resampled.
#[test]
fn wav_call_writes_what_it_receives_and_sends_the_file_exactly() {
    runtime().block_on(async {
        let mode = BridgeConfig::default().mode;
        let mic = speech_48k_stereo(3.0);
        let (src_path, dst_path) = (temp_path("mic"), temp_path("speaker"));
        let mut w = WavSink::create(&src_path, 48_000, 2).unwrap();
        w.write(&mic).unwrap();
        w.finalize().unwrap();

        let platform = start_platform();
        // Frames reach the bridge through a ring fed by the platform's frame callback; the
        // callback also records them for the comparison.
        let (mut prod, input) = FrameInput::ring(64);
        let recorded = Arc::new(Mutex::new(Vec::<i16>::new()));
        let rec = Arc::clone(&recorded);
        let delivery = FrameDelivery::Callback(Box::new(move |f: &AudioFrame, _: &AudioSender| {
            rec.lock().unwrap().extend_from_slice(f.samples.samples());
            let _ = prod.try_push(f.samples);
        }));
        let (blob, socket) = platform
            .create_media_configuration_with(uuid::Uuid::new_v4(), delivery)
            .unwrap();
        let bridge = DeviceBridge::builder(BridgeConfig::default())
            .playback(
                PlaybackEnd::wav(WavSink::create(&dst_path, 48_000, 2).unwrap()).unwrap(),
                input,
            )
            .capture(
                CaptureEnd::source(
                    Box::new(WavSource::open(&src_path, false).unwrap()),
                    "mic.wav",
                )
                .unwrap(),
                socket.sender(),
            )
            .start()
            .unwrap();
        let peer = Peer::connect(
            &blob,
            peer_config(&platform, SignalGenerator::speech(3), 3.0, 4.0),
        )
        .await
        .unwrap();
        let report = peer.finish().await;
        // Let the bridge drain the ring, then stop it (finalizes the WAV).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = bridge.stop().unwrap();
        drop(socket);
        let recorded = recorded.lock().unwrap().clone();
        let (play, cap) = (stats.playback.unwrap(), stats.capture.unwrap());
        println!("WAV bridge: {stats:?}");

        // Receive → WAV: exactly the received frames, resampled.
        let written = WavSource::open(&dst_path, false).unwrap();
        let played = play.frames_played as usize;
        let want = expected_played(&recorded[..played * FRAME_SAMPLES], mode);
        println!(
            "  received {} frames, played {played} into {} frames of 48 kHz stereo",
            recorded.len() / FRAME_SAMPLES,
            written.frames()
        );
        assert!(played + 2 >= recorded.len() / FRAME_SAMPLES, "{play:?}");
        assert!(
            written.samples() == want,
            "the WAV sink differs from the expected"
        );
        assert_eq!(play.padded_frames + play.dropped_frames, 0, "{play:?}");
        // And what was received is the peer's voice (PCM: sample-exact).
        let lag = signal::find_delay(&report.sent, &recorded, 16_000).expect("peer audio received");
        let corr = signal::correlation_at(&report.sent[..32_000], &recorded, lag);
        println!("  bot received the peer's voice {lag} samples late, correlation {corr:.6}");
        assert!(corr > 0.999, "{corr}");

        // WAV → send: the peer receives exactly the file, down-mixed and resampled.
        let frames = expected_sent(&mic, mode);
        let (found, first) = find_frames(&frames, &report.received);
        let events = report.stats.jitter.concealment_events;
        println!(
            "  peer found {found}/{} sent frames sample-exact (first at {:?} ms); peer jitter \
             buffer concealment events {events}, capture {cap:?}",
            frames.len(),
            first.map(|i| i as f64 / 16.0)
        );
        assert!(frames.len() >= 145, "{}", frames.len());
        let allowed = 3 * events as usize;
        assert!(
            found + allowed >= frames.len(),
            "{found} of {} frames arrived intact ({events} concealment events)",
            frames.len()
        );
        // The file ends after 3 s: the framer runs dry once, then silence is sent.
        assert_eq!(cap.dropped_frames, 0, "{cap:?}");
        assert!(cap.underruns <= 1, "{cap:?}");
        std::fs::remove_file(&src_path).ok();
        std::fs::remove_file(&dst_path).ok();
    });
}

/// Unsupported WAV formats are clear errors naming the file.
#[test]
fn wav_bad_format_is_a_clear_error() {
    let path = temp_path("22k");
    let mut w = WavSink::create(&path, 22_050, 1).unwrap();
    w.write(&[0; 441]).unwrap();
    w.finalize().unwrap();
    let err = CaptureEnd::source(
        Box::new(WavSource::open(&path, false).unwrap()),
        "voice.wav",
    )
    .expect_err("22.05 kHz");
    println!("{err}");
    assert!(err.to_string().contains("voice.wav") && err.to_string().contains("22050"));
    let err = PlaybackEnd::wav(WavSink::create(&path, 48_000, 9).unwrap()).expect_err("9 channels");
    println!("{err}");
    assert!(err.to_string().contains("9 channels"), "{err}");
    let bad = BridgeConfig {
        send_queue_frames: 0,
        ..BridgeConfig::default()
    };
    let err = DeviceBridge::builder(bad).start().expect_err("bad config");
    assert!(err.to_string().contains("send_queue_frames"), "{err}");
    let err = DeviceBridge::builder(BridgeConfig::default())
        .start()
        .expect_err("nothing");
    assert!(matches!(err, BridgeError::NothingToBridge), "{err}");
    std::fs::remove_file(&path).ok();
}

// ---------------------------------------------------------------------------------------
// The drift controller against simulated device clocks.
// ---------------------------------------------------------------------------------------

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
