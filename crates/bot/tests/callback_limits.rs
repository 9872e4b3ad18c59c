//! The bot's callback server is served with its limits: a half-sent request is closed
//! after the header read timeout, connections over the per-address cap at once, and
//! both are counted. Real sockets on loopback.

#![allow(clippy::unwrap_used)]

use http_guard::probe::closed_within;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bot::{BotConfig, BotHost, EchoBot, HttpLimits, PlatformSessions, SessionOptions};
use graph::RuntimeConfig;
use platform::MediaPlatformSettings;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_server_closes_slow_and_excess_connections() {
    let sessions = PlatformSessions::start(
        MediaPlatformSettings::dev_loopback(),
        Arc::new(EchoBot),
        SessionOptions::default(),
    )
    .unwrap();
    let header_timeout = Duration::from_millis(500);
    let host = BotHost::start(
        BotConfig {
            // Never reached: no call is placed.
            graph_base_url: "http://127.0.0.1:9/v1.0".into(),
            token_url: "http://127.0.0.1:9/token".into(),
            client_id: "app".into(),
            client_secret: "secret".into(),
            openid_url: None,
            runtime: RuntimeConfig::default(),
            callback_bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            callback_limits: HttpLimits {
                header_read_timeout: header_timeout,
                max_connections_per_ip: 2,
                ..HttpLimits::default()
            },
        },
        sessions,
    )
    .await
    .unwrap();
    let addr: SocketAddr = host
        .callback_url()
        .trim_start_matches("http://")
        .trim_end_matches("/callback")
        .parse()
        .unwrap();

    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /callback HTTP/1.1\r\nHo")
            .await
            .unwrap();
        slow.push(stream);
    }
    // The third from the same address is over the cap.
    let deadline = Instant::now() + Duration::from_secs(10);
    while host.callback_stats().active < 2 {
        assert!(Instant::now() < deadline, "{:?}", host.callback_stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = match TcpStream::connect(addr).await {
        Err(_) => true,
        Ok(mut excess) => closed_within(&mut excess, Duration::from_secs(5)).await,
    };
    assert!(refused, "a third connection from one address was served");
    assert_eq!(host.callback_stats().refused_per_ip, 1);

    for stream in &mut slow {
        assert!(closed_within(stream, Duration::from_secs(10)).await);
    }
    assert!(started.elapsed() >= header_timeout);
    let deadline = Instant::now() + Duration::from_secs(10);
    while host.callback_stats().header_timeouts < 2 {
        assert!(Instant::now() < deadline, "{:?}", host.callback_stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    host.shutdown().await;
}
