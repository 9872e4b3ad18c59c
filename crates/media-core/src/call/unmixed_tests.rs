//! Unmixed audio on a virtual clock: a far end plays two speakers (440 and 880 Hz)
//! as a mix plus each speaker's own stream; the receiving call's buffers carry each
//! speaker's tone under its MSI, and what does not fit is refused by name.

use std::time::{Duration, Instant};

use super::*;
use crate::link::{LinkError, LinkStats};

const ALICE: u32 = 1001;
const BOB: u32 = 2002;

/// Collects what a call sends.
#[derive(Default)]
struct Wire(Vec<AudioPacket>);

impl MediaLink for Wire {
    fn send_packet(&mut self, packet: &AudioPacket) -> Result<(), LinkError> {
        self.0.push(packet.clone());
        Ok(())
    }
    fn send_control(&mut self, _: &Control) -> Result<(), LinkError> {
        Ok(())
    }
    fn close(&mut self, _: &str) {}
    fn stats(&mut self) -> LinkStats {
        LinkStats::default()
    }
}

/// Frame `k` of a sine at `hz`, amplitude `amp`.
fn sine(hz: f32, k: usize, amp: f32) -> Pcm16kFrame {
    let mut f = Pcm16kFrame::silent();
    for (i, s) in f.samples_mut().iter_mut().enumerate() {
        let t = (k * 320 + i) as f32 / 16_000.0;
        *s = ((t * hz * std::f32::consts::TAU).sin() * amp) as i16;
    }
    f
}

/// Power of `x` at `hz` (Goertzel), per sample.
fn power_at(x: &[i16], hz: f32) -> f64 {
    let w = f64::from(std::f32::consts::TAU * hz / 16_000.0);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / x.len() as f64
}

fn config(codec: Codec, streams: AudioStreams) -> CallConfig {
    CallConfig {
        streams,
        report_every: 0,
        ..CallConfig::new(codec)
    }
}

/// A far end (`far`, sending the mix of both tones and each tone unmixed) and the
/// bot's call (`bot`), `frames` send ticks, packets delivered after 30 ms with every
/// 7th pair swapped. Returns the bot's frames.
fn run(codec: Codec, streams: AudioStreams, frames: usize) -> (Vec<AudioFrame>, CallStats) {
    let t0 = Instant::now();
    let (tx, queue) = AudioSender::new(8);
    let mut far = CallMedia::new(
        t0,
        &config(codec, AudioStreams::mixed_and_unmixed(2)),
        queue,
    )
    .expect("far end");
    let (_idle, nothing) = AudioSender::new(1);
    let mut bot = CallMedia::new(t0, &config(codec, streams), nothing).expect("bot");
    let mut wire = Wire::default();
    let mut in_flight: Vec<(Instant, AudioPacket)> = Vec::new();
    let mut frames_seen = Vec::new();
    let mut stats = CallStats::default();
    for k in 0..frames {
        let now = t0 + Duration::from_millis(20) * k as u32;
        let a = sine(440.0, k, 6000.0);
        let b = sine(880.0, k, 6000.0);
        let mut mix = a;
        for (m, s) in mix.samples_mut().iter_mut().zip(b.samples()) {
            *m = m.saturating_add(*s);
        }
        tx.enqueue(&mix).expect("room");
        far.send_unmixed(ALICE, &a).expect("alice's stream");
        far.send_unmixed(BOB, &b).expect("bob's stream");
        far.run_due(now, &mut wire, |_| {});
        let n = in_flight.len();
        in_flight.extend(
            wire.0
                .drain(..)
                .map(|p| (now + Duration::from_millis(30), p)),
        );
        if k % 7 == 3 && in_flight.len() >= n + 2 {
            in_flight.swap(n, n + 1);
        }
        let due = in_flight.iter().take_while(|(t, _)| *t <= now).count();
        for (_, p) in in_flight.drain(..due) {
            bot.run_event(now, LinkEvent::Packet(&p), &mut wire, |_| {});
        }
        wire.0.clear();
        bot.run_due(now, &mut wire, |o| match o {
            Output::Frame(f) => frames_seen.push(*f),
            Output::Stats(s) => stats = *s,
            _ => {}
        });
        wire.0.clear();
    }
    stats = CallStats {
        unmixed: bot.stats().unmixed,
        ..stats
    };
    (frames_seen, stats)
}

/// dB of 440 Hz over 880 Hz in `x`.
fn tilt_db(x: &[i16]) -> f64 {
    10.0 * ((power_at(x, 440.0) + 1e-3) / (power_at(x, 880.0) + 1e-3)).log10()
}

fn check_two_speakers(codec: Codec) {
    let (frames, stats) = run(codec, AudioStreams::mixed_and_unmixed(2), 150);
    // After the jitter buffer's start-up, every frame has both speakers' buffers.
    let steady = &frames[frames.len() - 100..];
    let mut alice = Vec::new();
    let mut bob = Vec::new();
    for f in steady {
        assert_eq!(f.unmixed.len(), 2, "both speakers, every tick");
        let a = f.unmixed.get(ALICE).expect("alice's buffer");
        let b = f.unmixed.get(BOB).expect("bob's buffer");
        alice.extend_from_slice(a.samples.samples());
        bob.extend_from_slice(b.samples.samples());
        // Each buffer is its own speaker's tone, not the other's, frame by frame.
        assert!(tilt_db(a.samples.samples()) > 20.0, "alice is 440 Hz");
        assert!(tilt_db(b.samples.samples()) < -20.0, "bob is 880 Hz");
        // The mix carries both.
        assert!(tilt_db(f.samples.samples()).abs() < 6.0, "the mix has both");
        assert!(!f.is_silence);
    }
    eprintln!(
        "{codec}: alice {:.1} dB 440 over 880, bob {:.1} dB, stats {:?}",
        tilt_db(&alice),
        tilt_db(&bob),
        stats.unmixed
    );
    assert_eq!(stats.unmixed.streams_started, 2);
    assert_eq!(stats.unmixed.refused_no_slot, 0);
    assert_eq!(stats.unmixed.refused_not_negotiated, 0);
    assert!(stats.unmixed.packets >= 2 * 140, "{:?}", stats.unmixed);
}

#[test]
fn each_unmixed_buffer_carries_its_own_speaker_opus() {
    check_two_speakers(Codec::Opus16k);
}

#[test]
fn each_unmixed_buffer_carries_its_own_speaker_pcm() {
    check_two_speakers(Codec::Pcm16k);
}

#[test]
fn unmixed_only_plays_silence_as_the_mix() {
    let (frames, stats) = run(Codec::Pcm16k, AudioStreams::unmixed_only(2), 60);
    let f = frames.last().expect("frames");
    // The far end sent the mix anyway; a call that asked for unmixed only plays the
    // mix all the same (the transport decides what is sent: the accept's `mixed`).
    assert_eq!(f.unmixed.len(), 2);
    assert!(stats.unmixed.packets > 0);
    // A call that negotiated no unmixed stream refuses them by name.
    let (frames, stats) = run(Codec::Pcm16k, AudioStreams::MIXED, 60);
    assert!(frames.iter().all(|f| f.unmixed.is_empty()));
    assert!(stats.unmixed.refused_not_negotiated >= 100, "{stats:?}");
    assert_eq!(stats.unmixed.packets, 0);
}

fn unmixed_packet(source: u32, seq: u16) -> AudioPacket {
    let mut p = AudioPacket::new(
        seq,
        u32::from(seq) * 320,
        Codec::Pcm16k,
        &sine(440.0, seq.into(), 3000.0).to_le_bytes(),
    )
    .expect("fits");
    p.source = source;
    p
}

#[test]
fn slots_refuse_a_third_live_speaker_evict_idle_ones_and_release_quiet_ones() {
    let t0 = Instant::now();
    let (_tx, q) = AudioSender::new(1);
    let mut call =
        CallMedia::new(t0, &config(Codec::Pcm16k, AudioStreams::unmixed_only(2)), q).expect("call");
    let mut wire = Wire::default();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // Only unmixed packets: frames still come, the mix is silence.
    for k in 0..5u16 {
        let now = at(u64::from(k) * 20);
        call.handle_packet(now, &unmixed_packet(ALICE, k));
        call.handle_packet(now, &unmixed_packet(BOB, k));
        call.handle_packet(now, &unmixed_packet(3003, k));
        call.handle_timeout(now);
    }
    let mut last = None;
    call.flush(&mut wire, |o| {
        if let Output::Frame(f) = o {
            last = Some(*f);
        }
    });
    let f = last.expect("a frame");
    assert!(f.is_silence && f.samples.samples().iter().all(|&s| s == 0));
    let u = call.stats().unmixed;
    assert_eq!((u.streams_started, u.refused_no_slot, u.evicted), (2, 5, 0));
    assert_eq!(call.unmixed_rx.speakers().collect::<Vec<_>>(), [ALICE, BOB]);
    // Bob goes quiet: after 200 ms his slot may go to the third speaker.
    for k in 5..20u16 {
        let now = at(u64::from(k) * 20);
        call.handle_packet(now, &unmixed_packet(ALICE, k));
        call.handle_timeout(now);
        call.flush(&mut wire, |_| {});
    }
    call.handle_packet(at(400), &unmixed_packet(3003, 0));
    let u = call.stats().unmixed;
    assert_eq!((u.streams_started, u.evicted), (3, 1));
    assert_eq!(
        call.unmixed_rx.speakers().collect::<Vec<_>>(),
        [ALICE, 3003]
    );
    // Everybody quiet for a second: the slots are freed, the buffers stop.
    for k in 21..80u64 {
        call.handle_timeout(at(k * 20));
        call.flush(&mut wire, |_| {});
    }
    assert_eq!(call.unmixed_rx.speakers().collect::<Vec<_>>(), [0, 0]);
}

#[test]
fn send_unmixed_refuses_by_name() {
    let t0 = Instant::now();
    let (_tx, q) = AudioSender::new(1);
    let mut mixed_only =
        CallMedia::new(t0, &config(Codec::Pcm16k, AudioStreams::MIXED), q).expect("call");
    let f = sine(440.0, 0, 1000.0);
    assert_eq!(
        mixed_only.send_unmixed(ALICE, &f),
        Err(UnmixedSendError::NotNegotiated)
    );
    let (_tx, q) = AudioSender::new(1);
    let mut call = CallMedia::new(
        t0,
        &config(Codec::Pcm16k, AudioStreams::mixed_and_unmixed(1)),
        q,
    )
    .expect("call");
    assert_eq!(call.send_unmixed(0, &f), Err(UnmixedSendError::NoSource));
    assert_eq!(call.send_unmixed(ALICE, &f), Ok(()));
    assert_eq!(
        call.send_unmixed(BOB, &f),
        Err(UnmixedSendError::AllStreamsBusy)
    );
    let mut wire = Wire::default();
    call.flush(&mut wire, |_| {});
    assert_eq!(wire.0.len(), 1);
    assert_eq!((wire.0[0].source, wire.0[0].marker), (ALICE, true));
    assert_eq!(call.stats().unmixed.send_refused, 2);
    call.handle_close(&crate::link::CloseReason::Closed {
        reason: "done".into(),
    });
    assert_eq!(call.send_unmixed(ALICE, &f), Err(UnmixedSendError::Closed));
}
