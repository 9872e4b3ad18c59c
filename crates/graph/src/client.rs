//! [`GraphClient`]: the calls API over HTTP, with OAuth2 client-credentials tokens,
//! request ids and retries.
//!
//! - Tokens come from `token_url` (client credentials, scope
//!   `https://graph.microsoft.com/.default`), are cached and refreshed
//!   [`GraphConfig::token_refresh_margin`] before they expire (half-way through their
//!   life when that is shorter); one fetch at a time, concurrent callers wait for it.
//! - Every request carries a fresh `client-request-id` (the same across its retries) and
//!   `return-client-request-id: true`; errors carry the service's `request-id`.
//! - `429` and `503` (honouring `Retry-After` seconds) and transport errors (connect,
//!   timeout) are retried with exponential backoff and jitter, up to
//!   [`GraphConfig::max_attempts`]; other errors are not.
//! - Create-call requests are checked with [`signaling::validate_create_call`] first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use signaling::actions::{Action, ParticipantAction};
use signaling::{Call, validate_create_call};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::error::GraphError;

/// The default scope of client-credentials tokens for Graph.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Configuration of a [`GraphClient`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GraphConfig {
    /// Base URL of the API version, e.g. `https://graph.microsoft.com/v1.0`,
    /// `https://graph.microsoft.com/beta` or `{emulator}/beta`.
    pub base_url: String,
    /// OAuth2 token endpoint, e.g.
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    pub token_url: String,
    /// The bot's application (client) id.
    pub client_id: String,
    /// The application's client secret (unused when `client_certificate` is set).
    pub client_secret: String,
    /// The application's certificate credential: when set, token requests carry a
    /// client assertion signed with it instead of the secret.
    pub client_certificate: Option<crate::assertion::ClientCertificate>,
    /// Token scope (default [`GRAPH_SCOPE`]).
    pub scope: String,
    /// Create calls with the deprecated `POST /app/calls` instead of
    /// `POST /communications/calls` (default false).
    pub legacy_app_calls: bool,
    /// Attempts per request, first included (default 4).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter (default 250 ms).
    pub base_backoff: Duration,
    /// Largest backoff delay (default 8 s).
    pub max_backoff: Duration,
    /// Largest `Retry-After` honoured; longer values are cut to this (default 60 s).
    pub max_retry_after: Duration,
    /// Timeout of one HTTP attempt (default 30 s).
    pub request_timeout: Duration,
    /// Connect timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Refresh tokens this long before they expire (default 5 min).
    pub token_refresh_margin: Duration,
}

impl GraphConfig {
    /// A configuration with the defaults above.
    pub fn new(
        base_url: impl Into<String>,
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        GraphConfig {
            base_url: base_url.into(),
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            client_certificate: None,
            scope: GRAPH_SCOPE.to_owned(),
            legacy_app_calls: false,
            max_attempts: 4,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            token_refresh_margin: Duration::from_secs(300),
        }
    }

    /// Authenticate with a certificate (a client assertion) instead of the secret.
    pub fn client_certificate(mut self, certificate: crate::assertion::ClientCertificate) -> Self {
        self.client_certificate = Some(certificate);
        self
    }

    /// Use the deprecated `POST /app/calls` path to create calls.
    pub fn legacy_app_calls(mut self, legacy: bool) -> Self {
        self.legacy_app_calls = legacy;
        self
    }

    /// Set the attempts per request (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Set the first backoff delay and the largest one.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_backoff = base;
        self.max_backoff = max.max(base);
        self
    }

    /// Set the timeout of one HTTP attempt.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Set how long before expiry tokens are refreshed.
    pub fn token_refresh_margin(mut self, margin: Duration) -> Self {
        self.token_refresh_margin = margin;
        self
    }
}

/// A successful answer: status, headers, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Debug)]
struct CachedToken {
    value: String,
    refresh_at: Instant,
}

#[derive(Debug)]
struct Inner {
    config: GraphConfig,
    http: reqwest::Client,
    token: Mutex<Option<CachedToken>>,
}

/// A client of the Graph calls API. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
    #[serde(rename = "innerError", alias = "innererror")]
    inner_error: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorBody {
    error: Option<String>,
    error_description: Option<String>,
}

impl GraphClient {
    /// A client for `config`.
    pub fn new(config: GraphConfig) -> Result<Self, GraphError> {
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(GraphError::Config(format!(
                "base_url `{}` must be an http(s) URL, e.g. https://graph.microsoft.com/v1.0",
                config.base_url
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| GraphError::Config(format!("HTTP client: {e}")))?;
        Ok(GraphClient {
            inner: Arc::new(Inner {
                config,
                http,
                token: Mutex::new(None),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GraphConfig {
        &self.inner.config
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.inner.config.base_url.trim_end_matches('/'),
            path
        )
    }

    /// A valid access token: the cached one, or a fresh one from the token endpoint.
    /// Concurrent callers share one fetch.
    pub async fn access_token(&self) -> Result<String, GraphError> {
        let mut slot = self.inner.token.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let fetched = self.fetch_token().await?;
        let value = fetched.value.clone();
        *slot = Some(fetched);
        Ok(value)
    }

    /// Forget the cached token (the next request fetches a new one).
    pub async fn invalidate_token(&self) {
        *self.inner.token.lock().await = None;
    }

    async fn fetch_token(&self) -> Result<CachedToken, GraphError> {
        let c = &self.inner.config;
        let assertion = match &c.client_certificate {
            Some(cert) => Some(cert.assertion(&c.client_id, &c.token_url)?),
            None => None,
        };
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
        ];
        match &assertion {
            Some(a) => {
                form.push(("client_assertion_type", crate::assertion::ASSERTION_TYPE));
                form.push(("client_assertion", a.as_str()));
            }
            None => form.push(("client_secret", c.client_secret.as_str())),
        }
        form.push(("scope", c.scope.as_str()));
        let started = Instant::now();
        let response = self
            .inner
            .http
            .post(&c.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| GraphError::Token {
                status: None,
                message: format!("cannot reach {}: {e}", c.token_url),
            })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| GraphError::Token {
            status: Some(status),
            message: format!("reading the answer: {e}"),
        })?;
        if !(200..300).contains(&status) {
            let detail = serde_json::from_slice::<TokenErrorBody>(&body)
                .ok()
                .and_then(|b| b.error_description.or(b.error))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(GraphError::Token {
                status: Some(status),
                message: format!("refused the client credentials: {detail}"),
            });
        }
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| GraphError::Token {
                status: Some(status),
                message: format!("unreadable token response: {e}"),
            })?;
        // `expires_in` is a number (Entra ID v2) or a numeric string (v1).
        let lifetime = match token.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(3600));
        let margin = c.token_refresh_margin;
        let fresh_for = if lifetime > margin * 2 {
            lifetime - margin
        } else {
            lifetime / 2
        };
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "fetched a Graph access token"
        );
        Ok(CachedToken {
            value: token.access_token,
            refresh_at: started + fresh_for,
        })
    }

    /// Send one request with retries; a non-2xx final answer is an error.
    async fn execute(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Answer, GraphError> {
        let c = &self.inner.config;
        let url = self.url(path);
        let client_request_id = Uuid::new_v4().to_string();
        let max_attempts = c.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.access_token().await?;
            let mut request = self
                .inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .header("client-request-id", &client_request_id)
                .header("return-client-request-id", "true");
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    let retryable = e.is_connect() || e.is_timeout();
                    if retryable && attempt < max_attempts {
                        let delay = self.backoff(attempt);
                        tracing::warn!(%method, %url, %client_request_id, attempt, ?delay,
                            "transport error, retrying: {e}");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(GraphError::Transport {
                        message: e.to_string(),
                        client_request_id,
                        attempts: attempt,
                    });
                }
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            if (status == 429 || status == 503) && attempt < max_attempts {
                let delay = retry_after(&headers)
                    .map(|d| d.min(c.max_retry_after))
                    .unwrap_or_else(|| self.backoff(attempt));
                tracing::warn!(%method, %url, %client_request_id, status, attempt, ?delay,
                    "throttled or unavailable, retrying");
                // Drain the body so the connection can be reused.
                let _ = response.bytes().await;
                tokio::time::sleep(delay).await;
                continue;
            }
            let body = match response.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) if (200..300).contains(&status) => {
                    return Err(GraphError::InvalidResponse {
                        status,
                        message: format!("reading the body: {e}"),
                    });
                }
                Err(_) => Vec::new(),
            };
            if (200..300).contains(&status) {
                return Ok(Answer {
                    status,
                    headers,
                    body,
                });
            }
            if status == 401 {
                // The token may have been revoked; fetch a new one next time.
                self.invalidate_token().await;
            }
            return Err(service_error(
                status,
                &headers,
                &body,
                client_request_id,
                attempt,
            ));
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let c = &self.inner.config;
        let exp = c
            .base_backoff
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(c.max_backoff);
        // Jitter: between half and all of the exponential delay.
        let random = (Uuid::new_v4().as_u128() & 0xffff_ffff) as f64 / f64::from(u32::MAX);
        exp.mul_f64(0.5 + 0.5 * random)
    }

    /// `POST /communications/calls` (or `/app/calls` with
    /// [`GraphConfig::legacy_app_calls`]): create a call. The request is validated
    /// first; the answer is the created call (`state: establishing`, with its `id`).
    pub async fn create_call(&self, request: &Call) -> Result<Call, GraphError> {
        validate_create_call(request)?;
        let path = if self.inner.config.legacy_app_calls {
            "/app/calls"
        } else {
            "/communications/calls"
        };
        let answer = self
            .execute(Method::POST, path, Some(request.to_json()))
            .await?;
        let call = parse_call(&answer)?;
        tracing::info!(
            call_id = call.id.value().map(String::as_str).unwrap_or("?"),
            location = answer
                .headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            "call created"
        );
        Ok(call)
    }

    /// `GET /communications/calls/{id}`.
    pub async fn get_call(&self, call_id: &str) -> Result<Call, GraphError> {
        let answer = self
            .execute(
                Method::GET,
                &format!("/communications/calls/{call_id}"),
                None,
            )
            .await?;
        parse_call(&answer)
    }

    /// `DELETE /communications/calls/{id}`: hang up.
    pub async fn hang_up(&self, call_id: &str) -> Result<(), GraphError> {
        self.execute(
            Method::DELETE,
            &format!("/communications/calls/{call_id}"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `POST /communications/calls/{id}/keepAlive`. A `404` ([`GraphError::is_not_found`])
    /// means the call is gone.
    pub async fn keep_alive(&self, call_id: &str) -> Result<(), GraphError> {
        self.execute(
            Method::POST,
            &format!("/communications/calls/{call_id}/keepAlive"),
            Some(String::new()),
        )
        .await
        .map(|_| ())
    }
}

impl GraphClient {
    /// `POST /communications/calls/{id}/{action}` with `body` (an in-call action:
    /// `answer`, `reject`, `redirect`, `mute`, `playPrompt`, ...). The body is checked
    /// first as Graph would check it ([`Action::problems`]). Graph answers `202
    /// Accepted` (`None`) or `200` with the action's `commsOperation` (`Some`).
    pub async fn call_action(
        &self,
        call_id: &str,
        action: Action,
        body: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, GraphError> {
        refuse(action.name(), action.problems(body))?;
        let answer = self
            .execute(Method::POST, &action.path(call_id), Some(body.to_string()))
            .await?;
        operation_of(&answer, action)
    }
}

impl GraphClient {
    /// An action on participant `participant_id` of call `call_id`:
    /// `POST .../participants/{participantId}/mute` (Graph answers `200` with a
    /// `muteParticipantOperation`: `Some`) or `DELETE .../participants/{participantId}`
    /// (`204`: `None`). The body is checked first as Graph would check it
    /// ([`ParticipantAction::problems`]); `delete` sends none.
    pub async fn participant_action(
        &self,
        call_id: &str,
        participant_id: &str,
        action: ParticipantAction,
        body: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, GraphError> {
        refuse(action.name(), action.problems(body))?;
        let path = action.path(call_id, participant_id);
        let answer = match action {
            ParticipantAction::Delete => self.execute(Method::DELETE, &path, None).await?,
            _ => {
                self.execute(Method::POST, &path, Some(body.to_string()))
                    .await?
            }
        };
        operation_of(&answer, action)
    }
}

/// The problems of an action's body as the error that keeps it from being sent.
fn refuse(
    action: &'static str,
    problems: Vec<signaling::actions::ActionProblem>,
) -> Result<(), GraphError> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(GraphError::InvalidAction { action, problems })
}

/// An action's answer: `None` without a body (`202`, `204`), else its operation.
fn operation_of(
    answer: &Answer,
    action: impl std::fmt::Display,
) -> Result<Option<serde_json::Value>, GraphError> {
    if answer.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&answer.body)
        .map(Some)
        .map_err(|e| GraphError::InvalidResponse {
            status: answer.status,
            message: format!("{action}: not a JSON operation: {e}"),
        })
}

fn parse_call(answer: &Answer) -> Result<Call, GraphError> {
    let text = std::str::from_utf8(&answer.body).map_err(|e| GraphError::InvalidResponse {
        status: answer.status,
        message: format!("body is not UTF-8: {e}"),
    })?;
    Call::from_json(text).map_err(|e| GraphError::InvalidResponse {
        status: answer.status,
        message: format!("not a call resource: {e}"),
    })
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Retry-After` in seconds (HTTP dates are not honoured: backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn service_error(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    client_request_id: String,
    attempts: u32,
) -> GraphError {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let (code, message, inner_request_id) = match detail {
        Some(d) => (d.code, d.message, d.inner_error.and_then(|i| i.request_id)),
        None => {
            let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
            (None, (!text.is_empty()).then_some(text), None)
        }
    };
    GraphError::Service {
        status,
        code,
        message,
        request_id: header(headers, "request-id").or(inner_request_id),
        client_request_id: header(headers, "client-request-id").or(Some(client_request_id)),
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_only() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "3".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let client = GraphClient::new(
            GraphConfig::new("http://127.0.0.1:1/beta", "http://127.0.0.1:1/t", "a", "s")
                .backoff(Duration::from_millis(100), Duration::from_millis(400)),
        )
        .expect("client");
        for _ in 0..50 {
            let d1 = client.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = client.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = client.backoff(9);
            assert!(d9 >= Duration::from_millis(200) && d9 <= Duration::from_millis(400));
        }
    }

    #[test]
    fn service_error_reads_graph_error_json() {
        let body = br#"{"error":{"code":"BadRequest","message":"no targets",
            "innerError":{"request-id":"r-1","date":"2026-01-01T00:00:00"}}}"#;
        let e = service_error(400, &HeaderMap::new(), body, "c-1".into(), 1);
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.code(), Some("BadRequest"));
        let text = e.to_string();
        assert!(text.contains("no targets") && text.contains("r-1") && text.contains("c-1"));
    }
}
