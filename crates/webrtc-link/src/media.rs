//! RTP audio to and from the call's packets, sans-IO: [`RtpInbound`], [`RtpOutbound`].
//!
//! **Opus** passes through: an RTP Opus payload is an Opus packet whatever the rate it
//! was encoded at, libopus decodes it at 16 kHz, and the call's 16 kHz Opus packets
//! are valid at the 48 kHz RTP clock (RFC 7587). Only the timestamps change scale
//! (48 kHz RTP ticks = 3 × 16 kHz media ticks). A packet must hold 20 ms (the call's
//! frame); other durations are refused (counted as malformed), which the far end's
//! default `ptime` never produces.
//!
//! **G.711** (PCMU, PCMA) is decoded to 8 kHz PCM and handed to the same conversion a
//! platform WebSocket's PCM stream uses (`ws_link::media`): resampled to 16 kHz and
//! cut into 20 ms `Pcm16k` packets numbered on the RTP clock, so a jump of the far
//! end's timestamps (lost packets) moves the numbering on by the frames skipped and
//! the jitter buffer conceals them. Outbound, each `Pcm16k` frame is resampled to
//! 8 kHz (`ws_link::media::OutboundAudio`) and sent as 160-byte packets.
//!
//! # Realtime safety
//! Resamplers, framer and buffers are created with the call; converting a packet
//! allocates nothing (str0m copies the payload it is given).

use media_core::codec::Codec;
use media_core::link::LinkError;
use media_core::packet::{AudioPacket, TIMESTAMP_STEP};
use media_core::resample::ResamplerSetupError;
use ws_link::dialect::{AudioChunk, Encoding};
use ws_link::media::{InboundAudio, OutboundAudio};

use crate::codec::{AudioCodec, g711_decode_into, g711_encode_into};

/// Samples of 20 ms at 8 kHz (one G.711 packet of this link).
const G711_FRAME: usize = 160;
/// Largest G.711 payload taken: 60 ms.
const MAX_G711: usize = 3 * G711_FRAME;
/// G.711 decoded: 16-bit PCM at 8 kHz.
const PCM8K: Encoding = Encoding::Pcm16 { rate: 8_000 };

/// Why an inbound RTP payload was not taken (counted as malformed by the link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Empty payload.
    #[error("empty payload")]
    Empty,
    /// An Opus packet that does not hold 20 ms of audio.
    #[error("an Opus packet of {0} µs; the call takes 20 ms packets")]
    OpusDuration(u32),
    /// Larger than a packet holds.
    #[error("a payload of {0} bytes is too large")]
    TooLarge(usize),
    /// A G.711 payload of more than 60 ms.
    #[error("a G.711 payload of {0} samples; at most 480 (60 ms) are taken")]
    G711TooLong(usize),
    /// Resampling failed.
    #[error("cannot resample the audio")]
    Resample,
}

/// Duration of an Opus packet in µs from its TOC byte and frame count (RFC 6716 §3.1),
/// or `None` for a malformed packet.
pub fn opus_packet_duration_us(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame_us: u32 = match config {
        // SILK-only NB/MB/WB: 10, 20, 40, 60 ms.
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)],
        // Hybrid SWB/FB: 10, 20 ms.
        12..=15 => [10_000, 20_000][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    Some(frame_us * frames)
}

/// The far end's RTP audio into the call's packets (see the [module documentation](self)).
pub struct RtpInbound {
    codec: AudioCodec,
    /// G.711 only: 8 kHz PCM to numbered 16 kHz frames on the RTP clock (the same
    /// conversion as a platform WebSocket's PCM stream).
    g711: Option<InboundAudio>,
    samples: [i16; MAX_G711],
    bytes: [u8; 2 * MAX_G711],
    packet: AudioPacket,
    /// RTP time (8 kHz) of the latest G.711 packet taken.
    latest: Option<u64>,
}

impl std::fmt::Debug for RtpInbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpInbound")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl RtpInbound {
    /// The inbound conversion of a call in `codec`.
    pub fn new(codec: AudioCodec) -> Result<Self, ResamplerSetupError> {
        let g711 = match codec {
            AudioCodec::Opus => None,
            AudioCodec::Pcmu | AudioCodec::Pcma => Some(InboundAudio::new(PCM8K)?),
        };
        Ok(Self {
            codec,
            g711,
            samples: [0; MAX_G711],
            bytes: [0; 2 * MAX_G711],
            packet: AudioPacket::empty(codec.call_codec()),
            latest: None,
        })
    }

    /// One RTP payload: extended sequence number `seq`, extended RTP time `rtp_time`
    /// (the codec's clock). `emit` receives each call packet made, in order.
    pub fn push(
        &mut self,
        seq: u64,
        rtp_time: u64,
        payload: &[u8],
        mut emit: impl FnMut(&AudioPacket),
    ) -> Result<(), PayloadError> {
        if payload.is_empty() {
            return Err(PayloadError::Empty);
        }
        let Some(g711) = self.g711.as_mut() else {
            let us = opus_packet_duration_us(payload).unwrap_or(0);
            if us != 20_000 {
                return Err(PayloadError::OpusDuration(us));
            }
            self.packet.seq = seq as u16;
            self.packet.timestamp = (rtp_time / 3) as u32;
            self.packet.codec = Codec::Opus16k;
            self.packet.silence = false;
            self.packet.marker = false;
            self.packet
                .set_payload(payload)
                .map_err(|_| PayloadError::TooLarge(payload.len()))?;
            emit(&self.packet);
            return Ok(());
        };
        let n = payload.len();
        if n > MAX_G711 {
            return Err(PayloadError::G711TooLong(n));
        }
        if self.latest.is_some_and(|t| rtp_time <= t) {
            // Late or duplicated: its place on the timeline has been played.
            return Ok(());
        }
        self.latest = Some(rtp_time);
        g711_decode_into(self.codec, payload, &mut self.samples[..n]);
        for (b, s) in self.bytes.chunks_exact_mut(2).zip(&self.samples[..n]) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        let chunk = AudioChunk {
            bytes: &self.bytes[..2 * n],
            // The 8 kHz RTP clock in ms: a jump (lost packets) is a gap on the timeline.
            timestamp_ms: Some(rtp_time / 8),
            silent: false,
            participant: None,
        };
        g711.push(&chunk, emit).map_err(|_| PayloadError::Resample)
    }
}

/// The call's packets into RTP payloads (see the [module documentation](self)).
pub struct RtpOutbound {
    codec: AudioCodec,
    /// G.711 only: 16 kHz frames to 8 kHz PCM (as for a platform WebSocket).
    g711: Option<OutboundAudio>,
    /// 8 kHz samples waiting for a whole G.711 packet.
    pending: Vec<i16>,
    bytes: [u8; G711_FRAME],
    /// The call's timestamp of the previous packet (16 kHz).
    last: Option<u32>,
    /// Extended RTP time of the next payload (the codec's clock).
    rtp_time: u64,
}

impl std::fmt::Debug for RtpOutbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpOutbound")
            .field("codec", &self.codec)
            .field("rtp_time", &self.rtp_time)
            .finish_non_exhaustive()
    }
}

impl RtpOutbound {
    /// The outbound conversion of a call in `codec`.
    pub fn new(codec: AudioCodec) -> Result<Self, ResamplerSetupError> {
        let g711 = match codec {
            AudioCodec::Opus => None,
            AudioCodec::Pcmu | AudioCodec::Pcma => Some(OutboundAudio::new(PCM8K)?),
        };
        Ok(Self {
            codec,
            g711,
            pending: Vec::with_capacity(4 * G711_FRAME),
            bytes: [0; G711_FRAME],
            last: None,
            rtp_time: 0,
        })
    }

    /// Extended RTP time (the codec's clock) of the next payload.
    pub fn rtp_time(&self) -> u64 {
        self.rtp_time
    }

    /// One packet of the call; `emit` receives each RTP payload with its extended RTP
    /// time (none, one, or for G.711 after a resampler start-up, two).
    pub fn encode(
        &mut self,
        packet: &AudioPacket,
        mut emit: impl FnMut(u64, &[u8]),
    ) -> Result<(), LinkError> {
        if packet.codec != self.codec.call_codec() {
            return Err(LinkError::Unsupported(
                "a packet in another codec than the call negotiated",
            ));
        }
        // Follow the call's own clock: a pause (nothing sent) moves the RTP time on.
        let step = match self.last {
            Some(last) => u64::try_from(packet.timestamp.wrapping_sub(last) as i32).unwrap_or(0),
            None => 0,
        };
        self.last = Some(packet.timestamp);
        let Some(g711) = self.g711.as_mut() else {
            self.rtp_time += step * 3;
            emit(self.rtp_time, packet.payload());
            return Ok(());
        };
        // The pending samples continue the previous frame; a pause skips on.
        let frames_skipped = (step / u64::from(TIMESTAMP_STEP)).saturating_sub(1);
        self.rtp_time += frames_skipped * G711_FRAME as u64;
        let pcm = g711.encode(packet)?;
        if self.pending.len() + pcm.len() / 2 > self.pending.capacity() {
            // Never with a resampler that keeps its rate; drop rather than grow.
            self.pending.clear();
        }
        self.pending.extend(
            pcm.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        let mut start = 0;
        while self.pending.len() - start >= G711_FRAME {
            let chunk = &self.pending[start..start + G711_FRAME];
            g711_encode_into(self.codec, chunk, &mut self.bytes);
            emit(self.rtp_time, &self.bytes);
            self.rtp_time += G711_FRAME as u64;
            start += G711_FRAME;
        }
        self.pending.drain(..start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use media_core::frame::FRAME_SAMPLES;

    use super::*;

    fn tone_frame(k: usize) -> [i16; FRAME_SAMPLES] {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            let t = (k * FRAME_SAMPLES + i) as f64 / 16_000.0;
            *s = ((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 8000.0) as i16;
        }
        f
    }

    fn pcm_packet(k: usize) -> AudioPacket {
        let bytes: Vec<u8> = tone_frame(k).iter().flat_map(|s| s.to_le_bytes()).collect();
        AudioPacket::new(k as u16, k as u32 * TIMESTAMP_STEP, Codec::Pcm16k, &bytes)
            .expect("640 bytes fit")
    }

    #[test]
    fn opus_toc_durations() {
        // config 1 (SILK NB 20 ms), code 0; config 31 (CELT FB 20 ms); two 10 ms frames.
        assert_eq!(opus_packet_duration_us(&[1 << 3]), Some(20_000));
        assert_eq!(opus_packet_duration_us(&[31 << 3, 0]), Some(20_000));
        assert_eq!(opus_packet_duration_us(&[(2 << 3) | 1]), Some(80_000));
        assert_eq!(opus_packet_duration_us(&[(30 << 3) | 1]), Some(20_000));
        assert_eq!(opus_packet_duration_us(&[(31 << 3) | 3, 3]), Some(60_000));
        assert_eq!(opus_packet_duration_us(&[(31 << 3) | 3]), None);
        assert_eq!(opus_packet_duration_us(&[]), None);
    }

    #[test]
    fn opus_passes_through_with_timestamps_rescaled() {
        let mut inbound = RtpInbound::new(AudioCodec::Opus).expect("opus");
        let mut got = Vec::new();
        inbound
            .push(70_000, 960 * 5, &[31 << 3, 1, 2, 3], |p| {
                got.push((p.seq, p.timestamp, p.codec, p.payload().to_vec()))
            })
            .expect("a 20 ms packet");
        assert_eq!(
            got,
            [(
                70_000u64 as u16,
                320 * 5,
                Codec::Opus16k,
                vec![31 << 3, 1, 2, 3]
            )]
        );
        let e = inbound
            .push(1, 0, &[(31 << 3) | 1, 0], |_| {})
            .expect_err("40 ms");
        assert_eq!(e, PayloadError::OpusDuration(40_000));
        let mut out = RtpOutbound::new(AudioCodec::Opus).expect("opus");
        let mut times = Vec::new();
        for k in [0u32, 1, 2, 5] {
            let p = AudioPacket::new(k as u16, k * TIMESTAMP_STEP, Codec::Opus16k, &[8, 9])
                .expect("fits");
            out.encode(&p, |t, b| times.push((t, b.to_vec())))
                .expect("opus");
        }
        let t: Vec<u64> = times.iter().map(|x| x.0).collect();
        assert_eq!(t, [0, 960, 1920, 4800], "48 kHz ticks, a pause skipped");
        let pcm = pcm_packet(0);
        assert!(out.encode(&pcm, |_, _| {}).is_err(), "pcm on an opus link");
    }

    #[test]
    fn g711_round_trips_at_16k_and_follows_gaps() {
        for codec in [AudioCodec::Pcmu, AudioCodec::Pcma] {
            let mut out = RtpOutbound::new(codec).expect("8k");
            let mut inbound = RtpInbound::new(codec).expect("8k");
            let mut rtp = Vec::new();
            for k in 0..50 {
                out.encode(&pcm_packet(k), |t, b| rtp.push((t, b.to_vec())))
                    .expect("pcm");
            }
            assert!(rtp.len() >= 49, "{} packets", rtp.len());
            assert!(rtp.iter().all(|(_, b)| b.len() == 160));
            for w in rtp.windows(2) {
                assert_eq!(w[1].0 - w[0].0, 160);
            }
            let mut back = Vec::new();
            let mut seqs = Vec::new();
            for (i, (t, b)) in rtp.iter().enumerate() {
                // Packets 20..25 are lost on the way.
                if (20..25).contains(&i) {
                    continue;
                }
                inbound
                    .push(i as u64, *t, b, |p| {
                        seqs.push(p.seq);
                        back.extend(
                            p.payload()
                                .chunks_exact(2)
                                .map(|b| i16::from_le_bytes([b[0], b[1]])),
                        );
                    })
                    .expect("g711");
            }
            let jumps: Vec<_> = seqs.windows(2).filter(|w| w[1] != w[0] + 1).collect();
            assert_eq!(jumps.len(), 1, "{codec}: one gap: {jumps:?}");
            assert_eq!(jumps[0][1] - jumps[0][0], 6, "{codec}: 5 frames skipped");
            let tail = &back[back.len() - 3200..];
            let rms = (tail.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / tail.len() as f64)
                .sqrt();
            assert!(
                (rms - 8000.0 / 2f64.sqrt()).abs() < 400.0,
                "{codec}: rms {rms}"
            );
        }
    }
}
