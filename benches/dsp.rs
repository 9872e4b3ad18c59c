//! Per-20 ms-frame cost of the DSP, codec and send-path stages of `media-core`.
//!
//! `cargo bench --bench dsp -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use media_core::codec::{
    AudioDecoder, AudioEncoder, Codec, OpusConfig, OpusDecoder, OpusEncoder, PcmDecoder, PcmEncoder,
};
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::framer::Framer;
use media_core::packet::AudioPacket;
use media_core::resample::{CaptureResampler, DeviceFormat, PlayoutResampler, ResamplerMode};
use media_core::send::{SendConfig, SendPipeline};
use media_core::vad::{Vad, VadConfig};

fn speech(k: usize) -> [i16; FRAME_SAMPLES] {
    std::array::from_fn(|i| {
        let t = (k * FRAME_SAMPLES + i) as f64 / 16_000.0;
        let env = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
        (7_000.0
            * env
            * ((2.0 * std::f64::consts::PI * 180.0 * t).sin()
                + 0.5 * (2.0 * std::f64::consts::PI * 540.0 * t).sin()
                + 0.3 * (2.0 * std::f64::consts::PI * 2_300.0 * t).sin())) as i16
    })
}

/// 20 ms of a 48 kHz interleaved tone.
fn device_chunk(channels: usize) -> Vec<i16> {
    (0..960)
        .flat_map(|i| {
            let s =
                (6_000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 48_000.0).sin()) as i16;
            std::iter::repeat_n(s, channels)
        })
        .collect()
}

fn framer(c: &mut Criterion) {
    let input = speech(0);
    let mut f = Framer::pcm16k(4);
    let mut out = [0i16; FRAME_SAMPLES];
    // Three device-sized chunks in, one frame out.
    c.bench_function("framer/320 samples in 3 chunks -> 1 frame", |b| {
        b.iter(|| {
            f.push(black_box(&input[..100]));
            f.push(black_box(&input[100..210]));
            f.push(black_box(&input[210..]));
            assert!(f.pop_frame(&mut out));
            black_box(&out);
        })
    });
}

fn resample(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample");
    for mode in [ResamplerMode::LowDelay, ResamplerMode::DriftFollowing] {
        for ch in [1u16, 2] {
            let fmt = DeviceFormat::new(48_000, ch);
            let mut cap = CaptureResampler::new(fmt, mode).expect("capture");
            let input = device_chunk(usize::from(ch));
            g.bench_function(format!("48k{ch}ch->16k/{mode:?}"), |b| {
                b.iter(|| {
                    let mut n = 0;
                    cap.process(black_box(&input), |blk| n += blk.len())
                        .expect("ok");
                    black_box(n)
                })
            });
            let mut play = PlayoutResampler::new(fmt, mode).expect("playout");
            let frame = speech(1);
            let mut out = vec![0i16; play.max_output_len()];
            g.bench_function(format!("16k->48k{ch}ch/{mode:?}"), |b| {
                b.iter(|| black_box(play.process(black_box(&frame), &mut out).expect("ok")))
            });
        }
    }
    g.finish();
}

fn codecs(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let frames: Vec<[i16; FRAME_SAMPLES]> = (0..50).map(speech).collect();
    let mut buf = [0u8; 1024];
    let mut out = [0i16; FRAME_SAMPLES];

    let mut pcm_enc = PcmEncoder::new();
    let mut pcm_dec = PcmDecoder::new();
    let mut k = 0;
    g.bench_function("pcm/encode", |b| {
        b.iter(|| {
            k = (k + 1) % frames.len();
            black_box(pcm_enc.encode(black_box(&frames[k]), &mut buf).expect("ok"))
        })
    });
    let n = pcm_enc.encode(&frames[0], &mut buf).expect("ok");
    g.bench_function("pcm/decode", |b| {
        b.iter(|| pcm_dec.decode(black_box(&buf[..n]), &mut out).expect("ok"))
    });
    g.bench_function("pcm/conceal", |b| {
        b.iter(|| pcm_dec.conceal(&mut out).expect("ok"))
    });

    for complexity in [5u8, 9] {
        let cfg = OpusConfig {
            complexity,
            ..OpusConfig::default()
        };
        let mut enc = OpusEncoder::new(&cfg).expect("encoder");
        g.bench_function(format!("opus/encode c{complexity}"), |b| {
            b.iter(|| {
                k = (k + 1) % frames.len();
                black_box(enc.encode(black_box(&frames[k]), &mut buf).expect("ok"))
            })
        });
    }
    let mut enc = OpusEncoder::new(&OpusConfig::default()).expect("encoder");
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let n = enc.encode(f, &mut buf).expect("ok");
            buf[..n].to_vec()
        })
        .collect();
    let mut dec = OpusDecoder::new().expect("decoder");
    g.bench_function("opus/decode", |b| {
        b.iter(|| {
            k = (k + 1) % packets.len();
            dec.decode(black_box(&packets[k]), &mut out).expect("ok")
        })
    });
    g.bench_function("opus/conceal (PLC)", |b| {
        b.iter(|| dec.conceal(&mut out).expect("ok"))
    });
    g.bench_function("opus/decode_fec", |b| {
        b.iter(|| {
            k = (k + 1) % packets.len();
            black_box(
                dec.decode_fec(black_box(&packets[k]), &mut out)
                    .expect("ok"),
            )
        })
    });
    g.finish();
}

fn vad(c: &mut Criterion) {
    let frames: Vec<[i16; FRAME_SAMPLES]> = (0..50).map(speech).collect();
    let mut vad = Vad::new(VadConfig::default());
    let mut k = 0;
    c.bench_function("vad/frame", |b| {
        b.iter(|| {
            k = (k + 1) % frames.len();
            black_box(vad.process(black_box(&frames[k])))
        })
    });
}

fn send_pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("send");
    let frames: Vec<Pcm16kFrame> = (0..50).map(|k| Pcm16kFrame::new(speech(k))).collect();
    let device = device_chunk(2);
    for codec in [Codec::Pcm16k, Codec::Opus16k] {
        let mut send = SendPipeline::new(&SendConfig {
            codec,
            ..SendConfig::default()
        })
        .expect("pipeline");
        let mut p = AudioPacket::empty(codec);
        let mut k = 0;
        g.bench_function(format!("{codec:?}/bot frame"), |b| {
            b.iter(|| {
                k = (k + 1) % frames.len();
                send.push_pcm16k_frame(black_box(&frames[k])).expect("room");
                assert!(send.poll_packet(&mut p));
                black_box(&p);
            })
        });
        for mode in [ResamplerMode::LowDelay, ResamplerMode::DriftFollowing] {
            let mut send = SendPipeline::new(&SendConfig {
                codec,
                capture: Some(DeviceFormat::new(48_000, 2)),
                resampler: mode,
                ..SendConfig::default()
            })
            .expect("pipeline");
            g.bench_function(format!("{codec:?}/48k stereo capture/{mode:?}"), |b| {
                b.iter(|| {
                    send.push_device_samples(black_box(&device))
                        .expect("capture");
                    while send.poll_packet(&mut p) {}
                    black_box(&p);
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, framer, resample, codecs, vad, send_pipeline);
criterion_main!(benches);
