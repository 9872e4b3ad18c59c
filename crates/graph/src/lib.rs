//! # graph: thin HTTP drivers for Graph calling
//!
//! This crate's job: place and follow Microsoft Graph calls over real HTTP. It talks to
//! Graph ([`GraphClient`]: OAuth2 client-credentials tokens, create / get / hang up /
//! keepAlive, request ids, retries), receives the service's callbacks ([`callback`]: an
//! axum router that authenticates the service's JWT and answers `202` at once), and runs
//! each call's lifecycle ([`CallRuntime`]: one ordered queue and one
//! [`signaling::state::CallStateMachine`] per call, keepAlive, media start and teardown
//! through the [`MediaSessions`] trait the media side implements). The call model, the
//! request validation and the state machine are sans-IO and live in `signaling`; this
//! crate only drives them.
//!
//! ## Data flow
//!
//! ```text
//!  bot ──create_call / hang_up──> CallRuntime ──> GraphClient ──HTTPS──> Graph
//!                                    │  │              ^  (token: POST token_url, cached)
//!        MediaSessions::create_session│  └─keepAlive task (per call, every 15 min)
//!        (blob into the request)      │
//!
//!  Graph ──POST callbackUri (Bearer JWT)──> callback server ──401/400/413, else 202
//!            │ JwtValidator: OpenID config -> jwks_uri (cached)
//!            v
//!        per-call queue (mpsc) ──> call task: CallStateMachine ──CallEvent──> runtime
//!            established ──> MediaSessions::start_call(CallView: roster watch + events)
//!            participants notifications ──> RosterSnapshot (CallRuntime::roster)
//!            terminated / keepAlive 404 / hang-up ──> MediaSessions::stop, tasks ended
//!            MediaReporter::stream_failed ──> DELETE the call, then the same teardown
//!        runtime ──broadcast (call_id, event)──> bot application
//! ```
//!
//! ## Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use graph::{
//!     AuthConfig, CallRuntime, CallbackConfig, GraphClient, GraphConfig, MediaError,
//!     MediaSessions, RuntimeConfig, RuntimeEventKind,
//! };
//! use media_blob::{MediaSessionConfig, MpUri};
//! use signaling::{builders, Identity, MediaConfig};
//! use uuid::Uuid;
//!
//! /// The media side (the real one is the media platform).
//! struct Media;
//! impl MediaSessions for Media {
//!     fn create_session(&self, session_id: Uuid) -> Result<MediaSessionConfig, MediaError> {
//!         let mp_uri = MpUri::quic("media.contoso.com", 4433)
//!             .map_err(|e| MediaError::Failed(e.to_string()))?;
//!         Ok(MediaSessionConfig::builder(mp_uri, session_id).build())
//!     }
//!     fn start(&self, _session_id: Uuid, _call_id: &str) {}
//!     fn stop(&self, _session_id: Uuid) {}
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let tenant = "aa67bd4c-8475-432d-bd41-39f255720e0a";
//! let app_id = "2891555a-92ff-42e6-80fa-6e1300c6b5c6";
//! let client = GraphClient::new(GraphConfig::new(
//!     "https://graph.microsoft.com/v1.0",
//!     format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
//!     app_id,
//!     "client secret",
//! ))?;
//! let runtime = CallRuntime::new(client, Arc::new(Media), RuntimeConfig::default());
//!
//! // The callback server, with JWT validation.
//! let auth = AuthConfig::new(app_id, "https://api.aps.skype.com/v1/.well-known/openidconfiguration");
//! let router = runtime.callback_router(CallbackConfig::new(auth).path("/callback"));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! tokio::spawn(async move { axum::serve(listener, router).await });
//!
//! // Place an app-hosted call: the runtime creates the media session and its blob.
//! let mut events = runtime.subscribe();
//! let request = builders::p2p_voip(
//!     "https://bot.contoso.com/callback",
//!     Identity::new("112f7296-5fa4-42ca-bae8-6a692b15d4b8", "John"),
//!     MediaConfig::app_hosted(""),
//! )
//! .build();
//! let call = runtime.create_call(request).await?;
//! while let Ok(event) = events.recv().await {
//!     if event.call_id != call.call_id {
//!         continue;
//!     }
//!     println!("{:?}", event.kind);
//!     if matches!(event.kind, RuntimeEventKind::Removed(_)) {
//!         break;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod assertion;
pub mod auth;
pub mod callback;
pub mod client;
mod error;
pub mod runtime;

pub use assertion::ClientCertificate;
pub use auth::{AuthConfig, AuthError, JwtValidator, VerifiedCaller};
pub use callback::{CallbackConfig, Delivery, InboundAuth, NotificationSink};
pub use client::{GraphClient, GraphConfig};
pub use error::GraphError;
pub use runtime::{
    ActiveCall, AnswerMedia, CallRuntime, CallView, MediaError, MediaReporter, MediaSessions,
    RejectReason, RuntimeConfig, RuntimeError, RuntimeEvent, RuntimeEventKind, TeardownReason,
};
