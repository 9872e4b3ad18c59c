//! The capture → send half: where sent audio comes from ([`CaptureEnd`]) and the bridge
//! thread's part ([`CaptureCore`]).

use media_core::call::{AudioSender, EnqueueError};
use media_core::frame::{FRAME_SAMPLES, PCM16K_RATE, Pcm16kFrame};
use media_core::framer::Framer;
use media_core::resample::{CaptureResampler, DeviceFormat, ResampleError, ResamplerMode};
use ringbuf::traits::Consumer;

use super::control::{FillController, Settle, Settled};
use super::stats::{CaptureStats, FirstError, RatioStats};
use super::{
    BridgeConfig, BridgeError, MAX_FRAMES_PER_TICK, MIN_RING_MS, check_format, ms_of, samples_in,
    unsupported,
};
use crate::{CaptureStream, DeviceSelector, HeapCons, SampleSource, StreamFormat};

/// Capture scratch buffer, in interleaved values.
const CAPTURE_SCRATCH: usize = 8_192;
/// Ticks without the call taking a frame after which captured audio is held back.
const STALLED_AFTER_TICKS: u32 = 10;

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

    /// Any [`SampleSource`] (a [`WavSource`](crate::WavSource)) as the capture side: it is
    /// read one tick's worth (20 ms at its rate) per tick while the call is sending. No
    /// clock, no drift control: for clocked devices use [`CaptureEnd::device`]. `label`
    /// names it.
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
) -> Result<usize, ResampleError> {
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
pub(crate) struct CaptureCore {
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
    /// This side's counters, owned here and published by the thread.
    pub(crate) stats: CaptureStats,
}

/// A capture side ready to run, and what the handle keeps of it.
pub(crate) struct CaptureParts {
    pub core: CaptureCore,
    pub stream: Option<CaptureStream>,
    pub format: DeviceFormat,
    pub label: String,
}

impl CaptureCore {
    /// Builds the resampler, framer, buffers and controller for `end`.
    pub(crate) fn build(
        end: CaptureEnd,
        sender: AudioSender,
        config: &BridgeConfig,
    ) -> Result<CaptureParts, BridgeError> {
        let f = end.format;
        let resampler =
            CaptureResampler::new(f, config.mode).map_err(|e| unsupported(&end.label, f, e))?;
        let target = samples_in(config.capture_target, PCM16K_RATE);
        let high = target + samples_in(config.max_excess, PCM16K_RATE);
        let drift = config.mode == ResamplerMode::DriftFollowing;
        let mut stream = None;
        let (input, ctl) = match end.kind {
            CaptureKind::Device { stream: s, cons } => {
                stream = Some(s);
                let ctl =
                    drift.then(|| FillController::new(target, PCM16K_RATE, config.controller));
                (CaptureIn::Ring(cons), ctl)
            }
            CaptureKind::Source(s) => (CaptureIn::Source(s), None),
        };
        let ch = usize::from(f.channels);
        let per_tick = f.frame_len() * ch;
        // Room for the excess, a late tick's worth of device audio, and a margin.
        let framer_frames = (high + resampler.max_block_len()) / FRAME_SAMPLES + 8;
        let core = CaptureCore {
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
            label: end.label.clone(),
            stats: CaptureStats::starting(ms_of(config.capture_target)),
        };
        Ok(CaptureParts {
            core,
            stream,
            format: f,
            label: end.label,
        })
    }

    /// One tick: takes what was captured through the resampler into the framer, keeps
    /// the call's send queue topped up, holds the framer's level. Realtime safe.
    pub(crate) fn tick(&mut self, errors: &mut FirstError) {
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
        self.pull(errors);
        if stalled {
            while self.framer.buffered() > self.target && self.framer.pop_frame(&mut self.frame) {
                self.stats.discarded_idle_frames += 1;
            }
        } else {
            if self.state == CaptureState::Priming
                && self.framer.buffered() >= self.target + FRAME_SAMPLES
            {
                self.state = CaptureState::Running;
                self.settle.restart();
            }
            self.top_up();
        }
        self.last_queued = self.sender.queued();
        let st = &mut self.stats;
        let mut level = self.framer.buffered();
        if level > self.high {
            while level > self.target && self.framer.pop_frame(&mut self.frame) {
                st.dropped_frames += 1;
                level = self.framer.buffered();
            }
        }
        st.level_ms = level as f64 * 1000.0 / f64::from(PCM16K_RATE);
        if self.state != CaptureState::Running || stalled {
            return;
        }
        let Some(ctl) = self.ctl.as_mut() else {
            return;
        };
        if !self.settle.done() {
            match self.settle.feed(level, self.target, FRAME_SAMPLES, ctl) {
                None | Some(Settled::Adopted) => {}
                Some(Settled::Slip(by)) => {
                    let samples = by.abs().round() as usize;
                    if by < 0.0 {
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
                    st.recentres += 1;
                    st.recentred_ms += by * 1000.0 / f64::from(PCM16K_RATE);
                }
            }
        } else {
            let rel = ctl.update(level);
            match self.resampler.set_ratio_relative(rel) {
                Ok(()) => st.set_ratio(rel),
                Err(e) => {
                    st.errors += 1;
                    errors.record(|| format!("{}: capture ratio {rel}: {e}", self.label));
                }
            }
        }
    }

    /// Moves captured audio through the resampler into the framer: everything a device
    /// delivered; from a source (no clock), what keeps the framer at the target, so a
    /// file is read at the call's pace and waits while the call takes no audio.
    fn pull(&mut self, errors: &mut FirstError) {
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
        self.stats.framer_overflow_samples += refused as u64;
        if let Some(e) = failed {
            self.stats.errors += 1;
            errors.record(|| format!("{}: capture resampling failed: {e}", self.label));
        }
    }

    /// Keeps `queue_frames` frames in the call's send queue.
    fn top_up(&mut self) {
        let st = &mut self.stats;
        while self.sender.queued() < self.queue_frames {
            let captured =
                self.state == CaptureState::Running && self.framer.pop_frame(&mut self.frame);
            if !captured {
                if self.state == CaptureState::Running {
                    st.underruns += 1;
                    self.state = CaptureState::Priming;
                }
                self.frame.fill(0);
            }
            match self.sender.enqueue(&Pcm16kFrame::new(self.frame)) {
                Ok(()) if captured => st.frames_sent += 1,
                Ok(()) => st.padded_frames += 1,
                Err(EnqueueError::Full) => {
                    st.send_queue_full += 1;
                    break;
                }
                Err(_) => break,
            }
        }
    }
}
