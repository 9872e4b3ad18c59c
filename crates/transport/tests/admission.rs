//! Admission: unknown, already-joined and wrong-version joins are rejected before any
//! media is processed.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use transport::wire::{ControlMessage, Reject, RejectCode};
use transport::{CloseReason, ConnectError, KnownSessions, MediaClient};
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_session_rejected_and_early_datagrams_dropped() {
    let registry = Arc::new(KnownSessions::new());
    registry.expect(Uuid::new_v4()); // some other session
    let (server, fp) = start_server(registry, settings());
    let addr = server.local_addr();

    // A raw peer sends media before joining: none of it may be processed.
    let (_ep, conn) = raw_connect(addr, fp).await;
    eprintln!(
        "max_datagram_size right after the handshake: {:?}",
        conn.max_datagram_size()
    );
    assert!(conn.max_datagram_size().unwrap() >= transport::wire::MAX_DATAGRAM_LEN);
    for seq in 0..5 {
        conn.send_datagram(encode(1, seq)).unwrap();
    }
    assert!(
        eventually(WITHIN, || server.stats().pre_accept_dropped == 5).await,
        "early datagrams counted: {:?}",
        server.stats()
    );
    let unknown = Uuid::new_v4();
    let (_send, _recv, _dec, reply) = raw_join(&conn, &join_for(unknown)).await;
    let ControlMessage::Reject(r) = reply else {
        panic!("expected reject, got {reply:?}")
    };
    assert_eq!(r.code, RejectCode::UnknownSession);
    assert!(r.message.contains(&unknown.to_string()), "{}", r.message);
    // The server closes the connection (we did not), with the Reject in the reason.
    let err = tokio::time::timeout(WITHIN, conn.closed()).await.unwrap();
    match err {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, transport::CloseCode::Rejected.to_varint());
            let body: Reject = serde_json::from_slice(&c.reason).unwrap();
            assert_eq!(body.code, RejectCode::UnknownSession);
        }
        other => panic!("unexpected close {other:?}"),
    }

    // The library client surfaces a typed error.
    let err = MediaClient::connect(client_config(addr, fp), join_for(Uuid::new_v4()))
        .await
        .unwrap_err();
    match err {
        ConnectError::Rejected(r) => assert_eq!(r.code, RejectCode::UnknownSession),
        other => panic!("expected Rejected, got {other}"),
    }
    let s = server.stats();
    assert_eq!((s.rejected, s.accepted, s.active), (2, 0, 0));
    assert_eq!(s.pre_accept_dropped, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_joined_rejected_until_released() {
    let registry = Arc::new(KnownSessions::new());
    let session = Uuid::new_v4();
    registry.expect(session);
    let (server, fp) = start_server(registry.clone(), settings());
    let addr = server.local_addr();

    let first = MediaClient::connect(client_config(addr, fp), join_for(session))
        .await
        .unwrap();
    let srv_first = server.accept().await.unwrap();

    let err = MediaClient::connect(client_config(addr, fp), join_for(session))
        .await
        .unwrap_err();
    match err {
        ConnectError::Rejected(r) => assert_eq!(r.code, RejectCode::AlreadyJoined),
        other => panic!("expected AlreadyJoined, got {other}"),
    }
    // The first call is unaffected.
    assert!(srv_first.close_reason().is_none());
    first
        .send_datagram(&header(1, 0), &pcm_frame(1, 0))
        .unwrap();
    let mut srv_first = srv_first;
    assert_eq!(srv_first.recv_datagram().await.unwrap().header.sequence, 0);

    first.close("done");
    assert!(matches!(
        srv_first.closed().await,
        CloseReason::PeerLeft { .. }
    ));
    assert!(eventually(WITHIN, || !registry.is_joined(&session)).await);
    let _second = MediaClient::connect(client_config(addr, fp), join_for(session))
        .await
        .unwrap();
    assert_eq!(server.stats().accepted, 2);
    assert_eq!(server.stats().rejected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_joins_rejected() {
    let registry = Arc::new(KnownSessions::new());
    let session = Uuid::new_v4();
    registry.expect(session);
    let (server, fp) = start_server(registry.clone(), settings());
    let addr = server.local_addr();

    let spoiled = spoiled_joins();
    for (what, spoil, code) in spoiled {
        let mut j = join_for(session);
        spoil(&mut j);
        let err = MediaClient::connect(client_config(addr, fp), j)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ConnectError::Rejected(r) if r.code == code),
            "{what}: {err}"
        );
    }

    // None of these took the session.
    assert!(!registry.is_joined(&session));
    let _ok = MediaClient::connect(client_config(addr, fp), join_for(session))
        .await
        .unwrap();

    // A first message that is not a Join closes the connection with a protocol error.
    let (_ep, conn) = raw_connect(addr, fp).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let leave = transport::wire::encode_control(&ControlMessage::Leave(transport::wire::Leave {
        reason: "x".into(),
    }))
    .unwrap();
    send.write_all(&leave).await.unwrap();
    match tokio::time::timeout(WITHIN, conn.closed()).await.unwrap() {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(
                c.error_code,
                transport::CloseCode::ProtocolError.to_varint()
            );
            eprintln!("close reason: {}", String::from_utf8_lossy(&c.reason));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(server.stats().join_failed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_times_out_at_join() {
    let registry = Arc::new(KnownSessions::new());
    let mut s = settings();
    s.join_timeout = Duration::from_millis(300);
    let (server, fp) = start_server(registry, s);
    let (_ep, conn) = raw_connect(server.local_addr(), fp).await;
    match tokio::time::timeout(WITHIN, conn.closed()).await.unwrap() {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, transport::CloseCode::JoinTimeout.to_varint());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(server.stats().join_failed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_accept_queue_rejects_as_overloaded() {
    let registry = Arc::new(KnownSessions::new());
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    registry.expect(a);
    registry.expect(b);
    let identity = transport::ServerIdentity::self_signed(&["localhost"]).unwrap();
    let fp = identity.fingerprint();
    let mut cfg = transport::ServerConfig::new(LOOPBACK.parse().unwrap(), identity);
    cfg.accept_queue = 1;
    let server = transport::MediaServer::bind(cfg, registry.clone()).unwrap();
    let addr = server.local_addr();
    // Nobody calls accept(): the first call waits in the queue, the second is refused.
    let _first = MediaClient::connect(client_config(addr, fp), join_for(a))
        .await
        .unwrap();
    let err = MediaClient::connect(client_config(addr, fp), join_for(b))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectError::Rejected(r) if r.code == RejectCode::Overloaded),
        "{err}"
    );
    assert!(
        !registry.is_joined(&b),
        "an overloaded reject does not take the session"
    );
    assert_eq!(server.accept().await.unwrap().join().mp_media_session_id, a);
}
