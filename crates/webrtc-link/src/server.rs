//! The WHIP endpoint (RFC 9725): [`WhipServer`] serves `POST /whip`, `DELETE
//! /whip/{id}`, `OPTIONS` (CORS) and a test page at `GET /` through
//! `http_guard::HttpServer`, and drives each accepted offer's call on a task of its
//! own with its own UDP socket (the ICE-lite host candidate of the answer).
//!
//! Why a task and a socket per call, not the QUIC reactor's threads and port: the
//! reactor's sockets belong to quinn's endpoints (every datagram on them is QUIC);
//! sharing them would need a demultiplexer in front of quinn-proto (STUN, DTLS and
//! SRTP told apart from QUIC by their first byte, RFC 7983). A socket per call keeps
//! the WebRTC core ([`RtcLink`]) and the seam the same and costs one port per call.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use media_core::link::CallHandler;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use crate::codec::AudioCodec;
use crate::link::{Inbound, RtcLink};
use crate::sdp::{OfferError, check_offer};

/// The page `GET /` serves: microphone → WHIP → what comes back, with live stats.
const PAGE: &str = include_str!("page.html");

/// Makes the call of each accepted offer. Implemented for the platform by
/// [`crate::PlatformCalls`]; a test or another application may run its own
/// [`CallHandler`]s.
pub trait CallAcceptor: Send + Sync + 'static {
    /// The offer `info` describes was accepted at `now`: the call to run (its
    /// packets in `info.codec.call_codec()`), or why not (the offer is answered 503
    /// with the reason). `waker` makes the call's task run
    /// [`CallHandler::handle_wake`] soon.
    fn accept(
        &self,
        info: &WhipCallInfo,
        now: Instant,
        waker: Box<dyn Fn() + Send + Sync>,
    ) -> Result<Box<dyn CallHandler>, String>;
}

/// What the server knows of a new WHIP call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhipCallInfo {
    /// The session's id (its resource is `/whip/{id}`).
    pub session_id: Uuid,
    /// The negotiated audio codec.
    pub codec: AudioCodec,
    /// The HTTP client's address.
    pub client: SocketAddr,
    /// The call's UDP address (its ICE host candidate).
    pub media_addr: SocketAddr,
}

/// How the endpoint runs.
#[derive(Debug, Clone)]
pub struct WhipConfig {
    /// Bearer token every `POST` and `DELETE` must carry (`Authorization: Bearer
    /// ...`); `None`: open (a development setting).
    pub bearer_token: Option<String>,
    /// The HTTP server's limits.
    pub limits: http_guard::Limits,
    /// Address of the calls' ICE host candidates. Default: the bound IP, or for an
    /// unspecified bind (`0.0.0.0`) the local address the route to each client uses.
    pub candidate_ip: Option<IpAddr>,
    /// A call that hears nothing from its peer this long ends (`PeerVanished`); a
    /// peer must also connect within it. Default 10 s.
    pub idle_timeout: Duration,
    /// Audio codecs answered, most preferred first. Default Opus, PCMU, PCMA.
    pub codecs: Vec<AudioCodec>,
    /// Largest offer taken, bytes (a larger body is answered 413). Default 64 KiB.
    pub max_offer_bytes: usize,
    /// `Access-Control-Allow-Origin` of every response. Default `*`: a page on any
    /// origin may call (with the bearer token where one is configured).
    pub allow_origin: String,
    /// Most calls at once; an offer beyond is answered 503. Default 256.
    pub max_calls: usize,
}

impl Default for WhipConfig {
    fn default() -> Self {
        Self {
            bearer_token: None,
            limits: http_guard::Limits::default(),
            candidate_ip: None,
            idle_timeout: Duration::from_secs(10),
            codecs: AudioCodec::ALL.to_vec(),
            max_offer_bytes: 64 * 1024,
            allow_origin: "*".into(),
            max_calls: 256,
        }
    }
}

/// Counters of the endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WhipStats {
    /// Offers answered `201 Created`.
    pub calls_started: u64,
    /// Requests refused with 401.
    pub unauthorized: u64,
    /// Offers refused for their SDP (400, 415, 422).
    pub offers_refused: u64,
    /// Offers refused by the acceptor or the call limit (503).
    pub calls_refused: u64,
    /// Sessions ended by `DELETE`.
    pub deleted: u64,
    /// Calls ended (any way).
    pub calls_ended: u64,
}

#[derive(Default)]
struct Counters {
    calls_started: AtomicU64,
    unauthorized: AtomicU64,
    offers_refused: AtomicU64,
    calls_refused: AtomicU64,
    deleted: AtomicU64,
    calls_ended: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Why a call's task is told to stop.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Deleted,
    Shutdown,
}

struct Shared {
    config: WhipConfig,
    acceptor: Arc<dyn CallAcceptor>,
    bind_ip: IpAddr,
    counters: Counters,
    sessions: Mutex<HashMap<Uuid, oneshot::Sender<Stop>>>,
}

impl Shared {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, oneshot::Sender<Stop>>> {
        // A panic elsewhere leaves the map usable: its entries are plain senders.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The WHIP endpoint (see the [module documentation](self)).
pub struct WhipServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    http: http_guard::Stats,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WhipServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhipServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl WhipServer {
    /// Binds `addr` and serves the endpoint, each accepted offer's call made by
    /// `acceptor`. Must be called inside a tokio runtime.
    pub async fn bind(
        addr: SocketAddr,
        config: WhipConfig,
        acceptor: Arc<dyn CallAcceptor>,
    ) -> std::io::Result<WhipServer> {
        if config.codecs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "WhipConfig::codecs is empty: no offer could be answered",
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let server = http_guard::HttpServer::new(listener, config.limits.clone(), "whip")
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let addr = server.local_addr();
        let http = server.stats();
        let max_body = config.max_offer_bytes;
        let shared = Arc::new(Shared {
            config,
            acceptor,
            bind_ip: addr.ip(),
            counters: Counters::default(),
            sessions: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route("/", get(|| async { Html(PAGE) }))
            .route("/whip", post(offer).options(options))
            .route(
                "/whip/{id}",
                axum::routing::delete(delete_session)
                    .options(options)
                    .patch(no_patch),
            )
            .layer(DefaultBodyLimit::max(max_body))
            .layer(axum::middleware::map_response_with_state(
                shared.clone(),
                cors,
            ))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(router, async move {
            let _ = stopped.await;
        }));
        Ok(WhipServer {
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

    /// The WHIP endpoint URL (`http://addr/whip`).
    pub fn url(&self) -> String {
        format!("http://{}/whip", self.addr)
    }

    /// The test page's URL (`http://addr/`).
    pub fn page_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Whether offers are taken without a bearer token.
    pub fn is_open(&self) -> bool {
        self.shared.config.bearer_token.is_none()
    }

    /// Calls running now.
    pub fn calls(&self) -> usize {
        self.shared.sessions().len()
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> WhipStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WhipStats {
            calls_started: get(&c.calls_started),
            unauthorized: get(&c.unauthorized),
            offers_refused: get(&c.offers_refused),
            calls_refused: get(&c.calls_refused),
            deleted: get(&c.deleted),
            calls_ended: get(&c.calls_ended),
        }
    }

    /// The HTTP server's counters.
    pub fn http_stats(&self) -> http_guard::StatsSnapshot {
        self.http.snapshot()
    }

    /// Stops taking offers, ends every call (`ServerShutdown`) and waits for the HTTP
    /// server to end.
    pub async fn shutdown(mut self) {
        self.stop_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    fn stop_all(&self) {
        for (_, stop) in self.shared.sessions().drain() {
            let _ = stop.send(Stop::Shutdown);
        }
    }
}

impl Drop for WhipServer {
    fn drop(&mut self) {
        self.stop_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// CORS headers on every response (RFC 9725 §4.1: a page on another origin).
async fn cors(State(shared): State<Arc<Shared>>, mut response: Response) -> Response {
    let h = response.headers_mut();
    if let Ok(origin) = HeaderValue::from_str(&shared.config.allow_origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link, ETag, Accept-Post"),
    );
    response
}

async fn options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "POST, DELETE, PATCH, OPTIONS",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, If-Match",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
            (
                header::HeaderName::from_static("accept-post"),
                "application/sdp",
            ),
        ],
    )
        .into_response()
}

/// Trickle ICE and ICE restarts (`PATCH`) are not supported (RFC 9725 §4.3.1: 405).
async fn no_patch() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "DELETE, OPTIONS")],
        "trickle ICE and ICE restarts are not supported: send the offer with its candidates\n",
    )
        .into_response()
}

/// A refusal: status and a one-line reason (text/plain).
fn refuse(status: StatusCode, why: impl std::fmt::Display) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// Compares in time independent of where the inputs differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `None` when the request may proceed, else the 401.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = shared.config.bearer_token.as_ref()?;
    let why = match headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => "an Authorization: Bearer token is required",
        Some(v) => match v.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => {
                if same_secret(t.trim().as_bytes(), token.as_bytes()) {
                    return None;
                }
                "the bearer token is not valid"
            }
            _ => "the Authorization header must be \"Bearer <token>\"",
        },
    };
    bump(&shared.counters.unauthorized);
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("{why}\n"),
        )
            .into_response(),
    )
}

async fn offer(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = authorize(&shared, &headers) {
        return refusal;
    }
    let refused = |status: StatusCode, why: &dyn std::fmt::Display| {
        bump(&shared.counters.offers_refused);
        tracing::info!(%client, status = status.as_u16(), "WHIP offer refused: {why}");
        refuse(status, why)
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/sdp") {
        let why = format!(
            "an offer's Content-Type must be application/sdp, not {}",
            media_blob::excerpt(content_type)
        );
        return refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, &why);
    }
    let Ok(sdp) = std::str::from_utf8(&body) else {
        return refused(
            StatusCode::BAD_REQUEST,
            &OfferError::NotSdp("the body is not UTF-8 text".into()),
        );
    };
    let checked = match check_offer(sdp, &shared.config.codecs) {
        Ok(c) => c,
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return refused(status, &e);
        }
    };
    if shared.sessions().len() >= shared.config.max_calls {
        bump(&shared.counters.calls_refused);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!(
                "this endpoint runs its maximum of {} calls\n",
                shared.config.max_calls
            ),
        )
            .into_response();
    }
    let ip = candidate_ip(&shared, client);
    let socket = match std::net::UdpSocket::bind((ip, 0))
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(UdpSocket::from_std)
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%ip, error = %e, "cannot bind a UDP socket for a WebRTC call");
            bump(&shared.counters.calls_refused);
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot open the call's UDP socket on {ip}: {e}"),
            );
        }
    };
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if let Err(e) = str0m::Candidate::host(local, "udp") {
        // The server's configuration, not the offer: say so, and what to set.
        tracing::warn!(%local, error = %e, "the call's address cannot be an ICE candidate");
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "this server's media address {local} cannot be an ICE candidate ({e}); \
                 its operator sets --whip-candidate-ip"
            ),
        );
    }
    let now = Instant::now();
    let codec = checked.codec;
    let offered = checked.offered.clone();
    let (link, answer) = match RtcLink::answer(checked, local, now, shared.config.idle_timeout) {
        Ok(a) => a,
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return refused(status, &e);
        }
    };
    let session_id = Uuid::new_v4();
    let info = WhipCallInfo {
        session_id,
        codec,
        client,
        media_addr: local,
    };
    let notify = Arc::new(Notify::new());
    let waker = {
        let notify = notify.clone();
        Box::new(move || notify.notify_one())
    };
    let handler = match shared.acceptor.accept(&info, now, waker) {
        Ok(h) => h,
        Err(why) => {
            bump(&shared.counters.calls_refused);
            tracing::info!(%client, "WHIP call refused: {why}");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                format!("the call cannot be taken now: {why}\n"),
            )
                .into_response();
        }
    };
    let (stop_tx, stop_rx) = oneshot::channel();
    shared.sessions().insert(session_id, stop_tx);
    bump(&shared.counters.calls_started);
    tracing::info!(%client, %session_id, %codec, media = %local, ?offered, "WHIP call started");
    tokio::spawn(run_call(
        socket,
        link,
        handler,
        notify,
        stop_rx,
        shared.clone(),
        session_id,
    ));
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("/whip/{session_id}")),
        ],
        answer,
    )
        .into_response()
}

/// The IP of a call's candidate for `client`: configured, bound, or the local
/// address of the route to the client.
fn candidate_ip(shared: &Shared, client: SocketAddr) -> IpAddr {
    if let Some(ip) = shared.config.candidate_ip {
        return ip;
    }
    if !shared.bind_ip.is_unspecified() {
        return shared.bind_ip;
    }
    let unspecified: IpAddr = if client.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    std::net::UdpSocket::bind((unspecified, 0))
        .and_then(|s| {
            s.connect(client)?;
            s.local_addr()
        })
        .map_or(shared.bind_ip, |a| a.ip())
}

async fn delete_session(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = authorize(&shared, &headers) {
        return refusal;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("no WHIP session {}", media_blob::excerpt(&id)),
        );
    };
    let Some(stop) = shared.sessions().remove(&id) else {
        return refuse(StatusCode::NOT_FOUND, format!("no WHIP session {id}"));
    };
    let _ = stop.send(Stop::Deleted);
    bump(&shared.counters.deleted);
    tracing::info!(session_id = %id, %method, "WHIP session deleted");
    StatusCode::OK.into_response()
}

/// Hands every queued item to the call; true once the link's end was handed over.
fn deliver(link: &mut RtcLink, handler: &mut dyn CallHandler) -> bool {
    while let Some(item) = link.poll_event() {
        let now = Instant::now();
        handler.handle_event(now, item.as_event(), link);
        if let Inbound::Closed(reason) = &item {
            tracing::info!(local = %link.local_addr(), %reason, "WHIP call ended");
            return true;
        }
    }
    false
}

/// Sends every queued datagram (a full socket buffer drops it: UDP).
fn flush(socket: &UdpSocket, link: &mut RtcLink) {
    while let Some(t) = link.poll_transmit() {
        if let Err(e) = socket.try_send_to(&t.contents, t.destination) {
            tracing::debug!(error = %e, to = %t.destination, "WebRTC datagram not sent");
        }
    }
}

async fn run_call(
    socket: UdpSocket,
    mut link: RtcLink,
    mut handler: Box<dyn CallHandler>,
    notify: Arc<Notify>,
    mut stop: oneshot::Receiver<Stop>,
    shared: Arc<Shared>,
    session_id: Uuid,
) {
    let mut buf = vec![0u8; 2048];
    let mut stopped = false;
    loop {
        let ended = deliver(&mut link, handler.as_mut());
        flush(&socket, &mut link);
        if ended {
            break;
        }
        let far = Instant::now() + Duration::from_secs(3600);
        let deadline = link
            .poll_timeout()
            .unwrap_or(far)
            .min(handler.poll_timeout().unwrap_or(far));
        tokio::select! {
            biased;
            why = &mut stop, if !stopped => {
                stopped = true;
                match why {
                    Ok(Stop::Deleted) => link.end_by_peer("the WHIP session was deleted"),
                    Ok(Stop::Shutdown) | Err(_) => link.end_by_shutdown(),
                }
            }
            () = notify.notified() => handler.handle_wake(Instant::now(), &mut link),
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => link.handle_receive(Instant::now(), source, &buf[..n]),
                // An ICMP error of an earlier send (port unreachable): the peer's
                // absence shows as silence and ends the call on the idle timeout.
                Err(e) => tracing::debug!(error = %e, "WebRTC socket error"),
            },
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                let now = Instant::now();
                link.handle_timeout(now);
                if handler.poll_timeout().is_some_and(|t| t <= now) {
                    handler.handle_timeout(now, &mut link);
                }
            }
        }
    }
    shared.sessions().remove(&session_id);
    bump(&shared.counters.calls_ended);
}
