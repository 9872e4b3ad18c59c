//! The thin quinn driver: [`MediaServer`] (the processor side), [`MediaClient`] (the
//! peer side), and the per-call handle [`MediaConnection`] both return.
//!
//! One QUIC connection carries one call: unreliable DATAGRAM frames for media and
//! one bidirectional stream, opened by the peer, for control messages. Each
//! connection runs its own tasks, so a misbehaving peer only affects itself.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::ratelimit::{RateLimit, TokenBucket};
use crate::registry::SessionRegistry;
use crate::tls::{ServerIdentity, ServerTrust, TlsError};
use crate::wire::{
    Accept, ControlDecoder, ControlMessage, DatagramHeader, DatagramRef, Join, Leave,
    MAX_PAYLOAD_LEN, PROTOCOL_VERSION, Reject, RejectCode, StreamAssignment, StreamDirection,
    WireError, encode_control,
};

/// Application error codes used in QUIC `CONNECTION_CLOSE` frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CloseCode {
    /// Orderly end (leave, handle dropped).
    Normal = 0,
    /// The join was rejected; the reason phrase is the `Reject` JSON.
    Rejected = 1,
    /// The peer broke the control protocol; the reason phrase says how.
    ProtocolError = 2,
    /// No valid `Join` arrived in time.
    JoinTimeout = 3,
    /// The media server is shutting down.
    ServerShutdown = 4,
}

impl CloseCode {
    /// The QUIC varint for this code.
    pub fn to_varint(self) -> VarInt {
        VarInt::from_u32(self as u32)
    }

    fn from_u64(code: u64) -> Option<Self> {
        Some(match code {
            0 => CloseCode::Normal,
            1 => CloseCode::Rejected,
            2 => CloseCode::ProtocolError,
            3 => CloseCode::JoinTimeout,
            4 => CloseCode::ServerShutdown,
            _ => return None,
        })
    }
}

/// Why a media connection ended.
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
    /// The peer left in an orderly way (`Leave` or a normal close).
    PeerLeft {
        /// The peer's reason.
        reason: String,
    },
    /// The control protocol was violated. A failure.
    ProtocolError {
        /// What was wrong.
        detail: String,
        /// True if the peer reported our side as faulty; false if we detected
        /// the peer's fault.
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
    /// This side closed the connection ([`MediaSender::close`] or all handles dropped).
    Closed {
        /// The reason given.
        reason: String,
    },
    /// A QUIC-level error (the peer's stack aborted, version mismatch, ...). A failure.
    Transport {
        /// The quinn error text.
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

    pub(crate) fn from_connection_error(
        e: &quinn::ConnectionError,
        idle_timeout: Duration,
    ) -> Self {
        use quinn::ConnectionError as E;
        match e {
            E::TimedOut => CloseReason::PeerVanished { idle_timeout },
            E::Reset => CloseReason::PeerReset,
            E::LocallyClosed => CloseReason::Closed {
                reason: "closed locally".into(),
            },
            E::ApplicationClosed(c) => {
                let reason = String::from_utf8_lossy(&c.reason).into_owned();
                match CloseCode::from_u64(c.error_code.into_inner()) {
                    Some(CloseCode::Normal) => CloseReason::PeerLeft { reason },
                    Some(CloseCode::ProtocolError) => CloseReason::ProtocolError {
                        detail: reason,
                        by_peer: true,
                    },
                    Some(CloseCode::ServerShutdown) => CloseReason::ServerShutdown,
                    _ => CloseReason::PeerClosed {
                        code: c.error_code.into_inner(),
                        reason,
                    },
                }
            }
            other => CloseReason::Transport {
                detail: other.to_string(),
            },
        }
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
            } => {
                write!(f, "peer violated the protocol: {detail}")
            }
            CloseReason::ProtocolError {
                detail,
                by_peer: true,
            } => {
                write!(f, "peer reports a protocol violation by us: {detail}")
            }
            CloseReason::ServerShutdown => f.write_str("media server shut down"),
            CloseReason::PeerClosed { code, reason } => {
                write!(f, "peer closed with code {code}: {reason}")
            }
            CloseReason::Closed { reason } => write!(f, "closed locally: {reason}"),
            CloseReason::Transport { detail } => write!(f, "transport error: {detail}"),
        }
    }
}

/// Timeouts, buffers and limits of a media connection (both sides).
#[derive(Clone, Debug)]
pub struct TransportSettings {
    /// A connection with nothing received for this long is dead
    /// ([`CloseReason::PeerVanished`]). The effective value is the smaller of both
    /// sides'. Default 5 s.
    pub idle_timeout: Duration,
    /// Keep-alive interval; must be well below `idle_timeout`. Default 1 s.
    pub keep_alive_interval: Duration,
    /// Time allowed for the TLS handshake plus the `Join`/`Accept` exchange.
    /// Default 5 s.
    pub join_timeout: Duration,
    /// Bytes of received datagrams quinn buffers before dropping. Default 256 KiB.
    pub datagram_receive_buffer: usize,
    /// Bytes of outgoing datagrams quinn queues; beyond it the oldest are dropped.
    /// Default 64 KiB (~100 PCM frames).
    pub datagram_send_buffer: usize,
    /// Decoded datagrams queued for the application before new ones are dropped.
    /// Default 256 (5 s of one stream).
    pub receive_queue: usize,
    /// Control messages queued each way. Default 64.
    pub control_queue: usize,
    /// Inbound datagram rate limit per stream.
    pub rate_limit: RateLimit,
    /// Maximum contexts (source + render) per join. Default 16.
    pub max_contexts: usize,
    /// Kernel receive buffer asked for the server's UDP socket (`SO_RCVBUF`; Linux
    /// caps it at `net.core.rmem_max` and doubles it for bookkeeping). With many calls
    /// on one socket the default (≈ 200 KiB) overflows on a scheduling hiccup of a few
    /// milliseconds. Default 4 MiB; 0 keeps the OS default.
    pub udp_receive_buffer: usize,
    /// Kernel send buffer asked for the server's UDP socket (`SO_SNDBUF`). Default
    /// 1 MiB; 0 keeps the OS default.
    pub udp_send_buffer: usize,
    /// Reactor only ([`crate::reactor`]): the shortest time between the starts of two
    /// loop turns while there is work. Packets and ticks that come due meanwhile wait
    /// (at most this long) and share one turn's wake-up and syscalls. Default 1 ms;
    /// zero wakes for every packet.
    pub reactor_batch_interval: Duration,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            idle_timeout: Duration::from_secs(5),
            keep_alive_interval: Duration::from_secs(1),
            join_timeout: Duration::from_secs(5),
            datagram_receive_buffer: 256 * 1024,
            datagram_send_buffer: 64 * 1024,
            receive_queue: 256,
            control_queue: 64,
            rate_limit: RateLimit::default(),
            max_contexts: 16,
            udp_receive_buffer: 4 << 20,
            udp_send_buffer: 1 << 20,
            reactor_batch_interval: Duration::from_millis(1),
        }
    }
}

impl TransportSettings {
    /// Shorthand: these settings with another idle timeout and a keep-alive of a
    /// quarter of it.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self.keep_alive_interval = idle_timeout / 4;
        self
    }

    /// The quinn transport configuration. `max_bidi` is how many bidirectional
    /// streams the peer may open (1 on the server, 0 on the client).
    fn quinn_transport(&self, max_bidi: u32) -> Result<quinn::TransportConfig, TransportError> {
        let mut t = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| TransportError::Config("idle_timeout too large".into()))?;
        t.max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(self.keep_alive_interval))
            .datagram_receive_buffer_size(Some(self.datagram_receive_buffer))
            .datagram_send_buffer_size(self.datagram_send_buffer)
            .max_concurrent_bidi_streams(VarInt::from_u32(max_bidi))
            .max_concurrent_uni_streams(VarInt::from_u32(0));
        Ok(t)
    }
}

/// Errors setting up an endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Binding the UDP socket failed (address in use, permission).
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS material or configuration is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Builds the quinn server configuration used by [`MediaServer`].
pub fn quinn_server_config(
    identity: &ServerIdentity,
    settings: &TransportSettings,
) -> Result<quinn::ServerConfig, TransportError> {
    let tls = identity.rustls_server_config()?;
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(settings.quinn_transport(1)?));
    Ok(cfg)
}

/// Builds the quinn client configuration used by [`MediaClient`] (also handy for
/// tests that need a raw QUIC peer).
pub fn quinn_client_config(
    trust: &ServerTrust,
    settings: &TransportSettings,
) -> Result<quinn::ClientConfig, TransportError> {
    let tls = trust.rustls_client_config()?;
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(settings.quinn_transport(0)?));
    Ok(cfg)
}

// ---------------------------------------------------------------------------------
// Per-connection counters and stats
// ---------------------------------------------------------------------------------

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) pre_accept_dropped: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) oversized: AtomicU64,
    pub(crate) wrong_version: AtomicU64,
    pub(crate) unknown_stream: AtomicU64,
    pub(crate) flood_dropped: AtomicU64,
    pub(crate) queue_full_dropped: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) send_dropped: AtomicU64,
    pub(crate) send_displaced: AtomicU64,
    pub(crate) control_received: AtomicU64,
    pub(crate) control_sent: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Counters {
    /// A snapshot with the connection's RTT, path datagram limit and lost packets.
    pub(crate) fn link_stats(
        &self,
        rtt: Duration,
        max_datagram_size: Option<usize>,
        lost_packets: u64,
    ) -> LinkStats {
        LinkStats {
            rtt,
            max_datagram_size,
            lost_packets,
            datagrams_received: get(&self.received),
            delivered: get(&self.delivered),
            pre_accept_dropped: get(&self.pre_accept_dropped),
            malformed: get(&self.malformed),
            oversized: get(&self.oversized),
            wrong_version: get(&self.wrong_version),
            unknown_stream: get(&self.unknown_stream),
            flood_dropped: get(&self.flood_dropped),
            queue_full_dropped: get(&self.queue_full_dropped),
            datagrams_sent: get(&self.sent),
            send_dropped: get(&self.send_dropped),
            send_displaced: get(&self.send_displaced),
            control_received: get(&self.control_received),
            control_sent: get(&self.control_sent),
        }
    }

    /// Checks one datagram of an admitted connection: decodes its header, finds its
    /// stream's rate limit and takes a token. `None` (counted) if it must be dropped.
    pub(crate) fn check_datagram(
        &self,
        bytes: &[u8],
        buckets: &mut [(u32, TokenBucket)],
        now: Instant,
    ) -> Option<DatagramHeader> {
        let header = match DatagramRef::decode(bytes) {
            Ok(d) => d.header,
            Err(e) => {
                tracing::trace!(error = %e, "dropping malformed datagram");
                inc(match e {
                    WireError::UnsupportedVersion(_) => &self.wrong_version,
                    WireError::PayloadTooLarge { .. } => &self.oversized,
                    _ => &self.malformed,
                });
                return None;
            }
        };
        let Some((_, bucket)) = buckets.iter_mut().find(|(id, _)| *id == header.stream_id) else {
            inc(&self.unknown_stream);
            return None;
        };
        if !bucket.try_take(now) {
            inc(&self.flood_dropped);
            return None;
        }
        Some(header)
    }
}

/// Snapshot of one media connection's counters.
///
/// Inbound datagrams end up in exactly one of `delivered`, `pre_accept_dropped`,
/// `malformed`, `oversized`, `wrong_version`, `unknown_stream`, `flood_dropped`,
/// `queue_full_dropped`; their sum is `datagrams_received`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Smoothed round-trip time (quinn's estimate).
    pub rtt: Duration,
    /// Largest datagram the path currently carries (`None`: datagrams unsupported).
    pub max_datagram_size: Option<usize>,
    /// QUIC packets declared lost.
    pub lost_packets: u64,
    /// Datagrams received from the peer.
    pub datagrams_received: u64,
    /// Datagrams handed to the application.
    pub delivered: u64,
    /// Dropped because they arrived before `Accept`.
    pub pre_accept_dropped: u64,
    /// Dropped: truncated, unknown codec, wrong payload size.
    pub malformed: u64,
    /// Dropped: larger than the protocol maximum.
    pub oversized: u64,
    /// Dropped: unsupported header version.
    pub wrong_version: u64,
    /// Dropped: stream id not assigned in `Accept`.
    pub unknown_stream: u64,
    /// Dropped by the per-stream rate limit.
    pub flood_dropped: u64,
    /// Dropped because the application's receive queue was full (or closed).
    pub queue_full_dropped: u64,
    /// Datagrams handed to QUIC for sending.
    pub datagrams_sent: u64,
    /// Datagrams refused by `send_datagram` (too large, closed, unsupported).
    pub send_dropped: u64,
    /// Sends that found quinn's send buffer full, so an older queued datagram was
    /// discarded to make room.
    pub send_displaced: u64,
    /// Control messages received (after admission).
    pub control_received: u64,
    /// Control messages sent (after admission).
    pub control_sent: u64,
}

impl LinkStats {
    /// All inbound datagrams dropped for any reason.
    pub fn inbound_dropped(&self) -> u64 {
        self.pre_accept_dropped
            + self.malformed
            + self.oversized
            + self.wrong_version
            + self.unknown_stream
            + self.flood_dropped
            + self.queue_full_dropped
    }
}

#[derive(Debug, Default)]
pub(crate) struct ServerCounters {
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) handshake_failed: AtomicU64,
    pub(crate) join_failed: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) pre_accept_dropped: AtomicU64,
}

impl ServerCounters {
    pub(crate) fn snapshot(&self) -> ServerStats {
        ServerStats {
            accepted: get(&self.accepted),
            rejected: get(&self.rejected),
            handshake_failed: get(&self.handshake_failed),
            join_failed: get(&self.join_failed),
            active: get(&self.active),
            pre_accept_dropped: get(&self.pre_accept_dropped),
        }
    }
}

/// Snapshot of a media server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Joins accepted.
    pub accepted: u64,
    /// Joins rejected (by the registry, version, capacity).
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
}

// ---------------------------------------------------------------------------------
// The per-call handle
// ---------------------------------------------------------------------------------

/// A decoded media datagram received from the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDatagram {
    /// Header fields.
    pub header: DatagramHeader,
    /// The frame (a zero-copy slice of the received datagram).
    pub payload: Bytes,
    /// When the driver received it.
    pub received_at: Instant,
}

/// Why a send failed. Sending never blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The datagram is illegal (payload size for codec, too large).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Larger than the path currently carries.
    #[error("datagram of {len} bytes exceeds the path maximum of {max}")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// Path maximum.
        max: usize,
    },
    /// The peer does not accept datagrams.
    #[error("peer does not accept datagrams")]
    DatagramsUnsupported,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// The outgoing control queue is full (the peer is not reading).
    #[error("control queue full")]
    ControlQueueFull,
    /// `Join`, `Accept` and `Reject` are sent by the driver, not the application.
    #[error("handshake messages are sent by the driver")]
    HandshakeMessage,
}

/// What an application's control message becomes: an encoded frame, or leaving.
pub(crate) enum OutgoingControl<'a> {
    /// Queue this frame on the control stream.
    Frame(Vec<u8>),
    /// `Leave`: close the call with this reason.
    Leave(&'a str),
}

impl<'a> OutgoingControl<'a> {
    /// Handshake messages are refused: the driver sends them.
    pub(crate) fn of(msg: &'a ControlMessage) -> Result<Self, SendError> {
        if msg.is_handshake() {
            return Err(SendError::HandshakeMessage);
        }
        if let ControlMessage::Leave(l) = msg {
            return Ok(OutgoingControl::Leave(&l.reason));
        }
        Ok(OutgoingControl::Frame(encode_control(msg)?))
    }
}

/// Run once by the close watcher with the final reason.
type OnClose = Box<dyn FnOnce(&CloseReason) + Send>;

enum WriterCmd {
    Frame(Vec<u8>),
    Leave(Vec<u8>, String),
}

struct LinkShared {
    conn: quinn::Connection,
    counters: Arc<Counters>,
    close_tx: watch::Sender<Option<CloseReason>>,
    /// Keeps a client's endpoint alive as long as the connection.
    _endpoint: Option<quinn::Endpoint>,
}

impl LinkShared {
    /// Records the close reason unless one is already set.
    fn set_reason(&self, reason: CloseReason) {
        self.close_tx.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    fn close(&self, code: CloseCode, reason: CloseReason, phrase: &str) {
        self.set_reason(reason);
        let phrase = truncate_utf8(phrase, 512);
        self.conn.close(code.to_varint(), phrase.as_bytes());
    }
}

pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The sending half of a media connection; cheap to clone, usable from any task.
///
/// When every `MediaSender` (including the one inside [`MediaConnection`]) is dropped,
/// the connection is closed normally.
#[derive(Clone)]
pub struct MediaSender {
    shared: Arc<LinkShared>,
    control_tx: mpsc::Sender<WriterCmd>,
}

impl std::fmt::Debug for MediaSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSender")
            .field("remote", &self.shared.conn.remote_address())
            .finish_non_exhaustive()
    }
}

impl MediaSender {
    /// Encodes and sends one media datagram. Never blocks.
    ///
    /// Refused (and counted in `send_dropped`) if illegal, too large for the path,
    /// or the connection is closed. If quinn's send buffer is full the datagram is
    /// still queued and an older one discarded (counted in `send_displaced`).
    pub fn send_datagram(&self, header: &DatagramHeader, payload: &[u8]) -> Result<(), SendError> {
        let counters = &self.shared.counters;
        let result = self.try_send_datagram(DatagramRef::new(*header, payload));
        match result {
            Ok(()) => inc(&counters.sent),
            Err(_) => inc(&counters.send_dropped),
        }
        result
    }

    fn try_send_datagram(&self, d: DatagramRef<'_>) -> Result<(), SendError> {
        crate::wire::check_payload_len(d.header.codec, d.payload.len(), d.header.flags)?;
        let mut buf = BytesMut::zeroed(d.encoded_len());
        let len = d.encode_into(&mut buf)?;
        let conn = &self.shared.conn;
        match conn.max_datagram_size() {
            None => return Err(SendError::DatagramsUnsupported),
            Some(max) if len > max => return Err(SendError::TooLarge { len, max }),
            Some(_) => {}
        }
        if conn.datagram_send_buffer_space() < len {
            inc(&self.shared.counters.send_displaced);
        }
        conn.send_datagram(buf.freeze()).map_err(|e| match e {
            quinn::SendDatagramError::TooLarge => SendError::TooLarge {
                len,
                max: conn.max_datagram_size().unwrap_or(0),
            },
            quinn::SendDatagramError::ConnectionLost(_) => SendError::Closed,
            _ => SendError::DatagramsUnsupported,
        })
    }

    /// Queues a control message for the peer. Never blocks.
    ///
    /// Sending `Leave` is the same as [`MediaSender::close`] with its reason.
    pub fn send_control(&self, msg: &ControlMessage) -> Result<(), SendError> {
        let frame = match OutgoingControl::of(msg)? {
            OutgoingControl::Leave(reason) => {
                self.close(reason);
                return Ok(());
            }
            OutgoingControl::Frame(frame) => frame,
        };
        match self.control_tx.try_send(WriterCmd::Frame(frame)) {
            Ok(()) => {
                inc(&self.shared.counters.control_sent);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(SendError::ControlQueueFull),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// Leaves the call: sends `Leave { reason }` on the control stream, then closes
    /// the connection normally (the reason also travels in the QUIC close frame).
    /// Returns immediately.
    pub fn close(&self, reason: &str) {
        self.shared.set_reason(CloseReason::Closed {
            reason: reason.to_owned(),
        });
        let leave = ControlMessage::Leave(Leave {
            reason: reason.to_owned(),
        });
        let queued = encode_control(&leave).ok().is_some_and(|frame| {
            self.control_tx
                .try_send(WriterCmd::Leave(frame, reason.to_owned()))
                .is_ok()
        });
        if !queued {
            self.shared.conn.close(
                CloseCode::Normal.to_varint(),
                truncate_utf8(reason, 512).as_bytes(),
            );
        }
    }

    /// Counters and RTT of this connection.
    pub fn stats(&self) -> LinkStats {
        let conn = &self.shared.conn;
        self.shared.counters.link_stats(
            conn.rtt(),
            conn.max_datagram_size(),
            conn.stats().path.lost_packets,
        )
    }

    /// quinn's full statistics for this connection.
    pub fn quic_stats(&self) -> quinn::ConnectionStats {
        self.shared.conn.stats()
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.shared.conn.remote_address()
    }

    /// Why the connection ended, or `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.close_tx.borrow().clone()
    }

    /// Completes when the connection has ended or is closing, with the reason.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.shared.close_tx.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or(CloseReason::Closed {
                reason: String::new(),
            }),
            Err(_) => CloseReason::Closed {
                reason: String::new(),
            },
        }
    }
}

/// One admitted call: send and receive media datagrams and control messages.
///
/// Returned by [`MediaServer::accept`] and [`MediaClient::connect`]. Receiving
/// methods take `&mut self`; use [`MediaConnection::split`] to receive datagrams and
/// control messages from different tasks (or in one `select!`).
#[derive(Debug)]
pub struct MediaConnection {
    sender: MediaSender,
    datagrams: mpsc::Receiver<MediaDatagram>,
    control: mpsc::Receiver<ControlMessage>,
    join: Join,
    accept: Accept,
}

impl MediaConnection {
    /// The `Join` the peer sent (server side) or this side sent (client side).
    pub fn join(&self) -> &Join {
        &self.join
    }

    /// The `Accept` of this call: codec and stream ids.
    pub fn accept(&self) -> &Accept {
        &self.accept
    }

    /// A clone of the sending half.
    pub fn sender(&self) -> MediaSender {
        self.sender.clone()
    }

    /// See [`MediaSender::send_datagram`].
    pub fn send_datagram(&self, header: &DatagramHeader, payload: &[u8]) -> Result<(), SendError> {
        self.sender.send_datagram(header, payload)
    }

    /// See [`MediaSender::send_control`].
    pub fn send_control(&self, msg: &ControlMessage) -> Result<(), SendError> {
        self.sender.send_control(msg)
    }

    /// The next media datagram; `None` once the connection is closed and the queue
    /// drained.
    pub async fn recv_datagram(&mut self) -> Option<MediaDatagram> {
        self.datagrams.recv().await
    }

    /// The next control message; `None` once the connection is closed and the queue
    /// drained.
    pub async fn recv_control(&mut self) -> Option<ControlMessage> {
        self.control.recv().await
    }

    /// See [`MediaSender::stats`].
    pub fn stats(&self) -> LinkStats {
        self.sender.stats()
    }

    /// See [`MediaSender::close`].
    pub fn close(&self, reason: &str) {
        self.sender.close(reason);
    }

    /// See [`MediaSender::closed`].
    pub async fn closed(&self) -> CloseReason {
        self.sender.closed().await
    }

    /// See [`MediaSender::close_reason`].
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.sender.close_reason()
    }

    /// Splits into the sender, the datagram receiver and the control receiver.
    pub fn split(
        self,
    ) -> (
        MediaSender,
        mpsc::Receiver<MediaDatagram>,
        mpsc::Receiver<ControlMessage>,
    ) {
        (self.sender, self.datagrams, self.control)
    }
}

// ---------------------------------------------------------------------------------
// Connection tasks (shared by both sides)
// ---------------------------------------------------------------------------------

/// A connection whose datagram task runs but which is not admitted yet.
struct PreLink {
    conn: quinn::Connection,
    counters: Arc<Counters>,
    admitted: Arc<OnceLock<Vec<u32>>>,
    datagrams: mpsc::Receiver<MediaDatagram>,
}

/// Starts the datagram task. With `streams` the link is admitted from the start
/// (client side, after `Accept`); without, datagrams are dropped until
/// `PreLink::admitted` is set (server side, while the join is examined).
fn start_prelink(
    conn: quinn::Connection,
    settings: &TransportSettings,
    server: Option<Arc<ServerCounters>>,
    streams: Option<Vec<u32>>,
) -> PreLink {
    let counters = Arc::new(Counters::default());
    let admitted = Arc::new(OnceLock::new());
    if let Some(streams) = streams {
        let _ = admitted.set(streams);
    }
    let (tx, rx) = mpsc::channel(settings.receive_queue.max(1));
    tokio::spawn(datagram_loop(
        conn.clone(),
        counters.clone(),
        admitted.clone(),
        tx,
        settings.rate_limit,
        server,
    ));
    PreLink {
        conn,
        counters,
        admitted,
        datagrams: rx,
    }
}

async fn datagram_loop(
    conn: quinn::Connection,
    counters: Arc<Counters>,
    admitted: Arc<OnceLock<Vec<u32>>>,
    tx: mpsc::Sender<MediaDatagram>,
    limit: RateLimit,
    server: Option<Arc<ServerCounters>>,
) {
    let mut buckets: Vec<(u32, TokenBucket)> = Vec::new();
    while let Ok(bytes) = conn.read_datagram().await {
        let now = Instant::now();
        inc(&counters.received);
        let Some(streams) = admitted.get() else {
            inc(&counters.pre_accept_dropped);
            if let Some(s) = &server {
                inc(&s.pre_accept_dropped);
            }
            continue;
        };
        if buckets.is_empty() {
            buckets = streams
                .iter()
                .map(|&id| (id, TokenBucket::new(limit)))
                .collect();
        }
        let Some(header) = counters.check_datagram(&bytes, &mut buckets, now) else {
            continue;
        };
        let payload = bytes.slice(crate::wire::HEADER_LEN..);
        match tx.try_send(MediaDatagram {
            header,
            payload,
            received_at: now,
        }) {
            Ok(()) => inc(&counters.delivered),
            Err(_) => inc(&counters.queue_full_dropped),
        }
    }
}

/// Runs after admission: spawns the control reader/writer and the close watcher.
#[allow(clippy::too_many_arguments)]
fn finish_link(
    pre: PreLink,
    send: SendStream,
    recv: RecvStream,
    decoder: ControlDecoder,
    join: Join,
    accept: Accept,
    settings: &TransportSettings,
    endpoint: Option<quinn::Endpoint>,
    on_close: Option<OnClose>,
) -> MediaConnection {
    let (close_tx, _) = watch::channel(None);
    let shared = Arc::new(LinkShared {
        conn: pre.conn,
        counters: pre.counters,
        close_tx,
        _endpoint: endpoint,
    });
    let (control_tx, control_rx) = mpsc::channel(settings.control_queue.max(1));
    let (inbound_tx, inbound_rx) = mpsc::channel(settings.control_queue.max(1));
    tokio::spawn(control_writer(shared.clone(), send, control_rx));
    tokio::spawn(control_reader(shared.clone(), recv, decoder, inbound_tx));
    tokio::spawn(close_watcher(
        shared.clone(),
        settings.idle_timeout,
        on_close,
    ));
    MediaConnection {
        sender: MediaSender { shared, control_tx },
        datagrams: pre.datagrams,
        control: inbound_rx,
        join,
        accept,
    }
}

async fn close_watcher(shared: Arc<LinkShared>, idle_timeout: Duration, on_close: Option<OnClose>) {
    let err = shared.conn.closed().await;
    shared.set_reason(CloseReason::from_connection_error(&err, idle_timeout));
    let reason = shared.close_tx.borrow().clone();
    if let Some(reason) = reason {
        tracing::debug!(remote = %shared.conn.remote_address(), %reason, "media connection closed");
        if let Some(f) = on_close {
            f(&reason);
        }
    }
}

async fn control_writer(
    shared: Arc<LinkShared>,
    mut send: SendStream,
    mut rx: mpsc::Receiver<WriterCmd>,
) {
    loop {
        match rx.recv().await {
            Some(WriterCmd::Frame(frame)) => {
                if send.write_all(&frame).await.is_err() {
                    return;
                }
            }
            Some(WriterCmd::Leave(frame, reason)) => {
                if send.write_all(&frame).await.is_ok() && send.finish().is_ok() {
                    // Give the Leave a moment to be acknowledged; the close frame
                    // carries the reason anyway.
                    let _ = tokio::time::timeout(Duration::from_millis(250), send.stopped()).await;
                }
                let phrase = truncate_utf8(&reason, 512);
                shared
                    .conn
                    .close(CloseCode::Normal.to_varint(), phrase.as_bytes());
                return;
            }
            None => {
                // Every MediaSender is gone: nobody can use this call any more.
                shared.close(
                    CloseCode::Normal,
                    CloseReason::Closed {
                        reason: "handle dropped".into(),
                    },
                    "handle dropped",
                );
                return;
            }
        }
    }
}

async fn control_reader(
    shared: Arc<LinkShared>,
    mut recv: RecvStream,
    mut decoder: ControlDecoder,
    tx: mpsc::Sender<ControlMessage>,
) {
    let mut buf = vec![0u8; 8192];
    loop {
        while let Some(next) = decoder.poll() {
            match next {
                Ok(ControlMessage::Leave(l)) => {
                    inc(&shared.counters.control_received);
                    let phrase = format!("peer left: {}", l.reason);
                    shared.close(
                        CloseCode::Normal,
                        CloseReason::PeerLeft { reason: l.reason },
                        &phrase,
                    );
                    return;
                }
                Ok(m) if m.is_handshake() => {
                    let detail = format!("unexpected {} message after admission", m.kind());
                    protocol_error(&shared, detail);
                    return;
                }
                Ok(m) => {
                    inc(&shared.counters.control_received);
                    // A closed receiver means the application does not want control
                    // messages; keep reading so Leave and errors are still seen.
                    let _ = tx.send(m).await;
                }
                Err(e) => {
                    protocol_error(&shared, format!("control stream: {e}"));
                    return;
                }
            }
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => decoder.push(&buf[..n]),
            // The peer finished or reset its control stream, or the connection
            // closed: the close watcher reports the outcome.
            Ok(None) | Err(_) => return,
        }
    }
}

fn protocol_error(shared: &LinkShared, detail: String) {
    tracing::debug!(remote = %shared.conn.remote_address(), %detail, "closing: protocol error");
    let phrase = detail.clone();
    shared.close(
        CloseCode::ProtocolError,
        CloseReason::ProtocolError {
            detail,
            by_peer: false,
        },
        &phrase,
    );
}

/// Reads from `recv` until the decoder yields one message.
async fn read_one(
    recv: &mut RecvStream,
    decoder: &mut ControlDecoder,
) -> Result<Result<ControlMessage, WireError>, HandshakeFailure> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(r) = decoder.poll() {
            return Ok(r);
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => decoder.push(&buf[..n]),
            Ok(None) => return Err(HandshakeFailure::StreamEnded),
            Err(quinn::ReadError::ConnectionLost(e)) => {
                return Err(HandshakeFailure::Connection(e));
            }
            Err(e) => return Err(HandshakeFailure::Read(e.to_string())),
        }
    }
}

enum HandshakeFailure {
    StreamEnded,
    Connection(quinn::ConnectionError),
    Read(String),
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeFailure::StreamEnded => f.write_str("control stream ended during admission"),
            HandshakeFailure::Connection(e) => write!(f, "connection lost: {e}"),
            HandshakeFailure::Read(e) => write!(f, "control stream: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------

/// Configuration of a [`MediaServer`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// UDP address to listen on (the `host:port` of the blob's `mpUri`).
    pub listen: SocketAddr,
    /// Certificate and key to present.
    pub identity: ServerIdentity,
    /// Timeouts, buffers, limits.
    pub settings: TransportSettings,
    /// Admitted connections queued for [`MediaServer::accept`]; when full, new joins
    /// are rejected with [`RejectCode::Overloaded`]. Default 64.
    pub accept_queue: usize,
}

impl ServerConfig {
    /// A configuration with default settings.
    pub fn new(listen: SocketAddr, identity: ServerIdentity) -> Self {
        ServerConfig {
            listen,
            identity,
            settings: TransportSettings::default(),
            accept_queue: 64,
        }
    }
}

/// The media processor's QUIC listener. Admits joins through a
/// [`SessionRegistry`] and hands out one [`MediaConnection`] per call.
pub struct MediaServer {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    buffers: SocketBuffers,
    accepted: tokio::sync::Mutex<mpsc::Receiver<MediaConnection>>,
    counters: Arc<ServerCounters>,
    accept_task: JoinHandle<()>,
}

impl std::fmt::Debug for MediaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Kernel buffer sizes of a UDP socket, in bytes, as the kernel reports them (on
/// Linux twice what was asked, up to twice `net.core.rmem_max` / `wmem_max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketBuffers {
    /// `SO_RCVBUF`.
    pub receive: usize,
    /// `SO_SNDBUF`.
    pub send: usize,
}

/// Binds a non-blocking UDP socket with the kernel buffers the settings ask for.
/// A buffer the kernel refuses is only logged: the socket still works.
pub(crate) fn bind_udp(
    addr: SocketAddr,
    settings: &TransportSettings,
    reuse_port: bool,
) -> std::io::Result<(std::net::UdpSocket, SocketBuffers)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // As std's bind does: a v6 wildcard also takes v4 where the OS allows.
        let _ = socket.set_only_v6(false);
    }
    if settings.udp_receive_buffer > 0
        && let Err(e) = socket.set_recv_buffer_size(settings.udp_receive_buffer)
    {
        tracing::warn!(error = %e, "SO_RCVBUF {} refused", settings.udp_receive_buffer);
    }
    if settings.udp_send_buffer > 0
        && let Err(e) = socket.set_send_buffer_size(settings.udp_send_buffer)
    {
        tracing::warn!(error = %e, "SO_SNDBUF {} refused", settings.udp_send_buffer);
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    let buffers = SocketBuffers {
        receive: socket.recv_buffer_size().unwrap_or(0),
        send: socket.send_buffer_size().unwrap_or(0),
    };
    Ok((socket.into(), buffers))
}

impl MediaServer {
    /// Binds the UDP socket and starts accepting. Must be called inside a tokio
    /// runtime.
    pub fn bind(
        config: ServerConfig,
        registry: Arc<dyn SessionRegistry>,
    ) -> Result<MediaServer, TransportError> {
        let server_cfg = quinn_server_config(&config.identity, &config.settings)?;
        let bind_err = |source| TransportError::Bind {
            addr: config.listen,
            source,
        };
        let (socket, buffers) =
            bind_udp(config.listen, &config.settings, false).map_err(bind_err)?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| TransportError::Config("no tokio runtime to bind in".into()))?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server_cfg),
            socket,
            runtime,
        )
        .map_err(bind_err)?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: config.listen,
                source,
            })?;
        let (tx, rx) = mpsc::channel(config.accept_queue.max(1));
        let counters = Arc::new(ServerCounters::default());
        let accept_task = tokio::spawn(accept_loop(
            endpoint.clone(),
            Arc::new(config.settings),
            registry,
            tx,
            counters.clone(),
        ));
        tracing::info!(
            %local_addr,
            udp_receive_buffer = buffers.receive,
            udp_send_buffer = buffers.send,
            "media server listening"
        );
        Ok(MediaServer {
            endpoint,
            local_addr,
            buffers,
            accepted: tokio::sync::Mutex::new(rx),
            counters,
            accept_task,
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The kernel socket buffer sizes the server's UDP socket got.
    pub fn socket_buffers(&self) -> SocketBuffers {
        self.buffers
    }

    /// The next admitted call. `None` after [`MediaServer::shutdown`].
    pub async fn accept(&self) -> Option<MediaConnection> {
        self.accepted.lock().await.recv().await
    }

    /// Server-wide counters.
    pub fn stats(&self) -> ServerStats {
        self.counters.snapshot()
    }

    /// Closes every connection ([`CloseReason::ServerShutdown`] at the peers) and
    /// waits (up to 1 s) for the close to be sent.
    pub async fn shutdown(&self) {
        self.accept_task.abort();
        self.endpoint
            .close(CloseCode::ServerShutdown.to_varint(), b"server shutdown");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.endpoint
            .close(CloseCode::ServerShutdown.to_varint(), b"server shutdown");
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    settings: Arc<TransportSettings>,
    registry: Arc<dyn SessionRegistry>,
    tx: mpsc::Sender<MediaConnection>,
    counters: Arc<ServerCounters>,
) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(serve_connection(
            incoming,
            settings.clone(),
            registry.clone(),
            tx.clone(),
            counters.clone(),
        ));
    }
}

async fn serve_connection(
    incoming: quinn::Incoming,
    settings: Arc<TransportSettings>,
    registry: Arc<dyn SessionRegistry>,
    tx: mpsc::Sender<MediaConnection>,
    counters: Arc<ServerCounters>,
) {
    let deadline = tokio::time::Instant::now() + settings.join_timeout;
    let conn = match tokio::time::timeout_at(deadline, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "handshake failed");
            inc(&counters.handshake_failed);
            return;
        }
        Err(_) => {
            tracing::debug!("handshake timed out");
            inc(&counters.handshake_failed);
            return;
        }
    };
    let remote = conn.remote_address();
    let pre = start_prelink(conn.clone(), &settings, Some(counters.clone()), None);

    // Wait for the control stream and the Join, dropping early datagrams meanwhile.
    let first = tokio::time::timeout_at(deadline, async {
        let (send, mut recv) = conn
            .accept_bi()
            .await
            .map_err(HandshakeFailure::Connection)?;
        let mut decoder = ControlDecoder::new();
        let msg = read_one(&mut recv, &mut decoder).await?;
        Ok::<_, HandshakeFailure>((send, recv, decoder, msg))
    })
    .await;
    let fail = |code: CloseCode, detail: String| {
        tracing::debug!(%remote, %detail, "closing before admission");
        inc(&counters.join_failed);
        conn.close(code.to_varint(), truncate_utf8(&detail, 512).as_bytes());
    };
    let (mut send, recv, decoder, join) = match first {
        Err(_) => return fail(CloseCode::JoinTimeout, "no join received in time".into()),
        Ok(Err(HandshakeFailure::Connection(e))) => {
            tracing::debug!(%remote, error = %e, "connection lost before join");
            inc(&counters.join_failed);
            return;
        }
        Ok(Err(e)) => return fail(CloseCode::ProtocolError, e.to_string()),
        Ok(Ok((_, _, _, Err(e)))) => {
            return fail(CloseCode::ProtocolError, format!("invalid join: {e}"));
        }
        Ok(Ok((send, recv, decoder, Ok(ControlMessage::Join(join))))) => {
            (send, recv, decoder, join)
        }
        Ok(Ok((_, _, _, Ok(other)))) => {
            return fail(
                CloseCode::ProtocolError,
                format!("expected a join message, got {}", other.kind()),
            );
        }
    };

    let session = join.mp_media_session_id;
    let reject = |reject: Reject, mut send: SendStream| {
        let conn = conn.clone();
        let counters = counters.clone();
        async move {
            tracing::info!(%remote, %session, reason = %reject, "join rejected");
            inc(&counters.rejected);
            let body = serde_json::to_string(&reject).unwrap_or_default();
            if let Ok(frame) = encode_control(&ControlMessage::Reject(reject)) {
                let write = tokio::time::timeout(Duration::from_secs(1), send.write_all(&frame));
                if matches!(write.await, Ok(Ok(()))) {
                    let _ = send.finish();
                }
            }
            // The peer closes once it has read the Reject; don't wait forever.
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.closed()).await;
            conn.close(
                CloseCode::Rejected.to_varint(),
                truncate_utf8(&body, 512).as_bytes(),
            );
        }
    };

    if let Err(r) = check_join(&join, &settings) {
        return reject(r, send).await;
    }
    let Ok(permit) = tx.try_reserve() else {
        return reject(
            Reject::new(RejectCode::Overloaded, "accept queue full"),
            send,
        )
        .await;
    };
    let admission = match registry.admit(&join) {
        Ok(a) => a,
        Err(r) => return reject(r, send).await,
    };
    let codec = admission.codec.unwrap_or(join.codecs[0]);
    if !join.codecs.contains(&codec) {
        registry.release(
            &join,
            &CloseReason::Closed {
                reason: "rejected".into(),
            },
        );
        let msg = format!("registry chose {codec}, which the peer did not offer");
        return reject(Reject::new(RejectCode::NoCommonCodec, msg), send).await;
    }

    let accept = Accept {
        version: PROTOCOL_VERSION,
        codec,
        streams: assign_streams(&join),
        max_payload: MAX_PAYLOAD_LEN as u32,
    };
    let _ = pre
        .admitted
        .set(accept.streams.iter().map(|s| s.stream_id).collect());
    let sent = match encode_control(&ControlMessage::Accept(accept.clone())) {
        Ok(frame) => matches!(
            tokio::time::timeout(settings.join_timeout, send.write_all(&frame)).await,
            Ok(Ok(()))
        ),
        Err(_) => false,
    };
    if !sent {
        conn.close(
            CloseCode::ProtocolError.to_varint(),
            b"could not send accept",
        );
        registry.release(
            &join,
            &CloseReason::Closed {
                reason: "accept not sent".into(),
            },
        );
        inc(&counters.join_failed);
        return;
    }
    inc(&counters.accepted);
    inc(&counters.active);
    tracing::info!(%remote, session = %join.mp_media_session_id, %codec, "join accepted");
    let on_close: OnClose = {
        let join = join.clone();
        let counters = counters.clone();
        Box::new(move |reason: &CloseReason| {
            counters.active.fetch_sub(1, Ordering::Relaxed);
            registry.release(&join, reason);
        })
    };
    let link = finish_link(
        pre,
        send,
        recv,
        decoder,
        join,
        accept,
        &settings,
        None,
        Some(on_close),
    );
    permit.send(link);
}

/// The server's own checks of a join before the registry sees it: protocol version,
/// 1 to `max_contexts` distinct contexts, at least one codec.
pub(crate) fn check_join(join: &Join, settings: &TransportSettings) -> Result<(), Reject> {
    if join.version != PROTOCOL_VERSION {
        let msg = format!(
            "protocol version {} not supported (server speaks {PROTOCOL_VERSION})",
            join.version
        );
        return Err(Reject::new(RejectCode::UnsupportedVersion, msg));
    }
    if join.context_count() == 0 || join.context_count() > settings.max_contexts {
        let msg = format!(
            "a join needs 1 to {} contexts, got {}",
            settings.max_contexts,
            join.context_count()
        );
        return Err(Reject::new(RejectCode::InvalidJoin, msg));
    }
    let mut contexts: Vec<&uuid::Uuid> = join
        .audio_source_contexts
        .iter()
        .chain(&join.audio_render_contexts)
        .collect();
    contexts.sort_unstable();
    contexts.dedup();
    if contexts.len() != join.context_count() {
        return Err(Reject::new(
            RejectCode::InvalidJoin,
            "a context GUID appears twice",
        ));
    }
    if join.codecs.is_empty() {
        return Err(Reject::new(RejectCode::InvalidJoin, "no codecs offered"));
    }
    Ok(())
}

/// Stream ids: audio source contexts get 1, 2, ... in join order, render contexts
/// continue the numbering.
pub(crate) fn assign_streams(join: &Join) -> Vec<StreamAssignment> {
    let sources = join
        .audio_source_contexts
        .iter()
        .map(|c| (c, StreamDirection::Source));
    let renders = join
        .audio_render_contexts
        .iter()
        .map(|c| (c, StreamDirection::Render));
    sources
        .chain(renders)
        .zip(1u32..)
        .map(|((context, direction), stream_id)| StreamAssignment {
            context: *context,
            stream_id,
            direction,
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------

/// Configuration of the peer side.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The media server's address (`host:port` of the `mpUri`).
    pub server: SocketAddr,
    /// Name to verify in the certificate ([`ServerTrust::Roots`]) and to send as SNI.
    pub server_name: String,
    /// How to trust the server's certificate.
    pub trust: ServerTrust,
    /// Timeouts, buffers, limits.
    pub settings: TransportSettings,
    /// Local address to bind; default: unspecified address of the server's family, port 0.
    pub bind: Option<SocketAddr>,
}

impl ClientConfig {
    /// A configuration with default settings and server name "localhost".
    pub fn new(server: SocketAddr, trust: ServerTrust) -> Self {
        ClientConfig {
            server,
            server_name: "localhost".into(),
            trust,
            settings: TransportSettings::default(),
            bind: None,
        }
    }
}

/// Why [`MediaClient::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Local setup failed (bind, TLS configuration).
    #[error(transparent)]
    Setup(#[from] TransportError),
    /// quinn refused to start the connection (bad server name, ...).
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC/TLS handshake failed (e.g. the certificate is not trusted) or the
    /// connection was lost during admission.
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The server rejected the join.
    #[error("join rejected: {0}")]
    Rejected(Reject),
    /// The server broke the protocol during admission.
    #[error("protocol error during admission: {0}")]
    Protocol(String),
    /// The handshake or admission took longer than `join_timeout`.
    #[error("timed out connecting")]
    Timeout,
}

/// The peer side: connects to a media server and joins a session.
#[derive(Debug, Clone, Copy)]
pub struct MediaClient;

impl MediaClient {
    /// Connects, sends `join`, and waits for `Accept`. Must be called inside a tokio
    /// runtime.
    pub async fn connect(
        config: ClientConfig,
        join: Join,
    ) -> Result<MediaConnection, ConnectError> {
        let bind = config.bind.unwrap_or(match config.server {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        });
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|source| TransportError::Bind { addr: bind, source })?;
        endpoint.set_default_client_config(quinn_client_config(&config.trust, &config.settings)?);
        let connecting = endpoint.connect(config.server, &config.server_name)?;
        let settings = config.settings;
        let result = tokio::time::timeout(settings.join_timeout, async {
            let conn = connecting.await?;
            let (mut send, mut recv) = conn.open_bi().await?;
            let frame = encode_control(&ControlMessage::Join(join.clone()))
                .map_err(|e| ConnectError::Protocol(format!("cannot encode join: {e}")))?;
            send.write_all(&frame).await.map_err(|e| match e {
                quinn::WriteError::ConnectionLost(e) => rejected_or(e),
                other => ConnectError::Protocol(other.to_string()),
            })?;
            let mut decoder = ControlDecoder::new();
            let msg = match read_one(&mut recv, &mut decoder).await {
                Ok(m) => m,
                Err(HandshakeFailure::Connection(e)) => return Err(rejected_or(e)),
                Err(other) => {
                    // The server may have closed right after writing Reject.
                    if let Some(e) = conn.close_reason() {
                        return Err(rejected_or(e));
                    }
                    return Err(ConnectError::Protocol(other.to_string()));
                }
            };
            match msg {
                Ok(ControlMessage::Accept(accept)) => {
                    if accept.version != PROTOCOL_VERSION || !join.codecs.contains(&accept.codec) {
                        let detail = format!(
                            "unacceptable accept (version {}, codec {})",
                            accept.version, accept.codec
                        );
                        conn.close(CloseCode::ProtocolError.to_varint(), detail.as_bytes());
                        return Err(ConnectError::Protocol(detail));
                    }
                    // The datagram task starts only now: datagrams the server sent
                    // right after Accept wait in quinn's receive buffer meanwhile.
                    let streams = accept.streams.iter().map(|s| s.stream_id).collect();
                    let pre = start_prelink(conn.clone(), &settings, None, Some(streams));
                    Ok((pre, send, recv, decoder, accept))
                }
                Ok(ControlMessage::Reject(r)) => {
                    conn.close(CloseCode::Normal.to_varint(), b"rejected");
                    Err(ConnectError::Rejected(r))
                }
                Ok(other) => {
                    let detail = format!("expected accept or reject, got {}", other.kind());
                    conn.close(CloseCode::ProtocolError.to_varint(), detail.as_bytes());
                    Err(ConnectError::Protocol(detail))
                }
                Err(e) => {
                    let detail = format!("invalid reply to join: {e}");
                    conn.close(CloseCode::ProtocolError.to_varint(), detail.as_bytes());
                    Err(ConnectError::Protocol(detail))
                }
            }
        })
        .await;
        let (pre, send, recv, decoder, accept) = match result {
            Ok(r) => r?,
            Err(_) => {
                endpoint.close(CloseCode::JoinTimeout.to_varint(), b"join timed out");
                return Err(ConnectError::Timeout);
            }
        };
        Ok(finish_link(
            pre,
            send,
            recv,
            decoder,
            join,
            accept,
            &settings,
            Some(endpoint),
            None,
        ))
    }
}

/// A connection error seen during admission: a `Rejected` close carries the Reject.
fn rejected_or(e: quinn::ConnectionError) -> ConnectError {
    if let quinn::ConnectionError::ApplicationClosed(c) = &e
        && c.error_code == CloseCode::Rejected.to_varint()
        && let Ok(r) = serde_json::from_slice::<Reject>(&c.reason)
    {
        return ConnectError::Rejected(r);
    }
    ConnectError::Connection(e)
}
