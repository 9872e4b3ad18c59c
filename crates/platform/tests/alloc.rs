//! Zero allocation on the platform's per-frame path: a counting global allocator
//! watches 5,000 ticks after warm-up of the work one call tick does outside the
//! transport — pacer queue (enqueue by the bot, dequeue by the tick), `LowOnFrames`,
//! `SendPipeline` push/poll, datagram → `AudioPacket`, `ReceivePipeline`
//! handle/poll, building the `AudioFrame` with its active speakers and handing it to
//! the bot through the bounded frame channel.
//!
//! Not covered (and not allocation-free): the transport carves each sent datagram
//! from a 64 KiB region it allocates every ≈ 90 datagrams (quinn takes ownership of
//! each), and quinn allocates on its own paths.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use media_core::alloc_count::{self, CountingAllocator};
use media_core::codec::{Codec, OpusConfig, new_decoder};
use media_core::frame::Pcm16kFrame;
use media_core::packet::AudioPacket;
use media_core::playout::{ReceiveConfig, ReceivePipeline};
use media_core::send::{SendConfig, SendPipeline};
use platform::call::fill_packet;
use platform::pacer::LowOnFrames;
use platform::{ActiveSpeakers, AudioFrame};
use transport::wire::{DatagramHeader, Flags};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn run_ticks(kind: Codec, ticks: usize) -> usize {
    let sender = platform::pacer::AudioSender::new_for_tests(64);
    let mut send = SendPipeline::new(&SendConfig {
        codec: kind,
        opus: OpusConfig::default(),
        queue_frames: 4,
        ..SendConfig::default()
    })
    .unwrap();
    let mut recv = ReceivePipeline::new(ReceiveConfig::default(), new_decoder(kind).unwrap());
    let (frames_tx, mut frames_rx) = tokio::sync::mpsc::channel::<AudioFrame>(50);
    let mut low = LowOnFrames::new(5);
    let mut tx_pkt = AudioPacket::empty(kind);
    let mut rx_pkt = AudioPacket::empty(kind);
    let mut out = Pcm16kFrame::silent();
    let speakers = ActiveSpeakers::from_slice(&[7, 9, 11]);
    let mut frame = [0i16; 320];
    let t0 = Instant::now();
    let mut measured = 0;
    let mut watch = None;
    for i in 0..(ticks + 500) {
        if i == 500 {
            watch = Some(alloc_count::start());
        }
        let now = t0 + Duration::from_millis(20 * i as u64);
        // The bot enqueues (bursty: 3 frames every third tick).
        if i % 3 == 0 {
            for k in 0..3 {
                for (j, s) in frame.iter_mut().enumerate() {
                    *s = (((i + k) * 320 + j) as f32 * 0.05)
                        .sin()
                        .mul_add(8000.0, 0.0) as i16;
                }
                let _ = sender.enqueue(&Pcm16kFrame::new(frame));
            }
        }
        // The pacer takes one.
        let before = sender.queued();
        let f = sender.dequeue_for_tests();
        let _ = low.observe(before, sender.queued());
        if let Some(f) = f {
            send.push_pcm16k_frame(&f).unwrap();
        }
        while send.poll_packet(&mut tx_pkt) {
            // "The network": the datagram comes straight back.
            let header = DatagramHeader {
                flags: if tx_pkt.silence {
                    Flags::SILENCE
                } else {
                    Flags::NONE
                },
                codec: tx_pkt.codec,
                stream_id: 2,
                sequence: tx_pkt.seq,
                timestamp: tx_pkt.timestamp,
            };
            assert!(fill_packet(&mut rx_pkt, &header, tx_pkt.payload()));
            let _ = recv.handle_packet(now, &rx_pkt);
        }
        let info = recv.poll_frame(now, &mut out);
        let af = AudioFrame {
            samples: out,
            timestamp: info.timestamp,
            is_silence: info.silence,
            concealed: info.concealed,
            active_speakers: speakers,
        };
        let _ = frames_tx.try_send(af);
        let _ = frames_rx.try_recv();
        if i >= 500 {
            measured += 1;
        }
    }
    let counts = watch.expect("warm-up is shorter than the run").stop();
    assert_eq!(measured, ticks);
    counts.allocations
}

#[test]
fn call_tick_work_does_not_allocate() {
    for kind in [Codec::Pcm16k, Codec::Opus16k] {
        let n = run_ticks(kind, 5_000);
        eprintln!("{kind:?}: {n} allocations in 5000 ticks");
        assert_eq!(n, 0, "{kind:?}");
    }
}
