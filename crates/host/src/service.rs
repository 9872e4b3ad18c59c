//! The running host: Graph runtime, callback server, media sessions behind an
//! admission gate, the admin port, and the drain.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bot::{EchoBot, MediaBot, PlatformSessions, SessionOptions, SessionReport};
use graph::{
    AnswerMedia, AuthConfig, CallRuntime, CallView, CallbackConfig, GraphClient, GraphConfig,
    MediaError, MediaSessions, RejectReason, RuntimeConfig, RuntimeEventKind, TeardownReason,
};
use media_blob::MediaSessionConfig;
use signaling::Field;
use tokio::sync::watch;
use uuid::Uuid;

use crate::HostError;
use crate::config::{BotKind, HostConfig};
use crate::links::{LinkedCalls, Links};
use crate::metrics::{CallQoe, Gauges, Metrics};
use crate::routing::{Recent, Routing};

/// What the admin port and the gate share.
#[derive(Debug)]
pub(crate) struct HostState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) draining: AtomicBool,
    sessions: Arc<PlatformSessions>,
    runtime: Mutex<Option<CallRuntime>>,
    /// Peers are configured (the routing metrics are written).
    routing: bool,
    /// The WHIP and media WebSocket calls running.
    pub(crate) linked: LinkedCalls,
}

impl HostState {
    pub(crate) fn health(&self) -> platform::Health {
        self.sessions.platform().health()
    }

    /// Ready: not draining and the platform neither HeavilyLoaded nor Overloaded.
    pub(crate) fn ready(&self) -> bool {
        !self.draining.load(Ordering::SeqCst) && self.health() == platform::Health::Normal
    }

    pub(crate) fn gauges(&self) -> Gauges {
        let p = self.sessions.platform();
        let report = p.health_report();
        let ticks = p.tick_totals();
        let calls_active = lock(&self.runtime)
            .as_ref()
            .map_or(0, CallRuntime::live_calls)
            + self.linked.live();
        Gauges {
            calls_active,
            media_sessions: self.sessions.session_count(),
            health: Some(report.health),
            load: report.load,
            draining: self.draining.load(Ordering::SeqCst),
            ready: self.ready(),
            ticks: ticks.ticks,
            late_ticks: ticks.late,
            routing: self.routing,
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The media sessions behind the admission gate: refused while draining (counted by
/// reason), otherwise the platform's (which refuses while Overloaded).
struct Gate {
    state: Arc<HostState>,
    inner: Arc<PlatformSessions>,
}

impl MediaSessions for Gate {
    fn create_session(&self, session_id: Uuid) -> Result<MediaSessionConfig, MediaError> {
        if self.state.draining.load(Ordering::SeqCst) {
            self.state.metrics.refused("draining");
            return Err(MediaError::Failed(
                "the host is draining: place the call on another instance".into(),
            ));
        }
        self.inner.create_session(session_id).inspect_err(|e| {
            self.state.metrics.refused(match e {
                MediaError::Overloaded => "overloaded",
                _ => "failed",
            });
        })
    }

    fn start(&self, session_id: Uuid, call_id: &str) {
        self.inner.start(session_id, call_id);
    }

    fn start_call(&self, session_id: Uuid, call: CallView) {
        self.inner.start_call(session_id, call);
    }

    fn stop(&self, session_id: Uuid) {
        self.inner.stop(session_id);
    }
}

/// The calls the host follows: Graph call id → media session (once known) and
/// whether the drain hung it up.
#[derive(Debug, Default)]
struct Calls(Mutex<HashMap<String, (Option<Uuid>, bool)>>);

impl Calls {
    fn track(&self, call_id: &str, session: Option<Uuid>) {
        let mut m = lock(&self.0);
        let e = m
            .entry(call_id.to_ascii_lowercase())
            .or_insert((None, false));
        if session.is_some() {
            e.0 = session;
        }
    }

    fn mark_drained(&self, call_id: &str) {
        if let Some(e) = lock(&self.0).get_mut(&call_id.to_ascii_lowercase()) {
            e.1 = true;
        }
    }

    fn remove(&self, call_id: &str) -> Option<(Option<Uuid>, bool)> {
        lock(&self.0).remove(&call_id.to_ascii_lowercase())
    }

    fn ids(&self) -> Vec<String> {
        lock(&self.0).keys().cloned().collect()
    }
}

/// The reason label of a teardown.
fn ended_reason(reason: &TeardownReason, drained: bool) -> &'static str {
    match reason {
        TeardownReason::HungUp if drained => "drain_deadline",
        TeardownReason::HungUp => "hung_up",
        TeardownReason::Terminated { .. } => "terminated",
        TeardownReason::Gone => "gone",
        TeardownReason::MediaFailure(_) => "media_failure",
        TeardownReason::Shutdown => "shutdown",
        _ => "other",
    }
}

pub(crate) fn qoe_of(report: &SessionReport) -> CallQoe {
    let jb = report.last.jitter;
    let c = report.last.counters;
    let q = report.last.qoe;
    CallQoe {
        jitter_buffer_delay_ms: if jb.jitter_buffer_emitted_count > 0 {
            jb.jitter_buffer_delay / jb.jitter_buffer_emitted_count as f64 * 1000.0
        } else {
            f64::NAN
        },
        loss_pct: report.last.qoe.loss_pct,
        concealment_pct: if c.frames_received > 0 {
            100.0 * c.frames_concealed as f64 / c.frames_received as f64
        } else {
            f64::NAN
        },
        rtt_ms: if report.last.qoe.rtt_ms > 0.0 {
            report.last.qoe.rtt_ms
        } else {
            f64::NAN
        },
        late_ticks_pct: if q.ticks > 0 {
            100.0 * q.late_ticks as f64 / q.ticks as f64
        } else {
            f64::NAN
        },
        // Its media's reactor time over the media time it ran (20 ms a tick).
        cpu_pct: if q.ticks > 0 {
            100.0 * q.busy_us as f64 / (q.ticks as f64 * 20_000.0)
        } else {
            f64::NAN
        },
    }
}

/// What [`Host::run`] ends with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Calls live when the drain began (Graph, WHIP and media WebSocket calls).
    pub calls_at_drain: usize,
    /// Calls that ended on their own before the deadline.
    pub ended_in_time: usize,
    /// Calls hung up at the deadline.
    pub hung_up_at_deadline: usize,
    /// Calls still followed when the host stopped (none unless Graph did not answer).
    pub left: usize,
}

/// A started host. [`Host::run`] serves until the drain signal, drains, and stops.
#[derive(Debug)]
pub struct Host {
    config: HostConfig,
    state: Arc<HostState>,
    runtime: CallRuntime,
    calls: Arc<Calls>,
    recent: Arc<Recent>,
    callback_url: String,
    instance_callback_url: String,
    admin_addr: SocketAddr,
    stop_servers: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    events: tokio::task::JoinHandle<()>,
    links: Links,
}

impl Host {
    /// Starts the media platform, the Graph runtime with its callback server, the
    /// admin port, and the event task (answers or rejects offered calls, counts ends,
    /// observes each ended call's QoE); places the configured calls. Must run inside a
    /// tokio multi-thread runtime.
    pub async fn start(config: HostConfig) -> Result<Host, HostError> {
        let bot: Arc<dyn MediaBot> = match config.bot {
            BotKind::Echo => Arc::new(EchoBot),
        };
        let options = SessionOptions {
            keep_reports: 4096,
            ..SessionOptions::default()
        };
        let frame_channel = options.frame_channel;
        let sessions = PlatformSessions::start(config.media.clone(), bot, options)?;
        let state = Arc::new(HostState {
            metrics: Arc::new(Metrics::default()),
            draining: AtomicBool::new(false),
            sessions: sessions.clone(),
            runtime: Mutex::new(None),
            routing: !config.routing.peers.is_empty(),
            linked: LinkedCalls::default(),
        });
        let g = &config.graph;
        let mut graph_config = GraphConfig::new(
            g.base_url.clone(),
            g.token_url.clone(),
            g.client_id.clone(),
            g.client_secret.clone(),
        );
        if let Some(cert) = &g.client_certificate {
            graph_config = graph_config.client_certificate(cert.clone());
        }
        let client = GraphClient::new(graph_config)?;
        let gate = Arc::new(Gate {
            state: state.clone(),
            inner: sessions.clone(),
        });
        let listener = bind(config.callback.bind, "callback.bind").await?;
        let callback_addr = local(&listener, "callback.bind")?;
        let callback_url = config.callback.public_url.clone().unwrap_or_else(|| {
            let scheme = if config.callback.tls.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{callback_addr}/callback")
        });
        let instance_callback_url =
            crate::routing::instance_url(&callback_url, &config.routing.instance_id);
        // Answered calls, like placed ones, are notified at this instance's own path.
        let runtime = CallRuntime::new(
            client,
            gate,
            RuntimeConfig::default()
                .keep_alive_interval(g.keep_alive)
                .answer_callback_uri(Some(instance_callback_url.clone())),
        );
        sessions.attach(&runtime);
        *lock(&state.runtime) = Some(runtime.clone());

        let (stop_servers, stopped) = watch::channel(false);
        let callbacks = match &config.callback.openid_url {
            Some(url) => CallbackConfig::new(AuthConfig::new(g.client_id.clone(), url.clone())),
            None => CallbackConfig::unauthenticated(),
        };
        let recent = Arc::new(Recent::default());
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| HostError::Start(format!("routing: no HTTP client: {e}")))?;
        let router = crate::routing::router(Routing {
            instance_id: config.routing.instance_id.clone(),
            peers: config.routing.peers.clone(),
            runtime: runtime.clone(),
            state: state.clone(),
            recent: recent.clone(),
            local: runtime.callback_router(callbacks.path("/callback")),
            http,
        });
        let mut servers = match &config.callback.tls {
            Some(tls) => vec![tokio::spawn(crate::tls::serve(
                listener,
                router,
                tls.server.clone(),
                http_guard::Limits::default(),
                until(stopped.clone()),
            ))],
            None => {
                let http = http_guard::HttpServer::new(
                    listener,
                    http_guard::Limits::default(),
                    "callback",
                )
                .map_err(|e| HostError::Start(format!("callback server: {e}")))?;
                vec![tokio::spawn(http.serve(router, until(stopped.clone())))]
            }
        };

        let admin = bind(config.admin_bind, "admin.bind").await?;
        let admin_addr = local(&admin, "admin.bind")?;
        let app = crate::admin::router(state.clone());
        let stop_admin = until(stopped.clone());
        servers.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(admin, app)
                .with_graceful_shutdown(stop_admin)
                .await
            {
                tracing::error!("admin server: {e}");
            }
        }));

        let links = Links::start(
            config.whip.as_ref(),
            config.ws.as_ref(),
            &sessions,
            &state,
            frame_channel,
        )
        .await?;
        for line in links.summary() {
            tracing::info!("{line}");
        }

        let calls = Arc::new(Calls::default());
        let events = tokio::spawn(event_loop(
            runtime.clone(),
            state.clone(),
            calls.clone(),
            recent.clone(),
            sessions.clone(),
            config.answer_incoming,
        ));
        let host = Host {
            config,
            state,
            runtime,
            calls,
            recent,
            callback_url,
            instance_callback_url,
            admin_addr,
            stop_servers,
            servers,
            events,
            links,
        };
        for scenario in host.config.place.clone() {
            host.place(scenario).await;
        }
        Ok(host)
    }

    /// The shared callbackUri (`callback.public_url`): where the service offers
    /// incoming calls; any instance behind it takes them.
    pub fn callback_url(&self) -> &str {
        &self.callback_url
    }

    /// The callbackUri calls this instance creates are placed with:
    /// `{shared base}/callbacks/{routing.instance_id}`.
    pub fn instance_callback_url(&self) -> &str {
        &self.instance_callback_url
    }

    /// This instance's id (`routing.instance_id`).
    pub fn instance_id(&self) -> &str {
        &self.config.routing.instance_id
    }

    /// Where the admin port listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The WHIP endpoint's URL (`[whip]`; `None`: not served).
    pub fn whip_url(&self) -> Option<String> {
        self.links.whip_url()
    }

    /// The media WebSocket URL of `dialect` (`[ws]`; `None`: not served).
    pub fn ws_url(&self, dialect: ws_link::Dialect) -> Option<String> {
        self.links.ws_url(dialect)
    }

    /// One line per WHIP and media WebSocket endpoint served (its URL, and whether
    /// it is open), for the log.
    pub fn link_summary(&self) -> Vec<String> {
        self.links.summary()
    }

    /// The host's counters and histograms (what `/metrics` writes, without the
    /// gauges); they stay readable after [`Host::run`].
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// The media sessions and their platform (health, load, and drills such as
    /// `platform().inject_load`).
    pub fn sessions(&self) -> Arc<PlatformSessions> {
        self.state.sessions.clone()
    }

    /// The media platform's address, its mpUri and certificate fingerprint, for the log.
    pub fn media_summary(&self) -> String {
        let p = self.state.sessions.platform();
        format!(
            "{} ({}, certificate {})",
            p.local_addr(),
            p.mp_uri(),
            p.certificate_fingerprint()
        )
    }

    /// Places the seed example of `scenario` with this instance's callbackUri
    /// ([`Host::instance_callback_url`]); a refusal
    /// is logged and counted, never fatal.
    pub async fn place(&self, scenario: signaling::Scenario) {
        let mut call = scenario.seed_example(None);
        call.callback_uri = Field::Value(self.instance_callback_url.clone());
        match self.runtime.create_call(call).await {
            Ok(active) => {
                // Unless it already ended (its removal came first).
                if self.runtime.roster(&active.call_id).is_some() {
                    self.calls.track(&active.call_id, active.session_id);
                }
                self.state.metrics.admitted("placed");
                println!("call {} placed ({scenario})", active.call_id);
            }
            Err(e) => {
                tracing::warn!(%scenario, "placing a call failed: {e}");
                eprintln!("placing a {scenario} call failed: {e}");
            }
        }
    }

    /// Serves until `drain` resolves (SIGTERM), then drains: readiness false at once,
    /// new calls refused, calls run until they end or the drain deadline, the rest
    /// hung up (Graph `DELETE`; WHIP and media WebSocket calls by the bot),
    /// callbacks still taken for the linger time, servers stopped.
    pub async fn run(self, drain: impl Future<Output = ()>) -> DrainReport {
        drain.await;
        self.state.draining.store(true, Ordering::SeqCst);
        let linked = &self.state.linked;
        let live = || self.runtime.live_calls() + linked.live();
        let at_drain = live();
        println!(
            "draining: {at_drain} call(s) may run up to {} s; new calls are refused",
            self.config.drain_deadline.as_secs()
        );
        let deadline = tokio::time::Instant::now() + self.config.drain_deadline;
        while live() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // WHIP and media WebSocket calls: the bot hangs up (ended: drain_deadline).
        let linked_hung = linked.hang_up_all(&self.state.sessions);
        for call_id in &linked_hung {
            println!("call {call_id}: drain deadline reached, hung up");
        }
        let left = self.calls.ids();
        let mut hung = 0;
        let mut hang_ups = tokio::task::JoinSet::new();
        for call_id in left {
            self.calls.mark_drained(&call_id);
            // Its `terminated` may come (at the shared path) before the event task
            // records the end: it is still this instance's to answer.
            self.recent.insert(&call_id);
            let runtime = self.runtime.clone();
            hang_ups.spawn(async move {
                let r = runtime.hang_up(&call_id).await;
                (call_id, r)
            });
        }
        while let Some(done) = hang_ups.join_next().await {
            match done {
                Ok((call_id, Ok(()))) => {
                    hung += 1;
                    println!("call {call_id}: drain deadline reached, hung up");
                }
                Ok((call_id, Err(e))) => eprintln!("call {call_id}: hang-up failed: {e}"),
                Err(e) => eprintln!("hang-up task failed: {e}"),
            }
        }
        hung += linked_hung.len();
        let wait = tokio::time::Instant::now() + Duration::from_secs(5);
        while live() > 0 && tokio::time::Instant::now() < wait {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The service's last notifications (the `terminated` after a hang-up) still
        // find the callback server.
        tokio::time::sleep(self.config.drain_linger).await;
        let left = live();
        self.links.shutdown().await;
        self.runtime.shutdown();
        self.stop_servers.send_replace(true);
        for s in self.servers {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
        self.events.abort();
        let report = DrainReport {
            calls_at_drain: at_drain,
            ended_in_time: at_drain.saturating_sub(hung + left),
            hung_up_at_deadline: hung,
            left,
        };
        println!(
            "drained: {} call(s) at SIGTERM, {} ended in time, {} hung up at the deadline, {} left",
            report.calls_at_drain, report.ended_in_time, report.hung_up_at_deadline, report.left
        );
        report
    }
}

async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

async fn bind(addr: SocketAddr, key: &str) -> Result<tokio::net::TcpListener, HostError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| HostError::Start(format!("{key} {addr}: cannot listen: {e}")))
}

fn local(l: &tokio::net::TcpListener, key: &str) -> Result<SocketAddr, HostError> {
    l.local_addr()
        .map_err(|e| HostError::Start(format!("{key}: no local address: {e}")))
}

/// Follows the runtime's events: offered calls answered (or rejected with a reason),
/// ends counted by reason, each ended call's QoE observed.
async fn event_loop(
    runtime: CallRuntime,
    state: Arc<HostState>,
    calls: Arc<Calls>,
    recent: Arc<Recent>,
    sessions: Arc<PlatformSessions>,
    answer_incoming: bool,
) {
    let mut events = runtime.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::error!("{n} runtime events missed: the event task fell behind");
                continue;
            }
            Err(_) => return,
        };
        let call_id = event.call_id.clone();
        match event.kind {
            RuntimeEventKind::Created => calls.track(&call_id, None),
            RuntimeEventKind::Incoming(_) => {
                calls.track(&call_id, None);
                let refuse = if state.draining.load(Ordering::SeqCst) {
                    Some(("draining", RejectReason::Busy))
                } else if !answer_incoming {
                    Some(("not_answering", RejectReason::None))
                } else if state.health() == platform::Health::Overloaded {
                    Some(("overloaded", RejectReason::Busy))
                } else {
                    None
                };
                let runtime = runtime.clone();
                let state = state.clone();
                let calls = calls.clone();
                tokio::spawn(async move {
                    if let Some((why, reason)) = refuse {
                        state.metrics.refused(why);
                        println!(
                            "call {call_id} offered: rejected ({why}, reason {})",
                            reason.as_str()
                        );
                        if let Err(e) = runtime.reject(&call_id, reason).await {
                            eprintln!("call {call_id}: reject failed: {e}");
                        }
                        return;
                    }
                    match runtime.answer(&call_id, AnswerMedia::AppHosted).await {
                        Ok(session) => {
                            if runtime.roster(&call_id).is_some() {
                                calls.track(&call_id, session);
                            }
                            state.metrics.admitted("answered");
                            println!("call {call_id} offered: answered");
                        }
                        // The gate counted a media refusal; tell the caller we are busy.
                        Err(e) => {
                            eprintln!("call {call_id} offered: not answered: {e}");
                            let _ = runtime.reject(&call_id, RejectReason::Busy).await;
                        }
                    }
                });
            }
            RuntimeEventKind::MediaStarted => {
                tracing::info!(%call_id, "media started");
            }
            RuntimeEventKind::Removed(reason) => {
                recent.insert(&call_id);
                let (session, drained) = calls.remove(&call_id).unwrap_or((None, false));
                let why = ended_reason(&reason, drained);
                state.metrics.ended(why);
                println!("call {call_id} ended: {why} ({reason:?})");
                if let Some(session) = session {
                    let sessions = sessions.clone();
                    let state = state.clone();
                    tokio::spawn(async move {
                        if let Some(r) = sessions.wait_report(session, Duration::from_secs(3)).await
                        {
                            state.metrics.observe(qoe_of(&r));
                        }
                    });
                }
            }
            _ => {}
        }
    }
}
