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

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::{MediaPlatform, MediaPlatformSettings};
use webrtc_link::peer::{PeerScript, WhipPeer};
use webrtc_link::{AudioCodec, PlatformCalls, WhipConfig, WhipServer};

use crate::loadtest::{LoadtestError, StepResult, err};
use crate::signal::SignalGenerator;
use crate::task_load::{PeerCount, TaskLoad, WARMUP};

/// One peer's call: POST the offer, run the script, DELETE.
async fn peer_call(url: String, script: Arc<PeerScript>) -> Result<PeerCount, String> {
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
    Ok(PeerCount {
        sent: run.peer.frames_sent(),
        received: run.peer.packets_received(),
        late: run.late_sends,
        connected: run.peer.frames_sent() > 0,
    })
}

/// Runs one step of `calls` WebRTC calls (Opus both ways) measured for `duration`.
/// Call outside any tokio runtime.
pub fn run_webrtc_step(calls: usize, duration: Duration) -> Result<StepResult, LoadtestError> {
    let load = TaskLoad::new("webrtc-proc", "webrtc-peers", 1)?;
    let (server, platform) = load.proc_rt.block_on(async {
        let mut settings = MediaPlatformSettings::dev_loopback();
        settings.codecs = vec![platform::Codec::Opus16k];
        settings.limits.max_sessions = calls + 16;
        settings.pacer.prebuffer_frames = 2;
        settings.reactor_threads = 1;
        let platform = Arc::new(MediaPlatform::start(settings).map_err(err)?);
        let (acceptor, incoming) =
            PlatformCalls::new(platform.clone(), |_: &webrtc_link::WhipCallInfo| {
                TaskLoad::echo()
            });
        let config = WhipConfig {
            max_calls: calls + 16,
            ..WhipConfig::default()
        };
        let addr = "127.0.0.1:0".parse().map_err(err)?;
        let server = WhipServer::bind(addr, config, Arc::new(acceptor))
            .await
            .map_err(err)?;
        load.keep_calls(incoming, |call| call.socket);
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
    let peers = load.dial(calls, |_| peer_call(url.clone(), script.clone()));
    let step = load.measure(&platform, peers, duration);
    load.proc_rt.block_on(async move {
        server.shutdown().await;
    });
    Ok(step)
}
