//! Per-call tasks: the driver (scripted flow, keepAlive timer, commands, media) and
//! the sender (delivers the call's notifications in order, with bounded retries).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use signaling::CallState;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use signaling::actions::Action;

use crate::actions;
use crate::call::{self, CallContext, Step};
use crate::media::{BoxFuture, LegControl, MediaLeg, MediaStatus};
use crate::state::{Command, NotificationRecord, Shared, Termination, bump, lock};
use crate::time::unix_now;

/// Resolves when shutdown begins (or the emulator is gone).
pub(crate) async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Await an optional future; never resolves when `None`.
async fn opt<F: Future + Unpin>(f: &mut Option<F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One notification queued for delivery.
pub(crate) struct Outgoing {
    body: Value,
    /// Told once the notification was delivered or given up on.
    done: Option<oneshot::Sender<bool>>,
}

/// Claims of the JWT on every callback (Bot Framework style).
#[derive(Serialize)]
struct CallbackClaims<'a> {
    iss: &'static str,
    aud: &'a str,
    tid: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// The issuer of callback JWTs.
pub const CALLBACK_ISSUER: &str = "https://api.botframework.com";

/// Start a call's driver and sender.
pub(crate) fn spawn_call(
    shared: &Arc<Shared>,
    ctx: CallContext,
    commands: mpsc::UnboundedReceiver<Command>,
) {
    let ctx = Arc::new(ctx);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    shared
        .tasks
        .spawn(run_sender(shared.clone(), ctx.clone(), out_rx));
    shared
        .tasks
        .spawn(run_driver(shared.clone(), ctx, commands, out_tx));
}

fn record_of(body: &Value) -> NotificationRecord {
    let n = &body["value"][0];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    NotificationRecord {
        change_type: s(&n["changeType"]),
        resource_url: s(&n["resourceUrl"]),
        state: n["resourceData"]["state"].as_str().map(str::to_owned),
        delivered: false,
        attempts: 0,
    }
}

async fn run_sender(
    shared: Arc<Shared>,
    ctx: Arc<CallContext>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let out = tokio::select! {
            biased;
            _ = wait_shutdown(&mut shutdown) => return,
            out = rx.recv() => match out {
                Some(out) => out,
                None => return,
            },
        };
        let (delivered, attempts) = tokio::select! {
            biased;
            _ = wait_shutdown(&mut shutdown) => return,
            r = deliver(&shared, &ctx, &out.body) => r,
        };
        let mut record = record_of(&out.body);
        record.delivered = delivered;
        record.attempts = attempts;
        if let Some(r) = lock(&shared.calls).get_mut(&ctx.id) {
            r.summary.notifications.push(record);
        }
        bump(if delivered {
            &shared.counters.notifications_delivered
        } else {
            &shared.counters.notifications_failed
        });
        if let Some(done) = out.done {
            let _ = done.send(delivered);
        }
    }
}

/// POST one notification, retrying 5xx, 429 and network errors; gives (delivered, attempts).
async fn deliver(shared: &Shared, ctx: &CallContext, body: &Value) -> (bool, u32) {
    let policy = shared.config.delivery;
    let mut delay = policy.retry_delay;
    for attempt in 1..=policy.max_attempts {
        bump(&shared.counters.notification_attempts);
        let now = unix_now();
        let claims = CallbackClaims {
            iss: CALLBACK_ISSUER,
            aud: &ctx.app_id,
            tid: &ctx.tenant_id,
            iat: now,
            nbf: now,
            exp: now + shared.config.callback_token_lifetime.as_secs().max(1),
        };
        let token = match shared.key.sign(&claims) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(call = %ctx.id, "cannot sign callback token: {e}");
                return (false, attempt);
            }
        };
        let result = shared
            .http
            .post(&ctx.callback_uri)
            .bearer_auth(token)
            .timeout(policy.request_timeout)
            .json(body)
            .send()
            .await;
        match result {
            Ok(resp) if resp.status().is_success() => return (true, attempt),
            Ok(resp) => {
                let status = resp.status();
                let retry = status.is_server_error() || status.as_u16() == 429;
                tracing::debug!(call = %ctx.id, %status, attempt, "callback refused");
                if !retry {
                    return (false, attempt);
                }
            }
            Err(e) => tracing::debug!(call = %ctx.id, attempt, "callback failed: {e}"),
        }
        if attempt < policy.max_attempts {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }
    (false, policy.max_attempts)
}

fn set_media(shared: &Shared, id: &str, status: MediaStatus) {
    if let Some(r) = lock(&shared.calls).get_mut(id) {
        r.summary.media = status;
    }
}

type Connecting =
    BoxFuture<'static, Result<Result<Box<dyn MediaLeg>, String>, tokio::time::error::Elapsed>>;

async fn run_driver(
    shared: Arc<Shared>,
    ctx: Arc<CallContext>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    out: mpsc::UnboundedSender<Outgoing>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    let timing = shared.config.timing;
    let keepalive_timeout = shared.config.keepalive_timeout;
    // An offered call rings until the bot answers (then it runs a placed call's
    // script), rejects, redirects, or the answer timeout passes.
    let mut steps = if ctx.incoming {
        Default::default()
    } else {
        call::script(ctx.kind, ctx.content_sharing, &timing)
    };
    let mut next_at = steps.front().map(|(d, _)| Instant::now() + *d);
    let mut ring_deadline = ctx.incoming.then(|| Instant::now() + timing.answer_timeout);
    // Notifications due later (the ends of long-running operations), in order.
    let mut delayed: std::collections::VecDeque<(Instant, Value)> = Default::default();
    let mut media = ctx.media.clone();
    let mut keepalive_deadline = Instant::now() + keepalive_timeout;
    let mut established: Option<oneshot::Receiver<bool>> = None;
    let mut connecting: Option<Connecting> = None;
    let mut leg: Option<Arc<dyn MediaLeg>> = None;
    let mut leg_closed: Option<BoxFuture<'static, String>> = None;
    // The roster sent when media connected; once the bot has it, the far end
    // reports the other party as the speaker.
    let mut roster_sent: Option<oneshot::Receiver<bool>> = None;
    let send = |body: Value, done: Option<oneshot::Sender<bool>>| {
        let _ = out.send(Outgoing { body, done });
    };
    if ctx.incoming {
        let offered = lock(&shared.calls).get(&ctx.id).map(|r| r.resource.clone());
        if let Some(resource) = offered {
            send(call::incoming_notification(&ctx, &resource), None);
        }
    }

    let end: Option<Termination> = loop {
        tokio::select! {
            biased;
            _ = wait_shutdown(&mut shutdown) => break None,
            cmd = commands.recv() => match cmd {
                Some(Command::KeepAlive) => keepalive_deadline = Instant::now() + keepalive_timeout,
                Some(Command::End(t)) => break Some(t),
                Some(Command::Answer(answered)) => {
                    ring_deadline = None;
                    media = answered.map(|m| *m);
                    steps = call::script(ctx.kind, ctx.content_sharing, &timing);
                    next_at = steps.front().map(|(d, _)| Instant::now() + *d);
                }
                Some(Command::Notify(body)) => send(body, None),
                Some(Command::Act(action, body, op_id)) => {
                    let later = Instant::now() + timing.step_delay;
                    match action {
                        Action::Mute | Action::Unmute => {
                            send(call::bot_muted_notification(&ctx, action == Action::Mute), None);
                        }
                        Action::Transfer => {
                            send(call::state_notification(&ctx, "transferring"), None);
                            if body["transferTarget"]["replacesCallId"].is_string() {
                                break Some(Termination::transferred_consultative());
                            }
                            break Some(Termination::transferred());
                        }
                        Action::InviteParticipants => {
                            let invited = body["participants"].as_array().cloned().unwrap_or_default();
                            let joined = {
                                let mut calls = lock(&shared.calls);
                                let r = calls.get_mut(&ctx.id);
                                // Fresh media source ids: above every one in use (from 20).
                                let first = r
                                    .as_ref()
                                    .and_then(|r| r.participants.iter().filter_map(call::audio_msi).max())
                                    .map_or(20, |m| m.max(19) + 1);
                                let joined = call::invitees(&invited, first);
                                if let Some(r) = r {
                                    r.participants.extend(joined.iter().cloned());
                                }
                                joined
                            };
                            delayed.push_back((later, call::roster_update(&ctx, joined)));
                            let op = actions::operation(&ctx.id, action, &body, &op_id, "completed");
                            delayed.push_back((later, call::operation_notification(&ctx, &op)));
                        }
                        Action::PlayPrompt | Action::RecordResponse => {
                            let op = actions::operation(&ctx.id, action, &body, &op_id, "completed");
                            delayed.push_back((later, call::operation_notification(&ctx, &op)));
                        }
                        _ => {}
                    }
                }
                None => break None,
            },
            _ = sleep_until_opt(delayed.front().map(|(at, _)| *at)) => {
                if let Some((_, body)) = delayed.pop_front() {
                    send(body, None);
                }
            }
            _ = sleep_until_opt(ring_deadline) => {
                break Some(Termination::unanswered(timing.answer_timeout.as_secs_f64()));
            }
            _ = tokio::time::sleep_until(keepalive_deadline) => {
                break Some(Termination::keepalive_lapsed(keepalive_timeout.as_secs_f64()));
            }
            _ = sleep_until_opt(next_at) => {
                let Some((_, step)) = steps.pop_front() else {
                    next_at = None;
                    continue;
                };
                next_at = steps.front().map(|(d, _)| Instant::now() + *d);
                match step {
                    Step::Establishing => send(call::state_notification(&ctx, "establishing"), None),
                    Step::Established => {
                        if let Some(r) = lock(&shared.calls).get_mut(&ctx.id)
                            && r.is_live()
                        {
                            r.set_state(CallState::Established);
                            let modalities = r.resource["requestedModalities"].clone();
                            r.resource["activeModalities"] = modalities;
                        }
                        let done = if media.is_some() {
                            let (tx, rx) = oneshot::channel();
                            established = Some(rx);
                            Some(tx)
                        } else {
                            None
                        };
                        send(call::state_notification(&ctx, "established"), done);
                    }
                    Step::Roster { lobby } => {
                        // Media may have connected (and sent this roster) first.
                        let participants = call::roster_participants(&ctx, lobby);
                        let changed = lock(&shared.calls).get_mut(&ctx.id).is_some_and(|r| {
                            let changed = r.participants != participants;
                            r.participants = participants.clone();
                            changed
                        });
                        if changed {
                            send(call::roster_update(&ctx, participants), None);
                        }
                    }
                    Step::ContentSharing(change) => {
                        send(call::content_sharing_notification(&ctx, change), None);
                    }
                }
            }
            _ = opt(&mut established) => {
                established = None;
                if let Some(config) = &media {
                    set_media(&shared, &ctx.id, MediaStatus::Connecting);
                    let fut = shared.config.media.connect(&ctx.id, config);
                    connecting = Some(Box::pin(tokio::time::timeout(
                        timing.media_connect_timeout,
                        fut,
                    )));
                }
            }
            result = opt(&mut connecting) => {
                connecting = None;
                let detail = match result {
                    Ok(Ok(l)) => {
                        let l: Arc<dyn MediaLeg> = Arc::from(l);
                        leg_closed = Some(l.closed());
                        leg = Some(l.clone());
                        bump(&shared.counters.media_connected);
                        // A call without a roster yet gets one now (each audio
                        // stream's sourceId is what the far end reports speakers by).
                        let fresh = lock(&shared.calls).get_mut(&ctx.id).and_then(|r| {
                            r.summary.media = MediaStatus::Connected;
                            r.leg = Some(l);
                            r.participants.is_empty().then(|| {
                                r.participants = call::roster_participants(&ctx, false);
                                r.participants.clone()
                            })
                        });
                        let (tx, rx) = oneshot::channel();
                        roster_sent = Some(rx);
                        match fresh {
                            Some(participants) => {
                                send(call::roster_update(&ctx, participants), Some(tx));
                            }
                            None => {
                                let _ = tx.send(true);
                            }
                        }
                        continue;
                    }
                    Ok(Err(e)) => e,
                    Err(_) => format!(
                        "the media peer did not connect to the media processor within {:?}",
                        timing.media_connect_timeout
                    ),
                };
                bump(&shared.counters.media_failed);
                set_media(&shared, &ctx.id, MediaStatus::Failed(detail.clone()));
                break Some(Termination::client_media_error(&detail));
            }
            _ = opt(&mut roster_sent) => {
                roster_sent = None;
                let speaker = lock(&shared.calls).get(&ctx.id).and_then(|r| {
                    r.participants
                        .iter()
                        .filter(|p| p["id"] != ctx.my_participant_id.as_str())
                        .find_map(call::audio_msi)
                });
                if let (Some(l), Some(msi)) = (&leg, speaker) {
                    l.control(LegControl::Speakers { active: vec![msi], dominant: Some(msi) });
                }
            }
            reason = opt(&mut leg_closed) => {
                bump(&shared.counters.media_failed);
                set_media(&shared, &ctx.id, MediaStatus::Failed(reason.clone()));
                break Some(Termination::client_media_error(&reason));
            }
        }
    };

    if let Some(l) = leg {
        // A leg that does not stop in time is abandoned, not waited on forever.
        let _ = tokio::time::timeout(Duration::from_secs(5), l.stop()).await;
        if let Some(r) = lock(&shared.calls).get_mut(&ctx.id)
            && r.summary.media == MediaStatus::Connected
        {
            r.summary.media = MediaStatus::Stopped;
        }
    }
    {
        let mut calls = lock(&shared.calls);
        if let Some(r) = calls.get_mut(&ctx.id) {
            r.commands = None;
            if let Some(t) = &end {
                r.set_state(CallState::Terminated);
                r.summary.termination = Some(t.clone());
            }
        }
    }
    if let Some(t) = end {
        bump(&shared.counters.calls_terminated);
        tracing::info!(call = %ctx.id, reason = %t.reason, "call terminated");
        send(call::terminated_notification(&ctx, &t), None);
    }
    // Dropping `out` lets the sender finish the queue (terminated last) and end.
}
