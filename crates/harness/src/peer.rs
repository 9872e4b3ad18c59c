//! The reference far end of a call: [`Peer`]. It joins the processor named by a blob,
//! sends a WAV file or a test signal paced at 50 frames/s, and records what comes back.
//!
//! ```text
//!  Peer (async handle) ──commands──> FarCall on its ReactorClient's thread ══QUIC══> processor
//!       <──events, live stats, report──┘
//! ```
//!
//! The call itself is a `FarCall` (`farcall.rs`: media-core's `CallMedia`) run by
//! a reactor thread of the peer's own [`ReactorClient`]; this handle only talks to it
//! through channels. With [`PeerConfig::via_relay`] the peer's packets pass a
//! [`UdpRelay`] that [`Peer::cut_network`] can silence.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use media_blob::MediaSessionConfig;
use media_core::call::{AudioEvent, CallConfig, FrameSource};
use media_core::codec::{Codec, OpusConfig};
use media_core::control::{Control, DtmfTone};
use media_core::link::{CallHandler, CloseReason};
use media_core::packet::AudioPacket;
use media_core::playout::ReceiveConfig;
use tokio::sync::{mpsc, oneshot};
use transport::reactor::{Dialer, NewCall, ReactorClient};
use transport::wire::Join;
use transport::{ClientConfig, ConnectError, ServerTrust, TransportError, TransportSettings};

pub use crate::farcall::{Arrival, PeerSource, PeerStats};
use crate::farcall::{
    FarCall, FarCommand, FarOptions, FarShared, Leaving, Recording, SourceFrames,
};
use crate::lock;
use crate::relay::UdpRelay;
use crate::signal::{self, SignalGenerator};

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
    /// Route the packets through a loopback UDP relay ([`Peer::cut_network`]).
    pub via_relay: bool,
}

/// Samples per segment of [`PeerReport::echo_segment_correlations`] (250 ms).
pub const ECHO_SEGMENT: usize = 4_000;

/// How far (samples, either way) [`PeerReport::echo_segment_correlations`] searches each
/// segment around the lag followed (200 ms): beyond the largest single step a path
/// makes by design, a device ring's one-time slip onto its target after a start (up to
/// its 120 ms `max_excess`), so such a step does not lose the timeline.
pub const ECHO_SEARCH: usize = 3_200;

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
            via_relay: false,
        }
    }
}

/// Why a peer could not join.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The blob's `mpUri` does not resolve to an address.
    #[error("cannot resolve mpUri host {0}")]
    Resolve(String),
    /// The blob has no audio contexts to join with.
    #[error("the blob has no audio contexts")]
    NoContexts,
    /// The peer's socket, relay or reactor thread could not start.
    #[error("cannot start the peer: {0}")]
    Setup(#[from] TransportError),
    /// The relay could not start.
    #[error("cannot start the relay: {0}")]
    Relay(std::io::Error),
    /// Connecting or joining failed (rejected, certificate, timeout).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The call's media could not be set up.
    #[error("cannot set up the call's media: {0}")]
    Media(String),
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
    /// Why the call ended (`None`: the peer left by itself).
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
    /// within ±[`ECHO_SEARCH`] of the lag followed from `delay` (see
    /// [`signal::segment_correlations`]), over the first `span`.
    pub fn echo_segment_correlations(&self, delay: Duration, span: Duration) -> Vec<f64> {
        let (lag, n) = self.lag_span(delay, span);
        signal::segment_correlations(
            &self.sent[..n],
            &self.received,
            ECHO_SEGMENT,
            lag,
            ECHO_SEARCH,
        )
    }

    /// Of the 250 ms segments where the sent signal is not silent (above −45 dBFS),
    /// the share (percent) whose echo, each segment aligned on its own, correlates
    /// ≥ 0.9 with what was sent; `None` without such segments.
    pub fn voiced_segments_matched_pct(&self, delay: Duration, span: Duration) -> Option<f64> {
        let segments = self.echo_segment_correlations(delay, span);
        let voiced: Vec<f64> = segments
            .iter()
            .zip(self.sent.chunks_exact(ECHO_SEGMENT))
            .filter(|(_, sent)| media_core::frame::rms_dbfs(sent) > -45.0)
            .map(|(&c, _)| c)
            .collect();
        if voiced.is_empty() {
            return None;
        }
        let matched = voiced.iter().filter(|&&c| c >= 0.9).count();
        Some(100.0 * matched as f64 / voiced.len() as f64)
    }

    /// The median, over the 1 s segments where the sent signal is not silent, of each
    /// segment's envelope correlation with its echo, each aligned on its own within
    /// ±500 ms of the lag followed from `delay` (see
    /// [`signal::segment_envelope_correlations`]), over the first `span`; `None` without
    /// such segments. The measure for a path that resamples to follow a clock or slips
    /// (audio devices), where the waveform of 250 ms segments cannot be expected to hold.
    pub fn echo_envelope_segments_median(&self, delay: Duration, span: Duration) -> Option<f64> {
        let (lag, n) = self.lag_span(delay, span);
        signal::median(&signal::segment_envelope_correlations(
            &self.sent[..n],
            &self.received,
            lag,
            8_000,
        ))
    }

    fn lag_span(&self, delay: Duration, span: Duration) -> (usize, usize) {
        let lag = (delay.as_secs_f64() * 16_000.0).round() as usize;
        let n = ((span.as_secs_f64() * 16_000.0) as usize)
            .min(self.sent.len())
            .min(self.received.len().saturating_sub(lag));
        (lag, n)
    }
}

/// The join a far end sends for `blob` offering `codecs`.
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

/// The local address to dial `server` from: any port of its family's loopback or
/// wildcard.
pub(crate) fn local_for(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(a) if a.ip().is_loopback() => SocketAddr::from(([127, 0, 0, 1], 0)),
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    }
}

/// Hands the prepared far-end call to the reactor once the processor admits it.
pub(crate) struct FarDialer {
    pub(crate) opts: FarOptions,
    pub(crate) source: Box<dyn FrameSource>,
    pub(crate) ready: Option<oneshot::Sender<Result<Codec, PeerError>>>,
}

impl FarDialer {
    /// The call the processor accepted, in its codec; or, when its media cannot be set
    /// up, a call that leaves at once. Whoever waits for the outcome hears it.
    pub(crate) fn start(self, call: &NewCall<'_>) -> Result<FarCall, Leaving> {
        let FarDialer {
            mut opts,
            source,
            ready,
        } = self;
        opts.config.codec = call.accept.codec;
        // The unmixed streams granted: this side sends them.
        opts.config.streams =
            media_core::call::AudioStreams::mixed_and_unmixed(call.accept.unmixed);
        if let Some(v) = &opts.voices {
            lock(v).mixed = call.accept.mixed;
            if !call.accept.mixed {
                opts.config.pacer.idle = media_core::call::IdlePolicy::Pause;
            }
        }
        match FarCall::new(call.now, opts, source) {
            Ok(far) => {
                if let Some(r) = ready {
                    let _ = r.send(Ok(far.codec()));
                }
                Ok(far)
            }
            Err(e) => {
                let reason = e.to_string();
                if let Some(r) = ready {
                    let _ = r.send(Err(PeerError::Media(reason.clone())));
                }
                Err(Leaving {
                    reason,
                    at: call.now,
                })
            }
        }
    }
}

impl Dialer for FarDialer {
    fn accepted(self: Box<Self>, call: NewCall<'_>) -> Box<dyn CallHandler> {
        match self.start(&call) {
            Ok(far) => Box::new(far),
            Err(leaving) => Box::new(leaving),
        }
    }

    fn failed(self: Box<Self>, error: ConnectError) {
        tracing::debug!(%error, "far end could not join");
        self.opts
            .shared
            .state
            .store(crate::farcall::FAILED, Ordering::Release);
        if let Some(r) = self.ready {
            let _ = r.send(Err(PeerError::Connect(error)));
        }
    }
}

/// The reference far end of one call. See the [module documentation](self).
#[derive(Debug)]
pub struct Peer {
    codec: Codec,
    commands: crossbeam_channel::Sender<FarCommand>,
    events: mpsc::UnboundedReceiver<AudioEvent>,
    shared: Arc<FarShared>,
    sent: Arc<Mutex<Vec<i16>>>,
    done: oneshot::Receiver<Recording>,
    relay: Option<UdpRelay>,
    client: ReactorClient,
}

impl Peer {
    /// Joins the session of `blob` at the processor its `mpUri` names.
    pub async fn connect(blob: &MediaSessionConfig, config: PeerConfig) -> Result<Peer, PeerError> {
        let server = resolve_mp_uri(blob)?;
        let join = join_for(blob, config.codecs.clone());
        Self::connect_join(server, join, config).await
    }

    /// Joins with an explicit `join` at `server`.
    pub async fn connect_join(
        server: SocketAddr,
        join: Join,
        config: PeerConfig,
    ) -> Result<Peer, PeerError> {
        if join.context_count() == 0 {
            return Err(PeerError::NoContexts);
        }
        let relay = match config.via_relay {
            true => Some(UdpRelay::start(server).await.map_err(PeerError::Relay)?),
            false => None,
        };
        let target = relay.as_ref().map_or(server, UdpRelay::address);
        let client = ReactorClient::bind(local_for(target), &config.transport)?;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let source = SourceFrames::new(
            config.source.clone(),
            config.send_for,
            config.record.then(|| sent.clone()),
        );
        let shared = Arc::new(FarShared::default());
        let (commands_tx, commands_rx) = crossbeam_channel::bounded(256);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let opts = FarOptions {
            config: CallConfig {
                opus: config.opus,
                receive: config.receive,
                ..CallConfig::new(Codec::Pcm16k)
            },
            record: config.record,
            log_arrivals: config.log_arrivals,
            run_ticks: Some((config.run_for.as_millis() / 20) as u64),
            shared: shared.clone(),
            commands: Some(commands_rx),
            events: Some(events_tx),
            done: Some(done_tx),
            voices: None,
        };
        let mut cc = ClientConfig::new(target, config.trust.clone());
        cc.settings = config.transport.clone();
        let dialer = FarDialer {
            opts,
            source: Box::new(source),
            ready: Some(ready_tx),
        };
        client.connect(&cc, join, Box::new(dialer))?;
        let codec = ready_rx
            .await
            .map_err(|_| PeerError::Connect(ConnectError::Timeout))??;
        Ok(Peer {
            codec,
            commands: commands_tx,
            events: events_rx,
            shared,
            sent,
            done: done_rx,
            relay,
            client,
        })
    }

    /// The codec the processor chose.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Sends a DTMF tone to the processor (on the call's next tick).
    pub fn send_dtmf(&self, tone: DtmfTone, duration_ms: u32) -> Result<(), PeerError> {
        self.send_control(Control::Dtmf { tone, duration_ms })
    }

    /// Sends a control message (on the call's next tick).
    pub fn send_control(&self, control: Control) -> Result<(), PeerError> {
        self.command(FarCommand::Control(control))
    }

    /// Sends `packet` as it is, whatever its codec, sequence number or timestamp (for
    /// tests that need nonsense on the wire).
    pub fn inject(&self, packet: AudioPacket) -> Result<(), PeerError> {
        self.command(FarCommand::Inject(Box::new(packet)))
    }

    fn command(&self, c: FarCommand) -> Result<(), PeerError> {
        self.commands
            .try_send(c)
            .map_err(|_| PeerError::Connect(ConnectError::Protocol("the call has ended".into())))
    }

    /// The next event of the call (DTMF, speakers, the processor's reports, the end).
    pub async fn next_event(&mut self) -> Option<AudioEvent> {
        self.events.recv().await
    }

    /// An event if one is waiting.
    pub fn try_next_event(&mut self) -> Option<AudioEvent> {
        self.events.try_recv().ok()
    }

    /// Live counters (refreshed every second).
    pub fn stats(&self) -> PeerStats {
        *lock(&self.shared.stats)
    }

    /// True while the call runs.
    pub fn is_connected(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) == crate::farcall::CONNECTED
    }

    /// Silences the relay (needs [`PeerConfig::via_relay`]): from now on no packet passes
    /// either way, as if the peer had vanished. False without a relay.
    pub fn cut_network(&self) -> bool {
        self.relay.as_ref().map(UdpRelay::cut).is_some()
    }

    /// Ends the run early (the peer leaves at its next tick).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }

    /// Waits for the call to end (after `run_for`, `stop`, or when the processor
    /// closes) and returns the report.
    pub async fn finish(self) -> PeerReport {
        let Peer {
            codec,
            sent,
            done,
            client,
            ..
        } = self;
        let rec = done.await.unwrap_or_default();
        // The client's thread lets the connection drain (up to a second): not here.
        std::thread::spawn(move || client.shutdown());
        let sent = std::mem::take(&mut *lock(&sent));
        PeerReport {
            codec: Some(codec),
            sent,
            received: rec.received,
            arrivals: rec.arrivals,
            stats: rec.stats,
            close: rec.close,
        }
    }

    /// Leaves now and returns the report.
    pub async fn leave(self) -> PeerReport {
        self.stop();
        self.finish().await
    }
}
