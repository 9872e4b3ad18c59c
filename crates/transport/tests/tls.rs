//! TLS: development certificates, fingerprint pinning, PEM files, CA trust.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use transport::{
    CertFingerprint, ConnectError, KnownSessions, MediaClient, MediaServer, ServerConfig,
    ServerIdentity, ServerTrust,
};
use uuid::Uuid;

fn registry_with(session: Uuid) -> Arc<KnownSessions> {
    let r = Arc::new(KnownSessions::new());
    r.expect(session);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_fingerprint_accepted_wrong_one_fails_handshake() {
    let session = Uuid::new_v4();
    let (server, fp) = start_server(registry_with(session), settings());
    let addr = server.local_addr();
    eprintln!("dev certificate fingerprint: {fp}");

    // Wrong pin: the handshake fails, no join is ever sent.
    let mut wrong = fp.0;
    wrong[0] ^= 1;
    let err = MediaClient::connect(
        client_config(addr, CertFingerprint(wrong)),
        join_for(session),
    )
    .await
    .unwrap_err();
    eprintln!("wrong fingerprint: {err}");
    assert!(matches!(err, ConnectError::Connection(_)), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(
        eventually(std::time::Duration::from_secs(5), || server
            .stats()
            .handshake_failed
            == 1)
        .await
    );
    assert_eq!(server.stats().accepted, 0);

    // Right pin (parsed from its text form, as a config file would hold it).
    let parsed: CertFingerprint = fp.to_string().parse().unwrap();
    let link = MediaClient::connect(client_config(addr, parsed), join_for(session))
        .await
        .unwrap();
    assert_eq!(link.join().mp_media_session_id, session);
    assert_eq!(server.stats().accepted, 1);
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

    let session = Uuid::new_v4();
    let identity = ServerIdentity::from_pem_files(&cert, &key).unwrap();
    let server = MediaServer::bind(
        ServerConfig::new(LOOPBACK.parse().unwrap(), identity),
        registry_with(session),
    )
    .unwrap();
    let addr = server.local_addr();

    // Pin the certificate file.
    let mut cfg = client_config(addr, CertFingerprint([0; 32]));
    cfg.trust = ServerTrust::pinned_cert_file(&cert).unwrap();
    let link = MediaClient::connect(cfg, join_for(session)).await.unwrap();
    link.close("next");
    link.closed().await;
    let _ = server.accept().await.unwrap().closed().await;

    // Trust it as a root: the name is checked.
    let mut cfg = client_config(addr, CertFingerprint([0; 32]));
    cfg.trust = ServerTrust::ca_file(&cert).unwrap();
    cfg.server_name = "localhost".into();
    let link = MediaClient::connect(cfg.clone(), join_for(session)).await;
    eprintln!(
        "self-signed certificate as root: {:?}",
        link.as_ref().map(|_| "ok")
    );
    link.unwrap();

    cfg.server_name = "elsewhere.example".into();
    let err = MediaClient::connect(cfg, join_for(Uuid::new_v4()))
        .await
        .unwrap_err();
    eprintln!("wrong name: {err}");
    assert!(matches!(err, ConnectError::Connection(_)), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
