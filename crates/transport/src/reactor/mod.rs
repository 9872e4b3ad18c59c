//! The batched media reactor: one thread owns a UDP socket, the QUIC endpoint, every
//! connection on it and the calls themselves (docs/reactor.md).
//!
//! [`MediaServer`](crate::MediaServer) gives each connection quinn's driver task, a
//! datagram task, channels and timers; at one datagram per 20 ms each way that
//! per-event machinery costs more than the QUIC and UDP work it moves. The reactor
//! runs the same protocol (join / accept / reject on the control stream, datagrams,
//! rate limits, counters, close reasons; `docs/wire-format.md` is unchanged) on
//! `quinn-proto` directly:
//!
//! ```text
//!  UDP socket ──recvmmsg──> Core::handle_datagram ──> Connection::handle_event
//!                             │ join on the control stream → CallApp::admit / start
//!                             │ datagrams → checked → ReactorCall::on_datagram (at once)
//!  timer heap ──due──> Core::poll_timers: QUIC timers, join/leave deadlines,
//!                             20 ms ticks → ReactorCall::tick(Link) → datagrams out
//!  UDP socket <──sendmsg── Core::poll_transmits (every connection touched this turn)
//! ```
//!
//! - [`Core`] is sans-IO: it takes `(now, datagrams in, commands)` and gives
//!   transmits and its next deadline. Tests drive it with a virtual clock.
//! - [`ReactorServer`] is the shell: a thread with the socket, `recvmmsg`/`sendmsg`
//!   through `quinn-udp`, and `ppoll` until the next deadline or a command.
//! - The application plugs in through [`CallApp`] (admission, one [`ReactorCall`] per
//!   admitted join) and talks to a call from other threads through its
//!   [`LinkHandle`].
//!
//! # Example: a reactor that echoes every call
//!
//! ```no_run
//! use std::time::Instant;
//! use transport::reactor::{CallApp, Link, NewCall, ReactorCall, ReactorServer};
//! use transport::wire::{DatagramHeader, Join, Reject};
//! use transport::{Admission, CloseReason, LinkStats, ServerConfig, ServerIdentity};
//!
//! struct Echo(Vec<(DatagramHeader, Vec<u8>)>);
//! impl ReactorCall for Echo {
//!     fn on_datagram(&mut self, h: &DatagramHeader, payload: &[u8], _at: Instant) {
//!         self.0.push((*h, payload.to_vec()));
//!     }
//!     fn tick(&mut self, _scheduled: Instant, link: &mut Link<'_>) {
//!         for (h, p) in self.0.drain(..) {
//!             let _ = link.send_datagram(&h, &p);
//!         }
//!     }
//!     fn ended(self: Box<Self>, reason: &CloseReason, _stats: &LinkStats) {
//!         println!("call ended: {reason}");
//!     }
//! }
//!
//! struct App;
//! impl CallApp for App {
//!     fn admit(&mut self, _join: &Join) -> Result<Admission, Reject> {
//!         Ok(Admission::new())
//!     }
//!     fn start(&mut self, _call: NewCall<'_>) -> Result<Box<dyn ReactorCall>, String> {
//!         Ok(Box::new(Echo(Vec::new())))
//!     }
//! }
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let identity = ServerIdentity::self_signed(&["localhost"])?;
//! let server = ReactorServer::bind(
//!     ServerConfig::new("127.0.0.1:0".parse()?, identity),
//!     Box::new(App),
//! )?;
//! println!("peers connect to {}", server.local_addr());
//! # Ok(()) }
//! ```

mod core;
mod shell;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub use self::core::{CommandQueue, Core, TICK, Transmit, Transmits};
pub use self::shell::{ReactorClient, ReactorIoStats, ReactorServer};

use crate::endpoint::{CloseReason, ConnectError, LinkStats, OutgoingControl, SendError};
use crate::registry::Admission;
use crate::wire::{Accept, ControlMessage, DatagramHeader, Join, Reject};

/// The application side of a reactor: admission and one [`ReactorCall`] per
/// admitted join. Runs on the reactor thread: return quickly, never block.
pub trait CallApp: Send + 'static {
    /// Admit or refuse a join. The reactor has already checked the protocol version,
    /// the contexts and that codecs are offered (as [`MediaServer`](crate::MediaServer)).
    fn admit(&mut self, join: &Join) -> Result<Admission, Reject>;

    /// The join was accepted and `Accept` is on its way: the call to run. `Err` closes
    /// the connection with that reason (and [`CallApp::release`] follows).
    fn start(&mut self, call: NewCall<'_>) -> Result<Box<dyn ReactorCall>, String>;

    /// Called once when an admitted join ends, for any reason (after
    /// [`ReactorCall::ended`]). Default: nothing.
    fn release(&mut self, join: &Join, reason: &CloseReason) {
        let _ = (join, reason);
    }
}

/// The dialling side of a call ([`ReactorClient::connect`]): told once whether the
/// join was accepted (and then gives the call to run) or why not. Runs on the
/// reactor thread.
pub trait Dialer: Send {
    /// `Accept` arrived: the call to run from now on.
    fn accepted(self: Box<Self>, call: NewCall<'_>) -> Box<dyn ReactorCall>;

    /// The connection or the join failed (rejected, handshake, timeout).
    fn failed(self: Box<Self>, error: ConnectError);
}

/// A dial request for the reactor thread.
pub(crate) struct Dial {
    pub(crate) config: quinn_proto::ClientConfig,
    pub(crate) remote: SocketAddr,
    pub(crate) server_name: String,
    pub(crate) join: Join,
    pub(crate) dialer: Box<dyn Dialer>,
}

impl std::fmt::Debug for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dial")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// What [`CallApp::start`] gets for a new call.
#[derive(Debug)]
pub struct NewCall<'a> {
    /// The peer's join.
    pub join: &'a Join,
    /// The accept sent back: codec and stream ids.
    pub accept: &'a Accept,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The reactor's clock at admission.
    pub now: Instant,
    /// A handle for other threads (send control messages, close).
    pub handle: LinkHandle,
}

/// One admitted call, run by the reactor thread.
///
/// Its methods run on the reactor thread between socket reads and writes: they must
/// not block (the bot-facing side should be lock-free queues and channels).
pub trait ReactorCall: Send {
    /// A media datagram of this call arrived, already checked (header, assigned
    /// stream, rate limit). `received_at` is when its socket read happened.
    fn on_datagram(&mut self, header: &DatagramHeader, payload: &[u8], received_at: Instant);

    /// A control message from the peer (never a handshake message or `Leave`).
    fn on_control(&mut self, msg: ControlMessage) {
        let _ = msg;
    }

    /// The 20 ms tick scheduled at `scheduled` (on a fixed grid from admission; a
    /// delayed tick is caught up at once). Send through `link`; [`Link::close`]
    /// ends the call.
    fn tick(&mut self, scheduled: Instant, link: &mut Link<'_>);

    /// The reactor fell more than 200 ms behind and skipped `ticks` ticks of this call
    /// (the grid restarts at the present).
    fn skipped(&mut self, ticks: u64) {
        let _ = ticks;
    }

    /// The call is over: the final reason and counters.
    fn ended(self: Box<Self>, reason: &CloseReason, stats: &LinkStats);
}

/// A call's connection during [`ReactorCall::tick`]: send media and control.
pub struct Link<'a> {
    pub(crate) inner: self::core::LinkInner<'a>,
}

impl std::fmt::Debug for Link<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

impl Link<'_> {
    /// Encodes and queues one media datagram for this turn's batch. Never blocks.
    /// Counted as in [`MediaSender::send_datagram`](crate::MediaSender::send_datagram).
    pub fn send_datagram(
        &mut self,
        header: &DatagramHeader,
        payload: &[u8],
    ) -> Result<(), SendError> {
        self.inner.send_datagram(header, payload)
    }

    /// Queues a control message (not a handshake message; `Leave` closes).
    pub fn send_control(&mut self, msg: &ControlMessage) -> Result<(), SendError> {
        match OutgoingControl::of(msg)? {
            OutgoingControl::Leave(reason) => {
                self.close(reason);
                Ok(())
            }
            OutgoingControl::Frame(frame) => self.inner.send_control_frame(&frame),
        }
    }

    /// Leaves the call after this tick: `Leave { reason }` on the control stream, then
    /// a normal close. The call's [`ReactorCall::ended`] follows with
    /// [`CloseReason::Closed`].
    pub fn close(&mut self, reason: &str) {
        self.inner.close(reason);
    }

    /// Counters and RTT of this connection.
    pub fn stats(&self) -> LinkStats {
        self.inner.stats()
    }

    /// quinn's full statistics for this connection (UDP and frame counts).
    pub fn quic_stats(&self) -> quinn::ConnectionStats {
        self.inner.quic_stats()
    }
}

/// Identifies one connection of a reactor across slot reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConnKey {
    pub(crate) index: usize,
    pub(crate) id: u64,
}

/// Work for the reactor thread from other threads.
#[derive(Debug)]
pub(crate) enum Command {
    /// An encoded control frame for a call.
    Control { key: ConnKey, frame: Vec<u8> },
    /// Leave a call.
    Close { key: ConnKey, reason: String },
    /// Close everything and stop.
    Shutdown,
    /// Dial a media server.
    Connect(Box<Dial>),
}

/// Sends commands to the reactor thread and wakes it.
#[derive(Clone, Debug)]
pub(crate) struct Commands {
    pub(crate) tx: crossbeam_channel::Sender<Command>,
    pub(crate) waker: Option<Arc<shell::Waker>>,
}

impl Commands {
    /// The handle of connection `index` with unique id `id`.
    pub(crate) fn handle(&self, index: usize, id: u64) -> LinkHandle {
        LinkHandle {
            key: ConnKey { index, id },
            commands: self.clone(),
        }
    }

    pub(crate) fn send(&self, cmd: Command) -> Result<(), SendError> {
        match self.tx.try_send(cmd) {
            Ok(()) => {
                if let Some(w) = &self.waker {
                    w.wake();
                }
                Ok(())
            }
            Err(crossbeam_channel::TrySendError::Full(_)) => Err(SendError::ControlQueueFull),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(SendError::Closed),
        }
    }
}

/// A call's connection seen from other threads (the bot's DTMF, hang-up).
#[derive(Clone, Debug)]
pub struct LinkHandle {
    pub(crate) key: ConnKey,
    pub(crate) commands: Commands,
}

impl LinkHandle {
    /// Queues a control message for the peer (not a handshake message; `Leave`
    /// closes). Never blocks; the reactor writes it on its next turn.
    pub fn send_control(&self, msg: &ControlMessage) -> Result<(), SendError> {
        match OutgoingControl::of(msg)? {
            OutgoingControl::Leave(reason) => {
                self.close(reason);
                Ok(())
            }
            OutgoingControl::Frame(frame) => self.commands.send(Command::Control {
                key: self.key,
                frame,
            }),
        }
    }

    /// Leaves the call (`Leave`, then a normal close) on the reactor's next turn.
    pub fn close(&self, reason: &str) {
        let _ = self.commands.send(Command::Close {
            key: self.key,
            reason: reason.to_owned(),
        });
    }
}
