//! The Graph call model: serde types for every object of the create-call page.
//!
//! Conventions, the same for every type:
//! - every property is a [`Field`](crate::Field): absent, `null` and present survive a
//!   round trip, and so does `@odata.type` (`odata_type`);
//! - properties not modelled are kept in `extra` (`#[serde(flatten)]`);
//! - polymorphic properties ([`MediaConfig`], [`MeetingInfo`], [`ResourceItem`]) are
//!   selected by `@odata.type`, and an unknown type is kept as raw JSON (`Other`);
//! - string enumerations accept unknown values (`Other(String)`).
//!
//! Constructors (`Identity::new`, `IdentitySet::user`, `MediaConfig::app_hosted`, ...)
//! emit the canonical, typed form (with `@odata.type`).

mod call;
mod enums;
mod identity;
mod media;
mod meeting;
mod notification;

pub use call::{Call, CallOptions, CallRoute, Code, ResultInfo};
pub use enums::{CallDirection, CallState, ChangeType, EndpointType, MediaDirection, Modality};
pub use identity::{Identity, IdentitySet, InvitationParticipantInfo, ParticipantInfo};
pub use media::{
    AppHostedMediaConfig, MediaConfig, MediaInfo, PLACEHOLDER_BLOB, ServiceHostedMediaConfig,
};
pub use meeting::{ChatInfo, JoinMeetingIdMeetingInfo, MeetingInfo, OrganizerMeetingInfo};
pub use notification::{
    CommsNotification, CommsNotifications, ContentSharingSession, MediaStream, Participant,
    ResourceData, ResourceItem,
};

/// `@odata.type` values used by this crate, and helpers to read them.
pub mod odata {
    use serde_json::Value;

    /// `#microsoft.graph.call`.
    pub const CALL: &str = "#microsoft.graph.call";
    /// `#microsoft.graph.identity`.
    pub const IDENTITY: &str = "#microsoft.graph.identity";
    /// `#microsoft.graph.identitySet`.
    pub const IDENTITY_SET: &str = "#microsoft.graph.identitySet";
    /// `#microsoft.graph.participantInfo`.
    pub const PARTICIPANT_INFO: &str = "#microsoft.graph.participantInfo";
    /// `#microsoft.graph.invitationParticipantInfo`.
    pub const INVITATION_PARTICIPANT_INFO: &str = "#microsoft.graph.invitationParticipantInfo";
    /// `#microsoft.graph.serviceHostedMediaConfig`.
    pub const SERVICE_HOSTED_MEDIA_CONFIG: &str = "#microsoft.graph.serviceHostedMediaConfig";
    /// `#microsoft.graph.appHostedMediaConfig`.
    pub const APP_HOSTED_MEDIA_CONFIG: &str = "#microsoft.graph.appHostedMediaConfig";
    /// `#microsoft.graph.outgoingCallOptions`.
    pub const OUTGOING_CALL_OPTIONS: &str = "#microsoft.graph.outgoingCallOptions";
    /// `#microsoft.graph.chatInfo`.
    pub const CHAT_INFO: &str = "#microsoft.graph.chatInfo";
    /// `#microsoft.graph.organizerMeetingInfo`.
    pub const ORGANIZER_MEETING_INFO: &str = "#microsoft.graph.organizerMeetingInfo";
    /// `#microsoft.graph.joinMeetingIdMeetingInfo`.
    pub const JOIN_MEETING_ID_MEETING_INFO: &str = "#microsoft.graph.joinMeetingIdMeetingInfo";
    /// `#microsoft.graph.commsNotifications`.
    pub const COMMS_NOTIFICATIONS: &str = "#microsoft.graph.commsNotifications";
    /// `#microsoft.graph.commsNotification`.
    pub const COMMS_NOTIFICATION: &str = "#microsoft.graph.commsNotification";
    /// `#microsoft.graph.participant`.
    pub const PARTICIPANT: &str = "#microsoft.graph.participant";
    /// `#microsoft.graph.contentSharingSession`.
    pub const CONTENT_SHARING_SESSION: &str = "#microsoft.graph.contentSharingSession";

    /// The `@odata.type` of a JSON object, if it is a string.
    pub fn type_of(v: &Value) -> Option<&str> {
        v.get("@odata.type").and_then(Value::as_str)
    }

    /// Whether `actual` names the type `expected`, liberally: ASCII case and the
    /// leading `#` are ignored (`microsoft.graph.Call` matches `#microsoft.graph.call`).
    pub fn is(actual: &str, expected: &str) -> bool {
        actual
            .trim()
            .trim_start_matches('#')
            .eq_ignore_ascii_case(expected.trim_start_matches('#'))
    }

    /// The type name without its namespace: `#microsoft.graph.participant` gives
    /// `participant`.
    pub fn short_name(ty: &str) -> &str {
        ty.rsplit('.').next().unwrap_or(ty)
    }
}
