//! The inbound endpoint: [`WsServer`] serves `/acs`, `/twilio` and `/vonage` through
//! `http_guard::HttpServer`, authenticates each handshake, and drives each stream as
//! a call of the media-link seam on a task of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt as _, SinkExt, StreamExt};
use media_core::control::Control;
use media_core::link::{CallHandler, CloseReason, LinkEvent};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::auth::{Authenticator, WsAuthConfig};
use crate::dialect::{
    CLOSE_POLICY, CLOSE_TOO_BIG, Dialect, Inbound, Outbound, ProtocolError, StreamInfo,
    StreamParser,
};
use crate::link::{CLOSE_NORMAL, WriteItem, WsLink, close_reason};
use crate::playback::{self, PlaybackParts, PlaybackTask};
use crate::unmixed::{InboundStreams, Participants};
use media_core::call::AudioStreams;

/// Close code: the server is going away or the peer went silent (RFC 6455).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: the server cannot take the call now (overloaded, at capacity).
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// Close code: a protocol error of the WebSocket itself.
pub const CLOSE_PROTOCOL: u16 = 1002;

/// Messages queued for one stream's writer; at 50 frames/s, 5 s of audio.
const OUT_QUEUE: usize = 256;
/// Most messages already received that are taken before a due tick (1.28 s of 20 ms
/// chunks): bounds the tick's delay under a flood.
const MAX_DRAIN: usize = 64;
/// How long a closing stream waits for its writer and the peer's close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Creates the call of each stream that starts. Implemented for the platform by
/// [`crate::PlatformStreams`]; a test or another application may run its own
/// [`CallHandler`]s.
pub trait StreamAcceptor: Send + Sync + 'static {
    /// The stream `info` started at `now`: the call to run, or why not (the stream is
    /// closed with 1013 and the reason). `waker` makes the stream's task call
    /// [`CallHandler::handle_wake`] soon. `playback` is the stream's side of the bot's
    /// clear and marks (make the bot's [`crate::Playback`] of it, or drop it). The call
    /// runs the received audio [`StreamInfo::audio`] says; `participants` names the
    /// MSIs of an unmixed stream's participants as they first speak.
    fn accept(
        &self,
        info: &StreamInfo,
        now: Instant,
        waker: Box<dyn Fn() + Send + Sync>,
        playback: PlaybackParts,
        participants: Participants,
    ) -> Result<Box<dyn CallHandler>, String>;
}

/// How the endpoint runs.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Credentials per dialect.
    pub auth: WsAuthConfig,
    /// The HTTP server's limits (handshakes).
    pub limits: http_guard::Limits,
    /// Largest message taken, bytes; a larger one closes the stream with 1009.
    /// Default 256 KiB (a second of 24 kHz audio in base64 JSON is about 64 KiB).
    pub max_message_bytes: usize,
    /// Time from the handshake to the stream's start message. Default 10 s.
    pub start_timeout: Duration,
    /// A stream that sends nothing this long is closed (1001) and its call fails
    /// with `PeerVanished`. Default 10 s.
    pub idle_timeout: Duration,
    /// What the ACS streams' calls receive, as the ACS subscription was asked
    /// (`mediaStreamingOptions.audioChannelType`): [`AudioStreams::MIXED`] (default,
    /// `"mixed"`: every chunk is the mix), or unmixed streams (`"unmixed"`:
    /// [`AudioStreams::mixed_and_unmixed`]`(4)`), where each chunk naming a
    /// `participantRawID` is that participant's own stream (an MSI of its own, named
    /// in [`crate::IncomingStream::participants`]) and one naming none the mix.
    pub acs_audio: AudioStreams,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            auth: WsAuthConfig::default(),
            limits: http_guard::Limits::default(),
            max_message_bytes: 256 * 1024,
            start_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            acs_audio: AudioStreams::MIXED,
        }
    }
}

/// Counters of the endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsStats {
    /// Handshakes refused with 401.
    pub unauthorized: u64,
    /// Streams whose call started.
    pub calls_started: u64,
    /// Streams refused by the acceptor (1013).
    pub calls_refused: u64,
    /// Streams closed for a protocol error (bad message, too large, no start).
    pub protocol_errors: u64,
    /// Streams ended (any way).
    pub streams_ended: u64,
}

#[derive(Default)]
struct Counters {
    unauthorized: AtomicU64,
    calls_started: AtomicU64,
    calls_refused: AtomicU64,
    protocol_errors: AtomicU64,
    streams_ended: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    config: WsConfig,
    auth: Authenticator,
    acceptor: Arc<dyn StreamAcceptor>,
    counters: Counters,
}

/// The inbound media WebSocket endpoint (see the [crate documentation](crate)).
pub struct WsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    http: http_guard::Stats,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl WsServer {
    /// Binds `addr` and serves the three endpoints, each stream's call made by
    /// `acceptor`. Must be called inside a tokio runtime.
    pub async fn bind(
        addr: SocketAddr,
        config: WsConfig,
        acceptor: Arc<dyn StreamAcceptor>,
    ) -> std::io::Result<WsServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let server = http_guard::HttpServer::new(listener, config.limits.clone(), "ws-link")
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let addr = server.local_addr();
        let http = server.stats();
        let shared = Arc::new(Shared {
            auth: Authenticator::new(config.auth.clone()),
            config,
            acceptor,
            counters: Counters::default(),
        });
        let mut router = Router::new();
        for dialect in Dialect::ALL {
            router = router.route(
                dialect.path(),
                get(
                    move |state: State<Arc<Shared>>,
                          peer: ConnectInfo<SocketAddr>,
                          headers: HeaderMap,
                          uri: Uri,
                          ws: Result<
                        WebSocketUpgrade,
                        axum::extract::ws::rejection::WebSocketUpgradeRejection,
                    >| { handshake(dialect, state, peer, headers, uri, ws) },
                ),
            );
        }
        let router = router.with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(router, async move {
            let _ = stopped.await;
        }));
        Ok(WsServer {
            addr,
            shared,
            http,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL of `dialect` (`ws://addr/acs`, ...).
    pub fn url(&self, dialect: Dialect) -> String {
        format!("ws://{}{}", self.addr, dialect.path())
    }

    /// Whether `dialect` is served without authentication.
    pub fn is_open(&self, dialect: Dialect) -> bool {
        self.shared.config.auth.is_open(dialect)
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> WsStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WsStats {
            unauthorized: get(&c.unauthorized),
            calls_started: get(&c.calls_started),
            calls_refused: get(&c.calls_refused),
            protocol_errors: get(&c.protocol_errors),
            streams_ended: get(&c.streams_ended),
        }
    }

    /// The HTTP server's counters (handshakes).
    pub fn http_stats(&self) -> http_guard::StatsSnapshot {
        self.http.snapshot()
    }

    /// Stops accepting handshakes and waits for the HTTP server to end (running
    /// streams end with their connections).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn handshake(
    dialect: Dialect,
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    if let Err(why) = shared
        .auth
        .check(dialect, &headers, path, Some(peer.ip()))
        .await
    {
        bump(&shared.counters.unauthorized);
        tracing::info!(%dialect, %peer, "stream refused (401): {why}");
        return (
            StatusCode::UNAUTHORIZED,
            format!("{dialect} stream refused: {why}\n"),
        )
            .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let max = shared.config.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| run_stream(socket, dialect, peer, shared))
}

/// How a stream's reading ended.
enum End {
    /// Report this to the call (if one runs) and close with this code and reason.
    Close(CloseReason, u16, String),
    /// The peer closed (or the connection dropped): report, nothing to send.
    Gone(CloseReason),
    /// The call closed the link itself (already told the peer).
    Local(String),
}

impl End {
    /// The peer broke the protocol: close with `code`, the call fails with `detail`.
    fn protocol(code: u16, detail: String) -> Self {
        let reason = CloseReason::ProtocolError {
            detail: detail.clone(),
            by_peer: false,
        };
        End::Close(reason, code, detail)
    }
}

async fn run_stream(socket: WebSocket, dialect: Dialect, peer: SocketAddr, shared: Arc<Shared>) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel::<WriteItem>(OUT_QUEUE);
    let writer = tokio::spawn(write_loop(sink, rx));
    let mut parser = StreamParser::new(dialect);
    let started = tokio::time::timeout(shared.config.start_timeout, async {
        loop {
            let parsed = match stream.next().await {
                Some(Ok(Message::Text(t))) => parser.handle_text(t.as_str()).map(|i| match i {
                    Inbound::Start(info) => Some(info),
                    _ => None,
                }),
                Some(Ok(Message::Binary(b))) => parser.handle_binary(&b).map(|_| None),
                Some(Ok(Message::Close(_))) | None => {
                    return Err(End::Gone(CloseReason::PeerLeft {
                        reason: "closed before the start message".into(),
                    }));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(read_error(e)),
            };
            match parsed {
                Ok(Some(info)) => return Ok(info),
                Ok(None) => continue,
                Err(e) => {
                    let none = CloseReason::Closed {
                        reason: String::new(),
                    };
                    return Err(End::Close(none, e.code, e.detail));
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        Err(End::Close(
            CloseReason::Closed {
                reason: String::new(),
            },
            CLOSE_POLICY,
            format!(
                "no start message within {} ms of the handshake",
                shared.config.start_timeout.as_millis()
            ),
        ))
    });
    let mut info = match started {
        Ok(info) => info,
        Err(end) => {
            if let End::Close(_, code, detail) = &end {
                bump(&shared.counters.protocol_errors);
                tracing::info!(%dialect, %peer, code, "stream closed before its call: {detail}");
                let _ = tx.try_send(WriteItem::Close(*code, close_reason(detail)));
            }
            return finish(shared, tx, writer, stream).await;
        }
    };
    let notify = Arc::new(Notify::new());
    let waker = {
        let notify = notify.clone();
        Box::new(move || notify.notify_one())
    };
    if dialect == Dialect::Acs {
        info.audio = shared.config.acs_audio;
    }
    let participants = Participants::default();
    let media = WsLink::new(tx.clone(), &info).and_then(|link| {
        let inbound = InboundStreams::new(info.encoding, info.audio, participants.clone())?;
        Ok((link, inbound))
    });
    let (mut link, mut inbound) = match media {
        Ok(m) => m,
        Err(e) => {
            let _ = tx.try_send(WriteItem::Close(1011, close_reason(&e.to_string())));
            return finish(shared, tx, writer, stream).await;
        }
    };
    let (parts, mut playback) = playback::channel();
    link.count_sent_in(playback.sent.clone());
    let mut handler =
        match shared
            .acceptor
            .accept(&info, Instant::now(), waker, parts, participants)
        {
            Ok(h) => h,
            Err(why) => {
                bump(&shared.counters.calls_refused);
                tracing::info!(%dialect, %peer, "stream refused: {why}");
                let _ = tx.try_send(WriteItem::Close(CLOSE_TRY_AGAIN_LATER, close_reason(&why)));
                return finish(shared, tx, writer, stream).await;
            }
        };
    bump(&shared.counters.calls_started);
    tracing::info!(%dialect, %peer, stream = %info.stream_id, encoding = ?info.encoding, "stream call started");
    let idle = shared.config.idle_timeout;
    let mut last_heard = tokio::time::Instant::now();
    let end = loop {
        let tick = handler
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            () = notify.notified() => playback.turn(|| handler.handle_wake(Instant::now(), &mut link)),
            () = tokio::time::sleep_until(tick) => {
                // Messages that came in while this task did not run (a busy machine)
                // go to the call before the ticks that were due meanwhile, or those
                // ticks would find the jitter buffer empty and conceal audio that is
                // already here.
                let mut ended = None;
                for _ in 0..MAX_DRAIN {
                    let Some(msg) = stream.next().now_or_never() else {
                        break;
                    };
                    last_heard = tokio::time::Instant::now();
                    ended = on_message(msg, &mut parser, &mut inbound, handler.as_mut(), &mut link, &mut playback);
                    if ended.is_some() {
                        break;
                    }
                }
                if let Some(end) = ended {
                    break end;
                }
                playback.turn(|| handler.handle_timeout(Instant::now(), &mut link));
                playback.poll(dialect, &mut link);
            }
            Some(command) = playback.commands.recv() => playback.on_command(command, dialect, &mut link),
            () = tokio::time::sleep_until(last_heard + idle) => {
                break End::Close(
                    CloseReason::PeerVanished { idle_timeout: idle },
                    CLOSE_GOING_AWAY,
                    format!("nothing received for {} ms", idle.as_millis()),
                );
            }
            msg = stream.next() => {
                last_heard = tokio::time::Instant::now();
                if let Some(end) = on_message(msg, &mut parser, &mut inbound, handler.as_mut(), &mut link, &mut playback) {
                    break end;
                }
            }
        }
        if let Some(reason) = link.take_local_close() {
            break End::Local(reason);
        }
    };
    let now = Instant::now();
    let reason = match end {
        End::Close(reason, code, detail) => {
            if code != CLOSE_NORMAL && code != CLOSE_GOING_AWAY {
                bump(&shared.counters.protocol_errors);
            }
            tracing::info!(%dialect, %peer, code, "stream closed: {detail}");
            link.close_with(code, &detail);
            reason
        }
        End::Gone(reason) => reason,
        End::Local(reason) => CloseReason::Closed { reason },
    };
    tracing::info!(%dialect, %peer, stream = %info.stream_id, %reason, "stream call ended");
    handler.handle_event(now, LinkEvent::Closed(&reason), &mut link);
    playback.end();
    drop(link);
    finish(shared, tx, writer, stream).await;
}

/// One message (or the end of the stream) for the running call; `Some` ends it.
fn on_message(
    msg: Option<Result<Message, axum::Error>>,
    parser: &mut StreamParser,
    inbound: &mut InboundStreams,
    handler: &mut dyn CallHandler,
    link: &mut WsLink,
    playback: &mut PlaybackTask,
) -> Option<End> {
    let now = Instant::now();
    let parsed = match &msg {
        Some(Ok(Message::Text(t))) => parser.handle_text(t.as_str()),
        Some(Ok(Message::Binary(b))) => parser.handle_binary(b),
        Some(Ok(Message::Close(frame))) => {
            let reason = frame
                .as_ref()
                .map(|f| format!("closed the WebSocket ({} {})", f.code, f.reason.as_str()))
                .unwrap_or_else(|| "closed the WebSocket".to_owned());
            return Some(End::Gone(CloseReason::PeerLeft { reason }));
        }
        Some(Ok(_)) => return None,
        Some(Err(_)) => {
            return msg.and_then(Result::err).map(read_error);
        }
        None => {
            return Some(End::Gone(CloseReason::Transport {
                detail: "the connection ended without a close message".into(),
            }));
        }
    };
    link.stats_mut().transport_received += 1;
    let item = match parsed {
        Ok(item) => item,
        Err(ProtocolError { code, detail }) => {
            link.stats_mut().malformed += 1;
            return Some(End::protocol(code, detail));
        }
    };
    match item {
        Inbound::Audio(chunk) => {
            let mut frames = 0u64;
            let result = inbound.push(&chunk, |packet| {
                frames += 1;
                playback.turn(|| handler.handle_event(now, LinkEvent::Packet(packet), link));
            });
            let stats = link.stats_mut();
            stats.packets_received += frames;
            stats.delivered += frames;
            if let Err(ProtocolError { code, detail }) = result {
                stats.malformed += 1;
                return Some(End::protocol(code, detail));
            }
            None
        }
        Inbound::Dtmf { tone, duration_ms } => {
            link.stats_mut().control_received += 1;
            playback.turn(|| {
                handler.handle_event(
                    now,
                    LinkEvent::Control(Control::Dtmf { tone, duration_ms }),
                    link,
                )
            });
            None
        }
        Inbound::Stop => Some(End::Close(
            CloseReason::PeerLeft {
                reason: "the platform stopped the stream".into(),
            },
            CLOSE_NORMAL,
            "stream stopped".into(),
        )),
        Inbound::Mark(name) => {
            playback.on_platform_mark(&name);
            None
        }
        Inbound::Start(_) | Inbound::Ignored(_) => None,
    }
}

/// A read error: a message over the size limit (1009) or a broken WebSocket (1002).
fn read_error(e: axum::Error) -> End {
    let text = e.to_string();
    let (code, detail) = if text.contains("Space limit exceeded") || text.contains("too long") {
        (
            CLOSE_TOO_BIG,
            format!("message too large: {}", media_blob::bounded(&text, 120)),
        )
    } else {
        (
            CLOSE_PROTOCOL,
            format!("WebSocket error: {}", media_blob::bounded(&text, 120)),
        )
    };
    End::protocol(code, detail)
}

/// Lets the writer send what is queued (the close frame last), then waits briefly
/// for the peer's close so that the connection ends cleanly.
async fn finish(
    shared: Arc<Shared>,
    tx: mpsc::Sender<WriteItem>,
    writer: tokio::task::JoinHandle<()>,
    mut stream: SplitStream<WebSocket>,
) {
    bump(&shared.counters.streams_ended);
    drop(tx);
    let _ = tokio::time::timeout(CLOSE_GRACE, writer).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

async fn write_loop(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<WriteItem>) {
    while let Some(item) = rx.recv().await {
        let (message, last) = match item {
            WriteItem::Message(Outbound::Text(t)) => (Message::Text(t.into()), false),
            WriteItem::Message(Outbound::Binary(b)) => (Message::Binary(b.into()), false),
            WriteItem::Close(code, reason) => (
                Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
                true,
            ),
        };
        if sink.send(message).await.is_err() || last {
            break;
        }
    }
    let _ = sink.flush().await;
}
