//! The identity side: client-credentials tokens, refusals in Entra's error shape, the
//! OpenID configuration and JWKS that callbacks are verified with.

mod common;

use common::*;
use emulator::{Emulator, RegisteredApp};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

async fn token_request(
    emu: &emulator::EmulatorHandle,
    tenant: &str,
    form: &[(&str, &str)],
) -> Reply {
    send(
        reqwest::Client::new()
            .post(emu.token_url_for(tenant))
            .form(form),
    )
    .await
}

fn form<'a>(client: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", secret),
        ("scope", "https://graph.microsoft.com/.default"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_tokens_signed_with_the_published_key() {
    let emu = Emulator::start(config()).await.expect("start");
    let app = emu.apps()[0].clone();
    assert_eq!(app, RegisteredApp::demo());
    let reply = token_request(
        &emu,
        &app.tenant_id,
        &form(&app.client_id, &app.client_secret),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 3599);
    let access = reply.body["access_token"].as_str().expect("token");

    let jwks: JwkSet = reqwest::get(emu.jwks_url())
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let header = jsonwebtoken::decode_header(access).expect("header");
    assert_eq!(header.alg, Algorithm::RS256);
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("published kid");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&["https://graph.microsoft.com"]);
    let claims =
        jsonwebtoken::decode::<Value>(access, &DecodingKey::from_jwk(jwk).expect("key"), &v)
            .expect("verifies")
            .claims;
    assert_eq!(claims["appid"], app.client_id.as_str());
    assert_eq!(claims["tid"], app.tenant_id.as_str());
    assert_eq!(
        claims["iss"],
        format!("https://sts.windows.net/{}/", app.tenant_id)
    );
    let roles: Vec<&str> = claims["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(roles.contains(&"Calls.Initiate.All") && roles.contains(&"Calls.AccessMedia.All"));
    assert_eq!(emu.counters().tokens_issued, 1);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_bad_token_requests_like_entra() {
    let emu = Emulator::start(config()).await.expect("start");
    let app = emu.apps()[0].clone();
    let t = app.tenant_id.as_str();

    let reply = token_request(&emu, t, &form(&app.client_id, "wrong")).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["error"], "invalid_client");
    assert_eq!(reply.body["error_codes"][0], 7000215);
    assert!(
        reply.body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS7000215"))
    );
    assert!(reply.body["trace_id"].is_string() && reply.body["correlation_id"].is_string());

    let reply = token_request(&emu, t, &form("unknown-client", "x")).await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );

    let reply = token_request(
        &emu,
        "other-tenant",
        &form(&app.client_id, &app.client_secret),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let mut f = form(&app.client_id, &app.client_secret);
    f[0] = ("grant_type", "password");
    let reply = token_request(&emu, t, &f).await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    let mut f = form(&app.client_id, &app.client_secret);
    f[3] = ("scope", "User.Read");
    let reply = token_request(&emu, t, &f).await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    let reply = send(
        reqwest::Client::new()
            .post(emu.token_url())
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let c = emu.counters();
    assert_eq!((c.tokens_issued, c.tokens_rejected), (0, 6));
    assert_eq!(emu.shutdown().await.tasks_left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_configuration_and_jwks() {
    let emu = Emulator::start(config()).await.expect("start");
    let openid: Value = reqwest::get(emu.openid_url())
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(openid["issuer"], "https://api.botframework.com");
    assert_eq!(openid["jwks_uri"], emu.jwks_url());
    assert_eq!(
        openid["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );

    let jwks: Value = reqwest::get(emu.jwks_url())
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let key = &jwks["keys"][0];
    for k in ["kty", "kid", "n", "e", "alg", "use"] {
        assert!(key[k].is_string(), "{k}");
    }
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["e"], "AQAB");
    // 2048-bit modulus: 256 bytes, 342 base64url characters.
    assert_eq!(key["n"].as_str().map(str::len), Some(342));
    assert_eq!(jwks, emu.jwks());

    // A notification JWT from a different key would not verify against this JWKS.
    let set: JwkSet = serde_json::from_value(jwks).expect("jwks");
    let other = Emulator::start(emulator::EmulatorConfig {
        signing_key: Some(emulator::SigningKey::generate().expect("key")),
        ..config()
    })
    .await
    .expect("other");
    let rx = Receiver::with_jwks(set, RegisteredApp::DEMO_CLIENT_ID).await;
    let token = token(&other).await;
    let body = scenario_body(signaling::Scenario::PstnService, &rx.url());
    let reply = create(&other, &token, &body).await;
    assert_eq!(reply.status, 201);
    assert!(eventually(std::time::Duration::from_secs(5), || rx.rejected() >= 1).await);
    assert!(
        rx.for_call(reply.body["id"].as_str().expect("id"))
            .is_empty()
    );
    other.shutdown().await;
    rx.stop().await;
    assert_eq!(emu.shutdown().await.tasks_left, 0);
}

#[test]
fn generated_key_is_2048_bit_and_served_at_start() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        // No key given: the emulator generates one.
        let emu = Emulator::start(emulator::EmulatorConfig::default())
            .await
            .expect("start");
        let jwks = emu.jwks();
        assert_eq!(jwks["keys"][0]["n"].as_str().map(str::len), Some(342));
        assert_eq!(emu.shutdown().await.tasks_left, 0);
    });
}
