//! N WebRTC calls at once against an echo bot behind the WHIP endpoint, in one
//! process over 127.0.0.1, and what the server side costs.
//!
//! The server (media platform, WHIP endpoint, every call's str0m link and `CallMedia`)
//! runs on one tokio worker thread, `whip-proc`; the N peers ([`WhipPeer`], str0m,
//! Opus at 16 kHz both ways) on another, `whip-peers`. After a warm-up the tool
//! measures for `--seconds`: the server thread's CPU per call (percent of one core,
//! from `/proc/self/task/*/stat`), the calls' late ticks (platform tick totals: > 5
//! ms late), and how much of the audio sent came back.
//!
//! ```text
//! cargo run --release -p webrtc-link --example whip_load -- --calls 50 --seconds 5
//! ```
//!
//! [`WhipPeer`]: webrtc_link::peer::WhipPeer

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::{FrameDelivery, MediaPlatform, MediaPlatformSettings};
use webrtc_link::{AudioCodec, PlatformCalls, WhipConfig, WhipServer};

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
    tids.iter()
        .filter_map(|&t| harness::procstat::thread_cpu(t))
        .sum()
}

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls = arg("--calls", 20.0) as usize;
    let seconds = arg("--seconds", 5.0);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("whip-proc")
        .enable_all()
        .build()?;
    let peers_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("whip-peers")
        .enable_all()
        .build()?;
    let (server, platform) = server_rt.block_on(async {
        let mut settings = MediaPlatformSettings::dev_loopback();
        settings.limits.max_sessions = calls + 16;
        settings.reactor_threads = 1;
        let platform = Arc::new(MediaPlatform::start(settings)?);
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
        let server = WhipServer::bind("127.0.0.1:0".parse()?, config, Arc::new(acceptor)).await?;
        // Hold every call's socket until it ends.
        tokio::spawn(async move {
            while let Some(mut call) = incoming.recv().await {
                tokio::spawn(async move { while call.socket.next_event().await.is_some() {} });
            }
        });
        Ok::<_, Box<dyn std::error::Error>>((server, platform))
    })?;
    let url = server.url();
    let warmup = 1.5;
    let handles: Vec<_> = (0..calls)
        .map(|i| {
            let url = url.clone();
            peers_rt.spawn(async move {
                // Spread the calls' 20 ms grids.
                tokio::time::sleep(Duration::from_micros(500 * i as u64)).await;
                common::peer_call(
                    &url,
                    AudioCodec::Opus,
                    seconds + warmup + 0.5,
                    None,
                    false,
                    false,
                )
                .await
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(warmup));
    let tids = threads_named("whip-proc");
    let cpu0 = cpu_of(&tids);
    let ticks0 = platform.tick_totals();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_of(&tids).saturating_sub(cpu0).as_secs_f64();
    let ticks = platform.tick_totals().since(&ticks0);
    let results: Vec<_> = peers_rt.block_on(async {
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await);
        }
        out
    });
    let done: Vec<_> = results.into_iter().filter_map(Result::ok).collect();
    let connected = done
        .iter()
        .filter(|c| c.status == 201 && c.frames_sent > 0)
        .count();
    let sent: u64 = done.iter().map(|c| c.frames_sent).sum();
    let back: u64 = done.iter().map(|c| c.packets_received).sum();
    let late_sends: u64 = done.iter().map(|c| c.late_sends).sum();
    let per_call = 100.0 * cpu / wall / connected.max(1) as f64;
    println!("WebRTC (WHIP, str0m, Opus 16 kHz both ways), {calls} calls, {seconds} s measured:");
    println!("  connected                     {connected}/{calls}");
    println!(
        "  server CPU per call           {per_call:.2} % of a core ({} server thread)",
        tids.len()
    );
    println!(
        "  capacity by CPU               {:.0} calls per core",
        if per_call > 0.0 {
            100.0 / per_call
        } else {
            0.0
        }
    );
    println!(
        "  late ticks (> 5 ms)           {:.3} % of {} ticks",
        ticks.late_pct(),
        ticks.ticks
    );
    println!(
        "  echo packets / frames sent    {:.3} ({back} / {sent}; includes start-up)",
        back as f64 / sent.max(1) as f64
    );
    println!(
        "  peer sends > 5 ms late        {:.3} %",
        100.0 * late_sends as f64 / sent.max(1) as f64
    );
    drop(server);
    Ok(())
}
