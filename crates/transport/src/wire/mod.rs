//! Sans-IO wire format: media datagrams and control-stream messages.
//!
//! Nothing here touches a socket or a clock. [`datagram`] encodes and decodes the
//! unreliable media datagrams without allocating; [`control`] defines the JSON control
//! messages and an incremental, length-prefixed framing decoder
//! ([`ControlDecoder`]) that accepts bytes split at any boundary.

pub mod control;
pub mod datagram;

pub use control::{
    AUDIO_ALPN, Accept, ActiveSpeakers, ControlDecoder, ControlMessage, DominantSpeaker, Dtmf,
    DtmfTone, Join, JsonErrorKind, Leave, MAX_CONTROL_LEN, NO_DOMINANT_SPEAKER, PROTOCOL_VERSION,
    Reject, RejectCode, SendStatus, SendStatusKind, StatsReport, StreamAssignment, StreamDirection,
    encode_control, encode_control_into,
};
pub use datagram::{
    Codec, DATAGRAM_VERSION, DatagramHeader, DatagramRef, Flags, HEADER_LEN, KIND_MIXED,
    KIND_UNMIXED, MAX_DATAGRAM_LEN, MAX_PAYLOAD_LEN, MAX_UNMIXED, UNMIXED_HEADER_LEN,
    check_payload_len, decode,
};

/// What is wrong with bytes received from (or about to be sent to) the wire.
///
/// Small and `Copy`: the datagram hot path returns it without allocating. The
/// datagram variants blame the peer (it sent something this version cannot read)
/// except [`WireError::BufferTooSmall`], which blames the caller of `encode_into`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the fixed header needs.
    #[error("truncated: need {need} bytes, got {got}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// The version byte is not [`DATAGRAM_VERSION`].
    #[error("unsupported datagram version {0} (this side speaks version 1)")]
    UnsupportedVersion(u8),
    /// The codec byte names no known codec.
    #[error("unknown codec id {0}")]
    UnknownCodec(u8),
    /// The kind byte (offset 3) is neither 0 (mixed audio) nor 1 (unmixed audio).
    #[error("unknown datagram kind {0} (0 = mixed audio, 1 = unmixed audio)")]
    UnknownKind(u8),
    /// An unmixed datagram names media source id 0: it must name its participant.
    #[error("unmixed datagram with MSI 0 (an unmixed stream names its participant)")]
    UnmixedWithoutSource,
    /// The payload exceeds [`MAX_PAYLOAD_LEN`].
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// Payload length found.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The payload length is illegal for the codec (PCM must be exactly 640 bytes).
    #[error("{codec} payload must be {expected} bytes, got {got}")]
    PayloadSizeMismatch {
        /// Codec of the datagram.
        codec: Codec,
        /// Expected (for Opus: minimum) length.
        expected: usize,
        /// Length found.
        got: usize,
    },
    /// The caller's output buffer is too small for the encoded datagram or message.
    #[error("output buffer too small: need {need} bytes, got {got}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        got: usize,
    },
    /// A control frame's length prefix exceeds [`MAX_CONTROL_LEN`]. The stream
    /// cannot be resynchronised: the decoder stays in this error.
    #[error("control message of {len} bytes exceeds the maximum of {max}")]
    ControlTooLarge {
        /// Length announced by the prefix (or of the message being encoded).
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A control frame's body is not a valid control message.
    #[error("invalid control message ({kind:?} error at line {line}, column {column})")]
    InvalidControl {
        /// Broad class of the JSON error.
        kind: JsonErrorKind,
        /// 1-based line in the body (0 if unknown).
        line: usize,
        /// 1-based column in the body (0 if unknown).
        column: usize,
    },
}
