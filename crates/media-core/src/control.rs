//! What the two ends of a call tell each other besides audio: DTMF tones, who is
//! speaking, whether to send, and quality reports. Every link carries these
//! ([`crate::link::MediaLink::send_control`]) in its own encoding: JSON messages on the
//! QUIC control stream, RTCP and RFC 4733 events on WebRTC, the platforms' WebSocket
//! messages.
//!
//! # Realtime safety
//! [`Control`] is a small `Copy` value (the speaker list is a fixed array): queuing and
//! moving one never allocates.

use serde::{Deserialize, Serialize};

/// A DTMF tone (the tones of Microsoft's `ToneReceived`: 0-9, `*`, `#`, A-D and Flash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DtmfTone {
    /// `0`
    #[serde(rename = "0")]
    Tone0,
    /// `1`
    #[serde(rename = "1")]
    Tone1,
    /// `2`
    #[serde(rename = "2")]
    Tone2,
    /// `3`
    #[serde(rename = "3")]
    Tone3,
    /// `4`
    #[serde(rename = "4")]
    Tone4,
    /// `5`
    #[serde(rename = "5")]
    Tone5,
    /// `6`
    #[serde(rename = "6")]
    Tone6,
    /// `7`
    #[serde(rename = "7")]
    Tone7,
    /// `8`
    #[serde(rename = "8")]
    Tone8,
    /// `9`
    #[serde(rename = "9")]
    Tone9,
    /// `*`
    #[serde(rename = "*")]
    Star,
    /// `#`
    #[serde(rename = "#")]
    Pound,
    /// `A`
    #[serde(rename = "A")]
    A,
    /// `B`
    #[serde(rename = "B")]
    B,
    /// `C`
    #[serde(rename = "C")]
    C,
    /// `D`
    #[serde(rename = "D")]
    D,
    /// Hook flash.
    #[serde(rename = "flash")]
    Flash,
}

impl DtmfTone {
    /// All tones, in the order of their RFC 4733 event codes (0-9, `*`, `#`, A-D, flash).
    pub const ALL: [DtmfTone; 17] = [
        DtmfTone::Tone0,
        DtmfTone::Tone1,
        DtmfTone::Tone2,
        DtmfTone::Tone3,
        DtmfTone::Tone4,
        DtmfTone::Tone5,
        DtmfTone::Tone6,
        DtmfTone::Tone7,
        DtmfTone::Tone8,
        DtmfTone::Tone9,
        DtmfTone::Star,
        DtmfTone::Pound,
        DtmfTone::A,
        DtmfTone::B,
        DtmfTone::C,
        DtmfTone::D,
        DtmfTone::Flash,
    ];

    /// The RFC 4733 event code (0-9 digits, 10 `*`, 11 `#`, 12-15 A-D, 16 flash).
    pub fn event_code(self) -> u8 {
        Self::ALL.iter().position(|&t| t == self).unwrap_or(0) as u8
    }

    /// The tone of an RFC 4733 event code.
    pub fn from_event_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// The tone of a key (`'0'..='9'`, `'*'`, `'#'`, `'A'..='D'` in either case).
    pub fn from_char(c: char) -> Option<Self> {
        let code = match c.to_ascii_uppercase() {
            d @ '0'..='9' => d as u8 - b'0',
            '*' => 10,
            '#' => 11,
            l @ 'A'..='D' => l as u8 - b'A' + 12,
            _ => return None,
        };
        Self::from_event_code(code)
    }
}

/// Most active speakers carried with a frame or an event.
pub const MAX_ACTIVE_SPEAKERS: usize = 8;

/// Media source ids (MSIs) of the active speakers, loudest first. A fixed-size value:
/// copying it never allocates.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ActiveSpeakers {
    len: u8,
    msis: [u32; MAX_ACTIVE_SPEAKERS],
}

impl ActiveSpeakers {
    /// From a list (only the first [`MAX_ACTIVE_SPEAKERS`] are kept).
    pub fn from_slice(msis: &[u32]) -> Self {
        let mut s = Self::default();
        let n = msis.len().min(MAX_ACTIVE_SPEAKERS);
        s.msis[..n].copy_from_slice(&msis[..n]);
        s.len = n as u8;
        s
    }

    /// The ids, loudest first.
    pub fn as_slice(&self) -> &[u32] {
        &self.msis[..usize::from(self.len)]
    }

    /// True when nobody speaks.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for ActiveSpeakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Whether a side sends audio (Microsoft's `AudioSendStatusChanged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SendStatus {
    /// Frames are paced out at 50 per second.
    Active,
    /// Nothing is sent (no peer yet, the peer asked for silence, or the call ended).
    Inactive,
}

/// A periodic quality report of one receiving side (what it saw of the stream the
/// other side sends). Floating-point fields must be finite ([`QualityReport::is_finite`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QualityReport {
    /// Mean inbound interarrival jitter (RFC 3550 estimator), milliseconds.
    pub jitter_ms: f32,
    /// Largest inbound jitter estimate, milliseconds.
    #[serde(default)]
    pub max_jitter_ms: f32,
    /// Inbound packets lost, percent of expected.
    pub loss_pct: f32,
    /// Round-trip time as the reporting side's link measures it, milliseconds (0 if
    /// unknown; links fill it in when they send the report).
    pub rtt_ms: f32,
    /// Media packets the reporting side sent.
    #[serde(default)]
    pub packets_sent: u64,
    /// Media packets the reporting side received.
    #[serde(default)]
    pub packets_received: u64,
    /// Inbound packets missing from the sequence.
    #[serde(default)]
    pub packets_lost: u64,
    /// Inbound packets lost since the previous report, percent of those expected in
    /// that interval (what loss-adaptive FEC follows: [`crate::codec::adapt`]).
    #[serde(default)]
    pub interval_loss_pct: f32,
    /// Inbound packets that arrived since the previous report but too late to be
    /// played (or were dropped on overflow), percent of those received.
    #[serde(default)]
    pub late_pct: f32,
    /// Longest run of consecutive missing packets seen since the previous report.
    #[serde(default)]
    pub max_burst: u32,
}

impl QualityReport {
    /// True when every floating-point field is finite (decoders refuse others).
    pub fn is_finite(&self) -> bool {
        [
            self.jitter_ms,
            self.max_jitter_ms,
            self.loss_pct,
            self.rtt_ms,
            self.interval_loss_pct,
            self.late_pct,
        ]
        .iter()
        .all(|v| v.is_finite())
    }
}

/// A control message between the two ends of a call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Control {
    /// A DTMF tone.
    Dtmf {
        /// The tone.
        tone: DtmfTone,
        /// Its duration in milliseconds (0 if unknown).
        duration_ms: u32,
    },
    /// The dominant speaker changed (`None`: nobody).
    DominantSpeaker(Option<u32>),
    /// The set of active speakers changed.
    ActiveSpeakers(ActiveSpeakers),
    /// Whether the receiver of this message should send audio now.
    SendStatus(SendStatus),
    /// The sender's periodic quality report.
    Report(QualityReport),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tones_map_to_event_codes_and_keys() {
        for (code, tone) in DtmfTone::ALL.iter().enumerate() {
            assert_eq!(tone.event_code() as usize, code);
            assert_eq!(DtmfTone::from_event_code(code as u8), Some(*tone));
        }
        assert_eq!(DtmfTone::from_event_code(17), None);
        assert_eq!(DtmfTone::from_char('#'), Some(DtmfTone::Pound));
        assert_eq!(DtmfTone::from_char('c'), Some(DtmfTone::C));
        assert_eq!(DtmfTone::from_char('7'), Some(DtmfTone::Tone7));
        assert_eq!(DtmfTone::from_char('x'), None);
    }

    #[test]
    fn active_speakers_are_bounded() {
        let s = ActiveSpeakers::from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(s.as_slice(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(ActiveSpeakers::default().is_empty());
        assert_eq!(format!("{:?}", ActiveSpeakers::from_slice(&[3])), "[3]");
    }
}
