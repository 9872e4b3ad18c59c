//! Arbitrary JSON values and strings fed to the parsers never panic, and whatever
//! parses re-serializes to the value it came from.

use proptest::prelude::*;
use serde_json::{Map, Value};
use signaling::{
    Call, CommsNotifications, MediaConfig, MeetingInfo, ResourceData, ResourceItem, classify,
    summarize, validate_create_call,
};

/// Keys the model knows, so generated objects hit typed paths, not only `extra`.
const KEYS: &[&str] = &[
    "@odata.type",
    "state",
    "direction",
    "callbackUri",
    "targets",
    "source",
    "identity",
    "user",
    "phone",
    "guest",
    "applicationInstance",
    "id",
    "displayName",
    "mediaConfig",
    "blob",
    "preFetchMedia",
    "meetingInfo",
    "chatInfo",
    "threadId",
    "messageId",
    "organizer",
    "requestedModalities",
    "resultInfo",
    "code",
    "subcode",
    "value",
    "changeType",
    "resourceUrl",
    "resourceData",
    "mediaStreams",
    "isInLobby",
    "x",
];

const TYPES: &[&str] = &[
    "#microsoft.graph.call",
    "#microsoft.graph.commsNotifications",
    "#microsoft.graph.commsNotification",
    "#microsoft.graph.participant",
    "#microsoft.graph.contentSharingSession",
    "#microsoft.graph.appHostedMediaConfig",
    "#microsoft.graph.serviceHostedMediaConfig",
    "#microsoft.graph.organizerMeetingInfo",
    "#microsoft.graph.joinMeetingIdMeetingInfo",
    "#microsoft.graph.somethingElse",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        proptest::sample::select(TYPES).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(Value::from("+12345678901")),
        Just(Value::from("<Media Session Configuration>")),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                |kvs| {
                    let mut m = Map::new();
                    for (k, v) in kvs {
                        m.insert(k.to_owned(), v);
                    }
                    Value::Object(m)
                }
            ),
        ]
    })
}

fn check(v: &Value) {
    let _ = classify(v);
    let _ = summarize(v);
    if let Ok(call) = serde_json::from_value::<Call>(v.clone()) {
        assert_eq!(&serde_json::to_value(&call).expect("ser"), v);
        let _ = validate_create_call(&call);
        let _ = call.required_permissions().to_string();
        let _ = call.summary();
    }
    if let Ok(n) = serde_json::from_value::<CommsNotifications>(v.clone()) {
        assert_eq!(&serde_json::to_value(&n).expect("ser"), v);
        let _ = n.summary();
        for note in &n.value {
            let _ = note.call_id();
        }
    }
    for ok in [
        serde_json::from_value::<MediaConfig>(v.clone()).map(serde_json::to_value),
        serde_json::from_value::<MeetingInfo>(v.clone()).map(serde_json::to_value),
        serde_json::from_value::<ResourceData>(v.clone()).map(serde_json::to_value),
        serde_json::from_value::<ResourceItem>(v.clone()).map(serde_json::to_value),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(&ok.expect("ser"), v);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_values_never_panic(v in json()) {
        check(&v);
    }

    #[test]
    fn arbitrary_call_shaped_values_never_panic(
        fields in proptest::collection::vec((proptest::sample::select(KEYS), json()), 0..10)
    ) {
        let mut m = Map::new();
        m.insert("@odata.type".into(), Value::from("#microsoft.graph.call"));
        for (k, v) in fields {
            m.insert(k.to_owned(), v);
        }
        check(&Value::Object(m));
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,64}") {
        let _ = serde_json::from_str::<Call>(&s);
        let _ = serde_json::from_str::<CommsNotifications>(&s);
        let _ = Call::from_json(&s);
        let _ = CommsNotifications::from_json(&s);
        let _ = signaling::check_callback_uri(&s);
        let _ = signaling::is_e164(&s);
        let _ = s.parse::<signaling::Scenario>();
        let _ = s.parse::<signaling::Permission>();
    }

    #[test]
    fn mutated_fixtures_never_panic(idx in 0usize..24, cut in 0usize..4000, byte in any::<u8>()) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut names: Vec<_> = std::fs::read_dir(&dir).expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        let mut bytes = std::fs::read(&names[idx % names.len()]).expect("read");
        let at = cut % bytes.len();
        bytes[at] = byte;
        let text = String::from_utf8_lossy(&bytes);
        let _ = serde_json::from_str::<Call>(&text);
        let _ = serde_json::from_str::<CommsNotifications>(&text);
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            check(&v);
        }
    }
}
