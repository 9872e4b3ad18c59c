//! [`BotHost`]: a calling bot as one service: the Graph call runtime, its callback
//! server and the media sessions ([`PlatformSessions`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use graph::{
    ActiveCall, AuthConfig, CallRuntime, CallbackConfig, GraphClient, GraphConfig, RuntimeConfig,
    RuntimeError,
};
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
