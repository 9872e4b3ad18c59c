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
use super::{CallApp, Command, Commands};
use crate::endpoint::{
    ServerConfig, ServerCounters, ServerStats, SocketBuffers, TransportError, bind_udp,
    quinn_server_config,
};

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

/// A media server run by one reactor thread: the [`MediaServer`](crate::MediaServer)
/// protocol with calls inside the loop (see the [module documentation](super)).
pub struct ReactorServer {
    local_addr: SocketAddr,
    buffers: SocketBuffers,
    server: Arc<ServerCounters>,
    commands: Commands,
    tid: Arc<AtomicU32>,
    io: Arc<IoCounters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ReactorServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ReactorServer {
    /// Binds the UDP socket and starts the reactor thread. Needs no async runtime.
    pub fn bind(config: ServerConfig, app: Box<dyn CallApp>) -> Result<Self, TransportError> {
        let server_cfg = quinn_server_config(&config.identity, &config.settings)?;
        let bind_err = |source| TransportError::Bind {
            addr: config.listen,
            source,
        };
        let (socket, buffers) = bind_udp(config.listen, &config.settings).map_err(bind_err)?;
        let local_addr = socket.local_addr().map_err(bind_err)?;
        let state = UdpSocketState::new((&socket).into()).map_err(bind_err)?;
        let mut socket = mio::net::UdpSocket::from_std(socket);
        let poll = Poll::new().map_err(bind_err)?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)
            .map_err(bind_err)?;
        let waker = mio::Waker::new(poll.registry(), WAKE).map_err(bind_err)?;
        let (tx, rx) = crossbeam_channel::bounded(4096);
        let commands = Commands {
            tx,
            waker: Some(Arc::new(Waker(waker))),
        };
        let server = Arc::new(ServerCounters::default());
        let batch_interval = config.settings.reactor_batch_interval;
        let core = Core::with_commands(
            Arc::new(server_cfg),
            config.settings,
            app,
            state.max_gso_segments(),
            commands.clone(),
            server.clone(),
        );
        let tid = Arc::new(AtomicU32::new(0));
        let io = Arc::new(IoCounters::default());
        let shell = Shell {
            io: io.clone(),
            batch_interval,
            core,
            socket,
            state,
            poll,
            rx: CommandQueue(rx),
            tid: tid.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("mp-reactor".into())
            .spawn(move || shell.run())
            .map_err(bind_err)?;
        tracing::info!(
            %local_addr,
            udp_receive_buffer = buffers.receive,
            udp_send_buffer = buffers.send,
            "media reactor listening"
        );
        Ok(ReactorServer {
            local_addr,
            buffers,
            server,
            commands,
            tid,
            io,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The kernel socket buffer sizes the UDP socket got.
    pub fn socket_buffers(&self) -> SocketBuffers {
        self.buffers
    }

    /// Server-wide counters.
    pub fn stats(&self) -> ServerStats {
        self.server.snapshot()
    }

    /// How the loop batches: turns, datagrams read, sends.
    pub fn io_stats(&self) -> ReactorIoStats {
        ReactorIoStats {
            turns: self.io.turns.load(Ordering::Relaxed),
            datagrams_in: self.io.datagrams_in.load(Ordering::Relaxed),
            transmits_out: self.io.transmits_out.load(Ordering::Relaxed),
        }
    }

    /// The reactor thread's kernel thread id (for CPU accounting), once it runs.
    pub fn thread_id(&self) -> Option<u32> {
        Some(self.tid.load(Ordering::Acquire)).filter(|&t| t != 0)
    }

    /// Closes every connection ([`CloseReason::ServerShutdown`](crate::CloseReason)
    /// at the peers, `ended` for every call), waits up to 1 s for them to drain and
    /// stops the thread. Blocks; idempotent.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
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
    datagrams_in: AtomicU64,
    transmits_out: AtomicU64,
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
                if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                    && e.kind() != ErrorKind::Interrupted
                {
                    tracing::error!(error = %e, "reactor poll failed");
                    return;
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
                std::thread::sleep(earliest - now);
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

/// The calling thread's kernel id, from `/proc/thread-self`.
fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}
