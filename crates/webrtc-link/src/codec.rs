//! The audio codecs a WebRTC call may negotiate, and G.711 A-law.
//!
//! [`AudioCodec`] names what the far end's RTP carries: Opus at the 48 kHz RTP clock
//! (RFC 7587), or G.711 µ-law / A-law at 8 kHz (RFC 3551, payload types 0 and 8).
//! Opus packets go to and from the call's own Opus codec as they are (libopus decodes
//! any Opus packet at 16 kHz and its 16 kHz packets are valid at the 48 kHz clock);
//! G.711 is converted to and from 16 kHz PCM by this crate ([`crate::media`]).
//!
//! µ-law is `ws_link::mulaw` (Twilio's encoding); A-law ([`alaw_encode`],
//! [`alaw_decode`]) is here: the ITU-T G.711 reference arithmetic (13-bit magnitude,
//! segment search, even bits inverted on the line).

use media_core::codec::Codec;

/// An audio codec of the RTP stream between this server and a WebRTC peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioCodec {
    /// Opus (`opus/48000/2`), 20 ms packets, in-band FEC.
    Opus,
    /// G.711 µ-law (`PCMU/8000`, payload type 0).
    Pcmu,
    /// G.711 A-law (`PCMA/8000`, payload type 8).
    Pcma,
}

impl AudioCodec {
    /// Every codec, in this server's default order of preference.
    pub const ALL: [AudioCodec; 3] = [AudioCodec::Opus, AudioCodec::Pcmu, AudioCodec::Pcma];

    /// The encoding name of its SDP `a=rtpmap` line (case-insensitive there).
    pub const fn rtpmap_name(self) -> &'static str {
        match self {
            AudioCodec::Opus => "opus",
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
        }
    }

    /// Its RTP clock rate, Hz.
    pub const fn clock_rate(self) -> u32 {
        match self {
            AudioCodec::Opus => 48_000,
            AudioCodec::Pcmu | AudioCodec::Pcma => 8_000,
        }
    }

    /// The static payload type (G.711), if any.
    pub const fn static_pt(self) -> Option<u8> {
        match self {
            AudioCodec::Opus => None,
            AudioCodec::Pcmu => Some(0),
            AudioCodec::Pcma => Some(8),
        }
    }

    /// The codec of the packets between the call's media and this link: Opus packets
    /// pass through, G.711 becomes 16 kHz PCM.
    pub const fn call_codec(self) -> Codec {
        match self {
            AudioCodec::Opus => Codec::Opus16k,
            AudioCodec::Pcmu | AudioCodec::Pcma => Codec::Pcm16k,
        }
    }

    /// The codec of an `a=rtpmap` encoding name and clock rate, if this server takes it.
    pub fn from_rtpmap(name: &str, clock_rate: u32) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.rtpmap_name().eq_ignore_ascii_case(name) && c.clock_rate() == clock_rate)
    }

    /// The codec str0m reports for a payload type, if it is one of ours.
    pub(crate) fn from_str0m(codec: str0m::format::Codec) -> Option<Self> {
        match codec {
            str0m::format::Codec::Opus => Some(AudioCodec::Opus),
            str0m::format::Codec::PCMU => Some(AudioCodec::Pcmu),
            str0m::format::Codec::PCMA => Some(AudioCodec::Pcma),
            _ => None,
        }
    }
}

impl std::fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.rtpmap_name(), self.clock_rate())
    }
}

impl std::str::FromStr for AudioCodec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "opus" => Ok(AudioCodec::Opus),
            "pcmu" | "mulaw" | "ulaw" => Ok(AudioCodec::Pcmu),
            "pcma" | "alaw" => Ok(AudioCodec::Pcma),
            other => Err(format!(
                "unknown WebRTC audio codec {other:?} (known: opus, pcmu, pcma)"
            )),
        }
    }
}

/// Upper ends of the eight A-law segments of 13-bit magnitudes.
const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// One 16-bit linear sample to its A-law byte.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let Some(segment) = ALAW_SEGMENT_END.iter().position(|&end| pcm <= end) else {
        return (0x7F ^ mask) as u8;
    };
    let mantissa = if segment < 2 {
        (pcm >> 1) & 0x0F
    } else {
        (pcm >> segment) & 0x0F
    };
    ((((segment as i32) << 4) | mantissa) ^ mask) as u8
}

/// One A-law byte to its 16-bit linear sample.
pub fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let segment = i32::from((a & 0x70) >> 4);
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        s => {
            t += 0x108;
            t <<= s - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// Decodes G.711 `bytes` of `codec` into `out`; returns the samples written
/// (`min(bytes.len(), out.len())`). Opus is not G.711: writes nothing.
pub fn g711_decode_into(codec: AudioCodec, bytes: &[u8], out: &mut [i16]) -> usize {
    match codec {
        AudioCodec::Pcmu => ws_link::mulaw::decode_into(bytes, out),
        AudioCodec::Pcma => {
            let n = bytes.len().min(out.len());
            for (o, &b) in out.iter_mut().zip(&bytes[..n]) {
                *o = alaw_decode(b);
            }
            n
        }
        AudioCodec::Opus => 0,
    }
}

/// Encodes `samples` as G.711 `codec` into `out`; returns the bytes written. Opus is
/// not G.711: writes nothing.
pub fn g711_encode_into(codec: AudioCodec, samples: &[i16], out: &mut [u8]) -> usize {
    match codec {
        AudioCodec::Pcmu => ws_link::mulaw::encode_into(samples, out),
        AudioCodec::Pcma => {
            let n = samples.len().min(out.len());
            for (o, &s) in out.iter_mut().zip(&samples[..n]) {
                *o = alaw_encode(s);
            }
            n
        }
        AudioCodec::Opus => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alaw_matches_the_reference_values() {
        // ITU-T G.711 / Sun g711.c: zero encodes to 0xD5, which decodes to +8.
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_decode(0xAA), 32_256);
        assert_eq!(alaw_decode(0x2A), -32_256);
    }

    #[test]
    fn alaw_round_trips_within_its_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = alaw_decode(alaw_encode(s));
            let err = (i32::from(s) - i32::from(back)).abs();
            // The quantisation step is 16 in the first two segments, doubling after.
            let step = (i32::from(s).abs() / 16).max(32);
            assert!(err <= step, "{s} -> {back} (error {err})");
        }
        for b in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(b)), b, "byte {b:#04x}");
        }
    }

    #[test]
    fn codecs_parse_and_map() {
        assert_eq!(
            AudioCodec::from_rtpmap("OPUS", 48_000),
            Some(AudioCodec::Opus)
        );
        assert_eq!(AudioCodec::from_rtpmap("opus", 16_000), None);
        assert_eq!(
            AudioCodec::from_rtpmap("pcma", 8_000),
            Some(AudioCodec::Pcma)
        );
        assert_eq!("PCMU".parse::<AudioCodec>(), Ok(AudioCodec::Pcmu));
        assert!("g722".parse::<AudioCodec>().is_err());
        assert_eq!(AudioCodec::Opus.call_codec(), Codec::Opus16k);
        assert_eq!(AudioCodec::Pcma.to_string(), "PCMA/8000");
    }
}

/// The tones of an RFC 4733 telephone-event stream, once each: a sender repeats an
/// event's end packet (three times, at the event's start time), so a tone is taken at
/// its first end packet and the repeats are dropped. Used by the server's link and by
/// the test peer alike.
#[derive(Debug, Default, Clone, Copy)]
pub struct ToneEnds {
    last_start: Option<u64>,
}

impl ToneEnds {
    /// The event of a received telephone-event packet (`start`: its RTP time, the
    /// event's start), when it ends a tone not seen before: `(event code, duration)`.
    pub fn take(
        &mut self,
        start: u64,
        extra: &str0m::format::CodecExtra,
    ) -> Option<(u8, std::time::Duration)> {
        let str0m::format::CodecExtra::Tele(event) = extra else {
            return None;
        };
        if !event.end || self.last_start == Some(start) {
            return None;
        }
        self.last_start = Some(start);
        Some((event.event, event.duration))
    }
}
