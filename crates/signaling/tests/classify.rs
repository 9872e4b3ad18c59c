//! `classify` and `summarize` on documents beyond the seed: unmodelled properties,
//! unknown types and values, missing `@odata.type`, non-objects.

use serde_json::{Value, json};
use signaling::{
    Call, CallState, ChangeType, Code, CommsNotifications, DocumentKind, Field, ResourceItem,
    Scenario, classify, summarize,
};

/// A call-terminated notification as the service sends them in the field: code as a
/// string, subcode as a number, properties this crate does not model.
fn terminated() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [{
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "deleted",
            "resourceUrl": "/communications/calls/491f0b00-ffff-4bc9-a43e-b226498ec22a",
            "callbackUri": "https://bot.contoso.com/callback",
            "resourceData": {
                "@odata.type": "#microsoft.graph.call",
                "state": "terminated",
                "resultInfo": {
                    "@odata.type": "#microsoft.graph.resultInfo",
                    "code": "410",
                    "subcode": 301005,
                    "message": "Client Media Error"
                },
                "callChainId": "b3e4a2d0-0000-4000-8000-000000000000",
                "newServiceProperty": {"nested": [1, 2, 3]},
                "id": "491f0b00-ffff-4bc9-a43e-b226498ec22a"
            },
            "sequenceNumber": 7
        }],
        "@odata.context": "whatever"
    })
}

#[test]
fn unmodelled_properties_and_loose_codes_round_trip() {
    let v = terminated();
    assert_eq!(classify(&v), DocumentKind::Notifications);
    let n: CommsNotifications = serde_json::from_value(v.clone()).expect("parse");
    assert_eq!(serde_json::to_value(&n).expect("ser"), v);
    assert!(n.extra.contains_key("@odata.context"));
    let note = &n.value[0];
    assert_eq!(note.change_type, Field::Value(ChangeType::Deleted));
    assert!(note.extra.contains_key("sequenceNumber"));
    let ResourceItem::Call(call) = &note.items()[0] else {
        panic!("call expected");
    };
    let result = call.result_info.value().expect("resultInfo");
    assert_eq!(result.code, Field::Value(Code::Text("410".into())));
    assert_eq!(result.code.value().and_then(Code::as_i64), Some(410));
    assert_eq!(result.subcode.value().and_then(Code::as_i64), Some(301005));
    assert!(call.extra.contains_key("newServiceProperty"));

    let summary = summarize(&v);
    assert!(summary.contains("deleted"), "{summary}");
    assert!(summary.contains("[terminated]"), "{summary}");
}

#[test]
fn unknown_values_and_types_are_kept() {
    let v = json!({
        "value": [{
            "changeType": "teleported",
            "resourceUrl": "/communications/calls/abc/audioRoutingGroups",
            "resourceData": [
                {"@odata.type": "#microsoft.graph.audioRoutingGroup", "id": "g1"},
                {"@odata.type": "#microsoft.graph.call", "state": "parked", "id": "abc"},
                "a bare string",
                null
            ]
        }]
    });
    assert_eq!(classify(&v), DocumentKind::Notifications);
    let n: CommsNotifications = serde_json::from_value(v.clone()).expect("parse");
    assert_eq!(serde_json::to_value(&n).expect("ser"), v);
    let note = &n.value[0];
    assert_eq!(
        note.change_type,
        Field::Value(ChangeType::Other("teleported".into()))
    );
    assert_eq!(note.call_id(), Some("abc"));
    let items = note.items();
    assert!(matches!(&items[0], ResourceItem::Other(_)));
    assert_eq!(items[0].type_name(), "audioRoutingGroup");
    let ResourceItem::Call(call) = &items[1] else {
        panic!("call expected");
    };
    assert_eq!(call.state, Field::Value(CallState::Other("parked".into())));
    assert!(matches!(&items[2], ResourceItem::Other(Value::String(_))));
    let summary = summarize(&v);
    assert!(
        summary.contains("audioRoutingGroup (not modelled)"),
        "{summary}"
    );
}

#[test]
fn calls_and_requests_are_told_apart() {
    let request = serde_json::to_value(Scenario::P2pVoipApp.seed_example(None)).expect("ser");
    assert_eq!(classify(&request), DocumentKind::CreateCallRequest);
    let summary = summarize(&request);
    assert!(summary.starts_with("create-call request"), "{summary}");
    assert!(summary.contains("p2p"), "{summary}");
    assert!(summary.contains("to John (user)"), "{summary}");
    assert!(summary.contains("media app-hosted"), "{summary}");
    assert!(
        summary
            .contains("needs Calls.Initiate.All, Calls.AccessMedia.All or Calls.AccessMedia.Chat"),
        "{summary}"
    );

    // Untyped: recognised by its properties.
    let untyped = json!({"callbackUri": "https://x/cb", "targets": []});
    assert_eq!(classify(&untyped), DocumentKind::CreateCallRequest);
    let untyped_call = json!({"callbackUri": "https://x/cb", "state": "established"});
    assert_eq!(classify(&untyped_call), DocumentKind::Call);
    // A null id does not make a call.
    let null_id = json!({"@odata.type": "#microsoft.graph.call", "id": null});
    assert_eq!(classify(&null_id), DocumentKind::CreateCallRequest);
    // Liberal about the type's spelling.
    let loose = json!({"@odata.type": "microsoft.graph.Call", "id": "x"});
    assert_eq!(classify(&loose), DocumentKind::Call);

    let meeting =
        serde_json::to_value(Scenario::ChannelMeetingGuest.seed_example(None)).expect("ser");
    let summary = summarize(&meeting);
    assert!(
        summary.contains("guest meeting join organized by Bob (user)"),
        "{summary}"
    );
    assert!(summary.contains("from Guest User (guest)"), "{summary}");
}

#[test]
fn other_documents_are_unknown() {
    for v in [
        json!(null),
        json!(3),
        json!("text"),
        json!([1, 2]),
        json!({}),
        json!({"@odata.type": "#microsoft.graph.user", "id": "x"}),
        json!({"value": []}),
        json!({"value": [{"id": 1}]}),
        // A media session configuration is media-blob's business.
        serde_json::from_str::<Value>(include_str!(
            "fixtures/02_media_session_configuration.blob.json"
        ))
        .expect("blob fixture"),
    ] {
        assert_eq!(classify(&v), DocumentKind::Unknown, "{v}");
        let summary = summarize(&v);
        assert!(summary.starts_with("unknown JSON"), "{summary}");
    }
}

#[test]
fn documents_that_do_not_fit_say_so() {
    let v = json!({"@odata.type": "#microsoft.graph.call", "id": "x", "state": 42});
    assert_eq!(classify(&v), DocumentKind::Call);
    assert!(serde_json::from_value::<Call>(v.clone()).is_err());
    let summary = summarize(&v);
    assert!(
        summary.starts_with("call (does not fit the call model"),
        "{summary}"
    );
}
