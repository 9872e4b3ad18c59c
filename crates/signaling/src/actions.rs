//! The request bodies of the in-call actions (`answer`, `reject`, `redirect`,
//! `transfer`, `mute`, `playPrompt`, ...): which action a body is, whether Graph would
//! take it, and which permissions it needs.
//!
//! An action's body has no `@odata.type` at its root, so [`recognise`] tells actions
//! apart by their properties: a body is a candidate for every action whose properties
//! include all of the body's, and when one of them has a property no other action has
//! (`acceptedModalities`, `transferTarget`, `tones`, ...) that action alone. A body made
//! only of properties several actions share (`{}` or `{"clientContext": "..."}`) fits
//! them all, and the caller says so.
//!
//! [`Action::problems`] checks a body as the Graph v1.0 reference describes it: the
//! required properties (`answer` needs `acceptedModalities` and `mediaConfig`,
//! `transfer` a `transferTarget`, `redirect` one to 25 `targets`, ...), the value sets
//! (reject reasons, tones, recording states, screen-sharing roles), the ranges
//! (`redirect.timeout` 15-90 s, `recordResponse` timeouts 1-120 s, `clientContext` at
//! most 256 characters) and the shared rules of create-call (callback URIs, E.164
//! phone numbers, media configuration and blob). Each problem names its property.
//!
//! ```
//! use signaling::actions::{self, Action};
//! let body = serde_json::json!({"transferTarget": {"identity": {"phone": {"id": "+12345678901"}}}});
//! assert_eq!(actions::recognise(&body), vec![Action::Transfer]);
//! assert!(Action::Transfer.problems(&body).is_empty());
//! let answer = serde_json::json!({"mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}});
//! let problems = Action::Answer.problems(&answer);
//! assert_eq!(problems[0].path, "acceptedModalities");
//! assert_eq!(Action::Redirect.permissions(&body).to_string(), "Calls.Initiate.All");
//! ```

use std::fmt;

use serde_json::Value;

use crate::model::{InvitationParticipantInfo, MediaConfig};
use crate::permissions::{Permission, RequiredPermissions, Requirement};
use crate::validate::{check_callback_uri, check_media, is_e164};

/// Most characters of a `clientContext`.
pub const MAX_CLIENT_CONTEXT_CHARS: usize = 256;

/// Most targets of a `redirect` (simultaneous ring).
pub const MAX_REDIRECT_TARGETS: usize = 25;

/// An in-call action of `POST /communications/calls/{id}/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// `answer` an incoming call.
    Answer,
    /// `reject` an incoming call.
    Reject,
    /// `redirect` an incoming call to other targets.
    Redirect,
    /// `transfer` an active call (blind, or consultative with a `transferee`).
    Transfer,
    /// `mute` the bot.
    Mute,
    /// `unmute` the bot.
    Unmute,
    /// `subscribeToTone`: DTMF tones arrive as notifications.
    SubscribeToTone,
    /// `sendDtmfTones` into the call.
    SendDtmfTones,
    /// `playPrompt` (service-hosted media).
    PlayPrompt,
    /// `recordResponse` (service-hosted media).
    RecordResponse,
    /// `cancelMediaProcessing`: stop prompts and recordings in progress.
    CancelMediaProcessing,
    /// `updateRecordingStatus` (compliance recording).
    UpdateRecordingStatus,
    /// `changeScreenSharingRole` (viewer or sharer).
    ChangeScreenSharingRole,
    /// `participants/invite`: bring more participants into the call.
    InviteParticipants,
}

/// One thing Graph would refuse in an action's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionProblem {
    /// The property at fault, e.g. `targets[1].identity.phone.id`.
    pub path: String,
    /// What is wrong and what to do, starting with the path.
    pub message: String,
}

impl fmt::Display for ActionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

const TONES: [&str; 17] = [
    "tone0", "tone1", "tone2", "tone3", "tone4", "tone5", "tone6", "tone7", "tone8", "tone9",
    "star", "pound", "a", "b", "c", "d", "flash",
];

impl Action {
    /// Every action.
    pub const ALL: [Action; 14] = [
        Action::Answer,
        Action::Reject,
        Action::Redirect,
        Action::Transfer,
        Action::Mute,
        Action::Unmute,
        Action::SubscribeToTone,
        Action::SendDtmfTones,
        Action::PlayPrompt,
        Action::RecordResponse,
        Action::CancelMediaProcessing,
        Action::UpdateRecordingStatus,
        Action::ChangeScreenSharingRole,
        Action::InviteParticipants,
    ];

    /// The action's name in its URL, e.g. `subscribeToTone` (`invite` for
    /// participants).
    pub fn name(self) -> &'static str {
        match self {
            Action::Answer => "answer",
            Action::Reject => "reject",
            Action::Redirect => "redirect",
            Action::Transfer => "transfer",
            Action::Mute => "mute",
            Action::Unmute => "unmute",
            Action::SubscribeToTone => "subscribeToTone",
            Action::SendDtmfTones => "sendDtmfTones",
            Action::PlayPrompt => "playPrompt",
            Action::RecordResponse => "recordResponse",
            Action::CancelMediaProcessing => "cancelMediaProcessing",
            Action::UpdateRecordingStatus => "updateRecordingStatus",
            Action::ChangeScreenSharingRole => "changeScreenSharingRole",
            Action::InviteParticipants => "invite",
        }
    }

    /// The request path for call `call_id`, e.g. `/communications/calls/{id}/answer`.
    pub fn path(self, call_id: &str) -> String {
        match self {
            Action::InviteParticipants => {
                format!("/communications/calls/{call_id}/participants/invite")
            }
            a => format!("/communications/calls/{call_id}/{}", a.name()),
        }
    }

    /// The properties of the action's body, as the reference lists them.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Action::Answer => &[
                "callbackUri",
                "acceptedModalities",
                "callOptions",
                "mediaConfig",
                "participantCapacity",
            ],
            Action::Reject => &["reason", "callbackUri"],
            Action::Redirect => &["targets", "timeout", "callbackUri", "routingPolicies"],
            // The reference's parameter table lists two; its PSTN examples (3 and 4)
            // send a `clientContext` too.
            Action::Transfer => &["transferTarget", "transferee", "clientContext"],
            Action::Mute
            | Action::Unmute
            | Action::SubscribeToTone
            | Action::CancelMediaProcessing => &["clientContext"],
            Action::SendDtmfTones => &["tones", "delayBetweenTonesMs", "clientContext"],
            Action::PlayPrompt => &["prompts", "clientContext"],
            Action::RecordResponse => &[
                "prompts",
                "bargeInAllowed",
                "initialSilenceTimeoutInSeconds",
                "maxSilenceTimeoutInSeconds",
                "maxRecordDurationInSeconds",
                "playBeep",
                "stopTones",
                "clientContext",
            ],
            Action::UpdateRecordingStatus => &["status", "clientContext"],
            Action::ChangeScreenSharingRole => &["role"],
            Action::InviteParticipants => &["participants", "clientContext"],
        }
    }

    /// The permissions the application needs. Most in-call actions are checked
    /// against what the call was created with; the reference lists them anyway.
    pub fn permissions(self, body: &Value) -> RequiredPermissions {
        use Permission::*;
        let one = |any_of: Vec<Permission>| Requirement { any_of };
        let all_of = match self {
            Action::Answer => {
                let mut r = vec![one(vec![
                    CallsJoinGroupCallsAll,
                    CallsJoinGroupCallsAsGuestAll,
                ])];
                if matches!(media_config(body), Some(MediaConfig::AppHosted(_))) {
                    r.push(one(vec![CallsAccessMediaAll]));
                }
                r
            }
            Action::Reject => Vec::new(),
            Action::Redirect | Action::Transfer => vec![one(vec![CallsInitiateAll])],
            Action::Mute
            | Action::Unmute
            | Action::SendDtmfTones
            | Action::PlayPrompt
            | Action::CancelMediaProcessing => {
                vec![one(vec![CallsInitiateAll, CallsAccessMediaAll])]
            }
            Action::SubscribeToTone
            | Action::RecordResponse
            | Action::UpdateRecordingStatus
            | Action::ChangeScreenSharingRole => vec![one(vec![CallsAccessMediaAll])],
            Action::InviteParticipants => vec![one(vec![CallsInitiateGroupCallsAll])],
        };
        RequiredPermissions { all_of }
    }

    /// Everything Graph would refuse in `body` as this action's request (empty when
    /// valid), in property order.
    pub fn problems(self, body: &Value) -> Vec<ActionProblem> {
        let mut p = Problems(Vec::new());
        let Some(obj) = body.as_object() else {
            p.push("(body)", "must be a JSON object");
            return p.0;
        };
        for key in obj.keys() {
            if !self.fields().contains(&key.as_str()) {
                p.push(
                    key,
                    &format!(
                        "not a property of {}; it takes {}",
                        self.name(),
                        self.fields().join(", ")
                    ),
                );
            }
        }
        if let Some(uri) = obj.get("callbackUri") {
            match uri.as_str() {
                Some(u) => {
                    if let Err(e) = check_callback_uri(u) {
                        p.0.push(ActionProblem {
                            path: "callbackUri".into(),
                            message: e.to_string(),
                        });
                    }
                }
                None => p.push("callbackUri", "must be a string (an https URL)"),
            }
        }
        if let Some(c) = obj.get("clientContext") {
            match c.as_str() {
                Some(s) if s.chars().count() <= MAX_CLIENT_CONTEXT_CHARS => {}
                Some(_) => p.push(
                    "clientContext",
                    &format!("longer than {MAX_CLIENT_CONTEXT_CHARS} characters"),
                ),
                None => p.push("clientContext", "must be a string"),
            }
        }
        match self {
            Action::Answer => answer(body, &mut p),
            Action::Reject => {
                if let Some(r) = obj.get("reason") {
                    p.one_of("reason", r, &["none", "busy", "forbidden"]);
                }
            }
            Action::Redirect => {
                p.participants("targets", obj.get("targets"), 1..=MAX_REDIRECT_TARGETS);
                if let Some(t) = obj.get("timeout") {
                    p.integer("timeout", t, 15..=90, "seconds");
                }
            }
            Action::Transfer => {
                match obj.get("transferTarget") {
                    None | Some(Value::Null) => p.push(
                        "transferTarget",
                        "required: the invitationParticipantInfo to transfer the call to",
                    ),
                    Some(t) => p.participant("transferTarget", t),
                }
                if let Some(t) = obj.get("transferee").filter(|t| !t.is_null())
                    && t.get("identity").is_none_or(Value::is_null)
                {
                    p.push(
                        "transferee.identity",
                        "required in a consultative transfer: who is transferred",
                    );
                }
            }
            Action::SendDtmfTones => {
                match obj.get("tones").and_then(Value::as_array) {
                    Some(tones) if !tones.is_empty() => {
                        for (i, t) in tones.iter().enumerate() {
                            p.one_of(&format!("tones[{i}]"), t, &TONES);
                        }
                    }
                    _ => p.push("tones", "required: at least one tone, e.g. [\"tone1\"]"),
                }
                if let Some(d) = obj.get("delayBetweenTonesMs") {
                    p.integer(
                        "delayBetweenTonesMs",
                        d,
                        0..=i32::MAX as i64,
                        "milliseconds",
                    );
                }
            }
            Action::PlayPrompt => prompts(obj.get("prompts"), true, &mut p),
            Action::RecordResponse => {
                prompts(obj.get("prompts"), false, &mut p);
                for k in [
                    "initialSilenceTimeoutInSeconds",
                    "maxSilenceTimeoutInSeconds",
                    "maxRecordDurationInSeconds",
                ] {
                    if let Some(v) = obj.get(k) {
                        p.integer(k, v, 1..=120, "seconds");
                    }
                }
                for k in ["bargeInAllowed", "playBeep"] {
                    if obj.get(k).is_some_and(|v| !v.is_boolean()) {
                        p.push(k, "must be true or false");
                    }
                }
                if let Some(tones) = obj.get("stopTones") {
                    match tones.as_array() {
                        Some(tones) => {
                            for (i, t) in tones.iter().enumerate() {
                                p.one_of(&format!("stopTones[{i}]"), t, &TONES);
                            }
                        }
                        None => p.push("stopTones", "must be a list of tones"),
                    }
                }
            }
            Action::UpdateRecordingStatus => match obj.get("status") {
                Some(s) => p.one_of("status", s, &["notRecording", "recording", "failed"]),
                None => p.push("status", "required: notRecording, recording or failed"),
            },
            Action::ChangeScreenSharingRole => match obj.get("role") {
                Some(r) => p.one_of("role", r, &["viewer", "sharer"]),
                None => p.push("role", "required: viewer or sharer"),
            },
            Action::InviteParticipants => {
                p.participants("participants", obj.get("participants"), 1..=usize::MAX)
            }
            Action::Mute
            | Action::Unmute
            | Action::SubscribeToTone
            | Action::CancelMediaProcessing => {}
        }
        p.0
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The actions `body` can be the request of, by its properties (see the module
/// documentation); empty when it fits none (not an object, or a property no action
/// has).
pub fn recognise(body: &Value) -> Vec<Action> {
    let Some(obj) = body.as_object() else {
        return Vec::new();
    };
    let fits: Vec<Action> = Action::ALL
        .into_iter()
        .filter(|a| obj.keys().all(|k| a.fields().contains(&k.as_str())))
        .collect();
    // A property of one action only decides.
    let own = |a: &Action| {
        obj.keys().any(|k| {
            Action::ALL
                .iter()
                .filter(|b| b.fields().contains(&k.as_str()))
                .count()
                == 1
                && a.fields().contains(&k.as_str())
        })
    };
    // A property of one action only decides, even beside a property no action has
    // (which that action's problems then name).
    let pool = if fits.is_empty() {
        Action::ALL.to_vec()
    } else {
        fits.clone()
    };
    match pool.into_iter().filter(own).collect::<Vec<_>>() {
        decided if decided.len() == 1 => decided,
        _ => fits,
    }
}

/// An action on one participant of a call (Graph v1.0 `participant` methods):
/// `POST /communications/calls/{id}/participants/{participantId}/mute` and
/// `DELETE /communications/calls/{id}/participants/{participantId}`.
///
/// Graph v1.0 has no action that admits a participant from a meeting's lobby (the
/// lobby is the meeting's setting, `lobbyBypassSettings`); the roster reports who
/// waits there (`isInLobby`).
///
/// ```
/// use signaling::actions::ParticipantAction;
/// assert_eq!(
///     ParticipantAction::Mute.path("c1", "p1"),
///     "/communications/calls/c1/participants/p1/mute"
/// );
/// assert_eq!(ParticipantAction::Delete.method(), "DELETE");
/// let problems = ParticipantAction::Mute.problems(&serde_json::json!({"tones": []}));
/// assert_eq!(problems[0].path, "tones");
/// assert_eq!(
///     ParticipantAction::Delete.permissions().to_string(),
///     "Calls.JoinGroupCall.All or Calls.JoinGroupCallAsGuest.All"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParticipantAction {
    /// `mute` a participant (a server mute; group calls only); answers a
    /// `muteParticipantOperation`, then the roster shows the participant muted.
    Mute,
    /// Remove a participant from the call (`DELETE`); answers `204 No Content`.
    Delete,
}

impl ParticipantAction {
    /// The action's name: `mute`, `delete`.
    pub fn name(self) -> &'static str {
        match self {
            ParticipantAction::Mute => "mute",
            ParticipantAction::Delete => "delete",
        }
    }

    /// The HTTP method: `POST` (mute) or `DELETE`.
    pub fn method(self) -> &'static str {
        match self {
            ParticipantAction::Mute => "POST",
            ParticipantAction::Delete => "DELETE",
        }
    }

    /// The request path for participant `participant_id` of call `call_id`.
    pub fn path(self, call_id: &str, participant_id: &str) -> String {
        match self {
            ParticipantAction::Mute => {
                format!("/communications/calls/{call_id}/participants/{participant_id}/mute")
            }
            ParticipantAction::Delete => {
                format!("/communications/calls/{call_id}/participants/{participant_id}")
            }
        }
    }

    /// The permissions the application needs, as the v1.0 reference lists them
    /// (`mute`: none; `delete`: joining group calls, as a member or a guest).
    pub fn permissions(self) -> RequiredPermissions {
        use Permission::*;
        let all_of = match self {
            ParticipantAction::Mute => Vec::new(),
            ParticipantAction::Delete => vec![Requirement {
                any_of: vec![CallsJoinGroupCallsAll, CallsJoinGroupCallsAsGuestAll],
            }],
        };
        RequiredPermissions { all_of }
    }

    /// Everything Graph would refuse in `body` (empty when valid): `mute` takes only a
    /// `clientContext` of at most 256 characters; `delete` takes no body (an empty
    /// object or nothing).
    pub fn problems(self, body: &Value) -> Vec<ActionProblem> {
        match self {
            ParticipantAction::Mute => Action::Mute.problems(body),
            ParticipantAction::Delete => {
                let mut p = Problems(Vec::new());
                match body {
                    Value::Null => {}
                    Value::Object(o) => {
                        for key in o.keys() {
                            p.push(key, "delete takes no request body");
                        }
                    }
                    _ => p.push("(body)", "delete takes no request body"),
                }
                p.0
            }
        }
    }
}

impl fmt::Display for ParticipantAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "participant {}", self.name())
    }
}

/// The problems found so far, with the small checks the actions share.
struct Problems(Vec<ActionProblem>);

impl Problems {
    fn push(&mut self, path: &str, what: &str) {
        self.0.push(ActionProblem {
            path: path.to_owned(),
            message: format!("{}: {what}", media_blob::bounded(path, 80)),
        });
    }

    /// `v` is a string from `allowed` (compared without case, as Graph's enums are).
    fn one_of(&mut self, path: &str, v: &Value, allowed: &[&str]) {
        match v.as_str() {
            Some(s) if allowed.iter().any(|a| a.eq_ignore_ascii_case(s)) => {}
            Some(s) => self.push(
                path,
                &format!(
                    "{} is not one of {}",
                    media_blob::excerpt(s),
                    allowed.join(", ")
                ),
            ),
            None => self.push(path, &format!("must be one of {}", allowed.join(", "))),
        }
    }

    fn integer(&mut self, path: &str, v: &Value, range: std::ops::RangeInclusive<i64>, unit: &str) {
        if !v.as_i64().is_some_and(|n| range.contains(&n)) {
            self.push(
                path,
                &format!(
                    "must be a whole number of {unit} from {} to {}",
                    range.start(),
                    range.end()
                ),
            );
        }
    }

    /// An invitationParticipantInfo with an identity (phone ids in E.164).
    fn participant(&mut self, path: &str, v: &Value) {
        let Ok(info) = serde_json::from_value::<InvitationParticipantInfo>(v.clone()) else {
            return self.push(path, "must be an invitationParticipantInfo object");
        };
        let Some(identity) = info.identity.value() else {
            return self.push(
                &format!("{path}.identity"),
                "required: who to invite (user, application, applicationInstance or phone)",
            );
        };
        if let Some(phone) = identity.phone.value() {
            let number = phone.id.value().map_or("", String::as_str);
            if !is_e164(number) {
                self.push(
                    &format!("{path}.identity.phone.id"),
                    &format!(
                        "{} is not an E.164 number ('+' then 1-15 digits, the first not 0)",
                        media_blob::excerpt(number)
                    ),
                );
            }
        }
    }

    fn participants(
        &mut self,
        path: &str,
        v: Option<&Value>,
        count: std::ops::RangeInclusive<usize>,
    ) {
        match v.and_then(Value::as_array) {
            Some(list) if count.contains(&list.len()) => {
                for (i, t) in list.iter().enumerate() {
                    self.participant(&format!("{path}[{i}]"), t);
                }
            }
            Some(list) if !list.is_empty() => self.push(
                path,
                &format!("{} entries; at most {}", list.len(), count.end()),
            ),
            _ => self.push(
                path,
                "required: at least one invitationParticipantInfo with an identity",
            ),
        }
    }
}

fn media_config(body: &Value) -> Option<MediaConfig> {
    body.get("mediaConfig")
        .filter(|m| !m.is_null())
        .and_then(|m| serde_json::from_value(m.clone()).ok())
}

fn answer(body: &Value, p: &mut Problems) {
    match body.get("acceptedModalities").and_then(Value::as_array) {
        Some(m) if !m.is_empty() => {
            for (i, v) in m.iter().enumerate() {
                p.one_of(
                    &format!("acceptedModalities[{i}]"),
                    v,
                    &["audio", "video", "videoBasedScreenSharing"],
                );
            }
        }
        _ => p.push(
            "acceptedModalities",
            "required to answer: the modalities accepted, e.g. [\"audio\"]",
        ),
    }
    let raw = body.get("mediaConfig").filter(|m| !m.is_null());
    let media = media_config(body);
    if raw.is_some() && media.is_none() {
        p.push("mediaConfig", "must be a media configuration object");
    } else {
        let mut found = Vec::new();
        check_media(media.as_ref(), &mut found);
        p.0.extend(found.into_iter().map(|e| ActionProblem {
            path: e.path(),
            message: e.to_string(),
        }));
    }
    if let Some(c) = body.get("participantCapacity") {
        p.integer(
            "participantCapacity",
            c,
            1..=i32::MAX as i64,
            "participants",
        );
    }
}

/// `prompts`: mediaPrompts whose `mediaInfo.uri` is given; `required` for playPrompt,
/// at most one for recordResponse.
fn prompts(v: Option<&Value>, required: bool, p: &mut Problems) {
    let missing = |p: &mut Problems| {
        if required {
            p.push(
                "prompts",
                "required: at least one mediaPrompt with mediaInfo.uri",
            );
        }
    };
    let list = match v {
        None | Some(Value::Null) => return missing(p),
        Some(Value::Array(list)) if list.is_empty() => return missing(p),
        Some(Value::Array(list)) => list,
        Some(_) => return p.push("prompts", "must be a list of mediaPrompts"),
    };
    if !required && list.len() > 1 {
        p.push("prompts", "recordResponse plays at most one prompt");
    }
    for (i, prompt) in list.iter().enumerate() {
        let uri = prompt.pointer("/mediaInfo/uri").and_then(Value::as_str);
        if uri.is_none_or(|u| u.trim().is_empty()) {
            p.push(
                &format!("prompts[{i}].mediaInfo.uri"),
                "required: the URL of the audio file to play",
            );
        }
    }
}
