//! WAV files of 16 kHz mono audio: read any WAV as 16 kHz mono ([`read_mono_16k`]),
//! write 16 kHz mono ([`write_mono_16k`]).

use std::path::{Path, PathBuf};

use crate::frame::PCM16K_RATE;

/// A WAV file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The file could not be opened, parsed or written.
    #[error("wav file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: hound::Error,
    },
    /// The file holds no samples.
    #[error("wav file {path}: no samples")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Writes 16 kHz mono 16-bit PCM.
pub fn write_mono_16k(path: &Path, samples: &[i16]) -> Result<(), WavError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: PCM16K_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let wrap = |source| WavError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(wrap)?;
    for &s in samples {
        w.write_sample(s).map_err(wrap)?;
    }
    w.finalize().map_err(wrap)
}

/// Reads a WAV file as 16 kHz mono: 16-bit 16 kHz mono bit-exact; otherwise channels
/// are averaged and other rates are resampled by linear interpolation (fine for test
/// and prompt material; use [`crate::resample`] for device audio).
pub fn read_mono_16k(path: &Path) -> Result<Vec<i16>, WavError> {
    let wrap = |source| WavError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut r = hound::WavReader::open(path).map_err(wrap)?;
    let spec = r.spec();
    if spec.channels == 1
        && spec.sample_rate == PCM16K_RATE
        && spec.bits_per_sample == 16
        && spec.sample_format == hound::SampleFormat::Int
    {
        // Already the call's format: bit-exact.
        let samples = r
            .samples::<i16>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(wrap)?;
        if samples.is_empty() {
            return Err(WavError::Empty {
                path: path.to_path_buf(),
            });
        }
        return Ok(samples);
    }
    let ch = usize::from(spec.channels.max(1));
    let raw: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(wrap)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<Vec<_>, _>>()
                .map_err(wrap)?
        }
    };
    let mono: Vec<f32> = raw
        .chunks(ch)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    if mono.is_empty() {
        return Err(WavError::Empty {
            path: path.to_path_buf(),
        });
    }
    let ratio = f64::from(spec.sample_rate.max(1)) / f64::from(PCM16K_RATE);
    let n = (mono.len() as f64 / ratio).floor() as usize;
    let to_i16 = |v: f32| (v * 32767.0).clamp(-32768.0, 32767.0) as i16;
    Ok((0..n)
        .map(|i| {
            let x = i as f64 * ratio;
            let i0 = x.floor() as usize;
            let f = (x - i0 as f64) as f32;
            let a = mono[i0.min(mono.len() - 1)];
            let b = mono[(i0 + 1).min(mono.len() - 1)];
            to_i16(a + (b - a) * f)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_clear_errors() {
        let dir = std::env::temp_dir().join(format!("mc-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("t.wav");
        let samples: Vec<i16> = (0..1600).map(|i| (i * 7 % 2000) as i16 - 1000).collect();
        write_mono_16k(&path, &samples).expect("write");
        assert!(
            read_mono_16k(&path).expect("read") == samples,
            "16 kHz mono reads bit-exact"
        );
        let err = read_mono_16k(&dir.join("missing.wav")).expect_err("missing file");
        assert!(err.to_string().contains("missing.wav"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
