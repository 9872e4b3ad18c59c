//! # ws-link
//!
//! **Job:** the platforms' media WebSockets (Azure Communication Services audio
//! streaming, Twilio Media Streams, Vonage Voice WebSockets) as links of the
//! media-link seam. A platform connects to this endpoint, says which stream it
//! starts, and streams a call's audio; each stream becomes an ordinary platform call
//! (the same `CallMedia` and `PlatformCall` as a QUIC call), and the bot sees the
//! ordinary [`platform::AudioSocket`]: frames, DTMF events, QoE, paced sending.
//!
//! # Data flow
//!
//! ```text
//!  platform (ACS / Twilio / Vonage)            ws-link (one task per stream)                 bot
//!  --------------------------------            -----------------------------                 ---
//!  GET /acs|/twilio|/vonage + credentials ──>  http_guard::HttpServer, auth (401 if not)
//!  start (AudioMetadata / start / connected) ─> StreamParser ─> StreamAcceptor::accept ──> IncomingStream
//!                                                                (PlatformStreams: a PlatformCall)      {info, AudioSocket}
//!  audio (base64 µ-law 8k, PCM 16/24k, L16) ──> StreamParser ─> InboundAudio: decode, resample
//!                                               to 16 kHz, 20 ms packets numbered on the
//!                                               platform's clock ─> CallHandler (jitter buffer) ─> frames
//!  DTMF ─────────────────────────────────────> LinkEvent::Control(Dtmf) ───────────────────────> ToneReceived
//!  <── media / AudioData / binary L16 ───────── WsLink (MediaLink): OutboundAudio + encoder <── paced 50/s <── enqueue
//!  stop / close ─────────────────────────────> LinkEvent::Closed(PeerLeft) ─────────────────────> Ended
//!  bad message ──> close 1003/1007/1008/1009 naming what was wrong; the call fails with ProtocolError
//! ```
//!
//! The bot's send side as far as the platform: [`Playback`] (on each
//! [`IncomingStream`]) clears the call's send queue *and* the platform's buffer (Twilio
//! `clear`, ACS `StopAudio`, Vonage `{"action":"clear"}`), and places marks after the
//! queued audio ([`MarkEvent`]: played, on Twilio when the platform echoes the mark).
//!
//! ACS unmixed audio ([`WsConfig::acs_audio`], [`unmixed`]): each participant's
//! chunks (named by `participantRawID`) get a stable MSI and a timeline of their own,
//! so the bot's frames carry one unmixed buffer per participant, and
//! [`IncomingStream::participants`] says which participant an MSI stands for.
//!
//! The other way round, [`forward`] hands any call of the engine (QUIC, WebRTC or one
//! of these streams) to an *external* bot that speaks one of the dialects, playing the
//! platform for it ([`bot`]): the call's frames and DTMF go to the bot, the bot's audio
//! (sent in bursts, faster than real time) comes back through the call's paced send
//! queue, and its clear and marks behave as the platform documents.
//!
//! Frames over TCP are never lost but arrive late and in bursts: each 20 ms frame is
//! numbered and stamped from the platform's own timestamps ([`media`]), so the jitter
//! buffer plays them by media time, exactly as it plays QUIC datagrams.
//!
//! # Example: an echo bot behind the three endpoints
//!
//! ```no_run
//! use std::sync::Arc;
//! use platform::{FrameDelivery, MediaPlatform, MediaPlatformSettings};
//! use ws_link::{Dialect, PlatformStreams, WsConfig, WsServer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let platform = Arc::new(MediaPlatform::start(MediaPlatformSettings::dev_loopback())?);
//! let echo = |_: &ws_link::StreamInfo| {
//!     FrameDelivery::Callback(Box::new(|frame, tx| {
//!         let _ = tx.enqueue(&frame.samples);
//!     }))
//! };
//! let (streams, mut incoming) = PlatformStreams::new(platform.clone(), echo);
//! let server = WsServer::bind("127.0.0.1:0".parse()?, WsConfig::default(), Arc::new(streams)).await?;
//! for d in Dialect::ALL {
//!     println!("{d}: {}", server.url(d));
//! }
//! while let Some(call) = incoming.recv().await {
//!     // Hold the socket for as long as the call runs (dropping it hangs up).
//!     tokio::spawn(async move {
//!         let mut socket = call.socket;
//!         while let Some(event) = socket.next_event().await {
//!             println!("{} {}: {event:?}", call.info.dialect, call.info.stream_id);
//!         }
//!     });
//! }
//! # Ok(()) }
//! ```
//!
//! # Realtime safety
//! Per stream, resamplers, framer and buffers are created when the stream starts;
//! converting audio allocates nothing but the outgoing message. JSON parsing and
//! base64 decoding run on the stream's task, never on a reactor thread; the call's
//! ticks run on the same task (tokio timers), and a stream whose platform stops
//! reading loses frames (counted) instead of stalling its call.

pub mod auth;
pub mod bot;
pub mod dialect;
pub mod link;
pub mod media;
pub mod mulaw;
pub mod playback;
mod server;
pub mod unmixed;

use std::sync::Arc;
use std::time::Instant;

use media_core::link::CallHandler;
use platform::{AudioSocket, FrameDelivery, LinkedCall, LinkedCalls, MediaPlatform};
use tokio::sync::mpsc;

pub use auth::{ACS_ISSUER, WsAuthConfig};
pub use bot::{BotCallInfo, BotLinkConfig, BotLinkError, BotLinkReport, BotLinkStats, forward};
pub use dialect::{Dialect, Encoding, ProtocolError, StreamInfo, StreamParser};
pub use link::WsLink;
pub use playback::{MarkEvent, Playback, PlaybackError, PlaybackParts};
pub use server::{StreamAcceptor, WsConfig, WsServer, WsStats};
pub use unmixed::Participants;

/// A stream that became a platform call: what the platform said, the bot's socket
/// and the platform's side of its sending. Dropping the socket hangs up (the stream
/// is closed).
#[derive(Debug)]
pub struct IncomingStream {
    /// The stream's start.
    pub info: StreamInfo,
    /// The call's audio socket, connected.
    pub socket: AudioSocket,
    /// Clear and marks for the audio the bot sends, as far as the platform
    /// ([`Playback`]).
    pub playback: Playback,
    /// Which participant (ACS `participantRawID`) each MSI of the frames'
    /// [`unmixed`](platform::AudioFrame::unmixed) buffers stands for, filled as they
    /// first speak (an ACS stream on an endpoint configured for unmixed audio,
    /// [`WsConfig::acs_audio`]; empty otherwise).
    pub participants: Participants,
}

/// How the frames of a new stream's call reach the bot.
pub type DeliveryChooser = platform::linked::DeliveryChooser<StreamInfo>;

/// The [`StreamAcceptor`] of a [`MediaPlatform`]: each stream becomes a call of the
/// platform ([`MediaPlatform::start_linked_call`], in `Pcm16k`, with the stream's
/// [`StreamInfo::audio`]) whose socket is handed out through the receiver
/// [`PlatformStreams::new`] returns.
#[derive(Debug)]
pub struct PlatformStreams(LinkedCalls<StreamInfo, IncomingStream>);

impl PlatformStreams {
    /// Streams become calls of `platform`, delivering frames as `delivery` chooses per
    /// stream; the new calls come out of the receiver.
    pub fn new(
        platform: Arc<MediaPlatform>,
        delivery: impl Fn(&StreamInfo) -> FrameDelivery + Send + Sync + 'static,
    ) -> (Self, mpsc::UnboundedReceiver<IncomingStream>) {
        let (calls, rx) = LinkedCalls::new(platform, delivery);
        (Self(calls), rx)
    }
}

impl StreamAcceptor for PlatformStreams {
    fn accept(
        &self,
        info: &StreamInfo,
        now: Instant,
        waker: Box<dyn Fn() + Send + Sync>,
        playback: PlaybackParts,
        participants: Participants,
    ) -> Result<Box<dyn CallHandler>, String> {
        let call = LinkedCall {
            codec: media_core::codec::Codec::Pcm16k,
            streams: info.audio,
        };
        self.0
            .start(info, uuid::Uuid::new_v4(), call, now, waker, |socket| {
                let playback = Playback::new(playback, socket.sender());
                IncomingStream {
                    info: info.clone(),
                    socket,
                    playback,
                    participants,
                }
            })
    }
}
