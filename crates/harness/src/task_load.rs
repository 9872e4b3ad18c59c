//! What the load steps over WebRTC ([`crate::webrtc_load`]) and the platforms' media
//! WebSockets ([`crate::ws_load`]) share: their calls run on tokio tasks (not on the
//! reactor), the processor on one tokio worker thread of its own, the peers on
//! others; one measured window gives the QUIC step's figures where they apply.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use platform::{AudioSocket, FrameDelivery, MediaPlatform};
use tokio::runtime::Runtime;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::loadtest::{LoadtestError, StepResult, err};
use crate::procstat;

/// Warm-up before measuring: connection set-up and the jitter buffers' start.
pub(crate) const WARMUP: Duration = Duration::from_millis(1500);

/// What one peer counted over its whole call.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PeerCount {
    /// Frames it sent.
    pub sent: u64,
    /// Frames it received from the processor.
    pub received: u64,
    /// Frames it sent more than 5 ms after their slot.
    pub late: u64,
    /// The call counts as connected.
    pub connected: bool,
}

/// The two runtimes of a step and the calls' sockets the processor hands out.
pub(crate) struct TaskLoad {
    /// The processor's runtime: one worker thread named `proc_name`.
    pub proc_rt: Runtime,
    peers_rt: Runtime,
    proc_name: String,
    sockets: Arc<Mutex<Vec<AudioSocket>>>,
    rss0: u64,
}

impl TaskLoad {
    /// Runtimes for a processor thread named `proc_name` (at most 15 bytes) and
    /// `peer_threads` peer threads named `peer_name`.
    pub fn new(
        proc_name: &str,
        peer_name: &str,
        peer_threads: usize,
    ) -> Result<Self, LoadtestError> {
        let runtime = |name: &str, threads: usize| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name(name)
                .enable_all()
                .build()
                .map_err(err)
        };
        Ok(Self {
            proc_rt: runtime(proc_name, 1)?,
            peers_rt: runtime(peer_name, peer_threads)?,
            proc_name: proc_name.to_owned(),
            sockets: Arc::default(),
            rss0: procstat::rss_bytes().unwrap_or(0),
        })
    }

    /// The echo bot's delivery: every frame sent back as it is read.
    pub fn echo() -> FrameDelivery {
        FrameDelivery::Callback(Box::new(|f, tx| {
            let _ = tx.enqueue(&f.samples);
        }))
    }

    /// Keeps each call's socket as the processor's acceptor hands the calls out
    /// (the calls' received packets are counted from them; dropping one hangs up).
    /// Call inside the processor's runtime.
    pub fn keep_calls<T: Send + 'static>(
        &self,
        mut incoming: UnboundedReceiver<T>,
        socket: fn(T) -> AudioSocket,
    ) {
        let kept = self.sockets.clone();
        tokio::spawn(async move {
            while let Some(call) = incoming.recv().await {
                kept.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(socket(call));
            }
        });
    }

    /// Starts `calls` peers on the peers' runtime, one every 0.5 ms (the calls' 20 ms
    /// grids spread over the period).
    pub fn dial<F, Fut>(&self, calls: usize, call: F) -> Vec<JoinHandle<Result<PeerCount, String>>>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<PeerCount, String>> + Send + 'static,
    {
        (0..calls)
            .map(|i| {
                let call = call(i);
                self.peers_rt.spawn(async move {
                    tokio::time::sleep(Duration::from_micros(500 * i as u64)).await;
                    call.await
                })
            })
            .collect()
    }

    /// Waits out the warm-up, measures for `duration`, waits for the peers and hangs
    /// up the processor's side of every call; the step's figures.
    pub fn measure(
        &self,
        platform: &MediaPlatform,
        peers: Vec<JoinHandle<Result<PeerCount, String>>>,
        duration: Duration,
    ) -> StepResult {
        let calls = peers.len();
        let received = || -> u64 {
            self.sockets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|s| s.qoe().packets_received)
                .sum()
        };
        std::thread::sleep(WARMUP + Duration::from_millis(calls as u64 / 2));
        let rss1 = procstat::rss_bytes().unwrap_or(0);
        let tids = procstat::threads_named(&self.proc_name);
        let cpu0 = procstat::threads_cpu(&tids);
        let all0 = procstat::process_cpu().unwrap_or_default();
        let ticks0 = platform.tick_totals();
        let up0 = received();
        let t0 = Instant::now();
        std::thread::sleep(duration);
        let wall = t0.elapsed().as_secs_f64();
        let cpu = procstat::threads_cpu(&tids)
            .saturating_sub(cpu0)
            .as_secs_f64();
        let all = procstat::process_cpu()
            .unwrap_or_default()
            .saturating_sub(all0)
            .as_secs_f64();
        let ticks = platform.tick_totals().since(&ticks0);
        let up = received().saturating_sub(up0);
        let done: Vec<PeerCount> = self.peers_rt.block_on(async {
            let mut out = Vec::with_capacity(peers.len());
            for h in peers {
                if let Ok(Ok(count)) = h.await {
                    out.push(count);
                }
            }
            out
        });
        self.sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let connected = done.iter().filter(|d| d.connected).count();
        let n = connected.max(1) as f64;
        let (sent, back, late) = done.iter().fold((0, 0, 0), |a, d| {
            (a.0 + d.sent, a.1 + d.received, a.2 + d.late)
        });
        let per_call = 100.0 * cpu / wall / n;
        let late_ticks_pct = ticks.late_pct();
        StepResult {
            calls,
            connected,
            wall_s: wall,
            processor_cpu_per_call_pct: per_call,
            process_cpu_per_call_pct: 100.0 * all / wall / n,
            tick_busy_per_call_pct: 100.0 * ticks.busy_ns as f64 / 1e9 / wall / n,
            capacity_by_cpu: if per_call > 0.0 {
                100.0 / per_call
            } else {
                0.0
            },
            late_ticks_pct,
            peer_late_ticks_pct: 100.0 * late as f64 / sent.max(1) as f64,
            loss_up_pct: (100.0 * (1.0 - up as f64 / (n * wall * 50.0))).max(0.0),
            loss_down_pct: (100.0 * (1.0 - back as f64 / sent.max(1) as f64)).max(0.0),
            rss_per_call_bytes: rss1.saturating_sub(self.rss0) as f64 / n,
            passed: late_ticks_pct < 0.1 && connected == calls,
            ..StepResult::default()
        }
    }
}
