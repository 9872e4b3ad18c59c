//! Meeting joins: `chatInfo`, `meetingInfo` (`organizerMeetingInfo`,
//! `joinMeetingIdMeetingInfo`).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::identity::IdentitySet;
use super::odata;
use crate::field::Field;

/// `chatInfo`: the meeting's chat thread.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatInfo {
    /// `@odata.type` (`#microsoft.graph.chatInfo`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// The chat thread id (e.g. `19:meeting_...@thread.v2`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub thread_id: Field<String>,
    /// The message id in the thread (`"0"` for scheduled meetings).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub message_id: Field<String>,
    /// The id of the reply chain's root message.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub reply_chain_message_id: Field<String>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatInfo {
    /// A typed chat info.
    pub fn new(thread_id: impl Into<String>, message_id: impl Into<String>) -> Self {
        ChatInfo {
            odata_type: Field::Value(odata::CHAT_INFO.into()),
            thread_id: Field::Value(thread_id.into()),
            message_id: Field::Value(message_id.into()),
            ..Default::default()
        }
    }
}

/// `organizerMeetingInfo`: a meeting identified by its organizer (plus `chatInfo`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizerMeetingInfo {
    /// `@odata.type` (`#microsoft.graph.organizerMeetingInfo`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// The organizer.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub organizer: Field<IdentitySet>,
    /// Let the meeting continue without its organizer.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub allow_conversation_without_host: Field<bool>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl OrganizerMeetingInfo {
    /// A typed organizer meeting info.
    pub fn new(organizer: IdentitySet) -> Self {
        OrganizerMeetingInfo {
            odata_type: Field::Value(odata::ORGANIZER_MEETING_INFO.into()),
            organizer: Field::Value(organizer),
            ..Default::default()
        }
    }

    /// Set `allowConversationWithoutHost`.
    pub fn allow_conversation_without_host(mut self, allow: bool) -> Self {
        self.allow_conversation_without_host = Field::Value(allow);
        self
    }
}

/// `joinMeetingIdMeetingInfo`: a meeting identified by its join id and passcode.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinMeetingIdMeetingInfo {
    /// `@odata.type` (`#microsoft.graph.joinMeetingIdMeetingInfo`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// The meeting's join id.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub join_meeting_id: Field<String>,
    /// The passcode.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub passcode: Field<String>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl JoinMeetingIdMeetingInfo {
    /// A meeting to join by its join id (digits, as `Get onlineMeeting` gives it in
    /// `joinMeetingIdSettings.joinMeetingId`) and passcode; `None` writes
    /// `"passcode": null`, as the v1.0 docs' example 8 does for a meeting without one.
    pub fn new(join_meeting_id: impl Into<String>, passcode: Option<String>) -> Self {
        JoinMeetingIdMeetingInfo {
            odata_type: Field::Value(odata::JOIN_MEETING_ID_MEETING_INFO.into()),
            join_meeting_id: Field::Value(join_meeting_id.into()),
            passcode: passcode.map_or(Field::Null, Field::Value),
            extra: Map::new(),
        }
    }
}

/// `call.meetingInfo`, selected by `@odata.type`.
///
/// Without `@odata.type`, an object with `organizer` is an organizer meeting info and
/// one with `joinMeetingId` a join-id meeting info; anything else is
/// [`MeetingInfo::Other`].
#[derive(Debug, Clone, PartialEq)]
pub enum MeetingInfo {
    /// `#microsoft.graph.organizerMeetingInfo` (boxed: it is large).
    Organizer(Box<OrganizerMeetingInfo>),
    /// `#microsoft.graph.joinMeetingIdMeetingInfo`.
    JoinMeetingId(JoinMeetingIdMeetingInfo),
    /// Any other type (e.g. `tokenMeetingInfo`), kept as raw JSON.
    Other(Value),
}

impl From<OrganizerMeetingInfo> for MeetingInfo {
    fn from(m: OrganizerMeetingInfo) -> Self {
        MeetingInfo::Organizer(Box::new(m))
    }
}

impl From<JoinMeetingIdMeetingInfo> for MeetingInfo {
    fn from(m: JoinMeetingIdMeetingInfo) -> Self {
        MeetingInfo::JoinMeetingId(m)
    }
}

impl Serialize for MeetingInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MeetingInfo::Organizer(m) => m.serialize(serializer),
            MeetingInfo::JoinMeetingId(m) => m.serialize(serializer),
            MeetingInfo::Other(v) => v.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MeetingInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        let organizer = match odata::type_of(&v) {
            Some(t) if odata::is(t, odata::ORGANIZER_MEETING_INFO) => Some(true),
            Some(t) if odata::is(t, odata::JOIN_MEETING_ID_MEETING_INFO) => Some(false),
            Some(_) => None,
            None if v.get("organizer").is_some() => Some(true),
            None if v.get("joinMeetingId").is_some() => Some(false),
            None => None,
        };
        match organizer {
            Some(true) => serde_json::from_value(v)
                .map(|m| MeetingInfo::Organizer(Box::new(m)))
                .map_err(|e| D::Error::custom(format!("organizerMeetingInfo: {e}"))),
            Some(false) => serde_json::from_value(v)
                .map(MeetingInfo::JoinMeetingId)
                .map_err(|e| D::Error::custom(format!("joinMeetingIdMeetingInfo: {e}"))),
            None => Ok(MeetingInfo::Other(v)),
        }
    }
}
