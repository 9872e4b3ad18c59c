//! Binds one call's audio to audio devices (or WAV files): [`DeviceBridge`].
//!
//! **Job:** play what the call receives on an output device and send what an input
//! device captures into the call, at whatever format the devices run (8–48 kHz, mono or
//! stereo), while the devices' clocks drift against the call's 50 frames/s.
//!
//! # Data flow
//!
//! ```text
//!  receive → playback
//!    AudioSocket frames ──FrameInput (channel or ring)──┐
//!                                                       │ bridge thread, every 20 ms:
//!      PlayoutResampler (16 kHz mono → device rate, up-mix; ratio nudged by FillController)
//!        ──push_frames──> [SPSC ring i16] ──> cpal playback callback ──> device
//!                          (level held near playback_target; pad / drop counted)
//!
//!  capture → send
//!    device ──> cpal capture callback ──> [SPSC ring i16] ──┐
//!                                                           │ bridge thread, every 20 ms:
//!      CaptureResampler (down-mix, device rate → 16 kHz; ratio nudged by FillController)
//!        ──> Framer (level held near capture_target) ──> exact 20 ms frames
//!        ──> AudioSender::enqueue (topped up to send_queue_frames) ──> paced sender ──> call
//! ```
//!
//! A WAV file stands in for either device: [`PlaybackEnd::wav`] (or any
//! [`SampleSink`] through [`PlaybackEnd::sink`]) writes the resampled received audio,
//! [`CaptureEnd::source`] reads a [`SampleSource`] (a [`devices::WavSource`]) at the call's
//! pace, one tick's worth (20 ms at the file's rate) per tick. Files have no clock, so
//! their ratio stays nominal and no level is controlled: the output is deterministic.
//!
//! # Why a thread of its own
//!
//! The bridge's work (pull frames, resample, push rings, frame, enqueue, control) runs on
//! one thread, `device-bridge`, ticking every 20 ms at absolute deadlines. The device
//! callbacks only move samples ([`devices::stream`]); the platform's call task only
//! hands frames over (channel or callback). Driving the bridge from received frames
//! instead would stop the capture side whenever the far end is silent or not yet
//! connected, and would put resampling and file I/O (WAV) on the call's task. A late
//! tick is caught up at once (deadlines do not drift); a tick more than 200 ms late
//! resynchronises instead of bursting (counted).
//!
//! # Clock drift
//!
//! Three clocks meet here: the playback device's, the capture device's and the call's
//! (the platform's 20 ms tick, the same monotonic clock as the bridge's). Each device
//! ring's fill level is held near a target by a [`FillController`] (a smoothed,
//! critically damped PI loop, correction bounded to ±1 % and slew-limited) that nudges the
//! ratio of a [`ResamplerMode::DriftFollowing`] resampler. Where a level settles in the
//! first second after a start depends on callback phase, not drift: within about a frame
//! of the target it becomes the controller's target as it is, further off it is moved there
//! by one counted slip (`recentres`), so start-up never bends the pitch. What the controller
//! cannot absorb is handled by whole-frame slips, all counted in [`BridgeStats`]:
//!
//! * playback: a ring above `target + max_excess` drops received frames; a ring running
//!   dry with nothing received (the far end stopped) is padded with silence up to the
//!   target, so the device never underruns while the call is quiet;
//! * capture: a framer above `target + max_excess` drops frames; a framer that runs dry
//!   sends silence frames and re-primes to the target.
//!
//! # Realtime safety
//!
//! Everything is allocated by [`BridgeBuilder::start`]: resamplers, framer, scratch
//! buffers, rings. A tick allocates nothing, takes no lock and never blocks: frames come
//! from a tokio channel (`try_recv`) or an SPSC ring, go out through the paced sender's
//! bounded queue (`enqueue`), and statistics are relaxed atomics. The exceptions are on
//! the error path (the first error message is kept behind a mutex) and the WAV sink, whose
//! writer does file I/O on the bridge thread. Nothing panics on bad input: formats are
//! validated at construction ([`BridgeError`] names the device and the problem), a
//! device that disappears shows up as device errors and underruns in the stats and in
//! [`DeviceBridge::last_error`].
//!
//! # Example
//!
//! ```no_run
//! use bot::device::{BridgeConfig, CaptureEnd, DeviceBridge, FrameInput, PlaybackEnd};
//! use devices::{DeviceSelector, StreamFormat};
//! use platform::{MediaPlatform, MediaPlatformSettings};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let platform = MediaPlatform::start(MediaPlatformSettings::dev_loopback())?;
//! let (blob, mut socket) = platform.create_media_configuration(uuid::Uuid::new_v4())?;
//! println!("blob for the far end: {}", blob.to_json());
//! let frames = socket.take_frames().ok_or("frames already taken")?;
//! let stereo48k = StreamFormat::with_rate_channels(48_000, 2);
//! let bridge = DeviceBridge::builder(BridgeConfig::default())
//!     .playback(
//!         PlaybackEnd::device(&"pulseaudio:loop".parse()?, stereo48k)?,
//!         FrameInput::Channel(frames),
//!     )
//!     .capture(
//!         CaptureEnd::device(&DeviceSelector::named("loop.monitor"), stereo48k)?,
//!         socket.sender(),
//!     )
//!     .start()?;
//! while !bridge.is_finished() {
//!     tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//!     println!("{:?}", bridge.stats());
//! }
//! let stats = bridge.stop()?;
//! println!("final: {stats:?}");
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use devices::ringbuf::HeapRb;
use devices::ringbuf::traits::{Consumer, Observer, Producer, Split};
use devices::{
    CaptureStream, CounterSnapshot, DeviceError, DeviceSelector, HeapCons, HeapProd,
    PlaybackStream, SampleSink, SampleSource, StreamFormat, WavSink, push_frames,
};
use media_core::frame::{FRAME_MS, FRAME_SAMPLES, FRAMES_PER_SECOND, PCM16K_RATE, Pcm16kFrame};
use media_core::framer::Framer;
use media_core::resample::{
    CaptureResampler, DeviceFormat, PlayoutResampler, ResamplerMode, ResamplerSetupError,
};
use platform::{AudioFrame, AudioSender, EnqueueError, FrameCallback, FrameDelivery};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::media::lock;

/// The bridge's tick.
const TICK: Duration = Duration::from_millis(FRAME_MS as u64);
/// A tick this late resynchronises the schedule instead of catching up in a burst.
const RESYNC_AFTER: Duration = Duration::from_millis(200);
/// Most received frames one tick takes from its input (the rest wait for the next tick).
const MAX_FRAMES_PER_TICK: usize = 25;
/// Capture scratch buffer, in interleaved values.
const CAPTURE_SCRATCH: usize = 8_192;
/// Ticks without the call taking a frame after which captured audio is held back.
const STALLED_AFTER_TICKS: u32 = 10;
/// Device ring capacity the bridge asks for, at least.
const MIN_RING_MS: u32 = 500;

/// What can go wrong setting up a [`DeviceBridge`]. Each variant names the device (or
/// file) and the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// Opening a device or file failed (the message names it and says what to do).
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The device (or file) runs a format the resampler cannot convert.
    #[error("{end}: unsupported format {rate} Hz, {channels} channels: {source}")]
    UnsupportedFormat {
        /// The device (`host:id`) or file.
        end: String,
        /// Its sample rate.
        rate: u32,
        /// Its channel count.
        channels: u16,
        /// What the resampler said.
        source: ResamplerSetupError,
    },
    /// The configuration is unusable (the message says which field).
    #[error("invalid bridge configuration: {0}")]
    InvalidConfig(String),
    /// Neither a playback nor a capture side was given.
    #[error("nothing to bridge: give a playback side, a capture side, or both")]
    NothingToBridge,
    /// The bridge thread could not be started (out of threads or memory).
    #[error("cannot start the device-bridge thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The bridge thread panicked (a bug; please report it).
    #[error("the device-bridge thread panicked")]
    ThreadPanicked,
}

/// Settings of a [`FillController`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerSettings {
    /// Proportional gain, per second: the loop's speed. The integral gain is `gain² / 4`
    /// (critically damped, time constant `2 / gain`). Default 0.5 (4 s).
    pub gain_per_s: f64,
    /// Largest correction of the ratio, either way (default 0.01 = ±1 %, twice the ±0.5 %
    /// of real device clocks, within the resampler's ±2 %).
    pub max_deviation: f64,
    /// Largest change of the ratio per update (default 1e-4: 0 → 0.5 % in one second),
    /// so that corrections never become an audible pitch jump.
    pub max_step: f64,
    /// Level smoothing per update (exponential, default 0.02: about 1 s at 50 updates/s):
    /// the level moves in 20 ms steps (device callbacks, resampler blocks) and with the
    /// bridge thread's scheduling; the ratio should not.
    pub smoothing: f64,
    /// Level errors within ± this are left alone (default 5 ms): a level offset of a
    /// fraction of a frame, set by the phase between device callbacks and ticks, is not
    /// worth a pitch change. Beyond it the loop acts on the excess.
    pub deadband: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        Self {
            gain_per_s: 0.5,
            max_deviation: 0.01,
            max_step: 1e-4,
            smoothing: 0.02,
            deadband: Duration::from_millis(5),
        }
    }
}

/// Holds a buffer's fill level near a target by nudging a resampler's relative ratio.
///
/// Call [`update`](Self::update) once per 20 ms tick with the level, and pass the result
/// to the `DriftFollowing` resampler's `set_ratio_relative`. A level above target returns
/// a ratio below 1.0 ("produce fewer samples per input"): for playback the level is the
/// device ring's queued frames after the tick's push, for capture the 16 kHz samples
/// waiting in the framer after the tick took its frames.
///
/// The loop is proportional-integral on the smoothed level error in seconds (less a small
/// dead band), critically damped; the correction is clamped to `±max_deviation` (the integral is clamped with it,
/// so it never winds up) and changes by at most `max_step` per update. A steady drift `d`
/// (|d| < `max_deviation`) leaves no level error beyond the dead band once settled; the
/// transient error after a step of 0.5 % peaks near 10 ms beyond the dead band at the
/// defaults (the level also moves in 20 ms steps as callbacks come and go).
///
/// Unlike media-core's `DriftController` (±0.5 %, 10 s), the wider bound means a device
/// 0.5 % off still converges back to the target.
///
/// # Realtime safety
/// Plain arithmetic on a few floats.
#[derive(Debug, Clone)]
pub struct FillController {
    settings: ControllerSettings,
    target: f64,
    rate: f64,
    smoothed: Option<f64>,
    integral: f64,
    correction: f64,
}

impl FillController {
    /// A controller holding `target_level` samples of a buffer that runs at `rate` samples
    /// per second (per channel; `update` must use the same unit).
    pub fn new(target_level: usize, rate: u32, settings: ControllerSettings) -> Self {
        Self {
            settings,
            target: target_level as f64,
            rate: f64::from(rate.max(1)),
            smoothed: None,
            integral: 0.0,
            correction: 0.0,
        }
    }

    /// Feeds the current level; returns the relative ratio to apply.
    pub fn update(&mut self, level: usize) -> f64 {
        let s = &self.settings;
        let level = level as f64;
        let smoothed = match self.smoothed {
            Some(prev) => prev + s.smoothing * (level - prev),
            None => level,
        };
        self.smoothed = Some(smoothed);
        let dt = 1.0 / f64::from(FRAMES_PER_SECOND);
        let raw = (smoothed - self.target) / self.rate;
        let band = s.deadband.as_secs_f64();
        let error = raw.signum() * (raw.abs() - band).max(0.0);
        let ki = s.gain_per_s * s.gain_per_s / 4.0;
        if ki > 0.0 {
            let bound = s.max_deviation / ki;
            self.integral = (self.integral + error * dt).clamp(-bound, bound);
        }
        let wanted =
            (s.gain_per_s * error + ki * self.integral).clamp(-s.max_deviation, s.max_deviation);
        let step = (wanted - self.correction).clamp(-s.max_step, s.max_step);
        self.correction += step;
        1.0 - self.correction
    }

    /// The last ratio returned (1.0 before the first update).
    pub fn ratio_relative(&self) -> f64 {
        1.0 - self.correction
    }

    /// Forgets the smoothed level (after the level was moved on purpose, e.g. by a
    /// re-centring slip); the drift estimate (the integral) is kept.
    pub fn reset_level(&mut self) {
        self.smoothed = None;
    }

    /// Moves the target (e.g. onto the level a start settled at).
    pub fn set_target(&mut self, target_level: f64) {
        self.target = target_level;
    }

    /// The dead band, in level units.
    pub fn deadband(&self) -> f64 {
        self.settings.deadband.as_secs_f64() * self.rate
    }

    /// The smoothed level (`None` before the first update).
    pub fn smoothed_level(&self) -> Option<f64> {
        self.smoothed
    }

    /// The target level.
    pub fn target(&self) -> f64 {
        self.target
    }
}

/// Settings of a [`DeviceBridge`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BridgeConfig {
    /// Resampler engine (default [`ResamplerMode::DriftFollowing`], the only one whose
    /// ratio can follow a device clock; with `LowDelay` levels are only held by slips).
    pub mode: ResamplerMode,
    /// Audio held in the playback ring right after each tick's push (default 60 ms:
    /// the device drains 20 ms per tick, the rest absorbs a late bridge thread).
    pub playback_target: Duration,
    /// Audio held in the capture framer after each tick (default 40 ms).
    pub capture_target: Duration,
    /// Above `target + max_excess` frames are dropped (default 120 ms).
    pub max_excess: Duration,
    /// Frames kept in the call's send queue (default 2: one is sent per call tick, the
    /// second absorbs the phase between the bridge's tick and the call's).
    pub send_queue_frames: usize,
    /// The drift controllers' settings.
    pub controller: ControllerSettings,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            mode: ResamplerMode::DriftFollowing,
            playback_target: Duration::from_millis(60),
            capture_target: Duration::from_millis(40),
            max_excess: Duration::from_millis(120),
            send_queue_frames: 2,
            controller: ControllerSettings::default(),
        }
    }
}

impl BridgeConfig {
    fn validate(&self) -> Result<(), BridgeError> {
        let bad = |m: String| Err(BridgeError::InvalidConfig(m));
        let range = TICK..=Duration::from_secs(1);
        if !range.contains(&self.playback_target) {
            return bad(format!(
                "playback_target {:?} must be within 20 ms..=1 s",
                self.playback_target
            ));
        }
        if !range.contains(&self.capture_target) {
            return bad(format!(
                "capture_target {:?} must be within 20 ms..=1 s",
                self.capture_target
            ));
        }
        if !range.contains(&self.max_excess) {
            return bad(format!(
                "max_excess {:?} must be within 20 ms..=1 s",
                self.max_excess
            ));
        }
        if !(1..=50).contains(&self.send_queue_frames) {
            return bad(format!(
                "send_queue_frames {} must be within 1..=50",
                self.send_queue_frames
            ));
        }
        let c = &self.controller;
        let finite = [
            c.gain_per_s,
            c.max_deviation,
            c.max_step,
            c.smoothing,
            c.deadband.as_secs_f64(),
        ]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0);
        if !finite || c.max_deviation > 0.02 || c.smoothing > 1.0 || c.gain_per_s > 25.0 {
            return bad(format!(
                "controller {c:?}: gains must be finite and non-negative, max_deviation \
                 ≤ 0.02 (the resampler's range), smoothing ≤ 1, gain_per_s ≤ 25"
            ));
        }
        Ok(())
    }
}

/// Samples of `d` at `rate` (per channel).
fn samples_in(d: Duration, rate: u32) -> usize {
    (d.as_secs_f64() * f64::from(rate)).round() as usize
}

/// Ticks a side runs after (re)starting before its level is judged: the first second,
/// whose second half is averaged.
const SETTLE_TICKS: u32 = 50;

/// Measures the mean level over the second half of the first second after a (re)start.
///
/// Where the level settles after a start depends on the phase between device callbacks,
/// resampler blocks and ticks (up to a frame either way), and on how much the sound server
/// buffers at start, not on clock drift. Correcting that through the ratio would bend the
/// pitch by up to `max_deviation` for seconds. So a level that settles within one frame (plus
/// the dead band) of the target becomes the controller's target as it is (latency off by
/// about a frame at most; no glitch, no pitch bend); one further off is moved onto the target once, by a slip
/// (silence inserted or audio skipped, counted), while the audio is just starting.
#[derive(Debug, Default)]
struct Settle {
    ticks: u32,
    sum: f64,
    n: u32,
}

impl Settle {
    fn restart(&mut self) {
        *self = Self::default();
    }

    fn done(&self) -> bool {
        self.ticks >= SETTLE_TICKS
    }

    /// Feeds a level; returns the mean once, at the end of the window.
    fn feed(&mut self, level: usize) -> Option<f64> {
        self.ticks += 1;
        if self.ticks > SETTLE_TICKS / 2 {
            self.sum += level as f64;
            self.n += 1;
        }
        (self.ticks == SETTLE_TICKS).then(|| self.sum / f64::from(self.n.max(1)))
    }
}

fn unsupported(end: &str, format: DeviceFormat, source: ResamplerSetupError) -> BridgeError {
    BridgeError::UnsupportedFormat {
        end: end.to_owned(),
        rate: format.rate,
        channels: format.channels,
        source,
    }
}

/// Checks that the resamplers can convert `format`.
fn check_format(end: &str, format: DeviceFormat) -> Result<(), BridgeError> {
    CaptureResampler::new(format, ResamplerMode::LowDelay)
        .map(|_| ())
        .map_err(|e| unsupported(end, format, e))
}

/// Where received frames come from.
pub enum FrameInput {
    /// The socket's frame channel ([`platform::AudioSocket::take_frames`]). When it
    /// closes (the call ended) the bridge finishes.
    Channel(mpsc::Receiver<AudioFrame>),
    /// An SPSC ring fed by a [`FrameDelivery::Callback`] on the call's task
    /// ([`FrameInput::ring`], [`FrameInput::callback_delivery`]). Never finishes by itself.
    Ring(HeapCons<Pcm16kFrame>),
}

impl std::fmt::Debug for FrameInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Channel(_) => f.write_str("FrameInput::Channel"),
            Self::Ring(r) => write!(f, "FrameInput::Ring({} queued)", r.occupied_len()),
        }
    }
}

impl FrameInput {
    /// A ring of `capacity` frames: push received frames into the producer (from any one
    /// thread, e.g. a frame callback or a tap); the bridge drains the consumer.
    pub fn ring(capacity: usize) -> (HeapProd<Pcm16kFrame>, FrameInput) {
        let (prod, cons) = HeapRb::<Pcm16kFrame>::new(capacity.max(1)).split();
        (prod, FrameInput::Ring(cons))
    }

    /// A frame delivery for `MediaPlatform::create_media_configuration_with` whose
    /// callback pushes every received frame into a ring of `capacity` frames, and the
    /// input reading that ring. Frames are handed over on the call's task with no
    /// channel in between; a full ring drops the frame.
    pub fn callback_delivery(capacity: usize) -> (FrameDelivery, FrameInput) {
        let (mut prod, input) = Self::ring(capacity);
        let callback: FrameCallback = Box::new(move |frame: &AudioFrame, _: &AudioSender| {
            let _ = prod.try_push(frame.samples);
        });
        (FrameDelivery::Callback(callback), input)
    }

    /// The next frame, `Err(true)` when the input has closed, `Err(false)` when empty.
    fn next(&mut self) -> Result<Pcm16kFrame, bool> {
        match self {
            Self::Channel(rx) => match rx.try_recv() {
                Ok(f) => Ok(f.samples),
                Err(mpsc::error::TryRecvError::Empty) => Err(false),
                Err(mpsc::error::TryRecvError::Disconnected) => Err(true),
            },
            Self::Ring(cons) => cons.try_pop().ok_or(false),
        }
    }
}

enum PlaybackKind {
    Device {
        stream: PlaybackStream,
        prod: HeapProd<i16>,
    },
    Wav(WavSink),
    Sink(Box<dyn SampleSink>),
}

/// Where the call's received audio goes: a playback device (clocked, drift-controlled)
/// or a sink such as a WAV file (written as produced).
pub struct PlaybackEnd {
    kind: PlaybackKind,
    format: DeviceFormat,
    label: String,
}

impl std::fmt::Debug for PlaybackEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackEnd")
            .field("label", &self.label)
            .field("format", &self.format)
            .finish()
    }
}

impl PlaybackEnd {
    /// Opens and starts the output device `sel` at `format` (rate and channels default to
    /// the device's; the ring is at least 500 ms, prefilled with at least 20 ms of silence
    /// until the bridge's first tick pads it to the target).
    pub fn device(sel: &DeviceSelector, format: StreamFormat) -> Result<Self, BridgeError> {
        if let (Some(rate), Some(channels)) = (format.sample_rate, format.channels) {
            check_format(&format!("output {sel}"), DeviceFormat::new(rate, channels))?;
        }
        let fmt = StreamFormat {
            ring_ms: format.ring_ms.max(MIN_RING_MS),
            prefill_ms: format.prefill_ms.max(FRAME_MS),
            ..format
        };
        let (stream, prod) = PlaybackStream::open(sel, fmt)?;
        let opened = stream.format();
        let format = DeviceFormat::new(opened.sample_rate, opened.channels);
        let label = opened.device.clone();
        check_format(&label, format)?;
        Ok(Self {
            kind: PlaybackKind::Device { stream, prod },
            format,
            label,
        })
    }

    /// A WAV file as the playback side: every received frame is resampled to the file's
    /// format and written; finalized when the bridge stops.
    pub fn wav(sink: WavSink) -> Result<Self, BridgeError> {
        let format = DeviceFormat::new(sink.sample_rate(), sink.channels());
        let label = "WAV sink".to_owned();
        check_format(&label, format)?;
        Ok(Self {
            kind: PlaybackKind::Wav(sink),
            format,
            label,
        })
    }

    /// Any [`SampleSink`] as the playback side, written as frames arrive (no clock, no
    /// drift control: for clocked devices use [`PlaybackEnd::device`]). `label` names it
    /// in errors and stats.
    pub fn sink(sink: Box<dyn SampleSink>, label: impl Into<String>) -> Result<Self, BridgeError> {
        let format = DeviceFormat::new(sink.sample_rate(), sink.channels());
        let label = label.into();
        check_format(&label, format)?;
        Ok(Self {
            kind: PlaybackKind::Sink(sink),
            format,
            label,
        })
    }

    /// The format audio is written in.
    pub fn format(&self) -> DeviceFormat {
        self.format
    }

    /// The device (`host:id`) or the sink's label.
    pub fn label(&self) -> &str {
        &self.label
    }
}

enum CaptureKind {
    Device {
        stream: CaptureStream,
        cons: HeapCons<i16>,
    },
    Source(Box<dyn SampleSource>),
}

/// Where the call's sent audio comes from: a capture device (clocked, drift-controlled)
/// or a source such as a WAV file (read at the call's pace).
pub struct CaptureEnd {
    kind: CaptureKind,
    format: DeviceFormat,
    label: String,
}

impl std::fmt::Debug for CaptureEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureEnd")
            .field("label", &self.label)
            .field("format", &self.format)
            .finish()
    }
}

impl CaptureEnd {
    /// Opens and starts the input device `sel` at `format` (rate and channels default to
    /// the device's; the ring is at least 500 ms).
    pub fn device(sel: &DeviceSelector, format: StreamFormat) -> Result<Self, BridgeError> {
        if let (Some(rate), Some(channels)) = (format.sample_rate, format.channels) {
            check_format(&format!("input {sel}"), DeviceFormat::new(rate, channels))?;
        }
        let fmt = StreamFormat {
            ring_ms: format.ring_ms.max(MIN_RING_MS),
            ..format
        };
        let (stream, cons) = CaptureStream::open(sel, fmt)?;
        let opened = stream.format();
        let format = DeviceFormat::new(opened.sample_rate, opened.channels);
        let label = opened.device.clone();
        check_format(&label, format)?;
        Ok(Self {
            kind: CaptureKind::Device { stream, cons },
            format,
            label,
        })
    }

    /// Any [`SampleSource`] (a [`devices::WavSource`]) as the capture side: it is read one
    /// tick's worth (20 ms at its rate) per tick while the call is sending. No clock, no
    /// drift control: for clocked devices use [`CaptureEnd::device`]. `label` names it.
    pub fn source(
        source: Box<dyn SampleSource>,
        label: impl Into<String>,
    ) -> Result<Self, BridgeError> {
        let format = DeviceFormat::new(source.sample_rate(), source.channels());
        let label = label.into();
        check_format(&label, format)?;
        Ok(Self {
            kind: CaptureKind::Source(source),
            format,
            label,
        })
    }

    /// The format audio is read in.
    pub fn format(&self) -> DeviceFormat {
        self.format
    }

    /// The device (`host:id`) or the source's label.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// Statistics of the receive → playback side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PlaybackStats {
    /// Frames taken from the call.
    pub frames_received: u64,
    /// Frames resampled and written to the device ring or sink.
    pub frames_played: u64,
    /// Received frames dropped because the ring held more than `target + max_excess`.
    pub dropped_frames: u64,
    /// 20 ms silence frames padded because nothing was received and the ring ran low.
    pub padded_frames: u64,
    /// Times the ring ran low with nothing received (each starts a run of padding).
    pub starvations: u64,
    /// Resampled values the ring had no room for.
    pub ring_overflow_samples: u64,
    /// One-time slips that moved the settled level onto the target after a start.
    pub recentres: u64,
    /// Audio those slips inserted (positive) or skipped (negative), ms.
    pub recentred_ms: f64,
    /// Ring level after the last tick's push, ms (0 for sinks).
    pub level_ms: f64,
    /// Target level, ms.
    pub target_ms: f64,
    /// Current relative resampling ratio (1.0 = nominal).
    pub ratio: f64,
    /// Smallest and largest ratio applied so far.
    pub ratio_min: f64,
    /// Largest ratio applied so far.
    pub ratio_max: f64,
    /// Resampling or sink write failures (see [`DeviceBridge::last_error`]).
    pub errors: u64,
    /// The device callbacks' counters (underruns are silence the device played), `None`
    /// for sinks.
    pub device: Option<CounterSnapshot>,
}

/// Statistics of the capture → send side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CaptureStats {
    /// Captured 20 ms frames enqueued for sending.
    pub frames_sent: u64,
    /// Silence frames enqueued because no captured frame was ready (start-up priming and
    /// underruns).
    pub padded_frames: u64,
    /// Times the framer ran dry while running (each re-primes to the target).
    pub underruns: u64,
    /// Captured frames dropped because the framer held more than `target + max_excess`.
    pub dropped_frames: u64,
    /// Frames discarded while the call was not taking audio (send queue not draining for
    /// 200 ms: no peer yet, or the call ended).
    pub discarded_idle_frames: u64,
    /// 16 kHz samples the framer refused (full).
    pub framer_overflow_samples: u64,
    /// One-time slips that moved the settled level onto the target after a start.
    pub recentres: u64,
    /// Audio those slips inserted (positive) or skipped (negative), ms.
    pub recentred_ms: f64,
    /// Enqueues refused by a full send queue.
    pub send_queue_full: u64,
    /// Framer level after the last tick, ms.
    pub level_ms: f64,
    /// Target level, ms.
    pub target_ms: f64,
    /// Current relative resampling ratio (1.0 = nominal).
    pub ratio: f64,
    /// Smallest ratio applied so far.
    pub ratio_min: f64,
    /// Largest ratio applied so far.
    pub ratio_max: f64,
    /// Resampling failures (see [`DeviceBridge::last_error`]).
    pub errors: u64,
    /// The device callbacks' counters (overruns are captured audio lost before the ring),
    /// `None` for sources.
    pub device: Option<CounterSnapshot>,
}

/// A snapshot of a bridge's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BridgeStats {
    /// Ticks run.
    pub ticks: u64,
    /// Ticks that started more than one tick late.
    pub late_ticks: u64,
    /// Times the schedule was reset after a stall longer than 200 ms.
    pub resyncs: u64,
    /// The bridge stopped ticking: its frame input closed (the call ended) or it was
    /// stopped.
    pub finished: bool,
    /// The playback side, if any.
    pub playback: Option<PlaybackStats>,
    /// The capture side, if any.
    pub capture: Option<CaptureStats>,
}

/// An `f64` in an atomic.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn new(v: f64) -> Self {
        Self(AtomicU64::new(v.to_bits()))
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Ratio statistics shared with the handle.
#[derive(Debug)]
struct RatioCell {
    now: AtomicF64,
    min: AtomicF64,
    max: AtomicF64,
}

impl Default for RatioCell {
    fn default() -> Self {
        Self {
            now: AtomicF64::new(1.0),
            min: AtomicF64::new(1.0),
            max: AtomicF64::new(1.0),
        }
    }
}

impl RatioCell {
    fn set(&self, r: f64) {
        self.now.set(r);
        if r < self.min.get() {
            self.min.set(r);
        }
        if r > self.max.get() {
            self.max.set(r);
        }
    }
}

#[derive(Debug, Default)]
struct PlaybackShared {
    frames_received: AtomicU64,
    frames_played: AtomicU64,
    dropped_frames: AtomicU64,
    padded_frames: AtomicU64,
    starvations: AtomicU64,
    ring_overflow_samples: AtomicU64,
    recentres: AtomicU64,
    recentred_ms: AtomicF64,
    level_ms: AtomicF64,
    ratio: RatioCell,
    errors: AtomicU64,
}

#[derive(Debug, Default)]
struct CaptureShared {
    frames_sent: AtomicU64,
    padded_frames: AtomicU64,
    underruns: AtomicU64,
    dropped_frames: AtomicU64,
    discarded_idle_frames: AtomicU64,
    framer_overflow_samples: AtomicU64,
    send_queue_full: AtomicU64,
    recentres: AtomicU64,
    recentred_ms: AtomicF64,
    level_ms: AtomicF64,
    ratio: RatioCell,
    errors: AtomicU64,
}

/// State shared between the bridge thread and its handle.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    finished: AtomicBool,
    ticks: AtomicU64,
    late_ticks: AtomicU64,
    resyncs: AtomicU64,
    playback: PlaybackShared,
    capture: CaptureShared,
    /// The first error seen on the bridge thread (error path only).
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, what: impl FnOnce() -> String) {
        let mut g = lock(&self.first_error);
        if g.is_none() {
            *g = Some(what());
        }
    }
}

enum PlaybackOut {
    Ring(HeapProd<i16>),
    Wav(WavSink),
    Sink(Box<dyn SampleSink>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlaybackState {
    /// Nothing received lately: the ring is padded with silence up to the target.
    Starved,
    /// Received frames keep the ring filled.
    Playing,
}

/// The receive → playback half, run by the bridge thread.
struct PlaybackCore {
    input: FrameInput,
    out: PlaybackOut,
    label: String,
    resampler: PlayoutResampler,
    ctl: Option<FillController>,
    buf: Box<[i16]>,
    silence: Box<[i16]>,
    channels: usize,
    rate: u32,
    frame_len: usize,
    target: usize,
    high: usize,
    state: PlaybackState,
    input_closed: bool,
    settle: Settle,
    /// Device frames still to skip from the resampled output (a re-centring slip).
    skip: usize,
}

impl PlaybackCore {
    fn tick(&mut self, sh: &Shared) {
        let st = &sh.playback;
        let mut received = 0;
        while received < MAX_FRAMES_PER_TICK {
            let frame = match self.input.next() {
                Ok(f) => f,
                Err(closed) => {
                    self.input_closed |= closed;
                    break;
                }
            };
            received += 1;
            add(&st.frames_received, 1);
            if let PlaybackOut::Ring(prod) = &self.out
                && prod.occupied_len() / self.channels > self.high
            {
                add(&st.dropped_frames, 1);
                continue;
            }
            let n = match self.resampler.process(frame.samples(), &mut self.buf) {
                Ok(n) => n,
                Err(e) => {
                    add(&st.errors, 1);
                    sh.error(|| format!("{}: playback resampling failed: {e}", self.label));
                    continue;
                }
            };
            let skipped = self.skip.min(n / self.channels);
            self.skip -= skipped;
            let samples = &self.buf[skipped * self.channels..n];
            match &mut self.out {
                PlaybackOut::Ring(prod) => {
                    let pushed = push_frames(prod, samples, self.channels as u16);
                    add(&st.ring_overflow_samples, (samples.len() - pushed) as u64);
                }
                PlaybackOut::Wav(w) => write_sink(w, samples, sh, &self.label),
                PlaybackOut::Sink(s) => write_sink(s.as_mut(), samples, sh, &self.label),
            }
            add(&st.frames_played, 1);
            if self.state == PlaybackState::Starved {
                self.state = PlaybackState::Playing;
                self.settle.restart();
            }
        }
        let PlaybackOut::Ring(prod) = &mut self.out else {
            return;
        };
        let mut level = prod.occupied_len() / self.channels;
        if received == 0 && (self.state == PlaybackState::Starved || level < self.frame_len) {
            if self.state == PlaybackState::Playing {
                add(&st.starvations, 1);
                self.state = PlaybackState::Starved;
            }
            // Pad up to the target.
            while level + self.frame_len <= self.target
                && push_frames(prod, &self.silence, self.channels as u16) > 0
            {
                add(&st.padded_frames, 1);
                level += self.frame_len;
            }
        }
        st.level_ms
            .set(level as f64 * 1000.0 / f64::from(self.rate));
        if self.state != PlaybackState::Playing {
            return;
        }
        let Some(ctl) = self.ctl.as_mut() else {
            return;
        };
        if !self.settle.done() {
            if let Some(mean) = self.settle.feed(level) {
                let offset = mean - self.target as f64;
                if offset.abs() <= self.frame_len as f64 + ctl.deadband() {
                    ctl.set_target(mean);
                } else {
                    ctl.set_target(self.target as f64);
                    let frames = offset.abs().round() as usize;
                    let ch = self.channels;
                    if offset > 0.0 {
                        self.skip = frames;
                    } else {
                        let mut left = frames;
                        while left > 0 {
                            let k = left.min(self.frame_len);
                            if push_frames(prod, &self.silence[..k * ch], ch as u16) == 0 {
                                break;
                            }
                            left -= k;
                        }
                    }
                    add(&st.recentres, 1);
                    st.recentred_ms
                        .set(st.recentred_ms.get() - offset * 1000.0 / f64::from(self.rate));
                }
                ctl.reset_level();
            }
        } else {
            let rel = ctl.update(level);
            match self.resampler.set_ratio_relative(rel) {
                Ok(()) => st.ratio.set(rel),
                Err(e) => {
                    add(&st.errors, 1);
                    sh.error(|| format!("{}: playback ratio {rel}: {e}", self.label));
                }
            }
        }
    }
}

fn write_sink(sink: &mut dyn SampleSink, samples: &[i16], sh: &Shared, label: &str) {
    if let Err(e) = sink.write(samples) {
        add(&sh.playback.errors, 1);
        sh.error(|| format!("{label}: write failed: {e}"));
    }
}

enum CaptureIn {
    Ring(HeapCons<i16>),
    Source(Box<dyn SampleSource>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaptureState {
    /// Waiting until the framer holds the target (silence is sent meanwhile).
    Priming,
    /// Captured frames are sent.
    Running,
}

/// Resamples device samples into the framer, skipping the first `skip` 16 kHz samples;
/// returns the samples the framer refused.
fn resample_into(
    resampler: &mut CaptureResampler,
    samples: &[i16],
    framer: &mut Framer,
    skip: &mut usize,
) -> Result<usize, media_core::resample::ResampleError> {
    let mut refused = 0;
    resampler.process(samples, |block| {
        let k = (*skip).min(block.len());
        *skip -= k;
        let rest = &block[k..];
        refused += rest.len() - framer.push(rest);
    })?;
    Ok(refused)
}

/// The capture → send half, run by the bridge thread.
struct CaptureCore {
    input: CaptureIn,
    sender: AudioSender,
    label: String,
    resampler: CaptureResampler,
    framer: Framer,
    ctl: Option<FillController>,
    scratch: Box<[i16]>,
    per_tick: usize,
    frame: [i16; FRAME_SAMPLES],
    target: usize,
    high: usize,
    queue_frames: usize,
    last_queued: usize,
    undrained_ticks: u32,
    state: CaptureState,
    settle: Settle,
    /// 16 kHz samples still to skip before the framer (a re-centring slip).
    skip: usize,
}

impl CaptureCore {
    fn tick(&mut self, sh: &Shared) {
        let st = &sh.capture;
        let queued = self.sender.queued();
        // The call takes one frame per tick while it sends; a queue that stays full for
        // a while means it does not (no peer yet, call ended): hold the audio back
        // instead of piling it up.
        if queued >= self.queue_frames && queued >= self.last_queued {
            self.undrained_ticks = self.undrained_ticks.saturating_add(1);
        } else {
            self.undrained_ticks = 0;
        }
        let stalled = self.undrained_ticks >= STALLED_AFTER_TICKS;
        self.pull(sh);
        if stalled {
            while self.framer.buffered() > self.target && self.framer.pop_frame(&mut self.frame) {
                add(&st.discarded_idle_frames, 1);
            }
        } else {
            if self.state == CaptureState::Priming
                && self.framer.buffered() >= self.target + FRAME_SAMPLES
            {
                self.state = CaptureState::Running;
                self.settle.restart();
            }
            self.top_up(sh);
        }
        self.last_queued = self.sender.queued();
        let mut level = self.framer.buffered();
        if level > self.high {
            while level > self.target && self.framer.pop_frame(&mut self.frame) {
                add(&st.dropped_frames, 1);
                level = self.framer.buffered();
            }
        }
        st.level_ms
            .set(level as f64 * 1000.0 / f64::from(PCM16K_RATE));
        if self.state != CaptureState::Running || stalled {
            return;
        }
        let Some(ctl) = self.ctl.as_mut() else {
            return;
        };
        if !self.settle.done() {
            if let Some(mean) = self.settle.feed(level) {
                let offset = mean - self.target as f64;
                if offset.abs() <= FRAME_SAMPLES as f64 + ctl.deadband() {
                    ctl.set_target(mean);
                } else {
                    ctl.set_target(self.target as f64);
                    let samples = offset.abs().round() as usize;
                    if offset > 0.0 {
                        self.skip = samples;
                    } else {
                        let zeros = [0i16; FRAME_SAMPLES];
                        let mut left = samples;
                        while left > 0 {
                            let k = left.min(FRAME_SAMPLES);
                            if self.framer.push(&zeros[..k]) == 0 {
                                break;
                            }
                            left -= k;
                        }
                    }
                    add(&st.recentres, 1);
                    st.recentred_ms
                        .set(st.recentred_ms.get() - offset * 1000.0 / f64::from(PCM16K_RATE));
                }
                ctl.reset_level();
            }
        } else {
            let rel = ctl.update(level);
            match self.resampler.set_ratio_relative(rel) {
                Ok(()) => st.ratio.set(rel),
                Err(e) => {
                    add(&st.errors, 1);
                    sh.error(|| format!("{}: capture ratio {rel}: {e}", self.label));
                }
            }
        }
    }

    /// Moves captured audio through the resampler into the framer: everything a device
    /// delivered; from a source (no clock), what keeps the framer at the target, so a
    /// file is read at the call's pace and waits while the call takes no audio.
    fn pull(&mut self, sh: &Shared) {
        let st = &sh.capture;
        let mut refused = 0;
        let mut failed = None;
        match &mut self.input {
            CaptureIn::Ring(cons) => loop {
                let n = cons.pop_slice(&mut self.scratch);
                if n == 0 {
                    break;
                }
                match resample_into(
                    &mut self.resampler,
                    &self.scratch[..n],
                    &mut self.framer,
                    &mut self.skip,
                ) {
                    Ok(r) => refused += r,
                    Err(e) => failed = Some(e),
                }
            },
            CaptureIn::Source(src) => {
                for _ in 0..MAX_FRAMES_PER_TICK {
                    if self.framer.buffered() >= self.target + FRAME_SAMPLES {
                        break;
                    }
                    let n = src.read(&mut self.scratch[..self.per_tick]);
                    if n == 0 {
                        break;
                    }
                    match resample_into(
                        &mut self.resampler,
                        &self.scratch[..n],
                        &mut self.framer,
                        &mut self.skip,
                    ) {
                        Ok(r) => refused += r,
                        Err(e) => failed = Some(e),
                    }
                }
            }
        }
        add(&st.framer_overflow_samples, refused as u64);
        if let Some(e) = failed {
            add(&st.errors, 1);
            sh.error(|| format!("{}: capture resampling failed: {e}", self.label));
        }
    }

    /// Keeps `queue_frames` frames in the call's send queue.
    fn top_up(&mut self, sh: &Shared) {
        let st = &sh.capture;
        while self.sender.queued() < self.queue_frames {
            let captured =
                self.state == CaptureState::Running && self.framer.pop_frame(&mut self.frame);
            if !captured {
                if self.state == CaptureState::Running {
                    add(&st.underruns, 1);
                    self.state = CaptureState::Priming;
                }
                self.frame.fill(0);
            }
            match self.sender.enqueue(&Pcm16kFrame::new(self.frame)) {
                Ok(()) => add(
                    if captured {
                        &st.frames_sent
                    } else {
                        &st.padded_frames
                    },
                    1,
                ),
                Err(EnqueueError::Full) => {
                    add(&st.send_queue_full, 1);
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

/// Everything the bridge thread owns.
struct Core {
    shared: Arc<Shared>,
    playback: Option<PlaybackCore>,
    capture: Option<CaptureCore>,
}

impl Core {
    fn run(mut self) -> Result<(), BridgeError> {
        let sh = Arc::clone(&self.shared);
        let mut next = Instant::now();
        while !sh.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if now > next + TICK {
                add(&sh.late_ticks, 1);
            }
            if now > next + RESYNC_AFTER {
                add(&sh.resyncs, 1);
                next = now;
            }
            if let Some(p) = self.playback.as_mut() {
                p.tick(&sh);
            }
            if let Some(c) = self.capture.as_mut() {
                c.tick(&sh);
            }
            add(&sh.ticks, 1);
            if self.playback.as_ref().is_some_and(|p| p.input_closed) {
                sh.finished.store(true, Ordering::Release);
                break;
            }
            next += TICK;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        self.finish()
    }

    /// Finalizes a WAV sink.
    fn finish(self) -> Result<(), BridgeError> {
        if let Some(PlaybackCore {
            out: PlaybackOut::Wav(w),
            ..
        }) = self.playback
        {
            w.finalize()?;
        }
        Ok(())
    }
}

/// Assembles a [`DeviceBridge`]: [`DeviceBridge::builder`], then a playback side, a
/// capture side or both, then [`start`](Self::start).
#[derive(Debug)]
pub struct BridgeBuilder {
    config: BridgeConfig,
    playback: Option<(PlaybackEnd, FrameInput)>,
    capture: Option<(CaptureEnd, AudioSender)>,
}

impl BridgeBuilder {
    /// Plays the frames of `input` on `end`.
    pub fn playback(mut self, end: PlaybackEnd, input: FrameInput) -> Self {
        self.playback = Some((end, input));
        self
    }

    /// Sends what `end` captures through `sender` (`AudioSocket::sender`).
    pub fn capture(mut self, end: CaptureEnd, sender: AudioSender) -> Self {
        self.capture = Some((end, sender));
        self
    }

    /// Builds the resamplers and buffers and starts the bridge thread.
    pub fn start(self) -> Result<DeviceBridge, BridgeError> {
        let config = self.config;
        config.validate()?;
        if self.playback.is_none() && self.capture.is_none() {
            return Err(BridgeError::NothingToBridge);
        }
        let shared = Arc::new(Shared::default());
        let mut playback_stream = None;
        let mut playback_format = None;
        let playback = match self.playback {
            None => None,
            Some((end, input)) => {
                let f = end.format;
                let resampler = PlayoutResampler::new(f, config.mode)
                    .map_err(|e| unsupported(&end.label, f, e))?;
                let frame_len = f.frame_len();
                let target = samples_in(config.playback_target, f.rate).max(frame_len);
                let high = target + samples_in(config.max_excess, f.rate);
                let drift = config.mode == ResamplerMode::DriftFollowing;
                let (out, ctl) = match end.kind {
                    PlaybackKind::Device { stream, prod } => {
                        let capacity = prod.capacity().get() / usize::from(f.channels);
                        if capacity < high + 2 * frame_len {
                            return Err(BridgeError::InvalidConfig(format!(
                                "{}: ring of {capacity} frames cannot hold the target plus \
                                 max_excess ({high} frames) and two ticks; raise ring_ms",
                                end.label
                            )));
                        }
                        playback_stream = Some(stream);
                        let ctl =
                            drift.then(|| FillController::new(target, f.rate, config.controller));
                        (PlaybackOut::Ring(prod), ctl)
                    }
                    PlaybackKind::Wav(w) => (PlaybackOut::Wav(w), None),
                    PlaybackKind::Sink(s) => (PlaybackOut::Sink(s), None),
                };
                playback_format = Some((f, end.label.clone()));
                let ch = usize::from(f.channels);
                Some(PlaybackCore {
                    input,
                    out,
                    buf: vec![0; resampler.max_output_len()].into_boxed_slice(),
                    resampler,
                    ctl,
                    silence: vec![0; frame_len * ch].into_boxed_slice(),
                    channels: ch,
                    rate: f.rate,
                    frame_len,
                    target,
                    high,
                    state: PlaybackState::Starved,
                    input_closed: false,
                    settle: Settle::default(),
                    skip: 0,
                    label: end.label,
                })
            }
        };
        let mut capture_stream = None;
        let mut capture_format = None;
        let capture = match self.capture {
            None => None,
            Some((end, sender)) => {
                let f = end.format;
                let resampler = CaptureResampler::new(f, config.mode)
                    .map_err(|e| unsupported(&end.label, f, e))?;
                let target = samples_in(config.capture_target, PCM16K_RATE);
                let high = target + samples_in(config.max_excess, PCM16K_RATE);
                let drift = config.mode == ResamplerMode::DriftFollowing;
                let (input, ctl) = match end.kind {
                    CaptureKind::Device { stream, cons } => {
                        capture_stream = Some(stream);
                        let ctl = drift
                            .then(|| FillController::new(target, PCM16K_RATE, config.controller));
                        (CaptureIn::Ring(cons), ctl)
                    }
                    CaptureKind::Source(s) => (CaptureIn::Source(s), None),
                };
                let ch = usize::from(f.channels);
                let per_tick = f.frame_len() * ch;
                capture_format = Some((f, end.label.clone()));
                // Room for the excess, a late tick's worth of device audio, and a margin.
                let framer_frames = (high + resampler.max_block_len()) / FRAME_SAMPLES + 8;
                Some(CaptureCore {
                    input,
                    sender,
                    resampler,
                    framer: Framer::pcm16k(framer_frames),
                    ctl,
                    scratch: vec![0; CAPTURE_SCRATCH.max(per_tick) / ch * ch].into_boxed_slice(),
                    per_tick,
                    frame: [0; FRAME_SAMPLES],
                    target,
                    high,
                    queue_frames: config.send_queue_frames,
                    last_queued: 0,
                    undrained_ticks: 0,
                    settle: Settle::default(),
                    skip: 0,
                    state: CaptureState::Priming,
                    label: end.label,
                })
            }
        };
        let core = Core {
            shared: Arc::clone(&shared),
            playback,
            capture,
        };
        let thread = std::thread::Builder::new()
            .name("device-bridge".into())
            .spawn(move || core.run())
            .map_err(BridgeError::Thread)?;
        Ok(DeviceBridge {
            config,
            shared,
            thread: Some(thread),
            playback_stream,
            capture_stream,
            playback_format,
            capture_format,
        })
    }
}

/// One call's audio bound to a playback side and a capture side. See the
/// [module documentation](self).
///
/// Dropping it stops the bridge thread and the devices (a WAV sink is finalized; use
/// [`stop`](Self::stop) to see errors).
pub struct DeviceBridge {
    config: BridgeConfig,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<(), BridgeError>>>,
    // Dropped after the thread has stopped.
    playback_stream: Option<PlaybackStream>,
    capture_stream: Option<CaptureStream>,
    playback_format: Option<(DeviceFormat, String)>,
    capture_format: Option<(DeviceFormat, String)>,
}

impl std::fmt::Debug for DeviceBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBridge")
            .field("playback", &self.playback_format)
            .field("capture", &self.capture_format)
            .field("config", &self.config)
            .finish()
    }
}

impl DeviceBridge {
    /// Starts assembling a bridge with `config`.
    pub fn builder(config: BridgeConfig) -> BridgeBuilder {
        BridgeBuilder {
            config,
            playback: None,
            capture: None,
        }
    }

    /// The playback side's format and device (or sink label).
    pub fn playback_format(&self) -> Option<(DeviceFormat, &str)> {
        self.playback_format.as_ref().map(|(f, l)| (*f, l.as_str()))
    }

    /// The capture side's format and device (or source label).
    pub fn capture_format(&self) -> Option<(DeviceFormat, &str)> {
        self.capture_format.as_ref().map(|(f, l)| (*f, l.as_str()))
    }

    /// The configuration in use.
    pub fn config(&self) -> &BridgeConfig {
        &self.config
    }

    /// True once the frame input closed (the call ended) and the thread stopped ticking.
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    /// The statistics now.
    pub fn stats(&self) -> BridgeStats {
        let sh = &self.shared;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let playback = self.playback_format.as_ref().map(|_| {
            let p = &sh.playback;
            PlaybackStats {
                frames_received: get(&p.frames_received),
                frames_played: get(&p.frames_played),
                dropped_frames: get(&p.dropped_frames),
                padded_frames: get(&p.padded_frames),
                starvations: get(&p.starvations),
                ring_overflow_samples: get(&p.ring_overflow_samples),
                recentres: get(&p.recentres),
                recentred_ms: p.recentred_ms.get(),
                level_ms: p.level_ms.get(),
                target_ms: ms(self.config.playback_target),
                ratio: p.ratio.now.get(),
                ratio_min: p.ratio.min.get(),
                ratio_max: p.ratio.max.get(),
                errors: get(&p.errors),
                device: self.playback_stream.as_ref().map(PlaybackStream::counters),
            }
        });
        let capture = self.capture_format.as_ref().map(|_| {
            let c = &sh.capture;
            CaptureStats {
                frames_sent: get(&c.frames_sent),
                padded_frames: get(&c.padded_frames),
                underruns: get(&c.underruns),
                dropped_frames: get(&c.dropped_frames),
                discarded_idle_frames: get(&c.discarded_idle_frames),
                framer_overflow_samples: get(&c.framer_overflow_samples),
                send_queue_full: get(&c.send_queue_full),
                recentres: get(&c.recentres),
                recentred_ms: c.recentred_ms.get(),
                level_ms: c.level_ms.get(),
                target_ms: ms(self.config.capture_target),
                ratio: c.ratio.now.get(),
                ratio_min: c.ratio.min.get(),
                ratio_max: c.ratio.max.get(),
                errors: get(&c.errors),
                device: self.capture_stream.as_ref().map(CaptureStream::counters),
            }
        });
        BridgeStats {
            ticks: get(&sh.ticks),
            late_ticks: get(&sh.late_ticks),
            resyncs: get(&sh.resyncs),
            finished: self.is_finished(),
            playback,
            capture,
        }
    }

    /// The first error of the bridge thread, else the last error a device reported
    /// (`host:id: message`), if any.
    pub fn last_error(&self) -> Option<String> {
        if let Some(e) = lock(&self.shared.first_error).clone() {
            return Some(e);
        }
        let device = |label: &Option<(DeviceFormat, String)>, e: Option<String>| {
            e.map(|e| {
                let l = label.as_ref().map_or("device", |(_, l)| l.as_str());
                format!("{l}: {e}")
            })
        };
        device(
            &self.playback_format,
            self.playback_stream
                .as_ref()
                .and_then(PlaybackStream::last_error),
        )
        .or_else(|| {
            device(
                &self.capture_format,
                self.capture_stream
                    .as_ref()
                    .and_then(CaptureStream::last_error),
            )
        })
    }

    /// Stops the thread and the devices, finalizes a WAV sink; returns the final stats.
    pub fn stop(mut self) -> Result<BridgeStats, BridgeError> {
        let result = self.halt();
        let stats = self.stats();
        result.map(|()| stats)
    }

    fn halt(&mut self) -> Result<(), BridgeError> {
        self.shared.stop.store(true, Ordering::Release);
        let result = match self.thread.take() {
            Some(t) => t.join().unwrap_or(Err(BridgeError::ThreadPanicked)),
            None => Ok(()),
        };
        self.shared.finished.store(true, Ordering::Release);
        result
    }
}

impl Drop for DeviceBridge {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}
