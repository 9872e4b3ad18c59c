//! A call's media does not allocate in steady state: two `CallMedia`s, back to back
//! over a lossy, reordering in-memory link (`sim::MemoryLink`), PCM and Opus, 5,000 ticks watched by a
//! counting global allocator after 500 of warm-up. Everything a call does per 20 ms
//! runs: pacing from the send queue (fed by the "bot" in bursts), encoding, the link,
//! the jitter buffer with concealment and reordering, playout, control messages (a DTMF
//! tone every second), the once-a-second statistics and the 5 s quality report; and
//! with unmixed audio, two speakers' own streams beside the mix (one speaker handing
//! its stream to another every 20 s: slot eviction and release run too).
//!
//! (libopus is C and invisible to a Rust allocator; it does not allocate per call.)

use std::time::{Duration, Instant};

use media_core::alloc_count::{self, CountingAllocator};
use media_core::call::{AudioSender, AudioStreams, CallConfig, CallMedia, Output};
use media_core::codec::Codec;
use media_core::control::{Control, DtmfTone};
use media_core::frame::Pcm16kFrame;
use media_core::link::LinkEvent;
use media_core::sim::MemoryLink;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// What the application side saw.
#[derive(Default)]
struct Seen {
    frames: u64,
    concealed: u64,
    stats: u64,
    unmixed: u64,
}

impl Seen {
    fn take(&mut self, out: Output<'_>) {
        match out {
            Output::Frame(f) => {
                self.frames += 1;
                self.concealed += u64::from(f.concealed);
                self.unmixed += f.unmixed.len() as u64;
            }
            Output::Stats(_) => self.stats += 1,
            _ => {}
        }
    }
}

fn steady_state_allocations(codec: Codec, unmixed: u8) -> usize {
    let t0 = Instant::now();
    let config = CallConfig {
        streams: AudioStreams::mixed_and_unmixed(unmixed),
        ..CallConfig::new(codec)
    };
    let (bot, queue) = AudioSender::new(64);
    let mut a = CallMedia::new(t0, &config, Box::new(queue)).expect("call a");
    let (_idle, none) = AudioSender::new(1);
    let mut b = CallMedia::new(t0, &config, Box::new(none)).expect("call b");
    let speech = media_core::speech::speech_like(50 * 320, 9);
    let frames: Vec<Pcm16kFrame> = speech
        .chunks_exact(320)
        .map(|c| Pcm16kFrame::from_slice(c).expect("320"))
        .collect();
    // Every 17th packet lost, every 11th delivered after its successor.
    let (mut ab, mut ba) = (MemoryLink::new(17, 11), MemoryLink::new(17, 11));
    let (mut seen_a, mut seen_b) = (Seen::default(), Seen::default());
    let mut run = |from: usize, to: usize| {
        for k in from..to {
            let now = t0 + Duration::from_millis(20 * k as u64);
            // The bot enqueues in bursts: three frames every third tick.
            if k % 3 == 0 {
                for i in 0..3 {
                    let _ = bot.enqueue(&frames[(k + i) % frames.len()]);
                }
            }
            if k % 50 == 7 {
                a.send_control(Control::Dtmf {
                    tone: DtmfTone::Pound,
                    duration_ms: 80,
                });
            }
            for speaker in 0..u32::from(unmixed) {
                // Speaker 1 hands over to a new speaker every 1000 ticks.
                let msi = 100
                    + speaker
                    + if speaker == 1 {
                        10 * (k / 1000) as u32
                    } else {
                        0
                    };
                let _ = a.send_unmixed(msi, &frames[(k + 7 * speaker as usize) % frames.len()]);
            }
            a.run_due(now, &mut ab, |o| seen_a.take(o));
            b.run_due(now, &mut ba, |o| seen_b.take(o));
            while let Some(p) = ab.pop() {
                b.run_event(now, LinkEvent::Packet(&p), &mut ba, |o| seen_b.take(o));
            }
            while let Some(p) = ba.pop() {
                a.run_event(now, LinkEvent::Packet(&p), &mut ab, |o| seen_a.take(o));
            }
        }
    };
    run(0, 500);
    let (counts, ()) = alloc_count::count(|| run(500, 5_500));
    let s = b.stats();
    // With unmixed streams a swap puts another stream's packet between two of one
    // stream: losses remain, reordering within a stream does not.
    assert!(
        s.jitter_buffer.concealed_samples > 0 && (unmixed > 0 || s.jitter_buffer.reordered > 0),
        "{codec}: the test impairs the link: {:?}",
        s.jitter_buffer
    );
    // b runs its tick before the first packet reaches it: it plays from tick 1 on.
    assert_eq!(
        seen_b.frames,
        5_500 - 1,
        "{codec}: one frame per tick once playing"
    );
    assert!(seen_b.concealed > 0 && seen_a.stats >= 100, "{codec}");
    assert!(ab.controls > 100, "{codec}: DTMF and reports went out");
    if unmixed > 0 {
        let u = s.unmixed;
        assert!(
            seen_b.unmixed > 5_000 && u.evicted >= 5 && u.refused_no_slot == 0,
            "{codec}: unmixed buffers every tick, speakers handed over: {u:?}"
        );
    }
    counts.allocations
}

#[test]
fn a_call_does_not_allocate_in_steady_state() {
    for codec in [Codec::Pcm16k, Codec::Opus16k] {
        let n = steady_state_allocations(codec, 0);
        eprintln!("{codec}: {n} allocations in 5000 ticks");
        assert_eq!(n, 0, "{codec}");
    }
}

#[test]
fn unmixed_streams_do_not_allocate_in_steady_state() {
    for codec in [Codec::Pcm16k, Codec::Opus16k] {
        let n = steady_state_allocations(codec, 2);
        eprintln!("{codec} with 2 unmixed streams: {n} allocations in 5000 ticks");
        assert_eq!(n, 0, "{codec}");
    }
}
