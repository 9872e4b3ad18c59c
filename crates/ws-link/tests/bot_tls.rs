//! `wss://` bots: a real TLS WebSocket server on 127.0.0.1 (tokio-rustls, a self-signed
//! certificate made by rcgen) echoing a Vonage stream, reached by `forward()` through
//! the CA option; without it the certificate is refused by name, and a bad CA file is
//! refused naming the file.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use platform::FrameDelivery;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use ws_link::{BotCallInfo, BotLinkConfig, BotLinkError, Dialect, WsConfig};

/// A TLS WebSocket bot on 127.0.0.1 that echoes binary (Vonage L16) messages; its
/// URL and the PEM file of its self-signed certificate.
async fn tls_echo_bot() -> (String, PathBuf) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("certificate");
    let ca = std::env::temp_dir().join(format!("ws-link-bot-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, cert.pem()).expect("write CA file");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("wss://{}/bot", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client refusing the certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_binary() && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (url, ca)
}

fn tone(k: usize) -> Vec<u8> {
    (0..320)
        .flat_map(|i| {
            let t = (k * 320 + i) as f64 / 16_000.0;
            (((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 8000.0) as i16).to_le_bytes()
        })
        .collect()
}

#[test]
fn a_call_is_forwarded_to_a_wss_bot_trusted_through_the_ca_file() {
    let rt = common::rt();
    rt.block_on(async {
        let (url, ca) = tls_echo_bot().await;
        let mut trusted = BotLinkConfig::new(url.clone(), Dialect::Vonage);
        trusted.validate().expect("wss:// is valid");
        trusted.trust_ca_file(&ca).expect("the CA file");
        let untrusted = BotLinkConfig::new(url, Dialect::Vonage);
        let (results, mut outcome) = mpsc::unbounded_channel();
        let (server, mut incoming, _platform) =
            common::endpoint(WsConfig::default(), |_| FrameDelivery::Channel(50)).await;
        tokio::spawn(async move {
            let mut n = 0;
            while let Some(call) = incoming.recv().await {
                let config = if n == 0 {
                    trusted.clone()
                } else {
                    untrusted.clone()
                };
                n += 1;
                let results = results.clone();
                tokio::spawn(async move {
                    let info = BotCallInfo::for_call(uuid::Uuid::new_v4());
                    let r = ws_link::forward(call.socket, info, config, Some(call.playback)).await;
                    let _ = results.send(r);
                });
            }
        });

        // The first call: 100 frames of a 1 kHz tone in 100 ms bursts, then silence.
        let (ws, _) = tokio_tungstenite::connect_async(server.url(Dialect::Vonage))
            .await
            .expect("handshake");
        let (mut tx, mut rx) = ws.split();
        let reader = tokio::spawn(async move {
            let mut back = Vec::new();
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Binary(b) = m {
                    back.extend(b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])));
                }
            }
            back
        });
        tx.send(Message::text(
            r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#,
        ))
        .await
        .expect("start");
        for k in 0..150 {
            if k % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let frame = if k < 100 { tone(k) } else { vec![0; 640] };
            tx.send(Message::binary(frame)).await.expect("audio");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send(Message::Close(None)).await.expect("close");
        let back = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("the endpoint closes")
            .expect("reader");
        let report = tokio::time::timeout(Duration::from_secs(10), outcome.recv())
            .await
            .expect("forward ends")
            .expect("result")
            .expect("the wss:// bot served the call");
        let loud = back
            .chunks_exact(320)
            .filter(|f| {
                let rms = (f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 320.0).sqrt();
                rms > 8000.0 / 2f64.sqrt() / 2.0
            })
            .count();
        println!(
            "wss:// echo: {loud} loud 20 ms chunks back for 100 tone frames sent (the jitter buffer stretches, never conceals); {} s audio back; {report:?}",
            back.len() as f64 / 16_000.0
        );
        assert!(loud >= 90, "{loud} loud chunks for 100 tone frames sent");

        // The second call trusts the webpki roots only: the self-signed bot is refused,
        // the error says why.
        let (mut ws, _) = tokio_tungstenite::connect_async(server.url(Dialect::Vonage))
            .await
            .expect("handshake");
        ws.send(Message::text(
            r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#,
        ))
        .await
        .expect("start");
        let refused = tokio::time::timeout(Duration::from_secs(10), outcome.recv())
            .await
            .expect("forward ends")
            .expect("result")
            .expect_err("an untrusted certificate");
        println!("without the CA: {refused}");
        assert!(
            matches!(&refused, BotLinkError::Connect { detail, .. } if detail.to_lowercase().contains("certificate")),
            "{refused}"
        );
        let _ = std::fs::remove_file(&ca);
    });
}

#[test]
fn a_bad_ca_file_is_refused_naming_the_file_and_the_fault() {
    let mut c = BotLinkConfig::new("wss://127.0.0.1:9/bot", Dialect::Twilio);
    let missing = std::env::temp_dir().join("ws-link-no-such-ca.pem");
    let e = c.trust_ca_file(&missing).expect_err("missing");
    assert!(
        e.to_string().contains("ws-link-no-such-ca.pem") && e.to_string().contains("cannot read"),
        "{e}"
    );
    let empty = std::env::temp_dir().join(format!("ws-link-empty-ca-{}.pem", std::process::id()));
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let e = c.trust_ca_file(&empty).expect_err("no certificate");
    assert!(e.to_string().contains("no certificate"), "{e}");
    std::fs::write(
        &empty,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let e = c.trust_ca_file(&empty).expect_err("bad certificate");
    assert!(e.to_string().contains("certificate 1"), "{e}");
    let _ = std::fs::remove_file(&empty);
    assert!(c.tls_roots.is_none());
}
