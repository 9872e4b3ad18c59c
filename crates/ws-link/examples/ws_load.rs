//! Load of the platforms' media WebSocket calls: N clients playing a platform
//! (`--dialect vonage|twilio|acs`) each stream 20 ms frames at 50 per second to the
//! endpoint, whose echo bot sends them back through each call's jitter buffer and
//! paced sender. The endpoint runs on one tokio worker thread of its own; its CPU
//! time (from `/proc`) over the measured window gives the cost per call and the calls
//! one core carries. The clients run on other threads and are not counted.
//!
//! ```text
//! cargo run --release -p ws-link --example ws_load -- --calls 200 --seconds 10 --dialect twilio
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::{SinkExt, StreamExt};
use platform::{FrameDelivery, MediaPlatform, MediaPlatformSettings};
use tokio_tungstenite::tungstenite::Message;
use ws_link::{Dialect, PlatformStreams, WsConfig, WsServer};

struct Args {
    calls: usize,
    seconds: f64,
    dialect: Dialect,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        calls: 100,
        seconds: 10.0,
        dialect: Dialect::Vonage,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--calls" => a.calls = value.parse().map_err(|e| format!("--calls {value}: {e}"))?,
            "--seconds" => {
                a.seconds = value
                    .parse()
                    .map_err(|e| format!("--seconds {value}: {e}"))?
            }
            "--dialect" => a.dialect = value.parse()?,
            other => {
                return Err(format!(
                    "unknown option {other} (--calls, --seconds, --dialect)"
                ));
            }
        }
    }
    if a.calls == 0 || !a.seconds.is_finite() || a.seconds <= 0.0 {
        return Err("--calls and --seconds must be positive".into());
    }
    Ok(a)
}

fn start_message(d: Dialect) -> &'static str {
    match d {
        Dialect::Acs => {
            r#"{"kind":"AudioMetadata","audioMetadata":{"subscriptionId":"s","encoding":"PCM","sampleRate":16000,"channels":1,"length":640}}"#
        }
        Dialect::Twilio => {
            r#"{"event":"start","start":{"streamSid":"MZ1","callSid":"CA1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#
        }
        Dialect::Vonage => {
            r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#
        }
    }
}

/// One 20 ms frame of a quiet tone as the platform sends it.
fn frame_message(d: Dialect, k: u64) -> Message {
    let pcm: Vec<i16> = (0..320)
        .map(|i| (((k * 320 + i) as f64 * 0.3).sin() * 3000.0) as i16)
        .collect();
    match d {
        Dialect::Vonage => Message::binary(
            pcm.iter()
                .flat_map(|s| s.to_le_bytes())
                .collect::<Vec<u8>>(),
        ),
        Dialect::Acs => Message::text(format!(
            r#"{{"kind":"AudioData","audioData":{{"participantRawID":"8:acs:1","data":"{}","silent":false}}}}"#,
            B64.encode(
                pcm.iter()
                    .flat_map(|s| s.to_le_bytes())
                    .collect::<Vec<u8>>()
            )
        )),
        Dialect::Twilio => {
            let law: Vec<u8> = pcm
                .iter()
                .step_by(2)
                .map(|&s| ws_link::mulaw::encode(s))
                .collect();
            Message::text(format!(
                r#"{{"event":"media","media":{{"track":"inbound","timestamp":"{}","payload":"{}"}},"streamSid":"MZ1"}}"#,
                k * 20,
                B64.encode(law)
            ))
        }
    }
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ws_load: {e}");
            std::process::exit(2);
        }
    };
    let server_tid = Arc::new(AtomicU64::new(0));
    let tid = server_tid.clone();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ws-endpoint")
        .on_thread_start(move || {
            // The worker (and the blocking pool, started later) record their tid: the
            // first is the worker.
            let _ = tid.compare_exchange(
                0,
                u64::from(harness::procstat::current_tid().unwrap_or(0)),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        })
        .enable_all()
        .build()
        .expect("endpoint runtime");
    let (server, _platform) = server_rt.block_on(async {
        let mut settings = MediaPlatformSettings::dev_loopback();
        settings.reactor_threads = 1;
        settings.limits.max_sessions = a.calls + 10;
        settings.health.overload = f64::INFINITY;
        settings.health.overload_late_pct = f64::INFINITY;
        let platform = Arc::new(MediaPlatform::start(settings).expect("platform"));
        let echo = |_: &ws_link::StreamInfo| {
            FrameDelivery::Callback(Box::new(|f, tx| {
                let _ = tx.enqueue(&f.samples);
            }))
        };
        let (streams, mut incoming) = PlatformStreams::new(platform.clone(), echo);
        let server = WsServer::bind(
            "127.0.0.1:0".parse().expect("addr"),
            WsConfig::default(),
            Arc::new(streams),
        )
        .await
        .expect("bind");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(call) = incoming.recv().await {
                held.push(call);
            }
        });
        (server, platform)
    });
    let url = server.url(a.dialect);
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ws-clients")
        .enable_all()
        .build()
        .expect("client runtime");
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let warmup = Duration::from_secs(2);
    let window = Duration::from_secs_f64(a.seconds);
    client_rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..a.calls {
            let (url, sent, received, dialect) = (url.clone(), sent.clone(), received.clone(), a.dialect);
            tasks.push(tokio::spawn(async move {
                // Spread the calls' 20 ms grids over the period.
                tokio::time::sleep(Duration::from_micros((c as u64 * 20_000) / 97 % 20_000)).await;
                let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect");
                let (mut tx, mut rx) = ws.split();
                tx.send(Message::text(start_message(dialect))).await.expect("start");
                let reader = tokio::spawn(async move {
                    while let Some(Ok(m)) = rx.next().await {
                        if matches!(m, Message::Text(_) | Message::Binary(_)) {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                let end = tokio::time::Instant::now() + warmup + window + Duration::from_millis(500);
                let mut k = 0u64;
                while tokio::time::Instant::now() < end {
                    tick.tick().await;
                    if tx.send(frame_message(dialect, k)).await.is_err() {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    k += 1;
                }
                let _ = tx.send(Message::Close(None)).await;
                let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
            }));
        }
        tokio::time::sleep(warmup).await;
        let tid = server_tid.load(Ordering::SeqCst) as u32;
        let cpu0 = harness::procstat::thread_cpu(tid).unwrap_or_default();
        let (s0, r0, t0) = (sent.load(Ordering::Relaxed), received.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(window).await;
        let cpu1 = harness::procstat::thread_cpu(tid).unwrap_or_default();
        let (s1, r1, t1) = (sent.load(Ordering::Relaxed), received.load(Ordering::Relaxed), Instant::now());
        let wall = (t1 - t0).as_secs_f64();
        let cpu = (cpu1 - cpu0).as_secs_f64();
        let per_call_pct = cpu / wall / a.calls as f64 * 100.0;
        let rx_rate = (r1 - r0) as f64 / wall / a.calls as f64;
        let tx_rate = (s1 - s0) as f64 / wall / a.calls as f64;
        println!(
            "{} calls over {} ({wall:.1} s measured): endpoint thread CPU {:.1} % of a core, {per_call_pct:.3} % per call -> {:.0} calls per core; per call {tx_rate:.1} frames/s in, {rx_rate:.1} out; stats {:?}",
            a.calls,
            a.dialect,
            cpu / wall * 100.0,
            100.0 / per_call_pct,
            server.stats()
        );
        for t in tasks {
            let _ = t.await;
        }
    });
}
