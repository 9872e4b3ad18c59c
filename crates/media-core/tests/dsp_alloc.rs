//! Zero allocation on the per-frame path: a counting global allocator watches 10,000
//! send ticks per configuration after warm-up (PCM and Opus, bot frames and 48 kHz
//! stereo device capture through a ring, both resampler engines), plus the decode,
//! concealment, playout-resampling and device-ring paths.
//!
//! libopus allocates with C `malloc`, which this allocator cannot see; the codec state
//! is created up front by the constructors and libopus does not allocate per call.

use media_core::alloc_count::{self, CountingAllocator};
use media_core::codec::{Codec, OpusConfig, new_decoder};
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::packet::AudioPacket;
use media_core::resample::{DeviceFormat, PlayoutResampler, ResamplerMode};
use media_core::ring::{CaptureRing, PlaybackRing};
use media_core::send::{SendConfig, SendPipeline};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` with counting on; returns (allocations, deallocations).
fn count(f: impl FnOnce()) -> (usize, usize) {
    let (n, ()) = alloc_count::count(f);
    (n.allocations, n.deallocations)
}

const TICKS: usize = 10_000;

fn speech_frames() -> Vec<Pcm16kFrame> {
    (0..50)
        .map(|k| {
            Pcm16kFrame::new(std::array::from_fn(|i| {
                let t = (k * FRAME_SAMPLES + i) as f64 / 16_000.0;
                let env = (2.0 * std::f64::consts::PI * 2.0 * t).sin().max(0.0);
                (9_000.0 * env * (2.0 * std::f64::consts::PI * 310.0 * t).sin()) as i16
            }))
        })
        .collect()
}

fn bot_frames_send(codec: Codec) {
    let cfg = SendConfig {
        codec,
        opus: OpusConfig {
            dtx: true,
            ..OpusConfig::default()
        },
        ..SendConfig::default()
    };
    let mut send = SendPipeline::new(&cfg).expect("pipeline");
    let frames = speech_frames();
    let mut packet = AudioPacket::empty(codec);
    let mut tick = |k: usize, send: &mut SendPipeline| {
        send.push_pcm16k_frame(&frames[k % frames.len()])
            .expect("room");
        assert!(send.poll_packet(&mut packet));
    };
    for k in 0..100 {
        tick(k, &mut send);
    }
    let (a, d) = count(|| {
        for k in 0..TICKS {
            tick(k, &mut send);
        }
    });
    assert_eq!(send.stats().frames_encoded, (TICKS + 100) as u64);
    assert!(send.stats().silence_frames > 0, "VAD path exercised");
    println!("{codec:?} bot frames: {TICKS} ticks, {a} allocations, {d} deallocations");
    assert_eq!((a, d), (0, 0), "{codec:?}: allocations on the send path");
}

fn device_capture_send(codec: Codec, mode: ResamplerMode) {
    let fmt = DeviceFormat::new(48_000, 2);
    let cfg = SendConfig {
        codec,
        capture: Some(fmt),
        resampler: mode,
        ..SendConfig::default()
    };
    let mut send = SendPipeline::new(&cfg).expect("pipeline");
    let (mut dev, mut ring) = CaptureRing::with_capacity(4 * 1_920);
    // 20 ms of 48 kHz stereo, delivered as two 10 ms callbacks per tick.
    let chunk: Vec<i16> = (0..960)
        .flat_map(|i| {
            let s = (6_000.0 * (2.0 * std::f64::consts::PI * 500.0 * f64::from(i) / 48_000.0).sin())
                as i16;
            [s, s]
        })
        .collect();
    let mut packet = AudioPacket::empty(codec);
    let mut ratio = 1.0;
    let mut tick = |send: &mut SendPipeline, ratio: &mut f64| {
        dev.push(&chunk[..960]);
        dev.push(&chunk[960..]);
        send.push_from_capture_ring(&mut ring).expect("capture");
        while send.poll_packet(&mut packet) {}
        if mode == ResamplerMode::DriftFollowing {
            // Wobble the ratio like a drift controller would.
            *ratio = if *ratio > 1.0 { 0.9995 } else { 1.0005 };
            send.set_capture_ratio_relative(*ratio).expect("adjustable");
        }
    };
    for _ in 0..100 {
        tick(&mut send, &mut ratio);
    }
    let (a, d) = count(|| {
        for _ in 0..TICKS {
            tick(&mut send, &mut ratio);
        }
    });
    assert!(send.stats().frames_encoded >= (TICKS + 90) as u64);
    println!(
        "{codec:?} 48 kHz stereo capture ({mode:?}): {TICKS} ticks, {a} allocations, {d} deallocations"
    );
    assert_eq!(
        (a, d),
        (0, 0),
        "{codec:?} {mode:?}: allocations on the capture path"
    );
}

#[test]
fn send_path_never_allocates() {
    // The counter works: a boxed value is one allocation and one deallocation.
    let (a, d) = count(|| drop(std::hint::black_box(Box::new(7u64))));
    assert_eq!((a, d), (1, 1));
    bot_frames_send(Codec::Pcm16k);
    bot_frames_send(Codec::Opus16k);
    for mode in [ResamplerMode::LowDelay, ResamplerMode::DriftFollowing] {
        device_capture_send(Codec::Pcm16k, mode);
        device_capture_send(Codec::Opus16k, mode);
    }
}

#[test]
fn decode_conceal_and_playout_never_allocate() {
    for codec in [Codec::Pcm16k, Codec::Opus16k] {
        let mut send = SendPipeline::new(&SendConfig {
            codec,
            ..SendConfig::default()
        })
        .expect("pipeline");
        let frames = speech_frames();
        let mut packets = Vec::new();
        for f in &frames {
            send.push_pcm16k_frame(f).expect("room");
            let mut p = AudioPacket::empty(codec);
            assert!(send.poll_packet(&mut p));
            packets.push(p);
        }
        let mut dec = new_decoder(codec).expect("decoder");
        let mut play = PlayoutResampler::new(DeviceFormat::new(48_000, 2), ResamplerMode::LowDelay)
            .expect("playout");
        let (mut to_dev, mut dev) = PlaybackRing::with_capacity(8 * 1_920);
        let mut out = [0i16; FRAME_SAMPLES];
        let mut dev_buf = vec![0i16; play.max_output_len()];
        let mut callback = vec![0i16; 960];
        let mut tick = |k: usize| {
            let p = &packets[k % packets.len()];
            match k % 10 {
                3 => dec.conceal(&mut out).expect("plc"),
                5 => {
                    dec.decode_fec(packets[(k + 1) % packets.len()].payload(), &mut out)
                        .expect("fec");
                }
                _ => dec.decode(p.payload(), &mut out).expect("decode"),
            }
            let n = play.process(&out, &mut dev_buf).expect("playout");
            to_dev.push(&dev_buf[..n]);
            dev.fill(&mut callback);
            dev.fill(&mut callback);
        };
        for k in 0..100 {
            tick(k);
        }
        let (a, d) = count(|| {
            for k in 0..TICKS {
                tick(k);
            }
        });
        println!(
            "{codec:?} decode/conceal/FEC + 48 kHz playout + ring: {TICKS} ticks, {a} allocations, {d} deallocations"
        );
        assert_eq!(
            (a, d),
            (0, 0),
            "{codec:?}: allocations on the receive-side DSP path"
        );
    }
}
