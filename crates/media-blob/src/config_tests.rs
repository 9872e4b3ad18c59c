//! Unit tests of `config`.

use super::*;

const SEED: &str = r#"{"mpUri":"net.tcp://bot.contoso.com:18732/MediaProcessor","audioRenderContexts":["14778cc4-f54c-43c7-989f-9092e34ef784"],"videoRenderContexts":[],"audioSourceContexts":["a5dcfc9b-5a54-48ef-86f5-1fdd8508741a"],"videoSourceContexts":[],"dataRenderContexts":null,"dataSourceContexts":null,"supportedAudioFormat":"Pcm16K","videoSinkEncodingFormats":[],"mpMediaSessionId":"2379cf46-acf3-4fef-a914-be9627075320","regionAffinity":null,"skypeMediaBotsVersion":"1.11.1.0086","mediaStackVersion":"2018.53.1.1","mpVersion":"7.2.0.3881","callId":"1b69b141-7f1a-4033-9c34-202737190a20"}"#;

fn id(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("test uuid")
}

fn sample_built() -> MediaSessionConfig {
    MediaSessionConfig::builder(
        MpUri::net_tcp("bot.contoso.com", 18732).expect("uri"),
        id("1b69b141-7f1a-4033-9c34-202737190a20"),
    )
    .session_id(id("2379cf46-acf3-4fef-a914-be9627075320"))
    .audio_render_contexts(vec![id("14778cc4-f54c-43c7-989f-9092e34ef784")])
    .audio_source_contexts(vec![id("a5dcfc9b-5a54-48ef-86f5-1fdd8508741a")])
    .build()
}

fn err(json: &str) -> String {
    MediaSessionConfig::parse(json).expect_err(json).to_string()
}

/// The seed blob with one field's raw JSON value replaced.
fn with(field: &str, raw: &str) -> String {
    let mut v: Value = serde_json::from_str(SEED).expect("seed");
    let new: Value = serde_json::from_str(raw).expect("raw");
    v[field] = new;
    v.to_string()
}

fn without(field: &str) -> String {
    let mut v: Value = serde_json::from_str(SEED).expect("seed");
    v.as_object_mut().expect("object").shift_remove(field);
    v.to_string()
}

#[test]
fn builder_reproduces_the_seed_byte_for_byte() {
    assert_eq!(sample_built().to_json(), SEED);
}

#[test]
fn parse_then_serialize_is_identity_on_the_seed() {
    let c = MediaSessionConfig::parse(SEED).expect("seed parses");
    assert_eq!(c, sample_built());
    assert_eq!(c.to_json(), SEED);
    c.validate().expect("seed is current form");
    assert_eq!(c.mp_uri().port(), 18732);
    assert_eq!(
        c.call_id(),
        Some(id("1b69b141-7f1a-4033-9c34-202737190a20"))
    );
    assert_eq!(c.session_id(), id("2379cf46-acf3-4fef-a914-be9627075320"));
    assert_eq!(c.audio_format(), AudioFormat::Pcm16K);
}

#[test]
fn builder_defaults() {
    let call = Uuid::new_v4();
    let c = MediaSessionConfig::builder(MpUri::quic("localhost", 4433).expect("uri"), call).build();
    assert_eq!(c.call_id(), Some(call));
    assert_eq!(c.audio_render_contexts.as_ref().map(Vec::len), Some(1));
    assert_eq!(c.audio_source_contexts.as_ref().map(Vec::len), Some(1));
    assert_ne!(c.audio_render_contexts, c.audio_source_contexts);
    assert_eq!(c.video_render_contexts, Some(vec![]));
    assert_eq!(c.video_source_contexts, Some(vec![]));
    assert_eq!(c.data_render_contexts, None);
    assert_eq!(c.data_source_contexts, None);
    assert_eq!(c.video_sink_encoding_formats, Some(vec![]));
    assert_eq!(c.region_affinity, None);
    assert_eq!(c.audio_format(), AudioFormat::Pcm16K);
    assert_eq!(c.skype_media_bots_version, DEFAULT_SKYPE_MEDIA_BOTS_VERSION);
    assert_eq!(c.media_stack_version, DEFAULT_MEDIA_STACK_VERSION);
    assert_eq!(c.mp_version, DEFAULT_MP_VERSION);
    assert_eq!(c.session_id().get_version_num(), 4);
    c.validate().expect("built configs validate");
    let other = MediaSessionConfig::builder(c.mp_uri().clone(), call).build();
    assert_ne!(other.session_id(), c.session_id(), "fresh ids per build");
}

#[test]
fn builder_options() {
    let (a, b, d) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let c = MediaSessionConfig::builder(MpUri::quic("h", 1).expect("uri"), Uuid::new_v4())
        .audio_render_contexts(vec![])
        .audio_source_contexts(vec![a, b])
        .video_render_contexts(vec![d])
        .video_source_contexts(vec![a])
        .data_render_contexts(Some(vec![]))
        .data_source_contexts(Some(vec![b]))
        .audio_format(AudioFormat::Pcm44KStereo)
        .versions("1", "2", "3")
        .region_affinity(Some("westeurope".into()))
        .build();
    let json = c.to_json();
    assert!(json.contains(r#""audioRenderContexts":[]"#), "{json}");
    assert!(json.contains(r#""dataRenderContexts":[]"#), "{json}");
    assert!(
        json.contains(r#""supportedAudioFormat":"Pcm44KStereo""#),
        "{json}"
    );
    assert!(json.contains(r#""regionAffinity":"westeurope""#), "{json}");
    assert!(
        json.contains(r#""skypeMediaBotsVersion":"1","mediaStackVersion":"2","mpVersion":"3""#)
    );
    assert_eq!(MediaSessionConfig::parse(&json).expect("round trip"), c);
}

#[test]
fn embedded_form() {
    let c = sample_built();
    let e = c.to_embedded();
    assert!(
        e.starts_with(r#"{\"mpUri\":\"net.tcp://bot.contoso.com:18732/MediaProcessor\","#),
        "{e}"
    );
    assert_eq!(e, SEED.replace('"', "\\\""));
    assert_eq!(MediaSessionConfig::from_embedded(&e).expect("unembed"), c);
}

#[test]
fn from_embedded_rejects_raw_json() {
    let e = MediaSessionConfig::from_embedded(SEED).expect_err("not escaped");
    assert_eq!(e.path(), "blob");
    assert!(
        e.problem().starts_with("unescaped quote at column 2"),
        "{e}"
    );
    let e = MediaSessionConfig::from_embedded(r#"{\"mpUri\":\x}"#).expect_err("bad escape");
    assert!(
        e.to_string()
            .starts_with("blob: invalid escaped string at line 1 column "),
        "{e}"
    );
    let e = MediaSessionConfig::from_embedded("\\").expect_err("dangling backslash");
    assert_eq!(e.kind(), BlobErrorKind::Syntax);
}

#[test]
fn from_value_accepts_string_and_object() {
    let c = sample_built();
    let s = Value::String(SEED.into());
    assert_eq!(MediaSessionConfig::from_value(&s).expect("string form"), c);
    let o: Value = serde_json::from_str(SEED).expect("object");
    assert_eq!(MediaSessionConfig::from_value(&o).expect("object form"), c);
    assert_eq!(
        MediaSessionConfig::from_value(&Value::from(3))
            .expect_err("number")
            .to_string(),
        "blob: expected a JSON string or object, found a number"
    );
}

#[test]
fn older_form_null_entries_and_no_call_id() {
    let old = without(CALL_ID);
    let old = old.replace(
        r#""audioSourceContexts":["a5dcfc9b-5a54-48ef-86f5-1fdd8508741a"]"#,
        r#""audioSourceContexts":[null]"#,
    );
    let c = MediaSessionConfig::parse(&old).expect("older form parses");
    assert_eq!(c.call_id(), None);
    assert_eq!(c.audio_source_contexts, Some(vec![None]));
    assert_eq!(c.to_json(), old, "older form round-trips byte for byte");
    assert_eq!(
        c.validate().expect_err("no callId").to_string(),
        "callId: missing"
    );
    let nulled = with(CALL_ID, "null");
    assert_eq!(
        MediaSessionConfig::parse(&nulled)
            .expect("null callId")
            .call_id(),
        None
    );
}

#[test]
fn unknown_fields_are_kept_in_order_after_known_ones() {
    let mut v: Value = serde_json::from_str(SEED).expect("seed");
    let m = v.as_object_mut().expect("object");
    m.shift_insert(0, "zeta".into(), Value::from(1));
    m.insert(
        "alpha".into(),
        serde_json::json!({"b": [1, null], "a": "x"}),
    );
    let c = MediaSessionConfig::parse(&v.to_string()).expect("tolerated");
    assert_eq!(c.extra.keys().collect::<Vec<_>>(), ["zeta", "alpha"]);
    let out = c.to_json();
    let expected = format!(
        r#"{},"zeta":1,"alpha":{{"b":[1,null],"a":"x"}}}}"#,
        SEED.strip_suffix('}').expect("object")
    );
    assert_eq!(out, expected);
    assert_eq!(MediaSessionConfig::parse(&out).expect("again"), c);
}

#[test]
fn known_field_in_extra_is_reported_and_not_written() {
    let mut c = sample_built();
    c.extra.insert("mpVersion".into(), Value::from("9"));
    assert_eq!(c.to_json(), SEED);
    assert!(
        c.validate()
            .expect_err("shadow")
            .to_string()
            .starts_with("mpVersion: known field")
    );
}

#[test]
fn field_errors_name_the_field() {
    assert_eq!(
        err(&with(AUDIO_SOURCE_CONTEXTS, r#"["not-a-guid"]"#)),
        "audioSourceContexts[0]: not a GUID (expected 8-4-4-4-12 hex digits)"
    );
    assert_eq!(
        err(&with(AUDIO_RENDER_CONTEXTS, r#"[null, 5]"#)),
        "audioRenderContexts[1]: expected a GUID string or null, found a number"
    );
    assert_eq!(
        err(&with(VIDEO_RENDER_CONTEXTS, r#"{}"#)),
        "videoRenderContexts: expected an array or null, found an object"
    );
    assert_eq!(
        err(&with(
            MP_URI,
            r#""net.tcp://bot.contoso.com/MediaProcessor""#
        )),
        "mpUri: missing port"
    );
    assert_eq!(
        err(&with(MP_URI, "1")),
        "mpUri: expected a string, found a number"
    );
    assert_eq!(err(&without(MP_URI)), "mpUri: missing");
    assert_eq!(
        err(&with(SUPPORTED_AUDIO_FORMAT, r#""Pcm8K""#)),
        r#"supportedAudioFormat: unknown format "Pcm8K" (expected Pcm16K or Pcm44KStereo)"#
    );
    assert_eq!(
        err(&without(SUPPORTED_AUDIO_FORMAT)),
        "supportedAudioFormat: missing"
    );
    assert_eq!(
        err(&with(VIDEO_SINK_ENCODING_FORMATS, "true")),
        "videoSinkEncodingFormats: expected an array or null, found a boolean"
    );
    assert_eq!(
        err(&without(MP_MEDIA_SESSION_ID)),
        "mpMediaSessionId: missing"
    );
    assert_eq!(
        err(&with(
            MP_MEDIA_SESSION_ID,
            r#""{2379cf46-acf3-4fef-a914-be9627075320}""#
        )),
        "mpMediaSessionId: not a GUID (expected 8-4-4-4-12 hex digits)"
    );
    assert_eq!(
        err(&with(REGION_AFFINITY, "[]")),
        "regionAffinity: expected a string or null, found an array"
    );
    assert_eq!(err(&without(MP_VERSION)), "mpVersion: missing");
    assert_eq!(
        err(&with(MEDIA_STACK_VERSION, r#""""#)),
        "mediaStackVersion: empty"
    );
    assert_eq!(
        err(&with(SKYPE_MEDIA_BOTS_VERSION, r#""1 2""#)),
        "skypeMediaBotsVersion: contains whitespace or control characters"
    );
    assert_eq!(
        err(&with(CALL_ID, r#""1b69b141""#)),
        "callId: not a GUID (expected 8-4-4-4-12 hex digits)"
    );
}

#[test]
fn uppercase_guids_are_accepted() {
    let upper = SEED.replace(
        "14778cc4-f54c-43c7-989f-9092e34ef784",
        "14778CC4-F54C-43C7-989F-9092E34EF784",
    );
    assert_eq!(
        MediaSessionConfig::parse(&upper).expect("upper"),
        sample_built()
    );
}

#[test]
fn malformed_json_names_the_position() {
    let e = MediaSessionConfig::parse(r#"{"mpUri":"x",  ,}"#).expect_err("bad");
    assert_eq!(e.kind(), BlobErrorKind::Syntax);
    assert!(
        e.to_string()
            .starts_with("blob: invalid JSON at line 1 column 16: "),
        "{e}"
    );
    assert_eq!(
        MediaSessionConfig::parse("[]")
            .expect_err("array")
            .to_string(),
        "blob: expected a JSON object, found an array"
    );
    assert!(MediaSessionConfig::parse("").is_err());
}

#[test]
fn serde_impls_match_to_json() {
    let c = sample_built();
    assert_eq!(serde_json::to_string(&c).expect("ser"), SEED);
    let back: MediaSessionConfig = serde_json::from_str(SEED).expect("de object");
    assert_eq!(back, c);
    let back: MediaSessionConfig =
        serde_json::from_value(Value::String(SEED.into())).expect("de string");
    assert_eq!(back, c);
    let bad = serde_json::from_str::<MediaSessionConfig>(&without(MP_URI)).expect_err("missing");
    assert!(bad.to_string().contains("mpUri: missing"), "{bad}");
}

/// `n` distinct GUIDs as a JSON array.
fn guids(n: usize) -> String {
    let ids: Vec<String> = (0..n).map(|_| format!("\"{}\"", Uuid::new_v4())).collect();
    format!("[{}]", ids.join(","))
}

#[test]
fn audio_context_counts_are_the_ports() {
    let none = with(AUDIO_SOURCE_CONTEXTS, "[]");
    let none = {
        let mut v: Value = serde_json::from_str(&none).expect("json");
        v[AUDIO_RENDER_CONTEXTS] = Value::Array(vec![]);
        v.to_string()
    };
    assert_eq!(
        err(&none),
        "audioSourceContexts, audioRenderContexts: a media session needs 1 to 16 audio \
         contexts in all, got 0"
    );
    // Only nulls: nothing a join could carry.
    let nulls = with(AUDIO_SOURCE_CONTEXTS, "[null]").replace(
        r#""audioRenderContexts":["14778cc4-f54c-43c7-989f-9092e34ef784"]"#,
        r#""audioRenderContexts":null"#,
    );
    assert!(err(&nulls).ends_with("got 0"), "{}", err(&nulls));
    // 16 in all is the most; 17 is refused.
    assert!(MediaSessionConfig::parse(&with(AUDIO_SOURCE_CONTEXTS, &guids(15))).is_ok());
    assert!(err(&with(AUDIO_SOURCE_CONTEXTS, &guids(16))).ends_with("got 17"));
    // One list longer than the limit is refused by its name, before counting.
    assert_eq!(
        err(&with(VIDEO_SOURCE_CONTEXTS, &guids(17))),
        "videoSourceContexts: 17 entries, more than the 16 allowed"
    );
}

#[test]
fn a_guid_may_appear_once_in_all_lists() {
    let render = "14778cc4-f54c-43c7-989f-9092e34ef784";
    let twice = with(AUDIO_SOURCE_CONTEXTS, &format!("[\"{render}\"]"));
    assert_eq!(
        err(&twice),
        format!(
            "audioRenderContexts[0]: GUID {render} appears twice (first at \
             audioSourceContexts[0]); every context needs its own GUID"
        )
    );
    let video = Uuid::new_v4();
    let in_video = with(VIDEO_RENDER_CONTEXTS, &format!("[\"{video}\",\"{video}\"]"));
    assert!(err(&in_video).starts_with("videoRenderContexts[1]: GUID"));
    // The issue's case: 200,000 copies of one context.
    let many = format!(
        "[{}]",
        vec![format!("\"{render}\"").as_str(); 200_000].join(",")
    );
    let big = with(AUDIO_SOURCE_CONTEXTS, &many);
    let e = err(&big);
    assert!(
        e.starts_with("blob: ") && e.contains("more than the 16384 allowed"),
        "{e}"
    );
    let as_object: Value = serde_json::from_str(&big).expect("json");
    let e = MediaSessionConfig::from_value(&as_object).expect_err("200,000 contexts");
    assert_eq!(
        e.to_string(),
        "audioSourceContexts: 200000 entries, more than the 16 allowed"
    );
}

#[test]
fn sizes_are_capped() {
    assert_eq!(
        err(&with(MP_VERSION, &format!("\"{}\"", "7".repeat(65)))),
        "mpVersion: 65 bytes, more than the 64 allowed"
    );
    assert_eq!(
        err(&with(REGION_AFFINITY, &format!("\"{}\"", "r".repeat(65)))),
        "regionAffinity: 65 bytes, more than the 64 allowed"
    );
    assert_eq!(
        err(&with(
            MP_URI,
            &format!("\"quic://h:1/{}\"", "p".repeat(2000))
        )),
        "mpUri: 2011 bytes, more than the 1024 allowed"
    );
    // An unknown field may not carry the blob past its size limit.
    let mut v: Value = serde_json::from_str(SEED).expect("seed");
    v["padding"] = Value::String("x".repeat(MAX_BLOB_BYTES));
    assert_eq!(
        MediaSessionConfig::from_value(&v)
            .expect_err("too big")
            .to_string(),
        format!(
            "blob: {} bytes of JSON, more than the 16384 allowed",
            v.to_string().len()
        )
    );
    let e = MediaSessionConfig::from_embedded(&"x".repeat(3 * MAX_BLOB_BYTES)).expect_err("big");
    assert_eq!(
        e.to_string(),
        "blob: 49152 bytes, more than the 32768 allowed"
    );
}

#[test]
fn the_builder_enforces_the_same_rules() {
    let uri = || MpUri::quic("localhost", 4433).expect("uri");
    let a = Uuid::new_v4();
    let twice = MediaSessionConfig::builder(uri(), Uuid::new_v4())
        .audio_source_contexts(vec![a])
        .audio_render_contexts(vec![a])
        .try_build()
        .expect_err("same GUID twice");
    assert_eq!(twice.path(), "audioRenderContexts[0]");
    let none = MediaSessionConfig::builder(uri(), Uuid::new_v4())
        .audio_source_contexts(vec![])
        .audio_render_contexts(vec![])
        .try_build()
        .expect_err("no contexts");
    assert!(none.to_string().ends_with("got 0"), "{none}");
    let many: Vec<Uuid> = (0..17).map(|_| Uuid::new_v4()).collect();
    let e = MediaSessionConfig::builder(uri(), Uuid::new_v4())
        .audio_source_contexts(many)
        .try_build()
        .expect_err("17 + 1");
    assert_eq!(e.path(), "audioSourceContexts");
    let ok = MediaSessionConfig::builder(uri(), Uuid::new_v4())
        .try_build()
        .expect("defaults pass");
    assert_eq!(
        MediaSessionConfig::parse(&ok.to_json()).expect("parses"),
        ok
    );
}

#[test]
fn a_join_must_match_its_session() {
    let c = sample_built();
    let (source, render) = c.join_contexts();
    let call = id("1b69b141-7f1a-4033-9c34-202737190a20");
    assert!(c.check_join(call, &source, &render).is_ok());
    let other = Uuid::nil();
    assert_eq!(
        c.check_join(other, &source, &render)
            .expect_err("wrong callId")
            .to_string(),
        "callId: the join says 00000000-0000-0000-0000-000000000000, the session was \
         created for 1b69b141-7f1a-4033-9c34-202737190a20"
    );
    assert_eq!(
        c.check_join(call, &source, &[other])
            .expect_err("wrong render context")
            .to_string(),
        "audioRenderContexts[0]: the join says 00000000-0000-0000-0000-000000000000, the \
         session's blob has 14778cc4-f54c-43c7-989f-9092e34ef784 (1 in the join, 1 in the blob)"
    );
    let e = c
        .check_join(call, &[source[0], other], &render)
        .expect_err("extra context");
    assert_eq!(e.path(), "audioSourceContexts[1]");
    assert!(
        e.problem().contains("the session's blob has nothing"),
        "{e}"
    );
    let e = c
        .check_join(call, &[], &render)
        .expect_err("missing context");
    assert_eq!(e.path(), "audioSourceContexts[0]");
}
