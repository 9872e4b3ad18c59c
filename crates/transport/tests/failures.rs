//! Failure handling: vanished peers, garbage on the control stream, garbage and
//! floods of datagrams. A misbehaving peer only hurts its own call.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use transport::wire::ControlMessage;
use transport::{CloseReason, KnownSessions, MediaClient, MediaConnection, TransportSettings};
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(5);

/// Exchanges `n` datagrams from `client` to `srv` (paced) and checks all arrive.
async fn prove_alive(client: &MediaConnection, srv: &mut MediaConnection, first_seq: u16, n: u16) {
    let stream = client.accept().streams[0].stream_id;
    let sender = client.sender();
    let send = async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for seq in first_seq..first_seq + n {
            tick.tick().await;
            sender
                .send_datagram(&header(stream, seq), &pcm_frame(stream, seq))
                .unwrap();
        }
    };
    let recv = async {
        for seq in first_seq..first_seq + n {
            let d = tokio::time::timeout(WITHIN, srv.recv_datagram())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(d.header.sequence, seq);
            assert_eq!(&d.payload[..], &pcm_frame(stream, seq)[..]);
        }
    };
    tokio::join!(send, recv);
}

#[test]
fn vanished_peer_detected_within_idle_timeout() {
    let idle = Duration::from_secs(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let registry = Arc::new(KnownSessions::new());
        let session = Uuid::new_v4();
        registry.expect(session);
        let (server, fp) = start_server(
            registry.clone(),
            TransportSettings::default().with_idle_timeout(idle),
        );
        let addr = server.local_addr();

        let peer = VanishingPeer::join(addr, fp, session).await;
        let srv = server.accept().await.unwrap();
        // Let keep-alives run for a while: a live but quiet peer is not "vanished".
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            srv.close_reason().is_none(),
            "quiet peer kept alive by keep-alives"
        );

        peer.vanish();
        let t0 = Instant::now();
        let reason = tokio::time::timeout(Duration::from_secs(10), srv.closed())
            .await
            .unwrap();
        let detected = t0.elapsed();
        eprintln!("vanished peer detected after {detected:?} (idle timeout {idle:?}): {reason}");
        assert_eq!(reason, CloseReason::PeerVanished { idle_timeout: idle });
        assert!(reason.is_failure());
        assert!(
            detected < idle + Duration::from_millis(1000),
            "detected after {detected:?}"
        );
        assert!(eventually(WITHIN, || !registry.is_joined(&session)).await);
        assert!(eventually(WITHIN, || server.stats().active == 0).await);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_datagrams_and_flood_only_hurt_their_own_call() {
    let registry = Arc::new(KnownSessions::new());
    let (good_session, bad_session) = (Uuid::new_v4(), Uuid::new_v4());
    registry.expect(good_session);
    registry.expect(bad_session);
    let (server, fp) = start_server(registry, settings());
    let addr = server.local_addr();

    let good = MediaClient::connect(client_config(addr, fp), join_for(good_session))
        .await
        .unwrap();
    let mut srv_good = server.accept().await.unwrap();

    let (_ep, bad) = raw_connect(addr, fp).await;
    let (_s, _r, _d, reply) = raw_join(&bad, &join_for(bad_session)).await;
    let ControlMessage::Accept(accept) = reply else {
        panic!("{reply:?}")
    };
    let stream = accept.streams[0].stream_id;
    let srv_bad = server.accept().await.unwrap();
    assert_eq!(srv_bad.join().mp_media_session_id, bad_session);

    // Garbage of every kind.
    let oversized_sent = send_garbage(&bad, stream).await;
    eprintln!("bad peer max_datagram_size {:?}", bad.max_datagram_size());
    let expect_garbage = 60 + oversized_sent;
    assert!(
        eventually(WITHIN, || srv_bad.stats().datagrams_received
            >= expect_garbage)
        .await,
        "{:?}",
        srv_bad.stats()
    );
    let s = srv_bad.stats();
    assert_eq!(s.malformed, 30, "{s:?}");
    assert_eq!(s.wrong_version, 20, "{s:?}");
    assert_eq!(s.unknown_stream, 10, "{s:?}");
    assert_eq!(s.oversized, oversized_sent, "{s:?}");
    assert_eq!(s.delivered, 0);
    assert!(
        srv_bad.close_reason().is_none(),
        "bad datagrams do not close the call"
    );

    // A flood (2000 valid datagrams/s on one stream, 10x the limit) while the good
    // call sends its 50 frames at the real 50/s pace.
    let flood = flood(&bad, stream);
    tokio::join!(flood, prove_alive(&good, &mut srv_good, 0, 50));

    assert!(eventually(WITHIN, || srv_bad.stats().flood_dropped > 0).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = srv_bad.stats();
    eprintln!("bad call after flood: {s:?}");
    let accepted_by_limit = s.delivered + s.queue_full_dropped;
    // Burst 100 + 200/s over ~1 s, with some slack for timing.
    assert!(accepted_by_limit <= 100 + 200 * 2, "{s:?}");
    assert!(s.flood_dropped >= 1000, "{s:?}");
    assert_eq!(
        s.datagrams_received,
        s.inbound_dropped() + s.delivered,
        "every datagram accounted for"
    );
    let g = srv_good.stats();
    eprintln!("good call: {g:?}");
    assert_eq!(g.delivered, 50);
    assert_eq!(g.inbound_dropped(), 0);
    assert!(srv_good.close_reason().is_none() && srv_bad.close_reason().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_control_stream_closes_only_that_call() {
    let registry = Arc::new(KnownSessions::new());
    let sessions: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for s in &sessions {
        registry.expect(*s);
    }
    let (server, fp) = start_server(registry.clone(), settings());
    let addr = server.local_addr();
    let good = MediaClient::connect(client_config(addr, fp), join_for(sessions[0]))
        .await
        .unwrap();
    let mut srv_good = server.accept().await.unwrap();

    let cases = control_garbage(sessions[0]);
    for ((what, garbage), session) in cases.iter().zip(&sessions[1..]) {
        let (_ep, bad) = raw_connect(addr, fp).await;
        let (mut send, _recv, _dec, reply) = raw_join(&bad, &join_for(*session)).await;
        assert!(matches!(reply, ControlMessage::Accept(_)));
        let srv_bad = server.accept().await.unwrap();
        send.write_all(garbage).await.unwrap();
        let reason = tokio::time::timeout(WITHIN, srv_bad.closed())
            .await
            .unwrap();
        eprintln!("{what}: server side {reason}");
        assert!(
            matches!(&reason, CloseReason::ProtocolError { by_peer: false, .. }),
            "{what}: {reason:?}"
        );
        match tokio::time::timeout(WITHIN, bad.closed()).await.unwrap() {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(
                    c.error_code,
                    transport::CloseCode::ProtocolError.to_varint()
                );
            }
            other => panic!("{what}: unexpected {other:?}"),
        }
        assert!(eventually(WITHIN, || !registry.is_joined(session)).await);
    }
    assert!(srv_good.close_reason().is_none());
    prove_alive(&good, &mut srv_good, 0, 10).await;
    assert_eq!(server.stats().active, 1);
}
