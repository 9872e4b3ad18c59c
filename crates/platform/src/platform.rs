//! [`MediaPlatform`]: the media server's reactor threads, the session table and the
//! health task.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use media_blob::{MediaSessionConfig, MpUri};
use media_core::call::{AudioEvent, AudioSender, AudioStreams, CallConfig};
use media_core::codec::Codec;
use media_core::link::{CallHandler, CloseReason};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use transport::quic::ServerStats;
use transport::reactor::{CallApp, NewCall, ReactorIoStats, ReactorServer, StartError};
use transport::wire::{Join, Reject, RejectCode};
use transport::{Admission, CertFingerprint, ServerConfig, ServerIdentity, mismatch_reject};
use uuid::Uuid;

use crate::call::{CallContext, Delivery, PendingCall, PlatformCall};
use crate::error::PlatformError;
use crate::health::{Health, HealthMonitor, HealthReport, LoadMeter, TickTotals};
use crate::linked::LinkedCall;
use crate::settings::{Certificate, MediaPlatformSettings};
use crate::socket::{AudioSocket, CallShared, CallState, FrameDelivery};

enum Slot {
    /// Blob handed out, no join yet; a join must match the blob.
    Waiting(Box<PendingCall>, Box<MediaSessionConfig>),
    /// Join admitted; its call is being started.
    Admitted(Box<PendingCall>),
    /// The call runs.
    Joined,
}

/// The platform's session registry: admits only registered, not-yet-joined sessions,
/// and only joins carrying the `callId` and audio contexts of the session's blob.
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
    /// An empty table admitting joins that offer one of `codecs`, holding at most
    /// `max_sessions`.
    pub(crate) fn new(codecs: Vec<Codec>, max_sessions: usize) -> Self {
        SessionTable {
            slots: Mutex::new(HashMap::new()),
            codecs,
            max_sessions,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn connected(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| !matches!(s, Slot::Waiting(..)))
            .count()
    }

    fn insert_waiting(
        &self,
        id: Uuid,
        pending: PendingCall,
        blob: MediaSessionConfig,
    ) -> Result<(), PlatformError> {
        let mut slots = self.lock();
        if slots.len() >= self.max_sessions {
            return Err(PlatformError::AtCapacity {
                max: self.max_sessions,
            });
        }
        slots.insert(id, Slot::Waiting(Box::new(pending), Box::new(blob)));
        Ok(())
    }

    /// Registers a session whose call runs on a link of another driver (no join).
    fn insert_running(&self, id: Uuid) -> Result<(), PlatformError> {
        let mut slots = self.lock();
        if slots.len() >= self.max_sessions {
            return Err(PlatformError::AtCapacity {
                max: self.max_sessions,
            });
        }
        slots.insert(id, Slot::Joined);
        Ok(())
    }

    /// Removes a session that no peer has joined (the bot dropped its socket).
    pub(crate) fn forget_waiting(&self, id: &Uuid) {
        let mut slots = self.lock();
        if matches!(slots.get(id), Some(Slot::Waiting(..))) {
            slots.remove(id);
        }
    }

    pub(crate) fn take_admitted(&self, id: &Uuid) -> Option<Box<PendingCall>> {
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

impl SessionTable {
    /// Admits a join of a registered, not yet joined session whose `callId` and
    /// contexts match the session's blob.
    fn admit(&self, join: &Join) -> Result<Admission, Reject> {
        let codec = join.choose_codec(&self.codecs)?;
        let id = join.mp_media_session_id;
        let mut slots = self.lock();
        match slots.remove(&id) {
            Some(Slot::Waiting(p, blob)) if !p.shared.hang_up_requested() => {
                if let Some(reject) = mismatch_reject(&blob, join) {
                    slots.insert(id, Slot::Waiting(p, blob));
                    return Err(reject);
                }
                let streams = p.streams;
                slots.insert(id, Slot::Admitted(p));
                Ok(Admission::with_codec(codec).with_streams(streams))
            }
            Some(Slot::Waiting(..)) | None => Err(Reject::new(
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

    /// An admitted join ended: frees its session (a call that ran freed it already).
    fn release(&self, join: &Join, reason: &CloseReason) {
        let removed = self.lock().remove(&join.mp_media_session_id);
        if let Some(Slot::Admitted(p)) = removed {
            // The connection died before its call started: tell the bot here.
            let ev = if reason.is_failure() {
                AudioEvent::MediaStreamFailure {
                    reason: reason.clone(),
                }
            } else {
                AudioEvent::Ended {
                    reason: reason.clone(),
                }
            };
            p.shared.set_state(CallState::Ended);
            let _ = p.events.send(ev);
        }
    }
}

/// The platform as each reactor thread's application: admission through the session
/// table, each admitted call's media as a [`PlatformCall`].
struct PlatformApp {
    table: Arc<SessionTable>,
    ctx: Arc<CallContext>,
}

impl CallApp for PlatformApp {
    fn admit(&mut self, join: &Join) -> Result<Admission, Reject> {
        self.table.admit(join)
    }

    fn start(&mut self, call: NewCall<'_>) -> Result<Box<dyn CallHandler>, StartError> {
        let id = call.join.mp_media_session_id;
        let Some(mut pending) = self.table.take_admitted(&id) else {
            self.table.remove(&id);
            return Err(StartError::Withdrawn);
        };
        // What the accept granted: at most what the bot asked for and the peer offered.
        pending.streams = AudioStreams {
            mixed: call.accept.mixed,
            unmixed: call.accept.unmixed,
        };
        let handler = PlatformCall::start(
            call.now,
            call.accept.codec,
            *pending,
            Box::new(move || call.waker.wake()),
            &self.ctx,
        )?;
        Ok(Box::new(handler))
    }

    fn release(&mut self, join: &Join, reason: &CloseReason) {
        self.table.release(join, reason);
    }
}

/// The media platform: one media server (reactor threads on one UDP port), any number
/// of calls (Microsoft's `MediaPlatform`). See the crate documentation for an example.
pub struct MediaPlatform {
    table: Arc<SessionTable>,
    server: Arc<ReactorServer>,
    load: Arc<LoadMeter>,
    health_rx: watch::Receiver<HealthReport>,
    fingerprint: CertFingerprint,
    mp_uri: MpUri,
    ctx: Arc<CallContext>,
    health_task: JoinHandle<()>,
}

impl std::fmt::Debug for MediaPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPlatform")
            .field("mp_uri", &self.mp_uri.to_string())
            .field("local_addr", &self.server.local_addr())
            .field("sessions", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl MediaPlatform {
    /// Binds the media server (its reactor threads) and starts the health task. Must
    /// be called inside a tokio runtime.
    pub fn start(settings: MediaPlatformSettings) -> Result<MediaPlatform, PlatformError> {
        tokio::runtime::Handle::try_current().map_err(|_| PlatformError::NoRuntime)?;
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
        let table = Arc::new(SessionTable::new(
            settings.codecs.clone(),
            settings.limits.max_sessions,
        ));
        let mut cfg = ServerConfig::new(settings.bind, identity);
        cfg.settings = settings.transport.clone();
        let load = Arc::new(LoadMeter::default());
        let ctx = Arc::new(CallContext {
            config: CallConfig {
                opus: settings.opus,
                receive: settings.receive,
                pacer: settings.pacer,
                ..CallConfig::new(settings.codecs[0])
            },
            load: load.clone(),
            table: table.clone(),
        });
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
        .map_err(|source| PlatformError::Transport {
            addr: settings.bind,
            source,
        })?;
        let server = Arc::new(server);
        let port = settings.public_port.unwrap_or(server.local_addr().port());
        let mp_uri = MpUri::quic(&settings.public_host, port)?;
        let (health_tx, health_rx) = watch::channel(HealthReport::default());
        let busy = {
            let server = Arc::downgrade(&server);
            move || {
                server
                    .upgrade()
                    .map(|s| s.io_stats().busy)
                    .unwrap_or_default()
            }
        };
        let health_task = tokio::spawn(health_loop(
            load.clone(),
            HealthMonitor::new(settings.health),
            settings.health.window,
            threads,
            busy,
            health_tx,
        ));
        tracing::info!(%mp_uri, %fingerprint, threads, "media platform started");
        Ok(MediaPlatform {
            table,
            server,
            load,
            health_rx,
            fingerprint,
            mp_uri,
            ctx,
            health_task,
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
        self.create_media_configuration_for(call_id, delivery, AudioStreams::MIXED)
    }

    /// Like [`create_media_configuration_with`](Self::create_media_configuration_with),
    /// asking for the received audio `streams`: the mix, up to four speakers' own
    /// streams besides it, or those only (Microsoft's `ReceiveUnmixedMeetingAudio`).
    /// Each frame then carries [`AudioFrame::unmixed`](crate::AudioFrame::unmixed), one
    /// buffer per speaker tagged with its MSI (map it with the call's roster).
    ///
    /// The request lives in the session, not in the blob (Microsoft's blob has no such
    /// field; the blob is the same whatever is asked): the far end offers the unmixed
    /// streams it can send in its join and the accept grants at most both
    /// (docs/wire-format.md, "Unmixed audio"). A far end that sends none leaves the
    /// buffers empty, and sends the mix even when only unmixed audio was asked for.
    pub fn create_media_configuration_for(
        &self,
        call_id: Uuid,
        delivery: FrameDelivery,
        streams: AudioStreams,
    ) -> Result<(MediaSessionConfig, AudioSocket), PlatformError> {
        if self.health() == Health::Overloaded {
            return Err(PlatformError::Overloaded);
        }
        let config = MediaSessionConfig::builder(self.mp_uri.clone(), call_id).build();
        let session_id = config.session_id();
        let (mut pending, socket) = self.new_session(session_id, call_id, delivery);
        pending.streams = streams;
        self.table
            .insert_waiting(session_id, pending, config.clone())?;
        Ok((config, socket))
    }

    /// Starts a call whose link another driver runs: a platform's media WebSocket
    /// (ACS, Twilio, Vonage; the `ws-link` crate), a WebRTC peer (`webrtc-link`), or
    /// any link that implements [`media_core::link::MediaLink`]. No blob and no join:
    /// the stream arriving *is* the call, carrying what `call` says (its codec and
    /// received streams, [`LinkedCall`]). Returns the bot's [`AudioSocket`] (connected
    /// at once) and the call's [`CallHandler`], a `PlatformCall` like every QUIC
    /// call's, for the driver to run from `now` on. `waker` must make the driver call
    /// [`CallHandler::handle_wake`] soon (the bot queued a command or hung up). Fails
    /// while the platform is `Overloaded` or at its session limit.
    pub fn start_linked_call(
        &self,
        call_id: Uuid,
        call: LinkedCall,
        delivery: FrameDelivery,
        now: Instant,
        waker: Box<dyn Fn() + Send + Sync>,
    ) -> Result<(AudioSocket, Box<dyn CallHandler>), PlatformError> {
        if self.health() == Health::Overloaded {
            return Err(PlatformError::Overloaded);
        }
        let session_id = Uuid::new_v4();
        let (mut pending, socket) = self.new_session(session_id, call_id, delivery);
        pending.streams = call.streams;
        self.table.insert_running(session_id)?;
        let call = PlatformCall::start(now, call.codec, pending, waker, &self.ctx)
            .map_err(|e| PlatformError::CallStart(e.to_string()))?;
        Ok((socket, Box::new(call)))
    }

    /// The bot's and the call's ends of a new session.
    fn new_session(
        &self,
        session_id: Uuid,
        call_id: Uuid,
        delivery: FrameDelivery,
    ) -> (PendingCall, AudioSocket) {
        let shared = Arc::new(CallShared::new(session_id, call_id));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (sender, queue) = AudioSender::new(self.ctx.config.pacer.queue_frames);
        let (commands_tx, commands_rx) = crossbeam_channel::bounded(64);
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
            sender: sender.clone(),
            queue,
            commands: commands_rx,
            streams: AudioStreams::MIXED,
        };
        let socket = AudioSocket {
            shared,
            frames,
            events: events_rx,
            sender,
            commands: commands_tx,
            table: self.table.clone(),
        };
        (pending, socket)
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
        self.server.local_addr()
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

    /// The media server's counters (all reactor threads).
    pub fn server_stats(&self) -> ServerStats {
        self.server.stats()
    }

    /// The reactor threads' loop counters (batching, busy time, stalls).
    pub fn reactor_io_stats(&self) -> ReactorIoStats {
        self.server.io_stats()
    }

    /// Kernel ids of the reactor threads, for CPU accounting.
    pub fn reactor_thread_ids(&self) -> Vec<u32> {
        self.server.thread_ids()
    }

    /// Adds `busy` to the current load window as if call ticks had spent it. For drills
    /// and tests of overload handling (the health task evaluates it like real load).
    pub fn inject_load(&self, busy: Duration) {
        self.load.add_busy(busy);
    }

    /// Closes every call (peers see `ServerShutdown`) and stops the platform.
    pub async fn shutdown(self) {
        let server = self.server.clone();
        let _ = tokio::task::spawn_blocking(move || server.shutdown()).await;
    }
}

impl Drop for MediaPlatform {
    fn drop(&mut self) {
        self.health_task.abort();
    }
}

async fn health_loop(
    load: Arc<LoadMeter>,
    mut monitor: HealthMonitor,
    window: Duration,
    threads: usize,
    reactor_busy: impl Fn() -> Duration + Send + 'static,
    tx: watch::Sender<HealthReport>,
) {
    let mut interval = tokio::time::interval(window);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut last = Instant::now();
    let mut busy_last = reactor_busy();
    loop {
        interval.tick().await;
        let now = Instant::now();
        let (_tick_busy, ticks, late) = load.take_window();
        // The threads' own busy time covers the ticks and everything around them.
        let total = reactor_busy();
        let busy = total.saturating_sub(busy_last) + load.take_injected();
        busy_last = total;
        let report = monitor.evaluate(busy, now - last, threads, ticks, late);
        last = now;
        let changed = tx.borrow().health != report.health;
        if changed {
            tracing::info!(health = ?report.health, load = report.load, late_pct = report.late_tick_pct, "platform health changed");
        }
        tx.send_replace(report);
    }
}
