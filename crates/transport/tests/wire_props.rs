//! Property tests of the sans-IO wire format.
#![allow(clippy::unwrap_used)]

use media_core::frame::FRAME_BYTES;
use proptest::prelude::*;
use transport::wire::*;
use uuid::Uuid;

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::Pcm16k), Just(Codec::Opus16k)]
}

/// Whose audio: the mix (0) or one participant's unmixed stream (any other MSI).
fn source() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 1u32..]
}

/// A header (mixed or unmixed) plus a payload that is legal for its codec.
fn datagram() -> impl Strategy<Value = (DatagramHeader, Vec<u8>)> {
    (
        codec(),
        0u8..8,
        any::<u32>(),
        any::<u16>(),
        any::<u32>(),
        source(),
    )
        .prop_flat_map(|(codec, flags, stream_id, sequence, timestamp, source)| {
            let flags = Flags::from_bits_truncate(flags);
            let header = DatagramHeader {
                flags,
                codec,
                stream_id,
                sequence,
                timestamp,
                source,
            };
            let min = if flags.contains(Flags::SILENCE) { 0 } else { 1 };
            let payload = match codec {
                Codec::Pcm16k if flags.contains(Flags::SILENCE) => prop_oneof![
                    Just(Vec::new()),
                    prop::collection::vec(any::<u8>(), FRAME_BYTES)
                ]
                .boxed(),
                Codec::Pcm16k => prop::collection::vec(any::<u8>(), FRAME_BYTES).boxed(),
                Codec::Opus16k => {
                    prop::collection::vec(any::<u8>(), min..=MAX_DATAGRAM_LEN - header.len())
                        .boxed()
                }
            };
            (Just(header), payload)
        })
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}

fn finite() -> impl Strategy<Value = f32> {
    -1.0e6f32..1.0e6
}

fn control() -> impl Strategy<Value = ControlMessage> {
    let join = (
        any::<u16>(),
        uuid(),
        uuid(),
        prop::collection::vec(uuid(), 0..4),
        prop::collection::vec(uuid(), 0..4),
        prop::collection::vec(codec(), 0..3),
        prop::collection::vec("[a-z0-9]{1,12}", 0..3),
        any::<u8>(),
    )
        .prop_map(|(version, s, c, src, ren, codecs, unknown, unmixed)| {
            ControlMessage::Join(Join {
                version,
                mp_media_session_id: s,
                call_id: c,
                audio_source_contexts: src,
                audio_render_contexts: ren,
                codecs,
                // Names that are not codecs of this version (`opus48k`, ...).
                unknown_codecs: unknown
                    .into_iter()
                    .filter(|n| n.parse::<Codec>().is_err() && n != "pcm16k" && n != "opus16k")
                    .collect(),
                unmixed,
            })
        });
    let assignment = (uuid(), any::<u32>(), any::<bool>()).prop_map(|(context, stream_id, src)| {
        StreamAssignment {
            context,
            stream_id,
            direction: if src {
                StreamDirection::Source
            } else {
                StreamDirection::Render
            },
        }
    });
    let accept = (
        any::<u16>(),
        codec(),
        prop::collection::vec(assignment, 0..4),
        any::<u32>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(version, codec, streams, max_payload, unmixed, mixed)| {
            ControlMessage::Accept(Accept {
                version,
                codec,
                streams,
                max_payload,
                unmixed,
                mixed,
            })
        });
    let reject_code = prop::sample::select(vec![
        RejectCode::UnknownSession,
        RejectCode::AlreadyJoined,
        RejectCode::UnsupportedVersion,
        RejectCode::NoCommonCodec,
        RejectCode::InvalidJoin,
        RejectCode::Overloaded,
        RejectCode::Other,
    ]);
    let reject = (reject_code, text()).prop_map(|(c, m)| ControlMessage::Reject(Reject::new(c, m)));
    let leave = text().prop_map(|reason| ControlMessage::Leave(Leave { reason }));
    let dtmf = (
        prop::sample::select(DtmfTone::ALL.to_vec()),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(tone, stream_id, duration_ms)| {
            ControlMessage::Dtmf(Dtmf {
                tone,
                stream_id,
                duration_ms,
            })
        });
    let dominant =
        any::<u32>().prop_map(|msi| ControlMessage::DominantSpeaker(DominantSpeaker { msi }));
    let active = prop::collection::vec(any::<u32>(), 0..6)
        .prop_map(|msis| ControlMessage::ActiveSpeakers(ActiveSpeakers { msis }));
    let status = any::<bool>().prop_map(|a| {
        ControlMessage::SendStatus(SendStatus {
            status: if a {
                SendStatusKind::Active
            } else {
                SendStatusKind::Inactive
            },
        })
    });
    let stats = (
        finite(),
        finite(),
        finite(),
        finite(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                jitter_ms,
                max_jitter_ms,
                loss_pct,
                rtt_ms,
                packets_sent,
                packets_received,
                packets_lost,
            )| {
                ControlMessage::Stats(StatsReport {
                    jitter_ms,
                    max_jitter_ms,
                    loss_pct,
                    rtt_ms,
                    packets_sent,
                    packets_received,
                    packets_lost,
                    ..StatsReport::default()
                })
            },
        );
    prop_oneof![
        join, accept, reject, leave, dtmf, dominant, active, status, stats
    ]
}

/// Decodes `bytes` fed in chunks whose sizes cycle through `splits`.
fn decode_in_chunks(bytes: &[u8], splits: &[usize]) -> Vec<Result<ControlMessage, WireError>> {
    let mut dec = ControlDecoder::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = splits
            .get(i % splits.len().max(1))
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        dec.push(&rest[..n]);
        rest = &rest[n..];
        i += 1;
        while let Some(m) = dec.poll() {
            out.push(m);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn datagram_round_trip((header, payload) in datagram()) {
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let d = DatagramRef::new(header, &payload);
        let n = d.encode_into(&mut buf).unwrap();
        prop_assert_eq!(n, header.len() + payload.len());
        prop_assert_eq!(header.len(), if header.source == 0 { HEADER_LEN } else { UNMIXED_HEADER_LEN });
        prop_assert!(n <= MAX_DATAGRAM_LEN);
        let back = decode(&buf[..n]).unwrap();
        prop_assert_eq!(back, d);
        // Too small a buffer is an error, never a panic or a partial write claim.
        let short = matches!(d.encode_into(&mut buf[..n - 1]), Err(WireError::BufferTooSmall { .. }));
        prop_assert!(short);
    }

    #[test]
    fn datagram_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1300)) {
        if let Ok(d) = decode(&bytes) {
            // Whatever decodes re-encodes to the same bytes (modulo reserved bits).
            let mut buf = [0u8; MAX_DATAGRAM_LEN];
            let n = d.encode_into(&mut buf).unwrap();
            prop_assert_eq!(n, bytes.len());
            prop_assert_eq!(&buf[4..n], &bytes[4..]);
        }
    }

    /// Unmixed framing is refused by name whatever else the datagram holds: an unknown
    /// kind byte, an unmixed header cut short, an unmixed datagram naming MSI 0.
    #[test]
    fn malformed_unmixed_datagrams_are_refused_by_name(
        (header, payload) in datagram(),
        kind in 2u8..,
        cut in 0usize..4,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM_LEN];
        let n = DatagramRef::new(header, &payload).encode_into(&mut buf).unwrap();
        buf.truncate(n);
        let mut bad = buf.clone();
        bad[3] = kind;
        prop_assert_eq!(decode(&bad), Err(WireError::UnknownKind(kind)));
        if header.source != 0 {
            prop_assert_eq!(
                decode(&buf[..HEADER_LEN + cut]),
                Err(WireError::Truncated { need: UNMIXED_HEADER_LEN, got: HEADER_LEN + cut })
            );
            let mut nobody = buf.clone();
            nobody[HEADER_LEN..UNMIXED_HEADER_LEN].fill(0);
            prop_assert_eq!(decode(&nobody), Err(WireError::UnmixedWithoutSource));
        } else {
            // A mixed datagram read as unmixed takes its MSI from the payload: it
            // decodes (a different datagram) or is refused, never panics.
            let mut as_unmixed = buf.clone();
            as_unmixed[3] = KIND_UNMIXED;
            let _ = decode(&as_unmixed);
        }
    }

    #[test]
    fn datagram_decoder_on_valid_prefix_mutations(
        (header, payload) in datagram(),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM_LEN];
        let n = DatagramRef::new(header, &payload).encode_into(&mut buf).unwrap();
        buf.truncate(n);
        let i = pos.index(n);
        buf[i] = byte;
        let _ = decode(&buf);
        let _ = decode(&buf[..i]);
    }

    #[test]
    fn control_round_trip_any_split(
        msgs in prop::collection::vec(control(), 1..6),
        splits in prop::collection::vec(1usize..64, 1..8),
    ) {
        let mut bytes = Vec::new();
        for m in &msgs {
            encode_control_into(m, &mut bytes).unwrap();
        }
        let whole = decode_in_chunks(&bytes, &[bytes.len()]);
        let split = decode_in_chunks(&bytes, &splits);
        let expected: Vec<_> = msgs.iter().cloned().map(Ok).collect();
        prop_assert_eq!(&whole, &expected);
        prop_assert_eq!(&split, &expected);
    }

    #[test]
    fn control_decoder_never_panics_and_split_invariant(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        splits in prop::collection::vec(1usize..40, 1..8),
    ) {
        let whole = decode_in_chunks(&bytes, &[bytes.len()]);
        let split = decode_in_chunks(&bytes, &splits);
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn control_decoder_garbage_frames_split_invariant(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..6),
        valid in control(),
        splits in prop::collection::vec(1usize..40, 1..8),
    ) {
        // Well-framed garbage bodies interleaved with a valid message: errors and the
        // message come out the same way regardless of the split.
        let mut bytes = Vec::new();
        for f in &frames {
            bytes.extend_from_slice(&(f.len() as u32).to_be_bytes());
            bytes.extend_from_slice(f);
            encode_control_into(&valid, &mut bytes).unwrap();
        }
        let whole = decode_in_chunks(&bytes, &[bytes.len()]);
        let split = decode_in_chunks(&bytes, &splits);
        prop_assert_eq!(whole.len(), frames.len() * 2);
        prop_assert_eq!(&whole, &split);
        for pair in whole.chunks(2) {
            prop_assert_eq!(&pair[1], &Ok(valid.clone()));
        }
    }
}
