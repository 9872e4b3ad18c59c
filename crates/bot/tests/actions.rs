//! In-call actions end to end: the bot runtime acts on live calls in the emulator
//! (mute, unmute, DTMF, prompts, recording, invite, transfer, ...), long-running
//! operations resolve when their notification comes, and Graph's failures come back
//! as Graph sends them (400, 404, 409; 429 retried).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use emulator::Fault;
use graph::RuntimeEventKind;
use serde_json::json;
use signaling::actions::Action;
use signaling::{CallEvent, Identity, IdentitySet, InvitationParticipantInfo, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_on_a_live_call() {
    let local = start(config()).await;
    let runtime = local.bot.runtime().clone();
    let mut rx = runtime.subscribe();
    let call = local.place(Scenario::GroupService).await.unwrap();
    let id = call.call_id.clone();
    let mut seen = Vec::new();
    assert!(
        events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), |v| {
            v.contains(&RuntimeEventKind::Call(CallEvent::Established))
        })
        .await,
        "{seen:?}"
    );

    // Completed at once, then the roster says the bot is muted.
    let op = runtime.mute(&id).await.unwrap();
    assert_eq!(
        op["@odata.type"],
        "#microsoft.graph.muteParticipantOperation"
    );
    assert!(
        events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), |v| {
            v.iter().any(|k| matches!(k, RuntimeEventKind::Call(CallEvent::ParticipantUpdated(p) | CallEvent::ParticipantJoined(p)) if p.is_muted))
        })
        .await,
        "the bot's participant is muted: {seen:?}"
    );
    runtime.unmute(&id).await.unwrap();
    let op = runtime
        .send_dtmf_tones(&id, &["tone1", "pound"], 50)
        .await
        .unwrap();
    assert_eq!(op["status"], "completed");

    // Running at first; done when the operation's notification comes.
    let op = runtime
        .play_prompt(&id, "https://cdn.contoso.com/beep.wav")
        .await
        .unwrap();
    assert_eq!(op["@odata.type"], "#microsoft.graph.playPromptOperation");
    assert_eq!(op["status"], "completed");
    let body = json!({"prompts": [{"mediaInfo": {"uri": "https://cdn.contoso.com/beep.wav"}}], "maxRecordDurationInSeconds": 5, "clientContext": "rec-1"});
    let op = runtime
        .act_until_done(&id, Action::RecordResponse, &body, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(op["clientContext"], "rec-1");
    assert!(
        op["recordingLocation"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://")),
        "{op}"
    );
    let guest = InvitationParticipantInfo::new(IdentitySet::user(Identity::new(
        "278405a3-f568-4b3e-b684-009193463064",
        "Invitee",
    )));
    let op = runtime.invite(&id, vec![guest]).await.unwrap();
    assert_eq!(
        op["@odata.type"],
        "#microsoft.graph.inviteParticipantsOperation"
    );
    for (action, body) in [
        (Action::SubscribeToTone, json!({"clientContext": "t"})),
        (Action::CancelMediaProcessing, json!({})),
        (
            Action::UpdateRecordingStatus,
            json!({"status": "recording"}),
        ),
    ] {
        let op = runtime
            .act(&id, action, &body)
            .await
            .unwrap()
            .expect("an operation");
        assert_eq!(op["status"], "completed", "{action}");
    }
    assert_eq!(
        runtime
            .act(
                &id,
                Action::ChangeScreenSharingRole,
                &json!({"role": "viewer"})
            )
            .await
            .unwrap(),
        None,
        "202 without a body"
    );

    // Refused as Graph refuses: a bad body locally, a state the action needs (409).
    let err = runtime
        .act(&id, Action::SendDtmfTones, &json!({"tones": ["tone11"]}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tones[0]"), "{err}");
    let err = runtime
        .act(&id, Action::Answer, &json!({"acceptedModalities": ["audio"], "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");

    // 429 with Retry-After: the client waits and retries.
    local
        .emulator
        .inject_fault(Fault::too_many_requests(
            format!("/v1.0/communications/calls/{id}/mute"),
            1,
            1,
        ))
        .unwrap();
    runtime.mute(&id).await.unwrap();
    assert_eq!(local.emulator.counters().faults_served, 1);

    // A blind transfer ends the bot's call.
    let target = InvitationParticipantInfo::new(IdentitySet::phone("+12345678901"));
    runtime.transfer(&id, target).await.unwrap();
    assert!(events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), removed).await);
    assert!(
        seen.iter().any(|k| matches!(
            k,
            RuntimeEventKind::Call(CallEvent::StateChanged {
                to: signaling::CallState::Transferring,
                ..
            })
        )),
        "{seen:?}"
    );
    assert_ended(&local, &id, "Transferred").await;
    // The call is gone: 404.
    let err = runtime.mute(&id).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_and_recordings_need_service_hosted_media() {
    let local = start(config()).await;
    let runtime = local.bot.runtime().clone();
    let mut rx = runtime.subscribe();
    let call = local.place(Scenario::P2pVoipApp).await.unwrap();
    let id = call.call_id.clone();
    let mut seen = Vec::new();
    assert!(
        events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), |v| v
            .contains(&RuntimeEventKind::MediaStarted))
        .await,
        "{seen:?}"
    );
    let err = runtime
        .play_prompt(&id, "https://cdn.contoso.com/beep.wav")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("only supported for calls with service-hosted media"),
        "{err}"
    );
    runtime.hang_up(&id).await.unwrap();
    local.shutdown().await;
}
