//! [`MediaPlatform`]: the QUIC media server, the session table and the health task.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use media_blob::{MediaSessionConfig, MpUri};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use transport::reactor::{CallApp, NewCall, ReactorCall, ReactorServer};
use transport::wire::{Codec, Join, Reject, RejectCode};
use transport::{
    Admission, CertFingerprint, CloseReason, MediaServer, ServerConfig, ServerIdentity,
    ServerStats, SessionRegistry,
};
use uuid::Uuid;

use crate::call::{CallContext, Delivery, PendingCall, ReactorCallTask, new_call, run_call};
use crate::error::PlatformError;
use crate::health::{Health, HealthMonitor, HealthReport, LoadMeter, TickTotals};
use crate::pacer::AudioSender;
use crate::settings::{Certificate, Engine, MediaPlatformSettings};
use crate::socket::{AudioEvent, AudioSocket, CallShared, FrameDelivery};

enum Slot {
    /// Blob handed out, no join yet.
    Waiting(Box<PendingCall>),
    /// Join admitted; the connection is on its way to the accept loop.
    Admitted(Box<PendingCall>),
    /// The call task runs.
    Joined,
}

/// The platform's session registry: admits only registered, not-yet-joined sessions.
pub(crate) struct SessionTable {
    slots: Mutex<HashMap<Uuid, Slot>>,
    codecs: Vec<Codec>,
    max_sessions: usize,
}

impl std::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTable")
            .field("sessions", &self.len())
            .finish_non_exhaustive()
    }
}

impl SessionTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn connected(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| !matches!(s, Slot::Waiting(_)))
            .count()
    }

    fn insert_waiting(&self, id: Uuid, pending: PendingCall) -> Result<(), PlatformError> {
        let mut slots = self.lock();
        if slots.len() >= self.max_sessions {
            return Err(PlatformError::AtCapacity {
                max: self.max_sessions,
            });
        }
        slots.insert(id, Slot::Waiting(Box::new(pending)));
        Ok(())
    }

    /// Removes a session that no peer has joined (the bot dropped its socket).
    pub(crate) fn forget_waiting(&self, id: &Uuid) {
        let mut slots = self.lock();
        if matches!(slots.get(id), Some(Slot::Waiting(_))) {
            slots.remove(id);
        }
    }

    fn take_admitted(&self, id: &Uuid) -> Option<Box<PendingCall>> {
        let mut slots = self.lock();
        match slots.remove(id) {
            Some(Slot::Admitted(p)) => {
                slots.insert(*id, Slot::Joined);
                Some(p)
            }
            Some(other) => {
                slots.insert(*id, other);
                None
            }
            None => None,
        }
    }

    pub(crate) fn remove(&self, id: &Uuid) {
        self.lock().remove(id);
    }
}

impl SessionRegistry for SessionTable {
    fn admit(&self, join: &Join) -> Result<Admission, Reject> {
        let codec = join.choose_codec(&self.codecs)?;
        let id = join.mp_media_session_id;
        let mut slots = self.lock();
        match slots.remove(&id) {
            Some(Slot::Waiting(p))
                if !p.shared.hangup.load(std::sync::atomic::Ordering::Acquire) =>
            {
                slots.insert(id, Slot::Admitted(p));
                Ok(Admission::with_codec(codec))
            }
            Some(Slot::Waiting(_)) | None => Err(Reject::new(
                RejectCode::UnknownSession,
                format!(
                    "no media session {id} is expected here (create its media configuration first)"
                ),
            )),
            Some(other) => {
                slots.insert(id, other);
                Err(Reject::new(
                    RejectCode::AlreadyJoined,
                    format!("media session {id} is already joined"),
                ))
            }
        }
    }

    fn release(&self, join: &Join, reason: &CloseReason) {
        let removed = self.lock().remove(&join.mp_media_session_id);
        if let Some(Slot::Admitted(p)) = removed {
            // The connection died before its call task started: tell the bot here.
            let ev = if reason.is_failure() {
                AudioEvent::MediaStreamFailure {
                    reason: reason.clone(),
                }
            } else {
                AudioEvent::Ended {
                    reason: reason.clone(),
                }
            };
            p.shared.set_state(crate::socket::CallState::Ended);
            let _ = p.events.send(ev);
        }
    }
}

/// The reactor engine's view of the platform: admission through the session table,
/// each admitted call's media state as a [`ReactorCallTask`].
struct PlatformApp {
    table: Arc<SessionTable>,
    ctx: Arc<CallContext>,
}

impl CallApp for PlatformApp {
    fn admit(&mut self, join: &Join) -> Result<Admission, Reject> {
        self.table.admit(join)
    }

    fn start(&mut self, call: NewCall<'_>) -> Result<Box<dyn ReactorCall>, String> {
        let id = call.join.mp_media_session_id;
        let Some(pending) = self.table.take_admitted(&id) else {
            self.table.remove(&id);
            return Err("media session no longer exists".into());
        };
        let task = new_call(call.accept, *pending, &self.ctx)?;
        Ok(Box::new(ReactorCallTask::new(
            task,
            call.handle,
            self.ctx.clone(),
        )))
    }

    fn release(&mut self, join: &Join, reason: &CloseReason) {
        self.table.release(join, reason);
    }
}

/// The QUIC media server of either engine.
#[derive(Debug)]
enum Server {
    Tasks(Arc<MediaServer>),
    Reactor(Arc<ReactorServer>),
}

/// The media platform: one QUIC media server, any number of calls (Microsoft's
/// `MediaPlatform`). See the crate documentation for an example.
pub struct MediaPlatform {
    table: Arc<SessionTable>,
    server: Server,
    load: Arc<LoadMeter>,
    health_rx: watch::Receiver<HealthReport>,
    fingerprint: CertFingerprint,
    mp_uri: MpUri,
    local_addr: SocketAddr,
    ctx: Arc<CallContext>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for MediaPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPlatform")
            .field("mp_uri", &self.mp_uri.to_string())
            .field("local_addr", &self.local_addr)
            .field("sessions", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl MediaPlatform {
    /// Binds the QUIC media server and starts the accept loop and the health task.
    /// Must be called inside a tokio runtime (multi-thread recommended).
    pub fn start(settings: MediaPlatformSettings) -> Result<MediaPlatform, PlatformError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| PlatformError::NoRuntime)?;
        if settings.codecs.is_empty() {
            return Err(PlatformError::InvalidSettings("codecs: empty".into()));
        }
        if settings.health.window.is_zero() {
            return Err(PlatformError::InvalidSettings("health.window: zero".into()));
        }
        let identity = match &settings.certificate {
            Certificate::Identity(id) => id.clone(),
            Certificate::DevSelfSigned => {
                let mut hosts = vec![settings.public_host.clone()];
                if settings.public_host != "localhost" {
                    hosts.push("localhost".into());
                }
                ServerIdentity::self_signed(&hosts)?
            }
        };
        let fingerprint = identity.fingerprint();
        let table = Arc::new(SessionTable {
            slots: Mutex::new(HashMap::new()),
            codecs: settings.codecs.clone(),
            max_sessions: settings.limits.max_sessions,
        });
        let mut cfg = ServerConfig::new(settings.bind, identity);
        cfg.settings = settings.transport.clone();
        cfg.accept_queue = settings.accept_queue;
        let load = Arc::new(LoadMeter::default());
        let ctx = Arc::new(CallContext {
            receive: settings.receive,
            opus: settings.opus,
            pacer: settings.pacer,
            load: load.clone(),
            table: table.clone(),
        });
        let transport_err = |source| PlatformError::Transport {
            addr: settings.bind,
            source,
        };
        let mut tasks = Vec::new();
        let (server, local_addr, workers) = match settings.engine {
            Engine::Tasks => {
                let server =
                    Arc::new(MediaServer::bind(cfg, table.clone()).map_err(transport_err)?);
                tasks.push(tokio::spawn(accept_loop(
                    server.clone(),
                    table.clone(),
                    ctx.clone(),
                )));
                let addr = server.local_addr();
                (Server::Tasks(server), addr, handle.metrics().num_workers())
            }
            Engine::Reactor => {
                let threads = match settings.reactor_threads {
                    0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    n => n,
                };
                let server = ReactorServer::bind_threads(cfg, threads, || {
                    Box::new(PlatformApp {
                        table: table.clone(),
                        ctx: ctx.clone(),
                    })
                })
                .map_err(transport_err)?;
                let addr = server.local_addr();
                (Server::Reactor(Arc::new(server)), addr, threads)
            }
        };
        let port = settings.public_port.unwrap_or(local_addr.port());
        let mp_uri = MpUri::quic(&settings.public_host, port)?;
        let (health_tx, health_rx) = watch::channel(HealthReport::default());
        // The reactor measures its threads' whole busy time (packets, QUIC, ticks);
        // the task engine only its ticks.
        let engine_busy: Option<EngineBusy> = match &server {
            Server::Reactor(r) => {
                let r = Arc::downgrade(r);
                Some(Box::new(move || {
                    r.upgrade().map(|r| r.io_stats().busy).unwrap_or_default()
                }))
            }
            Server::Tasks(_) => None,
        };
        tasks.push(tokio::spawn(health_loop(
            load.clone(),
            HealthMonitor::new(settings.health),
            settings.health.window,
            workers,
            engine_busy,
            health_tx,
        )));
        tracing::info!(%mp_uri, %fingerprint, "media platform started");
        Ok(MediaPlatform {
            table,
            server,
            load,
            health_rx,
            fingerprint,
            mp_uri,
            local_addr,
            ctx,
            tasks,
        })
    }

    /// Creates a media session for Graph call `call_id`: the blob to put into
    /// `mediaConfig.blob`, and the call's [`AudioSocket`] (frames through
    /// [`AudioSocket::recv_frame`]). Fails while the platform is `Overloaded` or at
    /// its session limit.
    pub fn create_media_configuration(
        &self,
        call_id: Uuid,
    ) -> Result<(MediaSessionConfig, AudioSocket), PlatformError> {
        self.create_media_configuration_with(call_id, FrameDelivery::default())
    }

    /// Like [`create_media_configuration`](Self::create_media_configuration) with a
    /// choice of frame delivery (channel size or callback).
    pub fn create_media_configuration_with(
        &self,
        call_id: Uuid,
        delivery: FrameDelivery,
    ) -> Result<(MediaSessionConfig, AudioSocket), PlatformError> {
        if self.health() == Health::Overloaded {
            return Err(PlatformError::Overloaded);
        }
        let config = MediaSessionConfig::builder(self.mp_uri.clone(), call_id).build();
        let session_id = config.session_id();
        let shared = Arc::new(CallShared::new(session_id, call_id));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let sender = AudioSender::new(self.ctx.pacer.queue_frames);
        let (delivery, frames) = match delivery {
            FrameDelivery::Channel(n) => {
                let (tx, rx) = mpsc::channel(n.max(1));
                (Delivery::Channel(tx), Some(rx))
            }
            FrameDelivery::Callback(f) => (Delivery::Callback(f), None),
        };
        let pending = PendingCall {
            shared: shared.clone(),
            delivery,
            events: events_tx,
            queue: sender.clone(),
        };
        self.table.insert_waiting(session_id, pending)?;
        let socket = AudioSocket {
            shared,
            frames,
            events: events_rx,
            sender,
            table: self.table.clone(),
        };
        Ok((config, socket))
    }

    /// SHA-256 fingerprint of the server certificate, for peers to pin.
    pub fn certificate_fingerprint(&self) -> CertFingerprint {
        self.fingerprint
    }

    /// The `mpUri` every blob of this platform carries.
    pub fn mp_uri(&self) -> &MpUri {
        &self.mp_uri
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Current health.
    pub fn health(&self) -> Health {
        self.health_rx.borrow().health
    }

    /// The last health evaluation.
    pub fn health_report(&self) -> HealthReport {
        *self.health_rx.borrow()
    }

    /// Health changes (and every evaluation): `changed().await` on the receiver.
    pub fn subscribe_health(&self) -> watch::Receiver<HealthReport> {
        self.health_rx.clone()
    }

    /// Sessions held (waiting for a peer or connected).
    pub fn session_count(&self) -> usize {
        self.table.len()
    }

    /// Sessions with a joined peer.
    pub fn connected_count(&self) -> usize {
        self.table.connected()
    }

    /// Cumulative tick counters of all calls.
    pub fn tick_totals(&self) -> TickTotals {
        self.load.totals()
    }

    /// The QUIC server's counters.
    pub fn server_stats(&self) -> ServerStats {
        match &self.server {
            Server::Tasks(s) => s.stats(),
            Server::Reactor(s) => s.stats(),
        }
    }

    /// The engine that runs the calls.
    pub fn engine(&self) -> Engine {
        match &self.server {
            Server::Tasks(_) => Engine::Tasks,
            Server::Reactor(_) => Engine::Reactor,
        }
    }

    /// The reactor threads' loop counters (batching, busy time, stalls); `None` on the
    /// task engine.
    pub fn reactor_io_stats(&self) -> Option<transport::reactor::ReactorIoStats> {
        match &self.server {
            Server::Tasks(_) => None,
            Server::Reactor(s) => Some(s.io_stats()),
        }
    }

    /// Kernel ids of the threads the engine runs calls on besides the caller's tokio
    /// runtime (the reactor thread), for CPU accounting.
    pub fn engine_thread_ids(&self) -> Vec<u32> {
        match &self.server {
            Server::Tasks(_) => Vec::new(),
            Server::Reactor(s) => s.thread_ids(),
        }
    }

    /// Adds `busy` to the current load window as if call ticks had spent it. For drills
    /// and tests of overload handling (the health task evaluates it like real load).
    pub fn inject_load(&self, busy: Duration) {
        self.load.add_busy(busy);
    }

    /// Closes every call (peers see `ServerShutdown`) and stops the platform.
    pub async fn shutdown(self) {
        match &self.server {
            Server::Tasks(s) => s.shutdown().await,
            Server::Reactor(s) => {
                let s = s.clone();
                let _ = tokio::task::spawn_blocking(move || s.shutdown()).await;
            }
        }
    }
}

impl Drop for MediaPlatform {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(server: Arc<MediaServer>, table: Arc<SessionTable>, ctx: Arc<CallContext>) {
    while let Some(conn) = server.accept().await {
        let id = conn.join().mp_media_session_id;
        match table.take_admitted(&id) {
            Some(pending) => {
                tokio::spawn(run_call(conn, *pending, ctx.clone()));
            }
            None => {
                table.remove(&id);
                conn.close("media session no longer exists");
            }
        }
    }
}

/// Cumulative busy time of the engine's threads, where the engine measures it.
type EngineBusy = Box<dyn Fn() -> Duration + Send>;

async fn health_loop(
    load: Arc<LoadMeter>,
    mut monitor: HealthMonitor,
    window: Duration,
    workers: usize,
    engine_busy: Option<EngineBusy>,
    tx: watch::Sender<HealthReport>,
) {
    let mut interval = tokio::time::interval(window);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut last = Instant::now();
    let mut engine_last = engine_busy.as_ref().map(|f| f()).unwrap_or_default();
    loop {
        interval.tick().await;
        let now = Instant::now();
        let (tick_busy, ticks, late) = load.take_window();
        let injected = load.take_injected();
        let busy = match &engine_busy {
            // The threads' own busy time covers the ticks and everything around them.
            Some(f) => {
                let total = f();
                let delta = total.saturating_sub(engine_last);
                engine_last = total;
                delta + injected
            }
            None => tick_busy,
        };
        let report = monitor.evaluate(busy, now - last, workers, ticks, late);
        last = now;
        let changed = tx.borrow().health != report.health;
        if changed {
            tracing::info!(health = ?report.health, load = report.load, late_pct = report.late_tick_pct, "platform health changed");
        }
        tx.send_replace(report);
    }
}
