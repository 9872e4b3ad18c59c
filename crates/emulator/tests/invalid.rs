//! Requests Graph refuses: named problems in Graph's error JSON, 401 without a valid
//! bearer, 403 without the permissions, 413 over the body limit; bad input never
//! panics and never disturbs other calls.

mod common;

use std::time::Duration;

use common::*;
use emulator::{Emulator, EmulatorConfig, RegisteredApp, SigningKey};
use proptest::prelude::*;
use serde_json::{Value, json};
use signaling::{Identity, InvitationParticipantInfo, Scenario};

const APP: &str = RegisteredApp::DEMO_CLIENT_ID;

async fn expect_400(emu: &emulator::EmulatorHandle, token: &str, body: &Value, needle: &str) {
    let reply = create(emu, token, body).await;
    assert_eq!(reply.status, 400, "{needle}: {}", reply.body);
    assert_eq!(reply.body["error"]["code"], "BadRequest");
    let message = graph_error_message(&reply.body);
    assert!(message.contains(needle), "`{needle}` not in `{message}`");
    assert_eq!(
        reply.body["error"]["innerError"]["request-id"].as_str(),
        reply.headers["request-id"].to_str().ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_refuses_invalid_calls_naming_the_problem() {
    let emu = Emulator::start(EmulatorConfig {
        max_body_bytes: 16 * 1024,
        ..config()
    })
    .await
    .expect("start");
    let rx = Receiver::start(&emu, APP).await;
    let token = token(&emu).await;

    // A call already running must not be disturbed by anything below.
    let live = create(
        &emu,
        &token,
        &scenario_body(Scenario::P2pVoipService, &rx.url()),
    )
    .await;
    assert_eq!(live.status, 201);
    let live_id = live.id();

    // Six targets for a group call.
    let mut group = Scenario::GroupService.seed_example(None);
    group.callback_uri = signaling::Field::Value(rx.url());
    let targets = (0..6)
        .map(|i| {
            InvitationParticipantInfo::new(signaling::IdentitySet::user(Identity::new(
                format!("00000000-0000-0000-0000-00000000000{i}"),
                format!("user{i}"),
            )))
        })
        .collect();
    group.targets = signaling::Field::Value(targets);
    let group = group.to_value();
    expect_400(&emu, &token, &group, "targets: 6 targets").await;
    let reply = create(&emu, &token, &group).await;
    assert_eq!(reply.body["error"]["details"][0]["target"], "targets");

    // PSTN without an application instance.
    let mut pstn = scenario_body(Scenario::PstnService, &rx.url());
    pstn["source"]["identity"] = json!({
        "@odata.type": "#microsoft.graph.identitySet",
        "application": {"@odata.type": "#microsoft.graph.identity", "id": APP}
    });
    expect_400(&emu, &token, &pstn, "source.identity.applicationInstance").await;

    // Plain http callback to a host that is not loopback.
    let remote = scenario_body(Scenario::P2pVoipService, "http://bot.contoso.com/callback");
    expect_400(&emu, &token, &remote, "callbackUri").await;

    // The documentation's placeholder blob.
    let mut placeholder = Scenario::P2pVoipApp.seed_example(None).to_value();
    placeholder["callbackUri"] = rx.url().into();
    expect_400(&emu, &token, &placeholder, "mediaConfig.blob").await;

    // A blob that is not a media session configuration.
    let mut broken = scenario_body(Scenario::P2pVoipApp, &rx.url());
    broken["mediaConfig"]["blob"] = "{\"mpUri\":\"nowhere\"}".into();
    expect_400(&emu, &token, &broken, "mediaConfig.blob").await;

    // Malformed JSON, wrong types, not an object.
    let raw = |body: String| {
        reqwest::Client::new()
            .post(emu.calls_url())
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
    };
    // A valid call with its callbackUri given twice: Graph refuses repeated keys (a
    // reader in front may have taken the other value).
    let valid = scenario_body(Scenario::P2pVoipService, &rx.url()).to_string();
    let twice = valid.replacen(
        "\"callbackUri\":",
        "\"callbackUri\":\"https://elsewhere.example/cb\",\"callbackUri\":",
        1,
    );
    // A wrong type holding 10,000 characters and terminal escapes: serde's error quotes
    // the value, the emulator's message only a bounded, escaped excerpt of it.
    let hostile = format!(
        "{{\"requestedModalities\": \"\\u001b[2J{}\"}}",
        "x".repeat(10_000)
    );
    for (body, needle) in [
        ("{\"callbackUri\": ".to_owned(), "JSON"),
        ("[1,2,3]".to_owned(), "JSON object"),
        (
            "{\"callbackUri\": 42, \"targets\": {}}".to_owned(),
            "Invalid call",
        ),
        (
            "{\"requestedModalities\": \"audio\"}".to_owned(),
            "Invalid call",
        ),
        (String::new(), "JSON"),
        (twice, "duplicate key \"callbackUri\" in the document"),
        (hostile, "Invalid call"),
    ] {
        let reply = send(raw(body.clone())).await;
        assert_eq!(reply.status, 400, "{body}");
        let message = graph_error_message(&reply.body);
        assert!(message.contains(needle), "{body}: {message}");
        assert!(
            message.len() < 600 && !message.contains('\u{1b}'),
            "a bounded, escaped message: {message}"
        );
    }

    // A join by meeting id with the spaces Teams prints in the id.
    let mut spaced = scenario_body(Scenario::MeetingIdService, &rx.url());
    spaced["meetingInfo"]["joinMeetingId"] = "375 029 698".into();
    expect_400(&emu, &token, &spaced, "meetingInfo.joinMeetingId").await;

    // A document that says it is another resource than a call.
    let mut user = scenario_body(Scenario::P2pVoipService, &rx.url());
    user["@odata.type"] = "#microsoft.graph.user".into();
    expect_400(&emu, &token, &user, "@odata.type").await;

    // Over the body limit.
    let mut big = scenario_body(Scenario::P2pVoipService, &rx.url());
    big["subject"] = "x".repeat(20 * 1024).into();
    let reply = create(&emu, &token, &big).await;
    assert_eq!(reply.status, 413);
    assert!(graph_error_message(&reply.body).contains("16384"));

    // The running call is undisturbed: notifications complete, keepAlive works.
    let got = rx.wait_for(&live_id, 5, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 5);
    let ka = send(
        reqwest::Client::new()
            .post(format!(
                "{}/communications/calls/{live_id}/keepAlive",
                emu.graph_v1_url()
            ))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(ka.status, 200);
    assert_eq!(emu.live_calls(), 1);
    assert_eq!(emu.counters().calls_rejected, 16);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_bearer_is_401() {
    let emu = Emulator::start(EmulatorConfig {
        token_lifetime: Duration::from_secs(1),
        ..config()
    })
    .await
    .expect("start");
    let body = scenario_body(Scenario::PstnService, "http://127.0.0.1:9/callback");
    let http = reqwest::Client::new();

    let reply = send(http.post(emu.calls_url()).json(&body)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["error"]["code"], "InvalidAuthenticationToken");
    assert!(graph_error_message(&reply.body).contains("empty"));

    let reply = send(
        http.post(emu.calls_url())
            .bearer_auth("not-a-jwt")
            .json(&body),
    )
    .await;
    assert_eq!(reply.status, 401);

    // A token signed by another key with the right claims.
    let other = Emulator::start(EmulatorConfig {
        signing_key: Some(SigningKey::generate().expect("key")),
        ..config()
    })
    .await
    .expect("other");
    let forged = token(&other).await;
    let reply = send(http.post(emu.calls_url()).bearer_auth(&forged).json(&body)).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(graph_error_message(&reply.body).contains("validation failure"));
    other.shutdown().await;

    // GET / DELETE / keepAlive need the bearer too.
    let reply = send(http.get(format!("{}/communications/calls/x", emu.graph_v1_url()))).await;
    assert_eq!(reply.status, 401);

    // An expired token.
    let short = token(&emu).await;
    assert_eq!(create(&emu, &short, &body).await.status, 201);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = create(&emu, &short, &body).await;
    assert_eq!(reply.status, 401);
    assert!(graph_error_message(&reply.body).contains("expired"));
    assert_eq!(emu.shutdown().await.tasks_left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_permissions_is_403() {
    let limited = RegisteredApp::new("tenant-b", "client-b", "secret-b")
        .permissions([signaling::Permission::CallsInitiateAll]);
    let emu = Emulator::start(EmulatorConfig {
        apps: vec![limited],
        ..config()
    })
    .await
    .expect("start");
    let token = token(&emu).await;
    let ok = scenario_body(Scenario::P2pVoipService, "http://127.0.0.1:9/callback");
    let reply = create(&emu, &token, &ok).await;
    assert_eq!(reply.status, 201);
    // The default source is this app's identity.
    assert_eq!(
        reply.body["source"]["identity"]["application"]["id"],
        "client-b"
    );
    assert_eq!(reply.body["tenantId"], "tenant-b");

    let group = scenario_body(Scenario::GroupService, "http://127.0.0.1:9/callback");
    let reply = create(&emu, &token, &group).await;
    assert_eq!(reply.status, 403);
    assert!(graph_error_message(&reply.body).contains("Calls.InitiateGroupCall.All"));
    let app_hosted = scenario_body(Scenario::P2pVoipApp, "http://127.0.0.1:9/callback");
    let reply = create(&emu, &token, &app_hosted).await;
    assert_eq!(reply.status, 403);
    assert!(graph_error_message(&reply.body).contains("Calls.AccessMedia.All"));
    assert_eq!(emu.shutdown().await.tasks_left, 0);
}

#[test]
fn arbitrary_bodies_never_panic_or_disturb() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (emu, token) = rt.block_on(async {
        let emu = Emulator::start(EmulatorConfig {
            max_body_bytes: 2048,
            ..config()
        })
        .await
        .expect("start");
        let token = token(&emu).await;
        (emu, token)
    });
    let http = reqwest::Client::new();
    let json_value = proptest::collection::vec(any::<(String, i64, bool)>(), 0..8).prop_map(|v| {
        let mut m = serde_json::Map::new();
        let keys = [
            "callbackUri",
            "targets",
            "mediaConfig",
            "source",
            "requestedModalities",
            "meetingInfo",
            "chatInfo",
            "callOptions",
        ];
        for (i, (s, n, b)) in v.into_iter().enumerate() {
            let value = match i % 4 {
                0 => Value::String(s),
                1 => json!(n),
                2 => json!({"@odata.type": s, "blob": b}),
                _ => json!([s, n, b]),
            };
            m.insert(keys[i % keys.len()].to_owned(), value);
        }
        serde_json::to_vec(&Value::Object(m)).expect("json")
    });
    let bodies = prop_oneof![proptest::collection::vec(any::<u8>(), 0..3000), json_value];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    });
    runner
        .run(&bodies, |body| {
            let reply = rt.block_on(send(
                http.post(emu.calls_url())
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.clone()),
            ));
            let expected = if body.len() > 2048 { 413 } else { 400 };
            prop_assert_eq!(reply.status, expected, "{}", reply.body);
            prop_assert!(reply.body["error"]["message"].is_string());
            Ok(())
        })
        .expect("every arbitrary body refused cleanly");
    rt.block_on(async {
        // Still serving, and a valid call still works.
        let ok = scenario_body(Scenario::PstnService, "http://127.0.0.1:9/callback");
        assert_eq!(create(&emu, &token, &ok).await.status, 201);
        assert_eq!(emu.counters().calls_created, 1);
        assert_eq!(emu.shutdown().await.tasks_left, 0);
    });
}
