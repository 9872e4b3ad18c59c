//! The call resource the emulator returns and the notifications it posts, built from
//! the bot's own request in the shapes of the seed page.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Map, Value, json};
use signaling::{CallKind, odata};

use crate::config::{RegisteredApp, Timing};
use crate::state::Termination;

/// What a call's scripted flow does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// `state: establishing`.
    Establishing,
    /// `state: established` (then media connects for app-hosted calls).
    Established,
    /// The participants roster; `lobby` puts the bot in the lobby.
    Roster {
        /// The bot waits in the lobby.
        lobby: bool,
    },
    /// A content-sharing session `created`, `updated` or `deleted`.
    ContentSharing(&'static str),
}

/// The scripted flow of a call kind, each step with its delay after the previous one.
///
/// - P2P (VoIP, PSTN) and group calls: establishing, established.
/// - Meeting joins: establishing, established, the roster (seed ex. 5).
/// - Guest joins: the roster with the guest in the lobby (seed ex. 8), after the
///   lobby delay the roster admitted, then established.
/// - With `callOptions.isContentSharingNotificationEnabled`: a content-sharing
///   session is created, updated and deleted after the call is established (seed ex. 1).
pub(crate) fn script(
    kind: CallKind,
    content_sharing: bool,
    t: &Timing,
) -> VecDeque<(Duration, Step)> {
    let d = t.step_delay;
    let mut steps: VecDeque<(Duration, Step)> = match kind {
        CallKind::PeerToPeer | CallKind::Pstn | CallKind::Group => {
            [(d, Step::Establishing), (d, Step::Established)].into()
        }
        CallKind::MeetingJoin => [
            (d, Step::Establishing),
            (d, Step::Established),
            (d, Step::Roster { lobby: false }),
        ]
        .into(),
        CallKind::GuestMeetingJoin => [
            (d, Step::Roster { lobby: true }),
            (t.lobby_delay, Step::Roster { lobby: false }),
            (d, Step::Established),
        ]
        .into(),
    };
    if content_sharing {
        for change in ["created", "updated", "deleted"] {
            steps.push_back((d, Step::ContentSharing(change)));
        }
    }
    steps
}

/// What the flows need to know about a call, fixed at creation.
#[derive(Debug, Clone)]
pub(crate) struct CallContext {
    pub(crate) id: String,
    pub(crate) callback_uri: String,
    pub(crate) app_id: String,
    pub(crate) tenant_id: String,
    pub(crate) kind: CallKind,
    pub(crate) content_sharing: bool,
    pub(crate) media: Option<media_blob::MediaSessionConfig>,
    pub(crate) my_participant_id: String,
    /// The bot's identity set (the call's `source.identity`).
    pub(crate) bot_identity: Value,
    /// Who else is in a meeting (the organizer, or a stand-in).
    pub(crate) other_identity: Value,
    pub(crate) other_participant_id: String,
    pub(crate) chat_info: Value,
    pub(crate) meeting_info: Value,
    pub(crate) content_session_id: String,
    /// Offered to the bot (an incoming call), not placed by it.
    pub(crate) incoming: bool,
}

impl CallContext {
    /// `/communications/calls/{id}`.
    pub(crate) fn resource_url(&self) -> String {
        format!("/communications/calls/{}", self.id)
    }

    /// `incoming` or `outgoing`, as the bot sees the call.
    pub(crate) fn direction(&self) -> &'static str {
        if self.incoming {
            "incoming"
        } else {
            "outgoing"
        }
    }
}

/// The call resource of a call offered to `app` by `caller` (an identity set), in
/// state `incoming`, as Graph's answer reference shows it.
pub(crate) fn incoming_resource(ctx: &CallContext, caller: &Value, app: &RegisteredApp) -> Value {
    json!({
        "@odata.type": odata::CALL,
        "state": "incoming",
        "direction": "incoming",
        "callbackUri": ctx.callback_uri,
        "source": {
            "@odata.type": odata::PARTICIPANT_INFO,
            "identity": caller,
            "region": "amer",
            "languageId": "en-US",
        },
        "targets": [{
            "@odata.type": odata::INVITATION_PARTICIPANT_INFO,
            "identity": app_identity_set(app),
        }],
        "requestedModalities": ["audio"],
        "tenantId": ctx.tenant_id,
        "myParticipantId": ctx.my_participant_id,
        "id": ctx.id,
    })
}

/// The notification that offers a call to the bot: the call `created`, state
/// `incoming`.
pub(crate) fn incoming_notification(ctx: &CallContext, resource: &Value) -> Value {
    envelope(json!({
        "@odata.type": odata::COMMS_NOTIFICATION,
        "changeType": "created",
        "resourceUrl": ctx.resource_url(),
        "callbackUri": ctx.callback_uri,
        "resourceData": resource,
    }))
}

/// The default `source` of a call created without one: the app's identity.
pub(crate) fn app_source(app: &RegisteredApp) -> Value {
    json!({
        "@odata.type": odata::PARTICIPANT_INFO,
        "identity": app_identity_set(app),
        "countryCode": null,
        "endpointType": null,
        "region": null,
        "languageId": null,
    })
}

/// The identity set of `app` (the bot as a participant).
pub(crate) fn app_identity_set(app: &RegisteredApp) -> Value {
    json!({
        "@odata.type": odata::IDENTITY_SET,
        "application": {
            "@odata.type": odata::IDENTITY,
            "displayName": app.display_name,
            "id": app.client_id,
        }
    })
}

/// A stand-in meeting participant when the request names no organizer (the seed's John).
fn stand_in_identity() -> Value {
    json!({
        "@odata.type": odata::IDENTITY_SET,
        "user": {
            "@odata.type": odata::IDENTITY,
            "displayName": "John",
            "id": "112f7296-5fa4-42ca-bae8-6a692b15d4b8",
        }
    })
}

/// Ids the service assigns to a new call.
pub(crate) struct Assigned {
    pub(crate) id: String,
    pub(crate) my_participant_id: String,
    pub(crate) tenant_id: String,
    pub(crate) odata_context: String,
}

/// The `201 Created` body (and GET body): the request echoed in the seed's response
/// shape, with the service's properties set.
pub(crate) fn call_resource(
    req: &Map<String, Value>,
    app: &RegisteredApp,
    ids: &Assigned,
) -> Value {
    let given = |k: &str| req.get(k).filter(|v| !v.is_null()).cloned();
    let source = given("source").unwrap_or_else(|| app_source(app));
    let targets: Vec<Value> = req
        .get("targets")
        .and_then(Value::as_array)
        .map(|ts| ts.iter().map(echo_target).collect())
        .unwrap_or_default();
    let chat_info = given("chatInfo").map(|mut c| {
        if let Some(o) = c.as_object_mut() {
            o.entry("replyChainMessageId").or_insert(Value::Null);
        }
        c
    });
    let mut m = Map::new();
    m.insert("@odata.type".into(), odata::CALL.into());
    m.insert("state".into(), "establishing".into());
    m.insert("direction".into(), "outgoing".into());
    m.insert(
        "callbackUri".into(),
        given("callbackUri").unwrap_or(Value::Null),
    );
    m.insert(
        "callChainId".into(),
        given("callChainId").unwrap_or_else(|| uuid::Uuid::new_v4().to_string().into()),
    );
    m.insert("callRoutes".into(), json!([]));
    m.insert("source".into(), source);
    m.insert("targets".into(), Value::Array(targets));
    m.insert(
        "requestedModalities".into(),
        given("requestedModalities").unwrap_or_else(|| json!([])),
    );
    m.insert("activeModalities".into(), json!([]));
    m.insert(
        "mediaConfig".into(),
        given("mediaConfig").unwrap_or(Value::Null),
    );
    m.insert("chatInfo".into(), chat_info.unwrap_or(Value::Null));
    m.insert(
        "meetingInfo".into(),
        given("meetingInfo").unwrap_or(Value::Null),
    );
    m.insert("routingPolicies".into(), json!([]));
    m.insert("tenantId".into(), ids.tenant_id.clone().into());
    m.insert(
        "myParticipantId".into(),
        ids.my_participant_id.clone().into(),
    );
    m.insert("id".into(), ids.id.clone().into());
    m.insert("@odata.context".into(), ids.odata_context.clone().into());
    m.insert("subject".into(), given("subject").unwrap_or(Value::Null));
    for k in [
        "terminationReason",
        "ringingTimeoutInSeconds",
        "mediaState",
        "resultInfo",
        "answeredBy",
        "transcription",
        "meetingCapability",
        "toneInfo",
    ] {
        m.insert(k.into(), Value::Null);
    }
    Value::Object(m)
}

/// A target as the service echoes it: the optional properties present, `null` if unset.
fn echo_target(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(o) = t.as_object_mut() {
        for k in ["endpointType", "region", "replacesCallId", "languageId"] {
            o.entry(k).or_insert(Value::Null);
        }
    }
    t
}

/// The organizer of `meetingInfo`, or a stand-in participant.
pub(crate) fn meeting_other_identity(req: &Map<String, Value>) -> Value {
    req.get("meetingInfo")
        .and_then(|m| m.get("organizer"))
        .filter(|o| o.is_object())
        .cloned()
        .unwrap_or_else(stand_in_identity)
}

/// The other party of a call: the first target's identity (P2P, PSTN, group), else
/// the meeting's organizer or a stand-in.
pub(crate) fn other_identity(req: &Map<String, Value>) -> Value {
    req.get("targets")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(|t| t.get("identity"))
        .filter(|i| i.is_object())
        .cloned()
        .unwrap_or_else(|| meeting_other_identity(req))
}

/// The bot's identity set: the request's `source.identity` or the app's.
pub(crate) fn bot_identity(req: &Map<String, Value>, app: &RegisteredApp) -> Value {
    req.get("source")
        .and_then(|s| s.get("identity"))
        .filter(|i| i.is_object())
        .cloned()
        .unwrap_or_else(|| app_identity_set(app))
}

fn envelope(notification: Value) -> Value {
    json!({
        "@odata.type": odata::COMMS_NOTIFICATIONS,
        "value": [notification],
    })
}

/// A call state change (`updated`), shaped like the seed's ex. 1 and ex. 5 notifications.
pub(crate) fn state_notification(ctx: &CallContext, state: &str) -> Value {
    let mut data = Map::new();
    data.insert("@odata.type".into(), odata::CALL.into());
    data.insert("state".into(), state.into());
    if state != "establishing" {
        data.insert("direction".into(), ctx.direction().into());
        if matches!(ctx.kind, CallKind::MeetingJoin | CallKind::GuestMeetingJoin) {
            data.insert("chatInfo".into(), ctx.chat_info.clone());
            data.insert("meetingInfo".into(), ctx.meeting_info.clone());
        }
        data.insert("tenantId".into(), ctx.tenant_id.clone().into());
    }
    data.insert("id".into(), ctx.id.clone().into());
    envelope(json!({
        "@odata.type": odata::COMMS_NOTIFICATION,
        "changeType": "updated",
        "resourceUrl": ctx.resource_url(),
        "callbackUri": ctx.callback_uri,
        "resourceData": Value::Object(data),
    }))
}

/// The final notification: the call `deleted`, `state: terminated`, with `resultInfo`.
pub(crate) fn terminated_notification(ctx: &CallContext, t: &Termination) -> Value {
    envelope(json!({
        "@odata.type": odata::COMMS_NOTIFICATION,
        "changeType": "deleted",
        "resourceUrl": ctx.resource_url(),
        "callbackUri": ctx.callback_uri,
        "resourceData": {
            "@odata.type": odata::CALL,
            "state": "terminated",
            "direction": ctx.direction(),
            "resultInfo": {
                "@odata.type": "#microsoft.graph.resultInfo",
                "code": t.code,
                "subcode": t.subcode,
                "message": t.message,
            },
            "terminationReason": t.reason,
            "tenantId": ctx.tenant_id,
            "id": ctx.id,
        }
    }))
}

fn stream(media_type: &str, source_id: &str, direction: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.mediaStream",
        "mediaType": media_type,
        "sourceId": source_id,
        "direction": direction,
        "serverMuted": false,
    })
}

/// The media source id of the other party's audio stream in every call's roster.
pub(crate) const OTHER_AUDIO_MSI: u32 = 1;

/// The media source id of the bot's audio stream.
pub(crate) const BOT_AUDIO_MSI: u32 = 10;

/// The participants of a call as the emulator's roster starts (seed ex. 5; ex. 8
/// while in the lobby: the bot alone).
pub(crate) fn roster_participants(ctx: &CallContext, lobby: bool) -> Vec<Value> {
    let bot = json!({
        "@odata.type": odata::PARTICIPANT,
        "info": {
            "@odata.type": odata::PARTICIPANT_INFO,
            "identity": ctx.bot_identity,
        },
        "mediaStreams": [stream("audio", &BOT_AUDIO_MSI.to_string(), "sendReceive")],
        "isMuted": false,
        "isInLobby": lobby,
        "id": ctx.my_participant_id,
    });
    let mut participants = Vec::new();
    if !lobby {
        participants.push(json!({
            "@odata.type": odata::PARTICIPANT,
            "info": {
                "@odata.type": odata::PARTICIPANT_INFO,
                "identity": ctx.other_identity,
                "languageId": "en-US",
            },
            "mediaStreams": [
                stream("audio", &OTHER_AUDIO_MSI.to_string(), "sendReceive"),
                stream("video", "2", "receiveOnly"),
                stream("videoBasedScreenSharing", "8", "receiveOnly"),
            ],
            "isMuted": true,
            "isInLobby": false,
            "id": ctx.other_participant_id,
        }));
    }
    participants.push(bot);
    participants
}

/// The audio media source id of a participant resource (its audio stream's
/// `sourceId`), if it has one.
pub(crate) fn audio_msi(participant: &Value) -> Option<u32> {
    participant["mediaStreams"]
        .as_array()?
        .iter()
        .find(|s| s["mediaType"] == "audio")
        .and_then(|s| s["sourceId"].as_str())
        .and_then(|id| id.parse().ok())
}

/// A DTMF tone the far end pressed, reported after `subscribeToTone`: the call
/// `updated` with its `toneInfo` (Graph's subscribeToTone reference).
pub(crate) fn tone_notification_at(
    resource_url: &str,
    callback_uri: &str,
    call_id: &str,
    tone: &str,
    sequence_id: i64,
) -> Value {
    envelope(json!({
        "@odata.type": odata::COMMS_NOTIFICATION,
        "changeType": "updated",
        "resourceUrl": resource_url,
        "callbackUri": callback_uri,
        "resourceData": {
            "@odata.type": odata::CALL,
            "state": "established",
            "toneInfo": {
                "@odata.type": "#microsoft.graph.toneInfo",
                "sequenceId": sequence_id,
                "tone": tone,
            },
            "id": call_id,
        }
    }))
}

/// A content-sharing session change (seed ex. 1: no `callbackUri`).
pub(crate) fn content_sharing_notification(ctx: &CallContext, change: &str) -> Value {
    envelope(json!({
        "@odata.type": odata::COMMS_NOTIFICATION,
        "changeType": change,
        "resourceUrl": format!("{}/contentsharingsessions", ctx.resource_url()),
        "resourceData": [{
            "@odata.type": odata::CONTENT_SHARING_SESSION,
            "id": ctx.content_session_id,
        }],
    }))
}

/// A content-sharing session id in the seed's form: 64 upper-case hex digits.
pub(crate) fn new_content_session_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
    .to_uppercase()
}

/// The participants resource `updated` with `participants`.
pub(crate) fn roster_update(ctx: &CallContext, participants: impl Into<Value>) -> Value {
    envelope(json!({
        "@odata.type": odata::COMMS_NOTIFICATION,
        "changeType": "updated",
        "resourceUrl": format!("{}/participants", ctx.resource_url()),
        "callbackUri": ctx.callback_uri,
        "resourceData": participants.into(),
    }))
}

/// A long-running operation's end: the operation resource `deleted`, with its final
/// status (Graph's playPrompt and recordResponse references show it).
pub(crate) fn operation_notification(ctx: &CallContext, operation: &Value) -> Value {
    envelope(json!({
        "@odata.type": odata::COMMS_NOTIFICATION,
        "changeType": "deleted",
        "resourceUrl": operation["@odata.id"],
        "callbackUri": ctx.callback_uri,
        "resourceData": operation,
    }))
}

/// The bot's own participant `updated`, muted or not (after `mute` / `unmute`).
pub(crate) fn bot_muted_notification(ctx: &CallContext, muted: bool) -> Value {
    roster_update(
        ctx,
        json!([{
            "@odata.type": odata::PARTICIPANT,
            "info": {"@odata.type": odata::PARTICIPANT_INFO, "identity": ctx.bot_identity},
            "mediaStreams": [stream("audio", "10", "sendReceive")],
            "isMuted": muted,
            "isInLobby": false,
            "id": ctx.my_participant_id,
        }]),
    )
}

/// The participants an `invite` brings in (media source ids from `first_msi` up).
pub(crate) fn invitees(invited: &[Value], first_msi: u32) -> Vec<Value> {
    invited
        .iter()
        .zip(first_msi..)
        .map(|(p, msi)| {
            json!({
                "@odata.type": odata::PARTICIPANT,
                "info": {"@odata.type": odata::PARTICIPANT_INFO, "identity": p["identity"]},
                "mediaStreams": [stream("audio", &msi.to_string(), "sendReceive")],
                "isMuted": false,
                "isInLobby": false,
                "id": uuid::Uuid::new_v4().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_follow_the_seed() {
        let t = Timing::default();
        let names = |k, cs| {
            script(k, cs, &t)
                .into_iter()
                .map(|(_, s)| s)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(CallKind::PeerToPeer, false),
            [Step::Establishing, Step::Established]
        );
        assert_eq!(
            names(CallKind::MeetingJoin, false),
            [
                Step::Establishing,
                Step::Established,
                Step::Roster { lobby: false }
            ]
        );
        assert_eq!(
            names(CallKind::GuestMeetingJoin, false),
            [
                Step::Roster { lobby: true },
                Step::Roster { lobby: false },
                Step::Established
            ]
        );
        assert_eq!(names(CallKind::Pstn, true).len(), 5);
        let guest = script(CallKind::GuestMeetingJoin, false, &t);
        assert_eq!(guest[1].0, t.lobby_delay);
    }

    #[test]
    fn content_session_id_shape() {
        let id = new_content_session_id();
        assert_eq!(id.len(), 64);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }
}
