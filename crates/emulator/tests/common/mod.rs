//! Test kit: a shared signing key, fast timing, a callback receiver that verifies
//! every notification's JWT against the emulator's published JWKS, and HTTP helpers.
#![allow(dead_code, missing_docs)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use emulator::{EmulatorConfig, EmulatorHandle, SigningKey, Timing};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

/// One RSA key per test binary (generation is the slow part of starting).
pub fn key() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("RSA key"))
        .clone()
}

/// Fast timing for tests.
pub fn config() -> EmulatorConfig {
    EmulatorConfig {
        signing_key: Some(key()),
        timing: Timing {
            step_delay: Duration::from_millis(30),
            lobby_delay: Duration::from_millis(120),
            media_connect_timeout: Duration::from_secs(2),
            answer_timeout: Duration::from_secs(1),
        },
        delivery: emulator::Delivery {
            max_attempts: 4,
            retry_delay: Duration::from_millis(40),
            request_timeout: Duration::from_secs(2),
        },
        keepalive_timeout: Duration::from_secs(30),
        ..EmulatorConfig::default()
    }
}

/// A notification as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    /// The claims of its verified JWT.
    pub claims: Value,
}

struct RecvState {
    jwks: JwkSet,
    audience: String,
    got: Mutex<VecDeque<Received>>,
    rejected: AtomicU32,
    fail_next: AtomicU32,
    arrived: Notify,
}

/// A bot's callback endpoint on 127.0.0.1 that verifies JWTs with the emulator's JWKS
/// (fetched through its OpenID configuration) and answers 500 while `fail_next` > 0.
pub struct Receiver {
    state: Arc<RecvState>,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start(emu: &EmulatorHandle, audience: &str) -> Receiver {
        let openid: Value = reqwest::get(emu.openid_url())
            .await
            .expect("openid config")
            .json()
            .await
            .expect("openid json");
        assert_eq!(openid["issuer"], "https://api.botframework.com");
        let jwks_uri = openid["jwks_uri"].as_str().expect("jwks_uri").to_owned();
        let jwks: JwkSet = reqwest::get(jwks_uri)
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks json");
        Receiver::with_jwks(jwks, audience).await
    }

    pub async fn with_jwks(jwks: JwkSet, audience: &str) -> Receiver {
        let state = Arc::new(RecvState {
            jwks,
            audience: audience.to_owned(),
            got: Mutex::new(VecDeque::new()),
            rejected: AtomicU32::new(0),
            fail_next: AtomicU32::new(0),
            arrived: Notify::new(),
        });
        let app = Router::new()
            .route("/callback", post(callback))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .expect("receiver serve");
        });
        Receiver {
            state,
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    /// Answer the next `n` callbacks with 500.
    pub fn fail_next(&self, n: u32) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Callbacks refused because the JWT did not verify.
    pub fn rejected(&self) -> u32 {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// Wait until `n` notifications for `call_id` arrived (or the timeout); returns
    /// those for `call_id`, in arrival order, and keeps others queued.
    pub async fn wait_for(&self, call_id: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.arrived.notified();
            let count = self.for_call(call_id).len();
            if count >= n || tokio::time::Instant::now() >= deadline {
                return self.for_call(call_id);
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    pub fn for_call(&self, call_id: &str) -> Vec<Received> {
        self.state
            .got
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| {
                r.body["value"][0]["resourceUrl"]
                    .as_str()
                    .is_some_and(|u| u.contains(call_id))
            })
            .cloned()
            .collect()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

async fn callback(
    State(s): State<Arc<RecvState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let claims = match verify(&s.jwks, &s.audience, token) {
        Ok(c) => c,
        Err(_) => {
            s.rejected.fetch_add(1, Ordering::SeqCst);
            return StatusCode::UNAUTHORIZED;
        }
    };
    if s.fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    s.got
        .lock()
        .expect("lock")
        .push_back(Received { body, claims });
    s.arrived.notify_waiters();
    StatusCode::ACCEPTED
}

/// Verify a callback JWT as a bot does: RS256, `kid` from the JWKS, issuer, audience.
pub fn verify(jwks: &JwkSet, audience: &str, token: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&["https://api.botframework.com"]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "nbf"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| e.to_string())?;
    Ok(data.claims)
}

/// A client-credentials token for the emulator's first app.
pub async fn token(emu: &EmulatorHandle) -> String {
    let app = &emu.apps()[0];
    token_for(emu, &app.tenant_id, &app.client_id, &app.client_secret).await
}

pub async fn token_for(emu: &EmulatorHandle, tenant: &str, client: &str, secret: &str) -> String {
    let resp = reqwest::Client::new()
        .post(emu.token_url_for(tenant))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("token json");
    v["access_token"].as_str().expect("access_token").to_owned()
}

/// A real media session configuration (JSON text) pointing at 127.0.0.1.
pub fn real_blob() -> String {
    let uri = media_blob::MpUri::quic("127.0.0.1", 4433).expect("mpUri");
    media_blob::MediaSessionConfig::builder(uri, uuid::Uuid::new_v4())
        .build()
        .to_json()
}

/// A seed scenario's request with a real blob and `callback` as callbackUri.
pub fn scenario_body(s: signaling::Scenario, callback: &str) -> Value {
    let mut v = s.seed_example(Some(real_blob())).to_value();
    v["callbackUri"] = callback.into();
    v
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The `id` of the created resource (panics when the body has none).
    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("id").to_owned()
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn create(emu: &EmulatorHandle, token: &str, body: &Value) -> Reply {
    send(
        reqwest::Client::new()
            .post(emu.calls_url())
            .bearer_auth(token)
            .json(body),
    )
    .await
}

/// `(resourceUrl suffix after the call, state or changeType)` of each notification.
pub fn sequence(notes: &[Received], call_id: &str) -> Vec<(String, String)> {
    notes
        .iter()
        .map(|r| {
            let n = &r.body["value"][0];
            let url = n["resourceUrl"].as_str().unwrap_or_default();
            let prefix = format!("/communications/calls/{call_id}");
            let suffix = url.strip_prefix(&prefix).unwrap_or(url).to_owned();
            let what = n["resourceData"]["state"]
                .as_str()
                .or_else(|| n["changeType"].as_str())
                .unwrap_or_default()
                .to_owned();
            (suffix, what)
        })
        .collect()
}

pub fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// Graph's error shape, and the message.
pub fn graph_error_message(body: &Value) -> String {
    let e = &body["error"];
    assert!(e["code"].is_string(), "no error.code in {body}");
    let inner = &e["innerError"];
    assert!(inner["request-id"].is_string(), "no request-id in {body}");
    assert!(
        inner["client-request-id"].is_string(),
        "no client-request-id in {body}"
    );
    assert!(inner["date"].is_string(), "no date in {body}");
    e["message"].as_str().expect("message").to_owned()
}

/// Poll `f` until true or the timeout.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
