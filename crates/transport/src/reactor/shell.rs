//! The reactor's shell: one thread per socket, `recvmmsg` / `sendmsg` through
//! `quinn-udp`, `epoll` (mio) until the next deadline or a command.

use std::io::{ErrorKind, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use media_core::link::CallHandler;
use mio::{Events, Interest, Poll, Token};
use quinn_udp::{RecvMeta, UdpSocketState};

use super::calls::Calls;
use super::{CallApp, Dial, Dialer, NewCall, StartError};
use crate::quic::{ConnId, Core, ServerStats, Transmits};
use crate::registry::Admission;
use crate::settings::{
    ClientConfig, ConnectError, ServerConfig, SocketBuffers, TransportError, TransportSettings,
    bind_exclusive, bind_udp, quic_client_config, quic_server_config,
};
use crate::thread::{current_thread_cpu as thread_cpu, current_tid};
use crate::wire::{Join, Reject, RejectCode};

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);
/// Receive slots per `recvmmsg`.
const BATCH: usize = quinn_udp::BATCH_SIZE;
/// Bytes per receive slot (a GRO batch is at most 64 KiB).
const SLOT: usize = 64 * 1024;
/// `recvmmsg` calls per turn before timers and transmits get their turn.
const MAX_RECV_ROUNDS: usize = 8;
/// Longest wait without any deadline (commands also wake the loop).
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How long shutdown waits for connections to drain.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// A turn or a wake-up this much late is a stall (ticks more than 5 ms late are
/// counted late; a stall of 4 ms plus the 1 ms turn interval makes them so).
const STALL: Duration = Duration::from_millis(4);

/// Work for a reactor thread from other threads.
#[derive(Debug)]
enum Command {
    /// Dial a media server.
    Connect(Box<Dial>),
    /// Close everything and stop.
    Shutdown,
}

/// Counters of a reactor's loop: how well it batches, how busy it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReactorIoStats {
    /// Loop turns (each: receive, commands, timers, calls, transmits).
    pub turns: u64,
    /// `recvmmsg` results (UDP payloads or GRO batches) read.
    pub datagrams_in: u64,
    /// UDP sends (each one `sendmsg`; a GSO batch counts once).
    pub transmits_out: u64,
    /// Wall time spent in turns (not waiting): the threads' measured load.
    pub busy: Duration,
    /// Turns that took more than 4 ms of the thread's CPU time (its own work).
    pub long_turns: u64,
    /// Turns that took more than 4 ms of wall time but not of CPU time: the thread was
    /// preempted in the middle of the turn.
    pub preempted_turns: u64,
    /// The longest turn.
    pub max_turn: Duration,
    /// Wake-ups more than 4 ms after the time asked for (the OS's stalls: the thread
    /// was ready but not running).
    pub late_wakeups: u64,
    /// The longest oversleep.
    pub max_oversleep: Duration,
}

impl ReactorIoStats {
    /// The sum (maxima: the larger) of two threads' counters.
    #[must_use]
    pub fn merged(self, o: ReactorIoStats) -> ReactorIoStats {
        ReactorIoStats {
            turns: self.turns + o.turns,
            datagrams_in: self.datagrams_in + o.datagrams_in,
            transmits_out: self.transmits_out + o.transmits_out,
            busy: self.busy + o.busy,
            long_turns: self.long_turns + o.long_turns,
            preempted_turns: self.preempted_turns + o.preempted_turns,
            max_turn: self.max_turn.max(o.max_turn),
            late_wakeups: self.late_wakeups + o.late_wakeups,
            max_oversleep: self.max_oversleep.max(o.max_oversleep),
        }
    }

    /// The loop asked to sleep `asked` and slept `slept`: counts oversleeping.
    fn woke(&mut self, slept: Duration, asked: Duration) {
        let over = slept.saturating_sub(asked);
        if over > STALL {
            self.late_wakeups += 1;
        }
        self.max_oversleep = self.max_oversleep.max(over);
    }
}

/// What a reactor thread publishes for other threads, once per turn.
#[derive(Debug, Clone, Copy, Default)]
struct Published {
    server: ServerStats,
    io: ReactorIoStats,
}

/// Wakes a reactor thread (an `eventfd` registered with its `epoll`).
#[derive(Debug)]
struct Waker(mio::Waker);

/// One reactor thread: its command channel, thread id, published counters, handle.
struct ReactorThread {
    tx: crossbeam_channel::Sender<Command>,
    waker: Arc<Waker>,
    tid: Arc<AtomicU32>,
    published: Arc<Mutex<Published>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReactorThread {
    fn send(&self, cmd: Command) -> Result<(), TransportError> {
        self.tx
            .try_send(cmd)
            .map_err(|e| TransportError::Config(format!("reactor thread: {e}")))?;
        let _ = self.waker.0.wake();
        Ok(())
    }

    fn published(&self) -> Published {
        *lock(&self.published)
    }

    fn tid(&self) -> Option<u32> {
        Some(self.tid.load(Ordering::Acquire)).filter(|&t| t != 0)
    }

    /// Asks the thread to stop and waits for it. Idempotent.
    fn stop(&self) {
        let _ = self.send(Command::Shutdown);
        let thread = lock(&self.thread).take();
        if let Some(h) = thread {
            let _ = h.join();
        }
    }
}

impl Drop for ReactorThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts reactor thread `name` on `socket`.
fn spawn(
    name: String,
    socket: std::net::UdpSocket,
    server_cfg: Option<Arc<quinn_proto::ServerConfig>>,
    settings: &TransportSettings,
    app: Box<dyn CallApp>,
) -> std::io::Result<ReactorThread> {
    let state = UdpSocketState::new((&socket).into())?;
    let mut socket = mio::net::UdpSocket::from_std(socket);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut socket, SOCKET, Interest::READABLE)?;
    let waker = Arc::new(Waker(mio::Waker::new(poll.registry(), WAKE)?));
    let (tx, rx) = crossbeam_channel::bounded(4096);
    // Wake-ups of calls (rare: a bot's command or hang-up); unbounded, as a waker must
    // not fail, and a call has at most one outstanding.
    let (wake_tx, wakes) = crossbeam_channel::unbounded();
    let wake: super::Wake = {
        let waker = waker.clone();
        Arc::new(move |conn| {
            if wake_tx.send(conn).is_ok() {
                let _ = waker.0.wake();
            }
        })
    };
    let core = Core::new(server_cfg, settings.clone(), state.max_gso_segments());
    let tid = Arc::new(AtomicU32::new(0));
    let published = Arc::new(Mutex::new(Published::default()));
    let shell = Shell {
        core,
        calls: Calls::new(app, wake),
        wakes,
        socket,
        state,
        poll,
        rx,
        tid: tid.clone(),
        published: published.clone(),
        io: ReactorIoStats::default(),
        batch_interval: settings.reactor_batch_interval,
    };
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || shell.run())?;
    Ok(ReactorThread {
        tx,
        waker,
        tid,
        published,
        thread: Mutex::new(Some(thread)),
    })
}

/// A media server run by reactor threads (see the [module documentation](super)).
/// With several threads ([`ReactorServer::bind_threads`]) each has its own
/// `SO_REUSEPORT` socket on the same port and the kernel spreads connections over
/// them by address hash.
pub struct ReactorServer {
    local_addr: SocketAddr,
    buffers: SocketBuffers,
    threads: Vec<ReactorThread>,
}

impl std::fmt::Debug for ReactorServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorServer")
            .field("local_addr", &self.local_addr)
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl ReactorServer {
    /// Binds the UDP socket and starts one reactor thread. Needs no async runtime.
    pub fn bind(config: ServerConfig, app: Box<dyn CallApp>) -> Result<Self, TransportError> {
        let mut app = Some(app);
        Self::bind_threads(config, 1, move || {
            app.take().unwrap_or_else(|| Box::new(RefuseAll))
        })
    }

    /// Binds `threads` (at least 1) `SO_REUSEPORT` sockets on one port and starts a
    /// reactor thread on each; `make_app` gives each thread its application. The port
    /// is shared among these threads only: if another process (or server) holds it,
    /// this fails with [`TransportError::PortInUse`]. A peer
    /// stays on the thread the kernel hashed its address to, so QUIC connection
    /// migration is turned off (a peer whose address changes must reconnect).
    pub fn bind_threads(
        config: ServerConfig,
        threads: usize,
        mut make_app: impl FnMut() -> Box<dyn CallApp>,
    ) -> Result<Self, TransportError> {
        let threads = threads.max(1);
        let mut server_cfg = quic_server_config(&config.identity, &config.settings)?;
        if threads > 1 {
            server_cfg.migration(false);
        }
        let server_cfg = Arc::new(server_cfg);
        let bind_err = |source| TransportError::Bind {
            addr: config.listen,
            source,
        };
        // Every socket first: a thread starts only once the whole port is ours, and
        // only ours (see `bind_exclusive`).
        let (sockets, buffers) = bind_exclusive(config.listen, &config.settings, threads)?;
        let local_addr = sockets[0].local_addr().map_err(bind_err)?;
        let mut started = Vec::with_capacity(threads);
        for (i, socket) in sockets.into_iter().enumerate() {
            // On an error the threads already started stop as `started` drops.
            let t = spawn(
                format!("mp-reactor-{i}"),
                socket,
                Some(server_cfg.clone()),
                &config.settings,
                make_app(),
            )
            .map_err(bind_err)?;
            started.push(t);
        }
        tracing::info!(
            %local_addr,
            threads,
            udp_receive_buffer = buffers.receive,
            udp_send_buffer = buffers.send,
            "media reactor listening"
        );
        Ok(ReactorServer {
            local_addr,
            buffers,
            threads: started,
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The kernel socket buffer sizes the (first) UDP socket got.
    pub fn socket_buffers(&self) -> SocketBuffers {
        self.buffers
    }

    /// Server-wide counters (all threads; as of each thread's last turn).
    pub fn stats(&self) -> ServerStats {
        self.threads.iter().fold(ServerStats::default(), |a, t| {
            a.merged(t.published().server)
        })
    }

    /// How the loops batch: turns, datagrams read, sends (all threads).
    pub fn io_stats(&self) -> ReactorIoStats {
        self.threads
            .iter()
            .fold(ReactorIoStats::default(), |a, t| a.merged(t.published().io))
    }

    /// Reactor threads running.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// The reactor threads' kernel thread ids (for CPU accounting), once they run.
    pub fn thread_ids(&self) -> Vec<u32> {
        self.threads.iter().filter_map(ReactorThread::tid).collect()
    }

    /// Closes every connection (`ServerShutdown` at the peers, `Closed` for every
    /// call), waits up to 1 s for them to drain and stops the threads. Blocks;
    /// idempotent.
    pub fn shutdown(&self) {
        for t in &self.threads {
            let _ = t.send(Command::Shutdown);
        }
        for t in &self.threads {
            t.stop();
        }
    }
}

impl Drop for ReactorServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The dialling side on one reactor thread: many outgoing calls on one UDP socket,
/// each run inside the loop like a server's.
pub struct ReactorClient {
    local_addr: SocketAddr,
    thread: ReactorThread,
}

impl std::fmt::Debug for ReactorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorClient")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ReactorClient {
    /// Binds `local` (port 0: any) and starts the thread. `settings` rule the socket,
    /// the join timeout and the rate limits of received datagrams.
    pub fn bind(local: SocketAddr, settings: &TransportSettings) -> Result<Self, TransportError> {
        let bind_err = |source| TransportError::Bind {
            addr: local,
            source,
        };
        let (socket, _) = bind_udp(local, settings, false).map_err(bind_err)?;
        let local_addr = socket.local_addr().map_err(bind_err)?;
        let thread = spawn(
            "mp-reactor-client".into(),
            socket,
            None,
            settings,
            Box::new(RefuseAll),
        )
        .map_err(bind_err)?;
        Ok(ReactorClient { local_addr, thread })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Dials `config.server` with `join` (QUIC settings from `config.settings`); the
    /// `dialer` hears the outcome on the reactor thread. Never blocks.
    pub fn connect(
        &self,
        config: &ClientConfig,
        join: Join,
        dialer: Box<dyn Dialer>,
    ) -> Result<(), ConnectError> {
        let quic = quic_client_config(&config.trust, &config.settings)?;
        self.thread.send(Command::Connect(Box::new(Dial {
            config: quic,
            remote: config.server,
            server_name: config.server_name.clone(),
            join,
            dialer,
        })))?;
        Ok(())
    }

    /// The thread's kernel id (for CPU accounting), once it runs.
    pub fn thread_id(&self) -> Option<u32> {
        self.thread.tid()
    }

    /// How the loop batches.
    pub fn io_stats(&self) -> ReactorIoStats {
        self.thread.published().io
    }

    /// Closes every call (`ServerShutdown` at the servers) and stops the thread.
    /// Blocks up to about 1 s; idempotent.
    pub fn shutdown(&self) {
        self.thread.stop();
    }
}

impl Drop for ReactorClient {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The application of client threads and of threads beyond those `make_app` was asked
/// for: refuses joins.
struct RefuseAll;

impl CallApp for RefuseAll {
    fn admit(&mut self, _: &Join) -> Result<Admission, Reject> {
        Err(Reject::new(
            RejectCode::Overloaded,
            "no application on this reactor thread",
        ))
    }

    fn start(&mut self, _: NewCall<'_>) -> Result<Box<dyn CallHandler>, StartError> {
        Err(StartError::Withdrawn)
    }
}

struct Shell {
    core: Core,
    calls: Calls,
    socket: mio::net::UdpSocket,
    state: UdpSocketState,
    poll: Poll,
    rx: crossbeam_channel::Receiver<Command>,
    wakes: crossbeam_channel::Receiver<ConnId>,
    tid: Arc<AtomicU32>,
    published: Arc<Mutex<Published>>,
    io: ReactorIoStats,
    batch_interval: Duration,
}

impl Shell {
    fn run(mut self) {
        if let Some(tid) = current_tid() {
            self.tid.store(tid, Ordering::Release);
        }
        let mut bufs = vec![0u8; SLOT * BATCH];
        let mut slices: Vec<IoSliceMut<'_>> = bufs.chunks_mut(SLOT).map(IoSliceMut::new).collect();
        let mut metas = [RecvMeta::default(); BATCH];
        let mut out = Transmits::default();
        let mut events = Events::with_capacity(8);
        let mut shutdown_at: Option<Instant> = None;
        let mut readable = false;
        loop {
            let turn = Instant::now();
            let turn_cpu = thread_cpu();
            if readable {
                readable = self.receive(&mut slices, &mut metas, &mut out);
            }
            let now = Instant::now();
            self.run_commands(now);
            while let Ok(conn) = self.wakes.try_recv() {
                self.calls.wake(&mut self.core, now, conn);
            }
            if self.core.is_shutting_down() && shutdown_at.is_none() {
                shutdown_at = Some(now);
            }
            self.core.handle_timeout(now);
            self.calls.dispatch(&mut self.core, now);
            self.calls.run_due(&mut self.core, now);
            self.core.poll_transmits(now, &mut out);
            self.send(&out);
            out.clear();
            self.account(turn, turn_cpu);
            if self.core.is_idle_after_shutdown()
                || shutdown_at.is_some_and(|t| now - t > SHUTDOWN_GRACE)
            {
                return;
            }
            if !readable {
                // Wait for a packet, a command or the next deadline.
                let timeout = self
                    .next_deadline()
                    .map_or(IDLE_WAIT, |d| d.saturating_duration_since(Instant::now()))
                    .min(IDLE_WAIT);
                let asleep = Instant::now();
                if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                    && e.kind() != ErrorKind::Interrupted
                {
                    tracing::error!(error = %e, "reactor poll failed");
                    return;
                }
                if events.is_empty() {
                    self.io.woke(asleep.elapsed(), timeout);
                }
                // Edge-triggered: after a socket event, read until it would block.
                readable = events.iter().any(|e| e.token() == SOCKET);
            }
            // Batching: let packets and ticks gather until the turn's interval is
            // over, so one turn's syscalls and wake-up serve many calls.
            let earliest = turn + self.batch_interval;
            let now = Instant::now();
            if now < earliest && (readable || self.next_deadline().is_some_and(|d| d < earliest)) {
                let asleep = Instant::now();
                std::thread::sleep(earliest - now);
                self.io.woke(asleep.elapsed(), earliest - now);
            }
        }
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        match (self.core.poll_timeout(), self.calls.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn run_commands(&mut self, now: Instant) {
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(cmd) => cmd,
                Err(crossbeam_channel::TryRecvError::Empty) => return,
                // Nobody can reach this thread any more: stop.
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    if self.core.is_shutting_down() {
                        return;
                    }
                    Command::Shutdown
                }
            };
            match cmd {
                Command::Connect(dial) => self.calls.dial(&mut self.core, now, *dial),
                Command::Shutdown => self.core.shutdown(now),
            }
            self.calls.dispatch(&mut self.core, now);
        }
    }

    /// Counts the turn and publishes the counters.
    fn account(&mut self, turn: Instant, turn_cpu: Duration) {
        let busy = turn.elapsed();
        self.io.turns += 1;
        self.io.busy += busy;
        if busy > STALL {
            // The thread's own CPU time tells work from preemption.
            if thread_cpu().saturating_sub(turn_cpu) > STALL {
                self.io.long_turns += 1;
            } else {
                self.io.preempted_turns += 1;
            }
        }
        self.io.max_turn = self.io.max_turn.max(busy);
        *lock(&self.published) = Published {
            server: self.core.stats(),
            io: self.io,
        };
    }

    /// Reads datagrams until the socket would block or `MAX_RECV_ROUNDS` batches;
    /// true if there may be more.
    fn receive(
        &mut self,
        slices: &mut [IoSliceMut<'_>],
        metas: &mut [RecvMeta],
        out: &mut Transmits,
    ) -> bool {
        for _ in 0..MAX_RECV_ROUNDS {
            let n = match self.state.recv((&self.socket).into(), slices, metas) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) => {
                    tracing::warn!(error = %e, "reactor receive failed");
                    return false;
                }
            };
            let now = Instant::now();
            self.io.datagrams_in += n as u64;
            for (meta, slot) in metas.iter().zip(slices.iter()).take(n) {
                let data = &slot[..meta.len];
                let stride = meta.stride.max(1);
                let ecn = meta
                    .ecn
                    .and_then(|e| quinn_proto::EcnCodepoint::from_bits(e as u8));
                for seg in data.chunks(stride) {
                    self.core.handle_datagram(
                        now,
                        meta.addr,
                        meta.dst_ip,
                        ecn,
                        BytesMut::from(seg),
                        out,
                    );
                }
            }
            self.calls.dispatch(&mut self.core, now);
        }
        true
    }

    fn send(&mut self, out: &Transmits) {
        self.io.transmits_out += out.items.len() as u64;
        for t in &out.items {
            let transmit = quinn_udp::Transmit {
                destination: t.destination,
                ecn: t
                    .ecn
                    .and_then(|e| quinn_udp::EcnCodepoint::from_bits(e as u8)),
                contents: &out.buf[t.range.clone()],
                segment_size: t.segment_size,
                src_ip: t.src_ip,
            };
            // The kernel buffer is large (SO_SNDBUF); a full one drops this packet
            // and QUIC's loss recovery takes over, as on any congested path.
            if let Err(e) = self.state.send((&self.socket).into(), &transmit)
                && e.kind() != ErrorKind::WouldBlock
            {
                tracing::debug!(error = %e, to = %t.destination, "reactor send failed");
            }
        }
    }
}
