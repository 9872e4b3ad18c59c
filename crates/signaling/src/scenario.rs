//! The ten create-call scenarios of the seed page, by name, with the seed's own values,
//! and the two joins by meeting id of the v1.0 docs (examples 7 and 8 there) that the
//! seed page does not show.

use std::fmt;
use std::str::FromStr;

use crate::builders;
use crate::field::Field;
use crate::model::{
    Call, CallOptions, ChatInfo, Identity, IdentitySet, JoinMeetingIdMeetingInfo, MediaConfig,
    MediaInfo, OrganizerMeetingInfo, PLACEHOLDER_BLOB, ParticipantInfo, ServiceHostedMediaConfig,
    odata,
};

/// One of the seed's ten create-call examples, or a join by meeting id (11, 12). Names
/// are kebab-case for a CLI
/// (`"p2p-voip-app".parse::<Scenario>()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Ex. 1: P2P VoIP call, service-hosted media (`p2p-voip-service`).
    P2pVoipService,
    /// Ex. 2: P2P VoIP call, app-hosted media (`p2p-voip-app`).
    P2pVoipApp,
    /// Ex. 3: group call, service-hosted media (`group-service`).
    GroupService,
    /// Ex. 4: group call, app-hosted media (`group-app`).
    GroupApp,
    /// Ex. 5: join a scheduled meeting, service-hosted media (`meeting-service`).
    MeetingService,
    /// Ex. 6: join a scheduled meeting, app-hosted media (`meeting-app`).
    MeetingApp,
    /// Ex. 7: join a channel meeting, service-hosted media (`channel-meeting`).
    ChannelMeeting,
    /// Ex. 8: join a channel meeting as a guest, service-hosted media
    /// (`channel-meeting-guest`).
    ChannelMeetingGuest,
    /// Ex. 9: P2P PSTN call, service-hosted media (`pstn-service`).
    PstnService,
    /// Ex. 10: P2P PSTN call, app-hosted media (`pstn-app`).
    PstnApp,
    /// Join a meeting by its join id and passcode, service-hosted media
    /// (`meeting-id-service`): the v1.0 docs' example 7, not on the seed page.
    MeetingIdService,
    /// Join a meeting by its join id and passcode, app-hosted media (`meeting-id-app`):
    /// example 7 with the app-hosted media of seed ex. 6.
    MeetingIdApp,
}

/// An unknown scenario name; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scenario {}; expected one of: {}",
    media_blob::excerpt(name),
    Scenario::names().join(", ")
)]
pub struct UnknownScenario {
    /// The name given.
    pub name: String,
}

impl Scenario {
    /// All scenarios: the seed's ten in its order, then the two joins by meeting id.
    pub const ALL: [Scenario; 12] = [
        Scenario::P2pVoipService,
        Scenario::P2pVoipApp,
        Scenario::GroupService,
        Scenario::GroupApp,
        Scenario::MeetingService,
        Scenario::MeetingApp,
        Scenario::ChannelMeeting,
        Scenario::ChannelMeetingGuest,
        Scenario::PstnService,
        Scenario::PstnApp,
        Scenario::MeetingIdService,
        Scenario::MeetingIdApp,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::P2pVoipService => "p2p-voip-service",
            Scenario::P2pVoipApp => "p2p-voip-app",
            Scenario::GroupService => "group-service",
            Scenario::GroupApp => "group-app",
            Scenario::MeetingService => "meeting-service",
            Scenario::MeetingApp => "meeting-app",
            Scenario::ChannelMeeting => "channel-meeting",
            Scenario::ChannelMeetingGuest => "channel-meeting-guest",
            Scenario::PstnService => "pstn-service",
            Scenario::PstnApp => "pstn-app",
            Scenario::MeetingIdService => "meeting-id-service",
            Scenario::MeetingIdApp => "meeting-id-app",
        }
    }

    /// All names, in seed order.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|s| s.name()).collect()
    }

    /// The example number on the seed page (1-10); 11 and 12 for the joins by
    /// meeting id, which the seed page does not show.
    pub fn example_number(self) -> u8 {
        match self {
            Scenario::P2pVoipService => 1,
            Scenario::P2pVoipApp => 2,
            Scenario::GroupService => 3,
            Scenario::GroupApp => 4,
            Scenario::MeetingService => 5,
            Scenario::MeetingApp => 6,
            Scenario::ChannelMeeting => 7,
            Scenario::ChannelMeetingGuest => 8,
            Scenario::PstnService => 9,
            Scenario::PstnApp => 10,
            Scenario::MeetingIdService => 11,
            Scenario::MeetingIdApp => 12,
        }
    }

    /// One line saying what the scenario does.
    pub fn description(self) -> &'static str {
        match self {
            Scenario::P2pVoipService => "P2P VoIP call to a user, service-hosted media",
            Scenario::P2pVoipApp => "P2P VoIP call to a user, app-hosted media",
            Scenario::GroupService => "group call to up to 5 VoIP users, service-hosted media",
            Scenario::GroupApp => "group call to up to 5 VoIP users, app-hosted media",
            Scenario::MeetingService => "join a scheduled meeting, service-hosted media",
            Scenario::MeetingApp => "join a scheduled meeting, app-hosted media",
            Scenario::ChannelMeeting => "join a channel meeting, service-hosted media",
            Scenario::ChannelMeetingGuest => {
                "join a channel meeting as a guest, service-hosted media"
            }
            Scenario::PstnService => "P2P PSTN call to a phone number, service-hosted media",
            Scenario::PstnApp => "P2P PSTN call to a phone number, app-hosted media",
            Scenario::MeetingIdService => {
                "join a meeting by its join id and passcode, service-hosted media"
            }
            Scenario::MeetingIdApp => {
                "join a meeting by its join id and passcode, app-hosted media"
            }
        }
    }

    /// True when the scenario uses app-hosted media (and so carries a blob).
    pub fn is_app_hosted(self) -> bool {
        matches!(
            self,
            Scenario::P2pVoipApp
                | Scenario::GroupApp
                | Scenario::MeetingApp
                | Scenario::PstnApp
                | Scenario::MeetingIdApp
        )
    }

    /// The stem of the scenario's fixture files under `tests/fixtures`
    /// (`{stem}.request.json`).
    pub fn fixture_stem(self) -> &'static str {
        match self {
            Scenario::P2pVoipService => "01_p2p_voip_service_hosted",
            Scenario::P2pVoipApp => "02_p2p_voip_app_hosted",
            Scenario::GroupService => "03_group_call_service_hosted",
            Scenario::GroupApp => "04_group_call_app_hosted",
            Scenario::MeetingService => "05_join_scheduled_meeting_service_hosted",
            Scenario::MeetingApp => "06_join_scheduled_meeting_app_hosted",
            Scenario::ChannelMeeting => "07_join_channel_meeting_service_hosted",
            Scenario::ChannelMeetingGuest => "08_join_channel_meeting_as_guest",
            Scenario::PstnService => "09_p2p_pstn_service_hosted",
            Scenario::PstnApp => "10_p2p_pstn_app_hosted",
            Scenario::MeetingIdService => "11_join_meeting_id_service_hosted",
            Scenario::MeetingIdApp => "12_join_meeting_id_app_hosted",
        }
    }

    /// The seed's request for this scenario, built with the [`builders`] from the
    /// seed's own values, equal as JSON to the page's example.
    ///
    /// App-hosted scenarios carry `blob`, or the seed's placeholder
    /// `"<Media Session Configuration>"` when `None` (which validation rejects);
    /// service-hosted scenarios ignore `blob`.
    pub fn seed_example(self, blob: Option<String>) -> Call {
        let blob = blob.unwrap_or_else(|| PLACEHOLDER_BLOB.to_owned());
        match self {
            Scenario::P2pVoipService => {
                builders::p2p_voip(seed::CALLBACK, seed::john(), MediaConfig::service_hosted())
                    .call_options(CallOptions::outgoing(true))
                    .build()
            }
            Scenario::P2pVoipApp => {
                let mut source = ParticipantInfo::new(IdentitySet::application(seed::bot()));
                source.region = Field::Null;
                source.language_id = Field::Null;
                builders::p2p_voip(seed::CALLBACK, seed::john(), MediaConfig::app_hosted(blob))
                    .source(source)
                    .build()
            }
            Scenario::GroupService | Scenario::GroupApp => {
                let media = if self == Scenario::GroupApp {
                    MediaConfig::AppHosted(
                        crate::model::AppHostedMediaConfig::new(blob)
                            .remove_from_default_audio_group(false),
                    )
                } else {
                    MediaConfig::ServiceHosted(
                        ServiceHostedMediaConfig::new().remove_from_default_audio_group(false),
                    )
                };
                let mut call = builders::group_call(
                    seed::CALLBACK,
                    Identity::new("dd3885da-f9ab-486b-bfae-85de3d445555", "TestBot"),
                    [
                        Identity::new("98da8a1a-1b87-452c-a713-65d3f10b5555", "user1"),
                        Identity::new("bf5aae9a-d11d-47a8-93b1-782504c95555", "user2"),
                    ],
                    media,
                )
                // Ex. 4 keeps ex. 3's subject on the page.
                .subject("Create a group call with service hosted media")
                .tenant_id(seed::TENANT)
                .build();
                // The page types the second target as participantInfo.
                if let Some(t) = call.targets.value_mut().and_then(|t| t.get_mut(1)) {
                    t.odata_type = Field::Value(odata::PARTICIPANT_INFO.into());
                }
                call
            }
            Scenario::MeetingService => builders::join_meeting(
                seed::CALLBACK,
                seed::scheduled_chat(),
                seed::organizer("9f386a15-f9cc-445b-8106-ac85e314a07b"),
                seed::prefetch(),
            )
            .tenant_id("86dc81db-c112-4228-9222-63f3esaa1edb")
            .build(),
            Scenario::MeetingApp => builders::join_meeting(
                seed::CALLBACK,
                seed::scheduled_chat(),
                seed::organizer(seed::TENANT),
                MediaConfig::app_hosted(blob),
            )
            .outgoing()
            .tenant_id(seed::TENANT)
            .build(),
            Scenario::ChannelMeeting => builders::join_meeting(
                seed::CALLBACK,
                seed::channel_chat(),
                seed::organizer(seed::TENANT),
                seed::prefetch(),
            )
            .build(),
            Scenario::ChannelMeetingGuest => builders::join_meeting_as_guest(
                seed::CALLBACK,
                Identity::new("d7a3b999-17ac-4bca-9e77-e6a730d2ec2e", "Guest User"),
                seed::channel_chat(),
                seed::organizer(seed::TENANT),
                seed::prefetch(),
            )
            .build(),
            Scenario::PstnService | Scenario::PstnApp => {
                let media = if self == Scenario::PstnApp {
                    MediaConfig::app_hosted(blob)
                } else {
                    MediaConfig::service_hosted()
                };
                let mut call = builders::p2p_pstn(
                    seed::CALLBACK,
                    Identity::new("3d913abb-aec0-4964-8fa6-3c6850c4f278", "Calling Bot"),
                    "+12345678901",
                    media,
                )
                .tenant_id(seed::TENANT)
                .build();
                if let Some(source) = call.source.value_mut() {
                    source.country_code = Field::Null;
                    source.endpoint_type = Field::Null;
                    source.region = Field::Null;
                    source.language_id = Field::Null;
                }
                call
            }
            Scenario::MeetingIdService => builders::join_meeting_by_id(
                seed::CALLBACK,
                seed::meeting_id(),
                // The docs write an empty preFetchMedia list.
                MediaConfig::ServiceHosted(ServiceHostedMediaConfig::new().pre_fetch([])),
            )
            .tenant_id("86dc81db-c112-4228-9222-63f3esaa1edb")
            .build(),
            Scenario::MeetingIdApp => builders::join_meeting_by_id(
                seed::CALLBACK,
                seed::meeting_id(),
                MediaConfig::app_hosted(blob),
            )
            .tenant_id(seed::TENANT)
            .build(),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownScenario { name: s.to_owned() })
    }
}

/// The seed's example values.
mod seed {
    use super::*;

    pub(super) const CALLBACK: &str = "https://bot.contoso.com/callback";
    pub(super) const TENANT: &str = "aa67bd4c-8475-432d-bd41-39f255720e0a";

    pub(super) fn john() -> Identity {
        Identity::new("112f7296-5fa4-42ca-bae8-6a692b15d4b8", "John")
    }

    pub(super) fn bot() -> Identity {
        Identity::new("2891555a-92ff-42e6-80fa-6e1300c6b5c6", "Calling Bot")
    }

    pub(super) fn prefetch() -> MediaConfig {
        MediaConfig::ServiceHosted(ServiceHostedMediaConfig::new().pre_fetch([
            MediaInfo::new(
                "https://cdn.contoso.com/beep.wav",
                "f8971b04-b53e-418c-9222-c82ce681a582",
            ),
            MediaInfo::new(
                "https://cdn.contoso.com/cool.wav",
                "86dc814b-c172-4428-9112-60f8ecae1edb",
            ),
        ]))
    }

    pub(super) fn scheduled_chat() -> ChatInfo {
        ChatInfo::new(
            "19:meeting_Win6Ydo4wsMijFjZS00ZGVjLTk5MGUtOTRjNWY2NmNkYTFm@thread.v2",
            "0",
        )
    }

    pub(super) fn channel_chat() -> ChatInfo {
        ChatInfo::new(
            "19:cbee7c1c860e465f8258e3cebf7bee0d@thread.skype",
            "1533758867081",
        )
    }

    /// The v1.0 docs' example 7: join id and passcode.
    pub(super) fn meeting_id() -> JoinMeetingIdMeetingInfo {
        JoinMeetingIdMeetingInfo::new("1234567", Some("psw123".into()))
    }

    pub(super) fn organizer(tenant: &str) -> OrganizerMeetingInfo {
        OrganizerMeetingInfo::new(IdentitySet::user(
            Identity::new("5810cede-f3cc-42eb-b2c1-e9bd5d53ec96", "Bob").tenant(tenant),
        ))
        .allow_conversation_without_host(true)
    }
}
