//! Callback bodies (`commsNotifications`) along the path the `graph` callback server
//! and runtime give them, without HTTP: strict JSON (`signaling::json`), the model,
//! the type check, then each notification to the state machine of the call its
//! `resourceUrl` names.

use std::collections::HashMap;

use signaling::state::{CallEvent, CallStateMachine};
use signaling::{CommsNotifications, ResourceItem, odata};

use super::Verdict;
use crate::check::{MAX_MESSAGE_CHARS, check_message, check_round_trip};

/// Most characters of a [`CallEvent::Ignored`] reason: `media_blob::bounded` keeps 240
/// characters of it, each escaped to at most 6, plus `… (N bytes)`.
const MAX_REASON_CHARS: usize = 240 * 6 + 32;

/// Parses `data` as a callback body and drives per-call state machines with it.
pub(crate) fn run(data: &[u8]) -> Verdict {
    // The callback server's reading: strict JSON (a repeated key is refused), then the model.
    let value = match signaling::json::from_slice_strict(data) {
        Ok(value) => value,
        Err(e) => {
            check_message("from_slice_strict", &e.to_string(), MAX_MESSAGE_CHARS);
            return Verdict::Rejected;
        }
    };
    let Ok(body) = serde_json::from_value::<CommsNotifications>(value) else {
        return Verdict::Rejected;
    };
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            CommsNotifications::from_json(text).as_ref().ok(),
            Some(&body),
            "CommsNotifications: strict and plain parsing differ"
        );
    }
    let _ = body.summary();
    let value = body.to_value();
    let from_value: CommsNotifications = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("CommsNotifications: its own value does not parse: {e}"));
    assert_eq!(
        from_value, body,
        "CommsNotifications: value round trip changed the model"
    );
    let again = CommsNotifications::from_json(&value.to_string())
        .unwrap_or_else(|e| panic!("CommsNotifications: its own JSON does not parse: {e}"));
    check_round_trip("CommsNotifications", &value, &again.to_value());

    // The callback server refuses another top-level type with 400.
    if body
        .odata_type
        .value()
        .is_some_and(|t| !odata::is(t, odata::COMMS_NOTIFICATIONS))
    {
        return Verdict::Rejected;
    }
    // One machine per call, as the runtime keeps them, plus one for a call nobody names.
    let mut machines: HashMap<String, CallStateMachine> = HashMap::new();
    let mut stranger = CallStateMachine::new("00000000-0000-0000-0000-000000000000");
    for n in &body.value {
        stranger.handle_notification(n);
        drain(&mut stranger);
        let Some(call_id) = n.call_id() else {
            continue;
        };
        let machine = machines
            .entry(call_id.to_owned())
            .or_insert_with(|| CallStateMachine::new(call_id));
        machine.handle_notification(n);
        drain(machine);
        // A call resource is also what a GET answers: the runtime's other input.
        for item in n.items() {
            if let ResourceItem::Call(call) = item {
                machine.handle_call_update(call);
                drain(machine);
            }
        }
    }
    Verdict::Accepted
}

/// Drains a machine's events, checking them and the machine's invariants.
fn drain(machine: &mut CallStateMachine) {
    while let Some(event) = machine.poll_event() {
        if let CallEvent::Ignored { reason } = &event {
            check_message("CallEvent::Ignored", reason, MAX_REASON_CHARS);
        }
    }
    let ids: Vec<&str> = machine
        .participants()
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert!(
            !ids[..i].contains(id),
            "participant {id:?} twice in the roster"
        );
        assert!(!id.is_empty(), "participant without id in the roster");
    }
    if machine.is_terminated() {
        assert_eq!(
            machine.state(),
            Some(&signaling::CallState::Terminated),
            "a terminated call is in another state"
        );
    }
}

/// Seeds: every notification of the seed page, and bodies for the paths the page does
/// not show (a deleted call with its result, a participant leaving, resources without
/// `@odata.type`, the legacy `/app/calls` URL, an unknown resource type).
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = super::fixtures::NOTIFICATIONS
        .iter()
        .map(|f| f.as_bytes().to_vec())
        .collect();
    let extra = [
        r##"{"@odata.type":"#microsoft.graph.commsNotifications","value":[
            {"changeType":"updated","resourceUrl":"/communications/calls/c1/participants",
             "resourceData":[{"@odata.type":"#microsoft.graph.participant","id":"p1","isMuted":true,
                "mediaStreams":[{"mediaType":"audio","sourceId":"10","direction":"sendReceive"}]}]},
            {"changeType":"deleted","resourceUrl":"/communications/calls/c1/participants",
             "resourceData":[{"@odata.type":"#microsoft.graph.participant","id":"p1"}]},
            {"changeType":"deleted","resourceUrl":"/communications/calls/c1",
             "resourceData":{"@odata.type":"#microsoft.graph.call","state":"terminated",
                "resultInfo":{"code":"410","subcode":301005,"message":"Client Media Error"}}}]}"##,
        r##"{"value":[
            {"changeType":"created","resourceUrl":"/app/calls/c2",
             "resourceData":{"state":"established","myParticipantId":"me"}},
            {"changeType":"updated","resourceUrl":"/communications/calls/c2/participants/p2",
             "resourceData":[{"id":"p2","isInLobby":true,"info":{"identity":{"user":{"id":"u","displayName":"U"}}}}]},
            {"changeType":"created","resourceUrl":"/communications/calls/c2/contentSharingSessions",
             "resourceData":[{"id":"s1"}]},
            {"changeType":"updated","resourceUrl":"/communications/calls/c2/operations/o1",
             "resourceData":{"@odata.type":"#microsoft.graph.playPromptOperation","status":"completed"}}]}"##,
    ];
    seeds.extend(extra.iter().map(|s| s.as_bytes().to_vec()));
    seeds
}
