//! Every JSON document of the seed page: parse, re-serialize equal, classify, and build
//! each scenario's request from the seed's values.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use signaling::{
    Call, CallDirection, CallState, ChangeType, CommsNotifications, DocumentKind, Field,
    MediaConfig, MediaDirection, MeetingInfo, Modality, ResourceData, ResourceItem, Scenario,
    classify, summarize,
};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.ends_with(".blob.json"))
        .collect();
    names.sort();
    names
}

fn load(name: &str) -> Value {
    let text = fs::read_to_string(fixtures_dir().join(name)).expect("read fixture");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn load_call(name: &str) -> Call {
    serde_json::from_value(load(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn load_notifications(name: &str) -> CommsNotifications {
    serde_json::from_value(load(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn there_are_24_seed_documents_plus_the_blob_and_two_joins_by_meeting_id() {
    // 11 and 12 are not on the seed page (see fixtures/README.md).
    assert_eq!(fixture_names().len(), 24 + 2, "{:?}", fixture_names());
    assert!(
        fixtures_dir()
            .join("02_media_session_configuration.blob.json")
            .exists()
    );
}

#[test]
fn every_fixture_round_trips_equal_as_json() {
    for name in fixture_names() {
        let v = load(&name);
        let back = if name.contains("notification") {
            let n: CommsNotifications =
                serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            serde_json::to_value(&n).expect("serialize")
        } else {
            let c: Call =
                serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            serde_json::to_value(&c).expect("serialize")
        };
        assert_eq!(back, v, "{name} did not round-trip");
        // And through text, too.
        let text = serde_json::to_string(&back).expect("to text");
        let again: Value = serde_json::from_str(&text).expect("from text");
        assert_eq!(again, v, "{name} did not round-trip through text");
    }
}

#[test]
fn every_fixture_is_classified() {
    for name in fixture_names() {
        let expected = if name.contains("notification") {
            DocumentKind::Notifications
        } else if name.contains(".response") {
            DocumentKind::Call
        } else {
            DocumentKind::CreateCallRequest
        };
        let v = load(&name);
        assert_eq!(classify(&v), expected, "{name}");
        let summary = summarize(&v);
        assert!(!summary.contains("does not fit"), "{name}: {summary}");
    }
}

#[test]
fn responses_are_typed() {
    let c = load_call("01_p2p_voip_service_hosted.response.json");
    assert_eq!(c.state, Field::Value(CallState::Establishing));
    assert_eq!(c.direction, Field::Value(CallDirection::Outgoing));
    assert_eq!(
        c.id.value().map(String::as_str),
        Some("2e1a0b00-2db4-4022-9570-243709c565ab")
    );
    assert!(c.result_info.is_null());
    assert!(c.subject.is_null());
    assert_eq!(c.call_routes, Field::Value(vec![]));
    assert!(c.extra.contains_key("@odata.context"));
    let source = c.source.value().expect("source");
    assert!(source.country_code.is_null());
    assert!(source.endpoint_type.is_null());
    let Some(MediaConfig::ServiceHosted(m)) = c.media_config.value() else {
        panic!("service hosted expected");
    };
    assert_eq!(m.pre_fetch_media.value().map(Vec::len), Some(2));

    let c = load_call("02_p2p_voip_app_hosted.response.json");
    let Some(MediaConfig::AppHosted(m)) = c.media_config.value() else {
        panic!("app hosted expected");
    };
    assert_eq!(m.blob_text(), Some("<Media Session Configuration>"));
    // Ex. 2's source has region and languageId null but no countryCode at all.
    let source = c.source.value().expect("source");
    assert!(source.region.is_null() && source.country_code.is_absent());

    let c = load_call("05_join_scheduled_meeting_service_hosted.response.json");
    assert_eq!(c.targets(), &[]);
    assert!(
        c.chat_info
            .value()
            .expect("chat")
            .reply_chain_message_id
            .is_null()
    );
    let Some(MeetingInfo::Organizer(m)) = c.meeting_info.value() else {
        panic!("organizer meeting info expected");
    };
    assert_eq!(m.allow_conversation_without_host, Field::Value(true));

    let c = load_call("09_p2p_pstn_service_hosted.response.json");
    let phone = c.targets()[0]
        .identity
        .value()
        .expect("identity")
        .phone
        .value();
    assert_eq!(
        phone.and_then(|p| p.id.value()).map(String::as_str),
        Some("+12345678901")
    );
    assert!(c.targets()[0].replaces_call_id.is_null());
}

#[test]
fn notifications_are_typed() {
    let n = load_notifications("01_notification_established.json");
    assert_eq!(n.value.len(), 1);
    let note = &n.value[0];
    assert_eq!(note.change_type, Field::Value(ChangeType::Updated));
    assert_eq!(note.call_id(), Some("2e1a0b00-b3c5-4b0f-99b3-c133bc1e6116"));
    let Some(ResourceData::One(ResourceItem::Call(call))) = note.resource_data.value() else {
        panic!("one call expected");
    };
    assert_eq!(call.state, Field::Value(CallState::Established));

    for (name, change) in [
        (
            "01_notification_content_sharing_started.json",
            ChangeType::Created,
        ),
        (
            "01_notification_content_sharing_updated.json",
            ChangeType::Updated,
        ),
        (
            "01_notification_content_sharing_ended.json",
            ChangeType::Deleted,
        ),
    ] {
        let n = load_notifications(name);
        let note = &n.value[0];
        assert_eq!(note.change_type, Field::Value(change), "{name}");
        assert!(note.callback_uri.is_absent(), "{name}");
        assert_eq!(note.call_id(), Some("421f4c00-4436-4c3a-9d9a-c4924cf98e67"));
        let Some(ResourceData::Many(items)) = note.resource_data.value() else {
            panic!("{name}: array expected");
        };
        assert!(
            matches!(items[0], ResourceItem::ContentSharingSession(_)),
            "{name}"
        );
    }

    let n = load_notifications("05_notification_roster.json");
    let items = n.value[0].items();
    assert_eq!(items.len(), 2);
    let ResourceItem::Participant(john) = &items[0] else {
        panic!("participant expected");
    };
    assert_eq!(john.is_muted, Field::Value(true));
    let streams = john.media_streams.value().expect("streams");
    assert_eq!(streams.len(), 3);
    assert_eq!(
        streams[2].media_type,
        Field::Value(Modality::VideoBasedScreenSharing)
    );
    assert_eq!(
        streams[1].direction,
        Field::Value(MediaDirection::ReceiveOnly)
    );
    assert_eq!(
        john.info
            .value()
            .and_then(|i| i.language_id.value())
            .map(String::as_str),
        Some("en-US")
    );

    let n = load_notifications("08_notification_roster_lobby.json");
    let ResourceItem::Participant(guest) = &n.value[0].items()[0] else {
        panic!("participant expected");
    };
    assert_eq!(guest.is_in_lobby, Field::Value(true));
    let summary = n.summary();
    assert!(
        summary.contains("Guest User (guest)") && summary.contains("in lobby"),
        "{summary}"
    );

    let n = load_notifications("05_notification_establishing.json");
    let Some(ResourceItem::Call(call)) = n.value[0].items().first() else {
        panic!("call expected");
    };
    assert!(matches!(
        call.meeting_info.value(),
        Some(MeetingInfo::Organizer(_))
    ));
}

#[test]
fn each_scenario_builds_the_seed_request() {
    for scenario in Scenario::ALL {
        let name = format!("{}.request.json", scenario.fixture_stem());
        let expected = load(&name);
        let built = scenario.seed_example(None);
        let got = serde_json::to_value(&built).expect("serialize");
        assert_eq!(
            got,
            expected,
            "{scenario} differs from {name}:\n{}",
            serde_json::to_string_pretty(&got).expect("pretty")
        );
        // The built request equals the parsed fixture as a typed value, too.
        assert_eq!(built, load_call(&name), "{scenario}");
        assert_eq!(
            scenario.example_number() as usize,
            Scenario::ALL
                .iter()
                .position(|s| *s == scenario)
                .expect("in ALL")
                + 1
        );
    }
}

#[test]
fn seed_example_takes_the_blob_for_app_hosted_scenarios_only() {
    for scenario in Scenario::ALL {
        let call = scenario.seed_example(Some("{\"mpUri\":\"x\"}".to_owned()));
        match call.media_config.value() {
            Some(MediaConfig::AppHosted(m)) => {
                assert!(scenario.is_app_hosted(), "{scenario}");
                assert_eq!(m.blob_text(), Some("{\"mpUri\":\"x\"}"));
            }
            Some(MediaConfig::ServiceHosted(_)) => assert!(!scenario.is_app_hosted()),
            other => panic!("{scenario}: {other:?}"),
        }
    }
}

#[test]
fn scenario_names_parse_back() {
    for scenario in Scenario::ALL {
        assert_eq!(scenario.name().parse::<Scenario>(), Ok(scenario));
        assert_eq!(scenario.to_string(), scenario.name());
    }
    let err = "p2p".parse::<Scenario>().expect_err("unknown");
    assert!(err.to_string().contains("p2p-voip-service"), "{err}");
    assert_eq!(
        Scenario::names(),
        [
            "p2p-voip-service",
            "p2p-voip-app",
            "group-service",
            "group-app",
            "meeting-service",
            "meeting-app",
            "channel-meeting",
            "channel-meeting-guest",
            "pstn-service",
            "pstn-app",
            "meeting-id-service",
            "meeting-id-app"
        ]
    );
}

#[test]
fn absent_odata_types_stay_absent() {
    let mut v = load("01_p2p_voip_service_hosted.response.json");
    // Strip every @odata.type; the documents must still parse, select the same
    // variants where the properties say so, and round-trip.
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.shift_remove("@odata.type");
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    let c: Call = serde_json::from_value(v.clone()).expect("parse");
    assert!(c.odata_type.is_absent());
    assert!(matches!(
        c.media_config.value(),
        Some(MediaConfig::ServiceHosted(_))
    ));
    assert_eq!(serde_json::to_value(&c).expect("ser"), v);
    assert_eq!(classify(&v), DocumentKind::Call);

    let mut v = load("05_notification_roster.json");
    strip(&mut v);
    assert_eq!(classify(&v), DocumentKind::Notifications);
    let n: CommsNotifications = serde_json::from_value(v.clone()).expect("parse");
    // Untyped resource items are kept raw.
    assert!(matches!(n.value[0].items()[0], ResourceItem::Other(_)));
    assert_eq!(serde_json::to_value(&n).expect("ser"), v);
}
