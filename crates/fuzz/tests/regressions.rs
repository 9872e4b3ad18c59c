//! Inputs that broke a property once: each must now pass its target. The unit tests
//! next to the fixed parsers pin the exact behaviour.

use fuzz_targets::{Target, Verdict};

/// `transport::wire::ControlDecoder` decoded a stats number beyond `f32` as infinity,
/// a report `encode_control` refuses (found by `control`, case 88087 of the default
/// seed, framed-bodies mode).
#[test]
fn control_stats_beyond_f32() {
    let body = br#"{"type":"stats","jitterMs":1.7976931348623157e308,"maxJitterMs":12.25,"lossPct":0.5,"rttMs":40.0,"packetsSent":500,"packetsReceived":498,"packetsLost":2}"#;
    let input = [&[1u8][..], body].concat();
    assert_eq!(Target::Control.run(&input), Verdict::Rejected);
}

/// `signaling::json::from_slice_strict` quoted the whole path of a duplicate key deep
/// in a document (126 keys of 40 escaped characters made a 30 KB error message); here
/// 60 levels of an object holding an array, under keys of bidi overrides.
#[test]
fn strict_json_deep_duplicate_path() {
    let level = format!("{{\"{}\":[", "\\u202e".repeat(40));
    let doc = format!("{}{{\"a\":1,\"a\":2}}{}", level.repeat(60), "]}".repeat(60));
    let error = signaling::json::from_slice_strict(doc.as_bytes()).map(drop);
    assert!(error.is_err_and(|e| e.to_string().chars().count() < 400));
    assert_eq!(Target::Notification.run(doc.as_bytes()), Verdict::Rejected);
    Target::GraphCall.run(doc.as_bytes());
}

/// `signaling::json::from_slice_strict` kept serde_json's raw-value key as a plain key
/// while `serde_json::from_slice::<Value>` (its `raw_value` feature is on) refused the
/// object or replaced it with the JSON in its string (found by libFuzzer in
/// `graph_call`: an `@odata.type` key renamed to the token). A repeated key could hide
/// in that string past the callback server's strict check.
#[test]
fn strict_json_serde_json_private_key() {
    let call = br##"{"callbackUri":"https://bot.contoso.com/callback","mediaConfig":{"$serde_json::private::RawValue":"#microsoft.graph.serviceHostedMediaConfig"}}"##;
    assert_eq!(Target::GraphCall.run(call), Verdict::Rejected);
    let smuggled = br#"{"value":[{"$serde_json::private::RawValue":"{\"resourceUrl\":\"/communications/calls/c1\",\"changeType\":\"created\",\"changeType\":\"deleted\"}"}]}"#;
    assert_eq!(Target::Notification.run(smuggled), Verdict::Rejected);
}

/// `ws_link::media::InboundAudio` added a chunk's duration to a platform timestamp of
/// `u64::MAX` ms: an overflow panic (debug builds) in the stream's task (found by `ws`,
/// case 82037 of the default seed: a Twilio `media.timestamp` of 18446744073709551615).
#[test]
fn ws_timestamp_at_the_end_of_time() {
    let input = concat!(
        "\x01",
        r#"{"event":"start","start":{"streamSid":"MZ1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#,
        "\n",
        r#"{"event":"media","media":{"timestamp":18446744073709551615,"payload":"/38A/38A"},"streamSid":"MZ1"}"#,
        "\n",
        r#"{"event":"media","media":{"timestamp":"500","payload":"/38A/38A"},"streamSid":"MZ1"}"#,
    );
    assert_eq!(Target::Ws.run(input.as_bytes()), Verdict::Accepted);
}

/// `transport::wire::Join::choose_codec` quoted every repetition of an offered codec in
/// its NoCommonCodec reject: a 63 KB join repeating `"pcm16k"` to an Opus-only
/// processor made a 56 KB message (found by a directed case next to `control`).
#[test]
fn control_repeated_codec_reject() {
    let codecs = vec![r#""pcm16k""#; 7000].join(",");
    let join = format!(
        r#"{{"type":"join","version":1,"mpMediaSessionId":"00000000-0000-0000-0000-000000000001","callId":"00000000-0000-0000-0000-000000000002","audioRenderContexts":["00000000-0000-0000-0000-000000000004"],"codecs":[{codecs}]}}"#
    );
    let input = [&[1u8][..], join.as_bytes()].concat();
    assert_eq!(Target::Control.run(&input), Verdict::Accepted);
}
