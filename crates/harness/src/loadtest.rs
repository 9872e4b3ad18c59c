//! The load tool: N full-duplex calls between one processor (echo bot) and N peers
//! over loopback QUIC in one process, and what they cost.
//!
//! The processor (platform + echo bots, echo by callback inside each call's tick) runs
//! on [`LoadtestConfig::processor_threads`] reactor threads (default 1, so "per call"
//! figures are per core); the peers run on [`LoadtestConfig::peer_threads`] reactor
//! threads of their own, dialling out, so they cost about what the processor costs per
//! call.
//! Each step connects N calls, warms up for a second, then measures for `duration`:
//!
//! - **CPU per call**: user+system CPU (as `getrusage` reports it; read from
//!   `/proc/self/task/*/stat` for the processor runtime's threads, `/proc/self/stat`
//!   for the whole process) / wall time / N, in percent of one core. The processor
//!   figure is the processor's cost; the process figure includes the peers.
//! - **Capacity by CPU**: 100 % / processor CPU per call = calls one core could
//!   carry if nothing else limited it.
//! - **Late ticks**: processor call ticks that started > 5 ms after their scheduled
//!   instant, in percent.
//! - **Datagram loss**: 1 − packets received / packets expected (50 per second per
//!   call and direction), both directions.
//! - **Memory per call**: RSS growth (`/proc/self/status` VmRSS) from before the
//!   calls to after warm-up, / N.
//!
//! A *ramp* multiplies N by `ramp_factor` after every step whose late ticks stay
//! below 0.1 %, until a step fails, `max_calls` is reached or the time budget is
//! spent; the largest passing N is the **N per core** (with one processor thread).
//!
//! **Opus bound.** The processor's unavoidable Opus work per call is one encode and
//! one decode per 20 ms. The tool times both with libopus on the same signal and
//! settings, in the same run (thread CPU time, 2000 frames), and defines the libopus-only bound as
//! `bound = 20 ms / (t_encode + t_decode)` calls per core. The Opus path's
//! efficiency is capacity-by-CPU / bound (target ≥ 90 %).
//!
//! That bound runs one encoder and one decoder in a hot loop. A processor with N
//! calls runs N encoder and decoder states in turn, and each finds less of its state
//! in the CPU caches; so the tool also times libopus alone over N states round-robin
//! (N = the first step's calls) and reports the efficiency against that *interleaved*
//! bound: the cost of the codec work itself at that scale, with no transport, timers
//! or pipelines.

use std::time::{Duration, Instant};

use media_core::codec::{Codec, OpusConfig, new_decoder, new_encoder};
use media_core::frame::FRAME_SAMPLES;
use media_core::playout::ReceiveConfig;
use serde::Serialize;
use transport::{ServerTrust, TransportSettings};

use crate::loadpeer::{LoadPeers, PeerSetup};
use crate::procstat;
use crate::signal::SignalGenerator;
use platform::{AudioFrame, FrameDelivery, MediaPlatform, MediaPlatformSettings};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadtestConfig {
    /// Calls of the first (or only) step.
    pub calls: usize,
    /// Measured time per step (after a 1 s warm-up).
    pub duration: Duration,
    /// Codec of every call.
    pub codec: Codec,
    /// Step N up until late ticks exceed 0.1 % (else run one step).
    pub ramp: bool,
    /// N grows by this factor per ramp step.
    pub ramp_factor: f64,
    /// Upper bound of N.
    pub max_calls: usize,
    /// Stop ramping when this much time has been spent.
    pub time_budget: Duration,
    /// Reactor threads of the processor.
    pub processor_threads: usize,
    /// Reactor threads of the peers.
    pub peer_threads: usize,
    /// Opus settings (processor and peers).
    pub opus: OpusConfig,
    /// The reactor's turn interval (`TransportSettings::reactor_batch_interval`) for
    /// the processor and the peers; `None`: the default (1 ms).
    pub reactor_batch: Option<Duration>,
}

impl Default for LoadtestConfig {
    fn default() -> Self {
        Self {
            calls: 100,
            duration: Duration::from_secs(5),
            codec: Codec::Pcm16k,
            ramp: false,
            ramp_factor: 1.5,
            max_calls: 4000,
            time_budget: Duration::from_secs(120),
            processor_threads: 1,
            peer_threads: 1,
            opus: OpusConfig::default(),
            reactor_batch: None,
        }
    }
}

/// Figures of one step.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StepResult {
    /// Calls requested.
    pub calls: usize,
    /// Calls that connected.
    pub connected: usize,
    /// Measured wall time, s.
    pub wall_s: f64,
    /// Processor runtime CPU per call, percent of one core.
    pub processor_cpu_per_call_pct: f64,
    /// Whole-process CPU (processor + peers) per call, percent of one core.
    pub process_cpu_per_call_pct: f64,
    /// Wall-clock time inside the calls' media (ticks: pacing, encoding, playout) per
    /// call, percent of one core (column `tickCPU%`). Preemption inside a tick counts
    /// too, so on a busy machine this is above the ticks' CPU time.
    pub tick_busy_per_call_pct: f64,
    /// Calls one core could carry at this processor CPU per call.
    pub capacity_by_cpu: f64,
    /// Processor ticks that started more than 5 ms late, percent.
    pub late_ticks_pct: f64,
    /// Peer ticks that started more than 5 ms late, percent.
    pub peer_late_ticks_pct: f64,
    /// Peer → processor datagram loss, percent.
    pub loss_up_pct: f64,
    /// Processor → peer datagram loss, percent.
    pub loss_down_pct: f64,
    /// RSS growth per call, bytes.
    pub rss_per_call_bytes: f64,
    /// UDP packets the processor sent per media datagram it sent (1.0: every ACK
    /// rode on a media packet; more: ACK-only and other QUIC packets).
    pub udp_per_media_down: f64,
    /// The same for what the peers sent.
    pub udp_per_media_up: f64,
    /// Late ticks stayed under 0.1 % and every call connected.
    pub passed: bool,
    /// The processor reactor's loop in the measured window.
    pub reactor: ReactorStep,
}

/// How the processor's reactor loop ran during a step: batching, and where late ticks
/// come from (its own long turns, or wake-ups the OS delivered late).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ReactorStep {
    /// Loop turns per second (all reactor threads).
    pub turns_per_s: f64,
    /// `recvmmsg` results per turn.
    pub datagrams_per_turn: f64,
    /// Turns that took more than 4 ms of the thread's CPU time.
    pub long_turns: u64,
    /// Turns longer than 4 ms of wall time only: preempted by the OS.
    pub preempted_turns: u64,
    /// Wake-ups more than 4 ms after the time asked for.
    pub late_wakeups: u64,
    /// The longest turn since the platform started, ms.
    pub max_turn_ms: f64,
    /// The longest oversleep since the platform started, ms.
    pub max_oversleep_ms: f64,
}

/// libopus cost per 20 ms frame and the bound it sets.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OpusBound {
    /// Encode, µs per frame.
    pub encode_us: f64,
    /// Decode, µs per frame.
    pub decode_us: f64,
    /// 20 ms / (encode + decode): full-duplex calls per core if libopus were the
    /// only cost.
    pub calls_per_core: f64,
}

/// The result of a load test.
#[derive(Debug, Clone, Serialize)]
pub struct LoadtestReport {
    /// `pcm16k` or `opus16k`.
    pub codec: String,
    /// Processor reactor threads.
    pub processor_threads: usize,
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// 1-minute load average before the run (other work on the machine).
    pub load_average_before: Option<f64>,
    /// Every step, in order.
    pub steps: Vec<StepResult>,
    /// Largest N that passed (late ticks < 0.1 %), per processor thread.
    pub max_calls_per_core: Option<usize>,
    /// Best capacity-by-CPU (calls per core) among the steps that passed (all steps
    /// when none did).
    pub capacity_by_cpu: f64,
    /// The libopus-only bound (Opus runs only).
    pub opus_bound: Option<OpusBound>,
    /// capacity-by-CPU / libopus bound (Opus runs only).
    pub opus_efficiency: Option<f64>,
    /// The libopus-only bound over as many codec states as the first step has calls,
    /// used round-robin (Opus runs only).
    pub opus_bound_interleaved: Option<OpusBound>,
    /// capacity-by-CPU / interleaved bound (Opus runs only).
    pub opus_efficiency_interleaved: Option<f64>,
}

/// A load test could not run.
#[derive(Debug, thiserror::Error)]
#[error("load test: {0}")]
pub struct LoadtestError(String);

pub(crate) fn err(e: impl std::fmt::Display) -> LoadtestError {
    LoadtestError(e.to_string())
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time of the calling thread (nanosecond resolution).
struct ThreadClock {
    cpu0: Duration,
}

impl ThreadClock {
    fn start() -> Self {
        Self {
            cpu0: procstat::current_thread_cpu(),
        }
    }

    fn elapsed(&self) -> Duration {
        procstat::current_thread_cpu().saturating_sub(self.cpu0)
    }
}

/// Times libopus encode and decode per frame on the speech-like signal, in thread
/// CPU time (so other load on the machine does not inflate it; `/proc` resolution is
/// 10 ms, so use at least 1000 frames). `states` encoder/decoder pairs take the
/// frames in turn (1: the hot-loop bound).
pub fn measure_opus(
    opus: &OpusConfig,
    frames: usize,
    states: usize,
) -> Result<OpusBound, LoadtestError> {
    let states = states.max(1);
    let mut encs = (0..states)
        .map(|_| new_encoder(Codec::Opus16k, opus))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let mut decs = (0..states)
        .map(|_| new_decoder(Codec::Opus16k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let signal = SignalGenerator::speech(3).take_seconds(frames as f64 / 50.0);
    let mut packets = Vec::with_capacity(frames);
    let mut buf = [0u8; 1500];
    let t = ThreadClock::start();
    for (i, f) in signal.chunks_exact(FRAME_SAMPLES).enumerate() {
        let frame: &[i16; FRAME_SAMPLES] = f.try_into().map_err(err)?;
        let n = encs[i % states].encode(frame, &mut buf).map_err(err)?;
        packets.push(buf[..n].to_vec());
    }
    let encode = t.elapsed();
    let mut out = [0i16; FRAME_SAMPLES];
    let t = ThreadClock::start();
    for _ in 0..4 {
        for (i, p) in packets.iter().enumerate() {
            decs[i % states].decode(p, &mut out).map_err(err)?;
        }
    }
    let decode = t.elapsed();
    let n = packets.len().max(1) as f64;
    let encode_us = encode.as_secs_f64() * 1e6 / n;
    let decode_us = decode.as_secs_f64() * 1e6 / (4.0 * n);
    Ok(OpusBound {
        encode_us,
        decode_us,
        calls_per_core: 20_000.0 / (encode_us + decode_us),
    })
}

fn threads_cpu(tids: &[u32]) -> Duration {
    tids.iter().filter_map(|&t| procstat::thread_cpu(t)).sum()
}

/// Runs one step with `calls` calls.
pub fn run_step(config: &LoadtestConfig, calls: usize) -> Result<StepResult, LoadtestError> {
    // The platform's health task needs a runtime; the calls run on reactor threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    let rss0 = procstat::rss_bytes().unwrap_or(0);

    // Processor: platform and echo bots (callback delivery: the echo runs inside each
    // call's tick, no extra task per call).
    let mut settings = MediaPlatformSettings::dev_loopback();
    settings.codecs = vec![config.codec];
    settings.opus = config.opus;
    settings.limits.max_sessions = calls + 16;
    settings.pacer.prebuffer_frames = 2;
    settings.reactor_threads = config.processor_threads.max(1);
    if let Some(b) = config.reactor_batch {
        settings.transport.reactor_batch_interval = b;
    }
    let platform = {
        let _g = rt.enter();
        MediaPlatform::start(settings).map_err(err)?
    };
    let mut sockets = Vec::with_capacity(calls);
    let mut blobs = Vec::with_capacity(calls);
    for _ in 0..calls {
        let echo = |f: &AudioFrame, tx: &platform::AudioSender| {
            let _ = tx.enqueue(&f.samples);
        };
        let (blob, socket) = platform
            .create_media_configuration_with(
                uuid::Uuid::new_v4(),
                FrameDelivery::Callback(Box::new(echo)),
            )
            .map_err(err)?;
        sockets.push(socket);
        blobs.push(blob);
    }

    // Peers, one dial every 0.5 ms: the calls' 20 ms grids spread over the period.
    let setup = PeerSetup {
        trust: ServerTrust::pinned(platform.certificate_fingerprint()),
        codec: config.codec,
        opus: config.opus,
        receive: ReceiveConfig::default(),
        transport: TransportSettings {
            reactor_batch_interval: config
                .reactor_batch
                .unwrap_or(TransportSettings::default().reactor_batch_interval),
            ..TransportSettings::default()
        },
        source: SignalGenerator::speech(11).take_seconds(2.0).into(),
    };
    let wait = Duration::from_secs(10) + Duration::from_millis(2 * calls as u64);
    let peers = LoadPeers::dial(
        &blobs,
        &setup,
        config.peer_threads,
        Duration::from_micros(500),
        wait,
    )
    .map_err(err)?;
    let connected = peers.connected();

    // Warm up, then measure.
    std::thread::sleep(Duration::from_secs(1));
    let rss1 = procstat::rss_bytes().unwrap_or(0);
    let snap = |peers: &LoadPeers, sockets: &[platform::AudioSocket]| {
        let down = peers.packets_received();
        let up: u64 = sockets.iter().map(|s| s.qoe().packets_received).sum();
        (down, up)
    };
    let tids = platform.reactor_thread_ids();
    let t0 = Instant::now();
    let ticks0 = platform.tick_totals();
    let io0 = platform.reactor_io_stats();
    let peer_ticks0 = peers.ticks();
    let pcpu0 = threads_cpu(&tids);
    let cpu0 = procstat::process_cpu().unwrap_or_default();
    let (down0, up0) = snap(&peers, &sockets);
    let (udp_rx0, udp_tx0) = peers.udp();
    std::thread::sleep(config.duration);
    let (down1, up1) = snap(&peers, &sockets);
    let (udp_rx1, udp_tx1) = peers.udp();
    let wall = t0.elapsed();
    let pcpu = threads_cpu(&tids).saturating_sub(pcpu0);
    let cpu = procstat::process_cpu()
        .unwrap_or_default()
        .saturating_sub(cpu0);
    let ticks = platform.tick_totals().since(&ticks0);
    let io1 = platform.reactor_io_stats();
    let peer_ticks = peers.ticks();

    // Tear down.
    peers.stop();
    drop(sockets);
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        platform.shutdown().await;
    });

    let n = connected.max(1) as f64;
    let w = wall.as_secs_f64();
    let expected = n * w * 50.0;
    let loss = |got: u64| (100.0 * (1.0 - got as f64 / expected)).max(0.0);
    let processor_cpu_per_call_pct = 100.0 * pcpu.as_secs_f64() / w / n;
    let late_ticks_pct = ticks.late_pct();
    let peer_late = ratio(peer_ticks.1 - peer_ticks0.1, peer_ticks.0 - peer_ticks0.0);
    Ok(StepResult {
        calls,
        connected,
        wall_s: w,
        processor_cpu_per_call_pct,
        process_cpu_per_call_pct: 100.0 * cpu.as_secs_f64() / w / n,
        tick_busy_per_call_pct: 100.0 * ticks.busy_ns as f64 / 1e9 / w / n,
        capacity_by_cpu: if processor_cpu_per_call_pct > 0.0 {
            100.0 / processor_cpu_per_call_pct
        } else {
            0.0
        },
        late_ticks_pct,
        peer_late_ticks_pct: 100.0 * peer_late,
        loss_up_pct: loss(up1.saturating_sub(up0)),
        loss_down_pct: loss(down1.saturating_sub(down0)),
        rss_per_call_bytes: rss1.saturating_sub(rss0) as f64 / n,
        udp_per_media_down: ratio(udp_rx1.saturating_sub(udp_rx0), down1.saturating_sub(down0)),
        udp_per_media_up: ratio(udp_tx1.saturating_sub(udp_tx0), up1.saturating_sub(up0)),
        passed: late_ticks_pct < 0.1 && connected == calls,
        reactor: ReactorStep {
            turns_per_s: (io1.turns - io0.turns) as f64 / w,
            datagrams_per_turn: ratio(io1.datagrams_in - io0.datagrams_in, io1.turns - io0.turns),
            long_turns: io1.long_turns - io0.long_turns,
            preempted_turns: io1.preempted_turns - io0.preempted_turns,
            late_wakeups: io1.late_wakeups - io0.late_wakeups,
            max_turn_ms: io1.max_turn.as_secs_f64() * 1e3,
            max_oversleep_ms: io1.max_oversleep.as_secs_f64() * 1e3,
        },
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Runs the load test (one step, or a ramp). Call outside any tokio runtime.
pub fn run(
    config: &LoadtestConfig,
    mut progress: impl FnMut(&StepResult),
) -> Result<LoadtestReport, LoadtestError> {
    let started = Instant::now();
    let load_average_before = load_average();
    let (opus_bound, opus_bound_interleaved) = if config.codec == Codec::Opus16k {
        // Every state sees at least 20 frames.
        let states = config.calls.max(1);
        (
            Some(measure_opus(&config.opus, 2000, 1)?),
            Some(measure_opus(&config.opus, 2000.max(20 * states), states)?),
        )
    } else {
        (None, None)
    };
    let mut steps = Vec::new();
    let mut n = config.calls.max(1);
    loop {
        let step = run_step(config, n)?;
        progress(&step);
        steps.push(step);
        let next = ((n as f64) * config.ramp_factor).ceil() as usize;
        if !config.ramp
            || !step.passed
            || next > config.max_calls
            || started.elapsed() + config.duration * 2 > config.time_budget
        {
            break;
        }
        n = next.max(n + 1);
    }
    let threads = config.processor_threads.max(1);
    let max_calls_per_core = steps
        .iter()
        .filter(|s| s.passed)
        .map(|s| s.calls / threads)
        .max();
    // Only steps that carried their calls count: an overloaded step drops datagrams,
    // does less work per call, and would overstate the capacity.
    let passed = steps.iter().filter(|s| s.passed);
    let capacity_by_cpu = if steps.iter().any(|s| s.passed) {
        passed.map(|s| s.capacity_by_cpu).fold(0.0, f64::max)
    } else {
        steps.iter().map(|s| s.capacity_by_cpu).fold(0.0, f64::max)
    };
    let opus_efficiency = opus_bound.map(|b| capacity_by_cpu / b.calls_per_core);
    let opus_efficiency_interleaved =
        opus_bound_interleaved.map(|b| capacity_by_cpu / b.calls_per_core);
    Ok(LoadtestReport {
        codec: config.codec.to_string(),
        processor_threads: threads,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average_before,
        steps,
        max_calls_per_core,
        capacity_by_cpu,
        opus_bound,
        opus_efficiency,
        opus_bound_interleaved,
        opus_efficiency_interleaved,
    })
}

impl LoadtestReport {
    /// A human-readable table.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "codec {}, {} processor thread(s), {} CPUs, load average before {:?}\n\
             {:>6} {:>5} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>8} {:>6} {:>6} {}\n",
            self.codec,
            self.processor_threads,
            self.cpus,
            self.load_average_before,
            "calls",
            "conn",
            "procCPU%",
            "allCPU%",
            "tickCPU%",
            "cap/core",
            "late%",
            "peerLt%",
            "lossUp%",
            "lossDn%",
            "KiB/call",
            "udpDn",
            "udpUp",
            "pass"
        );
        for st in &self.steps {
            s.push_str(&format!(
                "{:>6} {:>5} {:>9.3} {:>9.3} {:>9.3} {:>9.0} {:>8.3} {:>8.3} {:>7.3} {:>7.3} {:>8.1} {:>6.3} {:>6.3} {}\n",
                st.calls,
                st.connected,
                st.processor_cpu_per_call_pct,
                st.process_cpu_per_call_pct,
                st.tick_busy_per_call_pct,
                st.capacity_by_cpu,
                st.late_ticks_pct,
                st.peer_late_ticks_pct,
                st.loss_up_pct,
                st.loss_down_pct,
                st.rss_per_call_bytes / 1024.0,
                st.udp_per_media_down,
                st.udp_per_media_up,
                if st.passed { "yes" } else { "no" }
            ));
            {
                let r = st.reactor;
                s.push_str(&format!(
                    "       reactor: {:.0} turns/s, {:.1} datagrams per turn; turns > 4 ms: {} working, {} preempted (longest {:.1} ms); wake-ups > 4 ms late: {} (longest {:.1} ms late)\n",
                    r.turns_per_s,
                    r.datagrams_per_turn,
                    r.long_turns,
                    r.preempted_turns,
                    r.max_turn_ms,
                    r.late_wakeups,
                    r.max_oversleep_ms,
                ));
            }
        }
        s.push_str(&format!(
            "largest N with late ticks < 0.1 %: {} per core; capacity by CPU: {:.0} calls per core\n",
            self.max_calls_per_core
                .map_or("none".to_string(), |n| n.to_string()),
            self.capacity_by_cpu
        ));
        if let (Some(b), Some(e)) = (self.opus_bound, self.opus_efficiency) {
            s.push_str(&format!(
                "libopus: encode {:.1} us + decode {:.1} us per frame -> bound {:.0} calls per core; \
                 Opus path at {:.0} % of the bound\n",
                b.encode_us,
                b.decode_us,
                b.calls_per_core,
                100.0 * e
            ));
        }
        if let (Some(b), Some(e)) = (
            self.opus_bound_interleaved,
            self.opus_efficiency_interleaved,
        ) {
            s.push_str(&format!(
                "libopus over {} states in turn: encode {:.1} us + decode {:.1} us per frame -> \
                 bound {:.0} calls per core; Opus path at {:.0} % of it\n",
                self.steps.first().map_or(0, |st| st.calls),
                b.encode_us,
                b.decode_us,
                b.calls_per_core,
                100.0 * e
            ));
        }
        s
    }
}
