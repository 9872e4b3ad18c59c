//! The media processor under test: a [`ReactorServer`] whose [`TestApp`] admits through
//! a [`KnownSessions`] and starts one [`EchoCall`] per join.
//!
//! An `EchoCall` runs on a 20 ms [`TickGrid`]. At each tick it echoes the packets it
//! received since the last one (the link sends them on the call's source stream,
//! payload, sequence and flags unchanged) and the control messages, sends what the
//! test asked through the call's [`Bot`], publishes `link.stats()`, and hangs up if
//! asked. It reports `LinkEvent::Closed` on a channel. An idle call
//! ([`Reactor::idle_calls`]) has no ticks: only a wake through its [`CallWaker`] makes
//! it serve its bot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use media_core::control::Control;
use media_core::link::{CallHandler, CloseReason, LinkError, LinkEvent, LinkStats, MediaLink};
use media_core::packet::AudioPacket;
use media_core::tick::TickGrid;
use transport::quic::ServerStats;
use transport::reactor::{CallApp, CallWaker, NewCall, ReactorServer, StartError};
use transport::wire::{Accept, Join, Reject};
use transport::{
    Admission, CertFingerprint, ClientConfig, KnownSessions, ServerConfig, ServerIdentity,
    SessionRegistry, TransportSettings,
};
use uuid::Uuid;

use super::peer::{PeerError, QuicPeer, raw_connect};
use super::{LOOPBACK, WITHIN, eventually, peer_config};

/// What `EchoCall` says when the test makes it hang up without a reason of its own.
pub const HANG_UP: &str = "bot hung up";

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One call's `LinkEvent::Closed`, as reported to the test.
#[derive(Debug)]
pub struct Ended {
    pub session: Uuid,
    pub reason: CloseReason,
    /// The link's final counters (`link.stats()` at `Closed`).
    pub stats: LinkStats,
}

/// What the test, playing the bot, asks of a running call; done at its next tick.
#[derive(Debug, Default)]
pub struct Bot {
    controls: Mutex<Vec<Control>>,
    packets: Mutex<Vec<AudioPacket>>,
    hang_up: Mutex<Option<String>>,
}

impl Bot {
    pub fn send_control(&self, control: Control) {
        lock(&self.controls).push(control);
    }

    pub fn send_packet(&self, packet: AudioPacket) {
        lock(&self.packets).push(packet);
    }

    /// Hang up (`link.close(reason)`) after sending what is queued.
    pub fn hang_up(&self, reason: &str) {
        *lock(&self.hang_up) = Some(reason.into());
    }
}

/// A started call, as the test sees it.
#[derive(Clone, Debug)]
pub struct Started {
    pub accept: Accept,
    pub remote: SocketAddr,
    /// The name of the thread `CallApp::start` ran on.
    pub thread: Option<String>,
    pub bot: Arc<Bot>,
    /// Wakes the call (`CallHandler::handle_wake`: it serves its bot at once).
    pub waker: CallWaker,
}

/// What the calls tell the test (shared with the reactor threads).
struct Probe {
    started: Mutex<HashMap<Uuid, Started>>,
    controls: Mutex<Vec<(Uuid, Control)>>,
    /// Each call's link stats and packet count, published at every tick.
    live: Mutex<HashMap<Uuid, (LinkStats, u64)>>,
    /// What `send_packet` / `send_control` refused.
    send_errors: Mutex<Vec<(Uuid, LinkError)>>,
    ended_tx: crossbeam_channel::Sender<Ended>,
    ended_sessions: Mutex<Vec<Uuid>>,
    /// `CallApp::release` calls: session, reason, and whether `Closed` came before.
    released: Mutex<Vec<(Uuid, CloseReason, bool)>>,
    /// Calls started from now on have no ticks.
    idle: AtomicBool,
}

struct TestApp {
    sessions: Arc<KnownSessions>,
    probe: Arc<Probe>,
    /// Packets every call sends at its first tick (right after `Accept`).
    greeting: Vec<AudioPacket>,
}

impl CallApp for TestApp {
    fn admit(&mut self, join: &Join) -> Result<Admission, Reject> {
        self.sessions.admit(join)
    }

    fn start(&mut self, call: NewCall<'_>) -> Result<Box<dyn CallHandler>, StartError> {
        let session = call.join.mp_media_session_id;
        let bot = Arc::new(Bot::default());
        lock(&bot.packets).extend(self.greeting.iter().cloned());
        lock(&self.probe.started).insert(
            session,
            Started {
                accept: call.accept.clone(),
                remote: call.remote,
                thread: std::thread::current().name().map(str::to_owned),
                bot: bot.clone(),
                waker: call.waker.clone(),
            },
        );
        Ok(Box::new(EchoCall {
            session,
            grid: TickGrid::new(call.now),
            pending: Vec::new(),
            pending_control: Vec::new(),
            got: 0,
            bot,
            idle: self.probe.idle.load(Ordering::Relaxed),
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

/// Echoes packets and control messages at its next tick; see the module docs.
struct EchoCall {
    session: Uuid,
    grid: TickGrid,
    pending: Vec<AudioPacket>,
    pending_control: Vec<Control>,
    got: u64,
    bot: Arc<Bot>,
    /// No ticks (`poll_timeout` is `None`).
    idle: bool,
    probe: Arc<Probe>,
}

impl EchoCall {
    fn refused(&self, r: Result<(), LinkError>) {
        if let Err(e) = r {
            lock(&self.probe.send_errors).push((self.session, e));
        }
    }
}

impl CallHandler for EchoCall {
    fn handle_event(&mut self, _now: Instant, event: LinkEvent<'_>, link: &mut dyn MediaLink) {
        match event {
            LinkEvent::Packet(p) => {
                self.got += 1;
                self.pending.push(p.clone());
            }
            LinkEvent::Control(c) => {
                lock(&self.probe.controls).push((self.session, c));
                self.pending_control.push(c);
            }
            LinkEvent::Closed(reason) => {
                lock(&self.probe.ended_sessions).push(self.session);
                let _ = self.probe.ended_tx.send(Ended {
                    session: self.session,
                    reason: reason.clone(),
                    stats: link.stats(),
                });
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant, link: &mut dyn MediaLink) {
        while self.grid.poll(now).is_some() {}
        for p in std::mem::take(&mut self.pending) {
            let r = link.send_packet(&p);
            self.refused(r);
        }
        for c in std::mem::take(&mut self.pending_control) {
            let r = link.send_control(&c);
            self.refused(r);
        }
        self.serve_bot(link);
    }

    fn handle_wake(&mut self, _now: Instant, link: &mut dyn MediaLink) {
        self.serve_bot(link);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.idle).then(|| self.grid.next_deadline())
    }
}

impl EchoCall {
    /// Sends what the bot queued, publishes the link's stats, hangs up if asked.
    fn serve_bot(&mut self, link: &mut dyn MediaLink) {
        let packets = std::mem::take(&mut *lock(&self.bot.packets));
        for p in packets {
            let r = link.send_packet(&p);
            self.refused(r);
        }
        let controls = std::mem::take(&mut *lock(&self.bot.controls));
        for c in controls {
            let r = link.send_control(&c);
            self.refused(r);
        }
        lock(&self.probe.live).insert(self.session, (link.stats(), self.got));
        let hang_up = lock(&self.bot.hang_up).take();
        if let Some(reason) = hang_up {
            link.close(&reason);
        }
    }
}

/// A reactor with a [`TestApp`] on 127.0.0.1, and what its calls report.
pub struct Reactor {
    pub server: ReactorServer,
    pub fp: CertFingerprint,
    pub sessions: Arc<KnownSessions>,
    probe: Arc<Probe>,
    ended_rx: crossbeam_channel::Receiver<Ended>,
    /// `Closed` reports received but not yet claimed.
    unclaimed: Mutex<Vec<Ended>>,
}

impl Reactor {
    /// One reactor thread expecting `sessions`.
    pub fn start(settings: TransportSettings, sessions: &[Uuid]) -> Reactor {
        Self::start_threads(settings, sessions, 1)
    }

    /// `threads` reactor threads on one port expecting `sessions`.
    pub fn start_threads(
        settings: TransportSettings,
        sessions: &[Uuid],
        threads: usize,
    ) -> Reactor {
        let registry = Arc::new(KnownSessions::new());
        for s in sessions {
            registry.expect(*s);
        }
        Self::start_with(settings, registry, threads, Vec::new())
    }

    /// The general form: admission by `registry`, `greeting` sent by every call at its
    /// first tick.
    pub fn start_with(
        settings: TransportSettings,
        registry: Arc<KnownSessions>,
        threads: usize,
        greeting: Vec<AudioPacket>,
    ) -> Reactor {
        let identity = ServerIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
        let fp = identity.fingerprint();
        let mut cfg = ServerConfig::new(LOOPBACK.parse().unwrap(), identity);
        cfg.settings = settings;
        Self::bind(cfg, registry, threads, greeting, fp)
    }

    /// A reactor on `cfg` (its identity's fingerprint is `fp`).
    pub fn bind(
        cfg: ServerConfig,
        registry: Arc<KnownSessions>,
        threads: usize,
        greeting: Vec<AudioPacket>,
        fp: CertFingerprint,
    ) -> Reactor {
        let (ended_tx, ended_rx) = crossbeam_channel::unbounded();
        let probe = Arc::new(Probe {
            started: Mutex::default(),
            controls: Mutex::default(),
            live: Mutex::default(),
            send_errors: Mutex::default(),
            ended_tx,
            ended_sessions: Mutex::default(),
            released: Mutex::default(),
            idle: AtomicBool::new(false),
        });
        let server = ReactorServer::bind_threads(cfg, threads, || {
            Box::new(TestApp {
                sessions: registry.clone(),
                probe: probe.clone(),
                greeting: greeting.clone(),
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

    /// Calls started from now on have no ticks: they serve their bot only when woken.
    pub fn idle_calls(&self) {
        self.probe.idle.store(true, Ordering::Relaxed);
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// A peer configuration pinning this server's certificate.
    pub fn peer_config(&self) -> ClientConfig {
        peer_config(self.addr(), self.fp)
    }

    pub async fn connect(&self, join: Join) -> Result<QuicPeer, PeerError> {
        QuicPeer::connect(&self.peer_config(), join).await
    }

    /// A peer admitted with `join`, or a panic.
    pub async fn join(&self, join: Join) -> QuicPeer {
        match self.connect(join).await {
            Ok(p) => p,
            Err(e) => panic!("join failed: {e}"),
        }
    }

    pub async fn raw(&self) -> (quinn::Endpoint, quinn::Connection) {
        raw_connect(self.addr(), self.fp).await
    }

    /// The server's counters once `settled` holds for them (they are published at
    /// the end of a reactor turn, after what the turn sent reached the peers); a
    /// panic after [`WITHIN`].
    pub async fn stats_when(&self, settled: impl Fn(&ServerStats) -> bool) -> ServerStats {
        let ok = eventually(WITHIN, || settled(&self.server.stats())).await;
        let s = self.server.stats();
        assert!(ok, "server stats never settled: {s:?}");
        s
    }

    /// The started call of `session` (it starts before `Accept` reaches the peer).
    pub fn started(&self, session: Uuid) -> Started {
        lock(&self.probe.started)
            .get(&session)
            .cloned()
            .unwrap_or_else(|| panic!("no call started for {session}"))
    }

    pub fn started_count(&self) -> usize {
        lock(&self.probe.started).len()
    }

    /// The stats and packet count `session`'s call published at its last tick.
    pub fn live(&self, session: Uuid) -> (LinkStats, u64) {
        lock(&self.probe.live)
            .get(&session)
            .copied()
            .unwrap_or_default()
    }

    /// The control messages `session`'s call received, in order.
    pub fn controls_of(&self, session: Uuid) -> Vec<Control> {
        lock(&self.probe.controls)
            .iter()
            .filter(|(s, _)| *s == session)
            .map(|(_, m)| *m)
            .collect()
    }

    /// What `session`'s link refused to send.
    pub fn send_errors_of(&self, session: Uuid) -> Vec<LinkError> {
        lock(&self.probe.send_errors)
            .iter()
            .filter(|(s, _)| *s == session)
            .map(|(_, e)| *e)
            .collect()
    }

    fn collect_ended(&self) -> MutexGuard<'_, Vec<Ended>> {
        let mut unclaimed = lock(&self.unclaimed);
        unclaimed.extend(self.ended_rx.try_iter());
        unclaimed
    }

    /// True if `session`'s `Closed` report arrived and was not yet claimed.
    pub fn has_ended(&self, session: Uuid) -> bool {
        self.collect_ended().iter().any(|e| e.session == session)
    }

    /// Waits (up to `within`) for `session`'s `Closed` report and claims it.
    pub async fn ended(&self, session: Uuid, within: Duration) -> Ended {
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
                "no `Closed` for {session} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Checks that `release` ran for `session` once, after `Closed`, with `reason`,
    /// and that the session is free again.
    pub async fn assert_released(&self, session: Uuid, reason: &CloseReason) {
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
        assert!(released[0].2, "release runs after Closed");
    }
}
