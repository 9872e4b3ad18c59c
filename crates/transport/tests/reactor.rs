//! The reactor (`transport::reactor::ReactorServer`) over real QUIC on 127.0.0.1,
//! against the quinn-based `MediaClient` and raw quinn peers: what admission.rs,
//! call.rs and failures.rs prove for `MediaServer`, proved for the reactor.
//!
//! The harness: a [`TestApp`] admits through a [`KnownSessions`] and starts one
//! [`EchoCall`] per join, which echoes every datagram it receives on its next tick
//! (on the call's source stream, payload and sequence unchanged), records control
//! messages, publishes its link stats every tick, hangs up when the test asks, and
//! reports `ended` on a channel.
#![allow(clippy::unwrap_used)]

mod common;

use media_core::packet::TIMESTAMP_STEP;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use transport::reactor::{
    CallApp, Dialer, Link, LinkHandle, NewCall, ReactorCall, ReactorClient, ReactorServer,
};
use transport::wire::{
    Accept, Codec, ControlMessage, DatagramHeader, DominantSpeaker, Dtmf, DtmfTone, Join, Leave,
    MAX_DATAGRAM_LEN, Reject, RejectCode, StreamDirection, encode_control,
};
use transport::{
    Admission, CertFingerprint, CloseCode, CloseReason, ConnectError, KnownSessions, LinkStats,
    MediaClient, MediaConnection, MediaSender, SendError, ServerConfig, ServerIdentity,
    SessionRegistry, TransportSettings,
};
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(5);
/// What `EchoCall` says when the test makes it hang up.
const HANG_UP: &str = "bot hung up";

// ---------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------

/// One call's `ended`, as reported to the test.
#[derive(Debug)]
struct Ended {
    session: Uuid,
    reason: CloseReason,
    stats: LinkStats,
}

/// A started call, as the test sees it.
#[derive(Clone, Debug)]
struct Started {
    accept: Accept,
    handle: LinkHandle,
    hang_up: Arc<AtomicBool>,
    /// The name of the thread `CallApp::start` ran on.
    thread: Option<String>,
}

/// What the calls tell the test (shared with the reactor thread).
struct Probe {
    started: Mutex<HashMap<Uuid, Started>>,
    controls: Mutex<Vec<(Uuid, ControlMessage)>>,
    /// Each call's link stats and `on_datagram` count, published at every tick.
    live: Mutex<HashMap<Uuid, (LinkStats, u64)>>,
    ended_tx: crossbeam_channel::Sender<Ended>,
    ended_sessions: Mutex<Vec<Uuid>>,
    /// `CallApp::release` calls: session, reason, and whether `ended` ran before.
    released: Mutex<Vec<(Uuid, CloseReason, bool)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct TestApp {
    sessions: Arc<KnownSessions>,
    probe: Arc<Probe>,
}

impl CallApp for TestApp {
    fn admit(&mut self, join: &Join) -> Result<Admission, Reject> {
        self.sessions.admit(join)
    }

    fn start(&mut self, call: NewCall<'_>) -> Result<Box<dyn ReactorCall>, String> {
        let session = call.join.mp_media_session_id;
        let source = call
            .accept
            .streams
            .iter()
            .find(|s| s.direction == StreamDirection::Source)
            .map(|s| s.stream_id)
            .ok_or("no source stream")?;
        let hang_up = Arc::new(AtomicBool::new(false));
        lock(&self.probe.started).insert(
            session,
            Started {
                accept: call.accept.clone(),
                handle: call.handle,
                hang_up: hang_up.clone(),
                thread: std::thread::current().name().map(str::to_owned),
            },
        );
        Ok(Box::new(EchoCall {
            session,
            source,
            pending: Vec::new(),
            pending_control: Vec::new(),
            got: 0,
            hang_up,
            probe: self.probe.clone(),
        }))
    }

    fn release(&mut self, join: &Join, reason: &CloseReason) {
        let session = join.mp_media_session_id;
        let ends = lock(&self.probe.ended_sessions)
            .iter()
            .filter(|s| **s == session)
            .count();
        let mut released = lock(&self.probe.released);
        let releases = released.iter().filter(|(s, _, _)| *s == session).count();
        released.push((session, reason.clone(), ends > releases));
        self.sessions.release(join, reason);
    }
}

/// Echoes every received datagram on the next tick, on the call's source stream,
/// and every control message through the tick's `Link`.
struct EchoCall {
    session: Uuid,
    source: u32,
    pending: Vec<(DatagramHeader, Vec<u8>)>,
    pending_control: Vec<ControlMessage>,
    got: u64,
    hang_up: Arc<AtomicBool>,
    probe: Arc<Probe>,
}

impl ReactorCall for EchoCall {
    fn on_datagram(&mut self, header: &DatagramHeader, payload: &[u8], _received_at: Instant) {
        self.got += 1;
        self.pending.push((*header, payload.to_vec()));
    }

    fn on_control(&mut self, msg: ControlMessage) {
        lock(&self.probe.controls).push((self.session, msg.clone()));
        self.pending_control.push(msg);
    }

    fn tick(&mut self, _scheduled: Instant, link: &mut Link<'_>) {
        if self.hang_up.load(Ordering::Acquire) {
            link.close(HANG_UP);
            return;
        }
        for (mut header, payload) in self.pending.drain(..) {
            header.stream_id = self.source;
            let _ = link.send_datagram(&header, &payload); // failures are counted
        }
        for msg in self.pending_control.drain(..) {
            let _ = link.send_control(&msg); // counted in control_sent when queued
        }
        lock(&self.probe.live).insert(self.session, (link.stats(), self.got));
    }

    fn ended(self: Box<Self>, reason: &CloseReason, stats: &LinkStats) {
        lock(&self.probe.ended_sessions).push(self.session);
        let _ = self.probe.ended_tx.send(Ended {
            session: self.session,
            reason: reason.clone(),
            stats: *stats,
        });
    }
}

/// A reactor with a [`TestApp`], and what its calls report.
struct Reactor {
    server: ReactorServer,
    fp: CertFingerprint,
    sessions: Arc<KnownSessions>,
    probe: Arc<Probe>,
    ended_rx: crossbeam_channel::Receiver<Ended>,
    /// `ended` reports received but not yet asked for.
    unclaimed: Mutex<Vec<Ended>>,
}

impl Reactor {
    /// A reactor on 127.0.0.1 expecting `sessions`.
    fn start(settings: TransportSettings, sessions: &[Uuid]) -> Reactor {
        Self::start_threads(settings, sessions, 1)
    }

    /// [`Reactor::start`] with `threads` reactor threads on one port.
    fn start_threads(settings: TransportSettings, sessions: &[Uuid], threads: usize) -> Reactor {
        let registry = Arc::new(KnownSessions::new());
        for s in sessions {
            registry.expect(*s);
        }
        let (ended_tx, ended_rx) = crossbeam_channel::unbounded();
        let probe = Arc::new(Probe {
            started: Mutex::default(),
            controls: Mutex::default(),
            live: Mutex::default(),
            ended_tx,
            ended_sessions: Mutex::default(),
            released: Mutex::default(),
        });
        let identity = ServerIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
        let fp = identity.fingerprint();
        let mut cfg = ServerConfig::new(LOOPBACK.parse().unwrap(), identity);
        cfg.settings = settings;
        let server = ReactorServer::bind_threads(cfg, threads, || {
            Box::new(TestApp {
                sessions: registry.clone(),
                probe: probe.clone(),
            })
        })
        .unwrap();
        Reactor {
            server,
            fp,
            sessions: registry,
            probe,
            ended_rx,
            unclaimed: Mutex::default(),
        }
    }

    async fn connect(&self, join: Join) -> Result<MediaConnection, ConnectError> {
        MediaClient::connect(client_config(self.server.local_addr(), self.fp), join).await
    }

    async fn raw(&self) -> (quinn::Endpoint, quinn::Connection) {
        raw_connect(self.server.local_addr(), self.fp).await
    }

    /// The started call of `session` (it starts before `Accept` reaches the peer).
    fn started(&self, session: Uuid) -> Started {
        lock(&self.probe.started)
            .get(&session)
            .cloned()
            .unwrap_or_else(|| panic!("no call started for {session}"))
    }

    /// The stats and `on_datagram` count `session`'s call published at its last tick.
    fn live(&self, session: Uuid) -> (LinkStats, u64) {
        lock(&self.probe.live)
            .get(&session)
            .copied()
            .unwrap_or_default()
    }

    fn controls_of(&self, session: Uuid) -> Vec<ControlMessage> {
        lock(&self.probe.controls)
            .iter()
            .filter(|(s, _)| *s == session)
            .map(|(_, m)| m.clone())
            .collect()
    }

    fn collect_ended(&self) -> MutexGuard<'_, Vec<Ended>> {
        let mut unclaimed = lock(&self.unclaimed);
        unclaimed.extend(self.ended_rx.try_iter());
        unclaimed
    }

    /// True if `session`'s `ended` report arrived and was not yet claimed.
    fn has_ended(&self, session: Uuid) -> bool {
        self.collect_ended().iter().any(|e| e.session == session)
    }

    /// Waits (up to `within`) for `session`'s `ended` report and claims it.
    async fn ended(&self, session: Uuid, within: Duration) -> Ended {
        let deadline = Instant::now() + within;
        loop {
            {
                let mut unclaimed = self.collect_ended();
                if let Some(i) = unclaimed.iter().position(|e| e.session == session) {
                    return unclaimed.remove(i);
                }
            }
            assert!(
                Instant::now() < deadline,
                "no `ended` for {session} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Checks that `release` ran for `session` once, after `ended`, with `reason`,
    /// and that the session is free again.
    async fn assert_released(&self, session: Uuid, reason: &CloseReason) {
        assert!(
            eventually(WITHIN, || !self.sessions.is_joined(&session)).await,
            "session {session} released"
        );
        let released: Vec<_> = lock(&self.probe.released)
            .iter()
            .filter(|(s, _, _)| *s == session)
            .cloned()
            .collect();
        assert_eq!(released.len(), 1, "{released:?}");
        assert_eq!(&released[0].1, reason);
        assert!(released[0].2, "release runs after ended");
    }
}

/// Sends `n` PCM frames on `stream`, `every` apart, starting at sequence `first`.
async fn send_frames(link: MediaSender, stream: u32, first: u16, n: u16, every: Duration) {
    let mut tick = tokio::time::interval(every);
    for seq in first..first + n {
        tick.tick().await;
        link.send_datagram(&header(stream, seq), &pcm_frame(stream, seq))
            .unwrap();
    }
}

/// Receives the echoes of `send_frames(.., sent_on, first, n, ..)`: on `echo_on`,
/// in order, with the sent sequence, timestamp and payload.
async fn recv_echoes(link: &mut MediaConnection, sent_on: u32, echo_on: u32, first: u16, n: u16) {
    for seq in first..first + n {
        let d = tokio::time::timeout(WITHIN, link.recv_datagram())
            .await
            .unwrap_or_else(|_| panic!("echo of {seq} in time"))
            .expect("link open");
        assert_eq!(d.header.stream_id, echo_on);
        assert_eq!(d.header.sequence, seq, "in order, none lost");
        assert_eq!(d.header.timestamp, u32::from(seq) * TIMESTAMP_STEP);
        assert_eq!(d.header.codec, Codec::Pcm16k);
        assert_eq!(&d.payload[..], &pcm_frame(sent_on, seq)[..]);
    }
}

/// The client's (render → source) streams for the default one-source, one-render join.
fn streams(link: &MediaConnection) -> (u32, u32) {
    let join = link.join();
    let accept = link.accept();
    (
        accept.stream_id(&join.audio_render_contexts[0]).unwrap(),
        accept.stream_id(&join.audio_source_contexts[0]).unwrap(),
    )
}

/// Sends `n` frames from `link` (20 ms apart) and checks their echoes.
async fn prove_echo(link: &mut MediaConnection, first: u16, n: u16) {
    let (render, source) = streams(link);
    let sender = link.sender();
    tokio::join!(
        send_frames(sender, render, first, n, Duration::from_millis(20)),
        recv_echoes(link, render, source, first, n)
    );
}

/// The close a raw quinn peer saw.
async fn raw_closed(conn: &quinn::Connection) -> quinn::ApplicationClose {
    match tokio::time::timeout(WITHIN, conn.closed()).await.unwrap() {
        quinn::ConnectionError::ApplicationClosed(c) => c,
        other => panic!("unexpected close {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// 1. A whole call
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_call_with_control_both_ways_and_leave() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let join = join_for(session);

    let mut client = r.connect(join.clone()).await.unwrap();
    assert!(r.sessions.is_joined(&session));
    assert_eq!(r.server.thread_ids().len(), 1, "one reactor thread runs");
    let call = r.started(session);
    assert_eq!(
        call.thread.as_deref(),
        Some("mp-reactor-0"),
        "calls run on the reactor"
    );

    // Both sides agree on the admission: sources get 1.., renders continue.
    let accept = client.accept().clone();
    assert_eq!(call.accept, accept);
    assert_eq!(accept.codec, Codec::Pcm16k);
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
    let (render, source) = streams(&client);

    // 50 frames a few ms apart; each comes back intact on the source stream.
    tokio::join!(
        send_frames(client.sender(), render, 0, 50, Duration::from_millis(3)),
        recv_echoes(&mut client, render, source, 0, 50),
    );

    // Control: the peer's DTMF reaches on_control (and comes back from the tick);
    // the bot's message from this thread, through the LinkHandle, reaches the peer.
    let dtmf = ControlMessage::Dtmf(Dtmf {
        tone: DtmfTone::Pound,
        stream_id: render,
        duration_ms: 80,
    });
    client.send_control(&dtmf).unwrap();
    assert!(
        eventually(WITHIN, || r.controls_of(session) == [dtmf.clone()]).await,
        "DTMF seen by the call: {:?}",
        r.controls_of(session)
    );
    assert_eq!(
        tokio::time::timeout(WITHIN, client.recv_control())
            .await
            .unwrap(),
        Some(dtmf.clone()),
        "echoed from the tick"
    );
    let speaker = ControlMessage::DominantSpeaker(DominantSpeaker { msi: 42 });
    call.handle.send_control(&speaker).unwrap();
    assert_eq!(
        tokio::time::timeout(WITHIN, client.recv_control())
            .await
            .unwrap(),
        Some(speaker)
    );
    assert_eq!(
        call.handle
            .send_control(&ControlMessage::Join(join.clone())),
        Err(SendError::HandshakeMessage)
    );
    assert!(!r.has_ended(session));

    // The peer leaves.
    client.close("bye");
    let ended = r.ended(session, WITHIN).await;
    let left = CloseReason::PeerLeft {
        reason: "bye".into(),
    };
    assert_eq!(ended.reason, left);
    let s = ended.stats;
    eprintln!("call stats at ended: {s:?}");
    assert_eq!((s.datagrams_received, s.delivered), (50, 50), "{s:?}");
    assert_eq!(s.inbound_dropped(), 0, "{s:?}");
    assert_eq!((s.datagrams_sent, s.send_dropped), (50, 0), "{s:?}");
    // The DTMF and the Leave (counted as MediaServer counts it); the DTMF's echo and
    // the bot's message.
    assert_eq!((s.control_received, s.control_sent), (2, 2), "{s:?}");
    assert!(
        s.rtt > Duration::ZERO && s.rtt < Duration::from_millis(100),
        "{s:?}"
    );
    assert!(s.max_datagram_size.unwrap() >= MAX_DATAGRAM_LEN, "{s:?}");
    assert_eq!(
        tokio::time::timeout(WITHIN, client.closed()).await.unwrap(),
        CloseReason::Closed {
            reason: "bye".into()
        }
    );
    r.assert_released(session, &left).await;
    assert!(eventually(WITHIN, || r.server.stats().active == 0).await);

    // The session can be joined again. Once the old connection has drained (3 PTOs
    // after the close, well under 300 ms on loopback) the new call reuses its slot:
    // the old call's handle must not touch it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = r.connect(join).await.unwrap();
    call.handle.close("stale handle");
    prove_echo(&mut again, 0, 5).await;
    assert!(again.close_reason().is_none());
    assert!(!r.has_ended(session), "no second `ended`, no stale close");
    let st = r.server.stats();
    assert_eq!((st.accepted, st.rejected, st.active), (2, 0, 1), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_sent_with_the_join_reaches_the_call() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let (_ep, conn) = r.raw().await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let dtmf = ControlMessage::Dtmf(Dtmf {
        tone: DtmfTone::Star,
        stream_id: 2,
        duration_ms: 60,
    });
    let bytes = [
        encode_control(&ControlMessage::Join(join_for(session))).unwrap(),
        encode_control(&dtmf).unwrap(),
    ]
    .concat();
    send.write_all(&bytes).await.unwrap(); // one write: likely one packet
    let mut dec = transport::wire::ControlDecoder::new();
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
    assert_eq!(got[1], dtmf, "echoed by the call");
    assert_eq!(r.controls_of(session), [dtmf]);
}

// ---------------------------------------------------------------------------------
// 2. Admission
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_session_rejected_and_early_datagrams_dropped() {
    let r = Reactor::start(settings(), &[Uuid::new_v4()]); // some other session

    // A raw peer sends media before joining: none of it reaches a call.
    let (_ep, conn) = r.raw().await;
    for seq in 0..5 {
        conn.send_datagram(encode(1, seq)).unwrap();
    }
    assert!(
        eventually(WITHIN, || r.server.stats().pre_accept_dropped == 5).await,
        "{:?}",
        r.server.stats()
    );
    let unknown = Uuid::new_v4();
    let (_send, _recv, _dec, reply) = raw_join(&conn, &join_for(unknown)).await;
    let ControlMessage::Reject(rej) = reply else {
        panic!("expected reject, got {reply:?}")
    };
    assert_eq!(rej.code, RejectCode::UnknownSession);
    assert!(
        rej.message.contains(&unknown.to_string()),
        "{}",
        rej.message
    );
    // The peer does not close: the reactor does, with the Reject in the reason.
    let close = raw_closed(&conn).await;
    assert_eq!(close.error_code, CloseCode::Rejected.to_varint());
    let body: Reject = serde_json::from_slice(&close.reason).unwrap();
    assert_eq!(body.code, RejectCode::UnknownSession);
    assert_eq!(r.server.stats().rejected, 1);

    // The library client surfaces a typed error.
    match r.connect(join_for(Uuid::new_v4())).await {
        Err(ConnectError::Rejected(rej)) => assert_eq!(rej.code, RejectCode::UnknownSession),
        other => panic!("expected Rejected, got {other:?}"),
    }
    let s = r.server.stats();
    assert_eq!((s.rejected, s.accepted, s.active), (2, 0, 0), "{s:?}");
    assert_eq!(s.pre_accept_dropped, 5);
    assert!(lock(&r.probe.started).is_empty(), "no call started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_joined_rejected_until_released() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);

    let mut first = r.connect(join_for(session)).await.unwrap();
    match r.connect(join_for(session)).await {
        Err(ConnectError::Rejected(rej)) => assert_eq!(rej.code, RejectCode::AlreadyJoined),
        other => panic!("expected AlreadyJoined, got {other:?}"),
    }
    assert_eq!(r.server.stats().rejected, 1);
    // The first call is unaffected.
    prove_echo(&mut first, 0, 3).await;
    assert!(first.close_reason().is_none());
    assert!(!r.has_ended(session));

    first.close("done");
    let ended = r.ended(session, WITHIN).await;
    let left = CloseReason::PeerLeft {
        reason: "done".into(),
    };
    assert_eq!(ended.reason, left);
    r.assert_released(session, &left).await;
    let mut second = r.connect(join_for(session)).await.unwrap();
    prove_echo(&mut second, 0, 3).await;
    let s = r.server.stats();
    assert_eq!((s.accepted, s.rejected, s.active), (2, 1, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_joins_rejected_and_non_join_is_a_protocol_error() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);

    let spoiled = spoiled_joins();
    for (what, spoil, code) in spoiled {
        let mut j = join_for(session);
        spoil(&mut j);
        let (_ep, conn) = r.raw().await;
        let (_send, _recv, _dec, reply) = raw_join(&conn, &j).await;
        match reply {
            ControlMessage::Reject(rej) => assert_eq!(rej.code, code, "{what}: {rej:?}"),
            other => panic!("{what}: expected reject, got {other:?}"),
        }
        conn.close(0u32.into(), b"rejected");
    }
    assert_eq!(r.server.stats().rejected, 4);
    // None of these reached the registry or started a call.
    assert!(!r.sessions.is_joined(&session));
    assert!(lock(&r.probe.started).is_empty());
    let _ok = r.connect(join_for(session)).await.unwrap();

    // A first message that is not a Join closes the connection with a protocol error.
    let (_ep, conn) = r.raw().await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let leave = encode_control(&ControlMessage::Leave(Leave { reason: "x".into() })).unwrap();
    send.write_all(&leave).await.unwrap();
    let close = raw_closed(&conn).await;
    assert_eq!(close.error_code, CloseCode::ProtocolError.to_varint());
    eprintln!("close reason: {}", String::from_utf8_lossy(&close.reason));
    let s = r.server.stats();
    assert_eq!((s.join_failed, s.rejected, s.accepted), (1, 4, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_times_out_at_join() {
    let join_timeout = Duration::from_millis(500);
    let mut s = settings();
    s.join_timeout = join_timeout;
    let r = Reactor::start(s, &[]);
    let t0 = Instant::now();
    let (_ep, conn) = r.raw().await;
    let close = raw_closed(&conn).await;
    let after = t0.elapsed();
    eprintln!("silent peer closed after {after:?} (join timeout {join_timeout:?})");
    assert_eq!(close.error_code, CloseCode::JoinTimeout.to_varint());
    assert!(
        after >= join_timeout - Duration::from_millis(50)
            && after < join_timeout + Duration::from_secs(1),
        "closed after {after:?}"
    );
    let st = r.server.stats();
    assert_eq!(
        (st.join_failed, st.accepted, st.rejected),
        (1, 0, 0),
        "{st:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_counts_as_handshake_failure() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let other = ServerIdentity::self_signed(&["localhost"])
        .unwrap()
        .fingerprint();
    let cfg = client_config(r.server.local_addr(), other);
    match MediaClient::connect(cfg, join_for(session)).await {
        Err(ConnectError::Connection(e)) => eprintln!("untrusted: {e}"),
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(
        eventually(WITHIN, || r.server.stats().handshake_failed == 1).await,
        "{:?}",
        r.server.stats()
    );
    let s = r.server.stats();
    assert_eq!((s.join_failed, s.accepted, s.rejected), (0, 0, 0), "{s:?}");
    assert!(!r.sessions.is_joined(&session));
}

/// A join deadline that passes before the QUIC handshake completed counts as
/// `handshake_failed`, as in `MediaServer` (a regression test: the reactor once
/// counted every expired join deadline as `join_failed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshake_counts_as_handshake_failure() {
    let join_timeout = Duration::from_millis(300);
    let mut s = settings();
    s.join_timeout = join_timeout;
    let r = Reactor::start(s, &[]);
    let addr = r.server.local_addr();
    // A client that sends its first Initial and then nothing: the TLS handshake
    // never completes. (quinn_proto directly, to stop after one packet.)
    let mut ep = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        true,
        None,
    );
    let cfg =
        transport::quinn_client_config(&transport::ServerTrust::pinned(r.fp), &settings()).unwrap();
    let (_ch, mut conn) = ep.connect(Instant::now(), cfg, addr, "localhost").unwrap();
    let mut buf = Vec::new();
    let t = conn.poll_transmit(Instant::now(), 1, &mut buf).unwrap();
    let socket = std::net::UdpSocket::bind(LOOPBACK).unwrap();
    socket.send_to(&buf[..t.size], addr).unwrap();
    assert!(
        eventually(WITHIN, || {
            let s = r.server.stats();
            s.handshake_failed + s.join_failed > 0
        })
        .await,
        "{:?}",
        r.server.stats()
    );
    // As MediaServer counts it: the handshake timed out, no join was ever possible.
    let s = r.server.stats();
    assert_eq!((s.handshake_failed, s.join_failed), (1, 0), "{s:?}");
}

// ---------------------------------------------------------------------------------
// 3. Bad input
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_datagrams_and_flood_only_hurt_their_own_call() {
    let (good_session, bad_session) = (Uuid::new_v4(), Uuid::new_v4());
    let r = Reactor::start(settings(), &[good_session, bad_session]);
    let mut good = r.connect(join_for(good_session)).await.unwrap();

    let (_ep, bad) = r.raw().await;
    let (_s, _r, _d, reply) = raw_join(&bad, &join_for(bad_session)).await;
    let ControlMessage::Accept(accept) = reply else {
        panic!("{reply:?}")
    };
    let stream = accept.streams[0].stream_id;

    // Garbage of every kind.
    let oversized_sent = send_garbage(&bad, stream).await;
    let expect_garbage = 60 + oversized_sent;
    assert!(
        eventually(WITHIN, || r.live(bad_session).0.datagrams_received
            >= expect_garbage)
        .await,
        "{:?}",
        r.live(bad_session)
    );
    let (s, got) = r.live(bad_session);
    assert_eq!(s.malformed, 30, "{s:?}");
    assert_eq!(s.wrong_version, 20, "{s:?}");
    assert_eq!(s.unknown_stream, 10, "{s:?}");
    assert_eq!(s.oversized, oversized_sent, "{s:?}");
    assert_eq!(
        (s.delivered, got),
        (0, 0),
        "nothing reached the call: {s:?}"
    );
    assert!(
        !r.has_ended(bad_session),
        "bad datagrams do not end the call"
    );

    // A flood (2000 valid datagrams/s on one stream, 10x the limit) while the good
    // call sends 50 frames at the real 50/s pace and gets every echo.
    let flood = flood(&bad, stream);
    tokio::join!(flood, prove_echo(&mut good, 0, 50));

    assert!(eventually(WITHIN, || r.live(bad_session).0.flood_dropped >= 1000).await);
    let (s, got) = r.live(bad_session);
    eprintln!("bad call after flood: {s:?}");
    // Burst 100 + 200/s over ~1 s, with some slack for timing.
    assert!(s.delivered <= 100 + 200 * 2, "{s:?}");
    assert_eq!(s.delivered, got, "what was delivered reached on_datagram");
    assert_eq!(
        s.datagrams_received,
        s.inbound_dropped() + s.delivered,
        "every datagram accounted for: {s:?}"
    );
    let (g, got) = r.live(good_session);
    eprintln!("good call: {g:?}");
    assert_eq!((g.delivered, got), (50, 50), "{g:?}");
    assert_eq!(g.inbound_dropped(), 0, "{g:?}");
    assert!(good.close_reason().is_none());
    assert!(!r.has_ended(good_session) && !r.has_ended(bad_session));
    assert_eq!(r.server.stats().active, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_control_stream_ends_only_that_call() {
    let sessions: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let r = Reactor::start(settings(), &sessions);
    let mut good = r.connect(join_for(sessions[0])).await.unwrap();

    let cases = control_garbage(sessions[0]);
    for ((what, garbage), session) in cases.iter().zip(&sessions[1..]) {
        let (_ep, bad) = r.raw().await;
        let (mut send, _recv, _dec, reply) = raw_join(&bad, &join_for(*session)).await;
        assert!(
            matches!(reply, ControlMessage::Accept(_)),
            "{what}: {reply:?}"
        );
        send.write_all(garbage).await.unwrap();
        let ended = r.ended(*session, WITHIN).await;
        eprintln!("{what}: call ended with {}", ended.reason);
        assert!(
            matches!(
                &ended.reason,
                CloseReason::ProtocolError { by_peer: false, .. }
            ),
            "{what}: {:?}",
            ended.reason
        );
        let close = raw_closed(&bad).await;
        assert_eq!(
            close.error_code,
            CloseCode::ProtocolError.to_varint(),
            "{what}"
        );
        r.assert_released(*session, &ended.reason).await;
    }
    assert!(good.close_reason().is_none());
    assert!(!r.has_ended(sessions[0]));
    prove_echo(&mut good, 0, 10).await;
    assert!(eventually(WITHIN, || r.server.stats().active == 1).await);
}

// ---------------------------------------------------------------------------------
// 4. Hang-up and vanished peers
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_hangs_up_from_tick_and_through_its_handle() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let r = Reactor::start(settings(), &[a, b]);
    let mut peer_a = r.connect(join_for(a)).await.unwrap();
    let peer_b = r.connect(join_for(b)).await.unwrap();
    prove_echo(&mut peer_a, 0, 3).await;

    // The call closes itself from its tick, while the peer is still sending.
    let (render, _) = streams(&peer_a);
    let sender = peer_a.sender();
    let streaming = tokio::spawn(async move {
        let mut sent = 0u16;
        while sender.close_reason().is_none() {
            let _ = sender.send_datagram(&header(render, sent), &pcm_frame(render, sent));
            sent += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.started(a).hang_up.store(true, Ordering::Release);
    let hung_up = CloseReason::PeerLeft {
        reason: HANG_UP.into(),
    };
    assert_eq!(
        tokio::time::timeout(WITHIN, peer_a.closed()).await.unwrap(),
        hung_up
    );
    let sent = streaming.await.unwrap();
    let ended = r.ended(a, WITHIN).await;
    let closed = CloseReason::Closed {
        reason: HANG_UP.into(),
    };
    assert_eq!(ended.reason, closed);
    eprintln!("hung up after the peer sent {sent}: {:?}", ended.stats);
    assert!(ended.stats.datagrams_sent >= 3, "{:?}", ended.stats);
    assert_eq!(ended.stats.inbound_dropped(), 0, "{:?}", ended.stats);
    r.assert_released(a, &closed).await;
    // The peer's link ends; what it sent after the hang-up is nobody's "pre-accept".
    let drained = tokio::time::timeout(WITHIN, async {
        while peer_a.recv_datagram().await.is_some() {}
    });
    assert!(drained.await.is_ok(), "the peer's link ends");
    assert_eq!(
        r.server.stats().pre_accept_dropped,
        0,
        "{:?}",
        r.server.stats()
    );

    // Another thread hangs up through the call's handle.
    assert!(
        peer_b.close_reason().is_none(),
        "the other call is untouched"
    );
    r.started(b).handle.close("bot left");
    assert_eq!(
        tokio::time::timeout(WITHIN, peer_b.closed()).await.unwrap(),
        CloseReason::PeerLeft {
            reason: "bot left".into()
        }
    );
    let closed = CloseReason::Closed {
        reason: "bot left".into(),
    };
    assert_eq!(r.ended(b, WITHIN).await.reason, closed);
    r.assert_released(b, &closed).await;
    assert!(eventually(WITHIN, || r.server.stats().active == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_peer_detected_within_idle_timeout() {
    let idle = Duration::from_secs(1);
    let session = Uuid::new_v4();
    let r = Reactor::start(
        TransportSettings::default().with_idle_timeout(idle),
        &[session],
    );
    let (addr, fp) = (r.server.local_addr(), r.fp);

    let peer = VanishingPeer::join(addr, fp, session).await;
    // A live but quiet peer is kept by the reactor's keep-alives, beyond the idle
    // timeout.
    tokio::time::sleep(idle + idle / 2).await;
    assert!(
        !r.has_ended(session),
        "quiet peer kept alive by keep-alives"
    );

    peer.vanish();
    let t0 = Instant::now();
    let ended = r.ended(session, Duration::from_secs(10)).await;
    let detected = t0.elapsed();
    eprintln!(
        "vanished peer detected after {detected:?} (idle timeout {idle:?}): {}",
        ended.reason
    );
    let vanished = CloseReason::PeerVanished { idle_timeout: idle };
    assert_eq!(ended.reason, vanished);
    assert!(
        detected < idle + Duration::from_millis(1000),
        "detected after {detected:?}"
    );
    r.assert_released(session, &vanished).await;
    assert!(eventually(WITHIN, || r.server.stats().active == 0).await);
}

/// A hang-up sends what is queued on the control stream, then `Leave`, then closes
/// (a regression test: the reactor once closed at once, without either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_up_delivers_pending_control_then_leave() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let (_ep, conn) = r.raw().await;
    let (_send, mut recv, mut dec, reply) = raw_join(&conn, &join_for(session)).await;
    assert!(matches!(reply, ControlMessage::Accept(_)), "{reply:?}");
    let call = r.started(session);
    let goodbye = ControlMessage::SendStatus(transport::wire::SendStatus {
        status: transport::wire::SendStatusKind::Inactive,
    });
    call.handle.send_control(&goodbye).unwrap();
    call.handle.close("bot left");

    // The control stream carries the pending message, then Leave, then its end.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let end = loop {
        while let Some(m) = dec.poll() {
            got.push(m.unwrap());
        }
        match tokio::time::timeout(WITHIN, recv.read(&mut buf))
            .await
            .unwrap()
        {
            Ok(Some(n)) => dec.push(&buf[..n]),
            other => break format!("{other:?}"),
        }
    };
    eprintln!("control stream: {got:?}, then {end}");
    let leave = ControlMessage::Leave(Leave {
        reason: "bot left".into(),
    });
    assert_eq!(got, [goodbye, leave], "then {end}");
    assert_eq!(end, "Ok(None)", "the stream is finished");
    let close = raw_closed(&conn).await;
    assert_eq!(close.error_code, CloseCode::Normal.to_varint());
}

// ---------------------------------------------------------------------------------
// 5. Shutdown
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_calls_and_closes_peers() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let mut client = r.connect(join_for(session)).await.unwrap();
    prove_echo(&mut client, 0, 3).await;
    // A peer still in admission is closed too.
    let (_ep, pending) = r.raw().await;

    let t0 = Instant::now();
    tokio::task::block_in_place(|| r.server.shutdown());
    let took = t0.elapsed();
    eprintln!("shutdown took {took:?}");
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");

    assert_eq!(
        tokio::time::timeout(WITHIN, client.closed()).await.unwrap(),
        CloseReason::ServerShutdown
    );
    let close = raw_closed(&pending).await;
    assert_eq!(close.error_code, CloseCode::ServerShutdown.to_varint());
    // `ended` ran before shutdown returned.
    assert!(r.has_ended(session));
    let ended = r.ended(session, Duration::ZERO).await;
    assert_eq!(ended.reason, CloseReason::ServerShutdown);
    assert_eq!(ended.stats.datagrams_sent, 3);
    r.assert_released(session, &CloseReason::ServerShutdown)
        .await;
    assert_eq!(r.server.stats().active, 0);

    // Idempotent, and nothing answers any more.
    let t1 = Instant::now();
    r.server.shutdown();
    assert!(t1.elapsed() < Duration::from_millis(100));
    let mut cfg = client_config(r.server.local_addr(), r.fp);
    cfg.settings.join_timeout = Duration::from_millis(300);
    assert!(MediaClient::connect(cfg, join_for(session)).await.is_err());
}

/// Several reactor threads share one port (`SO_REUSEPORT`): the kernel spreads the
/// peers over them, every call echoes, and shutdown ends the calls of every thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_share_one_port_and_all_calls_echo() {
    const CALLS: usize = 16;
    let sessions: Vec<Uuid> = (0..CALLS).map(|_| Uuid::new_v4()).collect();
    let r = Reactor::start_threads(settings(), &sessions, 2);
    let mut links = Vec::new();
    for s in &sessions {
        links.push(r.connect(join_for(*s)).await.unwrap());
    }
    assert!(eventually(WITHIN, || r.server.thread_ids().len() == 2).await);
    for link in &mut links {
        prove_echo(link, 0, 5).await;
    }
    // 16 peers on distinct ports: all on one of two threads has odds of 2^-15.
    let threads: std::collections::BTreeSet<String> = sessions
        .iter()
        .filter_map(|s| r.started(*s).thread)
        .collect();
    assert_eq!(
        threads.into_iter().collect::<Vec<_>>(),
        ["mp-reactor-0", "mp-reactor-1"]
    );
    assert_eq!(r.server.stats().accepted, CALLS as u64);
    // The loops batch: fewer turns than datagrams read, and their busy time is measured.
    let io = r.server.io_stats();
    assert!(io.datagrams_in >= (CALLS * 5) as u64, "{io:?}");
    assert!(io.turns > 0 && io.busy > Duration::ZERO, "{io:?}");
    assert_eq!(r.server.threads(), 2);
    r.server.shutdown();
    for s in &sessions {
        assert_eq!(
            r.ended(*s, WITHIN).await.reason,
            CloseReason::ServerShutdown
        );
    }
    for link in &links {
        assert_eq!(link.closed().await, CloseReason::ServerShutdown);
    }
}

// ---------------------------------------------------------------------------------
// The dialling side: ReactorClient
// ---------------------------------------------------------------------------------

/// What a dialled call reports to the test.
#[derive(Debug)]
enum Dialed {
    Accepted(Accept),
    Failed(ConnectError),
    /// An echo came back intact, in order: its sequence.
    Echo(u16),
    Ended(CloseReason),
}

/// Dials, then sends `frames` PCM frames on its render stream (one per tick) and
/// checks every echo on its source stream.
struct TestDialer {
    frames: u16,
    tx: crossbeam_channel::Sender<Dialed>,
}

struct DialedCall {
    render: u32,
    source: u32,
    next: u16,
    frames: u16,
    expect: u16,
    tx: crossbeam_channel::Sender<Dialed>,
}

impl Dialer for TestDialer {
    fn accepted(self: Box<Self>, call: NewCall<'_>) -> Box<dyn ReactorCall> {
        let id = |dir| {
            call.accept
                .streams
                .iter()
                .find(|s| s.direction == dir)
                .map(|s| s.stream_id)
                .unwrap()
        };
        let _ = self.tx.send(Dialed::Accepted(call.accept.clone()));
        Box::new(DialedCall {
            render: id(StreamDirection::Render),
            source: id(StreamDirection::Source),
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

impl ReactorCall for DialedCall {
    fn on_datagram(&mut self, h: &DatagramHeader, payload: &[u8], _: Instant) {
        let intact = h.stream_id == self.source
            && h.sequence == self.expect
            && payload == &pcm_frame(self.render, h.sequence)[..];
        if intact {
            self.expect += 1;
            let _ = self.tx.send(Dialed::Echo(h.sequence));
        }
    }

    fn tick(&mut self, _: Instant, link: &mut Link<'_>) {
        if self.next < self.frames {
            let seq = self.next;
            link.send_datagram(&header(self.render, seq), &pcm_frame(self.render, seq))
                .unwrap();
            self.next += 1;
        }
    }

    fn ended(self: Box<Self>, reason: &CloseReason, _: &LinkStats) {
        let _ = self.tx.send(Dialed::Ended(reason.clone()));
    }
}

/// The next report of a dialled call.
fn next_dialed(rx: &crossbeam_channel::Receiver<Dialed>) -> Dialed {
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
) -> crossbeam_channel::Receiver<Dialed> {
    let (tx, rx) = crossbeam_channel::unbounded();
    client
        .connect(
            &client_config(server, fp),
            join_for(session),
            Box::new(TestDialer { frames, tx }),
        )
        .unwrap();
    rx
}

/// Expects `Accepted`, then the echoes of `frames` frames in order.
fn expect_echoes(rx: &crossbeam_channel::Receiver<Dialed>, frames: u16) -> Accept {
    let accept = match next_dialed(rx) {
        Dialed::Accepted(a) => a,
        other => panic!("{other:?}"),
    };
    for seq in 0..frames {
        match next_dialed(rx) {
            Dialed::Echo(s) => assert_eq!(s, seq),
            other => panic!("echo {seq}: {other:?}"),
        }
    }
    accept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactor_client_dials_the_reactor_and_is_rejected_when_unknown() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let client = ReactorClient::bind(LOOPBACK.parse().unwrap(), &settings()).unwrap();
    let rx = dial(&client, r.server.local_addr(), r.fp, session, 50);
    let accept = expect_echoes(&rx, 50);
    assert_eq!(accept, r.started(session).accept);
    // An unknown session: the dialer hears the registry's reject.
    let rx2 = dial(&client, r.server.local_addr(), r.fp, Uuid::new_v4(), 1);
    match next_dialed(&rx2) {
        Dialed::Failed(ConnectError::Rejected(rej)) => {
            assert_eq!(rej.code, RejectCode::UnknownSession);
        }
        other => panic!("{other:?}"),
    }
    // A client shutdown ends its call; the server side sees it leave.
    client.shutdown();
    match next_dialed(&rx) {
        Dialed::Ended(reason) => assert_eq!(reason, CloseReason::ServerShutdown),
        other => panic!("{other:?}"),
    }
    let ended = r.ended(session, WITHIN).await;
    assert!(
        matches!(
            ended.reason,
            CloseReason::ServerShutdown | CloseReason::PeerClosed { .. }
        ),
        "{:?}",
        ended.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactor_client_dials_the_quinn_media_server() {
    let session = Uuid::new_v4();
    let registry = Arc::new(KnownSessions::new());
    registry.expect(session);
    let (server, fp) = start_server(registry, settings());
    let client = ReactorClient::bind(LOOPBACK.parse().unwrap(), &settings()).unwrap();
    let rx = dial(&client, server.local_addr(), fp, session, 20);
    // The quinn side echoes on its source stream.
    let mut conn = server.accept().await.unwrap();
    let source = conn
        .accept()
        .streams
        .iter()
        .find(|s| s.direction == StreamDirection::Source)
        .unwrap()
        .stream_id;
    let echo = tokio::spawn(async move {
        while let Some(d) = conn.recv_datagram().await {
            let h = DatagramHeader {
                stream_id: source,
                ..d.header
            };
            let _ = conn.send_datagram(&h, &d.payload);
        }
    });
    tokio::task::spawn_blocking(move || {
        expect_echoes(&rx, 20);
        client.shutdown();
    })
    .await
    .unwrap();
    tokio::time::timeout(WITHIN, echo).await.unwrap().unwrap();
}

/// Raw UDP noise on the reactor's port (not QUIC at all: random bytes of every size,
/// short headers that look like QUIC, long headers with unknown versions) is dropped
/// by the endpoint; a call in progress keeps echoing and nothing panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_noise_on_the_port_leaves_calls_alone() {
    let session = Uuid::new_v4();
    let r = Reactor::start(settings(), &[session]);
    let mut link = r.connect(join_for(session)).await.unwrap();
    let target = r.server.local_addr();
    let noise = std::thread::spawn(move || {
        let sock = std::net::UdpSocket::bind(LOOPBACK).unwrap();
        let mut x: u32 = 0x9e37_79b9;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for i in 0..3000u32 {
            let len = (next() % 1500) as usize + 1;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            match i % 3 {
                0 => buf[0] = 0x40 | (buf[0] & 0x3f), // short header, random CID
                1 => {
                    buf[0] = 0xc0 | (buf[0] & 0x3f); // long header, odd version
                    if len >= 5 {
                        buf[1..5].copy_from_slice(&next().to_be_bytes());
                    }
                }
                _ => {}
            }
            let _ = sock.send_to(&buf, target);
        }
    });
    prove_echo(&mut link, 0, 50).await;
    noise.join().unwrap();
    prove_echo(&mut link, 50, 10).await;
    assert_eq!(r.server.stats().accepted, 1);
    assert!(link.close_reason().is_none());
}
