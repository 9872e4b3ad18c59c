//! The dialling side: `ReactorClient` runs calls it dialled in its own reactor loop,
//! against the reactor server and against a media server written on quinn.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use crossbeam_channel::{Receiver, Sender};
use media_core::codec::Codec;
use media_core::link::{CallHandler, CloseReason, LinkEvent, MediaLink};
use media_core::packet::{AudioPacket, TIMESTAMP_STEP};
use media_core::tick::TickGrid;
use transport::reactor::{Dialer, NewCall, ReactorClient};
use transport::wire::{Accept, RejectCode, StreamDirection};
use transport::{CertFingerprint, CloseCode, ConnectError, KnownSessions};
use uuid::Uuid;

/// What a dialled call reports to the test.
#[derive(Debug)]
enum Dialed {
    Accepted(Accept),
    Failed(ConnectError),
    /// An echo came back intact, in order: its sequence.
    Echo(u16),
    /// Any other packet: its sequence and payload.
    Other(u16, Vec<u8>),
    Ended(CloseReason),
}

/// Dials, then sends `frames` PCM frames (one per 20 ms tick) and checks every echo.
struct TestDialer {
    frames: u16,
    tx: Sender<Dialed>,
}

struct DialedCall {
    /// The stream this side sends on (the payloads are `pcm_frame(render, seq)`).
    render: u32,
    grid: TickGrid,
    next: u16,
    frames: u16,
    expect: u16,
    tx: Sender<Dialed>,
}

impl Dialer for TestDialer {
    fn accepted(self: Box<Self>, call: NewCall<'_>) -> Box<dyn CallHandler> {
        let render = call
            .accept
            .streams
            .iter()
            .find(|s| s.direction == StreamDirection::Render)
            .map(|s| s.stream_id)
            .unwrap();
        let _ = self.tx.send(Dialed::Accepted(call.accept.clone()));
        Box::new(DialedCall {
            render,
            grid: TickGrid::new(call.now),
            next: 0,
            frames: self.frames,
            expect: 0,
            tx: self.tx,
        })
    }

    fn failed(self: Box<Self>, error: ConnectError) {
        let _ = self.tx.send(Dialed::Failed(error));
    }
}

impl CallHandler for DialedCall {
    fn handle_event(&mut self, _: Instant, event: LinkEvent<'_>, _: &mut dyn MediaLink) {
        match event {
            LinkEvent::Packet(p) => {
                let intact = p.seq == self.expect
                    && p.timestamp == u32::from(p.seq) * TIMESTAMP_STEP
                    && p.codec == Codec::Pcm16k
                    && p.marker == (p.seq == 0)
                    && p.payload() == &pcm_frame(self.render, p.seq)[..];
                let report = if intact {
                    self.expect += 1;
                    Dialed::Echo(p.seq)
                } else {
                    Dialed::Other(p.seq, p.payload().to_vec())
                };
                let _ = self.tx.send(report);
            }
            LinkEvent::Closed(reason) => {
                let _ = self.tx.send(Dialed::Ended(reason.clone()));
            }
            LinkEvent::Control(_) => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant, link: &mut dyn MediaLink) {
        while self.grid.poll(now).is_some() {
            if self.next < self.frames {
                let seq = self.next;
                let mut p = AudioPacket::new(
                    seq,
                    u32::from(seq) * TIMESTAMP_STEP,
                    Codec::Pcm16k,
                    &pcm_frame(self.render, seq),
                )
                .unwrap();
                p.marker = seq == 0;
                link.send_packet(&p).unwrap();
                self.next += 1;
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.grid.next_deadline())
    }
}

/// The next report of a dialled call.
fn next_dialed(rx: &Receiver<Dialed>) -> Dialed {
    rx.recv_timeout(WITHIN)
        .expect("a report from the dialled call")
}

/// Dials `server` with a [`TestDialer`] of `frames` frames; the reports.
fn dial(
    client: &ReactorClient,
    server: std::net::SocketAddr,
    fp: CertFingerprint,
    session: Uuid,
    frames: u16,
) -> Receiver<Dialed> {
    let (tx, rx) = crossbeam_channel::unbounded();
    client
        .connect(
            &peer_config(server, fp),
            join_for(session),
            Box::new(TestDialer { frames, tx }),
        )
        .unwrap();
    rx
}

/// Expects `Accepted`, then the echoes of `frames` frames in order.
fn expect_echoes(rx: &Receiver<Dialed>, frames: u16) -> Accept {
    let accept = expect_accepted(rx);
    expect_only_echoes(rx, frames);
    accept
}

fn expect_accepted(rx: &Receiver<Dialed>) -> Accept {
    match next_dialed(rx) {
        Dialed::Accepted(a) => a,
        other => panic!("{other:?}"),
    }
}

/// Expects the echoes of `frames` frames in order.
fn expect_only_echoes(rx: &Receiver<Dialed>, frames: u16) {
    for seq in 0..frames {
        match next_dialed(rx) {
            Dialed::Echo(s) => assert_eq!(s, seq),
            other => panic!("echo {seq}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactor_client_dials_the_reactor_and_is_rejected_when_unknown() {
    let session = Uuid::new_v4();
    let registry = Arc::new(KnownSessions::new());
    registry.expect(session);
    // The server's call sends a frame at its first tick, in the turn that sends
    // Accept: the dialling core must not drop it as "before Accept".
    let mut hello = AudioPacket::new(7, 0, Codec::Pcm16k, &[7; 640]).unwrap();
    hello.marker = true;
    let r = Reactor::start_with(settings(), registry, 1, vec![hello]);
    let client = ReactorClient::bind(LOOPBACK.parse().unwrap(), &settings()).unwrap();
    let (addr, fp) = (r.addr(), r.fp);
    let (client, rx, accept) = tokio::task::spawn_blocking(move || {
        let rx = dial(&client, addr, fp, session, 50);
        let accept = expect_accepted(&rx);
        match next_dialed(&rx) {
            Dialed::Other(7, payload) => assert_eq!(payload, [7; 640]),
            other => panic!("expected the greeting, got {other:?}"),
        }
        expect_only_echoes(&rx, 50);
        (client, rx, accept)
    })
    .await
    .unwrap();
    assert_eq!(accept, r.started(session).accept);
    assert_eq!(r.started(session).remote, client.local_addr());
    // An unknown session: the dialer hears the application's reject.
    let rx2 = dial(&client, addr, fp, Uuid::new_v4(), 1);
    let failed = tokio::task::spawn_blocking(move || next_dialed(&rx2))
        .await
        .unwrap();
    match failed {
        Dialed::Failed(ConnectError::Rejected(rej)) => {
            assert_eq!(rej.code, RejectCode::UnknownSession);
        }
        other => panic!("{other:?}"),
    }
    // A client shutdown ends its call; the server's call sees the shutdown.
    tokio::task::block_in_place(|| client.shutdown());
    match rx.try_recv() {
        Ok(Dialed::Ended(reason)) => assert_eq!(reason, CloseReason::ServerShutdown),
        other => panic!("Closed before shutdown returns: {other:?}"),
    }
    let ended = r.ended(session, WITHIN).await;
    assert_eq!(ended.reason, CloseReason::ServerShutdown);
    assert_eq!(ended.stats.delivered, 50, "{:?}", ended.stats);
    assert_eq!(ended.stats.packets_sent, 51, "{:?}", ended.stats);
    let s = r.server.stats();
    assert_eq!((s.accepted, s.rejected), (1, 1), "{s:?}");
}

/// The reactor's dialling side against a media server that is not itself (quinn,
/// written from the wire format).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactor_client_dials_a_quinn_media_server() {
    let server = QuinnEchoServer::start();
    let client = ReactorClient::bind(LOOPBACK.parse().unwrap(), &settings()).unwrap();
    let (addr, fp) = (server.addr, server.fp);
    let accept = tokio::task::spawn_blocking(move || {
        let rx = dial(&client, addr, fp, Uuid::new_v4(), 20);
        let accept = expect_echoes(&rx, 20);
        client.shutdown();
        match next_dialed(&rx) {
            Dialed::Ended(reason) => assert_eq!(reason, CloseReason::ServerShutdown),
            other => panic!("{other:?}"),
        }
        accept
    })
    .await
    .unwrap();
    assert_eq!(accept.codec, Codec::Pcm16k);
    let (echoed, end) = tokio::time::timeout(WITHIN, server.done)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, 20);
    assert_eq!(
        app_close(end).error_code,
        CloseCode::ServerShutdown.to_varint(),
        "the client's shutdown closes with code 4"
    );
}
