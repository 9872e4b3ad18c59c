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
    pub(crate) events: mpsc::UnboundedReceiver<MarkEvent>,
}

/// The stream task's ends: commands in, mark events out, the link's sent count, and
/// the marks on their way.
#[derive(Debug)]
pub(crate) struct PlaybackTask {
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) events: mpsc::UnboundedSender<MarkEvent>,
    pub(crate) sent: Arc<AtomicU64>,
    /// Marks waiting for the link to send their audio: (packets, name).
    pending: VecDeque<(u64, String)>,
    /// Twilio marks sent to the platform, waiting for its echo.
    awaiting: VecDeque<String>,
    /// Twilio marks a clear ended whose echo is still to come (swallowed).
    cleared: VecDeque<String>,
}

/// Most marks on their way at once; older ones are ended as cleared beyond it.
const MAX_MARKS: usize = 1024;

impl PlaybackTask {
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
    (
        PlaybackParts {
            commands: ctx,
            sent: sent.clone(),
            events: erx,
        },
        PlaybackTask {
            commands: crx,
            events: etx,
            sent,
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
    events: mpsc::UnboundedReceiver<MarkEvent>,
}

impl Playback {
    /// The control of the call whose send queue `sender` feeds.
    pub fn new(parts: PlaybackParts, sender: AudioSender) -> Self {
        Self {
            sender,
            commands: parts.commands,
            sent: parts.sent,
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
    /// once it has played (or was cleared). At most one frame late, never early.
    pub fn mark(&self, name: &str) -> Result<(), PlaybackError> {
        // Queued first, then sent: a frame dequeued in between is counted in both
        // (the mark comes one frame late), never in neither.
        let queued = self.sender.queued() as u64;
        let sent = self.sent.load(Ordering::Acquire);
        self.commands
            .send(Command::Mark {
                name: name.to_owned(),
                target: sent + queued,
            })
            .map_err(|_| PlaybackError::Ended)
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
