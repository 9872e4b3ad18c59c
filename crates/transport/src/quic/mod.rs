//! The media protocol over QUIC, sans-IO: [`Core`].
//!
//! One QUIC connection carries one call: unreliable DATAGRAM frames for media (a
//! 14-byte header and one 20 ms frame, [`crate::wire::datagram`]) and one
//! bidirectional stream, opened by the peer, for control messages
//! ([`crate::wire::control`]). The peer's first message is a `Join`; the server
//! answers `Accept` or `Reject`; either side may `Leave`. `docs/wire-format.md` is the
//! contract.
//!
//! [`Core`] owns a `quinn_proto::Endpoint`, every connection on one UDP socket and one
//! deadline heap. It is sans-IO in the style of quinn-proto: inputs are
//! [`Core::handle_datagram`], [`Core::handle_timeout`] and the application's answers
//! ([`Core::accept`], [`Core::reject`], [`Core::connect`], [`Core::send_packet`],
//! [`Core::send_control`], [`Core::close`]); outputs are [`Core::poll_event`] (what
//! happened, as [`Event`]s), [`Core::poll_transmits`] (UDP payloads to send) and
//! [`Core::poll_timeout`]. It never calls into application code: the shell
//! ([`crate::reactor`]) reads the events and runs the calls.
//!
//! ```text
//!  UDP in ── handle_datagram ─> quinn-proto ─> control stream: Join ─> Event::Join ─> accept / reject
//!                                            └> datagrams: header, stream, rate ─> Event::Packet
//!  handle_timeout ─> QUIC timers, join / reject / leave deadlines
//!  send_packet / send_control ─> quinn-proto ─> poll_transmits ─> UDP out
//!  any end ─> Event::Closed { reason, stats }  (admitted calls)  ·  Event::DialFailed (dials)
//! ```
//!
//! [`QuicLink`] is the call's [`media_core::link::MediaLink`] over a `Core`: the seam
//! every call's media talks to.

mod conn;
mod core;
mod join;
mod link;

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use media_core::control::Control;
use media_core::link::{CloseReason, LinkStats};

pub use self::core::{Core, Transmit, Transmits};
pub use self::join::{assign_streams, check_join};
pub use self::link::{ClosedLink, QuicLink, packet_from_datagram};
use crate::settings::ConnectError;
use crate::wire::{Accept, DatagramHeader, Join};

/// One connection of a [`Core`], unique for the core's lifetime (slots are reused,
/// ids are not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: usize,
    pub(crate) id: u64,
}

impl ConnId {
    /// The slot of the connection (small, reused after the connection drained).
    pub fn index(self) -> usize {
        self.index
    }
}

/// What happened in a [`Core`]: read with [`Core::poll_event`] after every input.
#[derive(Debug)]
pub enum Event {
    /// Server side: a peer asks to join; the protocol version, its contexts and its
    /// codec offer are checked. Answer with [`Core::accept`] or [`Core::reject`].
    Join {
        /// The connection.
        conn: ConnId,
        /// The join.
        join: Join,
        /// The peer's address.
        remote: SocketAddr,
    },
    /// Dialling side: the server accepted our join; media may flow.
    Accepted {
        /// The connection.
        conn: ConnId,
        /// The server's accept (codec, streams).
        accept: Accept,
        /// The server's address.
        remote: SocketAddr,
    },
    /// Dialling side: the dial failed (rejected, handshake, timeout, shutdown).
    DialFailed {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: ConnectError,
    },
    /// A media datagram of an admitted call, on the stream this side receives:
    /// header checked, within the stream's rate limit.
    Packet {
        /// The connection.
        conn: ConnId,
        /// The datagram header.
        header: DatagramHeader,
        /// The payload (a zero-copy slice of the received datagram).
        payload: Bytes,
        /// When the datagram was read from the socket.
        received_at: Instant,
    },
    /// A control message of an admitted call.
    Control {
        /// The connection.
        conn: ConnId,
        /// The message.
        control: Control,
    },
    /// An admitted call ended (any reason; the connection drains on its own).
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
        /// The link's final counters.
        stats: LinkStats,
    },
}

/// Counters of a media server (all connections of its cores), written by the
/// reactor threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Joins accepted.
    pub accepted: u64,
    /// Joins rejected (by the application, version, capacity).
    pub rejected: u64,
    /// Connections whose QUIC/TLS handshake failed or timed out.
    pub handshake_failed: u64,
    /// Connections closed before a valid `Join` (timeout, garbage, wrong message).
    pub join_failed: u64,
    /// Admitted connections still open.
    pub active: u64,
    /// Datagrams dropped because they arrived before `Accept`, over all connections
    /// (including rejected ones).
    pub pre_accept_dropped: u64,
    /// New QUIC connection attempts (Initials of unknown connections) received.
    pub connection_attempts: u64,
    /// QUIC handshakes in flight now (first Initial accepted, join not yet admitted
    /// or refused): connection state held for peers not admitted.
    pub handshakes: u64,
    /// The most handshakes in flight at any time (several threads: the sum of their
    /// peaks, an upper bound).
    pub handshakes_peak: u64,
    /// The most connections held at any time, in any state (several threads: the sum
    /// of their peaks).
    pub connections_peak: u64,
    /// Stateless Retry packets sent to validate a source address
    /// ([`TransportSettings::retry_threshold`](crate::TransportSettings::retry_threshold)).
    pub retries_sent: u64,
    /// Connection attempts dropped unanswered: too many handshakes in flight, in all
    /// or from the source address.
    pub handshakes_dropped: u64,
}

impl ServerStats {
    /// The sum of two snapshots (several reactor threads serve one port).
    #[must_use]
    pub fn merged(self, o: ServerStats) -> ServerStats {
        ServerStats {
            accepted: self.accepted + o.accepted,
            rejected: self.rejected + o.rejected,
            handshake_failed: self.handshake_failed + o.handshake_failed,
            join_failed: self.join_failed + o.join_failed,
            active: self.active + o.active,
            pre_accept_dropped: self.pre_accept_dropped + o.pre_accept_dropped,
            connection_attempts: self.connection_attempts + o.connection_attempts,
            handshakes: self.handshakes + o.handshakes,
            handshakes_peak: self.handshakes_peak + o.handshakes_peak,
            connections_peak: self.connections_peak + o.connections_peak,
            retries_sent: self.retries_sent + o.retries_sent,
            handshakes_dropped: self.handshakes_dropped + o.handshakes_dropped,
        }
    }
}

#[cfg(test)]
mod tests;
