//! Blocking entry points for command-line front ends (they need no tokio of their
//! own): run a processor with an echo (or listen-only) bot, run a reference peer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use media_blob::MediaSessionConfig;
use transport::{CertFingerprint, ServerTrust};

use crate::peer::{Peer, PeerConfig, PeerReport, PeerSource};
use crate::signal::SignalGenerator;
use platform::MediaPlatformSettings;
use platform::{AudioEvent, FrameDelivery, Incoming};
use platform::{Codec, MediaPlatform};

/// Attaches something to each new session's socket before its call starts (e.g. audio
/// devices: take its frames, send through its sender) and returns what must live as
/// long as the call; dropped when the call ends. An error is printed and the session
/// served without it.
pub type SessionHook =
    Arc<dyn Fn(&mut platform::AudioSocket) -> Result<Box<dyn Send>, String> + Send + Sync>;

/// What [`serve`] runs.
#[derive(Clone)]
pub struct ServeOptions {
    /// Platform settings.
    pub settings: MediaPlatformSettings,
    /// Echo every received frame back (else: listen only, send nothing).
    pub echo: bool,
    /// Graph call id of the first session (default: a fresh one).
    pub call_id: Option<uuid::Uuid>,
    /// Also write each session's blob to this file.
    pub blob_out: Option<PathBuf>,
    /// Stop after this long (default: until Ctrl-C).
    pub run_for: Option<Duration>,
    /// Stop after this many calls ended (default: never).
    pub max_calls: Option<usize>,
    /// Run for each session before its call (e.g. bind it to audio devices).
    pub on_session: Option<SessionHook>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("settings", &self.settings)
            .field("echo", &self.echo)
            .field("call_id", &self.call_id)
            .field("blob_out", &self.blob_out)
            .field("run_for", &self.run_for)
            .field("max_calls", &self.max_calls)
            .field("on_session", &self.on_session.is_some())
            .finish()
    }
}

/// A serve failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The platform failed.
    #[error(transparent)]
    Platform(#[from] platform::PlatformError),
    /// The peer failed.
    #[error(transparent)]
    Peer(#[from] crate::PeerError),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A WAV file was unusable.
    #[error(transparent)]
    Wav(#[from] media_core::wav::WavError),
}

fn rt() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Io(format!("cannot start the runtime: {e}")))
}

/// Runs a media processor with one bot session at a time: prints the blob and the
/// certificate fingerprint, serves the call (echo or listen-only), prints its events
/// and QoE, then offers a new session. Blocks until Ctrl-C, `run_for` or `max_calls`.
pub fn serve(opts: ServeOptions) -> Result<(), AppError> {
    rt()?.block_on(async move {
        let platform = MediaPlatform::start(opts.settings.clone())?;
        println!("media processor listening on {} ({})", platform.local_addr(), platform.mp_uri());
        println!("certificate fingerprint: {}", platform.certificate_fingerprint());
        let deadline = opts.run_for.map(|d| tokio::time::Instant::now() + d);
        let mut call_id = opts.call_id.unwrap_or_else(uuid::Uuid::new_v4);
        let mut ended = 0usize;
        loop {
            let delivery = if opts.echo {
                FrameDelivery::Callback(Box::new(|f, tx| {
                    let _ = tx.enqueue(&f.samples);
                }))
            } else {
                FrameDelivery::Channel(50)
            };
            let (blob, mut socket) = platform.create_media_configuration_with(call_id, delivery)?;
            let _attached = match &opts.on_session {
                Some(hook) => match hook(&mut socket) {
                    Ok(guard) => Some(guard),
                    Err(e) => {
                        eprintln!("session {call_id}: {e}; serving it without");
                        None
                    }
                },
                None => None,
            };
            let json = blob.to_json();
            println!("blob: {json}");
            if let Some(path) = &opts.blob_out {
                std::fs::write(path, &json)
                    .map_err(|e| AppError::Io(format!("{}: {e}", path.display())))?;
                println!("blob written to {}", path.display());
            }
            let mut stats = tokio::time::interval(Duration::from_secs(5));
            stats.tick().await;
            let stop = loop {
                let sleep_until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break true,
                    _ = tokio::time::sleep_until(sleep_until) => break true,
                    _ = stats.tick() => {
                        if socket.state() == platform::CallState::Connected {
                            let q = socket.qoe();
                            println!(
                                "qoe: rx {} tx {} loss {:.2} % jitter {:.2} ms rtt {:.2} ms jb target {:.0} ms",
                                q.packets_received, q.packets_sent, q.loss_pct, q.inbound_jitter_ms,
                                q.rtt_ms, q.jitter_buffer.target_delay_ms
                            );
                        }
                    }
                    incoming = socket.recv() => match incoming {
                        Some(Incoming::Event(e)) => {
                            println!("event: {e:?}");
                            if matches!(e, AudioEvent::Ended { .. } | AudioEvent::MediaStreamFailure { .. }) {
                                let q = socket.qoe();
                                println!("call ended: {q:?}");
                                break false;
                            }
                        }
                        Some(Incoming::Frame(_)) => {}
                        None => break false,
                    },
                }
            };
            if stop {
                break;
            }
            ended += 1;
            if opts.max_calls.is_some_and(|m| ended >= m) {
                break;
            }
            call_id = uuid::Uuid::new_v4();
        }
        platform.shutdown().await;
        Ok(())
    })
}

/// What [`run_peer`] does.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// The blob to join.
    pub blob: MediaSessionConfig,
    /// The processor certificate's fingerprint.
    pub fingerprint: CertFingerprint,
    /// Send this WAV file (16 kHz 16-bit) instead of the speech-like test signal.
    pub wav_in: Option<PathBuf>,
    /// Record what comes back into this WAV file.
    pub record: Option<PathBuf>,
    /// How long to send.
    pub seconds: f64,
    /// Codec to offer.
    pub codec: Codec,
}

/// What a peer run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerSummary {
    /// The codec used.
    pub codec: String,
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets received.
    pub packets_received: u64,
    /// Echo delay, if the processor echoes.
    pub echo_latency_ms: Option<f64>,
    /// Correlation of the echo with what was sent (PCM) after one alignment for the
    /// whole call. Every time-stretch or concealment of a jitter buffer on the way
    /// shifts the rest of the echo, so this drops on an intact echo too; see
    /// `echo_segments_matched_pct`.
    pub echo_correlation: Option<f64>,
    /// Of the 250 ms segments where the sent signal is not silent (above −45 dBFS),
    /// the share whose echo, aligned segment by segment, correlates ≥ 0.9 with what
    /// was sent (PCM), in percent.
    pub echo_segments_matched_pct: Option<f64>,
    /// Samples the peer's jitter buffer inserted or removed to change its delay.
    pub stretched_samples: u64,
    /// Correlation of the per-20 ms envelopes (any codec).
    pub echo_envelope_correlation: Option<f64>,
    /// Concealed samples in the peer's jitter buffer.
    pub concealed_samples: u64,
    /// The peer's jitter-buffer target delay at the end, ms.
    pub jitter_buffer_target_ms: f64,
    /// RTT, ms.
    pub rtt_ms: f64,
    /// Why the connection ended, if the processor ended it.
    pub close: Option<String>,
}

/// Share (percent) of the non-silent 250 ms segments of what was sent whose echo
/// correlates ≥ 0.9, each segment aligned on its own; `None` without such segments.
fn segments_matched_pct(report: &PeerReport, delay: Duration, span: Duration) -> Option<f64> {
    let segments = report.echo_segment_correlations(delay, span);
    let voiced: Vec<f64> = segments
        .iter()
        .zip(report.sent.chunks_exact(crate::peer::ECHO_SEGMENT))
        .filter(|(_, sent)| media_core::frame::rms_dbfs(sent) > -45.0)
        .map(|(&c, _)| c)
        .collect();
    if voiced.is_empty() {
        return None;
    }
    let matched = voiced.iter().filter(|&&c| c >= 0.9).count();
    Some(100.0 * matched as f64 / voiced.len() as f64)
}

/// Connects a reference peer to the blob's processor, sends for `seconds`, records,
/// and measures the echo. Blocks.
pub fn run_peer(opts: PeerOptions) -> Result<PeerSummary, AppError> {
    let source = match &opts.wav_in {
        Some(p) => PeerSource::Samples(Arc::from(media_core::wav::read_mono_16k(p)?)),
        None => PeerSource::Signal(SignalGenerator::speech(1)),
    };
    let mut cfg = PeerConfig::new(ServerTrust::pinned(opts.fingerprint));
    cfg.codecs = vec![opts.codec];
    cfg.source = source;
    // A measuring instrument: a fixed 60 ms playout that does not time-stretch.
    cfg.receive = crate::peer::measuring_receive_config(Duration::from_millis(60));
    cfg.send_for = Duration::from_secs_f64(opts.seconds);
    cfg.run_for = Duration::from_secs_f64(opts.seconds + 1.0);
    let report = rt()?.block_on(async {
        let peer = Peer::connect(&opts.blob, cfg).await?;
        Ok::<_, AppError>(peer.finish().await)
    })?;
    if let Some(path) = &opts.record {
        media_core::wav::write_mono_16k(path, &report.received)?;
    }
    let span = Duration::from_secs_f64(opts.seconds);
    let delay = report.echo_delay(Duration::from_secs(1));
    Ok(PeerSummary {
        codec: opts.codec.to_string(),
        packets_sent: report.stats.packets_sent,
        packets_received: report.stats.packets_received,
        echo_latency_ms: delay.map(|d| d.as_secs_f64() * 1000.0),
        echo_correlation: delay.map(|d| report.echo_correlation(d, span)),
        echo_segments_matched_pct: delay.and_then(|d| segments_matched_pct(&report, d, span)),
        stretched_samples: report.stats.jitter.inserted_samples_for_deceleration
            + report.stats.jitter.removed_samples_for_acceleration,
        echo_envelope_correlation: delay.map(|d| report.echo_envelope_correlation(d, span)),
        concealed_samples: report.stats.jitter.concealed_samples,
        jitter_buffer_target_ms: report.stats.jitter.target_delay_ms,
        rtt_ms: report
            .stats
            .link
            .rtt
            .map_or(0.0, |r| r.as_secs_f64() * 1000.0),
        close: report.close.map(|c| c.to_string()),
    })
}
