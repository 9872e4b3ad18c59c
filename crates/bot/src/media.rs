//! The bot's media side: [`PlatformSessions`] implements graph's [`MediaSessions`] on
//! top of a [`MediaPlatform`], and runs one [`CallBehaviour`] per call ([`EchoBot`],
//! [`WavBot`], or your own [`MediaBot`]).
//!
//! ```text
//!  CallRuntime ──create_session(id)──> create_media_configuration ──> blob (+ AudioSocket, held)
//!              ──start(id, call)─────> one task per call: AudioSocket.recv()
//!                                        Frame  -> CallBehaviour::on_frame -> BotOutput::enqueue
//!                                        Event  -> CallBehaviour::on_event
//!                                        MediaStreamFailure -> MediaReporter::stream_failed
//!              ──stop(id)────────────> task ends, socket hung up, SessionReport kept
//! ```
//!
//! Frames reach the behaviour through the platform's bounded channel, on a task of its
//! own: the platform's 20 ms call tick never waits for the bot.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use graph::{CallRuntime, CallView, MediaError, MediaReporter, MediaSessions};
use media_blob::MediaSessionConfig;
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::jitter::JitterStats;
use platform::{
    AudioEvent, AudioFrame, AudioSender, AudioSocket, AudioStreams, CertFingerprint, DtmfTone,
    EnqueueError, FrameDelivery, Incoming, MediaPlatform, MediaPlatformSettings, PlatformError,
    QoeStats, SendStatus,
};
use serde::Serialize;
use signaling::{CallEvent, RosterSnapshot, Speaker};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a [`CallBehaviour`] may fail with: any error of the bot's own.
pub type BehaviourError = Box<dyn std::error::Error + Send + Sync>;

/// Makes a behaviour for every call of a bot.
pub trait MediaBot: Send + Sync + 'static {
    /// The behaviour of the call `call_id` (Graph's id), media session `session_id`.
    fn new_call(&self, session_id: Uuid, call_id: &str) -> Box<dyn CallBehaviour>;
}

/// What a bot does with one call's audio. Runs on the call's bot task; methods must
/// return quickly (a frame arrives every 20 ms).
pub trait CallBehaviour: Send + 'static {
    /// A received 20 ms frame; send audio with `out`.
    fn on_frame(&mut self, frame: &AudioFrame, out: &mut BotOutput<'_>);
    /// A call event (send status, DTMF, speakers, `LowOnFrames`, ...).
    fn on_event(&mut self, event: &AudioEvent, out: &mut BotOutput<'_>) {
        let _ = (event, out);
    }
    /// The call's participants changed, its dominant speaker changed (with the
    /// participant), or Graph reported a tone. [`BotOutput::roster`] already shows
    /// the roster after the change.
    fn on_call_update(&mut self, update: &CallUpdate, out: &mut BotOutput<'_>) {
        let _ = (update, out);
    }
    /// The call's media ended; `received` is the recording of the other side (empty
    /// unless [`SessionOptions::record`]). Errors are reported in the
    /// [`SessionReport`].
    fn finish(&mut self, received: &[i16]) -> Result<(), BehaviourError> {
        let _ = received;
        Ok(())
    }
}

/// What happened to a call besides its audio, for [`CallBehaviour::on_call_update`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallUpdate {
    /// From Graph's notifications, in order: a participant joined, changed, left,
    /// entered or left the lobby, was muted or unmuted, changed its media streams
    /// ([`CallEvent::ParticipantJoined`], ...), or a tone was reported
    /// ([`CallEvent::ToneReceived`], after `subscribeToTone`).
    Call(CallEvent),
    /// The media's dominant speaker changed, mapped to the roster's participants by
    /// media source id. Also sent again when a roster change identifies (or
    /// re-identifies) the current dominant speaker's participant.
    DominantSpeakerChanged {
        /// The speaker now (`None`: nobody speaks).
        current: Option<Speaker>,
        /// The speaker before.
        previous: Option<Speaker>,
    },
}

/// The bot's handle on one call inside a [`CallBehaviour`] callback: the call's paced
/// send queue (counting, and optionally recording, what it sends) and its roster.
#[derive(Debug)]
pub struct BotOutput<'a> {
    sender: &'a AudioSender,
    live: &'a LiveCounters,
    record: Option<&'a mut Vec<i16>>,
    roster: &'a RosterSnapshot,
}

impl BotOutput<'_> {
    /// The call's participants as Graph last reported them (empty before the first
    /// roster notification). Map a frame's speakers with
    /// `out.roster().speakers(frame.active_speakers.as_slice())`.
    pub fn roster(&self) -> &RosterSnapshot {
        self.roster
    }

    /// Queues one frame for paced sending (50 frames/s). Never blocks.
    pub fn enqueue(&mut self, frame: &Pcm16kFrame) -> Result<(), EnqueueError> {
        self.sender.enqueue(frame)?;
        self.live.bump(|c| c.frames_sent += 1);
        if let Some(r) = self.record.as_deref_mut() {
            r.extend_from_slice(frame.samples());
        }
        Ok(())
    }

    /// Frames waiting in the send queue.
    pub fn queued(&self) -> usize {
        self.sender.queued()
    }

    /// Drops every queued frame (barge-in); returns how many.
    pub fn clear(&self) -> usize {
        self.sender.clear()
    }
}

/// Echoes every received frame back into the call.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoBot;

impl MediaBot for EchoBot {
    fn new_call(&self, _session_id: Uuid, _call_id: &str) -> Box<dyn CallBehaviour> {
        Box::new(Echo)
    }
}

struct Echo;

impl CallBehaviour for Echo {
    fn on_frame(&mut self, frame: &AudioFrame, out: &mut BotOutput<'_>) {
        // A full queue (the far end sends faster than 50/s) drops the frame.
        let _ = out.enqueue(&frame.samples);
    }
}

/// Plays a WAV (16 kHz mono after conversion) into every call once, and records the
/// other side to `<record_dir>/<call id>.received.wav` when the call ends.
#[derive(Debug, Clone)]
pub struct WavBot {
    play: Arc<[i16]>,
    record_dir: Option<PathBuf>,
}

impl WavBot {
    /// Plays `samples` (16 kHz mono); records into `record_dir` if given.
    pub fn new(samples: impl Into<Arc<[i16]>>, record_dir: Option<PathBuf>) -> Self {
        Self {
            play: samples.into(),
            record_dir,
        }
    }

    /// Plays the WAV file at `path` (any rate or channel count; converted to 16 kHz
    /// mono).
    pub fn from_file(
        path: &Path,
        record_dir: Option<PathBuf>,
    ) -> Result<Self, media_core::wav::WavError> {
        let samples = media_core::wav::read_mono_16k(path)?;
        Ok(Self::new(samples, record_dir))
    }
}

impl MediaBot for WavBot {
    fn new_call(&self, _session_id: Uuid, call_id: &str) -> Box<dyn CallBehaviour> {
        Box::new(WavPlayer {
            play: self.play.clone(),
            pos: 0,
            active: false,
            recorded: Vec::new(),
            record: self
                .record_dir
                .as_ref()
                .map(|d| d.join(format!("{call_id}.received.wav"))),
        })
    }
}

/// Frames the WAV player keeps queued ahead of the pacer.
const WAV_AHEAD_FRAMES: usize = 10;

struct WavPlayer {
    play: Arc<[i16]>,
    pos: usize,
    active: bool,
    recorded: Vec<i16>,
    record: Option<PathBuf>,
}

impl WavPlayer {
    fn top_up(&mut self, out: &mut BotOutput<'_>) {
        while self.active && self.pos < self.play.len() && out.queued() < WAV_AHEAD_FRAMES {
            let mut frame = [0i16; FRAME_SAMPLES];
            let n = FRAME_SAMPLES.min(self.play.len() - self.pos);
            frame[..n].copy_from_slice(&self.play[self.pos..self.pos + n]);
            if out.enqueue(&Pcm16kFrame::new(frame)).is_err() {
                return;
            }
            self.pos += n;
        }
    }
}

impl CallBehaviour for WavPlayer {
    fn on_frame(&mut self, frame: &AudioFrame, out: &mut BotOutput<'_>) {
        if self.record.is_some() {
            self.recorded.extend_from_slice(frame.samples.samples());
        }
        self.top_up(out);
    }

    fn on_event(&mut self, event: &AudioEvent, out: &mut BotOutput<'_>) {
        match event {
            AudioEvent::SendStatusChanged(s) => self.active = *s == SendStatus::Active,
            AudioEvent::LowOnFrames { .. } => {}
            _ => return,
        }
        self.top_up(out);
    }

    fn finish(&mut self, _received: &[i16]) -> Result<(), BehaviourError> {
        match &self.record {
            Some(path) => Ok(media_core::wav::write_mono_16k(path, &self.recorded)?),
            None => Ok(()),
        }
    }
}

/// Options of [`PlatformSessions`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Record what each call receives and sends (kept in its [`SessionReport`]).
    pub record: bool,
    /// Frames buffered between the platform and the bot task (default 50 = 1 s).
    pub frame_channel: usize,
    /// How many finished sessions' reports are kept for [`PlatformSessions::take_report`]
    /// (oldest dropped first; default 64).
    pub keep_reports: usize,
    /// The received audio each call asks for (Microsoft's `ReceiveUnmixedMeetingAudio`):
    /// the mix (default), up to four speakers' own streams besides it
    /// ([`AudioStreams::mixed_and_unmixed`]), or those only
    /// ([`AudioStreams::unmixed_only`]). Each speaker's buffer arrives in
    /// [`AudioFrame::unmixed`] with its MSI: `out.roster().speaker(buf.msi)` names the
    /// participant. The request lives in the media session, not in the blob
    /// (`MediaPlatform::create_media_configuration_for`).
    pub audio: AudioStreams,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            record: false,
            frame_channel: 50,
            keep_reports: 64,
            audio: AudioStreams::MIXED,
        }
    }
}

/// Live counters of one call's bot side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionCounters {
    /// Frames received from the platform.
    pub frames_received: u64,
    /// Received frames with concealed samples (loss or late packets).
    pub frames_concealed: u64,
    /// Received frames flagged silent.
    pub frames_silent: u64,
    /// Frames the bot queued for sending.
    pub frames_sent: u64,
}

#[derive(Debug, Default)]
struct LiveCounters(Mutex<SessionCounters>);

impl LiveCounters {
    fn bump(&self, f: impl FnOnce(&mut SessionCounters)) {
        f(&mut lock(&self.0));
    }
    fn get(&self) -> SessionCounters {
        *lock(&self.0)
    }
}

/// A live view of one call's media on the bot side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSnapshot {
    /// The bot's counters.
    pub counters: SessionCounters,
    /// The platform's QoE figures (refreshed once a second).
    pub qoe: QoeStats,
    /// The platform's jitter buffer statistics (W3C names).
    pub jitter: JitterStats,
    /// Whether the bot's audio is being sent.
    pub sending: bool,
}

/// How a call's media session ended and what it carried.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionReport {
    /// The media session id (graph's).
    pub session_id: Uuid,
    /// Graph's call id, if the call was established.
    pub call_id: Option<String>,
    /// Final counters and QoE.
    pub last: SessionSnapshot,
    /// Why the media ended (platform event), if it did before the call was torn down.
    pub media_end: Option<String>,
    /// A media stream failure was reported to the runtime.
    pub stream_failed: bool,
    /// The behaviour's `finish` error, if any.
    pub finish_error: Option<String>,
    /// The media ran (from the first received frame to the end).
    #[serde(skip)]
    pub media_duration: Duration,
    /// What the bot received, 16 kHz mono (with [`SessionOptions::record`]).
    #[serde(skip)]
    pub received: Vec<i16>,
    /// What the bot sent, 16 kHz mono (with [`SessionOptions::record`]).
    #[serde(skip)]
    pub sent: Vec<i16>,
}

struct Live {
    counters: LiveCounters,
    socket_view: Mutex<Option<(QoeStats, SendStatus)>>,
}

enum Slot {
    /// The blob is out; the socket waits for `start`.
    Waiting(Box<AudioSocket>, Arc<Live>),
    /// The bot task runs.
    Running {
        stop: Arc<Notify>,
        live: Arc<Live>,
        /// Graph's call id.
        call_id: String,
        /// DTMF for the task to send into the media link.
        tones: tokio::sync::mpsc::UnboundedSender<DtmfTone>,
    },
}

#[derive(Default)]
struct Finished {
    order: VecDeque<Uuid>,
    reports: HashMap<Uuid, SessionReport>,
}

struct Inner {
    slots: Mutex<HashMap<Uuid, Slot>>,
    finished: Mutex<Finished>,
    finished_tx: watch::Sender<u64>,
    tasks: std::sync::atomic::AtomicUsize,
    keep_reports: usize,
}

impl Inner {
    fn store_report(&self, report: SessionReport) {
        {
            let mut f = lock(&self.finished);
            f.order.push_back(report.session_id);
            f.reports.insert(report.session_id, report);
            while f.order.len() > self.keep_reports {
                if let Some(old) = f.order.pop_front() {
                    f.reports.remove(&old);
                }
            }
        }
        self.finished_tx.send_modify(|n| *n += 1);
    }
}

/// graph's [`MediaSessions`] on a [`MediaPlatform`]: one platform media session per
/// app-hosted call, driven by a [`MediaBot`]. Share it as `Arc<PlatformSessions>`.
pub struct PlatformSessions {
    platform: Arc<MediaPlatform>,
    bot: Arc<dyn MediaBot>,
    options: SessionOptions,
    inner: Arc<Inner>,
    reporter: OnceLock<MediaReporter>,
}

impl std::fmt::Debug for PlatformSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformSessions")
            .field("platform", &self.platform)
            .field("sessions", &self.session_count())
            .finish_non_exhaustive()
    }
}

impl PlatformSessions {
    /// Starts a media platform with `settings` (inside a tokio runtime) and serves its
    /// calls with `bot`.
    pub fn start(
        settings: MediaPlatformSettings,
        bot: Arc<dyn MediaBot>,
        options: SessionOptions,
    ) -> Result<Arc<Self>, PlatformError> {
        Ok(Self::new(MediaPlatform::start(settings)?, bot, options))
    }

    /// Serves the calls of `platform` with `bot`.
    pub fn new(
        platform: MediaPlatform,
        bot: Arc<dyn MediaBot>,
        options: SessionOptions,
    ) -> Arc<Self> {
        let inner = Arc::new(Inner {
            slots: Mutex::new(HashMap::new()),
            finished: Mutex::new(Finished::default()),
            finished_tx: watch::channel(0).0,
            tasks: std::sync::atomic::AtomicUsize::new(0),
            keep_reports: options.keep_reports,
        });
        Arc::new(Self {
            platform: Arc::new(platform),
            bot,
            options,
            inner,
            reporter: OnceLock::new(),
        })
    }

    /// Reports media stream failures to `runtime` (which then hangs the call up). Call
    /// once, right after creating the runtime with these sessions.
    pub fn attach(&self, runtime: &CallRuntime) {
        let _ = self.reporter.set(runtime.media_reporter());
    }

    /// The platform.
    pub fn platform(&self) -> &MediaPlatform {
        &self.platform
    }

    /// The platform, shared: for the links other drivers run on it (a WHIP endpoint's
    /// `webrtc_link::PlatformCalls`, a media WebSocket endpoint's
    /// `ws_link::PlatformStreams`), whose calls [`PlatformSessions::start_linked`]
    /// serves with this bot.
    pub fn shared_platform(&self) -> Arc<MediaPlatform> {
        self.platform.clone()
    }

    /// Runs this bot on a call another link's driver started
    /// (`MediaPlatform::start_linked_call`; its frames delivered by channel), named
    /// `call_id` in the bot's calls and logs: a session like an app-hosted call's
    /// (counters, [`PlatformSessions::snapshot`], [`PlatformSessions::stop`] hangs it
    /// up, [`PlatformSessions::wait_report`] once it ended), without Graph's roster or
    /// events. Returns the session's id. Must run inside a tokio runtime.
    pub fn start_linked(&self, socket: AudioSocket, call_id: &str) -> Uuid {
        let session_id = socket.session_id();
        let live = Arc::new(Live {
            counters: LiveCounters::default(),
            socket_view: Mutex::new(None),
        });
        lock(&self.inner.slots).insert(session_id, Slot::Waiting(Box::new(socket), live));
        self.start(session_id, call_id);
        session_id
    }

    /// The certificate fingerprint far ends pin.
    pub fn fingerprint(&self) -> CertFingerprint {
        self.platform.certificate_fingerprint()
    }

    /// Media sessions held by this bot (waiting for `start` or running).
    pub fn session_count(&self) -> usize {
        lock(&self.inner.slots).len()
    }

    /// Bot tasks alive (one per started, not yet finished session).
    pub fn live_tasks(&self) -> usize {
        self.inner.tasks.load(Ordering::SeqCst)
    }

    /// A live view of session `session_id`.
    pub fn snapshot(&self, session_id: Uuid) -> Option<SessionSnapshot> {
        let live = match lock(&self.inner.slots).get(&session_id)? {
            Slot::Waiting(_, live) | Slot::Running { live, .. } => live.clone(),
        };
        Some(live.snapshot())
    }

    /// Removes and returns the report of a finished session.
    pub fn take_report(&self, session_id: Uuid) -> Option<SessionReport> {
        let mut f = lock(&self.inner.finished);
        let r = f.reports.remove(&session_id)?;
        f.order.retain(|id| *id != session_id);
        Some(r)
    }

    /// Waits up to `timeout` for session `session_id` to finish, then takes its report.
    pub async fn wait_report(&self, session_id: Uuid, timeout: Duration) -> Option<SessionReport> {
        let mut rx = self.inner.finished_tx.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(r) = self.take_report(session_id) {
                return Some(r);
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return self.take_report(session_id);
            }
        }
    }
}

impl Live {
    fn snapshot(&self) -> SessionSnapshot {
        let view = *lock(&self.socket_view);
        let (qoe, status) = view.unwrap_or((QoeStats::default(), SendStatus::Inactive));
        SessionSnapshot {
            counters: self.counters.get(),
            qoe,
            jitter: qoe.jitter_buffer,
            sending: status == SendStatus::Active,
        }
    }
}

/// How long each DTMF tone sent into the media link lasts, in ms.
const TONE_MS: u32 = 100;

/// The DTMF tone Graph names `name` (`tone0`-`tone9`, `star`, `pound`, `a`-`d`,
/// `flash`, any case), as the media link carries it.
pub fn graph_tone(name: &str) -> Option<DtmfTone> {
    let i = match name.to_ascii_lowercase().as_str() {
        "star" => 10,
        "pound" => 11,
        "a" => 12,
        "b" => 13,
        "c" => 14,
        "d" => 15,
        "flash" => 16,
        n => n
            .strip_prefix("tone")?
            .parse::<usize>()
            .ok()
            .filter(|d| *d < 10)?,
    };
    Some(DtmfTone::ALL[i])
}

impl PlatformSessions {
    /// Sends `tones` into the media link of call `call_id` (Graph's id), in order
    /// (each 100 ms long); the far end's audio socket reports each
    /// (`ToneReceived`). False when no media of that call runs.
    pub fn send_tones(&self, call_id: &str, tones: &[DtmfTone]) -> bool {
        let slots = lock(&self.inner.slots);
        let Some(tx) = slots.values().find_map(|s| match s {
            Slot::Running {
                call_id: c, tones, ..
            } if c.eq_ignore_ascii_case(call_id) => Some(tones),
            _ => None,
        }) else {
            return false;
        };
        tones.iter().all(|t| tx.send(*t).is_ok())
    }
}

impl MediaSessions for PlatformSessions {
    fn create_session(&self, session_id: Uuid) -> Result<MediaSessionConfig, MediaError> {
        let delivery = FrameDelivery::Channel(self.options.frame_channel.max(1));
        let (blob, socket) = self
            .platform
            .create_media_configuration_for(session_id, delivery, self.options.audio)
            .map_err(|e| match e {
                PlatformError::Overloaded => MediaError::Overloaded,
                other => MediaError::Failed(other.to_string()),
            })?;
        let live = Arc::new(Live {
            counters: LiveCounters::default(),
            socket_view: Mutex::new(None),
        });
        lock(&self.inner.slots).insert(session_id, Slot::Waiting(Box::new(socket), live));
        Ok(blob)
    }

    fn start(&self, session_id: Uuid, call_id: &str) {
        self.start_call(
            session_id,
            CallView::fixed(call_id, RosterSnapshot::default()),
        );
    }

    fn start_call(&self, session_id: Uuid, view: CallView) {
        let call_id = view.call_id.clone();
        let call_id = call_id.as_str();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::error!(%session_id, "media session started outside a tokio runtime");
            return;
        };
        let mut slots = lock(&self.inner.slots);
        let Some(Slot::Waiting(socket, live)) = slots.remove(&session_id) else {
            tracing::warn!(%session_id, "start of an unknown or already started media session");
            return;
        };
        let stop = Arc::new(Notify::new());
        let (tones_tx, tones) = tokio::sync::mpsc::unbounded_channel();
        slots.insert(
            session_id,
            Slot::Running {
                stop: stop.clone(),
                live: live.clone(),
                call_id: call_id.to_owned(),
                tones: tones_tx,
            },
        );
        drop(slots);
        let run = CallRun {
            session_id,
            call_id: call_id.to_owned(),
            behaviour: self.bot.new_call(session_id, call_id),
            socket: *socket,
            live,
            stop,
            reporter: self.reporter.get().cloned(),
            record: self.options.record,
            view,
            dominant: None,
            tones,
        };
        let inner = self.inner.clone();
        inner.tasks.fetch_add(1, Ordering::SeqCst);
        handle.spawn(async move {
            let report = run.run().await;
            lock(&inner.slots).remove(&session_id);
            inner.store_report(report);
            inner.tasks.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn stop(&self, session_id: Uuid) {
        let mut slots = lock(&self.inner.slots);
        match slots.get(&session_id) {
            Some(Slot::Waiting(..)) => {
                if let Some(Slot::Waiting(socket, live)) = slots.remove(&session_id) {
                    drop(slots);
                    socket.hang_up();
                    let report = SessionReport {
                        session_id,
                        last: live.snapshot(),
                        ..SessionReport::default()
                    };
                    drop(socket);
                    self.inner.store_report(report);
                }
            }
            // The task ends, removes its slot and stores its report.
            Some(Slot::Running { stop, .. }) => stop.notify_one(),
            None => {}
        }
    }
}

/// One call's bot task.
struct CallRun {
    session_id: Uuid,
    call_id: String,
    behaviour: Box<dyn CallBehaviour>,
    socket: AudioSocket,
    live: Arc<Live>,
    stop: Arc<Notify>,
    reporter: Option<MediaReporter>,
    record: bool,
    /// The call's roster and Graph events.
    view: CallView,
    /// The media's dominant speaker (MSI) and the participant it was mapped to.
    dominant: Option<Speaker>,
    /// DTMF to send into the media link ([`PlatformSessions::send_tones`]).
    tones: tokio::sync::mpsc::UnboundedReceiver<DtmfTone>,
}

impl CallRun {
    /// A speaker change from the media (MSIs) as a [`CallUpdate`] with participants.
    fn dominant_changed(&mut self, roster: &RosterSnapshot, current: Option<u32>) -> CallUpdate {
        let current = current.map(|msi| roster.speaker(msi));
        let previous = std::mem::replace(&mut self.dominant, current.clone());
        CallUpdate::DominantSpeakerChanged { current, previous }
    }

    /// After a roster change: the current dominant speaker mapped again; an update if
    /// its participant changed (identified, left, or another stream owner).
    fn dominant_remapped(&mut self, roster: &RosterSnapshot) -> Option<CallUpdate> {
        let msi = self.dominant.as_ref()?.msi;
        let now = roster.speaker(msi);
        if Some(&now) == self.dominant.as_ref() {
            return None;
        }
        let previous = self.dominant.replace(now.clone());
        Some(CallUpdate::DominantSpeakerChanged {
            current: Some(now),
            previous,
        })
    }

    async fn run(mut self) -> SessionReport {
        let sender = self.socket.sender();
        let mut received = Vec::new();
        let mut sent = Vec::new();
        if self.record {
            received.reserve(60 * 16_000);
            sent.reserve(60 * 16_000);
        }
        let mut media_end = None;
        let mut stream_failed = false;
        let mut first_frame: Option<Instant> = None;
        let mut refresh = tokio::time::interval(Duration::from_millis(250));
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut roster: Arc<RosterSnapshot> = self.view.roster.borrow_and_update().clone();
        let mut roster_open = true;
        let mut events_open = true;
        loop {
            tokio::select! {
                biased;
                _ = self.stop.notified() => break,
                _ = refresh.tick() => {
                    *lock(&self.live.socket_view) = Some((self.socket.qoe(), self.socket.send_status()));
                }
                changed = self.view.roster.changed(), if roster_open => {
                    if changed.is_err() {
                        roster_open = false;
                        continue;
                    }
                    roster = self.view.roster.borrow_and_update().clone();
                    if let Some(update) = self.dominant_remapped(&roster) {
                        let mut out = BotOutput {
                            sender: &sender,
                            live: &self.live.counters,
                            record: self.record.then_some(&mut sent),
                            roster: &roster,
                        };
                        self.behaviour.on_call_update(&update, &mut out);
                    }
                }
                Some(tone) = self.tones.recv() => {
                    if let Err(e) = self.socket.send_dtmf(tone, TONE_MS) {
                        tracing::warn!(call_id = %self.call_id, "DTMF {tone:?} not sent in the media: {e}");
                    }
                }
                event = self.view.events.recv(), if events_open => {
                    let Some(event) = event else {
                        events_open = false;
                        continue;
                    };
                    // The event's roster change is published before the event is
                    // sent: show the behaviour the roster after it.
                    if self.view.roster.has_changed().unwrap_or(false) {
                        roster = self.view.roster.borrow_and_update().clone();
                    }
                    let mut out = BotOutput {
                        sender: &sender,
                        live: &self.live.counters,
                        record: self.record.then_some(&mut sent),
                        roster: &roster,
                    };
                    self.behaviour.on_call_update(&CallUpdate::Call(event), &mut out);
                }
                incoming = self.socket.recv() => {
                    let speaker_change = match &incoming {
                        Some(Incoming::Event(AudioEvent::DominantSpeakerChanged { current, .. })) => {
                            Some(self.dominant_changed(&roster, *current))
                        }
                        _ => None,
                    };
                    let mut out = BotOutput {
                        sender: &sender,
                        live: &self.live.counters,
                        record: self.record.then_some(&mut sent),
                        roster: &roster,
                    };
                    if let Some(update) = &speaker_change {
                        self.behaviour.on_call_update(update, &mut out);
                    }
                    match incoming {
                        None => break,
                        Some(Incoming::Frame(frame)) => {
                            first_frame.get_or_insert_with(Instant::now);
                            self.live.counters.bump(|c| {
                                c.frames_received += 1;
                                c.frames_concealed += u64::from(frame.concealed);
                                c.frames_silent += u64::from(frame.is_silence);
                            });
                            if self.record {
                                received.extend_from_slice(frame.samples.samples());
                            }
                            self.behaviour.on_frame(&frame, &mut out);
                        }
                        Some(Incoming::Event(event)) => {
                            match &event {
                                AudioEvent::MediaStreamFailure { reason } => {
                                    media_end = Some(format!("media stream failure: {reason}"));
                                    if let Some(r) = &self.reporter {
                                        stream_failed = r.stream_failed(self.session_id, reason.to_string());
                                    }
                                }
                                AudioEvent::Ended { reason } => {
                                    media_end = Some(format!("ended: {reason}"));
                                }
                                _ => {}
                            }
                            self.behaviour.on_event(&event, &mut out);
                        }
                    }
                }
            }
        }
        let qoe = self.socket.qoe();
        *lock(&self.live.socket_view) = Some((qoe, SendStatus::Inactive));
        self.socket.hang_up();
        let finish_error = self
            .behaviour
            .finish(&received)
            .err()
            .map(|e| e.to_string());
        SessionReport {
            session_id: self.session_id,
            call_id: Some(self.call_id),
            last: self.live.snapshot(),
            media_end,
            stream_failed,
            finish_error,
            media_duration: first_frame.map(|t| t.elapsed()).unwrap_or_default(),
            received,
            sent,
        }
    }
}
