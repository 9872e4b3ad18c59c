//! The end-to-end demo: the Graph emulator, an echo bot (graph runtime + callback
//! server + media platform) and the emulator's QUIC far end on this machine; one call
//! of a seed scenario over an impaired network, live progress once a second, and a
//! report (`report.json`, `plot.png`, WAVs both ways).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media_core::frame::Pcm16kFrame;
use media_core::sim::Profile;
use platform::{AudioFrame, Codec};
use serde::Serialize;
use serde_json::{Value, json};
use signaling::Scenario;
use uuid::Uuid;

mod text;
mod window;

use self::text::{CallView, drain, wait_until};
pub use self::window::echo_delay_ms;
use self::window::{far_window, window};
use crate::farend::{FarEndReport, FarEndStats};
use crate::local::{Local, LocalConfig};
use crate::report;
use bot::{
    BotOutput, CallBehaviour, MediaBot, SessionCounters, SessionOptions, SessionReport,
    SessionSnapshot,
};

/// A callback receiving every frame the bot receives (e.g. to play it on a device).
pub type FrameTap = Arc<dyn Fn(&Pcm16kFrame) + Send + Sync>;

/// What the demo runs.
#[derive(Clone)]
pub struct DemoConfig {
    /// The Graph scenario (app-hosted ones carry media; service-hosted ones run
    /// signaling only).
    pub scenario: Scenario,
    /// The network between far end and bot.
    pub profile: Profile,
    /// How long the call is held once established (app-hosted).
    pub duration: Duration,
    /// The codec the far end offers.
    pub codec: Codec,
    /// Output directory.
    pub out: PathBuf,
    /// Seed of the impairment.
    pub seed: u64,
    /// A WAV the far end speaks (default: media-core's speech-like signal).
    pub speech: Option<PathBuf>,
    /// Print progress to stdout.
    pub print: bool,
    /// Receives every frame the bot receives.
    pub tap: Option<FrameTap>,
}

impl std::fmt::Debug for DemoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoConfig")
            .field("scenario", &self.scenario)
            .field("profile", &self.profile.name)
            .field("duration", &self.duration)
            .field("codec", &self.codec)
            .field("out", &self.out)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            scenario: Scenario::P2pVoipApp,
            profile: Profile::named("wifi").unwrap_or(Profile::ideal("clean", Duration::ZERO)),
            duration: Duration::from_secs(20),
            codec: Codec::Opus16k,
            out: PathBuf::from("out/demo"),
            seed: 7,
            speech: None,
            print: true,
            tap: None,
        }
    }
}

/// One second of the demo call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoSecond {
    /// Seconds since the call was placed.
    pub t: f64,
    /// Graph call state as the bot knows it.
    pub call_state: String,
    /// Frames the bot received so far.
    pub bot_frames_received: u64,
    /// Frames the bot sent (echoed) so far.
    pub bot_frames_sent: u64,
    /// Frames the far end sent so far.
    pub far_frames_sent: u64,
    /// Packets the far end received from the bot so far.
    pub far_packets_received: u64,
    /// Bot jitter buffer: mean delay of the samples emitted in this window, ms.
    pub jb_delay_ms: f64,
    /// Bot jitter buffer: target delay, ms.
    pub jb_target_ms: f64,
    /// Far end → bot loss seen by the bot in this window, %.
    pub loss_pct: f64,
    /// Frames the bot received with concealment in this window, %.
    pub conceal_pct: f64,
    /// Far-end jitter buffer (bot → far end): mean delay in this window, ms.
    pub far_jb_delay_ms: f64,
    /// Far-end jitter buffer target, ms.
    pub far_jb_target_ms: f64,
    /// Bot → far end packets lost by the network in this window, %.
    pub far_loss_pct: f64,
}

/// The outcome of a demo run (also written as `report.json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoReport {
    /// The scenario's name.
    pub scenario: String,
    /// Whether the scenario carries app-hosted media.
    pub app_hosted: bool,
    /// The profile's name.
    pub profile: String,
    /// Graph's call id.
    pub call_id: String,
    /// The last call state the bot saw.
    pub final_state: String,
    /// How the call ended (the runtime's teardown reason).
    pub teardown: String,
    /// The emulator's termination (code/subcode/message/reason).
    pub termination: Option<Value>,
    /// The call reached `established`.
    pub established: bool,
    /// The bot's final media counters.
    pub bot: SessionCounters,
    /// The far end's final counters.
    pub far_end: FarEndStats,
    /// Per-second series.
    pub series: Vec<DemoSecond>,
    /// Mean bot jitter-buffer delay over the call, ms.
    pub mean_jb_delay_ms: f64,
    /// Far end → bot loss over the call as measured by the bot, %.
    pub loss_pct: f64,
    /// Bot-received frames with concealment, %.
    pub conceal_pct: f64,
    /// Echo round trip (far end → bot → far end) from the audio envelopes, ms.
    pub echo_delay_ms: Option<f64>,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// The demo's echo bot: echoes every frame and hands it to the tap.
struct TapEcho(Option<FrameTap>);

impl MediaBot for TapEcho {
    fn new_call(&self, _session_id: Uuid, _call_id: &str) -> Box<dyn CallBehaviour> {
        Box::new(TapEchoCall(self.0.clone()))
    }
}

struct TapEchoCall(Option<FrameTap>);

impl CallBehaviour for TapEchoCall {
    fn on_frame(&mut self, frame: &AudioFrame, out: &mut BotOutput<'_>) {
        let _ = out.enqueue(&frame.samples);
        if let Some(tap) = &self.0 {
            tap(&frame.samples);
        }
    }
}

/// Runs the demo on a new multi-threaded tokio runtime (for command-line front ends).
pub fn run_blocking(config: DemoConfig) -> anyhow::Result<DemoReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(config))
}

/// Runs the demo (inside a tokio multi-thread runtime) and writes its report into
/// `config.out`.
pub async fn run(config: DemoConfig) -> anyhow::Result<DemoReport> {
    let print = config.print;
    let scenario = config.scenario;
    let app_hosted = scenario.is_app_hosted();
    std::fs::create_dir_all(&config.out)?;
    let speech: Arc<[i16]> = match &config.speech {
        Some(path) => media_core::wav::read_mono_16k(path)
            .map_err(|e| anyhow::anyhow!("speech WAV {}: {e}", path.display()))?
            .into(),
        None => media_core::speech::speech_like(12 * 16_000, config.seed).into(),
    };
    let mut local_cfg = LocalConfig::new(Arc::new(TapEcho(config.tap.clone())));
    local_cfg.sessions = SessionOptions {
        record: true,
        ..SessionOptions::default()
    };
    let mut far = local_cfg.far_end.clone();
    far.codec = config.codec;
    far.profile = config.profile;
    far.seed = config.seed;
    far.source = speech;
    far.record = true;
    local_cfg.far_end = far;
    if print {
        println!(
            "== media-processor demo: {} ({}), profile {}, codec {:?}, {} s",
            scenario.name(),
            scenario.description(),
            config.profile.name,
            config.codec,
            config.duration.as_secs_f64()
        );
    }
    let local = Local::start(local_cfg).await?;
    if print {
        println!(
            "  Graph emulator {}  |  bot callback {}  |  media processor {} (pinned {})",
            local.emulator.base_url(),
            local.bot.callback_url(),
            local.bot.sessions().platform().mp_uri(),
            local.bot.sessions().fingerprint()
        );
        if !app_hosted {
            println!("  service-hosted media: the service carries the audio; signaling only");
        }
    }
    let result = drive(&local, &config).await;
    let shutdown = local.shutdown().await;
    if shutdown.tasks_left > 0 {
        tracing::warn!(?shutdown, "emulator tasks left after shutdown");
    }
    result
}

async fn drive(local: &Local, config: &DemoConfig) -> anyhow::Result<DemoReport> {
    let print = config.print;
    let scenario = config.scenario;
    let app_hosted = scenario.is_app_hosted();
    let mut events = local.bot.runtime().subscribe();
    let t0 = Instant::now();
    let call = local.place(scenario).await?;
    let call_id = call.call_id.clone();
    if print {
        println!("  call {call_id} placed");
    }
    let mut view = CallView {
        state: call
            .call
            .state
            .value()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "establishing".into()),
        ..CallView::default()
    };
    // Wait for established (and media started for app-hosted calls).
    let ready = wait_until(
        &mut events,
        &call_id,
        &mut view,
        t0,
        print,
        Duration::from_secs(10),
        |v| v.removed.is_some() || (v.established && (!app_hosted || v.media_started)),
    )
    .await;
    anyhow::ensure!(
        ready && view.removed.is_none(),
        "the call did not get established: {}",
        view.removed
            .clone()
            .unwrap_or_else(|| format!("state {}", view.state))
    );

    let hold = if app_hosted {
        config.duration
    } else {
        config.duration.min(Duration::from_secs(2))
    };
    if print && app_hosted {
        println!(
            "  {:>5} {:<12} {:>7} {:>7} {:>7} {:>7} {:>16} {:>6} {:>8}",
            "t",
            "state",
            "bot rx",
            "bot tx",
            "far tx",
            "far rx",
            "jb delay/target",
            "loss",
            "conceal"
        );
    }
    let mut series: Vec<DemoSecond> = Vec::new();
    let mut prev = SessionSnapshot::default();
    let mut prev_far = FarEndStats::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let held_until = tokio::time::Instant::now() + hold;
    let mut seconds = hold.as_secs_f64().ceil() as u64;
    while seconds > 0 && view.removed.is_none() {
        seconds -= 1;
        if seconds == 0 {
            // The last (possibly partial) second ends with the hold.
            tokio::time::sleep_until(held_until).await;
        } else {
            tick.tick().await;
        }
        drain(&mut events, &call_id, &mut view, t0, print);
        let cur = call
            .session_id
            .and_then(|s| local.bot.sessions().snapshot(s))
            .unwrap_or(prev);
        let far = local.far_end.stats(&call_id).unwrap_or(prev_far);
        let last = series.last().cloned().unwrap_or_default();
        let (jb_delay_ms, loss_pct, conceal_pct) = window(&prev, &cur, &last);
        let (far_jb_delay_ms, far_loss_pct) = far_window(&prev_far, &far, &last);
        let s = DemoSecond {
            t: t0.elapsed().as_secs_f64(),
            call_state: view.state.clone(),
            bot_frames_received: cur.counters.frames_received,
            bot_frames_sent: cur.counters.frames_sent,
            far_frames_sent: far.frames_sent,
            far_packets_received: far.packets_received,
            jb_delay_ms,
            jb_target_ms: cur.jitter.target_delay_ms,
            loss_pct,
            conceal_pct,
            far_jb_delay_ms,
            far_jb_target_ms: far.jitter.target_delay_ms,
            far_loss_pct,
        };
        if print {
            if app_hosted {
                println!(
                    "  {:>4.0}s {:<12} {:>7} {:>7} {:>7} {:>7} {:>8.0}/{:<4.0} ms {:>5.1}% {:>7.1}%",
                    s.t,
                    s.call_state,
                    s.bot_frames_received,
                    s.bot_frames_sent,
                    s.far_frames_sent,
                    s.far_packets_received,
                    s.jb_delay_ms,
                    s.jb_target_ms,
                    s.loss_pct,
                    s.conceal_pct
                );
            } else {
                println!("  {:>4.0}s {} (no media on this bot)", s.t, s.call_state);
            }
        }
        series.push(s);
        prev = cur;
        prev_far = far;
    }

    // Hang up and collect everything.
    if view.removed.is_none() {
        if print {
            println!("  hanging up");
        }
        local.bot.runtime().hang_up(&call_id).await?;
    }
    wait_until(
        &mut events,
        &call_id,
        &mut view,
        t0,
        print,
        Duration::from_secs(5),
        |v| v.removed.is_some(),
    )
    .await;
    let session: Option<SessionReport> = match call.session_id {
        Some(s) => {
            local
                .bot
                .sessions()
                .wait_report(s, Duration::from_secs(5))
                .await
        }
        None => None,
    };
    let far: Option<FarEndReport> = if app_hosted {
        local
            .far_end
            .wait_report(&call_id, Duration::from_secs(5))
            .await
    } else {
        None
    };
    // The emulator marks the call terminated once its far end has stopped.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut summary = local.emulator.call(&call_id);
    while Instant::now() < deadline
        && summary
            .as_ref()
            .is_some_and(|c| c.state != signaling::CallState::Terminated)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        summary = local.emulator.call(&call_id);
    }
    let termination = summary.as_ref().and_then(|c| c.termination.as_ref()).map(
        |t| json!({"code": t.code, "subcode": t.subcode, "message": t.message, "reason": t.reason}),
    );
    let final_state = summary
        .as_ref()
        .map(|c| c.state.to_string())
        .unwrap_or_else(|| view.state.clone());

    let mut files = Vec::new();
    let out = &config.out;
    let bot = session
        .as_ref()
        .map(|s| s.last.counters)
        .unwrap_or_default();
    let bot_jitter = session.as_ref().map(|s| s.last.jitter).unwrap_or_default();
    let bot_qoe = session.as_ref().map(|s| s.last.qoe).unwrap_or_default();
    let far_stats = far.as_ref().map(|f| f.stats).unwrap_or_default();
    let mut echo_delay = None;
    if app_hosted {
        let wavs: [(&str, &[i16]); 4] = [
            (
                "farend_sent.wav",
                far.as_ref().map(|f| f.sent.as_slice()).unwrap_or_default(),
            ),
            (
                "bot_received.wav",
                session
                    .as_ref()
                    .map(|s| s.received.as_slice())
                    .unwrap_or_default(),
            ),
            (
                "bot_sent.wav",
                session
                    .as_ref()
                    .map(|s| s.sent.as_slice())
                    .unwrap_or_default(),
            ),
            (
                "farend_received.wav",
                far.as_ref()
                    .map(|f| f.received.as_slice())
                    .unwrap_or_default(),
            ),
        ];
        for (name, samples) in wavs {
            let path = out.join(name);
            report::write_wav(&path, samples).map_err(anyhow::Error::msg)?;
            files.push(path);
        }
        if let Some(f) = &far {
            echo_delay = echo_delay_ms(&f.sent, &f.received);
        }
        let plot = out.join("plot.png");
        let title = format!(
            "{} over {} ({:?}), {} s",
            scenario.name(),
            config.profile.name,
            config.codec,
            hold.as_secs()
        );
        report::write_plot(&plot, &title, &series).map_err(anyhow::Error::msg)?;
        files.push(plot);
    }
    let emitted = bot_jitter.jitter_buffer_emitted_count;
    let mean_jb_delay_ms = if emitted > 0 {
        bot_jitter.jitter_buffer_delay / emitted as f64 * 1000.0
    } else {
        0.0
    };
    let conceal_pct = if bot.frames_received > 0 {
        100.0 * bot.frames_concealed as f64 / bot.frames_received as f64
    } else {
        0.0
    };
    let report_path = out.join("report.json");
    files.push(report_path.clone());
    let demo = DemoReport {
        scenario: scenario.name().to_owned(),
        app_hosted,
        profile: config.profile.name.to_owned(),
        call_id: call_id.clone(),
        final_state,
        teardown: view
            .removed
            .clone()
            .unwrap_or_else(|| "not torn down".into()),
        termination,
        established: view.established,
        bot,
        far_end: far_stats,
        series,
        mean_jb_delay_ms,
        loss_pct: bot_qoe.loss_pct,
        conceal_pct,
        echo_delay_ms: echo_delay,
        files,
    };
    let doc = json!({
        "scenario": {
            "name": scenario.name(),
            "description": scenario.description(),
            "appHosted": app_hosted,
            "mode": if app_hosted { "app-hosted media: echo bot over QUIC" } else { "service-hosted media: signaling only" },
        },
        "profile": config.profile,
        "config": {
            "durationS": config.duration.as_secs_f64(),
            "codec": format!("{:?}", config.codec),
            "seed": config.seed,
            "speech": config.speech.as_ref().map(|p| p.display().to_string()),
            "out": out.display().to_string(),
        },
        "call": {
            "id": call_id,
            "finalState": demo.final_state,
            "established": demo.established,
            "teardown": demo.teardown,
            "termination": demo.termination,
            "events": view.events.iter().map(|(t, e)| json!({"t": t, "event": e})).collect::<Vec<_>>(),
        },
        "result": {
            "meanJitterBufferDelayMs": demo.mean_jb_delay_ms,
            "lossPct": demo.loss_pct,
            "concealPct": demo.conceal_pct,
            "echoDelayMs": demo.echo_delay_ms,
        },
        "media": if app_hosted { json!({
            "bot": {
                "counters": bot,
                "qoe": bot_qoe,
                "jitterBuffer": bot_jitter,
                "mediaEnd": session.as_ref().and_then(|s| s.media_end.clone()),
            },
            "farEnd": far.as_ref().map(|f| json!({
                "codec": f.codec,
                "stats": f.stats,
                "close": f.close,
                "seconds": f.seconds,
            })),
        }) } else { Value::Null },
        "series": demo.series,
        "files": demo.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    std::fs::write(&report_path, serde_json::to_string_pretty(&doc)?)?;

    if print {
        println!("== result");
        println!(
            "  call {}: {} ({}), final state {}",
            demo.call_id,
            if demo.established {
                "established"
            } else {
                "never established"
            },
            demo.teardown,
            demo.final_state
        );
        if app_hosted {
            println!(
                "  frames: far end sent {}, bot received {} and echoed {}, far end got {} back",
                far_stats.frames_sent,
                bot.frames_received,
                bot.frames_sent,
                far_stats.packets_received
            );
            println!(
                "  bot jitter buffer: mean delay {:.1} ms, target {:.0} ms; loss {:.2} %, concealed frames {:.2} %",
                demo.mean_jb_delay_ms, bot_jitter.target_delay_ms, demo.loss_pct, demo.conceal_pct
            );
            match demo.echo_delay_ms {
                Some(d) => println!("  echo round trip (far end -> bot -> far end): ~{d:.0} ms"),
                None => println!("  echo round trip: not measurable"),
            }
        } else {
            println!("  service-hosted: signaling only, no media on this bot");
        }
        println!(
            "  wrote {}",
            demo.files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(demo)
}

#[cfg(test)]
mod tests;
