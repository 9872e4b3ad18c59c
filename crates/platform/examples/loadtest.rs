//! The load tool as a standalone example (the same code as `media-processor loadtest`).
//!
//! ```text
//! cargo run --release -p platform --example loadtest -- [--calls N] [--duration S]
//!     [--codec pcm|opus] [--ramp] [--max-calls N] [--budget S] [--json]
//! ```

use std::time::Duration;

use platform::Codec;
use platform::loadtest::{LoadtestConfig, run};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = LoadtestConfig::default();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--calls" => cfg.calls = value()?.parse()?,
            "--duration" => cfg.duration = Duration::from_secs_f64(value()?.parse()?),
            "--codec" => {
                cfg.codec = match value()?.as_str() {
                    "pcm" => Codec::Pcm16k,
                    "opus" => Codec::Opus16k,
                    other => return Err(format!("unknown codec {other}").into()),
                }
            }
            "--ramp" => cfg.ramp = true,
            "--max-calls" => cfg.max_calls = value()?.parse()?,
            "--budget" => cfg.time_budget = Duration::from_secs_f64(value()?.parse()?),
            "--processor-threads" => cfg.processor_threads = value()?.parse()?,
            "--peer-threads" => cfg.peer_threads = value()?.parse()?,
            "--json" => json = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let report = run(&cfg, |s| {
        eprintln!(
            "step: {} calls ({} connected): processor CPU {:.3} %/call, late ticks {:.3} %, \
             peer late {:.3} %, loss up {:.3} % down {:.3} %",
            s.calls,
            s.connected,
            s.processor_cpu_per_call_pct,
            s.late_ticks_pct,
            s.peer_late_ticks_pct,
            s.loss_up_pct,
            s.loss_down_pct
        );
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
