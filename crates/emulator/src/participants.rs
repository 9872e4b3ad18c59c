//! A call's participants: the actions on one participant (`POST
//! .../participants/{participantId}/mute`, `DELETE .../participants/{participantId}`),
//! and what the far end does in the media (who speaks, DTMF).
//!
//! The emulator keeps each call's roster as it sent it (the participant resources
//! of its `participants` notifications, each audio stream with a `sourceId`). The
//! speakers the far end reports in the media link are those `sourceId`s, so a bot
//! can map every frame's speakers to participants as it would with Graph.
//!
//! | request | answer | then |
//! |---|---|---|
//! | `participants/{id}/mute` | 200 `muteParticipantOperation`, completed | the participant `updated`, `isMuted: true` |
//! | `DELETE participants/{id}` | 204 | the participant `deleted` from the roster |
//!
//! Both are checked as Graph checks them: 401, 404 (call or participant unknown),
//! 400 (body; mute in a peer-to-peer call: group calls only), 403 (permissions as
//! [`ParticipantAction::permissions`] lists them), 409 (the call is not established).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use signaling::actions::{Action, ParticipantAction};
use signaling::{CallKind, CallState};

use crate::call;
use crate::error::EmulatorError;
use crate::media::LegControl;
use crate::server::{
    AppState, RequestIds, graph_error, invalid_request, not_authorized, not_found_call,
};
use crate::state::{Command, Shared, lock};

/// The routes of the participant actions.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/communications/calls/{id}/participants/{participant}/mute",
            post(participant::<false>),
        )
        .route(
            "/communications/calls/{id}/participants/{participant}",
            delete(participant::<true>),
        )
}

/// `POST .../participants/{participantId}/mute` (`DELETE` false) or `DELETE
/// .../participants/{participantId}` (`DELETE` true).
async fn participant<const DELETE: bool>(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Path((id, participant)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let action = if DELETE {
        ParticipantAction::Delete
    } else {
        ParticipantAction::Mute
    };
    act(&s, &ids, &id, &participant, &headers, body, action).await
}

async fn act(
    s: &AppState,
    ids: &RequestIds,
    id: &str,
    participant: &str,
    headers: &HeaderMap,
    body: Body,
    action: ParticipantAction,
) -> Response {
    let bad = |message: &str| graph_error(StatusCode::BAD_REQUEST, "BadRequest", message, ids);
    let (_, granted, found) = match crate::actions::callers_call(s, headers, id, ids) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let (state, kind) = (found.state, found.kind);
    let empty = match action {
        ParticipantAction::Mute => json!({}),
        _ => Value::Null,
    };
    let value = match crate::actions::read_body(s, body, empty, ids).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let problems = action.problems(&value);
    if !problems.is_empty() {
        return invalid_request(problems.into_iter().map(|p| (p.message, p.path)), ids);
    }
    let required = action.permissions();
    if !required.is_satisfied_by(&granted) {
        return not_authorized(&format!("{action} in this call"), &required, &granted, ids);
    }
    if state != CallState::Established {
        return graph_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Call {id} is {}; {action} needs a call that is established.",
                state.as_str()
            ),
            ids,
        );
    }
    if action == ParticipantAction::Mute && matches!(kind, CallKind::PeerToPeer | CallKind::Pstn) {
        return bad("Muting a participant is only supported for group calls.");
    }
    let mut calls = lock(&s.calls);
    let Some(r) = calls.get_mut(id) else {
        return not_found_call(id, ids);
    };
    let Some(index) = r.participants.iter().position(|p| p["id"] == participant) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            &format!(
                "Participant '{}' is not in call '{id}'.",
                media_blob::excerpt(participant)
            ),
            ids,
        );
    };
    let Some(commands) = r.commands.clone() else {
        return not_found_call(id, ids);
    };
    let resource_url = format!("/communications/calls/{id}");
    let callback = r.summary.callback_uri.clone();
    match action {
        ParticipantAction::Mute => {
            r.participants[index]["isMuted"] = true.into();
            let updated = r.participants[index].clone();
            drop(calls);
            let _ = commands.send(Command::Notify(participants_notification(
                &resource_url,
                &callback,
                "updated",
                updated,
            )));
            let op_id = uuid::Uuid::new_v4().to_string();
            let op = crate::actions::operation(id, Action::Mute, &value, &op_id, "completed");
            (StatusCode::OK, Json(op)).into_response()
        }
        _ => {
            let removed = r.participants.remove(index);
            drop(calls);
            let _ = commands.send(Command::Notify(participants_notification(
                &resource_url,
                &callback,
                "deleted",
                removed,
            )));
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

/// One participant `updated` or `deleted` in the roster of the call at
/// `resource_url`.
fn participants_notification(
    resource_url: &str,
    callback: &str,
    change: &str,
    participant: Value,
) -> Value {
    json!({
        "@odata.type": signaling::odata::COMMS_NOTIFICATIONS,
        "value": [{
            "@odata.type": signaling::odata::COMMS_NOTIFICATION,
            "changeType": change,
            "resourceUrl": format!("{resource_url}/participants"),
            "callbackUri": callback,
            "resourceData": [participant],
        }],
    })
}

/// The participants of a live call as the emulator last sent them.
pub(crate) fn roster(shared: &Shared, call_id: &str) -> Result<Vec<Value>, EmulatorError> {
    lock(&shared.calls)
        .get(call_id)
        .filter(|r| r.is_live())
        .map(|r| r.participants.clone())
        .ok_or_else(|| no_call(call_id))
}

fn no_call(call_id: &str) -> EmulatorError {
    EmulatorError::UnknownCall(format!(
        "no live call {} in the emulator",
        media_blob::excerpt(call_id)
    ))
}

/// The far end of `call_id` reports `participant_ids` as the audible speakers
/// (loudest first; the first is the dominant one; none: silence) in the media link.
pub(crate) fn set_speakers(
    shared: &Arc<Shared>,
    call_id: &str,
    participant_ids: &[&str],
) -> Result<(), EmulatorError> {
    let calls = lock(&shared.calls);
    let r = calls
        .get(call_id)
        .filter(|r| r.is_live())
        .ok_or_else(|| no_call(call_id))?;
    let mut active = Vec::with_capacity(participant_ids.len());
    for pid in participant_ids {
        let p = r
            .participants
            .iter()
            .find(|p| p["id"] == *pid)
            .ok_or_else(|| {
                EmulatorError::Call(format!(
                    "participant {} is not in the roster of call {call_id}",
                    media_blob::excerpt(pid)
                ))
            })?;
        let msi = call::audio_msi(p).ok_or_else(|| {
            EmulatorError::Call(format!(
                "participant {} of call {call_id} has no audio stream",
                media_blob::excerpt(pid)
            ))
        })?;
        active.push(msi);
    }
    let leg = r.leg.clone().ok_or_else(|| {
        EmulatorError::Call(format!(
            "call {call_id} has no connected media (app-hosted media connects once established)"
        ))
    })?;
    drop(calls);
    let dominant = active.first().copied();
    if leg.control(LegControl::Speakers { active, dominant }) {
        Ok(())
    } else {
        Err(EmulatorError::Call(format!(
            "the far end of call {call_id} does not carry speakers"
        )))
    }
}

/// Graph's names of the DTMF tones.
const TONES: [&str; 17] = [
    "tone0", "tone1", "tone2", "tone3", "tone4", "tone5", "tone6", "tone7", "tone8", "tone9",
    "star", "pound", "a", "b", "c", "d", "flash",
];

/// The far end of `call_id` presses `tones` (Graph's names: `tone0`-`tone9`, `star`,
/// `pound`, `a`-`d`, `flash`): they travel in the media link (app-hosted calls), and
/// if the bot subscribed to tones each is reported as the call's `toneInfo`. Returns
/// how many went into the media link.
pub(crate) fn press_tones(
    shared: &Arc<Shared>,
    call_id: &str,
    tones: &[&str],
) -> Result<usize, EmulatorError> {
    for (i, t) in tones.iter().enumerate() {
        if !TONES.iter().any(|k| k.eq_ignore_ascii_case(t)) {
            return Err(EmulatorError::Call(format!(
                "tones[{i}]: {} is not one of {}",
                media_blob::excerpt(t),
                TONES.join(", ")
            )));
        }
    }
    let mut calls = lock(&shared.calls);
    let r = calls
        .get_mut(call_id)
        .filter(|r| r.is_live() && r.summary.state == CallState::Established)
        .ok_or_else(|| {
            EmulatorError::UnknownCall(format!(
                "no established call {} in the emulator",
                media_blob::excerpt(call_id)
            ))
        })?;
    let leg = r.leg.clone();
    let mut reports = Vec::new();
    if r.tones_subscribed {
        for t in tones {
            r.tone_sequence += 1;
            reports.push((t.to_ascii_lowercase(), r.tone_sequence));
        }
    }
    let commands = r.commands.clone();
    let ctx = (
        format!("/communications/calls/{call_id}"),
        r.summary.callback_uri.clone(),
    );
    drop(calls);
    let mut in_media = 0;
    if let Some(leg) = leg {
        for t in tones {
            let control = LegControl::Tone {
                tone: t.to_ascii_lowercase(),
                duration_ms: 100,
            };
            in_media += usize::from(leg.control(control));
        }
    }
    if let Some(commands) = commands {
        for (tone, seq) in reports {
            let _ = commands.send(Command::Notify(call::tone_notification_at(
                &ctx.0, &ctx.1, call_id, &tone, seq,
            )));
        }
    }
    Ok(in_media)
}

/// The body of `POST /_emulator/calls/{id}/speakers`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpeakersBody {
    /// Roster ids, loudest first (empty: nobody speaks).
    participants: Vec<String>,
}

/// The body of `POST /_emulator/calls/{id}/tones`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TonesBody {
    /// Graph's tone names.
    tones: Vec<String>,
}

/// A JSON body of the control endpoints, or a 400 naming what is wrong.
fn control_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
    ids: &RequestIds,
) -> Result<T, Box<Response>> {
    body.map(|Json(b)| b).map_err(|e| {
        let message = media_blob::bounded(&e.body_text(), crate::server::MAX_DETAIL_CHARS);
        Box::new(graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &message,
            ids,
        ))
    })
}

/// The API's error as the control endpoints answer it: 404 without such a call,
/// 400 otherwise.
fn control_error(e: EmulatorError, ids: &RequestIds) -> Response {
    let (status, code) = match e {
        EmulatorError::UnknownCall(_) => (StatusCode::NOT_FOUND, "itemNotFound"),
        _ => (StatusCode::BAD_REQUEST, "BadRequest"),
    };
    graph_error(status, code, &e.to_string(), ids)
}

/// `GET /_emulator/calls/{id}/participants`: the roster as the emulator sent it.
pub(crate) async fn roster_request(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Path(id): Path<String>,
) -> Response {
    match roster(&s, &id) {
        Ok(p) => Json(json!({ "value": p })).into_response(),
        Err(e) => control_error(e, &ids),
    }
}

/// `POST /_emulator/calls/{id}/speakers` (`{"participants": [ids]}`): who the far
/// end reports as speaking.
pub(crate) async fn speakers_request(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Path(id): Path<String>,
    body: Result<Json<SpeakersBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match control_body(body, &ids) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    let who: Vec<&str> = body.participants.iter().map(String::as_str).collect();
    match set_speakers(&s, &id, &who) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => control_error(e, &ids),
    }
}

/// `POST /_emulator/calls/{id}/tones` (`{"tones": ["tone1", ...]}`): the far end
/// presses DTMF keys; answers how many went into the media link.
pub(crate) async fn tones_request(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Path(id): Path<String>,
    body: Result<Json<TonesBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match control_body(body, &ids) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    let tones: Vec<&str> = body.tones.iter().map(String::as_str).collect();
    match press_tones(&s, &id, &tones) {
        Ok(n) => Json(json!({ "inMedia": n })).into_response(),
        Err(e) => control_error(e, &ids),
    }
}
