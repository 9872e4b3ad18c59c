//! Where a call's outgoing frames come from, and the paced sender's settings.
//!
//! A call sends exactly one frame per send tick, 50 per second, whatever its producer
//! does. The producer is a [`FrameSource`]: the bot's bounded queue ([`AudioSender`] /
//! [`SendQueue`], Microsoft's `AudioVideoFramePlayer`), or a generator (a far end's
//! test signal or recording). When the source runs dry the tick sends a silence frame
//! or nothing ([`IdlePolicy`]); [`LowOnFrames`] tells the producer, once per dip, that
//! fewer than [`PacerSettings::low_on_frames`] frames are left.
//!
//! # Realtime safety
//! The queue is a bounded `crossbeam-channel` (a preallocated array): enqueuing and
//! dequeuing a frame copies 640 bytes and never allocates or blocks.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::frame::{FRAME_MS, Pcm16kFrame};

/// What a send tick sends when its source has no frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Send an encoded silence frame (the VAD flags it silent), so the far end's media
    /// clock keeps running at 50 frames/s. The default.
    SendSilence,
    /// Send nothing until the source has frames again.
    Pause,
}

/// Paced-sender settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerSettings {
    /// Frames the bot's send queue holds (default 500 = 10 s).
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

/// The producer of a call's outgoing frames, read once per send tick.
pub trait FrameSource: Send {
    /// Frames ready now (`usize::MAX` for a source that never runs dry).
    fn ready(&self) -> usize;

    /// Writes the next frame into `out`; false if none is ready.
    fn next_frame(&mut self, out: &mut Pcm16kFrame) -> bool;
}

impl<T: FrameSource + ?Sized> FrameSource for Box<T> {
    fn ready(&self) -> usize {
        (**self).ready()
    }

    fn next_frame(&mut self, out: &mut Pcm16kFrame) -> bool {
        (**self).next_frame(out)
    }
}

/// Why a frame could not be queued for sending. Small and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The send queue is full: wait for `LowOnFrames` or call `clear`.
    #[error("send queue full")]
    Full,
    /// The call has ended.
    #[error("call ended")]
    Closed,
}

/// The producer side of a call's send queue; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct AudioSender {
    tx: Sender<Pcm16kFrame>,
    rx: Receiver<Pcm16kFrame>,
}

/// The consumer side of a call's send queue: the call's [`FrameSource`].
#[derive(Debug)]
pub struct SendQueue(Receiver<Pcm16kFrame>);

impl AudioSender {
    /// A queue of `capacity` frames (at least 1) and the source that drains it.
    pub fn new(capacity: usize) -> (AudioSender, SendQueue) {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        (AudioSender { tx, rx: rx.clone() }, SendQueue(rx))
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

impl FrameSource for SendQueue {
    fn ready(&self) -> usize {
        self.0.len()
    }

    fn next_frame(&mut self, out: &mut Pcm16kFrame) -> bool {
        match self.0.try_recv() {
            Ok(f) => {
                *out = f;
                true
            }
            Err(_) => false,
        }
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
        let mut never = LowOnFrames::new(5);
        assert_eq!(never.observe(usize::MAX, usize::MAX), None, "a generator");
    }

    #[test]
    fn queue_is_bounded_clearable_and_feeds_its_source() {
        let (s, mut q) = AudioSender::new(4);
        let f = Pcm16kFrame::silent();
        assert_eq!(s.enqueue_all(&[f; 6]), 4);
        assert_eq!(s.enqueue(&f), Err(EnqueueError::Full));
        assert_eq!(s.queued_duration(), Duration::from_millis(80));
        assert_eq!(q.ready(), 4);
        let mut out = Pcm16kFrame::silent();
        assert!(q.next_frame(&mut out));
        assert_eq!(s.clear(), 3);
        assert_eq!(s.queued(), 0);
        assert!(!q.next_frame(&mut out));
        assert_eq!(s.capacity(), 4);
        drop(q);
        assert_eq!(
            s.enqueue(&f),
            Ok(()),
            "the sender keeps a receiver: queued until the call reads"
        );
    }
}
