//! The host's other links on its media platform: WebRTC calls signalled by WHIP
//! (`[whip]`, `webrtc_link::WhipServer`) and the platforms' media WebSockets (`[ws]`,
//! `ws_link::WsServer`: ACS, Twilio, Vonage). Each call is a session of the host's
//! bot (`PlatformSessions::start_linked`), admitted like a Graph call:
//!
//! ```text
//!  offer / stream ──> Admission: draining?  refused{draining}   (WHIP 503, WS close 1013)
//!                               Overloaded? refused{overloaded}
//!                  ──> PlatformCalls / PlatformStreams ──> admitted{whip|ws}
//!                  ──> bot task (start_linked) ──> ended{reason}, QoE histograms
//!  drain deadline ──> hang_up_all: the bot hangs each call up (ended{drain_deadline})
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bot::{PlatformSessions, SessionReport};
use graph::MediaSessions as _;
use media_core::link::CallHandler;
use platform::{AudioSocket, FrameDelivery};
use tokio::sync::mpsc;
use uuid::Uuid;
use webrtc_link::{CallAcceptor, WhipCallInfo};
use ws_link::{Dialect, Participants, PlaybackParts, StreamAcceptor, StreamInfo};

use crate::HostError;
use crate::config::{WhipSettings, WsSettings};
use crate::service::{HostState, lock, qoe_of};

/// How long an ended call's report is waited for: as long as the call runs.
const CALL_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// The linked calls running now: media session id → (call id, hung up by the drain).
#[derive(Debug, Default)]
pub(crate) struct LinkedCalls {
    calls: Mutex<HashMap<Uuid, (String, bool)>>,
    /// The drain deadline passed: a call that still arrives is hung up at once.
    closed: AtomicBool,
}

impl LinkedCalls {
    /// Calls running now.
    pub(crate) fn live(&self) -> usize {
        lock(&self.calls).len()
    }

    /// Hangs up every call (the drain deadline), now and any that still arrives;
    /// returns the calls hung up.
    pub(crate) fn hang_up_all(&self, sessions: &PlatformSessions) -> Vec<String> {
        self.closed.store(true, Ordering::SeqCst);
        let mut hung = Vec::new();
        for (session, (call_id, drained)) in lock(&self.calls).iter_mut() {
            *drained = true;
            sessions.stop(*session);
            hung.push(call_id.clone());
        }
        hung
    }
}

/// The admission of one link's calls.
struct Admission {
    state: Arc<HostState>,
    direction: &'static str,
}

impl Admission {
    /// Refused (counted by reason) while draining or while the platform is Overloaded.
    fn check(&self) -> Result<(), String> {
        let m = &self.state.metrics;
        if self.state.draining.load(Ordering::SeqCst) {
            m.refused("draining");
            return Err("the host is draining: place the call on another instance".into());
        }
        if self.state.health() == platform::Health::Overloaded {
            m.refused("overloaded");
            return Err(
                "the media platform is overloaded: place the call on another instance".into(),
            );
        }
        Ok(())
    }

    /// Counts what the link's platform acceptor decided.
    fn count<T>(&self, r: Result<T, String>) -> Result<T, String> {
        let m = &self.state.metrics;
        match &r {
            Ok(_) => m.admitted(self.direction),
            Err(_) if self.state.health() == platform::Health::Overloaded => {
                m.refused("overloaded")
            }
            Err(_) => m.refused("failed"),
        }
        r
    }
}

/// WHIP offers behind the admission.
struct AdmittedCalls {
    admission: Admission,
    inner: webrtc_link::PlatformCalls,
}

impl CallAcceptor for AdmittedCalls {
    fn accept(
        &self,
        info: &WhipCallInfo,
        now: Instant,
        waker: Box<dyn Fn() + Send + Sync>,
    ) -> Result<Box<dyn CallHandler>, String> {
        self.admission.check()?;
        self.admission.count(self.inner.accept(info, now, waker))
    }
}

/// Media WebSocket streams behind the admission.
struct AdmittedStreams {
    admission: Admission,
    inner: ws_link::PlatformStreams,
}

impl StreamAcceptor for AdmittedStreams {
    fn accept(
        &self,
        info: &StreamInfo,
        now: Instant,
        waker: Box<dyn Fn() + Send + Sync>,
        playback: PlaybackParts,
        participants: Participants,
    ) -> Result<Box<dyn CallHandler>, String> {
        self.admission.check()?;
        self.admission
            .count(self.inner.accept(info, now, waker, playback, participants))
    }
}

/// The WHIP and media WebSocket servers the host runs (either may be off).
#[derive(Debug, Default)]
pub(crate) struct Links {
    whip: Option<webrtc_link::WhipServer>,
    ws: Option<ws_link::WsServer>,
}

impl Links {
    /// Starts the configured servers on the sessions' platform; their calls are
    /// served by the sessions' bot and followed in `state`.
    pub(crate) async fn start(
        whip: Option<&WhipSettings>,
        ws: Option<&WsSettings>,
        sessions: &Arc<PlatformSessions>,
        state: &Arc<HostState>,
        frame_channel: usize,
    ) -> Result<Links, HostError> {
        let mut links = Links::default();
        let delivery = FrameDelivery::Channel;
        if let Some(w) = whip {
            let (calls, incoming) = webrtc_link::PlatformCalls::new(
                sessions.shared_platform(),
                move |_: &WhipCallInfo| delivery(frame_channel),
            );
            let acceptor = AdmittedCalls {
                admission: Admission {
                    state: state.clone(),
                    direction: "whip",
                },
                inner: calls,
            };
            let config = webrtc_link::WhipConfig {
                bearer_token: w.token.clone(),
                candidate_ip: w.candidate_ip,
                ..webrtc_link::WhipConfig::default()
            };
            let server = webrtc_link::WhipServer::bind(w.bind, config, Arc::new(acceptor))
                .await
                .map_err(|e| HostError::Start(format!("whip.bind {}: {e}", w.bind)))?;
            spawn_serving(incoming, sessions.clone(), state.clone(), |call| {
                let webrtc_link::IncomingCall { info, socket } = call;
                let label = format!(
                    "WHIP, {}, client {}, media on {}",
                    info.codec, info.client, info.media_addr
                );
                (
                    format!("whip-{}", info.session_id),
                    label,
                    socket,
                    Box::new(()) as Box<dyn Send>,
                )
            });
            links.whip = Some(server);
        }
        if let Some(w) = ws {
            let (streams, incoming) =
                ws_link::PlatformStreams::new(sessions.shared_platform(), move |_: &StreamInfo| {
                    delivery(frame_channel)
                });
            let acceptor = AdmittedStreams {
                admission: Admission {
                    state: state.clone(),
                    direction: "ws",
                },
                inner: streams,
            };
            let config = ws_link::WsConfig {
                auth: w.auth.clone(),
                acs_audio: w.acs_audio,
                ..ws_link::WsConfig::default()
            };
            let server = ws_link::WsServer::bind(w.bind, config, Arc::new(acceptor))
                .await
                .map_err(|e| HostError::Start(format!("ws.bind {}: {e}", w.bind)))?;
            spawn_serving(incoming, sessions.clone(), state.clone(), |stream| {
                let ws_link::IncomingStream {
                    info,
                    socket,
                    playback,
                    participants,
                } = stream;
                let label = format!("{} media WebSocket, {:?}", info.dialect, info.encoding);
                // The stream's clear and marks live as long as its call.
                let keep: Box<dyn Send> = Box::new((playback, participants));
                // Vonage names no stream: the media session's id does.
                let id = match info.stream_id.as_str() {
                    "" => socket.session_id().to_string(),
                    s => s.to_owned(),
                };
                (format!("{}-{id}", info.dialect), label, socket, keep)
            });
            links.ws = Some(server);
        }
        Ok(links)
    }

    /// The WHIP endpoint's URL, if it is served.
    pub(crate) fn whip_url(&self) -> Option<String> {
        self.whip.as_ref().map(webrtc_link::WhipServer::url)
    }

    /// The media WebSocket URL of `dialect`, if they are served.
    pub(crate) fn ws_url(&self, dialect: Dialect) -> Option<String> {
        self.ws.as_ref().map(|s| s.url(dialect))
    }

    /// One line per endpoint, for the log.
    pub(crate) fn summary(&self) -> Vec<String> {
        let open = |o: bool| {
            if o {
                " (no authentication configured)"
            } else {
                ""
            }
        };
        let mut lines = Vec::new();
        if let Some(s) = &self.whip {
            lines.push(format!("WHIP endpoint: {}{}", s.url(), open(s.is_open())));
        }
        if let Some(s) = &self.ws {
            for d in Dialect::ALL {
                lines.push(format!(
                    "{d} media WebSocket: {}{}",
                    s.url(d),
                    open(s.is_open(d))
                ));
            }
        }
        lines
    }

    /// Stops the servers (after the drain hung their calls up).
    pub(crate) async fn shutdown(self) {
        if let Some(s) = self.whip {
            s.shutdown().await;
        }
        if let Some(s) = self.ws {
            s.shutdown().await;
        }
    }
}

/// Serves each call coming out of `incoming` with the sessions' bot, on a task of
/// its own: its end counted by reason and its QoE observed. `split` names the call
/// (its id and a description for the log) and keeps what must live as long as it.
fn spawn_serving<C: Send + 'static>(
    mut incoming: mpsc::UnboundedReceiver<C>,
    sessions: Arc<PlatformSessions>,
    state: Arc<HostState>,
    split: impl Fn(C) -> (String, String, AudioSocket, Box<dyn Send>) + Send + 'static,
) {
    tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            let (call_id, label, socket, keep) = split(call);
            let linked = &state.linked;
            let session = sessions.start_linked(socket, &call_id);
            lock(&linked.calls).insert(session, (call_id.clone(), false));
            if linked.closed.load(Ordering::SeqCst) {
                linked.hang_up_all(&sessions);
            }
            println!("call {call_id} started ({label})");
            tracing::info!(%call_id, %session, "{label}: call started");
            let sessions = sessions.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let report = sessions.wait_report(session, CALL_LIFETIME).await;
                drop(keep);
                let drained = lock(&state.linked.calls)
                    .get(&session)
                    .is_some_and(|(_, d)| *d);
                let why = ended_reason(report.as_ref(), drained);
                state.metrics.ended(why);
                if let Some(r) = &report {
                    state.metrics.observe(qoe_of(r));
                }
                let media_end = report.as_ref().and_then(|r| r.media_end.as_deref());
                println!(
                    "call {call_id} ended: {why} ({})",
                    media_end.unwrap_or("hung up here")
                );
                tracing::info!(%call_id, reason = why, "call ended");
                // Last: once no call is left, every end is counted.
                lock(&state.linked.calls).remove(&session);
            });
        }
    });
}

/// The `mp_calls_ended_total` reason of a linked call.
fn ended_reason(report: Option<&SessionReport>, drained: bool) -> &'static str {
    let Some(r) = report else {
        return "other";
    };
    match r.media_end.as_deref() {
        _ if r.stream_failed => "media_failure",
        Some(e) if e.starts_with("media stream failure") => "media_failure",
        Some(_) => "hung_up",
        None if drained => "drain_deadline",
        None => "shutdown",
    }
}
