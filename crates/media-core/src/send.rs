//! The send pipeline: bot frames or captured device audio in, encoded 20 ms
//! [`AudioPacket`]s out.
//!
//! ```text
//!  push_pcm16k_frame(&Pcm16kFrame) ───────────────┐
//!  push_device_samples(&[i16]) ─ CaptureResampler ┴─ Framer ─ VAD ─ encode ─ poll_packet()
//! ```
//!
//! Inputs are `push_*`, the output is [`SendPipeline::poll_packet`]: after pushing,
//! poll until it returns `false`. Frames wait in the framer (bounded by
//! [`SendConfig::queue_frames`]) until polled; encoding happens in `poll_packet`, so
//! the caller decides when the CPU is spent. Each packet gets the next sequence
//! number (+1, wrapping at 2^16) and timestamp (+320 samples, wrapping at 2^32), and
//! the VAD's silence flag. A pipeline is meant to be fed from one source: bot frames
//! or device samples, not both at once (they would interleave).
//!
//! ```
//! use media_core::codec::Codec;
//! use media_core::frame::Pcm16kFrame;
//! use media_core::packet::AudioPacket;
//! use media_core::send::{SendConfig, SendPipeline};
//!
//! let mut send = SendPipeline::new(&SendConfig::default()).expect("pipeline");
//! send.push_pcm16k_frame(&Pcm16kFrame::silent()).expect("room");
//! let mut packet = AudioPacket::empty(Codec::Pcm16k);
//! assert!(send.poll_packet(&mut packet));
//! assert_eq!((packet.seq, packet.timestamp, packet.silence), (0, 0, true));
//! assert_eq!(packet.payload().len(), 640);
//! assert!(!send.poll_packet(&mut packet));
//! ```
//!
//! # Realtime safety
//! `SendPipeline::new` creates the codec state (including libopus's), the resampler
//! and every buffer. After that, `push_pcm16k_frame`, `push_device_samples`,
//! `push_from_capture_ring` and `poll_packet` never allocate (proved by
//! `tests/dsp_alloc.rs` with a counting global allocator), lock or block; errors are
//! small `Copy` values.

use crate::codec::{AudioEncoder, Codec, CodecError, OpusConfig, new_encoder};
use crate::frame::{FRAME_SAMPLES, Pcm16kFrame};
use crate::framer::Framer;
use crate::packet::{AudioPacket, TIMESTAMP_STEP};
use crate::resample::{
    CaptureResampler, DeviceFormat, RatioError, ResampleError, ResamplerMode, ResamplerSetupError,
};
use crate::ring::CaptureConsumer;
use crate::vad::{Activity, Vad, VadConfig};

/// Send pipeline settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendConfig {
    /// Codec of the packets.
    pub codec: Codec,
    /// Opus settings (used when `codec` is Opus).
    pub opus: OpusConfig,
    /// Format of the capture device, when device samples will be pushed.
    pub capture: Option<DeviceFormat>,
    /// Resampler engine for the capture device.
    pub resampler: ResamplerMode,
    /// Voice activity detector settings.
    pub vad: VadConfig,
    /// Frames that may wait for `poll_packet` (at least 1).
    pub queue_frames: usize,
    /// Sequence number of the first packet.
    pub first_seq: u16,
    /// Timestamp of the first packet, in 16 kHz samples.
    pub first_timestamp: u32,
}

impl Default for SendConfig {
    /// Raw `Pcm16K`, no capture device, default VAD, 8 frames (160 ms) of queue,
    /// sequence and timestamp from 0.
    fn default() -> Self {
        Self {
            codec: Codec::Pcm16k,
            opus: OpusConfig::default(),
            capture: None,
            resampler: ResamplerMode::LowDelay,
            vad: VadConfig::default(),
            queue_frames: 8,
            first_seq: 0,
            first_timestamp: 0,
        }
    }
}

/// The pipeline could not be built (configuration error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendSetupError {
    /// The codec could not be created.
    #[error("codec setup failed: {0}")]
    Codec(CodecError),
    /// The capture resampler could not be created.
    #[error(transparent)]
    Resampler(#[from] ResamplerSetupError),
    /// `queue_frames` was zero.
    #[error("queue_frames must be at least 1")]
    ZeroQueue,
}

/// A push was refused. Small and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The frame queue is full: call `poll_packet` first (the frame was not taken).
    QueueFull,
    /// Device samples were pushed but the pipeline has no capture format
    /// (set [`SendConfig::capture`]).
    NoCapture,
    /// The capture resampler failed.
    Resample(ResampleError),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::QueueFull => f.write_str("send queue full: poll packets before pushing more"),
            Self::NoCapture => f.write_str("no capture device format configured"),
            Self::Resample(e) => write!(f, "capture resampling failed: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Send pipeline counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Frames that entered the queue (bot frames, or 20 ms of resampled capture).
    pub frames_in: u64,
    /// Frames encoded into packets.
    pub frames_encoded: u64,
    /// Payload bytes produced.
    pub payload_bytes: u64,
    /// Packets flagged as silence by the VAD.
    pub silence_frames: u64,
    /// Bot frames refused because the queue was full.
    pub frames_refused: u64,
    /// Captured 16 kHz samples dropped because the queue was full.
    pub capture_samples_dropped: u64,
    /// Frames the encoder failed on (skipped: their timestamps are left as a gap).
    pub encode_errors: u64,
}

/// Device chunk size for [`SendPipeline::push_from_capture_ring`]: 10 ms at 48 kHz
/// stereo.
const RING_SCRATCH: usize = 960;

/// Bot frames or device capture in, encoded packets out. See the module docs.
pub struct SendPipeline {
    encoder: Box<dyn AudioEncoder>,
    kind: Codec,
    capture: Option<CaptureResampler>,
    framer: Framer,
    vad: Vad,
    next_seq: u16,
    next_timestamp: u32,
    frame: [i16; FRAME_SAMPLES],
    ring_scratch: Box<[i16]>,
    last_activity: Activity,
    stats: SendStats,
}

impl std::fmt::Debug for SendPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendPipeline")
            .field("codec", &self.kind)
            .field("capture", &self.capture)
            .field("queued_frames", &self.framer.frames_ready())
            .field("next_seq", &self.next_seq)
            .field("next_timestamp", &self.next_timestamp)
            .field("stats", &self.stats)
            .finish()
    }
}

impl SendPipeline {
    /// Builds the pipeline: codec state, resampler and buffers are all allocated here.
    pub fn new(config: &SendConfig) -> Result<Self, SendSetupError> {
        if config.queue_frames == 0 {
            return Err(SendSetupError::ZeroQueue);
        }
        let encoder = new_encoder(config.codec, &config.opus).map_err(SendSetupError::Codec)?;
        let capture = config
            .capture
            .map(|fmt| CaptureResampler::new(fmt, config.resampler))
            .transpose()?;
        Ok(Self {
            encoder,
            kind: config.codec,
            capture,
            framer: Framer::pcm16k(config.queue_frames),
            vad: Vad::new(config.vad),
            next_seq: config.first_seq,
            next_timestamp: config.first_timestamp,
            frame: [0; FRAME_SAMPLES],
            ring_scratch: vec![0; RING_SCRATCH].into_boxed_slice(),
            last_activity: Activity::Silence,
            stats: SendStats::default(),
        })
    }

    /// Queues one bot frame. Refused (and counted) when the queue is full.
    pub fn push_pcm16k_frame(&mut self, frame: &Pcm16kFrame) -> Result<(), SendError> {
        if self.framer.vacant() < FRAME_SAMPLES {
            self.stats.frames_refused += 1;
            return Err(SendError::QueueFull);
        }
        self.framer.push(frame.samples());
        self.stats.frames_in += 1;
        Ok(())
    }

    /// Feeds interleaved capture samples of the configured device format (any chunk
    /// size). Samples that do not fit the queue are dropped and counted in
    /// [`SendStats::capture_samples_dropped`].
    pub fn push_device_samples(&mut self, samples: &[i16]) -> Result<(), SendError> {
        let capture = self.capture.as_mut().ok_or(SendError::NoCapture)?;
        let framer = &mut self.framer;
        let stats = &mut self.stats;
        capture
            .process(samples, |block| {
                let before = framer.frames_ready();
                let taken = framer.push(block);
                stats.capture_samples_dropped += (block.len() - taken) as u64;
                stats.frames_in += (framer.frames_ready() - before) as u64;
            })
            .map_err(SendError::Resample)
    }

    /// Drains a capture ring into the pipeline; returns the samples taken.
    pub fn push_from_capture_ring(
        &mut self,
        ring: &mut CaptureConsumer,
    ) -> Result<usize, SendError> {
        if self.capture.is_none() {
            return Err(SendError::NoCapture);
        }
        let mut scratch = std::mem::take(&mut self.ring_scratch);
        let mut total = 0;
        let result = loop {
            let n = ring.pop(&mut scratch);
            if n == 0 {
                break Ok(total);
            }
            total += n;
            if let Err(e) = self.push_device_samples(&scratch[..n]) {
                break Err(e);
            }
        };
        self.ring_scratch = scratch;
        result
    }

    /// Encodes the next queued frame into `out`. Returns `false` when no whole frame
    /// is queued.
    pub fn poll_packet(&mut self, out: &mut AudioPacket) -> bool {
        while self.framer.pop_frame(&mut self.frame) {
            let activity = self.vad.process(&self.frame);
            self.last_activity = activity;
            let timestamp = self.next_timestamp;
            self.next_timestamp = timestamp.wrapping_add(TIMESTAMP_STEP);
            let len = match self.encoder.encode(&self.frame, out.payload_buf_mut()) {
                Ok(len) => len,
                Err(_) => {
                    self.stats.encode_errors += 1;
                    continue;
                }
            };
            if out.set_len(len).is_err() {
                self.stats.encode_errors += 1;
                continue;
            }
            out.seq = self.next_seq;
            out.timestamp = timestamp;
            out.codec = self.kind;
            out.silence = activity.is_silence();
            self.next_seq = self.next_seq.wrapping_add(1);
            self.stats.frames_encoded += 1;
            self.stats.payload_bytes += len as u64;
            if out.silence {
                self.stats.silence_frames += 1;
            }
            return true;
        }
        false
    }

    /// Whole frames waiting for `poll_packet`.
    pub fn queued_frames(&self) -> usize {
        self.framer.frames_ready()
    }

    /// The VAD verdict on the last encoded frame.
    pub fn last_activity(&self) -> Activity {
        self.last_activity
    }

    /// The counters.
    pub fn stats(&self) -> SendStats {
        self.stats
    }

    /// The codec of the packets.
    pub fn codec(&self) -> Codec {
        self.kind
    }

    /// Sets the loss the encoder protects against (percent; 0: no FEC), as the
    /// loss-adaptive law decides ([`crate::codec::adapt`]). PCM ignores it.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        self.encoder.set_expected_loss(percent)
    }

    /// Capture resampler delay in 16 kHz samples (0 without capture).
    pub fn capture_delay_samples(&self) -> usize {
        self.capture
            .as_ref()
            .map_or(0, CaptureResampler::delay_samples)
    }

    /// Nudges the capture resampler ratio to follow the device clock (see
    /// [`CaptureResampler::set_ratio_relative`]).
    pub fn set_capture_ratio_relative(&mut self, rel: f64) -> Result<(), RatioError> {
        self.capture
            .as_mut()
            .ok_or(RatioError::NotAdjustable)?
            .set_ratio_relative(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::new_decoder;
    use crate::ring::CaptureRing;

    fn tone_frame(k: usize) -> Pcm16kFrame {
        Pcm16kFrame::new(std::array::from_fn(|i| {
            let t = (k * FRAME_SAMPLES + i) as f64 / 16_000.0;
            (10_000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
        }))
    }

    #[test]
    fn sequence_and_timestamp_wrap() {
        let cfg = SendConfig {
            first_seq: u16::MAX,
            first_timestamp: u32::MAX - 319,
            ..SendConfig::default()
        };
        let mut send = SendPipeline::new(&cfg).expect("pipeline");
        let mut p = AudioPacket::empty(Codec::Pcm16k);
        let mut seen = Vec::new();
        for k in 0..3 {
            send.push_pcm16k_frame(&tone_frame(k)).expect("room");
            assert!(send.poll_packet(&mut p));
            seen.push((p.seq, p.timestamp, p.silence));
        }
        assert_eq!(
            seen,
            [
                (u16::MAX, u32::MAX - 319, false),
                (0, 0, false),
                (1, 320, false)
            ]
        );
        let mut dec = new_decoder(Codec::Pcm16k).expect("decoder");
        let mut out = [0i16; FRAME_SAMPLES];
        dec.decode(p.payload(), &mut out).expect("decode");
        assert_eq!(&out, tone_frame(2).samples());
    }

    #[test]
    fn queue_full_refuses_and_counts() {
        let cfg = SendConfig {
            queue_frames: 2,
            ..SendConfig::default()
        };
        let mut send = SendPipeline::new(&cfg).expect("pipeline");
        send.push_pcm16k_frame(&tone_frame(0)).expect("room");
        send.push_pcm16k_frame(&tone_frame(1)).expect("room");
        assert_eq!(
            send.push_pcm16k_frame(&tone_frame(2)),
            Err(SendError::QueueFull)
        );
        assert_eq!(send.queued_frames(), 2);
        let s = send.stats();
        assert_eq!((s.frames_in, s.frames_refused), (2, 1));
        assert_eq!(
            send.push_device_samples(&[0; 10]),
            Err(SendError::NoCapture)
        );
        assert_eq!(
            SendPipeline::new(&SendConfig {
                queue_frames: 0,
                ..cfg
            })
            .expect_err("zero"),
            SendSetupError::ZeroQueue
        );
    }

    #[test]
    fn opus_with_silence_flags_and_stats() {
        let cfg = SendConfig {
            codec: Codec::Opus16k,
            ..SendConfig::default()
        };
        let mut send = SendPipeline::new(&cfg).expect("pipeline");
        let mut dec = new_decoder(Codec::Opus16k).expect("decoder");
        let mut p = AudioPacket::empty(Codec::Pcm16k);
        let mut out = [0i16; FRAME_SAMPLES];
        let mut flags = Vec::new();
        for k in 0..40 {
            let f = if k < 20 {
                tone_frame(k)
            } else {
                Pcm16kFrame::silent()
            };
            send.push_pcm16k_frame(&f).expect("room");
            assert!(send.poll_packet(&mut p));
            assert_eq!(p.codec, Codec::Opus16k);
            dec.decode(p.payload(), &mut out).expect("decode");
            flags.push(p.silence);
        }
        // Speech, then 10 frames of hangover, then silence.
        assert!(flags[..30].iter().all(|&s| !s));
        assert!(flags[30..].iter().all(|&s| s));
        let s = send.stats();
        assert_eq!(
            (s.frames_in, s.frames_encoded, s.silence_frames),
            (40, 40, 10)
        );
        assert!(s.payload_bytes > 40 && s.payload_bytes < 40 * 200);
    }

    #[test]
    fn device_capture_at_48k_stereo_through_a_ring() {
        let cfg = SendConfig {
            capture: Some(DeviceFormat::new(48_000, 2)),
            ..SendConfig::default()
        };
        let mut send = SendPipeline::new(&cfg).expect("pipeline");
        assert_eq!(send.capture_delay_samples(), 80);
        let (mut dev, mut ring) = CaptureRing::with_capacity(9_600);
        let mut p = AudioPacket::empty(Codec::Pcm16k);
        let mut packets = 0;
        // 1 s of a 1 kHz tone in 10 ms callbacks of 480 stereo frames.
        for cb in 0..100 {
            let chunk: Vec<i16> = (0..480)
                .flat_map(|i| {
                    let t = (cb * 480 + i) as f64 / 48_000.0;
                    let s = (8_000.0 * (2.0 * std::f64::consts::PI * 1_000.0 * t).sin()) as i16;
                    [s, s]
                })
                .collect();
            assert_eq!(dev.push(&chunk), 960);
            send.push_from_capture_ring(&mut ring).expect("capture");
            while send.poll_packet(&mut p) {
                assert_eq!(p.seq, packets);
                assert_eq!(p.timestamp, u32::from(packets) * 320);
                packets += 1;
            }
        }
        assert_eq!(packets, 50);
        let frame = Pcm16kFrame::from_le_bytes(p.payload()).expect("pcm");
        let level = frame.rms_dbfs();
        // 8000/32768 amplitude sine: -15.3 dBFS.
        assert!((level - -15.25).abs() < 0.2, "{level}");
        assert_eq!(send.stats().capture_samples_dropped, 0);
        assert_eq!(
            send.set_capture_ratio_relative(1.0),
            Err(RatioError::NotAdjustable)
        );
    }
}
