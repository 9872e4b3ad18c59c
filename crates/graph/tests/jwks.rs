//! The key cache of the JWT validator against a real key endpoint (axum on 127.0.0.1)
//! that can be made slow: a refresh never delays a token whose key is known, stale keys
//! are served while a refresh runs, fetches are single-flight and bounded in time, and
//! unknown `kid`s are rate-limited per source. Also the `crit` header.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{APP_ID, ISSUER, claims, key, post_callback, sign_with, state_body, wait_until};
use graph::{AuthConfig, AuthError, CallbackConfig, Delivery, JwtValidator, NotificationSink};
use http_guard::{HttpServer, Limits};
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};
use signaling::CommsNotification;

/// How long the slow key endpoint takes, as in the report of issue 10.
const SLOW: Duration = Duration::from_secs(8);
/// A token whose key is known must be validated within this, whatever a fetch does.
const PROMPT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct EndpointState {
    published: Mutex<Vec<Value>>,
    delay: Mutex<Duration>,
    /// Key set requests received (counted when they arrive, before the delay).
    started: AtomicUsize,
}

/// An OpenID configuration at `/openid` pointing to a key set at `/keys`, which answers
/// after a settable delay.
struct KeyEndpoint {
    addr: SocketAddr,
    state: Arc<EndpointState>,
}

impl KeyEndpoint {
    async fn start() -> KeyEndpoint {
        let state = Arc::new(EndpointState::default());
        state.published.lock().unwrap().push(key(0).jwk.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/openid", get(openid))
            .route("/keys", get(keys))
            .with_state((addr, state.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        KeyEndpoint { addr, state }
    }

    fn config(&self) -> AuthConfig {
        AuthConfig::new(APP_ID, format!("http://{}/openid", self.addr))
    }

    fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    fn publish(&self, jwk: &Value) {
        self.state.published.lock().unwrap().push(jwk.clone());
    }

    fn fetches(&self) -> usize {
        self.state.started.load(Ordering::SeqCst)
    }

    async fn wait_for_fetches(&self, n: usize) {
        wait_until(&format!("{n} key fetches"), Duration::from_secs(10), || {
            self.fetches() >= n
        })
        .await;
    }
}

type EndpointArgs = (SocketAddr, Arc<EndpointState>);

async fn openid(State((addr, _)): State<EndpointArgs>) -> Response {
    axum::Json(json!({"issuer": ISSUER, "jwks_uri": format!("http://{addr}/keys")})).into_response()
}

async fn keys(State((_, state)): State<EndpointArgs>) -> Response {
    state.started.fetch_add(1, Ordering::SeqCst);
    let delay = *state.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let published = state.published.lock().unwrap().clone();
    axum::Json(json!({ "keys": published })).into_response()
}

struct Counter(AtomicUsize);

impl NotificationSink for Counter {
    fn deliver(&self, _call_id: &str, _notification: CommsNotification) -> Delivery {
        self.0.fetch_add(1, Ordering::SeqCst);
        Delivery::Queued
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A valid token under the published key 0.
fn valid() -> String {
    sign_with(&claims(), key(0), &key(0).kid)
}

/// A token signed by key 1 under `kid` (unknown until key 1 is published as `kid`).
fn with_kid(kid: &str) -> String {
    sign_with(&claims(), key(1), kid)
}

fn source(n: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
}

#[tokio::test]
async fn a_slow_refresh_for_an_unknown_kid_does_not_delay_a_valid_callback() {
    let endpoint = KeyEndpoint::start().await;
    let sink = Arc::new(Counter(AtomicUsize::new(0)));
    let config = endpoint
        .config()
        .key_refresh(Duration::from_secs(3600), Duration::from_millis(50))
        .fetch_timeout(Duration::from_secs(3));
    let router = graph::callback::router(CallbackConfig::new(config), sink.clone());
    let url = format!("{}/callback", common::serve(router).await);
    let (valid, forged) = (valid(), with_kid("rotated-or-forged"));

    assert_eq!(
        post_callback(&url, Some(&valid), state_body("c1", "establishing")).await,
        202
    );
    assert_eq!(endpoint.fetches(), 1);

    // The key endpoint becomes slow; a token with an unknown kid starts a refresh.
    endpoint.set_delay(SLOW);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let unknown = tokio::spawn({
        let url = url.clone();
        async move {
            let started = Instant::now();
            let status = post_callback(&url, Some(&forged), state_body("c1", "x")).await;
            (status, started.elapsed())
        }
    });
    endpoint.wait_for_fetches(2).await;

    // Meanwhile valid callbacks are answered at once.
    for state in ["established", "established"] {
        let started = Instant::now();
        assert_eq!(
            post_callback(&url, Some(&valid), state_body("c1", state)).await,
            202
        );
        let took = started.elapsed();
        assert!(
            took < PROMPT,
            "a valid callback waited {took:?} for the key fetch"
        );
    }
    assert!(
        !unknown.is_finished(),
        "the unknown kid waits for the refresh"
    );

    // The unknown kid is refused once the fetch times out, long before the endpoint answers.
    let (status, took) = unknown.await.unwrap();
    assert_eq!(status, 401);
    assert!(took < SLOW, "the fetch was not bounded: {took:?}");
    assert_eq!(endpoint.fetches(), 2, "one fetch for the unknown kid");
    assert_eq!(sink.0.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn stale_keys_are_served_while_a_single_refresh_runs() {
    let endpoint = KeyEndpoint::start().await;
    let validator = JwtValidator::new(
        endpoint
            .config()
            .key_refresh(Duration::from_millis(100), Duration::ZERO)
            .fetch_timeout(Duration::from_millis(500)),
    );
    let valid = bearer(&valid());
    validator.validate(Some(&valid)).await.unwrap();
    assert_eq!(endpoint.fetches(), 1);

    endpoint.set_delay(SLOW);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The keys are stale: the first request starts a refresh and is answered with them.
    let started = Instant::now();
    for _ in 0..5 {
        validator.validate(Some(&valid)).await.unwrap();
    }
    let took = started.elapsed();
    assert!(
        took < PROMPT,
        "stale keys were not served at once: {took:?}"
    );
    endpoint.wait_for_fetches(2).await;
    assert_eq!(endpoint.fetches(), 2, "one refresh at a time");

    // The refresh times out; the stale keys are kept, and the next request refreshes.
    let timed_out = Instant::now();
    while timed_out.elapsed() < Duration::from_secs(10) && endpoint.fetches() < 3 {
        validator.validate(Some(&valid)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(endpoint.fetches(), 3, "a new refresh after the failed one");
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let endpoint = KeyEndpoint::start().await;
    endpoint.set_delay(Duration::from_millis(300));
    let validator = Arc::new(JwtValidator::new(endpoint.config()));
    let valid = bearer(&valid());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (validator, valid) = (validator.clone(), valid.clone());
            tokio::spawn(async move { validator.validate(Some(&valid)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(endpoint.fetches(), 1);
}

#[tokio::test]
async fn a_hanging_key_endpoint_is_bounded_by_the_fetch_timeout() {
    let endpoint = KeyEndpoint::start().await;
    endpoint.set_delay(SLOW);
    let validator = JwtValidator::new(
        endpoint
            .config()
            .key_refresh(Duration::from_secs(3600), Duration::from_secs(3600))
            .fetch_timeout(Duration::from_millis(300)),
    );
    let valid = bearer(&valid());
    let started = Instant::now();
    let err = validator.validate(Some(&valid)).await.unwrap_err();
    assert!(started.elapsed() < SLOW, "{:?}", started.elapsed());
    match &err {
        AuthError::KeysUnavailable(why) => assert!(why.contains("longer than"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Within the refresh interval the failure is answered at once, with its reason.
    let started = Instant::now();
    assert_eq!(validator.validate(Some(&valid)).await.unwrap_err(), err);
    assert!(started.elapsed() < PROMPT);
    assert_eq!(endpoint.fetches(), 1);
    assert_eq!(
        graph::auth::DEFAULT_KEY_FETCH_TIMEOUT,
        AuthConfig::new(APP_ID, "http://127.0.0.1:1/openid").fetch_timeout
    );
}

#[tokio::test]
async fn unknown_kids_are_rate_limited_per_source() {
    let endpoint = KeyEndpoint::start().await;
    // Long enough that the refusals after the refresh fall within it on a loaded machine.
    let interval = Duration::from_secs(2);
    let validator = Arc::new(JwtValidator::new(
        endpoint
            .config()
            .key_refresh(Duration::from_secs(3600), interval)
            .fetch_timeout(Duration::from_secs(20)),
    ));
    let (valid, rotated) = (bearer(&valid()), bearer(&with_kid("key-2")));
    let forged: Vec<String> = (0..3)
        .map(|i| bearer(&with_kid(&format!("forged-{i}"))))
        .collect();
    validator
        .validate_from(Some(&valid), source(1))
        .await
        .unwrap();
    let huge = bearer(&with_kid(&format!("\u{1b}]0;{}", "k".repeat(1 << 20))));

    // The service rotates to key 2; the key endpoint is slow for a while.
    let mut key_2 = key(1).jwk.clone();
    key_2["kid"] = json!("key-2");
    endpoint.publish(&key_2);
    endpoint.set_delay(Duration::from_secs(3));
    tokio::time::sleep(interval + Duration::from_millis(50)).await;

    // Source 1 sends a forged kid: it starts the refresh and waits for it.
    let first = tokio::spawn({
        let (validator, token) = (validator.clone(), forged[0].clone());
        async move { validator.validate_from(Some(&token), source(1)).await }
    });
    endpoint.wait_for_fetches(2).await;
    // Its next forged kids are refused at once, without a fetch.
    for token in &forged[1..] {
        let started = Instant::now();
        let err = validator
            .validate_from(Some(token), source(1))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::UnknownKey(_)), "{err:?}");
        assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    }
    // Valid tokens from anywhere are not held up.
    let started = Instant::now();
    validator
        .validate_from(Some(&valid), source(1))
        .await
        .unwrap();
    validator
        .validate_from(Some(&valid), source(2))
        .await
        .unwrap();
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    // Source 2 (the service) has its own budget: its rotated kid waits for the same
    // refresh and is accepted.
    validator
        .validate_from(Some(&rotated), source(2))
        .await
        .unwrap();
    let err = first.await.unwrap().unwrap_err();
    assert!(
        matches!(err, AuthError::UnknownKey(ref k) if k == r#""forged-0""#),
        "{err:?}"
    );
    assert_eq!(endpoint.fetches(), 2, "one fetch for all of them");

    // A huge forged kid is quoted as a bounded, escaped excerpt.
    let err = validator
        .validate_from(Some(&huge), source(1))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::UnknownKey(_)), "{err:?}");
    assert!(
        err.to_string().len() < 200,
        "{} bytes",
        err.to_string().len()
    );
    assert!(!err.to_string().contains('\u{1b}'), "{err}");

    // A flood of forged kids from many sources right after: refused, no fetch.
    endpoint.set_delay(Duration::ZERO);
    for n in 3..103 {
        let err = validator
            .validate_from(Some(&forged[0]), source(n))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::UnknownKey(_)), "{err:?}");
    }
    assert_eq!(endpoint.fetches(), 2);
}

/// POST a callback with `token` from `client`; the status.
async fn post_from(client: &reqwest::Client, url: &str, token: &str) -> u16 {
    client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(state_body("c1", "established"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A client whose connections come from 127.0.0.`n`.
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source(n))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_callback_server_budgets_unknown_kids_per_peer_address() {
    let endpoint = KeyEndpoint::start().await;
    let interval = Duration::from_secs(2);
    let config = endpoint
        .config()
        .key_refresh(Duration::from_secs(3600), interval)
        .fetch_timeout(Duration::from_secs(20));
    let sink = Arc::new(Counter(AtomicUsize::new(0)));
    let router = graph::callback::router(CallbackConfig::new(config), sink.clone());
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let server = HttpServer::new(listener, Limits::default(), "callback").unwrap();
    let url = format!("http://{}/callback", server.local_addr());
    tokio::spawn(server.serve(router, std::future::pending()));
    let (forger, service) = (client_from(2), client_from(3));
    let (valid, rotated) = (valid(), with_kid("key-2"));
    let forged: Vec<String> = (0..2).map(|i| with_kid(&format!("forged-{i}"))).collect();
    assert_eq!(post_from(&service, &url, &valid).await, 202);

    let mut key_2 = key(1).jwk.clone();
    key_2["kid"] = json!("key-2");
    endpoint.publish(&key_2);
    endpoint.set_delay(Duration::from_secs(3));
    tokio::time::sleep(interval + Duration::from_millis(50)).await;

    // The forger's unknown kid starts a refresh and waits for it; its next is refused
    // at once.
    let first = tokio::spawn({
        let (forger, url, token) = (forger.clone(), url.clone(), forged[0].clone());
        async move { post_from(&forger, &url, &token).await }
    });
    endpoint.wait_for_fetches(2).await;
    let started = Instant::now();
    assert_eq!(post_from(&forger, &url, &forged[1]).await, 401);
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
    // The service, from another address, has its own budget: its rotated kid waits for
    // the same refresh and is accepted.
    assert_eq!(post_from(&service, &url, &rotated).await, 202);
    assert_eq!(first.await.unwrap(), 401);
    assert_eq!(endpoint.fetches(), 2);
    assert_eq!(sink.0.load(Ordering::SeqCst), 2);
}

/// A token under the published key with the header's `crit` set.
fn with_crit(crit: Vec<String>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key(0).kid.clone());
    header.crit = Some(crit);
    jsonwebtoken::encode(&header, &claims(), &key(0).encoding).unwrap()
}

#[tokio::test]
async fn a_crit_header_is_refused() {
    let endpoint = KeyEndpoint::start().await;
    let validator = JwtValidator::new(endpoint.config());
    validator.validate(Some(&bearer(&valid()))).await.unwrap();

    let err = validator
        .validate(Some(&bearer(&with_crit(vec!["b64".into()]))))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::UnsupportedCritical(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("\"b64\"") && message.contains("RFC 7515"),
        "{message}"
    );

    let err = validator
        .validate(Some(&bearer(&with_crit(Vec::new()))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    // A hostile list: the message quotes a bounded, escaped excerpt.
    let hostile: Vec<String> = (0..1000)
        .map(|i| format!("\u{1b}[2J{i}{}", "x".repeat(1000)))
        .collect();
    let err = validator
        .validate(Some(&bearer(&with_crit(hostile))))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.len() < 1000, "{} bytes", message.len());
    assert!(!message.contains('\u{1b}'), "{message}");
    assert!(message.contains("1000 names"), "{message}");

    // A header that is not JSON the library reads: the reason is bounded and escaped.
    let header = format!(
        r#"{{"alg":"\u001b[2J{}","kid":"key-1"}}"#,
        "A".repeat(1 << 20)
    );
    let token = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let err = validator.validate(Some(&bearer(&token))).await.unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.len() < 400, "{} bytes", message.len());
    assert!(!message.contains('\u{1b}'), "{message}");

    // Through the callback server: 401.
    let sink = Arc::new(Counter(AtomicUsize::new(0)));
    let router = graph::callback::router(CallbackConfig::new(endpoint.config()), sink.clone());
    let url = format!("{}/callback", common::serve(router).await);
    let token = with_crit(vec!["b64".into()]);
    assert_eq!(
        post_callback(&url, Some(&token), state_body("c1", "established")).await,
        401
    );
    assert_eq!(
        post_callback(&url, Some(&valid()), state_body("c1", "established")).await,
        202
    );
    assert_eq!(sink.0.load(Ordering::SeqCst), 1);
}
