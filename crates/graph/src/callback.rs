//! The callback server: an axum [`Router`] that receives `commsNotifications` at the
//! callbackUri path.
//!
//! Per request, in order:
//! 1. authentication (on by default): the Bearer JWT is checked by a [`JwtValidator`]
//!    (with the peer address as the source, when the server provides axum's
//!    `ConnectInfo<SocketAddr>`, as `http_guard` does); a missing or bad token is
//!    answered `401` with a log line, and nothing is processed;
//! 2. the body is read up to [`CallbackConfig::max_body_bytes`] (`413` beyond);
//! 3. it is parsed as `commsNotifications` (`400` with the reason if it is not: bad JSON,
//!    wrong types, a known `@odata.type` with a wrong shape, another top-level type);
//! 4. each notification is handed, in order and without waiting, to the
//!    [`NotificationSink`] (the runtime's per-call queues); items of unknown types are
//!    not refused here: the call's state machine ignores them with a log line;
//! 5. `202 Accepted`, before any notification has been processed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header::AUTHORIZATION};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use signaling::{CommsNotification, CommsNotifications, odata};

use crate::auth::{AuthConfig, JwtValidator};

/// Default largest accepted body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// How callbacks are authenticated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum InboundAuth {
    /// Check the Bearer JWT (the default in production).
    Jwt(AuthConfig),
    /// Accept unauthenticated callbacks. For local tests only: anyone who can reach the
    /// callback can then drive the bot's calls.
    Disabled,
}

/// Configuration of the callback server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallbackConfig {
    /// The path of the callbackUri, e.g. `/callback` (default `/callback`).
    pub path: String,
    /// Largest accepted body (default [`DEFAULT_MAX_BODY_BYTES`]); larger is `413`.
    pub max_body_bytes: usize,
    /// Authentication.
    pub auth: InboundAuth,
}

impl CallbackConfig {
    /// Callbacks at `/callback`, authenticated with `auth`, 1 MiB limit.
    pub fn new(auth: AuthConfig) -> Self {
        CallbackConfig {
            path: "/callback".to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            auth: InboundAuth::Jwt(auth),
        }
    }

    /// Callbacks without authentication (local tests only).
    pub fn unauthenticated() -> Self {
        CallbackConfig {
            path: "/callback".to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            auth: InboundAuth::Disabled,
        }
    }

    /// Set the path (must start with `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Set the body size limit.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }
}

/// What became of a notification handed to a [`NotificationSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Queued for its call.
    Queued,
    /// Not a call the sink knows: dropped (the sink logs it).
    UnknownCall,
}

/// Where the callback server hands notifications: called from the request handler, in
/// arrival order, and must not block (queue and return).
pub trait NotificationSink: Send + Sync + 'static {
    /// Take one notification for the call `call_id` (from its `resourceUrl`).
    fn deliver(&self, call_id: &str, notification: CommsNotification) -> Delivery;
}

struct ServerState {
    sink: Arc<dyn NotificationSink>,
    validator: Option<JwtValidator>,
}

/// The callback router for `config`, handing notifications to `sink`. Serve it with
/// `http_guard::HttpServer` (header and body read timeouts, connection caps), as the
/// bot does; it may be merged into a larger router.
pub fn router(config: CallbackConfig, sink: Arc<dyn NotificationSink>) -> Router {
    let validator = match config.auth {
        InboundAuth::Jwt(auth) => Some(JwtValidator::new(auth)),
        InboundAuth::Disabled => {
            tracing::warn!("callback authentication is DISABLED: for local tests only");
            None
        }
    };
    let state = Arc::new(ServerState { sink, validator });
    Router::new()
        .route(&config.path, post(receive))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        // Layers added last run first: authentication precedes reading the body.
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

async fn authenticate(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(validator) = &state.validator {
        let header = request
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("(not text)"));
        // The peer address, when the server provides it (http_guard does), gives each
        // source its own budget of key refreshes for unknown `kid`s.
        let source = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip().to_canonical());
        if let Err(e) = validator.validate_from(header, source).await {
            tracing::warn!(uri = %request.uri(), "callback refused (401): {e}");
            return (StatusCode::UNAUTHORIZED, format!("unauthorized: {e}\n")).into_response();
        }
    }
    next.run(request).await
}

async fn receive(State(state): State<Arc<ServerState>>, body: Bytes) -> Response {
    let notifications = match parse(&body) {
        Ok(n) => n,
        Err(reason) => {
            tracing::warn!(bytes = body.len(), "callback refused (400): {reason}");
            return (StatusCode::BAD_REQUEST, format!("bad request: {reason}\n")).into_response();
        }
    };
    let count = notifications.value.len();
    for n in notifications.value {
        match n.call_id().map(str::to_owned) {
            Some(call_id) => {
                state.sink.deliver(&call_id, n);
            }
            None => tracing::warn!(
                resource_url = n
                    .resource_url
                    .value()
                    .map(String::as_str)
                    .unwrap_or("(none)"),
                "notification without a call id in resourceUrl: ignored"
            ),
        }
    }
    tracing::debug!(count, "callback accepted");
    StatusCode::ACCEPTED.into_response()
}

/// Longest error detail quoted in a refusal (serde errors can quote values).
const MAX_DETAIL_CHARS: usize = 240;

/// The body as notifications: strict JSON (a repeated key is refused), then the model.
/// Errors quote the body only as bounded, escaped excerpts.
fn parse(body: &[u8]) -> Result<CommsNotifications, String> {
    let not_notifications = |e: serde_json::Error| {
        format!(
            "not a commsNotifications document: {}",
            media_blob::bounded(&e.to_string(), MAX_DETAIL_CHARS)
        )
    };
    let value = signaling::json::from_slice_strict(body).map_err(not_notifications)?;
    let parsed: CommsNotifications = serde_json::from_value(value).map_err(not_notifications)?;
    if let Some(t) = parsed.odata_type.value()
        && !odata::is(t, odata::COMMS_NOTIFICATIONS)
    {
        return Err(format!(
            "@odata.type {} is not {}",
            media_blob::excerpt(t),
            odata::COMMS_NOTIFICATIONS
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use signaling::state::CallStateMachine;

    const VALID: &str = r##"{"@odata.type":"#microsoft.graph.commsNotifications","value":[
        {"changeType":"updated","resourceUrl":"/communications/calls/c1/participants",
         "resourceData":[{"@odata.type":"#microsoft.graph.participant","id":"p1","isMuted":true,
            "mediaStreams":[{"mediaType":"audio","sourceId":"10"}]}]},
        {"changeType":"deleted","resourceUrl":"/communications/calls/c1",
         "resourceData":{"@odata.type":"#microsoft.graph.call","state":"terminated",
            "resultInfo":{"code":"410","subcode":301005}}}]}"##;

    #[test]
    fn repeated_keys_and_hostile_values_are_refused_with_bounded_messages() {
        let twice = VALID.replacen(
            r#""changeType":"updated","#,
            r#""changeType":"updated","changeType":"deleted","#,
            1,
        );
        let e = parse(twice.as_bytes()).expect_err("a repeated key");
        assert!(
            e.starts_with(r#"not a commsNotifications document: duplicate key "changeType" in value[0] at line 2"#),
            "{e}"
        );
        let hostile = format!(
            r#"{{"@odata.type":"\u001b[2J{}","value":[]}}"#,
            "x".repeat(1_000_000)
        );
        let e = parse(hostile.as_bytes()).expect_err("not notifications");
        assert!(e.len() < 300 && !e.contains('\u{1b}'), "{e}");
        let e = parse(b"\xff").expect_err("not UTF-8");
        assert!(e.starts_with("not a commsNotifications document"), "{e}");
    }

    #[test]
    fn valid_body_parses() {
        let parsed = parse(VALID.as_bytes()).expect("valid");
        assert_eq!(parsed.value.len(), 2);
        assert_eq!(parsed.value[0].call_id(), Some("c1"));
    }

    proptest! {
        /// Any bytes: parse answers Ok or Err, never panics.
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body);
        }

        /// A valid body with one byte replaced or the body cut: no panic anywhere from
        /// parsing through the state machine.
        #[test]
        fn mutated_bodies_never_panic(at in 0usize..VALID.len(), byte in any::<u8>(), cut in any::<bool>()) {
            let mut body = VALID.as_bytes().to_vec();
            if cut { body.truncate(at) } else { body[at] = byte }
            if let Ok(parsed) = parse(&body) {
                for n in &parsed.value {
                    if let Some(id) = n.call_id() {
                        let mut machine = CallStateMachine::new(id);
                        machine.handle_notification(n);
                        while machine.poll_event().is_some() {}
                    }
                }
            }
        }
    }
}
