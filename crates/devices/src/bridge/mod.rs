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
//!    call's frames ──FrameInput (channel or ring)──┐
//!                                                  │ bridge thread, every 20 ms:
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
//!
//!  stats: the thread's own counters ──try_lock, after its ticks──> one Copy BridgeStats
//!         ──DeviceBridge::stats (+ the device callbacks' CounterSnapshots)──> you
//! ```
//!
//! The call side is media-core's: received frames are [`AudioFrame`]s from a tokio
//! channel (the media platform's `AudioSocket::take_frames`) or from a ring a frame
//! callback feeds ([`FrameInput::ring`]); sent frames go through an [`AudioSender`]
//! (the platform's `AudioSocket::sender`).
//!
//! A WAV file stands in for either device: [`PlaybackEnd::wav`] (or any
//! [`SampleSink`](crate::SampleSink) through [`PlaybackEnd::sink`]) writes the resampled
//! received audio, [`CaptureEnd::source`] reads a [`SampleSource`](crate::SampleSource)
//! (a [`WavSource`](crate::WavSource)) at the call's pace, one tick's worth (20 ms at the
//! file's rate) per tick. Files have no clock, so their ratio stays nominal and no level
//! is controlled: the output is deterministic.
//!
//! # Why a thread of its own
//!
//! The bridge's work (pull frames, resample, push rings, frame, enqueue, control) runs on
//! one thread, `device-bridge`, ticking on media-core's 20 ms [`TickGrid`]. The device
//! callbacks only move samples ([`crate::stream`]); the call's task only hands frames
//! over (channel or callback). Driving the bridge from received frames instead would stop
//! the capture side whenever the far end is silent or not yet connected, and would put
//! resampling and file I/O (WAV) on the call's task. A late tick keeps its scheduled
//! instant and the next is due one period after that, so a stall is caught up at once;
//! a grid more than 200 ms behind restarts at the present instead of bursting
//! ([`BridgeStats::resyncs`], [`BridgeStats::skipped_ticks`]). A tick that starts more
//! than one tick late counts in [`BridgeStats::late_ticks`].
//!
//! # Clock drift
//!
//! Three clocks meet here: the playback device's, the capture device's and the call's
//! (the platform's 20 ms tick, the same monotonic clock as the bridge's). Each device
//! ring's fill level is held near a target by a [`FillController`] (a smoothed,
//! critically damped PI loop, correction bounded to ±1 % and slew-limited) that nudges
//! the ratio of a [`ResamplerMode::DriftFollowing`] resampler. Where a level settles in
//! the first second after a start depends on callback phase, not drift: within about a
//! frame of the target it becomes the controller's target as it is, further off it is
//! moved there by one counted slip (`recentres`), so start-up never bends the pitch. What
//! the controller cannot absorb is handled by whole-frame slips, all counted in
//! [`BridgeStats`]:
//!
//! * playback: a ring above `target + max_excess` drops received frames; a ring running
//!   dry with nothing received (the far end stopped) is padded with silence up to the
//!   target, so the device never underruns while the call is quiet;
//! * capture: a framer above `target + max_excess` drops frames; a framer that runs dry
//!   sends silence frames and re-primes to the target.
//!
//! A sound server can also slip on its own, out of the bridge's sight: PulseAudio plays
//! silence into a stream whose client answered late and keeps the late audio, which
//! shows here as a playback device draining slower (fewer callbacks, a ring level that
//! rises and is then drained by the controller or by dropped frames).
//!
//! # Realtime safety
//!
//! Everything is allocated by [`BridgeBuilder::start`]: resamplers, framer, scratch
//! buffers, rings, the stats cell. A tick allocates nothing, takes no blocking lock and
//! never blocks: frames come from a tokio channel (`try_recv`) or an SPSC ring, go out
//! through the paced sender's bounded queue (`enqueue`); the thread owns its counters as
//! plain values and publishes them with `Mutex::try_lock`, skipping a publish (not
//! waiting) when [`DeviceBridge::stats`] holds the lock at that instant. The exceptions
//! are the error path (the first error's message is formatted once, an allocation) and a
//! WAV or other [`SampleSink`](crate::SampleSink) playback end, whose writes do file I/O
//! on the bridge thread. Nothing panics on bad input: formats are validated at
//! construction ([`BridgeError`] names the device and the problem), a device that
//! disappears shows up as device errors and underruns in the stats and in
//! [`DeviceBridge::last_error`].
//!
//! # Example
//!
//! ```no_run
//! use devices::{BridgeConfig, CaptureEnd, DeviceBridge, DeviceSelector, FrameInput};
//! use devices::{PlaybackEnd, StreamFormat};
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
//!
//! [`AudioFrame`]: media_core::call::AudioFrame
//! [`AudioSender`]: media_core::call::AudioSender
//! [`TickGrid`]: media_core::tick::TickGrid

mod capture;
mod control;
mod playback;
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media_core::call::AudioSender;
use media_core::resample::{CaptureResampler, DeviceFormat, ResamplerMode, ResamplerSetupError};
use media_core::tick::{TICK, TickGrid};

pub use capture::CaptureEnd;
pub use control::{ControllerSettings, FillController};
pub use playback::{FrameInput, PlaybackEnd};
pub use stats::{BridgeStats, CaptureStats, PlaybackStats};

use crate::{CaptureStream, DeviceError, PlaybackStream};
use capture::CaptureCore;
use playback::{PlaybackCore, PlaybackOut};
use stats::{FirstError, StatsCell};

/// Most received frames one tick takes from its input (the rest wait for the next tick).
const MAX_FRAMES_PER_TICK: usize = 25;
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
        for (name, d) in [
            ("playback_target", self.playback_target),
            ("capture_target", self.capture_target),
            ("max_excess", self.max_excess),
        ] {
            if !range.contains(&d) {
                return bad(format!("{name} {d:?} must be within 20 ms..=1 s"));
            }
        }
        if !(1..=50).contains(&self.send_queue_frames) {
            return bad(format!(
                "send_queue_frames {} must be within 1..=50",
                self.send_queue_frames
            ));
        }
        match self.controller.problem() {
            Some(m) => bad(m),
            None => Ok(()),
        }
    }
}

/// Samples of `d` at `rate` (per channel).
fn samples_in(d: Duration, rate: u32) -> usize {
    (d.as_secs_f64() * f64::from(rate)).round() as usize
}

/// `d` in milliseconds.
fn ms_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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

/// What the bridge thread and its handle share.
#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    finished: AtomicBool,
    stats: StatsCell,
}

/// Everything the bridge thread owns.
struct Core {
    shared: Arc<Shared>,
    playback: Option<PlaybackCore>,
    capture: Option<CaptureCore>,
    grid: TickGrid,
    late_ticks: u64,
    errors: FirstError,
}

impl Core {
    fn run(mut self) -> Result<(), BridgeError> {
        self.grid = TickGrid::new(Instant::now());
        let mut call_ended = false;
        'run: while !self.shared.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            while let Some(tick) = self.grid.poll(now) {
                if tick.lateness > TICK {
                    self.late_ticks += 1;
                }
                if let Some(p) = self.playback.as_mut() {
                    p.tick(&mut self.errors);
                }
                if let Some(c) = self.capture.as_mut() {
                    c.tick(&mut self.errors);
                }
                if self.playback.as_ref().is_some_and(|p| p.input_closed) {
                    call_ended = true;
                    break 'run;
                }
            }
            let snapshot = self.snapshot();
            // Never waits: a reader holding the lock now gets the next wake-up's copy.
            self.shared
                .stats
                .try_publish(&snapshot, self.errors.pending());
            if let Some(wait) = self
                .grid
                .next_deadline()
                .checked_duration_since(Instant::now())
            {
                std::thread::sleep(wait);
            }
        }
        // After the last tick: this one may wait for a reader. Published before
        // `finished`, so a reader that sees the bridge finished sees its last counts.
        let snapshot = self.snapshot();
        self.shared.stats.publish(&snapshot, self.errors.pending());
        if call_ended {
            self.shared.finished.store(true, Ordering::Release);
        }
        self.finish()
    }

    /// The thread's counters as one snapshot (the device counters and `finished` are
    /// the handle's to fill in).
    fn snapshot(&self) -> BridgeStats {
        let grid = self.grid.stats();
        BridgeStats {
            ticks: grid.ticks,
            late_ticks: self.late_ticks,
            resyncs: grid.restarts,
            skipped_ticks: grid.skipped,
            finished: false,
            playback: self.playback.as_ref().map(|p| p.stats),
            capture: self.capture.as_ref().map(|c| c.stats),
        }
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

    /// Sends what `end` captures through `sender` (the platform's `AudioSocket::sender`).
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
        let playback = self
            .playback
            .map(|(end, input)| PlaybackCore::build(end, input, &config))
            .transpose()?;
        let capture = self
            .capture
            .map(|(end, sender)| CaptureCore::build(end, sender, &config))
            .transpose()?;
        // The sides are there from the first read, at nominal ratio.
        let initial = BridgeStats {
            playback: playback.as_ref().map(|p| p.core.stats),
            capture: capture.as_ref().map(|c| c.core.stats),
            ..BridgeStats::default()
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            stats: StatsCell::new(initial),
        });
        let mut handle = DeviceBridge {
            config,
            shared: Arc::clone(&shared),
            thread: None,
            playback_stream: None,
            capture_stream: None,
            playback_format: None,
            capture_format: None,
        };
        let mut core = Core {
            shared,
            playback: None,
            capture: None,
            grid: TickGrid::new(Instant::now()),
            late_ticks: 0,
            errors: FirstError::default(),
        };
        if let Some(p) = playback {
            handle.playback_stream = p.stream;
            handle.playback_format = Some((p.format, p.label));
            core.playback = Some(p.core);
        }
        if let Some(c) = capture {
            handle.capture_stream = c.stream;
            handle.capture_format = Some((c.format, c.label));
            core.capture = Some(c.core);
        }
        let thread = std::thread::Builder::new()
            .name("device-bridge".into())
            .spawn(move || core.run())
            .map_err(BridgeError::Thread)?;
        handle.thread = Some(thread);
        Ok(handle)
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

    /// The statistics: the bridge thread's last published snapshot (at most one tick
    /// old while it runs, final after [`stop`](Self::stop)) with the device callbacks'
    /// counters as they are now.
    pub fn stats(&self) -> BridgeStats {
        let mut s = self.shared.stats.stats();
        s.finished = self.is_finished();
        if let Some(p) = s.playback.as_mut() {
            p.device = self.playback_stream.as_ref().map(PlaybackStream::counters);
        }
        if let Some(c) = s.capture.as_mut() {
            c.device = self.capture_stream.as_ref().map(CaptureStream::counters);
        }
        s
    }

    /// The first error of the bridge thread, else the last error a device reported
    /// (`host:id: message`), if any.
    pub fn last_error(&self) -> Option<String> {
        if let Some(e) = self.shared.stats.first_error() {
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
