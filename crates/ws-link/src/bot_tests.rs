use super::*;

fn session(dialect: Dialect) -> BotSession {
    let config = BotLinkConfig::new("ws://127.0.0.1:9/bot", dialect);
    BotSession::new(&config, BotCallInfo::for_call(uuid::Uuid::nil())).expect("session")
}

fn text(m: &Outbound) -> serde_json::Value {
    match m {
        Outbound::Text(t) => serde_json::from_str(t).expect("JSON"),
        Outbound::Binary(_) => panic!("binary"),
    }
}

#[test]
fn twilio_marks_wait_for_their_audio_and_a_clear_returns_them() {
    let mut s = session(Dialect::Twilio);
    let starts = s.start_messages();
    assert_eq!(text(&starts[1])["start"]["mediaFormat"]["sampleRate"], 8000);
    // 100 ms of µ-law (5 frames once the resampler has filled), then a mark.
    let audio = BASE64.encode([0xffu8; 800]);
    let media = format!(r#"{{"event":"media","streamSid":"x","media":{{"payload":"{audio}"}}}}"#);
    assert!(matches!(
        s.handle_text(&media),
        Ok(BotCommand::Audio { .. })
    ));
    assert_eq!(
        s.handle_text(r#"{"event":"mark","streamSid":"x","mark":{"name":"m1"}}"#),
        Ok(BotCommand::Mark("m1".into()))
    );
    let made = s.backlog();
    assert!(made >= 4, "{made} frames");
    let mut queue = 0usize;
    assert_eq!(
        s.fill(|_| {
            queue += 1;
            true
        }),
        made
    );
    // Still queued: not played.
    assert!(s.poll_marks(queue).is_empty());
    assert!(s.poll_marks(1).is_empty());
    let echoed = s.poll_marks(0);
    assert_eq!(echoed.len(), 1);
    assert_eq!(text(&echoed[0])["mark"]["name"], "m1");
    // A mark whose audio a clear drops is echoed at once.
    s.handle_text(&media).expect("media");
    s.handle_text(r#"{"event":"mark","mark":{"name":"m2"}}"#)
        .expect("mark");
    assert_eq!(s.handle_text(r#"{"event":"clear"}"#), Ok(BotCommand::Clear));
    let echoed = s.clear(0);
    assert_eq!(echoed.len(), 1);
    assert_eq!(text(&echoed[0])["event"], "mark");
    assert_eq!(s.backlog(), 0);
    assert_eq!(s.stats().marks_echoed, 2);
}

#[test]
fn acs_and_vonage_bots_are_read_in_their_dialects_and_bad_input_is_named() {
    let mut acs = session(Dialect::Acs);
    let pcm = BASE64.encode([0u8; 640]);
    let out = format!(r#"{{"Kind":"AudioData","AudioData":{{"Data":"{pcm}"}},"StopAudio":null}}"#);
    assert_eq!(acs.handle_text(&out), Ok(BotCommand::Audio { frames: 1 }));
    assert_eq!(
        acs.handle_text(r#"{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}"#),
        Ok(BotCommand::Clear)
    );
    // The JS SDK's builders (@azure/communication-call-automation 1.6.0) write camelCase
    // kinds and fields, exactly these strings.
    let js = format!(
        r#"{{"kind":"audioData","audioData":{{"data":"{pcm}","isSilent":false}},"stopAudio":{{}}}}"#
    );
    assert_eq!(acs.handle_text(&js), Ok(BotCommand::Audio { frames: 1 }));
    assert_eq!(
        acs.handle_text(r#"{"kind":"stopAudio","stopAudio":{}}"#),
        Ok(BotCommand::Clear)
    );
    assert_eq!(
        acs.handle_text(r#"{"kind":"transcriptionData"}"#),
        Ok(BotCommand::Ignored("an ACS message of another kind"))
    );
    let e = acs.handle_text(r#"{"Kind":"AudioData","AudioData":{"Data":"%%"}}"#);
    assert!(e.is_err_and(|e| e.detail.contains("base64")));
    let e = acs.handle_binary(&[0; 4]).expect_err("binary on ACS");
    assert_eq!(e.code, CLOSE_UNSUPPORTED);
    let m = acs.frame(&Pcm16kFrame::silent(), true);
    assert_eq!(text(&m)["audioData"]["silent"], true);
    let d = acs.dtmf(DtmfTone::Pound, 0).expect("dtmf");
    assert_eq!(text(&d)["dtmfData"]["data"], "#");

    let mut vonage = session(Dialect::Vonage);
    assert_eq!(
        vonage.handle_binary(&[0; 1280]),
        Ok(BotCommand::Audio { frames: 2 })
    );
    let e = vonage.handle_binary(&[0; 3]).expect_err("odd length");
    assert!(e.detail.contains("3 bytes"), "{}", e.detail);
    assert_eq!(
        vonage.handle_text(r#"{"action":"clear"}"#),
        Ok(BotCommand::Clear)
    );
    assert!(matches!(
        vonage.frame(&Pcm16kFrame::silent(), false),
        Outbound::Binary(b) if b.len() == 640
    ));
    assert!(vonage.dtmf(DtmfTone::Flash, 0).is_none());
    let e = vonage.handle_text("{not json").expect_err("bad JSON");
    assert!(e.detail.contains("not a vonage message"), "{}", e.detail);
}

use proptest::prelude::*;

fn any_dialect() -> impl Strategy<Value = Dialect> {
    prop::sample::select(Dialect::ALL.to_vec())
}

/// A bot's valid messages of `d`, as text (Vonage's audio is binary, not here).
fn bot_messages(d: Dialect) -> Vec<String> {
    let audio = BASE64.encode([0x55u8; 320]);
    match d {
        Dialect::Twilio => vec![
            format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{audio}"}}}}"#),
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m"}}"#.into(),
            r#"{"event":"clear","streamSid":"MZ1"}"#.into(),
        ],
        Dialect::Acs => vec![
            format!(r#"{{"Kind":"AudioData","AudioData":{{"Data":"{audio}"}},"StopAudio":null}}"#),
            r#"{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}"#.into(),
        ],
        Dialect::Vonage => vec![r#"{"action":"clear"}"#.into()],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random text or bytes from a bot never panic; a refusal carries a close code
    /// and a bounded detail, and the session goes on taking valid messages.
    #[test]
    fn random_bot_input_is_refused_cleanly(
        d in any_dialect(),
        text in ".{0,300}",
        bytes in prop::collection::vec(any::<u8>(), 0..3000),
    ) {
        let mut s = session(d);
        for r in [s.handle_text(&text), s.handle_binary(&bytes)] {
            if let Err(e) = r {
                prop_assert!([1003, 1007, 1008].contains(&e.code), "{}", e);
                prop_assert!(e.detail.len() < 600);
            }
        }
        for m in bot_messages(d) {
            prop_assert!(s.handle_text(&m).is_ok(), "{}", m);
        }
    }

    /// Every truncation of a bot's valid message is refused (1007) or still parses.
    #[test]
    fn truncated_bot_messages_are_refused_cleanly(d in any_dialect(), pick in 0usize..3, cut in 0usize..600) {
        let msgs = bot_messages(d);
        let m = &msgs[pick % msgs.len()];
        let mut s = session(d);
        if let Err(e) = s.handle_text(&m[..cut.min(m.len())]) {
            prop_assert_eq!(e.code, CLOSE_INVALID_PAYLOAD, "{}", e);
        }
    }

    /// Audio of any length becomes frames on the backlog; as the send queue drains,
    /// every mark is echoed exactly once and none is left pending.
    #[test]
    fn marks_follow_their_audio(chunks in prop::collection::vec(1usize..2000, 1..8)) {
        let mut s = session(Dialect::Twilio);
        let mut made = 0;
        for (i, n) in chunks.iter().enumerate() {
            let audio = BASE64.encode(vec![0x7fu8; *n]);
            let m = format!(r#"{{"event":"media","media":{{"payload":"{audio}"}}}}"#);
            if let Ok(BotCommand::Audio { frames }) = s.handle_text(&m) {
                made += frames;
            }
            s.handle_text(&format!(r#"{{"event":"mark","mark":{{"name":"m{i}"}}}}"#))
                .expect("mark");
        }
        let total = s.backlog();
        prop_assert!(total >= made);
        let mut queued = 0usize;
        s.fill(|_| { queued += 1; true });
        // As the queue drains every mark comes back, once.
        let mut echoed = s.poll_marks(queued).len();
        while queued > 0 {
            queued -= 1;
            echoed += s.poll_marks(queued).len();
        }
        prop_assert_eq!(echoed, chunks.len());
        prop_assert_eq!(s.pending_marks(), 0);
    }
}
