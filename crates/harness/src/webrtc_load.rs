//! The load tool over WebRTC (`loadtest --transport webrtc`): N calls between one
//! processor (the media platform's echo bot behind the WHIP endpoint, crate
//! `webrtc-link`) and N str0m peers ([`webrtc_link::peer::WhipPeer`]) over loopback,
//! in one process, and what they cost; the same figures as the QUIC steps
//! ([`crate::loadtest`]) where they apply.
//!
//! The processor (platform, WHIP endpoint, every call's str0m link and `CallMedia`)
//! runs on one tokio worker thread, `webrtc-proc`: WHIP calls run on tokio tasks with
//! a socket each, not on the reactor (docs/webrtc.md). The peers run on another,
//! `webrtc-peers`. After a warm-up, for `duration`:
//!
//! - **processor CPU per call**: the `webrtc-proc` thread's CPU / wall time / N;
//! - **late ticks**: the platform's tick totals (ticks > 5 ms late), as for QUIC;
//! - **loss up**: 1 − packets the calls received / 50 per second per call;
//! - **loss down**: 1 − echo packets the peers received / frames they sent, over the
//!   whole calls (start-up included);
//! - **peer late**: peer frames sent > 5 ms after their slot.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::{AudioSocket, FrameDelivery, MediaPlatform, MediaPlatformSettings};
use webrtc_link::peer::{PeerScript, WhipPeer};
use webrtc_link::{AudioCodec, PlatformCalls, WhipConfig, WhipServer};

use crate::loadtest::{LoadtestError, StepResult, err};
use crate::procstat;
use crate::signal::SignalGenerator;

/// Warm-up before measuring: connection set-up and the jitter buffers' start.
const WARMUP: Duration = Duration::from_millis(1500);

/// Thread ids of this process whose name is `name`.
fn threads_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim() == name).then_some(tid)
        })
        .collect()
}

fn cpu_of(tids: &[u32]) -> Duration {
    tids.iter().filter_map(|&t| procstat::thread_cpu(t)).sum()
}

/// One peer's call: POST the offer, run the script, DELETE.
async fn peer_call(url: String, script: Arc<PeerScript>) -> Result<(u64, u64, u64), String> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut peer =
        WhipPeer::new(AudioCodec::Opus, local, Instant::now(), false).map_err(|e| e.to_string())?;
    let http = reqwest::Client::new();
    let res = http
        .post(&url)
        .header("Content-Type", "application/sdp")
        .body(peer.offer().to_owned())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = res.text().await.map_err(|e| e.to_string())?;
    if status.as_u16() != 201 {
        return Err(format!("offer answered {status}: {}", answer.trim()));
    }
    peer.accept_answer(&answer).map_err(|e| e.to_string())?;
    let run = peer.run(socket, &script).await.map_err(|e| e.to_string())?;
    if let Some(location) = location
        && let Ok(at) = reqwest::Url::parse(&url).and_then(|u| u.join(&location))
    {
        let _ = http.delete(at).send().await;
    }
    Ok((
        run.peer.frames_sent(),
        run.peer.packets_received(),
        run.late_sends,
    ))
}

/// Runs one step of `calls` WebRTC calls (Opus both ways) measured for `duration`.
/// Call outside any tokio runtime.
pub fn run_webrtc_step(calls: usize, duration: Duration) -> Result<StepResult, LoadtestError> {
    let proc_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("webrtc-proc")
        .enable_all()
        .build()
        .map_err(err)?;
    let peers_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("webrtc-peers")
        .enable_all()
        .build()
        .map_err(err)?;
    let rss0 = procstat::rss_bytes().unwrap_or(0);
    let sockets: Arc<Mutex<Vec<AudioSocket>>> = Arc::default();
    let kept = sockets.clone();
    let (server, platform) = proc_rt.block_on(async {
        let mut settings = MediaPlatformSettings::dev_loopback();
        settings.codecs = vec![platform::Codec::Opus16k];
        settings.limits.max_sessions = calls + 16;
        settings.pacer.prebuffer_frames = 2;
        settings.reactor_threads = 1;
        let platform = Arc::new(MediaPlatform::start(settings).map_err(err)?);
        let echo = |_: &webrtc_link::WhipCallInfo| {
            FrameDelivery::Callback(Box::new(|f, tx| {
                let _ = tx.enqueue(&f.samples);
            }))
        };
        let (acceptor, mut incoming) = PlatformCalls::new(platform.clone(), echo);
        let config = WhipConfig {
            max_calls: calls + 16,
            ..WhipConfig::default()
        };
        let addr = "127.0.0.1:0".parse().map_err(err)?;
        let server = WhipServer::bind(addr, config, Arc::new(acceptor))
            .await
            .map_err(err)?;
        tokio::spawn(async move {
            while let Some(call) = incoming.recv().await {
                kept.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(call.socket);
            }
        });
        Ok::<_, LoadtestError>((server, platform))
    })?;
    let script = Arc::new(PeerScript {
        source: SignalGenerator::speech(11).take_seconds(2.0),
        frames: ((WARMUP + duration).as_secs_f64() * 50.0) as u64 + 25,
        tone: None,
        keep_sent: false,
        linger: Duration::from_millis(300),
        deadline: WARMUP + duration + Duration::from_secs(10),
    });
    let url = server.url();
    let handles: Vec<_> = (0..calls)
        .map(|i| {
            let (url, script) = (url.clone(), script.clone());
            peers_rt.spawn(async move {
                // One dial every 0.5 ms: the calls' 20 ms grids spread over the period.
                tokio::time::sleep(Duration::from_micros(500 * i as u64)).await;
                peer_call(url, script).await
            })
        })
        .collect();
    let received = |s: &Mutex<Vec<AudioSocket>>| -> u64 {
        s.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|s| s.qoe().packets_received)
            .sum()
    };
    std::thread::sleep(WARMUP + Duration::from_millis(calls as u64 / 2));
    let rss1 = procstat::rss_bytes().unwrap_or(0);
    let tids = threads_named("webrtc-proc");
    let cpu0 = cpu_of(&tids);
    let all0 = procstat::process_cpu().unwrap_or_default();
    let ticks0 = platform.tick_totals();
    let up0 = received(&sockets);
    let t0 = Instant::now();
    std::thread::sleep(duration);
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_of(&tids).saturating_sub(cpu0).as_secs_f64();
    let all = procstat::process_cpu()
        .unwrap_or_default()
        .saturating_sub(all0)
        .as_secs_f64();
    let ticks = platform.tick_totals().since(&ticks0);
    let up = received(&sockets).saturating_sub(up0);
    let results: Vec<_> = peers_rt.block_on(async {
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await);
        }
        out
    });
    let done: Vec<(u64, u64, u64)> = results
        .into_iter()
        .filter_map(|r| r.ok().and_then(Result::ok))
        .collect();
    drop(sockets);
    proc_rt.block_on(async move {
        server.shutdown().await;
    });
    drop(platform);
    let connected = done.iter().filter(|d| d.0 > 0).count();
    let n = connected.max(1) as f64;
    let (sent, back, late) = done
        .iter()
        .fold((0, 0, 0), |a, d| (a.0 + d.0, a.1 + d.1, a.2 + d.2));
    let per_call = 100.0 * cpu / wall / n;
    let late_ticks_pct = ticks.late_pct();
    Ok(StepResult {
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
        rss_per_call_bytes: rss1.saturating_sub(rss0) as f64 / n,
        passed: late_ticks_pct < 0.1 && connected == calls,
        ..StepResult::default()
    })
}
