//! Required permissions against each example's note ("Примечание") on the seed page.

use signaling::{CallKind, Permission, Scenario};

use Permission::*;

/// The permissions each example's note names, verbatim from the seed, and whether the
/// note is complete (ex. 4 and 6 leave out a requirement that the page states
/// elsewhere).
fn seed_note(s: Scenario) -> (&'static str, &'static [Permission], bool) {
    match s {
        Scenario::P2pVoipService => (
            "Для этого вызова требуется разрешение Calls.Initiate.All.",
            &[CallsInitiateAll],
            true,
        ),
        Scenario::P2pVoipApp => (
            "В этом примере требуются разрешения Calls.Initiate.All и Calls.AccessMedia.All.",
            &[CallsInitiateAll, CallsAccessMediaAll],
            true,
        ),
        Scenario::GroupService => (
            "В этом примере вызова требуется Calls.InitiateGroupCalls.All разрешение.",
            &[CallsInitiateGroupCallsAll],
            true,
        ),
        // App-hosted, but the note copies ex. 3's; the page's general note says
        // app-hosted media needs Calls.AccessMedia.All or .Chat in addition.
        Scenario::GroupApp => (
            "В этом примере вызова требуется Calls.InitiateGroupCalls.All разрешение.",
            &[CallsInitiateGroupCallsAll],
            false,
        ),
        Scenario::MeetingService => (
            "В этом примере требуется Calls.JoinGroupCalls.All разрешение или \
             Calls.JoinGroupCalls.Chat разрешение для конкретного ресурса.",
            &[CallsJoinGroupCallsAll, CallsJoinGroupCallsChat],
            true,
        ),
        // The note names only the media permission; the join itself needs
        // Calls.JoinGroupCalls.* as in ex. 5.
        Scenario::MeetingApp => (
            "В этом примере требуется Calls.AccessMedia.All разрешение или \
             Calls.AccessMedia.Chat разрешение для конкретного ресурса.",
            &[CallsAccessMediaAll, CallsAccessMediaChat],
            false,
        ),
        Scenario::ChannelMeeting => (
            "Этому примеру требуется разрешение Calls.JoinGroupCalls.All .",
            &[CallsJoinGroupCallsAll],
            true,
        ),
        Scenario::ChannelMeetingGuest => (
            "Этому примеру требуется разрешение Calls.JoinGroupCallsAsGuest.All .",
            &[CallsJoinGroupCallsAsGuestAll],
            true,
        ),
        Scenario::PstnService => (
            "Для этого вызова требуется разрешение Calls.Initiate.All.",
            &[CallsInitiateAll],
            true,
        ),
        Scenario::PstnApp => (
            "В этом примере требуются разрешения Calls.Initiate.All и Calls.AccessMedia.All.",
            &[CallsInitiateAll, CallsAccessMediaAll],
            true,
        ),
        // Not on the seed page: a join by meeting id is a meeting join (ex. 5's
        // permissions), with media access when app-hosted (ex. 6's).
        Scenario::MeetingIdService => (
            "(not on the seed page) Calls.JoinGroupCalls.All or Calls.JoinGroupCalls.Chat",
            &[CallsJoinGroupCallsAll, CallsJoinGroupCallsChat],
            true,
        ),
        Scenario::MeetingIdApp => (
            "(not on the seed page) Calls.JoinGroupCalls.All or Calls.JoinGroupCalls.Chat, \
             Calls.AccessMedia.All or Calls.AccessMedia.Chat",
            &[
                CallsJoinGroupCallsAll,
                CallsJoinGroupCallsChat,
                CallsAccessMediaAll,
                CallsAccessMediaChat,
            ],
            true,
        ),
    }
}

/// Permission names found in a note.
fn names_in(note: &str) -> Vec<Permission> {
    note.split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| w.trim_end_matches('.'))
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn inferred_permissions_match_each_examples_note() {
    for scenario in Scenario::ALL {
        let (note, named, complete) = seed_note(scenario);
        let mut parsed = names_in(note);
        parsed.sort();
        let mut expected = named.to_vec();
        expected.sort();
        assert_eq!(parsed, expected, "{scenario}: note parsing");

        let required = scenario.seed_example(None).required_permissions();
        for p in named {
            assert!(required.mentions(*p), "{scenario}: {p} not in {required}");
        }
        if complete {
            // Granting exactly one alternative of each "or" in the note suffices.
            let one_each: Vec<Permission> = named
                .iter()
                .copied()
                .filter(|p| !p.is_resource_specific() || named.len() == 1)
                .collect();
            assert!(
                required.is_satisfied_by(&one_each),
                "{scenario}: {required}"
            );
        } else {
            assert!(
                !required.is_satisfied_by(named),
                "{scenario}: the note is incomplete"
            );
        }
    }
}

#[test]
fn display_lists_alternatives_and_requirements() {
    let expect = [
        (Scenario::P2pVoipService, "Calls.Initiate.All"),
        (
            Scenario::P2pVoipApp,
            "Calls.Initiate.All, Calls.AccessMedia.All or Calls.AccessMedia.Chat",
        ),
        (Scenario::GroupService, "Calls.InitiateGroupCall.All"),
        (
            Scenario::GroupApp,
            "Calls.InitiateGroupCall.All, Calls.AccessMedia.All or Calls.AccessMedia.Chat",
        ),
        (
            Scenario::MeetingService,
            "Calls.JoinGroupCall.All or Calls.JoinGroupCalls.Chat",
        ),
        (
            Scenario::MeetingApp,
            "Calls.JoinGroupCall.All or Calls.JoinGroupCalls.Chat, \
             Calls.AccessMedia.All or Calls.AccessMedia.Chat",
        ),
        (
            Scenario::ChannelMeeting,
            "Calls.JoinGroupCall.All or Calls.JoinGroupCalls.Chat",
        ),
        (
            Scenario::ChannelMeetingGuest,
            "Calls.JoinGroupCallAsGuest.All",
        ),
        (Scenario::PstnService, "Calls.Initiate.All"),
        (
            Scenario::PstnApp,
            "Calls.Initiate.All, Calls.AccessMedia.All or Calls.AccessMedia.Chat",
        ),
        (
            Scenario::MeetingIdService,
            "Calls.JoinGroupCall.All or Calls.JoinGroupCalls.Chat",
        ),
        (
            Scenario::MeetingIdApp,
            "Calls.JoinGroupCall.All or Calls.JoinGroupCalls.Chat, \
             Calls.AccessMedia.All or Calls.AccessMedia.Chat",
        ),
    ];
    for (scenario, text) in expect {
        assert_eq!(
            scenario
                .seed_example(None)
                .required_permissions()
                .to_string(),
            text
        );
    }
}

#[test]
fn kinds_and_missing_requirements() {
    let kinds: Vec<CallKind> = Scenario::ALL
        .iter()
        .map(|s| s.seed_example(None).kind())
        .collect();
    assert_eq!(
        kinds,
        [
            CallKind::PeerToPeer,
            CallKind::PeerToPeer,
            CallKind::Group,
            CallKind::Group,
            CallKind::MeetingJoin,
            CallKind::MeetingJoin,
            CallKind::MeetingJoin,
            CallKind::GuestMeetingJoin,
            CallKind::Pstn,
            CallKind::Pstn,
            CallKind::MeetingJoin,
            CallKind::MeetingJoin
        ]
    );
    let required = Scenario::MeetingApp
        .seed_example(None)
        .required_permissions();
    let missing = required.missing(&[CallsJoinGroupCallsChat]);
    assert_eq!(missing.len(), 1);
    assert_eq!(
        missing[0].to_string(),
        "Calls.AccessMedia.All or Calls.AccessMedia.Chat"
    );
    assert!(required.is_satisfied_by(&[CallsJoinGroupCallsChat, CallsAccessMediaChat]));
}

#[test]
fn permission_names_parse_case_insensitively() {
    // The seed's permission table spells it this way.
    assert_eq!(
        "Calls.JoinGroupCallsasGuest.All".parse(),
        Ok(CallsJoinGroupCallsAsGuestAll)
    );
    for p in Permission::ALL {
        assert_eq!(p.as_str().parse(), Ok(p));
    }
    assert!("Calls.Everything".parse::<Permission>().is_err());
}

#[test]
fn names_are_entras_and_the_seeds_plural_spellings_are_read() {
    for (seed, entra) in [
        (
            "Calls.InitiateGroupCalls.All",
            "Calls.InitiateGroupCall.All",
        ),
        ("Calls.JoinGroupCalls.All", "Calls.JoinGroupCall.All"),
        (
            "Calls.JoinGroupCallsasGuest.All",
            "Calls.JoinGroupCallAsGuest.All",
        ),
    ] {
        let p: Permission = seed.parse().expect(seed);
        assert_eq!(p.as_str(), entra);
        assert_eq!(entra.parse::<Permission>(), Ok(p));
    }
    // Resource-specific consent keeps its plural name.
    assert_eq!(
        CallsJoinGroupCallsChat.as_str(),
        "Calls.JoinGroupCalls.Chat"
    );
    assert!("Calls.JoinGroupCall.Chat".parse::<Permission>().is_err());
}
