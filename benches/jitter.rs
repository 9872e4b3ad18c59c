//! Per-20 ms-frame cost of the receive path: the jitter buffer alone (one packet in, one
//! playout decision out) and the whole receive pipeline (jitter buffer, decode,
//! time-stretch, frame out) with PCM and with Opus, with PCM losing one packet in ten
//! (pitch-period concealment and merge), and with PCM followed by the low-delay
//! 16 kHz → 48 kHz stereo playout resampler (the device direction).
//!
//! `cargo bench --bench jitter -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use media_core::codec::{AudioEncoder, Codec, OpusConfig, new_decoder, new_encoder};
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::jitter::{JitterBuffer, JitterConfig, Playout};
use media_core::packet::{AudioPacket, MAX_PAYLOAD};
use media_core::playout::{ReceiveConfig, ReceivePipeline};
use media_core::resample::{DeviceFormat, PlayoutResampler, ResamplerMode};

const TICK: Duration = Duration::from_millis(20);

/// 10 s of the evaluation's speech-like signal, encoded: (payload, silence flag).
fn encoded(kind: Codec) -> Vec<(Vec<u8>, bool)> {
    let speech = media_core::speech::speech_like(500 * FRAME_SAMPLES, 3);
    let mut enc: Box<dyn AudioEncoder> =
        new_encoder(kind, &OpusConfig::default()).expect("encoder");
    let mut buf = [0u8; MAX_PAYLOAD];
    speech
        .chunks_exact(FRAME_SAMPLES)
        .map(|f| {
            let frame: [i16; FRAME_SAMPLES] = f.try_into().expect("320 samples");
            let n = enc.encode(&frame, &mut buf).expect("encodes");
            let silent = Pcm16kFrame::new(frame).rms_dbfs() < -50.0;
            (buf[..n].to_vec(), silent)
        })
        .collect()
}

fn jitter_buffer(c: &mut Criterion) {
    let payload = [0u8; 640];
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let t0 = Instant::now();
    let mut now = t0;
    let mut k: u32 = 0;
    let mut pkt = AudioPacket::new(0, 0, Codec::Pcm16k, &payload).expect("fits");
    // Fill to a steady state: a few packets ahead of playout.
    for _ in 0..10 {
        pkt.seq = k as u16;
        pkt.timestamp = k.wrapping_mul(320);
        let _ = jb.handle_packet(now, &pkt);
        k += 1;
        now += TICK;
    }
    c.bench_function("jitter_buffer/push+pop per 20 ms frame", |b| {
        b.iter(|| {
            pkt.seq = k as u16;
            pkt.timestamp = k.wrapping_mul(320);
            let accepted = jb.handle_packet(now, black_box(&pkt));
            let ts = match jb.poll_playout(now, 0) {
                Playout::Decode { timestamp, .. } => timestamp,
                Playout::Fec { timestamp, .. } | Playout::Conceal { timestamp } => timestamp,
                Playout::Idle => 0,
            };
            k = k.wrapping_add(1);
            now += TICK;
            black_box((accepted, ts))
        })
    });
}

/// The receive pipeline per frame; `lose_every`: every n-th packet is lost (0: none).
fn pipeline(
    c: &mut Criterion,
    kind: Codec,
    name: &str,
    device: Option<DeviceFormat>,
    lose_every: u32,
) {
    let packets = encoded(kind);
    let mut rx = ReceivePipeline::new(
        ReceiveConfig::default(),
        new_decoder(kind).expect("decoder"),
    );
    let t0 = Instant::now();
    let mut now = t0;
    let mut k: u32 = 0;
    let mut frame = Pcm16kFrame::silent();
    let mut pkt = AudioPacket::empty(kind);
    let mut playout = device.map(|d| {
        let r = PlayoutResampler::new(d, ResamplerMode::LowDelay).expect("resampler");
        let out = vec![0i16; r.max_output_len()];
        (r, out)
    });
    let feed = |rx: &mut ReceivePipeline, k: u32, now: Instant, pkt: &mut AudioPacket| {
        if lose_every > 0 && k.is_multiple_of(lose_every) {
            return;
        }
        let (payload, silent) = &packets[k as usize % packets.len()];
        pkt.seq = k as u16;
        pkt.timestamp = k.wrapping_mul(320);
        pkt.silence = *silent;
        pkt.set_payload(payload).expect("fits");
        let _ = rx.handle_packet(now, pkt);
    };
    for _ in 0..100 {
        feed(&mut rx, k, now, &mut pkt);
        let _ = rx.poll_frame(now, &mut frame);
        k += 1;
        now += TICK;
    }
    c.bench_function(&format!("receive_pipeline/{name} per 20 ms frame"), |b| {
        b.iter(|| {
            feed(&mut rx, k, now, &mut pkt);
            let info = rx.poll_frame(now, &mut frame);
            let device_samples = match &mut playout {
                Some((r, out)) => r.process(frame.samples(), out).expect("resamples"),
                None => 0,
            };
            k = k.wrapping_add(1);
            now += TICK;
            black_box((info, frame.samples()[0], device_samples))
        })
    });
}

fn receive_pcm(c: &mut Criterion) {
    pipeline(c, Codec::Pcm16k, "pcm", None, 0);
}

fn receive_pcm_lossy(c: &mut Criterion) {
    pipeline(
        c,
        Codec::Pcm16k,
        "pcm, 1 in 10 packets lost (concealment)",
        None,
        10,
    );
}

fn receive_pcm_48k(c: &mut Criterion) {
    let stereo_48k = DeviceFormat::new(48_000, 2);
    pipeline(
        c,
        Codec::Pcm16k,
        "pcm + 48k stereo playout",
        Some(stereo_48k),
        0,
    );
}

fn receive_opus(c: &mut Criterion) {
    pipeline(c, Codec::Opus16k, "opus", None, 0);
}

/// The pitch search behind every accelerate / expand attempt, on a voiced frame.
fn pitch_search(c: &mut Criterion) {
    use media_core::jitter::stretch::{MAX_PERIOD, MIN_PERIOD, find_period};
    let mut x = [0i16; FRAME_SAMPLES];
    let (mut y1, mut y2) = (0f32, 0f32);
    for (i, s) in x.iter_mut().enumerate() {
        let y = if i % 97 == 0 { 6000.0 } else { 0.0 } + 1.6 * y1 - 0.8 * y2;
        (y2, y1) = (y1, y);
        *s = y as i16;
    }
    c.bench_function("stretch/find_period per 20 ms frame", |b| {
        b.iter(|| find_period(black_box(&x), MIN_PERIOD, MAX_PERIOD))
    });
}

criterion_group!(
    benches,
    pitch_search,
    jitter_buffer,
    receive_pcm,
    receive_pcm_lossy,
    receive_pcm_48k,
    receive_opus
);
criterion_main!(benches);
