//! # host: one bot service process
//!
//! **Job:** run a calling bot as a service for many concurrent calls from one
//! configuration file: the Graph client and callback server (`graph::CallRuntime`),
//! the media platform (QUIC) with a bot on every call (`bot::PlatformSessions`,
//! echo), an admin port with Prometheus metrics and probes, and a graceful drain on
//! SIGTERM. Optionally (`[whip]`, `[ws]`) the same platform and bot also serve WebRTC
//! calls signalled by WHIP (`webrtc-link`) and the platforms' media WebSockets
//! (`ws-link`: ACS, Twilio, Vonage), admitted, counted and drained like Graph calls.
//! `media-processor host --config FILE.toml` parses its arguments and calls
//! [`run_blocking`]; everything else lives here.
//!
//! ## Data flow
//!
//! ```text
//!  FILE.toml + MP_<SECTION>_<KEY> env ──> HostConfig::load (every key checked, by name)
//!
//!  Graph <──token, create call, answer/reject, keepAlive, DELETE── CallRuntime
//!        ──callbacks (JWT)──> callback server ──> per-call queues ──┘   │
//!                                     runtime events ──> event task:    │ create_session
//!            Incoming: answer (app-hosted) | reject busy (draining,     v
//!            overloaded) ; Removed: ended{reason}, QoE histograms    Gate (refuses while
//!                                                                    draining) ──> PlatformSessions
//!  far end ══QUIC══> MediaPlatform ──> echo bot per call                  (refuses while Overloaded)
//!  WHIP offer / media WebSocket stream ──> admission (refused while draining or
//!            Overloaded: 503 / close 1013) ──> a call of the same platform ──> echo bot
//!
//!  routing: /callback (shared) and /callbacks/{instance_id} (this instance's calls);
//!           a notification of a call another instance owns is forwarded to the peers
//!           (routing module); an offer at a draining instance goes to a ready peer
//!
//!  admin port: /metrics (text format) /healthz /readyz (503: draining, HeavilyLoaded, Overloaded)
//!  SIGTERM ──> draining: readyz 503 at once, new calls refused, calls run to drain.deadline_s,
//!              the rest hung up (DELETE; WHIP/WebSocket calls by the bot), the WHIP and
//!              WebSocket endpoints stopped, callbacks taken for drain.linger_ms, exit 0
//! ```
//!
//! ## Example
//!
//! ```
//! let config = host::HostConfig::from_toml(
//!     r#"
//!     [graph]
//!     base_url = "https://graph.microsoft.com/v1.0"
//!     token_url = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"
//!     client_id = "2891555a-92ff-42e6-80fa-6e1300c6b5c6"
//!     [callback]
//!     openid_url = "https://api.aps.skype.com/v1/.well-known/openidconfiguration"
//!     [drain]
//!     deadline_s = 60
//!     "#,
//!     [("MP_GRAPH_CLIENT_SECRET".to_string(), "from the environment".to_string())],
//!     "host.toml",
//! )?;
//! assert_eq!(config.drain_deadline.as_secs(), 60);
//! assert_eq!(config.graph.client_secret, "from the environment");
//!
//! // An unknown key is refused by name.
//! let e = host::HostConfig::from_toml("[drain]\ndeadline = 1\n", [], "host.toml").unwrap_err();
//! assert!(e.to_string().contains("unknown field `deadline`"));
//!
//! // Then, in a tokio runtime: `host::Host::start(config).await?.run(sigterm).await`,
//! // or `host::run_blocking(path)` as the command line does.
//! # Ok::<(), host::ConfigError>(())
//! ```

mod admin;
pub mod config;
mod links;
pub mod metrics;
pub mod routing;
mod service;
mod tls;

use std::path::Path;

pub use admin::probe as admin_get;
pub use config::{CallbackTls, ConfigError, HostConfig, KEYS};
pub use service::{DrainReport, Host};

/// Why the host could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The configuration is not usable (the key and the problem are named).
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The media platform did not start.
    #[error("media platform: {0}")]
    Platform(#[from] platform::PlatformError),
    /// The Graph client could not be built.
    #[error("graph client: {0}")]
    Graph(#[from] graph::GraphError),
    /// A server could not start (the key of its address is named).
    #[error("{0}")]
    Start(String),
}

/// Loads the configuration at `path`, runs the host on its own tokio runtime until
/// SIGTERM or Ctrl-C, drains, and returns the drain's report.
pub fn run_blocking(path: &Path) -> Result<DrainReport, HostError> {
    let config = HostConfig::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| HostError::Start(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let drain = drain_signal()?;
        let host = Host::start(config).await?;
        println!("callback server: {}", host.callback_url());
        println!(
            "instance {}: callbackUri {}",
            host.instance_id(),
            host.instance_callback_url()
        );
        println!(
            "admin port: http://{}/metrics /healthz /readyz",
            host.admin_addr()
        );
        println!("media processor: {}", host.media_summary());
        for line in host.link_summary() {
            println!("{line}");
        }
        println!("ready");
        Ok(host.run(drain).await)
    })
}

/// Resolves at the first SIGTERM or Ctrl-C (SIGINT).
fn drain_signal() -> Result<impl std::future::Future<Output = ()>, HostError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| HostError::Start(format!("cannot watch SIGTERM: {e}")))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    })
}
