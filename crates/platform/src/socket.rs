//! The bot's handle on one call's audio: [`AudioSocket`].

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use media_core::call::{AudioEvent, AudioFrame, AudioSender, CallStats, EnqueueError};
use media_core::control::{Control, DtmfTone, SendStatus};
use media_core::frame::Pcm16kFrame;
use media_core::jitter::JitterStats;
use media_core::link::LinkStats;
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::error::ControlError;
use crate::platform::SessionTable;

/// Where the call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CallState {
    /// The blob was handed out; no peer has joined yet.
    WaitingForPeer,
    /// A peer joined; media flows.
    Connected,
    /// The call ended (peer left or vanished, or the bot hung up).
    Ended,
}

/// A frame or an event, from [`AudioSocket::recv`].
// Frames are moved by value on purpose: boxing them would allocate 50 times a second.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A received 20 ms frame.
    Frame(AudioFrame),
    /// A call event.
    Event(AudioEvent),
}

/// Live quality-of-experience figures of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct QoeStats {
    /// Inbound interarrival jitter (RFC 3550 estimator), mean over the call, ms.
    pub inbound_jitter_ms: f64,
    /// Largest inbound jitter estimate seen, ms.
    pub max_inbound_jitter_ms: f64,
    /// Inbound packets lost (sequence gaps), percent of expected.
    pub loss_pct: f64,
    /// Round-trip time (QUIC's smoothed estimate), ms.
    pub rtt_ms: f64,
    /// Media packets received from the peer.
    pub packets_received: u64,
    /// Media packets sent to the peer.
    pub packets_sent: u64,
    /// Inbound packets missing from the sequence.
    pub packets_lost: u64,
    /// Frames delivered to the bot.
    pub frames_delivered: u64,
    /// Frames dropped because the bot did not read its channel in time.
    pub frames_dropped: u64,
    /// Ticks that found the send queue empty while sending was active.
    pub send_underruns: u64,
    /// Datagrams the transport dropped (malformed, unknown stream, flood, ...).
    pub inbound_dropped: u64,
    /// Media ticks (20 ms each) the call has run.
    pub ticks: u64,
    /// Of which started more than [`LATE_TICK`](media_core::tick::LATE_TICK) late.
    pub late_ticks: u64,
    /// Time the reactor thread spent running the call's ticks (its media's CPU
    /// time: codecs, jitter buffer, pacing), µs.
    pub busy_us: u64,
    /// Jitter buffer statistics (W3C names).
    #[serde(skip)]
    pub jitter_buffer: JitterStats,
}

impl QoeStats {
    /// The bot's view of a call: what its media measured, what its link measured, and
    /// how its frames were delivered, and `busy`: the reactor time its ticks took.
    pub(crate) fn of(
        call: &CallStats,
        link: &LinkStats,
        delivered: u64,
        dropped: u64,
        busy: Duration,
    ) -> Self {
        QoeStats {
            inbound_jitter_ms: call.inbound_jitter_ms,
            max_inbound_jitter_ms: call.max_inbound_jitter_ms,
            loss_pct: call.loss_pct,
            rtt_ms: link.rtt.map_or(0.0, |r| r.as_secs_f64() * 1000.0),
            packets_received: call.packets_received,
            packets_sent: call.packets_sent,
            packets_lost: call.packets_lost,
            frames_delivered: delivered,
            frames_dropped: dropped,
            send_underruns: call.send_underruns,
            inbound_dropped: link.inbound_dropped(),
            ticks: call.playout.ticks,
            late_ticks: call.playout.late,
            busy_us: u64::try_from(busy.as_micros()).unwrap_or(u64::MAX),
            jitter_buffer: call.jitter_buffer,
        }
    }
}

const STATE_WAITING: u8 = 0;
const STATE_CONNECTED: u8 = 1;
const STATE_ENDED: u8 = 2;

/// Wakes a running call on its thread (the driver's waker, e.g. a reactor's
/// `CallWaker`).
pub(crate) type CallWake = Box<dyn Fn() + Send + Sync>;

/// [`CallShared`] signal: the bot hung up.
pub(crate) const HANG_UP: u8 = 1;
/// [`CallShared`] signal: commands wait in the call's queue.
pub(crate) const COMMANDS: u8 = 2;

/// State shared between the bot's socket and the call task.
pub(crate) struct CallShared {
    pub(crate) session_id: Uuid,
    pub(crate) call_id: Uuid,
    /// What the bot asked of the call ([`HANG_UP`], [`COMMANDS`]) since the call last
    /// looked; raising the first one wakes the call.
    signals: AtomicU8,
    /// Wakes the call on its reactor thread (set when the call starts).
    waker: OnceLock<CallWake>,
    state: AtomicU8,
    active: AtomicBool,
    pub(crate) qoe: Mutex<QoeStats>,
}

impl std::fmt::Debug for CallShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallShared")
            .field("session_id", &self.session_id)
            .field("call_id", &self.call_id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl CallShared {
    pub(crate) fn new(session_id: Uuid, call_id: Uuid) -> Self {
        Self {
            session_id,
            call_id,
            signals: AtomicU8::new(0),
            waker: OnceLock::new(),
            state: AtomicU8::new(STATE_WAITING),
            active: AtomicBool::new(false),
            qoe: Mutex::new(QoeStats::default()),
        }
    }

    /// The bot hangs up.
    pub(crate) fn request_hang_up(&self) {
        self.raise(HANG_UP);
    }

    /// The call's waker, once the call runs; a signal raised before is delivered now.
    pub(crate) fn set_waker(&self, waker: CallWake) {
        let waker = self.waker.get_or_init(|| waker);
        if self.signals.load(Ordering::Acquire) != 0 {
            waker();
        }
    }

    /// Raises `signal`; the first signal since the call last looked wakes it (one
    /// wake-up outstanding per call at most).
    fn raise(&self, signal: u8) {
        let before = self.signals.fetch_or(signal, Ordering::AcqRel);
        if before == 0
            && let Some(wake) = self.waker.get()
        {
            wake();
        }
    }

    /// Whether the bot has hung up.
    pub(crate) fn hang_up_requested(&self) -> bool {
        self.signals.load(Ordering::Acquire) & HANG_UP != 0
    }

    /// The bot queued a command (after pushing it).
    fn note_command(&self) {
        self.raise(COMMANDS);
    }

    /// The signals raised so far; the [`COMMANDS`] bit is cleared (the caller then
    /// drains the queue: a command pushed after that raises the bit, and wakes the
    /// call, again).
    pub(crate) fn take_signals(&self) -> u8 {
        self.signals.fetch_and(!COMMANDS, Ordering::AcqRel)
    }

    pub(crate) fn set_state(&self, s: CallState) {
        let v = match s {
            CallState::WaitingForPeer => STATE_WAITING,
            CallState::Connected => STATE_CONNECTED,
            CallState::Ended => STATE_ENDED,
        };
        self.state.store(v, Ordering::Release);
    }

    pub(crate) fn state(&self) -> CallState {
        match self.state.load(Ordering::Acquire) {
            STATE_WAITING => CallState::WaitingForPeer,
            STATE_CONNECTED => CallState::Connected,
            _ => CallState::Ended,
        }
    }

    pub(crate) fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Release);
    }

    pub(crate) fn send_status(&self) -> SendStatus {
        if self.active.load(Ordering::Acquire) {
            SendStatus::Active
        } else {
            SendStatus::Inactive
        }
    }

    pub(crate) fn store_qoe(&self, q: QoeStats) {
        if let Ok(mut g) = self.qoe.lock() {
            *g = q;
        }
    }
}

/// A per-frame callback (see [`FrameDelivery::Callback`]).
pub type FrameCallback = Box<dyn FnMut(&AudioFrame, &AudioSender) + Send>;

/// How received frames reach the bot.
pub enum FrameDelivery {
    /// Through [`AudioSocket::recv_frame`] (a bounded channel of this many frames;
    /// when the bot falls behind, new frames are dropped and counted).
    Channel(usize),
    /// A callback run on the call's task for every frame (Microsoft's
    /// `AudioMediaReceived`), with the call's send queue at hand (an echo is
    /// `|f, tx| { let _ = tx.enqueue(&f.samples); }`). It must return quickly: it
    /// delays the call's tick.
    Callback(FrameCallback),
}

impl std::fmt::Debug for FrameDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Channel(n) => write!(f, "Channel({n})"),
            Self::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

impl Default for FrameDelivery {
    /// A channel of 50 frames (1 s).
    fn default() -> Self {
        Self::Channel(50)
    }
}

/// The bot's handle on one call's audio (Microsoft's `AudioSocket`).
///
/// * receive: [`recv_frame`](Self::recv_frame) (50 frames/s once the peer sends), or a
///   callback chosen at creation ([`FrameDelivery::Callback`]);
/// * send: [`enqueue`](Self::enqueue) frames; they leave paced at 50/s
///   ([`sender`](Self::sender) gives a cloneable producer handle);
/// * events: [`next_event`](Self::next_event) ([`AudioEvent`]);
/// * QoE: [`qoe`](Self::qoe); DTMF out: [`send_dtmf`](Self::send_dtmf).
///
/// Dropping the socket hangs up: the connection is closed and the session freed.
#[derive(Debug)]
pub struct AudioSocket {
    pub(crate) shared: Arc<CallShared>,
    pub(crate) frames: Option<mpsc::Receiver<AudioFrame>>,
    pub(crate) events: mpsc::UnboundedReceiver<AudioEvent>,
    pub(crate) sender: AudioSender,
    pub(crate) commands: crossbeam_channel::Sender<Control>,
    pub(crate) table: Arc<SessionTable>,
}

impl AudioSocket {
    /// The media session id (`mpMediaSessionId` of the blob).
    pub fn session_id(&self) -> Uuid {
        self.shared.session_id
    }

    /// The Graph call id this session serves.
    pub fn call_id(&self) -> Uuid {
        self.shared.call_id
    }

    /// Where the call is.
    pub fn state(&self) -> CallState {
        self.shared.state()
    }

    /// Whether frames are being sent now.
    pub fn send_status(&self) -> SendStatus {
        self.shared.send_status()
    }

    /// The next received frame; `None` once the call has ended (or with callback
    /// delivery).
    pub async fn recv_frame(&mut self) -> Option<AudioFrame> {
        match self.frames.as_mut() {
            Some(rx) => rx.recv().await,
            None => None,
        }
    }

    /// The next frame or event, whichever comes first (events first when both are
    /// ready); `None` once the call has ended and both channels are drained.
    pub async fn recv(&mut self) -> Option<Incoming> {
        match self.frames.as_mut() {
            Some(frames) => tokio::select! {
                biased;
                Some(e) = self.events.recv() => Some(Incoming::Event(e)),
                Some(f) = frames.recv() => Some(Incoming::Frame(f)),
                else => None,
            },
            None => self.events.recv().await.map(Incoming::Event),
        }
    }

    /// A received frame if one is waiting.
    pub fn try_recv_frame(&mut self) -> Option<AudioFrame> {
        self.frames.as_mut().and_then(|rx| rx.try_recv().ok())
    }

    /// Takes the frame receiver (e.g. to read frames in another task).
    pub fn take_frames(&mut self) -> Option<mpsc::Receiver<AudioFrame>> {
        self.frames.take()
    }

    /// The next event; `None` once the call has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<AudioEvent> {
        self.events.recv().await
    }

    /// An event if one is waiting.
    pub fn try_next_event(&mut self) -> Option<AudioEvent> {
        self.events.try_recv().ok()
    }

    /// A cloneable producer handle on the send queue.
    pub fn sender(&self) -> AudioSender {
        self.sender.clone()
    }

    /// Queues one frame for paced sending. Never blocks.
    pub fn enqueue(&self, frame: &Pcm16kFrame) -> Result<(), EnqueueError> {
        if self.shared.state() == CallState::Ended {
            return Err(EnqueueError::Closed);
        }
        self.sender.enqueue(frame)
    }

    /// Drops every queued frame; returns how many.
    pub fn clear(&self) -> usize {
        self.sender.clear()
    }

    /// Sends a DTMF tone to the peer (on the call's next tick).
    pub fn send_dtmf(&self, tone: DtmfTone, duration_ms: u32) -> Result<(), ControlError> {
        self.send_control(Control::Dtmf { tone, duration_ms })
    }

    /// Sends a control message to the peer (on the call's next tick): DTMF, speakers,
    /// send status.
    pub fn send_control(&self, control: Control) -> Result<(), ControlError> {
        if self.shared.state() != CallState::Connected {
            return Err(ControlError::NotConnected);
        }
        self.commands.try_send(control).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => ControlError::QueueFull,
            crossbeam_channel::TrySendError::Disconnected(_) => ControlError::NotConnected,
        })?;
        self.shared.note_command();
        Ok(())
    }

    /// Live QoE figures (refreshed once a second, and at the end of the call).
    pub fn qoe(&self) -> QoeStats {
        self.shared.qoe.lock().map(|g| *g).unwrap_or_default()
    }

    /// Hangs up: closes the media connection (the peer sees `Leave`) and frees the
    /// session. Also done on drop.
    pub fn hang_up(&self) {
        self.shared.request_hang_up();
        if self.shared.state() == CallState::WaitingForPeer {
            self.table.forget_waiting(&self.shared.session_id);
        }
    }
}

impl Drop for AudioSocket {
    fn drop(&mut self) {
        self.hang_up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_core::tick::GridStats;

    #[test]
    fn qoe_merges_the_call_the_link_and_the_delivery() {
        let call = CallStats {
            loss_pct: 2.0,
            packets_received: 98,
            packets_lost: 2,
            packets_sent: 100,
            send_underruns: 3,
            playout: GridStats {
                ticks: 50,
                late: 2,
                ..GridStats::default()
            },
            ..CallStats::default()
        };
        let link = LinkStats {
            rtt: Some(Duration::from_micros(1500)),
            malformed: 4,
            flood_dropped: 1,
            ..LinkStats::default()
        };
        let q = QoeStats::of(&call, &link, 97, 1, Duration::from_micros(2_500));
        assert_eq!(
            (q.packets_received, q.packets_lost, q.packets_sent),
            (98, 2, 100)
        );
        assert_eq!(
            (q.frames_delivered, q.frames_dropped, q.send_underruns),
            (97, 1, 3)
        );
        assert_eq!(q.inbound_dropped, 5);
        assert_eq!((q.ticks, q.late_ticks, q.busy_us), (50, 2, 2_500));
        assert!((q.rtt_ms - 1.5).abs() < 1e-9);
        assert!((q.loss_pct - 2.0).abs() < 1e-9);
    }
}
