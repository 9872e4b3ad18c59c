//! Identities and participant descriptions: `identity`, `identitySet`,
//! `participantInfo`, `invitationParticipantInfo`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::enums::EndpointType;
use super::odata;
use crate::field::Field;

/// `identity`: one party (a user, an application, a guest, a phone number ...).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// `@odata.type` (`#microsoft.graph.identity`), absent or present as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub display_name: Field<String>,
    /// Identifier (an AAD object id, an app id, or an E.164 number for `phone`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub id: Field<String>,
    /// Tenant of the identity (used for meeting organizers).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tenant_id: Field<String>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Identity {
    /// A typed identity with an id and a display name.
    pub fn new(id: impl Into<String>, display_name: impl Into<String>) -> Self {
        Identity {
            odata_type: Field::Value(odata::IDENTITY.into()),
            display_name: Field::Value(display_name.into()),
            id: Field::Value(id.into()),
            ..Default::default()
        }
    }

    /// A typed identity with an id only (e.g. a phone number).
    pub fn with_id(id: impl Into<String>) -> Self {
        Identity {
            odata_type: Field::Value(odata::IDENTITY.into()),
            id: Field::Value(id.into()),
            ..Default::default()
        }
    }

    /// Set the tenant id.
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Field::Value(tenant_id.into());
        self
    }

    /// The display name, or the id, or `"?"`: for summaries.
    pub fn label(&self) -> &str {
        self.display_name
            .value()
            .or(self.id.value())
            .map(String::as_str)
            .unwrap_or("?")
    }
}

/// `identitySet`: the kinds of identity a participant can have.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySet {
    /// `@odata.type` (`#microsoft.graph.identitySet`), absent or present as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// A user.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub user: Field<Identity>,
    /// An application (a bot).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub application: Field<Identity>,
    /// An application instance (a bot with a phone number; needed for PSTN).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub application_instance: Field<Identity>,
    /// A guest (meeting join as guest).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub guest: Field<Identity>,
    /// A phone number (PSTN).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub phone: Field<Identity>,
    /// Properties this crate does not model (`encrypted`, `onPremises` ...), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl IdentitySet {
    fn typed() -> Self {
        IdentitySet {
            odata_type: Field::Value(odata::IDENTITY_SET.into()),
            ..Default::default()
        }
    }

    /// An identity set holding a user.
    pub fn user(identity: Identity) -> Self {
        IdentitySet {
            user: Field::Value(identity),
            ..Self::typed()
        }
    }

    /// An identity set holding an application.
    pub fn application(identity: Identity) -> Self {
        IdentitySet {
            application: Field::Value(identity),
            ..Self::typed()
        }
    }

    /// An identity set holding an application instance.
    pub fn application_instance(identity: Identity) -> Self {
        IdentitySet {
            application_instance: Field::Value(identity),
            ..Self::typed()
        }
    }

    /// An identity set holding a guest.
    pub fn guest(identity: Identity) -> Self {
        IdentitySet {
            guest: Field::Value(identity),
            ..Self::typed()
        }
    }

    /// An identity set holding a phone number (E.164, e.g. `+12345678901`).
    pub fn phone(number: impl Into<String>) -> Self {
        IdentitySet {
            phone: Field::Value(Identity::with_id(number)),
            ..Self::typed()
        }
    }

    /// The first identity present, with its kind (`"user"`, `"application"`, ...).
    pub fn primary(&self) -> Option<(&'static str, &Identity)> {
        [
            ("user", &self.user),
            ("application", &self.application),
            ("applicationInstance", &self.application_instance),
            ("guest", &self.guest),
            ("phone", &self.phone),
        ]
        .into_iter()
        .find_map(|(k, f)| f.value().map(|i| (k, i)))
    }

    /// A short label: `"John (user)"`, `"+12345678901 (phone)"`, or `"?"`.
    pub fn label(&self) -> String {
        match self.primary() {
            Some((kind, id)) => format!("{} ({kind})", id.label()),
            None => "?".to_owned(),
        }
    }
}

/// `participantInfo`: who a participant is (`call.source`, `participant.info`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantInfo {
    /// `@odata.type` (`#microsoft.graph.participantInfo`), absent or present as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// The participant's identity.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub identity: Field<IdentitySet>,
    /// ISO 3166-1 alpha-2 country code of the participant's location.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub country_code: Field<String>,
    /// Type of endpoint.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub endpoint_type: Field<EndpointType>,
    /// Home region of the participant.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub region: Field<String>,
    /// Language culture string (e.g. `en-US`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub language_id: Field<String>,
    /// Participant id.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub participant_id: Field<String>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ParticipantInfo {
    /// A typed participant info for an identity set.
    pub fn new(identity: IdentitySet) -> Self {
        ParticipantInfo {
            odata_type: Field::Value(odata::PARTICIPANT_INFO.into()),
            identity: Field::Value(identity),
            ..Default::default()
        }
    }
}

/// `invitationParticipantInfo`: whom a call invites (`call.targets`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationParticipantInfo {
    /// `@odata.type` (`#microsoft.graph.invitationParticipantInfo`; ex. 3 and 4 of the
    /// seed also send `#microsoft.graph.participantInfo` here), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// The invitee's identity.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub identity: Field<IdentitySet>,
    /// Type of endpoint.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub endpoint_type: Field<EndpointType>,
    /// Home region.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub region: Field<String>,
    /// Id of the call this invitation replaces.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub replaces_call_id: Field<String>,
    /// Language culture string.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub language_id: Field<String>,
    /// Properties this crate does not model (`hidden`, `participantId` ...), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl InvitationParticipantInfo {
    /// A typed invitation for an identity set.
    pub fn new(identity: IdentitySet) -> Self {
        InvitationParticipantInfo {
            odata_type: Field::Value(odata::INVITATION_PARTICIPANT_INFO.into()),
            identity: Field::Value(identity),
            ..Default::default()
        }
    }

    /// Replace the `@odata.type` (the seed's group examples type one target as
    /// `#microsoft.graph.participantInfo`).
    pub fn with_odata_type(mut self, odata_type: impl Into<String>) -> Self {
        self.odata_type = Field::Value(odata_type.into());
        self
    }
}
