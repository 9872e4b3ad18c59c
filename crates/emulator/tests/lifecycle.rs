//! A call's life after creation: DELETE, keepAlive and its lapse, remote hang-up,
//! fault injection, notification retries, media legs, shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use emulator::{
    BoxFuture, Emulator, EmulatorConfig, Fault, MediaLeg, MediaLegStats, MediaPeerConnector,
    MediaStatus, RegisteredApp,
};
use serde_json::{Value, json};
use signaling::Scenario;

const APP: &str = RegisteredApp::DEMO_CLIENT_ID;

/// The notifications of a call that is set up and then ends.
const ESTABLISHED_THEN_TERMINATED: [(&str, &str); 3] = [
    ("", "establishing"),
    ("", "established"),
    ("", "terminated"),
];

/// An HTTP client that sends the emulator's control token with every request.
fn control_client(emu: &emulator::EmulatorHandle) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {}", emu.control_token());
    headers.insert(
        reqwest::header::AUTHORIZATION,
        bearer.parse().expect("a header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// `method` on the call `id` (plus `suffix`, e.g. `/keepAlive`) with `token`.
async fn on_call(
    emu: &emulator::EmulatorHandle,
    token: &str,
    method: reqwest::Method,
    id: &str,
    suffix: &str,
) -> Reply {
    let url = format!("{}/communications/calls/{id}{suffix}", emu.graph_v1_url());
    send(
        reqwest::Client::new()
            .request(method, url)
            .bearer_auth(token),
    )
    .await
}

/// An emulator from `config`, a notification receiver for [`APP`] and a token.
async fn started(config: EmulatorConfig) -> (emulator::EmulatorHandle, Receiver, String) {
    let emu = Emulator::start(config).await.expect("start");
    let rx = Receiver::start(&emu, APP).await;
    let token = token(&emu).await;
    (emu, rx, token)
}

/// Creates a call of `scenario` whose notifications go to `callback`.
async fn create_scenario(
    emu: &emulator::EmulatorHandle,
    token: &str,
    scenario: Scenario,
    callback: &str,
) -> Reply {
    create(emu, token, &scenario_body(scenario, callback)).await
}

async fn keep_alive(emu: &emulator::EmulatorHandle, token: &str, id: &str) -> u16 {
    on_call(emu, token, reqwest::Method::POST, id, "/keepAlive")
        .await
        .status
}

async fn delete(emu: &emulator::EmulatorHandle, token: &str, id: &str) -> Reply {
    on_call(emu, token, reqwest::Method::DELETE, id, "").await
}

async fn get_status(emu: &emulator::EmulatorHandle, token: &str, id: &str) -> u16 {
    on_call(emu, token, reqwest::Method::GET, id, "")
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_gives_204_then_terminated() {
    let (emu, rx, token) = started(config()).await;
    let reply = create_scenario(&emu, &token, Scenario::PstnService, &rx.url()).await;
    assert_eq!(reply.status, 201);
    let id = reply.id();
    rx.wait_for(&id, 2, Duration::from_secs(5)).await;
    assert_eq!(keep_alive(&emu, &token, &id).await, 200);

    let reply = delete(&emu, &token, &id).await;
    assert_eq!(reply.status, 204);
    assert!(reply.headers.contains_key("request-id"));

    let got = rx.wait_for(&id, 3, Duration::from_secs(5)).await;
    assert_eq!(sequence(&got, &id), pairs(&ESTABLISHED_THEN_TERMINATED));
    let last = &got[2].body["value"][0];
    assert_eq!(last["changeType"], "deleted");
    let data = &last["resourceData"];
    assert_eq!(data["resultInfo"]["code"], 200);
    assert!(data["resultInfo"]["subcode"].is_number());
    assert!(data["resultInfo"]["message"].is_string());
    assert!(data["terminationReason"].is_string());

    assert_eq!(get_status(&emu, &token, &id).await, 404);
    assert_eq!(keep_alive(&emu, &token, &id).await, 404);
    let reply = delete(&emu, &token, &id).await;
    assert_eq!(reply.status, 404);
    graph_error_message(&reply.body);
    let summary = emu.call(&id).expect("summary");
    assert_eq!(summary.state, signaling::CallState::Terminated);
    assert_eq!(summary.termination.map(|t| t.code), Some(200));
    assert_eq!(emu.counters().calls_terminated, 1);
    assert_eq!(emu.live_calls(), 0);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_lapse_ends_the_call_and_keepalive_extends_it() {
    let (emu, rx, token) = started(EmulatorConfig {
        keepalive_timeout: Duration::from_millis(1500),
        ..config()
    })
    .await;
    let body = scenario_body(Scenario::P2pVoipApp, &rx.url());
    let kept = create(&emu, &token, &body).await.id();
    let lapsed = create(&emu, &token, &body).await.id();

    // Keep one alive for 2.5 s (well past the timeout), let the other lapse.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(keep_alive(&emu, &token, &kept).await, 200);
    }
    // App-hosted: once media connects, the roster (each audio stream with the
    // sourceId the far end reports speakers by).
    let got = rx.wait_for(&lapsed, 4, Duration::from_secs(5)).await;
    assert_eq!(
        sequence(&got, &lapsed),
        pairs(&[
            ("", "establishing"),
            ("", "established"),
            ("/participants", "updated"),
            ("", "terminated")
        ])
    );
    let info = &got[3].body["value"][0]["resourceData"]["resultInfo"];
    assert!(
        info["message"]
            .as_str()
            .is_some_and(|m| m.contains("keepAlive")),
        "{info}"
    );
    assert_eq!(get_status(&emu, &token, &lapsed).await, 404);
    assert_eq!(keep_alive(&emu, &token, &lapsed).await, 404);

    assert_eq!(get_status(&emu, &token, &kept).await, 200);
    assert_eq!(
        rx.for_call(&kept).len(),
        3,
        "the kept call is not terminated"
    );
    assert_eq!(
        emu.call(&kept).expect("kept").state,
        signaling::CallState::Established
    );
    assert!(emu.counters().keep_alives >= 10);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_up_from_the_emulator_side() {
    let (emu, rx, token) = started(config()).await;
    let id = create_scenario(&emu, &token, Scenario::GroupService, &rx.url())
        .await
        .id();
    rx.wait_for(&id, 2, Duration::from_secs(5)).await;
    assert!(emu.hang_up(&id));
    let got = rx.wait_for(&id, 3, Duration::from_secs(5)).await;
    assert_eq!(
        sequence(&got, &id).last().map(|p| p.1.as_str()),
        Some("terminated")
    );
    assert!(!emu.hang_up(&id), "already ended");
    assert!(!emu.hang_up("no-such-call"));

    // The HTTP control endpoint does the same.
    let id2 = create_scenario(&emu, &token, Scenario::GroupService, &rx.url())
        .await
        .id();
    let control = emu.control_token().to_owned();
    let hang = |id: String| {
        let url = format!("{}/_emulator/calls/{id}/hangup", emu.base_url());
        let control = control.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(control)
                .send()
                .await
                .expect("hangup")
                .status()
        }
    };
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/_emulator/calls", emu.base_url()))
        .bearer_auth(emu.control_token())
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let entry = listed["calls"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id2.as_str()))
        .expect("listed");
    assert_eq!(entry["kind"], "group");
    assert_eq!(entry["appId"], APP);
    assert_eq!(listed["counters"]["callsCreated"], 2);
    assert_eq!(hang(id2.clone()).await, 204);
    assert_eq!(hang(id2.clone()).await, 404);
    assert!(
        eventually(Duration::from_secs(5), || sequence(
            &rx.for_call(&id2),
            &id2
        )
        .last()
        .is_some_and(|p| p.1 == "terminated"))
        .await
    );
    assert_eq!(emu.shutdown().await.tasks_left, 0);
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_gives_429_and_503_with_retry_after() {
    let emu = Emulator::start(config()).await.expect("start");
    let token = token(&emu).await;
    let body = scenario_body(Scenario::PstnService, "http://127.0.0.1:9/callback");
    let path = "/v1.0/communications/calls";

    emu.inject_fault(Fault::too_many_requests(path, 2, 7))
        .expect("fault");
    for _ in 0..2 {
        let reply = create(&emu, &token, &body).await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.headers["retry-after"], "7");
        assert!(reply.headers.contains_key("request-id"));
        assert_eq!(reply.body["error"]["code"], "TooManyRequests");
        graph_error_message(&reply.body);
    }
    assert_eq!(create(&emu, &token, &body).await.status, 201);

    // Through the HTTP control endpoint: 503 on the next request only.
    let http = control_client(&emu);
    let control = format!("{}/_emulator/faults", emu.base_url());
    let resp = http
        .post(&control)
        .json(&json!({"path": path, "status": 503, "retryAfterSeconds": 3, "count": 1}))
        .send()
        .await
        .expect("control");
    assert_eq!(resp.status(), 201);
    let listed: Value = http
        .get(&control)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let reply = create(&emu, &token, &body).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.headers["retry-after"], "3");
    assert_eq!(create(&emu, &token, &body).await.status, 201);

    // Invalid faults are refused; clearing works.
    let resp = http
        .post(&control)
        .json(&json!({"path": path, "status": 404}))
        .send()
        .await
        .expect("control");
    assert_eq!(resp.status(), 400);
    assert!(
        emu.inject_fault(Fault::too_many_requests("/x", 0, 1))
            .is_err()
    );
    emu.inject_fault(Fault::service_unavailable("/v1.0/*", 5, 1))
        .expect("fault");
    assert_eq!(
        http.delete(&control).send().await.expect("clear").status(),
        204
    );
    assert!(emu.faults().is_empty());
    assert_eq!(create(&emu, &token, &body).await.status, 201);
    assert_eq!(emu.counters().faults_served, 3);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_retried_in_order_when_the_bot_answers_5xx() {
    let (emu, rx, token) = started(config()).await;
    rx.fail_next(2);
    let id = create_scenario(&emu, &token, Scenario::MeetingService, &rx.url())
        .await
        .id();
    let got = rx.wait_for(&id, 3, Duration::from_secs(5)).await;
    assert_eq!(
        sequence(&got, &id),
        pairs(&[
            ("", "establishing"),
            ("", "established"),
            ("/participants", "updated")
        ])
    );
    assert!(
        eventually(Duration::from_secs(2), || emu
            .call(&id)
            .is_some_and(|c| c.notifications.len() == 3))
        .await
    );
    let summary = emu.call(&id).expect("call");
    assert_eq!(
        summary.notifications[0].attempts, 3,
        "two 500s, then delivered"
    );
    assert!(summary.notifications.iter().all(|n| n.delivered));
    let c = emu.counters();
    assert_eq!(c.notification_attempts, 5);
    assert_eq!(c.notifications_delivered, 3);
    assert_eq!(c.notifications_failed, 0);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_bot_is_retried_a_bounded_number_of_times() {
    let emu = Emulator::start(config()).await.expect("start");
    let token = token(&emu).await;
    // Nothing listens on this port once the listener is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let callback = format!("http://127.0.0.1:{port}/callback");
    let id = create_scenario(&emu, &token, Scenario::PstnService, &callback)
        .await
        .id();
    assert!(
        eventually(Duration::from_secs(5), || emu
            .call(&id)
            .is_some_and(|c| c.notifications.len() == 2))
        .await
    );
    let summary = emu.call(&id).expect("call");
    assert!(
        summary
            .notifications
            .iter()
            .all(|n| !n.delivered && n.attempts == 4)
    );
    assert_eq!(emu.counters().notifications_failed, 2);
    // The call itself lives on.
    assert_eq!(get_status(&emu, &token, &id).await, 200);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
}

/// A connector that records what it was asked and can fail.
#[derive(Default)]
struct TestConnector {
    fail: bool,
    connects: AtomicU32,
    stops: Arc<AtomicU32>,
    mp_uris: std::sync::Mutex<Vec<String>>,
}

struct TestLeg {
    stops: Arc<AtomicU32>,
}

impl MediaLeg for TestLeg {
    fn stats(&self) -> MediaLegStats {
        MediaLegStats {
            packets_sent: 50,
            ..MediaLegStats::default()
        }
    }

    fn stop(&self) -> BoxFuture<'static, ()> {
        let stops = self.stops.clone();
        Box::pin(async move {
            stops.fetch_add(1, Ordering::SeqCst);
        })
    }
}

impl MediaPeerConnector for TestConnector {
    fn connect(
        &self,
        _call_id: &str,
        config: &media_blob::MediaSessionConfig,
    ) -> BoxFuture<'static, Result<Box<dyn MediaLeg>, String>> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        self.mp_uris
            .lock()
            .expect("lock")
            .push(config.mp_uri().to_string());
        let fail = self.fail;
        let stops = self.stops.clone();
        Box::pin(async move {
            if fail {
                Err("connection refused by 127.0.0.1:4433".to_owned())
            } else {
                Ok(Box::new(TestLeg { stops }) as Box<dyn MediaLeg>)
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_leg_connects_after_established_and_stops_on_termination() {
    let connector = Arc::new(TestConnector::default());
    let (emu, rx, token) = started(EmulatorConfig {
        media: connector.clone(),
        ..config()
    })
    .await;
    let app_hosted = create_scenario(&emu, &token, Scenario::P2pVoipApp, &rx.url()).await;
    let id = app_hosted.id();
    let service = create_scenario(&emu, &token, Scenario::P2pVoipService, &rx.url()).await;
    assert_eq!(service.status, 201);
    rx.wait_for(&id, 2, Duration::from_secs(5)).await;
    assert!(
        eventually(Duration::from_secs(5), || emu
            .call(&id)
            .expect("call")
            .media
            == MediaStatus::Connected)
        .await
    );
    assert_eq!(
        connector.connects.load(Ordering::SeqCst),
        1,
        "only the app-hosted call"
    );
    assert_eq!(
        connector.mp_uris.lock().expect("lock").as_slice(),
        ["quic://127.0.0.1:4433/MediaProcessor"]
    );
    assert_eq!(emu.media_stats(&id).map(|s| s.packets_sent), Some(50));
    assert_eq!(emu.counters().media_connected, 1);

    let reply = delete(&emu, &token, &id).await;
    assert_eq!(reply.status, 204);
    rx.wait_for(&id, 3, Duration::from_secs(5)).await;
    assert!(
        eventually(Duration::from_secs(5), || connector
            .stops
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    assert_eq!(emu.call(&id).expect("call").media, MediaStatus::Stopped);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_failure_terminates_with_client_media_error() {
    let connector = Arc::new(TestConnector {
        fail: true,
        ..TestConnector::default()
    });
    let (emu, rx, token) = started(EmulatorConfig {
        media: connector.clone(),
        ..config()
    })
    .await;
    let id = create_scenario(&emu, &token, Scenario::PstnApp, &rx.url())
        .await
        .id();
    let got = rx.wait_for(&id, 3, Duration::from_secs(5)).await;
    assert_eq!(sequence(&got, &id), pairs(&ESTABLISHED_THEN_TERMINATED));
    let info = &got[2].body["value"][0]["resourceData"]["resultInfo"];
    assert_eq!(info["code"], 410);
    assert_eq!(info["subcode"], 301005);
    assert!(
        info["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Client Media Error"))
    );
    assert!(matches!(
        emu.call(&id).expect("call").media,
        MediaStatus::Failed(_)
    ));
    assert_eq!(emu.counters().media_failed, 1);
    assert_eq!(get_status(&emu, &token, &id).await, 404);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let rx_emu = Emulator::start(config()).await.expect("start");
    // The receiver lives across the emulator under test; start it first.
    let rx = Receiver::start(&rx_emu, APP).await;
    rx_emu.shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = metrics.num_alive_tasks();

    let emu = Emulator::start(EmulatorConfig {
        keepalive_timeout: Duration::from_secs(600),
        ..config()
    })
    .await
    .expect("start");
    let counter = emu.task_counter();
    let token = token(&emu).await;
    let mut ids = Vec::new();
    for s in [
        Scenario::P2pVoipApp,
        Scenario::MeetingApp,
        Scenario::ChannelMeetingGuest,
    ] {
        let reply = create_scenario(&emu, &token, s, &rx.url()).await;
        assert_eq!(reply.status, 201);
        ids.push(reply.id());
    }
    rx.wait_for(&ids[0], 2, Duration::from_secs(5)).await;
    // Server + a driver and a sender per call.
    assert_eq!(counter.live(), 1 + 2 * ids.len());
    assert!(metrics.num_alive_tasks() > baseline);

    let report = emu.shutdown().await;
    assert_eq!(report.live_calls, 3);
    assert_eq!(report.aborted_tasks, 0);
    assert_eq!(report.tasks_left, 0);
    assert_eq!(counter.live(), 0);
    // Every task the emulator spawned (connections included) is gone from the runtime.
    assert!(
        eventually(Duration::from_secs(5), || metrics.num_alive_tasks()
            <= baseline)
        .await,
        "{} alive, baseline {baseline}",
        metrics.num_alive_tasks()
    );
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_endpoints_need_the_control_token() {
    let emu = Emulator::start(EmulatorConfig {
        control_token: Some("a-control-token-for-tests".into()),
        ..config()
    })
    .await
    .expect("start");
    assert_eq!(emu.control_token(), "a-control-token-for-tests");
    let base = emu.base_url().to_owned();
    let anyone = reqwest::Client::new();
    let requests = [
        (reqwest::Method::GET, "/_emulator/calls"),
        (reqwest::Method::GET, "/_emulator/faults"),
        (reqwest::Method::DELETE, "/_emulator/faults"),
        (reqwest::Method::POST, "/_emulator/faults"),
        (reqwest::Method::POST, "/_emulator/calls/x/hangup"),
    ];
    for (method, path) in &requests {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer a-control-token-for-test"),
            Some("a-control-token-for-tests"),
        ] {
            let mut req = anyone.request(method.clone(), format!("{base}{path}"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let reply = send(req).await;
            assert_eq!(reply.status, 401, "{method} {path} with {auth:?}");
            assert_eq!(reply.body["error"]["code"], "Unauthorized");
        }
    }
    // A fault cannot be planted without the token: the next create is unaffected.
    let token = token(&emu).await;
    let body = scenario_body(Scenario::PstnService, "http://127.0.0.1:9/callback");
    let planted = anyone
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"path": "/v1.0/*", "status": 503, "retryAfterSeconds": 1, "count": 1}))
        .send()
        .await
        .expect("post");
    assert_eq!(planted.status(), 401);
    assert!(emu.faults().is_empty());
    assert_eq!(create(&emu, &token, &body).await.status, 201);
    // With the token: served.
    let listed = control_client(&emu)
        .get(format!("{base}/_emulator/calls"))
        .send()
        .await
        .expect("list");
    assert_eq!(listed.status(), 200);
    // A token too short to be a secret does not start.
    let short = Emulator::start(EmulatorConfig {
        control_token: Some("short".into()),
        ..config()
    })
    .await;
    assert!(short.is_err());
    assert_eq!(emu.shutdown().await.tasks_left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offered_call_rings_and_ends_unanswered_and_bad_decisions_are_refused() {
    let (emu, rx, token) = started(config()).await;
    // Rung through the control endpoint, as `emulator` users do.
    let rung: Value = control_client(&emu)
        .post(format!("{}/_emulator/calls/incoming", emu.base_url()))
        .json(&json!({"callbackUri": rx.url(), "callerName": "Megan"}))
        .send()
        .await
        .expect("ring")
        .json()
        .await
        .expect("json");
    let id = rung["id"].as_str().expect("id").to_owned();
    let got = rx.wait_for(&id, 1, Duration::from_secs(5)).await;
    let offer = &got[0].body["value"][0];
    assert_eq!(offer["changeType"], "created");
    assert_eq!(offer["resourceData"]["state"], "incoming");
    assert_eq!(offer["resourceData"]["direction"], "incoming");
    assert_eq!(
        offer["resourceData"]["source"]["identity"]["user"]["displayName"],
        "Megan"
    );

    let act = |action: &str, body: Value| {
        let url = format!("{}/communications/calls/{id}/{action}", emu.graph_v1_url());
        let token = token.clone();
        async move {
            send(
                reqwest::Client::new()
                    .post(url)
                    .bearer_auth(token)
                    .json(&body),
            )
            .await
        }
    };
    // Graph's rules, each naming the property.
    let reply = act(
        "answer",
        json!({"mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body["error"]["details"][0]["target"],
        "acceptedModalities"
    );
    let reply = act("redirect", json!({"targets": []})).await;
    assert_eq!(reply.status, 400);
    assert!(graph_error_message(&reply.body).contains("targets"));
    let reply = act("reject", json!({"reason": "tired"})).await;
    assert_eq!(reply.status, 400);
    // Another call id: 404.
    let url = format!("{}/communications/calls/nope/reject", emu.graph_v1_url());
    let reply = send(
        reqwest::Client::new()
            .post(url)
            .bearer_auth(&token)
            .json(&json!({})),
    )
    .await;
    assert_eq!(reply.status, 404);

    // Nobody decides: the call ends at the answer timeout (1 s in these tests).
    let got = rx.wait_for(&id, 2, Duration::from_secs(5)).await;
    assert_eq!(
        sequence(&got, &id).last().map(|p| p.1.as_str()),
        Some("terminated")
    );
    let summary = emu.call(&id).expect("call");
    assert_eq!(summary.termination.expect("ended").reason, "Unanswered");
    // Too late to answer.
    let reply = act("answer", json!({"acceptedModalities": ["audio"], "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}})).await;
    assert_eq!(reply.status, 404);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
    rx.stop().await;
}
