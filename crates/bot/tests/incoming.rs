//! Calls offered to the bot: the emulator rings it, the bot runtime answers with
//! app-hosted media (the far end's audio reaches the bot and comes back), rejects or
//! redirects; bodies Graph would refuse are refused, locally and by the emulator.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use emulator::IncomingCall;
use graph::{AnswerMedia, RejectReason, RuntimeError, RuntimeEventKind, TeardownReason};
use signaling::{CallEvent, CallState};

/// Rings the bot and waits for the runtime's `Incoming` event; the call id.
async fn ring(
    local: &harness::Local,
    rx: &mut tokio::sync::broadcast::Receiver<graph::RuntimeEvent>,
) -> String {
    let id = local
        .emulator
        .ring(&IncomingCall::to(local.bot.callback_url()))
        .unwrap();
    let mut seen = Vec::new();
    let offered = events_until(rx, &id, &mut seen, Duration::from_secs(5), |v| {
        v.iter().any(|k| matches!(k, RuntimeEventKind::Incoming(_)))
    })
    .await;
    assert!(offered, "the bot was not offered the call: {seen:?}");
    let Some(RuntimeEventKind::Incoming(call)) = seen
        .iter()
        .find(|k| matches!(k, RuntimeEventKind::Incoming(_)))
    else {
        unreachable!()
    };
    // The offer carries the caller as Graph's answer reference shows it.
    let caller = call
        .source
        .value()
        .and_then(|s| s.identity.value())
        .and_then(|i| i.user.value());
    assert_eq!(
        caller
            .and_then(|u| u.display_name.value())
            .map(String::as_str),
        Some("John")
    );
    assert_eq!(call.state.value(), Some(&CallState::Incoming));
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_call_answered_with_app_hosted_media_flows_both_ways() {
    let local = start(config()).await;
    let mut rx = local.bot.runtime().subscribe();
    let id = ring(&local, &mut rx).await;
    let session = local
        .bot
        .runtime()
        .answer(&id, AnswerMedia::AppHosted)
        .await
        .unwrap()
        .expect("app-hosted media has a session");
    let mut seen = Vec::new();
    let ok = events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), |v| {
        v.contains(&RuntimeEventKind::MediaStarted)
    })
    .await;
    assert!(ok, "not established with media: {seen:?}");
    assert!(
        seen.contains(&RuntimeEventKind::Call(CallEvent::Established)),
        "{seen:?}"
    );
    assert_media_flows(&local, session, &id, "answered call").await;
    assert_eq!(
        local.emulator.call(&id).unwrap().state,
        CallState::Established
    );

    // Answering again: the call no longer rings (409).
    let again = local
        .bot
        .runtime()
        .answer(&id, AnswerMedia::AppHosted)
        .await;
    match again {
        Err(RuntimeError::Graph(e)) => assert!(e.to_string().contains("409"), "{e}"),
        other => panic!("a second answer must be refused: {other:?}"),
    }

    local.bot.runtime().hang_up(&id).await.unwrap();
    assert!(events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), removed).await);
    assert!(
        eventually(Duration::from_secs(5), || local
            .bot
            .sessions()
            .session_count()
            == 0)
        .await,
        "the answered call's media session is gone with it"
    );
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_and_redirected_calls_end_with_graphs_result() {
    let local = start(config()).await;
    let mut rx = local.bot.runtime().subscribe();

    let busy = ring(&local, &mut rx).await;
    local
        .bot
        .runtime()
        .reject(&busy, RejectReason::Busy)
        .await
        .unwrap();
    let mut seen = Vec::new();
    assert!(events_until(&mut rx, &busy, &mut seen, Duration::from_secs(5), removed).await);
    let Some(RuntimeEventKind::Removed(TeardownReason::Terminated { result })) = seen.last() else {
        panic!("ended by the service: {seen:?}")
    };
    assert_eq!(
        result
            .as_ref()
            .and_then(|r| r.code.value())
            .and_then(signaling::Code::as_i64),
        Some(486)
    );
    assert_eq!(
        local
            .emulator
            .call(&busy)
            .unwrap()
            .termination
            .unwrap()
            .reason,
        "Rejected"
    );

    let moved = ring(&local, &mut rx).await;
    // No target: refused before it is sent, naming the property.
    let err = local
        .bot
        .runtime()
        .redirect(&moved, Vec::new(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("targets: required"), "{err}");
    let target =
        signaling::InvitationParticipantInfo::new(signaling::IdentitySet::phone("+12345678901"));
    local
        .bot
        .runtime()
        .redirect(&moved, vec![target], Some(30))
        .await
        .unwrap();
    let mut seen = Vec::new();
    assert!(events_until(&mut rx, &moved, &mut seen, Duration::from_secs(5), removed).await);
    assert_eq!(
        local
            .emulator
            .call(&moved)
            .unwrap()
            .termination
            .unwrap()
            .reason,
        "Redirected"
    );
    assert_eq!(local.bot.runtime().live_calls(), 0);
    local.shutdown().await;
}
