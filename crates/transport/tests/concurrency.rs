//! Many calls on one server: 20 concurrent connections, each exchanging datagrams and
//! a control message both ways.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use transport::wire::{ControlMessage, DominantSpeaker};
use transport::{KnownSessions, MediaClient, MediaConnection};
use uuid::Uuid;

const CALLS: usize = 20;
const FRAMES: u16 = 25;
const WITHIN: Duration = Duration::from_secs(10);

/// Sends FRAMES on `out_stream`, receives FRAMES on `in_stream`, checks every one.
async fn exchange(
    mut link: MediaConnection,
    out_stream: u32,
    in_stream: u32,
    msi: u32,
) -> MediaConnection {
    let sender = link.sender();
    let send = async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for seq in 0..FRAMES {
            tick.tick().await;
            sender
                .send_datagram(&header(out_stream, seq), &pcm_frame(out_stream, seq))
                .unwrap();
        }
        sender
            .send_control(&ControlMessage::DominantSpeaker(DominantSpeaker { msi }))
            .unwrap();
    };
    let recv = async {
        for seq in 0..FRAMES {
            let d = tokio::time::timeout(WITHIN, link.recv_datagram())
                .await
                .unwrap()
                .unwrap();
            assert_eq!((d.header.stream_id, d.header.sequence), (in_stream, seq));
            assert_eq!(&d.payload[..], &pcm_frame(in_stream, seq)[..]);
        }
        tokio::time::timeout(WITHIN, link.recv_control())
            .await
            .unwrap()
            .unwrap()
    };
    let ((), ctrl) = tokio::join!(send, recv);
    assert!(matches!(ctrl, ControlMessage::DominantSpeaker(_)));
    link
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_calls() {
    let registry = Arc::new(KnownSessions::new());
    let sessions: Vec<Uuid> = (0..CALLS).map(|_| Uuid::new_v4()).collect();
    for s in &sessions {
        registry.expect(*s);
    }
    let (server, fp) = start_server(registry.clone(), settings());
    let server = Arc::new(server);
    let addr = server.local_addr();
    let t0 = Instant::now();

    // Server side: accept CALLS links and run each one independently.
    let srv = server.clone();
    let server_side = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..CALLS {
            let link = srv.accept().await.unwrap();
            let (source, render) = (
                link.accept().streams[0].stream_id,
                link.accept().streams[1].stream_id,
            );
            tasks.push(tokio::spawn(exchange(link, source, render, 1)));
        }
        let mut links = Vec::new();
        for t in tasks {
            links.push(t.await.unwrap());
        }
        links
    });

    let mut clients = Vec::new();
    for s in &sessions {
        let cfg = client_config(addr, fp);
        let join = join_for(*s);
        clients.push(tokio::spawn(async move {
            let link = MediaClient::connect(cfg, join).await.unwrap();
            let (source, render) = (
                link.accept().streams[0].stream_id,
                link.accept().streams[1].stream_id,
            );
            exchange(link, render, source, 2).await
        }));
    }
    let mut client_links = Vec::new();
    for c in clients {
        client_links.push(c.await.unwrap());
    }
    let server_links = server_side.await.unwrap();
    eprintln!(
        "{CALLS} calls x {FRAMES} frames each way in {:?}",
        t0.elapsed()
    );

    let by_session: HashMap<Uuid, &MediaConnection> = server_links
        .iter()
        .map(|l| (l.join().mp_media_session_id, l))
        .collect();
    assert_eq!(by_session.len(), CALLS);
    for c in &client_links {
        let s = by_session[&c.join().mp_media_session_id];
        assert_eq!(s.stats().delivered, u64::from(FRAMES));
        assert_eq!(c.stats().delivered, u64::from(FRAMES));
        assert_eq!(s.stats().inbound_dropped(), 0);
    }
    let st = server.stats();
    assert_eq!(
        (st.accepted, st.active, st.rejected),
        (CALLS as u64, CALLS as u64, 0)
    );
    for s in &sessions {
        assert!(registry.is_joined(s));
    }
    server.shutdown().await;
    for c in &client_links {
        assert_eq!(
            tokio::time::timeout(WITHIN, c.closed()).await.unwrap(),
            transport::CloseReason::ServerShutdown
        );
    }
}
