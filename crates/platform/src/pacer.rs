//! The paced sender: a bounded frame queue drained at exactly one frame per 20 ms tick
//! (Microsoft's `AudioVideoFramePlayer`).
//!
//! The bot enqueues frames whenever it likes (one at a time, or seconds in one burst);
//! the call task takes exactly one per tick, so the peer receives a steady 50 packets
//! per second. When the queue runs dry the tick sends a silence frame or nothing
//! ([`IdlePolicy`]). [`LowOnFrames`] tells the producer, once per dip, that fewer than
//! [`PacerSettings::low_on_frames`] frames are left.
//!
//! # Realtime safety
//! The queue is a bounded `crossbeam-channel` (a preallocated array): enqueuing and
//! dequeuing a frame copies 640 bytes and never allocates or blocks.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use media_core::frame::{FRAME_MS, Pcm16kFrame};

use crate::error::EnqueueError;

/// What a tick sends when the send queue is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Send an encoded silence frame (the VAD flags it silent), so the peer's media
    /// clock keeps running at 50 frames/s. The default.
    SendSilence,
    /// Send nothing until the bot enqueues again.
    Pause,
}

/// Paced-sender settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerSettings {
    /// Frames the send queue holds (default 500 = 10 s).
    pub queue_frames: usize,
    /// `LowOnFrames` fires when the queue falls below this many frames (default 5 =
    /// 100 ms).
    pub low_on_frames: usize,
    /// What to send when the queue is empty.
    pub idle: IdlePolicy,
    /// At the start and after every underrun, wait until this many frames are queued
    /// before sending audio again (default 1: send as soon as a frame is there). A
    /// producer that enqueues each frame as it gets one (an echo, a relay) gains
    /// `(prebuffer_frames - 1) × 20 ms` of slack against its own scheduling jitter,
    /// for the same added latency.
    pub prebuffer_frames: usize,
}

impl Default for PacerSettings {
    fn default() -> Self {
        Self {
            queue_frames: 500,
            low_on_frames: 5,
            idle: IdlePolicy::SendSilence,
            prebuffer_frames: 1,
        }
    }
}

/// The producer side of a call's send queue; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct AudioSender {
    tx: Sender<Pcm16kFrame>,
    rx: Receiver<Pcm16kFrame>,
}

impl AudioSender {
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        Self { tx, rx }
    }

    /// A free-standing queue, for tests and benches of the pacer outside a call.
    #[doc(hidden)]
    pub fn new_for_tests(capacity: usize) -> Self {
        Self::new(capacity)
    }

    /// Takes the next frame as the call's tick does (tests and benches).
    #[doc(hidden)]
    pub fn dequeue_for_tests(&self) -> Option<Pcm16kFrame> {
        self.rx.try_recv().ok()
    }

    pub(crate) fn queue(&self) -> &Receiver<Pcm16kFrame> {
        &self.rx
    }

    /// Queues one 20 ms frame for paced sending. Never blocks.
    pub fn enqueue(&self, frame: &Pcm16kFrame) -> Result<(), EnqueueError> {
        match self.tx.try_send(*frame) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(EnqueueError::Full),
            Err(TrySendError::Disconnected(_)) => Err(EnqueueError::Closed),
        }
    }

    /// Queues as many of `frames` as fit; returns how many were taken.
    pub fn enqueue_all(&self, frames: &[Pcm16kFrame]) -> usize {
        frames
            .iter()
            .take_while(|f| self.enqueue(f).is_ok())
            .count()
    }

    /// Drops every queued frame (e.g. barge-in); returns how many were dropped.
    pub fn clear(&self) -> usize {
        self.rx.try_iter().count()
    }

    /// Frames waiting to be sent.
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// Audio waiting to be sent.
    pub fn queued_duration(&self) -> Duration {
        Duration::from_millis(u64::from(FRAME_MS) * self.queued() as u64)
    }

    /// Frames the queue can hold.
    pub fn capacity(&self) -> usize {
        self.rx.capacity().unwrap_or(0)
    }
}

/// Decides when to raise `LowOnFrames` (sans-IO).
///
/// Armed once the queue holds at least `threshold` frames; fires once when it then
/// falls below, and re-arms when it is refilled.
#[derive(Debug, Clone, Copy)]
pub struct LowOnFrames {
    threshold: usize,
    armed: bool,
}

impl LowOnFrames {
    /// A detector for `threshold` frames.
    pub fn new(threshold: usize) -> Self {
        Self {
            threshold,
            armed: false,
        }
    }

    /// Observes the queue length before and after a tick's dequeue; returns the audio
    /// left when the event fires.
    pub fn observe(&mut self, before: usize, after: usize) -> Option<Duration> {
        if before >= self.threshold {
            self.armed = true;
        }
        if self.armed && after < self.threshold {
            self.armed = false;
            return Some(Duration::from_millis(u64::from(FRAME_MS) * after as u64));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_on_frames_fires_once_per_dip() {
        let mut d = LowOnFrames::new(3);
        assert_eq!(d.observe(0, 0), None, "never filled: not armed");
        assert_eq!(d.observe(5, 4), None);
        assert_eq!(d.observe(4, 3), None);
        assert_eq!(d.observe(3, 2), Some(Duration::from_millis(40)));
        assert_eq!(d.observe(2, 1), None);
        assert_eq!(d.observe(1, 0), None);
        assert_eq!(d.observe(6, 5), None, "refilled: armed again");
        assert_eq!(d.observe(1, 0), Some(Duration::ZERO));
    }

    #[test]
    fn queue_is_bounded_and_clearable() {
        let s = AudioSender::new(4);
        let f = Pcm16kFrame::silent();
        assert_eq!(s.enqueue_all(&[f; 6]), 4);
        assert_eq!(s.enqueue(&f), Err(EnqueueError::Full));
        assert_eq!(s.queued_duration(), Duration::from_millis(80));
        assert_eq!(s.clear(), 4);
        assert_eq!(s.queued(), 0);
        assert_eq!(s.capacity(), 4);
    }
}
