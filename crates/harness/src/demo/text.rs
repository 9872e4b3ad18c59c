//! What the demo prints: events, teardown reasons, the call's progress.

use std::time::{Duration, Instant};

use graph::{RuntimeEvent, RuntimeEventKind, TeardownReason};
use signaling::CallEvent;
use tokio::sync::broadcast;

pub(super) fn event_text(kind: &RuntimeEventKind) -> String {
    match kind {
        RuntimeEventKind::Created => "created (201)".into(),
        RuntimeEventKind::MediaStarted => "media started".into(),
        RuntimeEventKind::Call(e) => match e {
            CallEvent::StateChanged { to, .. } => format!("state {to}"),
            CallEvent::Established => "established".into(),
            CallEvent::Terminated { result } => format!(
                "terminated{}",
                result
                    .as_ref()
                    .map(|r| format!(
                        " ({} / {})",
                        r.code.value().map(|c| c.to_string()).unwrap_or_default(),
                        r.message.value().cloned().unwrap_or_default()
                    ))
                    .unwrap_or_default()
            ),
            CallEvent::ParticipantJoined(p) => {
                format!("participant joined: {}{}", p.label(), lobby(p.is_in_lobby))
            }
            CallEvent::ParticipantUpdated(p) => {
                format!("participant updated: {}{}", p.label(), lobby(p.is_in_lobby))
            }
            CallEvent::ParticipantLeft(p) => format!("participant left: {}", p.label()),
            CallEvent::LobbyChanged {
                participant_id,
                in_lobby,
            } => {
                format!(
                    "lobby: {participant_id} {}",
                    if *in_lobby { "waiting" } else { "admitted" }
                )
            }
            other => format!("{other:?}"),
        },
        RuntimeEventKind::Removed(r) => format!("removed: {}", teardown_text(r)),
        other => format!("{other:?}"),
    }
}

fn lobby(in_lobby: bool) -> &'static str {
    if in_lobby { " (in lobby)" } else { "" }
}

pub(super) fn teardown_text(r: &TeardownReason) -> String {
    match r {
        TeardownReason::Terminated { result } => format!(
            "terminated by the service{}",
            result
                .as_ref()
                .and_then(|r| r.message.value().cloned())
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        TeardownReason::Gone => "call gone (keepAlive 404)".into(),
        TeardownReason::HungUp => "hung up by the bot".into(),
        TeardownReason::MediaFailure(m) => format!("media failure: {m}"),
        TeardownReason::Shutdown => "runtime shut down".into(),
        other => format!("{other:?}"),
    }
}

/// What the demo tracks about the call from runtime events.
#[derive(Default)]
pub(super) struct CallView {
    pub(super) state: String,
    pub(super) established: bool,
    pub(super) media_started: bool,
    pub(super) removed: Option<String>,
    pub(super) events: Vec<(f64, String)>,
}

impl CallView {
    pub(super) fn apply(&mut self, t: f64, kind: &RuntimeEventKind, print: bool) {
        match kind {
            RuntimeEventKind::Call(CallEvent::StateChanged { to, .. }) => {
                self.state = to.to_string();
            }
            RuntimeEventKind::Call(CallEvent::Established) => self.established = true,
            RuntimeEventKind::MediaStarted => self.media_started = true,
            RuntimeEventKind::Removed(r) => self.removed = Some(teardown_text(r)),
            _ => {}
        }
        let text = event_text(kind);
        if print {
            println!("  [{t:5.2}s] {text}");
        }
        self.events.push((t, text));
    }
}

pub(super) fn drain(
    rx: &mut broadcast::Receiver<RuntimeEvent>,
    call_id: &str,
    view: &mut CallView,
    t0: Instant,
    print: bool,
) {
    while let Ok(ev) = rx.try_recv() {
        if ev.call_id == call_id {
            view.apply(t0.elapsed().as_secs_f64(), &ev.kind, print);
        }
    }
}

pub(super) async fn wait_until(
    rx: &mut broadcast::Receiver<RuntimeEvent>,
    call_id: &str,
    view: &mut CallView,
    t0: Instant,
    print: bool,
    timeout: Duration,
    done: impl Fn(&CallView) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(view) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if ev.call_id == call_id => {
                view.apply(t0.elapsed().as_secs_f64(), &ev.kind, print)
            }
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) | Err(_) => return done(view),
        }
    }
    true
}
