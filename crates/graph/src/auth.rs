//! Inbound authentication of callbacks: the service signs each notification POST with
//! an RS256 JWT (`Authorization: Bearer <jwt>`, header `kid`).
//!
//! [`JwtValidator`] checks the signature with keys from the configured OpenID
//! configuration document (its `jwks_uri`), the issuer (a configurable list, by default
//! `https://api.botframework.com`), the audience (the bot's app id), `exp`/`nbf`, and the
//! tenant claim `tid` (present, and in an allowed list if one is configured).
//!
//! Keys are cached. They are fetched again when older than
//! [`AuthConfig::keys_max_age`] (checked on each request) and when a token names an
//! unknown `kid` (key rotation), at most once per [`AuthConfig::min_refresh_interval`] so
//! a stream of forged `kid`s cannot make the bot hammer the key endpoint.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::Mutex;

/// The issuer of Graph calling callbacks.
pub const BOT_FRAMEWORK_ISSUER: &str = "https://api.botframework.com";
/// A second issuer that the Microsoft samples also accept.
pub const GRAPH_ISSUER: &str = "https://graph.microsoft.com";

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
    /// At most one key fetch per this interval (default 30 s).
    pub min_refresh_interval: Duration,
    /// Clock skew allowed on `exp`/`nbf` (default 60 s).
    pub leeway: Duration,
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
            leeway: Duration::from_secs(60),
        }
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
    /// The token is not a JWT.
    #[error("malformed JWT: {0}")]
    Malformed(String),
    /// The token is signed with another algorithm than RS256.
    #[error("JWT algorithm {0} is not accepted (expected RS256)")]
    UnsupportedAlgorithm(String),
    /// The token header has no `kid`.
    #[error("JWT header has no kid")]
    MissingKid,
    /// No published key has this `kid` (even after fetching the keys again).
    #[error("no signing key with kid `{0}` in the published keys")]
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
    /// `tid` is not an allowed tenant.
    #[error("tenant `{0}` is not allowed")]
    TenantNotAllowed(String),
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCaller {
    /// `iss`.
    pub issuer: String,
    /// `tid`.
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

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// Validates callback JWTs (see the [module documentation](self)).
pub struct JwtValidator {
    config: AuthConfig,
    http: reqwest::Client,
    cache: Mutex<KeyCache>,
    validation: Validation,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("config", &self.config)
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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        JwtValidator {
            config,
            http,
            cache: Mutex::new(KeyCache::default()),
            validation,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Check the value of an `Authorization` header.
    pub async fn validate(&self, authorization: Option<&str>) -> Result<VerifiedCaller, AuthError> {
        let value = authorization.ok_or(AuthError::MissingToken)?.trim();
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(AuthError::NotBearer),
        };
        let header = decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::UnsupportedAlgorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(AuthError::MissingKid)?;
        let key = self.key(&kid).await?;
        let data = decode::<Claims>(token, &key, &self.validation).map_err(|e| {
            AuthError::Invalid(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".to_owned(),
                ErrorKind::ImmatureSignature => "token not valid yet (nbf)".to_owned(),
                ErrorKind::InvalidIssuer => {
                    format!(
                        "issuer not accepted (expected one of {:?})",
                        self.config.issuers
                    )
                }
                ErrorKind::InvalidAudience => {
                    format!("audience is not this bot's app id {}", self.config.app_id)
                }
                ErrorKind::InvalidSignature => "bad signature".to_owned(),
                ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
                _ => e.to_string(),
            })
        })?;
        let claims = data.claims;
        let tenant = claims
            .tid
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::MissingTenant)?;
        if !self.config.allowed_tenants.is_empty()
            && !self
                .config
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

    /// The key for `kid`, fetching the key set when stale or when `kid` is unknown
    /// (rate-limited).
    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let mut cache = self.cache.lock().await;
        let may_fetch = cache
            .last_attempt
            .is_none_or(|t| t.elapsed() >= self.config.min_refresh_interval);
        let stale = cache
            .fetched_at
            .is_none_or(|t| t.elapsed() >= self.config.keys_max_age);
        let mut fetch_error = None;
        if may_fetch && (stale || !cache.keys.contains_key(kid)) {
            cache.last_attempt = Some(Instant::now());
            match self.fetch_keys().await {
                Ok(keys) => {
                    tracing::debug!(count = keys.len(), "fetched callback signing keys");
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                Err(e) => {
                    tracing::warn!("cannot fetch callback signing keys: {e}");
                    fetch_error = Some(e);
                }
            }
        }
        match (cache.keys.get(kid), fetch_error) {
            (Some(key), _) => Ok(key.clone()),
            (None, Some(e)) => Err(AuthError::KeysUnavailable(e)),
            (None, None) => Err(AuthError::UnknownKey(kid.to_owned())),
        }
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let url = &self.config.openid_config_url;
        let openid: OpenIdConfiguration = self.get_json(url).await?;
        let set: JwkSet = self.get_json(&openid.jwks_uri).await?;
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
            return Err(format!("{} published no usable keys", openid.jwks_uri));
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: unreadable JSON: {e}"))
    }
}
