//! Consultative transfer and permission refusals end to end: the bot hands a call
//! over to the party of its other call (`transferTarget.replacesCallId`), both calls
//! end as Graph ends them; an app without a permission gets Graph's 403, which the
//! runtime surfaces as a typed error naming the permission.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use emulator::RegisteredApp;
use graph::{RuntimeError, RuntimeEventKind};
use serde_json::json;
use signaling::actions::Action;
use signaling::{
    CallEvent, Identity, IdentitySet, InvitationParticipantInfo, Permission, Scenario,
};

async fn established(
    local: &harness::Local,
    rx: &mut tokio::sync::broadcast::Receiver<graph::RuntimeEvent>,
    scenario: Scenario,
) -> String {
    let established = RuntimeEventKind::Call(CallEvent::Established);
    place_until(local, rx, scenario, established).await.call_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consultative_transfer_replaces_the_consultation_call() {
    let local = start(config()).await;
    let runtime = local.bot.runtime().clone();
    let mut rx = runtime.subscribe();
    let first = established(&local, &mut rx, Scenario::P2pVoipService).await;
    let consult = established(&local, &mut rx, Scenario::PstnService).await;
    let target = InvitationParticipantInfo::new(IdentitySet::user(Identity::new(
        "550fae72-d251-43ec-868c-373732c2704f",
        "Heidi Steen",
    )));

    // A replaced call that is not the app's live call: 400 naming the property.
    let err = runtime
        .transfer_consultative(&first, target.clone(), "no-such-call", None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("transferTarget.replacesCallId"),
        "{err}"
    );

    runtime
        .transfer_consultative(&first, target, &consult, None)
        .await
        .unwrap();
    // Both calls are torn down (events of either, in one pass).
    let mut gone = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gone.len() < 2 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if matches!(ev.kind, RuntimeEventKind::Removed(_)) => {
                gone.insert(ev.call_id);
            }
            Ok(_) => {}
            Err(_) => panic!("not both torn down: {gone:?}"),
        }
    }
    for (id, reason) in [(&first, "AppTransferred"), (&consult, "Replaced")] {
        assert!(gone.contains(id.as_str()), "{id}: {gone:?}");
        let summary = local.emulator.call(id).unwrap();
        assert_eq!(summary.termination.unwrap().reason, reason, "{id}");
    }
    assert!(eventually(Duration::from_secs(5), || runtime.live_calls() == 0).await);
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_a_typed_error_naming_it() {
    let mut cfg = config();
    // Allowed to place P2P calls, nothing else.
    cfg.emulator.apps = vec![RegisteredApp::demo().permissions([Permission::CallsInitiateAll])];
    let local = start(cfg).await;
    let runtime = local.bot.runtime().clone();
    let mut rx = runtime.subscribe();
    let id = established(&local, &mut rx, Scenario::P2pVoipService).await;

    let err = runtime
        .act(&id, Action::SubscribeToTone, &json!({}))
        .await
        .unwrap_err();
    let RuntimeError::Forbidden {
        action,
        needs,
        message,
    } = &err
    else {
        panic!("a 403 is RuntimeError::Forbidden: {err:?}")
    };
    assert_eq!(action, "subscribeToTone");
    assert_eq!(needs.to_string(), "Calls.AccessMedia.All");
    assert!(message.contains("Calls.AccessMedia.All"), "{message}");
    assert!(
        err.to_string().contains("needs Calls.AccessMedia.All"),
        "{err}"
    );

    let roster = local.emulator.participants(&id).unwrap_or_default();
    let someone = roster
        .first()
        .and_then(|p| p["id"].as_str())
        .unwrap_or("p1")
        .to_owned();
    let err = runtime.remove_participant(&id, &someone).await.unwrap_err();
    match &err {
        RuntimeError::Forbidden { action, needs, .. } => {
            assert_eq!(action, "participant delete");
            assert!(
                needs.to_string().contains("Calls.JoinGroupCall.All"),
                "{needs}"
            );
        }
        other => panic!("a 403 is RuntimeError::Forbidden: {other:?}"),
    }
    // Permitted actions still work.
    runtime.hang_up(&id).await.unwrap();
    local.shutdown().await;
}
