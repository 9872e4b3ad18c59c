//! Shared by the jitter-buffer test binaries.
#![allow(dead_code)]

use media_core::codec::{AudioDecoder, Codec, CodecError};
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};

/// A tiny PCM decoder: 640 little-endian bytes; concealment (and FEC) is silence, so
/// an output frame shows exactly which packet it came from or that it was concealed.
pub struct TestPcm;

impl AudioDecoder for TestPcm {
    fn kind(&self) -> Codec {
        Codec::Pcm16k
    }
    fn decode(&mut self, p: &[u8], out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError> {
        let f = Pcm16kFrame::from_le_bytes(p).map_err(|_| CodecError::InvalidPayload)?;
        *out = *f.samples();
        Ok(())
    }
    fn conceal(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError> {
        out.fill(0);
        Ok(())
    }
    fn decode_fec(&mut self, _: &[u8], out: &mut [i16; FRAME_SAMPLES]) -> Result<bool, CodecError> {
        self.conceal(out).map(|_| false)
    }
}
