//! App credentials by certificate: the client assertion of the Microsoft identity
//! platform's "certificate credentials" (OpenID Connect `private_key_jwt`). The token
//! request carries `client_assertion_type` = [`ASSERTION_TYPE`] and
//! `client_assertion` = a JWT signed RS256 with the certificate's private key: header
//! `x5t#S256` (base64url SHA-256 of the certificate's DER) and `x5t` (SHA-1, for
//! older verifiers); claims `aud` = the token URL, `iss` = `sub` = the client id, a
//! unique `jti`, `nbf`/`iat` now, `exp` 10 minutes on.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha1::Digest;

use crate::error::GraphError;

/// The `client_assertion_type` of a certificate credential.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of one assertion (`exp` - `iat`), seconds.
pub const ASSERTION_LIFETIME_S: u64 = 600;

/// The claims of a client assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    /// The token endpoint URL.
    pub aud: String,
    /// The client id.
    pub iss: String,
    /// The client id.
    pub sub: String,
    /// Unique per assertion.
    pub jti: String,
    /// Not before (Unix seconds).
    pub nbf: u64,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expiry (Unix seconds).
    pub exp: u64,
}

/// The first `CERTIFICATE` block of PEM text, as DER.
pub fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let len = pem[start..].find(END)?;
    let body: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok().filter(|d| !d.is_empty())
}

/// Base64url SHA-256 of `der` (the `x5t#S256` of a certificate).
pub fn thumbprint_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

/// Base64url SHA-1 of `der` (the `x5t` of a certificate).
pub fn thumbprint_sha1(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der))
}

/// An app's certificate credential: its certificate and RSA private key.
#[derive(Clone)]
pub struct ClientCertificate {
    der: Vec<u8>,
    key: EncodingKey,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.x5t_s256())
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// From PEM text: the certificate (its first `CERTIFICATE` block) and its RSA
    /// private key (PKCS#1 or PKCS#8).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, GraphError> {
        let der = certificate_der(cert_pem).ok_or_else(|| {
            GraphError::Config("client certificate: no PEM CERTIFICATE block".into())
        })?;
        let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|e| {
            GraphError::Config(format!("client key: not a PEM RSA private key: {e}"))
        })?;
        Ok(ClientCertificate { der, key })
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Base64url SHA-256 thumbprint of the certificate (`x5t#S256`).
    pub fn x5t_s256(&self) -> String {
        thumbprint_s256(&self.der)
    }

    /// A fresh client assertion for `client_id` at `token_url`.
    pub fn assertion(&self, client_id: &str, token_url: &str) -> Result<String, GraphError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.x5t_s256 = Some(self.x5t_s256());
        header.x5t = Some(thumbprint_sha1(&self.der));
        let claims = AssertionClaims {
            aud: token_url.to_owned(),
            iss: client_id.to_owned(),
            sub: client_id.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_S,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| GraphError::Config(format!("signing the client assertion: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};

    /// A self-signed RSA certificate (PEM), its key (PEM) and public key (PKCS#1 PEM).
    fn rsa_cert() -> (String, String, String) {
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key");
        let key_pem = key.to_pkcs8_pem(LineEnding::LF).expect("PEM").to_string();
        let public = key
            .to_public_key()
            .to_pkcs1_pem(LineEnding::LF)
            .expect("PEM");
        let pair = rcgen::KeyPair::from_pem(&key_pem).expect("rcgen key");
        let cert = rcgen::CertificateParams::new(vec!["bot.example".to_owned()])
            .expect("params")
            .self_signed(&pair)
            .expect("certificate");
        (cert.pem(), key_pem, public)
    }

    #[test]
    fn assertion_has_the_documented_shape() {
        let (cert_pem, key_pem, public) = rsa_cert();
        let cert = ClientCertificate::from_pem(&cert_pem, &key_pem).expect("loads");
        let der = certificate_der(&cert_pem).expect("DER");
        let url = "https://login.microsoftonline.com/t/oauth2/v2.0/token";
        let a = cert.assertion("app-id", url).expect("signed");
        let header = jsonwebtoken::decode_header(&a).expect("header");
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.x5t_s256, Some(thumbprint_s256(&der)));
        assert_eq!(header.x5t, Some(thumbprint_sha1(&der)));
        assert_eq!(
            thumbprint_s256(&der).len(),
            43,
            "32 bytes, base64url unpadded"
        );
        let raw: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(a.split('.').next().expect("header part"))
                .expect("base64url"),
        )
        .expect("JSON");
        assert!(raw.get("x5t#S256").is_some(), "{raw}");
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[url]);
        v.set_issuer(&["app-id"]);
        v.sub = Some("app-id".into());
        let claims = jsonwebtoken::decode::<AssertionClaims>(
            &a,
            &DecodingKey::from_rsa_pem(public.as_bytes()).expect("public key"),
            &v,
        )
        .expect("verifies")
        .claims;
        assert_eq!(claims.exp - claims.iat, ASSERTION_LIFETIME_S);
        assert!(claims.nbf <= claims.iat);
        let again = cert.assertion("app-id", url).expect("signed");
        let jti2 = jsonwebtoken::decode::<AssertionClaims>(
            &again,
            &DecodingKey::from_rsa_pem(public.as_bytes()).expect("public key"),
            &v,
        )
        .expect("verifies")
        .claims
        .jti;
        assert_ne!(claims.jti, jti2, "jti unique");
    }

    #[test]
    fn bad_pem_is_refused() {
        let (cert_pem, key_pem, _) = rsa_cert();
        assert!(ClientCertificate::from_pem("nothing", &key_pem).is_err());
        assert!(ClientCertificate::from_pem(&cert_pem, "nothing").is_err());
    }
}
