//! The callback server: authentication, status codes, bad input. A recording sink
//! stands in for the runtime.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cloud, claims, key, post_callback, sign, sign_with, state_body, valid_token};
use graph::{CallbackConfig, Delivery, NotificationSink};
use serde_json::json;
use signaling::CommsNotification;

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, CommsNotification)>>);

impl NotificationSink for Recorder {
    fn deliver(&self, call_id: &str, notification: CommsNotification) -> Delivery {
        self.0
            .lock()
            .unwrap()
            .push((call_id.to_owned(), notification));
        Delivery::Queued
    }
}

impl Recorder {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

async fn setup(config: impl FnOnce(&Cloud) -> CallbackConfig) -> (Cloud, Arc<Recorder>, String) {
    let cloud = Cloud::start().await;
    let recorder = Arc::new(Recorder::default());
    let router = graph::callback::router(config(&cloud), recorder.clone());
    let url = format!("{}/callback", common::serve(router).await);
    (cloud, recorder, url)
}

fn default_config(cloud: &Cloud) -> CallbackConfig {
    CallbackConfig::new(cloud.auth_config())
}

#[tokio::test]
async fn valid_token_is_accepted_and_delivered() {
    let (cloud, rec, url) = setup(default_config).await;
    let status = post_callback(&url, Some(&valid_token()), state_body("c1", "establishing")).await;
    assert_eq!(status, 202);
    assert_eq!(rec.count(), 1);
    assert_eq!(rec.0.lock().unwrap()[0].0, "c1");
    // Keys are cached: a second callback does not fetch them again.
    assert_eq!(
        post_callback(&url, Some(&valid_token()), state_body("c1", "established")).await,
        202
    );
    assert_eq!(cloud.lock().jwks_fetches, 1);
    assert_eq!(rec.count(), 2);
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401_and_nothing_is_processed() {
    let (_cloud, rec, url) = setup(default_config).await;
    let body = || state_body("c1", "established");
    assert_eq!(post_callback(&url, None, body()).await, 401, "no token");
    assert_eq!(
        post_callback(&url, Some("not-a-jwt"), body()).await,
        401,
        "garbage"
    );

    let mut c = claims();
    c["aud"] = json!("someone-else");
    assert_eq!(
        post_callback(&url, Some(&sign(&c)), body()).await,
        401,
        "audience"
    );

    let mut c = claims();
    c["iss"] = json!("https://evil.example");
    assert_eq!(
        post_callback(&url, Some(&sign(&c)), body()).await,
        401,
        "issuer"
    );

    let mut c = claims();
    c["iss"] = json!("https://graph.microsoft.com");
    assert_eq!(
        post_callback(&url, Some(&sign(&c)), body()).await,
        401,
        "graph issuer not configured"
    );

    let mut c = claims();
    c["exp"] = json!(common::now() - 3600);
    assert_eq!(
        post_callback(&url, Some(&sign(&c)), body()).await,
        401,
        "expired"
    );

    let mut c = claims();
    c["nbf"] = json!(common::now() + 3600);
    assert_eq!(
        post_callback(&url, Some(&sign(&c)), body()).await,
        401,
        "not yet valid"
    );

    let mut c = claims();
    c.as_object_mut().unwrap().remove("tid");
    assert_eq!(
        post_callback(&url, Some(&sign(&c)), body()).await,
        401,
        "no tenant"
    );

    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        post_callback(&url, Some(&sign(&c)), body()).await,
        401,
        "no audience"
    );

    // Signed by another key under the published kid: bad signature.
    let forged = sign_with(&claims(), key(1), &key(0).kid);
    assert_eq!(
        post_callback(&url, Some(&forged), body()).await,
        401,
        "forged"
    );

    // An unknown kid.
    let unknown = sign_with(&claims(), key(1), "key-unknown");
    assert_eq!(
        post_callback(&url, Some(&unknown), body()).await,
        401,
        "unknown kid"
    );

    // Basic auth is not a bearer token.
    let status = reqwest::Client::new()
        .post(&url)
        .basic_auth("a", Some("b"))
        .body(body())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);

    assert_eq!(rec.count(), 0, "nothing processed");
    // The right token still works.
    assert_eq!(post_callback(&url, Some(&valid_token()), body()).await, 202);
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn graph_issuer_and_tenant_allow_list() {
    let (_cloud, rec, url) = setup(|cloud| {
        CallbackConfig::new(
            cloud
                .auth_config()
                .accept_graph_issuer()
                .allowed_tenants([common::TENANT]),
        )
    })
    .await;
    let mut c = claims();
    c["iss"] = json!("https://graph.microsoft.com");
    assert_eq!(
        post_callback(&url, Some(&sign(&c)), state_body("c1", "established")).await,
        202
    );
    let mut c = claims();
    c["tid"] = json!("00000000-0000-0000-0000-000000000000");
    assert_eq!(
        post_callback(&url, Some(&sign(&c)), state_body("c1", "established")).await,
        401
    );
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn key_rotation_refreshes_on_unknown_kid_with_rate_limit() {
    let (cloud, rec, url) = setup(|cloud| {
        CallbackConfig::new(
            cloud
                .auth_config()
                .key_refresh(Duration::from_secs(3600), Duration::from_millis(300)),
        )
    })
    .await;
    let body = || state_body("c1", "established");
    assert_eq!(post_callback(&url, Some(&valid_token()), body()).await, 202);
    assert_eq!(cloud.lock().jwks_fetches, 1);

    // The service rotates to key 2.
    cloud.lock().published.push(key(1).jwk.clone());
    let rotated = sign_with(&claims(), key(1), &key(1).kid);
    // Within the rate limit: no fetch, refused.
    assert_eq!(post_callback(&url, Some(&rotated), body()).await, 401);
    assert_eq!(cloud.lock().jwks_fetches, 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    // After it: the unknown kid triggers one fetch, and the token is accepted.
    assert_eq!(post_callback(&url, Some(&rotated), body()).await, 202);
    assert_eq!(cloud.lock().jwks_fetches, 2);
    // A flood of unknown kids fetches at most once per interval.
    for i in 0..10 {
        let t = sign_with(&claims(), key(1), &format!("bogus-{i}"));
        assert_eq!(post_callback(&url, Some(&t), body()).await, 401);
    }
    assert!(
        cloud.lock().jwks_fetches <= 3,
        "{}",
        cloud.lock().jwks_fetches
    );
    assert_eq!(rec.count(), 2);
}

#[tokio::test]
async fn bad_input_is_400_and_oversized_is_413() {
    let (_cloud, rec, url) = setup(|cloud| default_config(cloud).max_body_bytes(4096)).await;
    let token = valid_token();
    let t = Some(token.as_str());
    assert_eq!(
        post_callback(&url, t, "{not json".into()).await,
        400,
        "malformed"
    );
    assert_eq!(post_callback(&url, t, "".into()).await, 400, "empty");
    assert_eq!(
        post_callback(&url, t, json!({"value": 5}).to_string()).await,
        400,
        "value not array"
    );
    assert_eq!(
        post_callback(&url, t, json!([1, 2]).to_string()).await,
        400,
        "array body"
    );
    let wrong_types = json!({"value": [{"changeType": "updated",
        "resourceUrl": "/communications/calls/c1",
        "resourceData": {"@odata.type": "#microsoft.graph.call", "state": 7}}]});
    assert_eq!(
        post_callback(&url, t, wrong_types.to_string()).await,
        400,
        "wrong types"
    );
    let other_top = json!({"@odata.type": "#microsoft.graph.call", "value": []});
    assert_eq!(
        post_callback(&url, t, other_top.to_string()).await,
        400,
        "top-level type"
    );
    let big = json!({"value": [], "padding": "x".repeat(5000)}).to_string();
    assert_eq!(post_callback(&url, t, big).await, 413, "oversized");
    assert_eq!(rec.count(), 0);

    // Unknown item types are accepted (the state machine ignores them, with a log).
    let unknown = json!({"value": [{"changeType": "updated",
        "resourceUrl": "/communications/calls/c1",
        "resourceData": {"@odata.type": "#microsoft.graph.somethingNew", "x": 1}}]});
    assert_eq!(post_callback(&url, t, unknown.to_string()).await, 202);
    // A notification without a call id is skipped.
    let no_call = json!({"value": [{"changeType": "updated", "resourceUrl": "/subscriptions/x"}]});
    assert_eq!(post_callback(&url, t, no_call.to_string()).await, 202);
    assert_eq!(rec.count(), 1);
    // The server is undisturbed.
    assert_eq!(
        post_callback(&url, t, state_body("c1", "established")).await,
        202
    );
    assert_eq!(rec.count(), 2);
    // Wrong method.
    let get = |token: Option<String>| {
        let mut r = reqwest::Client::new().get(&url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        get(Some(valid_token())).await.unwrap().status().as_u16(),
        405
    );
}

#[tokio::test]
async fn unauthenticated_mode_and_custom_path() {
    let (_cloud, rec, base) = setup(|_| CallbackConfig::unauthenticated().path("/api/calls")).await;
    let url = base.replace("/callback", "/api/calls");
    assert_eq!(
        post_callback(&url, None, state_body("c1", "established")).await,
        202
    );
    assert_eq!(rec.count(), 1);
    assert_eq!(
        post_callback(&base, None, state_body("c1", "established")).await,
        404
    );
}

#[tokio::test]
async fn notifications_of_one_body_are_delivered_in_order() {
    let (_cloud, rec, url) = setup(default_config).await;
    let body = json!({"value": [
        {"changeType": "updated", "resourceUrl": "/communications/calls/a",
         "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "establishing"}},
        {"changeType": "updated", "resourceUrl": "/communications/calls/b",
         "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "establishing"}},
        {"changeType": "updated", "resourceUrl": "/communications/calls/a",
         "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "established"}}
    ]});
    assert_eq!(
        post_callback(&url, Some(&valid_token()), body.to_string()).await,
        202
    );
    let got: Vec<String> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(got, ["a", "b", "a"]);
}
