//! Whole calls on the reactor over real QUIC on 127.0.0.1, against an independent
//! quinn peer: join, media both ways (echoed by the call), control both ways, the
//! ends of a call (the peer leaves, the bot hangs up, the server shuts down), codecs
//! and silence, and the server's UDP socket.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use media_core::codec::Codec;
use media_core::control::{ActiveSpeakers as Speakers, Control};
use media_core::link::{CloseReason, LinkError};
use media_core::packet::AudioPacket;
use transport::wire::{
    self, ActiveSpeakers, ControlDecoder, ControlMessage, DominantSpeaker, Dtmf, DtmfTone, Flags,
    Leave, MAX_DATAGRAM_LEN, NO_DOMINANT_SPEAKER, SendStatus, SendStatusKind, StatsReport,
    StreamDirection, encode_control,
};
use transport::{CloseCode, KnownSessions};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_call_with_control_both_ways_and_leave() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let join = join_for(session);

    let mut peer = r.join(join.clone()).await;
    assert!(r.sessions.is_joined(&session));
    assert_eq!(r.server.thread_ids().len(), 1, "one reactor thread runs");
    let call = r.started(session);
    assert_eq!(
        call.thread.as_deref(),
        Some("mp-reactor-0"),
        "calls run on the reactor"
    );
    assert_eq!(call.remote, peer.local_addr());

    // Both sides agree on the admission: sources get 1.., renders continue.
    let accept = peer.accept().clone();
    assert_eq!(call.accept, accept);
    assert_eq!(accept.codec, Codec::Pcm16k);
    assert_eq!(accept.max_payload, 1148);
    let assigned: Vec<_> = accept
        .streams
        .iter()
        .map(|s| (s.context, s.stream_id, s.direction))
        .collect();
    assert_eq!(
        assigned,
        [
            (join.audio_source_contexts[0], 1, StreamDirection::Source),
            (join.audio_render_contexts[0], 2, StreamDirection::Render),
        ]
    );

    // 50 frames a few ms apart; each comes back intact on the source stream.
    tokio::join!(
        peer.send_frames(0, 50, Duration::from_millis(3)),
        peer.recv_echoes(0, 50),
    );

    // Control from the peer reaches the call as media-core's `Control`, in order...
    let report = StatsReport {
        jitter_ms: 1.5,
        max_jitter_ms: 4.0,
        loss_pct: 0.5,
        rtt_ms: 3.0,
        packets_sent: 50,
        packets_received: 49,
        packets_lost: 1,
        interval_loss_pct: 2.0,
        late_pct: 0.0,
        max_burst: 1,
    };
    let from_peer = [
        ControlMessage::Dtmf(Dtmf {
            tone: DtmfTone::Star,
            stream_id: peer.render(),
            duration_ms: 100,
        }),
        ControlMessage::Dtmf(Dtmf {
            tone: DtmfTone::Flash,
            stream_id: 0,
            duration_ms: 0,
        }),
        ControlMessage::DominantSpeaker(DominantSpeaker {
            msi: NO_DOMINANT_SPEAKER,
        }),
        ControlMessage::ActiveSpeakers(ActiveSpeakers { msis: vec![42, 7] }),
        ControlMessage::SendStatus(SendStatus {
            status: SendStatusKind::Inactive,
        }),
        ControlMessage::Stats(report),
    ];
    for m in &from_peer {
        peer.send_control(m).await;
    }
    let seen = [
        Control::Dtmf {
            tone: DtmfTone::Star,
            duration_ms: 100,
        },
        Control::Dtmf {
            tone: DtmfTone::Flash,
            duration_ms: 0,
        },
        Control::DominantSpeaker(None),
        Control::ActiveSpeakers(Speakers::from_slice(&[42, 7])),
        Control::SendStatus(SendStatusKind::Inactive),
        Control::Report(report),
    ];
    assert!(
        eventually(WITHIN, || r.controls_of(session) == seen).await,
        "{:?}",
        r.controls_of(session)
    );
    // ... and the call's echo reaches the peer in the wire's encoding: DTMF without a
    // stream, "nobody" as 0xFFFFFFFF, the report with the server's RTT.
    let mut echoes = from_peer[..5].to_vec();
    echoes[0] = ControlMessage::Dtmf(Dtmf {
        tone: DtmfTone::Star,
        stream_id: 0,
        duration_ms: 100,
    });
    for m in &echoes {
        assert_eq!(&peer.recv_control().await, m);
    }
    match peer.recv_control().await {
        ControlMessage::Stats(s) => {
            assert_eq!(
                StatsReport {
                    rtt_ms: report.rtt_ms,
                    ..s
                },
                report
            );
            assert!(
                s.rtt_ms > 0.0 && s.rtt_ms < 100.0,
                "server rtt {}",
                s.rtt_ms
            );
        }
        other => panic!("expected stats, got {other:?}"),
    }
    // The bot's own message reaches the peer.
    call.bot.send_control(Control::DominantSpeaker(Some(42)));
    assert_eq!(
        peer.recv_control().await,
        ControlMessage::DominantSpeaker(DominantSpeaker { msi: 42 })
    );
    assert!(!r.has_ended(session));

    // The peer leaves: the call ends, the server closes the connection normally.
    peer.leave("call ended").await;
    let ended = r.ended(session, WITHIN).await;
    let left = CloseReason::PeerLeft {
        reason: "call ended".into(),
    };
    assert_eq!(ended.reason, left);
    assert!(!ended.reason.is_failure());
    let s = ended.stats;
    eprintln!("call stats at Closed: {s:?}");
    assert_eq!((s.packets_received, s.delivered), (50, 50), "{s:?}");
    assert_eq!(s.inbound_dropped(), 0, "{s:?}");
    assert_eq!((s.packets_sent, s.send_dropped), (50, 0), "{s:?}");
    // Six messages and the Leave in; six echoes and the bot's message out.
    assert_eq!((s.control_received, s.control_sent), (7, 7), "{s:?}");
    let rtt = s.rtt.unwrap();
    assert!(
        rtt > Duration::ZERO && rtt < Duration::from_millis(100),
        "{s:?}"
    );
    assert!(s.max_packet_size.unwrap() >= MAX_DATAGRAM_LEN, "{s:?}");
    let close = peer.app_closed().await;
    assert_eq!(close.error_code, CloseCode::Normal.to_varint());
    assert_eq!(&close.reason[..], b"peer left: call ended");
    r.assert_released(session, &left).await;
    assert!(eventually(WITHIN, || r.server.stats().active == 0).await);
    assert!(r.send_errors_of(session).is_empty());

    // The same session can be joined again.
    let again = r.join(join).await;
    again.prove_echo(0, 5).await;
    assert!(again.conn().close_reason().is_none());
    assert!(!r.has_ended(session), "no second Closed");
    let st = r.stats_when(|s| s.accepted == 2).await;
    assert_eq!((st.rejected, st.active), (0, 1), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_sent_with_the_join_reaches_the_call() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let (_ep, conn) = r.raw().await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let dtmf = Dtmf {
        tone: DtmfTone::Star,
        stream_id: 2,
        duration_ms: 60,
    };
    let bytes = [
        encode_control(&ControlMessage::Join(join_for(session))).unwrap(),
        encode_control(&ControlMessage::Dtmf(dtmf)).unwrap(),
    ]
    .concat();
    send.write_all(&bytes).await.unwrap(); // one write: likely one packet
    let mut dec = ControlDecoder::new();
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    while got.len() < 2 {
        while let Some(m) = dec.poll() {
            got.push(m.unwrap());
        }
        if got.len() < 2 {
            let n = tokio::time::timeout(WITHIN, recv.read(&mut buf))
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            dec.push(&buf[..n]);
        }
    }
    assert!(matches!(got[0], ControlMessage::Accept(_)), "{got:?}");
    assert_eq!(
        got[1],
        ControlMessage::Dtmf(Dtmf {
            stream_id: 0,
            ..dtmf
        }),
        "echoed by the call"
    );
    assert_eq!(
        r.controls_of(session),
        [Control::Dtmf {
            tone: DtmfTone::Star,
            duration_ms: 60
        }]
    );
}

/// The server's codec preference wins over the peer's; Opus frames of any legal size
/// and silence frames (empty payload, SILENCE flag) pass both ways; illegal payloads
/// are refused by the sending link and dropped by the receiving one, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_preference_and_silence_frames() {
    let registry = Arc::new(KnownSessions::with_codec_preference(vec![
        Codec::Opus16k,
        Codec::Pcm16k,
    ]));
    let session = Uuid::new_v4();
    registry.expect(session);
    // Every call sends a frame at its first tick, right after Accept, racing the peer's
    // reading of Accept: nothing may be lost. Then one with an empty payload and no
    // SILENCE flag, which the link must refuse.
    let mut hello = AudioPacket::new(0, 0, Codec::Opus16k, &[1, 2, 3]).unwrap();
    hello.marker = true;
    let illegal = AudioPacket::new(1, 320, Codec::Opus16k, &[]).unwrap();
    let r = Reactor::start_with(settings(), registry, 1, vec![hello, illegal]);
    let peer = r.join(join_for(session)).await;
    assert_eq!(peer.join().codecs, [Codec::Pcm16k, Codec::Opus16k]);
    assert_eq!(peer.accept().codec, Codec::Opus16k);

    let (h, payload) = peer.recv_datagram().await.unwrap();
    assert_eq!(payload, [1, 2, 3]);
    assert_eq!(
        (h.stream_id, h.sequence, h.codec, h.flags),
        (peer.source(), 0, Codec::Opus16k, Flags::MARKER)
    );
    assert!(
        eventually(WITHIN, || !r.send_errors_of(session).is_empty()).await,
        "the illegal frame is refused"
    );
    assert!(
        matches!(r.send_errors_of(session)[..], [LinkError::Unsupported(_)]),
        "{:?}",
        r.send_errors_of(session)
    );

    let opus = |seq: u16, flags: Flags| wire::DatagramHeader {
        flags,
        codec: Codec::Opus16k,
        stream_id: peer.render(),
        sequence: seq,
        timestamp: u32::from(seq) * 320,
        source: 0,
    };
    let pcm_silence = wire::DatagramHeader {
        codec: Codec::Pcm16k,
        ..opus(2, Flags::SILENCE)
    };
    peer.send_datagram(datagram(opus(0, Flags::NONE), &[0xfc, 0xff, 0xfe]))
        .unwrap();
    peer.send_datagram(datagram(opus(1, Flags::SILENCE), &[]))
        .unwrap();
    peer.send_datagram(datagram(pcm_silence, &[])).unwrap();
    // Empty without SILENCE: not a legal datagram (the encoder refuses to build it).
    let mut bad = datagram(opus(3, Flags::SILENCE), &[]).to_vec();
    bad[1] = 0;
    peer.send_datagram(bad.into()).unwrap();

    let echoes = [
        (0, Codec::Opus16k, Flags::NONE, vec![0xfc, 0xff, 0xfe]),
        (1, Codec::Opus16k, Flags::SILENCE, vec![]),
        (2, Codec::Pcm16k, Flags::SILENCE, vec![]),
    ];
    for (seq, codec, flags, payload) in echoes {
        let (h, p) = peer.recv_datagram().await.unwrap();
        assert_eq!(
            (h.sequence, h.codec, h.flags, p),
            (seq, codec, flags, payload)
        );
        assert_eq!(h.stream_id, peer.source());
    }

    // A close with code 0 and no Leave is an orderly end too.
    peer.conn().close(CloseCode::Normal.to_varint(), b"hung up");
    let ended = r.ended(session, WITHIN).await;
    assert_eq!(
        ended.reason,
        CloseReason::PeerLeft {
            reason: "hung up".into()
        }
    );
    let s = ended.stats;
    assert_eq!(
        (s.delivered, s.malformed, s.packets_received),
        (3, 1, 4),
        "{s:?}"
    );
    assert_eq!((s.packets_sent, s.send_dropped), (4, 1), "{s:?}");
}

/// The bot hangs up (`link.close` from its tick) while the peer is still sending: the
/// peer gets `Leave` and a normal close; what it sends meanwhile is nobody's
/// "pre-accept"; another call is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_hangs_up_while_the_peer_streams() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let r = Reactor::start(settings(), &[a, b]);
    let mut peer_a = r.join(join_for(a)).await;
    let peer_b = r.join(join_for(b)).await;
    peer_a.prove_echo(0, 3).await;

    let hung_up = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        r.started(a).bot.hang_up(HANG_UP);
    };
    let streaming = async {
        let mut sent = 3u16;
        while peer_a.conn().close_reason().is_none() && sent < 2000 {
            let _ = peer_a.send_datagram(encode(peer_a.render(), sent));
            sent += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent
    };
    let ((), sent) = tokio::join!(hung_up, streaming);
    let close = peer_a.app_closed().await;
    assert_eq!(close.error_code, CloseCode::Normal.to_varint());
    assert_eq!(&close.reason[..], HANG_UP.as_bytes());
    // The control stream carried the Leave before it ended.
    let mut messages = Vec::new();
    while let ControlIn::Message(m) = peer_a.next_control().await {
        messages.push(m);
    }
    assert_eq!(
        messages,
        [ControlMessage::Leave(Leave {
            reason: HANG_UP.into()
        })]
    );
    let ended = r.ended(a, WITHIN).await;
    let closed = CloseReason::Closed {
        reason: HANG_UP.into(),
    };
    assert_eq!(ended.reason, closed);
    eprintln!("hung up after the peer sent {sent}: {:?}", ended.stats);
    assert!(ended.stats.packets_sent >= 3, "{:?}", ended.stats);
    assert_eq!(ended.stats.inbound_dropped(), 0, "{:?}", ended.stats);
    r.assert_released(a, &closed).await;
    assert_eq!(
        r.server.stats().pre_accept_dropped,
        0,
        "{:?}",
        r.server.stats()
    );

    // The other call is untouched.
    assert!(peer_b.conn().close_reason().is_none());
    peer_b.prove_echo(0, 3).await;
    assert!(!r.has_ended(b));
    assert_eq!(r.server.stats().active, 1);
}

/// A hang-up sends what is queued on the control stream, then `Leave`, then finishes
/// the stream and closes (a regression test: the reactor once closed at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_up_delivers_pending_control_then_leave() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let mut peer = r.join(join_for(session)).await;
    let bot = r.started(session).bot;
    // Both at the same tick: the message is queued, then the call closes.
    bot.send_control(Control::SendStatus(SendStatusKind::Inactive));
    bot.hang_up("bot left");

    let mut got = Vec::new();
    let end = loop {
        match peer.next_control().await {
            ControlIn::Message(m) => got.push(m),
            other => break other,
        }
    };
    eprintln!("control stream: {got:?}, then {end:?}");
    let goodbye = ControlMessage::SendStatus(SendStatus {
        status: SendStatusKind::Inactive,
    });
    let leave = ControlMessage::Leave(Leave {
        reason: "bot left".into(),
    });
    assert_eq!(got, [goodbye, leave]);
    assert_eq!(end, ControlIn::Finished, "the stream is finished");
    let close = peer.app_closed().await;
    assert_eq!(close.error_code, CloseCode::Normal.to_varint());
    let ended = r.ended(session, WITHIN).await;
    assert_eq!(ended.stats.control_sent, 1, "{:?}", ended.stats);
}

/// A call without ticks hears from its bot only through its waker: a control message
/// queued by the bot reaches the peer after `wake()` (from another thread), and a
/// wake-up asked for after the call ended does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waker_reaches_a_call_without_ticks() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    r.idle_calls();
    let mut peer = r.join(join_for(session)).await;
    let started = r.started(session);
    started
        .bot
        .send_control(Control::SendStatus(SendStatusKind::Inactive));
    // Nothing ticks: the message waits in the bot's queue.
    let quiet = tokio::time::timeout(Duration::from_millis(200), peer.next_control()).await;
    assert!(quiet.is_err(), "a call without ticks sent {quiet:?}");

    let waker = started.waker.clone();
    std::thread::spawn(move || waker.wake()).join().unwrap();
    let got = tokio::time::timeout(WITHIN, peer.next_control())
        .await
        .expect("the woken call sends what its bot queued");
    assert_eq!(
        got,
        ControlIn::Message(ControlMessage::SendStatus(SendStatus {
            status: SendStatusKind::Inactive,
        }))
    );

    started.bot.hang_up("bot left");
    started.waker.wake();
    let ended = r.ended(session, WITHIN).await;
    assert_eq!(
        ended.reason,
        CloseReason::Closed {
            reason: "bot left".into()
        }
    );
    started.waker.wake();
    r.stats_when(|s| s.active == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_calls_and_closes_peers() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let peer = r.join(join_for(session)).await;
    peer.prove_echo(0, 3).await;
    // A peer still in admission is closed too.
    let (_ep, pending) = r.raw().await;

    let t0 = Instant::now();
    tokio::task::block_in_place(|| r.server.shutdown());
    let took = t0.elapsed();
    eprintln!("shutdown took {took:?}");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");

    let close = peer.app_closed().await;
    assert_eq!(close.error_code, CloseCode::ServerShutdown.to_varint());
    let close = raw_closed(&pending).await;
    assert_eq!(close.error_code, CloseCode::ServerShutdown.to_varint());
    // `Closed` reached the call before shutdown returned.
    assert!(r.has_ended(session));
    let ended = r.ended(session, Duration::ZERO).await;
    assert_eq!(ended.reason, CloseReason::ServerShutdown);
    assert_eq!(ended.stats.packets_sent, 3);
    r.assert_released(session, &CloseReason::ServerShutdown)
        .await;
    assert_eq!(r.server.stats().active, 0);

    // Idempotent, and nothing answers any more.
    let t1 = Instant::now();
    r.server.shutdown();
    assert!(t1.elapsed() < Duration::from_millis(100));
    let mut cfg = r.peer_config();
    cfg.settings = cfg.settings.with_idle_timeout(Duration::from_millis(500));
    let after = tokio::time::timeout(WITHIN, QuicPeer::connect(&cfg, join_for(session)))
        .await
        .unwrap();
    assert!(
        matches!(after, Err(PeerError::Connection(_))),
        "{:?}",
        after.map(|_| ())
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
    let r = Reactor::start(s.clone(), &[]);
    let got = r.server.socket_buffers();
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
    let r = Reactor::start(default, &[]);
    assert_eq!(
        r.server.socket_buffers().receive,
        cap("rmem_default"),
        "rmem_default"
    );
}
