//! Routing of notifications between instances that share one callback URL.
//!
//! Each instance serves, on its callback server:
//!
//! - `POST /callback`: the shared path (the bot's registered callbackUri, where the
//!   service offers incoming calls; a load balancer in front picks any instance);
//! - `POST /callbacks/{instance_id}`: the per-instance path, the callbackUri of the
//!   calls this instance creates and of those it answers (the answer's `callbackUri`):
//!   `{base}/callbacks/{routing.instance_id}`.
//!
//! A request is applied here (handed to this instance's own call runtime, which checks
//! the JWT, parses and queues, as a single instance always did) when:
//! the path is this instance's own; or a call the request names is one this instance
//! follows (or ended within the last [`RECENT_TTL`]: the service's last notifications
//! of a call this instance hung up); or it offers an incoming call (unless this
//! instance is draining and has peers); or it cannot be read (the runtime answers
//! `400`); or there are no peers (a single instance, as before).
//!
//! Otherwise it is forwarded, once, to each peer in turn (`{peer}{same path}`), with
//! the original headers and body byte for byte (the owner checks the service's JWT
//! itself) and the header [`FORWARDED_BY`] naming this instance. A forwarded request
//! is never forwarded again: a peer applies it if it owns the call (then answers
//! `202`) and answers `404` if not. The first peer answer other than `404` is the
//! service's answer (the owner's `2xx`, or its `401`/`400`); when every peer says
//! `404` (or cannot be reached) the service gets `404 Not Found`: no live instance
//! follows the call. 404 rather than 410: an instance cannot tell that the call has
//! ended everywhere (its owner may be restarting, or the request came before the
//! owner's create returned), only that nobody here knows it; neither makes the
//! service retry.
//!
//! The forwarder itself does not check the JWT (the owner does, and its `401` is the
//! answer): a request with a bad token costs at most one internal hop per peer; a
//! request that already carries [`FORWARDED_BY`] is answered at once (`404` unless
//! this instance owns the call, which only reveals whether it follows that call id).
//!
//! An incoming call offered to a draining instance with peers goes to the first
//! peer that takes it (a peer answers a forwarded offer `503` unless it is ready, as
//! its `/readyz` says); if none does, the draining instance rejects it (busy), as a
//! single instance does.
//!
//! ## Why internal forwarding
//!
//! - Not a `307` to the service: Graph documents no redirect handling for
//!   notifications (a `3xx` is at best a failed delivery, retried at the same URL),
//!   an instance could not name the owner to redirect to without a shared call
//!   directory, and a redirect would have to expose each instance's own address
//!   outside the cluster. Forwarding needs only the peers' internal addresses.
//! - Not sticky sessions: the load balancer sees only the service's requests, which
//!   carry the call id in the JSON body (not in a cookie, header or path it could hash
//!   on) and come from Graph's pool of senders; incoming-call offers must go to any
//!   ready instance; and an instance that drains or dies cannot hand its stickiness
//!   over. Per-instance callbackUris route most notifications straight to their owner;
//!   forwarding repairs what still arrives at the wrong instance (the shared path of
//!   answered incoming calls, a misrouting proxy, a rescheduled pod) with one internal
//!   hop and no state shared between instances.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use graph::CallRuntime;
use tower::ServiceExt as _;

use crate::service::HostState;

/// The header a forwarded request carries: the forwarding instance's id. A request
/// with it is never forwarded again.
pub const FORWARDED_BY: &str = "x-mp-forwarded-by";

/// How long an ended call's id is still answered for by its former owner.
pub const RECENT_TTL: Duration = Duration::from_secs(600);

/// Most ended call ids remembered.
const RECENT_MAX: usize = 100_000;

/// Largest callback body read (as the runtime's callback server).
const MAX_BODY: usize = graph::callback::DEFAULT_MAX_BODY_BYTES;

/// How long one peer may take to answer a forwarded request.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Ids of calls this instance followed until recently (lower case).
#[derive(Debug, Default)]
pub(crate) struct Recent(Mutex<HashMap<String, Instant>>);

impl Recent {
    pub(crate) fn insert(&self, call_id: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= RECENT_MAX {
            m.retain(|_, at| at.elapsed() < RECENT_TTL);
            if m.len() >= RECENT_MAX {
                m.clear();
            }
        }
        m.insert(call_id.to_ascii_lowercase(), Instant::now());
    }

    fn contains(&self, call_id: &str) -> bool {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&call_id.to_ascii_lowercase())
            .is_some_and(|at| at.elapsed() < RECENT_TTL)
    }
}

/// What the router needs.
pub(crate) struct Routing {
    pub(crate) instance_id: String,
    pub(crate) peers: Vec<String>,
    pub(crate) runtime: CallRuntime,
    pub(crate) state: Arc<HostState>,
    pub(crate) recent: Arc<Recent>,
    /// The runtime's callback router, at `/callback`.
    pub(crate) local: axum::Router,
    pub(crate) http: reqwest::Client,
}

/// The callback server's routes: `/callback` and `/callbacks/{instance_id}`.
pub(crate) fn router(routing: Routing) -> axum::Router {
    axum::Router::new()
        .route("/callback", post(shared))
        .route("/callbacks/{instance}", post(instance))
        .with_state(Arc::new(routing))
}

async fn shared(State(r): State<Arc<Routing>>, request: Request) -> Response {
    r.route(None, request).await
}

async fn instance(
    State(r): State<Arc<Routing>>,
    Path(instance): Path<String>,
    request: Request,
) -> Response {
    r.route(Some(instance), request).await
}

/// What the router reads of a body: the call ids, whether it offers an incoming
/// call, how many notifications it holds.
#[derive(Debug, Default)]
struct Inspected {
    call_ids: Vec<String>,
    offers_call: bool,
    count: usize,
}

fn inspect(body: &[u8]) -> Option<Inspected> {
    let parsed: signaling::CommsNotifications = serde_json::from_slice(body).ok()?;
    let mut out = Inspected {
        count: parsed.value.len(),
        ..Inspected::default()
    };
    for n in &parsed.value {
        if let Some(id) = n.call_id() {
            out.call_ids.push(id.to_owned());
        }
        let created = n.change_type.value() == Some(&signaling::ChangeType::Created);
        out.offers_call |= created
            && n.items().iter().any(|item| {
                matches!(item, signaling::ResourceItem::Call(c)
                    if c.state.value() == Some(&signaling::CallState::Incoming))
            });
    }
    Some(out)
}

impl Routing {
    fn owns(&self, call_ids: &[String]) -> bool {
        call_ids
            .iter()
            .any(|id| self.runtime.roster(id).is_some() || self.recent.contains(id))
    }

    async fn route(&self, instance: Option<String>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n").into_response();
            }
        };
        let forwarded = parts.headers.contains_key(FORWARDED_BY);
        let own_path = instance.as_deref() == Some(self.instance_id.as_str());
        let Some(seen) = inspect(&body).filter(|_| !own_path) else {
            return self.apply(parts, body).await;
        };
        if self.owns(&seen.call_ids) {
            return self.apply(parts, body).await;
        }
        if seen.offers_call {
            let draining = self
                .state
                .draining
                .load(std::sync::atomic::Ordering::SeqCst);
            if forwarded && !self.state.ready() {
                return (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response();
            }
            if forwarded || !draining || self.peers.is_empty() {
                return self.apply(parts, body).await;
            }
            for peer in &self.peers {
                if let Some((status, answer)) = self.forward(peer, &parts, &body).await
                    && status.is_success()
                {
                    self.state.metrics.forwarded("incoming_placed");
                    println!(
                        "offered call {} handed to {peer} (draining)",
                        seen.call_ids.first().map_or("?", String::as_str)
                    );
                    return (status, answer).into_response();
                }
            }
            self.state.metrics.forwarded("incoming_kept");
            return self.apply(parts, body).await;
        }
        if forwarded {
            return (StatusCode::NOT_FOUND, "not a call of this instance\n").into_response();
        }
        if self.peers.is_empty() {
            return self.apply(parts, body).await;
        }
        for peer in &self.peers {
            match self.forward(peer, &parts, &body).await {
                Some((StatusCode::NOT_FOUND, _)) | None => continue,
                Some((status, answer)) => {
                    self.state.metrics.forwarded(if status.is_success() {
                        "owner"
                    } else {
                        "refused"
                    });
                    return (status, answer).into_response();
                }
            }
        }
        // A call of this instance that ended while the peers were asked (its end is
        // recorded by the event task, a moment after the runtime dropped it).
        if self.owns(&seen.call_ids) {
            return self.apply(parts, body).await;
        }
        self.state.metrics.forwarded("unowned");
        tracing::info!(
            call_ids = ?seen.call_ids,
            "notification of a call no instance follows: 404"
        );
        (StatusCode::NOT_FOUND, "no instance follows this call\n").into_response()
    }

    /// Hands the request to this instance's call runtime (its callback router checks
    /// the JWT, parses, queues); counts the notifications it accepted.
    async fn apply(&self, mut parts: axum::http::request::Parts, body: Bytes) -> Response {
        let count = inspect(&body).map_or(0, |i| i.count);
        parts.uri = Uri::from_static("/callback");
        let request = Request::from_parts(parts, Body::from(body));
        let response = match self.local.clone().oneshot(request).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        if response.status().is_success() {
            self.state.metrics.applied(count);
        }
        response
    }

    /// POSTs the request to `{peer}{path}` with its headers and body and the marker
    /// header; the peer's status and body, or `None` if it could not be reached.
    async fn forward(
        &self,
        peer: &str,
        parts: &axum::http::request::Parts,
        body: &Bytes,
    ) -> Option<(StatusCode, Bytes)> {
        let mut headers = HeaderMap::new();
        for (name, value) in &parts.headers {
            if !matches!(
                *name,
                header::HOST
                    | header::CONTENT_LENGTH
                    | header::CONNECTION
                    | header::TRANSFER_ENCODING
            ) {
                headers.append(name.clone(), value.clone());
            }
        }
        if let Ok(v) = HeaderValue::from_str(&self.instance_id) {
            headers.insert(FORWARDED_BY, v);
        }
        let url = format!("{peer}{}", parts.uri.path());
        let sent = self
            .http
            .post(&url)
            .headers(headers)
            .body(body.clone())
            .timeout(PEER_TIMEOUT)
            .send()
            .await;
        let answer = match sent {
            Ok(r) => r,
            Err(e) => {
                self.state.metrics.peer_failure();
                tracing::warn!("forwarding a callback to {url}: {e}");
                return None;
            }
        };
        let status = StatusCode::from_u16(answer.status().as_u16()).ok()?;
        let bytes = answer.bytes().await.unwrap_or_default();
        Some((status, bytes))
    }
}

/// The callbackUri of the calls instance `instance_id` creates, from the shared one:
/// a trailing `/callback` (and `/`) dropped, then `/callbacks/{instance_id}`.
pub(crate) fn instance_url(shared: &str, instance_id: &str) -> String {
    let base = shared.trim_end_matches('/');
    let base = base.strip_suffix("/callback").unwrap_or(base);
    format!("{base}/callbacks/{instance_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_urls() {
        assert_eq!(
            instance_url("http://127.0.0.1:9442/callback", "a"),
            "http://127.0.0.1:9442/callbacks/a"
        );
        assert_eq!(
            instance_url("https://bot.contoso.com/teams/", "mp-0"),
            "https://bot.contoso.com/teams/callbacks/mp-0"
        );
    }

    #[test]
    fn inspect_reads_ids_and_offers() {
        let offer =
            br##"{"value":[{"changeType":"created","resourceUrl":"/communications/calls/C1",
            "resourceData":{"@odata.type":"#microsoft.graph.call","state":"incoming"}}]}"##;
        let i = inspect(offer).expect("readable");
        assert_eq!(i.call_ids, ["C1"]);
        assert!(i.offers_call);
        assert_eq!(i.count, 1);
        let update =
            br##"{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/C2",
            "resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"}}]}"##;
        let i = inspect(update).expect("readable");
        assert!(!i.offers_call);
        assert!(inspect(b"{").is_none());
    }

    #[test]
    fn recent_ids_are_case_blind() {
        let r = Recent::default();
        r.insert("AbC");
        assert!(r.contains("abc"));
        assert!(!r.contains("abd"));
    }
}
