//! The media side of app-hosted calls: the far end that connects to the bot's media
//! processor (the blob's `mpUri`) once a call is established.
//!
//! The emulator does not speak any media protocol itself. It calls a
//! [`MediaPeerConnector`] with the call id and the parsed media session configuration
//! after the `established` notification has been sent, keeps the returned
//! [`MediaLeg`] while the call lives and stops it when the call ends. A connector that
//! fails (or times out) ends the call the way the service does:
//! `resultInfo` 410 / 301005 "Client Media Error".

use std::future::Future;
use std::pin::Pin;

use media_blob::MediaSessionConfig;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Connects the far end of an app-hosted call to the bot's media processor.
///
/// Called once per established app-hosted call, on the emulator's runtime. The future
/// should resolve when media flows (or cannot): `Err` carries a human-readable reason
/// and terminates the call with 410/301005 "Client Media Error".
pub trait MediaPeerConnector: Send + Sync + 'static {
    /// Connect to `config.mp_uri()` for call `call_id`.
    fn connect(
        &self,
        call_id: &str,
        config: &MediaSessionConfig,
    ) -> BoxFuture<'static, Result<Box<dyn MediaLeg>, String>>;
}

/// One connected far end of a call's media.
pub trait MediaLeg: Send + Sync + 'static {
    /// Counters so far.
    fn stats(&self) -> MediaLegStats;

    /// Stop sending and close the connection. Called once when the call ends; should
    /// finish promptly (the emulator waits for it).
    fn stop(&self) -> BoxFuture<'static, ()>;

    /// Resolves if the leg fails on its own (connection lost), with the reason; the
    /// emulator then terminates the call with "Client Media Error". The default never
    /// resolves.
    fn closed(&self) -> BoxFuture<'static, String> {
        Box::pin(std::future::pending())
    }

    /// Put `control` into the media link, from the far end to the bot (speakers, DTMF).
    /// True when the leg took it; the default carries no media and takes nothing.
    fn control(&self, control: LegControl) -> bool {
        let _ = control;
        false
    }
}

/// What the emulator asks a call's far end to tell the bot's media processor, as
/// Microsoft's media platform does in band: who speaks, and DTMF tones.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegControl {
    /// The speakers of the far end's mix, by media source id (the `sourceId`s of the
    /// participants' audio streams in the roster the emulator sends).
    Speakers {
        /// Who is audible, loudest first (at most 4 are carried).
        active: Vec<u32>,
        /// The dominant speaker (`None`: nobody).
        dominant: Option<u32>,
    },
    /// A DTMF tone pressed at the far end.
    Tone {
        /// Graph's name of the tone: `tone0`-`tone9`, `star`, `pound`, `a`-`d`, `flash`.
        tone: String,
        /// How long it was held, in ms.
        duration_ms: u32,
    },
}

/// Counters of a media leg, from the far end's point of view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaLegStats {
    /// Packets (or frames) sent to the bot.
    pub packets_sent: u64,
    /// Packets (or frames) received from the bot.
    pub packets_received: u64,
    /// Payload bytes sent to the bot.
    pub bytes_sent: u64,
    /// Payload bytes received from the bot.
    pub bytes_received: u64,
}

/// A connector whose legs carry no media: connecting always succeeds at once. The
/// default; right for service-hosted demos and signaling tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMediaConnector;

impl MediaPeerConnector for NoMediaConnector {
    fn connect(
        &self,
        _call_id: &str,
        _config: &MediaSessionConfig,
    ) -> BoxFuture<'static, Result<Box<dyn MediaLeg>, String>> {
        Box::pin(async { Ok(Box::new(NoMediaLeg) as Box<dyn MediaLeg>) })
    }
}

/// The leg of [`NoMediaConnector`]: zero counters, stops at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMediaLeg;

impl MediaLeg for NoMediaLeg {
    fn stats(&self) -> MediaLegStats {
        MediaLegStats::default()
    }

    fn stop(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Where a call's media stands, as the emulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaStatus {
    /// Service-hosted media: no far end to connect.
    ServiceHosted,
    /// App-hosted, waiting for the call to be established.
    AwaitingEstablished,
    /// The connector is connecting to the blob's `mpUri`.
    Connecting,
    /// The far end is connected.
    Connected,
    /// Connecting failed or the leg closed; the call was terminated.
    Failed(String),
    /// The leg was stopped because the call ended.
    Stopped,
}
