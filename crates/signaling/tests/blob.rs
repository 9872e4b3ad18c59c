//! App-hosted requests with real media session configurations from media-blob.

use serde_json::Value;
use signaling::{Field, MediaConfig, RequestError, Scenario, validate_create_call};

fn real_blob() -> String {
    let mp_uri = "quic://127.0.0.1:9000/MediaProcessor"
        .parse::<media_blob::MpUri>()
        .expect("mpUri");
    media_blob::MediaSessionConfig::builder(mp_uri, uuid::Uuid::new_v4())
        .build()
        .to_json()
}

#[test]
fn app_hosted_scenarios_with_a_real_blob_are_valid() {
    let blob = real_blob();
    for scenario in Scenario::ALL.into_iter().filter(|s| s.is_app_hosted()) {
        let call = scenario.seed_example(Some(blob.clone()));
        assert_eq!(validate_create_call(&call), Ok(()), "{scenario}");
        // The body carries the blob as a JSON string that media-blob reads back.
        let body: Value = serde_json::from_str(&call.to_json()).expect("body");
        let text = body["mediaConfig"]["blob"].as_str().expect("blob string");
        media_blob::MediaSessionConfig::parse(text).expect("blob parses back");
    }
}

#[test]
fn a_broken_blob_is_reported_with_media_blobs_path() {
    let mut v: Value = serde_json::from_str(&real_blob()).expect("blob json");
    v["mpMediaSessionId"] = Value::from("not-a-guid");
    let call = Scenario::PstnApp.seed_example(Some(v.to_string()));
    let err = validate_create_call(&call).expect_err("broken blob");
    assert!(matches!(err, RequestError::InvalidBlob { .. }), "{err:?}");
    assert_eq!(err.path(), "mediaConfig.blob");
    let text = err.to_string();
    assert!(text.starts_with("mediaConfig.blob: "), "{text}");
    assert!(text.contains("mpMediaSessionId"), "{text}");
}

#[test]
fn the_older_object_form_of_the_blob_is_accepted() {
    let object: Value = serde_json::from_str(&real_blob()).expect("blob json");
    let mut call = Scenario::P2pVoipApp.seed_example(None);
    if let Some(MediaConfig::AppHosted(m)) = call.media_config.value_mut() {
        m.blob = Field::Value(object.clone());
    }
    assert_eq!(validate_create_call(&call), Ok(()));
    // And it round-trips as an object.
    let v = serde_json::to_value(&call).expect("ser");
    assert_eq!(v["mediaConfig"]["blob"], object);
}

#[test]
fn the_seeds_sample_blob_is_valid() {
    let blob = include_str!("fixtures/02_media_session_configuration.blob.json").trim();
    let call = Scenario::P2pVoipApp.seed_example(Some(blob.to_owned()));
    assert_eq!(validate_create_call(&call), Ok(()));
    // The page shows it escaped, as it sits in the request body.
    let body = call.to_json();
    let escaped = media_blob::MediaSessionConfig::parse(blob)
        .expect("parse")
        .to_embedded();
    assert!(
        body.contains("\\\"mpUri\\\":\\\"net.tcp://bot.contoso.com:18732/MediaProcessor\\\""),
        "{body}"
    );
    assert!(escaped.starts_with("{\\\"mpUri\\\""), "{escaped}");
}
