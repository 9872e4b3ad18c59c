//! 20 ms audio frames: the unit that flows through every pipeline.
//!
//! A [`Pcm16kFrame`] is 20 ms of 16 kHz mono signed 16-bit PCM: 320 samples, 640 bytes
//! on the wire (little-endian), the `Pcm16K` format of the media session configuration.
//! A [`Pcm44kStereoFrame`] is 20 ms of 44.1 kHz interleaved stereo: 882 samples per
//! channel, 1764 values, 3528 bytes (`Pcm44KStereo`).
//!
//! # Realtime safety
//! Frames are fixed-size arrays: creating, copying and converting them never allocates.

use std::fmt;

/// Sample rate of the `Pcm16K` format, in Hz.
pub const PCM16K_RATE: u32 = 16_000;
/// Samples in one 20 ms `Pcm16K` frame (mono).
pub const FRAME_SAMPLES: usize = 320;
/// Bytes in one 20 ms `Pcm16K` frame (little-endian i16).
pub const FRAME_BYTES: usize = FRAME_SAMPLES * 2;
/// Duration of one frame in milliseconds.
pub const FRAME_MS: u32 = 20;
/// Frames per second in each direction.
pub const FRAMES_PER_SECOND: u32 = 1000 / FRAME_MS;

/// Sample rate of the `Pcm44KStereo` format, in Hz.
pub const PCM44K_RATE: u32 = 44_100;
/// Samples per channel in one 20 ms `Pcm44KStereo` frame.
pub const PCM44K_STEREO_FRAME_SAMPLES_PER_CHANNEL: usize = 882;
/// Interleaved values (both channels) in one 20 ms `Pcm44KStereo` frame.
pub const PCM44K_STEREO_FRAME_VALUES: usize = PCM44K_STEREO_FRAME_SAMPLES_PER_CHANNEL * 2;
/// Bytes in one 20 ms `Pcm44KStereo` frame.
pub const PCM44K_STEREO_FRAME_BYTES: usize = PCM44K_STEREO_FRAME_VALUES * 2;

/// A byte or sample buffer had the wrong length for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSizeError {
    /// The length the frame needs.
    pub expected: usize,
    /// The length that was given.
    pub got: usize,
}

impl fmt::Display for FrameSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame needs {} but got {}", self.expected, self.got)
    }
}

impl std::error::Error for FrameSizeError {}

/// 20 ms of 16 kHz mono PCM: exactly 320 samples.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pcm16kFrame {
    samples: [i16; FRAME_SAMPLES],
}

impl Default for Pcm16kFrame {
    fn default() -> Self {
        Self::silent()
    }
}

impl fmt::Debug for Pcm16kFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pcm16kFrame")
            .field("rms_dbfs", &self.rms_dbfs())
            .finish()
    }
}

impl Pcm16kFrame {
    /// A frame of digital silence.
    pub const fn silent() -> Self {
        Self {
            samples: [0; FRAME_SAMPLES],
        }
    }

    /// A frame from exactly 320 samples.
    pub const fn new(samples: [i16; FRAME_SAMPLES]) -> Self {
        Self { samples }
    }

    /// Copies a frame out of a slice that must hold exactly 320 samples.
    pub fn from_slice(samples: &[i16]) -> Result<Self, FrameSizeError> {
        let samples: [i16; FRAME_SAMPLES] = samples.try_into().map_err(|_| FrameSizeError {
            expected: FRAME_SAMPLES,
            got: samples.len(),
        })?;
        Ok(Self { samples })
    }

    /// Decodes 640 little-endian bytes.
    pub fn from_le_bytes(bytes: &[u8]) -> Result<Self, FrameSizeError> {
        if bytes.len() != FRAME_BYTES {
            return Err(FrameSizeError {
                expected: FRAME_BYTES,
                got: bytes.len(),
            });
        }
        let mut samples = [0i16; FRAME_SAMPLES];
        for (s, b) in samples.iter_mut().zip(bytes.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        Ok(Self { samples })
    }

    /// Encodes the frame as 640 little-endian bytes.
    pub fn to_le_bytes(&self) -> [u8; FRAME_BYTES] {
        let mut out = [0u8; FRAME_BYTES];
        for (b, s) in out.chunks_exact_mut(2).zip(self.samples.iter()) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// The samples.
    pub fn samples(&self) -> &[i16; FRAME_SAMPLES] {
        &self.samples
    }

    /// The samples, mutable.
    pub fn samples_mut(&mut self) -> &mut [i16; FRAME_SAMPLES] {
        &mut self.samples
    }

    /// Mean signal power relative to full scale, in dBFS (-inf for digital silence,
    /// reported as `f32::NEG_INFINITY`).
    pub fn rms_dbfs(&self) -> f32 {
        rms_dbfs(&self.samples)
    }
}

/// Root-mean-square level of samples in dBFS (0 dBFS = a full-scale square wave).
pub fn rms_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    // Exact integer energy (vectorises; a frame's sum is far below 2^63).
    let sum: i64 = samples
        .iter()
        .map(|&s| i64::from(i32::from(s) * i32::from(s)))
        .sum();
    let ms = sum as f64 / samples.len() as f64;
    if ms == 0.0 {
        return f32::NEG_INFINITY;
    }
    (10.0 * (ms / (32768.0 * 32768.0)).log10()) as f32
}

/// 20 ms of 44.1 kHz interleaved stereo PCM: 882 samples per channel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pcm44kStereoFrame {
    samples: [i16; PCM44K_STEREO_FRAME_VALUES],
}

impl Default for Pcm44kStereoFrame {
    fn default() -> Self {
        Self {
            samples: [0; PCM44K_STEREO_FRAME_VALUES],
        }
    }
}

impl fmt::Debug for Pcm44kStereoFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pcm44kStereoFrame")
            .field("rms_dbfs", &rms_dbfs(&self.samples))
            .finish()
    }
}

impl Pcm44kStereoFrame {
    /// Copies a frame out of a slice that must hold exactly 1764 interleaved values.
    pub fn from_slice(samples: &[i16]) -> Result<Self, FrameSizeError> {
        let samples: [i16; PCM44K_STEREO_FRAME_VALUES] =
            samples.try_into().map_err(|_| FrameSizeError {
                expected: PCM44K_STEREO_FRAME_VALUES,
                got: samples.len(),
            })?;
        Ok(Self { samples })
    }

    /// Decodes 3528 little-endian bytes.
    pub fn from_le_bytes(bytes: &[u8]) -> Result<Self, FrameSizeError> {
        if bytes.len() != PCM44K_STEREO_FRAME_BYTES {
            return Err(FrameSizeError {
                expected: PCM44K_STEREO_FRAME_BYTES,
                got: bytes.len(),
            });
        }
        let mut out = Self::default();
        for (s, b) in out.samples.iter_mut().zip(bytes.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        Ok(out)
    }

    /// Encodes the frame as 3528 little-endian bytes.
    pub fn to_le_bytes(&self) -> [u8; PCM44K_STEREO_FRAME_BYTES] {
        let mut out = [0u8; PCM44K_STEREO_FRAME_BYTES];
        for (b, s) in out.chunks_exact_mut(2).zip(self.samples.iter()) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// The interleaved samples (left, right, left, right, ...).
    pub fn samples(&self) -> &[i16; PCM44K_STEREO_FRAME_VALUES] {
        &self.samples
    }

    /// The interleaved samples, mutable.
    pub fn samples_mut(&mut self) -> &mut [i16; PCM44K_STEREO_FRAME_VALUES] {
        &mut self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_formats() {
        assert_eq!(FRAME_BYTES, 640);
        assert_eq!(PCM44K_STEREO_FRAME_BYTES, 3528);
        assert_eq!(FRAMES_PER_SECOND, 50);
    }

    #[test]
    fn bytes_round_trip() {
        let mut f = Pcm16kFrame::silent();
        for (i, s) in f.samples_mut().iter_mut().enumerate() {
            *s = (i as i16).wrapping_mul(97) - 12_000;
        }
        let back = Pcm16kFrame::from_le_bytes(&f.to_le_bytes()).expect("640 bytes");
        assert_eq!(f, back);
        let err = Pcm16kFrame::from_le_bytes(&[0; 639]).expect_err("short");
        assert_eq!(
            err,
            FrameSizeError {
                expected: 640,
                got: 639
            }
        );
    }

    #[test]
    fn silence_is_minus_infinity_and_full_scale_is_zero() {
        assert_eq!(Pcm16kFrame::silent().rms_dbfs(), f32::NEG_INFINITY);
        let sq: Vec<i16> = (0..320)
            .map(|i| if i % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        assert!(rms_dbfs(&sq).abs() < 0.01);
    }
}
