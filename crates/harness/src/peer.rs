//! The reference far end of a call: connects to a processor named by a blob, sends a
//! WAV file or a test signal paced at 50 frames/s, and records what comes back.
//!
//! ```text
//!  source (SignalGenerator | WAV samples) --20 ms tick--> SendPipeline --> datagram (render stream)
//!  datagrams (source stream) --> ReceivePipeline.handle_packet(arrival) ; poll_frame each tick --> recording
//! ```
//!
//! The sent and the received recordings share one timeline (one frame each per tick
//! from the first tick; silence until the first packet arrives), so the lag between
//! them is the mouth-to-ear echo delay through the processor.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use media_blob::MediaSessionConfig;
use media_core::codec::{OpusConfig, new_decoder};
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::jitter::JitterStats;
use media_core::packet::AudioPacket;
use media_core::playout::{ReceiveConfig, ReceivePipeline};
use media_core::send::{SendConfig, SendPipeline};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use transport::wire::{Codec, ControlMessage, Dtmf, DtmfTone, Flags, Join, StreamDirection};
use transport::{
    ClientConfig, CloseReason, ConnectError, LinkStats, MediaClient, MediaSender, ServerTrust,
    TransportSettings,
};

use crate::signal::{self, SignalGenerator};
use platform::call::{TICK, fill_packet, flush_send};
use platform::health::{LATE_TICK, LoadMeter};

/// What the peer sends.
#[derive(Debug, Clone)]
pub enum PeerSource {
    /// A generated signal.
    Signal(SignalGenerator),
    /// Recorded samples (16 kHz mono), e.g. from a WAV file; played once.
    Samples(Arc<[i16]>),
    /// Samples played in a loop (cheap to share between many peers).
    Loop(Arc<[i16]>),
}

/// Settings of a [`Peer`].
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// How to trust the processor's certificate.
    pub trust: ServerTrust,
    /// Codecs offered, most preferred first.
    pub codecs: Vec<Codec>,
    /// What to send.
    pub source: PeerSource,
    /// How long the source plays (then silence frames keep the stream running).
    pub send_for: Duration,
    /// How long the peer stays in the call before leaving by itself.
    pub run_for: Duration,
    /// Record the sent and received audio into the report.
    pub record: bool,
    /// Log every received packet's sequence number and arrival time.
    pub log_arrivals: bool,
    /// Opus encoder settings.
    pub opus: OpusConfig,
    /// Receive pipeline settings.
    pub receive: ReceiveConfig,
    /// QUIC settings.
    pub transport: TransportSettings,
    /// Local UDP address (default: an ephemeral port on the server's family).
    pub bind: Option<SocketAddr>,
    /// Tick accounting shared by many peers (load tool).
    pub meter: Option<Arc<LoadMeter>>,
}

/// Samples per segment of [`PeerReport::echo_segment_correlations`] (250 ms).
pub const ECHO_SEGMENT: usize = 4_000;

/// A receive configuration for measuring an echo: the jitter buffer holds a fixed
/// `delay` and does not time-stretch (a long minimum-transit window, a large accelerate
/// hysteresis, 40 ms of expand tolerance), so what the peer records stays
/// sample-aligned with what it sent unless packets are really late or lost. The
/// default adaptive buffer would start at 80 ms and accelerate down to a few
/// milliseconds on loopback, cutting 60 ms out of the echo it measures.
pub fn measuring_receive_config(delay: Duration) -> ReceiveConfig {
    ReceiveConfig {
        jitter: media_core::jitter::JitterConfig {
            start_delay: delay,
            min_delay: delay,
            window: Duration::from_secs(60),
            accelerate_hysteresis: Duration::from_secs(1),
            expand_tolerance: Duration::from_millis(40),
            ..Default::default()
        },
        ..ReceiveConfig::default()
    }
}

impl PeerConfig {
    /// A peer trusting `trust` that offers PCM, sends 5 s of the speech-like signal,
    /// stays 6 s and records.
    pub fn new(trust: ServerTrust) -> Self {
        Self {
            trust,
            codecs: vec![Codec::Pcm16k],
            source: PeerSource::Signal(SignalGenerator::speech(1)),
            send_for: Duration::from_secs(5),
            run_for: Duration::from_secs(6),
            record: true,
            log_arrivals: false,
            opus: OpusConfig::default(),
            receive: ReceiveConfig::default(),
            transport: TransportSettings::default(),
            bind: None,
            meter: None,
        }
    }
}

/// Why a peer could not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The blob's `mpUri` does not resolve to an address.
    #[error("cannot resolve mpUri host {0}")]
    Resolve(String),
    /// The blob has no audio contexts to join with.
    #[error("the blob has no audio contexts")]
    NoContexts,
    /// Connecting or joining failed (rejected, certificate, timeout).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The codec pipelines could not be created.
    #[error("pipeline setup failed: {0}")]
    Pipeline(String),
}

/// One received packet, as logged with [`PeerConfig::log_arrivals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Sequence number.
    pub seq: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Arrival time since the peer's first tick.
    pub at: Duration,
    /// The packet was flagged silent.
    pub silence: bool,
}

/// Counters of a peer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeerStats {
    /// Media packets sent.
    pub packets_sent: u64,
    /// Media packets received from the processor.
    pub packets_received: u64,
    /// Ticks run.
    pub ticks: u64,
    /// Ticks that started more than 5 ms late.
    pub late_ticks: u64,
    /// Jitter buffer statistics of the receive side.
    pub jitter: JitterStats,
    /// Transport counters.
    pub link: LinkStats,
}

/// What a peer sent, received and measured.
#[derive(Debug, Clone, Default)]
pub struct PeerReport {
    /// The codec of the call.
    pub codec: Option<Codec>,
    /// Audio sent, one frame per tick from the first tick.
    pub sent: Vec<i16>,
    /// Audio received (jitter-buffer output), one frame per tick from the first tick.
    pub received: Vec<i16>,
    /// Received packets (with [`PeerConfig::log_arrivals`]).
    pub arrivals: Vec<Arrival>,
    /// Final counters.
    pub stats: PeerStats,
    /// Why the connection ended (`None`: the peer left by itself).
    pub close: Option<CloseReason>,
}

impl PeerReport {
    /// Delay of the echo (received vs sent), searched up to `max`.
    pub fn echo_delay(&self, max: Duration) -> Option<Duration> {
        let max_lag = (max.as_secs_f64() * 16_000.0) as usize;
        signal::find_delay(&self.sent, &self.received, max_lag)
            .map(|lag| Duration::from_secs_f64(lag as f64 / 16_000.0))
    }

    /// Correlation of the echo with the sent audio after aligning by
    /// [`echo_delay`](Self::echo_delay), over the first `span` of the sent audio.
    pub fn echo_correlation(&self, delay: Duration, span: Duration) -> f64 {
        let (lag, n) = self.lag_span(delay, span);
        signal::correlation_at(&self.sent[..n], &self.received, lag)
    }

    /// Correlation of the per-20 ms RMS envelopes, aligned by `delay`.
    pub fn echo_envelope_correlation(&self, delay: Duration, span: Duration) -> f64 {
        let (lag, n) = self.lag_span(delay, span);
        signal::envelope_correlation(&self.sent[..n], &self.received, lag)
    }

    /// Correlations of the echo per 250 ms segment, each segment aligned on its own
    /// within ±100 ms of `delay` (see [`signal::segment_correlations`]), over the first
    /// `span`.
    pub fn echo_segment_correlations(&self, delay: Duration, span: Duration) -> Vec<f64> {
        let (lag, n) = self.lag_span(delay, span);
        signal::segment_correlations(&self.sent[..n], &self.received, ECHO_SEGMENT, lag, 1_600)
    }

    fn lag_span(&self, delay: Duration, span: Duration) -> (usize, usize) {
        let lag = (delay.as_secs_f64() * 16_000.0).round() as usize;
        let n = ((span.as_secs_f64() * 16_000.0) as usize)
            .min(self.sent.len())
            .min(self.received.len().saturating_sub(lag));
        (lag, n)
    }
}

#[derive(Debug, Default)]
struct PeerShared {
    stats: Mutex<PeerStats>,
}

/// The reference far end of one call. See the [module documentation](self).
#[derive(Debug)]
pub struct Peer {
    codec: Codec,
    link: MediaSender,
    control: mpsc::UnboundedReceiver<ControlMessage>,
    shared: Arc<PeerShared>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<PeerReport>,
}

/// Copies the next 20 ms of `samples` from `*pos` into `frame` and advances `*pos`;
/// `looped` starts over when less than a frame is left, else the end is zero-padded.
pub(crate) fn next_frame(
    samples: &[i16],
    pos: &mut usize,
    looped: bool,
    frame: &mut [i16; FRAME_SAMPLES],
) {
    if looped && *pos + FRAME_SAMPLES > samples.len() {
        *pos = 0;
    }
    let n = FRAME_SAMPLES.min(samples.len().saturating_sub(*pos));
    frame[..n].copy_from_slice(&samples[*pos..*pos + n]);
    frame[n..].fill(0);
    *pos += n;
}

/// The join a peer sends for `blob` offering `codecs`.
pub fn join_for(blob: &MediaSessionConfig, codecs: Vec<Codec>) -> Join {
    let ids = |l: &media_blob::ContextList| -> Vec<uuid::Uuid> {
        l.iter().flatten().flatten().copied().collect()
    };
    let mut join = Join::new(
        blob.session_id(),
        blob.call_id().unwrap_or_default(),
        ids(&blob.audio_source_contexts),
        ids(&blob.audio_render_contexts),
    );
    join.codecs = codecs;
    join
}

/// Resolves the blob's `mpUri` to a socket address.
pub fn resolve_mp_uri(blob: &MediaSessionConfig) -> Result<SocketAddr, PeerError> {
    let uri = blob.mp_uri();
    if let Some(ip) = uri.ip() {
        return Ok(SocketAddr::new(ip, uri.port()));
    }
    (uri.host(), uri.port())
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| PeerError::Resolve(uri.host().to_string()))
}

impl Peer {
    /// Connects to the processor named by `blob` and joins its session.
    pub async fn connect(blob: &MediaSessionConfig, config: PeerConfig) -> Result<Peer, PeerError> {
        let server = resolve_mp_uri(blob)?;
        let join = join_for(blob, config.codecs.clone());
        Self::connect_join(server, join, config).await
    }

    /// Connects to `server` with an explicit `join`.
    pub async fn connect_join(
        server: SocketAddr,
        join: Join,
        config: PeerConfig,
    ) -> Result<Peer, PeerError> {
        if join.context_count() == 0 {
            return Err(PeerError::NoContexts);
        }
        let mut cc = ClientConfig::new(server, config.trust.clone());
        cc.settings = config.transport.clone();
        cc.bind = config.bind;
        let conn = MediaClient::connect(cc, join).await?;
        let codec = conn.accept().codec;
        let kind = codec;
        let stream = |dir| {
            conn.accept()
                .streams
                .iter()
                .find(|s| s.direction == dir)
                .map(|s| s.stream_id)
        };
        // The processor receives on render streams and sends on source streams.
        let send_stream = stream(StreamDirection::Render);
        let recv_stream = stream(StreamDirection::Source);
        let send = SendPipeline::new(&SendConfig {
            codec: kind,
            opus: config.opus,
            queue_frames: 4,
            ..SendConfig::default()
        })
        .map_err(|e| PeerError::Pipeline(e.to_string()))?;
        let decoder = new_decoder(kind).map_err(|e| PeerError::Pipeline(e.to_string()))?;
        let recv = ReceivePipeline::new(config.receive, decoder);
        let (link, datagrams, control_rx) = conn.split();
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(PeerShared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let run = PeerRun {
            config,
            codec,
            link: link.clone(),
            send,
            recv,
            send_stream,
            recv_stream,
            shared: shared.clone(),
            stop: stop.clone(),
            ctl_tx,
        };
        let task = tokio::spawn(run.run(datagrams, control_rx));
        Ok(Peer {
            codec,
            link,
            control: ctl_rx,
            shared,
            stop,
            task,
        })
    }

    /// The codec the processor chose.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The raw sending half (control messages, hand-made datagrams).
    pub fn link(&self) -> &MediaSender {
        &self.link
    }

    /// Sends a DTMF tone to the processor.
    pub fn send_dtmf(&self, tone: DtmfTone, duration_ms: u32) -> Result<(), transport::SendError> {
        self.link.send_control(&ControlMessage::Dtmf(Dtmf {
            tone,
            stream_id: 0,
            duration_ms,
        }))
    }

    /// Sends any control message.
    pub fn send_control(&self, msg: &ControlMessage) -> Result<(), transport::SendError> {
        self.link.send_control(msg)
    }

    /// The next control message from the processor.
    pub async fn next_control(&mut self) -> Option<ControlMessage> {
        self.control.recv().await
    }

    /// A control message from the processor if one is waiting.
    pub fn try_next_control(&mut self) -> Option<ControlMessage> {
        self.control.try_recv().ok()
    }

    /// Live counters (refreshed every second).
    pub fn stats(&self) -> PeerStats {
        self.shared.stats.lock().map(|g| *g).unwrap_or_default()
    }

    /// Ends the run early (the peer leaves at its next tick).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Waits for the run to end (after `run_for`, `stop`, or when the processor
    /// closes) and returns the report.
    pub async fn finish(self) -> PeerReport {
        self.task.await.unwrap_or_default()
    }

    /// Leaves now and returns the report.
    pub async fn leave(self) -> PeerReport {
        self.stop();
        self.finish().await
    }
}

struct PeerRun {
    config: PeerConfig,
    codec: Codec,
    link: MediaSender,
    send: SendPipeline,
    recv: ReceivePipeline,
    send_stream: Option<u32>,
    recv_stream: Option<u32>,
    shared: Arc<PeerShared>,
    stop: Arc<AtomicBool>,
    ctl_tx: mpsc::UnboundedSender<ControlMessage>,
}

impl PeerRun {
    async fn run(
        mut self,
        mut datagrams: mpsc::Receiver<transport::MediaDatagram>,
        mut control: mpsc::Receiver<ControlMessage>,
    ) -> PeerReport {
        let run_ticks = (self.config.run_for.as_millis() / TICK.as_millis()) as u64;
        let send_ticks = (self.config.send_for.as_millis() / TICK.as_millis()) as u64;
        let cap = if self.config.record {
            run_ticks as usize * FRAME_SAMPLES
        } else {
            0
        };
        let mut report = PeerReport {
            codec: Some(self.codec),
            sent: Vec::with_capacity(cap),
            received: Vec::with_capacity(cap),
            arrivals: Vec::with_capacity(if self.config.log_arrivals {
                run_ticks as usize + 16
            } else {
                0
            }),
            ..PeerReport::default()
        };
        let mut stats = PeerStats::default();
        let looped = matches!(self.config.source, PeerSource::Loop(_));
        let mut samples = match &self.config.source {
            PeerSource::Samples(s) | PeerSource::Loop(s) => Some((s.clone(), 0usize)),
            PeerSource::Signal(_) => None,
        };
        let mut generator = match &self.config.source {
            PeerSource::Signal(g) => Some(g.clone()),
            _ => None,
        };
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut out = Pcm16kFrame::silent();
        let mut tx_pkt = AudioPacket::empty(self.codec);
        let mut rx_pkt = AudioPacket::empty(self.codec);
        let mut first = true;
        let mut receiving = false;
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let t0 = Instant::now();
        let mut tick: u64 = 0;
        loop {
            let scheduled = interval.tick().await.into_std();
            let start = Instant::now();
            let late = start.saturating_duration_since(scheduled) > LATE_TICK;
            if self.stop.load(Ordering::Acquire) || tick >= run_ticks {
                self.link.close("peer done");
                break;
            }
            if let Some(reason) = self.link.close_reason() {
                report.close = Some(reason);
                break;
            }
            while let Ok(m) = control.try_recv() {
                let _ = self.ctl_tx.send(m);
            }
            // Send one frame.
            if tick < send_ticks {
                if let Some(g) = generator.as_mut() {
                    g.fill(&mut frame);
                } else if let Some((s, pos)) = samples.as_mut() {
                    next_frame(s, pos, looped, &mut frame);
                }
            } else {
                frame.fill(0);
            }
            if self.config.record {
                report.sent.extend_from_slice(&frame);
            }
            if let Some(stream) = self.send_stream
                && self
                    .send
                    .push_pcm16k_frame(&Pcm16kFrame::new(frame))
                    .is_ok()
            {
                stats.packets_sent += flush_send(
                    &mut self.send,
                    &mut tx_pkt,
                    |h, p| self.link.send_datagram(h, p).is_ok(),
                    stream,
                    &mut first,
                );
            }
            // Receive.
            while let Ok(d) = datagrams.try_recv() {
                if Some(d.header.stream_id) != self.recv_stream {
                    continue;
                }
                stats.packets_received += 1;
                if self.config.log_arrivals {
                    report.arrivals.push(Arrival {
                        seq: d.header.sequence,
                        timestamp: d.header.timestamp,
                        at: d.received_at.saturating_duration_since(t0),
                        silence: d.header.flags.contains(Flags::SILENCE),
                    });
                }
                if fill_packet(&mut rx_pkt, &d.header, &d.payload)
                    && self.recv.handle_packet(d.received_at, &rx_pkt).is_ok()
                {
                    receiving = true;
                }
            }
            if receiving {
                self.recv.poll_frame(scheduled, &mut out);
            } else {
                out = Pcm16kFrame::silent();
            }
            if self.config.record {
                report.received.extend_from_slice(out.samples());
            }
            tick += 1;
            stats.ticks += 1;
            if late {
                stats.late_ticks += 1;
            }
            if let Some(m) = &self.config.meter {
                m.record_tick(start.elapsed(), late);
            }
            if tick.is_multiple_of(50) {
                stats.jitter = self.recv.stats();
                stats.link = self.link.stats();
                if let Ok(mut g) = self.shared.stats.lock() {
                    *g = stats;
                }
            }
        }
        stats.jitter = self.recv.stats();
        stats.link = self.link.stats();
        if let Ok(mut g) = self.shared.stats.lock() {
            *g = stats;
        }
        report.stats = stats;
        report
    }
}
