//! Calls offered to the bot: ringing it ([`IncomingCall`], `EmulatorHandle::ring`,
//! `POST /_emulator/calls/incoming`); its `answer`, `reject` and `redirect` are
//! in-call actions (`crate::actions`).
//!
//! An offered call is a call resource in state `incoming`, posted to the bot's
//! callback as a `created` notification (Graph's answer reference shows it). Until the
//! bot acts, the call rings; after [`Timing::answer_timeout`](crate::Timing) (Graph:
//! 15 s) it ends unanswered. The action bodies are checked as Graph checks them
//! ([`signaling::actions::Action::problems`]: 400 with an error object naming each
//! property), the caller's permissions as the reference lists them (403), the call's
//! state (409 unless it still rings). An answered call runs a placed call's flow:
//! `establishing`, `established`, and with app-hosted media the far end connects to
//! the answer's blob.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use signaling::{CallKind, CallState};
use tokio::sync::mpsc;

use crate::call::{self, CallContext};
use crate::config::RegisteredApp;
use crate::driver::spawn_call;
use crate::error::EmulatorError;
use crate::media::MediaStatus;
use crate::server::{AppState, MAX_DETAIL_CHARS, RequestIds, graph_error};
use crate::state::{CallRecord, CallSummary, Shared, lock};

/// A call to offer to the bot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingCall {
    /// Where the bot takes notifications (its calling webhook).
    pub callback_uri: String,
    /// The app called (its client id); the first registered app when `None`.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The caller's display name.
    #[serde(default = "IncomingCall::default_caller_name")]
    pub caller_name: String,
    /// The caller's user id.
    #[serde(default = "IncomingCall::default_caller_id")]
    pub caller_id: String,
}

impl IncomingCall {
    /// A call from the seed's John to the bot at `callback_uri`.
    pub fn to(callback_uri: impl Into<String>) -> Self {
        IncomingCall {
            callback_uri: callback_uri.into(),
            app_id: None,
            caller_name: Self::default_caller_name(),
            caller_id: Self::default_caller_id(),
        }
    }

    fn default_caller_name() -> String {
        "John".into()
    }

    fn default_caller_id() -> String {
        "112f7296-5fa4-42ca-bae8-6a692b15d4b8".into()
    }
}

/// Offer `offer` to the bot: register the call (state `incoming`) and post its
/// `created` notification. Returns the call id.
pub(crate) fn ring(shared: &Arc<Shared>, offer: &IncomingCall) -> Result<String, EmulatorError> {
    signaling::check_callback_uri(&offer.callback_uri)
        .map_err(|e| EmulatorError::Config(e.to_string()))?;
    let app: RegisteredApp = match &offer.app_id {
        None => shared.config.apps.first().cloned(),
        Some(id) => shared
            .config
            .apps
            .iter()
            .find(|a| &a.client_id == id)
            .cloned(),
    }
    .ok_or_else(|| {
        EmulatorError::Config(format!(
            "appId: no registered app {}",
            media_blob::excerpt(offer.app_id.as_deref().unwrap_or(""))
        ))
    })?;
    if shared.shutting_down() {
        return Err(EmulatorError::Config(
            "the emulator is shutting down".into(),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let caller = json!({
        "@odata.type": signaling::odata::IDENTITY_SET,
        "user": {
            "@odata.type": signaling::odata::IDENTITY,
            "displayName": offer.caller_name,
            "id": offer.caller_id,
        }
    });
    let ctx = CallContext {
        id: id.clone(),
        callback_uri: offer.callback_uri.clone(),
        app_id: app.client_id.clone(),
        tenant_id: app.tenant_id.clone(),
        kind: CallKind::PeerToPeer,
        content_sharing: false,
        media: None,
        my_participant_id: uuid::Uuid::new_v4().to_string(),
        bot_identity: call::app_identity_set(&app),
        other_identity: caller.clone(),
        other_participant_id: uuid::Uuid::new_v4().to_string(),
        chat_info: Value::Null,
        meeting_info: Value::Null,
        content_session_id: call::new_content_session_id(),
        incoming: true,
    };
    let resource = call::incoming_resource(&ctx, &caller, &app);
    let (tx, rx) = mpsc::unbounded_channel();
    let record = CallRecord::new(
        resource,
        CallSummary {
            id: id.clone(),
            state: CallState::Incoming,
            kind: CallKind::PeerToPeer,
            app_id: app.client_id.clone(),
            tenant_id: app.tenant_id.clone(),
            callback_uri: offer.callback_uri.clone(),
            media: MediaStatus::ServiceHosted,
            termination: None,
            notifications: Vec::new(),
        },
        tx,
    );
    lock(&shared.calls).insert(id.clone(), record);
    spawn_call(shared, ctx, rx);
    tracing::info!(call = %id, "incoming call offered to the bot");
    Ok(id)
}

/// `POST /_emulator/calls/incoming`: ring the bot (body: [`IncomingCall`]).
pub(crate) async fn ring_request(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    body: Result<Json<IncomingCall>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let offer = match body {
        Ok(Json(o)) => o,
        Err(e) => {
            let message = media_blob::bounded(&e.body_text(), MAX_DETAIL_CHARS);
            return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &message, &ids);
        }
    };
    match ring(&s, &offer) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(e) => graph_error(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string(), &ids),
    }
}
