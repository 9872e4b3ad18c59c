//! The token endpoint's certificate credentials: a client assertion (a JWT signed with
//! the app's certificate key, Microsoft identity platform "certificate credentials")
//! checked against the certificate registered for the app
//! ([`RegisteredApp::certificate_pem`](crate::RegisteredApp::certificate_pem)): the
//! header's `x5t#S256` (or `x5t`) names it, the signature verifies with its public
//! key (RS256 or PS256), `aud` is the token URL, `iss` = `sub` = the client id, the
//! assertion is within its time range (`exp` at most 10 minutes on, 1 minute of skew)
//! and its `jti` was not used before.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::Digest;

use crate::config::RegisteredApp;
use crate::state::lock;

/// The `client_assertion_type` of a certificate credential.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest assertion lifetime accepted (from now to `exp`), seconds.
const MAX_LIFETIME_S: u64 = 600;
/// Clock skew allowed, seconds.
const SKEW_S: u64 = 60;

/// Why an assertion was refused: the AADSTS code and its description.
pub(crate) type Refusal = (u32, String);

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    exp: u64,
}

/// The first `CERTIFICATE` block of PEM text, as DER.
pub(crate) fn certificate_der(pem: &str) -> Option<Vec<u8>> {
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

/// One DER element at the start of `d`: (tag, content, rest).
fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *d.first()?;
    let first = *d.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in d.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let content = d.get(head..head.checked_add(len)?)?;
    Some((tag, content, &d[head + len..]))
}

/// The RSA public key (PKCS#1 `RSAPublicKey` DER) of an X.509 certificate: the
/// subjectPublicKeyInfo's bit string.
pub(crate) fn rsa_public_key_der(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert, _) = tlv(cert_der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    // [0] version (optional), serialNumber, signature, issuer, validity, subject.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    for _ in 0..5 {
        rest = tlv(rest)?.2;
    }
    let (_, spki, _) = tlv(rest)?;
    let (_, _algorithm, rest) = tlv(spki)?;
    let (tag, bits, _) = tlv(rest)?;
    (tag == 0x03 && bits.first() == Some(&0)).then(|| bits[1..].to_vec())
}

/// Checks `assertion` of `app` at `token_url`; records its `jti` in `seen` (jti →
/// exp, pruned of expired ones).
pub(crate) fn verify(
    app: &RegisteredApp,
    assertion: &str,
    token_url: &str,
    now: u64,
    seen: &Mutex<HashMap<String, u64>>,
) -> Result<(), Refusal> {
    let client_id = &app.client_id;
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| {
        (
            50027,
            format!("JWT token is invalid or malformed (client_assertion: {e})."),
        )
    })?;
    let Some(cert_der) = app.certificate_pem.as_deref().and_then(certificate_der) else {
        return Err((
            700027,
            format!(
                "Client assertion failed signature validation: no certificate is registered on application '{client_id}'."
            ),
        ));
    };
    let s256 = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&cert_der));
    let sha1 = URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&cert_der));
    let named = match (&header.x5t_s256, &header.x5t) {
        (Some(t), _) => *t == s256,
        (None, Some(t)) => *t == sha1,
        (None, None) => {
            return Err((
                700027,
                "Client assertion failed signature validation: the header names no certificate (x5t#S256 or x5t).".into(),
            ));
        }
    };
    if !named {
        return Err((
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application '{client_id}'."
            ),
        ));
    }
    let Some(public) = rsa_public_key_der(&cert_der) else {
        return Err((
            700027,
            "The registered certificate has no usable RSA public key.".into(),
        ));
    };
    let mut v = Validation::new(Algorithm::RS256);
    v.algorithms = vec![Algorithm::RS256, Algorithm::PS256];
    v.leeway = SKEW_S;
    v.validate_nbf = true;
    v.set_audience(&[token_url]);
    v.set_issuer(&[client_id.as_str()]);
    v.sub = Some(client_id.clone());
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let claims = jsonwebtoken::decode::<Claims>(assertion, &DecodingKey::from_rsa_der(&public), &v)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => (
                700027,
                "Client assertion contains an invalid signature.".to_owned(),
            ),
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => (
                700024,
                "Client assertion is not within its valid time range.".to_owned(),
            ),
            ErrorKind::InvalidAudience => (
                700027,
                format!("Client assertion audience claim does not match the token endpoint '{token_url}'."),
            ),
            ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => (
                700027,
                format!("Client assertion iss and sub must both be the client id '{client_id}'."),
            ),
            ErrorKind::InvalidAlgorithm => (
                700027,
                "Client assertion must be signed RS256 or PS256.".to_owned(),
            ),
            _ => (50027, format!("JWT token is invalid or malformed (client_assertion: {e}).")),
        })?
        .claims;
    if claims.exp > now + MAX_LIFETIME_S + SKEW_S {
        return Err((
            700024,
            format!(
                "Client assertion is not within its valid time range: exp is more than {MAX_LIFETIME_S} s away."
            ),
        ));
    }
    let Some(jti) = claims.jti.filter(|j| !j.is_empty()) else {
        return Err((50027, "Client assertion has no jti claim.".into()));
    };
    let mut seen = lock(seen);
    seen.retain(|_, exp| *exp + SKEW_S >= now);
    if seen.contains_key(&jti) {
        return Err((
            700027,
            format!("Client assertion was already used (jti '{jti}' replayed)."),
        ));
    }
    seen.insert(jti, claims.exp);
    Ok(())
}
