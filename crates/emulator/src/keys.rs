//! The emulator's RSA signing key: signs the OAuth access tokens it issues and the
//! `Authorization` JWT of every callback, and is published as a JWKS.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::EmulatorError;

/// Size of generated keys, bits.
pub const KEY_BITS: usize = 2048;

/// An RS256 key pair with its key id (`kid`). Cheap to clone; generate one per test
/// binary and pass it in [`EmulatorConfig::signing_key`](crate::EmulatorConfig) to skip
/// key generation.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    n: String,
    e: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generate a fresh 2048-bit RSA key with a random `kid`.
    pub fn generate() -> Result<Self, EmulatorError> {
        let key = RsaPrivateKey::new(&mut rand_core::OsRng, KEY_BITS)
            .map_err(|e| EmulatorError::Key(e.to_string()))?;
        Self::from_rsa(key, uuid::Uuid::new_v4().simple().to_string())
    }

    /// Use an existing RSA private key under `kid`.
    pub fn from_rsa(key: RsaPrivateKey, kid: impl Into<String>) -> Result<Self, EmulatorError> {
        let der = key
            .to_pkcs1_der()
            .map_err(|e| EmulatorError::Key(e.to_string()))?;
        let n = key.n().to_bytes_be();
        let e = key.e().to_bytes_be();
        Ok(SigningKey {
            kid: kid.into(),
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            decoding: DecodingKey::from_rsa_raw_components(&n, &e),
            n: URL_SAFE_NO_PAD.encode(&n),
            e: URL_SAFE_NO_PAD.encode(&e),
        })
    }

    /// The key id written in every JWT header and in the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty`, `use`, `kid`, `n`, `e`, `alg`).
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
            "alg": "RS256",
        })
    }

    /// Sign `claims` as an RS256 JWT with this key's `kid`.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, EmulatorError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| EmulatorError::Key(e.to_string()))
    }

    /// Verify a JWT signed by this key and decode its claims.
    pub(crate) fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<T, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<T>(token, &self.decoding, validation).map(|d| d.claims)
    }
}
