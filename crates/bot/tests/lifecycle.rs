//! Call lifecycles through the emulator with the real bot runtime and media platform:
//! every way a call ends frees its media session, its tasks and its far end.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use graph::{RuntimeConfig, RuntimeEvent, RuntimeEventKind, TeardownReason};
use harness::Local;
use signaling::{CallState, Scenario};
use tokio::sync::broadcast;

/// Waits until media flows both ways on `call`.
async fn media_flows(local: &Local, call: &graph::ActiveCall) {
    let session = call.session_id.unwrap();
    let id = &call.call_id;
    let ok = eventually(Duration::from_secs(5), || {
        local
            .bot
            .sessions()
            .snapshot(session)
            .is_some_and(|s| s.counters.frames_received > 5)
            && local
                .far_end
                .stats(id)
                .is_some_and(|s| s.packets_received > 5)
    })
    .await;
    assert!(ok, "media did not flow");
}

/// Waits until `call_id` is removed from the runtime; returns why it was.
async fn removal(
    rx: &mut broadcast::Receiver<RuntimeEvent>,
    call_id: &str,
    timeout: Duration,
) -> TeardownReason {
    let mut seen = Vec::new();
    let ok = events_until(rx, call_id, &mut seen, timeout, removed).await;
    match seen.pop() {
        Some(RuntimeEventKind::Removed(reason)) if ok => reason,
        last => panic!("{call_id} not removed: {seen:?}, then {last:?}"),
    }
}

/// The final report of `call`'s media session.
async fn session_report(local: &Local, call: &graph::ActiveCall) -> bot::SessionReport {
    let session = call.session_id.unwrap();
    local
        .bot
        .sessions()
        .wait_report(session, Duration::from_secs(5))
        .await
        .unwrap()
}

/// Everything of the bot, the platform and the far end is gone.
async fn all_freed(local: &Local) {
    let freed = eventually(Duration::from_secs(5), || {
        local.bot.runtime().live_calls() == 0
            && local.bot.runtime().live_tasks() == 0
            && local.bot.sessions().session_count() == 0
            && local.bot.sessions().live_tasks() == 0
            && local.bot.sessions().platform().session_count() == 0
            && local.far_end.live_legs() == 0
            && local.emulator.live_calls() == 0
    })
    .await;
    assert!(
        freed,
        "left: runtime calls {} tasks {}, bot sessions {} tasks {}, platform sessions {}, far-end legs {}, emulator calls {}",
        local.bot.runtime().live_calls(),
        local.bot.runtime().live_tasks(),
        local.bot.sessions().session_count(),
        local.bot.sessions().live_tasks(),
        local.bot.sessions().platform().session_count(),
        local.far_end.live_legs(),
        local.emulator.live_calls()
    );
}

async fn finish(local: Local) {
    all_freed(&local).await;
    let report = local.shutdown().await;
    assert_eq!(report.tasks_left, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_lapse_ends_the_call_and_frees_media() {
    let mut cfg = config();
    cfg.emulator.keepalive_timeout = Duration::from_millis(1500);
    // The bot's keepAlive is far too rare for the emulator's timeout.
    cfg.runtime = RuntimeConfig::default().keep_alive_interval(Duration::from_secs(3600));
    let local = start(cfg).await;
    let mut rx = local.bot.runtime().subscribe();
    let call = local.place(Scenario::P2pVoipApp).await.unwrap();
    media_flows(&local, &call).await;
    let reason = removal(&mut rx, &call.call_id, Duration::from_secs(5)).await;
    assert!(
        matches!(reason, TeardownReason::Terminated { .. }),
        "{reason:?}"
    );
    let summary = local.emulator.call(&call.call_id).unwrap();
    let t = summary.termination.unwrap();
    assert!(t.reason.to_lowercase().contains("keepalive"), "{t:?}");
    finish(local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_notification_frees_everything() {
    let local = start(config()).await;
    let mut rx = local.bot.runtime().subscribe();
    let call = local.place(Scenario::GroupApp).await.unwrap();
    media_flows(&local, &call).await;
    // The other side hangs up: the service sends `terminated`.
    assert!(local.emulator.hang_up(&call.call_id));
    let reason = removal(&mut rx, &call.call_id, Duration::from_secs(5)).await;
    assert!(
        matches!(reason, TeardownReason::Terminated { .. }),
        "{reason:?}"
    );
    let report = session_report(&local, &call).await;
    assert!(report.last.counters.frames_received > 5);
    finish(local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_stream_failure_hangs_up_the_call() {
    let mut cfg = config();
    // The processor notices a silent peer after 1 s; the far end would wait 30 s.
    cfg.platform.transport =
        transport::TransportSettings::default().with_idle_timeout(Duration::from_secs(1));
    cfg.far_end.transport =
        transport::TransportSettings::default().with_idle_timeout(Duration::from_secs(30));
    cfg.far_end.via_relay = true;
    // QUIC's idle timeout is the smaller of both sides': the far end notices too. It
    // waits before telling the emulator, so the bot's failure path is what ends the call.
    cfg.far_end.failure_grace = Duration::from_secs(5);
    let local = start(cfg).await;
    let mut rx = local.bot.runtime().subscribe();
    let call = local.place(Scenario::P2pVoipApp).await.unwrap();
    media_flows(&local, &call).await;
    // The far end vanishes: not a packet more, no goodbye.
    assert!(local.far_end.cut_network(&call.call_id));
    let t0 = Instant::now();
    let reason = removal(&mut rx, &call.call_id, Duration::from_secs(8)).await;
    eprintln!(
        "media failure detected and the call hung up after {:?}",
        t0.elapsed()
    );
    assert!(
        matches!(reason, TeardownReason::MediaFailure(_)),
        "{reason:?}"
    );
    let report = session_report(&local, &call).await;
    assert!(report.stream_failed, "{report:?}");
    let terminated = eventually(Duration::from_secs(5), || {
        local
            .emulator
            .call(&call.call_id)
            .is_some_and(|c| c.state == CallState::Terminated)
    })
    .await;
    assert!(terminated);
    finish(local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_call_cycles_leave_nothing_behind() {
    const CALLS: usize = 200;
    const PARALLEL: usize = 10;
    let local = Arc::new(start(config()).await);
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for w in 0..PARALLEL {
        let local = local.clone();
        workers.push(tokio::spawn(async move {
            for i in (w..CALLS).step_by(PARALLEL) {
                // Every other call is app-hosted: a media session is created, the far
                // end joins, media flows briefly.
                let s = if i % 2 == 0 {
                    Scenario::P2pVoipApp
                } else {
                    Scenario::P2pVoipService
                };
                let mut rx = local.bot.runtime().subscribe();
                let call = local.place(s).await.unwrap();
                let mut seen = Vec::new();
                let ok = events_until(
                    &mut rx,
                    &call.call_id,
                    &mut seen,
                    Duration::from_secs(10),
                    |v| {
                        v.contains(&RuntimeEventKind::MediaStarted) == s.is_app_hosted()
                            && v.iter().any(|k| {
                                matches!(
                                    k,
                                    RuntimeEventKind::Call(signaling::CallEvent::Established)
                                )
                            })
                    },
                )
                .await;
                assert!(ok, "call {i}: {seen:?}");
                local.bot.runtime().hang_up(&call.call_id).await.unwrap();
                let ok = events_until(
                    &mut rx,
                    &call.call_id,
                    &mut seen,
                    Duration::from_secs(10),
                    removed,
                )
                .await;
                assert!(ok, "call {i} not torn down: {seen:?}");
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    eprintln!("{CALLS} call cycles in {:?}", t0.elapsed());
    let counters = local.emulator.counters();
    assert_eq!(counters.calls_created, CALLS as u64);
    let local = Arc::try_unwrap(local).unwrap();
    finish(local).await;
}
