//! Raw `Pcm16K`: 640 little-endian bytes per 20 ms frame.
//!
//! # Realtime safety
//! No heap state at all; every call copies one frame between caller-owned buffers.

use super::{AudioDecoder, AudioEncoder, Codec, CodecError};
use crate::frame::{FRAME_BYTES, FRAME_SAMPLES};

/// Frames of concealment over which [`PcmDecoder`] fades the repeated last frame out.
pub const PCM_FADE_FRAMES: u32 = 3;

/// Encodes frames as raw little-endian PCM.
#[derive(Debug, Clone, Default)]
pub struct PcmEncoder;

impl PcmEncoder {
    /// A PCM encoder.
    pub fn new() -> Self {
        Self
    }
}

impl AudioEncoder for PcmEncoder {
    fn kind(&self) -> Codec {
        Codec::Pcm16k
    }

    fn encode(
        &mut self,
        frame: &[i16; FRAME_SAMPLES],
        out: &mut [u8],
    ) -> Result<usize, CodecError> {
        let out = out
            .get_mut(..FRAME_BYTES)
            .ok_or(CodecError::BufferTooSmall)?;
        for (b, s) in out.chunks_exact_mut(2).zip(frame.iter()) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        Ok(FRAME_BYTES)
    }
}

/// Decodes raw PCM; conceals a lost frame by repeating the last good one with a
/// linear fade to silence over [`PCM_FADE_FRAMES`] frames. Raw PCM has no FEC.
#[derive(Debug, Clone)]
pub struct PcmDecoder {
    last: [i16; FRAME_SAMPLES],
    /// Consecutive frames concealed since the last good one.
    concealed: u32,
}

impl Default for PcmDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl PcmDecoder {
    /// A PCM decoder (concealment before any good frame is silence).
    pub fn new() -> Self {
        Self {
            last: [0; FRAME_SAMPLES],
            concealed: PCM_FADE_FRAMES,
        }
    }
}

impl AudioDecoder for PcmDecoder {
    fn kind(&self) -> Codec {
        Codec::Pcm16k
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError> {
        if payload.len() != FRAME_BYTES {
            return Err(if payload.len().is_multiple_of(2) {
                CodecError::WrongFrameLength {
                    got: payload.len() / 2,
                }
            } else {
                CodecError::InvalidPayload
            });
        }
        for (s, b) in out.iter_mut().zip(payload.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        self.last = *out;
        self.concealed = 0;
        Ok(())
    }

    fn conceal(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError> {
        let total = (PCM_FADE_FRAMES as usize * FRAME_SAMPLES) as f32;
        let start = (self.concealed.min(PCM_FADE_FRAMES) as usize * FRAME_SAMPLES) as f32;
        for (i, (o, &s)) in out.iter_mut().zip(self.last.iter()).enumerate() {
            let gain = (1.0 - (start + i as f32) / total).max(0.0);
            *o = (f32::from(s) * gain).round() as i16;
        }
        self.concealed = self.concealed.saturating_add(1);
        Ok(())
    }

    fn decode_fec(
        &mut self,
        _next_payload: &[u8],
        out: &mut [i16; FRAME_SAMPLES],
    ) -> Result<bool, CodecError> {
        self.conceal(out)?;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_is_exact() {
        let frame: [i16; FRAME_SAMPLES] = std::array::from_fn(|i| (i as i16) * 100 - 16_000);
        let mut buf = [0u8; 700];
        let n = PcmEncoder::new().encode(&frame, &mut buf).expect("fits");
        assert_eq!(n, 640);
        assert_eq!(&buf[..2], &frame[0].to_le_bytes());
        let mut out = [0i16; FRAME_SAMPLES];
        PcmDecoder::new()
            .decode(&buf[..n], &mut out)
            .expect("valid");
        assert_eq!(out, frame);
        assert_eq!(
            PcmEncoder::new().encode(&frame, &mut buf[..639]),
            Err(CodecError::BufferTooSmall)
        );
    }

    #[test]
    fn concealment_fades_the_last_frame_out() {
        let mut d = PcmDecoder::new();
        let mut out = [0i16; FRAME_SAMPLES];
        d.conceal(&mut out).expect("conceal");
        assert!(out.iter().all(|&s| s == 0), "nothing to repeat yet");
        let frame = [10_000i16; FRAME_SAMPLES];
        let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        d.decode(&bytes, &mut out).expect("valid");
        d.conceal(&mut out).expect("conceal");
        assert_eq!(out[0], 10_000);
        assert!(out[319] < out[0] && out[319] > 6_000);
        d.conceal(&mut out).expect("conceal");
        assert!(out[0] < 6_700 && out[319] > 3_000);
        assert!(!d.decode_fec(&bytes, &mut out).expect("no fec"));
        assert!(out[319] < 100);
        d.conceal(&mut out).expect("conceal");
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        let mut d = PcmDecoder::new();
        let mut out = [0i16; FRAME_SAMPLES];
        assert_eq!(
            d.decode(&[0; 320], &mut out),
            Err(CodecError::WrongFrameLength { got: 160 })
        );
        assert_eq!(
            d.decode(&[0; 641], &mut out),
            Err(CodecError::InvalidPayload)
        );
        assert_eq!(
            d.decode(&[], &mut out),
            Err(CodecError::WrongFrameLength { got: 0 })
        );
    }

    proptest! {
        #[test]
        fn random_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let mut d = PcmDecoder::new();
            let mut out = [0i16; FRAME_SAMPLES];
            let r = d.decode(&payload, &mut out);
            prop_assert_eq!(r.is_ok(), payload.len() == FRAME_BYTES);
            prop_assert!(d.conceal(&mut out).is_ok());
        }
    }
}
