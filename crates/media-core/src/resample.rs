//! Sample-rate and channel conversion between the engine's 16 kHz mono and the
//! formats audio devices speak: 8, 16, 24, 32, 44.1 or 48 kHz, one or more channels.
//!
//! * [`CaptureResampler`]: interleaved device chunks of any size in, 16 kHz mono out
//!   (channels are down-mixed by averaging), delivered to a sink closure or straight
//!   into a [`Framer`].
//! * [`PlayoutResampler`]: one 20 ms 16 kHz mono frame in, interleaved device samples
//!   out (the mono signal is copied to every channel).
//!
//! Two engines, chosen by [`ResamplerMode`] (both from `rubato`):
//!
//! * [`ResamplerMode::LowDelay`]: FFT overlap-add with a fixed ratio, 10 ms blocks:
//!   5 ms of filter delay per direction, the cheapest option. At 16 kHz it is a pure
//!   channel mixer with no delay. (Rubato's 5 ms blocks would halve the delay but
//!   their shorter filter is 35 dB down at 7 kHz.)
//! * [`ResamplerMode::DriftFollowing`]: windowed-sinc interpolation whose ratio can be
//!   nudged with `set_ratio_relative`, to follow a device clock that drifts against
//!   the media clock; [`DriftController`] turns a device-ring fill level into that
//!   ratio. About 1.5 ms of filter delay per direction (3 ms at 8 kHz) and 2–5× the
//!   cost of `LowDelay`.
//!
//! Measured by `tests/dsp_resample_quality.rs` (device → 16 kHz → device, every
//! rate): SNR ≥ 88 dB (LowDelay) and ≥ 77 dB (DriftFollowing) for tones in
//! 100 Hz–7 kHz (3.4 kHz at 8 kHz) with the passband flat within 0.01 dB; full-scale
//! tones from 10 kHz up to the device Nyquist frequency leave nothing above the 16-bit
//! quantisation floor (LowDelay) or -82 dBFS (DriftFollowing) in the 16 kHz output.
//!
//! ```
//! use media_core::framer::Framer;
//! use media_core::resample::{CaptureResampler, DeviceFormat, PlayoutResampler, ResamplerMode};
//!
//! let device = DeviceFormat::new(48_000, 2);
//! let mut capture = CaptureResampler::new(device, ResamplerMode::LowDelay).expect("supported");
//! let mut framer = Framer::pcm16k(4);
//! // A device callback delivered 10 ms of stereo twice: 20 ms at 16 kHz comes out.
//! capture.process_into_framer(&[0i16; 960], &mut framer).expect("resample");
//! capture.process_into_framer(&[0i16; 960], &mut framer).expect("resample");
//! assert_eq!(framer.frames_ready(), 1);
//!
//! let mut playout = PlayoutResampler::new(device, ResamplerMode::LowDelay).expect("supported");
//! let mut out = vec![0i16; playout.max_output_len()];
//! let n = playout.process(&[0i16; 320], &mut out).expect("resample");
//! assert_eq!(n, 1920); // 960 stereo frames
//! ```
//!
//! # Realtime safety
//! Constructors allocate the resampler state and every scratch buffer. `process`,
//! `process_into_framer` and `set_ratio_relative` never allocate, lock or block;
//! the output goes to a caller-owned buffer (playout) or a caller-supplied sink or
//! framer (capture). Errors are small `Copy` values.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

use crate::frame::{FRAME_SAMPLES, FRAMES_PER_SECOND, PCM16K_RATE};
use crate::framer::Framer;

/// Device sample rates the resamplers accept, in Hz.
pub const SUPPORTED_RATES: [u32; 6] = [8_000, 16_000, 24_000, 32_000, 44_100, 48_000];

/// Most interleaved channels a device format may have.
pub const MAX_CHANNELS: u16 = 8;

/// Largest relative ratio change `set_ratio_relative` accepts (±2 %, far beyond the
/// ±0.5 % of real device clocks).
pub const MAX_RELATIVE_RATIO: f64 = 1.02;

/// FFT sub-chunks per 20 ms in [`ResamplerMode::LowDelay`]: 10 ms blocks, 5 ms delay.
/// (4 sub-chunks would give 2.5 ms but the shorter filter is 35 dB down at 7 kHz.)
const FFT_SUB_CHUNKS: usize = 2;

/// Anti-aliasing window for both engines: Blackman has the narrowest transition of
/// rubato's windows that still keeps the stopband below -70 dB.
const WINDOW: WindowFunction = WindowFunction::Blackman;

/// Sinc length for [`ResamplerMode::DriftFollowing`], in input samples: long enough
/// for a Blackman-windowed transition from the band edge (7 kHz, or 3.5 kHz when one
/// side is 8 kHz) to its mirror image about the lower Nyquist frequency.
fn sinc_len(rate_in: u32, rate_out: u32) -> usize {
    let lower = rate_in.min(rate_out);
    // Transition width: Nyquist ± 1 kHz (± 500 Hz for 8 kHz).
    let transition = f64::from(lower) / 8.0;
    let taps = 6.0 * f64::from(rate_in) / transition;
    (taps / 8.0).ceil() as usize * 8
}

/// A device's PCM format: sample rate and interleaved channel count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceFormat {
    /// Sample rate in Hz.
    pub rate: u32,
    /// Interleaved channels (1 = mono, 2 = stereo).
    pub channels: u16,
}

impl DeviceFormat {
    /// A format of `rate` Hz with `channels` interleaved channels.
    pub const fn new(rate: u32, channels: u16) -> Self {
        Self { rate, channels }
    }

    /// The engine's own format: 16 kHz mono.
    pub const PCM16K_MONO: Self = Self::new(PCM16K_RATE, 1);

    /// Device frames (samples per channel) in 20 ms.
    pub const fn frame_len(&self) -> usize {
        (self.rate / FRAMES_PER_SECOND) as usize
    }
}

/// Which resampling engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ResamplerMode {
    /// Fixed ratio, FFT based, 5 ms delay per direction, lowest cost.
    #[default]
    LowDelay,
    /// Adjustable ratio (Blackman-windowed sinc): follows a drifting device clock
    /// through `set_ratio_relative`. About 1.5 ms delay per direction.
    DriftFollowing,
}

/// A resampler could not be built for a device format (configuration error: pick a
/// supported format).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResamplerSetupError {
    /// The rate is not one of [`SUPPORTED_RATES`].
    #[error("unsupported device sample rate {0} Hz (supported: 8, 16, 24, 32, 44.1, 48 kHz)")]
    UnsupportedRate(u32),
    /// The channel count is zero or above [`MAX_CHANNELS`].
    #[error("unsupported channel count {0} (supported: 1..=8)")]
    UnsupportedChannels(u16),
    /// The resampling library refused the configuration.
    #[error("resampler construction failed: {0}")]
    Backend(String),
}

/// A resampling call failed. Small and `Copy`: returned from the per-frame path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResampleError {
    /// The caller's output buffer is shorter than `max_output_len()` (caller's fault).
    OutputTooSmall {
        /// Values the buffer must hold.
        needed: usize,
    },
    /// The resampling library failed (a bug: buffers are sized at construction).
    Backend,
}

impl std::fmt::Display for ResampleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OutputTooSmall { needed } => {
                write!(f, "output buffer too small: needs {needed} values")
            }
            Self::Backend => f.write_str("resampling library failed"),
        }
    }
}

impl std::error::Error for ResampleError {}

/// The resampling ratio could not be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RatioError {
    /// The resampler runs in [`ResamplerMode::LowDelay`] (fixed ratio); build it with
    /// [`ResamplerMode::DriftFollowing`] to follow a drifting clock.
    NotAdjustable,
    /// The relative ratio is outside `1/MAX_RELATIVE_RATIO ..= MAX_RELATIVE_RATIO`.
    OutOfRange,
}

impl std::fmt::Display for RatioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAdjustable => f.write_str("fixed-ratio resampler: use DriftFollowing mode"),
            Self::OutOfRange => write!(
                f,
                "relative ratio outside 1/{MAX_RELATIVE_RATIO}..={MAX_RELATIVE_RATIO}"
            ),
        }
    }
}

impl std::error::Error for RatioError {}

fn check_format(format: DeviceFormat) -> Result<(), ResamplerSetupError> {
    if !SUPPORTED_RATES.contains(&format.rate) {
        return Err(ResamplerSetupError::UnsupportedRate(format.rate));
    }
    if format.channels == 0 || format.channels > MAX_CHANNELS {
        return Err(ResamplerSetupError::UnsupportedChannels(format.channels));
    }
    Ok(())
}

#[inline]
fn to_i16(x: f32) -> i16 {
    // `as` saturates for out-of-range floats.
    (x * 32_768.0).round() as i16
}

/// A mono resampler with fixed input chunks and its scratch buffers.
struct MonoEngine {
    /// `None` when input and output rates are equal and the ratio is fixed.
    inner: Option<Box<dyn Resampler<f32>>>,
    chunk_in: usize,
    input: Box<[f32]>,
    output: Box<[f32]>,
    ratio_relative: f64,
}

impl MonoEngine {
    fn new(rate_in: u32, rate_out: u32, mode: ResamplerMode) -> Result<Self, ResamplerSetupError> {
        let chunk_in = (rate_in / FRAMES_PER_SECOND) as usize;
        let backend =
            |e: rubato::ResamplerConstructionError| ResamplerSetupError::Backend(e.to_string());
        let inner: Option<Box<dyn Resampler<f32>>> = match mode {
            ResamplerMode::LowDelay if rate_in == rate_out => None,
            ResamplerMode::LowDelay => Some(Box::new(
                Fft::<f32>::new_custom(
                    rate_in as usize,
                    rate_out as usize,
                    chunk_in,
                    FFT_SUB_CHUNKS,
                    1,
                    WINDOW,
                    FixedSync::Input,
                )
                .map_err(backend)?,
            )),
            ResamplerMode::DriftFollowing => {
                // Cutoff at the lower Nyquist frequency (rubato scales it by the
                // ratio when decimating): the transition is centred on it.
                let params = SincInterpolationParameters::new(sinc_len(rate_in, rate_out), WINDOW)
                    .f_cutoff(1.0)
                    .oversampling_factor(256)
                    .interpolation(SincInterpolationType::Linear);
                Some(Box::new(
                    Async::<f32>::new_sinc(
                        f64::from(rate_out) / f64::from(rate_in),
                        MAX_RELATIVE_RATIO,
                        &params,
                        chunk_in,
                        1,
                        FixedAsync::Input,
                    )
                    .map_err(backend)?,
                ))
            }
        };
        let out_max = match &inner {
            Some(r) => r.output_frames_max(),
            None => chunk_in,
        };
        Ok(Self {
            inner,
            chunk_in,
            input: vec![0.0; chunk_in].into_boxed_slice(),
            output: vec![0.0; out_max].into_boxed_slice(),
            ratio_relative: 1.0,
        })
    }

    fn out_max(&self) -> usize {
        self.output.len()
    }

    fn delay(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Resamples the full input chunk; returns the output frame count.
    fn run(&mut self) -> Result<usize, ResampleError> {
        let Some(inner) = self.inner.as_mut() else {
            self.output[..self.chunk_in].copy_from_slice(&self.input);
            return Ok(self.chunk_in);
        };
        let out_len = self.output.len();
        let input = InterleavedSlice::new(&self.input[..], 1, self.chunk_in)
            .map_err(|_| ResampleError::Backend)?;
        let mut output = InterleavedSlice::new_mut(&mut self.output[..], 1, out_len)
            .map_err(|_| ResampleError::Backend)?;
        let (_, produced) = inner
            .process_into_buffer(&input, &mut output, None)
            .map_err(|_| ResampleError::Backend)?;
        Ok(produced)
    }

    fn set_ratio_relative(&mut self, rel: f64) -> Result<(), RatioError> {
        let adjustable = self
            .inner
            .as_mut()
            .and_then(|r| r.as_adjustable())
            .ok_or(RatioError::NotAdjustable)?;
        if !(rel.is_finite() && (1.0 / MAX_RELATIVE_RATIO..=MAX_RELATIVE_RATIO).contains(&rel)) {
            return Err(RatioError::OutOfRange);
        }
        adjustable
            .set_resample_ratio_relative(rel, true)
            .map_err(|_| RatioError::OutOfRange)?;
        self.ratio_relative = rel;
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(r) = self.inner.as_mut() {
            r.reset();
        }
        self.ratio_relative = 1.0;
    }
}

/// Device capture format in, 16 kHz mono out.
///
/// Input chunks may have any length (device callbacks); a trailing partial
/// interleaved frame is carried over to the next call. Output is delivered in
/// blocks of about 20 ms, each after 20 ms of device input has accumulated.
pub struct CaptureResampler {
    format: DeviceFormat,
    mode: ResamplerMode,
    engine: MonoEngine,
    fill: usize,
    carry: [i16; MAX_CHANNELS as usize],
    carry_len: usize,
    out_i16: Box<[i16]>,
}

impl std::fmt::Debug for CaptureResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureResampler")
            .field("format", &self.format)
            .field("mode", &self.mode)
            .field("ratio_relative", &self.engine.ratio_relative)
            .finish()
    }
}

impl CaptureResampler {
    /// A resampler from `device` to 16 kHz mono.
    pub fn new(device: DeviceFormat, mode: ResamplerMode) -> Result<Self, ResamplerSetupError> {
        check_format(device)?;
        let engine = MonoEngine::new(device.rate, PCM16K_RATE, mode)?;
        let out_i16 = vec![0i16; engine.out_max()].into_boxed_slice();
        Ok(Self {
            format: device,
            mode,
            engine,
            fill: 0,
            carry: [0; MAX_CHANNELS as usize],
            carry_len: 0,
            out_i16,
        })
    }

    /// The device format this resampler reads.
    pub fn format(&self) -> DeviceFormat {
        self.format
    }

    /// The engine in use.
    pub fn mode(&self) -> ResamplerMode {
        self.mode
    }

    /// Filter delay in 16 kHz samples (0 for 16 kHz devices in low-delay mode). The
    /// 20 ms input accumulation is not included: it coincides with framing.
    pub fn delay_samples(&self) -> usize {
        self.engine.delay()
    }

    /// Most 16 kHz samples one sink call can receive.
    pub fn max_block_len(&self) -> usize {
        self.out_i16.len()
    }

    /// Resamples interleaved device samples, handing each finished block of 16 kHz
    /// mono samples to `sink`.
    pub fn process(
        &mut self,
        mut interleaved: &[i16],
        mut sink: impl FnMut(&[i16]),
    ) -> Result<(), ResampleError> {
        let ch = usize::from(self.format.channels);
        if self.carry_len > 0 {
            let take = (ch - self.carry_len).min(interleaved.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&interleaved[..take]);
            self.carry_len += take;
            interleaved = &interleaved[take..];
            if self.carry_len < ch {
                return Ok(());
            }
            self.carry_len = 0;
            let carry = self.carry;
            self.mix_in(&carry[..ch], &mut sink)?;
        }
        let whole = interleaved.len() / ch * ch;
        let (frames, rest) = interleaved.split_at(whole);
        self.mix_in(frames, &mut sink)?;
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carry_len = rest.len();
        Ok(())
    }

    /// Resamples interleaved device samples into `framer`. Returns the number of
    /// 16 kHz samples the framer refused because it was full.
    pub fn process_into_framer(
        &mut self,
        interleaved: &[i16],
        framer: &mut Framer,
    ) -> Result<usize, ResampleError> {
        let mut refused = 0;
        self.process(interleaved, |block| {
            refused += block.len() - framer.push(block);
        })?;
        Ok(refused)
    }

    /// Down-mixes whole interleaved frames into the input chunk, running the
    /// resampler each time the chunk fills.
    fn mix_in(
        &mut self,
        mut frames: &[i16],
        sink: &mut impl FnMut(&[i16]),
    ) -> Result<(), ResampleError> {
        let ch = usize::from(self.format.channels);
        let chunk = self.engine.chunk_in;
        while !frames.is_empty() {
            let n = (frames.len() / ch).min(chunk - self.fill);
            let dst = &mut self.engine.input[self.fill..self.fill + n];
            let src = &frames[..n * ch];
            match ch {
                1 => {
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = f32::from(s) * (1.0 / 32_768.0);
                    }
                }
                2 => {
                    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                        *d = (f32::from(s[0]) + f32::from(s[1])) * (0.5 / 32_768.0);
                    }
                }
                _ => {
                    let scale = 1.0 / (32_768.0 * ch as f32);
                    for (d, s) in dst.iter_mut().zip(src.chunks_exact(ch)) {
                        *d = s.iter().map(|&v| f32::from(v)).sum::<f32>() * scale;
                    }
                }
            }
            self.fill += n;
            frames = &frames[n * ch..];
            if self.fill == chunk {
                self.fill = 0;
                let produced = self.engine.run()?;
                for (d, &s) in self.out_i16.iter_mut().zip(&self.engine.output[..produced]) {
                    *d = to_i16(s);
                }
                sink(&self.out_i16[..produced]);
            }
        }
        Ok(())
    }

    /// Nudges the ratio (16 kHz output per device input) by `rel` relative to
    /// nominal, smoothly over the next block. If the device clock runs fast by
    /// `ppm` (it delivers more samples per real second than its nominal rate), pass
    /// `1.0 / (1.0 + ppm * 1e-6)`. Only in [`ResamplerMode::DriftFollowing`].
    pub fn set_ratio_relative(&mut self, rel: f64) -> Result<(), RatioError> {
        self.engine.set_ratio_relative(rel)
    }

    /// The current relative ratio (1.0 = nominal).
    pub fn ratio_relative(&self) -> f64 {
        self.engine.ratio_relative
    }

    /// Forgets all buffered audio and filter state, and the ratio adjustment.
    pub fn reset(&mut self) {
        self.engine.reset();
        self.fill = 0;
        self.carry_len = 0;
    }
}

/// 16 kHz mono frames in, device playout format out.
pub struct PlayoutResampler {
    format: DeviceFormat,
    mode: ResamplerMode,
    engine: MonoEngine,
}

impl std::fmt::Debug for PlayoutResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayoutResampler")
            .field("format", &self.format)
            .field("mode", &self.mode)
            .field("ratio_relative", &self.engine.ratio_relative)
            .finish()
    }
}

impl PlayoutResampler {
    /// A resampler from 16 kHz mono to `device`.
    pub fn new(device: DeviceFormat, mode: ResamplerMode) -> Result<Self, ResamplerSetupError> {
        check_format(device)?;
        let engine = MonoEngine::new(PCM16K_RATE, device.rate, mode)?;
        Ok(Self {
            format: device,
            mode,
            engine,
        })
    }

    /// The device format this resampler writes.
    pub fn format(&self) -> DeviceFormat {
        self.format
    }

    /// The engine in use.
    pub fn mode(&self) -> ResamplerMode {
        self.mode
    }

    /// Filter delay in device frames (samples per channel).
    pub fn delay_samples(&self) -> usize {
        self.engine.delay()
    }

    /// Interleaved values one call can write: size the output buffer to this.
    pub fn max_output_len(&self) -> usize {
        self.engine.out_max() * usize::from(self.format.channels)
    }

    /// Resamples one 20 ms frame into `out` (interleaved device samples, every
    /// channel the same). Returns the number of values written (frames × channels);
    /// exactly 20 ms worth at the nominal ratio.
    pub fn process(
        &mut self,
        frame: &[i16; FRAME_SAMPLES],
        out: &mut [i16],
    ) -> Result<usize, ResampleError> {
        let ch = usize::from(self.format.channels);
        if out.len() < self.max_output_len() {
            return Err(ResampleError::OutputTooSmall {
                needed: self.max_output_len(),
            });
        }
        for (d, &s) in self.engine.input.iter_mut().zip(frame.iter()) {
            *d = f32::from(s) * (1.0 / 32_768.0);
        }
        let produced = self.engine.run()?;
        let src = &self.engine.output[..produced];
        match ch {
            1 => {
                for (d, &s) in out.iter_mut().zip(src) {
                    *d = to_i16(s);
                }
            }
            _ => {
                for (d, &s) in out.chunks_exact_mut(ch).zip(src) {
                    d.fill(to_i16(s));
                }
            }
        }
        Ok(produced * ch)
    }

    /// Nudges the ratio (device output per 16 kHz input) by `rel` relative to
    /// nominal. If the device consumes fast by `ppm`, pass `1.0 + ppm * 1e-6`.
    /// Only in [`ResamplerMode::DriftFollowing`].
    pub fn set_ratio_relative(&mut self, rel: f64) -> Result<(), RatioError> {
        self.engine.set_ratio_relative(rel)
    }

    /// The current relative ratio (1.0 = nominal).
    pub fn ratio_relative(&self) -> f64 {
        self.engine.ratio_relative
    }

    /// Forgets all filter state and the ratio adjustment.
    pub fn reset(&mut self) {
        self.engine.reset();
    }
}

/// Turns the fill level of a device-side buffer into the relative ratio for a
/// [`ResamplerMode::DriftFollowing`] resampler, so a device clock that drifts
/// against the media clock neither underruns nor piles up latency.
///
/// Call [`DriftController::update`] once per 20 ms tick with the buffer level, and
/// pass the result to `set_ratio_relative`. Convention: a level above target means
/// "produce fewer samples per input" (the result drops below 1.0). That fits both
/// directions: for playout, the level is the playback ring's queued samples; for
/// capture, the 16 kHz samples still waiting after the tick took its frame.
///
/// It is a proportional-integral loop on the smoothed level error (in seconds) with
/// a 10 s time constant, critically damped, and the output clamped to ±0.5 %.
/// A steady drift of `d` leaves no level error once settled; the transient error
/// peaks near `d × 10 s` (3 ms for 300 ppm).
///
/// # Realtime safety
/// Plain arithmetic on a few floats.
#[derive(Debug, Clone)]
pub struct DriftController {
    target: f64,
    rate: f64,
    smoothed: Option<f64>,
    integral: f64,
    rel: f64,
}

impl DriftController {
    /// Proportional gain, per second.
    const KP: f64 = 0.1;
    /// Integral gain, per second squared (KP² / 4: critically damped).
    const KI: f64 = Self::KP * Self::KP / 4.0;
    /// Level smoothing per update.
    const SMOOTHING: f64 = 0.1;
    /// Largest correction: ±0.5 %.
    const MAX_DEVIATION: f64 = 0.005;
    /// Seconds between updates.
    const TICK_S: f64 = 0.02;

    /// A controller holding the level at `target_level` samples of a buffer that
    /// runs at `rate` samples per second (per channel or interleaved, as long as
    /// `update` uses the same unit).
    pub fn new(target_level: usize, rate: u32) -> Self {
        Self {
            target: target_level as f64,
            rate: f64::from(rate.max(1)),
            smoothed: None,
            integral: 0.0,
            rel: 1.0,
        }
    }

    /// Feeds the current buffer level; returns the relative ratio to apply.
    pub fn update(&mut self, level: usize) -> f64 {
        let level = level as f64;
        let smoothed = match self.smoothed {
            Some(s) => s + Self::SMOOTHING * (level - s),
            None => level,
        };
        self.smoothed = Some(smoothed);
        let error = (smoothed - self.target) / self.rate;
        let integral = self.integral + error * Self::TICK_S;
        let correction = Self::KP * error + Self::KI * integral;
        // Anti-windup: only integrate while the output is not saturated.
        if correction.abs() <= Self::MAX_DEVIATION {
            self.integral = integral;
        }
        let correction = correction.clamp(-Self::MAX_DEVIATION, Self::MAX_DEVIATION);
        self.rel = 1.0 - correction;
        self.rel
    }

    /// The last ratio returned (1.0 before the first update).
    pub fn ratio_relative(&self) -> f64 {
        self.rel
    }

    /// The smoothed level in samples (`None` before the first update).
    pub fn smoothed_level(&self) -> Option<f64> {
        self.smoothed
    }
}

#[cfg(test)]
#[path = "resample_tests.rs"]
mod tests;
