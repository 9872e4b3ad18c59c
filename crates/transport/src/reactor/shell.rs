//! The reactor's shell: one thread, one UDP socket, `recvmmsg` / `sendmsg` through
//! `quinn-udp`, and `epoll` (mio) until the next deadline or a command.

use std::io::{ErrorKind, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::{Events, Interest, Poll, Token};
use quinn_udp::{RecvMeta, UdpSocketState};

use super::core::{CommandQueue, Core, Transmits};
use super::{CallApp, Command, Commands, Dial, Dialer};
use crate::endpoint::{
    ClientConfig, ConnectError, ServerConfig, ServerCounters, ServerStats, SocketBuffers,
    TransportError, TransportSettings, bind_udp, quinn_client_config, quinn_server_config,
};
use crate::thread::{current_thread_cpu as thread_cpu, current_tid};
use crate::wire::Join;

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

/// Wakes the reactor thread from another thread (an `eventfd` registered with its
/// `epoll`).
#[derive(Debug)]
pub(crate) struct Waker(mio::Waker);

impl Waker {
    pub(crate) fn wake(&self) {
        let _ = self.0.wake();
    }
}

/// One reactor thread: its command channel, thread id, loop counters and handle.
struct ReactorThread {
    commands: Commands,
    tid: Arc<AtomicU32>,
    io: Arc<IoCounters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A media server run by reactor threads: the [`MediaServer`](crate::MediaServer)
/// protocol with calls inside the loop (see the [module documentation](super)). With
/// several threads ([`ReactorServer::bind_threads`]) each has its own `SO_REUSEPORT`
/// socket on the same port and the kernel spreads connections over them by address
/// hash.
pub struct ReactorServer {
    local_addr: SocketAddr,
    buffers: SocketBuffers,
    server: Arc<ServerCounters>,
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
    /// reactor thread on each; `make_app` gives each thread its application. A peer
    /// stays on the thread the kernel hashed its address to, so QUIC connection
    /// migration is turned off (a peer whose address changes must reconnect).
    pub fn bind_threads(
        config: ServerConfig,
        threads: usize,
        mut make_app: impl FnMut() -> Box<dyn CallApp>,
    ) -> Result<Self, TransportError> {
        let threads = threads.max(1);
        let mut server_cfg = quinn_server_config(&config.identity, &config.settings)?;
        if threads > 1 {
            server_cfg.migration(false);
        }
        let server_cfg = Arc::new(server_cfg);
        let bind_err = |source| TransportError::Bind {
            addr: config.listen,
            source,
        };
        let reuse = threads > 1;
        let (first, buffers) =
            bind_udp(config.listen, &config.settings, reuse).map_err(bind_err)?;
        let local_addr = first.local_addr().map_err(bind_err)?;
        let server = Arc::new(ServerCounters::default());
        let mut started = Vec::with_capacity(threads);
        let mut socket = Some(first);
        for i in 0..threads {
            let socket = match socket.take() {
                Some(s) => s,
                None => {
                    bind_udp(local_addr, &config.settings, reuse)
                        .map_err(bind_err)?
                        .0
                }
            };
            let t = spawn(
                format!("mp-reactor-{i}"),
                socket,
                Some(server_cfg.clone()),
                &config.settings,
                make_app(),
                server.clone(),
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
            server,
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

    /// Server-wide counters (all threads).
    pub fn stats(&self) -> ServerStats {
        self.server.snapshot()
    }

    /// How the loops batch: turns, datagrams read, sends (all threads).
    pub fn io_stats(&self) -> ReactorIoStats {
        let mut s = ReactorIoStats::default();
        for t in &self.threads {
            s.turns += t.io.turns.load(Ordering::Relaxed);
            s.datagrams_in += t.io.datagrams_in.load(Ordering::Relaxed);
            s.transmits_out += t.io.transmits_out.load(Ordering::Relaxed);
            s.busy += Duration::from_nanos(t.io.busy_ns.load(Ordering::Relaxed));
            s.long_turns += t.io.long_turns.load(Ordering::Relaxed);
            s.preempted_turns += t.io.preempted_turns.load(Ordering::Relaxed);
            s.late_wakeups += t.io.late_wakeups.load(Ordering::Relaxed);
            let max_turn = Duration::from_nanos(t.io.max_turn_ns.load(Ordering::Relaxed));
            s.max_turn = s.max_turn.max(max_turn);
            let over = Duration::from_nanos(t.io.max_oversleep_ns.load(Ordering::Relaxed));
            s.max_oversleep = s.max_oversleep.max(over);
        }
        s
    }

    /// Reactor threads running.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// The reactor threads' kernel thread ids (for CPU accounting), once they run.
    pub fn thread_ids(&self) -> Vec<u32> {
        self.threads
            .iter()
            .map(|t| t.tid.load(Ordering::Acquire))
            .filter(|&t| t != 0)
            .collect()
    }

    /// Closes every connection ([`CloseReason::ServerShutdown`](crate::CloseReason)
    /// at the peers, `ended` for every call), waits up to 1 s for them to drain and
    /// stops the threads. Blocks; idempotent.
    pub fn shutdown(&self) {
        for t in &self.threads {
            let _ = t.commands.send(Command::Shutdown);
        }
        for t in &self.threads {
            let thread = t.thread.lock().ok().and_then(|mut h| h.take());
            if let Some(h) = thread {
                let _ = h.join();
            }
        }
    }
}

/// Starts reactor thread `name` on `socket`.
fn spawn(
    name: String,
    socket: std::net::UdpSocket,
    server_cfg: Option<Arc<quinn_proto::ServerConfig>>,
    settings: &TransportSettings,
    app: Box<dyn CallApp>,
    server: Arc<ServerCounters>,
) -> std::io::Result<ReactorThread> {
    let state = UdpSocketState::new((&socket).into())?;
    let mut socket = mio::net::UdpSocket::from_std(socket);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut socket, SOCKET, Interest::READABLE)?;
    let waker = mio::Waker::new(poll.registry(), WAKE)?;
    let (tx, rx) = crossbeam_channel::bounded(4096);
    let commands = Commands {
        tx,
        waker: Some(Arc::new(Waker(waker))),
    };
    let core = Core::with_commands(
        server_cfg,
        settings.clone(),
        app,
        state.max_gso_segments(),
        commands.clone(),
        server,
    );
    let tid = Arc::new(AtomicU32::new(0));
    let io = Arc::new(IoCounters::default());
    let shell = Shell {
        io: io.clone(),
        batch_interval: settings.reactor_batch_interval,
        core,
        socket,
        state,
        poll,
        rx: CommandQueue(rx),
        tid: tid.clone(),
    };
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || shell.run())?;
    Ok(ReactorThread {
        commands,
        tid,
        io,
        thread: Mutex::new(Some(thread)),
    })
}

/// The dialling side on one reactor thread: many outgoing calls on one UDP socket,
/// each run inside the loop like a server's (the reactor counterpart of
/// [`MediaClient`](crate::MediaClient), for load generators and bots that dial).
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
    /// Binds `local` (port 0: any) and starts the thread. `settings` rule the
    /// socket, the join timeout and the rate limits of received datagrams.
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
            Arc::new(ServerCounters::default()),
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
        let quic = quinn_client_config(&config.trust, &config.settings)?;
        self.thread
            .commands
            .send(Command::Connect(Box::new(Dial {
                config: quic,
                remote: config.server,
                server_name: config.server_name.clone(),
                join,
                dialer,
            })))
            .map_err(|e| ConnectError::Setup(TransportError::Config(e.to_string())))
    }

    /// The thread's kernel id (for CPU accounting), once it runs.
    pub fn thread_id(&self) -> Option<u32> {
        Some(self.thread.tid.load(Ordering::Acquire)).filter(|&t| t != 0)
    }

    /// Closes every call ([`CloseReason::ServerShutdown`](crate::CloseReason) at the
    /// servers) and stops the thread. Blocks up to about 1 s; idempotent.
    pub fn shutdown(&self) {
        let _ = self.thread.commands.send(Command::Shutdown);
        let handle = self.thread.thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for ReactorClient {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The application of threads beyond those `make_app` was asked for, and of clients:
/// refuses joins.
struct RefuseAll;

impl CallApp for RefuseAll {
    fn admit(&mut self, _: &crate::wire::Join) -> Result<crate::Admission, crate::wire::Reject> {
        Err(crate::wire::Reject::new(
            crate::wire::RejectCode::Overloaded,
            "no application on this reactor thread",
        ))
    }

    fn start(&mut self, _: super::NewCall<'_>) -> Result<Box<dyn super::ReactorCall>, String> {
        Err("no application on this reactor thread".into())
    }
}

impl Drop for ReactorServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Shell {
    core: Core,
    socket: mio::net::UdpSocket,
    state: UdpSocketState,
    poll: Poll,
    rx: CommandQueue,
    tid: Arc<AtomicU32>,
    io: Arc<IoCounters>,
    batch_interval: Duration,
}

/// The reactor loop's own counters.
#[derive(Debug, Default)]
struct IoCounters {
    turns: AtomicU64,
    busy_ns: AtomicU64,
    long_turns: AtomicU64,
    preempted_turns: AtomicU64,
    max_turn_ns: AtomicU64,
    late_wakeups: AtomicU64,
    max_oversleep_ns: AtomicU64,
    datagrams_in: AtomicU64,
    transmits_out: AtomicU64,
}

/// A turn or a wake-up this much late is a stall (ticks more than 5 ms late are
/// counted late; a stall of 4 ms plus the 1 ms turn interval makes them so).
const STALL_NS: u64 = 4_000_000;

impl IoCounters {
    /// The loop asked to sleep `asked` and slept `slept`: counts oversleeping.
    fn woke(&self, slept: Duration, asked: Duration) {
        let over = u64::try_from(slept.saturating_sub(asked).as_nanos()).unwrap_or(u64::MAX);
        if over > STALL_NS {
            self.late_wakeups.fetch_add(1, Ordering::Relaxed);
        }
        self.max_oversleep_ns.fetch_max(over, Ordering::Relaxed);
    }
}

/// Counters of a reactor's loop: how well it batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReactorIoStats {
    /// Loop turns (each: receive, commands, timers, transmits).
    pub turns: u64,
    /// `recvmmsg` results (UDP payloads or GRO batches) read.
    pub datagrams_in: u64,
    /// UDP sends (each one `sendmsg`; a GSO batch counts once).
    pub transmits_out: u64,
    /// Wall time spent in turns (receiving, ticking, sending; not waiting): the
    /// threads' measured load.
    pub busy: Duration,
    /// Turns that took more than 4 ms of the thread's CPU time (the loop's own work).
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
            self.core.run_commands(&self.rx, now);
            if self.core.is_shutting_down() && shutdown_at.is_none() {
                shutdown_at = Some(now);
            }
            self.core.poll_timers(now);
            self.core.poll_transmits(now, &mut out);
            self.send(&out);
            self.io.turns.fetch_add(1, Ordering::Relaxed);
            let busy = u64::try_from(turn.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.io.busy_ns.fetch_add(busy, Ordering::Relaxed);
            if busy > STALL_NS {
                // The thread's own CPU time tells work from preemption.
                let cpu = thread_cpu().saturating_sub(turn_cpu);
                if cpu.as_nanos() > u128::from(STALL_NS) {
                    self.io.long_turns.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.io.preempted_turns.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.io.max_turn_ns.fetch_max(busy, Ordering::Relaxed);
            out.clear();
            if self.core.is_idle_after_shutdown()
                || shutdown_at.is_some_and(|t| now - t > SHUTDOWN_GRACE)
            {
                return;
            }
            if !readable {
                // Wait for a packet, a command or the next deadline.
                let timeout = self
                    .core
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
            if now < earliest
                && (readable || self.core.next_deadline().is_some_and(|d| d < earliest))
            {
                let asleep = Instant::now();
                std::thread::sleep(earliest - now);
                self.io.woke(asleep.elapsed(), earliest - now);
            }
        }
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
            self.io.datagrams_in.fetch_add(n as u64, Ordering::Relaxed);
            for (meta, slot) in metas.iter().zip(slices.iter()).take(n) {
                let data = &slot[..meta.len];
                let stride = meta.stride.max(1);
                for seg in data.chunks(stride) {
                    let ecn = meta
                        .ecn
                        .and_then(|e| quinn_proto::EcnCodepoint::from_bits(e as u8));
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
        }
        true
    }

    fn send(&mut self, out: &Transmits) {
        self.io
            .transmits_out
            .fetch_add(out.items.len() as u64, Ordering::Relaxed);
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
