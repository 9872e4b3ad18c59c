//! [`WhipPeer`]: the far end of a WHIP call, sans-IO, for tests and load runs.
//!
//! A full-ICE str0m peer that offers one audio codec (and telephone events), sends
//! 20 ms frames of 16 kHz PCM encoded in it, and decodes what comes back. Its driver
//! posts [`WhipPeer::offer`] to a WHIP endpoint, hands the answer to
//! [`WhipPeer::accept_answer`], and moves datagrams and time as for any str0m `Rtc`
//! ([`handle_receive`](WhipPeer::handle_receive), [`handle_timeout`](WhipPeer::handle_timeout),
//! [`poll_transmit`](WhipPeer::poll_transmit), [`poll_timeout`](WhipPeer::poll_timeout)).
//!
//! G.711 is sent as every other sample of the 16 kHz frame (no anti-alias filter: a
//! test signal, not a product path) and received upsampled by repetition.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_core::codec::{AudioDecoder, AudioEncoder, Codec, OpusConfig, new_decoder, new_encoder};
use media_core::frame::FRAME_SAMPLES;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{CodecExtra, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt, TelephoneEvent};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::codec::{AudioCodec, g711_decode_into, g711_encode_into};

/// Why a peer could not be set up or go on (the text says what failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WHIP peer: {0}")]
pub struct PeerError(String);

/// The far end of one WHIP call (see the [module documentation](self)).
pub struct WhipPeer {
    rtc: Rtc,
    mid: Mid,
    codec: AudioCodec,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    pt: Option<Pt>,
    encoder: Box<dyn AudioEncoder>,
    decoder: Box<dyn AudioDecoder>,
    timeout: Instant,
    transmits: VecDeque<Transmit>,
    connected: bool,
    frames_sent: u64,
    packets_received: u64,
    record: bool,
    received: Vec<i16>,
    tones: Vec<u8>,
    last_tone: Option<u64>,
    failed: Option<String>,
    offer: String,
}

impl std::fmt::Debug for WhipPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhipPeer")
            .field("codec", &self.codec)
            .field("local", &self.local)
            .field("connected", &self.connected)
            .field("frames_sent", &self.frames_sent)
            .field("packets_received", &self.packets_received)
            .finish_non_exhaustive()
    }
}

impl WhipPeer {
    /// A peer on `local` offering `codec`; `record` keeps the decoded audio that comes
    /// back ([`received`](Self::received)).
    pub fn new(
        codec: AudioCodec,
        local: SocketAddr,
        now: Instant,
        record: bool,
    ) -> Result<Self, PeerError> {
        let rate = Frequency::new(codec.clock_rate()).unwrap_or(Frequency::FORTY_EIGHT_KHZ);
        let mut config = Rtc::builder()
            .clear_codecs()
            .set_rtcp_report_interval_audio(Duration::from_secs(1));
        let codecs = config.codec_config();
        match codec {
            AudioCodec::Opus => codecs.enable_opus(true, false),
            AudioCodec::Pcmu => codecs.enable_pcmu(true, false),
            AudioCodec::Pcma => codecs.enable_pcma(true, false),
        }
        // DTMF at the audio clock, as browsers offer it.
        codecs.add_config(
            126.into(),
            None,
            str0m::format::Codec::Tele,
            rate,
            None,
            FormatParams::default(),
        );
        let mut rtc = config.build(now);
        let candidate = Candidate::host(local, "udp").map_err(|e| PeerError(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let Some((offer, pending)) = api.apply() else {
            return Err(PeerError("no offer".into()));
        };
        let mut peer = Self {
            rtc,
            mid,
            codec,
            local,
            pending: Some(pending),
            pt: None,
            encoder: new_encoder(Codec::Opus16k, &OpusConfig::default())
                .map_err(|e| PeerError(e.to_string()))?,
            decoder: new_decoder(Codec::Opus16k).map_err(|e| PeerError(e.to_string()))?,
            timeout: now,
            transmits: VecDeque::new(),
            connected: false,
            frames_sent: 0,
            packets_received: 0,
            record,
            received: Vec::new(),
            tones: Vec::new(),
            last_tone: None,
            failed: None,
            offer: offer.to_sdp_string(),
        };
        peer.drain();
        Ok(peer)
    }

    /// The SDP offer to post.
    pub fn offer(&self) -> &str {
        &self.offer
    }

    /// The server's answer arrived.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), PeerError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| PeerError(e.to_string()))?;
        let pending = self
            .pending
            .take()
            .ok_or_else(|| PeerError("the answer came twice".into()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| PeerError(e.to_string()))?;
        self.drain();
        Ok(())
    }

    /// A datagram from `source` arrived at `now`.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        let Ok(contents) = contents.try_into() else {
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
        if let Err(e) = self.rtc.handle_input(input) {
            self.failed.get_or_insert(e.to_string());
        }
        self.drain();
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.timeout {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                self.failed.get_or_insert(e.to_string());
            }
            self.drain();
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Instant {
        self.timeout
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// True once ICE and DTLS are up (frames can be sent).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The first error of the WebRTC stack, if any.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Sends one 20 ms frame at `now` (the `k`-th since the first: its RTP time),
    /// with the DTMF tone `tone` (an RFC 4733 event code, 100 ms) starting with it.
    pub fn send_frame(
        &mut self,
        now: Instant,
        frame: &[i16; FRAME_SAMPLES],
        tone: Option<u8>,
    ) -> Result<(), PeerError> {
        if !self.connected {
            return Err(PeerError("not connected".into()));
        }
        let payload = match self.codec {
            AudioCodec::Opus => {
                let mut out = [0u8; 400];
                let n = self
                    .encoder
                    .encode(frame, &mut out)
                    .map_err(|e| PeerError(e.to_string()))?;
                out[..n].to_vec()
            }
            codec => {
                let half: Vec<i16> = frame.iter().step_by(2).copied().collect();
                let mut out = vec![0u8; half.len()];
                g711_encode_into(codec, &half, &mut out);
                out
            }
        };
        let rate = u64::from(self.codec.clock_rate());
        let clock = Frequency::new(self.codec.clock_rate()).unwrap_or(Frequency::FORTY_EIGHT_KHZ);
        let at = MediaTime::new(self.frames_sent * rate / 50, clock);
        let Some(writer) = self.rtc.writer(self.mid) else {
            return Err(PeerError("the connection is closing".into()));
        };
        let codec = self.codec;
        let pt = *self.pt.get_or_insert_with(|| {
            writer
                .payload_params()
                .find(|p| AudioCodec::from_str0m(p.spec().codec) == Some(codec))
                .map_or(0.into(), |p| p.pt())
        });
        let mut writer = writer.audio_level(-30, true);
        if let Some(event) = tone {
            writer = writer.telephone_event(TelephoneEvent {
                event,
                end: true,
                volume: 10,
                duration: Duration::from_millis(100),
            });
        }
        let written = writer.write(pt, now, at, payload);
        self.drain();
        written.map_err(|e| PeerError(e.to_string()))?;
        self.frames_sent += 1;
        Ok(())
    }

    /// Frames sent so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    /// Audio packets received so far.
    pub fn packets_received(&self) -> u64 {
        self.packets_received
    }

    /// The decoded audio received (16 kHz; only with `record`).
    pub fn received(&self) -> &[i16] {
        &self.received
    }

    /// DTMF event codes received, one per tone.
    pub fn tones(&self) -> &[u8] {
        &self.tones
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => self.transmits.push_back(t),
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::MediaData(d))) if d.params.spec().codec.is_tele() => {
                    if let CodecExtra::Tele(e) = d.codec_extra
                        && e.end
                        && self.last_tone != Some(d.time.numer())
                    {
                        self.last_tone = Some(d.time.numer());
                        self.tones.push(e.event);
                    }
                }
                Ok(Output::Event(Event::MediaData(d))) => {
                    self.packets_received += 1;
                    if !self.record {
                        continue;
                    }
                    match self.codec {
                        AudioCodec::Opus => {
                            let mut out = [0i16; FRAME_SAMPLES];
                            if self.decoder.decode(&d.data, &mut out).is_ok() {
                                self.received.extend_from_slice(&out);
                            }
                        }
                        codec => {
                            let mut pcm = [0i16; 480];
                            let n = g711_decode_into(codec, &d.data, &mut pcm);
                            for &s in &pcm[..n] {
                                self.received.extend_from_slice(&[s, s]);
                            }
                        }
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    self.failed.get_or_insert(e.to_string());
                    break;
                }
            }
        }
    }
}
