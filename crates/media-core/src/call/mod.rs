//! One call's media, sans-IO: [`CallMedia`].
//!
//! Everything a call does per 20 ms, whatever link carries it and whoever is at the
//! other end of the audio: the media processor's bot, a reference far end, a load peer.
//! It paces a [`FrameSource`] out at one frame per send tick through the
//! [`SendPipeline`], plays received packets out through the jitter buffer at one frame
//! per playout tick ([`ReceivePipeline`]), turns control messages into events (DTMF,
//! speakers, send status), measures the inbound stream (RFC 3550) and reports it to the
//! far end, and ends with a typed reason. It never reads a clock and owns no socket,
//! thread or channel: inputs are `handle_*(now, ..)`, outputs come from
//! [`poll_output`](CallMedia::poll_output), and [`poll_timeout`](CallMedia::poll_timeout)
//! says when the next tick is due.
//!
//! ```text
//!  link ── handle_packet(now, &AudioPacket) ──> InboundStats, ReceivePipeline (the mix)
//!                                           └─> unmixed slot by MSI (source != 0)
//!       ── handle_control(Control) ───────────> AudioEvent (DTMF, speakers, send status)
//!  handle_timeout(now):
//!    send tick:    FrameSource ─ pacer (prebuffer, idle policy, LowOnFrames) ─> SendPipeline
//!    playout tick: ReceivePipeline::poll_frame ─> AudioFrame (+ its UnmixedBuffers);
//!                  1/s CallStats; 5 s QualityReport
//!  send_unmixed(source, frame) ─> that speaker's SendPipeline (a far end playing speakers)
//!  poll_output():  Packet, Control (for the link) · Event, Frame, Stats (for the application)
//! ```
//!
//! Unmixed audio ([`unmixed`]): with [`CallConfig::streams`] asking for `n` unmixed
//! streams, packets whose `source` names a participant play through their own slot
//! and every frame carries [`AudioFrame::unmixed`], one buffer per speaker tagged
//! with the speaker's MSI; a far end sends them with [`CallMedia::send_unmixed`].
//!
//! Send and playout run on their own [`TickGrid`]s: both 20 ms by default, on the same
//! instants; a far end simulating a drifting sender clock sets
//! [`CallConfig::send_period`]. Each `handle_timeout` runs at most one tick of each
//! grid, so a caller that drains the outputs after every call never loses a frame;
//! [`CallMedia::run_due`] does that loop against a [`MediaLink`].
//!
//! # Example: two calls wired back to back on a virtual clock
//!
//! ```
//! use std::time::{Duration, Instant};
//! use media_core::call::{AudioSender, CallConfig, CallMedia, Output};
//! use media_core::codec::Codec;
//! use media_core::frame::Pcm16kFrame;
//!
//! let t0 = Instant::now();
//! let config = CallConfig::new(Codec::Pcm16k);
//! let (tx, queue) = AudioSender::new(50);
//! let mut a = CallMedia::new(t0, &config, Box::new(queue)).expect("call a");
//! let (_silent, nothing) = AudioSender::new(1);
//! let mut b = CallMedia::new(t0, &config, Box::new(nothing)).expect("call b");
//!
//! let mut tone = Pcm16kFrame::silent();
//! for (i, s) in tone.samples_mut().iter_mut().enumerate() {
//!     *s = ((i as f32 * 0.2).sin() * 8000.0) as i16;
//! }
//! let mut heard = 0;
//! for k in 0..50u32 {
//!     let now = t0 + Duration::from_millis(20) * k;
//!     tx.enqueue(&tone).expect("room");
//!     a.handle_timeout(now);
//!     while let Some(out) = a.poll_output() {
//!         if let Output::Packet(p) = out {
//!             let p = p.clone();
//!             b.handle_packet(now, &p); // a perfect network
//!         }
//!     }
//!     b.handle_timeout(now);
//!     while let Some(out) = b.poll_output() {
//!         if let Output::Frame(f) = out {
//!             heard += usize::from(!f.is_silence);
//!         }
//!     }
//! }
//! assert!(heard > 40, "after the jitter buffer's start-up delay b hears the tone");
//! ```
//!
//! # Realtime safety
//! [`CallMedia::new`] creates the codec state, the pipelines and every buffer. After
//! that, ticks, packets and control messages allocate nothing: packets and frames live
//! in fixed arrays inside the call, outputs borrow them, and the queues of control
//! messages and events are reserved up front (events are rare; only the final one
//! carries a heap-allocated reason). `tests/call_alloc.rs` proves it with a counting
//! allocator, PCM and Opus, with loss and reordering.

mod pacer;
mod stats;
pub mod unmixed;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use self::pacer::{
    AudioSender, EnqueueError, FrameSource, IdlePolicy, LowOnFrames, PacerSettings, SendQueue,
};
pub use self::stats::{CallStats, InboundStats, IntervalLoss};
pub use self::unmixed::{
    AudioStreams, UnmixedBuffer, UnmixedBuffers, UnmixedSendError, UnmixedStats,
};
use self::unmixed::{UnmixedReceiver, UnmixedSender};
use crate::codec::{Codec, CodecError, LossAdapter, OpusConfig, new_decoder};
use crate::control::{ActiveSpeakers, Control, DtmfTone, QualityReport, SendStatus};
use crate::frame::Pcm16kFrame;
use crate::link::{CloseReason, LinkEvent, MediaLink};
use crate::packet::AudioPacket;
use crate::playout::{ReceiveConfig, ReceivePipeline};
use crate::send::{SendConfig, SendPipeline, SendSetupError};
use crate::tick::{TICK, TickGrid};
use crate::time::Ticks100ns;

/// One received 20 ms frame, played out of the jitter buffer (Microsoft's
/// `AudioMediaBuffer`).
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
    /// Active speakers when the frame was played (excluding the bot).
    pub active_speakers: ActiveSpeakers,
    /// Each speaker's own audio of this tick (Microsoft's `UnmixedAudioBuffers`):
    /// empty unless the call negotiated unmixed streams ([`CallConfig::streams`]).
    /// With unmixed audio only, `samples` is silence.
    pub unmixed: UnmixedBuffers,
}

/// Events of one call, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AudioEvent {
    /// Whether this side's audio is being sent (`AudioSendStatusChanged`).
    SendStatusChanged(SendStatus),
    /// The far end sent a DTMF tone (`ToneReceived`).
    ToneReceived {
        /// The tone.
        tone: DtmfTone,
        /// Its duration in ms (0 if unknown).
        duration_ms: u32,
    },
    /// The dominant speaker changed (`DominantSpeakerChanged`); `None` = nobody.
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
    /// The far end's periodic quality report.
    PeerStats(QualityReport),
    /// The media connection failed (peer vanished, protocol or transport error)
    /// (`MediaStreamFailure`).
    MediaStreamFailure {
        /// What happened.
        reason: CloseReason,
    },
    /// The call ended in an orderly way (peer left, hang-up, shutdown).
    Ended {
        /// Why.
        reason: CloseReason,
    },
}

/// How a call's media runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallConfig {
    /// The call's codec (both directions).
    pub codec: Codec,
    /// Opus encoder settings (when the codec is Opus).
    pub opus: OpusConfig,
    /// The receive pipeline and its jitter buffer.
    pub receive: ReceiveConfig,
    /// The paced sender.
    pub pacer: PacerSettings,
    /// Period of the send clock (default 20 ms). Only a far end simulating a drifting
    /// sender sets it off nominal.
    pub send_period: Duration,
    /// Playout ticks between [`Output::Stats`] (default 50: once a second).
    pub stats_every: u32,
    /// Playout ticks between quality reports to the far end (default 50: every second,
    /// what loss-adaptive FEC follows; 0: never).
    pub report_every: u32,
    /// The received audio: the mix, unmixed streams (0-4, a receive slot and a send
    /// stream each, created with the call), or both. Default: the mix only.
    pub streams: AudioStreams,
}

impl CallConfig {
    /// Defaults for `codec`: default Opus (loss-adaptive FEC), jitter buffer and
    /// pacer, 20 ms clocks, stats and a report to the far end once a second.
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            opus: OpusConfig::default(),
            receive: ReceiveConfig::default(),
            pacer: PacerSettings::default(),
            send_period: TICK,
            stats_every: 50,
            report_every: 50,
            streams: AudioStreams::MIXED,
        }
    }
}

/// Why a call's media could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallSetupError {
    /// The send pipeline (encoder) could not be created.
    #[error("cannot create the {codec} send pipeline: {source}")]
    Send {
        /// The call's codec.
        codec: Codec,
        /// Why.
        source: SendSetupError,
    },
    /// The decoder (of the mix or of an unmixed stream) could not be created.
    #[error("cannot create the {codec} decoder: {source}")]
    Decoder {
        /// The call's codec.
        codec: Codec,
        /// Why.
        source: CodecError,
    },
}

/// What a call's media wants done; see [`CallMedia::poll_output`].
#[derive(Debug)]
pub enum Output<'a> {
    /// For the link: an encoded packet to send.
    Packet(&'a AudioPacket),
    /// For the link: a control message to send.
    Control(Control),
    /// For the application: an event.
    Event(AudioEvent),
    /// For the application: the frame of this playout tick.
    Frame(&'a AudioFrame),
    /// For the application: the statistics, once a second and at the end.
    Stats(&'a CallStats),
}

/// Control messages or events queued at most between two drains, before the queues
/// would grow (they are reserved for this many; more still works, allocating).
const QUEUE_RESERVE: usize = 16;

/// What every tick and every `poll_timeout` of a call reads, kept together: with
/// hundreds of calls on a thread, a call's state is rarely in cache when its tick
/// comes, and these fields scattered over the call's 5 KiB cost a miss each.
#[derive(Debug, Clone, Copy)]
struct Clock {
    closed: bool,
    active: bool,
    priming: bool,
    receiving: bool,
    frame_ready: bool,
    stats_due: bool,
    first_packet: bool,
    /// A packet of the mix arrived (false: only unmixed ones, the mix is silence).
    mixing: bool,
    /// The call negotiated unmixed streams.
    unmixed: bool,
    /// The send pipeline may hold a packet (a frame went in since it was empty).
    encoding: bool,
    /// Control messages or events are queued.
    queued: bool,
    send_grid: TickGrid,
    play_grid: TickGrid,
}

/// One call's media. See the [module documentation](self).
///
/// `S` is where outgoing frames come from: a boxed source by default; a driver that
/// knows its source's type (the platform's [`SendQueue`]) names it and saves the
/// indirection on every tick.
pub struct CallMedia<S: FrameSource = Box<dyn FrameSource>> {
    codec: Codec,
    send: SendPipeline,
    recv: ReceivePipeline,
    /// Read on every tick: kept together.
    clock: Clock,
    source: S,
    pacer: PacerSettings,
    low: LowOnFrames,
    scratch: Pcm16kFrame,
    tx_pkt: AudioPacket,
    /// Unmixed packets leave through their own buffer (`source` set).
    tx_unmixed: AudioPacket,
    unmixed_rx: UnmixedReceiver,
    unmixed_tx: UnmixedSender,
    unmixed_stats: UnmixedStats,
    send_ticks: u64,
    frame: AudioFrame,
    speakers: ActiveSpeakers,
    dominant: Option<u32>,
    inbound: InboundStats,
    t0: Instant,
    stats_every: u64,
    report_every: u64,
    /// Loss-adaptive FEC of the encoder (`None`: fixed settings or PCM).
    adapter: Option<LossAdapter>,
    controls: VecDeque<Control>,
    events: VecDeque<AudioEvent>,
    snapshot: CallStats,
    packets_sent: u64,
    packets_refused: u64,
    frames_played: u64,
    frames_concealed: u64,
    send_underruns: u64,
}

impl<S: FrameSource> std::fmt::Debug for CallMedia<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallMedia")
            .field("codec", &self.codec)
            .field("receiving", &self.clock.receiving)
            .field("active", &self.clock.active)
            .field("closed", &self.clock.closed)
            .finish_non_exhaustive()
    }
}

impl<S: FrameSource> CallMedia<S> {
    /// A call starting at `now` (its first send and playout ticks are due then),
    /// sending what `source` produces. Creates the codec state and every buffer.
    pub fn new(now: Instant, config: &CallConfig, source: S) -> Result<Self, CallSetupError> {
        let codec = config.codec;
        let send = SendPipeline::new(&SendConfig {
            codec,
            opus: config.opus,
            queue_frames: 4,
            ..SendConfig::default()
        })
        .map_err(|source| CallSetupError::Send { codec, source })?;
        let decoder =
            new_decoder(codec).map_err(|source| CallSetupError::Decoder { codec, source })?;
        let unmixed = config.streams.unmixed;
        let unmixed_rx = UnmixedReceiver::new(now, unmixed, config.receive, codec)
            .map_err(|source| CallSetupError::Decoder { codec, source })?;
        let unmixed_tx = UnmixedSender::new(unmixed, codec, config.opus)
            .map_err(|source| CallSetupError::Send { codec, source })?;
        let mut events = VecDeque::with_capacity(QUEUE_RESERVE);
        events.push_back(AudioEvent::SendStatusChanged(SendStatus::Active));
        Ok(Self {
            clock: Clock {
                closed: false,
                active: true,
                priming: true,
                receiving: false,
                frame_ready: false,
                stats_due: false,
                first_packet: true,
                mixing: false,
                unmixed: unmixed > 0,
                encoding: false,
                queued: true,
                send_grid: TickGrid::with_period(now, config.send_period),
                play_grid: TickGrid::new(now),
            },
            codec,
            send,
            recv: ReceivePipeline::new(config.receive, decoder),
            source,
            pacer: config.pacer,
            low: LowOnFrames::new(config.pacer.low_on_frames),
            scratch: Pcm16kFrame::silent(),
            tx_pkt: AudioPacket::empty(codec),
            tx_unmixed: AudioPacket::empty(codec),
            unmixed_rx,
            unmixed_tx,
            unmixed_stats: UnmixedStats::default(),
            send_ticks: 0,
            frame: AudioFrame {
                samples: Pcm16kFrame::silent(),
                timestamp: Ticks100ns(0),
                is_silence: true,
                concealed: false,
                active_speakers: ActiveSpeakers::default(),
                unmixed: UnmixedBuffers::EMPTY,
            },
            speakers: ActiveSpeakers::default(),
            dominant: None,
            inbound: InboundStats::default(),
            t0: now,
            stats_every: u64::from(config.stats_every.max(1)),
            report_every: u64::from(config.report_every),
            adapter: (codec == Codec::Opus16k && config.opus.adaptive_fec)
                .then(|| LossAdapter::new(config.opus.max_loss_percent)),
            controls: VecDeque::with_capacity(QUEUE_RESERVE),
            events,
            snapshot: CallStats::default(),
            packets_sent: 0,
            packets_refused: 0,
            frames_played: 0,
            frames_concealed: 0,
            send_underruns: 0,
        })
    }

    /// The call's codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// True once the first packet arrived (playout has started).
    pub fn is_receiving(&self) -> bool {
        self.clock.receiving
    }

    /// True after [`handle_close`](Self::handle_close).
    pub fn is_closed(&self) -> bool {
        self.clock.closed
    }

    /// A packet of this call arrived at `now`: the mix, or (`packet.source != 0`) one
    /// speaker's unmixed audio, routed to its slot or refused and counted
    /// ([`UnmixedStats`]).
    pub fn handle_packet(&mut self, now: Instant, packet: &AudioPacket) {
        if self.clock.closed {
            return;
        }
        if packet.is_unmixed() {
            if self
                .unmixed_rx
                .handle_packet(now, packet, &mut self.unmixed_stats)
            {
                self.clock.receiving = true;
            }
            return;
        }
        let arrival_us =
            i64::try_from(now.saturating_duration_since(self.t0).as_micros()).unwrap_or(i64::MAX);
        self.inbound
            .on_packet(arrival_us, packet.seq, packet.timestamp);
        if self.recv.handle_packet(now, packet).is_ok() {
            self.clock.receiving = true;
            self.clock.mixing = true;
        }
    }

    /// Queues one 20 ms frame of speaker `source`'s own audio (its MSI, not 0) for
    /// sending as an unmixed stream, besides the paced mix: a far end playing several
    /// speakers calls it once per speaker per send tick. The speaker keeps its stream
    /// while it sends; a stream unused for 200 ms may carry another speaker.
    pub fn send_unmixed(
        &mut self,
        source: u32,
        frame: &Pcm16kFrame,
    ) -> Result<(), UnmixedSendError> {
        if self.clock.closed {
            return Err(UnmixedSendError::Closed);
        }
        let r = self.unmixed_tx.push(source, frame, self.send_ticks);
        match r {
            Ok(()) => self.unmixed_stats.frames_sent += 1,
            Err(_) => self.unmixed_stats.send_refused += 1,
        }
        r
    }

    /// A control message from the far end.
    pub fn handle_control(&mut self, control: Control) {
        if self.clock.closed {
            return;
        }
        let event = match control {
            Control::Dtmf { tone, duration_ms } => AudioEvent::ToneReceived { tone, duration_ms },
            Control::DominantSpeaker(current) => {
                let previous = std::mem::replace(&mut self.dominant, current);
                AudioEvent::DominantSpeakerChanged { current, previous }
            }
            Control::ActiveSpeakers(s) => {
                self.speakers = s;
                AudioEvent::ActiveSpeakersChanged(s)
            }
            Control::SendStatus(status) => {
                let active = status == SendStatus::Active;
                if active == self.clock.active {
                    return;
                }
                self.clock.active = active;
                AudioEvent::SendStatusChanged(status)
            }
            Control::Report(r) => {
                if let Some(percent) = self.adapter.as_mut().and_then(|a| a.on_report(&r)) {
                    // A refused setting keeps the previous one; encoding goes on.
                    let _ = self.send.set_expected_loss(percent);
                }
                AudioEvent::PeerStats(r)
            }
        };
        self.push_event(event);
    }

    /// A [`LinkEvent`] at `now`: packets, control messages and the end, each to its
    /// `handle_*`.
    pub fn handle_link_event(&mut self, now: Instant, event: LinkEvent<'_>) {
        match event {
            LinkEvent::Packet(p) => self.handle_packet(now, p),
            LinkEvent::Control(c) => self.handle_control(c),
            LinkEvent::Closed(reason) => self.handle_close(reason),
        }
    }

    /// Queues a control message for the far end (DTMF, speakers, send status).
    pub fn send_control(&mut self, control: Control) {
        if !self.clock.closed {
            self.push_control(control);
        }
    }

    /// Whether this side may send audio now.
    pub fn send_status(&self) -> SendStatus {
        if self.clock.active && !self.clock.closed {
            SendStatus::Active
        } else {
            SendStatus::Inactive
        }
    }

    /// The link ended with `reason`: final statistics, `SendStatusChanged(Inactive)`,
    /// then `Ended` (orderly) or `MediaStreamFailure` (a failure). Nothing runs after.
    pub fn handle_close(&mut self, reason: &CloseReason) {
        if self.clock.closed {
            return;
        }
        self.clock.closed = true;
        self.clock.stats_due = true;
        self.clock.frame_ready = false;
        self.events
            .push_back(AudioEvent::SendStatusChanged(SendStatus::Inactive));
        let reason = reason.clone();
        self.push_event(if reason.is_failure() {
            AudioEvent::MediaStreamFailure { reason }
        } else {
            AudioEvent::Ended { reason }
        });
    }

    /// When a tick is due next (`None` once closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.clock.closed {
            return None;
        }
        Some(
            self.clock
                .send_grid
                .next_deadline()
                .min(self.clock.play_grid.next_deadline()),
        )
    }

    /// Runs at most one send tick and one playout tick due at `now`. Drain
    /// [`poll_output`](Self::poll_output) before the next call.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.clock.closed {
            return;
        }
        if self.clock.send_grid.poll(now).is_some() {
            self.send_ticks += 1;
            self.send_tick();
        }
        if let Some(tick) = self.clock.play_grid.poll(now) {
            self.play_tick(tick.scheduled, tick.index + 1);
        }
    }

    /// One frame from the source (or silence, or nothing) into the send pipeline.
    fn send_tick(&mut self) {
        if !self.clock.active {
            return;
        }
        // One look at the queue per tick: `ready` is the source's own count, so an
        // empty source is not asked for a frame (on a channel, that is a full fence).
        let before = self.source.ready();
        if self.clock.priming && before >= self.pacer.prebuffer_frames.max(1) {
            self.clock.priming = false;
        }
        let got = !self.clock.priming && before > 0 && self.source.next_frame(&mut self.scratch);
        let after = before.saturating_sub(usize::from(got));
        if !got {
            if !self.clock.priming {
                self.send_underruns += 1;
                self.clock.priming = self.pacer.prebuffer_frames > 1;
            }
            match self.pacer.idle {
                IdlePolicy::SendSilence => self.scratch = Pcm16kFrame::silent(),
                IdlePolicy::Pause => return self.observe_low(before, after),
            }
        }
        // The pipeline's queue holds 4 frames and is drained by every poll_output
        // loop: a full one means the caller skipped draining; the frame is dropped.
        let _ = self.send.push_pcm16k_frame(&self.scratch);
        self.clock.encoding = true;
        self.observe_low(before, after);
    }

    fn observe_low(&mut self, before: usize, after: usize) {
        if let Some(remaining) = self.low.observe(before, after) {
            self.push_event(AudioEvent::LowOnFrames { remaining });
        }
    }

    /// One frame out of the jitter buffer (once packets arrive); periodic stats.
    fn play_tick(&mut self, scheduled: Instant, ticks: u64) {
        if self.clock.receiving {
            if self.clock.mixing {
                let info = self.recv.poll_frame(scheduled, &mut self.frame.samples);
                self.frame.timestamp = info.timestamp;
                self.frame.is_silence = info.silence;
                self.frame.concealed = info.concealed;
            } else {
                // Unmixed audio only (so far): the mix is silence.
                self.frame.samples = Pcm16kFrame::silent();
                self.frame.is_silence = true;
                self.frame.concealed = false;
            }
            if self.clock.unmixed {
                self.unmixed_rx
                    .poll(scheduled, &mut self.frame.unmixed, &mut self.unmixed_stats);
            }
            self.frame.active_speakers = self.speakers;
            self.clock.frame_ready = true;
            self.frames_played += 1;
            self.frames_concealed += u64::from(self.frame.concealed);
        }
        if ticks.is_multiple_of(self.stats_every) {
            self.clock.stats_due = true;
        }
        if self.report_every > 0 && ticks.is_multiple_of(self.report_every) {
            let report = self.report();
            self.push_control(Control::Report(report));
        }
    }

    /// The loss the encoder protects against now (percent; 0: no FEC).
    pub fn expected_loss(&self) -> u8 {
        self.adapter.map_or(0, |a| a.expected_loss())
    }

    /// What this side saw of the far end's stream, for the far end; starts a new
    /// report interval.
    fn report(&mut self) -> QualityReport {
        let jb = self.recv.stats();
        let interval = self.inbound.take_interval(jb.late + jb.overflow);
        QualityReport {
            interval_loss_pct: interval.loss_pct,
            late_pct: interval.late_pct,
            max_burst: interval.max_burst,
            jitter_ms: self.inbound.mean_jitter_ms() as f32,
            max_jitter_ms: self.inbound.max_jitter_ms() as f32,
            loss_pct: self.inbound.loss_pct() as f32,
            rtt_ms: 0.0,
            packets_sent: self.packets_sent,
            packets_received: self.inbound.received(),
            packets_lost: self.inbound.lost(),
        }
    }

    fn push_event(&mut self, event: AudioEvent) {
        self.events.push_back(event);
        self.clock.queued = true;
    }

    fn push_control(&mut self, control: Control) {
        self.controls.push_back(control);
        self.clock.queued = true;
    }

    /// The next output, or `None` when nothing is pending. Packets and control
    /// messages are for the link; events, frames and stats for the application.
    pub fn poll_output(&mut self) -> Option<Output<'_>> {
        // The flags spare a look at cold state (the send pipeline, the queues) after
        // every packet received: with hundreds of calls, each look is a cache miss.
        if self.clock.encoding {
            if self.send.poll_packet(&mut self.tx_pkt) {
                self.tx_pkt.marker = std::mem::take(&mut self.clock.first_packet);
                return Some(Output::Packet(&self.tx_pkt));
            }
            self.clock.encoding = false;
        }
        if self.unmixed_tx.encoding && self.unmixed_tx.poll_packet(&mut self.tx_unmixed) {
            return Some(Output::Packet(&self.tx_unmixed));
        }
        if self.clock.queued {
            if let Some(c) = self.controls.pop_front() {
                return Some(Output::Control(c));
            }
            if let Some(e) = self.events.pop_front() {
                return Some(Output::Event(e));
            }
            self.clock.queued = false;
        }
        if self.clock.frame_ready {
            self.clock.frame_ready = false;
            return Some(Output::Frame(&self.frame));
        }
        if self.clock.stats_due {
            self.clock.stats_due = false;
            self.snapshot = self.stats();
            return Some(Output::Stats(&self.snapshot));
        }
        None
    }

    /// Drains every output: packets and control messages to `link` (counting what it
    /// takes and refuses), the rest to `app`.
    pub fn flush(&mut self, link: &mut dyn MediaLink, mut app: impl FnMut(Output<'_>)) {
        while let Some(out) = self.poll_output() {
            let sent = match out {
                Output::Packet(p) => Some(link.send_packet(p).is_ok()),
                Output::Control(c) => {
                    let _ = link.send_control(&c);
                    None
                }
                other => {
                    app(other);
                    None
                }
            };
            match sent {
                Some(true) => self.packets_sent += 1,
                Some(false) => self.packets_refused += 1,
                None => {}
            }
        }
    }

    /// Runs every tick due at `now`, one at a time, flushing after each (see
    /// [`flush`](Self::flush)).
    pub fn run_due(
        &mut self,
        now: Instant,
        link: &mut dyn MediaLink,
        mut app: impl FnMut(Output<'_>),
    ) {
        while self.poll_timeout().is_some_and(|t| t <= now) {
            self.handle_timeout(now);
            self.flush(link, &mut app);
        }
    }

    /// Handles a link event and flushes (see [`flush`](Self::flush)).
    pub fn run_event(
        &mut self,
        now: Instant,
        event: LinkEvent<'_>,
        link: &mut dyn MediaLink,
        app: impl FnMut(Output<'_>),
    ) {
        if let LinkEvent::Packet(_) = event {
            self.recv.set_delivery(link.delivery());
        }
        self.handle_link_event(now, event);
        self.flush(link, app);
    }

    /// The playout clock's counters (cheap; [`stats`](Self::stats) has everything).
    pub fn playout_stats(&self) -> crate::tick::GridStats {
        self.clock.play_grid.stats()
    }

    /// The statistics now.
    pub fn stats(&self) -> CallStats {
        CallStats {
            inbound_jitter_ms: self.inbound.mean_jitter_ms(),
            max_inbound_jitter_ms: self.inbound.max_jitter_ms(),
            loss_pct: self.inbound.loss_pct(),
            packets_received: self.inbound.received(),
            packets_lost: self.inbound.lost(),
            packets_sent: self.packets_sent,
            packets_refused: self.packets_refused,
            frames_encoded: self.send.stats().frames_encoded,
            frames_played: self.frames_played,
            frames_concealed: self.frames_concealed,
            send_underruns: self.send_underruns,
            unmixed: self.unmixed_stats,
            jitter_buffer: self.recv.stats(),
            playout: self.clock.play_grid.stats(),
            send: self.clock.send_grid.stats(),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unmixed_tests;
