//! The seam between a call's media and the link that carries it.
//!
//! A *link* moves one call's encoded packets and control messages between the two
//! ends: QUIC datagrams and a control stream, SRTP packets and RTCP, or the messages of
//! a WebSocket over TCP. A call's media ([`crate::call::CallMedia`]) knows no socket;
//! a link knows no jitter buffer. Between them stand three small things:
//!
//! - [`MediaLink`]: what the media side may ask of its link (send a packet, send a
//!   control message, close, read the link's [`LinkStats`]);
//! - [`LinkEvent`]: what a link hands to the media side (a packet with its arrival
//!   time, a control message, the end with a typed [`CloseReason`]);
//! - [`CallHandler`]: what a link's driver runs for each call, with the three sans-IO
//!   verbs `handle_event`, `handle_timeout`, `poll_timeout`.
//!
//! ```text
//!  link driver (reactor thread, WebSocket task, ...)          one call
//!  ────────────────────────────────────────────────           ────────
//!  packet / control / close ── LinkEvent ──────────────────> CallHandler::handle_event
//!  deadline reached ────────────────────────────────────────> CallHandler::handle_timeout
//!  send_packet / send_control / close <── &mut dyn MediaLink ─┘   (CallMedia outputs)
//!  next deadline <─────────────────────────────────────────── CallHandler::poll_timeout
//! ```
//!
//! The seam fits an unreliable packet link and an ordered byte stream alike: a packet
//! is one 20 ms frame with its sequence number and media timestamp either way, so the
//! same jitter buffer plays what a datagram link loses and what a stream link delivers
//! late. Adding a link means implementing [`MediaLink`] over its own connection state
//! and driving [`CallHandler`]s; no per-call logic is copied.
//!
//! # Realtime safety
//! `send_packet` and `send_control` never block. Implementations count what they
//! drop in [`LinkStats`] and return a small `Copy` [`LinkError`].

use std::time::{Duration, Instant};

use crate::control::Control;
use crate::packet::AudioPacket;

/// What a call's media may ask of the link that carries it. Implemented by every link
/// (QUIC, WebRTC, WebSocket) over its own connection state; handed to a
/// [`CallHandler`] for the duration of one call into it.
pub trait MediaLink {
    /// Sends one encoded packet to the far end. Never blocks; what cannot be sent is
    /// dropped, counted in [`LinkStats`] and reported.
    fn send_packet(&mut self, packet: &AudioPacket) -> Result<(), LinkError>;

    /// Sends a control message to the far end (reliably where the link can).
    fn send_control(&mut self, control: &Control) -> Result<(), LinkError>;

    /// Ends the call from this side: the far end is told `reason`, then the link closes.
    /// The handler's [`LinkEvent::Closed`] follows with [`CloseReason::Closed`].
    fn close(&mut self, reason: &str);

    /// The link's counters now (`&mut`: some transports update their path figures
    /// when read).
    fn stats(&mut self) -> LinkStats;

    /// How the link delivers media packets (default [`Delivery::Datagram`]). A link
    /// over a reliable, ordered byte stream says [`Delivery::ReliableOrdered`]: the
    /// call's jitter buffer then waits for a late packet instead of giving it up (see
    /// [`crate::jitter`], "Reliable links"). Read by the call's media with each packet;
    /// it must not change during a call.
    fn delivery(&self) -> Delivery {
        Delivery::Datagram
    }
}

/// How a link delivers media packets: what the receiving jitter buffer may assume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Datagrams (QUIC datagrams, SRTP over UDP): a packet may be lost, duplicated or
    /// reordered, and one that comes after its playout time is as good as lost.
    #[default]
    Datagram,
    /// A reliable, ordered byte stream (a WebSocket over TCP): every packet arrives,
    /// in order, but late and in bursts (retransmissions, head-of-line blocking, a
    /// busy sender). A missing packet is late, never lost.
    ReliableOrdered,
}

/// What a link hands to a call's media.
#[derive(Debug, Clone, Copy)]
pub enum LinkEvent<'a> {
    /// A media packet of this call arrived (already checked by the link: its codec,
    /// stream and rate), at the `now` of the `handle_event` call.
    Packet(&'a AudioPacket),
    /// A control message from the far end.
    Control(Control),
    /// The call is over; the handler is dropped after this event. The link's final
    /// [`LinkStats`] are readable through [`MediaLink::stats`] during the call.
    Closed(&'a CloseReason),
}

/// What a link's driver runs for each call (the media side of the seam).
///
/// The driver calls `handle_event` for every [`LinkEvent`] and `handle_timeout` once
/// `poll_timeout`'s instant has come, each time with the call's [`MediaLink`]; the
/// handler runs its media (usually a [`crate::call::CallMedia`]) and sends what it
/// produces through that link. Handlers run on the driver's thread between socket
/// reads and writes: they never block.
pub trait CallHandler: Send {
    /// Something arrived from the link at `now`.
    fn handle_event(&mut self, now: Instant, event: LinkEvent<'_>, link: &mut dyn MediaLink);

    /// The deadline of [`poll_timeout`](Self::poll_timeout) has come: runs what is due
    /// at `now`.
    fn handle_timeout(&mut self, now: Instant, link: &mut dyn MediaLink);

    /// When [`handle_timeout`](Self::handle_timeout) is due next (`None`: never).
    fn poll_timeout(&self) -> Option<Instant>;

    /// Another thread asked for the call's attention (through the waker its driver
    /// handed out, e.g. `transport::reactor::CallWaker`): a bot queued a command or
    /// hung up. Spares the handler a look at shared state on every tick. Default:
    /// nothing.
    fn handle_wake(&mut self, now: Instant, link: &mut dyn MediaLink) {
        let _ = (now, link);
    }
}

/// Why a link could not take a packet or a message. Small and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The link is closed or closing.
    #[error("link closed")]
    Closed,
    /// Larger than the link carries now.
    #[error("packet of {len} bytes exceeds the link's maximum of {max}")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The link's maximum.
        max: usize,
    },
    /// The link cannot carry this (a codec it did not negotiate, a payload illegal for
    /// its codec, a peer that accepts no datagrams); the text says which.
    #[error("link cannot carry this: {0}")]
    Unsupported(&'static str),
    /// A queue on the way is full (the far end does not read): dropped.
    #[error("link queue full")]
    QueueFull,
}

/// Snapshot of one link's counters, written by the link.
///
/// Inbound packets end up in exactly one of `delivered`, `pre_accept_dropped`,
/// `malformed`, `oversized`, `wrong_version`, `unknown_stream`, `flood_dropped`,
/// `queue_full_dropped`; their sum is `packets_received`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Smoothed round-trip time, where the link measures one.
    pub rtt: Option<Duration>,
    /// Largest packet the path carries now (`None`: unknown, or none at all).
    pub max_packet_size: Option<usize>,
    /// Packets of the link's own transport declared lost (QUIC packets, ...).
    pub lost_packets: u64,
    /// Datagrams (or segments) the link's transport put on the wire, handshakes and
    /// acknowledgements included (0 where the transport does not say).
    pub transport_sent: u64,
    /// Datagrams (or segments) the link's transport took off the wire.
    pub transport_received: u64,
    /// Media packets received from the far end.
    pub packets_received: u64,
    /// Media packets handed to the call.
    pub delivered: u64,
    /// Dropped because they arrived before the call was admitted.
    pub pre_accept_dropped: u64,
    /// Dropped: truncated, unknown codec, wrong payload size.
    pub malformed: u64,
    /// Dropped: larger than the protocol allows.
    pub oversized: u64,
    /// Dropped: a protocol version this side does not speak.
    pub wrong_version: u64,
    /// Dropped: a stream (or SSRC) not assigned to the call.
    pub unknown_stream: u64,
    /// Dropped: a datagram kind this side does not know (neither mixed nor unmixed
    /// audio).
    pub unknown_kind: u64,
    /// Dropped: unmixed audio on a call that negotiated none, or naming no
    /// participant (MSI 0).
    pub unmixed_refused: u64,
    /// Dropped by the per-stream rate limit.
    pub flood_dropped: u64,
    /// Dropped because nobody takes them any more (the call is ending).
    pub queue_full_dropped: u64,
    /// Media packets handed to the transport for sending.
    pub packets_sent: u64,
    /// Packets refused by `send_packet` (too large, closed, unsupported).
    pub send_dropped: u64,
    /// Sends that found the transport's send buffer full, so an older queued packet
    /// was discarded to make room.
    pub send_displaced: u64,
    /// Control messages received.
    pub control_received: u64,
    /// Control messages sent.
    pub control_sent: u64,
}

impl LinkStats {
    /// All inbound packets dropped for any reason.
    pub fn inbound_dropped(&self) -> u64 {
        self.pre_accept_dropped
            + self.malformed
            + self.oversized
            + self.wrong_version
            + self.unknown_stream
            + self.unknown_kind
            + self.unmixed_refused
            + self.flood_dropped
            + self.queue_full_dropped
    }
}

/// Why a call's link ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Nothing was received for the idle timeout: the peer vanished (crash, network
    /// loss). A failure.
    PeerVanished {
        /// The idle timeout configured on this side.
        idle_timeout: Duration,
    },
    /// The peer lost its connection state (stateless reset). A failure.
    PeerReset,
    /// The peer left in an orderly way.
    PeerLeft {
        /// The peer's reason.
        reason: String,
    },
    /// The link's protocol was violated. A failure.
    ProtocolError {
        /// What was wrong.
        detail: String,
        /// True if the peer reported our side as faulty; false if we detected the
        /// peer's fault.
        by_peer: bool,
    },
    /// The media server shut down.
    ServerShutdown,
    /// The peer closed with an application code this version does not know.
    PeerClosed {
        /// The code.
        code: u64,
        /// The reason phrase.
        reason: String,
    },
    /// This side closed the link ([`MediaLink::close`]).
    Closed {
        /// The reason given.
        reason: String,
    },
    /// A transport-level error (the peer's stack aborted, version mismatch, ...). A
    /// failure.
    Transport {
        /// The transport's error text.
        detail: String,
    },
}

impl CloseReason {
    /// True for failures (vanished, reset, protocol or transport errors), false for
    /// orderly ends.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            CloseReason::PeerVanished { .. }
                | CloseReason::PeerReset
                | CloseReason::ProtocolError { .. }
                | CloseReason::Transport { .. }
        )
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::PeerVanished { idle_timeout } => {
                write!(f, "peer vanished (nothing received for {idle_timeout:?})")
            }
            CloseReason::PeerReset => f.write_str("peer reset the connection"),
            CloseReason::PeerLeft { reason } => write!(f, "peer left: {reason}"),
            CloseReason::ProtocolError {
                detail,
                by_peer: false,
            } => write!(f, "peer violated the protocol: {detail}"),
            CloseReason::ProtocolError {
                detail,
                by_peer: true,
            } => write!(f, "peer reports a protocol violation by us: {detail}"),
            CloseReason::ServerShutdown => f.write_str("media server shut down"),
            CloseReason::PeerClosed { code, reason } => {
                write!(f, "peer closed with code {code}: {reason}")
            }
            CloseReason::Closed { reason } => write!(f, "closed locally: {reason}"),
            CloseReason::Transport { detail } => write!(f, "transport error: {detail}"),
        }
    }
}
