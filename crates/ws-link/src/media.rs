//! A stream's audio to and from the engine's 20 ms frames of 16 kHz PCM, sans-IO.
//!
//! [`InboundAudio`] decodes a platform's chunks (µ-law, or PCM at 16 or 24 kHz),
//! resamples them to 16 kHz with media-core's resampler, cuts 20 ms frames and gives
//! each one a sequence number and a media timestamp. The timestamps follow the
//! platform's own clock where the dialect has one (Twilio's `media.timestamp`, ACS's
//! `timestamp`): a stream over TCP delivers late but never loses, so chunks are
//! counted in order, and a jump of the platform's clock (it sent nothing for a while)
//! moves the timeline on by whole frames, which the jitter buffer then plays as a
//! gap. The sequence number is the frame's index on that timeline, so the receiver's
//! loss statistics count such gaps.
//!
//! [`OutboundAudio`] turns one `Pcm16k` packet into the stream's encoding.
//!
//! # Realtime safety
//! Resamplers, framer and buffers are created with the stream; converting a chunk or
//! a frame allocates nothing (the outbound message itself is allocated by its
//! encoder).

use media_core::codec::Codec;
use media_core::frame::FRAME_SAMPLES;
use media_core::framer::Framer;
use media_core::link::LinkError;
use media_core::packet::{AudioPacket, TIMESTAMP_STEP};
use media_core::resample::{
    CaptureResampler, DeviceFormat, PlayoutResampler, ResamplerMode, ResamplerSetupError,
};

use crate::dialect::{AudioChunk, Encoding, MAX_CHUNK_MS, ProtocolError};
use crate::mulaw;

/// A jump of the platform's clock of at least this much (beyond the audio already
/// counted) is a gap in the stream.
const GAP_MS: u64 = 30;
/// Largest gap followed, ms (a clock jumping further is taken as a reset).
const MAX_GAP_MS: u64 = 10_000;

/// Samples of the largest chunk at the largest rate (24 kHz, [`MAX_CHUNK_MS`]).
const MAX_CHUNK_SAMPLES: usize = (24_000 * MAX_CHUNK_MS / 1000) as usize;

/// Counters of one stream's inbound audio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundCounters {
    /// Chunks taken.
    pub chunks: u64,
    /// 20 ms frames made.
    pub frames: u64,
    /// Gaps of the platform's clock followed.
    pub gaps: u64,
    /// Frames of media time skipped by those gaps.
    pub gap_frames: u64,
}

/// A stream's audio in its wire encoding to 20 ms frames of 16 kHz PCM: decoded,
/// resampled to 16 kHz, cut into frames (the partial frame kept for the next chunk).
/// Shared by the inbound endpoint ([`InboundAudio`]) and the bot link
/// ([`crate::bot::BotSession`]).
pub struct WireToFrames {
    encoding: Encoding,
    resampler: Option<CaptureResampler>,
    framer: Framer,
    samples: Vec<i16>,
    frame: [i16; FRAME_SAMPLES],
}

impl std::fmt::Debug for WireToFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireToFrames")
            .field("encoding", &self.encoding)
            .field("partial", &self.framer.buffered())
            .finish_non_exhaustive()
    }
}

impl WireToFrames {
    /// Frames of `encoding`, taking up to `max_samples` samples per [`push`](Self::push).
    pub fn new(encoding: Encoding, max_samples: usize) -> Result<Self, ResamplerSetupError> {
        let resampler = match encoding.rate() {
            16_000 => None,
            rate => Some(CaptureResampler::new(
                DeviceFormat::new(rate, 1),
                ResamplerMode::LowDelay,
            )?),
        };
        Ok(Self {
            encoding,
            resampler,
            // Frames are popped as soon as they are whole: room for a few is enough.
            framer: Framer::pcm16k(4),
            samples: vec![0; max_samples],
            frame: [0; FRAME_SAMPLES],
        })
    }

    /// Most bytes one [`push`](Self::push) takes.
    pub fn max_bytes(&self) -> usize {
        self.samples.len() * self.encoding.sample_bytes()
    }

    /// Takes `bytes` (whole samples of the encoding, at most
    /// [`max_bytes`](Self::max_bytes); `silent`: taken as zeros); `emit` receives
    /// each finished frame, in order.
    pub fn push(
        &mut self,
        bytes: &[u8],
        silent: bool,
        mut emit: impl FnMut(&[i16; FRAME_SAMPLES]),
    ) -> Result<(), ProtocolError> {
        let n = bytes.len() / self.encoding.sample_bytes();
        if n > self.samples.len() {
            return Err(ProtocolError::new(
                crate::dialect::CLOSE_INVALID_PAYLOAD,
                format!(
                    "a chunk of {n} samples; at most {} are taken",
                    self.samples.len()
                ),
            ));
        }
        let samples = &mut self.samples[..n];
        match self.encoding {
            Encoding::MuLaw8k => {
                mulaw::decode_into(bytes, samples);
            }
            Encoding::Pcm16 { .. } => {
                for (s, b) in samples.iter_mut().zip(bytes.chunks_exact(2)) {
                    *s = i16::from_le_bytes([b[0], b[1]]);
                }
            }
        }
        if silent {
            samples.fill(0);
        }
        let Self {
            resampler,
            framer,
            frame,
            ..
        } = self;
        let mut cut = |block: &[i16]| {
            let mut rest = block;
            while !rest.is_empty() {
                let took = framer.push(rest);
                rest = &rest[took..];
                while framer.pop_frame(frame) {
                    emit(frame);
                }
                if took == 0 {
                    break;
                }
            }
        };
        match resampler {
            None => cut(samples),
            Some(r) => r.process(samples, cut).map_err(|e| {
                ProtocolError::new(
                    crate::dialect::CLOSE_INVALID_PAYLOAD,
                    format!("cannot resample the audio: {e}"),
                )
            })?,
        }
        Ok(())
    }

    /// Completes a partial frame with silence and emits it (nothing if none).
    pub fn flush(&mut self, mut emit: impl FnMut(&[i16; FRAME_SAMPLES])) {
        let partial = self.framer.buffered();
        if partial > 0 && partial < FRAME_SAMPLES {
            let pad = [0i16; FRAME_SAMPLES];
            self.framer.push(&pad[..FRAME_SAMPLES - partial]);
            if self.framer.pop_frame(&mut self.frame) {
                emit(&self.frame);
            }
        }
    }

    /// Drops the partial frame.
    pub fn clear(&mut self) {
        self.framer.clear();
    }
}

/// One stream's inbound audio (see the [module documentation](self)).
pub struct InboundAudio {
    encoding: Encoding,
    frames: WireToFrames,
    packet: AudioPacket,
    /// Index of the next frame on the timeline.
    next_frame: u64,
    /// The platform's clock where the next chunk is expected, ms.
    expected_ms: Option<u64>,
    counters: InboundCounters,
}

impl std::fmt::Debug for InboundAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundAudio")
            .field("encoding", &self.encoding)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl InboundAudio {
    /// The inbound audio of a stream in `encoding`.
    pub fn new(encoding: Encoding) -> Result<Self, ResamplerSetupError> {
        Ok(Self {
            encoding,
            frames: WireToFrames::new(encoding, MAX_CHUNK_SAMPLES)?,
            packet: AudioPacket::empty(Codec::Pcm16k),
            next_frame: 0,
            expected_ms: None,
            counters: InboundCounters::default(),
        })
    }

    /// The counters so far.
    pub fn counters(&self) -> InboundCounters {
        self.counters
    }

    /// Whose audio the packets carry from now on ([`AudioPacket::source`]: the mix,
    /// or one participant's MSI).
    pub fn set_source(&mut self, source: u32) {
        self.packet.source = source;
    }

    /// Starts a new timeline (another participant takes this stream's place): the
    /// partial frame is dropped and the next frame is the first again.
    pub fn restart(&mut self) {
        self.frames.clear();
        self.next_frame = 0;
        self.expected_ms = None;
    }

    /// Takes one chunk; `emit` receives each finished 20 ms packet, in order.
    pub fn push(
        &mut self,
        chunk: &AudioChunk<'_>,
        mut emit: impl FnMut(&AudioPacket),
    ) -> Result<(), ProtocolError> {
        let n = chunk.bytes.len() / self.encoding.sample_bytes();
        if n * self.encoding.sample_bytes() > self.frames.max_bytes() {
            return Err(ProtocolError::new(
                crate::dialect::CLOSE_INVALID_PAYLOAD,
                format!("a chunk of {n} samples; at most {MAX_CHUNK_MS} ms are taken"),
            ));
        }
        let rate = u64::from(self.encoding.rate());
        if let Some(ts) = chunk.timestamp_ms {
            self.follow_clock(ts);
            // Saturating: the platform's clock is input (a timestamp of u64::MAX ms).
            self.expected_ms = Some(
                self.expected_ms
                    .unwrap_or(ts)
                    .max(ts)
                    .saturating_add(n as u64 * 1000 / rate),
            );
        }
        self.counters.chunks += 1;
        let Self {
            frames,
            packet,
            next_frame,
            counters,
            ..
        } = self;
        frames.push(chunk.bytes, chunk.silent, |frame| {
            packet.seq = *next_frame as u16;
            packet.timestamp = (*next_frame as u32).wrapping_mul(TIMESTAMP_STEP);
            packet.marker = *next_frame == 0;
            packet.silence = false;
            let bytes = packet.payload_buf_mut();
            for (d, s) in bytes.chunks_exact_mut(2).zip(frame.iter()) {
                d.copy_from_slice(&s.to_le_bytes());
            }
            // 640 bytes always fit a packet.
            let _ = packet.set_len(FRAME_SAMPLES * 2);
            emit(packet);
            *next_frame += 1;
            counters.frames += 1;
        })
    }

    /// A chunk stamped `ts` ms: if the platform's clock jumped past the audio counted
    /// so far, the timeline moves on by the whole frames skipped.
    fn follow_clock(&mut self, ts: u64) {
        let Some(expected) = self.expected_ms else {
            return;
        };
        let gap = ts.saturating_sub(expected);
        if (GAP_MS..=MAX_GAP_MS).contains(&gap) {
            let frames = gap / 20;
            self.next_frame += frames;
            self.counters.gaps += 1;
            self.counters.gap_frames += frames;
            // The partial frame belongs before the gap: its samples start the next
            // frame after it, slightly early (< 20 ms), rather than being lost.
        }
    }
}

/// One stream's outbound audio (see the [module documentation](self)).
pub struct OutboundAudio {
    encoding: Encoding,
    resampler: Option<PlayoutResampler>,
    samples: Vec<i16>,
    frame: [i16; FRAME_SAMPLES],
    bytes: Vec<u8>,
}

impl std::fmt::Debug for OutboundAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundAudio")
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

impl OutboundAudio {
    /// The outbound audio of a stream in `encoding`.
    pub fn new(encoding: Encoding) -> Result<Self, ResamplerSetupError> {
        let resampler = match encoding.rate() {
            16_000 => None,
            rate => Some(PlayoutResampler::new(
                DeviceFormat::new(rate, 1),
                ResamplerMode::LowDelay,
            )?),
        };
        let max = resampler
            .as_ref()
            .map_or(FRAME_SAMPLES, PlayoutResampler::max_output_len);
        Ok(Self {
            encoding,
            resampler,
            samples: vec![0; max],
            frame: [0; FRAME_SAMPLES],
            bytes: Vec::with_capacity(max * 2),
        })
    }

    /// One `Pcm16k` packet (640 bytes) in the stream's encoding; the bytes are valid
    /// until the next call.
    pub fn encode(&mut self, packet: &AudioPacket) -> Result<&[u8], LinkError> {
        if packet.codec != Codec::Pcm16k {
            return Err(LinkError::Unsupported(
                "platform WebSockets carry 16 kHz PCM frames only",
            ));
        }
        let payload = packet.payload();
        if payload.len() != FRAME_SAMPLES * 2 {
            return Err(LinkError::Unsupported("a PCM frame is 640 bytes"));
        }
        for (s, b) in self.frame.iter_mut().zip(payload.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        let n = match &mut self.resampler {
            None => {
                self.samples[..FRAME_SAMPLES].copy_from_slice(&self.frame);
                FRAME_SAMPLES
            }
            Some(r) => r
                .process(&self.frame, &mut self.samples)
                .map_err(|_| LinkError::Unsupported("resampling failed"))?,
        };
        self.bytes.clear();
        match self.encoding {
            Encoding::MuLaw8k => self
                .bytes
                .extend(self.samples[..n].iter().map(|&s| mulaw::encode(s))),
            Encoding::Pcm16 { .. } => {
                for s in &self.samples[..n] {
                    self.bytes.extend_from_slice(&s.to_le_bytes());
                }
            }
        }
        Ok(&self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, rate: u32, hz: f64, phase0: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = (i + phase0) as f64 / f64::from(rate);
                ((2.0 * std::f64::consts::PI * hz * t).sin() * 8000.0) as i16
            })
            .collect()
    }

    fn pcm_bytes(s: &[i16]) -> Vec<u8> {
        s.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// Found by fuzzing: a timestamp near `u64::MAX` overflowed the expected clock
    /// (a panic in debug builds), and later timestamps must still be taken.
    #[test]
    fn a_timestamp_at_the_end_of_time_is_taken() {
        let mut a = InboundAudio::new(Encoding::MuLaw8k).expect("8 kHz");
        let bytes = [0xffu8; 160];
        let mut frames = 0;
        for ts in [u64::MAX, u64::MAX - 5, 500, u64::MAX] {
            let chunk = AudioChunk {
                bytes: &bytes,
                timestamp_ms: Some(ts),
                silent: false,
                participant: None,
            };
            a.push(&chunk, |_| frames += 1).expect("valid chunk");
        }
        assert_eq!(a.counters().chunks, 4);
        assert!(frames >= 2, "{frames} frames");
    }

    #[test]
    fn twilio_chunks_become_numbered_frames_on_the_platform_clock() {
        let mut a = InboundAudio::new(Encoding::MuLaw8k).expect("8 kHz");
        let mut got = Vec::new();
        for k in 0..50u64 {
            let pcm = tone(160, 8000, 440.0, k as usize * 160);
            let bytes: Vec<u8> = pcm.iter().map(|&s| mulaw::encode(s)).collect();
            // The platform sent nothing between 400 and 600 ms: a 200 ms gap.
            let ts = if k < 20 { k * 20 } else { k * 20 + 200 };
            let chunk = AudioChunk {
                bytes: &bytes,
                timestamp_ms: Some(ts),
                silent: false,
                participant: None,
            };
            a.push(&chunk, |p| {
                got.push((p.seq, p.timestamp, p.payload().len()))
            })
            .expect("valid chunk");
        }
        let c = a.counters();
        assert_eq!((c.chunks, c.gaps, c.gap_frames), (50, 1, 10));
        // 50 chunks of 20 ms, minus the resampler's block still held.
        assert!(got.len() >= 48, "{} frames", got.len());
        for w in got.windows(2) {
            assert_eq!(w[1].1.wrapping_sub(w[0].1) % TIMESTAMP_STEP, 0);
            assert_eq!(
                u32::from(w[1].0.wrapping_sub(w[0].0)) * TIMESTAMP_STEP,
                w[1].1 - w[0].1
            );
            assert!(w.iter().all(|f| f.2 == 640));
        }
        let jumps: Vec<_> = got.windows(2).filter(|w| w[1].0 != w[0].0 + 1).collect();
        assert_eq!(jumps.len(), 1, "one gap on the timeline: {jumps:?}");
        assert_eq!(jumps[0][1].0 - jumps[0][0].0, 11);
    }

    #[test]
    fn pcm24k_round_trips_through_16k_frames() {
        let mut inbound = InboundAudio::new(Encoding::Pcm16 { rate: 24_000 }).expect("24k");
        let mut outbound = OutboundAudio::new(Encoding::Pcm16 { rate: 24_000 }).expect("24k");
        let mut back = Vec::new();
        for k in 0..25 {
            let pcm = tone(480, 24_000, 1000.0, k * 480);
            let bytes = pcm_bytes(&pcm);
            let chunk = AudioChunk {
                bytes: &bytes,
                timestamp_ms: None,
                silent: false,
                participant: None,
            };
            inbound
                .push(&chunk, |p| {
                    let out = outbound.encode(p).expect("pcm frame");
                    assert_eq!(out.len(), 960, "20 ms at 24 kHz");
                    back.extend(
                        out.chunks_exact(2)
                            .map(|b| i16::from_le_bytes([b[0], b[1]])),
                    );
                })
                .expect("valid");
        }
        // After the filters' start-up the 1 kHz tone comes back at its level.
        let tail = &back[back.len() - 2400..];
        let rms =
            (tail.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / tail.len() as f64).sqrt();
        assert!((rms - 8000.0 / 2f64.sqrt()).abs() < 300.0, "rms {rms}");
    }

    #[test]
    fn outbound_mulaw_is_160_bytes_per_frame_and_refuses_opus() {
        let mut out = OutboundAudio::new(Encoding::MuLaw8k).expect("8k");
        let p = AudioPacket::new(0, 0, Codec::Pcm16k, &[0; 640]).expect("fits");
        assert_eq!(out.encode(&p).expect("pcm").len(), 160);
        let opus = AudioPacket::new(0, 0, Codec::Opus16k, &[0; 40]).expect("fits");
        assert!(matches!(out.encode(&opus), Err(LinkError::Unsupported(_))));
    }
}
