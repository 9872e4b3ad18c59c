//! The call lifecycle runtime end to end over 127.0.0.1: stand-in Graph, token endpoint
//! and OpenID keys; the real callback server; a fake media side.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cloud, post_callback, state_body, valid_token, wait_until};
use graph::{
    CallRuntime, CallbackConfig, MediaError, MediaSessions, RuntimeConfig, RuntimeEvent,
    RuntimeEventKind, TeardownReason,
};
use media_blob::{MediaSessionConfig, MpUri};
use serde_json::json;
use signaling::state::CallEvent;
use signaling::{Call, CallState, Identity, MediaConfig, builders};
use tokio::sync::broadcast;
use uuid::Uuid;

/// The call states of a call that is set up and then ends.
const WHOLE_LIFE: [CallState; 3] = [
    CallState::Establishing,
    CallState::Established,
    CallState::Terminated,
];

#[derive(Debug, Clone, PartialEq)]
enum MediaCall {
    Create(Uuid),
    Start(Uuid, String),
    Stop(Uuid),
}

#[derive(Default)]
struct FakeMedia {
    calls: Mutex<Vec<MediaCall>>,
    overloaded: Mutex<bool>,
}

impl FakeMedia {
    fn log(&self) -> Vec<MediaCall> {
        self.calls.lock().unwrap().clone()
    }
    /// Sessions created and not stopped.
    fn live(&self) -> usize {
        let log = self.log();
        let created = log
            .iter()
            .filter(|c| matches!(c, MediaCall::Create(_)))
            .count();
        let stopped = log
            .iter()
            .filter(|c| matches!(c, MediaCall::Stop(_)))
            .count();
        created - stopped
    }
}

impl MediaSessions for FakeMedia {
    fn create_session(&self, session_id: Uuid) -> Result<MediaSessionConfig, MediaError> {
        if *self.overloaded.lock().unwrap() {
            return Err(MediaError::Overloaded);
        }
        self.calls
            .lock()
            .unwrap()
            .push(MediaCall::Create(session_id));
        let mp_uri: MpUri = "quic://127.0.0.1:4433/MediaProcessor".parse().unwrap();
        Ok(MediaSessionConfig::builder(mp_uri, session_id)
            .session_id(session_id)
            .build())
    }
    fn start(&self, session_id: Uuid, call_id: &str) {
        self.calls
            .lock()
            .unwrap()
            .push(MediaCall::Start(session_id, call_id.to_owned()));
    }
    fn stop(&self, session_id: Uuid) {
        self.calls.lock().unwrap().push(MediaCall::Stop(session_id));
    }
}

struct Bot {
    cloud: Cloud,
    media: Arc<FakeMedia>,
    runtime: CallRuntime,
    callback: String,
    events: broadcast::Receiver<RuntimeEvent>,
}

async fn bot_with(config: RuntimeConfig, callback: impl FnOnce(&Cloud) -> CallbackConfig) -> Bot {
    let cloud = Cloud::start().await;
    let media = Arc::new(FakeMedia::default());
    let runtime = CallRuntime::new(cloud.client(), media.clone(), config);
    let events = runtime.subscribe();
    let router = runtime.callback_router(callback(&cloud));
    let callback = format!("{}/callback", common::serve(router).await);
    Bot {
        cloud,
        media,
        runtime,
        callback,
        events,
    }
}

async fn bot(config: RuntimeConfig) -> Bot {
    bot_with(config, |cloud| CallbackConfig::new(cloud.auth_config())).await
}

impl Bot {
    fn request(&self) -> Call {
        builders::p2p_voip(
            &self.callback,
            Identity::new("112f7296-5fa4-42ca-bae8-6a692b15d4b8", "John"),
            MediaConfig::app_hosted(""),
        )
        .build()
    }

    async fn notify(&self, call_id: &str, state: &str) {
        let status = post_callback(
            &self.callback,
            Some(&valid_token()),
            state_body(call_id, state),
        )
        .await;
        assert_eq!(status, 202);
    }

    /// Waits until every task of the runtime has ended (panics after `timeout`).
    async fn tasks_end(&self, timeout: Duration) {
        wait_until("tasks end", timeout, || self.runtime.live_tasks() == 0).await;
    }

    /// Events of `call_id` until it is removed (or `timeout`).
    async fn events_until_removed(
        &mut self,
        call_id: &str,
        timeout: Duration,
    ) -> Vec<RuntimeEventKind> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no removal of {call_id}; got {out:?}"))
                .unwrap();
            if e.call_id != call_id {
                continue;
            }
            let removed = matches!(e.kind, RuntimeEventKind::Removed(_));
            out.push(e.kind);
            if removed {
                return out;
            }
        }
    }
}

fn call_states(events: &[RuntimeEventKind]) -> Vec<CallState> {
    events
        .iter()
        .filter_map(|e| match e {
            RuntimeEventKind::Call(CallEvent::StateChanged { to, .. }) => Some(to.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn app_hosted_call_lifecycle() {
    let mut bot = bot(RuntimeConfig::default()).await;
    let call = bot.runtime.create_call(bot.request()).await.unwrap();
    let session = call.session_id.unwrap();
    assert_eq!(bot.runtime.live_calls(), 1);
    assert_eq!(bot.runtime.live_tasks(), 2, "queue task + keepAlive task");

    // The blob sent is the media session's configuration.
    let sent = bot.cloud.seen("POST", "/communications/calls");
    let body: serde_json::Value = serde_json::from_str(&sent[0].body).unwrap();
    let blob = body["mediaConfig"]["blob"].as_str().unwrap();
    let config = MediaSessionConfig::parse(blob).unwrap();
    assert_eq!(config.session_id(), session);
    assert_eq!(
        config.mp_uri().to_string(),
        "quic://127.0.0.1:4433/MediaProcessor"
    );

    bot.notify(&call.call_id, "establishing").await;
    bot.notify(&call.call_id, "established").await;
    bot.notify(&call.call_id, "terminated").await;
    let events = bot
        .events_until_removed(&call.call_id, Duration::from_secs(5))
        .await;
    assert_eq!(call_states(&events), WHOLE_LIFE);
    let started = events
        .iter()
        .position(|e| *e == RuntimeEventKind::MediaStarted)
        .unwrap();
    let established = events
        .iter()
        .position(|e| *e == RuntimeEventKind::Call(CallEvent::Established))
        .unwrap();
    assert!(started > established);
    match events.last().unwrap() {
        RuntimeEventKind::Removed(TeardownReason::Terminated { result: Some(r) }) => {
            assert_eq!(r.code.value().and_then(|c| c.as_i64()), Some(200));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        bot.media.log(),
        vec![
            MediaCall::Create(session),
            MediaCall::Start(session, call.call_id.clone()),
            MediaCall::Stop(session)
        ]
    );
    bot.tasks_end(Duration::from_secs(2)).await;
    assert_eq!(bot.runtime.live_calls(), 0);

    // After teardown the call is unknown: later notifications are ignored.
    bot.notify(&call.call_id, "established").await;
    assert_eq!(bot.runtime.live_calls(), 0);
    assert_eq!(bot.media.log().len(), 3);
}

#[tokio::test]
async fn concurrent_notifications_for_one_call_never_go_backwards() {
    for _ in 0..10 {
        let mut bot = bot(RuntimeConfig::default()).await;
        let call = bot.runtime.create_call(bot.request()).await.unwrap();
        let id = call.call_id.clone();
        // establishing and established posted at the same time, twice over.
        let posts: Vec<_> = ["establishing", "established", "establishing", "established"]
            .into_iter()
            .map(|s| {
                let (url, body) = (bot.callback.clone(), state_body(&id, s));
                tokio::spawn(async move { post_callback(&url, Some(&valid_token()), body).await })
            })
            .collect();
        for p in posts {
            assert_eq!(p.await.unwrap(), 202);
        }
        bot.notify(&id, "terminated").await;
        let events = bot.events_until_removed(&id, Duration::from_secs(5)).await;
        // The 201 said establishing; afterwards only forward moves.
        assert_eq!(call_states(&events), WHOLE_LIFE);
        assert_eq!(
            events
                .iter()
                .filter(|e| **e == RuntimeEventKind::MediaStarted)
                .count(),
            1
        );
        bot.tasks_end(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn keep_alive_on_schedule_and_404_tears_down() {
    let mut bot =
        bot(RuntimeConfig::default().keep_alive_interval(Duration::from_millis(150))).await;
    let call = bot.runtime.create_call(bot.request()).await.unwrap();
    let id = call.call_id.clone();
    bot.notify(&id, "established").await;
    let path = format!("/calls/{id}/keepAlive");
    wait_until("three keepAlives", Duration::from_secs(3), || {
        bot.cloud.seen("POST", &path).len() >= 3
    })
    .await;
    let seen = bot.cloud.seen("POST", &path);
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(100),
            "keepAlive too early: {gap:?}"
        );
    }
    assert!(seen.iter().all(|s| s.client_request_id.is_some()));
    // The service forgets the call: the next keepAlive gets 404.
    bot.cloud.lock().live_calls.remove(&id);
    let events = bot.events_until_removed(&id, Duration::from_secs(3)).await;
    assert_eq!(
        events.last(),
        Some(&RuntimeEventKind::Removed(TeardownReason::Gone))
    );
    assert_eq!(bot.media.live(), 0);
    bot.tasks_end(Duration::from_secs(2)).await;
    assert_eq!(bot.runtime.live_calls(), 0);
    // No keepAlive after teardown.
    let count = bot.cloud.seen("POST", &path).len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(bot.cloud.seen("POST", &path).len(), count);
}

#[tokio::test]
async fn media_failure_hangs_up() {
    let mut bot = bot(RuntimeConfig::default()).await;
    let call = bot.runtime.create_call(bot.request()).await.unwrap();
    let id = call.call_id.clone();
    bot.notify(&id, "established").await;
    let reporter = bot.runtime.media_reporter();
    wait_until("media started", Duration::from_secs(2), || {
        bot.media
            .log()
            .iter()
            .any(|c| matches!(c, MediaCall::Start(..)))
    })
    .await;
    assert!(reporter.stream_failed(call.session_id.unwrap(), "Client Media Error"));
    let events = bot.events_until_removed(&id, Duration::from_secs(3)).await;
    assert_eq!(
        events.last(),
        Some(&RuntimeEventKind::Removed(TeardownReason::MediaFailure(
            "Client Media Error".into()
        )))
    );
    assert_eq!(bot.cloud.seen("DELETE", &id).len(), 1);
    assert_eq!(bot.media.live(), 0);
    assert!(!reporter.stream_failed(call.session_id.unwrap(), "again"));
    bot.tasks_end(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn hang_up_by_the_bot() {
    let mut bot = bot(RuntimeConfig::default()).await;
    let call = bot.runtime.create_call(bot.request()).await.unwrap();
    bot.runtime.hang_up(&call.call_id).await.unwrap();
    let events = bot
        .events_until_removed(&call.call_id, Duration::from_secs(3))
        .await;
    assert_eq!(
        events.last(),
        Some(&RuntimeEventKind::Removed(TeardownReason::HungUp))
    );
    assert_eq!(bot.cloud.seen("DELETE", &call.call_id).len(), 1);
    assert_eq!(bot.media.live(), 0);
    bot.tasks_end(Duration::from_secs(2)).await;
    assert_eq!(bot.runtime.live_calls(), 0);
}

#[tokio::test]
async fn failures_creating_a_call_free_the_media_session() {
    let bot = bot(RuntimeConfig::default()).await;
    bot.cloud.lock().create_script.push_back(common::Scripted {
        status: 403,
        retry_after: None,
        body: json!({"error": {"code": "Forbidden", "message": "no Calls.Initiate.All"}}),
    });
    let err = bot.runtime.create_call(bot.request()).await.unwrap_err();
    assert!(err.to_string().contains("Calls.Initiate.All"), "{err}");
    assert_eq!(bot.media.log().len(), 2, "created then stopped");
    assert_eq!(bot.media.live(), 0);

    *bot.media.overloaded.lock().unwrap() = true;
    let err = bot.runtime.create_call(bot.request()).await.unwrap_err();
    assert!(
        matches!(err, graph::RuntimeError::Media(MediaError::Overloaded)),
        "{err}"
    );
    assert_eq!(
        bot.cloud.seen("POST", "/communications/calls").len(),
        1,
        "not sent"
    );
    assert_eq!(bot.runtime.live_calls(), 0);
    assert_eq!(bot.runtime.live_tasks(), 0);
}

#[tokio::test]
async fn unknown_calls_are_ignored() {
    let mut bot = bot(RuntimeConfig::default()).await;
    bot.notify("not-a-call-of-ours", "established").await;
    bot.notify("not-a-call-of-ours", "terminated").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bot.runtime.live_calls(), 0);
    assert_eq!(bot.runtime.live_tasks(), 0);
    assert_eq!(bot.runtime.held_early_calls(), 0);
    assert!(bot.events.try_recv().is_err(), "no events");
}

#[tokio::test]
async fn unknown_calls_followed_when_configured() {
    let mut bot = bot(RuntimeConfig::default().accept_unknown_calls(true)).await;
    bot.notify("incoming-1", "incoming").await;
    bot.notify("incoming-1", "terminated").await;
    let events = bot
        .events_until_removed("incoming-1", Duration::from_secs(3))
        .await;
    assert_eq!(events[0], RuntimeEventKind::Created);
    assert_eq!(
        call_states(&events),
        vec![CallState::Incoming, CallState::Terminated]
    );
    bot.tasks_end(Duration::from_secs(2)).await;
    assert_eq!(bot.runtime.live_calls(), 0);
}

#[tokio::test]
async fn notifications_before_the_201_are_held_and_replayed() {
    // The stand-in posts `established` to the callback before answering 201
    // (authentication off: the stand-in does not sign).
    let mut bot = bot_with(RuntimeConfig::default(), |_| {
        CallbackConfig::unauthenticated()
    })
    .await;
    bot.cloud.lock().notify_before_201 = Some(state_body("{id}", "established"));
    let call = bot.runtime.create_call(bot.request()).await.unwrap();
    let id = call.call_id.clone();
    post_callback(&bot.callback, None, state_body(&id, "terminated")).await;
    let events = bot.events_until_removed(&id, Duration::from_secs(3)).await;
    assert_eq!(call_states(&events), WHOLE_LIFE);
    assert!(events.contains(&RuntimeEventKind::MediaStarted));
    assert_eq!(bot.runtime.held_early_calls(), 0);
}

#[tokio::test]
async fn unknown_call_held_during_a_create_is_followed_when_configured() {
    let mut bot = bot_with(RuntimeConfig::default().accept_unknown_calls(true), |_| {
        CallbackConfig::unauthenticated()
    })
    .await;
    bot.cloud.lock().notify_before_201 = Some(state_body("incoming-2", "incoming"));
    let call = bot.runtime.create_call(bot.request()).await.unwrap();
    assert_eq!(bot.runtime.held_early_calls(), 0);
    post_callback(&bot.callback, None, state_body("incoming-2", "terminated")).await;
    let events = bot
        .events_until_removed("incoming-2", Duration::from_secs(3))
        .await;
    assert_eq!(
        call_states(&events),
        vec![CallState::Incoming, CallState::Terminated]
    );
    assert_eq!(bot.runtime.live_calls(), 1, "only our own call is left");
    bot.runtime.shutdown();
    let events = bot
        .events_until_removed(&call.call_id, Duration::from_secs(3))
        .await;
    assert_eq!(
        events.last(),
        Some(&RuntimeEventKind::Removed(TeardownReason::Shutdown))
    );
    bot.tasks_end(Duration::from_secs(2)).await;
    assert_eq!(bot.media.live(), 0);
}

#[tokio::test]
async fn two_hundred_call_cycles_leave_nothing_behind() {
    let mut bot = bot(RuntimeConfig::default()).await;
    let token = valid_token();
    for _ in 0..200 {
        let call = bot.runtime.create_call(bot.request()).await.unwrap();
        let id = call.call_id;
        for state in ["established", "terminated"] {
            assert_eq!(
                post_callback(&bot.callback, Some(&token), state_body(&id, state)).await,
                202
            );
        }
        let events = bot.events_until_removed(&id, Duration::from_secs(5)).await;
        assert!(events.contains(&RuntimeEventKind::MediaStarted));
    }
    bot.tasks_end(Duration::from_secs(5)).await;
    assert_eq!(bot.runtime.live_calls(), 0);
    assert_eq!(bot.runtime.held_early_calls(), 0);
    assert_eq!(bot.media.live(), 0);
    assert_eq!(bot.media.log().len(), 600);
    assert_eq!(bot.cloud.lock().token_fetches, 1);
    assert_eq!(bot.cloud.lock().jwks_fetches, 1);
}
