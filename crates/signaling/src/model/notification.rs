//! Callbacks: `commsNotifications`, `commsNotification` and the resources they carry
//! (`call`, `participant`, `contentSharingSession`).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::call::Call;
use super::enums::{ChangeType, MediaDirection, Modality};
use super::identity::ParticipantInfo;
use super::odata;
use crate::field::Field;

/// `commsNotifications`: the body the service posts to the bot's `callbackUri`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CommsNotifications {
    /// `@odata.type` (`#microsoft.graph.commsNotifications`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// The notifications, in order.
    pub value: Vec<CommsNotification>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CommsNotifications {
    /// Parse a notification body from JSON text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The JSON value of this body.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// `commsNotification`: one change to one resource.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommsNotification {
    /// `@odata.type` (`#microsoft.graph.commsNotification`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// `created`, `updated` or `deleted`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub change_type: Field<ChangeType>,
    /// The resource that changed (e.g. `/communications/calls/{id}/participants`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub resource_url: Field<String>,
    /// The callback the notification was sent to.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub callback_uri: Field<String>,
    /// The resource(s): one object or an array.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub resource_data: Field<ResourceData>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CommsNotification {
    /// The call id in `resourceUrl` (`/communications/calls/{id}...` or `/app/calls/{id}`).
    pub fn call_id(&self) -> Option<&str> {
        let url = self.resource_url.value()?;
        let rest = url
            .split_once("/calls/")
            .map(|(_, rest)| rest)?
            .trim_start_matches('/');
        let id = rest.split(['/', '?']).next()?;
        (!id.is_empty()).then_some(id)
    }

    /// The resource items, whether `resourceData` was an object or an array.
    pub fn items(&self) -> &[ResourceItem] {
        match self.resource_data.value() {
            Some(ResourceData::One(item)) => std::slice::from_ref(item),
            Some(ResourceData::Many(items)) => items,
            None => &[],
        }
    }
}

/// `resourceData`: the service sends one object (call state changes) or an array
/// (participants, content-sharing sessions). The shape read is the shape written.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceData {
    /// A single object (or a non-array value, as [`ResourceItem::Other`]).
    One(ResourceItem),
    /// An array.
    Many(Vec<ResourceItem>),
}

impl Serialize for ResourceData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ResourceData::One(item) => item.serialize(serializer),
            ResourceData::Many(items) => items.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ResourceData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Array(items) => items
                .into_iter()
                .map(ResourceItem::from_value)
                .collect::<Result<Vec<_>, _>>()
                .map(ResourceData::Many)
                .map_err(D::Error::custom),
            v => ResourceItem::from_value(v)
                .map(ResourceData::One)
                .map_err(D::Error::custom),
        }
    }
}

/// One resource in `resourceData`, selected by `@odata.type`.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceItem {
    /// `#microsoft.graph.call`.
    Call(Box<Call>),
    /// `#microsoft.graph.participant`.
    Participant(Box<Participant>),
    /// `#microsoft.graph.contentSharingSession`.
    ContentSharingSession(ContentSharingSession),
    /// Any other type, no type, or not an object: kept as raw JSON.
    Other(Value),
}

impl ResourceItem {
    /// Select the variant by `@odata.type`; unknown or missing types give `Other`.
    pub fn from_value(v: Value) -> Result<Self, serde_json::Error> {
        let Some(ty) = odata::type_of(&v) else {
            return Ok(ResourceItem::Other(v));
        };
        if odata::is(ty, odata::CALL) {
            serde_json::from_value(v).map(|c| ResourceItem::Call(Box::new(c)))
        } else if odata::is(ty, odata::PARTICIPANT) {
            serde_json::from_value(v).map(|p| ResourceItem::Participant(Box::new(p)))
        } else if odata::is(ty, odata::CONTENT_SHARING_SESSION) {
            serde_json::from_value(v).map(ResourceItem::ContentSharingSession)
        } else {
            Ok(ResourceItem::Other(v))
        }
    }

    /// The resource's `@odata.type` name without the namespace, e.g. `"participant"`.
    pub fn type_name(&self) -> &str {
        match self {
            ResourceItem::Call(_) => "call",
            ResourceItem::Participant(_) => "participant",
            ResourceItem::ContentSharingSession(_) => "contentSharingSession",
            ResourceItem::Other(v) => odata::type_of(v)
                .map(odata::short_name)
                .unwrap_or("unknown"),
        }
    }
}

impl Serialize for ResourceItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ResourceItem::Call(c) => c.serialize(serializer),
            ResourceItem::Participant(p) => p.serialize(serializer),
            ResourceItem::ContentSharingSession(s) => s.serialize(serializer),
            ResourceItem::Other(v) => v.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ResourceItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ResourceItem::from_value(Value::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

/// `participant`: a member of the call's roster.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// `@odata.type` (`#microsoft.graph.participant`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// Who the participant is.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub info: Field<ParticipantInfo>,
    /// The participant's media streams.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub media_streams: Field<Vec<MediaStream>>,
    /// Muted (by themselves or the server).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub is_muted: Field<bool>,
    /// Waiting in the lobby.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub is_in_lobby: Field<bool>,
    /// Participant id.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub id: Field<String>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `mediaStream`: one stream of a participant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaStream {
    /// `@odata.type` (`#microsoft.graph.mediaStream`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// `audio`, `video`, `videoBasedScreenSharing`, `data`.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub media_type: Field<Modality>,
    /// The media source id (MSI) of the stream.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub source_id: Field<String>,
    /// Direction.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub direction: Field<MediaDirection>,
    /// Muted by the server.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub server_muted: Field<bool>,
    /// Properties this crate does not model (`label` ...), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `contentSharingSession`: a screen or content share in the call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentSharingSession {
    /// `@odata.type` (`#microsoft.graph.contentSharingSession`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// Session id.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub id: Field<String>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
