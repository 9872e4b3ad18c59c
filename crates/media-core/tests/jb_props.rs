//! Property tests: random operation sequences on the jitter buffer and the receive
//! pipeline never panic, give exactly one 320-sample frame per tick and stay within
//! their memory bound.

mod common;

use std::time::{Duration, Instant};

use common::TestPcm;
use media_core::codec::Codec;
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::jitter::{JitterBuffer, JitterConfig, Playout};
use media_core::packet::AudioPacket;
use media_core::playout::{ReceiveConfig, ReceivePipeline};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// A packet near the current stream position (reorder, duplicate, small jumps).
    Near {
        dseq: i16,
        dts_frames: i16,
        ts_jitter: i16,
        level: i16,
        silence: bool,
    },
    /// A packet with arbitrary fields.
    Wild {
        seq: u16,
        ts: u32,
        len: u16,
        opus: bool,
    },
    /// Advance time by a few ms (sub-tick arrivals).
    Wait(u16),
    /// One 20 ms output tick.
    Tick,
    /// A jump of the clock (up to 10 s forward) or backwards.
    Jump(i32),
    /// Reset the pipeline.
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (-3i16..6, -3i16..6, -40i16..40, any::<i16>(), any::<bool>()).prop_map(
            |(dseq, dts_frames, ts_jitter, level, silence)| Op::Near {
                dseq,
                dts_frames,
                ts_jitter,
                level,
                silence
            }
        ),
        1 => (any::<u16>(), any::<u32>(), 0u16..700, any::<bool>())
            .prop_map(|(seq, ts, len, opus)| Op::Wild { seq, ts, len, opus }),
        3 => (0u16..20).prop_map(Op::Wait),
        6 => Just(Op::Tick),
        1 => (-2_000i32..10_000).prop_map(Op::Jump),
        1 => Just(Op::Reset),
    ]
}

fn packet(seq: u16, ts: u32, level: i16, silence: bool) -> AudioPacket {
    let f = Pcm16kFrame::new([level; FRAME_SAMPLES]);
    let mut p = AudioPacket::new(seq, ts, Codec::Pcm16k, &f.to_le_bytes()).expect("fits");
    p.silence = silence;
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pipeline_survives_any_operation_sequence(
        ops in proptest::collection::vec(op(), 1..400),
        max_delay_ms in 60u64..1500,
    ) {
        let cfg = ReceiveConfig {
            jitter: JitterConfig {
                max_delay: Duration::from_millis(max_delay_ms),
                ..JitterConfig::default()
            },
            ..ReceiveConfig::default()
        };
        let mut rx = ReceivePipeline::new(cfg, Box::new(TestPcm));
        let cap = rx.jitter_buffer().capacity();
        let t0 = Instant::now() + Duration::from_secs(5);
        let mut now = t0;
        let (mut seq, mut ts) = (100u16, 32_000u32);
        let mut frame = Pcm16kFrame::silent();
        let mut ticks = 0u32;
        let mut infos = 0u32;
        for op in ops {
            match op {
                Op::Near { dseq, dts_frames, ts_jitter, level, silence } => {
                    seq = seq.wrapping_add(dseq as u16);
                    ts = ts
                        .wrapping_add((i32::from(dts_frames) * 320) as u32)
                        .wrapping_add(ts_jitter as u32);
                    let _ = rx.handle_packet(now, &packet(seq, ts, level, silence));
                }
                Op::Wild { seq: s, ts: t, len, opus } => {
                    let codec = if opus { Codec::Opus16k } else { Codec::Pcm16k };
                    let payload = vec![0x55u8; usize::from(len)];
                    let p = AudioPacket::new(s, t, codec, &payload).expect("fits");
                    let _ = rx.handle_packet(now, &p);
                }
                Op::Wait(ms) => now += Duration::from_millis(u64::from(ms)),
                Op::Tick => {
                    now += Duration::from_millis(20);
                    let info = rx.poll_frame(now, &mut frame);
                    ticks += 1;
                    infos += 1;
                    prop_assert!(info.concealed_samples as usize <= FRAME_SAMPLES);
                    prop_assert_eq!(frame.samples().len(), FRAME_SAMPLES);
                }
                Op::Jump(ms) => {
                    if ms >= 0 {
                        now += Duration::from_millis(ms as u64);
                    } else {
                        now = now
                            .checked_sub(Duration::from_millis(ms.unsigned_abs().into()))
                            .unwrap_or(now);
                    }
                }
                Op::Reset => rx.reset(),
            }
            let jb = rx.jitter_buffer();
            prop_assert!(jb.len() <= jb.capacity());
            prop_assert_eq!(jb.capacity(), cap);
        }
        prop_assert_eq!(ticks, infos);
        let s = rx.stats();
        prop_assert!(s.jitter_buffer_delay >= 0.0);
        prop_assert!(s.target_delay_ms >= 0.0 && s.target_delay_ms <= max_delay_ms.max(80) as f64);
    }

    #[test]
    fn jitter_buffer_gives_one_decision_per_request_and_stays_bounded(
        pkts in proptest::collection::vec((any::<u16>(), any::<u32>(), 0u32..100), 0..300),
        polls in proptest::collection::vec(0usize..320, 0..300),
    ) {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        let mut now = t0;
        for (i, (seq, ts, dt)) in pkts.iter().enumerate() {
            now += Duration::from_millis(u64::from(*dt));
            let _ = jb.handle_packet(now, &packet(*seq, *ts, 1, false));
            prop_assert!(jb.len() <= jb.capacity());
            if let Some(&pending) = polls.get(i) {
                match jb.poll_playout(now, pending) {
                    Playout::Idle | Playout::Conceal { .. } => {}
                    Playout::Decode { packet, .. } => prop_assert_eq!(packet.payload().len(), 640),
                    Playout::Fec { next, .. } => prop_assert_eq!(next.payload().len(), 640),
                }
            }
        }
    }
}
