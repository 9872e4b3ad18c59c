//! In-call action bodies: the reference's own examples are recognised and valid; what
//! Graph refuses is refused, naming the property; shapes several actions share are
//! said to fit them all.

use serde_json::{Value, json};
use signaling::actions::{self, Action};

/// One request body per action: answer (service-hosted, example 1) and redirect (to a
/// PSTN number, example 3) verbatim from the v1.0 reference; the others written after
/// the reference's examples and parameter tables.
fn reference_examples() -> Vec<(Action, Value)> {
    vec![
        (
            Action::Answer,
            json!({
                "callbackUri": "https://bot.contoso.com/api/calls",
                "acceptedModalities": ["audio"],
                "mediaConfig": {
                    "@odata.type": "#microsoft.graph.serviceHostedMediaConfig",
                    "preFetchMedia": [
                        {"uri": "https://cdn.contoso.com/beep.wav", "resourceId": "1D6DE2D4-CD51-4309-8DAA-70768651088E"},
                        {"uri": "https://cdn.contoso.com/cool.wav", "resourceId": "1D6DE2D4-CD51-4309-8DAA-70768651088F"}
                    ]
                }
            }),
        ),
        (Action::Reject, json!({"reason": "busy"})),
        (
            Action::Redirect,
            json!({
                "targets": [{
                    "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                    "identity": {
                        "@odata.type": "#microsoft.graph.identitySet",
                        "phone": {"@odata.type": "#microsoft.graph.identity", "id": "+12345678901"}
                    }
                }],
                "callbackUri": "https://bot.contoso.com/api/calls/24701998-1a73-4d42-8085-bf46ed0ae039"
            }),
        ),
        (
            Action::Transfer,
            json!({
                "transferTarget": {
                    "endpointType": "default",
                    "identity": {"user": {"id": "550fae72-d251-43ec-868c-373732c2704f", "displayName": "Heidi Steen"}},
                    "languageId": "languageId-value",
                    "region": "region-value"
                }
            }),
        ),
        (
            Action::SendDtmfTones,
            json!({"tones": ["tone1", "tone2", "tone3"], "delayBetweenTonesMs": 5, "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c"}),
        ),
        (
            Action::RecordResponse,
            json!({
                "bargeInAllowed": true,
                "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
                "prompts": [{
                    "@odata.type": "#microsoft.graph.mediaPrompt",
                    "mediaInfo": {"uri": "https://cdn.contoso.com/beep.wav", "resourceId": "1D6DE2D4-CD51-4309-8DAA-70768651088E"}
                }],
                "maxRecordDurationInSeconds": 10,
                "initialSilenceTimeoutInSeconds": 5,
                "maxSilenceTimeoutInSeconds": 2,
                "playBeep": true,
                "stopTones": ["#", "1", "*"]
            }),
        ),
        (
            Action::UpdateRecordingStatus,
            json!({"clientContext": "clientContext-value", "status": "notRecording | recording | failed"}),
        ),
        (Action::ChangeScreenSharingRole, json!({"role": "viewer"})),
        (
            Action::InviteParticipants,
            json!({
                "participants": [{
                    "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                    "replacesCallId": "a7ebfb2d-871e-419c-87af-27290b22e8db",
                    "identity": {"@odata.type": "#microsoft.graph.identitySet", "user": {"@odata.type": "#microsoft.graph.identity", "id": "278405a3-f568-4b3e-b684-009193463064", "identityProvider": "AAD"}}
                }],
                "clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f"
            }),
        ),
    ]
}

#[test]
fn reference_examples_are_recognised() {
    for (action, body) in reference_examples() {
        assert_eq!(actions::recognise(&body), vec![action], "{body}");
    }
}

#[test]
fn reference_examples_are_valid_where_the_reference_is_consistent() {
    for (action, body) in reference_examples() {
        let problems = action.problems(&body);
        match action {
            // The reference writes the value set as the value, and stop tones as the
            // keys' characters: both refused as Graph's enums would refuse them.
            Action::UpdateRecordingStatus => {
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert_eq!(problems[0].path, "status");
            }
            Action::RecordResponse => {
                let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
                assert_eq!(paths, ["stopTones[0]", "stopTones[1]", "stopTones[2]"]);
            }
            _ => assert!(problems.is_empty(), "{action}: {problems:?}"),
        }
    }
}

fn paths(action: Action, body: Value) -> Vec<String> {
    action.problems(&body).into_iter().map(|p| p.path).collect()
}

#[test]
fn what_graph_refuses_is_refused_naming_the_property() {
    let media = json!({"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"});
    assert_eq!(
        paths(Action::Answer, json!({"mediaConfig": media})),
        ["acceptedModalities"]
    );
    assert_eq!(
        paths(Action::Answer, json!({"acceptedModalities": ["audio"]})),
        ["mediaConfig"]
    );
    assert_eq!(
        paths(
            Action::Answer,
            json!({"acceptedModalities": ["smell"], "mediaConfig": media, "participantCapacity": 0})
        ),
        ["acceptedModalities[0]", "participantCapacity"]
    );
    let app = json!({"@odata.type": "#microsoft.graph.appHostedMediaConfig", "blob": "<Media Session Configuration>"});
    assert_eq!(
        paths(
            Action::Answer,
            json!({"acceptedModalities": ["audio"], "mediaConfig": app})
        ),
        ["mediaConfig.blob"]
    );
    assert_eq!(paths(Action::Transfer, json!({})), ["transferTarget"]);
    assert_eq!(
        paths(
            Action::Transfer,
            json!({"transferTarget": {"identity": {"phone": {"id": "555"}}}})
        ),
        ["transferTarget.identity.phone.id"]
    );
    assert_eq!(paths(Action::Redirect, json!({"targets": []})), ["targets"]);
    let user = json!({"identity": {"user": {"id": "u"}}});
    assert_eq!(
        paths(Action::Redirect, json!({"targets": vec![user.clone(); 26]})),
        ["targets"]
    );
    assert_eq!(
        paths(
            Action::Redirect,
            json!({"targets": [user], "timeout": 5, "callbackUri": "http://bot.example/cb"})
        ),
        ["callbackUri", "timeout"]
    );
    assert_eq!(
        paths(Action::Reject, json!({"reason": "annoyed"})),
        ["reason"]
    );
    assert!(paths(Action::Reject, json!({"reason": "Forbidden"})).is_empty());
    assert_eq!(
        paths(Action::SendDtmfTones, json!({"tones": []})),
        ["tones"]
    );
    assert_eq!(
        paths(Action::SendDtmfTones, json!({"tones": ["tone1", "tone11"]})),
        ["tones[1]"]
    );
    assert_eq!(
        paths(Action::PlayPrompt, json!({"clientContext": "c"})),
        ["prompts"]
    );
    assert_eq!(
        paths(Action::PlayPrompt, json!({"prompts": [{"mediaInfo": {}}]})),
        ["prompts[0].mediaInfo.uri"]
    );
    assert_eq!(
        paths(
            Action::RecordResponse,
            json!({"maxRecordDurationInSeconds": 600, "playBeep": "yes"})
        ),
        ["maxRecordDurationInSeconds", "playBeep"]
    );
    assert_eq!(paths(Action::ChangeScreenSharingRole, json!({})), ["role"]);
    assert_eq!(
        paths(Action::InviteParticipants, json!({"participants": [{}]})),
        ["participants[0].identity"]
    );
    assert_eq!(
        paths(Action::Mute, json!({"clientContext": "x".repeat(257)})),
        ["clientContext"]
    );
    // A property the action does not have, named with what it takes.
    let p = Action::Mute.problems(&json!({"muted": true}));
    assert_eq!(p[0].path, "muted");
    assert!(p[0].message.contains("it takes clientContext"), "{}", p[0]);
    // Hostile values are quoted bounded and escaped.
    let p =
        Action::Reject.problems(&json!({"reason": format!("\u{1b}[2J{}", "x".repeat(100_000))}));
    assert!(
        p[0].message.len() < 300 && !p[0].message.contains('\u{1b}'),
        "{}",
        p[0]
    );
}

#[test]
fn shared_shapes_fit_several_actions() {
    // clientContext is a property of ten actions: the body fits them all.
    assert_eq!(
        actions::recognise(&json!({"clientContext": "c"})),
        [
            Action::Transfer,
            Action::Mute,
            Action::Unmute,
            Action::SubscribeToTone,
            Action::SendDtmfTones,
            Action::PlayPrompt,
            Action::RecordResponse,
            Action::CancelMediaProcessing,
            Action::UpdateRecordingStatus,
            Action::InviteParticipants,
        ]
    );
    let prompts = json!({"prompts": [{"mediaInfo": {"uri": "https://cdn.contoso.com/beep.wav"}}]});
    assert_eq!(
        actions::recognise(&prompts),
        [Action::PlayPrompt, Action::RecordResponse]
    );
    assert_eq!(actions::recognise(&json!({})).len(), Action::ALL.len());
    // One property of a single action decides, even beside an unknown one.
    assert_eq!(
        actions::recognise(&json!({"transferTarget": {}, "typo": 1})),
        [Action::Transfer]
    );
    assert!(actions::recognise(&json!({"requestedModalities": ["audio"]})).is_empty());
    assert!(actions::recognise(&json!([1])).is_empty());
}

#[test]
fn permissions_are_entras_names() {
    let app = json!({"acceptedModalities": ["audio"], "mediaConfig": {"@odata.type": "#microsoft.graph.appHostedMediaConfig", "blob": "x"}});
    assert_eq!(
        Action::Answer.permissions(&app).to_string(),
        "Calls.JoinGroupCall.All or Calls.JoinGroupCallAsGuest.All, Calls.AccessMedia.All"
    );
    assert_eq!(Action::Reject.permissions(&json!({})).to_string(), "");
    assert_eq!(
        Action::InviteParticipants
            .permissions(&json!({}))
            .to_string(),
        "Calls.InitiateGroupCall.All"
    );
    assert_eq!(
        Action::Mute.permissions(&json!({})).to_string(),
        "Calls.Initiate.All or Calls.AccessMedia.All"
    );
    assert_eq!(
        Action::InviteParticipants.path("c1"),
        "/communications/calls/c1/participants/invite"
    );
    assert_eq!(
        Action::SubscribeToTone.path("c1"),
        "/communications/calls/c1/subscribeToTone"
    );
}

/// The v1.0 transfer reference's example 3 (to a PSTN number) sends a
/// `clientContext` beside the `transferTarget`: Graph takes it.
#[test]
fn transfer_takes_the_client_context_of_the_pstn_example() {
    let body = serde_json::json!({
        "transferTarget": {
            "endpointType": "default",
            "identity": {"phone": {"@odata.type": "#microsoft.graph.identity", "id": "+12345678901"}},
            "languageId": "languageId-value",
            "region": "region-value"
        },
        "clientContext": "9e90d1c1-f61e-43e7-9f75-d420159aae08"
    });
    assert_eq!(
        signaling::actions::recognise(&body),
        vec![signaling::actions::Action::Transfer]
    );
    assert_eq!(
        signaling::actions::Action::Transfer.problems(&body),
        Vec::new()
    );
}
