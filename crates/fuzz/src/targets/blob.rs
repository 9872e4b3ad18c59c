//! The media session configuration (`media_blob`): every way a blob arrives.

use media_blob::{MediaSessionConfig, check_audio_contexts};
use serde_json::Value;

use super::Verdict;
use crate::check::{MAX_MESSAGE_CHARS, check_message, check_round_trip};

/// Feeds `data` to `MediaSessionConfig::parse` (the text), `from_embedded` (the
/// escaped form) and `from_value` (the JSON value: a string or an object), and checks
/// what each accepts.
pub(crate) fn run(data: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(data);
    let mut verdict = Verdict::Rejected;
    for (what, parsed) in [
        ("parse", MediaSessionConfig::parse(&text)),
        ("from_embedded", MediaSessionConfig::from_embedded(&text)),
    ] {
        verdict = verdict.or(accepted(what, parsed));
    }
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        verdict = verdict.or(accepted(
            "from_value",
            MediaSessionConfig::from_value(&value),
        ));
    }
    verdict
}

/// Checks one parser's answer: a bounded, printable error, or a configuration that
/// round-trips through every form and keeps the rules it was accepted under.
fn accepted(what: &str, parsed: Result<MediaSessionConfig, media_blob::BlobError>) -> Verdict {
    let config = match parsed {
        Ok(config) => config,
        Err(e) => {
            check_message(what, &e.to_string(), MAX_MESSAGE_CHARS);
            return Verdict::Rejected;
        }
    };
    let value = config.to_value();
    let again = MediaSessionConfig::parse(&config.to_json())
        .unwrap_or_else(|e| panic!("{what}: accepted, but its own JSON is refused: {e}"));
    check_round_trip(what, &value, &again.to_value());
    let embedded = MediaSessionConfig::from_embedded(&config.to_embedded())
        .unwrap_or_else(|e| panic!("{what}: accepted, but its embedded form is refused: {e}"));
    check_round_trip(what, &value, &embedded.to_value());
    assert_eq!(
        config.validate().is_ok(),
        again.validate().is_ok(),
        "{what}: validation changed by a round trip"
    );

    let uri = config.mp_uri();
    assert_eq!(
        uri.to_string().parse::<media_blob::MpUri>().as_ref(),
        Ok(uri),
        "{what}: the mpUri does not round-trip"
    );
    // Parsing enforces the join limits, so the port admits the join the blob describes.
    let (source, render) = config.join_contexts();
    if let Err(e) = check_audio_contexts(&source, &render) {
        panic!("{what}: accepted, but its contexts break the limits: {e}");
    }
    let call_id = config.call_id().unwrap_or_default();
    if let Err(e) = config.check_join(call_id, &source, &render) {
        panic!("{what}: its own join is refused: {e}");
    }
    Verdict::Accepted
}

/// Seeds: the seed page's blob in its three forms (text, escaped, JSON string), the
/// older object form, and builder-made blobs covering every field's variants.
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    use media_blob::{AudioFormat, MpUri};
    use uuid::Uuid;

    let seed_text = std::str::from_utf8(super::fixtures::BLOB).unwrap_or_default();
    let escaped = include_str!("../../../media-blob/tests/fixtures/seed_blob_escaped.txt");
    let legacy = include_str!("../../../media-blob/tests/fixtures/legacy_media_config.json");
    let mut seeds: Vec<String> = vec![
        seed_text.trim().to_owned(),
        escaped.trim().to_owned(),
        Value::String(seed_text.trim().to_owned()).to_string(),
    ];
    if let Ok(v) = serde_json::from_str::<Value>(legacy)
        && let Some(blob) = v.get("blob")
    {
        seeds.push(blob.to_string());
    }
    let ids = |from: u128, n: u128| (from..from + n).map(Uuid::from_u128).collect::<Vec<_>>();
    let uris = [
        MpUri::quic("media.example.com", 4433),
        MpUri::net_tcp("bot.contoso.com", 18732),
        MpUri::quic("::1", 65535),
        MpUri::new("quic", "10.0.0.1", 1, "/a/b%20c"),
    ];
    for (i, uri) in uris.into_iter().flatten().enumerate() {
        let builder = MediaSessionConfig::builder(uri, Uuid::from_u128(1))
            .session_id(Uuid::from_u128(2))
            .audio_source_contexts(ids(10, 1))
            .audio_render_contexts(ids(20, 1));
        let builder = match i {
            0 => builder,
            1 => builder
                .audio_format(AudioFormat::Pcm44KStereo)
                .region_affinity(Some("westeurope".into())),
            2 => builder
                .audio_source_contexts(ids(100, 8))
                .audio_render_contexts(ids(200, 8))
                .video_render_contexts(ids(300, 2))
                .video_source_contexts(ids(400, 1))
                .data_render_contexts(Some(ids(500, 1)))
                .data_source_contexts(Some(Vec::new())),
            _ => builder.versions("2.0.0", "2024.1.1.1", "8.0.0.1"),
        };
        let config = builder.build();
        seeds.push(config.to_json());
        seeds.push(config.to_embedded());
        // Unknown fields are kept and written back.
        let mut value = config.to_value();
        if let Value::Object(map) = &mut value {
            map.insert(
                "futureField".into(),
                serde_json::json!({"n": [1, 2.5, -3e-7, null], "s": "x"}),
            );
        }
        seeds.push(value.to_string());
    }
    seeds.into_iter().map(String::into_bytes).collect()
}
