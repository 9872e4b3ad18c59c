//! Per-packet CPU floors for the transport-reactor decision.
//!
//! 1. `quic_proto/*`: quinn-proto alone, in memory. A client and a server
//!    `quinn_proto::Endpoint` + `Connection` with the crate's own TLS and transport
//!    configuration ([`transport::quic_server_config`] / [`transport::quic_client_config`],
//!    default [`TransportSettings`]), handshake completed by shuttling the bytes by
//!    hand. Steady state, per iteration (= 20 ms of one full-duplex call): the server
//!    sends one 654-byte datagram, 10 ms later the client sends one; every UDP
//!    payload `poll_transmit` produces is handed to the peer's `Endpoint::handle` →
//!    `Connection::handle_event` → `poll()` → `datagrams().recv()`, and the peer is
//!    polled for transmits again (as quinn's connection driver does after a receive),
//!    so ACKs flow as in a real call. A simulated clock advances 10 ms at each half
//!    and `handle_timeout` runs when due.
//!    - `send`: µs per datagram sent (`datagrams().send()` + `poll_transmit`, which
//!      frames, piggybacks the ACK and encrypts; includes the empty `poll_transmit`
//!      after each receive).
//!    - `recv`: µs per datagram received (`Endpoint::handle` incl. the `BytesMut` copy
//!      quinn makes, decrypt, frame + ACK processing, events, `recv()`).
//!    - `per_call`: the whole iteration (both ends, both directions, timers) / 2 =
//!      one send + one receive + timers: what one end pays per call per 20 ms.
//! 2. `kernel/*`: UDP over 127.0.0.1, 700-byte packets, sender and receiver sockets
//!    in this one thread, so **sender and receiver CPU are counted together** (on
//!    loopback the sender's syscall also runs the receive path — IP, UDP lookup,
//!    enqueue — in softirq; the receiver's call only dequeues and copies). Each
//!    iteration sends 32 packets, then drains them; figures are per packet.
//!    `pair` = the whole iteration, `send` / `recv` = only that side's calls.
//!    - `a_sendto_recvfrom`: std `send_to` per packet, `recv_from` per packet.
//!    - `a2_sendmsg_recvmmsg`: today's quinn path: `quinn_udp` `send` of a single
//!      datagram (one `sendmsg` with cmsgs) per packet, `quinn_udp` `recv`
//!      (`recvmmsg`, up to 32 per call) on a GRO-enabled socket.
//!    - `b_gso32_gro`: one `quinn_udp` GSO send of 32 segments to ONE destination,
//!      received with UDP_GRO (loopback keeps the super-packet whole, so this is one
//!      skb end to end: an unreachable floor for 32 different calls).
//!    - `b2_gso32_recvmmsg`: the same GSO send, received on a socket without GRO (the
//!      kernel splits it into 32 datagrams at the UDP layer) with `recvmmsg`.
//!    - `syscall_floor`: `getsockname`, the cost of one cheap syscall (entry/exit,
//!      fd lookup): what `sendmmsg` to 32 different destinations would save per
//!      packet over one `sendmsg` each. (`sendmmsg` itself is not measured: `libc` is
//!      not a dependency of this crate.)
//!
//! At the end a table of means over all iterations (warm-up included) is printed.
//!
//! `cargo bench -p transport --bench floor -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{ErrorKind, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::Criterion;
use quinn_proto::{Connection, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig, Event};
use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use transport::{
    ServerIdentity, ServerTrust, TransportSettings, quic_client_config, quic_server_config,
};

/// Media datagram payload (a 640-byte PCM frame plus the media header).
const PAYLOAD: usize = 654;
/// UDP payload for the kernel benchmarks (a QUIC packet carrying `PAYLOAD`).
const PKT: usize = 700;
/// Packets per kernel iteration.
const BATCH: usize = 32;
const HALF_TICK: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------
// Summary: mean over every iteration criterion ran (warm-up included).
// ---------------------------------------------------------------------------------

static SUMMARY: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

/// Records `total` for `n` units (datagrams or packets) under `name`.
fn record(name: &'static str, total: Duration, n: u64) {
    let mut s = SUMMARY.lock().unwrap();
    let e = s.entry(name).or_default();
    e.0 += total;
    e.1 += n;
}

// ---------------------------------------------------------------------------------
// 1. quinn-proto in memory
// ---------------------------------------------------------------------------------

struct Side {
    endpoint: Endpoint,
    addr: SocketAddr,
    conn: Option<(ConnectionHandle, Connection)>,
    connected: bool,
    received: u64,
}

impl Side {
    fn new(endpoint: Endpoint, addr: SocketAddr) -> Self {
        Side {
            endpoint,
            addr,
            conn: None,
            connected: false,
            received: 0,
        }
    }

    fn conn(&mut self) -> &mut Connection {
        &mut self.conn.as_mut().expect("connection").1
    }

    /// One UDP payload arrives from `from`.
    fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8], scratch: &mut Vec<u8>) {
        // quinn copies each received payload into a BytesMut the same way.
        let data = BytesMut::from(data);
        match self.endpoint.handle(now, from, None, None, data, scratch) {
            Some(DatagramEvent::ConnectionEvent(_, ev)) => self.conn().handle_event(ev),
            Some(DatagramEvent::NewConnection(incoming)) => {
                let accepted = self.endpoint.accept(incoming, now, scratch, None).unwrap();
                self.conn = Some(accepted);
            }
            Some(DatagramEvent::Response(_)) => panic!("unexpected stateless response"),
            None => {}
        }
        self.after_event();
    }

    /// What quinn's drivers do after feeding the connection: endpoint events,
    /// application events, received datagrams.
    fn after_event(&mut self) {
        let Some((ch, conn)) = self.conn.as_mut() else {
            return;
        };
        while let Some(ev) = conn.poll_endpoint_events() {
            if let Some(back) = self.endpoint.handle_event(*ch, ev) {
                conn.handle_event(back);
            }
        }
        while let Some(ev) = conn.poll() {
            match ev {
                Event::Connected => self.connected = true,
                Event::ConnectionLost { reason } => panic!("connection lost: {reason}"),
                _ => {}
            }
        }
        while let Some(d) = conn.datagrams().recv() {
            black_box(d);
            self.received += 1;
        }
    }

    fn handle_timeouts(&mut self, now: Instant) {
        if let Some((_, conn)) = self.conn.as_mut()
            && conn.poll_timeout().is_some_and(|t| t <= now)
        {
            conn.handle_timeout(now);
            self.after_event();
        }
    }

    fn next_timeout(&mut self) -> Option<Instant> {
        self.conn.as_mut().and_then(|(_, c)| c.poll_timeout())
    }
}

#[derive(Default)]
struct Phases {
    send: Duration,
    recv: Duration,
    total: Duration,
    /// UDP payloads produced by `poll_transmit`, and their bytes.
    packets: u64,
    bytes: u64,
}

/// `Instant::now()` only when timing phases.
fn stamp(timed: bool) -> Option<Instant> {
    timed.then(Instant::now)
}

fn since(t: Option<Instant>) -> Duration {
    t.map(|t| t.elapsed()).unwrap_or_default()
}

/// Delivers everything `from` wants to send to `to`; returns the number of payloads.
fn flush(
    now: Instant,
    from: &mut Side,
    to: &mut Side,
    buf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    ph: &mut Phases,
    timed: bool,
) -> u64 {
    let mut n = 0;
    loop {
        let t0 = stamp(timed);
        // As quinn's connection driver: one reused buffer, one datagram per call.
        buf.clear();
        let transmit = from.conn().poll_transmit(now, 1, buf);
        ph.send += since(t0);
        let Some(t) = transmit else {
            return n;
        };
        n += 1;
        ph.bytes += t.size as u64;
        let t1 = stamp(timed);
        to.receive(now, from.addr, &buf[..t.size], scratch);
        ph.recv += since(t1);
    }
}

/// Flushes `a` to `b`, then `b` to `a` and so on until one side has nothing to send:
/// per datagram, the sender's `poll_transmit` runs twice (the packet, then `None`)
/// and the receiver's once (`None`, or an ACK-only packet), as quinn's drivers do.
fn pump(
    now: Instant,
    a: &mut Side,
    b: &mut Side,
    buf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    ph: &mut Phases,
    timed: bool,
) {
    let (mut from, mut to) = (a, b);
    loop {
        let n = flush(now, from, to, buf, scratch, ph, timed);
        ph.packets += n;
        if n == 0 {
            return;
        }
        (from, to) = (to, from);
    }
}

struct QuicPair {
    server: Side,
    client: Side,
    now: Instant,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    payload: Bytes,
    sent: u64,
}

impl QuicPair {
    fn new() -> Self {
        let settings = TransportSettings::default();
        let identity = ServerIdentity::self_signed(&["localhost"]).unwrap();
        let server_cfg = quic_server_config(&identity, &settings).unwrap();
        let client_cfg =
            quic_client_config(&ServerTrust::pinned(identity.fingerprint()), &settings).unwrap();
        let server_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 4433));
        let client_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 50_000));
        let endpoint_cfg = Arc::new(EndpointConfig::default());
        // allow_mtud = true: quinn passes `!socket.may_fragment()`, true on Linux.
        let server_ep = Endpoint::new(endpoint_cfg.clone(), Some(Arc::new(server_cfg)), true, None);
        let mut client_ep = Endpoint::new(endpoint_cfg, None, true, None);
        let mut now = Instant::now();
        let conn = client_ep
            .connect(now, client_cfg, server_addr, "localhost")
            .unwrap();
        let mut client = Side::new(client_ep, client_addr);
        client.conn = Some(conn);
        let mut server = Side::new(server_ep, server_addr);
        let mut buf = Vec::with_capacity(1500);
        let mut scratch = Vec::with_capacity(1500);
        let mut ph = Phases::default();

        // Handshake: shuttle until both are connected and quiet, firing timers when idle.
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 1000, "handshake did not complete");
            let before = ph.packets;
            let (c, s) = (&mut client, &mut server);
            pump(now, c, s, &mut buf, &mut scratch, &mut ph, false);
            pump(now, s, c, &mut buf, &mut scratch, &mut ph, false);
            if client.connected && server.connected && ph.packets == before {
                break;
            }
            if ph.packets == before {
                let next = [client.next_timeout(), server.next_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
                    .expect("a timer while handshaking");
                now = now.max(next);
                client.handle_timeouts(now);
                server.handle_timeouts(now);
            }
        }
        let mut pair = QuicPair {
            server,
            client,
            now,
            buf,
            scratch,
            payload: Bytes::from(vec![0x5a; PAYLOAD]),
            sent: 0,
        };
        // Settle (NEW_CONNECTION_ID, HANDSHAKE_DONE, first ACK rounds, ...).
        pair.run(500, false);
        pair
    }

    /// One 20 ms period of a full-duplex call: the server sends at t, the client at
    /// t + 10 ms.
    fn step(&mut self, ph: &mut Phases, timed: bool) {
        let QuicPair {
            server,
            client,
            now,
            buf,
            scratch,
            payload,
            sent,
        } = self;
        for server_turn in [true, false] {
            let (a, b) = if server_turn {
                (&mut *server, &mut *client)
            } else {
                (&mut *client, &mut *server)
            };
            *now += HALF_TICK;
            a.handle_timeouts(*now);
            b.handle_timeouts(*now);
            let t0 = stamp(timed);
            a.conn().datagrams().send(payload.clone(), true).unwrap();
            ph.send += since(t0);
            *sent += 1;
            pump(*now, a, b, buf, scratch, ph, timed);
        }
    }

    fn run(&mut self, iters: u64, timed: bool) -> Phases {
        let mut ph = Phases::default();
        let start = Instant::now();
        for _ in 0..iters {
            self.step(&mut ph, timed);
        }
        ph.total = start.elapsed();
        ph
    }
}

fn quic_proto(c: &mut Criterion) {
    let mut pair = QuicPair::new();
    let mut packets = (0u64, 0u64, 0u64);
    let mut g = c.benchmark_group("quic_proto");
    // Two datagrams (one each way) per iteration: return per-datagram totals.
    g.bench_function("send", |b| {
        b.iter_custom(|iters| {
            let ph = pair.run(iters, true);
            packets.0 += ph.packets;
            packets.1 += iters * 2;
            packets.2 += ph.bytes;
            record("quic_proto/send (per datagram)", ph.send, iters * 2);
            ph.send / 2
        })
    });
    g.bench_function("recv", |b| {
        b.iter_custom(|iters| {
            let ph = pair.run(iters, true);
            record("quic_proto/recv (per datagram)", ph.recv, iters * 2);
            ph.recv / 2
        })
    });
    g.bench_function("per_call", |b| {
        b.iter_custom(|iters| {
            let ph = pair.run(iters, false);
            record(
                "quic_proto/per_call (1 send + 1 recv + timers)",
                ph.total,
                iters * 2,
            );
            ph.total / 2
        })
    });
    g.finish();
    let lost = pair.sent - pair.server.received - pair.client.received;
    eprintln!(
        "quic_proto: {:.3} UDP payloads per datagram sent (1.0 = every ACK piggybacked), \
         {:.0} bytes per UDP payload, {} of {} datagrams not received",
        packets.0 as f64 / packets.1.max(1) as f64,
        packets.2 as f64 / packets.0.max(1) as f64,
        lost,
        pair.sent
    );
}

// ---------------------------------------------------------------------------------
// 2. Kernel UDP on loopback
// ---------------------------------------------------------------------------------

/// A nonblocking UDP socket on 127.0.0.1 with the production buffer sizes.
fn udp_socket() -> UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    let settings = TransportSettings::default();
    s.set_recv_buffer_size(settings.udp_receive_buffer).unwrap();
    s.set_send_buffer_size(settings.udp_send_buffer).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    s.set_nonblocking(true).unwrap();
    s.into()
}

#[derive(Clone, Copy, PartialEq)]
enum Io {
    /// `send_to` + `recv_from` per packet.
    SendTo,
    /// quinn-udp single-datagram `sendmsg` per packet + `recvmmsg` (GRO socket).
    Sendmsg,
    /// quinn-udp GSO send of `BATCH` segments + `recvmmsg` on a GRO socket.
    GsoGro,
    /// quinn-udp GSO send of `BATCH` segments + `recvmmsg` on a socket without GRO.
    GsoNoGro,
}

struct Kernel {
    io: Io,
    tx: UdpSocket,
    rx: UdpSocket,
    rx_addr: SocketAddr,
    /// quinn-udp state of the sender (its `recv` does not depend on the socket it
    /// was made from, so it also serves the GRO-less receiver).
    tx_state: UdpSocketState,
    pkt: Vec<u8>,
    gso: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    /// Receive calls and datagrams received, for the batch statistics.
    calls: u64,
    got: u64,
}

impl Kernel {
    fn new(io: Io) -> Self {
        let tx = udp_socket();
        let rx = udp_socket();
        let tx_state = UdpSocketState::new(UdpSockRef::from(&tx)).unwrap();
        if matches!(io, Io::Sendmsg | Io::GsoGro) {
            // As quinn's endpoint socket: IP_RECVTOS, UDP_GRO, ...
            let rx_state = UdpSocketState::new(UdpSockRef::from(&rx)).unwrap();
            assert!(
                io != Io::GsoGro || rx_state.gro_segments() > 1,
                "no UDP GRO on this kernel"
            );
        }
        if matches!(io, Io::GsoGro | Io::GsoNoGro) {
            assert!(
                tx_state.max_gso_segments() >= BATCH,
                "GSO of {BATCH} segments unsupported (max {})",
                tx_state.max_gso_segments()
            );
        }
        let rx_addr = rx.local_addr().unwrap();
        Kernel {
            io,
            tx,
            rx,
            rx_addr,
            tx_state,
            pkt: vec![0x5a; PKT],
            gso: vec![0x5a; PKT * BATCH],
            bufs: (0..BATCH).map(|_| vec![0u8; 65_536]).collect(),
            meta: vec![RecvMeta::default(); BATCH],
            calls: 0,
            got: 0,
        }
    }

    fn send(&mut self) {
        match self.io {
            Io::SendTo => {
                for _ in 0..BATCH {
                    self.tx.send_to(&self.pkt, self.rx_addr).unwrap();
                }
            }
            Io::Sendmsg => {
                let t = Transmit {
                    destination: self.rx_addr,
                    ecn: None,
                    contents: &self.pkt,
                    segment_size: None,
                    src_ip: None,
                };
                for _ in 0..BATCH {
                    self.tx_state
                        .try_send(UdpSockRef::from(&self.tx), &t)
                        .unwrap();
                }
            }
            Io::GsoGro | Io::GsoNoGro => {
                let t = Transmit {
                    destination: self.rx_addr,
                    ecn: None,
                    contents: &self.gso,
                    segment_size: Some(PKT),
                    src_ip: None,
                };
                self.tx_state
                    .try_send(UdpSockRef::from(&self.tx), &t)
                    .unwrap();
            }
        }
    }

    fn recv(&mut self) {
        let mut got = 0;
        let mut idle = 0u32;
        while got < BATCH {
            let r = if self.io == Io::SendTo {
                self.rx.recv_from(&mut self.bufs[0]).map(|(n, _)| {
                    black_box(n);
                    1
                })
            } else {
                let mut it = self.bufs.iter_mut();
                let mut iovs: [IoSliceMut<'_>; BATCH] =
                    std::array::from_fn(|_| IoSliceMut::new(it.next().unwrap()));
                self.tx_state
                    .recv(UdpSockRef::from(&self.rx), &mut iovs, &mut self.meta)
                    .map(|n| {
                        self.meta[..n]
                            .iter()
                            .map(|m| m.len.div_ceil(m.stride.max(1)))
                            .sum()
                    })
            };
            match r {
                Ok(n) => {
                    self.calls += 1;
                    got += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    idle += 1;
                    assert!(idle < 1_000_000, "packets lost on loopback");
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        assert_eq!(got, BATCH);
        self.got += got as u64;
    }

    /// `iters` batches; per-packet totals (send, recv, whole).
    fn run(&mut self, iters: u64) -> (Duration, Duration, Duration) {
        let (mut send, mut recv) = (Duration::ZERO, Duration::ZERO);
        let start = Instant::now();
        for _ in 0..iters {
            let t0 = Instant::now();
            self.send();
            let t1 = Instant::now();
            self.recv();
            recv += t1.elapsed();
            send += t1 - t0;
        }
        let total = start.elapsed();
        let per = BATCH as u32;
        (send / per, recv / per, total / per)
    }
}

fn kernel(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel");
    let sock = udp_socket();
    g.bench_function("syscall_floor", |b| {
        b.iter(|| black_box(sock.local_addr().unwrap()))
    });
    let variants: [(&'static str, Io, [&'static str; 3]); 4] = [
        (
            "a_sendto_recvfrom",
            Io::SendTo,
            [
                "kernel/a_sendto_recvfrom/send",
                "kernel/a_sendto_recvfrom/recv",
                "kernel/a_sendto_recvfrom/pair",
            ],
        ),
        (
            "a2_sendmsg_recvmmsg",
            Io::Sendmsg,
            [
                "kernel/a2_sendmsg_recvmmsg/send",
                "kernel/a2_sendmsg_recvmmsg/recv",
                "kernel/a2_sendmsg_recvmmsg/pair",
            ],
        ),
        (
            "b_gso32_gro",
            Io::GsoGro,
            [
                "kernel/b_gso32_gro/send",
                "kernel/b_gso32_gro/recv",
                "kernel/b_gso32_gro/pair",
            ],
        ),
        (
            "b2_gso32_recvmmsg",
            Io::GsoNoGro,
            [
                "kernel/b2_gso32_recvmmsg/send",
                "kernel/b2_gso32_recvmmsg/recv",
                "kernel/b2_gso32_recvmmsg/pair",
            ],
        ),
    ];
    for (name, io, labels) in variants {
        let mut k = Kernel::new(io);
        for (i, part) in ["send", "recv", "pair"].into_iter().enumerate() {
            g.bench_function(format!("{name}/{part}"), |b| {
                b.iter_custom(|iters| {
                    let (s, r, t) = k.run(iters);
                    let d = [s, r, t][i];
                    record(labels[i], d * BATCH as u32, iters * BATCH as u64);
                    d
                })
            });
        }
        if k.calls > 0 {
            eprintln!(
                "kernel/{name}: {:.1} datagrams per receive call",
                k.got as f64 / k.calls as f64
            );
        }
    }
    g.finish();
}

fn print_summary() {
    let s = SUMMARY.lock().unwrap();
    if s.is_empty() {
        return;
    }
    println!("\nMean over all iterations (warm-up included), µs per datagram/packet:");
    for (name, (total, n)) in s.iter() {
        println!(
            "  {name:<52} {:>8.3} µs",
            total.as_secs_f64() * 1e6 / (*n).max(1) as f64
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    quic_proto(&mut c);
    kernel(&mut c);
    c.final_summary();
    print_summary();
}
