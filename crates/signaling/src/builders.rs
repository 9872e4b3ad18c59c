//! Create-call request builders: the general [`CreateCallBuilder`] and one function per
//! kind of call the seed shows. Builders emit the canonical form (typed objects, with
//! `@odata.type`); they do not validate, [`validate_create_call`](crate::validate_create_call)
//! does.

use crate::field::Field;
use crate::model::{
    Call, CallDirection, CallOptions, ChatInfo, Identity, IdentitySet, InvitationParticipantInfo,
    JoinMeetingIdMeetingInfo, MediaConfig, MeetingInfo, Modality, OrganizerMeetingInfo,
    ParticipantInfo, odata,
};

/// Builds the body of `POST /communications/calls` (a [`Call`] without id or state).
///
/// Starts with `@odata.type`, `callbackUri` and `requestedModalities: ["audio"]`.
///
/// ```
/// use signaling::{Call, Identity, IdentitySet, InvitationParticipantInfo, MediaConfig};
///
/// let call = Call::builder("https://bot.contoso.com/callback")
///     .target(InvitationParticipantInfo::new(IdentitySet::user(Identity::new(
///         "112f7296-5fa4-42ca-bae8-6a692b15d4b8",
///         "John",
///     ))))
///     .media(MediaConfig::service_hosted())
///     .build();
/// assert_eq!(call.targets().len(), 1);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CreateCallBuilder {
    call: Call,
}

impl Call {
    /// A builder for a create-call request posting notifications to `callback_uri`.
    pub fn builder(callback_uri: impl Into<String>) -> CreateCallBuilder {
        CreateCallBuilder::new(callback_uri)
    }
}

impl CreateCallBuilder {
    /// A request posting notifications to `callback_uri`, asking for audio.
    pub fn new(callback_uri: impl Into<String>) -> Self {
        CreateCallBuilder {
            call: Call {
                odata_type: Field::Value(odata::CALL.into()),
                callback_uri: Field::Value(callback_uri.into()),
                requested_modalities: Field::Value(vec![Modality::Audio]),
                ..Default::default()
            },
        }
    }

    /// Set `direction`.
    pub fn direction(mut self, direction: CallDirection) -> Self {
        self.call.direction = Field::Value(direction);
        self
    }

    /// Set `direction: "outgoing"` (as the seed's group and meeting examples do).
    pub fn outgoing(self) -> Self {
        self.direction(CallDirection::Outgoing)
    }

    /// Set `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.call.subject = Field::Value(subject.into());
        self
    }

    /// Set `source` (the bot; optional for app-only P2P calls and meeting joins).
    pub fn source(mut self, source: ParticipantInfo) -> Self {
        self.call.source = Field::Value(source);
        self
    }

    /// Append one target.
    pub fn target(mut self, target: InvitationParticipantInfo) -> Self {
        match &mut self.call.targets {
            Field::Value(targets) => targets.push(target),
            other => *other = Field::Value(vec![target]),
        }
        self
    }

    /// Append targets.
    pub fn targets(self, targets: impl IntoIterator<Item = InvitationParticipantInfo>) -> Self {
        targets.into_iter().fold(self, Self::target)
    }

    /// Replace `requestedModalities`.
    pub fn modalities(mut self, modalities: impl IntoIterator<Item = Modality>) -> Self {
        self.call.requested_modalities = Field::Value(modalities.into_iter().collect());
        self
    }

    /// Set `mediaConfig`.
    pub fn media(mut self, media: MediaConfig) -> Self {
        self.call.media_config = Field::Value(media);
        self
    }

    /// Set `chatInfo`.
    pub fn chat_info(mut self, chat: ChatInfo) -> Self {
        self.call.chat_info = Field::Value(chat);
        self
    }

    /// Set `meetingInfo`.
    pub fn meeting_info(mut self, meeting: MeetingInfo) -> Self {
        self.call.meeting_info = Field::Value(meeting);
        self
    }

    /// Set `tenantId`.
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.call.tenant_id = Field::Value(tenant_id.into());
        self
    }

    /// Set `callOptions`.
    pub fn call_options(mut self, options: CallOptions) -> Self {
        self.call.call_options = Field::Value(options);
        self
    }

    /// The request.
    pub fn build(self) -> Call {
        self.call
    }
}

/// P2P VoIP call to a user (seed ex. 1 and 2).
pub fn p2p_voip(
    callback_uri: impl Into<String>,
    user: Identity,
    media: MediaConfig,
) -> CreateCallBuilder {
    CreateCallBuilder::new(callback_uri)
        .target(InvitationParticipantInfo::new(IdentitySet::user(user)))
        .media(media)
}

/// Group call from the bot `application` to VoIP users (seed ex. 3 and 4; at most 5
/// users).
pub fn group_call(
    callback_uri: impl Into<String>,
    application: Identity,
    users: impl IntoIterator<Item = Identity>,
    media: MediaConfig,
) -> CreateCallBuilder {
    CreateCallBuilder::new(callback_uri)
        .outgoing()
        .source(ParticipantInfo::new(IdentitySet::application(application)))
        .targets(
            users
                .into_iter()
                .map(|u| InvitationParticipantInfo::new(IdentitySet::user(u))),
        )
        .media(media)
}

/// Join a scheduled or channel meeting identified by its chat and organizer (seed
/// ex. 5, 6 and 7).
pub fn join_meeting(
    callback_uri: impl Into<String>,
    chat: ChatInfo,
    meeting: OrganizerMeetingInfo,
    media: MediaConfig,
) -> CreateCallBuilder {
    CreateCallBuilder::new(callback_uri)
        .media(media)
        .chat_info(chat)
        .meeting_info(meeting.into())
}

/// Join a meeting by its join id and passcode (`joinMeetingIdMeetingInfo`, the v1.0
/// docs' examples 7 and 8): no `chatInfo` and no organizer needed.
///
/// ```
/// use signaling::{JoinMeetingIdMeetingInfo, MediaConfig, builders};
/// let call = builders::join_meeting_by_id(
///     "https://bot.contoso.com/callback",
///     JoinMeetingIdMeetingInfo::new("1234567", Some("psw123".into())),
///     MediaConfig::service_hosted(),
/// )
/// .build();
/// assert_eq!(call.validate(), Ok(()));
/// let json = serde_json::to_value(&call).unwrap();
/// assert_eq!(json["meetingInfo"]["joinMeetingId"], "1234567");
/// assert_eq!(json["meetingInfo"]["passcode"], "psw123");
/// ```
pub fn join_meeting_by_id(
    callback_uri: impl Into<String>,
    meeting: JoinMeetingIdMeetingInfo,
    media: MediaConfig,
) -> CreateCallBuilder {
    CreateCallBuilder::new(callback_uri)
        .media(media)
        .meeting_info(meeting.into())
}

/// Join a meeting as a guest (seed ex. 8): the source is the guest identity, whose
/// display name the meeting shows.
pub fn join_meeting_as_guest(
    callback_uri: impl Into<String>,
    guest: Identity,
    chat: ChatInfo,
    meeting: OrganizerMeetingInfo,
    media: MediaConfig,
) -> CreateCallBuilder {
    join_meeting(callback_uri, chat, meeting, media)
        .source(ParticipantInfo::new(IdentitySet::guest(guest)))
}

/// P2P PSTN call from an application instance (a bot with a phone number) to an E.164
/// number (seed ex. 9 and 10).
pub fn p2p_pstn(
    callback_uri: impl Into<String>,
    application_instance: Identity,
    phone_number: impl Into<String>,
    media: MediaConfig,
) -> CreateCallBuilder {
    CreateCallBuilder::new(callback_uri)
        .source(ParticipantInfo::new(IdentitySet::application_instance(
            application_instance,
        )))
        .target(InvitationParticipantInfo::new(IdentitySet::phone(
            phone_number,
        )))
        .media(media)
}
