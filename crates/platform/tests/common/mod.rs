//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use harness::PeerConfig;
use media_core::playout::ReceiveConfig;
use platform::{
    AudioEvent, AudioSocket, Codec, Incoming, MediaPlatform, MediaPlatformSettings, QoeStats,
    ServerTrust,
};
use tokio::task::JoinHandle;
use transport::TransportSettings;

/// A jitter buffer that holds a fixed 60 ms: a 60 ms floor absorbs the scheduling
/// jitter of a loaded test machine, and it does not time-stretch, so the echo stays
/// sample-aligned for the correlation checks.
pub fn receive_config() -> ReceiveConfig {
    harness::peer::measuring_receive_config(Duration::from_millis(60))
}

/// Loopback settings with a 2 s idle timeout (fast vanish detection).
pub fn settings() -> MediaPlatformSettings {
    let mut s = MediaPlatformSettings::dev_loopback();
    s.receive = receive_config();
    // The echo bot enqueues each frame as it receives it: 40 ms of slack against
    // its task's scheduling jitter.
    s.pacer.prebuffer_frames = 3;
    s.transport = TransportSettings::default().with_idle_timeout(Duration::from_secs(2));
    s
}

pub fn start() -> MediaPlatform {
    MediaPlatform::start(settings()).unwrap()
}

pub fn peer_config(platform: &MediaPlatform, codec: Codec, send: f64, run: f64) -> PeerConfig {
    let mut c = PeerConfig::new(ServerTrust::pinned(platform.certificate_fingerprint()));
    c.codecs = vec![codec];
    c.send_for = Duration::from_secs_f64(send);
    c.run_for = Duration::from_secs_f64(run);
    c.receive = receive_config();
    c
}

/// What an echo bot saw.
#[derive(Debug, Default)]
pub struct EchoSummary {
    pub frames: u64,
    pub events: Vec<AudioEvent>,
    /// The processor side's QoE figures at the end of the call.
    pub qoe: QoeStats,
}

/// A bot that reads every frame and enqueues it back, until the call ends.
pub fn spawn_echo_bot(mut socket: AudioSocket) -> JoinHandle<EchoSummary> {
    tokio::spawn(async move {
        let mut s = EchoSummary::default();
        while let Some(incoming) = socket.recv().await {
            match incoming {
                Incoming::Frame(f) => {
                    s.frames += 1;
                    let _ = socket.enqueue(&f.samples);
                }
                Incoming::Event(e) => s.events.push(e),
            }
        }
        s.qoe = socket.qoe();
        s
    })
}

/// Held by the tests of one binary that burn CPU (load runs) or judge audio by
/// timing, so that they do not run at the same time on a 2-core machine.
pub static CPU_HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Timing disturbances a jitter buffer went through: concealment events plus
/// time-stretching in 20 ms units. Each can misalign at most one echo segment.
pub fn timing_events(j: &media_core::jitter::JitterStats) -> u64 {
    let stretched = j.inserted_samples_for_deceleration + j.removed_samples_for_acceleration;
    j.concealment_events + stretched.div_ceil(320)
}

/// Polls `f` until true or `timeout`.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
