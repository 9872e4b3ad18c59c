//! Property tests: every valid configuration round-trips through every form, and
//! no parser panics on arbitrary input.

use std::net::{Ipv4Addr, Ipv6Addr};

use media_blob::{AudioFormat, ContextList, KNOWN_FIELDS, MediaSessionConfig, MpUri};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value};
use uuid::Uuid;

const SEED_ESCAPED: &str = include_str!("fixtures/seed_blob_escaped.txt");

fn seed_json() -> String {
    let escaped = SEED_ESCAPED.trim_end_matches(['\r', '\n']);
    serde_json::from_str::<String>(&format!("\"{escaped}\"")).expect("fixture")
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn dns_name() -> impl Strategy<Value = String> {
    vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", 1..4)
        .prop_map(|labels| labels.join("."))
        .prop_filter("all-numeric names are IPv4 addresses", |h| {
            !h.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        })
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        dns_name(),
        any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| Ipv6Addr::from(s).to_string()),
    ]
}

fn mp_uri() -> impl Strategy<Value = MpUri> {
    (
        "[a-zA-Z][a-zA-Z0-9+.-]{0,8}",
        host(),
        1..=u16::MAX,
        "(/([a-zA-Z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2}){0,6}){1,3}",
    )
        .prop_map(|(scheme, host, port, path)| {
            MpUri::new(&scheme, &host, port, &path).expect("generated parts are valid")
        })
}

fn contexts() -> impl Strategy<Value = ContextList> {
    option::of(vec(option::weighted(0.8, uuid()), 0..4))
}

/// JSON values without floats (serde_json's default float parsing is not exact).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((".{0,6}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn extra_fields() -> impl Strategy<Value = Map<String, Value>> {
    vec(
        (
            ".{0,10}".prop_filter("unknown names only", |k| {
                !KNOWN_FIELDS.contains(&k.as_str())
            }),
            json_value(),
        ),
        0..4,
    )
    .prop_map(|kv| kv.into_iter().collect())
}

fn version() -> impl Strategy<Value = String> {
    "[^\\s\\p{Cc}]{1,12}"
}

prop_compose! {
    fn config()(
        uri in mp_uri(),
        call_id in option::of(uuid()),
        session in uuid(),
        lists in (contexts(), contexts(), contexts(), contexts(), contexts(), contexts()),
        format in prop_oneof![Just(AudioFormat::Pcm16K), Just(AudioFormat::Pcm44KStereo)],
        sinks in option::of(vec(json_value(), 0..3)),
        region in option::of(".{0,12}"),
        versions in (version(), version(), version()),
        extra in extra_fields(),
        first in uuid(),
    ) -> MediaSessionConfig {
        let mut c = MediaSessionConfig::builder(uri, Uuid::nil())
            .session_id(session)
            .audio_format(format)
            .versions(&versions.0, &versions.1, &versions.2)
            .region_affinity(region)
            .build();
        c.call_id = call_id;
        c.audio_render_contexts = lists.0;
        c.video_render_contexts = lists.1;
        c.audio_source_contexts = lists.2;
        c.video_source_contexts = lists.3;
        c.data_render_contexts = lists.4;
        c.data_source_contexts = lists.5;
        // A session needs an audio context (the port's rule, checked by every parser).
        if c.join_contexts() == (vec![], vec![]) {
            c.audio_source_contexts.get_or_insert_with(Vec::new).push(Some(first));
        }
        c.video_sink_encoding_formats = sinks;
        c.extra = extra;
        c
    }
}

/// Exercises every parser on one input; only panics matter.
fn feed_all_parsers(s: &str) {
    let _ = MediaSessionConfig::parse(s);
    let _ = MediaSessionConfig::from_embedded(s);
    let _ = MediaSessionConfig::from_value(&Value::String(s.to_owned()));
    if let Ok(v) = serde_json::from_str::<Value>(s) {
        let _ = MediaSessionConfig::from_value(&v);
        let _ = serde_json::from_value::<MediaSessionConfig>(v);
    }
    let _ = s.parse::<MpUri>();
    let _ = s.parse::<AudioFormat>();
    let _ = MpUri::quic(s, 1);
    let _ = MpUri::new(s, "h", 1, s);
}

proptest! {
    #[test]
    fn json_round_trip(c in config()) {
        let json = c.to_json();
        let back = MediaSessionConfig::parse(&json).expect("own output parses");
        prop_assert_eq!(&back, &c);
        prop_assert_eq!(back.to_json(), json);
    }

    #[test]
    fn embedded_round_trip(c in config()) {
        let embedded = c.to_embedded();
        prop_assert_eq!(&MediaSessionConfig::from_embedded(&embedded).expect("unembed"), &c);
        // The embedded form is a valid JSON string body holding exactly the JSON text.
        let doc: Value = serde_json::from_str(&format!("{{\"blob\":\"{embedded}\"}}"))
            .expect("embeds in a JSON document");
        let json = c.to_json();
        prop_assert_eq!(doc["blob"].as_str(), Some(json.as_str()));
        prop_assert_eq!(&MediaSessionConfig::from_value(&doc["blob"]).expect("string form"), &c);
    }

    #[test]
    fn value_and_serde_round_trip(c in config()) {
        prop_assert_eq!(&MediaSessionConfig::from_value(&c.to_value()).expect("object form"), &c);
        let via_serde: MediaSessionConfig =
            serde_json::from_str(&serde_json::to_string(&c).expect("ser")).expect("de");
        prop_assert_eq!(&via_serde, &c);
    }

    #[test]
    fn validate_requires_only_call_id_for_generated(c in config()) {
        prop_assert_eq!(c.validate().is_ok(), c.call_id().is_some());
    }

    #[test]
    fn mp_uri_display_parse_round_trip(u in mp_uri()) {
        let s = u.to_string();
        let back: MpUri = s.parse().expect("own output parses");
        prop_assert_eq!(&back, &u);
        prop_assert_eq!(back.to_string(), s);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        feed_all_parsers(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        feed_all_parsers(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn uri_like_strings_never_panic_and_round_trip_when_accepted(
        s in "[a-z.+1]{0,5}(://)?[\\[\\]a-f0-9:.@_-]{0,14}(:[0-9+]{0,6})?[/?#%a-z0-9 ]{0,8}"
    ) {
        if let Ok(u) = s.parse::<MpUri>() {
            prop_assert_eq!(u.to_string(), s);
        }
    }

    #[test]
    fn mutated_seed_never_panics(pos in any::<prop::sample::Index>(), ch in any::<char>(), delete in any::<bool>()) {
        let seed = seed_json();
        let mut chars: Vec<char> = seed.chars().collect();
        let i = pos.index(chars.len());
        if delete { chars.remove(i); } else { chars[i] = ch; }
        let s: String = chars.into_iter().collect();
        feed_all_parsers(&s);
        if let Ok(c) = MediaSessionConfig::parse(&s) {
            prop_assert_eq!(&MediaSessionConfig::parse(&c.to_json()).expect("reparse"), &c);
        }
    }

    #[test]
    fn any_value_in_a_known_field_never_panics(field in prop::sample::select(KNOWN_FIELDS.to_vec()), v in json_value()) {
        let mut doc: Value = serde_json::from_str(&seed_json()).expect("seed");
        doc[field] = v;
        let s = doc.to_string();
        if let Ok(c) = MediaSessionConfig::parse(&s) {
            prop_assert_eq!(&MediaSessionConfig::parse(&c.to_json()).expect("reparse"), &c);
        }
        feed_all_parsers(&s);
    }
}
