//! HTTPS for the callback server: the certificate chain and key of
//! `callback.tls_cert_file` / `callback.tls_key_file` loaded into a rustls server
//! configuration, and an accept loop serving the callback router over TLS
//! (HTTP/1.1) with the [`http_guard::Limits`] that apply to a TLS stream: connections
//! held at most, the TLS handshake and each request head within the header read
//! timeout, the request head size, a grace period at shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::ConfigError;

/// Loads a PEM certificate chain (leaf first) and its PEM private key (PKCS#8,
/// PKCS#1 or SEC1) into a TLS server configuration offering HTTP/1.1. Errors name
/// `cert_key` or `key_key` (the configuration keys) and the problem: a file that
/// cannot be read, no PEM certificate or key in it, a key that does not match the
/// certificate.
pub(crate) fn server_config(
    cert_file: &Path,
    key_file: &Path,
    cert_key: &str,
    key_key: &str,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let problem = |what: &str, p: String| ConfigError {
        what: what.to_owned(),
        problem: p,
    };
    let cert_pem = std::fs::read(cert_file).map_err(|e| {
        problem(
            cert_key,
            format!("{}: cannot read: {e}", cert_file.display()),
        )
    })?;
    let key_pem = std::fs::read(key_file)
        .map_err(|e| problem(key_key, format!("{}: cannot read: {e}", key_file.display())))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            problem(
                cert_key,
                format!("{}: not a PEM certificate chain: {e}", cert_file.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(problem(
            cert_key,
            format!(
                "{}: not PEM: no CERTIFICATE block in it",
                cert_file.display()
            ),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        problem(
            key_key,
            format!("{}: not a PEM private key: {e}", key_file.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| problem(cert_key, format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => problem(
                key_key,
                format!(
                    "{}: the key does not match the certificate in {}",
                    key_file.display(),
                    cert_file.display()
                ),
            ),
            e => problem(
                key_key,
                format!(
                    "{} / {}: unusable: {e}",
                    cert_file.display(),
                    key_file.display()
                ),
            ),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` until `shutdown` completes; then stops
/// accepting and lets requests in progress finish within the grace period.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: Arc<rustls::ServerConfig>,
    limits: http_guard::Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("callback server (TLS): accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "callback server (TLS): connection refused: max_connections reached");
            continue;
        };
        connections.spawn(connection(
            stream,
            peer,
            acceptor.clone(),
            router.clone(),
            limits.clone(),
            closing_rx.clone(),
            permit,
        ));
    }
    drop(listener);
    closing.send_replace(true);
    let _ = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.shutdown().await;
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    limits: http_guard::Limits,
    mut closing: watch::Receiver<bool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "callback server (TLS): handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "callback server (TLS): no handshake within the header read timeout");
            return;
        }
    };
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let outcome = tokio::select! {
        outcome = conn.as_mut() => outcome,
        _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = outcome {
        tracing::debug!(%peer, "callback server (TLS): connection ended: {e}");
    }
}
