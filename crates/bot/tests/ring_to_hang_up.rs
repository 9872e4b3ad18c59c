//! Issue 14's "done when", end to end with the emulator and QUIC media: the emulator
//! rings the bot, the bot answers with app-hosted media, hears the caller, learns who
//! speaks (the caller, by the roster's audio sourceId), subscribes to tones and
//! receives them (in the media and as `toneInfo`), mutes, transfers; a second call is
//! answered and hung up.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bot::CallUpdate;
use common::*;
use emulator::IncomingCall;
use graph::{AnswerMedia, RuntimeEventKind};
use platform::DtmfTone;
use signaling::actions::Action;
use signaling::{CallEvent, IdentitySet, InvitationParticipantInfo};

/// Rings the bot and answers with app-hosted media; the call id and its session,
/// once the far end is connected.
async fn ring_and_answer(
    local: &harness::Local,
    rx: &mut tokio::sync::broadcast::Receiver<graph::RuntimeEvent>,
) -> (String, uuid::Uuid) {
    let mut offer = IncomingCall::to(local.bot.callback_url());
    offer.caller_name = "Adele".into();
    let id = local.emulator.ring(&offer).unwrap();
    let mut seen = Vec::new();
    assert!(
        events_until(rx, &id, &mut seen, Duration::from_secs(5), |v| v
            .iter()
            .any(|k| matches!(k, RuntimeEventKind::Incoming(_))))
        .await,
        "{seen:?}"
    );
    let session = local
        .bot
        .runtime()
        .answer(&id, AnswerMedia::AppHosted)
        .await
        .unwrap()
        .expect("app-hosted media has a session");
    assert!(
        events_until(rx, &id, &mut seen, Duration::from_secs(5), |v| v
            .contains(&RuntimeEventKind::MediaStarted))
        .await,
        "{seen:?}"
    );
    assert!(
        eventually(Duration::from_secs(5), || local
            .emulator
            .call(&id)
            .is_some_and(|c| c.media == emulator::MediaStatus::Connected))
        .await
    );
    (id, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_answer_hear_speakers_tones_mute_transfer_and_hang_up() {
    let recorder = Recorder::default();
    let mut cfg = config();
    cfg.bot = Arc::new(recorder.clone());
    let local = start(cfg).await;
    let runtime = local.bot.runtime().clone();
    let mut rx = runtime.subscribe();

    let (id, session) = ring_and_answer(&local, &mut rx).await;
    // Hears the caller (and the caller hears the bot).
    assert_media_flows(&local, session, &id, "answered call").await;

    // Learns who speaks: the caller, by name, on frames and as the dominant speaker.
    let caller_speaks = eventually(Duration::from_secs(5), || {
        recorder.seen(|s| {
            s.updates.iter().any(|u| {
                matches!(u,
                CallUpdate::DominantSpeakerChanged { current: Some(c), .. }
                    if c.participant.as_ref().is_some_and(|p| p.label() == "Adele"))
            }) && s.speaking.iter().any(|(_, p)| p.is_some())
        })
    })
    .await;
    assert!(caller_speaks, "{:?}", recorder.seen(|s| format!("{s:?}")));

    // Subscribes to tones and receives them: in the media, and as toneInfo.
    runtime
        .act(&id, Action::SubscribeToTone, &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(
        local.emulator.press_tones(&id, &["tone4", "star"]).unwrap(),
        2
    );
    let tones = eventually(Duration::from_secs(5), || {
        recorder.seen(|s| {
            s.tones == [DtmfTone::Tone4, DtmfTone::Star]
                && s.updates
                    .iter()
                    .filter(|u| matches!(u, CallUpdate::Call(CallEvent::ToneReceived { .. })))
                    .count()
                    == 2
        })
    })
    .await;
    assert!(tones, "{:?}", recorder.seen(|s| format!("{s:?}")));

    // Mutes: the roster shows the bot muted.
    runtime.mute(&id).await.unwrap();
    let muted = eventually(Duration::from_secs(5), || {
        recorder.seen(|s| {
            s.updates.iter().any(|u| {
                matches!(
                    u,
                    CallUpdate::Call(CallEvent::MutedChanged { muted: true, .. })
                )
            })
        })
    })
    .await;
    assert!(muted, "{:?}", recorder.seen(|s| format!("{:?}", s.updates)));

    // Transfers: the service takes the call away from the bot.
    let target = InvitationParticipantInfo::new(IdentitySet::phone("+12345678901"));
    runtime.transfer(&id, target).await.unwrap();
    let mut seen = Vec::new();
    assert!(events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), removed).await);
    assert_ended(&local, &id, "Transferred").await;

    // Another call: answered, then hung up by the bot.
    let (second, session) = ring_and_answer(&local, &mut rx).await;
    assert_media_flows(&local, session, &second, "second call").await;
    runtime.hang_up(&second).await.unwrap();
    let mut seen = Vec::new();
    assert!(events_until(&mut rx, &second, &mut seen, Duration::from_secs(5), removed).await);
    assert_ended(&local, &second, "AppHangUp").await;
    assert!(eventually(Duration::from_secs(5), || runtime.live_calls() == 0).await);
    local.shutdown().await;
}
