//! Which application permissions a create-call request needs.
//!
//! From the seed page: P2P calls (VoIP or PSTN) need Calls.Initiate.All; group calls
//! Calls.InitiateGroupCall.All; meeting joins Calls.JoinGroupCall.All or the
//! resource-specific Calls.JoinGroupCalls.Chat; guest joins
//! Calls.JoinGroupCallAsGuest.All; app-hosted media adds Calls.AccessMedia.All or the
//! resource-specific Calls.AccessMedia.Chat.
//!
//! Names are printed as Microsoft Entra ID spells them (the roles of an app's token,
//! and what an admin grants): `Calls.InitiateGroupCall.All`, `Calls.JoinGroupCall.All`,
//! `Calls.JoinGroupCallAsGuest.All`. The seed page (a translation) writes them in the
//! plural (`Calls.JoinGroupCalls.All`); those spellings are read as the same
//! permissions, so a seed note parses, but never printed: an admin who granted the
//! seed's spelling would find no such permission.

use std::fmt;
use std::str::FromStr;

use crate::model::Call;

/// A Microsoft Graph application permission used for calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// `Calls.Initiate.All`: place P2P calls (VoIP and PSTN).
    CallsInitiateAll,
    /// `Calls.InitiateGroupCall.All`: place group calls.
    CallsInitiateGroupCallsAll,
    /// `Calls.JoinGroupCall.All`: join meetings in any chat or channel.
    CallsJoinGroupCallsAll,
    /// `Calls.JoinGroupCalls.Chat`: join meetings of chats that consented (RSC).
    CallsJoinGroupCallsChat,
    /// `Calls.JoinGroupCallAsGuest.All`: join meetings as a guest.
    CallsJoinGroupCallsAsGuestAll,
    /// `Calls.AccessMedia.All`: access media streams (app-hosted media).
    CallsAccessMediaAll,
    /// `Calls.AccessMedia.Chat`: access media streams in chats that consented (RSC).
    CallsAccessMediaChat,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 7] = [
        Permission::CallsInitiateAll,
        Permission::CallsInitiateGroupCallsAll,
        Permission::CallsJoinGroupCallsAll,
        Permission::CallsJoinGroupCallsChat,
        Permission::CallsJoinGroupCallsAsGuestAll,
        Permission::CallsAccessMediaAll,
        Permission::CallsAccessMediaChat,
    ];

    /// The permission's name, e.g. `Calls.Initiate.All`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::CallsInitiateAll => "Calls.Initiate.All",
            Permission::CallsInitiateGroupCallsAll => "Calls.InitiateGroupCall.All",
            Permission::CallsJoinGroupCallsAll => "Calls.JoinGroupCall.All",
            Permission::CallsJoinGroupCallsChat => "Calls.JoinGroupCalls.Chat",
            Permission::CallsJoinGroupCallsAsGuestAll => "Calls.JoinGroupCallAsGuest.All",
            Permission::CallsAccessMediaAll => "Calls.AccessMedia.All",
            Permission::CallsAccessMediaChat => "Calls.AccessMedia.Chat",
        }
    }

    /// True for resource-specific consent permissions (`.Chat`), granted per chat.
    pub fn is_resource_specific(self) -> bool {
        matches!(
            self,
            Permission::CallsJoinGroupCallsChat | Permission::CallsAccessMediaChat
        )
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission name this crate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown calling permission `{0}`")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    /// Case-insensitive (the seed's table writes `Calls.JoinGroupCallsasGuest.All`);
    /// the seed's plural spellings are read too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let seed_spelling = [
            (
                "Calls.InitiateGroupCalls.All",
                Permission::CallsInitiateGroupCallsAll,
            ),
            (
                "Calls.JoinGroupCalls.All",
                Permission::CallsJoinGroupCallsAll,
            ),
            (
                "Calls.JoinGroupCallsAsGuest.All",
                Permission::CallsJoinGroupCallsAsGuestAll,
            ),
        ];
        Permission::ALL
            .into_iter()
            .map(|p| (p.as_str(), p))
            .chain(seed_spelling)
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, p)| p)
            .ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

/// One requirement: any one of the alternatives will do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The alternatives, the broadest first.
    pub any_of: Vec<Permission>,
}

impl Requirement {
    /// Whether one of `granted` satisfies this requirement.
    pub fn is_satisfied_by(&self, granted: &[Permission]) -> bool {
        self.any_of.iter().any(|p| granted.contains(p))
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.any_of.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            f.write_str(p.as_str())?;
        }
        Ok(())
    }
}

/// Everything a request needs: all of the requirements. Display reads
/// `"Calls.JoinGroupCall.All or Calls.JoinGroupCalls.Chat, Calls.AccessMedia.All or Calls.AccessMedia.Chat"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RequiredPermissions {
    /// The requirements, the call's own first, media second.
    pub all_of: Vec<Requirement>,
}

impl RequiredPermissions {
    /// Whether `granted` satisfies every requirement.
    pub fn is_satisfied_by(&self, granted: &[Permission]) -> bool {
        self.all_of.iter().all(|r| r.is_satisfied_by(granted))
    }

    /// The requirements `granted` does not satisfy.
    pub fn missing(&self, granted: &[Permission]) -> Vec<&Requirement> {
        self.all_of
            .iter()
            .filter(|r| !r.is_satisfied_by(granted))
            .collect()
    }

    /// Whether `p` is one of the alternatives of some requirement.
    pub fn mentions(&self, p: Permission) -> bool {
        self.all_of.iter().any(|r| r.any_of.contains(&p))
    }
}

impl fmt::Display for RequiredPermissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.all_of.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// What kind of call a create-call request places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// One VoIP target.
    PeerToPeer,
    /// One phone target.
    Pstn,
    /// More than one target.
    Group,
    /// Joins a meeting (`meetingInfo`).
    MeetingJoin,
    /// Joins a meeting with a guest identity as source.
    GuestMeetingJoin,
}

impl CallKind {
    /// Classify a create-call request.
    pub fn of(call: &Call) -> CallKind {
        let guest = call.source_identity().is_some_and(|s| s.guest.is_value());
        if call.meeting_info.is_value() {
            if guest {
                CallKind::GuestMeetingJoin
            } else {
                CallKind::MeetingJoin
            }
        } else if call.targets().len() > 1 {
            CallKind::Group
        } else if call
            .targets()
            .first()
            .and_then(|t| t.identity.value())
            .is_some_and(|i| i.phone.is_value())
        {
            CallKind::Pstn
        } else {
            CallKind::PeerToPeer
        }
    }

    /// A short name for summaries: `p2p`, `pstn`, `group`, `meeting join`, `guest meeting join`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::PeerToPeer => "p2p",
            CallKind::Pstn => "pstn",
            CallKind::Group => "group",
            CallKind::MeetingJoin => "meeting join",
            CallKind::GuestMeetingJoin => "guest meeting join",
        }
    }
}

impl fmt::Display for CallKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The permissions the application needs to send `call` as a create-call request.
pub fn required_permissions(call: &Call) -> RequiredPermissions {
    use Permission::*;
    let own = match CallKind::of(call) {
        CallKind::PeerToPeer | CallKind::Pstn => vec![CallsInitiateAll],
        CallKind::Group => vec![CallsInitiateGroupCallsAll],
        CallKind::MeetingJoin => vec![CallsJoinGroupCallsAll, CallsJoinGroupCallsChat],
        CallKind::GuestMeetingJoin => vec![CallsJoinGroupCallsAsGuestAll],
    };
    let mut all_of = vec![Requirement { any_of: own }];
    if call.is_app_hosted() {
        all_of.push(Requirement {
            any_of: vec![CallsAccessMediaAll, CallsAccessMediaChat],
        });
    }
    RequiredPermissions { all_of }
}

impl Call {
    /// The permissions needed to send this call (see [`required_permissions`]).
    pub fn required_permissions(&self) -> RequiredPermissions {
        required_permissions(self)
    }

    /// What kind of call this request places.
    pub fn kind(&self) -> CallKind {
        CallKind::of(self)
    }
}
