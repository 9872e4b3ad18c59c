//! The guarded server against hostile clients: real sockets on loopback (the attackers
//! on 127.0.0.2 and up, the genuine client on 127.0.0.1), a real HTTP client.

use http_guard::probe::closed_within;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use http_guard::{HttpServer, Limits, Stats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Half a request: the head never ends.
const HALF_REQUEST: &[u8] = b"POST /callback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le";

struct Running {
    addr: SocketAddr,
    stats: Stats,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    async fn start(limits: Limits) -> Running {
        let router = Router::new().route("/ok", get(|| async { "ok" })).route(
            "/callback",
            post(|body: Bytes| async move { format!("got {} bytes", body.len()) }),
        );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let server = HttpServer::new(listener, limits, "test").expect("limits");
        let addr = server.local_addr();
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(router, async move {
            let _ = stopped.await;
        }));
        Running {
            addr,
            stats,
            stop: Some(stop),
            task,
        }
    }

    /// A GET /ok from 127.0.0.1 with a real HTTP client: the time it took.
    async fn genuine_request(&self) -> Duration {
        let client = reqwest::Client::builder()
            .no_proxy()
            .local_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let started = Instant::now();
        let response = client
            .get(format!("http://{}/ok", self.addr))
            .send()
            .await
            .expect("genuine request answered");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), "ok");
        started.elapsed()
    }

    /// Waits (up to 20 s) until the counters satisfy `check`.
    async fn wait_for(&self, what: &str, check: impl Fn(&http_guard::StatsSnapshot) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.stats.snapshot();
            if check(&now) {
                return;
            }
            assert!(Instant::now() < deadline, "waited 20 s for {what}: {now:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server ends after shutdown")
            .expect("server task");
    }
}

/// A connection from `source` (a loopback address) that sent `bytes`.
async fn connect_from(source: Ipv4Addr, to: SocketAddr, bytes: &[u8]) -> TcpStream {
    try_connect_from(source, to, bytes).await.expect("connect")
}

/// Like [`connect_from`], but a connection reset before `connect` returned is the error.
async fn try_connect_from(
    source: Ipv4Addr,
    to: SocketAddr,
    bytes: &[u8],
) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let mut stream = socket.connect(to).await?;
    // A refused connection may already be reset: that is for the caller to see.
    let _ = stream.write_all(bytes).await;
    Ok(stream)
}

/// Whether a connection from `source` is closed by the server at once (reset while
/// connecting, or EOF or reset within 5 s).
async fn refused_at_once(source: Ipv4Addr, to: SocketAddr) -> bool {
    match try_connect_from(source, to, HALF_REQUEST).await {
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(mut stream) => closed_within(&mut stream, Duration::from_secs(5)).await,
    }
}

/// Everything the server sends until it closes (at most 10 s).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Raise the soft descriptor limit as far as the hard limit allows; the new limit.
fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).expect("RLIMIT_NOFILE")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_slow_connections_leave_a_genuine_request_answered_and_are_closed_after_the_header_timeout()
 {
    const WANTED: usize = 2000;
    // Each slow connection costs two descriptors here (client and server side).
    let fd_limit = raise_fd_limit();
    let affordable = usize::try_from(fd_limit.saturating_sub(200) / 2).unwrap_or(WANTED);
    let slow = WANTED.min(affordable);
    if slow < WANTED {
        eprintln!(
            "RLIMIT_NOFILE hard limit is {fd_limit}: holding {slow} slow connections, not {WANTED}"
        );
    }
    let header_timeout = Duration::from_secs(3);
    let server = Running::start(Limits {
        header_read_timeout: header_timeout,
        max_connections: 4096,
        max_connections_per_ip: 64,
        ..Limits::default()
    })
    .await;

    // 40 attacking addresses, 50 connections each: all under both caps, so every one
    // is held by the server until its header timeout.
    let opened = Instant::now();
    let mut attackers = Vec::with_capacity(slow);
    for i in 0..slow {
        let source = Ipv4Addr::new(127, 0, 0, 2 + (i / 50) as u8);
        attackers.push(connect_from(source, server.addr, HALF_REQUEST).await);
    }
    server
        .wait_for("every slow connection held", |s| s.active == slow as u64)
        .await;
    let held_after = opened.elapsed();

    let took = server.genuine_request().await;
    eprintln!(
        "{slow} slow connections opened and held after {held_after:?}; genuine request took {took:?}"
    );
    assert!(
        took < Duration::from_secs(1),
        "a genuine request took {took:?} with {slow} slow connections held"
    );

    // The slow connections are closed once the header timeout passes.
    for (i, stream) in attackers.iter_mut().enumerate() {
        assert!(
            closed_within(stream, header_timeout + Duration::from_secs(20)).await,
            "slow connection {i} still open long after the header timeout"
        );
    }
    let closed_after = opened.elapsed();
    eprintln!("all slow connections closed {closed_after:?} after the first was opened");
    assert!(
        closed_after >= header_timeout,
        "closed after {closed_after:?}, before the header timeout"
    );
    server
        .wait_for("every slow connection counted as timed out", |s| {
            s.header_timeouts >= slow as u64 && s.active == 0
        })
        .await;
    let stats = server.stats.snapshot();
    assert_eq!(stats.refused_max_connections + stats.refused_per_ip, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_are_closed_at_once_and_counted() {
    let server = Running::start(Limits {
        header_read_timeout: Duration::from_secs(60),
        max_connections_per_ip: 4,
        ..Limits::default()
    })
    .await;
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(attacker, server.addr, HALF_REQUEST).await);
    }
    server.wait_for("4 held", |s| s.active == 4).await;
    assert!(
        refused_at_once(attacker, server.addr).await,
        "the fifth connection from one address was not closed"
    );
    let stats = server.stats.snapshot();
    assert_eq!(stats.refused_per_ip, 1, "{stats:?}");
    assert_eq!(stats.active, 4, "{stats:?}");
    // Another address is not affected, and the held ones are still open.
    assert!(server.genuine_request().await < Duration::from_secs(5));
    for stream in &mut held {
        assert!(!closed_within(stream, Duration::from_millis(10)).await);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_total_cap_are_closed_at_once_and_the_place_returns() {
    let server = Running::start(Limits {
        header_read_timeout: Duration::from_secs(60),
        max_connections: 4,
        ..Limits::default()
    })
    .await;
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(connect_from(Ipv4Addr::new(127, 0, 0, 2 + i), server.addr, HALF_REQUEST).await);
    }
    server.wait_for("4 held", |s| s.active == 4).await;
    assert!(
        refused_at_once(Ipv4Addr::new(127, 0, 0, 9), server.addr).await,
        "a connection over the total cap was not closed"
    );
    assert_eq!(server.stats.snapshot().refused_max_connections, 1);
    // Closing the held connections gives their places back.
    drop(held);
    server.wait_for("places returned", |s| s.active == 0).await;
    assert!(server.genuine_request().await < Duration::from_secs(5));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_its_deadline_is_answered_408_and_the_connection_closed() {
    let server = Running::start(Limits {
        body_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut stream = connect_from(
        Ipv4Addr::new(127, 0, 0, 2),
        server.addr,
        b"POST /callback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await;
    let started = Instant::now();
    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "expected 408 for a body that never completes, got {answer:?}"
    );
    assert!(answer.to_ascii_lowercase().contains("connection: close"));
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "closed after the answer"
    );
    assert_eq!(server.stats.snapshot().body_timeouts, 1);

    // A body that arrives in time is served.
    let mut stream = connect_from(
        Ipv4Addr::new(127, 0, 0, 2),
        server.addr,
        b"POST /callback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with("got 3 bytes"), "{answer:?}");
    assert_eq!(server.stats.snapshot().body_timeouts, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_ends_after_the_request_cap_and_after_idling() {
    let server = Running::start(Limits {
        header_read_timeout: Duration::from_millis(500),
        max_requests_per_connection: 3,
        ..Limits::default()
    })
    .await;
    // Four pipelined requests on one connection: three are answered, then it closes.
    let get = "GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let mut stream = connect_from(
        Ipv4Addr::new(127, 0, 0, 2),
        server.addr,
        get.repeat(4).as_bytes(),
    )
    .await;
    let answer = read_until_closed(&mut stream).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3, "{answer:?}");
    assert_eq!(
        answer
            .to_ascii_lowercase()
            .matches("connection: close")
            .count(),
        1,
        "{answer:?}"
    );
    assert_eq!(server.stats.snapshot().max_requests_reached, 1);

    // A kept-alive connection left idle is closed after the header read timeout.
    let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr, get.as_bytes()).await;
    let started = Instant::now();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(400) && idle < Duration::from_secs(9),
        "idle connection closed after {idle:?}"
    );
    server
        .wait_for("idle close counted", |s| s.header_timeouts == 1)
        .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_although_slow_clients_hold_connections() {
    let server = Running::start(Limits {
        header_read_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    let mut slow = connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr, HALF_REQUEST).await;
    server.wait_for("held", |s| s.active == 1).await;
    let addr = server.addr;
    let stats = server.stats.clone();
    server.shutdown().await;
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await);
    assert_eq!(stats.snapshot().active, 0);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still listening after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_the_size_cap_is_answered_431_and_closed() {
    let server = Running::start(Limits {
        max_header_bytes: 16 * 1024,
        ..Limits::default()
    })
    .await;
    let head = format!(
        "GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr, head.as_bytes()).await;
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // A head under the cap is served.
    let head = format!(
        "GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4 * 1024)
    );
    let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr, head.as_bytes()).await;
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    server.shutdown().await;
}
