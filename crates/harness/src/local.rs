//! [`Local`]: a whole calling bot on one machine: a [`BotHost`], the Graph emulator and
//! the emulator's [`QuicFarEnd`], wired together with the processor's certificate
//! pinned.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bot::{BotConfig, BotError, BotHost, MediaBot, PlatformSessions, SessionOptions};
use emulator::{Emulator, EmulatorConfig, EmulatorHandle, RegisteredApp};
use graph::{ActiveCall, RuntimeConfig, RuntimeError};
use platform::{MediaPlatformSettings, ServerTrust};
use signaling::Scenario;

use crate::farend::{FarEndConfig, QuicFarEnd};

/// Why a [`Local`] stack could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The bot (media platform, Graph client, callback server) did not start.
    #[error(transparent)]
    Bot(#[from] BotError),
    /// The Graph emulator did not start.
    #[error(transparent)]
    Emulator(#[from] emulator::EmulatorError),
}

/// The bot registered as `app` with the emulator `emu`, callbacks authenticated with
/// the emulator's keys.
pub fn bot_config_for(emu: &EmulatorHandle, app: &RegisteredApp) -> BotConfig {
    BotConfig {
        graph_base_url: emu.graph_v1_url(),
        token_url: emu.token_url_for(&app.tenant_id),
        client_id: app.client_id.clone(),
        client_secret: app.client_secret.clone(),
        openid_url: Some(emu.openid_url()),
        runtime: RuntimeConfig::default(),
        callback_bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        callback_limits: bot::HttpLimits::default(),
    }
}

/// Settings of a [`Local`] stack.
pub struct LocalConfig {
    /// The bot's media behaviour.
    pub bot: Arc<dyn MediaBot>,
    /// Media session options.
    pub sessions: SessionOptions,
    /// The media platform (default: loopback, dev certificate).
    pub platform: MediaPlatformSettings,
    /// The far end; its `trust` is replaced by the platform's pinned fingerprint.
    pub far_end: FarEndConfig,
    /// The emulator; its `media` connector is replaced by the far end.
    pub emulator: EmulatorConfig,
    /// The bot's runtime settings.
    pub runtime: RuntimeConfig,
}

impl std::fmt::Debug for LocalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalConfig")
            .field("far_end", &self.far_end)
            .field("emulator", &self.emulator)
            .finish_non_exhaustive()
    }
}

impl LocalConfig {
    /// Defaults around `bot`: loopback platform, clean network, Opus, emulator defaults.
    pub fn new(bot: Arc<dyn MediaBot>) -> Self {
        Self {
            bot,
            sessions: SessionOptions::default(),
            platform: MediaPlatformSettings::dev_loopback(),
            far_end: FarEndConfig::new(ServerTrust::pinned(platform::CertFingerprint([0; 32]))),
            emulator: EmulatorConfig::default(),
            runtime: RuntimeConfig::default(),
        }
    }
}

/// A bot, the Graph emulator and its far end, on this machine.
#[derive(Debug)]
pub struct Local {
    /// The Graph emulator.
    pub emulator: EmulatorHandle,
    /// The bot.
    pub bot: BotHost,
    /// The far end the emulator connects to app-hosted calls.
    pub far_end: QuicFarEnd,
}

impl Local {
    /// Starts the media platform, the far end pinning its certificate, the emulator
    /// and the bot (in that order).
    pub async fn start(config: LocalConfig) -> Result<Self, LocalError> {
        let sessions = PlatformSessions::start(config.platform, config.bot, config.sessions)
            .map_err(BotError::from)?;
        let mut far = config.far_end;
        // The bot side publishes its dev certificate's fingerprint; the far end pins it.
        far.trust = ServerTrust::pinned(sessions.fingerprint());
        let far_end = QuicFarEnd::new(far);
        let mut emu_config = config.emulator;
        emu_config.media = Arc::new(far_end.clone());
        let emulator = Emulator::start(emu_config).await?;
        let app = emulator
            .apps()
            .first()
            .cloned()
            .unwrap_or_else(RegisteredApp::demo);
        let mut bot_config = bot_config_for(&emulator, &app);
        bot_config.runtime = config.runtime;
        let bot = BotHost::start(bot_config, sessions).await?;
        Ok(Self {
            emulator,
            bot,
            far_end,
        })
    }

    /// Places the seed example of `scenario` (see [`BotHost::place`]).
    pub async fn place(&self, scenario: Scenario) -> Result<ActiveCall, RuntimeError> {
        self.bot.place(scenario).await
    }

    /// Stops the bot, then the emulator; returns the emulator's shutdown report.
    pub async fn shutdown(self) -> emulator::ShutdownReport {
        self.bot.shutdown().await;
        self.emulator.shutdown().await
    }
}
