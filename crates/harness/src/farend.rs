//! [`QuicFarEnd`]: the far end of app-hosted calls for the emulator (its
//! [`MediaPeerConnector`]). It connects to the blob's `mpUri` over QUIC, pinning the
//! processor's certificate, plays speech into the call through a seeded network
//! impairment, and records what the bot sends back.
//!
//! ```text
//!  speech (WAV or built-in) --tick (sender clock, drift)--> SendPipeline --> uplink Impairment
//!        --(due)--> QUIC datagram --> media processor
//!  media processor --> QUIC datagram --> downlink Impairment --(due)--> ReceivePipeline
//!        --20 ms playout tick--> recording ("far end received") + per-second stats
//! ```
//!
//! Both directions go through a [`media_core::sim::Impairment`] with the same profile
//! (different seeds). With [`FarEndConfig::via_relay`] the QUIC packets also pass a
//! loopback UDP relay that [`QuicFarEnd::cut_network`] can silence, so a test can make
//! the far end vanish without a goodbye.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use emulator::{BoxFuture, MediaLeg, MediaLegStats, MediaPeerConnector};
use media_blob::MediaSessionConfig;
use media_core::codec::{OpusConfig, new_decoder};
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::jitter::JitterStats;
use media_core::packet::AudioPacket;
use media_core::playout::{ReceiveConfig, ReceivePipeline};
use media_core::send::{SendConfig, SendPipeline};
use media_core::sim::{Impairment, ImpairmentStats, Profile};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use transport::wire::{Codec, DatagramHeader, Flags, StreamDirection};
use transport::{
    ClientConfig, CloseReason, MediaClient, MediaDatagram, MediaSender, ServerTrust,
    TransportSettings,
};

use crate::lock;

/// An encoded frame's payload in flight through the uplink impairment.
type Payload = Arc<[u8]>;

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

struct LegShared {
    failure_grace: Duration,
    stats: Mutex<FarEndStats>,
    stop: AtomicBool,
    stop_tx: watch::Sender<bool>,
    cut: Arc<AtomicBool>,
    task: Mutex<Option<JoinHandle<FarEndReport>>>,
    link: MediaSender,
}

#[derive(Default)]
struct FarEndInner {
    legs: Mutex<HashMap<String, Arc<LegShared>>>,
    reports: Mutex<HashMap<String, FarEndReport>>,
    reports_tx: Mutex<Option<watch::Sender<u64>>>,
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

    /// Live counters of the leg of `call_id`.
    pub fn stats(&self, call_id: &str) -> Option<FarEndStats> {
        lock(&self.inner.legs).get(call_id).map(|l| *lock(&l.stats))
    }

    /// Silences the relay of `call_id`'s leg (needs [`FarEndConfig::via_relay`]): no
    /// packet passes either way, as if the far end had vanished. False if no such leg.
    pub fn cut_network(&self, call_id: &str) -> bool {
        lock(&self.inner.legs).get(call_id).is_some_and(|l| {
            l.cut.store(true, Ordering::Release);
            true
        })
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
        let server = crate::peer::resolve_mp_uri(&blob).map_err(|e| e.to_string())?;
        let cut = Arc::new(AtomicBool::new(false));
        let target = if config.via_relay {
            start_relay(server, cut.clone())
                .await
                .map_err(|e| format!("far end relay: {e}"))?
        } else {
            server
        };
        let join = crate::peer::join_for(&blob, vec![config.codec]);
        let mut cc = ClientConfig::new(target, config.trust.clone());
        cc.settings = config.transport.clone();
        cc.bind = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let conn = MediaClient::connect(cc, join)
            .await
            .map_err(|e| format!("far end could not join the media processor at {server}: {e}"))?;
        let codec = conn.accept().codec;
        let stream = |dir| {
            conn.accept()
                .streams
                .iter()
                .find(|s| s.direction == dir)
                .map(|s| s.stream_id)
        };
        // The processor receives on render streams and sends on source streams.
        let send_stream = stream(StreamDirection::Render).ok_or("no render stream assigned")?;
        let recv_stream = stream(StreamDirection::Source).ok_or("no source stream assigned")?;
        let kind = codec;
        let send = SendPipeline::new(&SendConfig {
            codec: kind,
            opus: config.opus,
            queue_frames: 4,
            ..SendConfig::default()
        })
        .map_err(|e| format!("far end send pipeline: {e}"))?;
        let decoder = new_decoder(kind).map_err(|e| format!("far end decoder: {e}"))?;
        let recv = ReceivePipeline::new(config.receive, decoder);
        let (link, datagrams, control) = conn.split();
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(LegShared {
            failure_grace: config.failure_grace,
            stats: Mutex::new(FarEndStats::default()),
            stop: AtomicBool::new(false),
            stop_tx,
            cut,
            task: Mutex::new(None),
            link: link.clone(),
        });
        let run = LegRun {
            config: config.clone(),
            call_id: call_id.clone(),
            codec,
            link,
            send,
            recv,
            send_stream,
            recv_stream,
            shared: shared.clone(),
        };
        // The control receiver stays with the task: the far end ignores control messages
        // but keeps the channel open.
        let task = tokio::spawn(run.run(datagrams, stop_rx, control));
        *lock(&shared.task) = Some(task);
        lock(&inner.legs).insert(call_id.clone(), shared.clone());
        Ok(Box::new(FarEndLeg {
            call_id,
            shared,
            inner,
        }))
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
    shared: Arc<LegShared>,
    inner: Arc<FarEndInner>,
}

impl MediaLeg for FarEndLeg {
    fn stats(&self) -> MediaLegStats {
        let s = *lock(&self.shared.stats);
        MediaLegStats {
            packets_sent: s.packets_sent,
            packets_received: s.packets_received,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
        }
    }

    fn stop(&self) -> BoxFuture<'static, ()> {
        let shared = self.shared.clone();
        let inner = self.inner.clone();
        let call_id = self.call_id.clone();
        Box::pin(async move {
            shared.stop.store(true, Ordering::Release);
            shared.stop_tx.send_replace(true);
            let task = lock(&shared.task).take();
            let report = match task {
                Some(t) => t.await.ok(),
                None => None,
            };
            lock(&inner.legs).remove(&call_id);
            if let Some(r) = report {
                lock(&inner.reports).insert(call_id, r);
                if let Some(tx) = lock(&inner.reports_tx).as_ref() {
                    tx.send_modify(|n| *n += 1);
                }
            }
        })
    }

    fn closed(&self) -> BoxFuture<'static, String> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let reason = shared.link.closed().await;
            if shared.stop.load(Ordering::Acquire) || matches!(reason, CloseReason::Closed { .. }) {
                // We closed it (stop): not a failure of the leg.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(shared.failure_grace).await;
            format!("far end media connection ended: {reason}")
        })
    }
}

#[derive(Clone)]
struct UpPacket {
    header: DatagramHeader,
    payload: Payload,
}

struct LegRun {
    config: Arc<FarEndConfig>,
    call_id: String,
    codec: Codec,
    link: MediaSender,
    send: SendPipeline,
    recv: ReceivePipeline,
    send_stream: u32,
    recv_stream: u32,
    shared: Arc<LegShared>,
}

fn fill_packet(pkt: &mut AudioPacket, header: &DatagramHeader, payload: &[u8]) -> bool {
    if pkt.set_payload(payload).is_err() {
        return false;
    }
    pkt.seq = header.sequence;
    pkt.timestamp = header.timestamp;
    pkt.codec = header.codec;
    pkt.silence = header.flags.contains(Flags::SILENCE);
    true
}

impl LegRun {
    async fn run(
        mut self,
        mut datagrams: mpsc::Receiver<MediaDatagram>,
        mut stop: watch::Receiver<bool>,
        _control: mpsc::Receiver<transport::wire::ControlMessage>,
    ) -> FarEndReport {
        let cfg = self.config.clone();
        let profile = cfg.profile;
        let mut uplink: Impairment<UpPacket> = Impairment::new(profile, cfg.seed);
        let down_profile = if cfg.impair_downlink {
            profile
        } else {
            Profile::ideal("none", Duration::ZERO)
        };
        let mut downlink: Impairment<MediaDatagram> =
            Impairment::new(down_profile, cfg.seed.wrapping_add(1));
        let mut report = FarEndReport {
            call_id: self.call_id.clone(),
            codec: format!("{:?}", self.codec),
            profile: profile.name.to_owned(),
            ..FarEndReport::default()
        };
        let mut stats = FarEndStats::default();
        let source = cfg.source.clone();
        let mut pos = 0usize;
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut out = Pcm16kFrame::silent();
        let mut tx_pkt = AudioPacket::empty(self.codec);
        let mut rx_pkt = AudioPacket::empty(self.codec);
        let mut first = true;
        let mut receiving = false;
        // The far end's sender clock runs with the profile's drift; playout is nominal.
        let mut send_tick = tokio::time::interval(profile.sender_frame_period());
        send_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut play_tick = tokio::time::interval(Duration::from_millis(20));
        play_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let t0 = Instant::now();
        let mut play_ticks = 0u64;
        let mut next_second = 1.0;
        let far_future = tokio::time::Instant::now() + Duration::from_secs(3600 * 24);
        loop {
            let due = [uplink.poll_timeout(), downlink.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .map(tokio::time::Instant::from_std)
                .unwrap_or(far_future);
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                reason = self.link.closed() => {
                    report.close = Some(reason.to_string());
                    break;
                }
                _ = send_tick.tick() => {
                    if source.is_empty() {
                        frame.fill(0);
                    } else {
                        for s in frame.iter_mut() {
                            *s = source[pos];
                            pos = (pos + 1) % source.len();
                        }
                    }
                    if cfg.record {
                        report.sent.extend_from_slice(&frame);
                    }
                    stats.frames_sent += 1;
                    if self.send.push_pcm16k_frame(&Pcm16kFrame::new(frame)).is_ok() {
                        let now = Instant::now();
                        while self.send.poll_packet(&mut tx_pkt) {
                            let mut flags = if tx_pkt.silence { Flags::SILENCE } else { Flags::NONE };
                            if first {
                                flags = flags.union(Flags::MARKER);
                                first = false;
                            }
                            let header = DatagramHeader {
                                flags,
                                codec: tx_pkt.codec,
                                stream_id: self.send_stream,
                                sequence: tx_pkt.seq,
                                timestamp: tx_pkt.timestamp,
                            };
                            uplink.send(now, UpPacket { header, payload: tx_pkt.payload().into() });
                        }
                    }
                }
                _ = play_tick.tick() => {
                    let now = Instant::now();
                    if receiving {
                        let info = self.recv.poll_frame(now, &mut out);
                        stats.frames_played += 1;
                        stats.frames_concealed += u64::from(info.concealed);
                    } else {
                        out = Pcm16kFrame::silent();
                    }
                    if cfg.record {
                        report.received.extend_from_slice(out.samples());
                    }
                    play_ticks += 1;
                    if play_ticks.is_multiple_of(10) {
                        stats.jitter = self.recv.stats();
                        stats.uplink = uplink.stats();
                        stats.downlink = downlink.stats();
                        *lock(&self.shared.stats) = stats;
                        let t = (now - t0).as_secs_f64();
                        if t >= next_second {
                            report.seconds.push(FarEndSecond { t, stats });
                            next_second += 1.0;
                        }
                    }
                }
                Some(d) = datagrams.recv() => {
                    if d.header.stream_id == self.recv_stream {
                        stats.packets_received += 1;
                        stats.bytes_received += d.payload.len() as u64;
                        downlink.send(Instant::now(), d);
                    }
                }
                _ = tokio::time::sleep_until(due) => {}
            }
            let now = Instant::now();
            while let Some(p) = uplink.poll(now) {
                if self.link.send_datagram(&p.header, &p.payload).is_ok() {
                    stats.packets_sent += 1;
                    stats.bytes_sent += p.payload.len() as u64;
                }
            }
            while let Some(d) = downlink.poll(now) {
                if fill_packet(&mut rx_pkt, &d.header, &d.payload)
                    && self.recv.handle_packet(now, &rx_pkt).is_ok()
                {
                    receiving = true;
                }
            }
        }
        if report.close.is_none() {
            self.link.close("far end done");
        }
        stats.jitter = self.recv.stats();
        stats.uplink = uplink.stats();
        stats.downlink = downlink.stats();
        *lock(&self.shared.stats) = stats;
        report.stats = stats;
        report
    }
}

/// A loopback UDP relay between the far end and the processor; `cut` drops every
/// packet both ways. Returns the address the far end should connect to.
async fn start_relay(server: SocketAddr, cut: Arc<AtomicBool>) -> std::io::Result<SocketAddr> {
    let front = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let back = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    back.connect(server).await?;
    let addr = front.local_addr()?;
    tokio::spawn(async move {
        let mut client: Option<SocketAddr> = None;
        let mut a = vec![0u8; 65_536];
        let mut b = vec![0u8; 65_536];
        let idle = Duration::from_secs(10);
        let mut errors = 0u32;
        loop {
            tokio::select! {
                r = front.recv_from(&mut a) => match r {
                    Ok((n, from)) => {
                        client = Some(from);
                        if !cut.load(Ordering::Acquire) {
                            let _ = back.send(&a[..n]).await;
                        }
                    }
                    Err(_) => break,
                },
                r = back.recv(&mut b) => match r {
                    Ok(n) => {
                        if let (Some(c), false) = (client, cut.load(Ordering::Acquire)) {
                            let _ = front.send_to(&b[..n], c).await;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        if errors > 100 {
                            break;
                        }
                    }
                },
                // Ends once nothing has passed for a while (the call is over).
                _ = tokio::time::sleep(idle) => break,
            }
        }
    });
    Ok(addr)
}
