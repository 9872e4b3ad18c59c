//! Shared state: the call registry, counters, faults, the task set.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use signaling::{CallKind, CallState};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::EmulatorConfig;
use crate::faults::Fault;
use crate::keys::SigningKey;
use crate::media::{MediaLeg, MediaLegStats, MediaStatus};

/// Lock a mutex, recovering the data if a holder panicked (state stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What ends a call, with the `resultInfo` and `terminationReason` its `terminated`
/// notification carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// `resultInfo.code`.
    pub code: i64,
    /// `resultInfo.subcode`.
    pub subcode: i64,
    /// `resultInfo.message`.
    pub message: String,
    /// `terminationReason`.
    pub reason: String,
}

impl Termination {
    /// The bot deleted the call (`DELETE /communications/calls/{id}`).
    pub fn deleted_by_app() -> Self {
        Termination {
            code: 200,
            subcode: 5001,
            message: "The call was ended by the application (DELETE).".into(),
            reason: "AppHangUp".into(),
        }
    }

    /// The remote side hung up ([`EmulatorHandle::hang_up`](crate::EmulatorHandle::hang_up)).
    pub fn remote_hang_up() -> Self {
        Termination {
            code: 200,
            subcode: 5002,
            message: "The remote participant hung up.".into(),
            reason: "RemoteHangUp".into(),
        }
    }

    /// No keepAlive within the timeout.
    pub fn keepalive_lapsed(timeout_s: f64) -> Self {
        Termination {
            code: 408,
            subcode: 5100,
            message: format!(
                "The call was ended because no keepAlive was received within {timeout_s} s."
            ),
            reason: "KeepAliveTimeout".into(),
        }
    }

    /// The bot rejected the offered call (`reject`); the code is the SIP answer the
    /// reason stands for (603 decline, 486 busy, 403 forbidden).
    pub fn rejected(reason: &str) -> Self {
        let (code, why) = match reason.to_ascii_lowercase().as_str() {
            "busy" => (486, "busy"),
            "forbidden" => (403, "forbidden"),
            _ => (603, "declined"),
        };
        Termination {
            code,
            subcode: 5010,
            message: format!("The application rejected the call ({why})."),
            reason: "Rejected".into(),
        }
    }

    /// The bot redirected the offered call (`redirect`).
    pub fn redirected(targets: usize) -> Self {
        Termination {
            code: 302,
            subcode: 5020,
            message: format!("The application redirected the call to {targets} target(s)."),
            reason: "Redirected".into(),
        }
    }

    /// The bot transferred the call (`transfer`): it left the call.
    pub fn transferred() -> Self {
        Termination {
            code: 200,
            subcode: 7015,
            message: "The call was transferred; the application left it.".into(),
            reason: "Transferred".into(),
        }
    }

    /// The bot completed a consultative transfer (`transferTarget.replacesCallId`):
    /// it left the call (Graph's reference: `terminationReason` `AppTransferred`).
    pub fn transferred_consultative() -> Self {
        Termination {
            code: 200,
            subcode: 7015,
            message: "The call was transferred (consultative); the application left it.".into(),
            reason: "AppTransferred".into(),
        }
    }

    /// The bot's consultation call ended because a consultative transfer of call
    /// `transferred` replaced it (its party now talks to the transferee).
    pub fn replaced_by_transfer(transferred: &str) -> Self {
        Termination {
            code: 200,
            subcode: 7016,
            message: format!("The call was replaced by the transfer of call {transferred}."),
            reason: "Replaced".into(),
        }
    }

    /// Nobody answered, rejected or redirected the offered call in time.
    pub fn unanswered(timeout_s: f64) -> Self {
        Termination {
            code: 408,
            subcode: 5030,
            message: format!("The application did not answer the call within {timeout_s} s."),
            reason: "Unanswered".into(),
        }
    }

    /// The far end could not connect media (or lost it), as the field reports it.
    pub fn client_media_error(detail: &str) -> Self {
        Termination {
            code: 410,
            subcode: 301005,
            message: format!("Client Media Error: {detail}"),
            reason: "ClientMediaError".into(),
        }
    }
}

/// One notification the emulator sent (or tried to send) for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    /// `changeType`.
    pub change_type: String,
    /// `resourceUrl`.
    pub resource_url: String,
    /// `resourceData.state` for call resources.
    pub state: Option<String>,
    /// Whether the bot answered 2xx.
    pub delivered: bool,
    /// HTTP attempts made.
    pub attempts: u32,
}

/// A call as the emulator's handle reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSummary {
    /// Call id.
    pub id: String,
    /// Current state (`terminated` once ended).
    pub state: CallState,
    /// What kind of call it is.
    pub kind: CallKind,
    /// The app that created it (client id).
    pub app_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Where notifications go.
    pub callback_uri: String,
    /// Media of the call.
    pub media: MediaStatus,
    /// Why it ended, once ended.
    pub termination: Option<Termination>,
    /// Notifications so far, in order.
    pub notifications: Vec<NotificationRecord>,
}

/// A command to a call's driver.
#[derive(Debug)]
pub(crate) enum Command {
    /// keepAlive received.
    KeepAlive,
    /// End the call.
    End(Termination),
    /// The offered call was answered, with this app-hosted media (None: service-hosted).
    Answer(Option<Box<media_blob::MediaSessionConfig>>),
    /// An in-call action was accepted: its body and operation id (empty for actions
    /// without one); the driver sends what follows.
    Act(signaling::actions::Action, Value, String),
    /// Send this notification (in order with the call's others).
    Notify(Value),
}

pub(crate) struct CallRecord {
    pub(crate) resource: Value,
    pub(crate) summary: CallSummary,
    pub(crate) commands: Option<mpsc::UnboundedSender<Command>>,
    pub(crate) leg: Option<Arc<dyn MediaLeg>>,
    /// The roster as the emulator last sent it (participant resources).
    pub(crate) participants: Vec<Value>,
    /// `subscribeToTone` was accepted: tones are reported as `toneInfo`.
    pub(crate) tones_subscribed: bool,
    /// The last `toneInfo.sequenceId` sent.
    pub(crate) tone_sequence: i64,
}

impl CallRecord {
    /// A record of a new call.
    pub(crate) fn new(
        resource: Value,
        summary: CallSummary,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        CallRecord {
            resource,
            summary,
            commands: Some(commands),
            leg: None,
            participants: Vec::new(),
            tones_subscribed: false,
            tone_sequence: 0,
        }
    }
}

impl CallRecord {
    /// Whether the call still answers GET / keepAlive.
    pub(crate) fn is_live(&self) -> bool {
        !matches!(
            self.summary.state,
            CallState::Terminating | CallState::Terminated
        )
    }

    /// Set the state in the summary and the resource.
    pub(crate) fn set_state(&mut self, state: CallState) {
        if let Some(obj) = self.resource.as_object_mut() {
            obj.insert("state".into(), Value::String(state.as_str().to_owned()));
        }
        self.summary.state = state;
    }
}

/// Counters since start (camelCase JSON at `GET /_emulator/calls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// HTTP requests received (all endpoints).
    pub requests: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Token requests refused.
    pub tokens_rejected: u64,
    /// Calls created (201).
    pub calls_created: u64,
    /// Create-call requests refused (4xx).
    pub calls_rejected: u64,
    /// Calls terminated.
    pub calls_terminated: u64,
    /// keepAlive requests accepted.
    pub keep_alives: u64,
    /// Requests answered with an injected fault.
    pub faults_served: u64,
    /// Notifications the bot acknowledged (2xx).
    pub notifications_delivered: u64,
    /// Notifications given up on.
    pub notifications_failed: u64,
    /// Callback HTTP attempts, retries included.
    pub notification_attempts: u64,
    /// Media legs connected.
    pub media_connected: u64,
    /// Media legs that failed to connect or closed on their own.
    pub media_failed: u64,
}

#[derive(Default)]
pub(crate) struct AtomicCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) tokens_issued: AtomicU64,
    pub(crate) tokens_rejected: AtomicU64,
    pub(crate) calls_created: AtomicU64,
    pub(crate) calls_rejected: AtomicU64,
    pub(crate) calls_terminated: AtomicU64,
    pub(crate) keep_alives: AtomicU64,
    pub(crate) faults_served: AtomicU64,
    pub(crate) notifications_delivered: AtomicU64,
    pub(crate) notifications_failed: AtomicU64,
    pub(crate) notification_attempts: AtomicU64,
    pub(crate) media_connected: AtomicU64,
    pub(crate) media_failed: AtomicU64,
}

/// Add one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl AtomicCounters {
    pub(crate) fn snapshot(&self) -> Counters {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            requests: g(&self.requests),
            tokens_issued: g(&self.tokens_issued),
            tokens_rejected: g(&self.tokens_rejected),
            calls_created: g(&self.calls_created),
            calls_rejected: g(&self.calls_rejected),
            calls_terminated: g(&self.calls_terminated),
            keep_alives: g(&self.keep_alives),
            faults_served: g(&self.faults_served),
            notifications_delivered: g(&self.notifications_delivered),
            notifications_failed: g(&self.notifications_failed),
            notification_attempts: g(&self.notification_attempts),
            media_connected: g(&self.media_connected),
            media_failed: g(&self.media_failed),
        }
    }
}

/// Counts the emulator's live tasks (server, call drivers, notification senders);
/// clone it to watch the count after the handle is gone.
#[derive(Debug, Clone, Default)]
pub struct TaskCounter(Arc<AtomicUsize>);

impl TaskCounter {
    /// Tasks spawned and not yet finished.
    pub fn live(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Spawns and remembers the emulator's tasks so shutdown can wait for all of them.
#[derive(Default)]
pub(crate) struct TaskSet {
    counter: TaskCounter,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl TaskSet {
    pub(crate) fn counter(&self) -> TaskCounter {
        self.counter.clone()
    }

    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.counter.0.fetch_add(1, Ordering::SeqCst);
        let guard = LiveGuard(self.counter.0.clone());
        let handle = tokio::spawn(async move {
            let _guard = guard;
            fut.await;
        });
        let mut handles = lock(&self.handles);
        handles.retain(|h| !h.is_finished());
        handles.push(handle);
    }

    pub(crate) fn take_handles(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *lock(&self.handles))
    }
}

/// State shared by the HTTP handlers, call drivers and the handle.
pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    pub(crate) key: SigningKey,
    pub(crate) base_url: String,
    /// The bearer token of the `/_emulator/*` endpoints.
    pub(crate) control_token: String,
    pub(crate) calls: Mutex<HashMap<String, CallRecord>>,
    pub(crate) counters: AtomicCounters,
    pub(crate) faults: Mutex<Vec<Fault>>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) tasks: TaskSet,
    pub(crate) http: reqwest::Client,
    /// `jti`s of client assertions taken (→ their `exp`), to refuse replays.
    pub(crate) assertion_jtis: Mutex<HashMap<String, u64>>,
}

impl Shared {
    /// Summaries of every call, live and ended, sorted by id.
    pub(crate) fn summaries(&self) -> Vec<CallSummary> {
        let mut v: Vec<CallSummary> = lock(&self.calls)
            .values()
            .map(|r| r.summary.clone())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Media counters of a call's leg, if it has one.
    pub(crate) fn media_stats(&self, call_id: &str) -> Option<MediaLegStats> {
        lock(&self.calls)
            .get(call_id)
            .and_then(|r| r.leg.as_ref().map(|l| l.stats()))
    }

    /// Send a command to a live call's driver; false when no such live call.
    pub(crate) fn command(&self, call_id: &str, cmd: Command) -> bool {
        let calls = lock(&self.calls);
        match calls.get(call_id) {
            Some(r) if r.is_live() => r.commands.as_ref().is_some_and(|tx| tx.send(cmd).is_ok()),
            _ => false,
        }
    }

    /// End a live call: it becomes `terminating` at once (GET, keepAlive, DELETE and
    /// hang-up then see no live call) and its driver sends `terminated`. `owner`
    /// restricts it to one app's calls. False when no such live call.
    pub(crate) fn end_call(&self, call_id: &str, owner: Option<&str>, t: Termination) -> bool {
        let mut calls = lock(&self.calls);
        let Some(r) = calls.get_mut(call_id) else {
            return false;
        };
        if !r.is_live() || owner.is_some_and(|o| o != r.summary.app_id) {
            return false;
        }
        let sent = r
            .commands
            .as_ref()
            .is_some_and(|tx| tx.send(Command::End(t)).is_ok());
        if sent {
            r.set_state(CallState::Terminating);
        }
        sent
    }

    /// Whether shutdown has begun.
    pub(crate) fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}
