//! Participants and speakers end to end: the emulator's roster notifications (each
//! audio stream with its `sourceId`) reach the bot's runtime, the emulator's far end
//! reports speakers by those ids in the QUIC media, and the bot maps every frame's
//! speakers and every dominant-speaker change to participants; roster changes
//! (invite, participant mute and delete) and DTMF (in the media, and as `toneInfo`
//! after `subscribeToTone`) reach the bot's behaviour in order.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bot::CallUpdate;
use common::*;
use graph::{RuntimeError, RuntimeEventKind};
use platform::DtmfTone;
use signaling::{CallEvent, Identity, IdentitySet, InvitationParticipantInfo, Scenario};

/// The dominant speaker's participant id of a speaker update.
fn dominant(u: &CallUpdate) -> Option<(u32, Option<&str>)> {
    match u {
        CallUpdate::DominantSpeakerChanged {
            current: Some(s), ..
        } => Some((s.msi, s.participant_id())),
        _ => None,
    }
}

/// The audio `sourceId` of a participant resource.
fn msi_of(p: &serde_json::Value) -> u32 {
    p["mediaStreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["mediaType"] == "audio")
        .and_then(|s| s["sourceId"].as_str())
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits until the emulator's far end of `id` is connected (the bot's media may
/// start first).
async fn wait_far_end(local: &harness::Local, id: &str) {
    assert!(
        eventually(Duration::from_secs(5), || local
            .emulator
            .call(id)
            .is_some_and(|c| c.media == emulator::MediaStatus::Connected))
        .await,
        "the far end did not connect: {:?}",
        local.emulator.call(id)
    );
}

/// The emulator, the recording bot, and a call of `scenario` with media flowing.
async fn recorded_call(
    scenario: Scenario,
) -> (
    harness::Local,
    Recorder,
    tokio::sync::broadcast::Receiver<graph::RuntimeEvent>,
    graph::ActiveCall,
) {
    let recorder = Recorder::default();
    let mut cfg = config();
    cfg.bot = Arc::new(recorder.clone());
    let local = start(cfg).await;
    let mut rx = local.bot.runtime().subscribe();
    let call = place_until(&local, &mut rx, scenario, RuntimeEventKind::MediaStarted).await;
    wait_far_end(&local, &call.call_id).await;
    (local, recorder, rx, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speakers_map_to_participants_and_roster_changes_reach_the_bot() {
    let (local, recorder, mut rx, call) = recorded_call(Scenario::GroupApp).await;
    let runtime = local.bot.runtime().clone();
    let id = call.call_id.clone();
    let mut seen = Vec::new();
    // The emulator's roster: the other party (audio sourceId "1") and the bot.
    let roster = local.emulator.participants(&id).unwrap();
    let my_id = call.call.my_participant_id.value().unwrap().clone();
    let other = roster.iter().find(|p| p["id"] != my_id.as_str()).unwrap();
    let other_id = other["id"].as_str().unwrap().to_owned();
    let other_msi = msi_of(other);

    // The far end reports the other party as the speaker: every frame maps to it,
    // and the dominant-speaker change carries the participant.
    let heard = eventually(Duration::from_secs(5), || {
        recorder.seen(|s| {
            s.updates
                .iter()
                .any(|u| dominant(u) == Some((other_msi, Some(other_id.as_str()))))
                && s.speaking.contains(&(other_msi, Some(other_id.clone())))
        })
    })
    .await;
    assert!(heard, "{:?}", recorder.seen(|s| format!("{s:?}")));
    // The runtime's shared snapshot agrees.
    let snapshot = runtime.roster(&id).unwrap().borrow().clone();
    assert_eq!(
        snapshot.by_msi(other_msi).map(|p| p.id.as_str()),
        Some(other_id.as_str())
    );
    assert_eq!(snapshot.my_participant_id.as_deref(), Some(my_id.as_str()));

    // An invitee joins the roster with an audio stream of its own; when the far end
    // reports it as the loudest, the bot's dominant speaker is the invitee.
    let guest = InvitationParticipantInfo::new(IdentitySet::user(Identity::new(
        "278405a3-f568-4b3e-b684-009193463064",
        "Invitee",
    )));
    runtime.invite(&id, vec![guest]).await.unwrap();
    let joined = eventually(Duration::from_secs(5), || {
        recorder.seen(|s| {
            s.updates.iter().any(|u| {
                matches!(u, CallUpdate::Call(CallEvent::ParticipantJoined(p)) if p.label() == "Invitee")
            })
        })
    })
    .await;
    assert!(
        joined,
        "{:?}",
        recorder.seen(|s| format!("{:?}", s.updates))
    );
    let roster = local.emulator.participants(&id).unwrap();
    let invitee = roster
        .iter()
        .find(|p| p["info"]["identity"]["user"]["displayName"] == "Invitee")
        .unwrap();
    let invitee_id = invitee["id"].as_str().unwrap().to_owned();
    let invitee_msi = msi_of(invitee);
    assert_ne!(invitee_msi, other_msi);
    local
        .emulator
        .set_speakers(&id, &[&invitee_id, &other_id])
        .unwrap();
    let switched = eventually(Duration::from_secs(5), || {
        recorder.seen(|s| {
            s.updates.iter().any(|u| {
                matches!(u,
                CallUpdate::DominantSpeakerChanged { current: Some(c), previous: Some(p) }
                    if c.participant_id() == Some(invitee_id.as_str())
                        && p.participant_id() == Some(other_id.as_str()))
            }) && s
                .speaking
                .contains(&(invitee_msi, Some(invitee_id.clone())))
        })
    })
    .await;
    assert!(switched, "{:?}", recorder.seen(|s| format!("{s:?}")));

    // Server-mute the invitee: a muteParticipantOperation, then the roster says so.
    let op = runtime.mute_participant(&id, &invitee_id).await.unwrap();
    assert_eq!(
        op["@odata.type"],
        "#microsoft.graph.muteParticipantOperation"
    );
    // Remove the invitee: the roster loses it, and the dominant speaker (still its
    // stream) no longer maps to anyone.
    runtime.remove_participant(&id, &invitee_id).await.unwrap();
    let gone = eventually(Duration::from_secs(5), || {
        recorder.seen(|s| {
            let muted = s.updates.iter().any(|u| {
                matches!(u,
                CallUpdate::Call(CallEvent::MutedChanged { participant_id, muted: true })
                    if *participant_id == invitee_id)
            });
            let left = s.updates.iter().any(|u| {
                matches!(u,
                CallUpdate::Call(CallEvent::ParticipantLeft(p)) if p.id == invitee_id)
            });
            let unmapped = s
                .updates
                .iter()
                .any(|u| dominant(u) == Some((invitee_msi, None)));
            muted && left && unmapped
        })
    })
    .await;
    assert!(gone, "{:?}", recorder.seen(|s| format!("{:?}", s.updates)));
    assert!(
        runtime
            .roster(&id)
            .unwrap()
            .borrow()
            .participant(&invitee_id)
            .is_none()
    );

    // Unknown participants are refused by name, here and by the emulator.
    let err = local.emulator.set_speakers(&id, &["nobody"]).unwrap_err();
    assert!(err.to_string().contains("nobody"), "{err}");
    let err = runtime.remove_participant(&id, "nobody").await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    runtime.hang_up(&id).await.unwrap();
    assert!(events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), removed).await);
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tones_travel_in_the_media_and_as_tone_info_once_subscribed() {
    let (local, recorder, mut rx, call) = recorded_call(Scenario::P2pVoipApp).await;
    let runtime = local.bot.runtime().clone();
    let id = call.call_id.clone();
    let mut seen = Vec::new();
    // Not subscribed: the tones reach the bot's audio socket only.
    let in_media = local
        .emulator
        .press_tones(&id, &["tone1", "pound"])
        .unwrap();
    assert_eq!(in_media, 2);
    let got = eventually(Duration::from_secs(5), || {
        recorder.seen(|s| s.tones == [DtmfTone::Tone1, DtmfTone::Pound])
    })
    .await;
    assert!(got, "{:?}", recorder.seen(|s| s.tones.clone()));

    // Subscribed: each tone also comes as the call's toneInfo, to the runtime and
    // to the bot, in order.
    let op = runtime
        .act(
            &id,
            signaling::actions::Action::SubscribeToTone,
            &serde_json::json!({"clientContext": "tones"}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        op["@odata.type"],
        "#microsoft.graph.subscribeToToneOperation"
    );
    local.emulator.press_tones(&id, &["star", "tone9"]).unwrap();
    let notified = |s: &Seen| {
        s.updates
            .iter()
            .filter_map(|u| match u {
                CallUpdate::Call(CallEvent::ToneReceived { tone, sequence_id }) => {
                    Some((tone.clone(), *sequence_id))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let got = eventually(Duration::from_secs(5), || {
        recorder.seen(|s| notified(s).len() == 2 && s.tones.len() == 4)
    })
    .await;
    assert!(got, "{:?}", recorder.seen(|s| format!("{s:?}")));
    assert_eq!(
        recorder.seen(notified),
        [("star".to_owned(), Some(1)), ("tone9".to_owned(), Some(2))]
    );
    assert_eq!(
        recorder.seen(|s| s.tones.clone()),
        [
            DtmfTone::Tone1,
            DtmfTone::Pound,
            DtmfTone::Star,
            DtmfTone::Tone9
        ]
    );
    assert!(
        events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), |v| v
            .iter()
            .filter(|k| matches!(k, RuntimeEventKind::Call(CallEvent::ToneReceived { .. })))
            .count()
            == 2)
        .await,
        "{seen:?}"
    );

    // The bot's sendDtmfTones: Graph's operation, and the tones in the media link,
    // which the far end's audio socket reports in order.
    let op = local
        .bot
        .send_dtmf_tones(&id, &["tone5", "B", "flash"], 0)
        .await
        .unwrap();
    assert_eq!(op["@odata.type"], "#microsoft.graph.sendDtmfTonesOperation");
    let heard = eventually(Duration::from_secs(5), || {
        local.far_end.tones_heard(&id) == [DtmfTone::Tone5, DtmfTone::B, DtmfTone::Flash]
    })
    .await;
    assert!(heard, "{:?}", local.far_end.tones_heard(&id));
    // Refused locally, by name: nothing goes to Graph or into the media.
    let err = local
        .bot
        .send_dtmf_tones(&id, &["tone1", "hash"], 0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tones[1]"), "{err}");
    assert_eq!(local.far_end.tones_heard(&id).len(), 3);

    // A tone Graph does not know is refused by name.
    let err = local.emulator.press_tones(&id, &["tone10"]).unwrap_err();
    assert!(err.to_string().contains("tones[0]"), "{err}");

    // Participant mute is for group calls only (400), whatever the participant.
    let err = runtime
        .mute_participant(&id, call.call.my_participant_id.value().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Graph(e) if e.to_string().contains("only supported for group calls")),
        "{err}"
    );
    runtime.hang_up(&id).await.unwrap();
    local.shutdown().await;
}
