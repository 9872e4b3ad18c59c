//! Opus at 16 kHz mono, 20 ms per packet, `Application::Voip` (libopus through the
//! `opus` crate).
//!
//! Loss handling: [`OpusDecoder::conceal`] runs libopus packet-loss concealment for
//! exactly one 20 ms frame; [`OpusDecoder::decode_fec`] recovers a lost frame from the
//! in-band FEC (LBRR) data of the packet after it, when the sender enabled FEC and the
//! packet carries it.
//!
//! # Realtime safety
//! Encoder and decoder state is created by the constructors. Encoding, decoding,
//! concealment and the LBRR check write into caller-owned buffers and do not allocate
//! (libopus does not allocate per call; a Rust counting allocator cannot see it
//! anyway). Errors are small `Copy` values.

use ::opus::{Application, Bitrate, Channels, Decoder, Encoder, ErrorCode};

use super::{AudioDecoder, AudioEncoder, Codec, CodecError};
use crate::frame::{FRAME_SAMPLES, PCM16K_RATE};

/// Opus encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bitrate in bits per second (libopus accepts 500..=512000).
    pub bitrate: u32,
    /// Encoder complexity 0..=10 (CPU for quality; 5 costs about 150 µs per frame).
    pub complexity: u8,
    /// Put a low-bitrate copy of each frame into the next packet (in-band FEC) from
    /// the start.
    pub inband_fec: bool,
    /// Expected packet loss in percent, 0..=100, from the start: tunes how much FEC
    /// is sent (libopus spends it out of `bitrate`).
    pub packet_loss_percent: u8,
    /// Discontinuous transmission: send tiny packets during silence.
    pub dtx: bool,
    /// Let the receiver's loss reports set FEC and the expected loss during the call
    /// ([`super::adapt`]); the two settings above are then only the start.
    pub adaptive_fec: bool,
    /// Most expected loss (percent) the adaptation asks for: the cap of the FEC budget.
    pub max_loss_percent: u8,
}

impl Default for OpusConfig {
    /// 24 kbit/s, complexity 5, no DTX; no FEC budget on a clean path, loss-adaptive
    /// FEC up to 20 % expected loss.
    fn default() -> Self {
        Self {
            bitrate: 24_000,
            complexity: 5,
            inband_fec: false,
            packet_loss_percent: 0,
            dtx: false,
            adaptive_fec: true,
            max_loss_percent: 20,
        }
    }
}

fn map_err(e: ::opus::Error) -> CodecError {
    match e.code() {
        ErrorCode::InvalidPacket => CodecError::InvalidPayload,
        ErrorCode::BufferTooSmall => CodecError::BufferTooSmall,
        code => CodecError::Internal(code as i32),
    }
}

/// An Opus encoder for 20 ms `Pcm16K` frames.
pub struct OpusEncoder {
    inner: Encoder,
    config: OpusConfig,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("config", &self.config)
            .finish()
    }
}

impl OpusEncoder {
    /// Creates the encoder state and applies `config`. Out-of-range settings are
    /// reported as `CodecError::Internal` with libopus's `OPUS_BAD_ARG` (-1).
    pub fn new(config: &OpusConfig) -> Result<Self, CodecError> {
        let mut inner =
            Encoder::new(PCM16K_RATE, Channels::Mono, Application::Voip).map_err(map_err)?;
        let bitrate = i32::try_from(config.bitrate).map_err(|_| CodecError::Internal(-1))?;
        inner.set_bitrate(Bitrate::Bits(bitrate)).map_err(map_err)?;
        inner
            .set_complexity(i32::from(config.complexity))
            .map_err(map_err)?;
        inner.set_inband_fec(config.inband_fec).map_err(map_err)?;
        inner
            .set_packet_loss_perc(i32::from(config.packet_loss_percent))
            .map_err(map_err)?;
        inner.set_dtx(config.dtx).map_err(map_err)?;
        Ok(Self {
            inner,
            config: *config,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &OpusConfig {
        &self.config
    }

    /// Encoder lookahead in 16 kHz samples (algorithmic delay beyond the frame).
    pub fn lookahead(&mut self) -> Result<usize, CodecError> {
        let l = self.inner.get_lookahead().map_err(map_err)?;
        Ok(usize::try_from(l).unwrap_or(0))
    }
}

impl AudioEncoder for OpusEncoder {
    fn kind(&self) -> Codec {
        Codec::Opus16k
    }

    fn encode(
        &mut self,
        frame: &[i16; FRAME_SAMPLES],
        out: &mut [u8],
    ) -> Result<usize, CodecError> {
        self.inner.encode(frame, out).map_err(map_err)
    }

    /// 0 turns in-band FEC off; otherwise FEC on, protecting against `percent` loss.
    fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        let percent = percent.min(100);
        let fec = percent > 0;
        if fec != self.config.inband_fec {
            self.inner.set_inband_fec(fec).map_err(map_err)?;
            self.config.inband_fec = fec;
        }
        if percent != self.config.packet_loss_percent {
            self.inner
                .set_packet_loss_perc(i32::from(percent))
                .map_err(map_err)?;
            self.config.packet_loss_percent = percent;
        }
        Ok(())
    }
}

/// An Opus decoder producing 20 ms `Pcm16K` frames.
pub struct OpusDecoder {
    inner: Decoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// Creates the decoder state.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            inner: Decoder::new(PCM16K_RATE, Channels::Mono).map_err(map_err)?,
        })
    }

    /// Checks that `payload` is an Opus packet of exactly one 20 ms frame's worth.
    fn check(payload: &[u8]) -> Result<(), CodecError> {
        if payload.is_empty() {
            return Err(CodecError::InvalidPayload);
        }
        let n = ::opus::packet::get_nb_samples(payload, PCM16K_RATE)
            .map_err(|_| CodecError::InvalidPayload)?;
        if n == 0 {
            // A code-3 packet announcing zero frames (RFC 6716 §3.2.5: invalid).
            return Err(CodecError::InvalidPayload);
        }
        if n != FRAME_SAMPLES {
            return Err(CodecError::WrongFrameLength { got: n });
        }
        Ok(())
    }
}

impl AudioDecoder for OpusDecoder {
    fn kind(&self) -> Codec {
        Codec::Opus16k
    }

    /// On error `out` is unspecified: conceal the frame instead.
    fn decode(&mut self, payload: &[u8], out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError> {
        Self::check(payload)?;
        let n = self.inner.decode(payload, out, false).map_err(map_err)?;
        if n != FRAME_SAMPLES {
            return Err(CodecError::WrongFrameLength { got: n });
        }
        Ok(())
    }

    fn conceal(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError> {
        let n = self.inner.decode(&[], out, false).map_err(map_err)?;
        if n != FRAME_SAMPLES {
            return Err(CodecError::Internal(0));
        }
        Ok(())
    }

    /// A malformed `next_payload` carries no usable FEC: the frame is concealed and
    /// `Ok(false)` returned (decoding that packet itself will report the error).
    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        out: &mut [i16; FRAME_SAMPLES],
    ) -> Result<bool, CodecError> {
        if Self::check(next_payload).is_err() || !has_lbrr(next_payload) {
            self.conceal(out)?;
            return Ok(false);
        }
        let n = self
            .inner
            .decode(next_payload, out, true)
            .map_err(map_err)?;
        if n != FRAME_SAMPLES {
            return Err(CodecError::WrongFrameLength { got: n });
        }
        Ok(true)
    }
}

/// Whether an Opus packet carries in-band FEC (LBRR) data for the frame before it.
///
/// A safe port of libopus's `opus_packet_has_lbrr` (RFC 6716 §3.2 framing, §4.2.3
/// header bits): CELT-only packets have none; otherwise the LBRR flag follows the
/// VAD flag(s) at the top of the first frame's first byte.
pub fn has_lbrr(packet: &[u8]) -> bool {
    let Some(&toc) = packet.first() else {
        return false;
    };
    let config = toc >> 3;
    if config >= 16 {
        return false; // CELT only
    }
    let stereo = toc & 0x04 != 0;
    // SILK frames (20 ms each, 10 ms counts as one) in each Opus frame: SILK-only
    // configurations 0..=11 are 10, 20, 40 or 60 ms; hybrid ones 10 or 20 ms.
    let silk_frames = if config < 12 {
        match config & 3 {
            2 => 2,
            3 => 3,
            _ => 1,
        }
    } else {
        1
    };
    let Some(first) = first_frame(packet) else {
        return false;
    };
    let Some(&b) = first.first() else {
        return false;
    };
    let mut lbrr = (b >> (7 - silk_frames)) & 1 == 1;
    if stereo {
        lbrr |= (b >> (6 - 2 * silk_frames)) & 1 == 1;
    }
    lbrr
}

/// Reads a frame length (RFC 6716 §3.2.1); returns (length, bytes used).
fn frame_len(data: &[u8]) -> Option<(usize, usize)> {
    let &b0 = data.first()?;
    if b0 < 252 {
        Some((usize::from(b0), 1))
    } else {
        let &b1 = data.get(1)?;
        Some((usize::from(b1) * 4 + usize::from(b0), 2))
    }
}

/// The first frame of an Opus packet (RFC 6716 §3.2), or `None` when malformed.
fn first_frame(packet: &[u8]) -> Option<&[u8]> {
    let toc = *packet.first()?;
    let body = &packet[1..];
    match toc & 3 {
        0 => Some(body),
        1 => {
            if !body.len().is_multiple_of(2) {
                return None;
            }
            Some(&body[..body.len() / 2])
        }
        2 => {
            let (len, used) = frame_len(body)?;
            body.get(used..used + len)
        }
        _ => {
            let &hdr = body.first()?;
            let count = usize::from(hdr & 0x3f);
            if count == 0 {
                return None;
            }
            let vbr = hdr & 0x80 != 0;
            let padded = hdr & 0x40 != 0;
            let mut pos = 1;
            let mut padding = 0usize;
            if padded {
                loop {
                    let &p = body.get(pos)?;
                    pos += 1;
                    padding += if p == 255 { 254 } else { usize::from(p) };
                    if p != 255 {
                        break;
                    }
                }
            }
            let end = body.len().checked_sub(padding)?;
            if vbr {
                let (len0, used) = frame_len(body.get(pos..)?)?;
                pos += used;
                // Skip the remaining count-2 lengths.
                for _ in 2..count {
                    let (_, used) = frame_len(body.get(pos..)?)?;
                    pos += used;
                }
                if pos + len0 > end {
                    return None;
                }
                body.get(pos..pos + len0)
            } else {
                let data = end.checked_sub(pos)?;
                if data % count != 0 {
                    return None;
                }
                body.get(pos..pos + data / count)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn speechlike(k: usize) -> [i16; FRAME_SAMPLES] {
        std::array::from_fn(|i| {
            let t = (k * FRAME_SAMPLES + i) as f64 / 16_000.0;
            let env = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            (8_000.0
                * env
                * ((2.0 * std::f64::consts::PI * 220.0 * t).sin()
                    + 0.5 * (2.0 * std::f64::consts::PI * 660.0 * t).sin()
                    + 0.25 * (2.0 * std::f64::consts::PI * 1_870.0 * t).sin())) as i16
        })
    }

    #[test]
    fn encodes_and_decodes_frames() {
        let mut enc = OpusEncoder::new(&OpusConfig::default()).expect("encoder");
        let mut dec = OpusDecoder::new().expect("decoder");
        assert!(enc.lookahead().expect("ctl") > 0);
        let mut buf = [0u8; 1024];
        let mut out = [0i16; FRAME_SAMPLES];
        let mut bytes = 0;
        for k in 0..50 {
            let n = enc.encode(&speechlike(k), &mut buf).expect("encode");
            assert!(n > 10 && n < 200, "{n}");
            bytes += n;
            dec.decode(&buf[..n], &mut out).expect("decode");
        }
        // 24 kbit/s is 60 bytes per 20 ms on average.
        assert!((2_000..4_500).contains(&bytes), "{bytes}");
        assert!(out.iter().any(|&s| s.abs() > 1_000));
        dec.conceal(&mut out).expect("plc");
    }

    #[test]
    fn fec_recovers_a_lost_frame_when_present() {
        let cfg = OpusConfig {
            inband_fec: true,
            packet_loss_percent: 20,
            ..OpusConfig::default()
        };
        let mut enc = OpusEncoder::new(&cfg).expect("encoder");
        let mut packets = Vec::new();
        for k in 0..30 {
            let mut buf = [0u8; 1024];
            let n = enc.encode(&speechlike(k), &mut buf).expect("encode");
            packets.push(buf[..n].to_vec());
        }
        // The encoder sends LBRR after active speech (not after the quiet troughs of
        // this test signal's envelope).
        let with_fec = packets.iter().filter(|p| has_lbrr(p)).count();
        assert!(with_fec >= 20, "{with_fec} of 30 packets carry LBRR");
        assert!(has_lbrr(&packets[21]));
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut out = [0i16; FRAME_SAMPLES];
        for p in &packets[..20] {
            dec.decode(p, &mut out).expect("decode");
        }
        // Packet 20 lost, 21 arrived.
        assert!(dec.decode_fec(&packets[21], &mut out).expect("fec"));
        assert!(out.iter().any(|&s| s.abs() > 500), "recovered audio");
        dec.decode(&packets[21], &mut out).expect("decode");

        // Without FEC there is nothing to recover: concealment instead.
        let mut enc = OpusEncoder::new(&OpusConfig {
            inband_fec: false,
            ..cfg
        })
        .expect("encoder");
        let mut buf = [0u8; 1024];
        for k in 0..10 {
            let n = enc.encode(&speechlike(k), &mut buf).expect("encode");
            assert!(!has_lbrr(&buf[..n]));
        }
        let n = enc.encode(&speechlike(10), &mut buf).expect("encode");
        assert!(!dec.decode_fec(&buf[..n], &mut out).expect("plc"));
        assert!(
            !dec.decode_fec(&[0xff, 0xff], &mut out)
                .expect("malformed: plc")
        );
    }

    #[test]
    fn the_default_spends_no_fec_budget_until_told_to() {
        let mut enc = OpusEncoder::new(&OpusConfig::default()).expect("encoder");
        let mut buf = [0u8; 1024];
        let lbrr = |enc: &mut OpusEncoder, from: usize, buf: &mut [u8; 1024]| {
            (from..from + 20)
                .filter(|&k| {
                    let n = enc.encode(&speechlike(k), buf).expect("encode");
                    has_lbrr(&buf[..n])
                })
                .count()
        };
        assert_eq!(lbrr(&mut enc, 0, &mut buf), 0, "clean path: no FEC");
        enc.set_expected_loss(10).expect("ctl");
        assert_eq!(
            (enc.config().inband_fec, enc.config().packet_loss_percent),
            (true, 10)
        );
        assert!(lbrr(&mut enc, 20, &mut buf) >= 10);
        enc.set_expected_loss(0).expect("ctl");
        assert!(!enc.config().inband_fec);
        // LBRR of the last frame with FEC may still ride in the next packet.
        assert!(lbrr(&mut enc, 40, &mut buf) <= 1);
    }

    #[test]
    fn wrong_durations_and_garbage_are_errors() {
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut out = [0i16; FRAME_SAMPLES];
        assert_eq!(dec.decode(&[], &mut out), Err(CodecError::InvalidPayload));
        // A 10 ms SILK wideband TOC (config 8) with an empty frame.
        assert_eq!(
            dec.decode(&[8 << 3], &mut out),
            Err(CodecError::WrongFrameLength { got: 160 })
        );
        // Code 3 with zero frames.
        assert_eq!(
            dec.decode(&[0x03, 0x00], &mut out),
            Err(CodecError::InvalidPayload)
        );
        let mut enc = OpusEncoder::new(&OpusConfig::default()).expect("encoder");
        // libopus squeezes a frame into as little as 1 byte (TOC only), not 0.
        assert!(enc.encode(&speechlike(0), &mut []).is_err());
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = OpusConfig {
            complexity: 11,
            ..OpusConfig::default()
        };
        assert!(OpusEncoder::new(&bad).is_err());
    }

    proptest! {
        #[test]
        fn random_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let mut dec = OpusDecoder::new().expect("decoder");
            let mut out = [0i16; FRAME_SAMPLES];
            let _ = dec.decode(&payload, &mut out);
            let _ = has_lbrr(&payload);
            let _ = dec.decode_fec(&payload, &mut out);
            prop_assert!(dec.conceal(&mut out).is_ok());
        }
    }
}
