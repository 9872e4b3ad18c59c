//! Session admission, failure handling, control events, pacing, health and bad input.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use harness::peer::join_for;
use harness::{Peer, PeerError};
use media_core::packet::AudioPacket;
use platform::{
    ActiveSpeakers, AudioEvent, Codec, Control, DtmfTone, FrameDelivery, Health, IdlePolicy,
    Incoming, MediaPlatform, Pcm16kFrame, PlatformError, SendStatus,
};
use transport::ConnectError;
use transport::wire::RejectCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_and_second_joins_are_rejected() {
    let platform = start();
    let (blob, _socket) = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    // A session id nobody registered.
    let mut join = join_for(&blob, vec![Codec::Pcm16k]);
    join.mp_media_session_id = uuid::Uuid::new_v4();
    let cfg = peer_config(&platform, Codec::Pcm16k, 1.0, 1.0);
    let err = Peer::connect_join(platform.local_addr(), join, cfg.clone())
        .await
        .unwrap_err();
    match err {
        PeerError::Connect(ConnectError::Rejected(r)) => {
            assert_eq!(r.code, RejectCode::UnknownSession, "{r}")
        }
        other => panic!("expected a reject, got {other}"),
    }
    // The registered one joins once; a second concurrent join is refused.
    let first = Peer::connect(&blob, cfg.clone()).await.unwrap();
    let err = Peer::connect(&blob, cfg).await.unwrap_err();
    assert!(
        matches!(&err, PeerError::Connect(ConnectError::Rejected(r)) if r.code == RejectCode::AlreadyJoined),
        "{err}"
    );
    first.leave().await;
    assert_eq!(platform.server_stats().rejected, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_peer_raises_media_stream_failure_and_frees_the_session() {
    let platform = start();
    let (blob, mut socket) = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    // The peer outlives the processor's 2 s idle timeout; its packets pass a relay
    // that the test cuts: it vanishes without a goodbye, as on a network loss.
    let mut cfg = peer_config(&platform, Codec::Pcm16k, 30.0, 30.0);
    cfg.transport =
        transport::TransportSettings::default().with_idle_timeout(Duration::from_secs(30));
    cfg.via_relay = true;
    let peer = Peer::connect(&blob, cfg).await.unwrap();
    // Audio flows for a while.
    let mut frames = 0;
    while frames < 25 {
        if let Some(Incoming::Frame(_)) = socket.recv().await {
            frames += 1;
        }
    }
    assert_eq!(platform.connected_count(), 1);
    assert!(peer.cut_network());
    let t0 = std::time::Instant::now();
    let failure = tokio::time::timeout(Duration::from_secs(8), async {
        while let Some(e) = socket.next_event().await {
            if let AudioEvent::MediaStreamFailure { reason } = e {
                return Some(reason);
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("media stream failure");
    eprintln!("vanished peer reported after {:?}: {failure}", t0.elapsed());
    assert!(
        matches!(failure, platform::CloseReason::PeerVanished { .. }),
        "{failure}"
    );
    assert!(eventually(Duration::from_secs(2), || platform.session_count() == 0).await);
    assert_eq!(socket.send_status(), SendStatus::Inactive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_speakers_and_qoe() {
    let platform = start();
    let (blob, mut socket) = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    let mut peer = Peer::connect(&blob, peer_config(&platform, Codec::Pcm16k, 3.0, 3.0))
        .await
        .unwrap();
    peer.send_dtmf(DtmfTone::Pound, 80).unwrap();
    peer.send_control(Control::DominantSpeaker(Some(7)))
        .unwrap();
    peer.send_control(Control::ActiveSpeakers(ActiveSpeakers::from_slice(&[7, 9])))
        .unwrap();
    let mut seen = (false, false, false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !(seen.0 && seen.1 && seen.2 && seen.3) && tokio::time::Instant::now() < deadline {
        match socket.recv().await.unwrap() {
            Incoming::Event(AudioEvent::ToneReceived { tone, duration_ms }) => {
                assert_eq!((tone, duration_ms), (DtmfTone::Pound, 80));
                seen.0 = true;
            }
            Incoming::Event(AudioEvent::DominantSpeakerChanged { current, previous }) => {
                assert_eq!((current, previous), (Some(7), None));
                seen.1 = true;
            }
            Incoming::Event(AudioEvent::ActiveSpeakersChanged(s)) => {
                assert_eq!(s.as_slice(), &[7, 9]);
                seen.2 = true;
            }
            Incoming::Frame(f) if seen.2 => {
                assert_eq!(f.active_speakers.as_slice(), &[7, 9]);
                seen.3 = true;
            }
            _ => {}
        }
    }
    assert_eq!(seen, (true, true, true, true));
    socket.send_dtmf(DtmfTone::Tone5, 100).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match peer.next_event().await {
                Some(AudioEvent::ToneReceived { tone, duration_ms }) => {
                    return Some((tone, duration_ms));
                }
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, Some((DtmfTone::Tone5, 100)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let q = socket.qoe();
    eprintln!("QoE after ~1.5 s: {q:?}");
    assert!(q.packets_received >= 40, "{q:?}");
    assert!(q.packets_sent >= 40, "{q:?}");
    assert!(q.rtt_ms > 0.0 && q.rtt_ms < 100.0, "{q:?}");
    assert!(q.loss_pct < 5.0, "{q:?}");
    assert!(q.jitter_buffer.packets_received >= 40);
    peer.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_50_frames_leaves_paced_at_20_ms() {
    let mut s = settings();
    s.pacer.idle = IdlePolicy::Pause;
    s.pacer.low_on_frames = 10;
    s.pacer.prebuffer_frames = 1;
    let platform = MediaPlatform::start(s).unwrap();
    let (blob, mut socket) = platform
        .create_media_configuration_with(uuid::Uuid::new_v4(), FrameDelivery::Channel(1))
        .unwrap();
    let mut cfg = peer_config(&platform, Codec::Pcm16k, 0.0, 2.5);
    cfg.log_arrivals = true;
    let peer = Peer::connect(&blob, cfg).await.unwrap();
    // Wait for Active, then enqueue one second of audio in one go.
    loop {
        if let Some(Incoming::Event(AudioEvent::SendStatusChanged(SendStatus::Active))) =
            socket.recv().await
        {
            break;
        }
    }
    let mut g =
        harness::signal::SignalGenerator::new(harness::signal::SignalKind::Tone(440.0, 0.3), 0);
    let mut frames = Vec::new();
    for _ in 0..50 {
        let mut f = [0i16; 320];
        g.fill(&mut f);
        frames.push(Pcm16kFrame::new(f));
    }
    assert_eq!(socket.sender().enqueue_all(&frames), 50);
    let mut low = None;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1600);
    while low.is_none() && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Incoming::Event(AudioEvent::LowOnFrames { remaining }))) =
            tokio::time::timeout(Duration::from_millis(100), socket.recv()).await
        {
            low = Some(remaining);
        }
    }
    let report = peer.finish().await;
    let a = &report.arrivals;
    assert_eq!(a.len(), 50, "exactly the 50 queued frames arrive");
    for w in a.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "in order");
        assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(320));
    }
    let gaps: Vec<f64> = a
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64() * 1000.0)
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let (min, max) = gaps
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &g| (lo.min(g), hi.max(g)));
    let span = (a[49].at - a[0].at).as_secs_f64() * 1000.0;
    eprintln!(
        "paced burst: 50 packets over {span:.1} ms, spacing mean {mean:.2} ms, min {min:.2}, max {max:.2}; LowOnFrames at {low:?}"
    );
    assert!(
        span > 49.0 * 20.0 * 0.8,
        "spread over ~1 s, not a burst: {span} ms"
    );
    let low = low.expect("LowOnFrames fired");
    assert!(low < Duration::from_millis(200), "{low:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_and_capacity_refuse_new_sessions() {
    let mut s = settings();
    s.health.window = Duration::from_millis(100);
    s.health.recover_windows = 2;
    s.limits.max_sessions = 2;
    let platform = MediaPlatform::start(s).unwrap();
    let mut health = platform.subscribe_health();
    assert_eq!(platform.health(), Health::Normal);
    // Capacity: two sessions, the third is refused.
    let a = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    let _b = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    assert!(matches!(
        platform.create_media_configuration(uuid::Uuid::new_v4()),
        Err(PlatformError::AtCapacity { max: 2 })
    ));
    drop(a);
    assert_eq!(platform.session_count(), 1);
    // Overload: inject ten seconds of tick work into one 100 ms window (test hook:
    // the health task evaluates it exactly like measured tick time).
    platform.inject_load(Duration::from_secs(10));
    tokio::time::timeout(
        Duration::from_secs(2),
        health.wait_for(|r| r.health == Health::Overloaded),
    )
    .await
    .unwrap()
    .unwrap();
    let report = platform.health_report();
    eprintln!("overloaded: {report:?}");
    assert!(matches!(
        platform.create_media_configuration(uuid::Uuid::new_v4()),
        Err(PlatformError::Overloaded)
    ));
    // With the load gone health recovers and sessions are created again.
    tokio::time::timeout(
        Duration::from_secs(2),
        health.wait_for(|r| r.health == Health::Normal),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        platform
            .create_media_configuration(uuid::Uuid::new_v4())
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_one_peer_does_not_disturb_another_call() {
    let _serial = CPU_HEAVY.lock().await;
    let platform = start();
    let (blob_a, socket_a) = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    let (blob_b, socket_b) = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    let bot_a = spawn_echo_bot(socket_a);
    let bot_b = spawn_echo_bot(socket_b);
    let bad = Peer::connect(&blob_a, peer_config(&platform, Codec::Pcm16k, 0.5, 10.0))
        .await
        .unwrap();
    let good = Peer::connect(&blob_b, peer_config(&platform, Codec::Pcm16k, 4.0, 5.0))
        .await
        .unwrap();
    // Call A's peer sends well-framed nonsense on its stream besides its audio: the
    // wrong codec, random "Opus", absurd sequence numbers and timestamps, silence with
    // no payload, all of which reach the processor's jitter buffer.
    let mut x: u32 = 12345;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..300u32 {
        tick.tick().await;
        let len = 1 + (rnd() % 900) as usize;
        let payload: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        let (seq, ts) = (rnd() as u16, rnd());
        let mut opus = AudioPacket::new(seq, ts, Codec::Opus16k, &payload).unwrap();
        opus.marker = rnd() % 2 == 0;
        let mut silent = AudioPacket::new(seq, ts, Codec::Pcm16k, &[]).unwrap();
        silent.silence = true;
        let loud = AudioPacket::new(seq, ts, Codec::Pcm16k, &[0x7f; 640]).unwrap();
        for p in [opus, silent, loud] {
            let _ = bad.inject(p);
        }
    }
    let report = good.finish().await;
    // The garbage call is still up and its bot still gets frames.
    assert!(bad.is_connected(), "bad call still connected");
    let bad_report = bad.leave().await;
    assert!(bad_report.stats.packets_received > 100);
    let a = bot_a.await.unwrap();
    let b = bot_b.await.unwrap();
    assert!(
        a.frames > 100 && b.frames > 200,
        "{} {}",
        a.frames,
        b.frames
    );
    // Isolation by the counters: call A's transport dropped garbage, call B saw none
    // of it (nothing dropped, discarded, duplicated or malformed on its side).
    eprintln!("garbage call, processor side: {:?}", a.qoe);
    eprintln!("clean call, processor side: {:?}", b.qoe);
    assert!(a.qoe.inbound_dropped > 0, "{:?}", a.qoe);
    let jb = &b.qoe.jitter_buffer;
    assert_eq!(b.qoe.inbound_dropped, 0, "{:?}", b.qoe);
    assert_eq!(
        (jb.packets_discarded, jb.duplicate, jb.malformed),
        (0, 0, 0),
        "{jb:?}"
    );
    // Isolation by the audio: call B's echo is the clean signal. Tests of this binary
    // run in parallel on a debug build: a stalled task makes a jitter buffer conceal
    // or stretch, which shifts the rest of the echo without any audio being
    // disturbed. So each 250 ms segment is aligned on its own (following the
    // timeline), and a segment may miss only where a jitter buffer on the call's
    // path recorded such a timing event.
    let delay = report.echo_delay(Duration::from_secs(1)).expect("echo");
    let corr = report.echo_correlation(delay, Duration::from_millis(3500));
    let segments = report.echo_segment_correlations(delay, Duration::from_millis(3500));
    let clean = segments.iter().filter(|&&c| c >= 0.9).count();
    let excused = timing_events(&report.stats.jitter) + timing_events(jb);
    eprintln!("clean call, peer side: {:?}", report.stats);
    eprintln!(
        "clean call next to a garbage peer: whole-call correlation {corr:.4}, \
         {clean} of {} segments >= 0.9, {excused} timing events, latency {delay:?}",
        segments.len()
    );
    let allowed = segments.len() / 10 + excused as usize;
    assert!(
        clean + allowed >= segments.len(),
        "only {clean} of {} segments echo cleanly with {excused} timing events: \
         {segments:?}",
        segments.len()
    );
}

/// Health's load comes from measurement: with one echo call running, the windows show
/// ticks and a small, non-zero load (the reactor threads' whole busy time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_load_is_measured_while_a_call_runs() {
    let mut s = settings();
    s.health.window = Duration::from_millis(200);
    // This test is about the load figure. The late-tick share is left out of the
    // health level: on a shared 2-core machine under a parallel build, ticks do start
    // late (6-12 % of a window was seen), and the platform rightly says so; that path
    // has its own tests (health.rs).
    s.health.min_ticks = u64::MAX;
    let platform = MediaPlatform::start(s).unwrap();
    let (blob, socket) = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    let bot = spawn_echo_bot(socket);
    let peer = Peer::connect(&blob, peer_config(&platform, Codec::Pcm16k, 2.0, 2.5))
        .await
        .unwrap();
    let mut health = platform.subscribe_health();
    // Copied out in one statement: the watch guard must not outlive it (it would
    // block the health task's next send).
    let report = *tokio::time::timeout(
        Duration::from_secs(3),
        health.wait_for(|r| r.ticks >= 5 && r.load > 0.0),
    )
    .await
    .expect("a window with the call's ticks and load")
    .unwrap();
    eprintln!("{report:?}");
    assert!(report.load < 0.5, "one call is a small load: {report:?}");
    assert_eq!(report.health, Health::Normal);
    peer.finish().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), bot).await;
}
