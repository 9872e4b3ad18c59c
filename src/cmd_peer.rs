//! `media-processor peer`: the reference far end. Joins the session a blob names,
//! sends a WAV file or a speech-like test signal at 50 frames/s, records what comes
//! back and reports the echo latency and quality.

use std::path::PathBuf;

use anyhow::Context;
use harness::app::{PeerOptions, run_peer};
use media_blob::MediaSessionConfig;
use platform::{CertFingerprint, Codec};

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
