//! The in-call actions: `POST /communications/calls/{id}/{action}` (and
//! `/participants/invite`), checked as Graph checks them, with Graph's answers and the
//! notifications that follow.
//!
//! Every action's body is read strictly (a repeated key is refused) and checked with
//! [`signaling::actions::Action::problems`] (400 with an error object naming each
//! property), the caller's permissions as the reference lists them (403), the call
//! (404 unless it is the caller's and live) and its state (409): `answer`, `reject` and
//! `redirect` only while it rings, the others once it is established; `playPrompt`
//! and `recordResponse` only with service-hosted media.
//!
//! | action | answer | then |
//! |---|---|---|
//! | `answer` | 202 | `establishing`, `established` (app-hosted: the far end connects) |
//! | `reject`, `redirect` | 202 | `terminated` (486/403/603, or 302) |
//! | `mute`, `unmute` | 200 `muteParticipantOperation` / `unmuteParticipantOperation`, completed | the bot's participant `updated` with `isMuted` |
//! | `subscribeToTone`, `sendDtmfTones`, `cancelMediaProcessing`, `updateRecordingStatus` | 200 operation, completed | — |
//! | `playPrompt`, `recordResponse` | 200 operation, running | the operation `deleted` (completed) after a step; a recording's `recordingLocation` |
//! | `participants/invite` | 200 `inviteParticipantsOperation`, running | the roster with the invitees, then the operation completed |
//! | `changeScreenSharingRole` | 202 | — |
//! | `transfer` | 202 | `transferring`, then `terminated` (the bot left the call); consultative (`transferTarget.replacesCallId`, another live call of the app, else 400): that call ends too |
//! | `subscribeToTone` | 200 operation, completed | tones the far end presses ([`EmulatorHandle::press_tones`](crate::EmulatorHandle::press_tones)) come as the call's `toneInfo` |

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use signaling::CallState;
use signaling::actions::Action;

use crate::media::MediaStatus;
use crate::server::{
    AppState, MAX_DETAIL_CHARS, RequestIds, authenticate, graph_error, invalid_request,
    not_authorized, not_found_call, unauthorized,
};
use crate::state::{Command, Termination, lock};

/// The routes of every action, `/communications/calls/{id}/{action}` (and
/// `/participants/invite`).
pub(crate) fn routes() -> Router<AppState> {
    macro_rules! routes {
        ($($i:literal),*) => {
            Router::new()$(.route(&Action::ALL[$i].path("{id}"), post(action::<$i>)))*
        };
    }
    routes!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
}

/// `POST /communications/calls/{id}/{action}` for the action `Action::ALL[A]`.
pub(crate) async fn action<const A: usize>(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    act(&s, &ids, &id, &headers, body, Action::ALL[A]).await
}

/// One action on call `id`, checked as Graph checks it (see the module documentation).
async fn act(
    s: &AppState,
    ids: &RequestIds,
    id: &str,
    headers: &HeaderMap,
    body: Body,
    action: Action,
) -> Response {
    let bad = |message: &str| graph_error(StatusCode::BAD_REQUEST, "BadRequest", message, ids);
    let (app, granted, found) = match callers_call(s, headers, id, ids) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let (state, media) = (found.state, found.media);
    let value = match read_body(s, body, json!({}), ids).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let problems = action.problems(&value);
    if !problems.is_empty() {
        return invalid_request(problems.into_iter().map(|p| (p.message, p.path)), ids);
    }
    let required = action.permissions(&value);
    if !required.is_satisfied_by(&granted) {
        return not_authorized(&format!("{action} this call"), &required, &granted, ids);
    }
    let offered = matches!(action, Action::Answer | Action::Reject | Action::Redirect);
    let wanted = if offered {
        CallState::Incoming
    } else {
        CallState::Established
    };
    if state != wanted {
        return graph_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Call {id} is {}; {action} needs a call that is {}.",
                state.as_str(),
                wanted.as_str()
            ),
            ids,
        );
    }
    let service_hosted_only = matches!(action, Action::PlayPrompt | Action::RecordResponse);
    if service_hosted_only && media != MediaStatus::ServiceHosted {
        return bad(&format!(
            "{action} is only supported for calls with service-hosted media."
        ));
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
        Action::Redirect => {
            let targets = value["targets"].as_array().map_or(0, Vec::len);
            s.end_call(id, owner, Termination::redirected(targets))
        }
        Action::Transfer => {
            // Consultative: the target is in the app's other call, which the transfer
            // replaces (it ends once the transfer is done).
            let replaces = value["transferTarget"]["replacesCallId"].as_str();
            if let Some(other) = replaces {
                let known = other != id
                    && lock(&s.calls)
                        .get(other)
                        .is_some_and(|r| r.is_live() && r.summary.app_id == app.client_id);
                if !known {
                    return invalid_request(
                        [(
                            format!(
                                "transferTarget.replacesCallId: {} is not another live call of this application",
                                media_blob::excerpt(other)
                            ),
                            "transferTarget.replacesCallId".to_owned(),
                        )]
                        .into_iter(),
                        ids,
                    );
                }
            }
            let taken = s.command(id, Command::Act(action, value.clone(), String::new()));
            if taken && let Some(other) = replaces {
                s.end_call(other, owner, Termination::replaced_by_transfer(id));
            }
            if taken && let Some(r) = lock(&s.calls).get_mut(id) {
                r.set_state(CallState::Transferring);
            }
            taken
        }
        Action::ChangeScreenSharingRole => true,
        Action::SubscribeToTone => {
            if let Some(r) = lock(&s.calls).get_mut(id) {
                r.tones_subscribed = true;
            }
            let op_id = uuid::Uuid::new_v4().to_string();
            let op = operation(id, action, &value, &op_id, "completed");
            if !s.command(id, Command::Act(action, value, op_id)) {
                return not_found_call(id, ids);
            }
            return (StatusCode::OK, Json(op)).into_response();
        }
        _ => {
            let op_id = uuid::Uuid::new_v4().to_string();
            let op = operation(id, action, &value, &op_id, initial_status(action));
            if !s.command(id, Command::Act(action, value, op_id)) {
                return not_found_call(id, ids);
            }
            return (StatusCode::OK, Json(op)).into_response();
        }
    };
    if !done {
        return not_found_call(id, ids);
    }
    StatusCode::ACCEPTED.into_response()
}

/// What an action needs to know of the call it acts on.
pub(crate) struct Found {
    pub(crate) state: CallState,
    pub(crate) kind: signaling::CallKind,
    pub(crate) media: MediaStatus,
}

/// The caller (401 unless authenticated), its permissions and its live call `id`
/// (404 unless the caller's and live).
pub(crate) fn callers_call(
    s: &AppState,
    headers: &HeaderMap,
    id: &str,
    ids: &RequestIds,
) -> Result<(crate::RegisteredApp, Vec<signaling::Permission>, Found), Box<Response>> {
    let (app, granted) =
        authenticate(s, headers).map_err(|why| Box::new(unauthorized(&why, ids)))?;
    let found = lock(&s.calls)
        .get(id)
        .filter(|r| r.is_live() && r.summary.app_id == app.client_id)
        .map(|r| Found {
            state: r.summary.state.clone(),
            kind: r.summary.kind,
            media: r.summary.media.clone(),
        })
        .ok_or_else(|| Box::new(not_found_call(id, ids)))?;
    Ok((app, granted, found))
}

/// An action's body read strictly (a repeated key is refused): `empty` when it is
/// blank; a 400 naming what is wrong otherwise.
pub(crate) async fn read_body(
    s: &AppState,
    body: Body,
    empty: Value,
    ids: &RequestIds,
) -> Result<Value, Response> {
    let bad = |message: &str| graph_error(StatusCode::BAD_REQUEST, "BadRequest", message, ids);
    let bytes = match axum::body::to_bytes(body, s.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return Err(bad("The request body is larger than the emulator accepts.")),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(empty);
    }
    signaling::json::from_slice_strict(&bytes).map_err(|e| {
        let detail = media_blob::bounded(&e.to_string(), MAX_DETAIL_CHARS);
        bad(&format!("Unable to read JSON request payload: {detail}."))
    })
}

/// `running` for the actions that take time (the completion is a notification),
/// `completed` for the others.
fn initial_status(action: Action) -> &'static str {
    match action {
        Action::PlayPrompt | Action::RecordResponse | Action::InviteParticipants => "running",
        _ => "completed",
    }
}

/// The `commsOperation` resource of an action: `@odata.type`, id, status, the body's
/// `clientContext`.
pub(crate) fn operation(
    call_id: &str,
    action: Action,
    body: &Value,
    op_id: &str,
    status: &str,
) -> Value {
    let ty = match action {
        Action::Mute => "muteParticipantOperation",
        Action::Unmute => "unmuteParticipantOperation",
        Action::SubscribeToTone => "subscribeToToneOperation",
        Action::SendDtmfTones => "sendDtmfTonesOperation",
        Action::PlayPrompt => "playPromptOperation",
        Action::RecordResponse => "recordOperation",
        Action::CancelMediaProcessing => "cancelMediaProcessingOperation",
        Action::UpdateRecordingStatus => "updateRecordingStatusOperation",
        Action::InviteParticipants => "inviteParticipantsOperation",
        _ => "commsOperation",
    };
    let mut op = json!({
        "@odata.type": format!("#microsoft.graph.{ty}"),
        "@odata.id": format!("/communications/calls/{call_id}/operations/{op_id}"),
        "id": op_id,
        "status": status,
        "clientContext": body.get("clientContext").cloned().unwrap_or(Value::Null),
        "resultInfo": null,
    });
    if status == "completed" {
        op["resultInfo"] = json!({
            "@odata.type": "#microsoft.graph.resultInfo",
            "code": 200,
            "subcode": 0,
            "message": "Action completed successfully.",
        });
    }
    if action == Action::RecordResponse && status == "completed" {
        op["recordingLocation"] = format!("https://emulator.invalid/recordings/{op_id}.wav").into();
        op["recordingAccessToken"] = uuid::Uuid::new_v4().simple().to_string().into();
        op["completionReason"] = "maxRecordDurationReached".into();
    }
    if action == Action::InviteParticipants {
        op["participants"] = body["participants"].clone();
    }
    op
}
