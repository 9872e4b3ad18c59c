//! `supportedAudioFormat`: the PCM format the bot exchanges with the media processor.

use std::fmt;
use std::str::FromStr;

use crate::error::BlobError;

/// The audio format named by the blob's `supportedAudioFormat` field.
///
/// Audio moves in 20 ms frames; [`AudioFormat::samples_per_frame`] gives the
/// number of interleaved samples in one such frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AudioFormat {
    /// 16 kHz mono, 16-bit PCM (`"Pcm16K"`): 320 samples, 640 bytes per 20 ms. The default.
    #[default]
    Pcm16K,
    /// 44.1 kHz stereo, 16-bit PCM (`"Pcm44KStereo"`).
    Pcm44KStereo,
}

impl AudioFormat {
    /// Every format, in declaration order.
    pub const ALL: [AudioFormat; 2] = [AudioFormat::Pcm16K, AudioFormat::Pcm44KStereo];

    /// The name used in the blob: `"Pcm16K"` or `"Pcm44KStereo"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Pcm16K => "Pcm16K",
            AudioFormat::Pcm44KStereo => "Pcm44KStereo",
        }
    }

    /// Sample rate in Hz (16 000 or 44 100).
    pub const fn sample_rate(self) -> u32 {
        match self {
            AudioFormat::Pcm16K => 16_000,
            AudioFormat::Pcm44KStereo => 44_100,
        }
    }

    /// Number of interleaved channels (1 or 2).
    pub const fn channels(self) -> u16 {
        match self {
            AudioFormat::Pcm16K => 1,
            AudioFormat::Pcm44KStereo => 2,
        }
    }

    /// Interleaved 16-bit samples in one 20 ms frame (320 for `Pcm16K`, 1764 for `Pcm44KStereo`).
    pub const fn samples_per_frame(self) -> usize {
        (self.sample_rate() as usize / 50) * self.channels() as usize
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AudioFormat {
    type Err = BlobError;

    /// Parses the exact (case-sensitive) blob name. The error's path is `supportedAudioFormat`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AudioFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                BlobError::invalid(
                    "supportedAudioFormat",
                    format!(
                        "unknown format {} (expected Pcm16K or Pcm44KStereo)",
                        crate::text::excerpt(s)
                    ),
                )
            })
    }
}

impl serde::Serialize for AudioFormat {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for AudioFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in AudioFormat::ALL {
            assert_eq!(f.as_str().parse::<AudioFormat>().expect("parse"), f);
            assert_eq!(f.to_string(), f.as_str());
        }
    }

    #[test]
    fn unknown_format_names_field_and_choices() {
        let e = "Pcm8K".parse::<AudioFormat>().expect_err("unknown");
        assert_eq!(
            e.to_string(),
            r#"supportedAudioFormat: unknown format "Pcm8K" (expected Pcm16K or Pcm44KStereo)"#
        );
        assert!(
            "pcm16k".parse::<AudioFormat>().is_err(),
            "names are case-sensitive"
        );
    }

    #[test]
    fn frame_sizes() {
        assert_eq!(AudioFormat::Pcm16K.samples_per_frame(), 320);
        assert_eq!(AudioFormat::Pcm44KStereo.samples_per_frame(), 1764);
        assert_eq!(AudioFormat::default(), AudioFormat::Pcm16K);
    }

    #[test]
    fn serde_uses_blob_names() {
        let v = serde_json::to_string(&AudioFormat::Pcm44KStereo).expect("ser");
        assert_eq!(v, "\"Pcm44KStereo\"");
        let f: AudioFormat = serde_json::from_str("\"Pcm16K\"").expect("de");
        assert_eq!(f, AudioFormat::Pcm16K);
        assert!(serde_json::from_str::<AudioFormat>("\"Pcm8K\"").is_err());
    }
}
