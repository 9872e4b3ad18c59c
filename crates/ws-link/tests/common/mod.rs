//! What the endpoint tests share: a runtime and a platform behind the endpoint.

use std::sync::Arc;

use platform::{FrameDelivery, MediaPlatform, MediaPlatformSettings};
use tokio::sync::mpsc;
use ws_link::{IncomingStream, PlatformStreams, StreamInfo, WsConfig, WsServer};

/// A runtime of two worker threads.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A platform (one reactor thread; never refusing calls as overloaded: a busy test
/// machine must not decide these tests) behind an endpoint configured by `config`,
/// frames delivered as `delivery` says; the new calls come out of the receiver.
pub async fn endpoint(
    config: WsConfig,
    delivery: impl Fn(&StreamInfo) -> FrameDelivery + Send + Sync + 'static,
) -> (
    WsServer,
    mpsc::UnboundedReceiver<IncomingStream>,
    Arc<MediaPlatform>,
) {
    let mut settings = MediaPlatformSettings::dev_loopback();
    settings.reactor_threads = 1;
    settings.health.overload = f64::INFINITY;
    settings.health.overload_late_pct = f64::INFINITY;
    let platform = Arc::new(MediaPlatform::start(settings).expect("platform"));
    let (streams, incoming) = PlatformStreams::new(platform.clone(), delivery);
    let server = WsServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        config,
        Arc::new(streams),
    )
    .await
    .expect("bind");
    (server, incoming, platform)
}
