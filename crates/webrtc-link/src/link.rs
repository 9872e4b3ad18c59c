//! [`RtcLink`]: one WebRTC peer connection (a str0m [`Rtc`]) as a [`MediaLink`], sans-IO.
//!
//! The link owns the `Rtc`, the call's RTP conversion ([`crate::media`]) and the
//! link's counters. Its driver feeds it datagrams and timeouts, sends what
//! [`poll_transmit`](RtcLink::poll_transmit) returns, and hands what
//! [`poll_event`](RtcLink::poll_event) returns to the call's [`CallHandler`]
//! together with the link itself:
//!
//! ```text
//!  driver                         RtcLink                               call
//!  ──────                         ───────                               ────
//!  datagram ─ handle_receive ──> Rtc::handle_input ─ drain ─> transmits, events
//!  deadline ─ handle_timeout ──> Rtc::handle_input(Timeout) + idle check
//!  poll_event ─────────────────> MediaData ─ RtpInbound ─ Inbound::Packet ─> handle_event
//!                                MediaEgressStats (RTCP RR) ─ Inbound::Control(Report)
//!                                Closed / ICE disconnected / idle ─ Inbound::Closed
//!  <─ poll_transmit ───────────  Writer::write <─ RtpOutbound <─ send_packet <─ CallMedia
//! ```
//!
//! str0m's contract (every mutation followed by draining `poll_output` to a timeout)
//! is kept inside: each `handle_*` and each [`MediaLink::send_packet`] drains at once
//! into the link's queues.
//!
//! **RTCP.** str0m sends the receiver and sender reports; the far end's receiver
//! reports about our stream arrive as `MediaEgressStats` (loss fraction, jitter,
//! RTT) and become [`Control::Report`]s for the call: its QoE shows them and its Opus
//! encoder's FEC follows the loss they report (`media_core::codec::adapt`). The RTT
//! is also the link's [`LinkStats::rtt`]. The call's own periodic reports need no
//! message: str0m's receiver reports carry what the far end needs.
//!
//! [`CallHandler`]: media_core::link::CallHandler

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_core::control::{Control, DtmfTone, QualityReport};
use media_core::link::{CloseReason, LinkError, LinkEvent, LinkStats, MediaLink};
use media_core::packet::AudioPacket;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt, TelephoneEvent};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::codec::{AudioCodec, ToneEnds};
use crate::media::{RtpInbound, RtpOutbound};
use crate::sdp::{CheckedOffer, OfferError};

/// Queued inbound items before the driver takes them; beyond this a packet is
/// dropped (counted), which only a driver that never polls can reach.
const MAX_QUEUED: usize = 64;

/// What the link hands to the call (owned; [`Inbound::as_event`] borrows it as a
/// [`LinkEvent`]). A packet is held inline: the link's queue is reserved up front, so
/// queuing one allocates nothing.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // Inline on purpose: no allocation per packet.
pub enum Inbound {
    /// A packet of the call.
    Packet(AudioPacket),
    /// A control message (the far end's receiver report).
    Control(Control),
    /// The link ended.
    Closed(CloseReason),
}

impl Inbound {
    /// The item as the seam's event.
    pub fn as_event(&self) -> LinkEvent<'_> {
        match self {
            Inbound::Packet(p) => LinkEvent::Packet(p),
            Inbound::Control(c) => LinkEvent::Control(*c),
            Inbound::Closed(r) => LinkEvent::Closed(r),
        }
    }
}

/// One WebRTC peer connection as a [`MediaLink`] (see the [module documentation](self)).
pub struct RtcLink {
    rtc: Rtc,
    codec: AudioCodec,
    local: SocketAddr,
    mid: Option<Mid>,
    pt: Option<Pt>,
    inbound: RtpInbound,
    outbound: RtpOutbound,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Inbound>,
    stats: LinkStats,
    rtc_timeout: Instant,
    now: Instant,
    last_heard: Instant,
    idle_timeout: Duration,
    connected: bool,
    closing: Option<String>,
    ended: bool,
    /// The previous receiver report: highest sequence number, cumulative lost.
    last_rr: Option<(u64, u64)>,
    /// RTP payloads without the call's audio (padding, telephone events) skipped so
    /// far: later sequence numbers move down by as many, so the call does not count
    /// them as lost.
    skipped: u64,
    /// The far end takes telephone events (DTMF) from us.
    dtmf_out: bool,
    /// Telephone events reported to the call, once each.
    tones: ToneEnds,
}

impl std::fmt::Debug for RtcLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtcLink")
            .field("codec", &self.codec)
            .field("local", &self.local)
            .field("connected", &self.connected)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl RtcLink {
    /// The link of `rtc` (the offer accepted, its host candidate `local` added),
    /// carrying `codec`. A link that hears nothing from its peer for `idle_timeout`
    /// (from `now` on: the peer must connect within it too) ends with
    /// [`CloseReason::PeerVanished`].
    pub fn new(
        rtc: Rtc,
        codec: AudioCodec,
        local: SocketAddr,
        now: Instant,
        idle_timeout: Duration,
    ) -> Result<Self, media_core::resample::ResamplerSetupError> {
        let mut link = Self {
            rtc,
            codec,
            local,
            mid: None,
            pt: None,
            inbound: RtpInbound::new(codec)?,
            outbound: RtpOutbound::new(codec)?,
            transmits: VecDeque::with_capacity(16),
            events: VecDeque::with_capacity(MAX_QUEUED),
            stats: LinkStats::default(),
            rtc_timeout: now,
            now,
            last_heard: now,
            idle_timeout,
            connected: false,
            closing: None,
            ended: false,
            last_rr: None,
            skipped: 0,
            dtmf_out: false,
            tones: ToneEnds::default(),
        };
        link.drain();
        Ok(link)
    }

    /// Answers a checked offer ([`crate::sdp::check_offer`]) as an ICE-lite peer whose
    /// one host candidate is `local` (the driver's UDP socket), in the offer's chosen
    /// codec only: the link, and the SDP answer for the far end. `now` starts the
    /// link's clock (see [`new`](Self::new) for `idle_timeout`).
    pub fn answer(
        offer: CheckedOffer,
        local: SocketAddr,
        now: Instant,
        idle_timeout: Duration,
    ) -> Result<(Self, String), OfferError> {
        let mut rtc = rtc_for(offer.codec, now);
        let candidate = Candidate::host(local, "udp").map_err(|e| {
            OfferError::Refused(format!(
                "this server's address {local} cannot be a candidate: {e}"
            ))
        })?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer.offer)
            .map_err(|e| OfferError::Refused(media_blob::bounded(&e.to_string(), 200)))?;
        let link = Self::new(rtc, offer.codec, local, now, idle_timeout).map_err(|e| {
            OfferError::Refused(format!("the call's audio conversion cannot start: {e}"))
        })?;
        Ok((link, answer.to_sdp_string()))
    }

    /// The codec the call negotiated.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// The local address of the link's host candidate.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// True once ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// True once the link ended ([`Inbound::Closed`] queued); nothing more comes.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// A datagram from `source` arrived at `now`.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        self.now = now;
        if self.ended {
            return;
        }
        self.stats.transport_received += 1;
        let contents_len = contents.len();
        let Ok(contents) = contents.try_into() else {
            // Not STUN, DTLS, RTP or RTCP: somebody else's datagram.
            self.stats.malformed += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            tracing::debug!(%source, len = contents_len, "datagram not for this connection");
            self.stats.unknown_stream += 1;
            return;
        }
        self.last_heard = now;
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(error = %e, "WebRTC input refused");
        }
        self.drain();
    }

    /// Time passed: runs str0m's timers and the idle check at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.ended {
            return;
        }
        if now >= self.last_heard + self.idle_timeout {
            self.end_with(CloseReason::PeerVanished {
                idle_timeout: self.idle_timeout,
            });
            return;
        }
        if now >= self.rtc_timeout {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(error = %e, "WebRTC timeout refused");
            }
            self.drain();
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next (`None` once ended).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.ended).then(|| self.rtc_timeout.min(self.last_heard + self.idle_timeout))
    }

    /// The next datagram to send (its `destination`, from the link's `source`).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front()?;
        self.stats.transport_sent += 1;
        Some(t)
    }

    /// The next item for the call.
    pub fn poll_event(&mut self) -> Option<Inbound> {
        self.events.pop_front()
    }

    fn end(&mut self, reason: CloseReason) {
        if !self.ended {
            self.ended = true;
            self.events.push_back(Inbound::Closed(reason));
        }
    }

    /// Ends the link because the far end is gone (the WHIP session was deleted):
    /// str0m says goodbye (RTCP BYE, DTLS close_notify) and the call ends with
    /// `reason`.
    pub fn end_by_peer(&mut self, reason: &str) {
        self.end_with(CloseReason::PeerLeft {
            reason: reason.to_owned(),
        });
    }

    /// Ends the link because the server shuts down.
    pub fn end_by_shutdown(&mut self) {
        self.end_with(CloseReason::ServerShutdown);
    }

    /// Ends with `reason` (unless ended already), then lets str0m say goodbye (RTCP
    /// BYE, DTLS close_notify: queued for [`poll_transmit`](Self::poll_transmit)).
    fn end_with(&mut self, reason: CloseReason) {
        self.end(reason);
        let _ = self.rtc.close();
        self.drain();
    }

    /// Polls str0m until it wants a timeout: datagrams into the transmit queue, events
    /// into the call's queue.
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.rtc_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => self.transmits.push_back(t),
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    self.end(CloseReason::Transport {
                        detail: format!("WebRTC stack error: {e}"),
                    });
                    break;
                }
            }
        }
        if !self.rtc.is_alive() {
            self.end(CloseReason::PeerLeft {
                reason: "the peer connection closed".into(),
            });
        }
    }

    /// The far end's latest receiver report about our stream (cumulative figures; we
    /// sent `sent` packets so far):
    /// when it is a new one, the loss since the previous one (RFC 3550 §6.4.1: lost /
    /// expected over the interval) and the rest become a [`Control::Report`].
    fn on_receiver_report(
        &mut self,
        sent: u64,
        max_seq: u64,
        lost: u64,
        jitter: u32,
        rtt: Option<Duration>,
    ) {
        let (expected, interval_lost) = match self.last_rr {
            Some((prev_seq, _)) if max_seq <= prev_seq => return,
            Some((prev_seq, prev_lost)) => (max_seq - prev_seq, lost.saturating_sub(prev_lost)),
            // The first report covers the stream so far.
            None => (sent, lost),
        };
        self.last_rr = Some((max_seq, lost));
        let pct = |lost: u64, expected: u64| {
            if expected == 0 {
                0.0
            } else {
                (lost as f64 * 100.0 / expected as f64).clamp(0.0, 100.0) as f32
            }
        };
        let jitter_ms = (f64::from(jitter) * 1000.0 / f64::from(self.codec.clock_rate())) as f32;
        let report = QualityReport {
            jitter_ms,
            max_jitter_ms: jitter_ms,
            loss_pct: pct(lost, sent),
            rtt_ms: rtt.map_or(0.0, |d| d.as_secs_f32() * 1000.0),
            packets_received: sent.saturating_sub(lost),
            packets_lost: lost,
            interval_loss_pct: pct(interval_lost, expected),
            ..QualityReport::default()
        };
        if report.is_finite() && self.events.len() < MAX_QUEUED {
            self.stats.control_received += 1;
            self.events
                .push_back(Inbound::Control(Control::Report(report)));
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                tracing::debug!(local = %self.local, "WebRTC connected (ICE + DTLS)");
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.end(CloseReason::PeerVanished {
                    idle_timeout: self.idle_timeout,
                });
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Audio && self.mid.is_none() => {
                self.mid = Some(m.mid);
                if let Some(w) = self.rtc.writer(m.mid) {
                    self.pt = w
                        .payload_params()
                        .find(|p| AudioCodec::from_str0m(p.spec().codec) == Some(self.codec))
                        .map(|p| p.pt());
                    self.dtmf_out = w.payload_params().any(|p| p.spec().codec.is_tele());
                }
            }
            Event::MediaData(d) if d.data.is_empty() => {
                // No media (RTP padding): not a packet of the call.
                self.skipped += 1;
            }
            Event::MediaData(d) if d.params.spec().codec.is_tele() => {
                self.skipped += 1;
                let Some((code, duration)) = self.tones.take(d.time.numer(), &d.codec_extra) else {
                    return;
                };
                let Some(tone) = DtmfTone::from_event_code(code) else {
                    return;
                };
                if self.events.len() < MAX_QUEUED {
                    self.stats.control_received += 1;
                    let duration_ms = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
                    self.events
                        .push_back(Inbound::Control(Control::Dtmf { tone, duration_ms }));
                }
            }
            Event::MediaData(d) => {
                self.stats.packets_received += 1;
                if Some(d.mid) != self.mid
                    || AudioCodec::from_str0m(d.params.spec().codec) != Some(self.codec)
                {
                    tracing::debug!(mid = %d.mid, pt = %d.pt, "media of another stream or codec");
                    self.stats.unknown_stream += 1;
                    return;
                }
                let seq = (**d.seq_range.start()).wrapping_sub(self.skipped);
                let Self {
                    inbound,
                    events,
                    stats,
                    ..
                } = self;
                let mut made = 0u64;
                let mut full = 0u64;
                let result = inbound.push(seq, d.time.numer(), &d.data, |p| {
                    if events.len() < MAX_QUEUED {
                        events.push_back(Inbound::Packet(p.clone()));
                        made += 1;
                    } else {
                        full += 1;
                    }
                });
                match result {
                    Ok(()) if made + full == 0 => {}
                    Ok(()) if full > 0 => stats.queue_full_dropped += 1,
                    Ok(()) => stats.delivered += 1,
                    Err(e) => {
                        stats.malformed += 1;
                        tracing::debug!(error = %e, "inbound RTP payload refused");
                    }
                }
            }
            Event::MediaEgressStats(s) => {
                tracing::trace!(?s, "egress stats");
                if s.rtt.is_some() {
                    self.stats.rtt = s.rtt;
                }
                if let Some(remote) = &s.remote {
                    self.on_receiver_report(
                        s.packets,
                        *remote.maximum_sequence_number,
                        remote.packets_lost,
                        remote.jitter,
                        s.rtt,
                    );
                }
            }
            Event::Closed => self.end(CloseReason::PeerLeft {
                reason: "the peer closed the connection (DTLS close_notify)".into(),
            }),
            _ => {}
        }
    }
}

impl RtcLink {
    /// Sends one DTMF tone as RFC 4733 telephone events (str0m repeats the end).
    fn send_tone(&mut self, tone: DtmfTone, duration_ms: u32) -> Result<(), LinkError> {
        let (true, true, Some(mid), Some(pt)) = (self.connected, self.dtmf_out, self.mid, self.pt)
        else {
            return Err(LinkError::Unsupported(
                "the far end took no telephone-event (RFC 4733) payload type",
            ));
        };
        if self.ended || self.closing.is_some() {
            return Err(LinkError::Closed);
        }
        let event = TelephoneEvent {
            event: tone.event_code(),
            end: true,
            volume: 10,
            // A tone without a length lasts 100 ms; 40 ms to 5 s.
            duration: Duration::from_millis(match duration_ms {
                0 => 100,
                ms => u64::from(ms.clamp(40, 5000)),
            }),
        };
        let at = MediaTime::new(self.outbound.rtp_time(), clock(self.codec));
        let now = self.now;
        let written = match self.rtc.writer(mid) {
            Some(w) => w.telephone_event(event).write(pt, now, at, Vec::new()),
            None => return Err(LinkError::Closed),
        };
        self.drain();
        match written {
            Ok(()) => {
                self.stats.control_sent += 1;
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "telephone event refused");
                Err(LinkError::Unsupported(
                    "the WebRTC stack refused the telephone event",
                ))
            }
        }
    }
}

/// Payload type this side offers telephone events at (an answer takes the offer's).
const TELEPHONE_EVENT_PT: u8 = 101;

/// The RTP clock of `codec` as str0m's type.
fn clock(codec: AudioCodec) -> Frequency {
    Frequency::new(codec.clock_rate()).unwrap_or(Frequency::FORTY_EIGHT_KHZ)
}

/// An ICE-lite `Rtc` answering in `codec` only (and telephone events at its clock, for
/// DTMF), with statistics and RTCP reports each second and packets handed over as
/// they arrive (the call's jitter buffer reorders).
pub fn rtc_for(codec: AudioCodec, now: Instant) -> Rtc {
    let mut config = Rtc::builder()
        .set_ice_lite(true)
        .clear_codecs()
        .set_stats_interval(Some(Duration::from_secs(1)))
        // Sender reports each second: the far end's receiver reports then carry the
        // round trip (LSR/DLSR) within a second or two of the call's start.
        .set_rtcp_report_interval_audio(Duration::from_secs(1))
        .set_reordering_size_audio(0);
    let codecs = config.codec_config();
    match codec {
        AudioCodec::Opus => codecs.enable_opus(true, false),
        AudioCodec::Pcmu => codecs.enable_pcmu(true, false),
        AudioCodec::Pcma => codecs.enable_pcma(true, false),
    }
    // DTMF (RFC 4733) at the audio codec's clock: events 0-16 (digits, *, #, A-D, flash).
    codecs.add_config(
        TELEPHONE_EVENT_PT.into(),
        None,
        str0m::format::Codec::Tele,
        clock(codec),
        None,
        str0m::format::FormatParams::parse_line("0-16"),
    );
    config.build(now)
}

impl MediaLink for RtcLink {
    fn send_packet(&mut self, packet: &AudioPacket) -> Result<(), LinkError> {
        let result = if self.ended || self.closing.is_some() {
            Err(LinkError::Closed)
        } else if let (true, Some(mid), Some(pt)) = (self.connected, self.mid, self.pt) {
            let Self {
                rtc,
                outbound,
                now,
                codec,
                ..
            } = self;
            let freq = Frequency::new(codec.clock_rate()).unwrap_or(Frequency::FORTY_EIGHT_KHZ);
            let mut refused = None;
            let encoded = outbound.encode(packet, |rtp_time, payload| {
                let Some(writer) = rtc.writer(mid) else {
                    refused = Some(LinkError::Closed);
                    return;
                };
                if let Err(e) = writer.write(pt, *now, MediaTime::new(rtp_time, freq), payload) {
                    tracing::debug!(error = %e, "RTP write refused");
                    refused = Some(LinkError::Unsupported(
                        "the WebRTC stack refused the packet",
                    ));
                }
            });
            self.drain();
            encoded.and(refused.map_or(Ok(()), Err))
        } else {
            Err(LinkError::Unsupported(
                "the WebRTC connection is not established yet",
            ))
        };
        match result {
            Ok(()) => self.stats.packets_sent += 1,
            Err(_) => self.stats.send_dropped += 1,
        }
        result
    }

    fn send_control(&mut self, control: &Control) -> Result<(), LinkError> {
        match control {
            // str0m's own RTCP receiver reports tell the far end what we receive.
            Control::Report(_) => {
                self.stats.control_sent += 1;
                Ok(())
            }
            Control::Dtmf { tone, duration_ms } => self.send_tone(*tone, *duration_ms),
            _ => Err(LinkError::Unsupported(
                "a WebRTC peer has no message for speakers or send status",
            )),
        }
    }

    fn close(&mut self, reason: &str) {
        if self.closing.is_none() && !self.ended {
            self.closing = Some(reason.to_owned());
            self.end_with(CloseReason::Closed {
                reason: reason.to_owned(),
            });
        }
    }

    fn stats(&mut self) -> LinkStats {
        self.stats
    }
}
