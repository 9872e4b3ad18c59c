//! `media-processor peer`: the reference far end. Joins the session a blob names,
//! sends a WAV file or a speech-like test signal at 50 frames/s, records what comes
//! back and reports the echo latency and quality.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use harness::peer::{Peer, PeerConfig, PeerSource, measuring_receive_config};
use harness::signal::SignalGenerator;
use media_blob::MediaSessionConfig;
use platform::{CertFingerprint, Codec, ServerTrust};

/// Arguments of `media-processor peer`.
#[derive(Debug, clap::Args)]
pub struct PeerArgs {
    /// The blob: a file containing it, or the JSON itself.
    #[arg(long)]
    pub blob: String,
    /// SHA-256 fingerprint of the processor's certificate (`AB:CD:...`), as `serve`
    /// prints it.
    #[arg(long)]
    pub fingerprint: CertFingerprint,
    /// Send this WAV file (16 kHz 16-bit) instead of the test signal.
    #[arg(long)]
    pub wav: Option<PathBuf>,
    /// Record the received audio into this WAV file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Seconds to send.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Codec to offer: pcm or opus.
    #[arg(long, default_value = "pcm", value_parser = crate::cmd_serve::parse_codec)]
    pub codec: Codec,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Reads the blob from a file or the argument itself.
pub fn load_blob(arg: &str) -> anyhow::Result<MediaSessionConfig> {
    let text = if arg.trim_start().starts_with('{') {
        arg.to_string()
    } else {
        std::fs::read_to_string(arg).with_context(|| format!("--blob {arg}"))?
    };
    MediaSessionConfig::parse(text.trim()).context("--blob")
}

/// Runs the peer.
pub fn run(args: &PeerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.seconds.is_finite() && args.seconds > 0.0,
        "--seconds must be positive"
    );
    let summary = run_peer(PeerOptions {
        blob: load_blob(&args.blob)?,
        fingerprint: args.fingerprint,
        wav_in: args.wav.clone(),
        record: args.record.clone(),
        seconds: args.seconds,
        codec: args.codec,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!("codec:            {}", summary.codec);
    println!("packets sent:     {}", summary.packets_sent);
    println!("packets received: {}", summary.packets_received);
    match summary.echo_latency_ms {
        Some(ms) => println!("echo latency:     {ms:.1} ms"),
        None => println!("echo latency:     no echo found"),
    }
    if let Some(c) = summary.echo_correlation {
        println!(
            "echo correlation: {c:.4} (waveform), {:.4} (20 ms envelope)",
            summary.echo_envelope_correlation.unwrap_or(0.0)
        );
    }
    if let Some(pct) = summary.echo_segments_matched_pct {
        println!("echo segments:    {pct:.0} % of the non-silent 250 ms segments correlate >= 0.9");
    }
    if let Some(m) = summary.echo_segment_envelope_median {
        println!("echo envelope:    {m:.3} (median over 1 s segments)");
    }
    println!("concealed:        {} samples", summary.concealed_samples);
    println!("time-stretched:   {} samples", summary.stretched_samples);
    println!(
        "jitter buffer:    {:.0} ms target",
        summary.jitter_buffer_target_ms
    );
    println!("rtt:              {:.2} ms", summary.rtt_ms);
    if let Some(c) = &summary.close {
        println!("ended by processor: {c}");
    }
    if let Some(p) = &args.record {
        println!("recorded to {}", p.display());
    }
    Ok(())
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
    /// Median over the non-silent 1 s segments of each one's envelope correlation with
    /// its echo, aligned segment by segment: holds through a device's drift-following
    /// resampling and slips, where `echo_segments_matched_pct` does not.
    pub echo_segment_envelope_median: Option<f64>,
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

/// Connects a reference peer to the blob's processor, sends for `seconds`, records,
/// and measures the echo. Blocks.
pub fn run_peer(opts: PeerOptions) -> anyhow::Result<PeerSummary> {
    let source = match &opts.wav_in {
        Some(p) => PeerSource::Samples(Arc::from(media_core::wav::read_mono_16k(p)?)),
        None => PeerSource::Signal(SignalGenerator::speech(1)),
    };
    let mut cfg = PeerConfig::new(ServerTrust::pinned(opts.fingerprint));
    cfg.codecs = vec![opts.codec];
    cfg.source = source;
    // A measuring instrument: a fixed 60 ms playout that does not time-stretch.
    cfg.receive = measuring_receive_config(Duration::from_millis(60));
    cfg.send_for = Duration::from_secs_f64(opts.seconds);
    cfg.run_for = Duration::from_secs_f64(opts.seconds + 1.0);
    let report = crate::cmd_serve::runtime()?.block_on(async {
        let peer = Peer::connect(&opts.blob, cfg).await?;
        anyhow::Ok(peer.finish().await)
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
        echo_segments_matched_pct: delay.and_then(|d| report.voiced_segments_matched_pct(d, span)),
        echo_segment_envelope_median: delay
            .and_then(|d| report.echo_envelope_segments_median(d, span)),
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
