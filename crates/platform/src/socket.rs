//! The bot's handle on one call's audio: [`AudioSocket`].

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use media_core::frame::Pcm16kFrame;
use media_core::jitter::JitterStats;
use media_core::time::Ticks100ns;
use serde::Serialize;
use tokio::sync::mpsc;
use transport::CloseReason;
use transport::wire::{ControlMessage, Dtmf, DtmfTone};
use uuid::Uuid;

use crate::error::{ControlError, EnqueueError};
use crate::pacer::AudioSender;
use crate::platform::SessionTable;

/// Most active speakers carried with a frame.
pub const MAX_ACTIVE_SPEAKERS: usize = 8;

/// Media source ids (MSIs) of the active speakers, loudest first. A fixed-size value:
/// copying it never allocates.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ActiveSpeakers {
    len: u8,
    msis: [u32; MAX_ACTIVE_SPEAKERS],
}

impl ActiveSpeakers {
    /// From a list (only the first [`MAX_ACTIVE_SPEAKERS`] are kept).
    pub fn from_slice(msis: &[u32]) -> Self {
        let mut s = Self::default();
        let n = msis.len().min(MAX_ACTIVE_SPEAKERS);
        s.msis[..n].copy_from_slice(&msis[..n]);
        s.len = n as u8;
        s
    }

    /// The ids, loudest first.
    pub fn as_slice(&self) -> &[u32] {
        &self.msis[..usize::from(self.len)]
    }

    /// True when nobody speaks.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for ActiveSpeakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// One received 20 ms frame (Microsoft's `AudioMediaBuffer`).
#[derive(Debug, Clone, Copy)]
pub struct AudioFrame {
    /// 320 samples of 16 kHz mono PCM.
    pub samples: Pcm16kFrame,
    /// Media time of the first sample on the sender's clock, 100 ns ticks.
    pub timestamp: Ticks100ns,
    /// The frame is silence (sender VAD or level below -50 dBFS).
    pub is_silence: bool,
    /// Some samples were concealed (packet loss).
    pub concealed: bool,
    /// Active speakers when the frame was delivered (excluding the bot).
    pub active_speakers: ActiveSpeakers,
}

/// Whether the bot may send audio now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SendStatus {
    /// The peer has joined and wants audio: frames are paced out at 50/s.
    Active,
    /// No peer, the peer asked for silence, or the call ended: nothing is sent.
    Inactive,
}

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

/// Events of one call, in order, on one channel.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AudioEvent {
    /// Whether the bot's audio is being sent (`AudioSendStatusChanged`).
    SendStatusChanged(SendStatus),
    /// The peer reported a DTMF tone (`ToneReceived`).
    ToneReceived {
        /// The tone.
        tone: DtmfTone,
        /// Its duration in ms (0 if unknown).
        duration_ms: u32,
    },
    /// The dominant speaker changed (`DominantSpeakerChanged`); `None` = nobody
    /// (0xFFFFFFFF on the wire).
    DominantSpeakerChanged {
        /// The new dominant speaker's MSI.
        current: Option<u32>,
        /// The previous one.
        previous: Option<u32>,
    },
    /// The set of active speakers changed.
    ActiveSpeakersChanged(ActiveSpeakers),
    /// The send queue fell below the low-water mark; `remaining` audio is left.
    LowOnFrames {
        /// Audio still queued.
        remaining: Duration,
    },
    /// The peer's periodic quality report.
    PeerStats(transport::wire::StatsReport),
    /// The media connection failed (peer vanished, protocol error, transport error):
    /// the session is freed (`MediaStreamFailure`).
    MediaStreamFailure {
        /// What happened.
        reason: CloseReason,
    },
    /// The call ended in an orderly way (peer left, bot hung up, shutdown).
    Ended {
        /// Why.
        reason: CloseReason,
    },
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
    /// Jitter buffer statistics (W3C names).
    #[serde(skip)]
    pub jitter_buffer: JitterStats,
}

/// RFC 3550 interarrival jitter and sequence-gap loss (sans-IO).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InboundStats {
    started: bool,
    last_arrival_us: i64,
    last_ts: u32,
    jitter_us: f64,
    jitter_sum: f64,
    samples: u64,
    max_jitter_us: f64,
    base_seq: u64,
    max_seq: u64,
    received: u64,
}

impl InboundStats {
    pub(crate) fn on_packet(&mut self, arrival_us: i64, seq: u16, ts: u32) {
        if !self.started {
            self.started = true;
            self.base_seq = u64::from(seq) + (1 << 32);
            self.max_seq = self.base_seq;
        } else {
            let transit_diff = (arrival_us - self.last_arrival_us) as f64
                - f64::from(ts.wrapping_sub(self.last_ts) as i32) * 62.5;
            self.jitter_us += (transit_diff.abs() - self.jitter_us) / 16.0;
            self.jitter_sum += self.jitter_us;
            self.samples += 1;
            self.max_jitter_us = self.max_jitter_us.max(self.jitter_us);
            // Unwrap the sequence number around the highest seen.
            let delta = i64::from(seq.wrapping_sub(self.max_seq as u16) as i16);
            let ext = (self.max_seq as i64 + delta) as u64;
            self.max_seq = self.max_seq.max(ext);
        }
        self.last_arrival_us = arrival_us;
        self.last_ts = ts;
        self.received += 1;
    }

    pub(crate) fn fill(&self, q: &mut QoeStats) {
        q.inbound_jitter_ms = if self.samples == 0 {
            0.0
        } else {
            self.jitter_sum / self.samples as f64 / 1000.0
        };
        q.max_inbound_jitter_ms = self.max_jitter_us / 1000.0;
        q.packets_received = self.received;
        let expected = if self.started {
            self.max_seq - self.base_seq + 1
        } else {
            0
        };
        q.packets_lost = expected.saturating_sub(self.received);
        q.loss_pct = if expected == 0 {
            0.0
        } else {
            100.0 * q.packets_lost as f64 / expected as f64
        };
    }
}

const STATE_WAITING: u8 = 0;
const STATE_CONNECTED: u8 = 1;
const STATE_ENDED: u8 = 2;

/// State shared between the bot's socket and the call task.
#[derive(Debug)]
pub(crate) struct CallShared {
    pub(crate) session_id: Uuid,
    pub(crate) call_id: Uuid,
    pub(crate) hangup: AtomicBool,
    state: AtomicU8,
    active: AtomicBool,
    pub(crate) link: OnceLock<crate::call::ControlLink>,
    pub(crate) qoe: Mutex<QoeStats>,
}

impl CallShared {
    pub(crate) fn new(session_id: Uuid, call_id: Uuid) -> Self {
        Self {
            session_id,
            call_id,
            hangup: AtomicBool::new(false),
            state: AtomicU8::new(STATE_WAITING),
            active: AtomicBool::new(false),
            link: OnceLock::new(),
            qoe: Mutex::new(QoeStats::default()),
        }
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

    /// Sends a DTMF tone to the peer.
    pub fn send_dtmf(&self, tone: DtmfTone, duration_ms: u32) -> Result<(), ControlError> {
        let link = self.shared.link.get().ok_or(ControlError::NotConnected)?;
        link.send_control(&ControlMessage::Dtmf(Dtmf {
            tone,
            stream_id: 0,
            duration_ms,
        }))
        .map_err(|e| ControlError::Send(e.to_string()))
    }

    /// Live QoE figures (refreshed once a second, and at the end of the call).
    pub fn qoe(&self) -> QoeStats {
        let mut q = self.shared.qoe.lock().map(|g| *g).unwrap_or_default();
        if let Some(rtt) = self.shared.link.get().and_then(|l| l.rtt()) {
            q.rtt_ms = rtt.as_secs_f64() * 1000.0;
        }
        q
    }

    /// Hangs up: closes the media connection (the peer sees `Leave`) and frees the
    /// session. Also done on drop.
    pub fn hang_up(&self) {
        self.shared.hangup.store(true, Ordering::Release);
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

    #[test]
    fn active_speakers_are_bounded() {
        let s = ActiveSpeakers::from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(s.as_slice(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(ActiveSpeakers::default().is_empty());
    }

    #[test]
    fn inbound_stats_count_gaps_across_wrap() {
        let mut s = InboundStats::default();
        let mut t = 0i64;
        for (i, seq) in [65_530u16, 65_531, 65_533, 65_534, 0, 1, 3]
            .iter()
            .enumerate()
        {
            t += 20_000;
            s.on_packet(t, *seq, (i as u32) * 320);
        }
        let mut q = QoeStats::default();
        s.fill(&mut q);
        assert_eq!(q.packets_received, 7);
        // 65530..=3 is 10 sequence numbers: 3 missing.
        assert_eq!(q.packets_lost, 3);
        assert!((q.loss_pct - 30.0).abs() < 1e-9);
    }
}
