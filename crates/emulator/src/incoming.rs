//! Calls offered to the bot: ringing it ([`IncomingCall`], `EmulatorHandle::ring`,
//! `POST /_emulator/calls/incoming`) and its `answer`, `reject` and `redirect`.
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

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use signaling::actions::Action;
use signaling::{CallKind, CallState};
use tokio::sync::mpsc;

use crate::call::{self, CallContext};
use crate::config::RegisteredApp;
use crate::driver::spawn_call;
use crate::error::EmulatorError;
use crate::media::MediaStatus;
use crate::server::{
    AppState, MAX_DETAIL_CHARS, RequestIds, authenticate, graph_error, invalid_request,
    not_authorized, not_found_call, unauthorized,
};
use crate::state::{CallRecord, CallSummary, Command, Shared, Termination, lock};

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
        bot_identity: json!({}),
        other_identity: caller.clone(),
        other_participant_id: uuid::Uuid::new_v4().to_string(),
        chat_info: Value::Null,
        meeting_info: Value::Null,
        content_session_id: call::new_content_session_id(),
        incoming: true,
    };
    let resource = call::incoming_resource(&ctx, &caller, &app);
    let (tx, rx) = mpsc::unbounded_channel();
    let record = CallRecord {
        resource,
        summary: CallSummary {
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
        commands: Some(tx),
        leg: None,
    };
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

/// The decisions on an offered call, by the index the routes give [`decide`].
const DECISIONS: [Action; 3] = [Action::Answer, Action::Reject, Action::Redirect];

/// `POST /communications/calls/{id}/answer` (`D` = 0), `/reject` (1), `/redirect` (2).
pub(crate) async fn decide<const D: usize>(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    act(&s, &ids, &id, &headers, body, DECISIONS[D]).await
}

/// One of the three decisions on an offered call, checked as Graph checks it.
async fn act(
    s: &AppState,
    ids: &RequestIds,
    id: &str,
    headers: &HeaderMap,
    body: Body,
    action: Action,
) -> Response {
    let bad = |message: &str| graph_error(StatusCode::BAD_REQUEST, "BadRequest", message, ids);
    let (app, granted) = match authenticate(s, headers) {
        Ok(a) => a,
        Err(why) => return unauthorized(&why, ids),
    };
    let state = lock(&s.calls)
        .get(id)
        .filter(|r| r.is_live() && r.summary.app_id == app.client_id)
        .map(|r| r.summary.state.clone());
    let Some(state) = state else {
        return not_found_call(id, ids);
    };
    let bytes = match axum::body::to_bytes(body, s.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return bad("The request body is larger than the emulator accepts."),
    };
    let value = match signaling::json::from_slice_strict(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let detail = media_blob::bounded(&e.to_string(), MAX_DETAIL_CHARS);
            return bad(&format!("Unable to read JSON request payload: {detail}."));
        }
    };
    let problems = action.problems(&value);
    if !problems.is_empty() {
        return invalid_request(problems.into_iter().map(|p| (p.message, p.path)), ids);
    }
    let required = action.permissions(&value);
    if !required.is_satisfied_by(&granted) {
        return not_authorized(&format!("{action} this call"), &required, &granted, ids);
    }
    if state != CallState::Incoming {
        return graph_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Call {id} is {}; only an incoming call can be answered, rejected or redirected.",
                state.as_str()
            ),
            ids,
        );
    }
    let owner = Some(app.client_id.as_str());
    let done = match action {
        Action::Answer => {
            let media = match value["mediaConfig"].get("blob") {
                Some(blob) => match media_blob::MediaSessionConfig::from_value(blob) {
                    Ok(m) => Some(Box::new(m)),
                    Err(e) => return bad(&format!("mediaConfig.blob: {e}")),
                },
                None => None,
            };
            let app_hosted = media.is_some();
            let answered = s.command(id, Command::Answer(media));
            if answered && let Some(r) = lock(&s.calls).get_mut(id) {
                r.set_state(CallState::Establishing);
                r.summary.media = if app_hosted {
                    MediaStatus::AwaitingEstablished
                } else {
                    MediaStatus::ServiceHosted
                };
            }
            answered
        }
        Action::Reject => {
            let reason = value["reason"].as_str().unwrap_or("none");
            s.end_call(id, owner, Termination::rejected(reason))
        }
        _ => {
            let targets = value["targets"].as_array().map_or(0, Vec::len);
            s.end_call(id, owner, Termination::redirected(targets))
        }
    };
    if !done {
        return not_found_call(id, ids);
    }
    StatusCode::ACCEPTED.into_response()
}
