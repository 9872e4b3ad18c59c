//! The `call` resource, its options and its result.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use super::enums::{CallDirection, CallState, Modality};
use super::identity::{IdentitySet, InvitationParticipantInfo, ParticipantInfo};
use super::media::MediaConfig;
use super::meeting::{ChatInfo, MeetingInfo};
use crate::field::Field;

/// `call`: a create-call request body, a `201 Created` response, or the resource data
/// of a notification.
///
/// Every property is a [`Field`] so that absent, `null` and present survive a round
/// trip; properties not modelled land in [`Call::extra`] (e.g. `@odata.context`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// `@odata.type` (`#microsoft.graph.call`), absent or present as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// Call state (set by the service).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub state: Field<CallState>,
    /// Direction.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub direction: Field<CallDirection>,
    /// Subject (group calls).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub subject: Field<String>,
    /// Where the service posts notifications for this call.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub callback_uri: Field<String>,
    /// Id shared by all calls of one chain.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub call_chain_id: Field<String>,
    /// How the call was routed.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub call_routes: Field<Vec<CallRoute>>,
    /// The caller (the bot).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub source: Field<ParticipantInfo>,
    /// Whom to call.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub targets: Field<Vec<InvitationParticipantInfo>>,
    /// Modalities the bot asks for.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub requested_modalities: Field<Vec<Modality>>,
    /// Modalities in use.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub active_modalities: Field<Vec<Modality>>,
    /// Service- or app-hosted media.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub media_config: Field<MediaConfig>,
    /// Meeting chat (meeting joins).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub chat_info: Field<ChatInfo>,
    /// Meeting to join.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub meeting_info: Field<MeetingInfo>,
    /// Transcription state (raw JSON; the seed shows only `null`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub transcription: Field<Value>,
    /// Routing policies (`none`, `noMissedCall`, ...).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub routing_policies: Field<Vec<String>>,
    /// The bot's tenant.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tenant_id: Field<String>,
    /// The bot's participant id in this call.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub my_participant_id: Field<String>,
    /// Call id.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub id: Field<String>,
    /// Why the call ended (`terminationReason`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub termination_reason: Field<String>,
    /// Ringing timeout, seconds.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub ringing_timeout_in_seconds: Field<i64>,
    /// Media state (raw JSON, e.g. `{"audio": "active"}`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub media_state: Field<Value>,
    /// Result of the last operation or of the call (on termination).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub result_info: Field<ResultInfo>,
    /// Who answered.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub answered_by: Field<ParticipantInfo>,
    /// Meeting capabilities (raw JSON; the seed shows only `null`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub meeting_capability: Field<Value>,
    /// Last tone received (raw JSON, `toneInfo`; the seed shows only `null`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tone_info: Field<Value>,
    /// Call options (`outgoingCallOptions` when creating a call).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub call_options: Field<CallOptions>,
    /// Properties this crate does not model, kept verbatim (e.g. `@odata.context`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Call {
    /// Parse a call from JSON text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The JSON value of this call.
    pub fn to_value(&self) -> Value {
        // Serializing this model cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Compact JSON text, e.g. the body of `POST /communications/calls`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Pretty-printed JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.to_value()).unwrap_or_default()
    }

    /// The targets, or an empty slice.
    pub fn targets(&self) -> &[InvitationParticipantInfo] {
        self.targets.value().map(Vec::as_slice).unwrap_or(&[])
    }

    /// The source's identity set, if any.
    pub fn source_identity(&self) -> Option<&IdentitySet> {
        self.source.value().and_then(|s| s.identity.value())
    }

    /// True when `mediaConfig` is app-hosted.
    pub fn is_app_hosted(&self) -> bool {
        self.media_config
            .value()
            .is_some_and(MediaConfig::is_app_hosted)
    }
}

/// `callRoute`: how a call was routed (`callRoutes`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRoute {
    /// `@odata.type` (`#microsoft.graph.callRoute`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// Routing type (`forwarded`, `lookup`, `selfFork`, ...).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub routing_type: Field<String>,
    /// Who was called.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub original: Field<IdentitySet>,
    /// Who it reached.
    #[serde(rename = "final", default, skip_serializing_if = "Field::is_absent")]
    pub final_: Field<IdentitySet>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `callOptions` (`outgoingCallOptions` for created calls).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallOptions {
    /// `@odata.type` (`#microsoft.graph.outgoingCallOptions`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// Ask for content-sharing notifications.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub is_content_sharing_notification_enabled: Field<bool>,
    /// Properties this crate does not model (`hideBotAfterEscalation` ...), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CallOptions {
    /// Typed `outgoingCallOptions` with `isContentSharingNotificationEnabled`.
    pub fn outgoing(content_sharing_notifications: bool) -> Self {
        CallOptions {
            odata_type: Field::Value(super::odata::OUTGOING_CALL_OPTIONS.into()),
            is_content_sharing_notification_enabled: Field::Value(content_sharing_notifications),
            ..Default::default()
        }
    }
}

/// `resultInfo`: the outcome of an operation (`code`, `subcode`, `message`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultInfo {
    /// `@odata.type` (`#microsoft.graph.resultInfo`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// HTTP-like code (a number or a string in the field).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub code: Field<Code>,
    /// Service subcode (a number or a string in the field).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub subcode: Field<Code>,
    /// Message.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub message: Field<String>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A result code the service sends as a JSON number or a JSON string (`410`, `"410"`);
/// the form read is the form written.
#[derive(Debug, Clone, PartialEq)]
pub enum Code {
    /// A JSON number.
    Number(Number),
    /// A JSON string.
    Text(String),
}

impl Code {
    /// The numeric value, from either form (`"410"` gives 410).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Code::Number(n) => n.as_i64(),
            Code::Text(s) => s.trim().parse().ok(),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Number(n) => write!(f, "{n}"),
            Code::Text(s) => f.write_str(s),
        }
    }
}

impl From<i64> for Code {
    fn from(n: i64) -> Self {
        Code::Number(n.into())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Code::Number(n) => n.serialize(serializer),
            Code::Text(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Code;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Code, E> {
                Ok(Code::Number(v.into()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Code, E> {
                Ok(Code::Number(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Code, E> {
                Number::from_f64(v)
                    .map(Code::Number)
                    .ok_or_else(|| E::custom("a finite number"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Code, E> {
                Ok(Code::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Code, E> {
                Ok(Code::Text(v))
            }
        }
        deserializer.deserialize_any(V)
    }
}
