//! The callback server under 2,000 slow connections (half-sent request heads), served
//! by `http_guard` as the bot serves it: a genuine, authenticated callback is still
//! answered within 1 s and the slow connections are closed after the header timeout.
//! Real sockets on loopback: the attackers on 127.0.0.2 and up, the cloud on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use http_guard::probe::closed_within;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Cloud, post_callback, state_body, valid_token};
use graph::{CallbackConfig, Delivery, NotificationSink};
use http_guard::{HttpServer, Limits};
use signaling::CommsNotification;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

#[derive(Default)]
struct Count(AtomicUsize);

impl NotificationSink for Count {
    fn deliver(&self, _call_id: &str, _notification: CommsNotification) -> Delivery {
        self.0.fetch_add(1, Ordering::Relaxed);
        Delivery::Queued
    }
}

const HALF_REQUEST: &[u8] = b"POST /callback HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthoriz";

async fn slow_connection(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    stream.write_all(HALF_REQUEST).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_callback_is_answered_within_1s_while_2000_slow_connections_are_held() {
    const WANTED: usize = 2000;
    // Two descriptors per slow connection (both ends live in this process).
    let fd_limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let slow = WANTED.min(usize::try_from(fd_limit.saturating_sub(200) / 2).unwrap_or(WANTED));
    if slow < WANTED {
        eprintln!(
            "RLIMIT_NOFILE hard limit {fd_limit}: holding {slow} slow connections, not {WANTED}"
        );
    }
    let cloud = Cloud::start().await;
    let sink = Arc::new(Count::default());
    let router = graph::callback::router(CallbackConfig::new(cloud.auth_config()), sink.clone());
    let header_timeout = Duration::from_secs(3);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let server = HttpServer::new(
        listener,
        Limits {
            header_read_timeout: header_timeout,
            max_connections: 4096,
            ..Limits::default()
        },
        "callback",
    )
    .unwrap();
    let addr = server.local_addr();
    let stats = server.stats();
    tokio::spawn(server.serve(router, std::future::pending()));

    let started = Instant::now();
    let mut attackers = Vec::with_capacity(slow);
    for i in 0..slow {
        // 50 per address: under the per-address cap, so every one is held.
        let source = Ipv4Addr::new(127, 0, 0, 2 + (i / 50) as u8);
        attackers.push(slow_connection(source, addr).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.snapshot().active < slow as u64 {
        assert!(
            Instant::now() < deadline,
            "not all held: {:?}",
            stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let asked = Instant::now();
    let status = post_callback(
        &format!("http://{addr}/callback"),
        Some(&valid_token()),
        state_body("c1", "established"),
    )
    .await;
    let took = asked.elapsed();
    eprintln!("{slow} slow connections held; authenticated callback answered in {took:?}");
    assert_eq!(status, 202);
    assert_eq!(sink.0.load(Ordering::Relaxed), 1);
    assert!(took < Duration::from_secs(1), "callback took {took:?}");

    for (i, stream) in attackers.iter_mut().enumerate() {
        assert!(
            closed_within(stream, header_timeout + Duration::from_secs(20)).await,
            "slow connection {i} still open after the header timeout"
        );
    }
    let closed_after = started.elapsed();
    assert!(
        closed_after >= header_timeout,
        "closed after {closed_after:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.snapshot().header_timeouts < slow as u64 {
        assert!(Instant::now() < deadline, "{:?}", stats.snapshot());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
