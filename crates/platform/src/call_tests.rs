//! The platform's real per-call type on a virtual clock: a [`PlatformCall`] whose link
//! (`sim::MemoryLink`) loops its packets back, losing and reordering some, with an echo
//! bot reading the frame channel and enqueuing into the send queue. 5,000 ticks after
//! 500 of warm-up, PCM and Opus, under the counting allocator: no allocation (also
//! with two speakers' unmixed streams arriving besides the loop, their buffers in
//! every frame the bot reads). Then the end: the bot hears `Ended` and the session is
//! freed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use media_core::alloc_count;
use media_core::call::{AudioEvent, AudioSender, CallConfig};
use media_core::codec::Codec;
use media_core::link::{CallHandler, CloseReason, LinkEvent};
use media_core::sim::MemoryLink;
use tokio::sync::mpsc;

use super::*;
use crate::health::LoadMeter;
use crate::platform::SessionTable;
use crate::socket::CallShared;

/// Speaker `msi`'s unmixed PCM packet `k`.
fn unmixed_packet(msi: u32, k: usize) -> media_core::packet::AudioPacket {
    let mut frame = media_core::frame::Pcm16kFrame::silent();
    for (i, s) in frame.samples_mut().iter_mut().enumerate() {
        *s = (((k * 320 + i) as f32 * 0.05 * msi as f32).sin() * 5000.0) as i16;
    }
    let mut p = media_core::packet::AudioPacket::new(
        k as u16,
        (k * 320) as u32,
        Codec::Pcm16k,
        &frame.to_le_bytes(),
    )
    .expect("fits");
    p.source = msi;
    p
}

fn steady_state_allocations(codec: Codec, unmixed: bool) -> usize {
    let t0 = Instant::now();
    let table = Arc::new(SessionTable::new(vec![codec], 4));
    let ctx = CallContext {
        config: CallConfig::new(codec),
        load: Arc::new(LoadMeter::default()),
        table: table.clone(),
    };
    let shared = Arc::new(CallShared::new(uuid::Uuid::new_v4(), uuid::Uuid::new_v4()));
    let (frames_tx, mut frames_rx) = mpsc::channel(50);
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let (sender, queue) = AudioSender::new(64);
    let (_commands_tx, commands) = crossbeam_channel::bounded(8);
    let pending = PendingCall {
        shared: shared.clone(),
        delivery: Delivery::Channel(frames_tx),
        events: events_tx,
        sender: sender.clone(),
        queue,
        commands,
        streams: if unmixed {
            media_core::call::AudioStreams::mixed_and_unmixed(2)
        } else {
            media_core::call::AudioStreams::MIXED
        },
    };
    let mut call = PlatformCall::start(t0, codec, pending, Box::new(|| {}), &ctx).expect("starts");
    let mut with_buffers = 0u64;
    // Every 13th packet lost, every 7th delivered after its successor.
    let mut link = MemoryLink::new(13, 7);
    let mut echoed = 0u64;
    let mut run = |from: usize, to: usize, call: &mut PlatformCall| {
        for k in from..to {
            let now = t0 + Duration::from_millis(20 * k as u64);
            call.handle_timeout(now, &mut link);
            while let Some(p) = link.pop() {
                call.handle_event(now, LinkEvent::Packet(&p), &mut link);
            }
            if unmixed {
                for msi in [3, 4] {
                    let p = unmixed_packet(msi, k);
                    call.handle_event(now, LinkEvent::Packet(&p), &mut link);
                }
            }
            // The echo bot: every frame it reads goes back into the send queue.
            while let Ok(f) = frames_rx.try_recv() {
                let _ = sender.enqueue(&f.samples);
                echoed += 1;
                with_buffers += u64::from(f.unmixed.len() == 2);
            }
        }
    };
    run(0, 500, &mut call);
    let (counts, ()) = alloc_count::count(|| run(500, 5_500, &mut call));
    assert!(echoed > 5_000, "{codec}: the bot echoed {echoed} frames");
    if unmixed {
        assert!(
            with_buffers > 5_000,
            "{codec}: {with_buffers} frames with 2 speakers"
        );
    }
    let qoe = shared.qoe.lock().map(|q| *q).expect("qoe");
    assert!(
        qoe.packets_received > 5_000 && qoe.packets_lost > 0 && qoe.rtt_ms > 0.0,
        "{codec}: {qoe:?}"
    );
    assert!(qoe.jitter_buffer.reordered > 0, "{codec}: {qoe:?}");
    // The end: the bot hears it and the session is gone.
    let reason = CloseReason::PeerLeft {
        reason: "done".into(),
    };
    call.handle_event(t0, LinkEvent::Closed(&reason), &mut link);
    let mut events = Vec::new();
    while let Ok(e) = events_rx.try_recv() {
        events.push(e);
    }
    assert_eq!(
        events.last(),
        Some(&AudioEvent::Ended { reason }),
        "{codec}"
    );
    assert_eq!(shared.state(), crate::socket::CallState::Ended);
    assert_eq!(table.len(), 0);
    counts.allocations
}

#[test]
fn a_platform_call_does_not_allocate_in_steady_state() {
    for codec in [Codec::Pcm16k, Codec::Opus16k] {
        let n = steady_state_allocations(codec, false);
        assert_eq!(n, 0, "{codec}: {n} allocations in 5000 ticks");
    }
}

#[test]
fn a_platform_call_with_unmixed_streams_does_not_allocate_in_steady_state() {
    let n = steady_state_allocations(Codec::Pcm16k, true);
    assert_eq!(
        n, 0,
        "{n} allocations in 5000 ticks with two unmixed streams"
    );
}

#[test]
fn a_hang_up_wakes_the_call_which_closes_the_link() {
    let t0 = Instant::now();
    let table = Arc::new(SessionTable::new(vec![Codec::Pcm16k], 4));
    let ctx = CallContext {
        config: CallConfig::new(Codec::Pcm16k),
        load: Arc::new(LoadMeter::default()),
        table,
    };
    let shared = Arc::new(CallShared::new(uuid::Uuid::new_v4(), uuid::Uuid::new_v4()));
    let (frames_tx, _frames_rx) = mpsc::channel(50);
    let (events_tx, _events_rx) = mpsc::unbounded_channel();
    let (sender, queue) = AudioSender::new(8);
    let (_commands_tx, commands) = crossbeam_channel::bounded(8);
    let pending = PendingCall {
        shared: shared.clone(),
        delivery: Delivery::Channel(frames_tx),
        events: events_tx,
        sender,
        queue,
        commands,
        streams: media_core::call::AudioStreams::MIXED,
    };
    let wakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = wakes.clone();
    let wake = Box::new(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let mut call = PlatformCall::start(t0, Codec::Pcm16k, pending, wake, &ctx).expect("starts");
    let mut link = MemoryLink::new(0, 0);
    call.handle_timeout(t0, &mut link);
    assert_eq!(link.closed, None);
    shared.request_hang_up();
    shared.request_hang_up();
    assert_eq!(
        wakes.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one wake-up outstanding at most"
    );
    // Ticks do not look at the bot's signals; the wake-up delivers them.
    call.handle_timeout(t0 + Duration::from_millis(20), &mut link);
    assert_eq!(link.closed, None);
    call.handle_wake(t0 + Duration::from_millis(21), &mut link);
    assert_eq!(link.closed.as_deref(), Some("bot hung up"));
}
