//! One passing and one failing case for every validation rule.

use signaling::{
    ChatInfo, Field, Identity, IdentitySet, InvitationParticipantInfo, JoinMeetingIdMeetingInfo,
    MediaConfig, MeetingInfo, ParticipantInfo, RequestError, Scenario, builders,
    check_callback_uri, create_call_problems, is_e164, is_loopback_host, validate_create_call,
};

/// A valid service-hosted request of each non-app-hosted scenario.
fn service(scenario: Scenario) -> signaling::Call {
    let call = scenario.seed_example(None);
    assert_eq!(validate_create_call(&call), Ok(()), "{scenario}");
    call
}

fn user(n: usize) -> Identity {
    Identity::new(
        format!("00000000-0000-0000-0000-00000000000{n}"),
        format!("user{n}"),
    )
}

fn group_of(n: usize) -> signaling::Call {
    builders::group_call(
        "https://bot.contoso.com/callback",
        Identity::new("dd3885da-f9ab-486b-bfae-85de3d445555", "TestBot"),
        (0..n).map(user),
        MediaConfig::service_hosted(),
    )
    .build()
}

#[test]
fn service_hosted_seed_examples_are_valid() {
    for scenario in Scenario::ALL.into_iter().filter(|s| !s.is_app_hosted()) {
        service(scenario);
    }
}

#[test]
fn group_calls_have_at_most_five_targets() {
    assert_eq!(validate_create_call(&group_of(5)), Ok(()));
    let err = validate_create_call(&group_of(6)).expect_err("6 targets");
    assert_eq!(err, RequestError::TooManyTargets { count: 6, max: 5 });
    assert_eq!(err.path(), "targets");
    assert!(err.to_string().starts_with("targets: 6 targets"), "{err}");
}

#[test]
fn pstn_needs_an_application_instance_source() {
    service(Scenario::PstnService);
    let mut call = Scenario::PstnService.seed_example(None);
    call.source = Field::Value(ParticipantInfo::new(IdentitySet::application(
        Identity::new("2891555a-92ff-42e6-80fa-6e1300c6b5c6", "Calling Bot"),
    )));
    let err = validate_create_call(&call).expect_err("application source");
    assert_eq!(err.path(), "source.identity.applicationInstance");
    assert!(
        err.to_string().contains("targets[0].identity.phone"),
        "{err}"
    );

    // No source at all: same.
    call.source = Field::Absent;
    assert!(matches!(
        validate_create_call(&call),
        Err(RequestError::PstnNeedsApplicationInstance { .. })
    ));
}

#[test]
fn pstn_numbers_are_e164() {
    for good in ["+12345678901", "+1", "+123456789012345"] {
        assert!(is_e164(good), "{good}");
    }
    for bad in [
        "12345678901",
        "+",
        "+0123",
        "+1234567890123456",
        "+1 234",
        "+1-234",
        "",
        "+١٢٣",
    ] {
        assert!(!is_e164(bad), "{bad}");
    }
    let mut call = Scenario::PstnService.seed_example(None);
    let target = InvitationParticipantInfo::new(IdentitySet::phone("+0049301234"));
    call.targets = Field::Value(vec![target]);
    let err = validate_create_call(&call).expect_err("bad number");
    assert_eq!(
        err,
        RequestError::InvalidPhoneNumber {
            path: "targets[0].identity.phone.id".into(),
            number: "+0049301234".into()
        }
    );
    assert_eq!(err.path(), "targets[0].identity.phone.id");
}

#[test]
fn organizer_meeting_joins_need_chat_info() {
    service(Scenario::MeetingService);
    let mut call = Scenario::MeetingService.seed_example(None);
    call.chat_info = Field::Absent;
    let err = validate_create_call(&call).expect_err("no chatInfo");
    assert_eq!(err, RequestError::MissingChatInfo);
    assert_eq!(err.path(), "chatInfo");

    let mut call = Scenario::ChannelMeeting.seed_example(None);
    call.chat_info = Field::Value(ChatInfo {
        message_id: Field::Null,
        ..ChatInfo::new("19:cbee7c1c860e465f8258e3cebf7bee0d@thread.skype", "x")
    });
    let err = validate_create_call(&call).expect_err("no messageId");
    assert_eq!(err.path(), "chatInfo.messageId");
}

#[test]
fn guest_joins_need_a_guest_source() {
    service(Scenario::ChannelMeetingGuest);

    // Guest without a display name.
    let mut call = Scenario::ChannelMeetingGuest.seed_example(None);
    let guest = call
        .source
        .value_mut()
        .and_then(|s| s.identity.value_mut())
        .and_then(|i| i.guest.value_mut())
        .expect("guest");
    guest.display_name = Field::Absent;
    let err = validate_create_call(&call).expect_err("no display name");
    assert_eq!(err.path(), "source.identity.guest.displayName");

    // Guest next to another identity.
    let mut call = Scenario::ChannelMeetingGuest.seed_example(None);
    if let Some(ids) = call.source.value_mut().and_then(|s| s.identity.value_mut()) {
        ids.application = Field::Value(Identity::new("2891555a", "Calling Bot"));
    }
    let err = validate_create_call(&call).expect_err("guest + application");
    assert_eq!(
        err,
        RequestError::GuestWithOtherIdentity {
            other: "application"
        }
    );
    assert_eq!(err.path(), "source.identity.application");

    // Guest outside a meeting.
    let call = builders::p2p_voip(
        "https://bot.contoso.com/callback",
        user(1),
        MediaConfig::service_hosted(),
    )
    .source(ParticipantInfo::new(IdentitySet::guest(Identity::new(
        "g", "Guest",
    ))))
    .build();
    assert_eq!(
        validate_create_call(&call),
        Err(RequestError::GuestOutsideMeeting)
    );
}

#[test]
fn app_hosted_media_needs_a_blob_that_is_not_the_placeholder() {
    for scenario in Scenario::ALL.into_iter().filter(|s| s.is_app_hosted()) {
        let err = validate_create_call(&scenario.seed_example(None)).expect_err("placeholder");
        assert_eq!(err, RequestError::PlaceholderBlob, "{scenario}");
        assert_eq!(err.path(), "mediaConfig.blob");
        assert!(err.to_string().contains("placeholder"), "{err}");
    }
    let err = validate_create_call(&Scenario::P2pVoipApp.seed_example(Some("not json".into())))
        .expect_err("garbage");
    assert!(matches!(err, RequestError::InvalidBlob { .. }), "{err:?}");
    assert!(err.to_string().starts_with("mediaConfig.blob: "), "{err}");

    let mut call = Scenario::P2pVoipApp.seed_example(None);
    if let Some(MediaConfig::AppHosted(m)) = call.media_config.value_mut() {
        m.blob = Field::Null;
    }
    assert_eq!(validate_create_call(&call), Err(RequestError::MissingBlob));
    // The passing case, with a real blob, is in tests/blob.rs.
}

#[test]
fn media_config_is_required_and_known() {
    let mut call = service(Scenario::P2pVoipService);
    call.media_config = Field::Absent;
    assert_eq!(
        validate_create_call(&call),
        Err(RequestError::MissingMediaConfig)
    );
    call.media_config = Field::Value(MediaConfig::Other(
        serde_json::json!({"@odata.type": "#microsoft.graph.fancyMediaConfig"}),
    ));
    let err = validate_create_call(&call).expect_err("unknown");
    assert!(err.to_string().contains("fancyMediaConfig"), "{err}");
}

#[test]
fn callback_uri_is_https_or_loopback_http() {
    for ok in [
        "https://bot.contoso.com/callback",
        "HTTPS://bot.contoso.com:8443/api/calls?x=1",
        "http://127.0.0.1:8080/callback",
        "http://127.255.0.9/cb",
        "http://localhost/callback",
        "http://LocalHost:3978/api/calls",
        "http://[::1]:8080/callback",
        "http://user@127.0.0.1/cb",
    ] {
        assert_eq!(check_callback_uri(ok), Ok(()), "{ok}");
    }
    for insecure in [
        "http://bot.contoso.com/callback",
        "http://128.0.0.1/cb",
        "http://[::2]/cb",
        "http://localhost.evil.com/cb",
        "http://127.0.0.1.evil.com/cb",
        "ftp://bot.contoso.com/cb",
        "http://127.0.0.1@evil.com/cb",
    ] {
        assert!(
            matches!(
                check_callback_uri(insecure),
                Err(RequestError::InsecureCallbackUri { .. })
            ),
            "{insecure}"
        );
    }
    for invalid in [
        "bot.contoso.com/callback",
        "https:///callback",
        "https://a b/c",
        "http://[::1/cb",
    ] {
        assert!(
            matches!(
                check_callback_uri(invalid),
                Err(RequestError::InvalidCallbackUri { .. })
            ),
            "{invalid}"
        );
    }
    assert!(
        is_loopback_host("127.0.0.1") && is_loopback_host("::1") && !is_loopback_host("10.0.0.1")
    );

    let mut call = service(Scenario::P2pVoipService);
    call.callback_uri = Field::Value("http://bot.contoso.com/callback".into());
    let err = validate_create_call(&call).expect_err("http");
    assert_eq!(err.path(), "callbackUri");
    assert!(err.to_string().contains("must be https"), "{err}");
    call.callback_uri = Field::Absent;
    assert_eq!(
        validate_create_call(&call),
        Err(RequestError::MissingCallbackUri)
    );
}

#[test]
fn callback_uri_host_and_port_are_checked() {
    let long_label = "a".repeat(63);
    // 3 labels of 63 and one of 61: 253 characters, the DNS limit.
    let longest = format!("{long_label}.{long_label}.{long_label}.{}", "b".repeat(61));
    assert_eq!(longest.len(), 253);
    for ok in [
        "https://bot.contoso.com:1/cb".to_owned(),
        "https://bot.contoso.com:65535/cb".to_owned(),
        "https://bot.contoso.com./cb".to_owned(),
        "https://x-1.y2.example/cb".to_owned(),
        "https://10.1.2.3:443/cb".to_owned(),
        "https://[2001:db8::1]:8443/cb".to_owned(),
        "https://[2001:db8::1]/cb".to_owned(),
        format!("https://{longest}/cb"),
        format!("https://{longest}./cb"),
    ] {
        assert_eq!(check_callback_uri(&ok), Ok(()), "{ok}");
    }
    let huge_host = format!("https://{}/cb", "h".repeat(3 << 20));
    let too_long = format!("https://{longest}b/cb");
    let long_label = format!("https://{long_label}a.example/cb");
    for (bad, why) in [
        ("https://h:99999/x", "port"),
        ("https://h:0/x", "port"),
        ("https://h:65536/x", "port"),
        ("https://h:-1/x", "port"),
        ("https://h:443x/x", "port"),
        ("https://h:/x", "port"),
        ("https://h:000000443/x", "port"),
        ("https://[::1]:99999/x", "port"),
        ("https://[::1]x/cb", "after the ']'"),
        ("https://[not-v6]/cb", "IPv6"),
        ("https://[10.0.0.1]/cb", "IPv6"),
        ("https://bot_1.contoso.com/cb", "DNS name"),
        ("https://-bot.contoso.com/cb", "DNS name"),
        ("https://bot-.contoso.com/cb", "DNS name"),
        ("https://bot..contoso.com/cb", "DNS name"),
        ("https://bot.contoso.com../cb", "DNS name"),
        ("https://b\u{f6}t.example/cb", "DNS name"),
        ("https://bot%2econtoso.com/cb", "DNS name"),
        ("https://999.1.2.3/cb", "DNS name"),
        ("https://1.2.3/cb", "DNS name"),
        ("https://a:b:c/cb", "port"),
        (huge_host.as_str(), "longer than 253"),
        (too_long.as_str(), "longer than 253"),
        (long_label.as_str(), "DNS name"),
    ] {
        match check_callback_uri(bad) {
            Err(RequestError::InvalidCallbackUri { reason, .. }) => {
                assert!(reason.contains(why), "{bad:.80}: {reason}");
            }
            other => panic!("{bad:.80}: {other:?}"),
        }
    }
    // Through the request validation: the path names the field.
    let mut call = service(Scenario::P2pVoipService);
    call.callback_uri = Field::Value("https://bot.contoso.com:99999/callback".into());
    let err = validate_create_call(&call).expect_err("port");
    assert_eq!(err.path(), "callbackUri");
    assert!(err.to_string().contains("port"), "{err}");
}

#[test]
fn requested_modalities_are_not_empty() {
    let mut call = service(Scenario::GroupService);
    call.requested_modalities = Field::Value(vec![]);
    let err = validate_create_call(&call).expect_err("empty");
    assert_eq!(err, RequestError::NoModalities);
    assert_eq!(err.path(), "requestedModalities");
    call.requested_modalities = Field::Absent;
    assert_eq!(validate_create_call(&call), Err(RequestError::NoModalities));
}

#[test]
fn targets_are_required_unless_joining_a_meeting() {
    // Meeting joins have no targets and pass.
    let meeting = service(Scenario::MeetingService);
    assert!(meeting.targets.is_absent());

    let mut call = service(Scenario::P2pVoipService);
    call.targets = Field::Value(vec![]);
    let err = validate_create_call(&call).expect_err("no targets");
    assert_eq!(err, RequestError::MissingTargets);
    assert_eq!(err.path(), "targets");

    // A join by meeting id needs no chatInfo and no targets.
    let mut call = service(Scenario::MeetingService);
    call.chat_info = Field::Absent;
    call.meeting_info = Field::Value(MeetingInfo::JoinMeetingId(
        serde_json::from_value(serde_json::json!({
            "@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo",
            "joinMeetingId": "1234567890",
            "passcode": null
        }))
        .expect("parse"),
    ));
    assert_eq!(validate_create_call(&call), Ok(()));
}

#[test]
fn all_problems_are_reported_together() {
    let mut call = Scenario::PstnApp.seed_example(None);
    call.callback_uri = Field::Value("http://bot.contoso.com/cb".into());
    call.source = Field::Absent;
    call.requested_modalities = Field::Value(vec![]);
    let paths: Vec<String> = create_call_problems(&call)
        .iter()
        .map(RequestError::path)
        .collect();
    assert_eq!(
        paths,
        [
            "callbackUri",
            "requestedModalities",
            "mediaConfig.blob",
            "source.identity.applicationInstance"
        ]
    );
}

#[test]
fn the_document_must_be_a_call() {
    let mut call = service(Scenario::P2pVoipService);
    // The seed writes #microsoft.graph.call; it is also read without '#' and in
    // another case, as every @odata.type in this crate.
    for ok in [
        "#microsoft.graph.call",
        "microsoft.graph.call",
        "#Microsoft.Graph.CALL",
    ] {
        call.odata_type = Field::Value(ok.into());
        assert_eq!(validate_create_call(&call), Ok(()), "{ok}");
    }
    call.odata_type = Field::Absent;
    assert_eq!(validate_create_call(&call), Ok(()));
    for wrong in [
        "#microsoft.graph.user",
        "#microsoft.graph.callRoute",
        "#microsoft.graph.cal\u{e9}",
        "",
    ] {
        call.odata_type = Field::Value(wrong.into());
        let err = validate_create_call(&call).expect_err(wrong);
        assert_eq!(err.path(), "@odata.type");
        assert!(err.to_string().contains("is not a call"), "{err}");
    }
    // A hostile type is quoted as a bounded, escaped excerpt.
    call.odata_type = Field::Value(format!("\u{1b}[2J{}", "x".repeat(1_000_000)));
    let err = validate_create_call(&call)
        .expect_err("hostile")
        .to_string();
    assert!(err.len() < 300 && !err.contains('\u{1b}'), "{err}");
}

#[test]
fn joins_by_meeting_id_need_a_join_id_of_digits_and_no_empty_passcode() {
    let mut call = service(Scenario::MeetingIdService);
    // The docs' example 8: no passcode (null), and leaving it out, are both fine.
    let with = |id: &str, passcode: Field<String>| {
        let mut m = JoinMeetingIdMeetingInfo::new(id, None);
        m.passcode = passcode;
        Field::Value(MeetingInfo::JoinMeetingId(m))
    };
    for passcode in [Field::Null, Field::Absent, Field::Value("psw123".into())] {
        call.meeting_info = with("375029698220440", passcode);
        assert_eq!(validate_create_call(&call), Ok(()));
    }
    for bad in ["", "375 029 698", "12a4", "\u{1b}[2J", &"9".repeat(33)] {
        call.meeting_info = with(bad, Field::Null);
        let err = validate_create_call(&call).expect_err(bad);
        assert_eq!(err.path(), "meetingInfo.joinMeetingId", "{bad}");
        assert!(!err.to_string().contains('\u{1b}'), "{err}");
    }
    call.meeting_info = with("", Field::Null);
    assert!(
        validate_create_call(&call)
            .expect_err("missing")
            .to_string()
            .starts_with("meetingInfo.joinMeetingId: missing is not a meeting join id"),
    );
    call.meeting_info = with("1234567", Field::Value(" ".into()));
    assert_eq!(
        validate_create_call(&call),
        Err(RequestError::EmptyPasscode)
    );
    // No chatInfo, no organizer, no targets needed; it is a meeting join.
    let call = service(Scenario::MeetingIdService);
    assert!(call.chat_info.is_absent() && call.targets().is_empty());
    assert_eq!(call.kind(), signaling::CallKind::MeetingJoin);
}
