//! Starting, observing, driving and stopping an emulator.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_guard::{HttpServer, Stats, StatsSnapshot};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::config::{EmulatorConfig, RegisteredApp};
use crate::driver::wait_shutdown;
use crate::error::EmulatorError;
use crate::faults::Fault;
use crate::keys::SigningKey;
use crate::media::MediaLegStats;
use crate::server;
use crate::state::{
    AtomicCounters, CallSummary, Counters, Shared, TaskCounter, TaskSet, Termination, lock,
};

/// The Graph calling API emulator. Start one with [`Emulator::start`].
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Bind `config.bind`, generate the signing key (unless given) and serve until
    /// [`EmulatorHandle::shutdown`]. Must be called within a tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
        if let Some(problem) = config.problem() {
            return Err(EmulatorError::Config(problem));
        }
        let key = match &config.signing_key {
            Some(k) => k.clone(),
            None => tokio::task::spawn_blocking(SigningKey::generate)
                .await
                .map_err(|e| EmulatorError::Key(e.to_string()))??,
        };
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.bind,
                source,
            })?;
        let base_url = config
            .public_base_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{addr}"));
        let mut http = reqwest::Client::builder().timeout(config.delivery.request_timeout);
        if let Some(pem) = &config.notification_root_ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                EmulatorError::Http(format!(
                    "notification_root_ca_pem: not PEM certificates: {e}"
                ))
            })?;
            if roots.is_empty() {
                return Err(EmulatorError::Http(
                    "notification_root_ca_pem: no certificate in it".into(),
                ));
            }
            for root in roots {
                http = http.add_root_certificate(root);
            }
        }
        let http = http
            .build()
            .map_err(|e| EmulatorError::Http(e.to_string()))?;
        let (shutdown, _) = watch::channel(false);
        let control_token = config.control_token.clone().unwrap_or_else(|| {
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
        });
        let shared = Arc::new(Shared {
            config,
            key,
            base_url,
            control_token,
            calls: Default::default(),
            counters: AtomicCounters::default(),
            faults: Default::default(),
            shutdown,
            tasks: TaskSet::default(),
            assertion_jtis: Mutex::default(),
            http,
        });
        let router = server::router(shared.clone());
        let http = HttpServer::new(listener, shared.config.http_limits.clone(), "emulator")
            .map_err(|e| EmulatorError::Config(e.to_string()))?;
        let http_stats = http.stats();
        let mut stop = shared.shutdown.subscribe();
        shared.tasks.spawn(async move {
            http.serve(router, async move { wait_shutdown(&mut stop).await })
                .await;
        });
        tracing::info!(%addr, "Graph emulator listening");
        Ok(EmulatorHandle {
            shared,
            addr,
            http_stats,
            stopped: false,
        })
    }
}

/// What [`EmulatorHandle::shutdown`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Calls that were still live when shutdown began.
    pub live_calls: usize,
    /// Tasks that had to be aborted because they did not end in time.
    pub aborted_tasks: usize,
    /// Tasks still alive after shutdown (0 unless something leaked).
    pub tasks_left: usize,
}

/// A running emulator. Dropping it begins shutdown without waiting; call
/// [`EmulatorHandle::shutdown`] to wait until every task has ended.
#[derive(Debug)]
pub struct EmulatorHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    http_stats: Stats,
    stopped: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl EmulatorHandle {
    /// The address the emulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token the `/_emulator/*` control endpoints require:
    /// `Authorization: Bearer <token>`.
    pub fn control_token(&self) -> &str {
        &self.shared.control_token
    }

    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The token endpoint of the first registered app's tenant.
    pub fn token_url(&self) -> String {
        let tenant = self
            .shared
            .config
            .apps
            .first()
            .map(|a| a.tenant_id.as_str())
            .unwrap_or("common");
        self.token_url_for(tenant)
    }

    /// The token endpoint of `tenant`: `{base}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url_for(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base_url())
    }

    /// The OpenID configuration bots validate callbacks with:
    /// `{base}/v1/.well-known/openidconfiguration`.
    pub fn openid_url(&self) -> String {
        format!("{}/v1/.well-known/openidconfiguration", self.base_url())
    }

    /// The JWKS: `{base}/v1/.well-known/keys`.
    pub fn jwks_url(&self) -> String {
        format!("{}/v1/.well-known/keys", self.base_url())
    }

    /// Graph v1.0 base: `{base}/v1.0`.
    pub fn graph_v1_url(&self) -> String {
        format!("{}/v1.0", self.base_url())
    }

    /// Graph beta base: `{base}/beta`.
    pub fn graph_beta_url(&self) -> String {
        format!("{}/beta", self.base_url())
    }

    /// `{base}/v1.0/communications/calls`.
    pub fn calls_url(&self) -> String {
        format!("{}/communications/calls", self.graph_v1_url())
    }

    /// The issuer of callback JWTs (`https://api.botframework.com`).
    pub fn callback_issuer(&self) -> &'static str {
        crate::driver::CALLBACK_ISSUER
    }

    /// The registered apps.
    pub fn apps(&self) -> &[RegisteredApp] {
        &self.shared.config.apps
    }

    /// The public signing key as a JWKS (`{"keys":[...]}`).
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.shared.key.jwk()] })
    }

    /// Every call so far (live and ended), sorted by id.
    pub fn calls(&self) -> Vec<CallSummary> {
        self.shared.summaries()
    }

    /// One call by id.
    pub fn call(&self, id: &str) -> Option<CallSummary> {
        lock(&self.shared.calls).get(id).map(|r| r.summary.clone())
    }

    /// Calls not yet terminating or terminated.
    pub fn live_calls(&self) -> usize {
        lock(&self.shared.calls)
            .values()
            .filter(|r| r.is_live())
            .count()
    }

    /// Counters since start.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Counters of the HTTP server's connections since start: admitted, refused over
    /// a cap, closed by a read timeout.
    pub fn http_stats(&self) -> StatsSnapshot {
        self.http_stats.snapshot()
    }

    /// Make requests matching `fault` fail (see [`Fault`]).
    pub fn inject_fault(&self, fault: Fault) -> Result<(), EmulatorError> {
        if let Some(problem) = fault.problem() {
            return Err(EmulatorError::Fault(problem));
        }
        lock(&self.shared.faults).push(fault);
        Ok(())
    }

    /// Faults still pending.
    pub fn faults(&self) -> Vec<Fault> {
        lock(&self.shared.faults).clone()
    }

    /// Remove every pending fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// The remote side hangs up a live call (a `terminated` notification follows);
    /// false if no such live call.
    pub fn hang_up(&self, call_id: &str) -> bool {
        self.shared
            .end_call(call_id, None, Termination::remote_hang_up())
    }

    /// Offer a call to the bot: it rings (state `incoming`, a `created` notification
    /// to `offer.callback_uri`) until the bot answers, rejects or redirects it, or
    /// the answer timeout passes. Returns the call id.
    pub fn ring(&self, offer: &crate::IncomingCall) -> Result<String, EmulatorError> {
        crate::incoming::ring(&self.shared, offer)
    }

    /// The participants of a live call as the emulator last sent them (participant
    /// resources, each audio stream with its `sourceId`).
    pub fn participants(&self, call_id: &str) -> Result<Vec<serde_json::Value>, EmulatorError> {
        crate::participants::roster(&self.shared, call_id)
    }

    /// The far end of an app-hosted call reports `participant_ids` (roster ids) as
    /// who is audible, loudest first, the first as the dominant speaker (none:
    /// nobody), in the media link, by their audio streams' `sourceId`s. Errors name
    /// the unknown call or participant, or a call without connected media.
    pub fn set_speakers(
        &self,
        call_id: &str,
        participant_ids: &[&str],
    ) -> Result<(), EmulatorError> {
        crate::participants::set_speakers(&self.shared, call_id, participant_ids)
    }

    /// The far end of an established call presses DTMF `tones` (Graph's names:
    /// `tone0`-`tone9`, `star`, `pound`, `a`-`d`, `flash`): with app-hosted media they
    /// travel in the media link (the bot's audio socket reports each); after
    /// `subscribeToTone` each is also posted as the call's `toneInfo`. Returns how
    /// many went into the media link.
    pub fn press_tones(&self, call_id: &str, tones: &[&str]) -> Result<usize, EmulatorError> {
        crate::participants::press_tones(&self.shared, call_id, tones)
    }

    /// Counters of a call's media leg, once connected.
    pub fn media_stats(&self, call_id: &str) -> Option<MediaLegStats> {
        self.shared.media_stats(call_id)
    }

    /// Watches the number of live emulator tasks (server, per-call drivers and senders).
    pub fn task_counter(&self) -> TaskCounter {
        self.shared.tasks.counter()
    }

    /// Stop accepting requests, end every call's tasks (media legs are stopped, no
    /// further notifications are sent) and wait until all tasks have ended (each
    /// gets up to 5 s, then is aborted).
    pub async fn shutdown(mut self) -> ShutdownReport {
        self.stopped = true;
        let live_calls = self.live_calls();
        self.shared.shutdown.send_replace(true);
        let mut aborted_tasks = 0;
        loop {
            let handles = self.shared.tasks.take_handles();
            if handles.is_empty() {
                break;
            }
            for mut h in handles {
                if tokio::time::timeout(Duration::from_secs(5), &mut h)
                    .await
                    .is_err()
                {
                    h.abort();
                    let _ = h.await;
                    aborted_tasks += 1;
                }
            }
        }
        ShutdownReport {
            live_calls,
            aborted_tasks,
            tasks_left: self.shared.tasks.counter().live(),
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if !self.stopped {
            self.shared.shutdown.send_replace(true);
        }
    }
}

/// Run an emulator on a new multi-threaded tokio runtime until Ctrl-C, then shut it
/// down. `on_started` sees the handle once it listens (print the URLs there).
pub fn run_until_ctrl_c(
    config: EmulatorConfig,
    on_started: impl FnOnce(&EmulatorHandle),
) -> Result<ShutdownReport, EmulatorError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| EmulatorError::Runtime(e.to_string()))?;
    runtime.block_on(async move {
        let handle = Emulator::start(config).await?;
        on_started(&handle);
        let waited = tokio::signal::ctrl_c().await;
        let report = handle.shutdown().await;
        waited.map_err(|e| EmulatorError::Runtime(format!("waiting for Ctrl-C: {e}")))?;
        Ok(report)
    })
}
