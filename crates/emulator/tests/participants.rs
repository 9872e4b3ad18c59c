//! A call's participants over real HTTP: the roster an app-hosted call gets once
//! media connects, `participants/{id}/mute` and `DELETE participants/{id}` checked as
//! Graph checks them, and the control endpoints that read the roster, set speakers
//! and press tones.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use emulator::Emulator;
use serde_json::json;
use signaling::Scenario;

const APP: &str = emulator::RegisteredApp::DEMO_CLIENT_ID;

fn control(emu: &emulator::EmulatorHandle, path: &str) -> (reqwest::Client, String) {
    let url = format!("{}/_emulator{path}", emu.base_url());
    (reqwest::Client::new(), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_actions_and_control_endpoints() {
    let emu = Emulator::start(config()).await.unwrap();
    let rx = Receiver::start(&emu, APP).await;
    let token = token(&emu).await;
    let group = create(&emu, &token, &scenario_body(Scenario::GroupApp, &rx.url()))
        .await
        .id();
    // established, then the roster once the (media-less) far end connected.
    let got = rx.wait_for(&group, 3, Duration::from_secs(5)).await;
    assert_eq!(
        sequence(&got, &group),
        pairs(&[
            ("", "establishing"),
            ("", "established"),
            ("/participants", "updated")
        ])
    );
    let (http, url) = control(&emu, &format!("/calls/{group}/participants"));
    let roster = send(http.get(&url).bearer_auth(emu.control_token())).await;
    assert_eq!(roster.status, 200);
    let people = roster.body["value"].as_array().unwrap().clone();
    assert_eq!(people.len(), 2, "{people:?}");
    // Each audio stream has a sourceId, the bot's apart from the other party's.
    let msis: Vec<&str> = people
        .iter()
        .map(|p| p["mediaStreams"][0]["sourceId"].as_str().unwrap())
        .collect();
    assert_ne!(msis[0], msis[1]);
    // Without the control token: 401.
    assert_eq!(send(http.get(&url)).await.status, 401);

    let other = people[0]["id"].as_str().unwrap().to_owned();
    let base = format!("{}/communications/calls/{group}", emu.graph_v1_url());
    let graph = reqwest::Client::new();
    // mute: a bad body names the property; then the operation and the roster update.
    let bad = send(
        graph
            .post(format!("{base}/participants/{other}/mute"))
            .bearer_auth(&token)
            .json(&json!({"clientContext": 7})),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(graph_error_message(&bad.body).contains("clientContext"));
    let muted = send(
        graph
            .post(format!("{base}/participants/{other}/mute"))
            .bearer_auth(&token)
            .json(&json!({"clientContext": "m1"})),
    )
    .await;
    assert_eq!(muted.status, 200, "{:?}", muted.body);
    assert_eq!(
        muted.body["@odata.type"],
        "#microsoft.graph.muteParticipantOperation"
    );
    assert_eq!(muted.body["clientContext"], "m1");
    let got = rx.wait_for(&group, 4, Duration::from_secs(5)).await;
    let update = &got[3].body["value"][0];
    assert_eq!(update["changeType"], "updated");
    assert_eq!(update["resourceData"][0]["isMuted"], true);

    let invite =
        json!({"participants": [{"identity": {"user": {"id": "Ann", "displayName": "Ann"}}}]});
    let op = send(
        graph
            .post(format!("{base}/participants/invite"))
            .bearer_auth(&token)
            .json(&invite),
    )
    .await;
    assert_eq!(op.status, 200, "{:?}", op.body);
    let got = rx.wait_for(&group, 6, Duration::from_secs(5)).await;
    assert_eq!(
        got.len(),
        6,
        "the invitee's roster update and the operation's end"
    );

    // DELETE: 204, the participant deleted from the roster; again: 404.
    let url = format!("{base}/participants/{other}");
    let gone = send(graph.delete(&url).bearer_auth(&token)).await;
    assert_eq!(gone.status, 204);
    let got = rx.wait_for(&group, 7, Duration::from_secs(5)).await;
    let deleted: Vec<_> = got
        .iter()
        .map(|r| &r.body["value"][0])
        .filter(|n| n["changeType"] == "deleted" && n["resourceData"][0]["id"].is_string())
        .collect();
    assert_eq!(deleted.len(), 1, "{got:?}");
    assert_eq!(deleted[0]["resourceData"][0]["id"], other.as_str());
    let again = send(graph.delete(&url).bearer_auth(&token)).await;
    assert_eq!(again.status, 404);
    assert!(graph_error_message(&again.body).contains(&other));

    // Invitees get audio sourceIds of their own, never one in use (Ann came before
    // the other party left, Bea after).
    for name in ["Bea"] {
        let invite =
            json!({"participants": [{"identity": {"user": {"id": name, "displayName": name}}}]});
        let op = send(
            graph
                .post(format!("{base}/participants/invite"))
                .bearer_auth(&token)
                .json(&invite),
        )
        .await;
        assert_eq!(op.status, 200, "{:?}", op.body);
    }
    let all_in = eventually(Duration::from_secs(5), || {
        emu.participants(&group).is_ok_and(|p| p.len() == 3)
    })
    .await;
    assert!(all_in, "{:?}", emu.participants(&group));
    let mut msis: Vec<String> = emu
        .participants(&group)
        .unwrap()
        .iter()
        .map(|p| {
            p["mediaStreams"][0]["sourceId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    msis.sort();
    msis.dedup();
    assert_eq!(msis.len(), 3, "{msis:?}");

    // Control endpoints: speakers by roster id (this far end carries no media: 400
    // saying so), unknown participants and tones named, unknown calls 404.
    let bot = people[1]["id"].as_str().unwrap();
    let (http, url) = control(&emu, &format!("/calls/{group}/speakers"));
    let refused = send(
        http.post(&url)
            .bearer_auth(emu.control_token())
            .json(&json!({"participants": [bot]})),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(graph_error_message(&refused.body).contains("does not carry speakers"));
    let unknown = send(
        http.post(&url)
            .bearer_auth(emu.control_token())
            .json(&json!({"participants": [other]})),
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert!(graph_error_message(&unknown.body).contains(&other));
    let (http, url) = control(&emu, &format!("/calls/{group}/tones"));
    let pressed = send(
        http.post(&url)
            .bearer_auth(emu.control_token())
            .json(&json!({"tones": ["tone1"]})),
    )
    .await;
    assert_eq!(pressed.status, 200);
    assert_eq!(pressed.body["inMedia"], 0);
    let bad_tone = send(
        http.post(&url)
            .bearer_auth(emu.control_token())
            .json(&json!({"tones": ["tone1", "hash"]})),
    )
    .await;
    assert_eq!(bad_tone.status, 400);
    assert!(graph_error_message(&bad_tone.body).contains("tones[1]"));
    let (http, url) = control(&emu, "/calls/no-such-call/tones");
    let missing = send(
        http.post(&url)
            .bearer_auth(emu.control_token())
            .json(&json!({"tones": ["tone1"]})),
    )
    .await;
    assert_eq!(missing.status, 404);

    // Participant mute is for group calls only.
    let p2p = create(
        &emu,
        &token,
        &scenario_body(Scenario::P2pVoipApp, &rx.url()),
    )
    .await
    .id();
    rx.wait_for(&p2p, 3, Duration::from_secs(5)).await;
    let people = emu.participants(&p2p).unwrap();
    let someone = people[0]["id"].as_str().unwrap();
    let refused = send(
        graph
            .post(format!(
                "{}/communications/calls/{p2p}/participants/{someone}/mute",
                emu.graph_v1_url()
            ))
            .bearer_auth(&token)
            .json(&json!({})),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(graph_error_message(&refused.body).contains("only supported for group calls"));

    assert_eq!(emu.shutdown().await.tasks_left, 0);
    rx.stop().await;
}
