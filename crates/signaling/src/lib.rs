//! # signaling: the Microsoft Graph call model, create-call builders, validation and permissions
//!
//! This crate turns "I want the bot to call John with app-hosted media" into the exact
//! JSON body of `POST /communications/calls`, refuses requests the service would refuse
//! (naming the property at fault), says which application permissions the request
//! needs, and reads what the service sends back: the `201 Created` call and the
//! `commsNotifications` posted to the bot's callback, and follows each call through
//! its states in a sans-IO [`CallStateMachine`]. It does no I/O and reads no clock:
//! the HTTP client, the callback server and the runtime are in the `graph` crate.
//!
//! The reference is the Graph "Create call" page (the project's seed): its ten
//! examples are [`Scenario`]s, and its every JSON document is a test fixture that
//! parses into the typed model and re-serializes equal as a JSON value.
//!
//! ## Data flow
//!
//! ```text
//!  send:
//!   Scenario::seed_example / builders::p2p_voip(..) / Call::builder(..)   (canonical forms)
//!        |
//!        v
//!      Call ──> validate_create_call ──> Result<(), RequestError>   ("mediaConfig.blob: ...")
//!        |
//!        +────> required_permissions ──> RequiredPermissions         ("A or B, C or D")
//!        |
//!        v
//!   serde_json::to_string(&call) ──> JSON body of POST /communications/calls
//!
//!  receive:
//!   201 body ─────────> Call            (state, id, myParticipantId, ...)
//!   callback body ───> CommsNotifications ──> CommsNotification::items()
//!                         ──> ResourceItem::{Call, Participant, ContentSharingSession, Other}
//!
//!  anything:  serde_json::Value ──> classify ──> DocumentKind;  summarize ──> one-line gist
//! ```
//!
//! ## Model rules
//!
//! - Every property is a [`Field`]: absent, `null` and a value stay distinct, so a
//!   document read is the document written (including whether `@odata.type` was there).
//! - Unknown properties are kept (`extra`), unknown `@odata.type`s are kept as raw JSON
//!   (`Other`), unknown enum strings are kept (`Other(String)`), and `resultInfo.code`
//!   may be a number or a string: liberal in what the service sends.
//! - Builders and constructors emit the canonical typed form: strict in what we send.
//!
//! ## Example
//!
//! A P2P call with app-hosted media, carrying a real media session configuration:
//!
//! ```
//! use signaling::{builders, validate_create_call, Identity, MediaConfig};
//!
//! let mp_uri = "quic://127.0.0.1:9000/MediaProcessor"
//!     .parse::<media_blob::MpUri>()
//!     .expect("valid mpUri");
//! let blob = media_blob::MediaSessionConfig::builder(mp_uri, uuid::Uuid::new_v4())
//!     .build()
//!     .to_json();
//!
//! let call = builders::p2p_voip(
//!     "https://bot.contoso.com/callback",
//!     Identity::new("112f7296-5fa4-42ca-bae8-6a692b15d4b8", "John"),
//!     MediaConfig::app_hosted(blob),
//! )
//! .build();
//!
//! validate_create_call(&call).expect("a valid request");
//! let permissions = call.required_permissions();
//! assert_eq!(
//!     permissions.to_string(),
//!     "Calls.Initiate.All, Calls.AccessMedia.All or Calls.AccessMedia.Chat"
//! );
//! println!("needs {permissions}");
//! println!("{}", serde_json::to_string_pretty(&call).expect("serializable"));
//! ```
//!
//! The seed's own examples, by name (the app-hosted ones carry the page's placeholder
//! blob unless given one, and validation says so):
//!
//! ```
//! use signaling::{RequestError, Scenario};
//!
//! let scenario: Scenario = "pstn-service".parse().expect("a scenario name");
//! let call = scenario.seed_example(None);
//! assert!(call.validate().is_ok());
//! assert_eq!(call.required_permissions().to_string(), "Calls.Initiate.All");
//!
//! let placeholder = Scenario::PstnApp.seed_example(None);
//! assert_eq!(placeholder.validate(), Err(RequestError::PlaceholderBlob));
//! ```

pub mod actions;
pub mod builders;
mod classify;
mod field;
pub mod json;
pub mod model;
mod permissions;
pub mod roster;
mod scenario;
pub mod state;
mod validate;

pub use builders::CreateCallBuilder;

/// A create-call request body is a [`Call`] without id or state;
/// `CreateCallRequest::builder(callback_uri)` is [`Call::builder`].
pub type CreateCallRequest = Call;
pub use classify::{DocumentKind, classify, looks_like_notification, summarize};
pub use field::Field;
pub use model::*;
pub use permissions::{
    CallKind, Permission, RequiredPermissions, Requirement, UnknownPermission, required_permissions,
};
pub use roster::{RosterSnapshot, Speaker};
pub use scenario::{Scenario, UnknownScenario};
pub use state::{CallEvent, CallStateMachine, RosterEntry, StreamInfo};
pub use validate::{
    MAX_GROUP_TARGETS, MAX_JOIN_MEETING_ID_LEN, RequestError, check_callback_uri,
    create_call_problems, is_e164, is_loopback_host, validate_create_call,
};
