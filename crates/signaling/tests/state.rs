//! The call state machine, driven by the seed's notification fixtures and by
//! hand-written notifications for the cases the seed does not show.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use serde_json::json;
use signaling::state::{CallEvent, CallStateMachine};
use signaling::{Call, CallState, CommsNotifications, Field, Modality, ResultInfo};

const SEED_CALL: &str = "2f1a1100-b174-40a0-aba7-0b405e01ed92";
const SHARING_CALL: &str = "421f4c00-4436-4c3a-9d9a-c4924cf98e67";
const LOBBY_CALL: &str = "2f1a1100-726f-4705-a071-30fb8f6b568f";

fn fixture(name: &str) -> CommsNotifications {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = fs::read_to_string(&path).expect("read fixture");
    CommsNotifications::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn feed(sm: &mut CallStateMachine, body: &CommsNotifications) -> Vec<CallEvent> {
    for n in &body.value {
        sm.handle_notification(n);
    }
    std::iter::from_fn(|| sm.poll_event()).collect()
}

fn call_notification(
    call_id: &str,
    change: &str,
    resource: serde_json::Value,
) -> CommsNotifications {
    serde_json::from_value(json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [{
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": change,
            "resourceUrl": format!("/communications/calls/{call_id}"),
            "resourceData": resource,
        }]
    }))
    .expect("notification")
}

fn state_notification(call_id: &str, state: &str) -> CommsNotifications {
    call_notification(
        call_id,
        "updated",
        json!({"@odata.type": "#microsoft.graph.call", "state": state, "id": call_id}),
    )
}

fn participants_notification(
    call_id: &str,
    change: &str,
    participants: serde_json::Value,
) -> CommsNotifications {
    serde_json::from_value(json!({
        "value": [{
            "changeType": change,
            "resourceUrl": format!("/communications/calls/{call_id}/participants"),
            "resourceData": participants,
        }]
    }))
    .expect("notification")
}

fn states(events: &[CallEvent]) -> Vec<CallState> {
    events
        .iter()
        .filter_map(|e| match e {
            CallEvent::StateChanged { to, .. } => Some(to.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn seed_establishing_then_established() {
    let mut sm = CallStateMachine::new(SEED_CALL);
    let events = feed(&mut sm, &fixture("05_notification_establishing.json"));
    assert_eq!(
        events,
        vec![CallEvent::StateChanged {
            from: None,
            to: CallState::Establishing
        }]
    );
    let events = feed(&mut sm, &fixture("05_notification_established.json"));
    assert_eq!(
        events,
        vec![
            CallEvent::StateChanged {
                from: Some(CallState::Establishing),
                to: CallState::Established
            },
            CallEvent::Established
        ]
    );
    assert_eq!(sm.state(), Some(&CallState::Established));
    assert!(sm.was_established());
}

#[test]
fn late_establishing_does_not_move_the_call_back() {
    let mut sm = CallStateMachine::new(SEED_CALL);
    let events = feed(&mut sm, &fixture("05_notification_established.json"));
    assert_eq!(states(&events), vec![CallState::Established]);
    assert!(events.contains(&CallEvent::Established));
    let events = feed(&mut sm, &fixture("05_notification_establishing.json"));
    assert_eq!(events.len(), 1);
    assert!(
        matches!(&events[0], CallEvent::Ignored { reason } if reason.contains("late state establishing"))
    );
    assert_eq!(sm.state(), Some(&CallState::Established));
}

#[test]
fn seed_example_one_notifications_belong_to_their_own_calls() {
    // Example 1's establishing and established notifications carry different call ids
    // (the page's examples come from different calls): a machine applies only its own.
    let establishing = fixture("01_notification_establishing.json");
    let established = fixture("01_notification_established.json");
    let id = established.value[0].call_id().expect("id").to_owned();
    let mut sm = CallStateMachine::new(&id);
    let events = feed(&mut sm, &establishing);
    assert!(matches!(&events[..], [CallEvent::Ignored { .. }]));
    assert_eq!(sm.state(), None);
    let events = feed(&mut sm, &established);
    assert_eq!(states(&events), vec![CallState::Established]);
}

#[test]
fn terminated_is_final_and_carries_result_info_number_or_string() {
    for code in [json!(410), json!("410")] {
        let mut sm = CallStateMachine::new("c1");
        feed(&mut sm, &state_notification("c1", "established"));
        let body = call_notification(
            "c1",
            "deleted",
            json!({
                "@odata.type": "#microsoft.graph.call",
                "state": "terminated",
                "resultInfo": {"@odata.type": "#microsoft.graph.resultInfo",
                               "code": code, "subcode": 301005, "message": "Client Media Error"}
            }),
        );
        let events = feed(&mut sm, &body);
        assert_eq!(states(&events), vec![CallState::Terminated]);
        let result = events
            .iter()
            .find_map(|e| match e {
                CallEvent::Terminated { result } => Some(result.clone()),
                _ => None,
            })
            .expect("terminated event")
            .expect("result info");
        assert_eq!(result.code.value().and_then(|c| c.as_i64()), Some(410));
        assert_eq!(
            result.subcode.value().and_then(|c| c.as_i64()),
            Some(301005)
        );
        assert!(sm.is_terminated());
        // Nothing moves a terminated call, and Terminated is reported once.
        for late in ["established", "establishing", "terminated"] {
            let events = feed(&mut sm, &state_notification("c1", late));
            assert!(
                events
                    .iter()
                    .all(|e| matches!(e, CallEvent::Ignored { .. })),
                "{late}: {events:?}"
            );
        }
        assert_eq!(sm.state(), Some(&CallState::Terminated));
    }
}

#[test]
fn deleted_call_resource_without_state_terminates() {
    let mut sm = CallStateMachine::new("c1");
    feed(&mut sm, &state_notification("c1", "establishing"));
    let events = feed(
        &mut sm,
        &call_notification(
            "c1",
            "deleted",
            json!({"@odata.type": "#microsoft.graph.call"}),
        ),
    );
    assert_eq!(states(&events), vec![CallState::Terminated]);
    assert!(events.contains(&CallEvent::Terminated { result: None }));
    assert!(!sm.was_established());
}

#[test]
fn all_ten_states_along_plausible_paths() {
    let paths: &[&[&str]] = &[
        &[
            "incoming",
            "establishing",
            "established",
            "hold",
            "established",
            "transferring",
            "transferAccepted",
            "terminating",
            "terminated",
        ],
        &["incoming", "redirecting", "terminated"],
        &[
            "establishing",
            "ringing",
            "established",
            "terminating",
            "terminated",
        ],
    ];
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        let mut sm = CallStateMachine::new("c1");
        let mut all = Vec::new();
        for s in *path {
            all.extend(feed(&mut sm, &state_notification("c1", s)));
        }
        let expected: Vec<CallState> = path.iter().map(|s| CallState::from(*s)).collect();
        assert_eq!(states(&all), expected);
        seen.extend(expected);
        assert!(sm.is_terminated());
    }
    for s in CallState::KNOWN {
        assert!(seen.contains(s), "{s} not exercised");
    }
}

#[test]
fn backwards_moves_are_ignored() {
    let mut sm = CallStateMachine::new("c1");
    feed(&mut sm, &state_notification("c1", "ringing"));
    let events = feed(&mut sm, &state_notification("c1", "establishing"));
    assert!(matches!(&events[..], [CallEvent::Ignored { .. }]));
    feed(&mut sm, &state_notification("c1", "terminating"));
    let events = feed(&mut sm, &state_notification("c1", "established"));
    assert!(matches!(&events[..], [CallEvent::Ignored { .. }]));
    assert_eq!(sm.state(), Some(&CallState::Terminating));
    // Unknown states are applied without changing the phase.
    let events = feed(&mut sm, &state_notification("c1", "parked"));
    assert_eq!(states(&events), vec![CallState::Other("parked".into())]);
    let events = feed(&mut sm, &state_notification("c1", "established"));
    assert!(matches!(&events[..], [CallEvent::Ignored { .. }]));
}

#[test]
fn call_update_from_created_response() {
    let mut sm = CallStateMachine::new("c1");
    let call: Call = serde_json::from_value(json!({
        "@odata.type": "#microsoft.graph.call", "state": "establishing",
        "myParticipantId": "p-bot", "id": "c1"
    }))
    .expect("call");
    sm.handle_call_update(&call);
    assert_eq!(sm.state(), Some(&CallState::Establishing));
    assert_eq!(sm.my_participant_id(), Some("p-bot"));
    // The same state again is no event.
    sm.handle_call_update(&call);
    let events: Vec<_> = std::iter::from_fn(|| sm.poll_event()).collect();
    assert_eq!(events.len(), 1);
}

#[test]
fn seed_roster_maps_source_ids_to_speakers() {
    let mut sm = CallStateMachine::new(SEED_CALL);
    let events = feed(&mut sm, &fixture("05_notification_roster.json"));
    assert_eq!(events.len(), 2);
    let CallEvent::ParticipantJoined(john) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(john.id, "0d7664b6-6432-43ed-8d27-d9e7adec188c");
    assert_eq!(john.label(), "John");
    assert!(john.is_muted);
    assert!(!john.is_in_lobby);
    assert_eq!(john.streams.len(), 3);
    assert_eq!(john.audio_msis().collect::<Vec<_>>(), vec![1]);
    assert_eq!(
        john.streams[2].media_type,
        Modality::VideoBasedScreenSharing
    );
    assert_eq!(john.streams[2].msi, Some(8));
    assert!(
        matches!(&events[1], CallEvent::ParticipantJoined(bot) if bot.label() == "Calling Bot")
    );
    assert_eq!(sm.participants().len(), 2);
    assert_eq!(
        sm.participant_by_source_id(10).map(|p| p.label()),
        Some("Calling Bot".to_owned())
    );
    assert_eq!(
        sm.participant_by_source_id(2).map(|p| p.id.as_str()),
        Some("0d7664b6-6432-43ed-8d27-d9e7adec188c")
    );
    assert!(sm.participant_by_source_id(3).is_none());

    // The same roster again changes nothing.
    assert!(feed(&mut sm, &fixture("05_notification_roster.json")).is_empty());
}

#[test]
fn roster_updates_mute_streams_and_leave() {
    let mut sm = CallStateMachine::new("c1");
    feed(
        &mut sm,
        &participants_notification(
            "c1",
            "created",
            json!([{"@odata.type": "#microsoft.graph.participant", "id": "p1", "isMuted": false,
                    "mediaStreams": [{"mediaType": "audio", "sourceId": "5"}]}]),
        ),
    );
    // A partial update: only isMuted; the streams are kept.
    let events = feed(
        &mut sm,
        &participants_notification(
            "c1",
            "updated",
            json!([{"@odata.type": "#microsoft.graph.participant", "id": "p1", "isMuted": true}]),
        ),
    );
    assert!(matches!(&events[0], CallEvent::ParticipantUpdated(p) if p.is_muted));
    assert_eq!(
        events[1],
        CallEvent::MutedChanged {
            participant_id: "p1".into(),
            muted: true
        }
    );
    assert_eq!(events.len(), 2);
    assert_eq!(
        sm.participant_by_source_id(5).map(|p| p.id.as_str()),
        Some("p1")
    );
    // New streams: the speaker id changes.
    let events = feed(
        &mut sm,
        &participants_notification(
            "c1",
            "updated",
            json!([{"@odata.type": "#microsoft.graph.participant", "id": "p1",
                    "mediaStreams": [{"mediaType": "audio", "sourceId": "6"},
                                     {"mediaType": "audio", "sourceId": "not-a-number"}]}]),
        ),
    );
    assert!(
        matches!(&events[1], CallEvent::MediaStreamsChanged { streams, .. }
        if streams[0].msi == Some(6) && streams[1].msi.is_none()
           && streams[1].source_id.as_deref() == Some("not-a-number"))
    );
    assert!(sm.participant_by_source_id(5).is_none());
    // Deleted: left with the last snapshot.
    let events = feed(
        &mut sm,
        &participants_notification(
            "c1",
            "deleted",
            json!([{"@odata.type": "#microsoft.graph.participant", "id": "p1"}]),
        ),
    );
    assert!(matches!(&events[..], [CallEvent::ParticipantLeft(p)] if p.id == "p1" && p.is_muted));
    assert!(sm.participants().is_empty());
    // Deleting again, or a participant without id: ignored.
    let events = feed(
        &mut sm,
        &participants_notification("c1", "deleted", json!([{"id": "p1"}, {"isMuted": true}])),
    );
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, CallEvent::Ignored { .. }))
    );
}

#[test]
fn seed_lobby_guest_admitted() {
    let mut sm = CallStateMachine::new(LOBBY_CALL);
    let events = feed(&mut sm, &fixture("08_notification_roster_lobby.json"));
    assert!(matches!(&events[..], [CallEvent::ParticipantJoined(p)]
        if p.is_in_lobby && p.label() == "Guest User"));
    // The guest is admitted: same document with isInLobby false.
    let mut admitted = fixture("08_notification_roster_lobby.json");
    let text = serde_json::to_string(&admitted).expect("ser");
    admitted =
        CommsNotifications::from_json(&text.replace("\"isInLobby\":true", "\"isInLobby\":false"))
            .expect("parse");
    let events = feed(&mut sm, &admitted);
    assert!(events.contains(&CallEvent::LobbyChanged {
        participant_id: "05491616-385f-44a8-9974-18cc5f9933c1".into(),
        in_lobby: false
    }));
    assert!(!sm.participants()[0].is_in_lobby);
}

#[test]
fn seed_content_sharing_lifecycle() {
    let mut sm = CallStateMachine::new(SHARING_CALL);
    let id = "F7D9EF30FF0A9BD3F64B274387FB8FF8E96B6CFBA8F87F8305A74DE99AF007BC".to_owned();
    let events = feed(
        &mut sm,
        &fixture("01_notification_content_sharing_started.json"),
    );
    assert_eq!(
        events,
        vec![CallEvent::ContentSharingStarted {
            session_id: id.clone()
        }]
    );
    assert_eq!(sm.content_sharing_sessions().len(), 1);
    let events = feed(
        &mut sm,
        &fixture("01_notification_content_sharing_updated.json"),
    );
    assert_eq!(
        events,
        vec![CallEvent::ContentSharingUpdated {
            session_id: id.clone()
        }]
    );
    let events = feed(
        &mut sm,
        &fixture("01_notification_content_sharing_ended.json"),
    );
    assert_eq!(
        events,
        vec![CallEvent::ContentSharingEnded { session_id: id }]
    );
    assert!(sm.content_sharing_sessions().is_empty());
    // Ending it again is ignored.
    let events = feed(
        &mut sm,
        &fixture("01_notification_content_sharing_ended.json"),
    );
    assert!(matches!(&events[..], [CallEvent::Ignored { .. }]));
}

#[test]
fn untyped_and_unknown_resources() {
    let mut sm = CallStateMachine::new("c1");
    // No @odata.type: read as the resource the URL names.
    let events = feed(
        &mut sm,
        &call_notification("c1", "updated", json!({"state": "established"})),
    );
    assert_eq!(states(&events), vec![CallState::Established]);
    let events = feed(
        &mut sm,
        &participants_notification("c1", "created", json!([{"id": "p9"}])),
    );
    assert!(matches!(&events[..], [CallEvent::ParticipantJoined(p)] if p.id == "p9"));
    // An unknown @odata.type is ignored, with a reason naming it.
    let events = feed(
        &mut sm,
        &call_notification(
            "c1",
            "updated",
            json!({"@odata.type": "#microsoft.graph.recordingInfo"}),
        ),
    );
    assert!(
        matches!(&events[..], [CallEvent::Ignored { reason }] if reason.contains("recordingInfo"))
    );
}

#[test]
fn result_info_before_terminated_is_kept() {
    let mut sm = CallStateMachine::new("c1");
    let mut call = Call {
        result_info: Field::Value(ResultInfo {
            code: Field::Value(500.into()),
            subcode: Field::Value(2019.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    sm.handle_call_update(&call);
    call.state = Field::Value(CallState::Terminated);
    call.result_info = Field::Absent;
    sm.handle_call_update(&call);
    let events: Vec<_> = std::iter::from_fn(|| sm.poll_event()).collect();
    assert!(
        matches!(&events[..], [CallEvent::StateChanged { .. }, CallEvent::Terminated { result: Some(r) }]
        if r.subcode.value().and_then(|c| c.as_i64()) == Some(2019))
    );
}

proptest! {
    /// Whatever order the states arrive in, the phase never goes down, terminated is
    /// final, Established and Terminated are reported at most once, and every applied
    /// change starts where the last one ended.
    #[test]
    fn any_order_is_monotonic(order in proptest::collection::vec(0usize..11, 0..40)) {
        let names = ["incoming", "establishing", "ringing", "established", "hold", "transferring",
                     "transferAccepted", "redirecting", "terminating", "terminated", "parked"];
        let phase = |s: &CallState| match s.as_str() {
            "incoming" => 0, "establishing" => 1, "ringing" => 2, "terminating" => 4,
            "terminated" => 5, "parked" => -1, _ => 3,
        };
        let mut sm = CallStateMachine::new("c1");
        let mut last: Option<CallState> = None;
        let mut high = -1;
        let (mut established, mut terminated) = (0, 0);
        for i in order {
            for e in feed(&mut sm, &state_notification("c1", names[i])) {
                match e {
                    CallEvent::StateChanged { from, to } => {
                        prop_assert_eq!(from, last.clone());
                        prop_assert!(terminated == 0);
                        let p = phase(&to);
                        prop_assert!(p == -1 || p >= high);
                        high = high.max(p);
                        last = Some(to);
                    }
                    CallEvent::Established => established += 1,
                    CallEvent::Terminated { .. } => terminated += 1,
                    CallEvent::Ignored { .. } => {}
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
        prop_assert!(established <= 1 && terminated <= 1);
        prop_assert_eq!(sm.state(), last.as_ref());
        prop_assert_eq!(sm.is_terminated(), terminated == 1);
    }
}
