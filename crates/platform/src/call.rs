//! The per-call task: drives one media connection and the media-core pipelines on a
//! steady 20 ms tick.
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
//! The tick uses `MissedTickBehavior::Burst`: a tick delayed by a stall is caught up
//! at once, so exactly 50 frames per second leave in the long run (the peer's jitter
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

use media_core::codec::{CodecKind, OpusConfig, new_decoder};
use media_core::frame::Pcm16kFrame;
use media_core::packet::AudioPacket;
use media_core::playout::{ReceiveConfig, ReceivePipeline};
use media_core::send::{SendConfig, SendPipeline};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use transport::wire::{
    Codec, ControlMessage, DatagramHeader, Flags, NO_DOMINANT_SPEAKER, SendStatusKind, StatsReport,
    StreamDirection,
};
use transport::{CloseReason, MediaConnection, MediaSender};

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

/// Maps the wire codec to media-core's.
pub fn codec_kind(c: Codec) -> CodecKind {
    match c {
        Codec::Pcm16k => CodecKind::Pcm16k,
        Codec::Opus16k => CodecKind::Opus,
    }
}

/// Maps media-core's codec to the wire's.
pub fn wire_codec(c: CodecKind) -> Codec {
    match c {
        CodecKind::Pcm16k => Codec::Pcm16k,
        CodecKind::Opus => Codec::Opus16k,
    }
}

/// Copies a received datagram into a reusable packet. `false` if it does not fit.
pub fn fill_packet(pkt: &mut AudioPacket, header: &DatagramHeader, payload: &[u8]) -> bool {
    if pkt.set_payload(payload).is_err() {
        return false;
    }
    pkt.seq = header.sequence;
    pkt.timestamp = header.timestamp;
    pkt.codec = codec_kind(header.codec);
    pkt.silence = header.flags.contains(Flags::SILENCE);
    true
}

/// Encodes and sends every packet the pipeline has ready; returns how many were sent.
pub(crate) fn flush_send(
    send: &mut SendPipeline,
    pkt: &mut AudioPacket,
    link: &MediaSender,
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
            codec: wire_codec(pkt.codec),
            stream_id,
            sequence: pkt.seq,
            timestamp: pkt.timestamp,
        };
        if link.send_datagram(&header, pkt.payload()).is_ok() {
            n += 1;
        }
    }
    n
}

struct CallTask {
    shared: Arc<CallShared>,
    delivery: Delivery,
    events: mpsc::UnboundedSender<AudioEvent>,
    queue: AudioSender,
    link: MediaSender,
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
}

/// Runs one call until it ends. Spawned by the platform's accept loop.
pub(crate) async fn run_call(conn: MediaConnection, pending: PendingCall, ctx: Arc<CallContext>) {
    let codec = codec_kind(conn.accept().codec);
    let stream = |dir| {
        conn.accept()
            .streams
            .iter()
            .find(|s| s.direction == dir)
            .map(|s| s.stream_id)
    };
    let source_stream = stream(StreamDirection::Source);
    let render_stream = stream(StreamDirection::Render);
    let session_id = pending.shared.session_id;
    let (link, mut datagrams, mut control) = conn.split();
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
            tracing::error!(%session_id, %detail);
            link.close(&detail);
            pending.shared.set_state(CallState::Ended);
            let _ = pending.events.send(AudioEvent::MediaStreamFailure {
                reason: CloseReason::Closed { reason: detail },
            });
            ctx.table.remove(&session_id);
            return;
        }
    };
    let mut task = CallTask {
        shared: pending.shared,
        delivery: pending.delivery,
        events: pending.events,
        queue: pending.queue,
        link: link.clone(),
        send,
        recv: ReceivePipeline::new(ctx.receive, decoder),
        source_stream,
        render_stream,
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
    };
    let _ = task.shared.link.set(link.clone());
    task.shared.set_state(CallState::Connected);
    task.shared.set_active(true);
    let _ = task
        .events
        .send(AudioEvent::SendStatusChanged(SendStatus::Active));
    tracing::debug!(%session_id, ?codec, "call connected");

    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tick_no: u64 = 0;
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
        if let Some(reason) = task.tick(scheduled, &mut datagrams, &mut control) {
            break reason;
        }
        tick_no += 1;
        if tick_no.is_multiple_of(50) {
            task.publish_qoe();
            if tick_no.is_multiple_of(250) {
                task.report_stats();
            }
        }
        ctx.load.record_tick(start.elapsed(), behind > LATE_TICK);
    };
    task.finish(reason);
    ctx.table.remove(&session_id);
    tracing::debug!(%session_id, "call ended");
}

impl CallTask {
    /// One 20 ms tick at its scheduled instant `now` (the media clock: execution
    /// jitter of the task does not move the playout point); `Some(reason)` when the
    /// call is over.
    fn tick(
        &mut self,
        now: Instant,
        datagrams: &mut mpsc::Receiver<transport::MediaDatagram>,
        control: &mut mpsc::Receiver<ControlMessage>,
    ) -> Option<CloseReason> {
        if self.shared.hangup.load(Ordering::Acquire) {
            self.link.close("bot hung up");
            return Some(CloseReason::Closed {
                reason: "bot hung up".into(),
            });
        }
        if let Some(reason) = self.link.close_reason() {
            return Some(reason);
        }
        while let Ok(msg) = control.try_recv() {
            self.on_control(msg);
        }
        self.pace();
        let mut disconnected = false;
        loop {
            match datagrams.try_recv() {
                Ok(d) => self.on_datagram(&d),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        if self.receiving {
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
        if disconnected && let Some(reason) = self.link.close_reason() {
            return Some(reason);
        }
        None
    }

    fn pace(&mut self) {
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
                &self.link,
                stream,
                &mut self.first_packet,
            );
        }
        if let Some(remaining) = self.low.observe(before, queue.len()) {
            let _ = self.events.send(AudioEvent::LowOnFrames { remaining });
        }
    }

    fn on_datagram(&mut self, d: &transport::MediaDatagram) {
        if Some(d.header.stream_id) != self.render_stream {
            return;
        }
        if !fill_packet(&mut self.rx_pkt, &d.header, &d.payload) {
            return;
        }
        let arrival_us =
            i64::try_from(d.received_at.saturating_duration_since(self.t0).as_micros())
                .unwrap_or(i64::MAX);
        self.inbound
            .on_packet(arrival_us, d.header.sequence, d.header.timestamp);
        if self.recv.handle_packet(d.received_at, &self.rx_pkt).is_ok() {
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

    fn snapshot(&mut self) -> QoeStats {
        self.inbound.fill(&mut self.qoe);
        self.qoe.jitter_buffer = self.recv.stats();
        let link = self.link.stats();
        self.qoe.rtt_ms = link.rtt.as_secs_f64() * 1000.0;
        self.qoe.inbound_dropped = link.inbound_dropped();
        self.qoe
    }

    fn publish_qoe(&mut self) {
        let q = self.snapshot();
        self.shared.store_qoe(q);
    }

    fn report_stats(&mut self) {
        let q = self.qoe;
        let _ = self.link.send_control(&ControlMessage::Stats(StatsReport {
            jitter_ms: q.inbound_jitter_ms as f32,
            max_jitter_ms: q.max_inbound_jitter_ms as f32,
            loss_pct: q.loss_pct as f32,
            rtt_ms: q.rtt_ms as f32,
            packets_sent: q.packets_sent,
            packets_received: q.packets_received,
            packets_lost: q.packets_lost,
        }));
    }

    fn finish(mut self, reason: CloseReason) {
        self.publish_qoe();
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
