//! # harness: the tooling around the media engine
//!
//! **Job:** everything that exercises, measures or demonstrates the engine without
//! being part of it: far ends that call a processor ([`peer`], [`farend`], the load
//! peers), the load tool ([`loadtest`]; over WebRTC: [`webrtc_load`]; over the
//! platforms' media WebSockets: [`ws_load`]), the jitter-buffer evaluation
//! ([`eval`]) and its PESQ-WB scores ([`pesq`]), test signals and echo measures
//! ([`signal`]), the end-to-end demo ([`demo`], [`local`]) and its report files
//! ([`report`]). Nothing in the libraries depends on it; the
//! command line and the tests do.
//!
//! # Data flow
//!
//! ```text
//!  peer / load peers / far end ══QUIC══> media processor (platform) ──> bot
//!      signal or WAV ─> call media ─> link            link ─> call media ─> AudioSocket
//!      recording <─ call media <─ link                 <────── paced echo ───────┘
//!  loadtest: N calls, CPU per call (procstat), late ticks, health
//!  demo:     emulator (Graph) + bot host + far end (impaired network) ─> report.json, plot.png, WAVs
//! ```
//!
//! # Example: a processor with an echo bot and a reference far end
//!
//! ```no_run
//! use harness::peer::{Peer, PeerConfig};
//! use platform::{FrameDelivery, MediaPlatform, MediaPlatformSettings, ServerTrust};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let platform = MediaPlatform::start(MediaPlatformSettings::dev_loopback())?;
//! let echo = FrameDelivery::Callback(Box::new(|frame, tx| {
//!     let _ = tx.enqueue(&frame.samples);
//! }));
//! let (blob, _socket) = platform.create_media_configuration_with(uuid::Uuid::new_v4(), echo)?;
//! let config = PeerConfig::new(ServerTrust::pinned(platform.certificate_fingerprint()));
//! let report = Peer::connect(&blob, config).await?.finish().await;
//! let delay = report.echo_delay(std::time::Duration::from_secs(1));
//! println!("echo after {delay:?}");
//! # Ok(()) }
//! ```

pub mod demo;
pub mod eval;
mod farcall;
pub mod farend;
mod loadpeer;
pub mod loadtest;
pub mod local;
pub mod peer;
pub mod pesq;
pub mod procstat;
pub mod relay;
pub mod report;
pub mod signal;
mod task_load;
pub mod webrtc_load;
pub mod ws_load;

use std::sync::{Mutex, MutexGuard};

pub use demo::{DemoConfig, DemoReport, DemoSecond};
pub use farend::{FarEndConfig, FarEndReport, FarEndStats, QuicFarEnd};
pub use local::{Local, LocalConfig, LocalError};
pub use peer::{Peer, PeerConfig, PeerError, PeerReport, PeerSource, PeerStats};

/// Locks `m`, taking the data of a poisoned mutex as it is (a panicked holder leaves
/// counters, not invariants, behind).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
