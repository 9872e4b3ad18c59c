//! # emulator: a local Microsoft Graph calling API
//!
//! A faithful local stand-in for the Graph calling service (as Azurite is for Azure
//! Storage), so a whole calling-bot call runs on one machine: the bot gets an OAuth
//! token, creates a call, receives signed `commsNotifications` at its `callbackUri`,
//! keeps the call alive, and (app-hosted media) is reached by a far-end media peer at
//! the `mpUri` of its media session configuration. Requests are validated as Graph
//! validates them (with the `signaling` crate) and answered in the seed page's shapes.
//!
//! ## Data flow
//!
//! ```text
//!  bot ── POST /{tenant}/oauth2/v2.0/token ──────────> token endpoint ── RS256 JWT (roles)
//!  bot ── POST /v1.0|beta/communications/calls ─────> Graph endpoints
//!            (Bearer, JSON, signaling::create_call_problems, blob, permissions)
//!                                                          │ 201 + Location, call "establishing"
//!                                                          v
//!                                                     call registry ── GET / DELETE / keepAlive
//!                                                          │ one driver task per call:
//!                                                          │ scripted steps, keepAlive timer,
//!                                                          │ DELETE / hang-up / media failure
//!                                                          v
//!                                                  per-call notifier (in order, bounded retries)
//!                                                          │ POST commsNotifications,
//!                                                          │ Authorization: Bearer <RS256 JWT,
//!                                                          │ iss api.botframework.com, aud app id>
//!                                                          v
//!                                                   bot's callbackUri (verifies with the JWKS at
//!                                                   /v1/.well-known/openidconfiguration)
//!
//!  "established" sent ──> MediaPeerConnector::connect(call id, blob) ──> far end ──> blob's mpUri
//!                         (fails: call terminated with 410/301005 "Client Media Error")
//! ```
//!
//! ## Endpoints
//!
//! | Method and path | What |
//! |---|---|
//! | `POST /{tenant}/oauth2/v2.0/token` | client credentials (secret, or a certificate's client assertion for apps registered with [`RegisteredApp::certificate`]) → `{"token_type":"Bearer","expires_in","access_token"}`; wrong secret or refused assertion 401 `invalid_client` (AADSTS description; see the `assertion` module) |
//! | `GET /v1/.well-known/openidconfiguration` | `issuer`, `jwks_uri`, `id_token_signing_alg_values_supported` |
//! | `GET /v1/.well-known/keys` | JWKS (`kty`, `use`, `kid`, `n`, `e`, `alg`) |
//! | `POST /{v}/communications/calls`, `POST /{v}/app/calls` | create a call (`v` = `v1.0` or `beta`): 201 / 400 / 401 / 403 / 413 |
//! | `GET`, `DELETE /{v}/communications/calls/{id}` | 200 call / 204 then `terminated` / 404 |
//! | `POST /{v}/communications/calls/{id}/keepAlive` | 200 / 404 |
//! | `POST /{v}/communications/calls/{id}/{action}` (`answer`, `reject`, `redirect`, `transfer`, `mute`, `unmute`, `subscribeToTone`, `sendDtmfTones`, `playPrompt`, `recordResponse`, `cancelMediaProcessing`, `updateRecordingStatus`, `changeScreenSharingRole`, `participants/invite`) | 200 with the `commsOperation` / 202; 400 naming the property, 403, 404, 409 (wrong state); then the notifications that follow (see the `actions` module) |
//! | `POST /{v}/communications/calls/{id}/participants/{participantId}/mute`, `DELETE .../participants/{participantId}` | 200 `muteParticipantOperation` (group calls only) / 204; 400, 403, 404 (call or participant), 409; then the participant `updated` / `deleted` |
//! | `GET`, `POST`, `DELETE /_emulator/faults` | list, add ([`Fault`] JSON), clear injected faults |
//! | `GET /_emulator/calls`, `POST /_emulator/calls/{id}/hangup` | observe calls, remote hang-up |
//! | `POST /_emulator/calls/incoming` | offer a call to a bot ([`IncomingCall`] JSON): it rings until answered, rejected, redirected or 15 s pass |
//! | `GET /_emulator/calls/{id}/participants` | the call's roster as sent (`{"value": [participant]}`) |
//! | `POST /_emulator/calls/{id}/speakers` | `{"participants": [ids]}`: the far end reports them as speaking, loudest first ([`EmulatorHandle::set_speakers`]) |
//! | `POST /_emulator/calls/{id}/tones` | `{"tones": ["tone1", ...]}`: the far end presses DTMF keys ([`EmulatorHandle::press_tones`]); answers `{"inMedia": n}` |
//!
//! Every response carries `request-id` and echoes `client-request-id`; errors are
//! Graph's `{"error":{"code","message","innerError":{"request-id","client-request-id","date"}}}`.
//!
//! ## Notification sequences (after the seed page)
//!
//! - P2P (VoIP, PSTN) and group calls: `establishing`, `established`.
//! - Meeting joins: `establishing`, `established`, the participants roster (with the bot).
//! - App-hosted calls: once the far end's media connects, the roster (if none was
//!   sent yet), each participant's audio stream with a `sourceId`; then the far end
//!   reports the other party as the speaker by that id in the media
//!   ([`MediaLeg::control`], [`LegControl`]).
//! - Guest joins: the roster with the bot `isInLobby: true`, after
//!   [`Timing::lobby_delay`] the roster admitted, then `established`.
//! - `callOptions.isContentSharingNotificationEnabled`: a content-sharing session
//!   `created`, `updated`, `deleted` after `established`.
//! - The end: `deleted` with `state: terminated`, `resultInfo` and `terminationReason`,
//!   on DELETE, keepAlive lapse ([`EmulatorConfig::keepalive_timeout`]), hang-up
//!   ([`EmulatorHandle::hang_up`]) or media failure.
//!
//! ## Example
//!
//! ```no_run
//! use std::time::Duration;
//! use emulator::{Emulator, EmulatorConfig, RegisteredApp};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = EmulatorConfig {
//!     keepalive_timeout: Duration::from_secs(60),
//!     ..EmulatorConfig::default()
//! };
//! let emulator = Emulator::start(config).await?;
//! let app = &emulator.apps()[0];
//!
//! let http = reqwest::Client::new();
//! let token: serde_json::Value = http
//!     .post(emulator.token_url())
//!     .form(&[
//!         ("grant_type", "client_credentials"),
//!         ("client_id", app.client_id.as_str()),
//!         ("client_secret", app.client_secret.as_str()),
//!         ("scope", "https://graph.microsoft.com/.default"),
//!     ])
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! let bearer = token["access_token"].as_str().unwrap_or_default();
//!
//! let call = signaling::Scenario::P2pVoipService.seed_example(None);
//! let mut body = call.to_value();
//! body["callbackUri"] = "http://127.0.0.1:9442/callback".into();
//! let created = http
//!     .post(emulator.calls_url())
//!     .bearer_auth(bearer)
//!     .json(&body)
//!     .send()
//!     .await?;
//! assert_eq!(created.status(), 201);
//!
//! let report = emulator.shutdown().await;
//! assert_eq!(report.tasks_left, 0);
//! # Ok(())
//! # }
//! ```
//!
//! Configuration alone needs no network:
//!
//! ```
//! use emulator::{EmulatorConfig, Fault, RegisteredApp};
//!
//! let config = EmulatorConfig::default();
//! assert_eq!(config.bind.to_string(), "127.0.0.1:0");
//! assert_eq!(config.apps, vec![RegisteredApp::demo()]);
//! assert_eq!(config.keepalive_timeout.as_secs(), 45 * 60);
//! let fault = Fault::too_many_requests("/v1.0/communications/calls", 1, 2);
//! assert!(fault.problem().is_none());
//! ```

mod actions;
mod assertion;
mod call;
mod config;
mod driver;
mod error;
mod faults;
mod handle;
mod incoming;
mod keys;
mod media;
mod participants;
mod server;
mod state;
mod time;

pub use config::{Delivery, EmulatorConfig, RegisteredApp, Timing};
pub use driver::CALLBACK_ISSUER;
pub use error::EmulatorError;
pub use faults::Fault;
pub use handle::{Emulator, EmulatorHandle, ShutdownReport, run_until_ctrl_c};
/// The limits and counters of the emulator's HTTP server
/// ([`EmulatorConfig::http_limits`], [`EmulatorHandle::http_stats`]).
pub use http_guard::{Limits as HttpLimits, StatsSnapshot as HttpStats};
pub use incoming::IncomingCall;
pub use keys::{KEY_BITS, SigningKey};
pub use media::{
    BoxFuture, LegControl, MediaLeg, MediaLegStats, MediaPeerConnector, MediaStatus,
    NoMediaConnector, NoMediaLeg,
};
pub use server::{GRAPH_AUDIENCE, GRAPH_DEFAULT_SCOPE};
pub use state::{CallSummary, Counters, NotificationRecord, TaskCounter, Termination};
