//! `media-processor loadtest`: N full-duplex calls between one processor (echo bot)
//! and N reference peers over loopback QUIC, in one process; CPU and memory per call,
//! late ticks, datagram loss, and (with `--ramp`) the largest N per core that keeps
//! late ticks under 0.1 %. `--transport webrtc` runs the calls over WebRTC (WHIP,
//! str0m peers, Opus); `--transport ws-acs|ws-twilio|ws-vonage` over the platforms'
//! media WebSockets (clients playing the platform, PCM 16 kHz in the processor). A
//! list (`--transport quic,ws-vonage`; `both` is `quic,webrtc`, `ws` the three
//! dialects, `all` every link) runs each in turn, QUIC first, and prints them side by
//! side.

use std::time::Duration;

use harness::loadtest::{LoadtestConfig, StepResult, run as run_loadtest};
use harness::webrtc_load::run_webrtc_step;
use harness::ws_load::run_ws_step;
use platform::Codec;
use ws_link::Dialect;

/// A link the load tool can run calls over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// QUIC datagrams (the reference peers; `--codec` applies).
    Quic,
    /// WebRTC (WHIP, str0m peers, Opus).
    Webrtc,
    /// A platform's media WebSocket in this dialect (PCM 16 kHz in the processor).
    Ws(Dialect),
}

impl Link {
    /// The name `--transport` takes and the report prints.
    pub fn name(self) -> &'static str {
        match self {
            Link::Quic => "quic",
            Link::Webrtc => "webrtc",
            Link::Ws(Dialect::Acs) => "ws-acs",
            Link::Ws(Dialect::Twilio) => "ws-twilio",
            Link::Ws(Dialect::Vonage) => "ws-vonage",
        }
    }
}

/// The links of one run, in the order given, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transports(pub Vec<Link>);

impl Transports {
    fn has(&self, link: Link) -> bool {
        self.0.contains(&link)
    }
}

/// Parses `--transport`: comma-separated links (quic, webrtc, ws-acs, ws-twilio,
/// ws-vonage) or groups (both = quic,webrtc; ws = the three WebSocket dialects; all).
pub fn parse_transports(s: &str) -> Result<Transports, String> {
    const WS: [Link; 3] = [
        Link::Ws(Dialect::Acs),
        Link::Ws(Dialect::Twilio),
        Link::Ws(Dialect::Vonage),
    ];
    let mut links = Vec::new();
    for name in s.split(',').map(str::trim) {
        let group: &[Link] = match name {
            "quic" => &[Link::Quic],
            "webrtc" => &[Link::Webrtc],
            "ws-acs" => &WS[..1],
            "ws-twilio" => &WS[1..2],
            "ws-vonage" => &WS[2..],
            "both" => &[Link::Quic, Link::Webrtc],
            "ws" => &WS,
            "all" => &[Link::Quic, Link::Webrtc, WS[0], WS[1], WS[2]],
            other => {
                return Err(format!(
                    "unknown transport {other:?}: quic, webrtc, ws-acs, ws-twilio, ws-vonage, \
                     both (quic,webrtc), ws (the three ws-*) or all, comma-separated"
                ));
            }
        };
        for &l in group {
            if !links.contains(&l) {
                links.push(l);
            }
        }
    }
    Ok(Transports(links))
}

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
    /// The calls' links, comma-separated, run in turn (QUIC first) and printed side by
    /// side: quic (default), webrtc (WHIP, Opus), ws-acs, ws-twilio, ws-vonage (the
    /// platforms' media WebSockets, PCM 16 kHz); both = quic,webrtc; ws = the three
    /// ws-*; all = every link.
    #[arg(long, default_value = "quic", value_parser = parse_transports)]
    pub transport: Transports,
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
    let links = &args.transport;
    if links.0 == [Link::Quic] {
        let report = run_loadtest(&config, |s| {
            if !json {
                print_quic_step(s);
            }
        })?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.to_text());
        }
        return Ok(());
    }
    anyhow::ensure!(
        !args.ramp,
        "--ramp runs QUIC steps only; run --transport {} at fixed --calls",
        links
            .0
            .iter()
            .map(|l| l.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    anyhow::ensure!(
        !(links.has(Link::Quic) && links.has(Link::Webrtc)) || args.codec == Codec::Opus16k,
        "quic beside webrtc compares Opus calls: add --codec opus"
    );
    let quic = if links.has(Link::Quic) {
        Some(run_loadtest(&config, |s| {
            if !json {
                print_quic_step(s);
            }
        })?)
    } else {
        None
    };
    let mut steps = Vec::new();
    for &link in &links.0 {
        let step = match link {
            Link::Quic => continue,
            Link::Webrtc => run_webrtc_step(config.calls, config.duration)?,
            Link::Ws(dialect) => run_ws_step(dialect, config.calls, config.duration)?,
        };
        eprintln!(
            "{} step: {} calls, {} connected, processor CPU {:.3} %/call, late ticks {:.3} %",
            link.name(),
            step.calls,
            step.connected,
            step.processor_cpu_per_call_pct,
            step.late_ticks_pct
        );
        steps.push((link, step));
    }
    if json {
        let v = match (&quic, steps.as_slice()) {
            (None, [(_, only)]) => serde_json::to_value(only)?,
            _ => {
                let mut map = serde_json::Map::new();
                if let Some(q) = &quic {
                    map.insert("quic".into(), serde_json::to_value(q)?);
                }
                for (link, step) in &steps {
                    map.insert(link.name().into(), serde_json::to_value(step)?);
                }
                serde_json::Value::Object(map)
            }
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut rows = Vec::new();
    if let Some(q) = &quic {
        print!("{}", q.to_text());
        rows.extend(q.steps.last().map(|s| (Link::Quic.name(), s)));
    }
    rows.extend(steps.iter().map(|(l, s)| (l.name(), s)));
    print!("{}", side_by_side(&rows));
    Ok(())
}

/// The progress line of a QUIC step (stderr).
fn print_quic_step(step: &StepResult) {
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

/// The steps as one table, a row per link.
fn side_by_side(rows: &[(&str, &StepResult)]) -> String {
    let mut out = format!(
        "{:<9} {:>6} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "link", "calls", "conn", "procCPU%", "cap/core", "late%", "peerLt%", "lossUp%", "lossDn%"
    );
    for (name, s) in rows {
        out.push_str(&format!(
            "{:<9} {:>6} {:>5} {:>9.3} {:>8.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3}\n",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_as_lists_and_groups() {
        let names = |s: &str| -> Vec<&str> {
            parse_transports(s)
                .expect(s)
                .0
                .iter()
                .map(|l| l.name())
                .collect()
        };
        assert_eq!(names("quic"), ["quic"]);
        assert_eq!(names("both"), ["quic", "webrtc"]);
        assert_eq!(names("quic,ws-twilio"), ["quic", "ws-twilio"]);
        assert_eq!(
            names("ws,quic,ws-acs"),
            ["ws-acs", "ws-twilio", "ws-vonage", "quic"]
        );
        assert_eq!(
            names("all"),
            ["quic", "webrtc", "ws-acs", "ws-twilio", "ws-vonage"]
        );
        let e = parse_transports("quic,ws-sip").expect_err("no such link");
        assert!(e.contains("\"ws-sip\""), "{e}");
    }
}
