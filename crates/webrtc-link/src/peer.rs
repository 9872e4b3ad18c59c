//! [`WhipPeer`]: the far end of a WHIP call, sans-IO, for tests and load runs.
//!
//! A full-ICE str0m peer that offers one audio codec (and telephone events), sends
//! 20 ms frames of 16 kHz PCM encoded in it, and decodes what comes back. Its driver
//! posts [`WhipPeer::offer`] to a WHIP endpoint, hands the answer to
//! [`WhipPeer::accept_answer`], and moves datagrams and time as for any str0m `Rtc`
//! ([`handle_receive`](WhipPeer::handle_receive), [`handle_timeout`](WhipPeer::handle_timeout),
//! [`poll_transmit`](WhipPeer::poll_transmit), [`poll_timeout`](WhipPeer::poll_timeout)).
//!
//! [`WhipPeer::run`] is a driver on a tokio UDP socket that plays a [`PeerScript`].
//!
//! G.711 is sent as every other sample of the 16 kHz frame (no anti-alias filter: a
//! test signal, not a product path) and received upsampled by repetition.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_core::codec::{AudioDecoder, AudioEncoder, Codec, OpusConfig, new_decoder, new_encoder};
use media_core::frame::FRAME_SAMPLES;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::FormatParams;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt, TelephoneEvent};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::codec::{AudioCodec, ToneEnds, g711_decode_into, g711_encode_into};

/// What a peer sends: `frames` 20 ms frames taken from `source` (looped), starting
/// when the connection is up, with the DTMF tone `tone` (an RFC 4733 event code)
/// starting with frame `tone_at`.
#[derive(Debug, Clone)]
pub struct PeerScript {
    /// 16 kHz PCM, looped; at least one frame.
    pub source: Vec<i16>,
    /// Frames to send.
    pub frames: u64,
    /// A DTMF tone and the frame it starts with.
    pub tone: Option<(u8, u64)>,
    /// Keep what is sent (for comparing with what comes back).
    pub keep_sent: bool,
    /// How long to wait for the last echo after the last frame.
    pub linger: Duration,
    /// Give up this long after the start whatever happened.
    pub deadline: Duration,
}

/// What [`WhipPeer::run`] did.
#[derive(Debug)]
pub struct PeerRun {
    /// The peer afterwards (its counters, what it received).
    pub peer: WhipPeer,
    /// What was sent (with [`PeerScript::keep_sent`]).
    pub sent: Vec<i16>,
    /// Frames sent more than 5 ms after their 20 ms slot.
    pub late_sends: u64,
}

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
    tone_ends: ToneEnds,
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
            tone_ends: ToneEnds::default(),
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

    /// Drives the peer on `socket` (bound to its `local` address; the answer
    /// accepted): sends the script's frames paced at 20 ms from the moment the
    /// connection is up, takes what comes back, then lingers for the last echo.
    pub async fn run(
        mut self,
        socket: tokio::net::UdpSocket,
        script: &PeerScript,
    ) -> Result<PeerRun, PeerError> {
        let source = &script.source;
        if source.len() < FRAME_SAMPLES {
            return Err(PeerError(
                "the script's source has less than a frame".into(),
            ));
        }
        let mut buf = vec![0u8; 2048];
        let mut sent = Vec::new();
        let mut late_sends = 0;
        let mut next_send: Option<Instant> = None;
        let end = Instant::now() + script.deadline;
        let mut linger: Option<Instant> = None;
        let mut frame = [0i16; FRAME_SAMPLES];
        loop {
            while let Some(t) = self.poll_transmit() {
                let _ = socket.send_to(&t.contents, t.destination).await;
            }
            if let Some(e) = self.failure() {
                return Err(PeerError(e.to_owned()));
            }
            let now = Instant::now();
            if now >= end || linger.is_some_and(|t| now >= t) {
                break;
            }
            if self.is_connected() && next_send.is_none() {
                next_send = Some(now);
            }
            let k = self.frames_sent;
            if let Some(due) = next_send.filter(|t| *t <= now && k < script.frames) {
                if now > due + Duration::from_millis(5) {
                    late_sends += 1;
                }
                for (i, s) in frame.iter_mut().enumerate() {
                    *s = source[(k as usize * FRAME_SAMPLES + i) % source.len()];
                }
                if script.keep_sent {
                    sent.extend_from_slice(&frame);
                }
                let tone = script.tone.filter(|t| t.1 == k).map(|t| t.0);
                self.send_frame(now, &frame, tone)?;
                next_send = Some(due + Duration::from_millis(20));
                if k + 1 == script.frames {
                    linger = Some(now + script.linger);
                }
                continue;
            }
            let mut wake = self.poll_timeout().min(end);
            if let Some(t) = next_send.filter(|_| self.frames_sent < script.frames) {
                wake = wake.min(t);
            }
            if let Some(t) = linger {
                wake = wake.min(t);
            }
            let wait = wake.saturating_duration_since(Instant::now());
            tokio::select! {
                r = socket.recv_from(&mut buf) => {
                    if let Ok((n, source)) = r {
                        self.handle_receive(Instant::now(), source, &buf[..n]);
                    }
                }
                () = tokio::time::sleep(wait) => self.handle_timeout(Instant::now()),
            }
        }
        Ok(PeerRun {
            peer: self,
            sent,
            late_sends,
        })
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
                    if let Some((code, _)) = self.tone_ends.take(d.time.numer(), &d.codec_extra) {
                        self.tones.push(code);
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
