//! Media datagrams: a 14-byte versioned header followed by one 20 ms audio frame.
//!
//! ```text
//!  0        1        2        3        4                                   8
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! |version | flags  | codec  |  kind  |            stream id (u32 BE)     |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! |  sequence (u16 BE)|          timestamp (u32 BE, 16 kHz)   | payload ...
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//!  8                10                                  14
//! ```
//!
//! Kind 0 ([`KIND_MIXED`]) is the call's mixed audio: the payload follows the 14 bytes.
//! Kind 1 ([`KIND_UNMIXED`]) is one participant's own (unmixed) audio: the
//! participant's media source id (MSI, u32 BE, never 0) follows the 14 bytes
//! ([`UNMIXED_HEADER_LEN`] = 18 in all), then the payload.
//!
//! Decoding borrows the payload from the input and never allocates; encoding writes
//! into a caller-owned buffer. See `docs/wire-format.md` for the full contract.

use media_core::frame::FRAME_BYTES;

use super::WireError;

/// The only datagram header version this crate speaks.
pub const DATAGRAM_VERSION: u8 = 1;

/// Length of the datagram header in bytes (of the mixed stream's; an unmixed
/// stream's adds the 4-byte MSI: [`UNMIXED_HEADER_LEN`]).
pub const HEADER_LEN: usize = 14;

/// Length of an unmixed datagram's header: the 14 bytes and the speaker's MSI.
pub const UNMIXED_HEADER_LEN: usize = HEADER_LEN + 4;

/// Kind byte (offset 3) of the call's mixed audio. Before unmixed audio this byte was
/// reserved and sent as 0: every earlier datagram is a mixed one.
pub const KIND_MIXED: u8 = 0;

/// Kind byte (offset 3) of one participant's unmixed audio: the MSI follows the header.
pub const KIND_UNMIXED: u8 = 1;

/// Most unmixed (per-speaker) streams a call negotiates
/// (`Join.unmixed`, `Accept.unmixed`).
pub const MAX_UNMIXED: u8 = media_core::packet::MAX_UNMIXED_STREAMS as u8;

/// Largest datagram (header + payload) this protocol sends or accepts, in bytes.
///
/// This is quinn's `max_datagram_size()` on a fresh connection with the default
/// initial MTU of 1200 bytes (1200 minus QUIC short header, packet number, AEAD
/// tag and DATAGRAM frame overhead), so every conforming datagram fits without
/// waiting for path MTU discovery.
pub const MAX_DATAGRAM_LEN: usize = 1162;

/// Largest payload: `MAX_DATAGRAM_LEN - HEADER_LEN` = 1148 bytes.
pub const MAX_PAYLOAD_LEN: usize = MAX_DATAGRAM_LEN - HEADER_LEN;

pub use media_core::codec::Codec;

// One payload bound for the packet type and the wire.
const _: () = assert!(MAX_PAYLOAD_LEN == media_core::packet::MAX_PAYLOAD);

/// Checks that `len` is a legal payload length for `codec`.
///
/// PCM frames are exactly [`FRAME_BYTES`] bytes, Opus frames 1 to [`MAX_PAYLOAD_LEN`]
/// bytes; a datagram flagged [`Flags::SILENCE`] may also carry an empty payload (the
/// receiver plays silence).
pub const fn check_payload_len(codec: Codec, len: usize, flags: Flags) -> Result<(), WireError> {
    if len > MAX_PAYLOAD_LEN {
        return Err(WireError::PayloadTooLarge {
            len,
            max: MAX_PAYLOAD_LEN,
        });
    }
    if len == 0 && flags.contains(Flags::SILENCE) {
        return Ok(());
    }
    match codec {
        Codec::Pcm16k if len != FRAME_BYTES => Err(WireError::PayloadSizeMismatch {
            codec,
            expected: FRAME_BYTES,
            got: len,
        }),
        Codec::Opus16k if len == 0 => Err(WireError::PayloadSizeMismatch {
            codec,
            expected: 1,
            got: 0,
        }),
        _ => Ok(()),
    }
}

/// Per-datagram flags (wire byte 1). Unknown bits are ignored on receipt and sent as 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    /// No flag set.
    pub const NONE: Flags = Flags(0);
    /// The frame is silence (may carry an empty payload).
    pub const SILENCE: Flags = Flags(0x01);
    /// First frame of a talkspurt (after silence or a discontinuity).
    pub const MARKER: Flags = Flags(0x02);
    /// The Opus payload carries in-band FEC for the previous frame.
    pub const FEC: Flags = Flags(0x04);
    /// All bits defined by version 1.
    pub const KNOWN: Flags = Flags(0x07);

    /// Flags from a raw byte; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u8) -> Flags {
        Flags(bits & Self::KNOWN.0)
    }

    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both flag sets.
    #[must_use]
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

/// The fixed-size part of a media datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DatagramHeader {
    /// Silence / marker / FEC flags.
    pub flags: Flags,
    /// Codec of the payload.
    pub codec: Codec,
    /// Stream of the call this frame belongs to, as assigned in `Accept`.
    pub stream_id: u32,
    /// Per-stream sequence number, +1 per datagram, wrapping.
    pub sequence: u16,
    /// Media time of the first sample, in 16 kHz samples, wrapping
    /// (+[`TIMESTAMP_STEP`](media_core::packet::TIMESTAMP_STEP) per 20 ms frame).
    pub timestamp: u32,
    /// Whose audio: 0 for the call's mix ([`KIND_MIXED`]), otherwise the MSI of the
    /// one participant of an unmixed stream ([`KIND_UNMIXED`], the MSI after the
    /// header). Each unmixed source numbers its own sequence and timestamps.
    pub source: u32,
}

impl DatagramHeader {
    /// Length of this header on the wire: [`HEADER_LEN`] for the mix,
    /// [`UNMIXED_HEADER_LEN`] for an unmixed stream.
    pub const fn len(&self) -> usize {
        if self.source == 0 {
            HEADER_LEN
        } else {
            UNMIXED_HEADER_LEN
        }
    }

    /// Always false: a header is never empty (clippy's `len_without_is_empty`).
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The kind byte of this header.
    pub const fn kind(&self) -> u8 {
        if self.source == 0 {
            KIND_MIXED
        } else {
            KIND_UNMIXED
        }
    }

    /// Writes the 14 header bytes into `out[..HEADER_LEN]` (the MSI of an unmixed
    /// header goes after them: [`DatagramRef::encode_into`]).
    fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = DATAGRAM_VERSION;
        out[1] = self.flags.bits();
        out[2] = self.codec.id();
        out[3] = self.kind();
        out[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        out[8..10].copy_from_slice(&self.sequence.to_be_bytes());
        out[10..14].copy_from_slice(&self.timestamp.to_be_bytes());
    }
}

/// A media datagram whose payload borrows from a caller-owned buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatagramRef<'a> {
    /// Header fields.
    pub header: DatagramHeader,
    /// The encoded audio frame.
    pub payload: &'a [u8],
}

impl<'a> DatagramRef<'a> {
    /// Pairs a header with a payload (validated on encode).
    pub const fn new(header: DatagramHeader, payload: &'a [u8]) -> Self {
        DatagramRef { header, payload }
    }

    /// Total encoded length: the header's ([`DatagramHeader::len`]) plus the
    /// payload's.
    pub const fn encoded_len(&self) -> usize {
        self.header.len() + self.payload.len()
    }

    /// Encodes into `out` and returns the number of bytes written.
    ///
    /// Fails without writing anything if the payload is illegal for the codec
    /// ([`WireError::PayloadTooLarge`], [`WireError::PayloadSizeMismatch`]) or `out`
    /// is too short ([`WireError::BufferTooSmall`]). Never allocates.
    pub fn encode_into(&self, out: &mut [u8]) -> Result<usize, WireError> {
        check_payload_len(self.header.codec, self.payload.len(), self.header.flags)?;
        let len = self.encoded_len();
        if len > MAX_DATAGRAM_LEN {
            // Only an unmixed header's 4 bytes can push a legal payload over.
            return Err(WireError::PayloadTooLarge {
                len: self.payload.len(),
                max: MAX_DATAGRAM_LEN - self.header.len(),
            });
        }
        let got = out.len();
        let Some(dst) = out.get_mut(..len) else {
            return Err(WireError::BufferTooSmall { need: len, got });
        };
        let (head, rest) = dst.split_at_mut(HEADER_LEN);
        let head: &mut [u8; HEADER_LEN] = head
            .try_into()
            .map_err(|_| WireError::BufferTooSmall { need: len, got })?;
        self.header.write(head);
        let body = if self.header.source == 0 {
            rest
        } else {
            let (msi, body) = rest.split_at_mut(4);
            msi.copy_from_slice(&self.header.source.to_be_bytes());
            body
        };
        body.copy_from_slice(self.payload);
        Ok(len)
    }

    /// Decodes a datagram, borrowing the payload from `buf`. Never allocates, never panics.
    ///
    /// Checks, in order: total length ≤ [`MAX_DATAGRAM_LEN`], header present,
    /// version, codec, kind ([`WireError::UnknownKind`]; an unmixed header must be
    /// whole, [`WireError::Truncated`], and name a participant,
    /// [`WireError::UnmixedWithoutSource`]), payload length for the codec.
    pub fn decode(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() > MAX_DATAGRAM_LEN {
            return Err(WireError::PayloadTooLarge {
                len: buf.len().saturating_sub(HEADER_LEN),
                max: MAX_PAYLOAD_LEN,
            });
        }
        let Some((head, payload)) = buf.split_first_chunk::<HEADER_LEN>() else {
            // A wrong version is the more useful diagnosis even for short input.
            if let Some(&v) = buf.first()
                && v != DATAGRAM_VERSION
            {
                return Err(WireError::UnsupportedVersion(v));
            }
            return Err(WireError::Truncated {
                need: HEADER_LEN,
                got: buf.len(),
            });
        };
        if head[0] != DATAGRAM_VERSION {
            return Err(WireError::UnsupportedVersion(head[0]));
        }
        let flags = Flags::from_bits_truncate(head[1]);
        let codec = Codec::from_id(head[2]).ok_or(WireError::UnknownCodec(head[2]))?;
        let (source, payload) = match head[3] {
            KIND_MIXED => (0, payload),
            KIND_UNMIXED => {
                let Some((msi, payload)) = payload.split_first_chunk::<4>() else {
                    return Err(WireError::Truncated {
                        need: UNMIXED_HEADER_LEN,
                        got: buf.len(),
                    });
                };
                match u32::from_be_bytes(*msi) {
                    0 => return Err(WireError::UnmixedWithoutSource),
                    msi => (msi, payload),
                }
            }
            kind => return Err(WireError::UnknownKind(kind)),
        };
        check_payload_len(codec, payload.len(), flags)?;
        let header = DatagramHeader {
            flags,
            codec,
            stream_id: u32::from_be_bytes([head[4], head[5], head[6], head[7]]),
            sequence: u16::from_be_bytes([head[8], head[9]]),
            timestamp: u32::from_be_bytes([head[10], head[11], head[12], head[13]]),
            source,
        };
        Ok(DatagramRef { header, payload })
    }
}

/// Decodes a media datagram; shorthand for [`DatagramRef::decode`].
pub fn decode(buf: &[u8]) -> Result<DatagramRef<'_>, WireError> {
    DatagramRef::decode(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use media_core::packet::TIMESTAMP_STEP;

    fn header() -> DatagramHeader {
        DatagramHeader {
            flags: Flags::MARKER,
            codec: Codec::Opus16k,
            stream_id: 7,
            sequence: 0xfffe,
            timestamp: 0x0102_0304,
            source: 0,
        }
    }

    #[test]
    fn known_bytes() {
        let payload = [0xaa, 0xbb, 0xcc];
        let mut out = [0u8; 32];
        let n = DatagramRef::new(header(), &payload)
            .encode_into(&mut out)
            .unwrap();
        assert_eq!(n, 17);
        assert_eq!(
            &out[..n],
            &[
                1, 2, 1, 0, 0, 0, 0, 7, 0xff, 0xfe, 1, 2, 3, 4, 0xaa, 0xbb, 0xcc
            ]
        );
        let d = decode(&out[..n]).unwrap();
        assert_eq!(d.header, header());
        assert_eq!(d.payload, &payload);
    }

    /// `h` with `payload`, encoded into a 64-byte buffer, and its length.
    fn encoded(h: DatagramHeader, payload: &[u8]) -> ([u8; 64], usize) {
        let mut out = [0u8; 64];
        let n = DatagramRef::new(h, payload).encode_into(&mut out).unwrap();
        (out, n)
    }

    /// The examples in docs/wire-format.md.
    #[test]
    fn documented_examples() {
        let h = DatagramHeader {
            flags: Flags::MARKER,
            codec: Codec::Opus16k,
            stream_id: 1,
            sequence: 7,
            timestamp: 7 * TIMESTAMP_STEP,
            source: 0,
        };
        let (out, n) = encoded(h, &[0xfc, 0xff, 0xfe]);
        assert_eq!(
            &out[..n],
            &[
                1, 2, 1, 0, 0, 0, 0, 1, 0, 7, 0, 0, 0x08, 0xc0, 0xfc, 0xff, 0xfe
            ]
        );
        let h = DatagramHeader {
            flags: Flags::NONE,
            codec: Codec::Pcm16k,
            stream_id: 2,
            sequence: 0xfffe,
            timestamp: 0x0102_0304,
            source: 0,
        };
        let mut out = [0u8; 700];
        let n = DatagramRef::new(h, &[0u8; 640])
            .encode_into(&mut out)
            .unwrap();
        assert_eq!(n, 654);
        assert_eq!(
            &out[..14],
            &[1, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xfe, 1, 2, 3, 4]
        );
    }

    #[test]
    fn errors() {
        let mut out = [0u8; 8];
        let p = [1u8; 3];
        assert_eq!(
            DatagramRef::new(header(), &p).encode_into(&mut out),
            Err(WireError::BufferTooSmall { need: 17, got: 8 })
        );
        assert_eq!(
            decode(&[1, 0, 0]),
            Err(WireError::Truncated { need: 14, got: 3 })
        );
        assert_eq!(decode(&[]), Err(WireError::Truncated { need: 14, got: 0 }));
        assert_eq!(decode(&[2, 0, 0]), Err(WireError::UnsupportedVersion(2)));
        let mut d = [0u8; 20];
        d[0] = 1;
        d[2] = 9;
        assert_eq!(decode(&d), Err(WireError::UnknownCodec(9)));
        d[2] = 0;
        assert_eq!(
            decode(&d),
            Err(WireError::PayloadSizeMismatch {
                codec: Codec::Pcm16k,
                expected: 640,
                got: 6
            })
        );
        let big = [1u8; MAX_DATAGRAM_LEN + 1];
        assert!(matches!(
            decode(&big),
            Err(WireError::PayloadTooLarge { .. })
        ));
        // Silence may be empty.
        let mut s = [0u8; HEADER_LEN];
        s[0] = 1;
        s[1] = Flags::SILENCE.bits();
        assert!(decode(&s).is_ok());
        s[1] = 0;
        s[2] = 1;
        assert!(decode(&s).is_err());
    }

    /// The unmixed example in docs/wire-format.md, and what an unmixed datagram must
    /// be.
    #[test]
    fn unmixed_datagrams() {
        let h = DatagramHeader {
            flags: Flags::NONE,
            codec: Codec::Opus16k,
            stream_id: 2,
            sequence: 3,
            timestamp: 3 * TIMESTAMP_STEP,
            source: 0x0102_0304,
        };
        let (out, n) = encoded(h, &[0xfc, 0xff, 0xfe]);
        assert_eq!(
            &out[..n],
            &[
                1, 0, 1, 1, 0, 0, 0, 2, 0, 3, 0, 0, 0x03, 0xc0, 1, 2, 3, 4, 0xfc, 0xff, 0xfe
            ]
        );
        let d = decode(&out[..n]).unwrap();
        assert_eq!((d.header, d.payload), (h, &[0xfc, 0xff, 0xfe][..]));
        assert_eq!(d.header.len(), UNMIXED_HEADER_LEN);
        // An unknown kind, a short unmixed header, an unmixed datagram naming nobody.
        let mut bad = out;
        bad[3] = 2;
        assert_eq!(decode(&bad[..n]), Err(WireError::UnknownKind(2)));
        assert_eq!(
            decode(&out[..16]),
            Err(WireError::Truncated { need: 18, got: 16 })
        );
        let mut nobody = out;
        nobody[14..18].fill(0);
        assert_eq!(decode(&nobody[..n]), Err(WireError::UnmixedWithoutSource));
        // The 4 MSI bytes come out of the payload's room.
        let p = [0u8; MAX_PAYLOAD_LEN];
        let mut big = [0u8; MAX_DATAGRAM_LEN + 8];
        assert_eq!(
            DatagramRef::new(h, &p).encode_into(&mut big),
            Err(WireError::PayloadTooLarge {
                len: MAX_PAYLOAD_LEN,
                max: MAX_PAYLOAD_LEN - 4
            })
        );
        let n = DatagramRef::new(h, &p[..MAX_PAYLOAD_LEN - 4])
            .encode_into(&mut big)
            .unwrap();
        assert_eq!(n, MAX_DATAGRAM_LEN);
        assert!(decode(&big[..n]).is_ok());
    }

    #[test]
    fn max_payload_fits() {
        let p = [0u8; MAX_PAYLOAD_LEN];
        let mut out = [0u8; MAX_DATAGRAM_LEN];
        let n = DatagramRef::new(header(), &p)
            .encode_into(&mut out)
            .unwrap();
        assert_eq!(n, MAX_DATAGRAM_LEN);
        let p = [0u8; MAX_PAYLOAD_LEN + 1];
        let mut out = [0u8; MAX_DATAGRAM_LEN + 1];
        assert!(
            DatagramRef::new(header(), &p)
                .encode_into(&mut out)
                .is_err()
        );
    }
}
