//! `media-processor jb-eval`: evaluate the adaptive jitter buffer over impaired-network
//! profiles on a virtual clock, and write the decoded audio of each profile; with
//! `--pesq`, also each profile's codec ceiling and the PESQ-WB scores of both.
//!
//! See `media_core::eval` for the definitions (late loss, added delay, oracle, target).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use harness::eval::{self, EvalConfig};
use media_core::codec::Codec;
use media_core::sim::Profile;

/// Arguments of `media-processor jb-eval`.
#[derive(Debug, clap::Args)]
pub struct JbEvalArgs {
    /// Speech input (WAV; mixed to mono and resampled to 16 kHz if needed). Default: a
    /// built-in deterministic speech-like signal.
    #[arg(long)]
    pub wav: Option<PathBuf>,
    /// Network profile (repeatable; default: all of clean, wifi, cellular,
    /// loss5-jitter40, bursty, spike200, drift+, drift-).
    #[arg(long = "profile", value_parser = parse_profile)]
    pub profiles: Vec<String>,
    /// Simulated seconds per profile.
    #[arg(long, default_value_t = 30.0)]
    pub duration_s: f64,
    /// Codec: opus or pcm.
    #[arg(long, default_value = "opus", value_parser = parse_codec)]
    pub codec: Codec,
    /// Seed of the network impairments (and of the built-in speech).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory for `<profile>.wav` and `reference.wav`.
    #[arg(long, default_value = "out/jb-eval")]
    pub out: PathBuf,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also compute each profile's codec ceiling (same loss trace, perfect timing) and
    /// score output and ceiling with PESQ-WB (Python `pesq`; scripts/install-deps.sh).
    #[arg(long)]
    pub pesq: bool,
}

fn parse_profile(s: &str) -> Result<String, String> {
    if Profile::named(s).is_some() {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown profile {s:?} (known: {})",
            Profile::NAMES.join(", ")
        ))
    }
}

fn parse_codec(s: &str) -> Result<Codec, String> {
    s.parse()
}

/// Runs the evaluation and prints the report.
pub fn run(args: &JbEvalArgs) -> anyhow::Result<()> {
    if !(args.duration_s.is_finite() && args.duration_s >= 1.0 && args.duration_s <= 3600.0) {
        anyhow::bail!(
            "--duration-s must be between 1 and 3600 seconds (got {})",
            args.duration_s
        );
    }
    let input = match &args.wav {
        Some(path) => Some(
            media_core::wav::read_mono_16k(path)
                .with_context(|| format!("reading the speech input {}", path.display()))?,
        ),
        None => None,
    };
    let cfg = EvalConfig {
        profiles: args.profiles.clone(),
        duration: Duration::from_secs_f64(args.duration_s),
        codec: args.codec,
        seed: args.seed,
        input,
        out_dir: Some(args.out.clone()),
        ceiling: args.pesq,
        ..EvalConfig::default()
    };
    let mut report = eval::run(&cfg).context("running the jitter-buffer evaluation")?;
    if args.pesq {
        harness::pesq::score_report(&mut report).context("scoring with PESQ-WB")?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", eval::format_table(&report))?;
        write!(out, "{}", eval::format_pesq_table(&report))?;
        writeln!(out, "output WAVs in {}", args.out.display())?;
    }
    Ok(())
}
