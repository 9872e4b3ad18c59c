//! The platforms' media WebSocket messages (`ws_link`): one stream's messages through
//! its `StreamParser`, its audio through `InboundAudio` into 20 ms packets, and those
//! back out through `OutboundAudio` and the dialect's `OutboundEncoder` (an echo).
//!
//! The first input byte picks the dialect (mod 3: ACS, Twilio, Vonage); the rest is
//! the stream's messages separated by `\n`, a message starting with a NUL byte being
//! binary (the rest of it), any other text (invalid UTF-8 replaced, as a WebSocket
//! text message is always UTF-8). The first refused message ends the stream, as the
//! server closes it.

use media_core::frame::FRAME_SAMPLES;
use ws_link::dialect::{
    CLOSE_INVALID_PAYLOAD, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_UNSUPPORTED, Dialect, Inbound,
    MAX_CHUNK_MS, Outbound, OutboundEncoder, StreamParser,
};
use ws_link::media::{InboundAudio, OutboundAudio};

use super::Verdict;
use crate::check::{MAX_MESSAGE_CHARS, check_message};

/// The codec state of a started stream: audio in, the echo out.
struct Started {
    inbound: InboundAudio,
    outbound: OutboundAudio,
    encoder: OutboundEncoder,
    dialect: Dialect,
}

/// Feeds one stream's messages to a parser and its audio through the link's media.
pub(crate) fn run(data: &[u8]) -> Verdict {
    let Some((&mode, rest)) = data.split_first() else {
        return Verdict::Rejected;
    };
    let dialect = Dialect::ALL[usize::from(mode) % Dialect::ALL.len()];
    let mut parser = StreamParser::new(dialect);
    let mut started: Option<Started> = None;
    let mut verdict = Verdict::Rejected;
    for message in rest.split(|b| *b == b'\n') {
        let parsed = match message.split_first() {
            Some((0, binary)) => parser.handle_binary(binary),
            _ => parser.handle_text(&String::from_utf8_lossy(message)),
        };
        let inbound = match parsed {
            Ok(inbound) => inbound,
            Err(e) => {
                let codes = [
                    CLOSE_INVALID_PAYLOAD,
                    CLOSE_POLICY,
                    CLOSE_TOO_BIG,
                    CLOSE_UNSUPPORTED,
                ];
                assert!(codes.contains(&e.code), "close code {}", e.code);
                check_message("StreamParser", &e.detail, MAX_MESSAGE_CHARS);
                break;
            }
        };
        verdict = Verdict::Accepted;
        match inbound {
            Inbound::Start(info) => {
                assert_eq!(info.dialect, dialect);
                let (Ok(inbound), Ok(outbound)) = (
                    InboundAudio::new(info.encoding),
                    OutboundAudio::new(info.encoding),
                ) else {
                    panic!("no resampler for the accepted encoding {:?}", info.encoding);
                };
                started = Some(Started {
                    inbound,
                    outbound,
                    encoder: OutboundEncoder::new(&info),
                    dialect,
                });
            }
            Inbound::Audio(chunk) => {
                let Some(s) = started.as_mut() else {
                    panic!("audio accepted before the stream started");
                };
                if let Err(e) = echo(s, &chunk) {
                    check_message("InboundAudio::push", &e, MAX_MESSAGE_CHARS);
                    break;
                }
            }
            Inbound::Mark(name) => {
                let Some(s) = started.as_ref() else {
                    panic!("a mark accepted before the stream started");
                };
                if let Some(out) = s.encoder.mark(&name) {
                    check_outbound(s.dialect, &out);
                }
            }
            Inbound::Dtmf { .. } | Inbound::Stop | Inbound::Ignored(_) => {}
        }
    }
    verdict
}

/// One chunk through the inbound media into packets, each packet back out as this
/// side's message; the error text if the chunk is refused.
fn echo(s: &mut Started, chunk: &ws_link::dialect::AudioChunk<'_>) -> Result<(), String> {
    let sample_bytes = match s.dialect {
        Dialect::Twilio => 1,
        Dialect::Acs | Dialect::Vonage => 2,
    };
    assert_eq!(chunk.bytes.len() % sample_bytes, 0, "a partial sample");
    // At most MAX_CHUNK_MS at the highest rate (ACS 24 kHz).
    let max = 24 * MAX_CHUNK_MS as usize * 2;
    assert!(
        chunk.bytes.len() <= max,
        "a chunk of {} bytes",
        chunk.bytes.len()
    );
    let Started {
        inbound,
        outbound,
        encoder,
        dialect,
    } = s;
    let mut frames = 0usize;
    inbound
        .push(chunk, |packet| {
            assert_eq!(packet.payload().len(), FRAME_SAMPLES * 2);
            frames += 1;
            match outbound.encode(packet) {
                Ok(bytes) => check_outbound(*dialect, &encoder.audio(bytes)),
                Err(e) => panic!("a 20 ms packet does not encode for the platform: {e}"),
            }
        })
        .map_err(|e| e.detail)?;
    // A chunk of n ms makes at most n / 20 + 1 frames (the partial frame before it).
    let chunk_ms = chunk.bytes.len() / sample_bytes * 1000 / rate_of(*dialect, sample_bytes);
    assert!(
        frames <= chunk_ms / 20 + 2,
        "{frames} frames from {chunk_ms} ms"
    );
    Ok(())
}

/// The slowest rate a dialect's encoding may have, for the frame count bound.
fn rate_of(dialect: Dialect, sample_bytes: usize) -> usize {
    match (dialect, sample_bytes) {
        (Dialect::Twilio, _) => 8_000,
        _ => 16_000,
    }
}

/// This side's messages are what the platform expects: JSON text for ACS and Twilio
/// (and Vonage's control messages), 640-byte frames for Vonage audio.
fn check_outbound(dialect: Dialect, out: &Outbound) {
    match out {
        Outbound::Text(text) => {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
                panic!(
                    "{dialect} message is not JSON ({e}): {}",
                    media_blob::bounded(text, 200)
                );
            }
        }
        Outbound::Binary(frame) => {
            assert_eq!(dialect, Dialect::Vonage, "a binary message on {dialect}");
            assert_eq!(frame.len(), FRAME_SAMPLES * 2);
        }
    }
}

/// Seeds: a whole stream of each dialect (start, audio, DTMF, mark, stop), ACS at
/// 24 kHz, a Vonage binary frame, and the messages a stream must refuse.
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    let acs_meta = r#"{"kind":"AudioMetadata","audioMetadata":{"subscriptionId":"sub-1","encoding":"PCM","sampleRate":16000,"channels":1,"length":640}}"#;
    let acs_audio = r#"{"kind":"AudioData","audioData":{"timestamp":"2024-11-04T10:43:56.120Z","participantRawID":"8:acs:1","data":"AAABAAIAAwA=","silent":false}}"#;
    let acs_dtmf = r#"{"kind":"DtmfData","dtmfData":{"data":"3"}}"#;
    let twilio = [
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
        r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{}},"streamSid":"MZ1"}"#,
        r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"/38A/38A"},"streamSid":"MZ1"}"#,
        r#"{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2","timestamp":500,"payload":"/38A/38A/38A/38A"},"streamSid":"MZ1"}"#,
        r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"1"}}"#,
        r#"{"event":"mark","sequenceNumber":"6","streamSid":"MZ1","mark":{"name":"greeting"}}"#,
        r#"{"event":"stop","sequenceNumber":"7","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#,
    ];
    let vonage_connected = r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000","caller":"447700900000"}"#;
    let vonage_dtmf = r#"{"event":"websocket:dtmf","digit":"5","duration":260}"#;
    let session = |mode: u8, messages: &[&[u8]]| {
        let mut v = vec![mode];
        v.extend_from_slice(&messages.join(&b'\n'));
        v
    };
    let frame = [&[0u8][..], &[0x55; FRAME_SAMPLES * 2]].concat();
    let acs_24k = acs_meta.replace("16000", "24000");
    let twilio: Vec<&[u8]> = twilio.iter().map(|m| m.as_bytes()).collect();
    vec![
        session(
            0,
            &[
                acs_meta.as_bytes(),
                acs_audio.as_bytes(),
                acs_dtmf.as_bytes(),
            ],
        ),
        session(
            0,
            &[
                acs_24k.as_bytes(),
                acs_audio.as_bytes(),
                acs_audio.as_bytes(),
            ],
        ),
        session(1, &twilio),
        session(
            2,
            &[
                vonage_connected.as_bytes(),
                &frame,
                vonage_dtmf.as_bytes(),
                &frame,
            ],
        ),
        session(2, &[&frame]),
        session(
            1,
            &[
                twilio[1],
                br#"{"event":"media","media":{"payload":"@@@@"},"streamSid":"MZ1"}"#,
            ],
        ),
        session(0, &[acs_meta.as_bytes(), acs_meta.as_bytes()]),
    ]
}
