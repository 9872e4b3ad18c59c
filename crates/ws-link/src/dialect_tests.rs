use super::*;
use proptest::prelude::*;

const TWILIO_START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{}},"streamSid":"MZ1"}"#;
const ACS_META: &str = r#"{"kind":"AudioMetadata","audioMetadata":{"subscriptionId":"sub-1","encoding":"PCM","sampleRate":16000,"channels":1,"length":640}}"#;
const VONAGE_CONNECTED: &str = r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000","caller":"447700900000"}"#;

fn started(dialect: Dialect) -> StreamParser {
    let mut p = StreamParser::new(dialect);
    let start = match dialect {
        Dialect::Acs => ACS_META,
        Dialect::Twilio => TWILIO_START,
        Dialect::Vonage => VONAGE_CONNECTED,
    };
    if dialect == Dialect::Twilio {
        let connected = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
        assert!(matches!(p.handle_text(connected), Ok(Inbound::Ignored(_))));
    }
    assert!(matches!(p.handle_text(start), Ok(Inbound::Start(_))));
    p
}

#[test]
fn twilio_stream_in_order() {
    let mut p = StreamParser::new(Dialect::Twilio);
    let media = r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"/38A"},"streamSid":"MZ1"}"#;
    let e = p.handle_text(media).expect_err("media before start");
    assert_eq!(e.code, CLOSE_POLICY);
    let Ok(Inbound::Start(info)) = p.handle_text(TWILIO_START) else {
        panic!("start")
    };
    assert_eq!(info.stream_id, "MZ1");
    assert_eq!(info.call_id.as_deref(), Some("CA1"));
    assert_eq!(info.encoding, Encoding::MuLaw8k);
    assert_eq!(
        p.handle_text(media).expect("media"),
        Inbound::Audio(AudioChunk {
            bytes: &[0xFF, 0x7F, 0x00],
            timestamp_ms: Some(5),
            silent: false,
            participant: None,
        })
    );
    let dtmf = r##"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"#"}}"##;
    assert_eq!(
        p.handle_text(dtmf).expect("dtmf"),
        Inbound::Dtmf {
            tone: DtmfTone::Pound,
            duration_ms: 0
        }
    );
    let mark =
        r#"{"event":"mark","sequenceNumber":"6","streamSid":"MZ1","mark":{"name":"greeting"}}"#;
    assert_eq!(
        p.handle_text(mark).expect("mark"),
        Inbound::Mark("greeting".into())
    );
    let stop = r#"{"event":"stop","sequenceNumber":"7","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#;
    assert_eq!(p.handle_text(stop).expect("stop"), Inbound::Stop);
    assert_eq!(
        p.handle_text(media).expect_err("after stop").code,
        CLOSE_POLICY
    );
}

#[test]
fn acs_stream_in_order() {
    let mut p = started(Dialect::Acs);
    let audio = r#"{"kind":"AudioData","audioData":{"timestamp":"2024-11-04T10:43:56.120Z","participantRawID":"8:acs:1","data":"AAABAA==","silent":false}}"#;
    assert_eq!(
        p.handle_text(audio).expect("audio"),
        Inbound::Audio(AudioChunk {
            bytes: &[0, 0, 1, 0],
            timestamp_ms: Some(1_730_717_036_120),
            silent: false,
            participant: Some("8:acs:1"),
        })
    );
    let dtmf = r#"{"kind":"DtmfData","dtmfData":{"data":"3"}}"#;
    assert_eq!(
        p.handle_text(dtmf).expect("dtmf"),
        Inbound::Dtmf {
            tone: DtmfTone::Tone3,
            duration_ms: 0
        }
    );
    let mut p = StreamParser::new(Dialect::Acs);
    let stereo = ACS_META.replace(r#""channels":1"#, r#""channels":2"#);
    let e = p.handle_text(&stereo).expect_err("stereo");
    assert!(e.detail.contains("channels 2"), "{e}");
    let rate = ACS_META.replace("16000", "44100");
    assert!(
        p.handle_text(&rate)
            .expect_err("44.1k")
            .detail
            .contains("44100")
    );
}

#[test]
fn vonage_frames_are_640_bytes() {
    let mut p = StreamParser::new(Dialect::Vonage);
    assert_eq!(
        p.handle_binary(&[0; 640])
            .expect_err("before connected")
            .code,
        CLOSE_POLICY
    );
    let mut p = started(Dialect::Vonage);
    assert!(matches!(p.handle_binary(&[1; 640]), Ok(Inbound::Audio(a)) if a.bytes.len() == 640));
    let e = p.handle_binary(&[0; 641]).expect_err("641 bytes");
    assert_eq!(e.code, CLOSE_INVALID_PAYLOAD);
    assert!(e.detail.contains("641 bytes"), "{e}");
    let dtmf = r#"{"event":"websocket:dtmf","digit":"5","duration":260}"#;
    assert_eq!(
        p.handle_text(dtmf).expect("dtmf"),
        Inbound::Dtmf {
            tone: DtmfTone::Tone5,
            duration_ms: 260
        }
    );
    let mut p = StreamParser::new(Dialect::Vonage);
    let pcm8 = VONAGE_CONNECTED.replace("16000", "8000");
    assert!(
        p.handle_text(&pcm8)
            .expect_err("8k")
            .detail
            .contains("rate=8000")
    );
}

#[test]
fn errors_name_what_is_wrong() {
    let mut p = started(Dialect::Twilio);
    let bad64 = r#"{"event":"media","media":{"payload":"@@@@"},"streamSid":"MZ1"}"#;
    let e = p.handle_text(bad64).expect_err("bad base64");
    assert_eq!(e.code, CLOSE_INVALID_PAYLOAD);
    assert!(e.detail.contains("base64"), "{e}");
    let digit = r#"{"event":"dtmf","dtmf":{"digit":"\u001b[2J"}}"#;
    let e = p.handle_text(digit).expect_err("bad digit");
    assert!(
        e.detail.contains(r"\u001b[2J") && !e.detail.contains('\x1b'),
        "{e}"
    );
    let e = p.handle_binary(&[0; 10]).expect_err("binary on twilio");
    assert_eq!(e.code, CLOSE_UNSUPPORTED);
    let mut a = started(Dialect::Acs);
    let odd = r#"{"kind":"AudioData","audioData":{"data":"AAAA","silent":false}}"#;
    assert!(
        a.handle_text(odd)
            .expect_err("3 bytes")
            .detail
            .contains("whole number")
    );
    let huge = format!(
        r#"{{"kind":"AudioData","audioData":{{"data":"{}"}}}}"#,
        "A".repeat(200_000)
    );
    assert!(
        a.handle_text(&huge)
            .expect_err("> 1 s")
            .detail
            .contains("at most")
    );
}

#[test]
fn outbound_messages_have_the_vendors_shapes() {
    let info = StreamInfo {
        dialect: Dialect::Acs,
        stream_id: "s".into(),
        call_id: None,
        encoding: Encoding::Pcm16 { rate: 16_000 },
        audio: media_core::call::AudioStreams::MIXED,
    };
    let acs = OutboundEncoder::new(&info);
    assert_eq!(
        acs.audio(&[0, 1]),
        Outbound::Text(
            r#"{"Kind":"AudioData","AudioData":{"Data":"AAE="},"StopAudio":null}"#.into()
        )
    );
    assert_eq!(
        acs.clear(),
        Outbound::Text(r#"{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}"#.into())
    );
    let twilio = OutboundEncoder::new(&StreamInfo {
        dialect: Dialect::Twilio,
        stream_id: "MZ\"1".into(),
        encoding: Encoding::MuLaw8k,
        ..info.clone()
    });
    let Outbound::Text(t) = twilio.audio(&[0xFF]) else {
        panic!("text")
    };
    let v: serde_json::Value = serde_json::from_str(&t).expect("JSON");
    assert_eq!(v["event"], "media");
    assert_eq!(v["streamSid"], "MZ\"1");
    assert_eq!(v["media"]["payload"], "/w==");
    assert!(twilio.mark("m1").is_some() && acs.mark("m1").is_none());
    let vonage = OutboundEncoder::new(&StreamInfo {
        dialect: Dialect::Vonage,
        ..info
    });
    assert_eq!(vonage.audio(&[1, 2]), Outbound::Binary(vec![1, 2]));
    assert_eq!(
        vonage.clear(),
        Outbound::Text(r#"{"action":"clear"}"#.into())
    );
}

/// A valid message of each kind for `dialect` (after start).
fn valid_messages(dialect: Dialect) -> Vec<String> {
    match dialect {
        Dialect::Acs => vec![
            r#"{"kind":"AudioData","audioData":{"timestamp":"2024-11-04T10:43:56.120Z","participantRawID":"8:acs:1","data":"AAABAAIAAwA=","silent":false}}"#.into(),
            r#"{"kind":"DtmfData","dtmfData":{"data":"3"}}"#.into(),
        ],
        Dialect::Twilio => vec![
            r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"/38A/38A"},"streamSid":"MZ1"}"#.into(),
            r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"1"}}"#.into(),
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"x"}}"#.into(),
        ],
        Dialect::Vonage => vec![r#"{"event":"websocket:dtmf","digit":"5","duration":260}"#.into()],
    }
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop::sample::select(Dialect::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random text never panics; what is refused names a close code of RFC 6455's
    /// application range and a bounded detail.
    #[test]
    fn random_text_is_refused_cleanly(d in dialect(), text in ".{0,300}") {
        let mut p = started(d);
        if let Err(e) = p.handle_text(&text) {
            prop_assert!([1003, 1007, 1008].contains(&e.code));
            prop_assert!(e.detail.len() < 600);
        }
    }

    /// Every truncation of a valid message is either refused with a close code or
    /// still parses; never a panic.
    #[test]
    fn truncated_messages_are_refused_cleanly(d in dialect(), pick in 0usize..3, cut in 0usize..400) {
        let msgs = valid_messages(d);
        let m = &msgs[pick % msgs.len()];
        let cut = cut.min(m.len());
        let mut p = started(d);
        prop_assert!(p.handle_text(&m[..]).is_ok());
        if let Err(e) = p.handle_text(&m[..cut]) {
            prop_assert!([1007, 1008].contains(&e.code), "{}", e);
        }
    }

    /// Audio data that is not base64 is refused with 1007, naming base64.
    #[test]
    fn wrong_base64_is_1007(d in prop::sample::select(vec![Dialect::Acs, Dialect::Twilio]), junk in "[!-~]{1,40}") {
        prop_assume!(base64::engine::general_purpose::STANDARD.decode(&junk).is_err());
        let mut p = started(d);
        let data = serde_json::Value::from(junk.as_str()).to_string();
        let msg = match d {
            Dialect::Acs => format!(r#"{{"kind":"AudioData","audioData":{{"data":{data}}}}}"#),
            _ => format!(r#"{{"event":"media","media":{{"payload":{data}}},"streamSid":"MZ1"}}"#),
        };
        let e = p.handle_text(&msg).expect_err("not base64");
        prop_assert_eq!(e.code, CLOSE_INVALID_PAYLOAD);
        prop_assert!(e.detail.contains("base64"), "{}", e);
    }

    /// Binary frames of any length but 640 are refused with 1007 naming the length.
    #[test]
    fn vonage_frames_of_wrong_length_are_1007(len in 0usize..4000) {
        prop_assume!(len != VONAGE_FRAME_BYTES);
        let mut p = started(Dialect::Vonage);
        let e = p.handle_binary(&vec![0u8; len]).expect_err("wrong length");
        prop_assert_eq!(e.code, CLOSE_INVALID_PAYLOAD);
        let expected = format!("{len} bytes");
        prop_assert!(e.detail.contains(&expected), "{}", e);
    }
}

#[test]
fn acs_participant_raw_id_is_read_bounded_and_optional() {
    let mut p = started(Dialect::Acs);
    let who = |p: &mut StreamParser, field: &str| {
        match p.handle_text(&format!(
        r#"{{"kind":"AudioData","audioData":{{"timestamp":"2024-11-04T10:43:56.120Z",{field}"data":"AAA=","silent":false}}}}"#
    )) {
        Ok(Inbound::Audio(a)) => Ok(a.participant.map(str::to_owned)),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    }
    };
    assert_eq!(
        who(&mut p, r#""participantRawID":"8:acs:x","#).expect("named"),
        Some("8:acs:x".to_owned())
    );
    assert_eq!(
        who(&mut p, r#""participantRawID":null,"#).expect("null"),
        None
    );
    assert_eq!(
        who(&mut p, r#""participantRawID":"","#).expect("empty"),
        None
    );
    assert_eq!(who(&mut p, "").expect("absent"), None);
    let long = format!(
        r#""participantRawID":"{}","#,
        "x".repeat(MAX_PARTICIPANT_ID + 1)
    );
    let e = who(&mut p, &long).expect_err("too long");
    assert_eq!(e.code, CLOSE_INVALID_PAYLOAD);
    assert!(e.detail.contains("participantRawID"), "{}", e.detail);
}
