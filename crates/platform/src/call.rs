//! One call's media: the media-core pipelines on a steady 20 ms tick, driven either by
//! a tokio task per call (`run_call`, the task engine) or by the reactor thread
//! (`ReactorCallTask`); both share `CallTask`.
//!
//! Each tick, in order:
//! 1. end checks: the bot hung up, or the connection closed;
//! 2. control messages from the peer → [`AudioEvent`]s;
//! 3. the pacer: one queued frame (or silence, see [`IdlePolicy`]) → `SendPipeline` →
//!    one datagram; `LowOnFrames`; after an underrun it waits for
//!    [`PacerSettings::prebuffer_frames`] frames before sending audio again;
//! 4. received datagrams → `AudioPacket` → `ReceivePipeline::handle_packet` (with
//!    their arrival time), then `poll_frame` → one [`AudioFrame`] to the bot;
//! 5. once a second, QoE figures for [`AudioSocket::qoe`](crate::AudioSocket::qoe);
//!    every 5 s a `Stats` report to the peer.
//!
//! Ticks run on a fixed grid (`MissedTickBehavior::Burst` in the task engine, the
//! reactor's own grid): a tick delayed by a stall is caught up at once, so exactly 50 frames per second leave in the long run (the peer's jitter
//! buffer absorbs the burst). A call more than 200 ms behind resets its schedule
//! instead and counts the skipped ticks.
//!
//! # Realtime safety
//! Pipelines, codec state and buffers are created before the first tick. A tick
//! allocates nothing of its own: packets, frames and the frame queue are fixed-size
//! values; the transport allocates one `Bytes` per sent datagram (quinn owns it).
//! Events (rare) use an unbounded channel.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use media_core::codec::{OpusConfig, new_decoder};
use media_core::frame::Pcm16kFrame;
use media_core::packet::AudioPacket;
use media_core::playout::{ReceiveConfig, ReceivePipeline};
use media_core::send::{SendConfig, SendPipeline};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use transport::reactor::{Link, LinkHandle, ReactorCall};
use transport::wire::Accept;
use transport::wire::{
    ControlMessage, DatagramHeader, Flags, NO_DOMINANT_SPEAKER, SendStatusKind, StatsReport,
    StreamDirection,
};
use transport::{CloseReason, LinkStats, MediaConnection, MediaSender};

use crate::health::{LATE_TICK, LoadMeter};
use crate::pacer::{AudioSender, IdlePolicy, LowOnFrames, PacerSettings};
use crate::platform::SessionTable;
use crate::socket::{
    ActiveSpeakers, AudioEvent, AudioFrame, CallShared, CallState, FrameCallback, InboundStats,
    QoeStats, SendStatus,
};

/// The tick period.
pub const TICK: Duration = Duration::from_millis(20);
/// A call further behind than this resets its tick schedule.
const MAX_BEHIND: Duration = Duration::from_millis(200);

/// Platform-wide settings every call task needs.
#[derive(Debug)]
pub(crate) struct CallContext {
    pub(crate) receive: ReceiveConfig,
    pub(crate) opus: OpusConfig,
    pub(crate) pacer: PacerSettings,
    pub(crate) load: Arc<LoadMeter>,
    pub(crate) table: Arc<SessionTable>,
}

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
    pub(crate) queue: AudioSender,
}

/// Copies a received datagram into a reusable packet. `false` if it does not fit.
pub fn fill_packet(pkt: &mut AudioPacket, header: &DatagramHeader, payload: &[u8]) -> bool {
    if pkt.set_payload(payload).is_err() {
        return false;
    }
    pkt.seq = header.sequence;
    pkt.timestamp = header.timestamp;
    pkt.codec = header.codec;
    pkt.silence = header.flags.contains(Flags::SILENCE);
    true
}

/// Encodes and sends every packet the pipeline has ready through `send`; returns how
/// many were sent.
pub fn flush_send(
    send: &mut SendPipeline,
    pkt: &mut AudioPacket,
    mut send_datagram: impl FnMut(&DatagramHeader, &[u8]) -> bool,
    stream_id: u32,
    first: &mut bool,
) -> u64 {
    let mut n = 0;
    while send.poll_packet(pkt) {
        let mut flags = if pkt.silence {
            Flags::SILENCE
        } else {
            Flags::NONE
        };
        if *first {
            flags = flags.union(Flags::MARKER);
            *first = false;
        }
        let header = DatagramHeader {
            flags,
            codec: pkt.codec,
            stream_id,
            sequence: pkt.seq,
            timestamp: pkt.timestamp,
        };
        if send_datagram(&header, pkt.payload()) {
            n += 1;
        }
    }
    n
}

/// What a call needs of its connection during a tick, whichever engine runs it.
pub(crate) trait CallLink {
    /// Sends one media datagram; false if it was refused.
    fn send_datagram(&mut self, header: &DatagramHeader, payload: &[u8]) -> bool;
    /// Sends a control message (best effort).
    fn send_control(&mut self, msg: &ControlMessage);
    /// The connection's counters.
    fn stats(&self) -> LinkStats;
}

impl CallLink for MediaSender {
    fn send_datagram(&mut self, header: &DatagramHeader, payload: &[u8]) -> bool {
        MediaSender::send_datagram(self, header, payload).is_ok()
    }
    fn send_control(&mut self, msg: &ControlMessage) {
        let _ = MediaSender::send_control(self, msg);
    }
    fn stats(&self) -> LinkStats {
        MediaSender::stats(self)
    }
}

impl CallLink for Link<'_> {
    fn send_datagram(&mut self, header: &DatagramHeader, payload: &[u8]) -> bool {
        Link::send_datagram(self, header, payload).is_ok()
    }
    fn send_control(&mut self, msg: &ControlMessage) {
        let _ = Link::send_control(self, msg);
    }
    fn stats(&self) -> LinkStats {
        Link::stats(self)
    }
}

/// How the bot's side reaches a connected call's link (DTMF, live RTT).
#[derive(Debug)]
pub(crate) enum ControlLink {
    /// The task engine's sender.
    Tasks(MediaSender),
    /// The reactor's cross-thread handle.
    Reactor(LinkHandle),
}

impl ControlLink {
    pub(crate) fn send_control(&self, msg: &ControlMessage) -> Result<(), transport::SendError> {
        match self {
            ControlLink::Tasks(s) => s.send_control(msg),
            ControlLink::Reactor(h) => h.send_control(msg),
        }
    }

    /// The current RTT where it can be read from any thread (the task engine).
    pub(crate) fn rtt(&self) -> Option<Duration> {
        match self {
            ControlLink::Tasks(s) => Some(s.stats().rtt),
            ControlLink::Reactor(_) => None,
        }
    }
}

/// One call's media state: pipelines, pacing, delivery to the bot, QoE. Run by the
/// task engine ([`run_call`]) or inside the reactor ([`ReactorCallTask`]).
pub(crate) struct CallTask {
    shared: Arc<CallShared>,
    delivery: Delivery,
    events: mpsc::UnboundedSender<AudioEvent>,
    queue: AudioSender,
    send: SendPipeline,
    recv: ReceivePipeline,
    source_stream: Option<u32>,
    render_stream: Option<u32>,
    tx_pkt: AudioPacket,
    rx_pkt: AudioPacket,
    frame: Pcm16kFrame,
    idle: IdlePolicy,
    prebuffer: usize,
    priming: bool,
    low: LowOnFrames,
    first_packet: bool,
    receiving: bool,
    active: bool,
    speakers: ActiveSpeakers,
    dominant: Option<u32>,
    inbound: InboundStats,
    qoe: QoeStats,
    t0: Instant,
    tick_no: u64,
}

/// Creates a call's pipelines for an accepted join, or says why it cannot (the
/// pending call's bot is told through `MediaStreamFailure`).
pub(crate) fn new_call(
    accept: &Accept,
    pending: PendingCall,
    ctx: &CallContext,
) -> Result<CallTask, String> {
    let codec = accept.codec;
    let stream = |dir| {
        accept
            .streams
            .iter()
            .find(|s| s.direction == dir)
            .map(|s| s.stream_id)
    };
    let send = SendPipeline::new(&SendConfig {
        codec,
        opus: ctx.opus,
        queue_frames: 4,
        ..SendConfig::default()
    });
    let decoder = new_decoder(codec);
    let (send, decoder) = match (send, decoder) {
        (Ok(s), Ok(d)) => (s, d),
        (s, d) => {
            let detail = format!(
                "cannot create the {codec:?} pipelines: {:?} {:?}",
                s.err(),
                d.err()
            );
            tracing::error!(session_id = %pending.shared.session_id, %detail);
            pending.shared.set_state(CallState::Ended);
            let _ = pending.events.send(AudioEvent::MediaStreamFailure {
                reason: CloseReason::Closed {
                    reason: detail.clone(),
                },
            });
            ctx.table.remove(&pending.shared.session_id);
            return Err(detail);
        }
    };
    let task = CallTask {
        shared: pending.shared,
        delivery: pending.delivery,
        events: pending.events,
        queue: pending.queue,
        send,
        recv: ReceivePipeline::new(ctx.receive, decoder),
        source_stream: stream(StreamDirection::Source),
        render_stream: stream(StreamDirection::Render),
        tx_pkt: AudioPacket::empty(codec),
        rx_pkt: AudioPacket::empty(codec),
        frame: Pcm16kFrame::silent(),
        idle: ctx.pacer.idle,
        prebuffer: ctx.pacer.prebuffer_frames,
        priming: true,
        low: LowOnFrames::new(ctx.pacer.low_on_frames),
        first_packet: true,
        receiving: false,
        active: true,
        speakers: ActiveSpeakers::default(),
        dominant: None,
        inbound: InboundStats::default(),
        qoe: QoeStats::default(),
        t0: Instant::now(),
        tick_no: 0,
    };
    tracing::debug!(session_id = %task.shared.session_id, ?codec, "call connected");
    Ok(task)
}

/// Runs one call until it ends (the task engine). Spawned by the platform's accept
/// loop.
pub(crate) async fn run_call(conn: MediaConnection, pending: PendingCall, ctx: Arc<CallContext>) {
    let session_id = pending.shared.session_id;
    let accept = conn.accept().clone();
    let (mut link, mut datagrams, mut control) = conn.split();
    let mut task = match new_call(&accept, pending, &ctx) {
        Ok(t) => t,
        Err(detail) => return link.close(&detail),
    };
    task.connected(ControlLink::Tasks(link.clone()));

    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let reason = loop {
        let scheduled = interval.tick().await.into_std();
        let start = Instant::now();
        let behind = start.saturating_duration_since(scheduled);
        if behind > MAX_BEHIND {
            let skipped = behind.as_millis() / TICK.as_millis();
            ctx.load
                .record_skipped(u64::try_from(skipped).unwrap_or(u64::MAX));
            interval.reset();
        }
        if let Some(reason) = task.tick_tasks(scheduled, &mut link, &mut datagrams, &mut control) {
            break reason;
        }
        ctx.load.record_tick(start.elapsed(), behind > LATE_TICK);
    };
    let stats = link.stats();
    task.finish(reason, stats);
    ctx.table.remove(&session_id);
    tracing::debug!(%session_id, "call ended");
}

/// A call run inside the reactor's loop.
pub(crate) struct ReactorCallTask {
    task: CallTask,
    ctx: Arc<CallContext>,
}

impl ReactorCallTask {
    pub(crate) fn new(mut task: CallTask, handle: LinkHandle, ctx: Arc<CallContext>) -> Self {
        task.connected(ControlLink::Reactor(handle));
        ReactorCallTask { task, ctx }
    }
}

impl ReactorCall for ReactorCallTask {
    fn on_datagram(&mut self, header: &DatagramHeader, payload: &[u8], received_at: Instant) {
        self.task.on_datagram(header, payload, received_at);
    }

    fn on_control(&mut self, msg: ControlMessage) {
        self.task.on_control(msg);
    }

    fn tick(&mut self, scheduled: Instant, link: &mut Link<'_>) {
        let start = Instant::now();
        if self.task.shared.hangup.load(Ordering::Acquire) {
            link.close("bot hung up");
            return;
        }
        self.task.media_tick(scheduled, link);
        self.ctx.load.record_tick(
            start.elapsed(),
            start.saturating_duration_since(scheduled) > LATE_TICK,
        );
    }

    fn skipped(&mut self, ticks: u64) {
        self.ctx.load.record_skipped(ticks);
    }

    fn ended(self: Box<Self>, reason: &CloseReason, stats: &LinkStats) {
        let session_id = self.task.shared.session_id;
        self.task.finish(reason.clone(), *stats);
        self.ctx.table.remove(&session_id);
        tracing::debug!(%session_id, "call ended");
    }
}

impl CallTask {
    /// The call is connected: the bot can reach the link, the call sends.
    fn connected(&mut self, link: ControlLink) {
        let _ = self.shared.link.set(link);
        self.shared.set_state(CallState::Connected);
        self.shared.set_active(true);
        let _ = self
            .events
            .send(AudioEvent::SendStatusChanged(SendStatus::Active));
    }

    /// One 20 ms tick of the task engine at its scheduled instant `now` (the media
    /// clock: execution jitter of the task does not move the playout point);
    /// `Some(reason)` when the call is over.
    fn tick_tasks(
        &mut self,
        now: Instant,
        link: &mut MediaSender,
        datagrams: &mut mpsc::Receiver<transport::MediaDatagram>,
        control: &mut mpsc::Receiver<ControlMessage>,
    ) -> Option<CloseReason> {
        if self.shared.hangup.load(Ordering::Acquire) {
            link.close("bot hung up");
            return Some(CloseReason::Closed {
                reason: "bot hung up".into(),
            });
        }
        if let Some(reason) = link.close_reason() {
            return Some(reason);
        }
        while let Ok(msg) = control.try_recv() {
            self.on_control(msg);
        }
        // Pace first (as the reactor, whose datagrams arrive between ticks), then
        // take what arrived, then play out.
        self.pace(link);
        let mut disconnected = false;
        loop {
            match datagrams.try_recv() {
                Ok(d) => self.on_datagram(&d.header, &d.payload, d.received_at),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        self.deliver(now);
        self.after_tick(link);
        if disconnected && let Some(reason) = link.close_reason() {
            return Some(reason);
        }
        None
    }

    /// The media part of a tick: pace one frame out, play one frame out to the bot,
    /// periodic QoE and stats.
    fn media_tick(&mut self, now: Instant, link: &mut impl CallLink) {
        self.pace(link);
        self.deliver(now);
        self.after_tick(link);
    }

    /// Plays out one frame to the bot (once the first packet arrived).
    fn deliver(&mut self, now: Instant) {
        if !self.receiving {
            return;
        }
        let info = self.recv.poll_frame(now, &mut self.frame);
        let frame = AudioFrame {
            samples: self.frame,
            timestamp: info.timestamp,
            is_silence: info.silence,
            concealed: info.concealed,
            active_speakers: self.speakers,
        };
        match &mut self.delivery {
            Delivery::Channel(tx) => match tx.try_send(frame) {
                Ok(()) => self.qoe.frames_delivered += 1,
                Err(_) => self.qoe.frames_dropped += 1,
            },
            Delivery::Callback(f) => {
                f(&frame, &self.queue);
                self.qoe.frames_delivered += 1;
            }
        }
    }

    /// Once a second QoE for the bot, every 5 s a `Stats` report to the peer.
    fn after_tick(&mut self, link: &mut impl CallLink) {
        self.tick_no += 1;
        if self.tick_no.is_multiple_of(50) {
            self.publish_qoe(link.stats());
            if self.tick_no.is_multiple_of(250) {
                self.report_stats(link);
            }
        }
    }

    fn pace(&mut self, link: &mut impl CallLink) {
        let Some(stream) = self.source_stream else {
            return;
        };
        if !self.active {
            return;
        }
        let queue = self.queue.queue();
        let before = queue.len();
        if self.priming && before >= self.prebuffer.max(1) {
            self.priming = false;
        }
        let next = if self.priming {
            Err(crossbeam_channel::TryRecvError::Empty)
        } else {
            queue.try_recv()
        };
        let pushed = match next {
            Ok(frame) => self.send.push_pcm16k_frame(&frame).is_ok(),
            Err(_) => {
                if !self.priming {
                    self.qoe.send_underruns += 1;
                    self.priming = self.prebuffer > 1;
                }
                match self.idle {
                    IdlePolicy::SendSilence => {
                        self.send.push_pcm16k_frame(&Pcm16kFrame::silent()).is_ok()
                    }
                    IdlePolicy::Pause => false,
                }
            }
        };
        if pushed {
            self.qoe.packets_sent += flush_send(
                &mut self.send,
                &mut self.tx_pkt,
                |h, p| link.send_datagram(h, p),
                stream,
                &mut self.first_packet,
            );
        }
        if let Some(remaining) = self.low.observe(before, queue.len()) {
            let _ = self.events.send(AudioEvent::LowOnFrames { remaining });
        }
    }

    fn on_datagram(&mut self, header: &DatagramHeader, payload: &[u8], received_at: Instant) {
        if Some(header.stream_id) != self.render_stream {
            return;
        }
        if !fill_packet(&mut self.rx_pkt, header, payload) {
            return;
        }
        let arrival_us = i64::try_from(received_at.saturating_duration_since(self.t0).as_micros())
            .unwrap_or(i64::MAX);
        self.inbound
            .on_packet(arrival_us, header.sequence, header.timestamp);
        if self.recv.handle_packet(received_at, &self.rx_pkt).is_ok() {
            self.receiving = true;
        }
    }

    fn on_control(&mut self, msg: ControlMessage) {
        let ev = match msg {
            ControlMessage::Dtmf(d) => AudioEvent::ToneReceived {
                tone: d.tone,
                duration_ms: d.duration_ms,
            },
            ControlMessage::DominantSpeaker(d) => {
                let current = (d.msi != NO_DOMINANT_SPEAKER).then_some(d.msi);
                let previous = std::mem::replace(&mut self.dominant, current);
                AudioEvent::DominantSpeakerChanged { current, previous }
            }
            ControlMessage::ActiveSpeakers(a) => {
                self.speakers = ActiveSpeakers::from_slice(&a.msis);
                AudioEvent::ActiveSpeakersChanged(self.speakers)
            }
            ControlMessage::SendStatus(s) => {
                let active = s.status == SendStatusKind::Active;
                if active == self.active {
                    return;
                }
                self.active = active;
                self.shared.set_active(active);
                AudioEvent::SendStatusChanged(if active {
                    SendStatus::Active
                } else {
                    SendStatus::Inactive
                })
            }
            ControlMessage::Stats(s) => AudioEvent::PeerStats(s),
            _ => return,
        };
        let _ = self.events.send(ev);
    }

    fn snapshot(&mut self, link: LinkStats) -> QoeStats {
        self.inbound.fill(&mut self.qoe);
        self.qoe.jitter_buffer = self.recv.stats();
        self.qoe.rtt_ms = link.rtt.as_secs_f64() * 1000.0;
        self.qoe.inbound_dropped = link.inbound_dropped();
        self.qoe
    }

    fn publish_qoe(&mut self, link: LinkStats) {
        let q = self.snapshot(link);
        self.shared.store_qoe(q);
    }

    fn report_stats(&mut self, link: &mut impl CallLink) {
        let q = self.qoe;
        link.send_control(&ControlMessage::Stats(StatsReport {
            jitter_ms: q.inbound_jitter_ms as f32,
            max_jitter_ms: q.max_inbound_jitter_ms as f32,
            loss_pct: q.loss_pct as f32,
            rtt_ms: q.rtt_ms as f32,
            packets_sent: q.packets_sent,
            packets_received: q.packets_received,
            packets_lost: q.packets_lost,
        }));
    }

    fn finish(mut self, reason: CloseReason, link: LinkStats) {
        self.publish_qoe(link);
        self.shared.set_active(false);
        self.shared.set_state(CallState::Ended);
        let _ = self
            .events
            .send(AudioEvent::SendStatusChanged(SendStatus::Inactive));
        let ev = if reason.is_failure() {
            AudioEvent::MediaStreamFailure { reason }
        } else {
            AudioEvent::Ended { reason }
        };
        let _ = self.events.send(ev);
    }
}
