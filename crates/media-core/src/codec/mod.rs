//! Audio codecs behind one interface: raw PCM16K and Opus (16 kHz mono, 20 ms).
//!
//! Every codec works on one 20 ms `Pcm16K` frame at a time. Decoders conceal a lost
//! frame ([`AudioDecoder::conceal`], packet-loss concealment) and may recover it from
//! the in-band forward error correction of the *next* packet
//! ([`AudioDecoder::decode_fec`]).
//!
//! Implementations: [`PcmEncoder`]/[`PcmDecoder`] (raw; concealment repeats the last
//! frame with a 60 ms fade-out; no FEC) and [`OpusEncoder`]/[`OpusDecoder`] (libopus
//! PLC and in-band FEC). [`new_encoder`] and [`new_decoder`] pick one by
//! [`CodecKind`].
//!
//! # Realtime safety
//! Codec state is created by the constructors, outside the per-frame path. `encode`,
//! `decode`, `conceal` and `decode_fec` write into caller-owned buffers and do not
//! allocate in Rust. (libopus is C: it does not allocate per call either, but a Rust
//! counting allocator cannot see inside it.)

use std::fmt;

use crate::frame::FRAME_SAMPLES;

/// Which codec a payload is in. The numeric value is the wire identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CodecKind {
    /// Raw 16 kHz mono PCM, 640 little-endian bytes per frame.
    Pcm16k = 0,
    /// Opus, 16 kHz mono, 20 ms per packet.
    Opus = 1,
}

impl CodecKind {
    /// From the wire identifier.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Pcm16k),
            1 => Some(Self::Opus),
            _ => None,
        }
    }
}

/// A codec call failed. Small and `Copy`: safe to return from the per-frame path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The payload is not a valid packet for this codec (the sender's fault).
    InvalidPayload,
    /// The payload decodes to a length other than one 20 ms frame.
    WrongFrameLength {
        /// Samples the payload decoded to.
        got: usize,
    },
    /// The output buffer is too small for the encoded packet.
    BufferTooSmall,
    /// The codec library reported an internal error (its numeric code).
    Internal(i32),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPayload => write!(f, "payload is not a valid packet for this codec"),
            Self::WrongFrameLength { got } => {
                write!(
                    f,
                    "payload decodes to {got} samples, expected {FRAME_SAMPLES}"
                )
            }
            Self::BufferTooSmall => write!(f, "output buffer too small for the encoded packet"),
            Self::Internal(code) => write!(f, "codec library error {code}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Encodes 20 ms `Pcm16K` frames into payloads.
pub trait AudioEncoder: Send {
    /// The codec this encoder produces.
    fn kind(&self) -> CodecKind;
    /// Encodes one frame into `out`, returning the payload length.
    fn encode(&mut self, frame: &[i16; FRAME_SAMPLES], out: &mut [u8])
    -> Result<usize, CodecError>;
}

/// Decodes payloads into 20 ms `Pcm16K` frames and conceals lost ones.
pub trait AudioDecoder: Send {
    /// The codec this decoder reads.
    fn kind(&self) -> CodecKind;
    /// Decodes one payload into one frame.
    fn decode(&mut self, payload: &[u8], out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError>;
    /// Produces one frame of concealment for a lost packet (PLC).
    fn conceal(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError>;
    /// Recovers the lost frame that precedes `next_payload` from its in-band FEC.
    /// Returns `Ok(false)` (and conceals instead) when the codec or packet has no FEC.
    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        out: &mut [i16; FRAME_SAMPLES],
    ) -> Result<bool, CodecError>;
}

pub mod opus;
pub mod pcm;

pub use self::opus::{OpusConfig, OpusDecoder, OpusEncoder};
pub use self::pcm::{PcmDecoder, PcmEncoder};

/// Creates an encoder of `kind` (`opus` applies to Opus only). Codec state is
/// allocated here, outside the per-frame path.
pub fn new_encoder(
    kind: CodecKind,
    opus: &OpusConfig,
) -> Result<Box<dyn AudioEncoder>, CodecError> {
    Ok(match kind {
        CodecKind::Pcm16k => Box::new(PcmEncoder::new()),
        CodecKind::Opus => Box::new(OpusEncoder::new(opus)?),
    })
}

/// Creates a decoder of `kind`. Codec state is allocated here, outside the
/// per-frame path.
pub fn new_decoder(kind: CodecKind) -> Result<Box<dyn AudioDecoder>, CodecError> {
    Ok(match kind {
        CodecKind::Pcm16k => Box::new(PcmDecoder::new()),
        CodecKind::Opus => Box::new(OpusDecoder::new()?),
    })
}

#[cfg(test)]
mod factory_tests {
    use super::*;

    #[test]
    fn factory_builds_each_kind() {
        for kind in [CodecKind::Pcm16k, CodecKind::Opus] {
            let mut enc = new_encoder(kind, &OpusConfig::default()).expect("encoder");
            let mut dec = new_decoder(kind).expect("decoder");
            assert_eq!((enc.kind(), dec.kind()), (kind, kind));
            let mut buf = [0u8; 1024];
            let n = enc.encode(&[0; FRAME_SAMPLES], &mut buf).expect("encode");
            let mut out = [1i16; FRAME_SAMPLES];
            dec.decode(&buf[..n], &mut out).expect("decode");
            assert!(
                out.iter().all(|&s| s.abs() < 4),
                "silence decodes to silence"
            );
            assert_eq!(CodecKind::from_u8(kind as u8), Some(kind));
        }
    }
}
