//! Many calls at once on the reactor: 20 peers connect and exchange media and control
//! concurrently, on one reactor thread and on two threads sharing one port
//! (`SO_REUSEPORT`); shutdown ends the calls of every thread.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use media_core::control::Control;
use media_core::link::CloseReason;
use transport::CloseCode;
use transport::wire::{ControlMessage, DominantSpeaker};
use uuid::Uuid;

const CALLS: usize = 20;
const FRAMES: u16 = 25;

/// `CALLS` peers at once on a reactor of `threads` threads: every frame is echoed,
/// every control message reaches its own call and comes back, shutdown ends them all.
async fn concurrent_calls(threads: usize) {
    let sessions: Vec<Uuid> = (0..CALLS).map(|_| Uuid::new_v4()).collect();
    let r = Arc::new(Reactor::start_threads(settings(), &sessions, threads));
    let t0 = Instant::now();
    let tasks: Vec<_> = sessions
        .iter()
        .enumerate()
        .map(|(i, session)| {
            let (r, session) = (r.clone(), *session);
            tokio::spawn(async move {
                let mut peer = r.join(join_for(session)).await;
                tokio::join!(
                    peer.send_frames(0, FRAMES, Duration::from_millis(10)),
                    peer.recv_echoes(0, FRAMES)
                );
                let msi = ControlMessage::DominantSpeaker(DominantSpeaker { msi: i as u32 });
                peer.send_control(&msi).await;
                assert_eq!(peer.recv_control().await, msi);
                peer
            })
        })
        .collect();
    let mut peers = Vec::new();
    for t in tasks {
        peers.push(t.await.unwrap());
    }
    eprintln!(
        "{CALLS} calls x {FRAMES} frames echoed on {threads} thread(s) in {:?}",
        t0.elapsed()
    );

    for (i, s) in sessions.iter().enumerate() {
        assert_eq!(
            r.controls_of(*s),
            [Control::DominantSpeaker(Some(i as u32))],
            "each call gets its own peer's messages"
        );
        let (st, got) = r.live(*s);
        assert_eq!((st.delivered, got, st.packets_sent), (25, 25, 25), "{st:?}");
        assert_eq!((st.control_received, st.control_sent), (1, 1), "{st:?}");
        assert_eq!(st.inbound_dropped(), 0, "{st:?}");
        assert!(r.sessions.is_joined(s));
    }
    let st = r.server.stats();
    assert_eq!(
        (st.accepted, st.active, st.rejected),
        (CALLS as u64, CALLS as u64, 0),
        "{st:?}"
    );
    let names: BTreeSet<String> = sessions
        .iter()
        .filter_map(|s| r.started(*s).thread)
        .collect();
    let expected: BTreeSet<String> = (0..threads).map(|i| format!("mp-reactor-{i}")).collect();
    // With 2 threads, 20 peers on distinct ports all on one thread has odds of 2^-19.
    assert_eq!(names, expected, "the kernel spreads peers over the threads");
    assert_eq!(r.server.threads(), threads);
    assert_eq!(r.server.thread_ids().len(), threads);
    let io = r.server.io_stats();
    assert!(
        io.datagrams_in >= (CALLS * FRAMES as usize) as u64,
        "{io:?}"
    );
    assert!(io.turns > 0 && io.busy > Duration::ZERO, "{io:?}");

    tokio::task::block_in_place(|| r.server.shutdown());
    for s in &sessions {
        assert_eq!(
            r.ended(*s, WITHIN).await.reason,
            CloseReason::ServerShutdown
        );
    }
    for peer in &peers {
        assert_eq!(
            peer.app_closed().await.error_code,
            CloseCode::ServerShutdown.to_varint()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_calls_on_one_reactor_thread() {
    concurrent_calls(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_calls_on_two_threads_sharing_one_port() {
    concurrent_calls(2).await;
}
