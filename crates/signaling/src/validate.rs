//! Checks a create-call request before it is sent.
//!
//! Each [`RequestError`] names the property at fault (its JSON path) and says what to do.
//! The rules come from the seed page and the Graph calling documentation:
//!
//! | Rule | Path |
//! |---|---|
//! | the document's `@odata.type`, if any, is `#microsoft.graph.call` | `@odata.type` |
//! | `callbackUri` present, `https` (`http` only for 127.0.0.0/8, `::1`, `localhost`) | `callbackUri` |
//! | `callbackUri` host a DNS name of at most 253 characters or an IP address, port 1-65535 | `callbackUri` |
//! | `requestedModalities` not empty | `requestedModalities` |
//! | `mediaConfig` present and of a known type | `mediaConfig` |
//! | app-hosted media carries a blob that media-blob parses and validates (not the page's placeholder) | `mediaConfig.blob` |
//! | targets required unless the call joins a meeting | `targets` |
//! | at most 5 targets (group calls) | `targets` |
//! | a phone target needs an `applicationInstance` source | `source.identity.applicationInstance` |
//! | phone numbers are E.164 (`+`, 1-15 digits, first not 0) | `targets[i].identity.phone.id` |
//! | a `joinMeetingIdMeetingInfo` join has a `joinMeetingId` of digits (at most 32) and no empty `passcode` | `meetingInfo.joinMeetingId`, `meetingInfo.passcode` |
//! | an `organizerMeetingInfo` join needs `chatInfo` with `threadId` and `messageId` | `chatInfo...` |
//! | a guest join has the guest (with a display name) as its only source identity | `source.identity...` |

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::field::Field;
use crate::model::{Call, MediaConfig, MeetingInfo, PLACEHOLDER_BLOB, odata};

/// Longest meeting join id accepted, in digits (Teams gives 10 to 15).
pub const MAX_JOIN_MEETING_ID_LEN: usize = 32;

/// Most targets a group call may have (VoIP users).
pub const MAX_GROUP_TARGETS: usize = 5;

/// A create-call request the service would refuse, or that would not work. Display
/// reads `"path: problem; what to do"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The document's own `@odata.type` names another resource than a call.
    #[error(
        "@odata.type: {} is not a call; a create-call request is a \
         #microsoft.graph.call (or has no @odata.type)",
        media_blob::excerpt(odata_type)
    )]
    NotACall {
        /// The `@odata.type` found.
        odata_type: String,
    },
    /// `callbackUri` is absent or empty.
    #[error("callbackUri: missing; set the https URL where the service should post notifications")]
    MissingCallbackUri,
    /// `callbackUri` is not a usable absolute URL.
    #[error(
        "callbackUri: {} is not a valid absolute URL ({reason})",
        media_blob::excerpt(uri)
    )]
    InvalidCallbackUri {
        /// The value.
        uri: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `callbackUri` is not https (and not http to a loopback host).
    #[error(
        "callbackUri: {} must be https; plain http is accepted only for loopback hosts \
         (127.0.0.0/8, ::1, localhost) when testing locally",
        media_blob::excerpt(uri)
    )]
    InsecureCallbackUri {
        /// The value.
        uri: String,
    },
    /// `requestedModalities` is absent, `null` or empty.
    #[error("requestedModalities: must list at least one modality, e.g. [\"audio\"]")]
    NoModalities,
    /// `mediaConfig` is absent or `null`.
    #[error(
        "mediaConfig: missing; use serviceHostedMediaConfig, or appHostedMediaConfig with a blob"
    )]
    MissingMediaConfig,
    /// `mediaConfig` has an `@odata.type` this crate does not know.
    #[error(
        "mediaConfig: unknown type {}; expected #microsoft.graph.serviceHostedMediaConfig \
         or #microsoft.graph.appHostedMediaConfig",
        media_blob::excerpt(odata_type)
    )]
    UnknownMediaConfig {
        /// The `@odata.type` found (or `"(none)"`).
        odata_type: String,
    },
    /// App-hosted media without a blob.
    #[error(
        "mediaConfig.blob: missing; app-hosted media needs the serialized media session configuration"
    )]
    MissingBlob,
    /// The blob is the documentation's placeholder.
    #[error(
        "mediaConfig.blob: \"<Media Session Configuration>\" is the documentation's placeholder, \
         not a media session configuration; build a real one (media-blob)"
    )]
    PlaceholderBlob,
    /// The blob does not parse as a media session configuration.
    #[error("mediaConfig.blob: not a valid media session configuration: {message}")]
    InvalidBlob {
        /// The media-blob error ("path: problem").
        message: String,
    },
    /// No targets for a call that is not a meeting join.
    #[error(
        "targets: required (at least one) unless the call joins a meeting (meetingInfo + chatInfo)"
    )]
    MissingTargets,
    /// More targets than a group call allows.
    #[error("targets: {count} targets; a group call allows at most {max} VoIP users")]
    TooManyTargets {
        /// Targets given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A phone target without an application-instance source.
    #[error(
        "source.identity.applicationInstance: required because {target_path} is a phone number; \
         PSTN calls come from an application instance with an assigned phone number"
    )]
    PstnNeedsApplicationInstance {
        /// The path of the phone target, e.g. `targets[0].identity.phone`.
        target_path: String,
    },
    /// A phone number not in E.164 form.
    #[error(
        "{path}: {} is not an E.164 number ('+' then 1-15 digits, the first not 0)",
        media_blob::excerpt(number)
    )]
    InvalidPhoneNumber {
        /// Where the number is, e.g. `targets[0].identity.phone.id`.
        path: String,
        /// The value (empty when missing).
        number: String,
    },
    /// A join by meeting id whose `joinMeetingId` is missing or not a join id.
    #[error(
        "meetingInfo.joinMeetingId: {} is not a meeting join id; give the digits of the \
         online meeting's joinMeetingIdSettings.joinMeetingId, without spaces",
        if id.is_empty() { "missing".to_owned() } else { media_blob::excerpt(id) }
    )]
    InvalidJoinMeetingId {
        /// The value (empty when missing).
        id: String,
    },
    /// A join by meeting id with an empty passcode.
    #[error(
        "meetingInfo.passcode: empty; give the meeting's passcode, or null (or leave it \
         out) when the meeting has none"
    )]
    EmptyPasscode,
    /// A meeting join by organizer without `chatInfo`.
    #[error(
        "chatInfo: required to join a meeting identified by organizerMeetingInfo; \
         get threadId and messageId from the online meeting"
    )]
    MissingChatInfo,
    /// `chatInfo` without `threadId` or `messageId`.
    #[error("chatInfo.{field}: required to join a meeting identified by organizerMeetingInfo")]
    IncompleteChatInfo {
        /// `threadId` or `messageId`.
        field: &'static str,
    },
    /// A guest source outside a meeting join.
    #[error(
        "source.identity.guest: guest identities can only join meetings; add meetingInfo and chatInfo"
    )]
    GuestOutsideMeeting,
    /// A guest source that also carries another identity.
    #[error(
        "source.identity: a guest join needs the guest as the only source identity; remove `{other}`"
    )]
    GuestWithOtherIdentity {
        /// The other identity kind found (`user`, `application`, ...).
        other: &'static str,
    },
    /// A guest without a display name or id.
    #[error("source.identity.guest.{field}: required; the meeting shows the guest by this")]
    IncompleteGuest {
        /// `displayName` or `id`.
        field: &'static str,
    },
}

impl RequestError {
    /// The JSON path of the property at fault, e.g. `mediaConfig.blob`.
    pub fn path(&self) -> String {
        match self {
            RequestError::NotACall { .. } => "@odata.type".into(),
            RequestError::MissingCallbackUri
            | RequestError::InvalidCallbackUri { .. }
            | RequestError::InsecureCallbackUri { .. } => "callbackUri".into(),
            RequestError::NoModalities => "requestedModalities".into(),
            RequestError::MissingMediaConfig | RequestError::UnknownMediaConfig { .. } => {
                "mediaConfig".into()
            }
            RequestError::MissingBlob
            | RequestError::PlaceholderBlob
            | RequestError::InvalidBlob { .. } => "mediaConfig.blob".into(),
            RequestError::MissingTargets | RequestError::TooManyTargets { .. } => "targets".into(),
            RequestError::InvalidJoinMeetingId { .. } => "meetingInfo.joinMeetingId".into(),
            RequestError::EmptyPasscode => "meetingInfo.passcode".into(),
            RequestError::PstnNeedsApplicationInstance { .. } => {
                "source.identity.applicationInstance".into()
            }
            RequestError::InvalidPhoneNumber { path, .. } => path.clone(),
            RequestError::MissingChatInfo => "chatInfo".into(),
            RequestError::IncompleteChatInfo { field } => format!("chatInfo.{field}"),
            RequestError::GuestOutsideMeeting => "source.identity.guest".into(),
            RequestError::GuestWithOtherIdentity { other } => format!("source.identity.{other}"),
            RequestError::IncompleteGuest { field } => format!("source.identity.guest.{field}"),
        }
    }
}

/// Check a create-call request; the first problem found is returned.
pub fn validate_create_call(call: &Call) -> Result<(), RequestError> {
    match create_call_problems(call).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl Call {
    /// Check this call as a create-call request (see [`validate_create_call`]).
    pub fn validate(&self) -> Result<(), RequestError> {
        validate_create_call(self)
    }
}

/// Every problem of a create-call request, in path order (empty when valid).
pub fn create_call_problems(call: &Call) -> Vec<RequestError> {
    let mut problems = Vec::new();

    if let Some(t) = call.odata_type.value()
        && !odata::is(t, odata::CALL)
    {
        problems.push(RequestError::NotACall {
            odata_type: t.clone(),
        });
    }

    match call.callback_uri.value().map(|s| s.trim()) {
        None | Some("") => problems.push(RequestError::MissingCallbackUri),
        Some(uri) => {
            if let Err(e) = check_callback_uri(uri) {
                problems.push(e);
            }
        }
    }

    if call.requested_modalities.value().is_none_or(Vec::is_empty) {
        problems.push(RequestError::NoModalities);
    }

    check_media(call.media_config.value(), &mut problems);

    let meeting_join = call.meeting_info.is_value();
    let targets = call.targets();
    if targets.is_empty() && !meeting_join {
        problems.push(RequestError::MissingTargets);
    }
    if targets.len() > MAX_GROUP_TARGETS {
        problems.push(RequestError::TooManyTargets {
            count: targets.len(),
            max: MAX_GROUP_TARGETS,
        });
    }

    let source = call.source_identity();
    let mut pstn_source_reported = false;
    for (i, target) in targets.iter().enumerate() {
        let Some(phone) = target.identity.value().and_then(|s| s.phone.value()) else {
            continue;
        };
        let number = phone.id.value().map(String::as_str).unwrap_or("");
        if !is_e164(number) {
            problems.push(RequestError::InvalidPhoneNumber {
                path: format!("targets[{i}].identity.phone.id"),
                number: number.to_owned(),
            });
        }
        let has_instance = source.is_some_and(|s| s.application_instance.is_value());
        if !has_instance && !pstn_source_reported {
            pstn_source_reported = true;
            problems.push(RequestError::PstnNeedsApplicationInstance {
                target_path: format!("targets[{i}].identity.phone"),
            });
        }
    }

    if let Field::Value(MeetingInfo::JoinMeetingId(m)) = &call.meeting_info {
        let id = m.join_meeting_id.value().map_or("", String::as_str);
        if id.is_empty()
            || id.len() > MAX_JOIN_MEETING_ID_LEN
            || !id.bytes().all(|b| b.is_ascii_digit())
        {
            problems.push(RequestError::InvalidJoinMeetingId { id: id.to_owned() });
        }
        if m.passcode.value().is_some_and(|p| p.trim().is_empty()) {
            problems.push(RequestError::EmptyPasscode);
        }
    }

    if let Field::Value(MeetingInfo::Organizer(_)) = &call.meeting_info {
        match call.chat_info.value() {
            None => problems.push(RequestError::MissingChatInfo),
            Some(chat) => {
                if chat.thread_id.value().is_none_or(|s| s.trim().is_empty()) {
                    problems.push(RequestError::IncompleteChatInfo { field: "threadId" });
                }
                if chat.message_id.value().is_none_or(|s| s.trim().is_empty()) {
                    problems.push(RequestError::IncompleteChatInfo { field: "messageId" });
                }
            }
        }
    }

    if let Some(ids) = source
        && let Some(guest) = ids.guest.value()
    {
        if !meeting_join {
            problems.push(RequestError::GuestOutsideMeeting);
        }
        let others = [
            ("user", ids.user.is_value()),
            ("application", ids.application.is_value()),
            ("applicationInstance", ids.application_instance.is_value()),
            ("phone", ids.phone.is_value()),
        ];
        if let Some((other, _)) = others.into_iter().find(|(_, present)| *present) {
            problems.push(RequestError::GuestWithOtherIdentity { other });
        }
        if guest
            .display_name
            .value()
            .is_none_or(|s| s.trim().is_empty())
        {
            problems.push(RequestError::IncompleteGuest {
                field: "displayName",
            });
        }
        if guest.id.value().is_none_or(|s| s.trim().is_empty()) {
            problems.push(RequestError::IncompleteGuest { field: "id" });
        }
    }

    problems
}

/// The rules of `mediaConfig` (present, of a known type, an app-hosted blob that
/// media-blob parses and validates), for a create-call request and an `answer`.
pub(crate) fn check_media(media: Option<&MediaConfig>, problems: &mut Vec<RequestError>) {
    match media {
        None => problems.push(RequestError::MissingMediaConfig),
        Some(MediaConfig::ServiceHosted(_)) => {}
        Some(MediaConfig::Other(v)) => problems.push(RequestError::UnknownMediaConfig {
            odata_type: odata::type_of(v).unwrap_or("(none)").to_owned(),
        }),
        Some(MediaConfig::AppHosted(app)) => match app.blob.value() {
            None => problems.push(RequestError::MissingBlob),
            Some(Value::String(blob)) if blob.trim() == PLACEHOLDER_BLOB => {
                problems.push(RequestError::PlaceholderBlob)
            }
            Some(Value::String(blob)) if blob.trim().is_empty() => {
                problems.push(RequestError::MissingBlob)
            }
            Some(blob) => {
                if let Err(message) = parse_blob(blob) {
                    problems.push(RequestError::InvalidBlob { message });
                }
            }
        },
    }
}

/// Parse a blob (a JSON string holding the blob, or the older object form) with
/// media-blob and check it is complete in the current form (we are strict in what we
/// send); the error text is media-blob's ("path: problem").
fn parse_blob(blob: &Value) -> Result<(), String> {
    media_blob::MediaSessionConfig::from_value(blob)
        .and_then(|config| config.validate())
        .map_err(|e| e.to_string())
}

/// Whether `number` is E.164: `+`, then 1 to 15 digits, the first not `0`.
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (1..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Whether `host` (as in a URL, IPv6 without brackets) is a loopback host:
/// `localhost`, 127.0.0.0/8 or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
        || host
            .parse::<Ipv6Addr>()
            .is_ok_and(|a| a == Ipv6Addr::LOCALHOST)
}

/// Longest host name accepted in a callback URI (the DNS limit, RFC 1035 §2.3.4, in its
/// text form without the trailing dot).
const MAX_CALLBACK_HOST_LEN: usize = 253;

/// Check a callback URI: absolute, https, or http to a loopback host; the host a DNS name
/// (labels of 1-63 letters, digits or `-`, at most 253 characters without a trailing dot)
/// or an IP address (IPv6 in brackets), the port, if given, a number from 1 to 65535.
pub fn check_callback_uri(uri: &str) -> Result<(), RequestError> {
    let invalid = |reason| RequestError::InvalidCallbackUri {
        uri: uri.to_owned(),
        reason,
    };
    if uri.chars().any(char::is_whitespace) {
        return Err(invalid("contains whitespace"));
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(invalid("no scheme; expected https://host/path"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((h, after)) => match after.strip_prefix(':') {
                Some(port) => (h, Some(port)),
                None if after.is_empty() => (h, None),
                None => return Err(invalid("unexpected characters after the ']' of the host")),
            },
            None => return Err(invalid("unclosed '[' in the host")),
        }
    } else {
        match host_port.split_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    if host.strip_suffix('.').unwrap_or(host).len() > MAX_CALLBACK_HOST_LEN {
        return Err(invalid("host is longer than 253 characters"));
    }
    if host_port.starts_with('[') {
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(invalid("the host in brackets is not an IPv6 address"));
        }
    } else if host.parse::<Ipv4Addr>().is_err() && !is_dns_name(host) {
        return Err(invalid(
            "host is not a DNS name (labels of 1-63 letters, digits or '-') or an IP address",
        ));
    }
    if let Some(port) = port
        && !(port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p)))
    {
        return Err(invalid("port is not a number from 1 to 65535"));
    }
    if scheme.eq_ignore_ascii_case("https")
        || (scheme.eq_ignore_ascii_case("http") && is_loopback_host(host))
    {
        Ok(())
    } else {
        Err(RequestError::InsecureCallbackUri {
            uri: uri.to_owned(),
        })
    }
}

/// Whether `host` is a DNS host name: dot-separated labels of 1-63 ASCII letters, digits
/// or `-` (not first or last), an optional trailing dot, and a last label that is not all
/// digits (such a name would be a malformed IPv4 address).
fn is_dns_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    let valid_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    !name.is_empty()
        && name.split('.').all(valid_label)
        && !name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
}
