//! The receive path does not allocate in steady state: a counting global allocator
//! watches `handle_packet` + `poll_frame` (PCM and Opus, with losses, reordering and
//! time-stretching) after construction.
//!
//! (libopus is C and invisible to a Rust allocator; it does not allocate per call.)

use std::time::{Duration, Instant};

use media_core::alloc_count::{self, CountingAllocator};
use media_core::codec::{AudioEncoder, Codec, OpusConfig, new_decoder, new_encoder};
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::packet::{AudioPacket, MAX_PAYLOAD};
use media_core::playout::{ReceiveConfig, ReceivePipeline};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn steady_state_allocations(kind: Codec) -> usize {
    // Everything that may allocate happens here, before watching.
    let speech = media_core::speech::speech_like(600 * FRAME_SAMPLES, 5);
    let mut enc: Box<dyn AudioEncoder> = new_encoder(kind, &OpusConfig::default()).expect("enc");
    let mut buf = [0u8; MAX_PAYLOAD];
    let packets: Vec<AudioPacket> = speech
        .chunks_exact(FRAME_SAMPLES)
        .enumerate()
        .map(|(k, f)| {
            let frame: [i16; FRAME_SAMPLES] = f.try_into().expect("320");
            let n = enc.encode(&frame, &mut buf).expect("encodes");
            AudioPacket::new(k as u16, (k * FRAME_SAMPLES) as u32, kind, &buf[..n]).expect("fits")
        })
        .collect();
    let mut rx = ReceivePipeline::new(ReceiveConfig::default(), new_decoder(kind).expect("dec"));
    let t0 = Instant::now();
    let mut frame = Pcm16kFrame::silent();
    let mut run = |from: usize, to: usize, rx: &mut ReceivePipeline| {
        for k in from..to {
            let now = t0 + Duration::from_millis(20 * k as u64);
            // Impairments: every 17th packet lost, every 11th swapped with the next,
            // every 23rd late by 70 ms (arrives with the packets 3 ticks later).
            if k % 17 != 0 && k % 11 != 0 && k % 23 != 0 {
                let _ = rx.handle_packet(now, &packets[k]);
            }
            if k % 11 == 1 {
                let _ = rx.handle_packet(now, &packets[k - 1]);
            }
            if k % 23 == 3 && k >= 3 {
                let _ = rx.handle_packet(now, &packets[k - 3]);
            }
            let _ = rx.poll_frame(now, &mut frame);
        }
    };
    run(0, 100, &mut rx);
    let (counts, ()) = alloc_count::count(|| run(100, 600, &mut rx));
    let s = rx.stats();
    assert!(s.concealed_samples > 0 && s.reordered > 0, "{s:?}");
    counts.allocations
}

#[test]
fn receive_path_does_not_allocate_in_steady_state() {
    assert_eq!(steady_state_allocations(Codec::Pcm16k), 0);
    assert_eq!(steady_state_allocations(Codec::Opus16k), 0);
}
