//! The Graph "create call" sample blob (seed doc), copied verbatim in its escaped
//! form into `fixtures/seed_blob_escaped.txt`, and the older object form.

use media_blob::{AudioFormat, MediaSessionConfig, MpUri};
use serde_json::Value;
use uuid::Uuid;

/// The seed's blob exactly as the docs show it inside `"blob": "..."`.
const SEED_ESCAPED: &str = include_str!("fixtures/seed_blob_escaped.txt");
/// An `appHostedMediaConfig` in the older form: blob as an object, `[null]`, no callId.
const LEGACY_MEDIA_CONFIG: &str = include_str!("fixtures/legacy_media_config.json");

fn seed_escaped() -> &'static str {
    SEED_ESCAPED.trim_end_matches(['\r', '\n'])
}

fn id(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("test uuid")
}

fn from_sample_values() -> MediaSessionConfig {
    MediaSessionConfig::builder(
        MpUri::net_tcp("bot.contoso.com", 18732).expect("uri"),
        id("1b69b141-7f1a-4033-9c34-202737190a20"),
    )
    .session_id(id("2379cf46-acf3-4fef-a914-be9627075320"))
    .audio_render_contexts(vec![id("14778cc4-f54c-43c7-989f-9092e34ef784")])
    .audio_source_contexts(vec![id("a5dcfc9b-5a54-48ef-86f5-1fdd8508741a")])
    .audio_format(AudioFormat::Pcm16K)
    .versions("1.11.1.0086", "2018.53.1.1", "7.2.0.3881")
    .region_affinity(None)
    .build()
}

/// The seed's blob as plain JSON text (unescaped).
fn seed_json() -> String {
    serde_json::from_str::<String>(&format!("\"{}\"", seed_escaped()))
        .expect("fixture is a JSON string body")
}

#[test]
fn fixture_is_the_seed_blob() {
    let e = seed_escaped();
    assert!(e.starts_with(r#"{\"mpUri\":\"net.tcp://bot.contoso.com:18732/MediaProcessor\""#));
    assert!(e.ends_with(r#"\"callId\":\"1b69b141-7f1a-4033-9c34-202737190a20\"}"#));
}

#[test]
fn built_from_sample_values_reproduces_the_seed_byte_for_byte() {
    let c = from_sample_values();
    assert_eq!(c.to_json(), seed_json());
    assert_eq!(c.to_embedded(), seed_escaped());
}

#[test]
fn seed_unembeds_to_the_same_configuration() {
    let c = MediaSessionConfig::from_embedded(seed_escaped()).expect("seed parses");
    assert_eq!(c, from_sample_values());
    c.validate().expect("seed is complete");
    assert_eq!(c.mp_uri().scheme(), "net.tcp");
    assert_eq!(c.mp_uri().host(), "bot.contoso.com");
    assert_eq!(c.mp_uri().port(), 18732);
    assert_eq!(c.mp_uri().path(), "/MediaProcessor");
    assert_eq!(c.session_id(), id("2379cf46-acf3-4fef-a914-be9627075320"));
    assert_eq!(
        c.call_id(),
        Some(id("1b69b141-7f1a-4033-9c34-202737190a20"))
    );
    assert_eq!(c.audio_format(), AudioFormat::Pcm16K);
    assert_eq!(c.video_render_contexts, Some(vec![]));
    assert_eq!(c.data_render_contexts, None);
    assert_eq!(c.video_sink_encoding_formats, Some(vec![]));
    assert_eq!(c.region_affinity, None);
    assert!(c.extra.is_empty());
    assert_eq!(c.to_embedded(), seed_escaped());
}

#[test]
fn seed_inside_a_media_config_object() {
    // The request body's mediaConfig with the seed's blob in place of the placeholder.
    let media_config = format!(
        r##"{{"@odata.type":"#microsoft.graph.appHostedMediaConfig","blob":"{}"}}"##,
        seed_escaped()
    );
    let v: Value = serde_json::from_str(&media_config).expect("valid request JSON");
    let c = MediaSessionConfig::from_value(&v["blob"]).expect("blob string");
    assert_eq!(c, from_sample_values());

    #[derive(serde::Serialize, serde::Deserialize)]
    struct AppHostedMediaConfig {
        #[serde(rename = "@odata.type")]
        odata_type: String,
        #[serde(with = "media_blob::as_json_string")]
        blob: MediaSessionConfig,
    }
    let typed: AppHostedMediaConfig = serde_json::from_str(&media_config).expect("typed");
    assert_eq!(typed.blob, c);
    assert_eq!(
        serde_json::to_string(&typed).expect("serialize"),
        media_config
    );
}

#[test]
fn older_object_form_is_accepted_and_round_trips() {
    let v: Value = serde_json::from_str(LEGACY_MEDIA_CONFIG).expect("fixture JSON");
    let c = MediaSessionConfig::from_value(&v["blob"]).expect("older form");
    assert_eq!(c.call_id(), None);
    assert_eq!(c.audio_source_contexts, Some(vec![None]));
    assert_eq!(
        c.audio_render_contexts,
        Some(vec![Some(id("14778cc4-f54c-43c7-989f-9092e34ef784"))])
    );
    assert_eq!(
        c.to_json(),
        v["blob"].to_string(),
        "byte for byte, [null] kept"
    );
    assert_eq!(MediaSessionConfig::parse(&c.to_json()).expect("reparse"), c);
    assert_eq!(
        MediaSessionConfig::from_embedded(&c.to_embedded()).expect("embedded"),
        c
    );
    assert_eq!(
        c.validate()
            .expect_err("current form needs callId")
            .to_string(),
        "callId: missing"
    );
}

#[test]
fn corrupted_seed_reports_the_field() {
    let bad = seed_escaped().replace(
        r#"[\"a5dcfc9b-5a54-48ef-86f5-1fdd8508741a\"]"#,
        r#"[\"a5dcfc9b\"]"#,
    );
    assert_eq!(
        MediaSessionConfig::from_embedded(&bad)
            .expect_err("bad guid")
            .to_string(),
        "audioSourceContexts[0]: not a GUID (expected 8-4-4-4-12 hex digits)"
    );
    let bad = seed_escaped().replace(":18732", "");
    assert_eq!(
        MediaSessionConfig::from_embedded(&bad)
            .expect_err("no port")
            .to_string(),
        "mpUri: missing port"
    );
    let bad = seed_escaped().replace(
        r#",\"callId\":\"1b69b141-7f1a-4033-9c34-202737190a20\""#,
        "",
    );
    let c = MediaSessionConfig::from_embedded(&bad).expect("callId optional on parse");
    assert_eq!(
        c.validate().expect_err("required").to_string(),
        "callId: missing"
    );
    let truncated = &seed_json()[..16];
    let e = MediaSessionConfig::parse(truncated).expect_err("truncated");
    assert!(
        e.to_string()
            .starts_with("blob: invalid JSON at line 1 column 16: "),
        "{e}"
    );
}
