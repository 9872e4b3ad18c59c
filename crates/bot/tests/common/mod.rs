//! Helpers shared by the bot's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bot::{BotOutput, CallBehaviour, CallUpdate, EchoBot, MediaBot};
use emulator::{SigningKey, Timing};
use graph::{RuntimeEvent, RuntimeEventKind};
use harness::{Local, LocalConfig};
use media_core::sim::Profile;
use platform::{AudioEvent, AudioFrame, DtmfTone};
use tokio::sync::broadcast;

/// One RSA key per test binary (generating one takes a while).
pub fn signing_key() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap()).clone()
}

/// An echo bot, the emulator (fast timing) and a clean-network PCM far end.
pub fn config() -> LocalConfig {
    let mut cfg = LocalConfig::new(Arc::new(EchoBot));
    cfg.emulator.signing_key = Some(signing_key());
    cfg.emulator.timing = Timing {
        step_delay: Duration::from_millis(20),
        lobby_delay: Duration::from_millis(100),
        media_connect_timeout: Duration::from_secs(5),
        answer_timeout: Duration::from_secs(15),
    };
    cfg.far_end.profile = Profile::named("clean").unwrap();
    cfg.far_end.codec = bot::Codec::Pcm16k;
    cfg.far_end.record = false;
    cfg
}

pub async fn start(cfg: LocalConfig) -> Local {
    Local::start(cfg).await.unwrap()
}

/// Events of `call_id` until `done` says so (or the timeout); returns them all.
pub async fn events_until(
    rx: &mut broadcast::Receiver<RuntimeEvent>,
    call_id: &str,
    seen: &mut Vec<RuntimeEventKind>,
    timeout: Duration,
    done: impl Fn(&[RuntimeEventKind]) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(seen) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) => {
                if ev.call_id == call_id {
                    seen.push(ev.kind);
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            _ => return done(seen),
        }
    }
    true
}

pub fn removed(seen: &[RuntimeEventKind]) -> bool {
    seen.iter()
        .any(|k| matches!(k, RuntimeEventKind::Removed(_)))
}

pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// Waits (5 s at most) until media flows both ways between the bot's session and
/// the far end of call `id`; panics naming both sides' counters otherwise.
pub async fn assert_media_flows(local: &Local, session: uuid::Uuid, id: &str, what: &str) {
    let flowing = eventually(Duration::from_secs(5), || {
        let bot = local.bot.sessions().snapshot(session).unwrap_or_default();
        let far = local.far_end.stats(id).unwrap_or_default();
        bot.counters.frames_received > 10
            && bot.counters.frames_sent > 10
            && far.packets_received > 10
    })
    .await;
    assert!(
        flowing,
        "{what}: media did not flow both ways: bot {:?}, far end {:?}",
        local.bot.sessions().snapshot(session),
        local.far_end.stats(id)
    );
}

/// Places `scenario` and waits (5 s at most) until `kind` is among its events; the
/// call.
pub async fn place_until(
    local: &Local,
    rx: &mut broadcast::Receiver<RuntimeEvent>,
    scenario: signaling::Scenario,
    kind: RuntimeEventKind,
) -> graph::ActiveCall {
    let call = local.place(scenario).await.unwrap();
    let mut seen = Vec::new();
    assert!(
        events_until(rx, &call.call_id, &mut seen, Duration::from_secs(5), |v| v
            .contains(&kind))
        .await,
        "{scenario:?}: no {kind:?} in {seen:?}"
    );
    call
}

/// What the recording bot ([`Recorder`]: echoes, and records speakers, call updates
/// and tones) saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Frames whose active speakers included a participant, by participant id.
    pub speaking: Vec<(u32, Option<String>)>,
    pub updates: Vec<CallUpdate>,
    pub tones: Vec<DtmfTone>,
}

#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Seen>>);

impl Recorder {
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.0.lock().unwrap())
    }
}

impl MediaBot for Recorder {
    fn new_call(&self, _session: uuid::Uuid, _call_id: &str) -> Box<dyn CallBehaviour> {
        Box::new(self.clone())
    }
}

impl CallBehaviour for Recorder {
    fn on_frame(&mut self, frame: &AudioFrame, out: &mut BotOutput<'_>) {
        // Echoes, so the far end hears the bot too.
        let _ = out.enqueue(&frame.samples);
        let speakers: Vec<_> = out
            .roster()
            .speakers(frame.active_speakers.as_slice())
            .map(|s| (s.msi, s.participant_id().map(str::to_owned)))
            .collect();
        let mut seen = self.0.lock().unwrap();
        for s in speakers {
            if seen.speaking.last() != Some(&s) {
                seen.speaking.push(s);
            }
        }
    }

    fn on_event(&mut self, event: &AudioEvent, _out: &mut BotOutput<'_>) {
        if let AudioEvent::ToneReceived { tone, .. } = event {
            self.0.lock().unwrap().tones.push(*tone);
        }
    }

    fn on_call_update(&mut self, update: &CallUpdate, _out: &mut BotOutput<'_>) {
        self.0.lock().unwrap().updates.push(update.clone());
    }
}

/// Waits (5 s at most) until the emulator has ended call `id` for `reason` (its
/// `terminationReason`); panics naming the call's summary otherwise.
pub async fn assert_ended(local: &Local, id: &str, reason: &str) {
    let ended = eventually(Duration::from_secs(5), || {
        local
            .emulator
            .call(id)
            .and_then(|c| c.termination)
            .is_some_and(|t| t.reason == reason)
    })
    .await;
    assert!(
        ended,
        "not ended for {reason}: {:?}",
        local.emulator.call(id)
    );
}
