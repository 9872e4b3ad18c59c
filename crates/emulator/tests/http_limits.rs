//! The emulator's HTTP server under slow and excess connections: real sockets on
//! loopback (the attacker on 127.0.0.2, the genuine client on 127.0.0.1).

mod common;

use http_guard::probe::closed_within;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use emulator::{Emulator, EmulatorConfig, HttpLimits};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A connection from the attacker's address that sent half a request head.
async fn slow_connection(to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((ATTACKER, 0)))?;
    let mut stream = socket.connect(to).await?;
    let _ = stream
        .write_all(b"POST /common/oauth2/v2.0/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        .await;
    Ok(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_excess_connections_do_not_make_the_emulator_unreachable() {
    let header_timeout = Duration::from_secs(2);
    let emu = Emulator::start(EmulatorConfig {
        http_limits: HttpLimits {
            header_read_timeout: header_timeout,
            max_connections_per_ip: 100,
            ..HttpLimits::default()
        },
        ..config()
    })
    .await
    .expect("start");

    // 150 slow connections from one address: 100 held, 50 closed at once.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..150 {
        match slow_connection(emu.local_addr()).await {
            Ok(stream) => held.push(stream),
            Err(_) => refused += 1,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while emu.http_stats().refused_per_ip < 50 || emu.http_stats().active < 100 {
        assert!(Instant::now() < deadline, "{:?}", emu.http_stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(emu.http_stats().active, 100);
    eprintln!("{refused} of the excess connections were reset while connecting");

    let client = reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .build()
        .expect("client");
    let started = Instant::now();
    let reply = send(client.get(emu.openid_url())).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 200);
    assert!(
        took < Duration::from_secs(1),
        "genuine request took {took:?}"
    );

    let mut still_open = 0;
    for stream in &mut held {
        if !closed_within(stream, header_timeout + Duration::from_secs(20)).await {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "slow connections not closed after the header timeout"
    );
    let stats = emu.http_stats();
    assert!(stats.header_timeouts >= 100, "{stats:?}");
    assert_eq!(stats.refused_per_ip, 50, "{stats:?}");
    let report = emu.shutdown().await;
    assert_eq!(report.tasks_left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_http_limits_are_refused_at_start_naming_the_field() {
    let err = Emulator::start(EmulatorConfig {
        http_limits: HttpLimits {
            max_connections: 0,
            ..HttpLimits::default()
        },
        ..config()
    })
    .await
    .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("http_limits: max_connections"), "{text}");
}
