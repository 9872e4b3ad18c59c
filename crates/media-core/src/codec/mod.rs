//! Audio codecs behind one interface: raw PCM16K and Opus (16 kHz mono, 20 ms).
//!
//! Every codec works on one 20 ms `Pcm16K` frame at a time. Decoders conceal a lost
//! frame ([`AudioDecoder::conceal`], packet-loss concealment) and may recover it from
//! the in-band forward error correction of the *next* packet
//! ([`AudioDecoder::decode_fec`]). How much FEC an encoder sends follows the
//! receiver's loss reports ([`adapt`], [`AudioEncoder::set_expected_loss`]).
//!
//! Implementations: [`PcmEncoder`]/[`PcmDecoder`] (raw; G.711 Appendix I-style
//! pitch-period concealment with comfort noise and merge; no FEC) and [`OpusEncoder`]/[`OpusDecoder`] (libopus
//! PLC and in-band FEC). [`new_encoder`] and [`new_decoder`] pick one by
//! [`Codec`].
//!
//! # Realtime safety
//! Codec state is created by the constructors, outside the per-frame path. `encode`,
//! `decode`, `conceal` and `decode_fec` write into caller-owned buffers and do not
//! allocate in Rust. (libopus is C: it does not allocate per call either, but a Rust
//! counting allocator cannot see inside it.)

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::frame::FRAME_SAMPLES;

/// The audio codec of a call: negotiated when the call is set up, carried by every
/// packet. The one codec enum of the workspace; links map it to their own
/// identifiers (the QUIC wire's codec byte [`Codec::id`], an RTP payload type, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Codec {
    /// Raw 16 kHz mono PCM, 640 little-endian bytes per frame (`"pcm16k"`).
    Pcm16k,
    /// Opus, 16 kHz mono, 20 ms per packet (`"opus16k"`).
    Opus16k,
}

impl Codec {
    /// Every codec, most preferred first by default.
    pub const ALL: [Codec; 2] = [Codec::Pcm16k, Codec::Opus16k];

    /// The codec's numeric identifier (byte 2 of a QUIC media datagram).
    pub const fn id(self) -> u8 {
        match self {
            Codec::Pcm16k => 0,
            Codec::Opus16k => 1,
        }
    }

    /// The codec with numeric identifier `id`, if any.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Codec::Pcm16k),
            1 => Some(Codec::Opus16k),
            _ => None,
        }
    }

    /// Its name on the wire and in configuration (`pcm16k`, `opus16k`).
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcm16k => "pcm16k",
            Codec::Opus16k => "opus16k",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pcm16k" | "pcm" => Ok(Codec::Pcm16k),
            "opus16k" | "opus" => Ok(Codec::Opus16k),
            _ => Err(format!("unknown codec {s:?} (expected pcm16k or opus16k)")),
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
    fn kind(&self) -> Codec;
    /// Encodes one frame into `out`, returning the payload length.
    fn encode(&mut self, frame: &[i16; FRAME_SAMPLES], out: &mut [u8])
    -> Result<usize, CodecError>;
    /// Sets the packet loss the encoder should protect against, in percent (0: none;
    /// see [`adapt`]). Codecs without FEC ignore it. Cheap (no allocation): callable
    /// between frames.
    fn set_expected_loss(&mut self, _percent: u8) -> Result<(), CodecError> {
        Ok(())
    }
}

/// Decodes payloads into 20 ms `Pcm16K` frames and conceals lost ones.
pub trait AudioDecoder: Send {
    /// The codec this decoder reads.
    fn kind(&self) -> Codec;
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

pub mod adapt;
pub mod opus;
pub mod pcm;

pub use self::adapt::LossAdapter;
pub use self::opus::{OpusConfig, OpusDecoder, OpusEncoder};
pub use self::pcm::{PcmDecoder, PcmEncoder};

/// Creates an encoder of `kind` (`opus` applies to Opus only). Codec state is
/// allocated here, outside the per-frame path.
pub fn new_encoder(kind: Codec, opus: &OpusConfig) -> Result<Box<dyn AudioEncoder>, CodecError> {
    Ok(match kind {
        Codec::Pcm16k => Box::new(PcmEncoder::new()),
        Codec::Opus16k => Box::new(OpusEncoder::new(opus)?),
    })
}

/// Creates a decoder of `kind`. Codec state is allocated here, outside the
/// per-frame path.
pub fn new_decoder(kind: Codec) -> Result<Box<dyn AudioDecoder>, CodecError> {
    Ok(match kind {
        Codec::Pcm16k => Box::new(PcmDecoder::new()),
        Codec::Opus16k => Box::new(OpusDecoder::new()?),
    })
}

#[cfg(test)]
mod factory_tests {
    use super::*;

    #[test]
    fn factory_builds_each_kind() {
        for kind in [Codec::Pcm16k, Codec::Opus16k] {
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
            assert_eq!(Codec::from_id(kind.id()), Some(kind));
            assert_eq!(kind.name().parse::<Codec>(), Ok(kind));
        }
    }
}
