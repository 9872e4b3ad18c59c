//! [`BotHost`]: a calling bot as one service: the Graph call runtime, its callback
//! server and the media sessions ([`PlatformSessions`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use graph::{
    ActiveCall, AuthConfig, CallRuntime, CallbackConfig, GraphClient, GraphConfig, RuntimeConfig,
    RuntimeError,
};
use http_guard::{HttpServer, Stats};
pub use http_guard::{Limits as HttpLimits, StatsSnapshot as HttpStats};
use signaling::{Field, Scenario};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::media::PlatformSessions;

/// Why the bot could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BotError {
    /// The media platform did not start.
    #[error(transparent)]
    Platform(#[from] platform::PlatformError),
    /// The Graph client could not be built.
    #[error(transparent)]
    Graph(#[from] graph::GraphError),
    /// The callback server's limits are not usable.
    #[error(transparent)]
    Limits(http_guard::GuardError),
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
    /// Limits of the callback server: header and body read timeouts, connection caps
    /// in total and per source address, keep-alive (default [`HttpLimits`]'s).
    pub callback_limits: HttpLimits,
}

/// The bot: Graph runtime, callback server and media sessions.
#[derive(Debug)]
pub struct BotHost {
    runtime: CallRuntime,
    sessions: Arc<PlatformSessions>,
    callback_url: String,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    callback_stats: Stats,
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
        let http = HttpServer::new(listener, config.callback_limits, "callback")
            .map_err(BotError::Limits)?;
        let callback_stats = http.stats();
        let (stop, mut stopped) = watch::channel(false);
        let server = tokio::spawn(http.serve(router, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Ok(Self {
            runtime,
            sessions,
            callback_url: format!("http://{addr}/callback"),
            stop,
            server,
            callback_stats,
        })
    }

    /// Counters of the callback server's connections since start: admitted, refused
    /// over a cap, closed by a read timeout.
    pub fn callback_stats(&self) -> HttpStats {
        self.callback_stats.snapshot()
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

    /// `sendDtmfTones` on call `call_id` (Graph's tone names: `tone0`-`tone9`, `star`,
    /// `pound`, `a`-`d`, `flash`; checked before sending), and with app-hosted media
    /// the same tones into the call's media link, where the far end's audio socket
    /// reports each. Graph's final `sendDtmfTonesOperation`.
    pub async fn send_dtmf_tones(
        &self,
        call_id: &str,
        tones: &[&str],
        delay_between_ms: u32,
    ) -> Result<serde_json::Value, RuntimeError> {
        let op = self
            .runtime
            .send_dtmf_tones(call_id, tones, delay_between_ms)
            .await?;
        // Graph took the names, so each is one of its tones.
        let in_media: Vec<_> = tones.iter().filter_map(|t| crate::graph_tone(t)).collect();
        if !self.sessions.send_tones(call_id, &in_media) {
            tracing::debug!(%call_id, "no media of the call runs: tones sent by Graph only");
        }
        Ok(op)
    }

    /// Tears every call down (without hanging up) and stops the callback server.
    pub async fn shutdown(self) {
        self.runtime.shutdown();
        self.stop.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }
}
