//! The receive → playback half: where received frames come from ([`FrameInput`]), where
//! they go ([`PlaybackEnd`]), and the bridge thread's part ([`PlaybackCore`]).

use media_core::call::AudioFrame;
use media_core::frame::{FRAME_MS, Pcm16kFrame};
use media_core::resample::{DeviceFormat, PlayoutResampler, ResamplerMode};
use ringbuf::HeapRb;
use ringbuf::traits::{Consumer, Observer, Split};
use tokio::sync::mpsc;

use super::control::{FillController, Settle, Settled};
use super::stats::{FirstError, PlaybackStats, RatioStats};
use super::{
    BridgeConfig, BridgeError, MAX_FRAMES_PER_TICK, MIN_RING_MS, check_format, ms_of, samples_in,
    unsupported,
};
use crate::{
    DeviceSelector, HeapCons, HeapProd, PlaybackStream, SampleSink, StreamFormat, WavSink,
    push_frames,
};

/// Where received frames come from.
pub enum FrameInput {
    /// The call's frame channel (the media platform's `AudioSocket::take_frames`). When
    /// it closes (the call ended) the bridge finishes.
    Channel(mpsc::Receiver<AudioFrame>),
    /// An SPSC ring fed from one other thread ([`FrameInput::ring`]), e.g. by a frame
    /// callback on the call's task. Never finishes by itself.
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
    /// A ring of `capacity` frames (at least 1): push received frames into the producer
    /// from any one thread; the bridge drains the consumer. A full ring refuses the frame
    /// (`try_push` hands it back): the producer drops it.
    ///
    /// With the media platform, a frame callback on the call's task feeds it, with no
    /// channel in between: create the call's media with
    /// `MediaPlatform::create_media_configuration_with(id, FrameDelivery::Callback(cb))`
    /// where the callback pushes each frame's samples:
    ///
    /// ```no_run
    /// use devices::ringbuf::traits::Producer;
    /// use devices::{BridgeConfig, DeviceBridge, DeviceSelector, FrameInput, PlaybackEnd};
    /// use platform::{AudioFrame, AudioSender, FrameDelivery, MediaPlatform, MediaPlatformSettings};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let platform = MediaPlatform::start(MediaPlatformSettings::dev_loopback())?;
    /// let (mut prod, input) = FrameInput::ring(50); // one second
    /// let delivery = FrameDelivery::Callback(Box::new(move |f: &AudioFrame, _: &AudioSender| {
    ///     let _ = prod.try_push(f.samples); // full: the frame is dropped
    /// }));
    /// let (_blob, _socket) =
    ///     platform.create_media_configuration_with(uuid::Uuid::new_v4(), delivery)?;
    /// let bridge = DeviceBridge::builder(BridgeConfig::default())
    ///     .playback(PlaybackEnd::device(&DeviceSelector::default(), Default::default())?, input)
    ///     .start()?;
    /// # drop(bridge);
    /// # Ok(()) }
    /// ```
    pub fn ring(capacity: usize) -> (HeapProd<Pcm16kFrame>, FrameInput) {
        let (prod, cons) = HeapRb::<Pcm16kFrame>::new(capacity.max(1)).split();
        (prod, FrameInput::Ring(cons))
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

pub(crate) enum PlaybackOut {
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
pub(crate) struct PlaybackCore {
    input: FrameInput,
    pub(crate) out: PlaybackOut,
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
    /// The frame input closed: the call ended.
    pub(crate) input_closed: bool,
    settle: Settle,
    /// Device frames still to skip from the resampled output (a re-centring slip).
    skip: usize,
    /// This side's counters, owned here and published by the thread.
    pub(crate) stats: PlaybackStats,
}

/// A playback side ready to run, and what the handle keeps of it.
pub(crate) struct PlaybackParts {
    pub core: PlaybackCore,
    pub stream: Option<PlaybackStream>,
    pub format: DeviceFormat,
    pub label: String,
}

impl PlaybackCore {
    /// Builds the resampler, buffers and controller for `end` (everything a tick uses).
    pub(crate) fn build(
        end: PlaybackEnd,
        input: FrameInput,
        config: &BridgeConfig,
    ) -> Result<PlaybackParts, BridgeError> {
        let f = end.format;
        let resampler =
            PlayoutResampler::new(f, config.mode).map_err(|e| unsupported(&end.label, f, e))?;
        let frame_len = f.frame_len();
        let target = samples_in(config.playback_target, f.rate).max(frame_len);
        let high = target + samples_in(config.max_excess, f.rate);
        let drift = config.mode == ResamplerMode::DriftFollowing;
        let mut stream = None;
        let (out, ctl) = match end.kind {
            PlaybackKind::Device { stream: s, prod } => {
                let capacity = prod.capacity().get() / usize::from(f.channels);
                if capacity < high + 2 * frame_len {
                    return Err(BridgeError::InvalidConfig(format!(
                        "{}: ring of {capacity} frames cannot hold the target plus \
                         max_excess ({high} frames) and two ticks; raise ring_ms",
                        end.label
                    )));
                }
                stream = Some(s);
                let ctl = drift.then(|| FillController::new(target, f.rate, config.controller));
                (PlaybackOut::Ring(prod), ctl)
            }
            PlaybackKind::Wav(w) => (PlaybackOut::Wav(w), None),
            PlaybackKind::Sink(s) => (PlaybackOut::Sink(s), None),
        };
        let ch = usize::from(f.channels);
        let core = PlaybackCore {
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
            label: end.label.clone(),
            stats: PlaybackStats::starting(ms_of(config.playback_target)),
        };
        Ok(PlaybackParts {
            core,
            stream,
            format: f,
            label: end.label,
        })
    }

    /// One tick: takes what was received, resamples and writes it; pads a starved ring;
    /// holds the ring's level. Realtime safe (see the module documentation).
    pub(crate) fn tick(&mut self, errors: &mut FirstError) {
        let received = self.take_input(errors);
        let PlaybackOut::Ring(prod) = &mut self.out else {
            return;
        };
        let st = &mut self.stats;
        let mut level = prod.occupied_len() / self.channels;
        if received == 0 && (self.state == PlaybackState::Starved || level < self.frame_len) {
            if self.state == PlaybackState::Playing {
                st.starvations += 1;
                self.state = PlaybackState::Starved;
            }
            // Pad up to the target.
            while level + self.frame_len <= self.target
                && push_frames(prod, &self.silence, self.channels as u16) > 0
            {
                st.padded_frames += 1;
                level += self.frame_len;
            }
        }
        st.level_ms = level as f64 * 1000.0 / f64::from(self.rate);
        if self.state != PlaybackState::Playing {
            return;
        }
        let Some(ctl) = self.ctl.as_mut() else {
            return;
        };
        if !self.settle.done() {
            match self.settle.feed(level, self.target, self.frame_len, ctl) {
                None | Some(Settled::Adopted) => {}
                Some(Settled::Slip(by)) => {
                    let frames = by.abs().round() as usize;
                    let ch = self.channels;
                    if by < 0.0 {
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
                    st.recentres += 1;
                    st.recentred_ms += by * 1000.0 / f64::from(self.rate);
                }
            }
        } else {
            let rel = ctl.update(level);
            match self.resampler.set_ratio_relative(rel) {
                Ok(()) => st.set_ratio(rel),
                Err(e) => {
                    st.errors += 1;
                    errors.record(|| format!("{}: playback ratio {rel}: {e}", self.label));
                }
            }
        }
    }

    /// Moves up to [`MAX_FRAMES_PER_TICK`] received frames through the resampler to the
    /// ring or sink; returns how many were taken.
    fn take_input(&mut self, errors: &mut FirstError) -> usize {
        let st = &mut self.stats;
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
            st.frames_received += 1;
            if let PlaybackOut::Ring(prod) = &self.out
                && prod.occupied_len() / self.channels > self.high
            {
                st.dropped_frames += 1;
                continue;
            }
            let n = match self.resampler.process(frame.samples(), &mut self.buf) {
                Ok(n) => n,
                Err(e) => {
                    st.errors += 1;
                    errors.record(|| format!("{}: playback resampling failed: {e}", self.label));
                    continue;
                }
            };
            let skipped = self.skip.min(n / self.channels);
            self.skip -= skipped;
            let samples = &self.buf[skipped * self.channels..n];
            let written = match &mut self.out {
                PlaybackOut::Ring(prod) => {
                    let pushed = push_frames(prod, samples, self.channels as u16);
                    st.ring_overflow_samples += (samples.len() - pushed) as u64;
                    Ok(pushed)
                }
                PlaybackOut::Wav(w) => w.write(samples),
                PlaybackOut::Sink(s) => s.write(samples),
            };
            if let Err(e) = written {
                st.errors += 1;
                errors.record(|| format!("{}: write failed: {e}", self.label));
            }
            st.frames_played += 1;
            if self.state == PlaybackState::Starved {
                self.state = PlaybackState::Playing;
                self.settle.restart();
            }
        }
        received
    }
}
