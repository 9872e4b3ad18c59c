//! The Graph client against a stand-in Graph and token endpoint over 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Cloud, Scripted};
use graph::{GraphClient, GraphError};
use serde_json::json;
use signaling::{Call, CallState, Identity, MediaConfig, Scenario, builders};

fn service_hosted_request() -> Call {
    builders::p2p_voip(
        "https://bot.contoso.com/callback",
        Identity::new("112f7296-5fa4-42ca-bae8-6a692b15d4b8", "John"),
        MediaConfig::service_hosted(),
    )
    .build()
}

#[tokio::test]
async fn token_is_cached_single_flight_and_refreshed_before_expiry() {
    let cloud = Cloud::start().await;
    cloud.lock().token_expires_in = 4; // with a 5 min margin: refreshed half-way, after 2 s
    let client = cloud.client();
    let tokens = futures_join(&client, 8).await;
    assert!(tokens.iter().all(|t| t == "token-1"), "{tokens:?}");
    assert_eq!(
        cloud.lock().token_fetches,
        1,
        "concurrent callers share one fetch"
    );
    assert_eq!(client.access_token().await.unwrap(), "token-1");
    assert_eq!(cloud.lock().token_fetches, 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(client.access_token().await.unwrap(), "token-2");
    assert_eq!(cloud.lock().token_fetches, 2);
    let form = cloud.lock().token_forms[0].clone();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], common::APP_ID);
    assert_eq!(form["scope"], "https://graph.microsoft.com/.default");

    // A long-lived token is not fetched again.
    let cloud = Cloud::start().await;
    let client = cloud.client();
    for _ in 0..5 {
        client.access_token().await.unwrap();
    }
    assert_eq!(cloud.lock().token_fetches, 1);
}

async fn futures_join(client: &GraphClient, n: usize) -> Vec<String> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.access_token().await.unwrap() })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn bad_client_secret_is_a_token_error() {
    let cloud = Cloud::start().await;
    let config = graph::GraphConfig::new(cloud.graph_url(), cloud.token_url(), "app", "wrong");
    let client = GraphClient::new(config).unwrap();
    let err = client
        .create_call(&service_hosted_request())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GraphError::Token {
                status: Some(401),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("bad secret"), "{err}");
    assert!(cloud.seen("POST", "calls").is_empty());
}

#[tokio::test]
async fn create_call_sends_ids_and_gets_201() {
    let cloud = Cloud::start().await;
    let client = cloud.client();
    let call = client.create_call(&service_hosted_request()).await.unwrap();
    assert_eq!(call.state.value(), Some(&CallState::Establishing));
    assert!(call.id.value().is_some());
    let seen = cloud.seen("POST", "/beta/communications/calls");
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    let cid = s.client_request_id.as_deref().unwrap();
    assert!(uuid::Uuid::parse_str(cid).is_ok(), "{cid}");
    assert_eq!(s.return_client_request_id.as_deref(), Some("true"));
    assert_eq!(s.authorization.as_deref(), Some("Bearer token-1"));
    let body: serde_json::Value = serde_json::from_str(&s.body).unwrap();
    assert_eq!(body, service_hosted_request().to_value());

    // A fresh client-request-id per request.
    client.create_call(&service_hosted_request()).await.unwrap();
    let seen = cloud.seen("POST", "/beta/communications/calls");
    assert_ne!(seen[0].client_request_id, seen[1].client_request_id);
}

#[tokio::test]
async fn legacy_app_calls_path() {
    let cloud = Cloud::start().await;
    let client = GraphClient::new(cloud.graph_config().legacy_app_calls(true)).unwrap();
    client.create_call(&service_hosted_request()).await.unwrap();
    assert_eq!(cloud.seen("POST", "/beta/app/calls").len(), 1);
    assert!(cloud.seen("POST", "/communications/calls").is_empty());
}

#[tokio::test]
async fn invalid_request_is_not_sent() {
    let cloud = Cloud::start().await;
    let client = cloud.client();
    let err = client
        .create_call(&Scenario::P2pVoipApp.seed_example(None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GraphError::InvalidRequest(signaling::RequestError::PlaceholderBlob)
        ),
        "{err}"
    );
    assert!(cloud.lock().seen.is_empty());
}

#[tokio::test]
async fn throttled_429_with_retry_after_is_retried() {
    let cloud = Cloud::start().await;
    cloud.lock().create_script.push_back(Scripted {
        status: 429,
        retry_after: Some("1"),
        body: json!({"error": {"code": "TooManyRequests", "message": "slow down"}}),
    });
    let client = cloud.client();
    let started = Instant::now();
    let call = client.create_call(&service_hosted_request()).await.unwrap();
    assert!(call.id.value().is_some());
    let seen = cloud.seen("POST", "/communications/calls");
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After honoured: {gap:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        seen[0].client_request_id, seen[1].client_request_id,
        "the same client-request-id across retries"
    );
}

#[tokio::test]
async fn unavailable_503_retried_with_backoff_up_to_the_cap() {
    let cloud = Cloud::start().await;
    for _ in 0..10 {
        cloud.lock().create_script.push_back(Scripted {
            status: 503,
            retry_after: None,
            body: json!({"error": {"code": "ServiceUnavailable", "message": "busy"}}),
        });
    }
    let client = cloud.client();
    let err = client
        .create_call(&service_hosted_request())
        .await
        .unwrap_err();
    match &err {
        GraphError::Service {
            status,
            code,
            attempts,
            request_id,
            ..
        } => {
            assert_eq!(*status, 503);
            assert_eq!(code.as_deref(), Some("ServiceUnavailable"));
            assert_eq!(*attempts, 4);
            assert_eq!(request_id.as_deref(), Some("req-fake-2"));
        }
        other => panic!("{other}"),
    }
    assert_eq!(cloud.seen("POST", "/communications/calls").len(), 4);

    // One 503 then success.
    let cloud = Cloud::start().await;
    cloud.lock().create_script.push_back(Scripted {
        status: 503,
        retry_after: None,
        body: json!({}),
    });
    cloud
        .client()
        .create_call(&service_hosted_request())
        .await
        .unwrap();
    assert_eq!(cloud.seen("POST", "/communications/calls").len(), 2);
}

#[tokio::test]
async fn bad_request_400_is_not_retried_and_carries_graph_error() {
    let cloud = Cloud::start().await;
    cloud.lock().create_script.push_back(Scripted {
        status: 400,
        retry_after: Some("1"),
        body: json!({"error": {"code": "BadRequest", "message": "Invalid targets",
            "innerError": {"request-id": "inner-req", "date": "2026-11-27T10:00:00"}}}),
    });
    let client = cloud.client();
    let err = client
        .create_call(&service_hosted_request())
        .await
        .unwrap_err();
    assert_eq!(cloud.seen("POST", "/communications/calls").len(), 1);
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.code(), Some("BadRequest"));
    match &err {
        GraphError::Service {
            message,
            request_id,
            client_request_id,
            attempts,
            ..
        } => {
            assert_eq!(message.as_deref(), Some("Invalid targets"));
            assert_eq!(request_id.as_deref(), Some("req-fake-2"));
            assert!(client_request_id.is_some());
            assert_eq!(*attempts, 1);
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("400") && text.contains("Invalid targets"),
        "{text}"
    );
}

#[tokio::test]
async fn transport_errors_are_retried_then_reported() {
    let cloud = Cloud::start().await;
    // A port with nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = graph::GraphConfig::new(
        format!("http://127.0.0.1:{port}/beta"),
        cloud.token_url(),
        common::APP_ID,
        "secret",
    )
    .backoff(Duration::from_millis(10), Duration::from_millis(20))
    .max_attempts(3);
    let client = GraphClient::new(config).unwrap();
    let err = client.hang_up("c1").await.unwrap_err();
    assert!(
        matches!(err, GraphError::Transport { attempts: 3, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn get_hang_up_and_keep_alive() {
    let cloud = Cloud::start().await;
    let client = cloud.client();
    let call = client.create_call(&service_hosted_request()).await.unwrap();
    let id = call.id.value().unwrap().clone();
    let got = client.get_call(&id).await.unwrap();
    assert_eq!(got.id.value(), Some(&id));
    client.keep_alive(&id).await.unwrap();
    client.hang_up(&id).await.unwrap();
    assert_eq!(cloud.seen("DELETE", &id).len(), 1);
    let err = client.keep_alive(&id).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.code(), Some("8506"));
    let err = client.get_call(&id).await.unwrap_err();
    assert!(err.is_not_found());
}
