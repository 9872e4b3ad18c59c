//! Say what an arbitrary JSON document is, and summarise it for a human (the CLI's
//! `inspect`). Copes with properties this crate does not model and with documents
//! that do not parse into the typed model.

use std::fmt;

use serde_json::Value;

use crate::model::{
    Call, CommsNotification, CommsNotifications, MeetingInfo, Participant, ResourceItem, odata,
};

/// What a JSON document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DocumentKind {
    /// A create-call request body: a call without `id` or `state`.
    CreateCallRequest,
    /// A call resource (with `id` or `state`), e.g. a `201 Created` response.
    Call,
    /// A `commsNotifications` callback body.
    Notifications,
    /// Anything else.
    Unknown,
}

impl DocumentKind {
    /// A short name: `create-call request`, `call`, `notifications`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::CreateCallRequest => "create-call request",
            DocumentKind::Call => "call",
            DocumentKind::Notifications => "notifications",
            DocumentKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Properties that mark an untyped object as a call.
const CALL_MARKERS: &[&str] = &[
    "callbackUri",
    "mediaConfig",
    "requestedModalities",
    "targets",
    "meetingInfo",
    "callChainId",
];

/// Whether an untyped entry of a document's `value` array reads as a notification
/// (it has `resourceUrl`, `changeType` or `resourceData`): a document without
/// `@odata.type` whose `value` entries all do is notifications.
pub fn looks_like_notification(v: &Value) -> bool {
    ["resourceUrl", "changeType", "resourceData"]
        .iter()
        .any(|k| v.get(*k).is_some())
}

/// Classify a JSON document by its `@odata.type`, or without one by its properties.
///
/// A media session configuration (the blob) is not recognised here: it belongs to the
/// `media-blob` crate, and a caller should try it first or after.
pub fn classify(v: &Value) -> DocumentKind {
    let Some(obj) = v.as_object() else {
        return DocumentKind::Unknown;
    };
    let call_like = match odata::type_of(v) {
        Some(t) if odata::is(t, odata::COMMS_NOTIFICATIONS) => {
            return DocumentKind::Notifications;
        }
        Some(t) => odata::is(t, odata::CALL),
        None => {
            let notifications = obj
                .get("value")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty() && a.iter().all(looks_like_notification));
            if notifications {
                return DocumentKind::Notifications;
            }
            CALL_MARKERS.iter().any(|k| obj.contains_key(*k))
        }
    };
    if !call_like {
        return DocumentKind::Unknown;
    }
    let set = |k: &str| obj.get(k).is_some_and(|x| !x.is_null());
    if set("id") || set("state") {
        DocumentKind::Call
    } else {
        DocumentKind::CreateCallRequest
    }
}

/// A short human summary of any document: what it is, then its gist (see
/// [`Call::summary`] and [`CommsNotifications::summary`]). Never fails; a document that
/// does not fit the typed model says why.
pub fn summarize(v: &Value) -> String {
    let kind = classify(v);
    match kind {
        DocumentKind::CreateCallRequest | DocumentKind::Call => {
            match serde_json::from_value::<Call>(v.clone()) {
                Ok(call) => call.summary(),
                Err(e) => format!("{kind} (does not fit the call model: {e})"),
            }
        }
        DocumentKind::Notifications => {
            match serde_json::from_value::<CommsNotifications>(v.clone()) {
                Ok(n) => n.summary(),
                Err(e) => format!("{kind} (does not fit the notifications model: {e})"),
            }
        }
        DocumentKind::Unknown => match v {
            Value::Object(obj) => {
                let keys: Vec<&str> = obj.keys().take(8).map(String::as_str).collect();
                let ty = odata::type_of(v)
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default();
                format!(
                    "unknown JSON object{ty} with {} properties ({}{})",
                    obj.len(),
                    keys.join(", "),
                    if obj.len() > keys.len() { ", ..." } else { "" }
                )
            }
            Value::Array(a) => format!("unknown JSON array of {} items", a.len()),
            other => format!("unknown JSON {}", json_type(other)),
        },
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(s: &str) -> String {
    const MAX: usize = 48;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let head: String = s.chars().take(MAX - 3).collect();
        format!("{head}...")
    }
}

impl Call {
    /// One line: the call's id and state (if any), its kind and parties, media,
    /// modalities, and for a request the permissions it needs.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let is_request = self.id.is_absent() && self.state.is_absent();
        let mut head = if is_request {
            "create-call request".to_owned()
        } else {
            format!(
                "call {}",
                self.id.value().map(String::as_str).unwrap_or("(no id)")
            )
        };
        if let Some(state) = self.state.value() {
            head.push_str(&format!(" [{state}]"));
        }
        if let Some(direction) = self.direction.value() {
            head.push_str(&format!(" {direction}"));
        }
        parts.push(head);

        let kind = self.kind();
        let mut who = kind.to_string();
        match self.meeting_info.value() {
            Some(MeetingInfo::Organizer(m)) => {
                if let Some(org) = m.organizer.value() {
                    who.push_str(&format!(" organized by {}", org.label()));
                }
                if let Some(thread) = self.chat_info.value().and_then(|c| c.thread_id.value()) {
                    who.push_str(&format!(" (thread {})", short(thread)));
                }
            }
            Some(MeetingInfo::JoinMeetingId(m)) => {
                if let Some(id) = m.join_meeting_id.value() {
                    who.push_str(&format!(" (join id {id})"));
                }
            }
            Some(MeetingInfo::Other(v)) => {
                who.push_str(&format!(" ({})", odata::type_of(v).unwrap_or("untyped")));
            }
            None => {}
        }
        if let Some(source) = self.source_identity() {
            who.push_str(&format!(" from {}", source.label()));
        }
        let targets: Vec<String> = self
            .targets()
            .iter()
            .map(|t| t.identity.value().map(|i| i.label()).unwrap_or("?".into()))
            .collect();
        if !targets.is_empty() {
            who.push_str(&format!(" to {}", targets.join(", ")));
        }
        parts.push(who);

        if let Some(media) = self.media_config.value() {
            parts.push(format!("media {}", media.kind()));
        }
        if let Some(m) = self.requested_modalities.value() {
            let m: Vec<&str> = m.iter().map(|m| m.as_str()).collect();
            parts.push(format!("modalities {}", m.join("+")));
        }
        if let Some(tenant) = self.tenant_id.value() {
            parts.push(format!("tenant {tenant}"));
        }
        if let Some(r) = self.result_info.value() {
            let code = r.code.value().map(|c| c.to_string()).unwrap_or("?".into());
            let sub = r
                .subcode
                .value()
                .map(|c| format!("/{c}"))
                .unwrap_or_default();
            let msg = r
                .message
                .value()
                .map(|m| format!(" {m}"))
                .unwrap_or_default();
            parts.push(format!("result {code}{sub}{msg}"));
        }
        if let Some(reason) = self.termination_reason.value() {
            parts.push(format!("terminated: {reason}"));
        }
        if is_request {
            parts.push(format!("needs {}", self.required_permissions()));
        }
        parts.join("; ")
    }
}

impl CommsNotifications {
    /// One line per notification: change, resource, and the resources' gist. Control
    /// characters from the document are escaped ([`media_blob::escape_controls`]), so
    /// each notification is one line and none can reach a terminal as it is.
    pub fn summary(&self) -> String {
        let mut lines = vec![format!("{} notification(s)", self.value.len())];
        lines.extend(
            self.value
                .iter()
                .map(|n| format!("  {}", media_blob::escape_controls(&n.summary()))),
        );
        lines.join("\n")
    }
}

impl CommsNotification {
    /// One line: `updated /communications/calls/..: call 2e1a.. [established]`.
    pub fn summary(&self) -> String {
        let change = self
            .change_type
            .value()
            .map(|c| c.to_string())
            .unwrap_or("(no changeType)".into());
        let url = self
            .resource_url
            .value()
            .map(String::as_str)
            .unwrap_or("(no resourceUrl)");
        let items: Vec<String> = self.items().iter().map(item_summary).collect();
        if items.is_empty() {
            format!("{change} {url}")
        } else {
            format!("{change} {url}: {}", items.join(", "))
        }
    }
}

fn item_summary(item: &ResourceItem) -> String {
    match item {
        ResourceItem::Call(c) => {
            let id = c.id.value().map(String::as_str).unwrap_or("(no id)");
            match c.state.value() {
                Some(s) => format!("call {id} [{s}]"),
                None => format!("call {id}"),
            }
        }
        ResourceItem::Participant(p) => participant_summary(p),
        ResourceItem::ContentSharingSession(s) => format!(
            "content sharing session {}",
            s.id.value().map(|s| short(s)).unwrap_or("(no id)".into())
        ),
        ResourceItem::Other(v) => format!(
            "{} (not modelled)",
            odata::type_of(v).unwrap_or(json_type(v))
        ),
    }
}

fn participant_summary(p: &Participant) -> String {
    let who = p
        .info
        .value()
        .and_then(|i| i.identity.value())
        .map(|i| i.label())
        .unwrap_or("?".into());
    let mut flags = Vec::new();
    if p.is_muted.value() == Some(&true) {
        flags.push("muted".to_owned());
    }
    if p.is_in_lobby.value() == Some(&true) {
        flags.push("in lobby".to_owned());
    }
    if let Some(streams) = p.media_streams.value() {
        for s in streams {
            let ty = s.media_type.value().map(|m| m.as_str()).unwrap_or("?");
            let dir = s.direction.value().map(|d| d.as_str()).unwrap_or("?");
            flags.push(format!("{ty} {dir}"));
        }
    }
    if flags.is_empty() {
        format!("participant {who}")
    } else {
        format!("participant {who} ({})", flags.join(", "))
    }
}
