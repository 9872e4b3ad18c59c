//! Unit tests of the adaptive jitter buffer and the receive pipeline, one behaviour each.

mod common;

use std::time::{Duration, Instant};

use common::TestPcm;
use media_core::codec::Codec;
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::jitter::{Accepted, Discard, JitterBuffer, JitterConfig, Playout, Stretch};
use media_core::packet::AudioPacket;
use media_core::playout::{ReceiveConfig, ReceivePipeline};
use media_core::sim::{Impairment, Profile};

const MS: Duration = Duration::from_millis(1);

/// A PCM packet whose samples all equal `k` (so the output says which packet it was).
fn pkt(seq: u16, ts: u32, k: i16) -> AudioPacket {
    let f = Pcm16kFrame::new([k; FRAME_SAMPLES]);
    AudioPacket::new(seq, ts, Codec::Pcm16k, &f.to_le_bytes()).expect("fits")
}

/// A voiced-like PCM packet (periodic, 125 Hz) with a marker in the level.
fn tone_pkt(seq: u16, ts: u32) -> AudioPacket {
    let mut s = [0i16; FRAME_SAMPLES];
    for (i, v) in s.iter_mut().enumerate() {
        let n = ts as usize + i;
        let ph = (n % 128) as f32 / 128.0;
        *v = ((ph * std::f32::consts::TAU).sin() * 6000.0) as i16;
    }
    let f = Pcm16kFrame::new(s);
    AudioPacket::new(seq, ts, Codec::Pcm16k, &f.to_le_bytes()).expect("fits")
}

/// A buffer that starts playing immediately (no start delay).
fn eager() -> JitterConfig {
    JitterConfig {
        start_delay: Duration::ZERO,
        ..JitterConfig::default()
    }
}

fn decoded_ts(p: Playout<'_>) -> Option<u64> {
    match p {
        Playout::Decode { timestamp, .. } => Some(JitterBuffer::media_samples(timestamp)),
        _ => None,
    }
}

#[test]
fn plays_in_order_and_unwraps_sequence_and_timestamp() {
    let mut jb = JitterBuffer::new(eager());
    let t0 = Instant::now();
    let ts0 = u32::MAX - 3 * 320 + 1;
    let mut got = Vec::new();
    for k in 0..10u16 {
        let now = t0 + MS * 20 * u32::from(k);
        let seq = 65_532u16.wrapping_add(k);
        let ts = ts0.wrapping_add(320 * u32::from(k));
        assert_eq!(
            jb.handle_packet(now, &pkt(seq, ts, 1)),
            Ok(Accepted::Queued)
        );
        got.push(decoded_ts(jb.poll_playout(now, 0)).expect("decodes"));
    }
    for w in got.windows(2) {
        assert_eq!(w[1], w[0] + 320, "{got:?}");
    }
    let s = jb.stats();
    assert_eq!((s.malformed, s.late, s.reordered, s.resyncs), (0, 0, 0, 0));
}

#[test]
fn reordered_packets_are_played_in_order_and_counted() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let t0 = Instant::now();
    for (i, k) in [0u16, 2, 1, 3].into_iter().enumerate() {
        let _ = jb.handle_packet(t0 + MS * i as u32, &pkt(k, u32::from(k) * 320, 1));
    }
    assert_eq!(jb.stats().reordered, 1);
    let later = t0 + MS * 200;
    let got: Vec<u64> = (0..4)
        .map(|_| decoded_ts(jb.poll_playout(later, 0)).expect("decodes"))
        .collect();
    assert_eq!(got, vec![0, 320, 640, 960]);
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let t0 = Instant::now();
    assert!(jb.handle_packet(t0, &pkt(5, 1600, 1)).is_ok());
    assert_eq!(
        jb.handle_packet(t0, &pkt(5, 1600, 1)),
        Err(Discard::Duplicate)
    );
    assert_eq!(jb.len(), 1);
    // Also once it has been played.
    let _ = jb.poll_playout(t0 + MS * 100, 0);
    assert_eq!(
        jb.handle_packet(t0 + MS * 101, &pkt(5, 1600, 1)),
        Err(Discard::Duplicate)
    );
    assert_eq!(jb.stats().duplicate, 2);
}

#[test]
fn gap_uses_fec_from_the_next_packet_or_conceals() {
    let mut jb = JitterBuffer::new(eager());
    let t0 = Instant::now();
    let _ = jb.handle_packet(t0, &pkt(0, 0, 1));
    assert_eq!(decoded_ts(jb.poll_playout(t0, 0)), Some(0));
    // 1 is lost, 2 is here: FEC from 2.
    let _ = jb.handle_packet(t0 + MS * 20, &pkt(2, 640, 1));
    match jb.poll_playout(t0 + MS * 20, 0) {
        Playout::Fec { next, timestamp } => {
            assert_eq!(next.seq, 2);
            assert_eq!(JitterBuffer::media_samples(timestamp), 320);
        }
        other => panic!("expected FEC, got {other:?}"),
    }
    assert_eq!(decoded_ts(jb.poll_playout(t0 + MS * 40, 0)), Some(640));
    // 3 and 4 lost, 5 here: conceal 3 (no FEC source), FEC 4 from 5, then play 5.
    let _ = jb.handle_packet(t0 + MS * 60, &pkt(5, 1600, 1));
    assert!(matches!(
        jb.poll_playout(t0 + MS * 60, 0),
        Playout::Conceal { .. }
    ));
    assert!(matches!(
        jb.poll_playout(t0 + MS * 80, 0),
        Playout::Fec { .. }
    ));
    assert_eq!(decoded_ts(jb.poll_playout(t0 + MS * 100, 0)), Some(1600));
}

#[test]
fn late_packets_are_dropped_and_counted() {
    let mut jb = JitterBuffer::new(eager());
    let t0 = Instant::now();
    let _ = jb.handle_packet(t0, &pkt(0, 0, 1));
    let _ = jb.poll_playout(t0, 0);
    let _ = jb.handle_packet(t0 + MS * 40, &pkt(2, 640, 1));
    // 1 missing while 2 is here: concealed (FEC) and skipped.
    assert!(matches!(
        jb.poll_playout(t0 + MS * 40, 0),
        Playout::Fec { .. }
    ));
    assert_eq!(
        jb.handle_packet(t0 + MS * 45, &pkt(1, 320, 1)),
        Err(Discard::Late)
    );
    assert_eq!(jb.stats().late, 1);
    assert_eq!(jb.stats().packets_discarded, 1);
}

#[test]
fn underrun_waits_for_a_delayed_packet_instead_of_dropping_it() {
    let mut jb = JitterBuffer::new(eager());
    let t0 = Instant::now();
    let _ = jb.handle_packet(t0, &pkt(0, 0, 1));
    let _ = jb.poll_playout(t0, 0);
    // Packet 1 is 60 ms late: three ticks of concealment, then it is played.
    for i in 1..4u32 {
        assert!(matches!(
            jb.poll_playout(t0 + MS * 20 * i, 0),
            Playout::Conceal { .. }
        ));
    }
    let _ = jb.handle_packet(t0 + MS * 70, &pkt(1, 320, 1));
    let _ = jb.handle_packet(t0 + MS * 70, &pkt(2, 640, 1));
    assert_eq!(decoded_ts(jb.poll_playout(t0 + MS * 80, 0)), Some(320));
    assert_eq!(jb.stats().late, 0);
}

#[test]
fn a_really_lost_packet_costs_no_extra_delay_after_an_underrun() {
    let mut jb = JitterBuffer::new(eager());
    let t0 = Instant::now();
    let _ = jb.handle_packet(t0, &pkt(0, 0, 1));
    let _ = jb.poll_playout(t0, 0);
    // 1 lost; nothing there at its tick: conceal (waiting).
    assert!(matches!(
        jb.poll_playout(t0 + MS * 20, 0),
        Playout::Conceal { .. }
    ));
    // 2 arrives on time: the concealment already covered 1, so 2 plays at its own tick.
    let _ = jb.handle_packet(t0 + MS * 40, &pkt(2, 640, 1));
    assert_eq!(decoded_ts(jb.poll_playout(t0 + MS * 40, 0)), Some(640));
}

#[test]
fn timestamp_jump_resynchronises_after_confirmation() {
    let mut jb = JitterBuffer::new(eager());
    let t0 = Instant::now();
    for k in 0..3u16 {
        let now = t0 + MS * 20 * u32::from(k);
        let _ = jb.handle_packet(now, &pkt(k, u32::from(k) * 320, 1));
        let _ = jb.poll_playout(now, 0);
    }
    // The sender's timestamp jumps by 10 s with consecutive sequence numbers.
    let jump = 160_000u32;
    let now = t0 + MS * 60;
    assert_eq!(
        jb.handle_packet(now, &pkt(3, 3 * 320 + jump, 1)),
        Ok(Accepted::HeldForResync)
    );
    assert_eq!(
        jb.handle_packet(now + MS * 20, &pkt(4, 4 * 320 + jump, 1)),
        Ok(Accepted::Resynced)
    );
    assert_eq!(jb.stats().resyncs, 1);
    let mut first = None;
    for i in 0..10u32 {
        if let Some(ts) = decoded_ts(jb.poll_playout(now + MS * (20 + 20 * i), 0)) {
            first = Some(ts);
            break;
        }
    }
    assert_eq!(first, Some(u64::from(3 * 320 + jump)));
}

#[test]
fn a_lone_absurd_packet_is_malformed_and_ignored() {
    let mut jb = JitterBuffer::new(eager());
    let t0 = Instant::now();
    let _ = jb.handle_packet(t0, &pkt(0, 0, 1));
    let _ = jb.poll_playout(t0, 0);
    // Sequence 1 with a timestamp 3 hours away.
    assert_eq!(
        jb.handle_packet(t0 + MS * 20, &pkt(1, 320 + 172_800_000, 1)),
        Ok(Accepted::HeldForResync)
    );
    // The stream goes on: the stray is counted and forgotten.
    assert_eq!(
        jb.handle_packet(t0 + MS * 40, &pkt(2, 640, 1)),
        Ok(Accepted::Queued)
    );
    assert_eq!(jb.stats().malformed, 1);
    assert_eq!(jb.stats().resyncs, 0);
    // An empty payload is malformed too.
    let empty = AudioPacket::new(3, 960, Codec::Pcm16k, &[]).expect("fits");
    assert_eq!(
        jb.handle_packet(t0 + MS * 60, &empty),
        Err(Discard::Malformed)
    );
    assert_eq!(jb.stats().malformed, 2);
}

#[test]
fn memory_is_bounded_and_overflow_drops_the_oldest() {
    let cfg = JitterConfig {
        max_delay: Duration::from_millis(100),
        start_delay: Duration::from_secs(1),
        ..JitterConfig::default()
    };
    let mut jb = JitterBuffer::new(cfg);
    assert_eq!(jb.capacity(), 5);
    let t0 = Instant::now();
    for k in 0..12u16 {
        let _ = jb.handle_packet(t0, &pkt(k, u32::from(k) * 320, 1));
        assert!(jb.len() <= jb.capacity());
    }
    assert_eq!(jb.stats().overflow, 7);
    // The newest five are kept.
    assert_eq!(
        decoded_ts(jb.poll_playout(t0 + MS * 2000, 0)),
        Some(7 * 320)
    );
}

#[test]
fn target_delay_starts_at_80ms_and_follows_the_network() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    assert_eq!(jb.target_delay(), Duration::from_millis(80));
    let t0 = Instant::now();
    // Clean for 10 s: the target collapses.
    for k in 0..500u32 {
        let now = t0 + MS * (20 * k + 40);
        let _ = jb.handle_packet(now, &pkt(k as u16, k * 320, 1));
        let _ = jb.poll_playout(now, 0);
    }
    assert!(
        jb.target_delay() <= Duration::from_millis(4),
        "{:?}",
        jb.target_delay()
    );
    // Every other packet 50 ms late for 10 s: the target grows to cover it.
    let mut arrivals: Vec<(u32, u32)> = (500..1000u32)
        .map(|k| (20 * k + 40 + if k % 2 == 0 { 50 } else { 0 }, k))
        .collect();
    arrivals.sort();
    for (at, k) in arrivals {
        let now = t0 + MS * at;
        let _ = jb.handle_packet(now, &pkt(k as u16, k * 320, 1));
        let _ = jb.poll_playout(now, 0);
    }
    assert!(
        jb.target_delay() >= Duration::from_millis(50),
        "{:?}",
        jb.target_delay()
    );
}

#[test]
fn decisions_accelerate_above_target_and_expand_below() {
    let mut jb = JitterBuffer::new(eager());
    let t0 = Instant::now();
    for k in 0..20u16 {
        let _ = jb.handle_packet(t0 + MS * 20 * u32::from(k), &pkt(k, u32::from(k) * 320, 1));
    }
    // 20 packets arrived 0..380 ms; the first is needed at 400 ms: far above target.
    match jb.poll_playout(t0 + MS * 400, 0) {
        Playout::Decode { stretch, .. } => {
            assert!(matches!(stretch, Stretch::Accelerate { .. }), "{stretch:?}")
        }
        other => panic!("{other:?}"),
    }
    // With the target raised by jitter and a packet needed right on arrival: expand.
    let cfg = JitterConfig {
        start_delay: Duration::ZERO,
        min_delay: Duration::from_millis(60),
        ..JitterConfig::default()
    };
    let mut jb = JitterBuffer::new(cfg);
    let _ = jb.handle_packet(t0, &pkt(0, 0, 1));
    let _ = jb.handle_packet(t0 + MS * 20, &pkt(1, 320, 1));
    // Packet 0 is needed 60 ms after its arrival: on target.
    assert!(matches!(
        jb.poll_playout(t0 + MS * 60, 0),
        Playout::Decode {
            stretch: Stretch::None,
            ..
        }
    ));
    // Packet 1 needed in the same tick (as after an acceleration): only 40 ms of margin.
    match jb.poll_playout(t0 + MS * 60, 0) {
        Playout::Decode { stretch, .. } => {
            assert!(matches!(stretch, Stretch::Expand { .. }), "{stretch:?}")
        }
        other => panic!("{other:?}"),
    }
}

/// Runs the pipeline over an impaired network with a periodic signal; returns stats and
/// frame infos.
fn run_pipeline(
    profile: &str,
    seconds: u32,
) -> (
    media_core::jitter::JitterStats,
    Vec<media_core::playout::FrameInfo>,
) {
    let p = Profile::named(profile).expect("profile");
    let mut net = Impairment::new(p, 11);
    let mut rx = ReceivePipeline::new(ReceiveConfig::default(), Box::new(TestPcm));
    let t0 = Instant::now();
    let sender = p.sender_clock(t0);
    let frames = seconds * 50;
    let mut infos = Vec::new();
    let mut k = 0u32;
    let mut j = 0u32;
    let mut frame = Pcm16kFrame::silent();
    let mut now = t0;
    while j < frames {
        let next_send = (k < frames).then(|| sender.tick(u64::from(k)));
        let next_rx = t0 + MS * (20 * j + 7);
        let mut next = next_rx;
        if let Some(s) = next_send {
            next = next.min(s);
        }
        if let Some(a) = net.poll_timeout() {
            next = next.min(a);
        }
        now = now.max(next);
        if next_send == Some(now) {
            net.send(now, tone_pkt(k as u16, k * 320));
            k += 1;
        }
        while let Some(pk) = net.poll(now) {
            let _ = rx.handle_packet(now, &pk);
        }
        if now == next_rx {
            infos.push(rx.poll_frame(now, &mut frame));
            j += 1;
        }
    }
    (rx.stats(), infos)
}

#[test]
fn pipeline_converges_from_the_start_delay_by_accelerating() {
    let (s, infos) = run_pipeline("clean", 10);
    assert_eq!(infos.len(), 500);
    assert!(s.removed_samples_for_acceleration > 0);
    assert_eq!(s.late, 0);
    assert_eq!(s.concealed_samples, 0);
    // Media time moves forward by about one frame per tick once playing.
    let active: Vec<_> = infos.iter().filter(|i| i.active).collect();
    for w in active.windows(2) {
        assert!(w[1].media_time >= w[0].media_time);
    }
}

#[test]
fn pipeline_follows_sender_clock_drift_both_ways() {
    // 0.5 % of 60 s is 300 ms = 4800 samples to insert (slow sender) or remove (fast
    // sender), give or take the initial convergence from the 80 ms start delay.
    let (slow, _) = run_pipeline("drift+", 60);
    let net = slow.inserted_samples_for_deceleration as i64
        - slow.removed_samples_for_acceleration as i64;
    assert!(net >= 3_000, "{slow:?}");
    assert_eq!(slow.late, 0);
    let (fast, _) = run_pipeline("drift-", 60);
    let net = fast.removed_samples_for_acceleration as i64
        - fast.inserted_samples_for_deceleration as i64;
    assert!(net >= 4_800, "{fast:?}");
    assert_eq!(fast.late, 0);
}

#[test]
fn pipeline_flags_silence_and_concealment_and_counts_malformed() {
    let mut rx = ReceivePipeline::new(
        ReceiveConfig {
            jitter: eager(),
            ..ReceiveConfig::default()
        },
        Box::new(TestPcm),
    );
    let t0 = Instant::now();
    let mut frame = Pcm16kFrame::silent();
    // Before any packet: inactive filler silence.
    let info = rx.poll_frame(t0, &mut frame);
    assert!(!info.active && info.silence && !info.concealed);
    let mut quiet = pkt(0, 0, 0);
    quiet.silence = true;
    let _ = rx.handle_packet(t0, &quiet);
    let info = rx.poll_frame(t0, &mut frame);
    assert!(info.active && info.silence);
    let _ = rx.handle_packet(t0 + MS * 20, &tone_pkt(1, 320));
    let info = rx.poll_frame(t0 + MS * 20, &mut frame);
    assert!(!info.silence && !info.concealed);
    assert_eq!(info.media_time.samples(), 320);
    // Nothing arrives: concealment.
    let info = rx.poll_frame(t0 + MS * 40, &mut frame);
    assert!(info.concealed);
    assert_eq!(info.concealed_samples, 320);
    // Wrong codec, undecodable payload: counted, never a panic.
    let opus = AudioPacket::new(2, 640, Codec::Opus16k, &[1, 2, 3]).expect("fits");
    assert_eq!(
        rx.handle_packet(t0 + MS * 50, &opus),
        Err(Discard::Malformed)
    );
    let short = AudioPacket::new(2, 640, Codec::Pcm16k, &[1, 2, 3]).expect("fits");
    let _ = rx.handle_packet(t0 + MS * 55, &short);
    let info = rx.poll_frame(t0 + MS * 60, &mut frame);
    assert!(info.concealed);
    let s = rx.stats();
    assert_eq!(s.malformed, 2);
    assert!(s.concealment_events >= 1);
    assert!(s.concealed_samples >= 640);
}

#[test]
fn delay_spike_is_absorbed_without_loss_and_the_delay_comes_back_down() {
    // spike200: the link stalls for 200 ms at 5 s.
    let (s, infos) = run_pipeline("spike200", 15);
    assert_eq!(s.late, 0, "{s:?}");
    // Playout delay of each tick: tick time minus media time of the first sample.
    let delays = |from_s: u32, to_s: u32| -> Vec<f64> {
        let range = (from_s * 50) as usize..(to_s * 50) as usize;
        infos[range.clone()]
            .iter()
            .zip(range)
            .filter(|(i, _)| i.active && !i.concealed)
            .map(|(i, j)| (20 * j + 7) as f64 - i.media_time.samples() as f64 / 16.0)
            .collect()
    };
    let mean = |d: Vec<f64>| d.iter().sum::<f64>() / d.len() as f64;
    let before = mean(delays(3, 5));
    let peak = delays(5, 7).into_iter().fold(0.0, f64::max);
    let after = mean(delays(9, 15));
    assert!(peak > before + 150.0, "before {before} peak {peak}");
    assert!(
        after < before + 10.0,
        "stuck high: before {before} after {after}"
    );
}
