//! Authentication of a stream's WebSocket handshake, as each platform does it.
//!
//! - **ACS**: `Authorization: Bearer <JWT>`, RS256, issuer
//!   [`ACS_ISSUER`] (configurable), audience the ACS resource id, keys from a JWKS
//!   URL: graph's [`JwtValidator`] with [`AuthConfig::for_jwks`].
//! - **Twilio**: `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, the URL)), the
//!   URL as Twilio requested it (scheme, host, path and query; a WebSocket handshake
//!   has no POST parameters). Behind a proxy, configure the public URL base.
//! - **Vonage**: optional `Authorization: Bearer <token>` (the NCCO's `headers`),
//!   compared in constant time.
//!
//! A dialect without configured credentials is served unauthenticated (development);
//! `serve` says so when it prints the endpoints.

use std::net::IpAddr;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use graph::{AuthConfig, JwtValidator};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::dialect::Dialect;

/// The issuer of ACS media streaming tokens.
pub const ACS_ISSUER: &str = "https://acscallautomation.communication.azure.com";

/// Credentials per dialect (`None`: served without authentication).
#[derive(Debug, Clone, Default)]
pub struct WsAuthConfig {
    /// ACS: JWT validation (audience = the ACS resource id; keys from a JWKS URL).
    pub acs: Option<AuthConfig>,
    /// Twilio: the account's auth token (signs `X-Twilio-Signature`).
    pub twilio_auth_token: Option<String>,
    /// Twilio: the public URL base Twilio connects to, e.g. `wss://media.example.com`
    /// (default: `wss://` or `ws://` and the request's `Host`).
    pub twilio_public_url: Option<String>,
    /// Vonage: the bearer token the NCCO's `headers` carry.
    pub vonage_token: Option<String>,
}

impl WsAuthConfig {
    /// ACS validation for the resource `resource_id`, keys at `jwks_url`, issuer
    /// [`ACS_ISSUER`].
    pub fn acs(resource_id: &str, jwks_url: &str) -> AuthConfig {
        AuthConfig::for_jwks(resource_id, jwks_url, ACS_ISSUER)
    }

    /// Whether `dialect` is served without authentication.
    pub fn is_open(&self, dialect: Dialect) -> bool {
        match dialect {
            Dialect::Acs => self.acs.is_none(),
            Dialect::Twilio => self.twilio_auth_token.is_none(),
            Dialect::Vonage => self.vonage_token.is_none(),
        }
    }
}

/// Checks handshakes against a [`WsAuthConfig`].
pub struct Authenticator {
    config: WsAuthConfig,
    acs: Option<JwtValidator>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("acs", &self.config.acs.is_some())
            .field("twilio", &self.config.twilio_auth_token.is_some())
            .field("vonage", &self.config.vonage_token.is_some())
            .finish()
    }
}

impl Authenticator {
    /// An authenticator for `config` (ACS keys are fetched on first use).
    pub fn new(config: WsAuthConfig) -> Self {
        let acs = config.acs.clone().map(JwtValidator::new);
        Self { config, acs }
    }

    /// Whether the handshake of a `dialect` stream at `path_and_query` with `headers`
    /// from `source` may proceed; `Err` says why not (answered 401).
    pub async fn check(
        &self,
        dialect: Dialect,
        headers: &HeaderMap,
        path_and_query: &str,
        source: Option<IpAddr>,
    ) -> Result<(), String> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        match dialect {
            Dialect::Acs => match &self.acs {
                None => Ok(()),
                Some(v) => v
                    .validate_from(header("authorization"), source)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            },
            Dialect::Twilio => match &self.config.twilio_auth_token {
                None => Ok(()),
                Some(token) => {
                    let signature = header("x-twilio-signature")
                        .ok_or("no X-Twilio-Signature header; Twilio signs every stream")?;
                    let urls: Vec<String> = match &self.config.twilio_public_url {
                        Some(base) => {
                            vec![format!("{}{path_and_query}", base.trim_end_matches('/'))]
                        }
                        None => {
                            let host = header("host").ok_or("no Host header")?;
                            ["wss", "ws"]
                                .iter()
                                .map(|s| format!("{s}://{host}{path_and_query}"))
                                .collect()
                        }
                    };
                    if urls
                        .iter()
                        .any(|url| twilio_signature_matches(token, url, signature))
                    {
                        Ok(())
                    } else {
                        Err(format!(
                            "X-Twilio-Signature does not match {} signed with the auth token",
                            media_blob::excerpt(&urls[0])
                        ))
                    }
                }
            },
            Dialect::Vonage => match &self.config.vonage_token {
                None => Ok(()),
                Some(expected) => {
                    let value = header("authorization")
                        .ok_or("no Authorization header; this endpoint needs the bearer token")?;
                    let token = value
                        .strip_prefix("Bearer ")
                        .ok_or("Authorization is not a Bearer token")?;
                    if constant_time_eq(token.trim().as_bytes(), expected.as_bytes()) {
                        Ok(())
                    } else {
                        Err("the bearer token is not this endpoint's".to_owned())
                    }
                }
            },
        }
    }
}

/// `X-Twilio-Signature` of a request to `url` without POST parameters:
/// base64(HMAC-SHA1(auth token, url)).
pub fn twilio_signature(auth_token: &str, url: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is `url`'s signature with `auth_token` (compared in constant
/// time).
pub fn twilio_signature_matches(auth_token: &str, url: &str, signature: &str) -> bool {
    let Ok(given) = BASE64.decode(signature.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    mac.verify_slice(&given).is_ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_signature_is_hmac_sha1_of_the_url() {
        // RFC 2202 test case 2 (HMAC-SHA1, key "Jefe"), base64 of
        // effcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
        assert_eq!(
            twilio_signature("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
        let url = "wss://example.com/twilio?call=1";
        let sig = twilio_signature("token", url);
        assert!(twilio_signature_matches("token", url, &sig));
        assert!(!twilio_signature_matches(
            "token",
            "wss://example.com/twilio?call=2",
            &sig
        ));
        assert!(!twilio_signature_matches("other", url, &sig));
        assert!(!twilio_signature_matches("token", url, "not base64!"));
    }
}
