//! The callback JWT (`graph::JwtValidator`): the `Authorization` header the service
//! sends with every notification, checked as the callback server checks it.
//!
//! The validator fetches its keys from an OpenID configuration URL; here that is a
//! tiny HTTP server on 127.0.0.1 (one thread, started once per process) publishing
//! the public half of a fixed test key (`jwt_key.pem`, 512 bits: signing speed
//! matters here, strength does not). Nothing leaves the machine. Each thread has its
//! own validator on a current-thread tokio runtime, warmed up with a valid token, so
//! a case never waits for a key fetch (except the rate-limited refresh an unknown
//! `kid` may start, which this server answers at once).
//!
//! The first input byte picks what the rest is (mod 4):
//! 0. the whole `Authorization` value;
//! 1. the token after `Bearer `;
//! 2. the token's header JSON, signed here with the valid claims and the test key;
//! 3. the token's claims JSON, signed here with a valid header and the test key.
//!
//! Modes 2 and 3 carry a valid signature, so the mutated JSON reaches the checks
//! after the signature (algorithm, `kid`, `crit`, issuer, audience, times, tenant).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use graph::{AuthConfig, AuthError, JwtValidator};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use sha2::Sha256;

use super::Verdict;
use crate::check::{MAX_MESSAGE_CHARS, check_message};

/// The bot's application id: the tokens' audience.
const APP_ID: &str = "2891555a-92ff-42e6-80fa-6e1300c6b5c6";
/// The one tenant the validator accepts.
const TENANT: &str = "aa67bd4c-8475-432d-bd41-39f255720e0a";
/// The test key's id.
const KID: &str = "fuzz-key-1";
/// A valid header.
const HEADER: &str = r#"{"alg":"RS256","typ":"JWT","kid":"fuzz-key-1"}"#;
/// Valid claims: issued in 2023, expiring in 2100.
const CLAIMS: &str = r#"{"iss":"https://api.botframework.com","aud":"2891555a-92ff-42e6-80fa-6e1300c6b5c6","tid":"aa67bd4c-8475-432d-bd41-39f255720e0a","iat":1700000000,"nbf":1700000000,"exp":4102444800}"#;

/// The test key, and the JWKS publishing its public half.
struct TestKey {
    signer: SigningKey<Sha256>,
    jwks: String,
}

fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = RsaPrivateKey::from_pkcs1_pem(include_str!("../jwt_key.pem"))
            .unwrap_or_else(|e| panic!("the test key does not load: {e}"));
        let jwks = serde_json::json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID,
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        }]})
        .to_string();
        TestKey {
            signer: SigningKey::new(key),
            jwks,
        }
    })
}

/// `header.claims.signature` with both parts as given, signed with the test key.
fn sign(header: &[u8], claims: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = test_key().signer.sign(message.as_bytes()).to_vec();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The key server's OpenID configuration URL (the server starts on first use).
fn openid_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("no loopback port for the key server: {e}"));
        let base = match listener.local_addr() {
            Ok(addr) => format!("http://{addr}"),
            Err(e) => panic!("the key server has no address: {e}"),
        };
        let openid = serde_json::json!({ "jwks_uri": format!("{base}/keys") }).to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // A client that goes away mid-request only loses its own answer.
                let _ = answer(stream, &openid);
            }
        });
        format!("{base}/openid")
    })
}

/// Answers one request: the JWKS at `/keys`, the OpenID configuration elsewhere.
fn answer(mut stream: TcpStream, openid: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let body = if request.starts_with(b"GET /keys ") {
        test_key().jwks.as_str()
    } else {
        openid
    };
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// One thread's validator and the runtime it runs on.
struct Harness {
    runtime: tokio::runtime::Runtime,
    validator: JwtValidator,
}

impl Harness {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("no tokio runtime: {e}"));
        let config = AuthConfig::new(APP_ID, openid_url())
            .accept_graph_issuer()
            .allowed_tenants([TENANT])
            .fetch_timeout(Duration::from_secs(5));
        let harness = Harness {
            runtime,
            validator: JwtValidator::new(config),
        };
        let valid = format!("Bearer {}", sign(HEADER.as_bytes(), CLAIMS.as_bytes()));
        if let Err(e) = harness.validate(&valid) {
            panic!("the valid test token is refused: {e}");
        }
        harness
    }

    fn validate(&self, authorization: &str) -> Result<graph::VerifiedCaller, AuthError> {
        self.runtime
            .block_on(self.validator.validate(Some(authorization)))
    }
}

thread_local! {
    /// Leaked on purpose: a runtime dropped while its thread is torn down may panic.
    static HARNESS: &'static Harness = Box::leak(Box::new(Harness::new()));
}

/// Validates the `Authorization` value `data` describes (see the module docs).
pub(crate) fn run(data: &[u8]) -> Verdict {
    let Some((&mode, rest)) = data.split_first() else {
        return Verdict::Rejected;
    };
    let authorization = match mode % 4 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => format!("Bearer {}", String::from_utf8_lossy(rest)),
        2 => format!("Bearer {}", sign(rest, CLAIMS.as_bytes())),
        _ => format!("Bearer {}", sign(HEADER.as_bytes(), rest)),
    };
    match HARNESS.with(|h| h.validate(&authorization)) {
        Ok(caller) => {
            assert!(
                caller.tenant_id.eq_ignore_ascii_case(TENANT),
                "a token of tenant {:?} was accepted",
                caller.tenant_id
            );
            assert!(
                [graph::auth::BOT_FRAMEWORK_ISSUER, graph::auth::GRAPH_ISSUER]
                    .contains(&caller.issuer.as_str()),
                "a token of issuer {:?} was accepted",
                caller.issuer
            );
            Verdict::Accepted
        }
        Err(e) => {
            check_message("JwtValidator", &e.to_string(), MAX_MESSAGE_CHARS);
            Verdict::Rejected
        }
    }
}

/// Seeds: a valid token in each mode, and the header and claims variations the
/// validator must refuse (another algorithm, `crit`, unknown or missing `kid`,
/// another tenant, issuer or audience, expired, not yet valid, missing claims).
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    let token = sign(HEADER.as_bytes(), CLAIMS.as_bytes());
    let with_mode = |mode: u8, rest: &str| {
        let mut v = vec![mode];
        v.extend_from_slice(rest.as_bytes());
        v
    };
    let claims = |from: &str, to: &str| CLAIMS.replace(from, to);
    let mut seeds = vec![
        with_mode(0, &format!("Bearer {token}")),
        with_mode(0, &format!("bearer   {token}  ")),
        with_mode(0, "Basic dXNlcjpwYXNz"),
        with_mode(1, &token),
        with_mode(
            1,
            &format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode(CLAIMS)
            ),
        ),
    ];
    for header in [
        HEADER,
        r#"{"alg":"RS256","kid":"fuzz-key-1","crit":["b64"],"b64":false}"#,
        r#"{"alg":"RS256","kid":"fuzz-key-1","crit":[]}"#,
        r#"{"alg":"HS256","kid":"fuzz-key-1"}"#,
        r#"{"alg":"PS256","kid":"fuzz-key-1"}"#,
        r#"{"alg":"RS256","kid":"another-key"}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"RS256","kid":"fuzz-key-1","jku":"http://127.0.0.1:1/","x5c":["AA=="],"cty":"JWT"}"#,
    ] {
        seeds.push(with_mode(2, header));
    }
    for c in [
        CLAIMS.to_owned(),
        claims(TENANT, "00000000-0000-0000-0000-000000000000"),
        claims(r#","tid":"aa67bd4c-8475-432d-bd41-39f255720e0a""#, ""),
        claims(
            "https://api.botframework.com",
            "https://graph.microsoft.com",
        ),
        claims("https://api.botframework.com", "https://evil.example"),
        claims(
            r#""aud":"2891555a-92ff-42e6-80fa-6e1300c6b5c6""#,
            r#""aud":["x","2891555a-92ff-42e6-80fa-6e1300c6b5c6"]"#,
        ),
        claims("4102444800", "1700000001"),
        claims(r#""nbf":1700000000"#, r#""nbf":4102444000"#),
        claims(r#","exp":4102444800"#, ""),
        claims("4102444800", "\"4102444800\""),
    ] {
        seeds.push(with_mode(3, &c));
    }
    seeds
}
