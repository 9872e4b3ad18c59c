//! Inbound authentication of callbacks: the service signs each notification POST with
//! an RS256 JWT (`Authorization: Bearer <jwt>`, header `kid`).
//!
//! [`JwtValidator`] checks the signature with keys from the configured OpenID
//! configuration document (its `jwks_uri`), the issuer (a configurable list, by default
//! `https://api.botframework.com`), the audience (the bot's app id), `exp`/`nbf`, and the
//! tenant claim `tid` (present, and in an allowed list if one is configured).
//! [`AuthConfig::for_jwks`] serves other services' RS256 tokens: keys straight from a
//! JWKS URL, one issuer, no tenant claim required (ACS media streaming's handshake).
//!
//! A token whose header lists critical extensions (`crit`, RFC 7515 §4.1.11) is refused:
//! this validator understands none.
//!
//! ## Keys
//!
//! Keys are cached in a snapshot that requests read without waiting: a request whose
//! `kid` is known is validated at once, whatever a key fetch is doing. Fetches run in a
//! task of their own, one at a time (single flight), each bounded by
//! [`AuthConfig::fetch_timeout`]:
//! - when the keys are older than [`AuthConfig::keys_max_age`], a request starts a
//!   refresh in the background and is served with the stale keys meanwhile (a failed
//!   refresh keeps them);
//! - when a token names an unknown `kid` (key rotation), the request waits for a refresh
//!   (bounded by the fetch timeout) and looks again.
//!
//! Fetches start at most once per [`AuthConfig::min_refresh_interval`], and an unknown
//! `kid` makes a request wait for a refresh at most once per that interval per source
//! address ([`JwtValidator::validate_from`]; requests without a source share one budget);
//! other requests with unknown `kid`s are refused at once. So a stream of forged `kid`s
//! neither delays genuine callbacks nor hammers the key endpoint.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use media_blob::{bounded, excerpt};
use serde::Deserialize;
use tokio::sync::watch;

/// The issuer of Graph calling callbacks.
pub const BOT_FRAMEWORK_ISSUER: &str = "https://api.botframework.com";
/// A second issuer that the Microsoft samples also accept.
pub const GRAPH_ISSUER: &str = "https://graph.microsoft.com";
/// Default bound on one fetch of the signing keys (OpenID document and key set): 5 s.
pub const DEFAULT_KEY_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest OpenID configuration or key set document read: 1 MiB.
pub const MAX_KEY_DOCUMENT_BYTES: usize = 1 << 20;
/// Most source addresses whose unknown-`kid` budget is remembered at a time; when full
/// (and no entry has expired), further sources are refused waiting for a refresh.
const MAX_TRACKED_SOURCES: usize = 4096;
/// Most `crit` names quoted in an error.
const MAX_QUOTED_CRIT: usize = 4;
/// Most characters of a library error message (which may quote the token) in an error.
const MAX_QUOTED_ERROR_CHARS: usize = 200;

/// Configuration of inbound JWT validation.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthConfig {
    /// The bot's application id: the expected `aud`.
    pub app_id: String,
    /// URL of the OpenID configuration document (with `jwks_uri`), e.g. the emulator's
    /// `{emulator}/v1/.well-known/openidconfiguration`.
    pub openid_config_url: String,
    /// Accepted issuers (default: [`BOT_FRAMEWORK_ISSUER`]).
    pub issuers: Vec<String>,
    /// Accepted tenants (`tid`); empty accepts any tenant, but `tid` must be present.
    pub allowed_tenants: Vec<String>,
    /// Fetch the keys again when they are older than this (default 24 h).
    pub keys_max_age: Duration,
    /// At least this long between the end of a key fetch and the start of the next,
    /// and per source address at most one wait for a fetch on an unknown `kid` per this
    /// interval (default 30 s).
    pub min_refresh_interval: Duration,
    /// Bound on one key fetch, both documents (default [`DEFAULT_KEY_FETCH_TIMEOUT`]).
    pub fetch_timeout: Duration,
    /// Clock skew allowed on `exp`/`nbf` (default 60 s).
    pub leeway: Duration,
    /// URL of the key set itself (JWKS), for services that publish no OpenID
    /// configuration document; when set, `openid_config_url` is not read.
    pub jwks_url: Option<String>,
    /// Whether a tenant claim `tid` is required (default true: Graph callbacks carry
    /// one; tokens of other services, e.g. ACS media streaming, may not).
    pub require_tenant: bool,
}

impl AuthConfig {
    /// Validation for the bot `app_id`, keys from `openid_config_url`, the defaults above.
    pub fn new(app_id: impl Into<String>, openid_config_url: impl Into<String>) -> Self {
        AuthConfig {
            app_id: app_id.into(),
            openid_config_url: openid_config_url.into(),
            issuers: vec![BOT_FRAMEWORK_ISSUER.to_owned()],
            allowed_tenants: Vec::new(),
            keys_max_age: Duration::from_secs(24 * 3600),
            min_refresh_interval: Duration::from_secs(30),
            fetch_timeout: DEFAULT_KEY_FETCH_TIMEOUT,
            leeway: Duration::from_secs(60),
            jwks_url: None,
            require_tenant: true,
        }
    }

    /// Validation of tokens for `audience` signed with keys published at `jwks_url`
    /// (a JWKS document, no OpenID configuration), issued by `issuer`, with no tenant
    /// claim required: e.g. Azure Communication Services' media streaming handshake
    /// (issuer `https://acscallautomation.communication.azure.com`, audience the ACS
    /// resource id).
    pub fn for_jwks(
        audience: impl Into<String>,
        jwks_url: impl Into<String>,
        issuer: impl Into<String>,
    ) -> Self {
        let jwks_url = jwks_url.into();
        let mut config = Self::new(audience, jwks_url.clone()).issuers([issuer]);
        config.jwks_url = Some(jwks_url);
        config.require_tenant = false;
        config
    }

    /// Also accept tokens issued by [`GRAPH_ISSUER`].
    pub fn accept_graph_issuer(mut self) -> Self {
        if !self.issuers.iter().any(|i| i == GRAPH_ISSUER) {
            self.issuers.push(GRAPH_ISSUER.to_owned());
        }
        self
    }

    /// Set the accepted issuers.
    pub fn issuers(mut self, issuers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.issuers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// Accept only these tenants.
    pub fn allowed_tenants(mut self, tenants: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// Set the key cache age and the minimum interval between key fetches.
    pub fn key_refresh(mut self, max_age: Duration, min_interval: Duration) -> Self {
        self.keys_max_age = max_age;
        self.min_refresh_interval = min_interval;
        self
    }

    /// Set the bound on one key fetch.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }
}

/// Why a callback was refused (answered `401`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no Authorization header; the service signs every callback")]
    MissingToken,
    /// `Authorization` is not `Bearer <token>`.
    #[error("Authorization is not a Bearer token")]
    NotBearer,
    /// The token is not a JWT (the reason bounded and escaped).
    #[error("malformed JWT: {0}")]
    Malformed(String),
    /// The token is signed with another algorithm than RS256.
    #[error("JWT algorithm {0} is not accepted (expected RS256)")]
    UnsupportedAlgorithm(String),
    /// The token header lists critical extensions (`crit`), which this validator does
    /// not understand (RFC 7515 §4.1.11); the value is a bounded, escaped excerpt.
    #[error(
        "JWT header lists critical extensions this validator does not understand \
         (crit: {0}); RFC 7515 §4.1.11 requires refusing the token"
    )]
    UnsupportedCritical(String),
    /// The token header has no `kid`.
    #[error("JWT header has no kid")]
    MissingKid,
    /// No published key has this `kid` (after fetching the keys again, or without a
    /// fetch when fetches for unknown `kid`s are rate-limited); the value is a bounded,
    /// escaped excerpt of the `kid`.
    #[error("no signing key with kid {0} in the published keys")]
    UnknownKey(String),
    /// The keys could not be fetched.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
    /// The token failed validation (signature, issuer, audience, expiry ...).
    #[error("JWT rejected: {0}")]
    Invalid(String),
    /// No `tid` claim.
    #[error("JWT has no tenant claim (tid)")]
    MissingTenant,
    /// `tid` is not an allowed tenant (quoted as a bounded, escaped excerpt).
    #[error("tenant {} is not allowed", media_blob::excerpt(.0))]
    TenantNotAllowed(String),
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCaller {
    /// `iss`.
    pub issuer: String,
    /// `tid` (empty when absent and [`AuthConfig::require_tenant`] is false).
    pub tenant_id: String,
    /// `exp` (seconds since the epoch).
    pub expires_at: u64,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    #[serde(default)]
    tid: Option<String>,
    exp: u64,
}

#[derive(Debug, Deserialize)]
struct OpenIdConfiguration {
    jwks_uri: String,
}

/// The published keys at one time; replaced whole by a refresh.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// The outcome of one refresh, as its waiters see it.
type RefreshOutcome = Option<Result<(), String>>;

/// Bookkeeping of key fetches (under a short, never awaited lock).
#[derive(Default)]
struct RefreshState {
    /// The refresh running now, if any: its outcome is sent when it ends.
    in_flight: Option<watch::Receiver<RefreshOutcome>>,
    /// When the last fetch started, or ended if it has.
    last_attempt: Option<Instant>,
    /// Why the last fetch failed (cleared by a successful one).
    last_error: Option<String>,
    /// Per source, when an unknown `kid` last made a request wait for a refresh.
    unknown_kid_waits: HashMap<Option<IpAddr>, Instant>,
}

impl RefreshState {
    /// The running refresh, forgetting one whose task ended without reporting.
    fn running(&mut self) -> Option<watch::Receiver<RefreshOutcome>> {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|rx| rx.has_changed().is_err())
        {
            self.in_flight = None;
        }
        self.in_flight.clone()
    }

    fn may_start(&self, now: Instant, interval: Duration) -> bool {
        self.last_attempt
            .is_none_or(|t| now.saturating_duration_since(t) >= interval)
    }

    /// Whether `source` may wait for a refresh on an unknown `kid` now; if so, its
    /// budget is spent.
    fn take_unknown_kid_wait(
        &mut self,
        source: Option<IpAddr>,
        now: Instant,
        interval: Duration,
    ) -> bool {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < interval;
        if self.unknown_kid_waits.get(&source).is_some_and(recent) {
            return false;
        }
        if self.unknown_kid_waits.len() >= MAX_TRACKED_SOURCES
            && !self.unknown_kid_waits.contains_key(&source)
        {
            self.unknown_kid_waits.retain(|_, t| recent(t));
            if self.unknown_kid_waits.len() >= MAX_TRACKED_SOURCES {
                return false;
            }
        }
        self.unknown_kid_waits.insert(source, now);
        true
    }
}

/// What the validator shares with its refresh tasks.
struct Keys {
    config: AuthConfig,
    http: reqwest::Client,
    current: RwLock<Arc<KeySet>>,
    refresh: std::sync::Mutex<RefreshState>,
}

/// Validates callback JWTs (see the [module documentation](self)).
pub struct JwtValidator {
    keys: Arc<Keys>,
    validation: Validation,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("config", &self.keys.config)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// A validator for `config`. Keys are fetched on first use.
    pub fn new(config: AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&config.app_id]);
        validation.set_issuer(&config.issuers);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = config.leeway.as_secs();
        // The whole fetch (both documents) is bounded by `fetch_timeout` in the refresh
        // task; the connection attempt alone by the same.
        let http = reqwest::Client::builder()
            .connect_timeout(config.fetch_timeout)
            .build()
            .unwrap_or_default();
        JwtValidator {
            keys: Arc::new(Keys {
                config,
                http,
                current: RwLock::new(Arc::new(KeySet::default())),
                refresh: std::sync::Mutex::new(RefreshState::default()),
            }),
            validation,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.keys.config
    }

    /// Check the value of an `Authorization` header, from a request whose source
    /// address is unknown (such requests share one unknown-`kid` budget; see
    /// [`validate_from`](Self::validate_from)).
    pub async fn validate(&self, authorization: Option<&str>) -> Result<VerifiedCaller, AuthError> {
        self.validate_from(authorization, None).await
    }

    /// Check the value of an `Authorization` header from a request sent by `source`
    /// (its peer address, if known): an unknown `kid` makes a request from `source` wait
    /// for a key refresh at most once per [`AuthConfig::min_refresh_interval`].
    pub async fn validate_from(
        &self,
        authorization: Option<&str>,
        source: Option<IpAddr>,
    ) -> Result<VerifiedCaller, AuthError> {
        let config = &self.keys.config;
        let value = authorization.ok_or(AuthError::MissingToken)?.trim();
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(AuthError::NotBearer),
        };
        let header = decode_header(token)
            .map_err(|e| AuthError::Malformed(bounded(&e.to_string(), MAX_QUOTED_ERROR_CHARS)))?;
        if let Some(crit) = &header.crit {
            return Err(AuthError::UnsupportedCritical(quote_crit(crit)));
        }
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::UnsupportedAlgorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(AuthError::MissingKid)?;
        let key = self.key(&kid, source).await?;
        let data = decode::<Claims>(token, &key, &self.validation).map_err(|e| {
            AuthError::Invalid(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".to_owned(),
                ErrorKind::ImmatureSignature => "token not valid yet (nbf)".to_owned(),
                ErrorKind::InvalidIssuer => {
                    format!("issuer not accepted (expected one of {:?})", config.issuers)
                }
                ErrorKind::InvalidAudience => {
                    format!("audience is not this bot's app id {}", config.app_id)
                }
                ErrorKind::InvalidSignature => "bad signature".to_owned(),
                ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
                _ => bounded(&e.to_string(), MAX_QUOTED_ERROR_CHARS),
            })
        })?;
        let claims = data.claims;
        let tenant = match claims.tid.filter(|t| !t.is_empty()) {
            Some(t) => t,
            None if config.require_tenant => return Err(AuthError::MissingTenant),
            None => String::new(),
        };
        if !config.allowed_tenants.is_empty()
            && !config
                .allowed_tenants
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&tenant))
        {
            return Err(AuthError::TenantNotAllowed(tenant));
        }
        Ok(VerifiedCaller {
            issuer: claims.iss,
            tenant_id: tenant,
            expires_at: claims.exp,
        })
    }

    /// The key for `kid`: from the snapshot at once if known (starting a background
    /// refresh when the keys are stale); otherwise after a refresh, if the rate limits
    /// allow waiting for one.
    async fn key(&self, kid: &str, source: Option<IpAddr>) -> Result<DecodingKey, AuthError> {
        let keys = &self.keys;
        let interval = keys.config.min_refresh_interval;
        let snapshot = keys.snapshot();
        if let Some(key) = snapshot.keys.get(kid) {
            if snapshot
                .fetched_at
                .is_none_or(|t| t.elapsed() >= keys.config.keys_max_age)
            {
                let mut state = keys.lock_refresh();
                if state.running().is_none() && state.may_start(Instant::now(), interval) {
                    tracing::debug!("callback signing keys are stale: refreshing");
                    Keys::start_refresh(keys, &mut state);
                }
            }
            return Ok(key.clone());
        }
        let wait = {
            let mut state = keys.lock_refresh();
            // A refresh may have ended since the snapshot was read.
            let snapshot = keys.snapshot();
            if let Some(key) = snapshot.keys.get(kid) {
                return Ok(key.clone());
            }
            let now = Instant::now();
            // Before the first keys every request needs them; afterwards an unknown kid
            // waits only within its source's budget.
            let first = snapshot.keys.is_empty();
            match state.running() {
                Some(rx) if first || state.take_unknown_kid_wait(source, now, interval) => Some(rx),
                Some(_) => None,
                None if state.may_start(now, interval)
                    && (first || state.take_unknown_kid_wait(source, now, interval)) =>
                {
                    Some(Keys::start_refresh(keys, &mut state))
                }
                None => None,
            }
        };
        let Some(mut rx) = wait else {
            tracing::debug!(%kid, ?source, "unknown kid: refused without a key fetch (rate limit)");
            let error = keys.lock_refresh().last_error.clone();
            return match error {
                Some(e) if keys.snapshot().keys.is_empty() => Err(AuthError::KeysUnavailable(e)),
                _ => Err(AuthError::UnknownKey(excerpt(kid))),
            };
        };
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Ok(())),
            Err(_) => Err("the key refresh ended without a result".to_owned()),
        };
        match (keys.snapshot().keys.get(kid), outcome) {
            (Some(key), _) => Ok(key.clone()),
            (None, Err(e)) => Err(AuthError::KeysUnavailable(e)),
            (None, Ok(())) => Err(AuthError::UnknownKey(excerpt(kid))),
        }
    }
}

/// `crit` names for an error: at most [`MAX_QUOTED_CRIT`] of them, each a bounded,
/// escaped [`excerpt`].
fn quote_crit(crit: &[String]) -> String {
    if crit.is_empty() {
        return "an empty list, which RFC 7515 also forbids".to_owned();
    }
    let mut quoted: Vec<String> = crit
        .iter()
        .take(MAX_QUOTED_CRIT)
        .map(|name| excerpt(name.as_str()))
        .collect();
    if crit.len() > MAX_QUOTED_CRIT {
        quoted.push(format!("… {} names in all", crit.len()));
    }
    quoted.join(", ")
}

impl Keys {
    /// The current key set (a cheap clone; the lock is held only to copy the pointer).
    fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn lock_refresh(&self) -> std::sync::MutexGuard<'_, RefreshState> {
        self.refresh.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start a refresh in its own task (so that a request that gives up does not cancel
    /// it); the receiver sees its outcome. The caller holds the refresh lock and has
    /// checked that none is running.
    fn start_refresh(
        keys: &Arc<Keys>,
        state: &mut RefreshState,
    ) -> watch::Receiver<RefreshOutcome> {
        let (tx, rx) = watch::channel(None);
        state.last_attempt = Some(Instant::now());
        state.in_flight = Some(rx.clone());
        let keys = Arc::clone(keys);
        tokio::spawn(async move {
            let bound = keys.config.fetch_timeout;
            let result = match tokio::time::timeout(bound, keys.fetch_keys()).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "fetching the keys from {} took longer than {bound:?}",
                    keys.config.openid_config_url
                )),
            };
            let outcome = match result {
                Ok(set) => {
                    tracing::debug!(count = set.len(), "fetched callback signing keys");
                    *keys.current.write().unwrap_or_else(PoisonError::into_inner) =
                        Arc::new(KeySet {
                            keys: set,
                            fetched_at: Some(Instant::now()),
                        });
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!("cannot fetch callback signing keys: {e}");
                    Err(e)
                }
            };
            {
                let mut state = keys.lock_refresh();
                state.in_flight = None;
                // The interval counts from the end of a fetch, so that a slow endpoint
                // is not asked again as soon as it answers.
                state.last_attempt = Some(Instant::now());
                state.last_error = outcome.clone().err();
            }
            tx.send_replace(Some(outcome));
        });
        rx
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let jwks_uri = match &self.config.jwks_url {
            Some(url) => url.clone(),
            None => {
                let url = &self.config.openid_config_url;
                let openid: OpenIdConfiguration = self.get_json(url).await?;
                openid.jwks_uri
            }
        };
        let set: JwkSet = self.get_json(&jwks_uri).await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(e) => tracing::warn!(%kid, "skipping unusable JWK: {e}"),
            }
        }
        if keys.is_empty() {
            return Err(format!("{jwks_uri} published no usable keys"));
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let too_large =
            || format!("GET {url}: the document is larger than {MAX_KEY_DOCUMENT_BYTES} bytes");
        if response
            .content_length()
            .is_some_and(|n| n > MAX_KEY_DOCUMENT_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_KEY_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: unreadable JSON: {e}"))
    }
}
