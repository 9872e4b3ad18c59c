//! All ten seed scenarios (and the two joins by meeting id) through the emulator over real HTTP on 127.0.0.1: 201 in the
//! seed's response shape, then the seed's notification sequence, every notification
//! signed (verified against the published JWKS).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use emulator::{Emulator, RegisteredApp};
use serde_json::Value;
use signaling::Scenario;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../signaling/tests/fixtures");

fn fixture(name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).ok()?;
    Some(serde_json::from_str(&text).expect("fixture JSON"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

fn expected_sequence(s: Scenario) -> Vec<(String, String)> {
    match s {
        // Ex. 1 asks for content-sharing notifications.
        Scenario::P2pVoipService => pairs(&[
            ("", "establishing"),
            ("", "established"),
            ("/contentsharingsessions", "created"),
            ("/contentsharingsessions", "updated"),
            ("/contentsharingsessions", "deleted"),
        ]),
        Scenario::GroupService | Scenario::PstnService => {
            pairs(&[("", "establishing"), ("", "established")])
        }
        // App-hosted: once media connects, the roster whose audio sourceIds the far
        // end reports speakers by.
        Scenario::P2pVoipApp | Scenario::GroupApp | Scenario::PstnApp => pairs(&[
            ("", "establishing"),
            ("", "established"),
            ("/participants", "updated"),
        ]),
        Scenario::MeetingService
        | Scenario::MeetingApp
        | Scenario::ChannelMeeting
        | Scenario::MeetingIdService
        | Scenario::MeetingIdApp => pairs(&[
            ("", "establishing"),
            ("", "established"),
            ("/participants", "updated"),
        ]),
        Scenario::ChannelMeetingGuest => pairs(&[
            ("/participants", "updated"),
            ("/participants", "updated"),
            ("", "established"),
        ]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_ten_seed_scenarios_and_the_joins_by_meeting_id() {
    let emu = Emulator::start(config()).await.expect("start");
    let app = emu.apps()[0].clone();
    let rx = Receiver::start(&emu, &app.client_id).await;
    let token = token(&emu).await;
    let seed_shape = keys(&fixture("01_p2p_voip_service_hosted.response.json").expect("ex. 1"));

    let mut created = Vec::new();
    for s in Scenario::ALL {
        let body = scenario_body(s, &rx.url());
        let reply = create(&emu, &token, &body).await;
        assert_eq!(reply.status, 201, "{s}: {}", reply.body);
        let call = &reply.body;
        let id = call["id"].as_str().expect("id").to_owned();

        let location = reply.headers["location"].to_str().expect("location");
        assert_eq!(
            location,
            format!("{}/v1.0/communications/calls/{id}", emu.base_url())
        );
        assert!(reply.headers.contains_key("request-id"));

        // Same top-level properties as the seed's 201 for this example (or ex. 1's).
        let expected = fixture(&format!("{}.response.json", s.fixture_stem()))
            .map(|f| keys(&f))
            .unwrap_or_else(|| seed_shape.clone());
        assert_eq!(keys(call), expected, "{s}");
        assert_eq!(call["state"], "establishing");
        assert_eq!(call["direction"], "outgoing");
        assert_eq!(call["callRoutes"], serde_json::json!([]));
        assert_eq!(call["activeModalities"], serde_json::json!([]));
        assert_eq!(call["routingPolicies"], serde_json::json!([]));
        assert_eq!(call["tenantId"], app.tenant_id.as_str());
        assert!(call["myParticipantId"].is_string());
        assert!(call["callChainId"].is_string());
        assert!(
            call["@odata.context"]
                .as_str()
                .is_some_and(|c| c.contains("$metadata#"))
        );
        for k in [
            "terminationReason",
            "resultInfo",
            "answeredBy",
            "toneInfo",
            "mediaState",
        ] {
            assert!(call[k].is_null(), "{s}: {k}");
        }
        assert_eq!(call["mediaConfig"], body["mediaConfig"], "{s}");
        for (i, t) in call["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .enumerate()
        {
            assert_eq!(t["identity"], body["targets"][i]["identity"]);
            for k in ["endpointType", "region", "replacesCallId", "languageId"] {
                assert!(
                    t.get(k).is_some_and(Value::is_null),
                    "{s}: targets[{i}].{k}"
                );
            }
        }
        match body.get("source") {
            Some(src) => assert_eq!(&call["source"], src, "{s}"),
            None => {
                assert_eq!(
                    call["source"]["identity"]["application"]["id"],
                    app.client_id.as_str()
                );
                assert_eq!(
                    call["source"]["identity"]["application"]["displayName"],
                    app.display_name.as_str()
                );
            }
        }
        created.push((s, id));
    }

    for (s, id) in &created {
        let want = expected_sequence(*s);
        let got = rx.wait_for(id, want.len(), Duration::from_secs(10)).await;
        assert_eq!(sequence(&got, id), want, "{s}");
        for r in &got {
            assert_eq!(r.claims["aud"], app.client_id.as_str());
            assert_eq!(r.claims["tid"], app.tenant_id.as_str());
            assert_eq!(r.claims["iss"], "https://api.botframework.com");
            // Every notification parses with the signaling model.
            let n = signaling::CommsNotifications::from_json(&r.body.to_string()).expect("parses");
            assert_eq!(n.value[0].call_id(), Some(id.as_str()));
        }
        let first = &got[0].body["value"][0];
        if matches!(
            s,
            Scenario::MeetingService | Scenario::MeetingApp | Scenario::ChannelMeeting
        ) {
            let roster = &got[2].body["value"][0]["resourceData"];
            let ids: Vec<&str> = roster
                .as_array()
                .expect("roster")
                .iter()
                .filter_map(|p| p["id"].as_str())
                .collect();
            let call = emu.call(id).expect("call");
            assert_eq!(ids.len(), 2, "{s}: organizer and bot");
            assert!(
                roster
                    .as_array()
                    .is_some_and(|a| a.iter().all(|p| p["isInLobby"] == false))
            );
            assert_eq!(call.kind, signaling::CallKind::MeetingJoin);
            // The seed's roster keys.
            let seed = fixture("05_notification_roster.json").expect("roster fixture");
            let seed_p = &seed["value"][0]["resourceData"][0];
            assert_eq!(keys(&roster[0]), keys(seed_p));
        }
        if *s == Scenario::ChannelMeetingGuest {
            let lobby = &first["resourceData"];
            assert_eq!(lobby.as_array().map(Vec::len), Some(1));
            assert_eq!(lobby[0]["isInLobby"], true);
            assert_eq!(
                lobby[0]["info"]["identity"]["guest"]["displayName"],
                "Guest User"
            );
            let seed = fixture("08_notification_roster_lobby.json").expect("lobby fixture");
            assert_eq!(keys(&lobby[0]), keys(&seed["value"][0]["resourceData"][0]));
            let admitted = &got[1].body["value"][0]["resourceData"];
            assert!(
                admitted
                    .as_array()
                    .is_some_and(|a| a.len() == 2 && a.iter().all(|p| p["isInLobby"] == false))
            );
        }
        if *s == Scenario::P2pVoipService {
            let seed = fixture("01_notification_content_sharing_started.json").expect("cs");
            assert_eq!(keys(&got[2].body["value"][0]), keys(&seed["value"][0]));
        }
        // GET shows the established call.
        let reply = send(
            reqwest::Client::new()
                .get(format!("{}/communications/calls/{id}", emu.graph_v1_url()))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body["state"], "established", "{s}");
        assert_eq!(reply.body["activeModalities"], serde_json::json!(["audio"]));
    }
    // App-hosted calls had their far end connected (the default no-media connector).
    for (s, id) in &created {
        let media = emu.call(id).expect("call").media;
        if s.is_app_hosted() {
            assert!(
                eventually(Duration::from_secs(5), || emu.call(id).expect("call").media
                    == emulator::MediaStatus::Connected)
                .await,
                "{s}: {media:?}"
            );
        } else {
            assert_eq!(media, emulator::MediaStatus::ServiceHosted, "{s}");
        }
    }
    assert_eq!(rx.rejected(), 0);
    let all = Scenario::ALL.len() as u64;
    assert_eq!(emu.counters().calls_created, all);
    assert_eq!(emu.live_calls() as u64, all);
    let report = emu.shutdown().await;
    assert_eq!(report.live_calls as u64, all);
    assert_eq!(report.tasks_left, 0);
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_app_calls_and_beta_work() {
    let emu = Emulator::start(config()).await.expect("start");
    let rx = Receiver::start(&emu, RegisteredApp::DEMO_CLIENT_ID).await;
    let token = token(&emu).await;
    let body = scenario_body(Scenario::PstnService, &rx.url());
    for url in [
        format!("{}/app/calls", emu.graph_v1_url()),
        format!("{}/communications/calls", emu.graph_beta_url()),
        format!("{}/app/calls", emu.graph_beta_url()),
    ] {
        let reply = send(
            reqwest::Client::new()
                .post(&url)
                .bearer_auth(&token)
                .header("client-request-id", "my-client-request-1")
                .json(&body),
        )
        .await;
        assert_eq!(reply.status, 201, "{url}: {}", reply.body);
        assert_eq!(reply.headers["client-request-id"], "my-client-request-1");
        let id = reply.body["id"].as_str().expect("id");
        let version = if url.contains("/beta/") {
            "beta"
        } else {
            "v1.0"
        };
        assert_eq!(
            reply.headers["location"].to_str().expect("location"),
            format!("{}/{version}/communications/calls/{id}", emu.base_url())
        );
        let context = reply.body["@odata.context"].as_str().expect("context");
        if url.ends_with("/app/calls") {
            assert!(
                context.ends_with("$metadata#app/calls/$entity"),
                "{context}"
            );
        }
        let got = rx.wait_for(id, 2, Duration::from_secs(5)).await;
        assert_eq!(
            sequence(&got, id),
            pairs(&[("", "establishing"), ("", "established")])
        );
        // The legacy path serves the same call.
        let reply = send(
            reqwest::Client::new()
                .get(format!("{}/app/calls/{id}", emu.graph_v1_url()))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(emu.shutdown().await.tasks_left, 0);
    rx.stop().await;
}
