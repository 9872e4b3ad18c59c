//! Settings of a [`MediaPlatform`](crate::MediaPlatform).

use std::net::SocketAddr;

use media_core::call::PacerSettings;
use media_core::codec::{Codec, OpusConfig};
use media_core::playout::ReceiveConfig;
use transport::{ServerIdentity, TransportSettings};

use crate::health::HealthSettings;

/// The certificate the media server presents.
#[derive(Debug, Clone)]
pub enum Certificate {
    /// A certificate chain and key (e.g. from PEM files).
    Identity(ServerIdentity),
    /// A development self-signed certificate for the public host (and `localhost`);
    /// peers pin its fingerprint ([`MediaPlatform::certificate_fingerprint`](crate::MediaPlatform::certificate_fingerprint)).
    DevSelfSigned,
}

/// Capacity limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Media sessions (waiting or connected) the platform holds at most (default 10 000).
    pub max_sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
        }
    }
}

/// Everything [`MediaPlatform::start`](crate::MediaPlatform::start) needs.
#[derive(Debug, Clone)]
pub struct MediaPlatformSettings {
    /// UDP address the QUIC media server binds (port 0: any free port).
    pub bind: SocketAddr,
    /// Host name or address peers use to reach the processor (the blob's `mpUri` host).
    pub public_host: String,
    /// Port in the `mpUri`; `None` = the bound port (right unless behind a NAT/LB).
    pub public_port: Option<u16>,
    /// The server certificate.
    pub certificate: Certificate,
    /// Capacity limits.
    pub limits: Limits,
    /// Codecs the platform accepts, most preferred first.
    pub codecs: Vec<Codec>,
    /// Opus encoder settings for calls that use Opus.
    pub opus: OpusConfig,
    /// Receive pipeline (jitter buffer) settings.
    pub receive: ReceiveConfig,
    /// Paced-sender settings.
    pub pacer: PacerSettings,
    /// Health thresholds.
    pub health: HealthSettings,
    /// QUIC timeouts and buffers (the idle timeout decides how fast a vanished peer is
    /// detected).
    pub transport: TransportSettings,
    /// Reactor threads, each with its own `SO_REUSEPORT` socket on the port and the
    /// calls the kernel hashes to it; 0 (default): one per available CPU.
    pub reactor_threads: usize,
}

impl MediaPlatformSettings {
    /// Loopback development settings: `127.0.0.1`, any free port, a self-signed
    /// certificate, PCM preferred then Opus, default pipelines.
    pub fn dev_loopback() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_host: "127.0.0.1".into(),
            public_port: None,
            certificate: Certificate::DevSelfSigned,
            limits: Limits::default(),
            codecs: vec![Codec::Pcm16k, Codec::Opus16k],
            opus: OpusConfig::default(),
            receive: ReceiveConfig::default(),
            pacer: PacerSettings::default(),
            health: HealthSettings::default(),
            transport: TransportSettings::default(),
            reactor_threads: 0,
        }
    }
}
