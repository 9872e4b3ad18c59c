//! Stand-ins for the cloud, over real HTTP on 127.0.0.1: a token endpoint, the Graph
//! calls API, an OpenID configuration with its JWKS, and a signer of callback JWTs.
//! They behave as the emulator contract says.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

pub const TENANT: &str = "aa67bd4c-8475-432d-bd41-39f255720e0a";
pub const APP_ID: &str = "2891555a-92ff-42e6-80fa-6e1300c6b5c6";
pub const ISSUER: &str = "https://api.botframework.com";

/// An RSA signing key with its kid.
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

fn make_key(kid: &str) -> SigningKey {
    let key = RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let pem = key.to_pkcs1_pem(LineEnding::LF).unwrap();
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let jwk = json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    });
    SigningKey {
        kid: kid.to_owned(),
        encoding,
        jwk,
    }
}

/// Two keys per test binary (generation is slow-ish).
pub fn key(index: usize) -> &'static SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    &KEYS.get_or_init(|| vec![make_key("key-1"), make_key("key-2")])[index]
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a valid callback token.
pub fn claims() -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": APP_ID, "tid": TENANT, "iat": now, "nbf": now - 5, "exp": now + 600})
}

/// Sign `claims` with key `key` under `kid`.
pub fn sign_with(claims: &Value, key: &SigningKey, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

pub fn sign(claims: &Value) -> String {
    sign_with(claims, key(0), &key(0).kid)
}

pub fn valid_token() -> String {
    sign(&claims())
}

/// A request the fake Graph saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub client_request_id: Option<String>,
    pub return_client_request_id: Option<String>,
    pub authorization: Option<String>,
    pub body: String,
    pub at: Instant,
}

/// A scripted answer to `POST .../calls`.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub body: Value,
}

#[derive(Default)]
pub struct CloudState {
    pub token_fetches: usize,
    pub token_expires_in: u64,
    pub token_forms: Vec<HashMap<String, String>>,
    pub seen: Vec<Seen>,
    pub create_script: VecDeque<Scripted>,
    pub live_calls: HashSet<String>,
    pub jwks_fetches: usize,
    pub published: Vec<Value>,
    /// When set, `POST .../calls` first posts this body to the call's callbackUri
    /// (with `{id}` replaced by the new call id), before answering 201.
    pub notify_before_201: Option<String>,
}

/// The stand-in cloud: token endpoint, Graph (`/beta`), OpenID + JWKS (`/v1/...`).
#[derive(Clone)]
pub struct Cloud {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<CloudState>>,
}

impl Cloud {
    pub async fn start() -> Cloud {
        let state = Arc::new(Mutex::new(CloudState {
            token_expires_in: 3599,
            published: vec![key(0).jwk.clone()],
            ..Default::default()
        }));
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/beta/communications/calls", post(create_call))
            .route("/beta/app/calls", post(create_call))
            .route(
                "/beta/communications/calls/{id}",
                get(get_call).delete(delete_call),
            )
            .route(
                "/beta/communications/calls/{id}/keepAlive",
                post(keep_alive),
            )
            .route("/v1/.well-known/openidconfiguration", get(openid))
            .route("/v1/keys", get(jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Cloud { addr, state }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn graph_url(&self) -> String {
        format!("{}/beta", self.base())
    }
    pub fn token_url(&self) -> String {
        format!("{}/{TENANT}/oauth2/v2.0/token", self.base())
    }
    pub fn openid_url(&self) -> String {
        format!("{}/v1/.well-known/openidconfiguration", self.base())
    }
    pub fn lock(&self) -> std::sync::MutexGuard<'_, CloudState> {
        self.state.lock().unwrap()
    }
    pub fn seen(&self, method: &str, path_contains: &str) -> Vec<Seen> {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.method == method && s.path.contains(path_contains))
            .cloned()
            .collect()
    }
    pub fn graph_config(&self) -> graph::GraphConfig {
        graph::GraphConfig::new(self.graph_url(), self.token_url(), APP_ID, "secret")
            .backoff(Duration::from_millis(20), Duration::from_millis(100))
    }
    pub fn client(&self) -> graph::GraphClient {
        graph::GraphClient::new(self.graph_config()).unwrap()
    }
    pub fn auth_config(&self) -> graph::AuthConfig {
        graph::AuthConfig::new(APP_ID, self.openid_url())
    }
}

fn record(
    state: &Arc<Mutex<CloudState>>,
    method: &str,
    path: String,
    headers: &HeaderMap,
    body: String,
) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.lock().unwrap().seen.push(Seen {
        method: method.to_owned(),
        path,
        client_request_id: h("client-request-id"),
        return_client_request_id: h("return-client-request-id"),
        authorization: h("authorization"),
        body,
        at: Instant::now(),
    });
}

fn graph_error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("request-id", "req-fake-1")],
        axum::Json(json!({"error": {"code": code, "message": message,
            "innerError": {"request-id": "req-fake-1", "date": "2026-11-27T10:00:00"}}})),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer token-"))
}

async fn token(State(state): State<Arc<Mutex<CloudState>>>, body: String) -> Response {
    let form: HashMap<String, String> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%3A", ":").replace("%2F", "/")))
        .collect();
    let mut s = state.lock().unwrap();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_secret").map(String::as_str) != Some("secret")
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client", "error_description": "bad secret"})),
        )
            .into_response();
    }
    s.token_fetches += 1;
    s.token_forms.push(form);
    let n = s.token_fetches;
    axum::Json(
        json!({"token_type": "Bearer", "expires_in": s.token_expires_in,
                      "access_token": format!("token-{n}")}),
    )
    .into_response()
}

async fn create_call(
    State(state): State<Arc<Mutex<CloudState>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    record(
        &state,
        "POST",
        uri.path().to_owned(),
        &headers,
        body.clone(),
    );
    if !authorized(&headers) {
        return graph_error(401, "InvalidAuthenticationToken", "no token");
    }
    let scripted = state.lock().unwrap().create_script.pop_front();
    if let Some(s) = scripted {
        let mut r = (StatusCode::from_u16(s.status).unwrap(), axum::Json(s.body)).into_response();
        r.headers_mut()
            .insert("request-id", "req-fake-2".parse().unwrap());
        if let Some(ra) = s.retry_after {
            r.headers_mut().insert("retry-after", ra.parse().unwrap());
        }
        return r;
    }
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let id = uuid::Uuid::new_v4().to_string();
    let notify = state.lock().unwrap().notify_before_201.clone();
    if let (Some(template), Some(callback)) = (notify, request["callbackUri"].as_str()) {
        let body = template.replace("{id}", &id);
        let status = reqwest::Client::new()
            .post(callback)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 202);
    }
    state.lock().unwrap().live_calls.insert(id.clone());
    let mut call = request.clone();
    call["@odata.type"] = json!("#microsoft.graph.call");
    call["state"] = json!("establishing");
    call["id"] = json!(id);
    call["myParticipantId"] = json!("bot-participant");
    let cid = headers
        .get("client-request-id")
        .cloned()
        .unwrap_or_else(|| "none".parse().unwrap());
    (
        StatusCode::CREATED,
        [
            (
                "location",
                format!("https://graph.example/beta/communications/calls/{id}"),
            ),
            ("request-id", "req-fake-3".to_owned()),
        ],
        [("client-request-id", cid)],
        axum::Json(call),
    )
        .into_response()
}

async fn get_call(
    State(state): State<Arc<Mutex<CloudState>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        "GET",
        format!("/calls/{id}"),
        &headers,
        String::new(),
    );
    if !state.lock().unwrap().live_calls.contains(&id) {
        return call_not_found();
    }
    axum::Json(json!({"@odata.type": "#microsoft.graph.call", "state": "established", "id": id}))
        .into_response()
}

fn call_not_found() -> Response {
    graph_error(404, "8506", "Call not found")
}

async fn delete_call(
    State(state): State<Arc<Mutex<CloudState>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        "DELETE",
        format!("/calls/{id}"),
        &headers,
        String::new(),
    );
    if state.lock().unwrap().live_calls.remove(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        call_not_found()
    }
}

async fn keep_alive(
    State(state): State<Arc<Mutex<CloudState>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        "POST",
        format!("/calls/{id}/keepAlive"),
        &headers,
        String::new(),
    );
    if state.lock().unwrap().live_calls.contains(&id) {
        StatusCode::OK.into_response()
    } else {
        call_not_found()
    }
}

async fn openid(State(state): State<Arc<Mutex<CloudState>>>, headers: HeaderMap) -> Response {
    let _ = state;
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    axum::Json(
        json!({"issuer": ISSUER, "jwks_uri": format!("http://{host}/v1/keys"),
                      "id_token_signing_alg_values_supported": ["RS256"]}),
    )
    .into_response()
}

async fn jwks(State(state): State<Arc<Mutex<CloudState>>>) -> Response {
    let mut s = state.lock().unwrap();
    s.jwks_fetches += 1;
    axum::Json(json!({"keys": s.published.clone()})).into_response()
}

/// POST `body` to `url` with an optional bearer token; the status.
pub async fn post_callback(url: &str, token: Option<&str>, body: String) -> u16 {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Serve `router` on 127.0.0.1; the base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A commsNotifications body with one call-state notification.
pub fn state_body(call_id: &str, state: &str) -> String {
    json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [{
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": if state == "terminated" { "deleted" } else { "updated" },
            "resourceUrl": format!("/communications/calls/{call_id}"),
            "resourceData": {"@odata.type": "#microsoft.graph.call", "state": state, "id": call_id,
                             "resultInfo": if state == "terminated" { json!({"code": "200", "subcode": 5001, "message": "bye"}) } else { Value::Null }}
        }]
    })
    .to_string()
}

/// Wait until `cond` holds (polling), or panic after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
