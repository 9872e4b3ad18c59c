//! # platform
//!
//! **Job:** the bot-facing real-time media platform. A bot starts one
//! [`MediaPlatform`] (a QUIC media server), asks it for a media configuration per call
//! (the app-hosted media *blob* plus an [`AudioSocket`]), and then reads and writes
//! 20 ms `Pcm16K` frames while the platform runs the jitter buffer, the codecs, the
//! paced sender, QoE and health. It is the open, Linux-native counterpart of
//! Microsoft's `MediaPlatform` / `AudioSocket` / `AudioVideoFramePlayer`. Far ends,
//! the load tool and other tooling live in the `harness` crate.
//!
//! # Data flow
//!
//! ```text
//!  bot                         MediaPlatform (one per process)             peer (far end)
//!  ---                         -------------------------------             --------------
//!  create_media_configuration(call_id)
//!    -> (blob {mpUri quic://host:port/MediaProcessor, mpMediaSessionId, contexts}, AudioSocket)
//!       blob --> Graph create call --> ... --> peer connects to mpUri, Join{mpMediaSessionId}
//!                              SessionTable::admit: registered & not yet joined? else Reject
//!                              Engine::Reactor: a reactor thread runs the call
//!                              Engine::Tasks: accept loop -> one tokio task per call
//!
//!                              each call, every 20 ms (on a fixed grid; late ticks caught up):
//!  recv_frame() / callback <-- ReceivePipeline.poll_frame <- handle_packet <-- QUIC datagrams
//!  enqueue(frame) --> queue --> pacer: 1 frame/tick -> SendPipeline -> poll_packet --> QUIC datagram
//!  next_event()   <-- control (DTMF, dominant/active speakers, send status, stats),
//!                     LowOnFrames, MediaStreamFailure (peer vanished), Ended
//!  qoe()          <-- jitter/loss/RTT/jitter-buffer stats (refreshed 1/s)
//!                              tick time -> LoadMeter -> health task -> Normal/HeavilyLoaded/Overloaded
//! ```
//!
//! # Example: an echo bot
//!
//! ```no_run
//! use platform::{AudioEvent, Incoming, MediaPlatform, MediaPlatformSettings};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let platform = MediaPlatform::start(MediaPlatformSettings::dev_loopback())?;
//! let (blob, mut socket) = platform.create_media_configuration(uuid::Uuid::new_v4())?;
//! println!("blob: {}", blob.to_json());
//! println!("pin: {}", platform.certificate_fingerprint());
//! while let Some(incoming) = socket.recv().await {
//!     match incoming {
//!         // Every received 20 ms frame goes straight back, paced at 50/s.
//!         Incoming::Frame(frame) => { let _ = socket.enqueue(&frame.samples); }
//!         Incoming::Event(AudioEvent::MediaStreamFailure { reason }) => {
//!             eprintln!("media failed: {reason}");
//!         }
//!         Incoming::Event(AudioEvent::ToneReceived { tone, .. }) => println!("DTMF {tone:?}"),
//!         Incoming::Event(other) => println!("{other:?}"),
//!     }
//! }
//! // None: the call ended and its session is freed.
//! # Ok(()) }
//! ```
//!
//! # Engines
//! [`MediaPlatformSettings::engine`] picks how calls run. [`Engine::Reactor`]
//! (default): reactor threads (one per CPU unless
//! [`MediaPlatformSettings::reactor_threads`] says otherwise), each owning a UDP socket
//! on the port (`SO_REUSEPORT`), its QUIC connections (quinn-proto) and their calls'
//! ticks, with a turn's socket I/O batched (`transport::reactor`). [`Engine::Tasks`]:
//! quinn's endpoint, its connection tasks, and one tokio task per call on the caller's
//! runtime. The same [`AudioSocket`] API and the same tests on both; the reactor costs
//! less CPU per call (BENCHMARKS.md).
//!
//! # Realtime safety
//! Per call, codec state, pipelines and buffers are allocated when the peer joins.
//! A tick (receive, playout, pace, send) allocates nothing itself: frames, packets,
//! active-speaker lists and the send queue are fixed-size; the transport allocates one
//! `Bytes` per sent datagram. Frames reach the bot through a bounded channel (dropped
//! and counted when the bot falls behind) or a callback on the call task. Health comes
//! from measured tick time ([`health`]), never from guesses.

pub(crate) mod call;
pub mod error;
pub mod health;
mod platform;
pub mod settings;
mod socket;

pub use error::{ControlError, PlatformError};
pub use health::{Health, HealthReport, HealthSettings, TickTotals};
pub use platform::MediaPlatform;
pub use settings::{Certificate, Limits, MediaPlatformSettings};
pub use socket::{AudioSocket, CallState, FrameCallback, FrameDelivery, Incoming, QoeStats};

// Re-exported so bots need not depend on the lower crates for the common types.
pub use media_blob::{MediaSessionConfig, MpUri};
pub use media_core::call::{
    AudioEvent, AudioFrame, AudioSender, EnqueueError, IdlePolicy, PacerSettings,
};
pub use media_core::codec::Codec;
pub use media_core::control::{
    ActiveSpeakers, Control, DtmfTone, MAX_ACTIVE_SPEAKERS, QualityReport, SendStatus,
};
pub use media_core::frame::Pcm16kFrame;
pub use media_core::link::CloseReason;
pub use media_core::time::Ticks100ns;
pub use transport::{CertFingerprint, ServerIdentity, ServerTrust};

// The zero-allocation test of a call (`call_tests.rs`) counts with this allocator.
#[cfg(test)]
#[global_allocator]
static GLOBAL: media_core::alloc_count::CountingAllocator =
    media_core::alloc_count::CountingAllocator;
