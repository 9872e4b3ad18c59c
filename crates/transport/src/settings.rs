//! Settings and errors of the QUIC media transport, the quinn-proto configurations
//! built from them, and the UDP socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use media_core::link::CloseReason;
use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{ConnectionError, IdleTimeout, VarInt};

use crate::ratelimit::RateLimit;
use crate::tls::{ServerIdentity, ServerTrust, TlsError};
use crate::wire::Reject;

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
    /// Inbound datagram rate limit per stream.
    pub rate_limit: RateLimit,
    /// Maximum contexts (source + render) per join. Default 16.
    pub max_contexts: usize,
    /// Kernel receive buffer asked for the UDP socket (`SO_RCVBUF`; Linux caps it at
    /// `net.core.rmem_max` and doubles it for bookkeeping). With many calls on one
    /// socket the default (≈ 200 KiB) overflows on a scheduling hiccup of a few
    /// milliseconds. Default 4 MiB; 0 keeps the OS default.
    pub udp_receive_buffer: usize,
    /// Kernel send buffer asked for the UDP socket (`SO_SNDBUF`). Default 1 MiB; 0
    /// keeps the OS default.
    pub udp_send_buffer: usize,
    /// The shortest time between the starts of two reactor turns while there is work.
    /// Packets and ticks that come due meanwhile wait (at most this long) and share
    /// one turn's wake-up and syscalls. Default 1 ms; zero wakes for every packet.
    pub reactor_batch_interval: Duration,
    /// Server side: QUIC handshakes in flight (per reactor thread) from which a new
    /// connection attempt whose source address is not yet validated is answered
    /// with a stateless QUIC Retry instead of being accepted. The client must echo the
    /// Retry token from its address, which proves it receives there (a spoofed
    /// source cannot), and only then gets connection state; a Retry is smaller than
    /// the Initial it answers, so nothing is amplified. Below the threshold a
    /// connection saves that round trip. A handshake is in flight from its first
    /// Initial until its join is admitted or its connection state is gone (a
    /// refused or timed-out attempt counts until QUIC has drained it).
    /// Default 16; 0 sends a Retry to every new connection.
    pub retry_threshold: usize,
    /// Server side: the most handshakes in flight per reactor thread, validated or
    /// not; Initials beyond it are dropped without an answer (a genuine client sends
    /// its Initial again after a probe timeout) and counted in
    /// [`ServerStats::handshakes_dropped`](crate::quic::ServerStats::handshakes_dropped).
    /// Default 1024.
    pub max_handshakes: usize,
    /// Server side: the most handshakes in flight per reactor thread from one source
    /// IP address; beyond it Initials are dropped as for `max_handshakes`. Default
    /// 256 (a media platform may run many calls from few addresses).
    pub max_handshakes_per_source: usize,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            idle_timeout: Duration::from_secs(5),
            keep_alive_interval: Duration::from_secs(1),
            join_timeout: Duration::from_secs(5),
            datagram_receive_buffer: 256 * 1024,
            datagram_send_buffer: 64 * 1024,
            rate_limit: RateLimit::default(),
            max_contexts: 16,
            udp_receive_buffer: 4 << 20,
            udp_send_buffer: 1 << 20,
            reactor_batch_interval: Duration::from_millis(1),
            retry_threshold: 16,
            max_handshakes: 1024,
            max_handshakes_per_source: 256,
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

    /// Settings of a throw-away probe socket: OS default buffers.
    fn probe() -> Self {
        TransportSettings {
            udp_receive_buffer: 0,
            udp_send_buffer: 0,
            ..TransportSettings::default()
        }
    }

    /// The QUIC transport configuration. `max_bidi` is how many bidirectional streams
    /// the peer may open (1 on the server, 0 on the client).
    fn quic_transport(
        &self,
        max_bidi: u32,
    ) -> Result<quinn_proto::TransportConfig, TransportError> {
        let mut t = quinn_proto::TransportConfig::default();
        let idle = IdleTimeout::try_from(self.idle_timeout)
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
    /// Another process (or another server of this one) already serves the UDP port:
    /// the port is not shared with it.
    #[error(
        "UDP port {} on {} is already in use by another process (a media processor must \
         own its port; choose another port or stop the other one)",
        .addr.port(),
        .addr.ip()
    )]
    PortInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// TLS material or configuration is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// The QUIC server configuration of a media server.
pub fn quic_server_config(
    identity: &ServerIdentity,
    settings: &TransportSettings,
) -> Result<quinn_proto::ServerConfig, TransportError> {
    let tls = identity.rustls_server_config()?;
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn_proto::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(settings.quic_transport(1)?));
    Ok(cfg)
}

/// The QUIC client configuration of a peer (also what tests' raw QUIC peers use).
pub fn quic_client_config(
    trust: &ServerTrust,
    settings: &TransportSettings,
) -> Result<quinn_proto::ClientConfig, TransportError> {
    let tls = trust.rustls_client_config()?;
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn_proto::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(settings.quic_transport(0)?));
    Ok(cfg)
}

/// Configuration of a media server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// UDP address to listen on (the `host:port` of the blob's `mpUri`).
    pub listen: SocketAddr,
    /// Certificate and key to present.
    pub identity: ServerIdentity,
    /// Timeouts, buffers, limits.
    pub settings: TransportSettings,
}

impl ServerConfig {
    /// A configuration with default settings.
    pub fn new(listen: SocketAddr, identity: ServerIdentity) -> Self {
        ServerConfig {
            listen,
            identity,
            settings: TransportSettings::default(),
        }
    }
}

/// Configuration of one dial (the peer side).
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
}

impl ClientConfig {
    /// A configuration with default settings and server name "localhost".
    pub fn new(server: SocketAddr, trust: ServerTrust) -> Self {
        ClientConfig {
            server,
            server_name: "localhost".into(),
            trust,
            settings: TransportSettings::default(),
        }
    }
}

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Local setup failed (bind, TLS configuration, the reactor is gone).
    #[error(transparent)]
    Setup(#[from] TransportError),
    /// QUIC refused to start the connection (bad server name, ...).
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn_proto::ConnectError),
    /// The QUIC/TLS handshake failed (e.g. the certificate is not trusted) or the
    /// connection was lost during admission.
    #[error("connection failed: {0}")]
    Connection(#[from] ConnectionError),
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

impl ConnectError {
    /// The error of a connection lost during admission: a `Rejected` close carries
    /// the server's `Reject`.
    pub(crate) fn lost(e: &ConnectionError) -> Self {
        if let ConnectionError::ApplicationClosed(c) = e
            && c.error_code == CloseCode::Rejected.to_varint()
            && let Ok(r) = serde_json::from_slice::<Reject>(&c.reason)
        {
            return ConnectError::Rejected(r);
        }
        ConnectError::Connection(e.clone())
    }
}

/// Application error codes in QUIC `CONNECTION_CLOSE` frames (docs/wire-format.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CloseCode {
    /// Orderly end (leave, hang-up).
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

    /// The code of a QUIC application error code, if this version knows it.
    pub fn from_u64(code: u64) -> Option<Self> {
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

/// Why a QUIC connection ended, as the call's [`CloseReason`].
pub fn close_reason(e: &ConnectionError, idle_timeout: Duration) -> CloseReason {
    use ConnectionError as E;
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

/// Binds the `count` (at least 1) UDP sockets of one server on `addr`, all on one
/// port, and makes sure no other process shares that port.
///
/// One socket is bound as usual, without `SO_REUSEPORT`: the kernel refuses it if
/// anything else is bound there. Several sockets need `SO_REUSEPORT`, and Linux lets
/// any process of the same user join such a group, so exclusivity takes two steps:
/// 1. a probe socket is bound on the address *without* `SO_REUSEPORT` and closed
///    again: it fails if any socket (reuse-port or not) holds the port, which is the
///    case of a second processor started while the first serves;
/// 2. after the group is bound, the kernel's table of UDP sockets (`/proc/net/udp`,
///    `udp6`) must list exactly `count` sockets on the port at an overlapping
///    address: it catches another processor that started in the instant between
///    step 1 and the binds (both then see each other's sockets and both fail, never
///    both serve). Where that table cannot be read the check is skipped (step 1
///    still holds).
///
/// Later binds by others fail at their own step 1. An address in use yields
/// [`TransportError::PortInUse`]. Returns the sockets and the first's buffer sizes.
pub(crate) fn bind_exclusive(
    addr: SocketAddr,
    settings: &TransportSettings,
    count: usize,
) -> Result<(Vec<std::net::UdpSocket>, SocketBuffers), TransportError> {
    let count = count.max(1);
    let bind_err = |a: SocketAddr| {
        move |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                TransportError::PortInUse { addr: a }
            } else {
                TransportError::Bind { addr: a, source }
            }
        }
    };
    if count == 1 {
        let (s, buffers) = bind_udp(addr, settings, false).map_err(bind_err(addr))?;
        return Ok((vec![s], buffers));
    }
    // Port 0: the group takes the port the kernel gave the probe. Another socket may
    // take that port between the probe's close and the group's bind (the kernel hands
    // out a freed ephemeral port again): then try another port. An explicit port is
    // tried once.
    let attempts = if addr.port() == 0 { 8 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        match bind_group(addr, settings, count, bind_err) {
            Err(e @ TransportError::PortInUse { .. }) => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or(TransportError::PortInUse { addr }))
}

/// One try of [`bind_exclusive`] with several sockets: the probe, the group, the
/// kernel table's check.
fn bind_group<F, E>(
    addr: SocketAddr,
    settings: &TransportSettings,
    count: usize,
    bind_err: F,
) -> Result<(Vec<std::net::UdpSocket>, SocketBuffers), TransportError>
where
    F: Fn(SocketAddr) -> E,
    E: FnMut(std::io::Error) -> TransportError,
{
    let probe = bind_udp(addr, &TransportSettings::probe(), false).map_err(bind_err(addr))?;
    let addr = probe.0.local_addr().map_err(bind_err(addr))?;
    drop(probe);
    let (first, buffers) = bind_udp(addr, settings, true).map_err(bind_err(addr))?;
    let mut sockets = vec![first];
    for _ in 1..count {
        let (s, _) = bind_udp(addr, settings, true).map_err(bind_err(addr))?;
        sockets.push(s);
    }
    if let Some(n) = udp_sockets_on(addr)
        && n > count
    {
        tracing::warn!(%addr, sockets = n, ours = count, "UDP port shared with another process");
        return Err(TransportError::PortInUse { addr });
    }
    Ok((sockets, buffers))
}

/// How many UDP sockets the kernel lists (`/proc/net/udp` or `udp6`) on `addr`'s port
/// at an address overlapping `addr`'s (equal, or either the wildcard). `None` if the
/// table cannot be read.
fn udp_sockets_on(addr: SocketAddr) -> Option<usize> {
    let table = if addr.is_ipv4() {
        "/proc/net/udp"
    } else {
        "/proc/net/udp6"
    };
    let text = std::fs::read_to_string(table).ok()?;
    Some(
        text.lines()
            .skip(1)
            .filter_map(|line| parse_proc_local(line.split_whitespace().nth(1)?))
            .filter(|(ip, port)| {
                *port == addr.port()
                    && (*ip == addr.ip() || ip.is_unspecified() || addr.ip().is_unspecified())
            })
            .count(),
    )
}

/// The local address of a `/proc/net/udp{,6}` line: `0100007F:1F90` (each 32-bit word
/// of the address printed as a host-order hex number, then the port).
fn parse_proc_local(field: &str) -> Option<(std::net::IpAddr, u16)> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match ip.len() {
        8 => std::net::IpAddr::from(word(0)?),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            std::net::IpAddr::from(b)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// `s` cut to at most `max` bytes at a character boundary.
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_udp_addresses_parse_in_host_order() {
        // As Linux prints them on a little-endian host.
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_proc_local("0100007F:1F90"),
                Some(("127.0.0.1".parse().unwrap(), 8080))
            );
            assert_eq!(
                parse_proc_local("00000000000000000000000001000000:0035"),
                Some(("::1".parse().unwrap(), 53))
            );
        }
        assert_eq!(parse_proc_local("0100007F"), None);
        assert_eq!(parse_proc_local("01007F:1F90"), None);
        assert_eq!(parse_proc_local("0100007G:1F90"), None);
    }

    #[test]
    fn the_kernel_table_counts_the_sockets_on_one_address_and_port() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = a.local_addr().unwrap();
        let Some(n) = udp_sockets_on(addr) else {
            return; // no /proc here: the check is skipped in production too
        };
        assert_eq!(n, 1);
        // Another address on the same port does not overlap.
        let other = SocketAddr::new("127.0.0.2".parse().unwrap(), addr.port());
        let before = udp_sockets_on(other).unwrap();
        let (group, _) = bind_exclusive(
            "127.0.0.1:0".parse().unwrap(),
            &TransportSettings::default(),
            3,
        )
        .unwrap();
        let port = group[0].local_addr().unwrap();
        assert_eq!(udp_sockets_on(port), Some(3));
        assert_eq!(udp_sockets_on(other), Some(before));
    }
}
