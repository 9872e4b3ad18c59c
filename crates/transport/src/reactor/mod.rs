//! The reactor: threads that each own a UDP socket, a QUIC [`Core`](crate::quic::Core)
//! and the calls on it (docs/reactor.md).
//!
//! At one datagram per 20 ms each way, per-event machinery (a task per connection,
//! channels, timers) costs more than the QUIC and UDP work it moves. A reactor thread
//! runs everything of its calls in one loop instead: a turn reads the socket in batches
//! (`recvmmsg` through `quinn-udp`), hands the datagrams to the core, runs the calls
//! whose deadline has come, and writes the turn's transmits.
//!
//! ```text
//!  UDP socket ──recvmmsg──> Core::handle_datagram ──> Core::poll_event ──> Calls::dispatch
//!                                                      Join ─> CallApp::admit / start
//!                                                      Packet, Control, Closed ─> CallHandler::handle_event
//!  call deadlines (their ticks) ─────────────────────────────────────────> CallHandler::handle_timeout
//!                                  handlers send through QuicLink ─> Core::send_packet / send_control
//!  UDP socket <──sendmsg── Core::poll_transmits
//! ```
//!
//! - The QUIC core is sans-IO and returns events; it never calls application code.
//! - [`Calls`](calls) is the dispatcher: it answers joins through the [`CallApp`],
//!   keeps one [`CallHandler`] per call and their deadlines, and runs them against
//!   [`QuicLink`](crate::quic::QuicLink)s. Also sans-IO: tests drive it on a virtual
//!   clock.
//! - [`ReactorServer`] and [`ReactorClient`] are the shells: threads, sockets,
//!   `epoll`, the turn's batching, and the commands other threads send.
//!
//! # Example: a reactor that echoes every call
//!
//! ```no_run
//! use std::time::Instant;
//! use media_core::link::{CallHandler, LinkEvent, MediaLink};
//! use transport::reactor::{CallApp, NewCall, ReactorServer, StartError};
//! use transport::wire::{Join, Reject};
//! use transport::{Admission, ServerConfig, ServerIdentity};
//!
//! /// Sends every packet straight back.
//! struct Echo;
//! impl CallHandler for Echo {
//!     fn handle_event(&mut self, _now: Instant, event: LinkEvent<'_>, link: &mut dyn MediaLink) {
//!         if let LinkEvent::Packet(p) = event {
//!             let _ = link.send_packet(p);
//!         }
//!     }
//!     fn handle_timeout(&mut self, _now: Instant, _link: &mut dyn MediaLink) {}
//!     fn poll_timeout(&self) -> Option<Instant> {
//!         None
//!     }
//! }
//!
//! struct App;
//! impl CallApp for App {
//!     fn admit(&mut self, _join: &Join) -> Result<Admission, Reject> {
//!         Ok(Admission::new())
//!     }
//!     fn start(&mut self, _call: NewCall<'_>) -> Result<Box<dyn CallHandler>, StartError> {
//!         Ok(Box::new(Echo))
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

pub mod calls;
mod shell;
pub(crate) mod timers;

use std::net::SocketAddr;
use std::time::Instant;

use media_core::call::CallSetupError;
use media_core::link::{CallHandler, CloseReason};

pub use self::calls::Calls;
pub use self::shell::{ReactorClient, ReactorIoStats, ReactorServer};
use crate::quic::ConnId;
use crate::registry::Admission;
use crate::settings::ConnectError;
use crate::wire::{Accept, Join, Reject};

/// The application side of a server's reactor thread: admission and one
/// [`CallHandler`] per admitted join. Runs on the reactor thread: return quickly,
/// never block.
pub trait CallApp: Send + 'static {
    /// Admit or refuse a join. The protocol version, the contexts and the codec
    /// offer are already checked.
    fn admit(&mut self, join: &Join) -> Result<Admission, Reject>;

    /// The join was accepted and `Accept` is on its way: the call to run. An error
    /// ends the connection with its text (and [`CallApp::release`] follows).
    fn start(&mut self, call: NewCall<'_>) -> Result<Box<dyn CallHandler>, StartError>;

    /// Called once when an admitted join ends, for any reason (after its handler saw
    /// `Closed`). Default: nothing.
    fn release(&mut self, join: &Join, reason: &CloseReason) {
        let _ = (join, reason);
    }
}

/// Why [`CallApp::start`] could not start an admitted call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// What the join was admitted for is gone (the session was dropped meanwhile).
    #[error("the media session no longer exists")]
    Withdrawn,
    /// The call's media could not be set up.
    #[error(transparent)]
    Media(#[from] CallSetupError),
}

/// The dialling side of a call ([`ReactorClient::connect`]): told once whether the
/// join was accepted (and then gives the call to run) or why not. Runs on the
/// reactor thread.
pub trait Dialer: Send {
    /// `Accept` arrived: the call to run from now on.
    fn accepted(self: Box<Self>, call: NewCall<'_>) -> Box<dyn CallHandler>;

    /// The connection or the join failed (rejected, handshake, timeout, shutdown).
    fn failed(self: Box<Self>, error: ConnectError);
}

/// What [`CallApp::start`] and [`Dialer::accepted`] get for a new call.
#[derive(Debug)]
pub struct NewCall<'a> {
    /// The connection.
    pub conn: ConnId,
    /// The join.
    pub join: &'a Join,
    /// The accept: codec and stream ids.
    pub accept: &'a Accept,
    /// The other side's address.
    pub remote: SocketAddr,
    /// The reactor's clock at admission.
    pub now: Instant,
    /// Wakes this call from any thread ([`CallHandler::handle_wake`]).
    pub waker: CallWaker,
}

/// Asks a call's reactor thread to run the call's [`CallHandler::handle_wake`]; cheap
/// to clone, usable from any thread. Waking a call that has ended does nothing.
#[derive(Clone)]
pub struct CallWaker {
    conn: ConnId,
    wake: Wake,
}

/// How a thread is asked to wake a call: its shell queues the call and breaks the
/// thread's wait.
pub type Wake = std::sync::Arc<dyn Fn(ConnId) + Send + Sync>;

impl std::fmt::Debug for CallWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallWaker")
            .field("conn", &self.conn)
            .finish()
    }
}

impl CallWaker {
    /// Wakes the call (on a reactor thread: one queue push, one `eventfd` write).
    pub fn wake(&self) {
        (self.wake)(self.conn);
    }
}

/// A dial request for a reactor thread.
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
