//! [`QuicFarEnd`]: the far end of app-hosted calls for the emulator (its
//! [`MediaPeerConnector`]). It dials the blob's `mpUri` over QUIC, pinning the
//! processor's certificate, plays speech into the call through a seeded network
//! impairment, and records what the bot sends back.
//!
//! ```text
//!  speech (WAV or built-in) ─ FarCall (CallMedia, send clock with the profile's drift)
//!        ─> uplink Impairment ─(due)─> QUIC datagram ─> media processor
//!  media processor ─> QUIC datagram ─> downlink Impairment ─(due)─> FarCall (jitter
//!        buffer, 20 ms playout) ─> recording ("far end received") + per-second stats
//! ```
//!
//! Every leg is a `FarCall` (crate-private, `farcall.rs`) inside a `FarEndCall` (the
//! impairments both ways, the same profile with different seeds), run by the far end's
//! own reactor thread. With [`FarEndConfig::via_relay`] the QUIC packets also pass a
//! loopback UDP relay that [`QuicFarEnd::cut_network`] can silence, so a test can make
//! the far end vanish without a goodbye.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use emulator::{BoxFuture, LegControl, MediaLeg, MediaLegStats, MediaPeerConnector};
use media_blob::MediaSessionConfig;
use media_core::call::AudioEvent;
use media_core::call::CallConfig;
use media_core::codec::{Codec, OpusConfig};
use media_core::control::{Control, DtmfTone};
use media_core::jitter::JitterStats;
use media_core::link::{CallHandler, CloseReason, LinkError, LinkEvent, LinkStats, MediaLink};
use media_core::packet::AudioPacket;
use media_core::playout::ReceiveConfig;
use media_core::sim::{Impairment, ImpairmentStats, Profile};
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use transport::reactor::ReactorClient;
use transport::{ClientConfig, ServerTrust, TransportSettings};

use crate::farcall::{
    FarCall, FarCommand, FarOptions, FarShared, PeerSource, Recording, SourceFrames, VoiceMix,
    Voices,
};
use crate::lock;
use crate::peer::{FarDialer, join_for, local_for, resolve_mp_uri};
use crate::relay::UdpRelay;

/// Settings of the far end.
#[derive(Debug, Clone)]
pub struct FarEndConfig {
    /// How to trust the processor's certificate (pin the bot's dev fingerprint).
    pub trust: ServerTrust,
    /// The codec offered (the processor must speak it).
    pub codec: Codec,
    /// The speech played (16 kHz mono), looped for as long as the call lasts.
    pub source: Arc<[i16]>,
    /// The network between far end and processor (both directions).
    pub profile: Profile,
    /// Impair the processor → far end direction too (default true).
    pub impair_downlink: bool,
    /// Seed of the impairment (the downlink uses `seed + 1`).
    pub seed: u64,
    /// Record what is sent and received (kept in the [`FarEndReport`]).
    pub record: bool,
    /// The far end's jitter buffer.
    pub receive: ReceiveConfig,
    /// Opus settings when the codec is Opus.
    pub opus: OpusConfig,
    /// QUIC settings of the far end.
    pub transport: TransportSettings,
    /// Route the QUIC packets through a loopback UDP relay that
    /// [`QuicFarEnd::cut_network`] can silence.
    pub via_relay: bool,
    /// How long after its connection fails the far end tells the emulator (which then
    /// ends the call with "Client Media Error"); default 0. A longer grace lets the
    /// bot's own failure handling act first.
    pub failure_grace: Duration,
    /// Several speakers (empty: one, `source`, the default). Each participant the
    /// emulator reports as speaking (`LegControl::Speakers`, loudest first, at most
    /// 4) plays its own voice: the first participant ever reported the first voice,
    /// the next the next (looped). The far end sends their mix, offers up to 4
    /// unmixed streams in its join, and sends each speaker's voice unmixed as far as
    /// the processor grants (and no mix if the bot asked for unmixed audio only).
    pub voices: Vec<Arc<[i16]>>,
}

impl FarEndConfig {
    /// A far end pinning `trust`, offering Opus, playing 10 s of media-core's
    /// speech-like signal (looped) over the `clean` profile, recording.
    pub fn new(trust: ServerTrust) -> Self {
        Self {
            trust,
            codec: Codec::Opus16k,
            source: media_core::speech::speech_like(10 * 16_000, 1).into(),
            profile: Profile::named("clean").unwrap_or(Profile::ideal("clean", Duration::ZERO)),
            impair_downlink: true,
            seed: 1,
            record: true,
            receive: ReceiveConfig::default(),
            opus: OpusConfig::default(),
            transport: TransportSettings::default(),
            via_relay: false,
            failure_grace: Duration::ZERO,
            voices: Vec::new(),
        }
    }
}

/// Counters of one far-end leg (live, or final in the report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FarEndStats {
    /// Frames encoded (before the uplink impairment).
    pub frames_sent: u64,
    /// Datagrams that left for the processor (after the uplink impairment).
    pub packets_sent: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Datagrams received from the processor (before the downlink impairment).
    pub packets_received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Frames played out (20 ms each, once the first packet arrived).
    pub frames_played: u64,
    /// Played frames with concealment.
    pub frames_concealed: u64,
    /// What the uplink (far end → processor) network did.
    pub uplink: ImpairmentStats,
    /// What the downlink (processor → far end) network did.
    pub downlink: ImpairmentStats,
    /// The far end's jitter buffer (processor → far end).
    pub jitter: JitterStats,
}

/// One second of a far-end leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FarEndSecond {
    /// Seconds since the leg connected (end of this second).
    pub t: f64,
    /// Cumulative counters at that time.
    pub stats: FarEndStats,
}

/// What a far-end leg sent, received and measured.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FarEndReport {
    /// Graph's call id.
    pub call_id: String,
    /// The codec of the call.
    pub codec: String,
    /// The impairment profile.
    pub profile: String,
    /// Final counters.
    pub stats: FarEndStats,
    /// Per-second counters.
    pub seconds: Vec<FarEndSecond>,
    /// How the connection ended.
    pub close: Option<String>,
    /// Audio the far end sent (before the network), 16 kHz mono.
    #[serde(skip)]
    pub sent: Vec<i16>,
    /// Audio the far end played out (what the bot sent, after network and jitter
    /// buffer), 16 kHz mono, on the same timeline as `sent`.
    #[serde(skip)]
    pub received: Vec<i16>,
}

/// The far end's call: a [`FarCall`] behind the network impairment, both ways.
struct FarEndCall {
    far: FarCall,
    up: Impairment<AudioPacket>,
    down: Impairment<AudioPacket>,
    shared: Arc<FarShared>,
    net: Arc<Mutex<FarEndStats>>,
    counts: FarEndStats,
    t0: Instant,
    next_second: Duration,
    report: FarEndReport,
    sent: Arc<Mutex<Vec<i16>>>,
    recording: Option<oneshot::Receiver<Recording>>,
    end: Option<oneshot::Sender<FarEndReport>>,
    failed: Option<watch::Sender<Option<String>>>,
}

/// The link as the far end's call sees it: its packets enter the uplink impairment.
struct Uplink<'a> {
    up: &'a mut Impairment<AudioPacket>,
    link: &'a mut dyn MediaLink,
    now: Instant,
    frames: &'a mut u64,
}

impl MediaLink for Uplink<'_> {
    fn send_packet(&mut self, packet: &AudioPacket) -> Result<(), LinkError> {
        *self.frames += 1;
        self.up.send(self.now, packet.clone());
        Ok(())
    }

    fn send_control(&mut self, control: &Control) -> Result<(), LinkError> {
        self.link.send_control(control)
    }

    fn close(&mut self, reason: &str) {
        self.link.close(reason);
    }

    fn stats(&mut self) -> LinkStats {
        self.link.stats()
    }
}

impl FarEndCall {
    /// Moves due packets: uplink ones to the link, downlink ones to the call.
    fn run_network(&mut self, now: Instant, link: &mut dyn MediaLink) {
        while let Some(p) = self.up.poll(now) {
            if link.send_packet(&p).is_ok() {
                self.counts.packets_sent += 1;
                self.counts.bytes_sent += p.payload().len() as u64;
            }
        }
        while let Some(p) = self.down.poll(now) {
            let mut uplink = Uplink {
                up: &mut self.up,
                link,
                now,
                frames: &mut self.counts.frames_sent,
            };
            self.far
                .handle_event(now, LinkEvent::Packet(&p), &mut uplink);
        }
    }

    /// The counters now, published for the emulator and, once a second, recorded.
    fn publish(&mut self, now: Instant) {
        let far = *lock(&self.shared.stats);
        self.counts.frames_played = far.frames_played;
        self.counts.frames_concealed = far.frames_concealed;
        self.counts.jitter = far.jitter;
        self.counts.uplink = self.up.stats();
        self.counts.downlink = self.down.stats();
        *lock(&self.net) = self.counts;
        let t = now.saturating_duration_since(self.t0);
        if t >= self.next_second {
            self.report.seconds.push(FarEndSecond {
                t: t.as_secs_f64(),
                stats: self.counts,
            });
            self.next_second += Duration::from_secs(1);
        }
    }
}

impl CallHandler for FarEndCall {
    fn handle_event(&mut self, now: Instant, event: LinkEvent<'_>, link: &mut dyn MediaLink) {
        match event {
            LinkEvent::Packet(p) => {
                self.counts.packets_received += 1;
                self.counts.bytes_received += p.payload().len() as u64;
                self.down.send(now, p.clone());
            }
            LinkEvent::Control(_) => {
                let mut uplink = Uplink {
                    up: &mut self.up,
                    link,
                    now,
                    frames: &mut self.counts.frames_sent,
                };
                self.far.handle_event(now, event, &mut uplink);
            }
            LinkEvent::Closed(reason) => {
                self.far.handle_event(now, event, link);
                self.publish(now);
                let rec = self
                    .recording
                    .take()
                    .and_then(|mut r| r.try_recv().ok())
                    .unwrap_or_default();
                let by_us = matches!(reason, CloseReason::Closed { .. });
                if !by_us && let Some(f) = self.failed.take() {
                    f.send_replace(Some(reason.to_string()));
                }
                let mut report = std::mem::take(&mut self.report);
                report.stats = self.counts;
                report.close = Some(reason.to_string());
                report.sent = std::mem::take(&mut *lock(&self.sent));
                report.received = rec.received;
                if let Some(end) = self.end.take() {
                    let _ = end.send(report);
                }
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant, link: &mut dyn MediaLink) {
        self.run_network(now, link);
        if self.far.poll_timeout().is_some_and(|t| t <= now) {
            let mut uplink = Uplink {
                up: &mut self.up,
                link,
                now,
                frames: &mut self.counts.frames_sent,
            };
            self.far.handle_timeout(now, &mut uplink);
        }
        // Packets the call just sent may be due at once (no delay on the profile).
        self.run_network(now, link);
        self.publish(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.far.poll_timeout(),
            self.up.poll_timeout(),
            self.down.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// One leg, as the far end keeps it while it runs.
struct LegShared {
    shared: Arc<FarShared>,
    net: Arc<Mutex<FarEndStats>>,
    relay: Option<UdpRelay>,
    end: Mutex<Option<oneshot::Receiver<FarEndReport>>>,
    failed: watch::Receiver<Option<String>>,
    failure_grace: Duration,
    /// Control messages for the far end's call (speakers, DTMF), taken at its ticks.
    commands: crossbeam_channel::Sender<FarCommand>,
    /// DTMF tones the far end received from the bot, in order.
    tones: Arc<Mutex<Vec<DtmfTone>>>,
}

#[derive(Default)]
struct FarEndInner {
    client: Mutex<Option<Arc<ReactorClient>>>,
    legs: Mutex<HashMap<String, Arc<LegShared>>>,
    reports: Mutex<HashMap<String, FarEndReport>>,
    reports_tx: Mutex<Option<watch::Sender<u64>>>,
}

impl FarEndInner {
    /// The far end's reactor thread, started with the first leg.
    fn client(&self, transport: &TransportSettings) -> Result<Arc<ReactorClient>, String> {
        let mut c = lock(&self.client);
        if let Some(client) = c.as_ref() {
            return Ok(client.clone());
        }
        let local = local_for(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        let client = Arc::new(
            ReactorClient::bind(local, transport)
                .map_err(|e| format!("far end cannot start: {e}"))?,
        );
        *c = Some(client.clone());
        Ok(client)
    }
}

/// The emulator's far end over QUIC. Cheap to clone: clones share the legs and reports.
#[derive(Clone)]
pub struct QuicFarEnd {
    config: Arc<FarEndConfig>,
    inner: Arc<FarEndInner>,
    reports_rx: watch::Receiver<u64>,
}

impl std::fmt::Debug for QuicFarEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicFarEnd")
            .field("profile", &self.config.profile.name)
            .field("codec", &self.config.codec)
            .field("legs", &self.live_legs())
            .finish_non_exhaustive()
    }
}

impl QuicFarEnd {
    /// A far end with `config`.
    pub fn new(config: FarEndConfig) -> Self {
        let (tx, rx) = watch::channel(0);
        let inner = FarEndInner {
            reports_tx: Mutex::new(Some(tx)),
            ..FarEndInner::default()
        };
        Self {
            config: Arc::new(config),
            inner: Arc::new(inner),
            reports_rx: rx,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FarEndConfig {
        &self.config
    }

    /// Legs connected and not yet stopped.
    pub fn live_legs(&self) -> usize {
        lock(&self.inner.legs).len()
    }

    /// The DTMF tones the leg of `call_id` received from the bot in the media link,
    /// in order (empty once the call ended or before it connected).
    pub fn tones_heard(&self, call_id: &str) -> Vec<DtmfTone> {
        lock(&self.inner.legs)
            .get(call_id)
            .map(|l| lock(&l.tones).clone())
            .unwrap_or_default()
    }

    /// Live counters of the leg of `call_id`, while the call lives.
    pub fn stats(&self, call_id: &str) -> Option<FarEndStats> {
        lock(&self.inner.legs).get(call_id).map(|l| *lock(&l.net))
    }

    /// Silences the relay of `call_id`'s leg (needs [`FarEndConfig::via_relay`]): no
    /// packet passes either way, as if the far end had vanished. False if no such leg.
    pub fn cut_network(&self, call_id: &str) -> bool {
        lock(&self.inner.legs)
            .get(call_id)
            .and_then(|l| l.relay.as_ref())
            .map(UdpRelay::cut)
            .is_some()
    }

    /// Removes and returns the report of the finished leg of `call_id`.
    pub fn take_report(&self, call_id: &str) -> Option<FarEndReport> {
        lock(&self.inner.reports).remove(call_id)
    }

    /// Waits up to `timeout` for the leg of `call_id` to finish, then takes its report.
    pub async fn wait_report(&self, call_id: &str, timeout: Duration) -> Option<FarEndReport> {
        let mut rx = self.reports_rx.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(r) = self.take_report(call_id) {
                return Some(r);
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return self.take_report(call_id);
            }
        }
    }

    async fn connect_leg(
        config: Arc<FarEndConfig>,
        inner: Arc<FarEndInner>,
        call_id: String,
        blob: MediaSessionConfig,
    ) -> Result<Box<dyn MediaLeg>, String> {
        let server = resolve_mp_uri(&blob).map_err(|e| e.to_string())?;
        let relay = match config.via_relay {
            true => Some(
                UdpRelay::start(server)
                    .await
                    .map_err(|e| format!("far end relay: {e}"))?,
            ),
            false => None,
        };
        let target = relay.as_ref().map_or(server, UdpRelay::address);
        let client = inner.client(&config.transport)?;
        let profile = config.profile;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(FarShared::default());
        let (rec_tx, rec_rx) = oneshot::channel();
        let (end_tx, end_rx) = oneshot::channel();
        let (failed_tx, failed_rx) = watch::channel(None);
        let (ready_tx, ready_rx) = oneshot::channel();
        let net = Arc::new(Mutex::new(FarEndStats::default()));
        let (commands_tx, commands_rx) = crossbeam_channel::bounded(64);
        // The far end's audio events: the tones the bot sends are kept; the task
        // ends with the call (its sender is dropped).
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
        let tones = Arc::new(Mutex::new(Vec::new()));
        let heard = tones.clone();
        tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                if let AudioEvent::ToneReceived { tone, .. } = event {
                    lock(&heard).push(tone);
                }
            }
        });
        let far = FarOptions {
            config: CallConfig {
                opus: config.opus,
                receive: config.receive,
                // The far end's sender clock runs with the profile's drift.
                send_period: profile.sender_frame_period(),
                ..CallConfig::new(config.codec)
            },
            record: config.record,
            log_arrivals: false,
            run_ticks: None,
            shared: shared.clone(),
            commands: Some(commands_rx),
            events: Some(events_tx),
            done: Some(rec_tx),
            voices: None,
        };
        let down_profile = if config.impair_downlink {
            profile
        } else {
            Profile::ideal("none", Duration::ZERO)
        };
        let wrap = FarEndWrap {
            up: Impairment::new(profile, config.seed),
            down: Impairment::new(down_profile, config.seed.wrapping_add(1)),
            net: net.clone(),
            report: FarEndReport {
                call_id: call_id.clone(),
                codec: config.codec.to_string(),
                profile: profile.name.to_owned(),
                ..FarEndReport::default()
            },
            sent,
            recording: rec_rx,
            end: end_tx,
            failed: failed_tx,
        };
        let mut cc = ClientConfig::new(target, config.trust.clone());
        cc.settings = config.transport.clone();
        let mut far = far;
        let mut join = join_for(&blob, vec![config.codec]);
        let source: Box<dyn media_core::call::FrameSource> = if config.voices.is_empty() {
            Box::new(SourceFrames::new(
                PeerSource::Loop(config.source.clone()),
                Duration::MAX,
                config.record.then(|| wrap.sent.clone()),
            ))
        } else {
            let voices = Voices::shared(
                config.voices.clone(),
                config.record.then(|| wrap.sent.clone()),
            );
            far.voices = Some(voices.clone());
            join.unmixed = transport::wire::MAX_UNMIXED;
            Box::new(VoiceMix(voices))
        };
        let dialer = FarEndDialer {
            dialer: FarDialer {
                opts: far,
                source,
                ready: Some(ready_tx),
            },
            wrap,
        };
        client
            .connect(&cc, join, Box::new(dialer))
            .map_err(|e| format!("far end could not dial {server}: {e}"))?;
        match ready_rx.await {
            Ok(Ok(_codec)) => {}
            Ok(Err(e)) => {
                return Err(format!(
                    "far end could not join the media processor at {server}: {e}"
                ));
            }
            Err(_) => return Err("far end: the dial was dropped".into()),
        }
        let leg = Arc::new(LegShared {
            shared,
            net,
            relay,
            end: Mutex::new(Some(end_rx)),
            failed: failed_rx,
            failure_grace: config.failure_grace,
            commands: commands_tx,
            tones,
        });
        lock(&inner.legs).insert(call_id.clone(), leg.clone());
        Ok(Box::new(FarEndLeg {
            call_id,
            leg,
            inner,
        }))
    }
}

/// The parts of a [`FarEndCall`] ready before the codec is known.
struct FarEndWrap {
    up: Impairment<AudioPacket>,
    down: Impairment<AudioPacket>,
    net: Arc<Mutex<FarEndStats>>,
    report: FarEndReport,
    sent: Arc<Mutex<Vec<i16>>>,
    recording: oneshot::Receiver<Recording>,
    end: oneshot::Sender<FarEndReport>,
    failed: watch::Sender<Option<String>>,
}

/// Dials like a peer, then wraps the call in the network impairment.
struct FarEndDialer {
    dialer: FarDialer,
    wrap: FarEndWrap,
}

impl transport::reactor::Dialer for FarEndDialer {
    fn accepted(self: Box<Self>, call: transport::reactor::NewCall<'_>) -> Box<dyn CallHandler> {
        let FarEndDialer { dialer, wrap } = *self;
        let shared = dialer.opts.shared.clone();
        let now = call.now;
        match dialer.start(&call) {
            Ok(far) => Box::new(FarEndCall {
                far,
                up: wrap.up,
                down: wrap.down,
                shared,
                net: wrap.net,
                counts: FarEndStats::default(),
                t0: now,
                next_second: Duration::from_secs(1),
                report: wrap.report,
                sent: wrap.sent,
                recording: Some(wrap.recording),
                end: Some(wrap.end),
                failed: Some(wrap.failed),
            }),
            Err(leaving) => Box::new(leaving),
        }
    }

    fn failed(self: Box<Self>, error: transport::ConnectError) {
        Box::new(self.dialer).failed(error);
    }
}

impl MediaPeerConnector for QuicFarEnd {
    fn connect(
        &self,
        call_id: &str,
        config: &MediaSessionConfig,
    ) -> BoxFuture<'static, Result<Box<dyn MediaLeg>, String>> {
        Box::pin(Self::connect_leg(
            self.config.clone(),
            self.inner.clone(),
            call_id.to_owned(),
            config.clone(),
        ))
    }
}

/// One connected far end (the emulator holds it while the call lives).
struct FarEndLeg {
    call_id: String,
    leg: Arc<LegShared>,
    inner: Arc<FarEndInner>,
}

impl MediaLeg for FarEndLeg {
    fn stats(&self) -> MediaLegStats {
        let s = *lock(&self.leg.net);
        MediaLegStats {
            packets_sent: s.packets_sent,
            packets_received: s.packets_received,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
        }
    }

    fn stop(&self) -> BoxFuture<'static, ()> {
        let leg = self.leg.clone();
        let inner = self.inner.clone();
        let call_id = self.call_id.clone();
        Box::pin(async move {
            leg.shared.stop.store(true, Ordering::Release);
            let end = lock(&leg.end).take();
            let report = match end {
                Some(rx) => tokio::time::timeout(Duration::from_secs(5), rx)
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => None,
            };
            lock(&inner.legs).remove(&call_id);
            if let Some(report) = report {
                lock(&inner.reports).insert(call_id, report);
                if let Some(tx) = lock(&inner.reports_tx).as_ref() {
                    tx.send_modify(|n| *n += 1);
                }
            }
        })
    }

    fn control(&self, control: LegControl) -> bool {
        let control = match control {
            LegControl::Speakers { active, dominant } => {
                // Active speakers first, so a frame carries them when the dominant
                // speaker's event arrives.
                let active = Control::ActiveSpeakers(
                    media_core::control::ActiveSpeakers::from_slice(&active),
                );
                if self
                    .leg
                    .commands
                    .try_send(FarCommand::Control(active))
                    .is_err()
                {
                    return false;
                }
                Control::DominantSpeaker(dominant)
            }
            LegControl::Tone { tone, duration_ms } => match bot::graph_tone(&tone) {
                Some(tone) => Control::Dtmf { tone, duration_ms },
                None => return false,
            },
            _ => return false,
        };
        self.leg
            .commands
            .try_send(FarCommand::Control(control))
            .is_ok()
    }

    fn closed(&self) -> BoxFuture<'static, String> {
        let mut failed = self.leg.failed.clone();
        let grace = self.leg.failure_grace;
        Box::pin(async move {
            let failure = failed
                .wait_for(Option::is_some)
                .await
                .map(|r| r.clone().unwrap_or_default());
            let Ok(reason) = failure else {
                // The leg ended without failing (stopped): never resolves.
                return std::future::pending().await;
            };
            tokio::time::sleep(grace).await;
            format!("far end media connection ended: {reason}")
        })
    }
}
