//! A real call for the bridge tests: a `MediaPlatform` on 127.0.0.1 and a harness `Peer`
//! dialling it over QUIC, with sample-aligned jitter buffers on both sides.
// Each test binary that includes `common` uses a part of this.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use harness::signal::SignalGenerator;
use harness::{Peer, PeerConfig, PeerSource};
use media_core::jitter::JitterConfig;
use media_core::playout::ReceiveConfig;
use platform::{Codec, MediaPlatform, MediaPlatformSettings, ServerTrust};
use transport::TransportSettings;

#[allow(unused_imports)]
pub use harness::PeerReport;

/// A fixed 60 ms jitter buffer that does not time-stretch (as in the platform's echo
/// tests), so the audio stays sample-aligned for exact and per-segment comparisons.
pub fn receive_config() -> ReceiveConfig {
    ReceiveConfig {
        jitter: JitterConfig {
            start_delay: Duration::from_millis(60),
            min_delay: Duration::from_millis(60),
            window: Duration::from_secs(60),
            accelerate_hysteresis: Duration::from_secs(1),
            expand_tolerance: Duration::from_millis(40),
            ..JitterConfig::default()
        },
        ..ReceiveConfig::default()
    }
}

/// The media processor, with [`receive_config`] and a 2 s idle timeout.
pub fn start_platform() -> MediaPlatform {
    let mut s = MediaPlatformSettings::dev_loopback();
    s.receive = receive_config();
    s.transport = TransportSettings::default().with_idle_timeout(Duration::from_secs(2));
    MediaPlatform::start(s).expect("the media platform starts on 127.0.0.1")
}

/// A far end that sends `source` (PCM) for `send` seconds and stays `run` seconds.
pub fn peer_config(
    platform: &MediaPlatform,
    source: SignalGenerator,
    send: f64,
    run: f64,
) -> PeerConfig {
    let mut c = PeerConfig::new(ServerTrust::pinned(platform.certificate_fingerprint()));
    c.codecs = vec![Codec::Pcm16k];
    c.source = PeerSource::Signal(source);
    c.send_for = Duration::from_secs_f64(send);
    c.run_for = Duration::from_secs_f64(run);
    c.receive = receive_config();
    c
}

/// Dials `blob`'s processor with `config`.
pub async fn connect(blob: &platform::MediaSessionConfig, config: PeerConfig) -> Peer {
    Peer::connect(blob, config)
        .await
        .expect("the peer connects to the processor")
}

/// A two-worker tokio runtime (the platform's and the peer's tasks).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A temporary WAV path of this test process.
pub fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("devices-bridge-{}-{tag}.wav", std::process::id()))
}
