//! [`CallRuntime`]: the call lifecycle, tying the Graph client, the callback server, the
//! call state machines and the media side together.
//!
//! Per live call the runtime holds one queue (a tokio mpsc) drained by one task that owns
//! the call's [`CallStateMachine`], and one keepAlive task. Lifecycle:
//!
//! - create ([`CallRuntime::create_call`]): an app-hosted call first gets its media
//!   session from [`MediaSessions::create_session`]; its configuration becomes the
//!   request's `mediaConfig.blob`; then `POST /communications/calls`. On `201` the call
//!   is registered: queue task and keepAlive task start. Notifications that arrive for
//!   an unknown call while a create is in flight are held (briefly) and replayed first,
//!   since the service may post `establishing` before the `201` reaches the bot.
//! - `established` starts media ([`MediaSessions::start`]).
//! - `terminated` (or a deleted call resource), a `404` on keepAlive, a hang-up by the
//!   bot ([`CallRuntime::hang_up`]) or a media stream failure reported through
//!   [`MediaReporter`] (which also hangs the call up with `DELETE`) tear the call down:
//!   media stopped ([`MediaSessions::stop`]), keepAlive task cancelled, queue task ended,
//!   state dropped, [`RuntimeEventKind::Removed`] sent.
//!
//! Incoming calls: a `created` notification of a call in state `incoming` registers
//! the call (queue task, no keepAlive yet) and emits [`RuntimeEventKind::Incoming`]
//! with the offered call (source, targets, `chatInfo`/`meetingInfo`). The bot decides
//! within the service's 15 s: [`CallRuntime::answer`] (app-hosted media gets a fresh
//! media session whose configuration is the answer's blob, then the call goes on as
//! a placed one: media at `established`, keepAlive), [`CallRuntime::reject`] or
//! [`CallRuntime::redirect`]; each body is checked as Graph checks it before sending.
//!
//! Participants: each call task keeps the roster from the `participants`
//! notifications and, after every change, publishes an immutable
//! [`RosterSnapshot`] (indexed by audio media source id) in a watch channel:
//! [`CallRuntime::roster`] for anyone, and the [`CallView`] the media side gets at
//! [`MediaSessions::start_call`] together with the participant and tone events that
//! follow, in order. In-call actions on one participant: [`CallRuntime::mute_participant`],
//! [`CallRuntime::remove_participant`]. A `403` from Graph is
//! [`RuntimeError::Forbidden`], naming the permissions the action needs.
//!
//! Notifications for calls the runtime does not know are logged and dropped, unless
//! [`RuntimeConfig::accept_unknown_calls`] is set (then they get a queue and a state
//! machine of their own, without media or keepAlive).
//!
//! [`CallRuntime::live_calls`] and [`CallRuntime::live_tasks`] count what is alive, so a
//! test can prove that nothing leaks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use media_blob::MediaSessionConfig;
use serde_json::Value;
use signaling::state::{CallEvent, CallStateMachine};
use signaling::{Call, CommsNotification, Field, MediaConfig, ResultInfo, RosterSnapshot};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use signaling::actions::{Action, ParticipantAction};

use crate::callback::{self, CallbackConfig, Delivery, NotificationSink};
use crate::client::GraphClient;
use crate::error::GraphError;

/// The media side of the bot: one media session per app-hosted call.
///
/// Calls come from the runtime's tasks; they must not block for long.
pub trait MediaSessions: Send + Sync + 'static {
    /// Create the media session `session_id` for a call about to be placed, and return
    /// its configuration (it becomes the request's `mediaConfig.blob`).
    fn create_session(&self, session_id: Uuid) -> Result<MediaSessionConfig, MediaError>;
    /// The call `call_id` (Graph's id) is established: start the session's media.
    fn start(&self, session_id: Uuid, call_id: &str);
    /// Like [`MediaSessions::start`], with a live view of the call: its roster and
    /// the participant and tone events that follow ([`CallView`]). The runtime calls
    /// this one; the default drops the view and calls `start`.
    fn start_call(&self, session_id: Uuid, call: CallView) {
        self.start(session_id, &call.call_id);
    }
    /// Tear the session down and free its resources (the call ended, failed to be
    /// created, or the runtime shuts down). Called once per created session.
    fn stop(&self, session_id: Uuid);
}

/// Why the media side could not create a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The media platform is overloaded: try later or on another instance.
    #[error("media platform overloaded; try again later or on another instance")]
    Overloaded,
    /// Another failure.
    #[error("media session: {0}")]
    Failed(String),
}

/// What the media side gets of a call when its media starts
/// ([`MediaSessions::start_call`]): the call's id, its roster (a shared, cheap snapshot
/// the runtime replaces after every roster change) and the call's participant and tone
/// events from then on, in order.
#[derive(Debug)]
#[non_exhaustive]
pub struct CallView {
    /// Graph's call id.
    pub call_id: String,
    /// The roster: `borrow()` is the latest snapshot (share it by cloning the `Arc`);
    /// `changed()` resolves when a newer one is published.
    pub roster: watch::Receiver<Arc<RosterSnapshot>>,
    /// The call's events about participants ([`CallEvent::ParticipantJoined`],
    /// `ParticipantUpdated`, `ParticipantLeft`, `LobbyChanged`, `MutedChanged`,
    /// `MediaStreamsChanged`) and tones ([`CallEvent::ToneReceived`]) after the
    /// snapshot the view started with; the stream ends when the call is torn down.
    pub events: mpsc::UnboundedReceiver<CallEvent>,
}

impl CallView {
    /// A view of call `call_id` that never changes: `snapshot` as its roster, no
    /// events (for media sides driven without a runtime, e.g. in tests).
    pub fn fixed(call_id: impl Into<String>, snapshot: RosterSnapshot) -> Self {
        let (_, roster) = watch::channel(Arc::new(snapshot));
        let (_, events) = mpsc::unbounded_channel();
        CallView {
            call_id: call_id.into(),
            roster,
            events,
        }
    }
}

/// True for the events a [`CallView`] carries.
fn is_view_event(event: &CallEvent) -> bool {
    matches!(
        event,
        CallEvent::ParticipantJoined(_)
            | CallEvent::ParticipantUpdated(_)
            | CallEvent::ParticipantLeft(_)
            | CallEvent::LobbyChanged { .. }
            | CallEvent::MutedChanged { .. }
            | CallEvent::MediaStreamsChanged { .. }
            | CallEvent::ToneReceived { .. }
    )
}

/// An error of the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Graph refused or failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The media side could not create a session.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The service created a call but its answer had no `id` (the call cannot be
    /// followed; the service's fault).
    #[error("Graph created a call without an id in its answer")]
    NoCallId,
    /// No call with this id is followed (never offered, or already ended).
    #[error("no call {0} is followed by this runtime")]
    UnknownCall(String),
    /// A long-running action did not complete (failed, or not in time).
    #[error("{0}")]
    Operation(String),
    /// Graph refused an action with `403 Forbidden`: the application lacks a
    /// permission. Grant it in the app registration (and have an admin consent).
    #[error(
        "{action} refused (403 Forbidden): the application needs {needs}; Graph said: {message}"
    )]
    Forbidden {
        /// The action (`subscribeToTone`, `participant delete`, ...).
        action: String,
        /// The permissions the action needs, as the reference lists them
        /// (Entra's names, e.g. `Calls.AccessMedia.All`).
        needs: signaling::RequiredPermissions,
        /// Graph's `error.message`.
        message: String,
    },
}

/// A `403` from Graph as [`RuntimeError::Forbidden`] naming what `action` needs; any
/// other error unchanged.
fn forbidden(
    e: GraphError,
    action: impl std::fmt::Display,
    needs: signaling::RequiredPermissions,
) -> RuntimeError {
    match e {
        GraphError::Service {
            status: 403,
            message,
            ..
        } => RuntimeError::Forbidden {
            action: action.to_string(),
            needs,
            message: message.unwrap_or_else(|| "(no message)".into()),
        },
        other => RuntimeError::Graph(other),
    }
}

/// How long the typed in-call actions wait for their operation to be done.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Most finished operations kept for a waiter that has not registered yet.
const MAX_FINISHED_OPERATIONS: usize = 256;

/// An operation's final state: `completed` is success, anything else a failure.
fn finished(op: Value) -> Result<Value, RuntimeError> {
    if op["status"] == "completed" {
        Ok(op)
    } else {
        Err(RuntimeError::Operation(format!(
            "operation {} ended {}: {}",
            op["id"].as_str().unwrap_or("?"),
            op["status"].as_str().unwrap_or("?"),
            op["resultInfo"]["message"]
                .as_str()
                .unwrap_or("(no message)")
        )))
    }
}

/// Operations waited on, and finished ones nobody waits on yet (a notification may
/// overtake the action's answer).
#[derive(Default)]
struct Operations {
    waiting: HashMap<String, tokio::sync::oneshot::Sender<Value>>,
    finished: HashMap<String, Value>,
}

/// The media of an answered call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AnswerMedia {
    /// App-hosted: a media session is created and its configuration is the blob.
    AppHosted,
    /// Service-hosted, with this configuration (prompts to pre-fetch, ...).
    ServiceHosted(signaling::ServiceHostedMediaConfig),
}

/// Why an incoming call is rejected (`reject.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No reason given.
    None,
    /// The bot is busy.
    Busy,
    /// The caller may not call the bot.
    Forbidden,
}

impl RejectReason {
    /// The value Graph takes: `none`, `busy`, `forbidden`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::None => "none",
            RejectReason::Busy => "busy",
            RejectReason::Forbidden => "forbidden",
        }
    }
}

/// Configuration of a [`CallRuntime`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// How often to send keepAlive per call (default 15 min; the service ends calls
    /// without one for 45 min).
    pub keep_alive_interval: Duration,
    /// Process notifications of calls the runtime did not create (default false: they
    /// are logged and dropped).
    pub accept_unknown_calls: bool,
    /// Capacity of the event broadcast (default 1024; slow subscribers lag).
    pub event_capacity: usize,
    /// How long notifications for a not-yet-registered call are held while a create is
    /// in flight (default 10 s).
    pub early_notification_ttl: Duration,
    /// The `callbackUri` sent with [`CallRuntime::answer`] (default none: the service
    /// keeps notifying the URI the call was offered at). A bot running as several
    /// instances behind one registered URI sets its own instance's URI, so an answered
    /// call's notifications go to the instance that follows it.
    pub answer_callback_uri: Option<String>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            keep_alive_interval: Duration::from_secs(15 * 60),
            accept_unknown_calls: false,
            event_capacity: 1024,
            early_notification_ttl: Duration::from_secs(10),
            answer_callback_uri: None,
        }
    }
}

impl RuntimeConfig {
    /// Set the keepAlive interval.
    pub fn keep_alive_interval(mut self, every: Duration) -> Self {
        self.keep_alive_interval = every;
        self
    }

    /// Process notifications of unknown calls.
    pub fn accept_unknown_calls(mut self, accept: bool) -> Self {
        self.accept_unknown_calls = accept;
        self
    }

    /// Set the `callbackUri` answers carry ([`RuntimeConfig::answer_callback_uri`]).
    pub fn answer_callback_uri(mut self, uri: Option<String>) -> Self {
        self.answer_callback_uri = uri;
        self
    }
}

/// Why a call was torn down.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TeardownReason {
    /// The service said the call ended.
    Terminated {
        /// Its `resultInfo`, if any.
        result: Option<ResultInfo>,
    },
    /// keepAlive answered `404`: the call is gone.
    Gone,
    /// The bot hung up.
    HungUp,
    /// The media side reported a stream failure; the call was hung up.
    MediaFailure(String),
    /// The runtime shut down.
    Shutdown,
}

/// An event for the bot application.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeEvent {
    /// Graph's call id.
    pub call_id: String,
    /// What happened.
    pub kind: RuntimeEventKind,
}

/// What happened to a call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RuntimeEventKind {
    /// The call was created (`201`) and is followed.
    Created,
    /// A call is offered to the bot (state `incoming`): answer, reject or redirect it
    /// within the service's timeout (15 s).
    Incoming(Box<Call>),
    /// The state machine reported this (ignored inputs are only logged).
    Call(CallEvent),
    /// A long-running action's operation is done (its notification).
    OperationDone(Box<CommsNotification>),
    /// Media started ([`MediaSessions::start`] was called).
    MediaStarted,
    /// The call was torn down and forgotten; nothing of it is left.
    Removed(TeardownReason),
}

/// A call the runtime created.
#[derive(Debug, Clone)]
pub struct ActiveCall {
    /// Graph's call id.
    pub call_id: String,
    /// The media session, for app-hosted calls.
    pub session_id: Option<Uuid>,
    /// The call as the service created it.
    pub call: Call,
}

/// Inputs of a call's queue.
enum Input {
    Notification(Box<CommsNotification>),
    /// The offered call was answered: its media session (app-hosted) and keepAlive.
    Answered {
        session_id: Option<Uuid>,
        keep_alive: JoinHandle<()>,
    },
    Gone,
    HungUp,
    MediaFailed(String),
    Shutdown,
}

struct Entry {
    generation: u64,
    tx: mpsc::UnboundedSender<Input>,
    session_id: Option<Uuid>,
    roster: watch::Receiver<Arc<RosterSnapshot>>,
}

#[derive(Default)]
struct Registry {
    calls: HashMap<String, Entry>,
    by_session: HashMap<Uuid, String>,
    early: HashMap<String, (Instant, Vec<CommsNotification>)>,
    pending_creates: usize,
}

struct Shared {
    client: GraphClient,
    media: Arc<dyn MediaSessions>,
    config: RuntimeConfig,
    registry: Mutex<Registry>,
    events: broadcast::Sender<RuntimeEvent>,
    tasks: Arc<AtomicUsize>,
    generation: AtomicU64,
    operations: Mutex<Operations>,
}

impl Shared {
    fn operations(&self) -> MutexGuard<'_, Operations> {
        self.operations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A finished operation's notification: its waiter gets it (or it is kept
    /// briefly for one); `false` when the notification is not an operation's end.
    fn operation_done(&self, n: &CommsNotification) -> bool {
        let Some(url) = n.resource_url.value() else {
            return false;
        };
        let Some((_, id)) = url.rsplit_once("/operations/") else {
            return false;
        };
        let Some(signaling::ResourceData::One(signaling::ResourceItem::Other(op))) =
            n.resource_data.value()
        else {
            return false;
        };
        if !matches!(op["status"].as_str(), Some("completed" | "failed")) {
            return false;
        }
        let id = id.to_ascii_lowercase();
        let mut ops = self.operations();
        match ops.waiting.remove(&id) {
            Some(tx) => {
                let _ = tx.send(op.clone());
            }
            None => {
                if ops.finished.len() >= MAX_FINISHED_OPERATIONS {
                    ops.finished.clear();
                }
                ops.finished.insert(id, op.clone());
            }
        }
        true
    }
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the maps inconsistent beyond one
        // entry; keep serving.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, call_id: &str, kind: RuntimeEventKind) {
        let _ = self.events.send(RuntimeEvent {
            call_id: call_id.to_owned(),
            kind,
        });
    }
}

/// Counts a live task; dropped (also on abort) when the task ends.
struct TaskGuard(Arc<AtomicUsize>);

impl TaskGuard {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        TaskGuard(counter.clone())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a create in flight; the last one out drops held early notifications.
struct PendingCreate(Arc<Shared>);

impl PendingCreate {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.registry().pending_creates += 1;
        PendingCreate(shared.clone())
    }
}

impl Drop for PendingCreate {
    fn drop(&mut self) {
        let shared = &self.0;
        let mut reg = shared.registry();
        reg.pending_creates -= 1;
        if reg.pending_creates > 0 {
            return;
        }
        // No create in flight: the held notifications belong to no call of ours.
        let held: Vec<_> = reg.early.drain().collect();
        for (call_id, (_, notifications)) in held {
            // (A create future dropped outside tokio cannot spawn: drop them then.)
            if shared.config.accept_unknown_calls && tokio::runtime::Handle::try_current().is_ok() {
                shared.emit(&call_id, RuntimeEventKind::Created);
                let machine = CallStateMachine::new(&call_id);
                let tx = spawn_call(shared, &mut reg, &call_id, machine, None, false);
                for n in notifications {
                    let _ = tx.send(Input::Notification(Box::new(n)));
                }
            } else {
                tracing::info!(%call_id, count = notifications.len(),
                    "notifications for a call this runtime does not know: ignored");
            }
        }
    }
}

/// Most calls whose notifications are held while creates are in flight.
const MAX_HELD_CALLS: usize = 1024;

fn key(call_id: &str) -> String {
    call_id.to_ascii_lowercase()
}

/// The call lifecycle runtime (see the [module documentation](self)). Cheap to clone.
#[derive(Clone)]
pub struct CallRuntime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CallRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRuntime")
            .field("live_calls", &self.live_calls())
            .field("live_tasks", &self.live_tasks())
            .finish_non_exhaustive()
    }
}

impl CallRuntime {
    /// A runtime placing calls with `client` and hosting media with `media`.
    pub fn new(client: GraphClient, media: Arc<dyn MediaSessions>, config: RuntimeConfig) -> Self {
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        CallRuntime {
            shared: Arc::new(Shared {
                client,
                media,
                config,
                registry: Mutex::new(Registry::default()),
                events,
                tasks: Arc::new(AtomicUsize::new(0)),
                generation: AtomicU64::new(0),
                operations: Mutex::new(Operations::default()),
            }),
        }
    }

    /// The Graph client.
    pub fn client(&self) -> &GraphClient {
        &self.shared.client
    }

    /// Subscribe to call events.
    pub fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.shared.events.subscribe()
    }

    /// Calls the runtime follows.
    pub fn live_calls(&self) -> usize {
        self.shared.registry().calls.len()
    }

    /// Live tasks (queue tasks and keepAlive tasks).
    pub fn live_tasks(&self) -> usize {
        self.shared.tasks.load(Ordering::SeqCst)
    }

    /// Calls with notifications held while a create is in flight.
    pub fn held_early_calls(&self) -> usize {
        self.shared.registry().early.len()
    }

    /// The handle by which the media side reports media stream failures.
    pub fn media_reporter(&self) -> MediaReporter {
        MediaReporter {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// The callback server for this runtime (see [`callback::router`]).
    pub fn callback_router(&self, config: CallbackConfig) -> axum::Router {
        callback::router(config, Arc::new(self.clone()))
    }

    /// Place a call. For app-hosted media (`request.mediaConfig` is an
    /// `appHostedMediaConfig`, whatever its blob) a media session is created first and
    /// its configuration replaces the blob. On success the call is followed: its
    /// notifications are processed, keepAlive is sent, media starts when established.
    pub async fn create_call(&self, mut request: Call) -> Result<ActiveCall, RuntimeError> {
        let shared = &self.shared;
        let _pending = PendingCreate::new(shared);
        let session_id = match request.media_config.value_mut() {
            Some(MediaConfig::AppHosted(app)) => {
                let session_id = Uuid::new_v4();
                let config = shared.media.create_session(session_id)?;
                app.blob = Field::Value(Value::String(config.to_json()));
                Some(session_id)
            }
            _ => None,
        };
        let created = match shared.client.create_call(&request).await {
            Ok(call) => call,
            Err(e) => {
                if let Some(s) = session_id {
                    shared.media.stop(s);
                }
                return Err(e.into());
            }
        };
        let Some(call_id) = created.id.value().filter(|id| !id.is_empty()).cloned() else {
            if let Some(s) = session_id {
                shared.media.stop(s);
            }
            return Err(RuntimeError::NoCallId);
        };
        let mut machine = CallStateMachine::new(&call_id);
        machine.handle_call_update(&created);
        shared.emit(&call_id, RuntimeEventKind::Created);
        spawn_call(
            shared,
            &mut shared.registry(),
            &call_id,
            machine,
            session_id,
            true,
        );
        Ok(ActiveCall {
            call_id,
            session_id,
            call: created,
        })
    }

    /// Hang up (`DELETE`) and tear the call down. A `404` (already gone) tears it down
    /// too and is not an error.
    pub async fn hang_up(&self, call_id: &str) -> Result<(), GraphError> {
        let result = match self.shared.client.hang_up(call_id).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        };
        if result.is_ok() {
            self.send(call_id, Input::HungUp);
        }
        result
    }

    /// Answer the offered call `call_id` with `media` (accepting audio). For app-hosted
    /// media a session is created first and its configuration is the answer's blob;
    /// its id is returned. The call then goes on as a placed one (media starts when
    /// it is established; keepAlive is sent).
    pub async fn answer(
        &self,
        call_id: &str,
        media: AnswerMedia,
    ) -> Result<Option<Uuid>, RuntimeError> {
        let shared = &self.shared;
        if !shared.registry().calls.contains_key(&key(call_id)) {
            return Err(RuntimeError::UnknownCall(call_id.to_owned()));
        }
        let (session_id, media_config) = match media {
            AnswerMedia::AppHosted => {
                let session_id = Uuid::new_v4();
                let config = shared.media.create_session(session_id)?;
                (Some(session_id), MediaConfig::app_hosted(config.to_json()))
            }
            AnswerMedia::ServiceHosted(m) => (None, MediaConfig::ServiceHosted(m)),
        };
        let body = answer_body(&media_config, shared.config.answer_callback_uri.as_deref());
        if let Err(e) = shared
            .client
            .call_action(call_id, Action::Answer, &body)
            .await
        {
            if let Some(s) = session_id {
                shared.media.stop(s);
            }
            return Err(e.into());
        }
        let mut reg = shared.registry();
        let k = key(call_id);
        let Some(tx) = reg.calls.get(&k).map(|e| e.tx.clone()) else {
            // Ended while the answer was in flight.
            drop(reg);
            if let Some(s) = session_id {
                shared.media.stop(s);
            }
            return Err(RuntimeError::UnknownCall(call_id.to_owned()));
        };
        if let Some(s) = session_id {
            reg.by_session.insert(s, k.clone());
        }
        if let Some(e) = reg.calls.get_mut(&k) {
            e.session_id = session_id;
        }
        let keep_alive = spawn_keep_alive(shared, call_id, tx.clone());
        let _ = tx.send(Input::Answered {
            session_id,
            keep_alive,
        });
        Ok(session_id)
    }

    /// Reject the offered call `call_id`; the service ends it (its `terminated`
    /// notification tears it down here).
    pub async fn reject(&self, call_id: &str, reason: RejectReason) -> Result<(), RuntimeError> {
        let body = serde_json::json!({ "reason": reason.as_str() });
        self.act(call_id, Action::Reject, &body).await.map(|_| ())
    }

    /// Redirect the offered call `call_id` to `targets` (1 to 25, rung at once);
    /// `timeout` in seconds (15-90) when given.
    pub async fn redirect(
        &self,
        call_id: &str,
        targets: Vec<signaling::InvitationParticipantInfo>,
        timeout: Option<u32>,
    ) -> Result<(), RuntimeError> {
        let mut body = serde_json::json!({ "targets": targets });
        if let Some(t) = timeout {
            body["timeout"] = t.into();
        }
        self.act(call_id, Action::Redirect, &body).await.map(|_| ())
    }

    /// Any in-call action on `call_id` (`mute`, `sendDtmfTones`, `playPrompt`, ...),
    /// its body checked as Graph checks it before sending. Returns Graph's
    /// `commsOperation` when it answers with one.
    pub async fn act(
        &self,
        call_id: &str,
        action: Action,
        body: &Value,
    ) -> Result<Option<Value>, RuntimeError> {
        self.shared
            .client
            .call_action(call_id, action, body)
            .await
            .map_err(|e| forbidden(e, action, action.permissions(body)))
    }

    /// An action on participant `participant_id` of `call_id` ([`ParticipantAction`]),
    /// its body checked as Graph checks it. Returns Graph's operation when it answers
    /// with one (`mute`); `delete` answers none.
    pub async fn act_on_participant(
        &self,
        call_id: &str,
        participant_id: &str,
        action: ParticipantAction,
        body: &Value,
    ) -> Result<Option<Value>, RuntimeError> {
        self.shared
            .client
            .participant_action(call_id, participant_id, action, body)
            .await
            .map_err(|e| forbidden(e, action, action.permissions()))
    }

    /// Server-mute participant `participant_id` of the group call `call_id`; the
    /// roster then shows it muted ([`CallEvent::MutedChanged`]). The
    /// `muteParticipantOperation`.
    pub async fn mute_participant(
        &self,
        call_id: &str,
        participant_id: &str,
    ) -> Result<Value, RuntimeError> {
        let body = serde_json::json!({ "clientContext": Uuid::new_v4().to_string() });
        self.act_on_participant(call_id, participant_id, ParticipantAction::Mute, &body)
            .await?
            .ok_or_else(|| {
                RuntimeError::Operation("participant mute: no operation in the answer".into())
            })
    }

    /// Remove participant `participant_id` from `call_id` (`DELETE`); the roster then
    /// loses it ([`CallEvent::ParticipantLeft`]).
    pub async fn remove_participant(
        &self,
        call_id: &str,
        participant_id: &str,
    ) -> Result<(), RuntimeError> {
        self.act_on_participant(
            call_id,
            participant_id,
            ParticipantAction::Delete,
            &Value::Null,
        )
        .await
        .map(|_| ())
    }

    /// The roster of `call_id` as the runtime keeps it from the participants
    /// notifications: `borrow()` is the latest snapshot, `changed()` waits for the
    /// next. `None` when no such call is followed.
    pub fn roster(&self, call_id: &str) -> Option<watch::Receiver<Arc<RosterSnapshot>>> {
        self.shared
            .registry()
            .calls
            .get(&key(call_id))
            .map(|e| e.roster.clone())
    }

    /// Like [`CallRuntime::act`], then waits (at most `timeout`) until the operation
    /// is done: at once when Graph answers `completed`, otherwise when its
    /// notification says `completed` or `failed`. The final operation.
    pub async fn act_until_done(
        &self,
        call_id: &str,
        action: Action,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, RuntimeError> {
        let op = self.act(call_id, action, body).await?.ok_or_else(|| {
            RuntimeError::Operation(format!("{action}: no operation in the answer"))
        })?;
        let status = op["status"].as_str().unwrap_or_default();
        if matches!(status, "completed" | "failed") {
            return finished(op);
        }
        let id = op["id"].as_str().unwrap_or_default().to_ascii_lowercase();
        let rx = {
            let mut ops = self.shared.operations();
            if let Some(done) = ops.finished.remove(&id) {
                return finished(done);
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            ops.waiting.insert(id.clone(), tx);
            rx
        };
        let done = tokio::time::timeout(timeout, rx).await;
        self.shared.operations().waiting.remove(&id);
        match done {
            Ok(Ok(op)) => finished(op),
            _ => Err(RuntimeError::Operation(format!(
                "{action}: operation {id} not done within {timeout:?}"
            ))),
        }
    }

    /// Mute the bot in `call_id` (`mute`).
    pub async fn mute(&self, call_id: &str) -> Result<Value, RuntimeError> {
        let body = serde_json::json!({ "clientContext": Uuid::new_v4().to_string() });
        self.act_until_done(call_id, Action::Mute, &body, OPERATION_TIMEOUT)
            .await
    }

    /// Unmute the bot in `call_id` (`unmute`).
    pub async fn unmute(&self, call_id: &str) -> Result<Value, RuntimeError> {
        let body = serde_json::json!({ "clientContext": Uuid::new_v4().to_string() });
        self.act_until_done(call_id, Action::Unmute, &body, OPERATION_TIMEOUT)
            .await
    }

    /// Send DTMF `tones` (`tone0`-`tone9`, `star`, `pound`, `a`-`d`, `flash`) into
    /// `call_id`.
    pub async fn send_dtmf_tones(
        &self,
        call_id: &str,
        tones: &[&str],
        delay_between_ms: u32,
    ) -> Result<Value, RuntimeError> {
        let body = serde_json::json!({
            "tones": tones,
            "delayBetweenTonesMs": delay_between_ms,
            "clientContext": Uuid::new_v4().to_string(),
        });
        self.act_until_done(call_id, Action::SendDtmfTones, &body, OPERATION_TIMEOUT)
            .await
    }

    /// Play the audio file at `uri` into the service-hosted call `call_id`; resolves
    /// when it has played (`playPromptOperation` completed).
    pub async fn play_prompt(&self, call_id: &str, uri: &str) -> Result<Value, RuntimeError> {
        let body = serde_json::json!({
            "prompts": [{
                "@odata.type": "#microsoft.graph.mediaPrompt",
                "mediaInfo": {"@odata.type": "#microsoft.graph.mediaInfo", "uri": uri, "resourceId": Uuid::new_v4().to_string()},
            }],
            "clientContext": Uuid::new_v4().to_string(),
        });
        self.act_until_done(call_id, Action::PlayPrompt, &body, OPERATION_TIMEOUT)
            .await
    }

    /// Invite `participants` into `call_id`; resolves when they are in
    /// (`inviteParticipantsOperation` completed).
    pub async fn invite(
        &self,
        call_id: &str,
        participants: Vec<signaling::InvitationParticipantInfo>,
    ) -> Result<Value, RuntimeError> {
        let body = serde_json::json!({
            "participants": participants,
            "clientContext": Uuid::new_v4().to_string(),
        });
        self.act_until_done(
            call_id,
            Action::InviteParticipants,
            &body,
            OPERATION_TIMEOUT,
        )
        .await
    }

    /// Consultative transfer: hand the party of `call_id` over to `target`, who is in
    /// the bot's other call `replaces_call_id` (its `transferTarget.replacesCallId`);
    /// `transferee` names who is transferred (needed from a group call). The service
    /// ends the bot's call.
    pub async fn transfer_consultative(
        &self,
        call_id: &str,
        target: signaling::InvitationParticipantInfo,
        replaces_call_id: &str,
        transferee: Option<signaling::ParticipantInfo>,
    ) -> Result<(), RuntimeError> {
        let mut body = serde_json::json!({ "transferTarget": target });
        body["transferTarget"]["replacesCallId"] = replaces_call_id.into();
        if let Some(t) = transferee {
            body["transferee"] = serde_json::to_value(t).map_err(|e| {
                RuntimeError::Operation(format!("transfer: transferee is not serializable: {e}"))
            })?;
        }
        self.act(call_id, Action::Transfer, &body).await.map(|_| ())
    }

    /// Transfer `call_id` to `target` (blind); the service ends the bot's call.
    pub async fn transfer(
        &self,
        call_id: &str,
        target: signaling::InvitationParticipantInfo,
    ) -> Result<(), RuntimeError> {
        let body = serde_json::json!({ "transferTarget": target });
        self.act(call_id, Action::Transfer, &body).await.map(|_| ())
    }

    /// Tear every call down (media stopped, tasks ended) without hanging up.
    pub fn shutdown(&self) {
        let reg = self.shared.registry();
        for entry in reg.calls.values() {
            let _ = entry.tx.send(Input::Shutdown);
        }
    }

    fn send(&self, call_id: &str, input: Input) -> bool {
        let reg = self.shared.registry();
        reg.calls
            .get(&key(call_id))
            .is_some_and(|e| e.tx.send(input).is_ok())
    }
}

impl NotificationSink for CallRuntime {
    fn deliver(&self, call_id: &str, notification: CommsNotification) -> Delivery {
        let shared = &self.shared;
        if shared.operation_done(&notification) {
            shared.emit(
                call_id,
                RuntimeEventKind::OperationDone(Box::new(notification)),
            );
            return Delivery::Queued;
        }
        let k = key(call_id);
        let mut reg = shared.registry();
        if let Some(entry) = reg.calls.get(&k) {
            if entry
                .tx
                .send(Input::Notification(Box::new(notification)))
                .is_ok()
            {
                return Delivery::Queued;
            }
            // The call's task has ended; its entry is about to go.
            tracing::info!(%call_id, "notification for a call being torn down: ignored");
            return Delivery::UnknownCall;
        }
        if let Some(offered) = incoming_call(&notification) {
            let machine = CallStateMachine::new(call_id);
            // Offered to the bot: never held as an early notification of a create.
            tracing::info!(%call_id, "incoming call offered");
            shared.emit(call_id, RuntimeEventKind::Incoming(Box::new(offered)));
            let tx = spawn_call(shared, &mut reg, call_id, machine, None, false);
            let _ = tx.send(Input::Notification(Box::new(notification)));
            return Delivery::Queued;
        }
        if reg.pending_creates > 0 {
            let ttl = shared.config.early_notification_ttl;
            reg.early.retain(|_, (at, _)| at.elapsed() < ttl);
            if reg.early.len() >= MAX_HELD_CALLS && !reg.early.contains_key(&k) {
                tracing::warn!(%call_id, "too many unknown calls held: notification ignored");
                return Delivery::UnknownCall;
            }
            reg.early
                .entry(k)
                .or_insert_with(|| (Instant::now(), Vec::new()))
                .1
                .push(notification);
            tracing::debug!(%call_id, "notification before the call's 201: held");
            return Delivery::Queued;
        }
        if shared.config.accept_unknown_calls {
            let machine = CallStateMachine::new(call_id);
            shared.emit(call_id, RuntimeEventKind::Created);
            let tx = spawn_call(shared, &mut reg, call_id, machine, None, false);
            let _ = tx.send(Input::Notification(Box::new(notification)));
            return Delivery::Queued;
        }
        tracing::info!(%call_id, "notification for a call this runtime does not know: ignored");
        Delivery::UnknownCall
    }
}

/// The body of an `answer`: audio, `media`, and `callbackUri` when given.
fn answer_body(media: &MediaConfig, callback_uri: Option<&str>) -> Value {
    let mut body = serde_json::json!({
        "acceptedModalities": ["audio"],
        "mediaConfig": media,
    });
    if let Some(uri) = callback_uri {
        body["callbackUri"] = uri.into();
    }
    body
}

/// The offered call of an incoming-call notification: `created`, a call resource in
/// state `incoming`.
fn incoming_call(n: &CommsNotification) -> Option<Call> {
    if n.change_type.value() != Some(&signaling::ChangeType::Created) {
        return None;
    }
    n.items().iter().find_map(|item| match item {
        signaling::ResourceItem::Call(c)
            if c.state.value() == Some(&signaling::CallState::Incoming) =>
        {
            Some((**c).clone())
        }
        _ => None,
    })
}

/// Register a call and start its queue task (and keepAlive task), with the registry
/// locked (so no notification can slip in between). Returns the call's queue.
fn spawn_call(
    shared: &Arc<Shared>,
    reg: &mut Registry,
    call_id: &str,
    machine: CallStateMachine,
    session_id: Option<Uuid>,
    keep_alive: bool,
) -> mpsc::UnboundedSender<Input> {
    let k = key(call_id);
    let generation = shared.generation.fetch_add(1, Ordering::SeqCst);
    let (tx, rx) = mpsc::unbounded_channel();
    let (roster_tx, roster_rx) = watch::channel(Arc::new(machine.roster_snapshot()));
    let keep_alive_task = keep_alive.then(|| spawn_keep_alive(shared, call_id, tx.clone()));
    {
        // Notifications that came before the 201 go first, in arrival order.
        if let Some((_, held)) = reg.early.remove(&k) {
            for n in held {
                let _ = tx.send(Input::Notification(Box::new(n)));
            }
        }
        if let Some(s) = session_id {
            reg.by_session.insert(s, k.clone());
        }
        if let Some(old) = reg.calls.insert(
            k,
            Entry {
                generation,
                tx: tx.clone(),
                session_id,
                roster: roster_rx,
            },
        ) {
            tracing::warn!(%call_id, "call registered twice; the older follower is shut down");
            let _ = old.tx.send(Input::Shutdown);
        }
    }
    let guard = TaskGuard::new(&shared.tasks);
    let task = CallTask {
        shared: shared.clone(),
        call_id: call_id.to_owned(),
        generation,
        session_id,
        machine,
        keep_alive: keep_alive_task,
        media_started: false,
        roster: roster_tx,
        media_events: None,
    };
    tokio::spawn(async move {
        let _guard = guard;
        task.run(rx).await;
    });
    tx
}

fn spawn_keep_alive(
    shared: &Arc<Shared>,
    call_id: &str,
    tx: mpsc::UnboundedSender<Input>,
) -> JoinHandle<()> {
    let guard = TaskGuard::new(&shared.tasks);
    let client = shared.client.clone();
    let every = shared.config.keep_alive_interval;
    let call_id = call_id.to_owned();
    tokio::spawn(async move {
        let _guard = guard;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match client.keep_alive(&call_id).await {
                Ok(()) => tracing::debug!(%call_id, "keepAlive sent"),
                Err(e) if e.is_not_found() => {
                    tracing::info!(%call_id, "keepAlive: the call is gone (404)");
                    let _ = tx.send(Input::Gone);
                    return;
                }
                Err(e) => {
                    tracing::warn!(%call_id, "keepAlive failed (will retry next interval): {e}")
                }
            }
        }
    })
}

/// The task that owns one call's state machine.
struct CallTask {
    shared: Arc<Shared>,
    call_id: String,
    generation: u64,
    session_id: Option<Uuid>,
    machine: CallStateMachine,
    keep_alive: Option<JoinHandle<()>>,
    media_started: bool,
    /// The roster snapshot shared with the media side and [`CallRuntime::roster`].
    roster: watch::Sender<Arc<RosterSnapshot>>,
    /// The media side's [`CallView::events`], once media started.
    media_events: Option<mpsc::UnboundedSender<CallEvent>>,
}

impl CallTask {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        // Events of the initial call update (the 201 body).
        let mut reason = self.drain();
        while reason.is_none() {
            let Some(input) = rx.recv().await else {
                reason = Some(TeardownReason::Shutdown);
                break;
            };
            reason = match input {
                Input::Notification(n) => {
                    self.machine.handle_notification(&n);
                    self.drain()
                }
                Input::Answered {
                    session_id,
                    keep_alive,
                } => {
                    self.session_id = session_id;
                    if let Some(old) = self.keep_alive.replace(keep_alive) {
                        old.abort();
                    }
                    None
                }
                Input::Gone => Some(TeardownReason::Gone),
                Input::HungUp => Some(TeardownReason::HungUp),
                Input::Shutdown => Some(TeardownReason::Shutdown),
                Input::MediaFailed(why) => {
                    tracing::warn!(call_id = %self.call_id, "media stream failure, hanging up: {why}");
                    match self.shared.client.hang_up(&self.call_id).await {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => tracing::warn!(call_id = %self.call_id, "hang-up failed: {e}"),
                    }
                    Some(TeardownReason::MediaFailure(why))
                }
            };
        }
        rx.close();
        self.teardown(reason.unwrap_or(TeardownReason::Shutdown));
    }

    /// Drain the machine's events; `Some` when the call has ended.
    fn drain(&mut self) -> Option<TeardownReason> {
        let mut ended = None;
        let mut start_media = false;
        if self.roster.borrow().version != self.machine.roster_version() {
            self.roster
                .send_replace(Arc::new(self.machine.roster_snapshot()));
        }
        while let Some(event) = self.machine.poll_event() {
            match &event {
                CallEvent::Ignored { reason } => {
                    tracing::info!(call_id = %self.call_id, "notification ignored: {reason}");
                    continue;
                }
                CallEvent::Terminated { result } => {
                    ended = Some(TeardownReason::Terminated {
                        result: result.clone(),
                    });
                }
                _ => {}
            }
            let established = event == CallEvent::Established;
            if let Some(tx) = &self.media_events
                && is_view_event(&event)
            {
                let _ = tx.send(event.clone());
            }
            self.shared
                .emit(&self.call_id, RuntimeEventKind::Call(event));
            start_media |= established;
        }
        // After the batch: the view starts from the roster as it is now, and the
        // events of this batch are in that snapshot already.
        if start_media
            && !self.media_started
            && let Some(s) = self.session_id
        {
            self.media_started = true;
            let (tx, events) = mpsc::unbounded_channel();
            self.media_events = Some(tx);
            let view = CallView {
                call_id: self.call_id.clone(),
                roster: self.roster.subscribe(),
                events,
            };
            self.shared.media.start_call(s, view);
            self.shared
                .emit(&self.call_id, RuntimeEventKind::MediaStarted);
        }
        ended
    }

    fn teardown(mut self, reason: TeardownReason) {
        if let Some(task) = self.keep_alive.take() {
            task.abort();
        }
        if let Some(s) = self.session_id {
            self.shared.media.stop(s);
        }
        {
            let mut reg = self.shared.registry();
            let k = key(&self.call_id);
            if reg
                .calls
                .get(&k)
                .is_some_and(|e| e.generation == self.generation)
            {
                reg.calls.remove(&k);
            }
            if let Some(s) = self.session_id {
                reg.by_session.remove(&s);
            }
        }
        tracing::info!(call_id = %self.call_id, ?reason, "call torn down");
        self.shared
            .emit(&self.call_id, RuntimeEventKind::Removed(reason));
    }
}

/// Reports media stream failures from the media side to the runtime. Cheap to clone;
/// holds no strong reference to the runtime.
#[derive(Clone)]
pub struct MediaReporter {
    shared: Weak<Shared>,
}

impl std::fmt::Debug for MediaReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaReporter").finish_non_exhaustive()
    }
}

impl MediaReporter {
    /// The media stream of `session_id` failed: the call is hung up and torn down.
    /// False if no live call has this session.
    pub fn stream_failed(&self, session_id: Uuid, reason: impl Into<String>) -> bool {
        let Some(shared) = self.shared.upgrade() else {
            return false;
        };
        let reg = shared.registry();
        let Some(entry) = reg
            .by_session
            .get(&session_id)
            .and_then(|k| reg.calls.get(k))
        else {
            return false;
        };
        debug_assert_eq!(entry.session_id, Some(session_id));
        entry.tx.send(Input::MediaFailed(reason.into())).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_body_carries_the_callback_uri_when_configured() {
        let media = MediaConfig::app_hosted("{}".to_owned());
        let plain = answer_body(&media, None);
        assert!(plain.get("callbackUri").is_none());
        let routed = answer_body(&media, Some("https://bot.contoso.com/callbacks/mp-1"));
        assert_eq!(
            routed["callbackUri"],
            "https://bot.contoso.com/callbacks/mp-1"
        );
        // Graph's checks take it (the placeholder blob is not this test's business).
        let problems = Action::Answer.problems(&routed);
        assert!(
            problems.iter().all(|p| p.path != "callbackUri"),
            "{problems:?}"
        );
        assert_eq!(
            RuntimeConfig::default()
                .answer_callback_uri(Some("https://x/callbacks/a".into()))
                .answer_callback_uri,
            Some("https://x/callbacks/a".to_owned())
        );
    }
}
