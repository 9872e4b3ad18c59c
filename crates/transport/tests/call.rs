//! A whole call over real QUIC on 127.0.0.1: join, media both ways, control both
//! ways, orderly leave.
#![allow(clippy::unwrap_used)]

mod common;

use media_core::packet::TIMESTAMP_STEP;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use transport::wire::{
    ActiveSpeakers, Codec, ControlMessage, DominantSpeaker, Dtmf, DtmfTone, NO_DOMINANT_SPEAKER,
    SendStatus, SendStatusKind, StatsReport, StreamDirection,
};
use transport::{CloseReason, KnownSessions, MediaClient, MediaConnection, MediaSender};
use uuid::Uuid;

const FRAMES: u16 = 50;

async fn send_frames(link: MediaSender, stream_id: u32) {
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for seq in 0..FRAMES {
        tick.tick().await;
        link.send_datagram(&header(stream_id, seq), &pcm_frame(stream_id, seq))
            .unwrap();
    }
}

async fn recv_frames(link: &mut MediaConnection, stream_id: u32) {
    for seq in 0..FRAMES {
        let d = tokio::time::timeout(Duration::from_secs(5), link.recv_datagram())
            .await
            .expect("datagram in time")
            .expect("link open");
        assert_eq!(d.header.stream_id, stream_id);
        assert_eq!(d.header.sequence, seq, "in order, none lost");
        assert_eq!(d.header.timestamp, u32::from(seq) * TIMESTAMP_STEP);
        assert_eq!(d.header.codec, Codec::Pcm16k);
        assert_eq!(&d.payload[..], &pcm_frame(stream_id, seq)[..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_media_control_and_leave() {
    let registry = Arc::new(KnownSessions::new());
    let session = Uuid::new_v4();
    registry.expect(session);
    let (server, fp) = start_server(registry.clone(), settings());
    let join = join_for(session);

    let t0 = Instant::now();
    let (client, srv) = tokio::join!(
        MediaClient::connect(client_config(server.local_addr(), fp), join.clone()),
        server.accept()
    );
    let mut client = client.unwrap();
    let mut srv = srv.unwrap();
    eprintln!(
        "connect + join + accept: {:?}; max_datagram_size right after accept: {:?}",
        t0.elapsed(),
        client.stats().max_datagram_size
    );

    // Both sides agree on the admission.
    assert_eq!(srv.join(), &join);
    assert_eq!(srv.accept(), client.accept());
    let accept = client.accept().clone();
    assert_eq!(accept.codec, Codec::Pcm16k);
    assert_eq!(accept.streams.len(), 2);
    assert_eq!(accept.streams[0].context, join.audio_source_contexts[0]);
    assert_eq!(accept.streams[0].direction, StreamDirection::Source);
    assert_eq!(accept.streams[1].context, join.audio_render_contexts[0]);
    let source = accept.stream_id(&join.audio_source_contexts[0]).unwrap();
    let render = accept.stream_id(&join.audio_render_contexts[0]).unwrap();
    assert!(registry.is_joined(&session));

    // 50 frames each way, concurrently.
    tokio::join!(
        send_frames(client.sender(), render),
        send_frames(srv.sender(), source),
        recv_frames(&mut srv, render),
        recv_frames(&mut client, source),
    );

    // Control messages both ways, in order.
    let dtmf = ControlMessage::Dtmf(Dtmf {
        tone: DtmfTone::Star,
        stream_id: render,
        duration_ms: 100,
    });
    let flash = ControlMessage::Dtmf(Dtmf {
        tone: DtmfTone::Flash,
        stream_id: 0,
        duration_ms: 0,
    });
    client.send_control(&dtmf).unwrap();
    client.send_control(&flash).unwrap();
    let to_client = [
        ControlMessage::DominantSpeaker(DominantSpeaker { msi: 42 }),
        ControlMessage::DominantSpeaker(DominantSpeaker {
            msi: NO_DOMINANT_SPEAKER,
        }),
        ControlMessage::ActiveSpeakers(ActiveSpeakers { msis: vec![42, 7] }),
        ControlMessage::SendStatus(SendStatus {
            status: SendStatusKind::Inactive,
        }),
        ControlMessage::Stats(StatsReport {
            jitter_ms: 1.5,
            max_jitter_ms: 4.0,
            loss_pct: 0.0,
            rtt_ms: srv.stats().rtt.as_secs_f32() * 1000.0,
            packets_sent: 50,
            packets_received: 50,
            packets_lost: 0,
        }),
    ];
    for m in &to_client {
        srv.send_control(m).unwrap();
    }
    let within = Duration::from_secs(5);
    assert_eq!(
        tokio::time::timeout(within, srv.recv_control())
            .await
            .unwrap(),
        Some(dtmf)
    );
    assert_eq!(
        tokio::time::timeout(within, srv.recv_control())
            .await
            .unwrap(),
        Some(flash)
    );
    for m in &to_client {
        assert_eq!(
            tokio::time::timeout(within, client.recv_control())
                .await
                .unwrap()
                .as_ref(),
            Some(m)
        );
    }

    // Stats.
    let s = srv.stats();
    let c = client.stats();
    eprintln!("server link stats: {s:?}");
    eprintln!("client link stats: {c:?}");
    assert_eq!(s.delivered, u64::from(FRAMES));
    assert_eq!(c.delivered, u64::from(FRAMES));
    assert_eq!(s.datagrams_sent, u64::from(FRAMES));
    assert_eq!(s.inbound_dropped(), 0);
    assert_eq!(s.control_received, 2);
    assert_eq!(c.control_received, 5);
    assert!(
        s.rtt > Duration::ZERO && s.rtt < Duration::from_millis(100),
        "rtt {:?}",
        s.rtt
    );
    let max = s.max_datagram_size.unwrap();
    assert!(
        max >= transport::wire::MAX_DATAGRAM_LEN,
        "max_datagram_size {max}"
    );

    // Handshake messages are the driver's business.
    assert_eq!(
        client.send_control(&ControlMessage::Join(join.clone())),
        Err(transport::SendError::HandshakeMessage)
    );

    // Orderly leave.
    client.close("call ended");
    let reason = tokio::time::timeout(within, srv.closed()).await.unwrap();
    assert_eq!(
        reason,
        CloseReason::PeerLeft {
            reason: "call ended".into()
        }
    );
    assert!(!reason.is_failure());
    assert_eq!(
        client.closed().await,
        CloseReason::Closed {
            reason: "call ended".into()
        }
    );
    assert!(
        eventually(within, || !registry.is_joined(&session)).await,
        "session released"
    );
    assert!(
        srv.recv_datagram().await.is_none(),
        "datagram queue ends after close"
    );
    assert!(eventually(within, || server.stats().active == 0).await);
    assert_eq!(server.stats().accepted, 1);

    // The same session can join again after leaving.
    let again = MediaClient::connect(client_config(server.local_addr(), fp), join)
        .await
        .unwrap();
    let srv2 = server.accept().await.unwrap();
    server.shutdown().await;
    assert_eq!(
        tokio::time::timeout(within, again.closed()).await.unwrap(),
        CloseReason::ServerShutdown
    );
    drop(srv2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_preference_and_silence_frames() {
    let registry = Arc::new(KnownSessions::with_codec_preference(vec![
        Codec::Opus16k,
        Codec::Pcm16k,
    ]));
    let session = Uuid::new_v4();
    registry.expect(session);
    let (server, fp) = start_server(registry, settings());
    let join = join_for(session);
    // The server sends as soon as it has accepted, racing the client's reading of
    // Accept: nothing may be lost.
    let (client, srv) = tokio::join!(
        MediaClient::connect(client_config(server.local_addr(), fp), join),
        async {
            let srv = server.accept().await.unwrap();
            let mut h = header(srv.accept().streams[0].stream_id, 0);
            h.codec = Codec::Opus16k;
            srv.send_datagram(&h, &[1, 2, 3]).unwrap();
            srv
        }
    );
    let mut client = client.unwrap();
    let mut srv = srv;
    let first = tokio::time::timeout(Duration::from_secs(5), client.recv_datagram())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&first.payload[..], &[1, 2, 3]);
    assert_eq!(client.stats().pre_accept_dropped, 0);
    assert_eq!(client.accept().codec, Codec::Opus16k);
    let stream = client.accept().streams[0].stream_id;
    let mut h = header(stream, 0);
    h.codec = Codec::Opus16k;
    client.send_datagram(&h, &[0xfc, 0xff, 0xfe]).unwrap();
    h.sequence = 1;
    h.flags = transport::wire::Flags::SILENCE;
    client.send_datagram(&h, &[]).unwrap();
    // Illegal payloads are refused locally and counted.
    h.flags = transport::wire::Flags::NONE;
    assert!(client.send_datagram(&h, &[]).is_err());
    assert_eq!(client.stats().send_dropped, 1);
    let a = srv.recv_datagram().await.unwrap();
    assert_eq!(&a.payload[..], &[0xfc, 0xff, 0xfe]);
    let b = srv.recv_datagram().await.unwrap();
    assert!(b.header.flags.contains(transport::wire::Flags::SILENCE));
    assert!(b.payload.is_empty());
    // Dropping every handle closes the call normally.
    drop(client);
    let reason = tokio::time::timeout(Duration::from_secs(5), srv.closed())
        .await
        .unwrap();
    assert_eq!(
        reason,
        CloseReason::PeerLeft {
            reason: "handle dropped".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_socket_gets_the_kernel_buffers_it_asks_for() {
    // What the kernel grants: the request, capped at net.core.{r,w}mem_max, doubled.
    let cap = |file: &str| -> usize {
        std::fs::read_to_string(format!("/proc/sys/net/core/{file}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(usize::MAX)
    };
    let s = settings();
    let (server, _fp) = start_server(Arc::new(KnownSessions::new()), s.clone());
    let got = server.socket_buffers();
    eprintln!(
        "asked SO_RCVBUF {} / SO_SNDBUF {}, got {got:?} (rmem_max {}, wmem_max {})",
        s.udp_receive_buffer,
        s.udp_send_buffer,
        cap("rmem_max"),
        cap("wmem_max")
    );
    assert_eq!(got.receive, 2 * s.udp_receive_buffer.min(cap("rmem_max")));
    assert_eq!(got.send, 2 * s.udp_send_buffer.min(cap("wmem_max")));
    // 0 keeps the OS default.
    let mut default = s.clone();
    default.udp_receive_buffer = 0;
    let (server, _fp) = start_server(Arc::new(KnownSessions::new()), default);
    let os = cap("rmem_default");
    assert_eq!(server.socket_buffers().receive, os, "rmem_default");
}
