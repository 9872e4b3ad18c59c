//! What the bot's audio is doing at the platform: [`Playback`], the send-side control
//! of a call that came from a platform WebSocket.
//!
//! The call's audio socket already has a paced send queue with `clear()` (barge-in).
//! A platform (Twilio, ACS, Vonage) keeps a buffer of its own between this side and
//! the caller, and each has a message to empty it. [`Playback::clear`] is the
//! socket's `clear()` for such a call: it drops the queued frames (returning how
//! many, like `AudioSender::clear`) *and* tells the platform to drop what it buffered
//! (Twilio `clear`, ACS `StopAudio`, Vonage `{"action":"clear"}`).
//!
//! [`Playback::mark`] places a named mark after the audio queued so far; a
//! [`MarkEvent`] says when that audio has played: on Twilio when the platform echoes
//! the mark (it sends it back once the audio before it has played), on ACS and
//! Vonage (no marks on their wire) when the last of that audio has been sent. A clear
//! ends every pending mark with [`MarkEvent::Cleared`].
//!
//! ```text
//!  bot: enqueue(frames) ── mark("greeting") ── ... ── clear()
//!            │                  │ target = frames sent + frames queued
//!            v                  v
//!  stream task: pacer sends frames; sent >= target ──> Twilio: {"event":"mark",...} ──> platform
//!                                                     ACS/Vonage: MarkEvent::Played
//!               platform echoes {"event":"mark"} ──> MarkEvent::Played("greeting")
//!               clear ──> {"event":"clear"} / StopAudio / {"action":"clear"}; pending marks: Cleared
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use platform::AudioSender;
use tokio::sync::mpsc;

use crate::dialect::Dialect;
use crate::link::WsLink;

/// What happened to a mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkEvent {
    /// The audio queued before the mark has played.
    Played(String),
    /// A clear dropped the audio before the mark (or the mark itself).
    Cleared(String),
}

/// Why a mark was not placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaybackError {
    /// The stream has ended.
    #[error("the stream has ended")]
    Ended,
}

/// A command of the bot for the stream's task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Tell the platform to drop its buffer; end the pending marks.
    Clear,
    /// A mark, played once the link has sent `target` packets.
    Mark { name: String, target: u64 },
}

/// The stream task's side of a [`Playback`]: handed to a
/// [`StreamAcceptor`](crate::StreamAcceptor), which makes the bot's [`Playback`]
/// with [`Playback::new`].
#[derive(Debug)]
pub struct PlaybackParts {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) sent: Arc<AtomicU64>,
    pub(crate) turns: Arc<AtomicU64>,
    pub(crate) events: mpsc::UnboundedReceiver<MarkEvent>,
}

/// The stream task's ends: commands in, mark events out, the link's sent count, and
/// the marks on their way.
#[derive(Debug)]
pub(crate) struct PlaybackTask {
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) events: mpsc::UnboundedSender<MarkEvent>,
    pub(crate) sent: Arc<AtomicU64>,
    /// Odd while the call handler runs a turn (see [`PlaybackTask::turn`]).
    turns: Arc<AtomicU64>,
    /// Marks waiting for the link to send their audio: (packets, name).
    pending: VecDeque<(u64, String)>,
    /// Twilio marks sent to the platform, waiting for its echo.
    awaiting: VecDeque<String>,
    /// Twilio marks a clear ended whose echo is still to come (swallowed).
    cleared: VecDeque<String>,
}

/// Reads [`Playback::mark`] tries between the stream task's turns (each a few µs)
/// before it counts a frame that may be on its way.
const MARK_READ_TRIES: usize = 64;
/// Most marks on their way at once; older ones are ended as cleared beyond it.
const MAX_MARKS: usize = 1024;

impl PlaybackTask {
    /// Runs `f`, one turn of the call handler (a tick, a wake, an inbound event: any
    /// of them may take a frame from the send queue and send it), marked in `turns`
    /// so that [`Playback::mark`] never reads the queue and the sent count with a
    /// frame between the two (taken from the queue, not yet counted as sent).
    pub(crate) fn turn<R>(&self, f: impl FnOnce() -> R) -> R {
        self.turns.fetch_add(1, Ordering::AcqRel);
        let r = f();
        self.turns.fetch_add(1, Ordering::AcqRel);
        r
    }

    /// A command of the bot.
    pub(crate) fn on_command(&mut self, command: Command, dialect: Dialect, link: &mut WsLink) {
        match command {
            Command::Clear => {
                let _ = link.send_message(link.encoder().clear());
                for (_, name) in self.pending.drain(..) {
                    let _ = self.events.send(MarkEvent::Cleared(name));
                }
                // Twilio echoes the marks a clear drops: those echoes are not plays.
                for name in self.awaiting.drain(..) {
                    let _ = self.events.send(MarkEvent::Cleared(name.clone()));
                    self.cleared.push_back(name);
                }
                while self.cleared.len() > MAX_MARKS {
                    self.cleared.pop_front();
                }
            }
            Command::Mark { name, target } => {
                if self.pending.len() >= MAX_MARKS
                    && let Some((_, old)) = self.pending.pop_front()
                {
                    let _ = self.events.send(MarkEvent::Cleared(old));
                }
                self.pending.push_back((target, name));
                self.poll(dialect, link);
            }
        }
    }

    /// Marks whose audio the link has sent: Twilio's go to the platform (played
    /// when it echoes them), the others are played now.
    pub(crate) fn poll(&mut self, dialect: Dialect, link: &mut WsLink) {
        let sent = link.packets_sent();
        while self.pending.front().is_some_and(|(t, _)| *t <= sent) {
            let Some((_, name)) = self.pending.pop_front() else {
                break;
            };
            match link.encoder().mark(&name) {
                Some(message) if dialect == Dialect::Twilio => {
                    if link.send_message(message).is_ok() {
                        self.awaiting.push_back(name);
                    } else {
                        let _ = self.events.send(MarkEvent::Cleared(name));
                    }
                }
                _ => {
                    let _ = self.events.send(MarkEvent::Played(name));
                }
            }
        }
    }

    /// The platform echoed a mark (Twilio): its audio played, unless a clear ended it.
    pub(crate) fn on_platform_mark(&mut self, name: &str) {
        if let Some(i) = self.awaiting.iter().position(|n| n == name) {
            if let Some(name) = self.awaiting.remove(i) {
                let _ = self.events.send(MarkEvent::Played(name));
            }
        } else if let Some(i) = self.cleared.iter().position(|n| n == name) {
            self.cleared.remove(i);
        } else {
            tracing::debug!(mark = %media_blob::excerpt(name), "the platform echoed a mark this side did not send");
        }
    }

    /// The stream ended: every mark on its way is ended as cleared.
    pub(crate) fn end(&mut self) {
        for (_, name) in self.pending.drain(..) {
            let _ = self.events.send(MarkEvent::Cleared(name));
        }
        for name in self.awaiting.drain(..) {
            let _ = self.events.send(MarkEvent::Cleared(name));
        }
    }
}

/// A new pair of ends.
pub(crate) fn channel() -> (PlaybackParts, PlaybackTask) {
    let (ctx, crx) = mpsc::unbounded_channel();
    let (etx, erx) = mpsc::unbounded_channel();
    let sent = Arc::new(AtomicU64::new(0));
    let turns = Arc::new(AtomicU64::new(0));
    (
        PlaybackParts {
            commands: ctx,
            sent: sent.clone(),
            turns: turns.clone(),
            events: erx,
        },
        PlaybackTask {
            commands: crx,
            events: etx,
            sent,
            turns,
            pending: VecDeque::new(),
            awaiting: VecDeque::new(),
            cleared: VecDeque::new(),
        },
    )
}

/// Send-side control of a platform stream's call (see the
/// [module documentation](self)).
#[derive(Debug)]
pub struct Playback {
    sender: AudioSender,
    commands: mpsc::UnboundedSender<Command>,
    sent: Arc<AtomicU64>,
    turns: Arc<AtomicU64>,
    events: mpsc::UnboundedReceiver<MarkEvent>,
}

impl Playback {
    /// The control of the call whose send queue `sender` feeds.
    pub fn new(parts: PlaybackParts, sender: AudioSender) -> Self {
        Self {
            sender,
            commands: parts.commands,
            sent: parts.sent,
            turns: parts.turns,
            events: parts.events,
        }
    }

    /// Drops every queued frame and tells the platform to drop the audio it buffered;
    /// returns how many frames were dropped here (as `AudioSender::clear`).
    pub fn clear(&self) -> usize {
        let n = self.sender.clear();
        let _ = self.commands.send(Command::Clear);
        n
    }

    /// Places the mark `name` after the audio queued so far; a [`MarkEvent`] follows
    /// once it has played (or was cleared). Never early; one frame late at most, and
    /// only when the stream task was held inside a turn while the mark was placed.
    pub fn mark(&self, name: &str) -> Result<(), PlaybackError> {
        self.commands
            .send(Command::Mark {
                name: name.to_owned(),
                target: self.packets_before_mark(),
            })
            .map_err(|_| PlaybackError::Ended)
    }

    /// Packets the link will have sent once the audio queued now has gone: the sent
    /// count plus the queue, read between two turns of the stream task (a seqlock on
    /// `turns`: a frame the task took from the queue is counted as sent before the turn
    /// ends). If the task stays inside a turn (a descheduled thread), the queue is read
    /// first and one frame added for the one that may be on its way.
    fn packets_before_mark(&self) -> u64 {
        for _ in 0..MARK_READ_TRIES {
            let before = self.turns.load(Ordering::Acquire);
            if before.is_multiple_of(2) {
                let queued = self.sender.queued() as u64;
                let sent = self.sent.load(Ordering::Acquire);
                std::sync::atomic::fence(Ordering::Acquire);
                if self.turns.load(Ordering::Acquire) == before {
                    return sent + queued;
                }
            }
            std::thread::yield_now();
        }
        let queued = self.sender.queued() as u64;
        self.sent.load(Ordering::Acquire) + queued + 1
    }

    /// The next mark event; `None` once the stream has ended and all were read.
    pub async fn next_mark(&mut self) -> Option<MarkEvent> {
        self.events.recv().await
    }

    /// A mark event if one is waiting.
    pub fn try_next_mark(&mut self) -> Option<MarkEvent> {
        self.events.try_recv().ok()
    }

    /// The send queue this control clears.
    pub fn sender(&self) -> &AudioSender {
        &self.sender
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_core::call::{AudioSender, FrameSource};
    use media_core::frame::Pcm16kFrame;

    #[test]
    fn a_mark_placed_while_a_frame_is_on_its_way_is_never_early() {
        let (parts, task) = channel();
        let (sender, mut queue) = AudioSender::new(8);
        let playback = Playback::new(parts, sender.clone());
        for _ in 0..3 {
            sender.enqueue(&Pcm16kFrame::silent()).expect("queued");
        }
        // The stream task's turn takes a frame and has not counted it as sent yet.
        let mut frame = Pcm16kFrame::silent();
        task.turns.fetch_add(1, Ordering::AcqRel);
        assert!(queue.next_frame(&mut frame));
        // The three frames queued before the mark end at packet 3, not 2.
        assert_eq!(playback.packets_before_mark(), 3);
        task.sent.fetch_add(1, Ordering::AcqRel);
        task.turns.fetch_add(1, Ordering::AcqRel);
        // Between turns the read is exact.
        assert_eq!(playback.packets_before_mark(), 3);
        task.turn(|| {
            assert!(queue.next_frame(&mut frame));
            task.sent.fetch_add(1, Ordering::AcqRel);
        });
        assert_eq!(playback.packets_before_mark(), 3);
    }
}
