//! `media-processor loadtest`: N full-duplex calls between one processor (echo bot)
//! and N reference peers over loopback QUIC, in one process; CPU and memory per call,
//! late ticks, datagram loss, and (with `--ramp`) the largest N per core that keeps
//! late ticks under 0.1 %. `--transport webrtc` runs the calls over WebRTC (WHIP,
//! str0m peers, Opus); `--transport both` runs QUIC and then WebRTC and prints them
//! side by side.

use std::time::Duration;

use harness::loadtest::{LoadtestConfig, StepResult, run as run_loadtest};
use harness::webrtc_load::run_webrtc_step;
use platform::Codec;

/// Arguments of `media-processor loadtest`.
#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    /// Calls (of the first step with --ramp).
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Measured seconds per step (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Codec: pcm or opus.
    #[arg(long, default_value = "pcm", value_parser = crate::cmd_serve::parse_codec)]
    pub codec: Codec,
    /// Step the call count up (×1.5) until late ticks exceed 0.1 %.
    #[arg(long)]
    pub ramp: bool,
    /// Most calls the ramp tries.
    #[arg(long, default_value_t = 4000)]
    pub max_calls: usize,
    /// Time budget of the ramp, seconds.
    #[arg(long, default_value_t = 120.0)]
    pub budget: f64,
    /// Reactor threads of the processor (figures are per thread).
    #[arg(long, default_value_t = 1)]
    pub processor_threads: usize,
    /// Reactor threads of the peers.
    #[arg(long, default_value_t = 1)]
    pub peer_threads: usize,
    /// The reactors' shortest turn interval in microseconds (default 1000; 0: a turn
    /// per packet).
    #[arg(long)]
    pub reactor_batch_us: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The calls' link: quic (default), webrtc (WHIP, Opus), or both in turn.
    #[arg(long, default_value = "quic", value_parser = ["quic", "webrtc", "both"])]
    pub transport: String,
}

/// Runs the load test.
pub fn run(args: &LoadtestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.calls > 0, "--calls must be at least 1");
    anyhow::ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be positive"
    );
    let config = LoadtestConfig {
        calls: args.calls,
        duration: Duration::from_secs_f64(args.duration),
        codec: args.codec,
        ramp: args.ramp,
        max_calls: args.max_calls,
        time_budget: Duration::from_secs_f64(args.budget.max(1.0)),
        processor_threads: args.processor_threads.max(1),
        peer_threads: args.peer_threads.max(1),
        reactor_batch: args.reactor_batch_us.map(Duration::from_micros),
        ..LoadtestConfig::default()
    };
    let json = args.json;
    let webrtc = args.transport != "quic";
    if webrtc {
        anyhow::ensure!(
            !args.ramp,
            "--ramp runs QUIC steps only; run --transport webrtc at fixed --calls"
        );
        anyhow::ensure!(
            args.transport == "webrtc" || args.codec == Codec::Opus16k,
            "--transport both compares Opus calls: add --codec opus"
        );
    }
    if args.transport == "webrtc" {
        let step = webrtc_step(&config)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&step)?);
        } else {
            print!("{}", side_by_side(&[("webrtc", &step)]));
        }
        return Ok(());
    }
    let report = run_loadtest(&config, |step| {
        if !json {
            eprintln!(
                "step: {} calls, {} connected, processor CPU {:.3} %/call, late ticks {:.3} %, loss {:.3}/{:.3} %",
                step.calls,
                step.connected,
                step.processor_cpu_per_call_pct,
                step.late_ticks_pct,
                step.loss_up_pct,
                step.loss_down_pct
            );
        }
    })?;
    let webrtc_step = if webrtc {
        Some(webrtc_step(&config)?)
    } else {
        None
    };
    if json {
        let v = match &webrtc_step {
            Some(w) => serde_json::json!({ "quic": report, "webrtc": w }),
            None => serde_json::to_value(&report)?,
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report.to_text());
        if let (Some(w), Some(q)) = (&webrtc_step, report.steps.last()) {
            print!("{}", side_by_side(&[("quic", q), ("webrtc", w)]));
        }
    }
    Ok(())
}

/// One WebRTC step of `config.calls` Opus calls.
fn webrtc_step(config: &LoadtestConfig) -> anyhow::Result<StepResult> {
    let step = run_webrtc_step(config.calls, config.duration)?;
    eprintln!(
        "webrtc step: {} calls, {} connected, processor CPU {:.3} %/call, late ticks {:.3} %",
        step.calls, step.connected, step.processor_cpu_per_call_pct, step.late_ticks_pct
    );
    Ok(step)
}

/// The steps as one table, a row per link.
fn side_by_side(rows: &[(&str, &StepResult)]) -> String {
    let mut out = format!(
        "{:<7} {:>6} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "link", "calls", "conn", "procCPU%", "cap/core", "late%", "peerLt%", "lossUp%", "lossDn%"
    );
    for (name, s) in rows {
        out.push_str(&format!(
            "{:<7} {:>6} {:>5} {:>9.3} {:>8.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3}\n",
            name,
            s.calls,
            s.connected,
            s.processor_cpu_per_call_pct,
            s.capacity_by_cpu,
            s.late_ticks_pct,
            s.peer_late_ticks_pct,
            s.loss_up_pct,
            s.loss_down_pct
        ));
    }
    out
}
