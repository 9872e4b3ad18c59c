//! # bot: what a calling bot developer writes, and the service that runs it
//!
//! **Job:** the bot-facing side of app-hosted calls. A bot is a [`MediaBot`] that makes
//! one [`CallBehaviour`] per call: it gets every received 20 ms frame and every call
//! event (DTMF, speakers, send status, `LowOnFrames`, the end), the call's roster
//! changes and dominant-speaker changes mapped to participants ([`CallUpdate`]), and
//! sends audio through a [`BotOutput`] (the call's paced send queue, and its roster:
//! `out.roster().speakers(frame.active_speakers.as_slice())` names who speaks). [`PlatformSessions`] runs those
//! behaviours on a `platform::MediaPlatform` and is the Graph runtime's
//! `MediaSessions`: it creates a call's media session (the blob) when the runtime
//! places or answers a call, starts the behaviour when media flows, and reports a
//! media failure back so the call is hung up. [`BotHost`] puts it together with the
//! Graph client, the call runtime and the JWT-checked callback server. Ready bots:
//! [`EchoBot`], [`WavBot`]. The far ends, the Graph emulator and the demo that exercise
//! a bot on one machine live in the `harness` crate.
//!
//! ## Data flow
//!
//! ```text
//!  Graph  <──HTTP (token, create call, keepAlive, DELETE)──  BotHost: graph::CallRuntime
//!         ──HTTP callbacks (signed JWT)──> callback server ─┘   │ create_session / start / stop
//!                                                               v
//!  far end ══media link══> MediaPlatform ─> AudioSocket ─> PlatformSessions' task per call
//!                                                              CallBehaviour::on_frame / on_event
//!  runtime's CallView (roster, participant and tone events) ──> on_call_update
//!          <══ paced 50 frames/s ══ send queue <── BotOutput::enqueue ──┘
//!  media stream failure ──> MediaReporter::stream_failed ──> the runtime hangs up
//! ```
//!
//! ## Example: a bot that answers DTMF with a beep
//!
//! ```no_run
//! use std::sync::Arc;
//! use bot::{BotConfig, BotHost, BotOutput, CallBehaviour, MediaBot, PlatformSessions, SessionOptions};
//! use platform::{AudioEvent, AudioFrame, MediaPlatformSettings, Pcm16kFrame};
//!
//! struct Beeper;
//! struct BeepCall;
//!
//! impl MediaBot for Beeper {
//!     fn new_call(&self, _session: uuid::Uuid, _call_id: &str) -> Box<dyn CallBehaviour> {
//!         Box::new(BeepCall)
//!     }
//! }
//!
//! impl CallBehaviour for BeepCall {
//!     fn on_frame(&mut self, _frame: &AudioFrame, _out: &mut BotOutput<'_>) {}
//!     fn on_event(&mut self, event: &AudioEvent, out: &mut BotOutput<'_>) {
//!         if let AudioEvent::ToneReceived { .. } = event {
//!             let mut beep = Pcm16kFrame::silent();
//!             for (i, s) in beep.samples_mut().iter_mut().enumerate() {
//!                 *s = ((i as f32 * 0.35).sin() * 6000.0) as i16; // ~900 Hz
//!             }
//!             for _ in 0..10 {
//!                 let _ = out.enqueue(&beep); // 200 ms, paced at 50 frames/s
//!             }
//!         }
//!     }
//! }
//!
//! # async fn run(config: BotConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = PlatformSessions::start(
//!     MediaPlatformSettings::dev_loopback(),
//!     Arc::new(Beeper),
//!     SessionOptions::default(),
//! )?;
//! let host = BotHost::start(config, sessions).await?;
//! println!("callbacks at {}", host.callback_url());
//! # Ok(()) }
//! ```

pub mod local;
pub mod media;

pub use platform::{AudioStreams, Codec, UnmixedBuffer, UnmixedBuffers};

pub use local::{BotConfig, BotError, BotHost, HttpLimits, HttpStats};
pub use media::{
    BehaviourError, BotOutput, CallBehaviour, CallUpdate, EchoBot, MediaBot, PlatformSessions,
    SessionCounters, SessionOptions, SessionReport, SessionSnapshot, WavBot, graph_tone,
};
