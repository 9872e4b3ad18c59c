//! All ten seed scenarios (and the two joins by meeting id) through the emulator with the real bot runtime, over real
//! HTTP and QUIC on 127.0.0.1: service-hosted ones as signaling only (established,
//! roster and lobby where the seed has them, terminated after hang-up), app-hosted
//! ones with media flowing both ways.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use graph::{RuntimeEventKind, TeardownReason};
use signaling::{CallEvent, CallState, Scenario};

fn established(seen: &[RuntimeEventKind]) -> bool {
    seen.iter()
        .any(|k| matches!(k, RuntimeEventKind::Call(CallEvent::Established)))
}

fn roster(seen: &[RuntimeEventKind]) -> bool {
    seen.iter().any(|k| {
        matches!(
            k,
            RuntimeEventKind::Call(
                CallEvent::ParticipantJoined(_) | CallEvent::ParticipantUpdated(_)
            )
        )
    })
}

fn was_in_lobby(seen: &[RuntimeEventKind]) -> bool {
    seen.iter().any(|k| match k {
        RuntimeEventKind::Call(
            CallEvent::ParticipantJoined(p) | CallEvent::ParticipantUpdated(p),
        ) => p.is_in_lobby,
        RuntimeEventKind::Call(CallEvent::LobbyChanged { in_lobby, .. }) => *in_lobby,
        _ => false,
    })
}

fn admitted(seen: &[RuntimeEventKind]) -> bool {
    seen.iter().any(|k| match k {
        RuntimeEventKind::Call(CallEvent::ParticipantUpdated(p)) => !p.is_in_lobby,
        RuntimeEventKind::Call(CallEvent::LobbyChanged { in_lobby, .. }) => !*in_lobby,
        _ => false,
    })
}

fn has_roster(s: Scenario) -> bool {
    matches!(
        s,
        Scenario::MeetingService
            | Scenario::MeetingApp
            | Scenario::ChannelMeeting
            | Scenario::ChannelMeetingGuest
            | Scenario::MeetingIdService
            | Scenario::MeetingIdApp
    )
}

async fn one_scenario(local: Arc<harness::Local>, s: Scenario) {
    let mut rx = local.bot.runtime().subscribe();
    let call = local.place(s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
    let id = call.call_id.clone();
    assert_eq!(call.session_id.is_some(), s.is_app_hosted(), "{s}");
    let mut seen = Vec::new();
    let ok = events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), |v| {
        established(v) && (!has_roster(s) || roster(v))
    })
    .await;
    assert!(ok, "{s}: not established (with roster): {seen:?}");
    if s == Scenario::ChannelMeetingGuest {
        assert!(
            was_in_lobby(&seen),
            "{s}: the bot never waited in the lobby: {seen:?}"
        );
        assert!(admitted(&seen), "{s}: the bot was never admitted: {seen:?}");
    }

    if s.is_app_hosted() {
        let session = call.session_id.unwrap();
        assert_media_flows(&local, session, &id, &s.to_string()).await;
        assert!(
            seen.contains(&RuntimeEventKind::MediaStarted) || {
                events_until(&mut rx, &id, &mut seen, Duration::from_secs(1), |v| {
                    v.contains(&RuntimeEventKind::MediaStarted)
                })
                .await
            }
        );
    } else {
        assert!(
            local.far_end.stats(&id).is_none(),
            "{s}: no far end for service-hosted media"
        );
    }

    local.bot.runtime().hang_up(&id).await.unwrap();
    let ok = events_until(&mut rx, &id, &mut seen, Duration::from_secs(5), removed).await;
    assert!(ok, "{s}: not torn down: {seen:?}");
    // Hung up by the bot; the service's `terminated` may overtake the bot's own
    // teardown, which is just as good.
    assert!(
        seen.iter().any(|k| matches!(
            k,
            RuntimeEventKind::Removed(TeardownReason::HungUp | TeardownReason::Terminated { .. })
        )),
        "{s}: {seen:?}"
    );
    let terminated = eventually(Duration::from_secs(5), || {
        local
            .emulator
            .call(&id)
            .is_some_and(|c| c.state == CallState::Terminated)
    })
    .await;
    assert!(
        terminated,
        "{s}: emulator says {:?}",
        local.emulator.call(&id).map(|c| c.state)
    );
    if let Some(session) = call.session_id {
        let report = local
            .bot
            .sessions()
            .wait_report(session, Duration::from_secs(5))
            .await
            .expect("session report");
        assert!(report.last.counters.frames_received > 0, "{s}");
        let far = local
            .far_end
            .wait_report(&id, Duration::from_secs(5))
            .await
            .expect("far end report");
        assert!(far.stats.packets_received > 0, "{s}: {:?}", far.stats);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_with_the_bot_runtime() {
    let local = Arc::new(start(config()).await);
    let mut tasks = Vec::new();
    for s in Scenario::ALL {
        tasks.push((s, tokio::spawn(one_scenario(local.clone(), s))));
    }
    for (s, t) in tasks {
        if let Err(e) = t.await {
            panic!("{s}: {e}");
        }
    }
    assert!(
        eventually(Duration::from_secs(5), || local.bot.runtime().live_tasks()
            == 0)
        .await
    );
    assert_eq!(local.bot.runtime().live_calls(), 0);
    assert!(
        eventually(Duration::from_secs(5), || local
            .bot
            .sessions()
            .session_count()
            == 0)
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || local
            .bot
            .sessions()
            .platform()
            .session_count()
            == 0)
        .await
    );
    assert_eq!(local.far_end.live_legs(), 0);
    assert_eq!(local.emulator.live_calls(), 0);
    let local = Arc::try_unwrap(local).unwrap();
    let report = local.shutdown().await;
    assert_eq!(report.tasks_left, 0);
}
