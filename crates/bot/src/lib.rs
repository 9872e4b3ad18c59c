//! # bot: app-hosted calling bots end to end
//!
//! This crate's job: tie the Graph runtime (`graph`), the media platform (`platform`)
//! and the Graph emulator (`emulator`) together into a working calling bot on one
//! machine. [`PlatformSessions`] is graph's `MediaSessions` on a
//! `platform::MediaPlatform` and runs a bot behaviour per call ([`EchoBot`],
//! [`WavBot`] or your own [`MediaBot`]); [`QuicFarEnd`] is the emulator's far end
//! (speech through a seeded `media_core::sim` impairment, recordings, per-second
//! stats); [`Local`] starts all of it; [`demo`] is `media-processor demo`.
//!
//! ## Data flow
//!
//! ```text
//!  emulator (Graph API)  <──HTTP (token, create call, keepAlive, DELETE)──  bot runtime (graph::CallRuntime)
//!        │              ──HTTP callbacks (signed JWT) ─> callback server ─┘   │ create_session / start / stop
//!        │ established                                                        v
//!        └─> QuicFarEnd::connect(blob) ══QUIC (pinned cert)══> media platform <──> echo bot
//!            speech -> impairment ->  datagrams  ->  jitter buffer -> AudioSocket -> CallBehaviour
//!            recording <- jitter buffer <- impairment <- datagrams <- paced sender <- BotOutput
//!            media stream failure ──> MediaReporter::stream_failed ──> DELETE the call
//! ```
//!
//! ## Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bot::{EchoBot, Local, LocalConfig};
//! use signaling::Scenario;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let local = Local::start(LocalConfig::new(Arc::new(EchoBot))).await?;
//! let call = local.place(Scenario::P2pVoipApp).await?;
//! tokio::time::sleep(Duration::from_secs(3)).await;
//! if let Some(session) = call.session_id {
//!     println!("{:?}", local.bot.sessions().snapshot(session));
//! }
//! local.bot.runtime().hang_up(&call.call_id).await?;
//! local.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod device;
pub mod local;
pub mod media;

pub use platform::Codec;

pub use device::{
    BridgeConfig, BridgeError, BridgeStats, CaptureEnd, DeviceBridge, FillController, FrameInput,
    PlaybackEnd,
};
pub use local::{BotConfig, BotError, BotHost};
pub use media::{
    BotOutput, CallBehaviour, EchoBot, MediaBot, PlatformSessions, SessionCounters, SessionOptions,
    SessionReport, SessionSnapshot, WavBot,
};
