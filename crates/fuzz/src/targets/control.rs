//! The control stream (`transport::wire::control`): length-prefixed JSON messages fed
//! to a [`ControlDecoder`] in chunks of any size.
//!
//! The first input byte says how to read the rest: bit 0 clear, the rest is the raw
//! stream; bit 0 set, the rest is message bodies separated by `\n`, each framed here
//! with its correct length prefix (so mutated JSON still reaches the message parser).
//! The other 7 bits seed the chunk sizes.

use transport::wire::{Codec, ControlDecoder, ControlMessage, MAX_CONTROL_LEN, WireError};
use transport::wire::{encode_control, encode_control_into};

use super::Verdict;
use crate::check::{MAX_MESSAGE_CHARS, check_message};

/// Decodes `data` as a control stream, whole and in chunks, and checks the messages.
pub(crate) fn run(data: &[u8]) -> Verdict {
    let Some((&mode, rest)) = data.split_first() else {
        return Verdict::Rejected;
    };
    let stream = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        frame_bodies(rest)
    };
    let whole = decode_all(&stream, &mut std::iter::repeat(stream.len().max(1)));
    let chunked = decode_all(&stream, &mut ChunkSizes::new(mode >> 1));
    assert_eq!(
        whole, chunked,
        "the decoder's output depends on where the stream was split"
    );

    let mut verdict = Verdict::Rejected;
    for result in whole {
        match result {
            Ok(message) => {
                check_message_round_trip(&message);
                verdict = Verdict::Accepted;
            }
            Err(e) => check_message("ControlDecoder", &e.to_string(), 300),
        }
    }
    verdict
}

/// Each `\n`-separated body with its big-endian `u32` length prefix.
fn frame_bodies(bodies: &[u8]) -> Vec<u8> {
    let mut stream = Vec::with_capacity(bodies.len() + 16);
    for body in bodies.split(|b| *b == b'\n') {
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        stream.extend_from_slice(&len.to_be_bytes());
        stream.extend_from_slice(body);
    }
    stream
}

/// Every result a fresh decoder gives for `stream` pushed in chunks of `sizes`,
/// polling to the end after each push.
fn decode_all(
    stream: &[u8],
    sizes: &mut dyn Iterator<Item = usize>,
) -> Vec<Result<ControlMessage, WireError>> {
    let mut decoder = ControlDecoder::new();
    let mut results = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        decoder.push(chunk);
        while let Some(result) = decoder.poll() {
            results.push(result);
        }
        // Only an incomplete frame stays buffered.
        assert!(
            decoder.buffered() < 4 + MAX_CONTROL_LEN + n,
            "{} bytes buffered after polling",
            decoder.buffered()
        );
        if decoder.is_failed() {
            assert_eq!(decoder.buffered(), 0, "a failed decoder keeps its buffer");
        }
    }
    results
}

/// A decoded message encodes, and the encoding decodes to the same message; a join's
/// codec choice is one it offered, or a bounded, printable reject.
fn check_message_round_trip(message: &ControlMessage) {
    let bytes = encode_control(message)
        .unwrap_or_else(|e| panic!("a decoded {} message does not encode: {e}", message.kind()));
    let mut appended = b"xyz".to_vec();
    let n = encode_control_into(message, &mut appended).unwrap_or(0);
    assert_eq!(
        &appended[3..],
        &bytes[..],
        "encode_control_into differs from encode_control"
    );
    assert_eq!(n, bytes.len());
    let mut decoder = ControlDecoder::new();
    decoder.push(&bytes);
    assert_eq!(
        decoder.poll().as_ref(),
        Some(&Ok(message.clone())),
        "decode(encode(m)) != m"
    );
    assert_eq!(decoder.poll(), None);

    if let ControlMessage::Join(join) = message {
        for supported in [&[Codec::Pcm16k, Codec::Opus16k][..], &[Codec::Opus16k], &[]] {
            match join.choose_codec(supported) {
                Ok(codec) => assert!(join.codecs.contains(&codec) && supported.contains(&codec)),
                // 16 unknown names of 32 characters, each escaped to at most 6.
                Err(reject) => {
                    check_message("Join::choose_codec", &reject.message, MAX_MESSAGE_CHARS * 2)
                }
            }
        }
    }
}

/// Chunk sizes from a 7-bit seed: a size class (1, 2 to 7, up to 64, up to 4096 bytes)
/// and an xorshift for the sizes within it.
struct ChunkSizes {
    state: u32,
    max: u32,
}

impl ChunkSizes {
    fn new(seed: u8) -> Self {
        let max = [1, 7, 64, 4096][usize::from(seed & 3)];
        ChunkSizes {
            state: 0x9e37_79b9 ^ u32::from(seed),
            max,
        }
    }
}

impl Iterator for ChunkSizes {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        usize::try_from(1 + self.state % self.max).ok()
    }
}

/// Seeds: every message type, framed as a raw stream (one per seed and all in one)
/// and as `\n`-separated bodies; a join offering an unknown codec; an oversized prefix.
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    use transport::wire::{
        Accept, ActiveSpeakers, DominantSpeaker, Dtmf, DtmfTone, Join, Leave, Reject, RejectCode,
        SendStatus, SendStatusKind, StreamAssignment, StreamDirection,
    };
    use uuid::Uuid;

    let id = Uuid::from_u128;
    let messages = [
        ControlMessage::Join(Join::new(id(1), id(2), vec![id(3)], vec![id(4)])),
        ControlMessage::Accept(Accept {
            version: 1,
            codec: Codec::Opus16k,
            streams: vec![StreamAssignment {
                context: id(3),
                stream_id: 1,
                direction: StreamDirection::Source,
            }],
            max_payload: 1148,
            unmixed: 0,
            mixed: true,
        }),
        // Unmixed audio: a join offering four speakers' streams, an accept granting
        // two and no mix.
        ControlMessage::Join(Join {
            unmixed: 4,
            ..Join::new(id(1), id(2), vec![id(3)], vec![id(4)])
        }),
        ControlMessage::Accept(Accept {
            version: 1,
            codec: Codec::Pcm16k,
            streams: Vec::new(),
            max_payload: 1148,
            unmixed: 2,
            mixed: false,
        }),
        ControlMessage::Reject(Reject::new(RejectCode::NoCommonCodec, "no codec")),
        ControlMessage::Leave(Leave {
            reason: "call terminated".into(),
        }),
        ControlMessage::Dtmf(Dtmf {
            tone: DtmfTone::Pound,
            stream_id: 1,
            duration_ms: 80,
        }),
        ControlMessage::DominantSpeaker(DominantSpeaker { msi: 10 }),
        ControlMessage::ActiveSpeakers(ActiveSpeakers {
            msis: vec![10, 11, 12],
        }),
        ControlMessage::SendStatus(SendStatus {
            status: SendStatusKind::Active,
        }),
    ];
    // From its JSON: the report grows fields, all of them defaulted on decode.
    let stats = r#"{"type":"stats","jitterMs":3.5,"maxJitterMs":12.25,"lossPct":0.5,"rttMs":40.0,"packetsSent":500,"packetsReceived":498,"packetsLost":2}"#;
    let messages = messages.into_iter().chain(serde_json::from_str(stats).ok());
    let mut seeds = Vec::new();
    let mut all = vec![0u8];
    let mut bodies = vec![1u8];
    for m in messages {
        let Ok(frame) = encode_control(&m) else {
            continue;
        };
        all.extend_from_slice(&frame);
        let mut raw = vec![0u8];
        raw.extend_from_slice(&frame);
        seeds.push(raw);
        if bodies.len() > 1 {
            bodies.push(b'\n');
        }
        bodies.extend_from_slice(&frame[4..]);
    }
    seeds.push(all);
    seeds.push(bodies);
    let join = r#"{"type":"join","version":1,"mpMediaSessionId":"00000000-0000-0000-0000-000000000001","callId":"00000000-0000-0000-0000-000000000002","audioSourceContexts":[],"audioRenderContexts":["00000000-0000-0000-0000-000000000004"],"codecs":["opus48k","pcm16k"],"extra":{"x":[1]}}"#;
    seeds.push([&[3u8][..], join.as_bytes()].concat());
    seeds.push([&[0u8, 0, 1, 0, 1][..], b"{}"].concat());
    seeds
}
