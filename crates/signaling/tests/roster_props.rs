//! Whatever participants notifications arrive, in whatever order: the roster
//! snapshot agrees with the state machine (every audio MSI maps to the first
//! participant carrying it, as `participant_by_source_id` says), its version grows
//! by exactly the roster events emitted, and nothing panics.

use proptest::prelude::*;
use serde_json::{Value, json};
use signaling::state::{CallEvent, CallStateMachine};
use signaling::{CommsNotifications, RosterSnapshot};

/// One participants notification: `changeType` and participants (id, audio MSI,
/// muted, in lobby).
#[derive(Debug, Clone)]
struct Change {
    change: &'static str,
    participants: Vec<(u8, Option<u8>, bool, bool)>,
}

fn change() -> impl Strategy<Value = Change> {
    (
        prop_oneof![Just("created"), Just("updated"), Just("deleted")],
        prop::collection::vec(
            (
                0u8..6,
                prop::option::of(0u8..8),
                any::<bool>(),
                any::<bool>(),
            ),
            0..4,
        ),
    )
        .prop_map(|(change, participants)| Change {
            change,
            participants,
        })
}

fn body(c: &Change) -> String {
    let data: Vec<Value> = c
        .participants
        .iter()
        .map(|(id, msi, muted, lobby)| {
            let streams = match msi {
                Some(m) => json!([{"mediaType": "audio", "sourceId": m.to_string()},
                                  {"mediaType": "video", "sourceId": (100 + u32::from(*m)).to_string()}]),
                None => json!([]),
            };
            json!({"@odata.type": "#microsoft.graph.participant", "id": format!("p{id}"),
                   "mediaStreams": streams, "isMuted": muted, "isInLobby": lobby})
        })
        .collect();
    json!({"value": [{"changeType": c.change,
        "resourceUrl": "/communications/calls/c1/participants", "resourceData": data}]})
    .to_string()
}

fn roster_event(e: &CallEvent) -> bool {
    matches!(
        e,
        CallEvent::ParticipantJoined(_)
            | CallEvent::ParticipantUpdated(_)
            | CallEvent::ParticipantLeft(_)
    )
}

/// The snapshot's mapping is the machine's, for every MSI in range.
fn agrees(call: &CallStateMachine, snap: &RosterSnapshot) -> Result<(), TestCaseError> {
    for msi in 0u32..8 {
        prop_assert_eq!(
            snap.by_msi(msi).map(|p| p.id.clone()),
            call.participant_by_source_id(msi).map(|p| p.id.clone()),
            "msi {}",
            msi
        );
    }
    // Video streams are never speakers.
    for msi in 100u32..108 {
        prop_assert!(snap.by_msi(msi).is_none());
    }
    prop_assert_eq!(&snap.participants[..], call.participants());
    Ok(())
}

proptest! {
    #[test]
    fn snapshots_follow_the_machine(changes in prop::collection::vec(change(), 0..24)) {
        let mut call = CallStateMachine::new("c1");
        let mut last = call.roster_snapshot();
        prop_assert_eq!(last.version, 0);
        for c in &changes {
            let parsed = CommsNotifications::from_json(&body(c)).expect("valid JSON");
            for n in &parsed.value {
                call.handle_notification(n);
            }
            let events = std::iter::from_fn(|| call.poll_event())
                .filter(roster_event)
                .count() as u64;
            let snap = call.roster_snapshot();
            prop_assert_eq!(snap.version, last.version + events);
            agrees(&call, &snap)?;
            last = snap;
        }
    }
}
