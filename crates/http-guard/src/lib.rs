//! One guarded accept loop for every HTTP server of the project (the bot's callback
//! server, the Graph emulator, and the servers still to come).
//!
//! `axum::serve` keeps a connection open for as long as the peer likes: 2,000 half-sent
//! requests were held for 65 s, and 1,100 of them used up a 1,024 file-descriptor limit
//! so that nobody else could connect. [`HttpServer`] serves an axum [`Router`] over
//! HTTP/1.1 (hyper) with, per [`Limits`]:
//!
//! - a **header read timeout**: a connection whose request head (the first, or the next
//!   one on a kept-alive connection) has not fully arrived in time is closed;
//! - a **body read timeout**: the body must have arrived within a deadline counted from
//!   the head's arrival; reading it later fails, the request is answered `408` and the
//!   connection closed;
//! - a **cap on concurrent connections** and one **per source address**: a connection
//!   beyond either is closed at once, before any byte is read;
//! - **keep-alive limits**: an idle kept-alive connection is closed after the header
//!   read timeout, and after [`Limits::max_requests_per_connection`] requests the
//!   response carries `Connection: close`.
//!
//! Every refusal and timeout is counted ([`Stats`]); refusals are logged at most once
//! a second per server (with the number left unlogged), timeouts at debug level.
//!
//! Each request carries its peer address as axum's
//! [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo) extension (as with
//! `into_make_service_with_connect_info`), e.g. for rate limits per source.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use http_guard::{HttpServer, Limits};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
//! let server = HttpServer::new(listener, Limits::default(), "example")?;
//! let stats = server.stats();
//! server.serve(router, std::future::pending()).await;
//! # let _ = stats;
//! # Ok(()) }
//! ```

pub mod probe;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The limits of one server. `Limits::default()` suits a bot's callback server or the
/// emulator on a machine with the usual 1,024 file descriptors; change single fields
/// with `Limits { max_connections: 64, ..Limits::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time for a request head (request line and headers) to arrive, counted from when
    /// the server starts waiting for it: on a new connection from the accept, on a
    /// kept-alive one from the end of the previous response. So this is also the
    /// keep-alive idle timeout. The connection is closed when it passes.
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// Time for the whole request body to arrive, counted from the head's arrival.
    /// Reading the body later fails; the request is answered `408 Request Timeout` and
    /// the connection closed. Default 30 s.
    pub body_read_timeout: Duration,
    /// Connections open at once; the next one is closed at once. Default 512 (half of
    /// a 1,024 file-descriptor limit).
    pub max_connections: usize,
    /// Connections open at once from one source IP address; the next one is closed at
    /// once. Default 64.
    pub max_connections_per_ip: usize,
    /// Requests served on one kept-alive connection; the response to the last carries
    /// `Connection: close`. Default 1,000.
    pub max_requests_per_connection: u64,
    /// Largest request head in bytes (request line and headers); a larger one is
    /// answered `431` and the connection closed. Default 64 KiB.
    pub max_header_bytes: usize,
    /// On shutdown, time left to connections to finish their request in progress
    /// before they are dropped. Default 5 s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_connections_per_ip: 64,
            max_requests_per_connection: 1000,
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Smallest [`Limits::max_header_bytes`] accepted (hyper's smallest read buffer).
pub const MIN_HEADER_BYTES: usize = 8192;

impl Limits {
    /// What is wrong with these limits, if anything (a zero timeout or cap, or a head
    /// size below [`MIN_HEADER_BYTES`]).
    pub fn problem(&self) -> Option<String> {
        let zero = [
            ("header_read_timeout", self.header_read_timeout.is_zero()),
            ("body_read_timeout", self.body_read_timeout.is_zero()),
            ("max_connections", self.max_connections == 0),
            ("max_connections_per_ip", self.max_connections_per_ip == 0),
            (
                "max_requests_per_connection",
                self.max_requests_per_connection == 0,
            ),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Some(format!("limits: {name} must not be zero"));
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Some(format!(
                "limits: max_header_bytes is {}, at least {MIN_HEADER_BYTES} is needed",
                self.max_header_bytes
            ));
        }
        None
    }
}

/// Why a server could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The limits are not usable (see [`Limits::problem`]).
    #[error("{0}")]
    Limits(String),
    /// The listener's address could not be read.
    #[error("{server} server: cannot read the listening address: {source}")]
    Listener {
        /// The server's name.
        server: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Counters of one server since it started (see [`Stats::snapshot`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Connections admitted.
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections closed at once because [`Limits::max_connections`] were open.
    pub refused_max_connections: u64,
    /// Connections closed at once because their address had
    /// [`Limits::max_connections_per_ip`] open.
    pub refused_per_ip: u64,
    /// Connections closed because a request head did not arrive within
    /// [`Limits::header_read_timeout`] (slow heads and idle keep-alive connections).
    pub header_timeouts: u64,
    /// Requests answered `408` because their body did not arrive within
    /// [`Limits::body_read_timeout`].
    pub body_timeouts: u64,
    /// Connections told to close after [`Limits::max_requests_per_connection`].
    pub max_requests_reached: u64,
    /// Requests served.
    pub requests: u64,
    /// Accept calls that failed (e.g. out of file descriptors).
    pub accept_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    refused_max_connections: AtomicU64,
    refused_per_ip: AtomicU64,
    header_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    max_requests_reached: AtomicU64,
    requests: AtomicU64,
    accept_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A live view of a server's counters; cheap to clone, usable after the server ended.
#[derive(Debug, Clone, Default)]
pub struct Stats(Arc<Counters>);

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &self.0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            accepted: get(&c.accepted),
            active: get(&c.active),
            refused_max_connections: get(&c.refused_max_connections),
            refused_per_ip: get(&c.refused_per_ip),
            header_timeouts: get(&c.header_timeouts),
            body_timeouts: get(&c.body_timeouts),
            max_requests_reached: get(&c.max_requests_reached),
            requests: get(&c.requests),
            accept_errors: get(&c.accept_errors),
        }
    }
}

/// Logs at most once per second; counts what it held back.
#[derive(Debug, Default)]
struct LogGate {
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl LogGate {
    const EVERY: Duration = Duration::from_secs(1);

    /// `Some(n)`: log now, `n` messages were held back since the last one.
    fn pass(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = lock(&self.last);
        match *last {
            Some(t) if now.duration_since(t) < Self::EVERY => {
                self.held_back.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.held_back.swap(0, Ordering::Relaxed))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Open connections per source address.
type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Holds one admitted connection's place; gives it back when dropped.
struct Slot {
    ip: IpAddr,
    per_ip: PerIp,
    counters: Arc<Counters>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = lock(&self.per_ip);
        if let Some(n) = table.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                table.remove(&self.ip);
            }
        }
        self.counters.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A guarded HTTP/1.1 server on a bound listener. Create with [`HttpServer::new`], run
/// with [`HttpServer::serve`].
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    addr: SocketAddr,
    limits: Arc<Limits>,
    name: &'static str,
    stats: Stats,
}

impl HttpServer {
    /// A server on `listener` with `limits`; `name` names it in log lines (e.g.
    /// `"callback"`).
    pub fn new(
        listener: TcpListener,
        limits: Limits,
        name: &'static str,
    ) -> Result<Self, GuardError> {
        if let Some(problem) = limits.problem() {
            return Err(GuardError::Limits(format!("{name} server: {problem}")));
        }
        let addr = listener
            .local_addr()
            .map_err(|source| GuardError::Listener {
                server: name,
                source,
            })?;
        Ok(HttpServer {
            listener,
            addr,
            limits: Arc::new(limits),
            name,
            stats: Stats::default(),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters (live: keep the handle and read it while the server runs).
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Serve `router` until `shutdown` completes; then stop accepting, let requests in
    /// progress finish within [`Limits::shutdown_grace`], drop what is left and return.
    pub async fn serve(self, router: Router, shutdown: impl Future<Output = ()> + Send) {
        let HttpServer {
            listener,
            addr,
            limits,
            name,
            stats,
        } = self;
        let counters = stats.0;
        let per_ip: PerIp = Arc::default();
        let refusals = LogGate::default();
        let accept_failures = LogGate::default();
        let (closing, closing_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        bump(&counters.accept_errors);
                        if let Some(held_back) = accept_failures.pass() {
                            tracing::warn!(server = name, %addr, held_back, "accept failed: {e}");
                        }
                        // Out of descriptors or a transient error: give connections
                        // time to close rather than spinning.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let ip = peer.ip().to_canonical();
            let refused = {
                let mut table = lock(&per_ip);
                let open = table.get(&ip).copied().unwrap_or(0);
                if counters.active.load(Ordering::Relaxed) >= limits.max_connections as u64 {
                    Some((&counters.refused_max_connections, "max_connections", open))
                } else if open >= limits.max_connections_per_ip {
                    Some((&counters.refused_per_ip, "max_connections_per_ip", open))
                } else {
                    table.insert(ip, open + 1);
                    counters.active.fetch_add(1, Ordering::Relaxed);
                    None
                }
            };
            if let Some((counter, limit, open_from_ip)) = refused {
                bump(counter);
                // Closed before reading anything; no lingering in TIME_WAIT either.
                let _ = stream.set_zero_linger();
                drop(stream);
                if let Some(held_back) = refusals.pass() {
                    tracing::warn!(
                        server = name,
                        %peer,
                        limit,
                        open = counters.active.load(Ordering::Relaxed),
                        open_from_ip,
                        held_back,
                        "connection refused: limit reached"
                    );
                }
                continue;
            }
            bump(&counters.accepted);
            let slot = Slot {
                ip,
                per_ip: per_ip.clone(),
                counters: counters.clone(),
            };
            connections.spawn(serve_connection(
                stream,
                peer,
                router.clone(),
                limits.clone(),
                slot,
                closing_rx.clone(),
                name,
            ));
        }
        drop(listener);
        closing.send_replace(true);
        let grace = limits.shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::debug!(
                server = name,
                left = connections.len(),
                "connections dropped at shutdown after the grace period"
            );
        }
        connections.shutdown().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Arc<Limits>,
    slot: Slot,
    mut closing: watch::Receiver<bool>,
    name: &'static str,
) {
    let _ = stream.set_nodelay(true);
    let counters = slot.counters.clone();
    let service = GuardedService {
        router,
        peer,
        limits: limits.clone(),
        counters: counters.clone(),
        served: Arc::new(AtomicU64::new(0)),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    // With upgrades: a WebSocket endpoint (ws-link) takes the connection over after
    // its handshake; until then every limit above applies.
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
            connection.as_mut().graceful_shutdown();
            connection.as_mut().await
        }
    };
    if let Err(e) = outcome {
        if e.is_timeout() {
            bump(&counters.header_timeouts);
            tracing::debug!(server = name, %peer, "connection closed: no request head within the header read timeout");
        } else {
            tracing::debug!(server = name, %peer, "connection ended: {e}");
        }
    }
    drop(slot);
}

/// Serves one connection's requests through the router, with the body deadline and
/// the per-connection request count.
#[derive(Clone)]
struct GuardedService {
    router: Router,
    /// The connection's peer, handed to the router as axum's `ConnectInfo`.
    peer: SocketAddr,
    limits: Arc<Limits>,
    counters: Arc<Counters>,
    served: Arc<AtomicU64>,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for GuardedService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        bump(&self.counters.requests);
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        let last = served >= self.limits.max_requests_per_connection;
        let deadline = self.limits.body_read_timeout;
        let late = Arc::new(AtomicBool::new(false));
        let request = request.map(|body| {
            Body::new(DeadlineBody {
                inner: body,
                deadline: Box::pin(tokio::time::sleep(deadline)),
                late: late.clone(),
            })
        });
        let router = self.router.clone();
        let counters = self.counters.clone();
        Box::pin(async move {
            let Ok(mut response) = router.oneshot(request).await;
            if late.load(Ordering::Relaxed) {
                bump(&counters.body_timeouts);
                tracing::debug!("request refused (408): body not received in time");
                response = Response::new(Body::from(format!(
                    "request timeout: the body did not arrive within {} ms\n",
                    deadline.as_millis()
                )));
                *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            } else if last {
                bump(&counters.max_requests_reached);
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        })
    }
}

/// The body did not arrive within [`Limits::body_read_timeout`].
#[derive(Debug, thiserror::Error)]
#[error("request body not received within the body read timeout")]
pub struct BodyTimeout;

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    late: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        // The deadline first: a body dripping in byte by byte must not keep it away.
        if this.deadline.as_mut().poll(cx).is_ready() && !this.inner.is_end_stream() {
            this.late.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_usable() {
        assert_eq!(Limits::default().problem(), None);
    }

    #[test]
    fn zero_caps_and_tiny_heads_are_named() {
        let zero_cap = Limits {
            max_connections_per_ip: 0,
            ..Limits::default()
        };
        let problem = zero_cap.problem().expect("refused");
        assert!(problem.contains("max_connections_per_ip"), "{problem}");
        let tiny = Limits {
            max_header_bytes: 100,
            ..Limits::default()
        };
        let problem = tiny.problem().expect("refused");
        assert!(problem.contains("max_header_bytes is 100"), "{problem}");
    }

    #[test]
    fn log_gate_passes_once_a_second_and_counts_the_rest() {
        let gate = LogGate::default();
        assert_eq!(gate.pass(), Some(0));
        assert_eq!(gate.pass(), None);
        assert_eq!(gate.pass(), None);
        *lock(&gate.last) = Instant::now().checked_sub(Duration::from_secs(2));
        assert_eq!(gate.pass(), Some(2));
    }
}
