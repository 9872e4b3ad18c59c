//! [`FarCall`]: the far end's side of one call, run on a reactor thread: media-core's
//! `CallMedia` with a test signal (or a recording) as its source, recording what comes
//! back. The reference peer, the load peers and the emulator's far end all run it.
//!
//! ```text
//!  source (signal, samples, loop) ─> CallMedia (send tick) ─> link
//!  link ─> CallMedia (jitter buffer, playout tick) ─> recording (one frame per tick)
//! ```
//!
//! The sent and received recordings share one timeline: one frame each per tick from
//! the first tick, silence until the first packet arrives. The lag between them is the
//! mouth-to-ear delay through whatever sits between the two ends.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use media_core::call::{AudioEvent, CallConfig, CallMedia, FrameSource, Output};
use media_core::codec::Codec;
use media_core::control::Control;
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::jitter::JitterStats;
use media_core::link::{CallHandler, CloseReason, LinkEvent, LinkStats, MediaLink};
use media_core::packet::AudioPacket;
use media_core::tick::TICK;
use tokio::sync::{mpsc, oneshot};

use crate::lock;
use crate::signal::SignalGenerator;

/// What a far end sends.
#[derive(Debug, Clone)]
pub enum PeerSource {
    /// A generated signal.
    Signal(SignalGenerator),
    /// Recorded samples (16 kHz mono), e.g. from a WAV file; played once.
    Samples(Arc<[i16]>),
    /// Samples played in a loop (cheap to share between many peers).
    Loop(Arc<[i16]>),
}

/// Copies the next 20 ms of `samples` from `*pos` into `frame` and advances `*pos`;
/// `looped` starts over when less than a frame is left, else the end is zero-padded.
fn next_frame(samples: &[i16], pos: &mut usize, looped: bool, frame: &mut [i16; FRAME_SAMPLES]) {
    if looped && *pos + FRAME_SAMPLES > samples.len() {
        *pos = 0;
    }
    let n = FRAME_SAMPLES.min(samples.len().saturating_sub(*pos));
    frame[..n].copy_from_slice(&samples[*pos..*pos + n]);
    frame[n..].fill(0);
    *pos += n;
}

/// A [`PeerSource`] as a call's frame source: the source for `audio_frames` frames,
/// then silence; every frame recorded when `sent` is set.
pub(crate) struct SourceFrames {
    source: PeerSource,
    pos: usize,
    audio_frames: u64,
    frames: u64,
    sent: Option<Arc<Mutex<Vec<i16>>>>,
}

impl SourceFrames {
    pub(crate) fn new(
        source: PeerSource,
        audio: Duration,
        sent: Option<Arc<Mutex<Vec<i16>>>>,
    ) -> Self {
        SourceFrames {
            source,
            pos: 0,
            audio_frames: (audio.as_millis() / TICK.as_millis()) as u64,
            frames: 0,
            sent,
        }
    }
}

impl FrameSource for SourceFrames {
    fn ready(&self) -> usize {
        usize::MAX
    }

    fn next_frame(&mut self, out: &mut Pcm16kFrame) -> bool {
        let frame = out.samples_mut();
        if self.frames < self.audio_frames {
            match &mut self.source {
                PeerSource::Signal(g) => g.fill(frame),
                PeerSource::Samples(s) => next_frame(s, &mut self.pos, false, frame),
                PeerSource::Loop(s) => next_frame(s, &mut self.pos, true, frame),
            }
        } else {
            frame.fill(0);
        }
        self.frames += 1;
        if let Some(sent) = &self.sent {
            lock(sent).extend_from_slice(frame);
        }
        true
    }
}

/// Several speakers at the far end (a group call's participants): each active
/// speaker's own voice, mixed into the call's mix stream and, when the accept granted
/// unmixed streams, also sent on its own as that speaker's unmixed stream.
///
/// Speakers are the media source ids of the latest active-speakers report the far end
/// sends (loudest first, at most 4). Each MSI gets a voice the first time it is
/// reported: the voices in order, looped. Shared between the call's frame source
/// ([`VoiceMix`], run at each send tick) and the call, which sends what the tick
/// produced unmixed (tooling: the mutex is never contended, one thread runs both).
pub(crate) struct Voices {
    voices: Vec<Arc<[i16]>>,
    pos: Vec<usize>,
    /// MSI → voice index, in order of first report.
    assigned: Vec<(u32, usize)>,
    active: media_core::control::ActiveSpeakers,
    /// Send the mix (false: the bot asked for unmixed audio only).
    pub(crate) mixed: bool,
    /// Each active speaker's frame of the last send tick.
    pending: Vec<(u32, Pcm16kFrame)>,
    sent: Option<Arc<Mutex<Vec<i16>>>>,
}

/// [`Voices`] shared between a far end's frame source and its call.
pub(crate) type SharedVoices = Arc<Mutex<Voices>>;

impl Voices {
    /// Speakers with `voices` (16 kHz mono, looped); the mix recorded into `sent`.
    pub(crate) fn shared(
        voices: Vec<Arc<[i16]>>,
        sent: Option<Arc<Mutex<Vec<i16>>>>,
    ) -> SharedVoices {
        Arc::new(Mutex::new(Voices {
            pos: vec![0; voices.len()],
            voices,
            assigned: Vec::new(),
            active: media_core::control::ActiveSpeakers::default(),
            mixed: true,
            pending: Vec::with_capacity(media_core::packet::MAX_UNMIXED_STREAMS),
            sent,
        }))
    }

    /// The speakers now (loudest first).
    pub(crate) fn set_active(&mut self, active: media_core::control::ActiveSpeakers) {
        for &msi in active.as_slice() {
            if !self.assigned.iter().any(|&(m, _)| m == msi) && !self.voices.is_empty() {
                let voice = self.assigned.len() % self.voices.len();
                self.assigned.push((msi, voice));
            }
        }
        self.active = active;
    }

    /// One send tick: each active speaker's next 20 ms into `pending`, their sum into
    /// `mix`. False when the mix is not to be sent.
    fn tick(&mut self, mix: &mut Pcm16kFrame) -> bool {
        self.pending.clear();
        let out = mix.samples_mut();
        out.fill(0);
        for &msi in self.active.as_slice() {
            let Some(&(_, v)) = self.assigned.iter().find(|&&(m, _)| m == msi) else {
                continue;
            };
            let mut frame = Pcm16kFrame::silent();
            next_frame(&self.voices[v], &mut self.pos[v], true, frame.samples_mut());
            for (m, s) in out.iter_mut().zip(frame.samples()) {
                *m = m.saturating_add(*s);
            }
            self.pending.push((msi, frame));
        }
        if let Some(sent) = &self.sent {
            lock(sent).extend_from_slice(out);
        }
        self.mixed
    }
}

/// The mix of a far end's [`Voices`] as a call's frame source.
pub(crate) struct VoiceMix(pub(crate) SharedVoices);

impl FrameSource for VoiceMix {
    fn ready(&self) -> usize {
        usize::MAX
    }

    fn next_frame(&mut self, out: &mut Pcm16kFrame) -> bool {
        lock(&self.0).tick(out)
    }
}

/// One received packet, as logged with `log_arrivals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Sequence number.
    pub seq: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Arrival time since the call started.
    pub at: Duration,
    /// The packet was flagged silent.
    pub silence: bool,
}

/// Counters of a far end's call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeerStats {
    /// Media packets sent.
    pub packets_sent: u64,
    /// Media packets received.
    pub packets_received: u64,
    /// Playout ticks run.
    pub ticks: u64,
    /// Ticks that ran more than 5 ms late.
    pub late_ticks: u64,
    /// Frames played out (once the first packet arrived).
    pub frames_played: u64,
    /// Frames played with concealed samples.
    pub frames_concealed: u64,
    /// Jitter buffer statistics of the receive side.
    pub jitter: JitterStats,
    /// The link's counters.
    pub link: LinkStats,
}

/// Where a far end's call is.
pub(crate) const DIALING: u8 = 0;
pub(crate) const CONNECTED: u8 = 1;
pub(crate) const FAILED: u8 = 2;
pub(crate) const ENDED: u8 = 3;

/// What a far end's call shares with other threads.
#[derive(Debug, Default)]
pub(crate) struct FarShared {
    pub(crate) state: AtomicU8,
    pub(crate) stop: AtomicBool,
    pub(crate) stats: Mutex<PeerStats>,
}

/// What the application asks of a running far end.
#[derive(Debug)]
pub(crate) enum FarCommand {
    /// Send a control message.
    Control(Control),
    /// Send this packet as it is (a test's hand-made nonsense).
    Inject(Box<AudioPacket>),
}

/// What a far end's call recorded.
#[derive(Debug, Default)]
pub(crate) struct Recording {
    /// Audio received, one frame per playout tick from the first.
    pub(crate) received: Vec<i16>,
    /// Received packets (when logged).
    pub(crate) arrivals: Vec<Arrival>,
    /// The final counters.
    pub(crate) stats: PeerStats,
    /// Why the call ended (`None`: this side left).
    pub(crate) close: Option<CloseReason>,
}

/// How a far end's call runs.
pub(crate) struct FarOptions {
    pub(crate) config: CallConfig,
    /// Record what is played out.
    pub(crate) record: bool,
    pub(crate) log_arrivals: bool,
    /// Leave after this many playout ticks (`None`: when told).
    pub(crate) run_ticks: Option<u64>,
    pub(crate) shared: Arc<FarShared>,
    pub(crate) commands: Option<crossbeam_channel::Receiver<FarCommand>>,
    pub(crate) events: Option<mpsc::UnboundedSender<AudioEvent>>,
    pub(crate) done: Option<oneshot::Sender<Recording>>,
    /// Several speakers (the source is their [`VoiceMix`]): active-speaker commands
    /// choose who speaks, and each speaker is also sent unmixed when granted.
    pub(crate) voices: Option<SharedVoices>,
}

/// Where a far end's call puts what its media produces for the application.
struct FarSide {
    rec: Recording,
    record: bool,
    events: Option<mpsc::UnboundedSender<AudioEvent>>,
    /// Fresh statistics, to publish with the link's.
    stats: Option<PeerStats>,
}

impl FarSide {
    fn take(&mut self, out: Output<'_>) {
        match out {
            Output::Frame(f) => {
                if self.record {
                    self.rec.received.extend_from_slice(f.samples.samples());
                }
            }
            Output::Event(e) => {
                if let Some(tx) = &self.events {
                    let _ = tx.send(e);
                }
            }
            Output::Stats(s) => {
                self.stats = Some(PeerStats {
                    packets_sent: s.packets_sent,
                    packets_received: s.packets_received,
                    ticks: s.playout.ticks,
                    late_ticks: s.playout.late,
                    frames_played: s.frames_played,
                    frames_concealed: s.frames_concealed,
                    jitter: s.jitter_buffer,
                    link: LinkStats::default(),
                })
            }
            Output::Packet(_) | Output::Control(_) => {}
        }
    }
}

/// The far end's call. See the [module documentation](self).
pub(crate) struct FarCall {
    media: CallMedia,
    side: FarSide,
    opts: FarOptions,
    t0: Instant,
    /// The speakers' frames of the last send tick, to send unmixed.
    unmixed: Vec<(u32, Pcm16kFrame)>,
}

impl FarCall {
    /// The call starting at `now` with `opts`; an error (and the shared state
    /// `FAILED`) if its media cannot be set up.
    pub(crate) fn new(
        now: Instant,
        mut opts: FarOptions,
        source: Box<dyn FrameSource>,
    ) -> Result<Self, media_core::call::CallSetupError> {
        match CallMedia::new(now, &opts.config, source) {
            Ok(media) => {
                opts.shared.state.store(CONNECTED, Ordering::Release);
                Ok(FarCall {
                    media,
                    side: FarSide {
                        rec: Recording::default(),
                        record: opts.record,
                        events: opts.events.take(),
                        stats: None,
                    },
                    opts,
                    t0: now,
                    unmixed: Vec::with_capacity(media_core::packet::MAX_UNMIXED_STREAMS),
                })
            }
            Err(e) => {
                opts.shared.state.store(FAILED, Ordering::Release);
                Err(e)
            }
        }
    }

    /// The codec.
    pub(crate) fn codec(&self) -> Codec {
        self.media.codec()
    }

    /// Publishes fresh statistics with the link's counters.
    fn publish(&mut self, link: &mut dyn MediaLink) {
        if let Some(mut s) = self.side.stats.take() {
            s.link = link.stats();
            *lock(&self.opts.shared.stats) = s;
            self.side.rec.stats = s;
        }
    }

    /// Pads the recording with silence for playout ticks that had no frame (before the
    /// first packet), so it stays on the send timeline.
    fn pad(&mut self) {
        if !self.side.record {
            return;
        }
        let ticks = self.media.playout_stats().ticks as usize;
        let want = ticks * FRAME_SAMPLES;
        if self.side.rec.received.len() < want {
            self.side.rec.received.resize(want, 0);
        }
    }
}

impl CallHandler for FarCall {
    fn handle_event(&mut self, now: Instant, event: LinkEvent<'_>, link: &mut dyn MediaLink) {
        if let LinkEvent::Packet(p) = event
            && self.opts.log_arrivals
        {
            self.side.rec.arrivals.push(Arrival {
                seq: p.seq,
                timestamp: p.timestamp,
                at: now.saturating_duration_since(self.t0),
                silence: p.silence,
            });
        }
        let closed = match event {
            LinkEvent::Closed(reason) => Some(reason.clone()),
            _ => None,
        };
        let side = &mut self.side;
        self.media.run_event(now, event, link, |o| side.take(o));
        self.publish(link);
        if let Some(reason) = closed {
            self.pad();
            let by_us = matches!(reason, CloseReason::Closed { .. });
            self.side.rec.close = (!by_us).then_some(reason);
            self.opts.shared.state.store(ENDED, Ordering::Release);
            if let Some(done) = self.opts.done.take() {
                let _ = done.send(std::mem::take(&mut self.side.rec));
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant, link: &mut dyn MediaLink) {
        let ticks = self.media.playout_stats().ticks;
        if self.opts.shared.stop.load(Ordering::Acquire)
            || self.opts.run_ticks.is_some_and(|n| ticks >= n)
        {
            link.close("peer done");
            return;
        }
        if let Some(commands) = &self.opts.commands {
            while let Ok(c) = commands.try_recv() {
                match c {
                    FarCommand::Control(c) => {
                        if let (Control::ActiveSpeakers(s), Some(v)) = (c, &self.opts.voices) {
                            lock(v).set_active(s);
                        }
                        self.media.send_control(c);
                    }
                    FarCommand::Inject(p) => {
                        let _ = link.send_packet(&p);
                    }
                }
            }
        }
        match self.opts.voices.clone() {
            None => {
                let side = &mut self.side;
                self.media.run_due(now, link, |o| side.take(o));
            }
            // `run_due`, sending each speaker's frame of a send tick unmixed.
            Some(voices) => {
                while self.media.poll_timeout().is_some_and(|t| t <= now) {
                    self.media.handle_timeout(now);
                    std::mem::swap(&mut self.unmixed, &mut lock(&voices).pending);
                    for (msi, frame) in self.unmixed.drain(..) {
                        // Refused when the accept granted no unmixed stream (counted).
                        let _ = self.media.send_unmixed(msi, &frame);
                    }
                    let side = &mut self.side;
                    self.media.flush(link, |o| side.take(o));
                }
            }
        }
        self.publish(link);
        self.pad();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.media.poll_timeout()
    }
}

/// A call that could not start: it leaves at its first turn (`at`) with `reason`.
pub(crate) struct Leaving {
    pub(crate) reason: String,
    pub(crate) at: Instant,
}

impl CallHandler for Leaving {
    fn handle_event(&mut self, _: Instant, _: LinkEvent<'_>, _: &mut dyn MediaLink) {}

    fn handle_timeout(&mut self, _: Instant, link: &mut dyn MediaLink) {
        link.close(&self.reason);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.at)
    }
}
