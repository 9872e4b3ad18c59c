//! A flood of QUIC Initials on the media port (issue 10, item 2): address validation
//! with Retry past a threshold of handshakes in flight, caps on handshakes in all and
//! per source, no amplification, and a genuine call still admitted.
//!
//! The flood is real QUIC: quinn-proto client endpoints make one `ClientHello` each,
//! written from a plain UDP socket on 127.0.0.1 that never answers what comes back.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use quinn_proto::{ClientConfig, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig};
use transport::{ServerTrust, TransportSettings, quic_client_config};
use uuid::Uuid;

const FLOOD: usize = 15_000;

/// Settings with small caps, so that the flood meets all of them.
fn guarded() -> TransportSettings {
    TransportSettings {
        retry_threshold: 8,
        max_handshakes: 12,
        max_handshakes_per_source: 10,
        join_timeout: Duration::from_secs(2),
        ..settings()
    }
}

/// A UDP socket on 127.0.0.1 that counts what it reads.
struct Flooder {
    socket: UdpSocket,
    sent_bytes: u64,
    sent: usize,
    reply_bytes: u64,
    replies: Vec<(SocketAddr, Vec<u8>)>,
    keep_replies: bool,
}

impl Flooder {
    fn bind(ip: &str) -> Flooder {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket.set_nonblocking(true).unwrap();
        Flooder {
            socket,
            sent_bytes: 0,
            sent: 0,
            reply_bytes: 0,
            replies: Vec::new(),
            keep_replies: false,
        }
    }

    fn send(&mut self, bytes: &[u8], to: SocketAddr) {
        // Loopback sends do not block; a full receive buffer drops at the server.
        if self.socket.send_to(bytes, to).is_ok() {
            self.sent_bytes += bytes.len() as u64;
            self.sent += 1;
        }
    }

    /// Reads every reply waiting.
    fn drain(&mut self) {
        let mut buf = [0u8; 65_536];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            self.reply_bytes += n as u64;
            if self.keep_replies {
                self.replies.push((from, buf[..n].to_vec()));
            }
        }
    }
}

/// One client Initial (a `ClientHello`) of a new connection to `server`.
fn initial(
    client: &mut Endpoint,
    cfg: &ClientConfig,
    server: SocketAddr,
) -> (ConnectionHandle, quinn_proto::Connection, Vec<u8>) {
    let now = Instant::now();
    let (ch, mut conn) = client
        .connect(now, cfg.clone(), server, "localhost")
        .unwrap();
    let mut buf = Vec::with_capacity(1500);
    let t = conn.poll_transmit(now, 1, &mut buf).unwrap();
    buf.truncate(t.size);
    (ch, conn, buf)
}

fn client_endpoint() -> Endpoint {
    Endpoint::new(Arc::new(EndpointConfig::default()), None, true, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_thousand_initials_hold_bounded_state_amplify_nothing_and_a_call_still_joins() {
    let session = Uuid::new_v4();
    let settings = guarded();
    let server = Reactor::start(settings.clone(), &[session]);
    let addr = server.addr();
    let cfg = quic_client_config(&ServerTrust::pinned(server.fp), &settings).unwrap();
    let mut flood = Flooder::bind("127.0.0.1");
    let mut client = client_endpoint();
    let mut initial_len = 0;
    let started = Instant::now();
    for i in 0..FLOOD {
        if i % 500 == 0 {
            // Fresh client state now and then: the flooder keeps none of its own.
            client = client_endpoint();
        }
        let (_, _, bytes) = initial(&mut client, &cfg, addr);
        initial_len = initial_len.max(bytes.len());
        flood.send(&bytes, addr);
        flood.drain();
        // Let the server keep up (a debug build on a loaded machine), so that the
        // Initials reach it rather than fill the kernel's buffer.
        while flood.sent as u64 > server.server.stats().connection_attempts + 2_000 {
            std::thread::sleep(Duration::from_millis(1));
            flood.drain();
        }
    }
    let flood_time = started.elapsed();
    // Every Initial the server took is answered or dropped, and the half-open
    // handshakes it accepted time out and drain.
    let stats = server
        .stats_when(|s| s.connection_attempts >= (FLOOD as u64) * 9 / 10 && s.handshakes == 0)
        .await;
    assert!(
        eventually(WITHIN, || server.server.stats().handshakes == 0).await,
        "half-open handshakes never ended"
    );
    flood.drain();
    let received = stats.connection_attempts * initial_len as u64;
    println!(
        "{} Initials ({} B each) in {flood_time:?}; server took {}: {} Retry, {} dropped, \
         peak {} handshakes / {} connections; replies {} B for {} B received ({:.3}x)",
        flood.sent,
        initial_len,
        stats.connection_attempts,
        stats.retries_sent,
        stats.handshakes_dropped,
        stats.handshakes_peak,
        stats.connections_peak,
        flood.reply_bytes,
        received,
        flood.reply_bytes as f64 / received as f64
    );
    // Bounded state: no more connections than handshakes let in unvalidated.
    assert!(
        stats.handshakes_peak <= settings.retry_threshold as u64,
        "{stats:?}"
    );
    assert!(
        stats.connections_peak <= settings.retry_threshold as u64,
        "{stats:?}"
    );
    // The rest got a stateless Retry.
    assert!(
        stats.retries_sent >= stats.connection_attempts - settings.retry_threshold as u64,
        "{stats:?}"
    );
    // No amplification beyond QUIC's 3x limit before validation (Retries are far
    // smaller than Initials).
    assert!(
        flood.reply_bytes <= 3 * received,
        "{} reply bytes for {received} received",
        flood.reply_bytes
    );
    assert!(
        flood.reply_bytes < received,
        "replies {} B",
        flood.reply_bytes
    );
    // A genuine call is still admitted, and the flood's state is gone.
    let peer = server.join(join_for(session)).await;
    peer.prove_echo(0, 5).await;
    let after = server.server.stats();
    assert_eq!((after.accepted, after.active), (1, 1), "{after:?}");
}

/// Clients that answer the Retry (their address is validated) but never finish the
/// handshake: `count` of them from `flood`'s address. Returns their connections.
fn validated_half_open(
    flood: &mut Flooder,
    cfg: &ClientConfig,
    server: SocketAddr,
    count: usize,
) -> usize {
    let mut client = client_endpoint();
    let mut conns = HashMap::new();
    for _ in 0..count {
        let (ch, conn, bytes) = initial(&mut client, cfg, server);
        conns.insert(ch, conn);
        flood.send(&bytes, server);
    }
    // Each Retry comes back; the client answers it with an Initial carrying the
    // token, and from then on never answers again.
    flood.keep_replies = true;
    let deadline = Instant::now() + WITHIN;
    // Connections that answered their Retry: what the server sends them afterwards
    // (its handshake flight, which on a slow machine arrives in the same batch as
    // other connections' Retries) is never answered.
    let mut answered = HashSet::new();
    let mut retried = 0;
    while retried < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        flood.drain();
        for (from, bytes) in std::mem::take(&mut flood.replies) {
            let mut buf = Vec::new();
            let now = Instant::now();
            let Some(DatagramEvent::ConnectionEvent(ch, ev)) =
                client.handle(now, from, None, None, BytesMut::from(&bytes[..]), &mut buf)
            else {
                continue;
            };
            if answered.contains(&ch) {
                continue;
            }
            let conn = conns.get_mut(&ch).unwrap();
            conn.handle_event(ev);
            let mut out = Vec::with_capacity(1500);
            if let Some(t) = conn.poll_transmit(now, 1, &mut out) {
                flood.send(&out[..t.size], server);
                answered.insert(ch);
                retried += 1;
            }
        }
    }
    flood.keep_replies = false;
    retried
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validated_handshakes_are_capped_per_source_and_in_all() {
    let session = Uuid::new_v4();
    let settings = TransportSettings {
        retry_threshold: 0,
        max_handshakes: 6,
        max_handshakes_per_source: 4,
        join_timeout: Duration::from_secs(3),
        ..settings()
    };
    let server = Reactor::start(settings.clone(), &[session]);
    let addr = server.addr();
    let cfg = quic_client_config(&ServerTrust::pinned(server.fp), &settings).unwrap();

    let mut a = Flooder::bind("127.0.0.1");
    assert_eq!(validated_half_open(&mut a, &cfg, addr, 10), 10);
    let stats = server
        .stats_when(|s| s.handshakes + s.handshakes_dropped >= 10)
        .await;
    assert_eq!(
        (stats.handshakes, stats.handshakes_dropped),
        (4, 6),
        "{stats:?}"
    );
    assert_eq!(stats.retries_sent, 10, "{stats:?}");

    // Another source still gets in, up to the cap of all handshakes.
    let mut b = Flooder::bind("127.0.0.2");
    assert_eq!(validated_half_open(&mut b, &cfg, addr, 4), 4);
    let stats = server
        .stats_when(|s| s.handshakes + s.handshakes_dropped >= 12)
        .await;
    assert_eq!(
        (stats.handshakes, stats.handshakes_dropped),
        (6, 8),
        "{stats:?}"
    );
    assert!(stats.connections_peak <= 6, "{stats:?}");

    // Once the half-open handshakes time out, a genuine call joins.
    assert!(
        eventually(WITHIN, || server.server.stats().handshakes == 0).await,
        "half-open handshakes never ended: {:?}",
        server.server.stats()
    );
    let peer = server.join(join_for(session)).await;
    peer.prove_echo(0, 5).await;
}
