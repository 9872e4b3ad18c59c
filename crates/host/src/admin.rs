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
