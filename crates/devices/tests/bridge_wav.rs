//! The bridge with WAV files in place of devices, in a real call (a `MediaPlatform` on
//! 127.0.0.1, a harness `Peer` over QUIC): what is received is written exactly, what the
//! file holds is sent exactly. And the clear errors for formats and settings it refuses.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::call::{connect, peer_config, runtime, start_platform, temp_path};
use devices::ringbuf::traits::Producer;
use devices::{
    BridgeConfig, BridgeError, CaptureEnd, DeviceBridge, FrameInput, PlaybackEnd, SampleSink,
    WavSink, WavSource,
};
use harness::signal::{self, SignalGenerator};
use media_core::frame::FRAME_SAMPLES;
use media_core::framer::Framer;
use media_core::resample::{CaptureResampler, DeviceFormat, PlayoutResampler, ResamplerMode};
use platform::{AudioFrame, AudioSender, FrameDelivery};

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
        let peer = connect(
            &blob,
            peer_config(&platform, SignalGenerator::speech(3), 3.0, 4.0),
        )
        .await;
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
