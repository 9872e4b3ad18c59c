//! Failure handling on the reactor: garbage and floods of datagrams, garbage on the
//! control stream, UDP noise, vanished peers. A misbehaving peer only hurts its own
//! call.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use media_core::link::CloseReason;
use transport::{CloseCode, TransportSettings};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_datagrams_and_flood_only_hurt_their_own_call() {
    let (good_session, bad_session) = (Uuid::new_v4(), Uuid::new_v4());
    let r = Reactor::start(settings(), &[good_session, bad_session]);
    let good = r.join(join_for(good_session)).await;
    let bad = r.join(join_for(bad_session)).await;
    let stream = bad.render();

    // Garbage of every kind, and valid frames on the stream the server sends
    // (assigned, but not one it receives).
    let oversized_sent = send_garbage(bad.conn(), stream).await;
    for seq in 0..10 {
        bad.send_frame(bad.source(), seq);
    }
    let expect_garbage = 70 + oversized_sent;
    assert!(
        eventually(WITHIN, || r.live(bad_session).0.packets_received
            >= expect_garbage)
        .await,
        "{:?}",
        r.live(bad_session)
    );
    let (s, got) = r.live(bad_session);
    assert_eq!(s.malformed, 30, "{s:?}");
    assert_eq!(s.wrong_version, 20, "{s:?}");
    assert_eq!(s.unknown_stream, 20, "{s:?}");
    assert_eq!(s.oversized, oversized_sent, "{s:?}");
    assert_eq!(s.packets_received, expect_garbage, "{s:?}");
    assert_eq!(
        (s.delivered, got),
        (0, 0),
        "nothing reached the call: {s:?}"
    );
    assert!(
        !r.has_ended(bad_session),
        "bad datagrams do not end the call"
    );

    // A flood (2000 valid datagrams/s on one stream, 10x the limit) while the good
    // call sends 50 frames at the real 50/s pace and gets every echo.
    tokio::join!(flood(bad.conn(), stream), good.prove_echo(0, 50));

    assert!(eventually(WITHIN, || r.live(bad_session).0.flood_dropped >= 1000).await);
    let (s, got) = r.live(bad_session);
    eprintln!("bad call after flood: {s:?}");
    // Burst 100 + 200/s over ~1 s, with some slack for timing.
    assert!(s.delivered >= 100 && s.delivered <= 100 + 200 * 2, "{s:?}");
    assert_eq!(s.delivered, got, "what was delivered reached the call");
    assert_eq!(
        s.packets_received,
        s.inbound_dropped() + s.delivered,
        "every datagram accounted for: {s:?}"
    );
    let (g, got) = r.live(good_session);
    eprintln!("good call: {g:?}");
    assert_eq!((g.delivered, got), (50, 50), "{g:?}");
    assert_eq!(g.inbound_dropped(), 0, "{g:?}");
    assert!(good.conn().close_reason().is_none());
    assert!(!r.has_ended(good_session) && !r.has_ended(bad_session));
    assert_eq!(r.server.stats().active, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_control_stream_ends_only_that_call() {
    let sessions: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let r = Reactor::start(settings(), &sessions);
    let good = r.join(join_for(sessions[0])).await;

    let cases = control_garbage(sessions[0]);
    for ((what, garbage), session) in cases.iter().zip(&sessions[1..]) {
        let mut bad = r.join(join_for(*session)).await;
        bad.write_control_bytes(garbage).await;
        let ended = r.ended(*session, WITHIN).await;
        eprintln!("{what}: call ended with {}", ended.reason);
        assert!(
            matches!(
                &ended.reason,
                CloseReason::ProtocolError { by_peer: false, .. }
            ),
            "{what}: {:?}",
            ended.reason
        );
        let close = bad.app_closed().await;
        assert_eq!(
            close.error_code,
            CloseCode::ProtocolError.to_varint(),
            "{what}"
        );
        r.assert_released(*session, &ended.reason).await;
    }
    assert!(good.conn().close_reason().is_none());
    assert!(!r.has_ended(sessions[0]));
    good.prove_echo(0, 10).await;
    assert!(eventually(WITHIN, || r.server.stats().active == 1).await);
}

/// Raw UDP noise on the reactor's port (not QUIC at all: random bytes of every size,
/// short headers that look like QUIC, long headers with unknown versions) is dropped
/// by the endpoint; a call in progress keeps echoing and nothing panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_noise_on_the_port_leaves_calls_alone() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let peer = r.join(join_for(session)).await;
    let target = r.addr();
    let noise = std::thread::spawn(move || {
        let sock = std::net::UdpSocket::bind(LOOPBACK).unwrap();
        let mut x: u32 = 0x9e37_79b9;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for i in 0..3000u32 {
            let len = (next() % 1500) as usize + 1;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            match i % 3 {
                0 => buf[0] = 0x40 | (buf[0] & 0x3f), // short header, random CID
                1 => {
                    buf[0] = 0xc0 | (buf[0] & 0x3f); // long header, odd version
                    if len >= 5 {
                        buf[1..5].copy_from_slice(&next().to_be_bytes());
                    }
                }
                _ => {}
            }
            let _ = sock.send_to(&buf, target);
        }
    });
    peer.prove_echo(0, 50).await;
    noise.join().unwrap();
    peer.prove_echo(50, 10).await;
    let s = r.server.stats();
    assert_eq!((s.accepted, s.active), (1, 1), "{s:?}");
    assert!(
        r.server.io_stats().datagrams_in > 3000 / 2,
        "the noise was read"
    );
    assert!(peer.conn().close_reason().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_peer_detected_within_idle_timeout() {
    let idle = Duration::from_secs(1);
    let session = Uuid::new_v4();
    let r = Reactor::start(
        TransportSettings::default().with_idle_timeout(idle),
        &[session],
    );

    let peer = VanishingPeer::join(r.addr(), r.fp, session).await;
    // A live but quiet peer is kept by the reactor's keep-alives, beyond the idle
    // timeout.
    tokio::time::sleep(idle + idle / 2).await;
    assert!(
        !r.has_ended(session),
        "quiet peer kept alive by keep-alives"
    );

    peer.vanish();
    let t0 = Instant::now();
    let ended = r.ended(session, Duration::from_secs(10)).await;
    let detected = t0.elapsed();
    eprintln!(
        "vanished peer detected after {detected:?} (idle timeout {idle:?}): {}",
        ended.reason
    );
    let vanished = CloseReason::PeerVanished { idle_timeout: idle };
    assert_eq!(ended.reason, vanished);
    assert!(ended.reason.is_failure());
    // The idle timer fired: not at once, and not much later than the timeout.
    assert!(
        detected >= idle / 2 && detected < idle + Duration::from_millis(1500),
        "detected after {detected:?}"
    );
    r.assert_released(session, &vanished).await;
    assert!(eventually(WITHIN, || r.server.stats().active == 0).await);
}
