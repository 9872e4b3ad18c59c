//! A whole calling bot on one machine: [`BotHost`] (graph runtime + callback server on
//! 127.0.0.1 + [`PlatformSessions`]) and [`Local`] (a bot host, the Graph emulator and
//! the emulator's [`QuicFarEnd`], wired together with the processor's certificate pinned).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use emulator::{Emulator, EmulatorConfig, EmulatorHandle, RegisteredApp};
use graph::{
    ActiveCall, AuthConfig, CallRuntime, CallbackConfig, GraphClient, GraphConfig, RuntimeConfig,
    RuntimeError,
};
use platform::{MediaPlatformSettings, ServerTrust};
use signaling::{Field, Scenario};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::farend::{FarEndConfig, QuicFarEnd};
use crate::media::{MediaBot, PlatformSessions, SessionOptions};

/// Why the bot could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BotError {
    /// The media platform did not start.
    #[error(transparent)]
    Platform(#[from] platform::PlatformError),
    /// The Graph emulator did not start.
    #[error(transparent)]
    Emulator(#[from] emulator::EmulatorError),
    /// The Graph client could not be built.
    #[error(transparent)]
    Graph(#[from] graph::GraphError),
    /// The callback server could not bind.
    #[error("cannot bind the callback server on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Where the bot reaches Graph and how it checks callbacks.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Graph base URL, e.g. `{emulator}/v1.0`.
    pub graph_base_url: String,
    /// OAuth2 token endpoint.
    pub token_url: String,
    /// The bot's app (client) id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// OpenID configuration whose keys sign the callbacks (`None`: callbacks are not
    /// authenticated; local tests only).
    pub openid_url: Option<String>,
    /// Runtime settings (keepAlive interval, ...).
    pub runtime: RuntimeConfig,
    /// Where the callback server listens (default `127.0.0.1:0`).
    pub callback_bind: SocketAddr,
}

impl BotConfig {
    /// The bot registered as `app` with the emulator `emu`, callbacks authenticated
    /// with the emulator's keys.
    pub fn for_emulator(emu: &EmulatorHandle, app: &RegisteredApp) -> Self {
        Self {
            graph_base_url: emu.graph_v1_url(),
            token_url: emu.token_url_for(&app.tenant_id),
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone(),
            openid_url: Some(emu.openid_url()),
            runtime: RuntimeConfig::default(),
            callback_bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        }
    }
}

/// The bot: Graph runtime, callback server and media sessions.
#[derive(Debug)]
pub struct BotHost {
    runtime: CallRuntime,
    sessions: Arc<PlatformSessions>,
    callback_url: String,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl BotHost {
    /// Starts the runtime over `sessions` and serves its callbacks on
    /// `config.callback_bind`.
    pub async fn start(
        config: BotConfig,
        sessions: Arc<PlatformSessions>,
    ) -> Result<Self, BotError> {
        let client = GraphClient::new(GraphConfig::new(
            config.graph_base_url,
            config.token_url,
            config.client_id.clone(),
            config.client_secret,
        ))?;
        let runtime = CallRuntime::new(client, sessions.clone(), config.runtime);
        sessions.attach(&runtime);
        let callbacks = match config.openid_url {
            Some(url) => CallbackConfig::new(AuthConfig::new(config.client_id, url)),
            None => CallbackConfig::unauthenticated(),
        };
        let router = runtime.callback_router(callbacks);
        let listener = tokio::net::TcpListener::bind(config.callback_bind)
            .await
            .map_err(|source| BotError::Bind {
                addr: config.callback_bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| BotError::Bind {
            addr: config.callback_bind,
            source,
        })?;
        let (stop, mut stopped) = watch::channel(false);
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!("callback server stopped: {e}");
            }
        });
        Ok(Self {
            runtime,
            sessions,
            callback_url: format!("http://{addr}/callback"),
            stop,
            server,
        })
    }

    /// The call runtime.
    pub fn runtime(&self) -> &CallRuntime {
        &self.runtime
    }

    /// The media sessions.
    pub fn sessions(&self) -> &Arc<PlatformSessions> {
        &self.sessions
    }

    /// The callbackUri calls are placed with.
    pub fn callback_url(&self) -> &str {
        &self.callback_url
    }

    /// Places the seed example of `scenario` with this bot's callbackUri (app-hosted
    /// calls get a media session and its blob from the runtime).
    pub async fn place(&self, scenario: Scenario) -> Result<ActiveCall, RuntimeError> {
        let mut call = scenario.seed_example(None);
        call.callback_uri = Field::Value(self.callback_url.clone());
        self.runtime.create_call(call).await
    }

    /// Tears every call down (without hanging up) and stops the callback server.
    pub async fn shutdown(self) {
        self.runtime.shutdown();
        self.stop.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
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
    pub async fn start(config: LocalConfig) -> Result<Self, BotError> {
        let sessions = PlatformSessions::start(config.platform, config.bot, config.sessions)?;
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
        let mut bot_config = BotConfig::for_emulator(&emulator, &app);
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
