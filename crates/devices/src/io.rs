//! Sources and sinks of interleaved `i16` audio: WAV files and devices behind one interface.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use ringbuf::traits::Consumer;
use ringbuf::{HeapCons, HeapProd};

use crate::stream::push_frames;
use crate::{CaptureStream, DeviceError, DeviceSelector, PlaybackStream, StreamFormat};

/// Something that yields interleaved `i16` audio at its native rate: a capture device or a
/// WAV file.
pub trait SampleSource: Send {
    /// Frames per second.
    fn sample_rate(&self) -> u32;
    /// Interleaved channels.
    fn channels(&self) -> u16;
    /// Copies up to `out.len()` samples (whole frames) into `out`; returns how many. `0` means
    /// nothing is available right now (device) or the end was reached (non-looping file).
    fn read(&mut self, out: &mut [i16]) -> usize;
}

/// Something that takes interleaved `i16` audio at its native rate: a playback device or a
/// WAV file.
pub trait SampleSink: Send {
    /// Frames per second.
    fn sample_rate(&self) -> u32;
    /// Interleaved channels.
    fn channels(&self) -> u16;
    /// Takes whole frames from `samples`; returns how many samples were taken (a device with a
    /// full ring takes fewer).
    fn write(&mut self, samples: &[i16]) -> Result<usize, DeviceError>;
}

/// A WAV file read fully into memory and served as interleaved `i16` at its native rate and
/// channel count. Integer (8/16/24/32-bit) and 32-bit float files are accepted.
#[derive(Debug, Clone)]
pub struct WavSource {
    samples: Vec<i16>,
    sample_rate: u32,
    channels: u16,
    pos: usize,
    looping: bool,
    chunk_frames: usize,
}

impl WavSource {
    /// Reads `path`. With `looping`, reading wraps around at the end forever.
    pub fn open(path: impl AsRef<Path>, looping: bool) -> Result<Self, DeviceError> {
        let path = path.as_ref();
        let wav_err = |source| DeviceError::Wav {
            path: path.to_owned(),
            source,
        };
        let reader = hound::WavReader::open(path).map_err(wav_err)?;
        let spec = reader.spec();
        let samples: Vec<i16> = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, 16) => reader
                .into_samples::<i16>()
                .collect::<Result<_, _>>()
                .map_err(wav_err)?,
            (hound::SampleFormat::Int, bits @ 1..=32) => {
                let shift = i32::from(bits) - 16;
                reader
                    .into_samples::<i32>()
                    .map(|s| {
                        s.map(|v| {
                            if shift >= 0 {
                                (v >> shift) as i16
                            } else {
                                (v << -shift) as i16
                            }
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map_err(wav_err)?
            }
            (hound::SampleFormat::Float, 32) => reader
                .into_samples::<f32>()
                .map(|s| s.map(|v| (v * 32768.0).round() as i16))
                .collect::<Result<_, _>>()
                .map_err(wav_err)?,
            (format, bits) => {
                return Err(DeviceError::Unsupported {
                    device: path.display().to_string(),
                    detail: format!("WAV sample format {format:?} with {bits} bits"),
                });
            }
        };
        if spec.channels == 0 || spec.sample_rate == 0 {
            return Err(DeviceError::Unsupported {
                device: path.display().to_string(),
                detail: "WAV header with 0 channels or 0 Hz".into(),
            });
        }
        Ok(Self::from_samples(
            samples,
            spec.sample_rate,
            spec.channels,
            looping,
        ))
    }

    /// Serves samples already in memory (trailing partial frame dropped).
    pub fn from_samples(
        mut samples: Vec<i16>,
        sample_rate: u32,
        channels: u16,
        looping: bool,
    ) -> Self {
        let ch = usize::from(channels.max(1));
        samples.truncate(samples.len() / ch * ch);
        Self {
            samples,
            sample_rate,
            channels: channels.max(1),
            pos: 0,
            looping,
            chunk_frames: (sample_rate / 50).max(1) as usize,
        }
    }

    /// Sets the chunk size of the [`Iterator`] (default 20 ms at the file's rate).
    pub fn with_chunk_frames(mut self, frames: usize) -> Self {
        self.chunk_frames = frames.max(1);
        self
    }

    /// Total frames in the file.
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels)
    }

    /// All samples of the file.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Starts reading from the beginning again.
    pub fn rewind(&mut self) {
        self.pos = 0;
    }
}

impl SampleSource for WavSource {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn channels(&self) -> u16 {
        self.channels
    }

    fn read(&mut self, out: &mut [i16]) -> usize {
        let ch = usize::from(self.channels);
        let want = out.len() / ch * ch;
        let mut n = 0;
        while n < want {
            if self.pos >= self.samples.len() {
                if self.looping && !self.samples.is_empty() {
                    self.pos = 0;
                } else {
                    break;
                }
            }
            let take = (want - n).min(self.samples.len() - self.pos);
            out[n..n + take].copy_from_slice(&self.samples[self.pos..self.pos + take]);
            self.pos += take;
            n += take;
        }
        n
    }
}

/// Chunks of [`WavSource::with_chunk_frames`] frames (the last one may be shorter). A looping
/// source never ends.
impl Iterator for WavSource {
    type Item = Vec<i16>;

    fn next(&mut self) -> Option<Vec<i16>> {
        let mut chunk = vec![0i16; self.chunk_frames * usize::from(self.channels)];
        let n = self.read(&mut chunk);
        if n == 0 {
            return None;
        }
        chunk.truncate(n);
        Some(chunk)
    }
}

/// Writes interleaved `i16` audio to a 16-bit PCM WAV file. Call [`WavSink::finalize`] to
/// see errors; dropping it finalizes too, silently.
pub struct WavSink {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    path: PathBuf,
    sample_rate: u32,
    channels: u16,
    pending: Vec<i16>,
}

impl WavSink {
    /// Creates (truncates) `path`.
    pub fn create(
        path: impl AsRef<Path>,
        sample_rate: u32,
        channels: u16,
    ) -> Result<Self, DeviceError> {
        let path = path.as_ref().to_owned();
        let spec = hound::WavSpec {
            channels,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(&path, spec).map_err(|source| DeviceError::Wav {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            writer: Some(writer),
            path,
            sample_rate,
            channels,
            pending: Vec::new(),
        })
    }

    /// Writes the header's final sizes and closes the file.
    pub fn finalize(mut self) -> Result<(), DeviceError> {
        match self.writer.take() {
            Some(w) => w.finalize().map_err(|source| DeviceError::Wav {
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }

    fn wav_err(&self, source: hound::Error) -> DeviceError {
        DeviceError::Wav {
            path: self.path.clone(),
            source,
        }
    }
}

impl SampleSink for WavSink {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn channels(&self) -> u16 {
        self.channels
    }

    /// Takes all samples; a trailing partial frame is kept until the next call completes it.
    fn write(&mut self, samples: &[i16]) -> Result<usize, DeviceError> {
        self.pending.extend_from_slice(samples);
        let ch = usize::from(self.channels.max(1));
        let whole = self.pending.len() / ch * ch;
        let result = match self.writer.as_mut() {
            Some(w) => {
                let mut res = Ok(());
                for &s in &self.pending[..whole] {
                    if let Err(e) = w.write_sample(s) {
                        res = Err(e);
                        break;
                    }
                }
                res
            }
            None => Ok(()),
        };
        self.pending.drain(..whole);
        result.map_err(|e| self.wav_err(e))?;
        Ok(samples.len())
    }
}

/// A capture device as a [`SampleSource`]: the stream and its ring consumer.
pub struct DeviceSource {
    stream: CaptureStream,
    cons: HeapCons<i16>,
}

impl DeviceSource {
    /// Opens and starts a capture stream.
    pub fn open(sel: &DeviceSelector, fmt: StreamFormat) -> Result<Self, DeviceError> {
        let (stream, cons) = CaptureStream::open(sel, fmt)?;
        Ok(Self { stream, cons })
    }

    /// The stream (format, counters).
    pub fn stream(&self) -> &CaptureStream {
        &self.stream
    }
}

impl SampleSource for DeviceSource {
    fn sample_rate(&self) -> u32 {
        self.stream.format().sample_rate
    }

    fn channels(&self) -> u16 {
        self.stream.format().channels
    }

    fn read(&mut self, out: &mut [i16]) -> usize {
        let ch = usize::from(self.channels());
        let n = out.len() / ch * ch;
        self.cons.pop_slice(&mut out[..n])
    }
}

/// A playback device as a [`SampleSink`]: the stream and its ring producer.
pub struct DeviceSink {
    stream: PlaybackStream,
    prod: HeapProd<i16>,
}

impl DeviceSink {
    /// Opens and starts a playback stream.
    pub fn open(sel: &DeviceSelector, fmt: StreamFormat) -> Result<Self, DeviceError> {
        let (stream, prod) = PlaybackStream::open(sel, fmt)?;
        Ok(Self { stream, prod })
    }

    /// The stream (format, counters).
    pub fn stream(&self) -> &PlaybackStream {
        &self.stream
    }
}

impl SampleSink for DeviceSink {
    fn sample_rate(&self) -> u32 {
        self.stream.format().sample_rate
    }

    fn channels(&self) -> u16 {
        self.stream.format().channels
    }

    fn write(&mut self, samples: &[i16]) -> Result<usize, DeviceError> {
        let ch = self.channels();
        Ok(push_frames(&mut self.prod, samples, ch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_source_reads_whole_frames_and_loops() {
        let mut src = WavSource::from_samples(vec![1, 2, 3, 4, 5, 6, 7], 8000, 2, true);
        assert_eq!(src.frames(), 3);
        let mut out = [0i16; 5];
        assert_eq!(src.read(&mut out), 4);
        assert_eq!(out[..4], [1, 2, 3, 4]);
        let mut out = [0i16; 6];
        assert_eq!(src.read(&mut out), 6);
        assert_eq!(out, [5, 6, 1, 2, 3, 4]);
        let mut once = WavSource::from_samples(vec![1, 2, 3], 8000, 1, false).with_chunk_frames(2);
        assert_eq!(once.next(), Some(vec![1, 2]));
        assert_eq!(once.next(), Some(vec![3]));
        assert_eq!(once.next(), None);
    }
}
