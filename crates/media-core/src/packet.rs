//! The media packet: one encoded 20 ms frame plus the fields the receiver needs to
//! order and time it. The transport puts one packet in one QUIC datagram.
//!
//! # Realtime safety
//! The payload lives in a fixed array inside the packet: packets are created, copied
//! and dropped without touching the heap.

use crate::codec::Codec;

/// Largest payload a packet carries: the transport's largest datagram payload
/// (1162-byte datagrams minus the 14-byte header, docs/wire-format.md), so every
/// payload the wire allows fits a packet. One `Pcm16K` frame is 640 bytes; an Opus
/// frame at any sane bitrate is far smaller.
pub const MAX_PAYLOAD: usize = 1148;

/// Samples of 16 kHz media time per 20 ms packet (the timestamp step).
pub const TIMESTAMP_STEP: u32 = crate::frame::FRAME_SAMPLES as u32;

/// [`AudioPacket::source`] of the call's mixed audio (every participant but the
/// receiver, mixed): the default. Any other value is one participant's MSI.
pub const MIXED_SOURCE: u32 = 0;

/// Most unmixed (per-speaker) streams a call carries besides the mix: Microsoft's
/// platform hands a bot the four loudest speakers.
pub const MAX_UNMIXED_STREAMS: usize = 4;

/// The payload was larger than [`MAX_PAYLOAD`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadTooLarge {
    /// Length that was offered.
    pub len: usize,
}

impl std::fmt::Display for PayloadTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "payload of {} bytes exceeds the {MAX_PAYLOAD}-byte maximum",
            self.len
        )
    }
}

impl std::error::Error for PayloadTooLarge {}

/// One encoded 20 ms audio frame.
#[derive(Clone)]
pub struct AudioPacket {
    /// Sequence number, +1 per packet, wrapping at 2^16.
    pub seq: u16,
    /// Media timestamp of the first sample, in 16 kHz samples, wrapping at 2^32.
    pub timestamp: u32,
    /// Codec of the payload.
    pub codec: Codec,
    /// The sender's voice-activity detector judged this frame silent.
    pub silence: bool,
    /// The first packet of a stream or of a talkspurt (RTP's marker bit).
    pub marker: bool,
    /// Whose audio this is: [`MIXED_SOURCE`] (0) for the call's mix, otherwise the
    /// media source id (MSI) of the one participant of an *unmixed* stream
    /// (Microsoft's `UnmixedAudioBuffer.ActiveSpeakerId`).
    pub source: u32,
    len: u16,
    payload: [u8; MAX_PAYLOAD],
}

impl std::fmt::Debug for AudioPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioPacket")
            .field("seq", &self.seq)
            .field("timestamp", &self.timestamp)
            .field("codec", &self.codec)
            .field("silence", &self.silence)
            .field("marker", &self.marker)
            .field("source", &self.source)
            .field("len", &self.len)
            .finish()
    }
}

impl AudioPacket {
    /// A packet with an empty payload.
    pub const fn empty(codec: Codec) -> Self {
        Self {
            seq: 0,
            timestamp: 0,
            codec,
            silence: false,
            marker: false,
            source: MIXED_SOURCE,
            len: 0,
            payload: [0; MAX_PAYLOAD],
        }
    }

    /// A packet carrying a copy of `payload`.
    pub fn new(
        seq: u16,
        timestamp: u32,
        codec: Codec,
        payload: &[u8],
    ) -> Result<Self, PayloadTooLarge> {
        let mut p = Self::empty(codec);
        p.seq = seq;
        p.timestamp = timestamp;
        p.set_payload(payload)?;
        Ok(p)
    }

    /// True if this packet carries one participant's unmixed audio
    /// (`source != MIXED_SOURCE`).
    pub fn is_unmixed(&self) -> bool {
        self.source != MIXED_SOURCE
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload[..self.len as usize]
    }

    /// Replaces the payload with a copy of `payload`.
    pub fn set_payload(&mut self, payload: &[u8]) -> Result<(), PayloadTooLarge> {
        if payload.len() > MAX_PAYLOAD {
            return Err(PayloadTooLarge { len: payload.len() });
        }
        self.payload[..payload.len()].copy_from_slice(payload);
        self.len = payload.len() as u16;
        Ok(())
    }

    /// The whole payload buffer, for a codec to encode into; follow with
    /// [`AudioPacket::set_len`].
    pub fn payload_buf_mut(&mut self) -> &mut [u8; MAX_PAYLOAD] {
        &mut self.payload
    }

    /// Sets the payload length after writing into [`AudioPacket::payload_buf_mut`].
    pub fn set_len(&mut self, len: usize) -> Result<(), PayloadTooLarge> {
        if len > MAX_PAYLOAD {
            return Err(PayloadTooLarge { len });
        }
        self.len = len as u16;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_bounded() {
        let p = AudioPacket::new(1, 320, Codec::Pcm16k, &[7; 640]).expect("fits");
        assert_eq!(p.payload().len(), 640);
        assert_eq!(
            AudioPacket::new(1, 320, Codec::Opus16k, &[0; MAX_PAYLOAD + 1]).expect_err("too big"),
            PayloadTooLarge {
                len: MAX_PAYLOAD + 1
            }
        );
    }
}
