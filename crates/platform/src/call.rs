//! One call of the platform: media-core's [`CallMedia`] behind whatever link carries
//! the call, its frames and events handed to the bot.
//!
//! [`PlatformCall`] is the call's [`CallHandler`]: the link's driver (a reactor thread
//! for QUIC) runs it. Per event and per tick it:
//! 1. ends the call if the bot hung up (`link.close`), and passes the bot's control
//!    messages (DTMF) to the media;
//! 2. runs the media ([`CallMedia::run_event`] / [`CallMedia::run_due`]): packets and
//!    control messages go to the link, frames to the bot's channel or callback, events
//!    to the bot's event channel;
//! 3. once a second publishes the call's [`QoeStats`] (the media's statistics with the
//!    link's RTT and drops) and its tick counts to the platform's load meter;
//! 4. at the end frees the session.
//!
//! # Realtime safety
//! The media allocates nothing per tick; frames reach the bot through a bounded channel
//! (a full one drops and counts) or a callback run right here, which must return
//! quickly. Events (rare) use an unbounded channel; the QoE snapshot is published under
//! a mutex once a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use media_core::call::{
    AudioEvent, AudioFrame, AudioSender, AudioStreams, CallConfig, CallMedia, CallStats, Output,
    SendQueue,
};
use media_core::control::{Control, SendStatus};
use media_core::link::{CallHandler, LinkEvent, MediaLink};
use media_core::tick::GridStats;
use tokio::sync::mpsc;
use transport::reactor::StartError;

use crate::health::LoadMeter;
use crate::platform::SessionTable;
use crate::socket::{COMMANDS, CallShared, CallState, CallWake, FrameCallback, HANG_UP, QoeStats};

/// How frames reach the bot.
pub(crate) enum Delivery {
    Channel(mpsc::Sender<AudioFrame>),
    Callback(FrameCallback),
}

/// A registered session's bot-side ends, waiting for its peer.
pub(crate) struct PendingCall {
    pub(crate) shared: Arc<CallShared>,
    pub(crate) delivery: Delivery,
    pub(crate) events: mpsc::UnboundedSender<AudioEvent>,
    pub(crate) sender: AudioSender,
    pub(crate) queue: SendQueue,
    pub(crate) commands: crossbeam_channel::Receiver<Control>,
    /// The received audio the bot asked for (the mix, unmixed streams, or both); once
    /// the join is accepted, what the accept granted.
    pub(crate) streams: AudioStreams,
}

/// What every call of a platform shares.
#[derive(Debug)]
pub(crate) struct CallContext {
    /// The media settings (the codec is each call's own).
    pub(crate) config: CallConfig,
    pub(crate) load: Arc<LoadMeter>,
    pub(crate) table: Arc<SessionTable>,
}

/// The bot's end of a running call.
struct BotSide {
    shared: Arc<CallShared>,
    delivery: Delivery,
    events: mpsc::UnboundedSender<AudioEvent>,
    sender: AudioSender,
    delivered: u64,
    dropped: u64,
    /// The media's statistics of this run, to publish with the link's.
    stats: Option<CallStats>,
}

impl BotSide {
    /// Takes one output of the call's media meant for the application.
    fn take(&mut self, out: Output<'_>) {
        match out {
            Output::Frame(frame) => match &mut self.delivery {
                Delivery::Channel(tx) => match tx.try_send(*frame) {
                    Ok(()) => self.delivered += 1,
                    Err(_) => self.dropped += 1,
                },
                Delivery::Callback(f) => {
                    f(frame, &self.sender);
                    self.delivered += 1;
                }
            },
            Output::Event(event) => {
                if let AudioEvent::SendStatusChanged(s) = event {
                    self.shared.set_active(s == SendStatus::Active);
                }
                let _ = self.events.send(event);
            }
            Output::Stats(s) => self.stats = Some(*s),
            Output::Packet(_) | Output::Control(_) => {}
        }
    }
}

/// One call of the platform. See the [module documentation](self).
pub(crate) struct PlatformCall {
    media: CallMedia<SendQueue>,
    bot: BotSide,
    commands: crossbeam_channel::Receiver<Control>,
    load: Arc<LoadMeter>,
    table: Arc<SessionTable>,
    /// The playout clock's counters at the last load report.
    reported: GridStats,
    /// Reactor time spent in this call's ticks so far.
    busy: Duration,
}

impl PlatformCall {
    /// The call of `pending` in `codec`, starting at `now`. On failure the bot hears
    /// `MediaStreamFailure` and the session is freed.
    pub(crate) fn start(
        now: Instant,
        codec: media_core::codec::Codec,
        pending: PendingCall,
        waker: CallWake,
        ctx: &CallContext,
    ) -> Result<Self, StartError> {
        let config = CallConfig {
            codec,
            streams: pending.streams,
            ..ctx.config
        };
        let PendingCall {
            shared,
            delivery,
            events,
            sender,
            queue,
            commands,
            streams: _,
        } = pending;
        let media = match CallMedia::new(now, &config, queue) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(session_id = %shared.session_id, error = %e, "cannot start the call's media");
                shared.set_state(CallState::Ended);
                let _ = events.send(AudioEvent::MediaStreamFailure {
                    reason: media_core::link::CloseReason::Closed {
                        reason: e.to_string(),
                    },
                });
                ctx.table.remove(&shared.session_id);
                return Err(e.into());
            }
        };
        // The waker first: from `Connected` on, the bot's commands wake the call.
        shared.set_waker(waker);
        shared.set_state(CallState::Connected);
        tracing::debug!(session_id = %shared.session_id, %codec, "call connected");
        Ok(PlatformCall {
            media,
            bot: BotSide {
                shared,
                delivery,
                events,
                sender,
                delivered: 0,
                dropped: 0,
                stats: None,
            },
            commands,
            load: ctx.load.clone(),
            table: ctx.table.clone(),
            reported: GridStats::default(),
            busy: Duration::ZERO,
        })
    }

    /// Publishes what the media measured (if it produced statistics) with the link's
    /// figures, and the ticks since the last report to the load meter.
    fn publish(&mut self, link: &mut dyn MediaLink) {
        let Some(stats) = self.bot.stats.take() else {
            return;
        };
        let qoe = QoeStats::of(
            &stats,
            &link.stats(),
            self.bot.delivered,
            self.bot.dropped,
            self.busy,
        );
        self.bot.shared.store_qoe(qoe);
        let grid = stats.playout;
        self.load.record_ticks(
            grid.ticks - self.reported.ticks,
            grid.late - self.reported.late,
            grid.skipped - self.reported.skipped,
        );
        self.reported = grid;
    }
}

impl CallHandler for PlatformCall {
    fn handle_event(&mut self, now: Instant, event: LinkEvent<'_>, link: &mut dyn MediaLink) {
        let closed = matches!(event, LinkEvent::Closed(_));
        let bot = &mut self.bot;
        self.media.run_event(now, event, link, |o| bot.take(o));
        self.publish(link);
        if closed {
            self.bot.shared.set_active(false);
            self.bot.shared.set_state(CallState::Ended);
            self.table.remove(&self.bot.shared.session_id);
            tracing::debug!(session_id = %self.bot.shared.session_id, "call ended");
        }
    }

    fn handle_timeout(&mut self, now: Instant, link: &mut dyn MediaLink) {
        let start = Instant::now();
        let bot = &mut self.bot;
        self.media.run_due(now, link, |o| bot.take(o));
        let spent = start.elapsed();
        self.load.record_busy(spent);
        self.busy += spent;
        self.publish(link);
    }

    /// The bot hung up or queued commands (its socket woke the call: nothing here
    /// looks at the shared state on a tick).
    fn handle_wake(&mut self, _: Instant, link: &mut dyn MediaLink) {
        let signals = self.bot.shared.take_signals();
        if signals & HANG_UP != 0 {
            link.close("bot hung up");
            return;
        }
        if signals & COMMANDS != 0 {
            while let Ok(control) = self.commands.try_recv() {
                self.media.send_control(control);
            }
            let bot = &mut self.bot;
            self.media.flush(link, |o| bot.take(o));
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.media.poll_timeout()
    }
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
