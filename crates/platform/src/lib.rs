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
//!                              the reactor thread the peer hashed to runs its PlatformCall
//!
//!                              each call (media_core's CallMedia; 20 ms grids, stalls caught up):
//!  recv_frame() / callback <-- jitter buffer, playout <-- packets <-- the call's link (QUIC)
//!  enqueue(frame) --> send queue --> pacer: 1 frame/tick -> encode --> the call's link
//!  send_dtmf()    --> command queue --> the call's next tick --> the link's control
//!  next_event()   <-- control (DTMF, dominant/active speakers, send status, reports),
//!                     LowOnFrames, MediaStreamFailure (peer vanished), Ended
//!  qoe()          <-- the media's and the link's statistics (refreshed 1/s)
//!                              reactor busy time, late ticks -> health task -> Normal/HeavilyLoaded/Overloaded
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
//! # Threads
//! Calls run on reactor threads (`transport::reactor`; one per CPU unless
//! [`MediaPlatformSettings::reactor_threads`] says otherwise), each owning a UDP socket
//! on the port (`SO_REUSEPORT`), its QUIC connections and their calls, with a turn's
//! socket I/O batched. Each call is a `PlatformCall`: media-core's `CallMedia` behind
//! the link seam, handing frames and events to the bot. The bot's own code runs
//! wherever the bot likes (tokio tasks, threads); a frame callback runs on the reactor
//! thread and must return quickly. The platform's health task needs a tokio runtime.
//!
//! # Realtime safety
//! Per call, codec state, pipelines and buffers are allocated when the peer joins.
//! A tick (receive, playout, pace, send) allocates nothing: frames, packets,
//! active-speaker lists and the send queue are fixed-size (proved by a counting
//! allocator on the real `PlatformCall`, PCM and Opus, with loss and reordering); the
//! QUIC link allocates one buffer per sent datagram (quinn-proto takes ownership).
//! Frames reach the bot through a bounded channel (dropped and counted when the bot
//! falls behind) or a callback. Health comes from measured busy time ([`health`]),
//! never from guesses.

pub(crate) mod call;
pub mod error;
pub mod health;
pub mod linked;
mod platform;
pub mod settings;
mod socket;

pub use error::{ControlError, PlatformError};
pub use health::{Health, HealthReport, HealthSettings, TickTotals};
pub use linked::{LinkedCall, LinkedCalls};
pub use platform::MediaPlatform;
pub use settings::{Certificate, Limits, MediaPlatformSettings};
pub use socket::{AudioSocket, CallState, FrameCallback, FrameDelivery, Incoming, QoeStats};

// Re-exported so bots need not depend on the lower crates for the common types.
pub use media_blob::{MediaSessionConfig, MpUri};
pub use media_core::call::{
    AudioEvent, AudioFrame, AudioSender, AudioStreams, EnqueueError, IdlePolicy, PacerSettings,
    UnmixedBuffer, UnmixedBuffers, UnmixedStats,
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
