//! Media datagrams (`transport::wire::datagram`): the 14-byte header (with an
//! unmixed stream's MSI after it) and its payload.

use transport::wire::{
    DATAGRAM_VERSION, Flags, HEADER_LEN, KIND_MIXED, KIND_UNMIXED, MAX_DATAGRAM_LEN,
    UNMIXED_HEADER_LEN, decode,
};

use super::Verdict;
use crate::check::check_display;

/// Decodes `data` as one datagram; what decodes must encode to the same bytes (but
/// for the unknown flag bits, which are sent as 0) and decode again to the same
/// datagram; only kinds 0 and 1 decode, and an unmixed one names a participant.
pub(crate) fn run(data: &[u8]) -> Verdict {
    let datagram = match decode(data) {
        Ok(d) => d,
        Err(e) => {
            check_display("datagram::decode", &e, 200);
            return Verdict::Rejected;
        }
    };
    assert!(
        data.len() <= MAX_DATAGRAM_LEN,
        "decoded {} bytes",
        data.len()
    );
    assert_eq!(data[0], DATAGRAM_VERSION);
    let mut out = [0u8; MAX_DATAGRAM_LEN];
    let n = datagram
        .encode_into(&mut out)
        .unwrap_or_else(|e| panic!("a decoded datagram does not encode: {e}"));
    // Compared in place: decoding and encoding must not allocate.
    let same = n == data.len()
        && out[..3] == [data[0], data[1] & Flags::KNOWN.bits(), data[2]]
        && out[3] == data[3]
        && out[4..n] == data[4..];
    assert!(same, "encode(decode(x)) differs from x: {:?}", &out[..n]);
    assert_eq!(
        decode(&out[..n]),
        Ok(datagram),
        "decode(encode(d)) differs from d"
    );
    let header_len = match data[3] {
        KIND_MIXED => HEADER_LEN,
        KIND_UNMIXED => UNMIXED_HEADER_LEN,
        kind => panic!("kind {kind} decoded"),
    };
    assert_eq!(datagram.header.len(), header_len);
    assert_eq!(datagram.payload.len() + header_len, data.len());
    assert_eq!(datagram.header.source == 0, data[3] == KIND_MIXED);
    Verdict::Accepted
}

/// Seeds: a datagram of each codec and flag combination, the largest, an empty
/// silence frame, and unmixed ones (an Opus frame, the largest, an empty silence).
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    use transport::wire::{Codec, DatagramHeader, DatagramRef, MAX_PAYLOAD_LEN};

    let header = |flags, codec, source| DatagramHeader {
        flags,
        codec,
        stream_id: 1,
        sequence: 0xfffe,
        timestamp: 0x0102_0304,
        source,
    };
    let pcm = [0x55u8; 640];
    let big = [0xa5u8; MAX_PAYLOAD_LEN];
    let cases: [(Flags, Codec, &[u8], u32); 9] = [
        (Flags::NONE, Codec::Pcm16k, &pcm, 0),
        (Flags::MARKER, Codec::Opus16k, &[0xfc, 0xff, 0xfe], 0),
        (Flags::FEC, Codec::Opus16k, &big, 0),
        (Flags::SILENCE, Codec::Pcm16k, &[], 0),
        (Flags::SILENCE | Flags::MARKER, Codec::Opus16k, &[0xf8], 0),
        (Flags::KNOWN, Codec::Pcm16k, &pcm, 0),
        (
            Flags::MARKER,
            Codec::Opus16k,
            &[0xfc, 0xff, 0xfe],
            0x0102_0304,
        ),
        (Flags::NONE, Codec::Opus16k, &big[4..], 7),
        (Flags::SILENCE, Codec::Pcm16k, &[], u32::MAX),
    ];
    cases
        .iter()
        .filter_map(|(flags, codec, payload, source)| {
            let mut out = vec![0u8; MAX_DATAGRAM_LEN];
            let n = DatagramRef::new(header(*flags, *codec, *source), payload)
                .encode_into(&mut out)
                .ok()?;
            out.truncate(n);
            Some(out)
        })
        .collect()
}
