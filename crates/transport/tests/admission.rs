//! Admission on the reactor: unknown, already-joined, invalid and missing joins are
//! refused before any media reaches a call.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use media_core::link::CloseReason;
use transport::CloseCode;
use transport::wire::{
    ControlMessage, Leave, MAX_DATAGRAM_LEN, Reject, RejectCode, encode_control,
};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_session_rejected_and_early_datagrams_dropped() {
    let r = Reactor::start(settings(), &[Uuid::new_v4()]); // some other session

    // A raw peer sends media before joining: none of it reaches a call.
    let (_ep, conn) = r.raw().await;
    assert!(
        conn.max_datagram_size().unwrap() >= MAX_DATAGRAM_LEN,
        "a conforming datagram fits right after the handshake: {:?}",
        conn.max_datagram_size()
    );
    for seq in 0..5 {
        conn.send_datagram(encode(2, seq)).unwrap();
    }
    assert!(
        eventually(WITHIN, || r.server.stats().pre_accept_dropped == 5).await,
        "{:?}",
        r.server.stats()
    );
    let unknown = Uuid::new_v4();
    let (_send, reply) = raw_join(&conn, &join_for(unknown)).await;
    let ControlMessage::Reject(rej) = reply else {
        panic!("expected reject, got {reply:?}")
    };
    assert_eq!(rej.code, RejectCode::UnknownSession);
    assert!(
        rej.message.contains(&unknown.to_string()),
        "{}",
        rej.message
    );
    // The peer does not close: the reactor does, with the Reject in the reason.
    let close = raw_closed(&conn).await;
    assert_eq!(close.error_code, CloseCode::Rejected.to_varint());
    let body: Reject = serde_json::from_slice(&close.reason).unwrap();
    assert_eq!(body, rej);
    r.stats_when(|s| s.rejected == 1).await;

    // A well-behaved peer reads the Reject.
    match r.connect(join_for(Uuid::new_v4())).await {
        Err(PeerError::Rejected(rej)) => assert_eq!(rej.code, RejectCode::UnknownSession),
        other => panic!("expected a reject, got {:?}", other.map(|_| ())),
    }
    let s = r.stats_when(|s| s.rejected == 2).await;
    assert_eq!(
        (s.accepted, s.active, s.pre_accept_dropped),
        (0, 0, 5),
        "{s:?}"
    );
    assert_eq!(r.started_count(), 0, "no call started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_joined_rejected_until_released() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);

    let mut first = r.join(join_for(session)).await;
    match r.connect(join_for(session)).await {
        Err(PeerError::Rejected(rej)) => assert_eq!(rej.code, RejectCode::AlreadyJoined),
        other => panic!("expected AlreadyJoined, got {:?}", other.map(|_| ())),
    }
    r.stats_when(|s| s.rejected == 1).await;
    // The first call is unaffected.
    first.prove_echo(0, 3).await;
    assert!(first.conn().close_reason().is_none());
    assert!(!r.has_ended(session));

    first.leave("done").await;
    let ended = r.ended(session, WITHIN).await;
    let left = CloseReason::PeerLeft {
        reason: "done".into(),
    };
    assert_eq!(ended.reason, left);
    r.assert_released(session, &left).await;
    let second = r.join(join_for(session)).await;
    second.prove_echo(0, 3).await;
    let s = r.stats_when(|s| s.accepted == 2).await;
    assert_eq!((s.rejected, s.active), (1, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_joins_rejected_and_non_join_is_a_protocol_error() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);

    let spoiled = spoiled_joins();
    for (what, spoil, code) in spoiled {
        let mut j = join_for(session);
        spoil(&mut j);
        match r.connect(j).await {
            Err(PeerError::Rejected(rej)) => assert_eq!(rej.code, code, "{what}: {rej:?}"),
            other => panic!("{what}: expected a reject, got {:?}", other.map(|_| ())),
        }
    }
    r.stats_when(|s| s.rejected == spoiled.len() as u64).await;
    // None of these reached the application or started a call.
    assert!(!r.sessions.is_joined(&session));
    assert_eq!(r.started_count(), 0);
    let _ok = r.join(join_for(session)).await;

    // A first message that is not a Join closes the connection with a protocol error.
    let (_ep, conn) = r.raw().await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let leave = encode_control(&ControlMessage::Leave(Leave { reason: "x".into() })).unwrap();
    send.write_all(&leave).await.unwrap();
    let close = raw_closed(&conn).await;
    assert_eq!(close.error_code, CloseCode::ProtocolError.to_varint());
    let reason = String::from_utf8_lossy(&close.reason);
    assert!(reason.contains("leave"), "{reason}");
    let s = r.stats_when(|s| s.join_failed == 1).await;
    assert_eq!(
        (s.rejected, s.accepted, s.handshake_failed),
        (spoiled.len() as u64, 1, 0),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_times_out_at_join() {
    let join_timeout = Duration::from_millis(500);
    let mut s = settings();
    s.join_timeout = join_timeout;
    let r = Reactor::start(s, &[]);
    let t0 = Instant::now();
    let (_ep, conn) = r.raw().await;
    let close = raw_closed(&conn).await;
    let after = t0.elapsed();
    eprintln!("silent peer closed after {after:?} (join timeout {join_timeout:?})");
    assert_eq!(close.error_code, CloseCode::JoinTimeout.to_varint());
    assert!(
        after >= join_timeout - Duration::from_millis(50)
            && after < join_timeout + Duration::from_secs(2),
        "closed after {after:?}"
    );
    let st = r.stats_when(|s| s.join_failed == 1).await;
    assert_eq!(
        (st.handshake_failed, st.accepted, st.rejected),
        (0, 0, 0),
        "{st:?}"
    );
}
