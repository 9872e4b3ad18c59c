//! The QUIC side of the media-link seam: [`QuicLink`] and the conversions between
//! media-core's packets and control messages and the wire's.

use std::time::{Duration, Instant};

use media_core::control::Control;
use media_core::link::{LinkError, LinkStats, MediaLink};
use media_core::packet::AudioPacket;

use super::{ConnId, Core};
use crate::wire::{
    ActiveSpeakers, ControlMessage, DatagramHeader, DominantSpeaker, Dtmf, Flags,
    NO_DOMINANT_SPEAKER, SendStatus, encode_control,
};

/// A call's [`MediaLink`] over a QUIC connection of a [`Core`], for the duration of
/// one call into the call's handler.
#[derive(Debug)]
pub struct QuicLink<'a> {
    core: &'a mut Core,
    conn: ConnId,
    now: Instant,
}

impl<'a> QuicLink<'a> {
    /// The link of connection `conn` at `now`.
    pub fn new(core: &'a mut Core, conn: ConnId, now: Instant) -> Self {
        QuicLink { core, conn, now }
    }

    /// quinn-proto's statistics of the connection (UDP and frame counts).
    pub fn quic_stats(&mut self) -> Option<quinn_proto::ConnectionStats> {
        self.core.quic_stats(self.conn)
    }
}

impl MediaLink for QuicLink<'_> {
    fn send_packet(&mut self, packet: &AudioPacket) -> Result<(), LinkError> {
        self.core.send_packet(self.conn, packet)
    }

    fn send_control(&mut self, control: &Control) -> Result<(), LinkError> {
        self.core.send_control(self.conn, control)
    }

    fn close(&mut self, reason: &str) {
        self.core.close(self.conn, self.now, reason);
    }

    fn stats(&mut self) -> LinkStats {
        self.core.link_stats(self.conn).unwrap_or_default()
    }
}

/// The link of a call that has ended: its final counters, nothing more to send.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLink(pub LinkStats);

impl MediaLink for ClosedLink {
    fn send_packet(&mut self, _: &AudioPacket) -> Result<(), LinkError> {
        Err(LinkError::Closed)
    }

    fn send_control(&mut self, _: &Control) -> Result<(), LinkError> {
        Err(LinkError::Closed)
    }

    fn close(&mut self, _: &str) {}

    fn stats(&mut self) -> LinkStats {
        self.0
    }
}

/// The datagram header of `packet` on `stream`.
pub(crate) fn datagram_header(packet: &AudioPacket, stream: u32) -> DatagramHeader {
    let mut flags = Flags::NONE;
    if packet.silence {
        flags = flags.union(Flags::SILENCE);
    }
    if packet.marker {
        flags = flags.union(Flags::MARKER);
    }
    DatagramHeader {
        flags,
        codec: packet.codec,
        stream_id: stream,
        sequence: packet.seq,
        timestamp: packet.timestamp,
        source: packet.source,
    }
}

/// Copies a received datagram into a reusable packet. `false` if the payload does not
/// fit (it always does: the wire's payload bound is the packet's).
pub fn packet_from_datagram(
    pkt: &mut AudioPacket,
    header: &DatagramHeader,
    payload: &[u8],
) -> bool {
    if pkt.set_payload(payload).is_err() {
        return false;
    }
    pkt.seq = header.sequence;
    pkt.timestamp = header.timestamp;
    pkt.codec = header.codec;
    pkt.silence = header.flags.contains(Flags::SILENCE);
    pkt.marker = header.flags.contains(Flags::MARKER);
    pkt.source = header.source;
    true
}

/// The control-stream frame of `control`; a quality report carries `rtt`.
pub(crate) fn control_frame(control: &Control, rtt: Duration) -> Result<Vec<u8>, LinkError> {
    let msg = match *control {
        Control::Dtmf { tone, duration_ms } => ControlMessage::Dtmf(Dtmf {
            tone,
            stream_id: 0,
            duration_ms,
        }),
        Control::DominantSpeaker(msi) => ControlMessage::DominantSpeaker(DominantSpeaker {
            msi: msi.unwrap_or(NO_DOMINANT_SPEAKER),
        }),
        Control::ActiveSpeakers(s) => ControlMessage::ActiveSpeakers(ActiveSpeakers {
            msis: s.as_slice().to_vec(),
        }),
        Control::SendStatus(status) => ControlMessage::SendStatus(SendStatus { status }),
        Control::Report(mut r) => {
            r.rtt_ms = rtt.as_secs_f32() * 1000.0;
            ControlMessage::Stats(r)
        }
    };
    encode_control(&msg).map_err(|_| LinkError::Unsupported("control message not encodable"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ControlDecoder, DtmfTone};
    use media_core::codec::Codec;
    use media_core::control::QualityReport;

    #[test]
    fn packets_round_trip_through_datagram_headers() {
        let mut p = AudioPacket::new(9, 9 * 320, Codec::Opus16k, &[1, 2, 3]).expect("fits");
        p.silence = true;
        p.marker = true;
        p.source = 77;
        let h = datagram_header(&p, 4);
        assert_eq!(h.source, 77);
        assert_eq!(h.stream_id, 4);
        assert!(h.flags.contains(Flags::SILENCE) && h.flags.contains(Flags::MARKER));
        let mut q = AudioPacket::empty(Codec::Pcm16k);
        assert!(packet_from_datagram(&mut q, &h, p.payload()));
        assert_eq!(
            (
                q.seq,
                q.timestamp,
                q.codec,
                q.silence,
                q.marker,
                q.source,
                q.payload()
            ),
            (9, 9 * 320, Codec::Opus16k, true, true, 77, &[1u8, 2, 3][..])
        );
    }

    #[test]
    fn controls_encode_as_the_wire_documents() {
        let mut dec = ControlDecoder::new();
        let cases = [
            Control::Dtmf {
                tone: DtmfTone::Pound,
                duration_ms: 80,
            },
            Control::DominantSpeaker(None),
            Control::ActiveSpeakers(media_core::control::ActiveSpeakers::from_slice(&[5, 6])),
            Control::Report(QualityReport::default()),
        ];
        for c in cases {
            dec.push(&control_frame(&c, Duration::from_millis(12)).expect("encodes"));
        }
        let got: Vec<_> = std::iter::from_fn(|| dec.poll())
            .map(|m| m.expect("valid"))
            .collect();
        assert!(matches!(
            got[0],
            ControlMessage::Dtmf(Dtmf {
                tone: DtmfTone::Pound,
                duration_ms: 80,
                ..
            })
        ));
        assert!(matches!(
            got[1],
            ControlMessage::DominantSpeaker(DominantSpeaker {
                msi: NO_DOMINANT_SPEAKER
            })
        ));
        assert!(matches!(&got[2], ControlMessage::ActiveSpeakers(a) if a.msis == [5, 6]));
        assert!(matches!(got[3], ControlMessage::Stats(r) if (r.rtt_ms - 12.0).abs() < 1e-3));
    }
}
