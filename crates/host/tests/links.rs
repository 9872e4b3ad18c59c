//! The host's other links end to end, with real parts: the host in this process with
//! `[whip]` and `[ws]` on 127.0.0.1 (the Graph emulator behind its Graph client), a
//! Vonage-dialect WebSocket client (binary L16 16 kHz, 640 B per 20 ms) and the
//! project's str0m WHIP peer (Opus) over real TCP and UDP. Each hears its speech come
//! back from the host's echo bot; `/metrics` counts them admitted by direction; after
//! the drain starts a new stream is closed 1013 and a new offer answered 503, counted
//! `refused{reason="draining"}`; the calls still running are hung up at the drain
//! deadline (`ended{reason="drain_deadline"}`) and the host stops.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use emulator::{Emulator, EmulatorConfig};
use futures_util::{SinkExt, StreamExt};
use harness::signal::{SignalGenerator, envelope_correlation};
use host::{Host, HostConfig};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use webrtc_link::AudioCodec;
use webrtc_link::peer::{PeerRun, PeerScript, WhipPeer};
use ws_link::Dialect;

const WHIP_TOKEN: &str = "whip-token-for-tests";
const VONAGE_TOKEN: &str = "vonage-token-for-tests";
/// Vonage's first message on a stream.
const VONAGE_START: &str =
    r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#;
/// Seconds of speech each echoed call sends.
const SECONDS: f64 = 3.0;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `GET path` on the admin port: status and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || host::admin_get(addr, &path))
        .await
        .expect("probe task")
        .expect("admin port answers")
}

/// A counter of `/metrics` (parsed strictly), 0 when not written yet.
async fn scraped(admin: SocketAddr, name: &str, label: (&str, &str)) -> f64 {
    let body = get(admin, "/metrics").await.1;
    let samples = host::metrics::parse::parse(&body).expect("exposition parses");
    host::metrics::parse::value(&samples, name, Some(label)).unwrap_or(0.0)
}

/// A Vonage stream to `url` with the bearer token, started.
async fn vonage_start(url: &str) -> Ws {
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {VONAGE_TOKEN}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("handshake");
    ws.send(Message::text(VONAGE_START)).await.expect("start");
    ws
}

/// What a Vonage client heard.
#[derive(Debug, Default)]
struct VonageRun {
    received: Vec<i16>,
    /// The server's close code, if it closed.
    close: Option<(u16, String)>,
}

/// Reads the stream until it closes.
async fn read_stream(mut rx: futures_util::stream::SplitStream<Ws>) -> VonageRun {
    let mut run = VonageRun::default();
    while let Some(m) = rx.next().await {
        match m {
            Ok(Message::Binary(b)) => run
                .received
                .extend(b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]))),
            Ok(Message::Close(f)) => {
                run.close = Some(f.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                }));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    run
}

/// Sends `source` in 20 ms frames, paced, while reading what comes back; stops early
/// when the server closes; else waits `linger` for the last echo and closes.
async fn vonage_play(ws: Ws, source: Vec<i16>, linger: Duration) -> VonageRun {
    let (mut tx, rx) = ws.split();
    let reader = tokio::spawn(read_stream(rx));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for frame in source.chunks_exact(320) {
        tick.tick().await;
        if reader.is_finished() {
            break;
        }
        let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        if tx.send(Message::binary(bytes)).await.is_err() {
            break;
        }
    }
    if !reader.is_finished() {
        tokio::time::sleep(linger).await;
        let _ = tx.send(Message::Close(None)).await;
    }
    tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("the stream ends")
        .expect("reader")
}

/// The echo of `sent` is in `received`: at some delay up to a second, its energy
/// envelope (20 ms RMS) follows the sent one.
fn assert_echo(what: &str, sent: &[i16], received: &[i16]) {
    let (c, lag) = (0..=16_000)
        .step_by(80)
        .map(|lag| (envelope_correlation(sent, received, lag), lag))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .expect("lags");
    assert!(
        c > 0.7,
        "{what}: echo envelope correlation {c:.2} at best ({lag} samples; {} received)",
        received.len()
    );
}

/// A WHIP offer from a new Opus peer: the status, the resource, the body, and the
/// peer with its socket when the offer was answered.
async fn whip_offer(
    url: &str,
    record: bool,
) -> (u16, Option<String>, String, Option<(WhipPeer, UdpSocket)>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    let local = socket.local_addr().expect("local");
    let mut peer = WhipPeer::new(AudioCodec::Opus, local, Instant::now(), record).expect("peer");
    let res = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/sdp")
        .bearer_auth(WHIP_TOKEN)
        .body(peer.offer().to_owned())
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res.text().await.expect("body");
    if status != 201 {
        return (status, location, body, None);
    }
    peer.accept_answer(&body).expect("answer accepted");
    (status, location, body, Some((peer, socket)))
}

/// A WHIP call sending `source` (its echo recorded), then DELETEd.
async fn whip_call(url: &str, source: Vec<i16>) -> PeerRun {
    let (status, location, body, peer) = whip_offer(url, true).await;
    assert_eq!(status, 201, "WHIP offer refused: {body}");
    let (peer, socket) = peer.expect("peer");
    let script = PeerScript {
        frames: (source.len() / 320) as u64,
        source,
        tone: None,
        keep_sent: true,
        linger: Duration::from_millis(600),
        deadline: Duration::from_secs(30),
    };
    let run = peer.run(socket, &script).await.expect("the peer ran");
    let base: reqwest::Url = url.parse().expect("url");
    let delete = reqwest::Client::new()
        .delete(base.join(&location.expect("Location")).expect("resource"))
        .bearer_auth(WHIP_TOKEN)
        .send()
        .await
        .expect("DELETE");
    assert!(delete.status().is_success(), "DELETE: {}", delete.status());
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_media_websocket_calls_are_served_admitted_and_drained() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let app = emu.apps()[0].clone();
    let toml = format!(
        "[graph]\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\n\
         [callback]\nbind = \"127.0.0.1:0\"\nopenid_url = \"{}\"\n\
         [media]\nreactor_threads = 1\n[admin]\nbind = \"127.0.0.1:0\"\n\
         [drain]\ndeadline_s = 4\nlinger_ms = 0\n\
         [whip]\nbind = \"127.0.0.1:0\"\n[ws]\nbind = \"127.0.0.1:0\"\n",
        emu.graph_v1_url(),
        emu.token_url_for(&app.tenant_id),
        app.client_id,
        emu.openid_url(),
    );
    let env = [
        ("MP_GRAPH_CLIENT_SECRET", app.client_secret.as_str()),
        ("MP_WHIP_TOKEN", WHIP_TOKEN),
        ("MP_WS_VONAGE_TOKEN", VONAGE_TOKEN),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let mut config = HostConfig::from_toml(&toml, env, "test.toml").expect("config");
    // Refusal by measured load is proven in overload.rs with injected load. Here the
    // load is this debug build's own (one reactor thread, the emulator, both clients
    // in one process) on a shared 2-core machine, and a CI run saw it reach
    // Overloaded: it must not refuse the calls this test is about (the drain's).
    config.media.health.overload = f64::INFINITY;
    config.media.health.overload_late_pct = f64::INFINITY;
    let host = Host::start(config).await.expect("host starts");
    let admin = host.admin_addr();
    let metrics = host.metrics();
    let whip = host.whip_url().expect("WHIP served");
    let vonage = host.ws_url(Dialect::Vonage).expect("WebSockets served");
    let summary = host.link_summary();
    assert!(
        summary.contains(&format!("WHIP endpoint: {whip}")),
        "{summary:?}"
    );
    assert!(
        summary.contains(&format!("vonage media WebSocket: {vonage}")),
        "{summary:?}"
    );
    assert_eq!(summary.len(), 4, "{summary:?}");

    // (a), (b): a Vonage stream and a WHIP call at once, each hearing its echo.
    let ws_source = SignalGenerator::speech(11).take_seconds(SECONDS);
    let whip_source = SignalGenerator::speech(12).take_seconds(SECONDS);
    let ws_run = tokio::spawn(vonage_play(
        vonage_start(&vonage).await,
        ws_source.clone(),
        Duration::from_millis(600),
    ));
    let whip_run = whip_call(&whip, whip_source).await;
    let ws_run = ws_run.await.expect("Vonage client");
    assert_echo("Vonage", &ws_source, &ws_run.received);
    assert_echo("WHIP", &whip_run.sent, whip_run.peer.received());

    // (c): both admitted by direction on /metrics; both ended, their QoE observed.
    let admitted = "mp_calls_admitted_total";
    assert_eq!(scraped(admin, admitted, ("direction", "ws")).await, 1.0);
    assert_eq!(scraped(admin, admitted, ("direction", "whip")).await, 1.0);
    let t0 = Instant::now();
    while metrics.observed_count() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "calls not ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metrics.ended_count("hung_up"), 2, "the far ends left");

    // (d): two calls running, then the drain.
    let long = SignalGenerator::speech(13).take_seconds(30.0);
    let drained_ws = tokio::spawn(vonage_play(
        vonage_start(&vonage).await,
        long.clone(),
        Duration::ZERO,
    ));
    let (status, _, body, peer) = whip_offer(&whip, false).await;
    assert_eq!(status, 201, "{body}");
    let (peer, socket) = peer.expect("peer");
    let script = PeerScript {
        frames: (long.len() / 320) as u64,
        source: long,
        tone: None,
        keep_sent: false,
        linger: Duration::ZERO,
        deadline: Duration::from_secs(30),
    };
    let drained_whip = tokio::spawn(async move { peer.run(socket, &script).await });
    let t0 = Instant::now();
    while metrics.admitted_count("ws") < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "stream not admitted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metrics.admitted_count("whip"), 2);

    let (drain, drained) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(host.run(async {
        let _ = drained.await;
    }));
    drain.send(()).expect("the host waits for the drain");
    let t0 = Instant::now();
    while get(admin, "/readyz").await.0 != 503 {
        assert!(t0.elapsed() < Duration::from_secs(10), "still ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // New calls are refused while the running ones go on.
    let (_, rx) = vonage_start(&vonage).await.split();
    let refused = tokio::time::timeout(Duration::from_secs(10), read_stream(rx))
        .await
        .expect("the refused stream closes");
    let (code, reason) = refused.close.expect("a close frame");
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.contains("draining"), "{reason}");
    let (status, _, body, _) = whip_offer(&whip, false).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    let refused = ("reason", "draining");
    assert_eq!(scraped(admin, "mp_calls_refused_total", refused).await, 2.0);
    assert_eq!(metrics.admitted_count("ws"), 2);
    assert_eq!(metrics.admitted_count("whip"), 2);

    // At the deadline the bot hangs both up; the host stops.
    let report = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the host stops")
        .expect("host task");
    assert_eq!(report.calls_at_drain, 2, "{report:?}");
    assert_eq!(report.hung_up_at_deadline, 2, "{report:?}");
    assert_eq!(report.left, 0, "{report:?}");
    assert_eq!(metrics.ended_count("drain_deadline"), 2);
    assert_eq!(metrics.ended_count("hung_up"), 2);
    assert_eq!(metrics.observed_count(), 4);
    let ws_end = tokio::time::timeout(Duration::from_secs(10), drained_ws)
        .await
        .expect("the drained stream ends")
        .expect("Vonage client");
    assert!(ws_end.close.is_some(), "the drained stream was not closed");
    assert!(
        !ws_end.received.is_empty(),
        "the drained stream had its echo"
    );
    drained_whip.abort();
    emu.shutdown().await;
}
