//! The admin port: `/metrics` (Prometheus text), `/healthz` (alive), `/readyz` (ready
//! for new calls: not draining, platform health Normal).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::service::HostState;

/// The admin routes over the host's state.
pub(crate) fn router(state: Arc<HostState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<HostState>>) -> impl IntoResponse {
    let body = state.metrics.render(&state.gauges());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<HostState>>) -> (StatusCode, String) {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: draining\n".into(),
        );
    }
    match state.health() {
        platform::Health::Normal => (StatusCode::OK, "ready\n".into()),
        h => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: media platform {h:?}\n"),
        ),
    }
}

/// `GET path` on an admin port at `addr` (HTTP/1.0, blocking, 5 s timeouts): the
/// status code and the body. For exec probes in images without an HTTP client, and
/// for tests.
pub fn probe(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(5);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let (_, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}
