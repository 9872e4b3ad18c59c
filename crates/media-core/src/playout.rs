//! The receive pipeline: packets → jitter buffer → decode / FEC / conceal →
//! time-stretch → exactly one 20 ms [`Pcm16kFrame`] per tick.
//!
//! ```text
//!  handle_packet(now, &pkt) ──► JitterBuffer ──poll_playout──► decode | FEC | PLC
//!                                                                  │
//!                                          accelerate / expand ◄───┘
//!                                                   │
//!  poll_frame(now, &mut frame) ◄── sync buffer (decoded PCM not yet played)
//! ```
//!
//! Call [`ReceivePipeline::handle_packet`] for every packet as it arrives and
//! [`ReceivePipeline::poll_frame`] once per 20 ms tick; each call fills exactly one
//! 320-sample frame and returns its [`FrameInfo`] (media timestamp of the first sample,
//! silence and concealment flags). Nothing ever panics on bad input: packets of the wrong
//! codec, with empty or undecodable payloads, or with absurd sequence numbers or
//! timestamps are counted in [`JitterStats::malformed`] and dropped.
//!
//! # Example
//! ```
//! use std::time::{Duration, Instant};
//! use media_core::codec::{AudioDecoder, CodecError, Codec};
//! use media_core::frame::{Pcm16kFrame, FRAME_SAMPLES};
//! use media_core::packet::AudioPacket;
//! use media_core::playout::{ReceiveConfig, ReceivePipeline};
//!
//! // A trivial PCM decoder for the example.
//! struct Pcm;
//! impl AudioDecoder for Pcm {
//!     fn kind(&self) -> Codec { Codec::Pcm16k }
//!     fn decode(&mut self, p: &[u8], out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError> {
//!         let f = Pcm16kFrame::from_le_bytes(p).map_err(|_| CodecError::InvalidPayload)?;
//!         *out = *f.samples();
//!         Ok(())
//!     }
//!     fn conceal(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError> {
//!         out.fill(0);
//!         Ok(())
//!     }
//!     fn decode_fec(&mut self, _: &[u8], out: &mut [i16; FRAME_SAMPLES]) -> Result<bool, CodecError> {
//!         self.conceal(out).map(|_| false)
//!     }
//! }
//!
//! let mut rx = ReceivePipeline::new(ReceiveConfig::default(), Box::new(Pcm));
//! let t0 = Instant::now();
//! let mut frame = Pcm16kFrame::silent();
//! for k in 0..50u16 {
//!     let now = t0 + Duration::from_millis(20 * u64::from(k));
//!     let pkt = AudioPacket::new(k, u32::from(k) * 320, Codec::Pcm16k, &[0; 640]).unwrap();
//!     let _ = rx.handle_packet(now, &pkt);
//!     let info = rx.poll_frame(now, &mut frame);
//!     assert_eq!(frame.samples().len(), 320);
//!     let _ = info.media_time;
//! }
//! assert_eq!(rx.stats().packets_received, 50);
//! ```
//!
//! # Realtime safety
//! The decoder is created by the caller before [`ReceivePipeline::new`]; the jitter
//! buffer, the decode and stretch buffers and the sync buffer are allocated there.
//! `handle_packet` and `poll_frame` never allocate, lock or block (libopus does not
//! allocate per call either). `poll_frame` costs one decode (or concealment) per 20 ms,
//! plus a pitch search (≈ 40 k multiply-adds) on the frames that are time-stretched.

use std::time::Instant;

use crate::codec::AudioDecoder;
use crate::frame::{FRAME_SAMPLES, PCM16K_RATE, Pcm16kFrame, rms_dbfs};
use crate::jitter::stretch::{self, MAX_PERIOD, MAX_STRETCHED, MIN_PERIOD};
use crate::jitter::{
    Accepted, Discard, JitterBuffer, JitterConfig, JitterStats, Playout, Stretch, Urgency,
};
use crate::packet::AudioPacket;
use crate::time::{MediaTime, Ticks100ns};

/// Decoded samples the pipeline can hold: < 320 pending plus one stretched frame.
const SYNC_CAP: usize = FRAME_SAMPLES + MAX_STRETCHED;
/// Decoded chunks in flight in the sync buffer.
const MAX_CHUNKS: usize = 8;

/// Configuration of the [`ReceivePipeline`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceiveConfig {
    /// The jitter buffer.
    pub jitter: JitterConfig,
    /// A frame whose RMS is below this is reported silent (default -50 dBFS).
    pub silence_threshold_dbfs: f32,
    /// Frames below this level (or flagged silent by the sender) are time-stretched
    /// without a pitch search, and may be dropped whole (default -40 dBFS).
    pub quiet_threshold_dbfs: f32,
    /// Normalised correlation a pitch period needs before it is removed or inserted in
    /// active speech (default 0.9, NetEQ's threshold); the two periods must also be of
    /// similar energy ([`stretch::is_stationary`]). Elsewhere the frame is played as
    /// it is and the stretch waits for a frame that allows it.
    pub min_correlation: f32,
}

impl Default for ReceiveConfig {
    fn default() -> Self {
        Self {
            jitter: JitterConfig::default(),
            silence_threshold_dbfs: -50.0,
            quiet_threshold_dbfs: -40.0,
            min_correlation: 0.9,
        }
    }
}

/// What one delivered frame contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Media time of the first sample on the sender's timeline (16 kHz samples since the
    /// timestamp epoch of the first packet).
    pub media_time: MediaTime,
    /// The same instant in 100 ns ticks (the bot-facing `Timestamp`).
    pub timestamp: Ticks100ns,
    /// The frame is silent: RMS below the threshold, or every packet in it was flagged
    /// silent by the sender.
    pub silence: bool,
    /// Some samples of the frame come from packet-loss concealment.
    pub concealed: bool,
    /// How many samples of the frame are concealment (0..=320).
    pub concealed_samples: u16,
    /// False before the stream started playing (the frame is filler silence).
    pub active: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Chunk {
    ts: u64,
    out: u32,
    consumed: u32,
    concealed: bool,
    sender_silent: bool,
    idle: bool,
}

/// The receive pipeline. See the [module documentation](self).
pub struct ReceivePipeline {
    cfg: ReceiveConfig,
    jb: JitterBuffer,
    decoder: Box<dyn AudioDecoder>,
    decoded: [i16; FRAME_SAMPLES],
    stretched: [i16; MAX_STRETCHED],
    sync: [i16; SYNC_CAP],
    sync_len: usize,
    chunks: [Chunk; MAX_CHUNKS],
    n_chunks: usize,
    last_ts: u64,
}

impl std::fmt::Debug for ReceivePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivePipeline")
            .field("codec", &self.decoder.kind())
            .field("jitter", &self.jb)
            .field("sync_len", &self.sync_len)
            .finish()
    }
}

impl ReceivePipeline {
    /// A pipeline decoding with `decoder` (created outside the real-time path).
    pub fn new(cfg: ReceiveConfig, decoder: Box<dyn AudioDecoder>) -> Self {
        Self {
            jb: JitterBuffer::new(cfg.jitter),
            cfg,
            decoder,
            decoded: [0; FRAME_SAMPLES],
            stretched: [0; MAX_STRETCHED],
            sync: [0; SYNC_CAP],
            sync_len: 0,
            chunks: [Chunk::default(); MAX_CHUNKS],
            n_chunks: 0,
            last_ts: 0,
        }
    }

    /// Statistics (W3C webrtc-stats names).
    pub fn stats(&self) -> JitterStats {
        self.jb.stats()
    }

    /// Tells the jitter buffer how the link delivers packets
    /// ([`JitterBuffer::set_delivery`]).
    pub fn set_delivery(&mut self, delivery: crate::link::Delivery) {
        self.jb.set_delivery(delivery);
    }

    /// The jitter buffer (read-only: target delay, fill level).
    pub fn jitter_buffer(&self) -> &JitterBuffer {
        &self.jb
    }

    /// Drops buffered packets and decoded audio; playout restarts with the next packet.
    pub fn reset(&mut self) {
        self.jb.reset();
        self.sync_len = 0;
        self.n_chunks = 0;
    }

    /// Hands an arriving packet to the jitter buffer. Packets of another codec than the
    /// decoder's are malformed. Errors are counted in the statistics.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: &AudioPacket,
    ) -> Result<Accepted, Discard> {
        if packet.codec != self.decoder.kind() {
            self.jb.reject_packet();
            return Err(Discard::Malformed);
        }
        self.jb.handle_packet(now, packet)
    }

    fn push_chunk(&mut self, samples_from_stretched: bool, len: usize, chunk: Chunk) {
        let len = len.min(SYNC_CAP - self.sync_len);
        if len == 0 {
            return;
        }
        let src: &[i16] = if samples_from_stretched {
            &self.stretched[..len]
        } else {
            &self.decoded[..len]
        };
        self.sync[self.sync_len..self.sync_len + len].copy_from_slice(src);
        self.sync_len += len;
        if self.n_chunks == MAX_CHUNKS {
            // Cannot happen (at most 3 chunks are in flight); merge into the last one.
            self.chunks[MAX_CHUNKS - 1].out += len as u32;
            return;
        }
        self.chunks[self.n_chunks] = Chunk {
            out: len as u32,
            consumed: 0,
            ..chunk
        };
        self.n_chunks += 1;
        self.last_ts = chunk.ts + if chunk.idle { 0 } else { FRAME_SAMPLES as u64 };
    }

    /// Applies `stretch` to `self.decoded`; returns (from_stretched, length, removed,
    /// inserted).
    fn apply_stretch(&mut self, req: Stretch, sender_silent: bool) -> (bool, usize, usize, usize) {
        let quiet = sender_silent || rms_dbfs(&self.decoded) < self.cfg.quiet_threshold_dbfs;
        match req {
            Stretch::None => (false, FRAME_SAMPLES, 0, 0),
            Stretch::Accelerate {
                max_samples,
                urgency,
            } => {
                if quiet {
                    if max_samples >= FRAME_SAMPLES {
                        return (false, 0, FRAME_SAMPLES, 0);
                    }
                    let l = max_samples.min(MAX_PERIOD);
                    if l >= MIN_PERIOD / 2
                        && let Some(n) = stretch::remove(&self.decoded, l, &mut self.stretched)
                    {
                        return (true, n, l, 0);
                    }
                    return (false, FRAME_SAMPLES, 0, 0);
                }
                let max_p = max_samples.min(MAX_PERIOD);
                if max_p < MIN_PERIOD || urgency == Urgency::QuietOnly {
                    return (false, FRAME_SAMPLES, 0, 0);
                }
                let (p, c) = stretch::find_period(&self.decoded, MIN_PERIOD, max_p);
                let clean =
                    c >= self.cfg.min_correlation && stretch::is_stationary(&self.decoded, p);
                if (urgency == Urgency::Forced || clean)
                    && let Some(n) = stretch::remove(&self.decoded, p, &mut self.stretched)
                {
                    return (true, n, p, 0);
                }
                (false, FRAME_SAMPLES, 0, 0)
            }
            Stretch::Expand {
                max_samples,
                urgency,
            } => {
                if quiet {
                    let l = max_samples.clamp(MIN_PERIOD, MAX_PERIOD);
                    if let Some(n) = stretch::insert(&self.decoded, l, &mut self.stretched) {
                        return (true, n, 0, l);
                    }
                    return (false, FRAME_SAMPLES, 0, 0);
                }
                if urgency == Urgency::QuietOnly {
                    return (false, FRAME_SAMPLES, 0, 0);
                }
                let (p, c) = stretch::find_period(&self.decoded, MIN_PERIOD, MAX_PERIOD);
                if c >= self.cfg.min_correlation
                    && stretch::is_stationary(&self.decoded, p)
                    && let Some(n) = stretch::insert(&self.decoded, p, &mut self.stretched)
                {
                    return (true, n, 0, p);
                }
                (false, FRAME_SAMPLES, 0, 0)
            }
        }
    }

    fn conceal_into_decoded(&mut self) {
        if self.decoder.conceal(&mut self.decoded).is_err() {
            self.decoded.fill(0);
        }
    }

    /// Produces the next 20 ms frame into `out`. Call exactly once per 20 ms tick.
    pub fn poll_frame(&mut self, now: Instant, out: &mut Pcm16kFrame) -> FrameInfo {
        // Each round adds at least 160 samples unless it drops a whole quiet frame,
        // which needs a buffered packet: the bound is never reached in practice.
        let mut rounds = 0;
        while self.sync_len < FRAME_SAMPLES && rounds < 4 * crate::jitter::MAX_CAPACITY {
            rounds += 1;
            let pending = self.sync_len;
            match self.jb.poll_playout(now, pending) {
                Playout::Idle => {
                    self.decoded.fill(0);
                    let chunk = Chunk {
                        ts: self.last_ts,
                        sender_silent: true,
                        idle: true,
                        ..Chunk::default()
                    };
                    self.push_chunk(false, FRAME_SAMPLES - pending, chunk);
                }
                Playout::Decode {
                    packet,
                    timestamp,
                    stretch,
                } => {
                    let sender_silent = packet.silence;
                    let res = self.decoder.decode(packet.payload(), &mut self.decoded);
                    let chunk = Chunk {
                        ts: timestamp,
                        sender_silent,
                        ..Chunk::default()
                    };
                    if res.is_ok() {
                        self.jb.record_decoded(false);
                        let (from_stretched, len, removed, inserted) =
                            self.apply_stretch(stretch, sender_silent);
                        self.jb.record_stretch(removed, inserted);
                        self.push_chunk(from_stretched, len, chunk);
                    } else {
                        self.jb.record_malformed();
                        self.conceal_into_decoded();
                        let silent = rms_dbfs(&self.decoded) < self.cfg.silence_threshold_dbfs;
                        self.jb.record_concealment(FRAME_SAMPLES, silent);
                        let chunk = Chunk {
                            concealed: true,
                            ..chunk
                        };
                        self.push_chunk(false, FRAME_SAMPLES, chunk);
                    }
                }
                Playout::Fec { next, timestamp } => {
                    let res = self.decoder.decode_fec(next.payload(), &mut self.decoded);
                    let recovered = matches!(res, Ok(true));
                    if res.is_err() {
                        self.conceal_into_decoded();
                    }
                    if recovered {
                        self.jb.record_decoded(true);
                    } else {
                        let silent = rms_dbfs(&self.decoded) < self.cfg.silence_threshold_dbfs;
                        self.jb.record_concealment(FRAME_SAMPLES, silent);
                    }
                    let chunk = Chunk {
                        ts: timestamp,
                        concealed: !recovered,
                        ..Chunk::default()
                    };
                    self.push_chunk(false, FRAME_SAMPLES, chunk);
                }
                Playout::Conceal { timestamp } => {
                    self.conceal_into_decoded();
                    let silent = rms_dbfs(&self.decoded) < self.cfg.silence_threshold_dbfs;
                    self.jb.record_concealment(FRAME_SAMPLES, silent);
                    let chunk = Chunk {
                        ts: timestamp,
                        concealed: true,
                        ..Chunk::default()
                    };
                    self.push_chunk(false, FRAME_SAMPLES, chunk);
                }
            }
        }
        if self.sync_len < FRAME_SAMPLES {
            self.sync[self.sync_len..FRAME_SAMPLES].fill(0);
            self.sync_len = FRAME_SAMPLES;
        }
        out.samples_mut()
            .copy_from_slice(&self.sync[..FRAME_SAMPLES]);
        self.sync.copy_within(FRAME_SAMPLES..self.sync_len, 0);
        self.sync_len -= FRAME_SAMPLES;

        // Walk the chunks that made up this frame.
        let mut info_ts = self.last_ts;
        let mut first = true;
        let mut active = false;
        let mut all_sender_silent = true;
        let mut concealed_samples = 0u32;
        let mut need = FRAME_SAMPLES as u32;
        while need > 0 && self.n_chunks > 0 {
            let c = &mut self.chunks[0];
            if first {
                // Position of the first sample: linear within a stretched chunk.
                let pos = if c.idle || c.out == 0 {
                    0
                } else {
                    u64::from(c.consumed) * FRAME_SAMPLES as u64 / u64::from(c.out)
                };
                info_ts = c.ts + pos;
                first = false;
            }
            let take = need.min(c.out - c.consumed);
            c.consumed += take;
            need -= take;
            active |= !c.idle;
            all_sender_silent &= c.sender_silent || c.idle;
            if c.concealed {
                concealed_samples += take;
            }
            if c.consumed >= c.out {
                self.chunks.copy_within(1..self.n_chunks, 0);
                self.n_chunks -= 1;
            }
        }
        let silence = all_sender_silent || out.rms_dbfs() < self.cfg.silence_threshold_dbfs;
        let media_time = MediaTime::new(JitterBuffer::media_samples(info_ts), PCM16K_RATE);
        FrameInfo {
            media_time,
            timestamp: media_time.to_ticks(),
            silence,
            concealed: concealed_samples > 0,
            concealed_samples: concealed_samples.min(FRAME_SAMPLES as u32) as u16,
            active,
        }
    }
}
