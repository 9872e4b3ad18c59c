//! TLS on the reactor: development certificates, fingerprint pinning, PEM files, CA
//! trust, and how failed handshakes are counted.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use transport::{
    CertFingerprint, KnownSessions, ServerConfig, ServerIdentity, ServerTrust, quic_client_config,
};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_fingerprint_accepted_wrong_one_fails_handshake() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    eprintln!("dev certificate fingerprint: {}", r.fp);

    // A wrong pin (one bit off), and the pin of another certificate: the handshake
    // fails, no join is ever sent, and the server counts a failed handshake.
    let mut one_bit_off = r.fp.0;
    one_bit_off[0] ^= 1;
    let other = ServerIdentity::self_signed(&["localhost"])
        .unwrap()
        .fingerprint();
    for (n, wrong) in [CertFingerprint(one_bit_off), other]
        .into_iter()
        .enumerate()
    {
        let cfg = peer_config(r.addr(), wrong);
        let err = match QuicPeer::connect(&cfg, join_for(session)).await {
            Err(e @ PeerError::Connection(_)) => e,
            other => panic!("expected a failed handshake, got {:?}", other.map(|_| ())),
        };
        eprintln!("wrong fingerprint: {err}");
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
        assert!(
            eventually(WITHIN, || r.server.stats().handshake_failed == n as u64 + 1).await,
            "{:?}",
            r.server.stats()
        );
    }
    let s = r.server.stats();
    assert_eq!((s.join_failed, s.accepted, s.rejected), (0, 0, 0), "{s:?}");
    assert!(!r.sessions.is_joined(&session));

    // The right pin, parsed from its text form (as a config file holds it).
    let parsed: CertFingerprint = r.fp.to_string().parse().unwrap();
    let peer = QuicPeer::connect(&peer_config(r.addr(), parsed), join_for(session))
        .await
        .unwrap();
    peer.prove_echo(0, 3).await;
    assert_eq!(r.server.stats().accepted, 1);
    assert_eq!(r.server.stats().handshake_failed, 2);
}

/// A join deadline that passes before the QUIC handshake completed counts as
/// `handshake_failed`, not `join_failed` (a regression test: the reactor once counted
/// every expired join deadline as `join_failed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshake_counts_as_handshake_failure() {
    let join_timeout = Duration::from_millis(300);
    let mut s = settings();
    s.join_timeout = join_timeout;
    let r = Reactor::start(s, &[]);
    let addr = r.addr();
    // A client that sends its first Initial and then nothing: the TLS handshake
    // never completes. (quinn_proto directly, to stop after one packet.)
    let mut ep = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        true,
        None,
    );
    let cfg = quic_client_config(&ServerTrust::pinned(r.fp), &settings()).unwrap();
    let (_ch, mut conn) = ep.connect(Instant::now(), cfg, addr, "localhost").unwrap();
    let mut buf = Vec::new();
    let t = conn.poll_transmit(Instant::now(), 1, &mut buf).unwrap();
    let socket = std::net::UdpSocket::bind(LOOPBACK).unwrap();
    socket.send_to(&buf[..t.size], addr).unwrap();
    assert!(
        eventually(WITHIN, || {
            let s = r.server.stats();
            s.handshake_failed + s.join_failed > 0
        })
        .await,
        "{:?}",
        r.server.stats()
    );
    let s = r.server.stats();
    assert_eq!((s.handshake_failed, s.join_failed), (1, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pem_files_and_ca_trust() {
    let dir = std::env::temp_dir().join(format!("transport-tls-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("mp.pem"), dir.join("mp.key"));
    ServerIdentity::self_signed(&["localhost"])
        .unwrap()
        .write_pem_files(&cert, &key)
        .unwrap();

    let sessions: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let registry = Arc::new(KnownSessions::new());
    for s in &sessions {
        registry.expect(*s);
    }
    let identity = ServerIdentity::from_pem_files(&cert, &key).unwrap();
    let fp = identity.fingerprint();
    let r = Reactor::bind(
        ServerConfig::new(LOOPBACK.parse().unwrap(), identity),
        registry,
        1,
        Vec::new(),
        fp,
    );

    // Pin the certificate file.
    let mut cfg = peer_config(r.addr(), CertFingerprint([0; 32]));
    cfg.trust = ServerTrust::pinned_cert_file(&cert).unwrap();
    let peer = QuicPeer::connect(&cfg, join_for(sessions[0]))
        .await
        .unwrap();
    peer.prove_echo(0, 3).await;

    // Trust it as a root: the name is checked.
    cfg.trust = ServerTrust::ca_file(&cert).unwrap();
    cfg.server_name = "localhost".into();
    let peer = QuicPeer::connect(&cfg, join_for(sessions[1]))
        .await
        .unwrap();
    peer.prove_echo(0, 3).await;

    cfg.server_name = "elsewhere.example".into();
    let err = match QuicPeer::connect(&cfg, join_for(sessions[2])).await {
        Err(e @ PeerError::Connection(_)) => e,
        other => panic!("expected a failed handshake, got {:?}", other.map(|_| ())),
    };
    eprintln!("wrong name: {err}");
    assert!(!r.sessions.is_joined(&sessions[2]));
    assert!(
        eventually(WITHIN, || r.server.stats().handshake_failed == 1).await,
        "{:?}",
        r.server.stats()
    );
    assert_eq!(r.server.stats().accepted, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
