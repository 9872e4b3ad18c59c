//! Playback and capture streams bridged to lock-free SPSC rings.
//!
//! # Realtime safety
//!
//! The data callbacks run on the audio host's thread and must never block it. They only move
//! samples between the device buffer and the ring:
//!
//! - no allocation: conversion (`f32` devices) goes through a fixed stack buffer, and a partial
//!   frame is kept in a fixed array inside the callback state;
//! - no locks and no system calls: the ring is a wait-free SPSC ring (ringbuf), the counters
//!   are `AtomicU64`s updated with `Relaxed` ordering;
//! - no logging, no panics on the data path (no `unwrap`, slices are bounds-derived);
//! - underruns (ring empty when the device wants samples) play silence and are counted;
//!   overruns (ring full when the device delivers samples) drop whole frames and are counted.
//!
//! The rings only ever carry whole interleaved frames: the capture callback pushes whole
//! frames (a frame split across two device buffers is completed first), the playback callback
//! pops whole frames (a frame split across two device buffers is finished in the next call).
//! Producers feeding a playback ring should push whole frames too ([`push_frames`]).
//!
//! The error callback is not on the data path; it counts errors and keeps the last message
//! behind a mutex.
//!
//! This covers the code this crate runs in the callback. The host's own wrapper around it is
//! cpal's: its PulseAudio host, for one, signals a condvar (a short mutex) after every callback
//! to wake its latency-polling thread, and its record callbacks arrive in small pieces (a few
//! frames each on a null-sink monitor, whatever `BufferSize::Fixed` asked for). Also note that
//! with `BufferSize::Fixed`, cpal sets PulseAudio's record buffer (`max_length`) to one period:
//! a client thread starved of CPU for longer than that loses audio inside the server, where the
//! ring counters cannot see it ([`crate::loopback`] detects it as a timeline slip). Its playback
//! buffer is two periods (40 ms at 20 ms callbacks, asked for again when 20 ms are left): data
//! that reaches the server later than that (a late client, or a late server main thread, which
//! carries every client's audio between its socket and the sink) finds the stream underrun; the
//! server plays silence and keeps the late audio, so the stream's timeline slips and the device
//! seems to run slow (fewer callbacks than its clock allows), again out of the counters' sight.
//! `scripts/start-pulse.sh` runs the test server's main thread realtime for that reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use serde::Serialize;

use crate::host::resolve;
use crate::{DeviceError, DeviceSelector, Direction, HostKind};

/// The most channels a frame may have (PulseAudio's limit).
pub const MAX_CHANNELS: usize = 32;
/// Stack buffer for converting samples in the callbacks.
const SCRATCH: usize = 1024;
/// How long stream creation may take before it is reported as failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Sample type exchanged with the device. The rings always carry `i16`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleType {
    /// 16-bit signed integers, no conversion.
    #[default]
    I16,
    /// 32-bit floats, converted in the callback (without allocation).
    F32,
}

/// What to open: rate, channels, callback size, ring size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFormat {
    /// Frames per second; `None`: the device's default rate.
    pub sample_rate: Option<u32>,
    /// Channels; `None`: the device's default channel count.
    pub channels: Option<u16>,
    /// Frames per device callback (`BufferSize::Fixed`); `None`: 20 ms at the rate (320 at
    /// 16 kHz, 960 at 48 kHz).
    pub buffer_frames: Option<u32>,
    /// Sample type exchanged with the device.
    pub sample_type: SampleType,
    /// Ring capacity in milliseconds of audio (rounded up to whole frames).
    pub ring_ms: u32,
    /// Playback only: milliseconds of silence put in the ring before the stream starts, a
    /// cushion against the first engine tick arriving after the first device callback.
    pub prefill_ms: u32,
}

impl Default for StreamFormat {
    fn default() -> Self {
        Self {
            sample_rate: None,
            channels: None,
            buffer_frames: None,
            sample_type: SampleType::I16,
            ring_ms: 200,
            prefill_ms: 0,
        }
    }
}

impl StreamFormat {
    /// The engine's own format: 16 kHz mono, 320-frame (20 ms) callbacks.
    pub fn pcm16k_mono() -> Self {
        Self::with_rate_channels(16_000, 1)
    }

    /// A fixed rate and channel count, other fields default.
    pub fn with_rate_channels(sample_rate: u32, channels: u16) -> Self {
        Self {
            sample_rate: Some(sample_rate),
            channels: Some(channels),
            ..Self::default()
        }
    }
}

/// The format a stream was opened with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenedFormat {
    /// The host.
    pub host: HostKind,
    /// The device, as `host:id`.
    pub device: String,
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Frames per callback requested (`BufferSize::Fixed`).
    pub buffer_frames: u32,
    /// Sample type exchanged with the device.
    pub sample_type: SampleType,
    /// Ring capacity in frames.
    pub ring_frames: usize,
}

/// Callback counters, shared between the callback and the stream handle.
#[derive(Debug, Default)]
struct Counters {
    callbacks: AtomicU64,
    frames: AtomicU64,
    underruns: AtomicU64,
    underrun_frames: AtomicU64,
    overruns: AtomicU64,
    overrun_frames: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> CounterSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            callbacks: g(&self.callbacks),
            frames: g(&self.frames),
            underruns: g(&self.underruns),
            underrun_frames: g(&self.underrun_frames),
            overruns: g(&self.overruns),
            overrun_frames: g(&self.overrun_frames),
            errors: g(&self.errors),
        }
    }
}

/// A copy of a stream's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    /// Data callbacks so far.
    pub callbacks: u64,
    /// Frames moved between device and ring.
    pub frames: u64,
    /// Playback callbacks that found too few frames in the ring (and played silence).
    pub underruns: u64,
    /// Frames of silence played because of underruns.
    pub underrun_frames: u64,
    /// Capture callbacks that found the ring full (and dropped frames).
    pub overruns: u64,
    /// Frames dropped because of overruns.
    pub overrun_frames: u64,
    /// Errors the host reported through the error callback.
    pub errors: u64,
}

impl CounterSnapshot {
    /// Counter increments from `earlier` to `self`.
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            callbacks: self.callbacks.saturating_sub(earlier.callbacks),
            frames: self.frames.saturating_sub(earlier.frames),
            underruns: self.underruns.saturating_sub(earlier.underruns),
            underrun_frames: self.underrun_frames.saturating_sub(earlier.underrun_frames),
            overruns: self.overruns.saturating_sub(earlier.overruns),
            overrun_frames: self.overrun_frames.saturating_sub(earlier.overrun_frames),
            errors: self.errors.saturating_sub(earlier.errors),
        }
    }
}

/// A device sample type the callbacks convert to and from `i16`.
trait DeviceSample: Copy + Send + 'static {
    const SILENCE: Self;
    fn from_i16(s: i16) -> Self;
    fn to_i16(self) -> i16;
}

impl DeviceSample for i16 {
    const SILENCE: Self = 0;
    fn from_i16(s: i16) -> Self {
        s
    }
    fn to_i16(self) -> i16 {
        self
    }
}

impl DeviceSample for f32 {
    const SILENCE: Self = 0.0;
    fn from_i16(s: i16) -> Self {
        f32::from(s) / 32768.0
    }
    fn to_i16(self) -> i16 {
        // `as` saturates (and maps NaN to 0).
        (self * 32768.0).round() as i16
    }
}

/// State of a playback callback: ring consumer, a partial frame, counters.
struct PlaybackState {
    cons: HeapCons<i16>,
    channels: usize,
    pend: [i16; MAX_CHANNELS],
    pend_pos: usize,
    pend_len: usize,
    counters: Arc<Counters>,
}

impl PlaybackState {
    /// Fills a device buffer from the ring; silence where the ring runs dry. Realtime safe.
    fn fill<T: DeviceSample>(&mut self, out: &mut [T]) {
        let ch = self.channels;
        let mut i = 0;
        let mut silent = 0usize;
        let mut played = 0usize;
        // The rest of a frame started in the previous callback.
        while self.pend_pos < self.pend_len && i < out.len() {
            out[i] = T::from_i16(self.pend[self.pend_pos]);
            self.pend_pos += 1;
            i += 1;
        }
        let mut scratch = [0i16; SCRATCH];
        let chunk_max = (SCRATCH / ch) * ch;
        let mut starved = false;
        while out.len() - i >= ch {
            let want = (((out.len() - i) / ch) * ch).min(chunk_max);
            let got = if starved {
                0
            } else {
                self.cons.pop_slice(&mut scratch[..want])
            };
            for (o, s) in out[i..i + got].iter_mut().zip(&scratch[..got]) {
                *o = T::from_i16(*s);
            }
            for o in &mut out[i + got..i + want] {
                *o = T::SILENCE;
            }
            played += got;
            if got < want {
                starved = true;
                silent += want - got;
            }
            i += want;
        }
        // A buffer ending inside a frame: pop the whole frame, write its head now.
        if i < out.len() {
            let got = if starved {
                0
            } else {
                self.cons.pop_slice(&mut self.pend[..ch])
            };
            self.pend[got..ch].fill(0);
            played += got;
            silent += ch - got;
            self.pend_len = ch;
            self.pend_pos = 0;
            while i < out.len() {
                out[i] = T::from_i16(self.pend[self.pend_pos]);
                self.pend_pos += 1;
                i += 1;
            }
        }
        let c = &self.counters;
        c.callbacks.fetch_add(1, Ordering::Relaxed);
        c.frames.fetch_add((played / ch) as u64, Ordering::Relaxed);
        if silent > 0 {
            c.underruns.fetch_add(1, Ordering::Relaxed);
            c.underrun_frames
                .fetch_add(silent.div_ceil(ch) as u64, Ordering::Relaxed);
        }
    }
}

/// State of a capture callback: ring producer, a partial frame, counters.
struct CaptureState {
    prod: HeapProd<i16>,
    channels: usize,
    pend: [i16; MAX_CHANNELS],
    pend_len: usize,
    counters: Arc<Counters>,
}

impl CaptureState {
    /// Moves a device buffer into the ring, whole frames only; drops frames the ring has no
    /// room for. Realtime safe.
    fn take<T: DeviceSample>(&mut self, data: &[T]) {
        let ch = self.channels;
        let mut i = 0;
        let mut pushed = 0usize;
        let mut dropped = 0usize;
        if self.pend_len > 0 {
            while self.pend_len < ch && i < data.len() {
                self.pend[self.pend_len] = data[i].to_i16();
                self.pend_len += 1;
                i += 1;
            }
            if self.pend_len == ch {
                if self.prod.vacant_len() >= ch {
                    self.prod.push_slice(&self.pend[..ch]);
                    pushed += 1;
                } else {
                    dropped += 1;
                }
                self.pend_len = 0;
            }
        }
        let mut scratch = [0i16; SCRATCH];
        let chunk_max = (SCRATCH / ch) * ch;
        while data.len() - i >= ch {
            let n = (((data.len() - i) / ch) * ch).min(chunk_max);
            let room = (self.prod.vacant_len() / ch) * ch;
            let keep = n.min(room);
            for (s, d) in scratch[..keep].iter_mut().zip(&data[i..i + keep]) {
                *s = d.to_i16();
            }
            self.prod.push_slice(&scratch[..keep]);
            pushed += keep / ch;
            dropped += (n - keep) / ch;
            i += n;
        }
        while i < data.len() {
            self.pend[self.pend_len] = data[i].to_i16();
            self.pend_len += 1;
            i += 1;
        }
        let c = &self.counters;
        c.callbacks.fetch_add(1, Ordering::Relaxed);
        c.frames.fetch_add(pushed as u64, Ordering::Relaxed);
        if dropped > 0 {
            c.overruns.fetch_add(1, Ordering::Relaxed);
            c.overrun_frames
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
    }
}

/// Pushes as many whole frames of `samples` as the ring has room for; returns the number of
/// samples pushed (a multiple of `channels`).
pub fn push_frames(prod: &mut HeapProd<i16>, samples: &[i16], channels: u16) -> usize {
    let ch = usize::from(channels.max(1));
    let room = (prod.vacant_len() / ch) * ch;
    let n = ((samples.len() / ch) * ch).min(room);
    prod.push_slice(&samples[..n])
}

/// Shared by both stream kinds: the cpal stream, counters and last error.
struct StreamCore {
    // Dropping the cpal stream stops it.
    stream: cpal::Stream,
    counters: Arc<Counters>,
    last_error: Arc<Mutex<Option<String>>>,
    format: OpenedFormat,
}

impl StreamCore {
    /// Starts the stream `built` made for `direction`: errors name the step that failed.
    fn start(
        built: Result<cpal::Stream, cpal::Error>,
        direction: Direction,
        counters: Arc<Counters>,
        last_error: Arc<Mutex<Option<String>>>,
        format: OpenedFormat,
    ) -> Result<Self, DeviceError> {
        let (build, start) = match direction {
            Direction::Input => ("build input stream", "start input stream"),
            Direction::Output => ("build output stream", "start output stream"),
        };
        let stream = built.map_err(|e| DeviceError::device(&format.device, build, e))?;
        stream
            .play()
            .map_err(|e| DeviceError::device(&format.device, start, e))?;
        Ok(Self {
            stream,
            counters,
            last_error,
            format,
        })
    }

    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

fn error_callback(
    counters: &Arc<Counters>,
    last_error: &Arc<Mutex<Option<String>>>,
) -> impl FnMut(cpal::Error) + Send + 'static {
    let counters = Arc::clone(counters);
    let last_error = Arc::clone(last_error);
    move |e: cpal::Error| {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = last_error.lock() {
            *g = Some(format!("{e} ({:?})", e.kind()));
        }
    }
}

/// Resolves the device and the stream configuration.
fn plan(
    sel: &DeviceSelector,
    direction: Direction,
    fmt: &StreamFormat,
) -> Result<(cpal::Device, OpenedFormat, cpal::StreamConfig), DeviceError> {
    let r = resolve(sel, direction)?;
    let default = match direction {
        Direction::Output => r.device.default_output_config(),
        Direction::Input => r.device.default_input_config(),
    };
    let (def_rate, def_ch) = match (&default, fmt.sample_rate, fmt.channels) {
        (_, Some(rate), Some(ch)) => (rate, ch),
        (Ok(c), rate, ch) => (rate.unwrap_or(c.sample_rate()), ch.unwrap_or(c.channels())),
        (Err(e), _, _) => {
            return Err(DeviceError::device(
                &r.label,
                "read default config",
                e.clone(),
            ));
        }
    };
    let sample_rate = def_rate;
    let channels = def_ch;
    if sample_rate == 0 || channels == 0 || usize::from(channels) > MAX_CHANNELS {
        return Err(DeviceError::Unsupported {
            device: r.label,
            detail: format!("{sample_rate} Hz, {channels} channels"),
        });
    }
    let buffer_frames = fmt
        .buffer_frames
        .unwrap_or_else(|| (sample_rate / 50).max(1));
    let ring_frames = ((u64::from(sample_rate) * u64::from(fmt.ring_ms.max(1))).div_ceil(1000)
        as usize)
        .max(2 * buffer_frames as usize);
    let config = cpal::StreamConfig {
        channels,
        sample_rate,
        buffer_size: cpal::BufferSize::Fixed(buffer_frames),
    };
    let opened = OpenedFormat {
        host: r.host,
        device: r.label,
        sample_rate,
        channels,
        buffer_frames,
        sample_type: fmt.sample_type,
        ring_frames,
    };
    Ok((r.device, opened, config))
}

/// A running playback stream. The engine feeds it through the ring producer returned by
/// [`PlaybackStream::open`]; dropping it stops the device.
pub struct PlaybackStream {
    core: StreamCore,
}

impl PlaybackStream {
    /// Opens and starts a playback stream on the selected output device; returns it with the
    /// producer end of its ring (interleaved `i16` at the stream's rate and channels).
    pub fn open(
        sel: &DeviceSelector,
        fmt: StreamFormat,
    ) -> Result<(PlaybackStream, HeapProd<i16>), DeviceError> {
        let (device, format, config) = plan(sel, Direction::Output, &fmt)?;
        let ch = usize::from(format.channels);
        let (mut prod, cons) = HeapRb::<i16>::new(format.ring_frames * ch).split();
        let prefill = (u64::from(format.sample_rate) * u64::from(fmt.prefill_ms) / 1000) as usize;
        let silence = vec![0i16; prefill.min(format.ring_frames) * ch];
        prod.push_slice(&silence);
        let counters = Arc::new(Counters::default());
        let last_error = Arc::new(Mutex::new(None));
        let mut state = PlaybackState {
            cons,
            channels: ch,
            pend: [0; MAX_CHANNELS],
            pend_pos: 0,
            pend_len: 0,
            counters: Arc::clone(&counters),
        };
        let err_cb = error_callback(&counters, &last_error);
        let built = match fmt.sample_type {
            SampleType::I16 => device.build_output_stream::<i16, _, _>(
                config,
                move |out: &mut [i16], _| state.fill(out),
                err_cb,
                Some(OPEN_TIMEOUT),
            ),
            SampleType::F32 => device.build_output_stream::<f32, _, _>(
                config,
                move |out: &mut [f32], _| state.fill(out),
                err_cb,
                Some(OPEN_TIMEOUT),
            ),
        };
        let core = StreamCore::start(built, Direction::Output, counters, last_error, format)?;
        Ok((PlaybackStream { core }, prod))
    }

    /// The format the stream runs with.
    pub fn format(&self) -> &OpenedFormat {
        &self.core.format
    }

    /// The callback counters now.
    pub fn counters(&self) -> CounterSnapshot {
        self.core.counters.snapshot()
    }

    /// The last error the host reported, if any.
    pub fn last_error(&self) -> Option<String> {
        self.core.last_error()
    }

    /// Pauses the device (callbacks stop); [`PlaybackStream::resume`] restarts it.
    pub fn pause(&self) -> Result<(), DeviceError> {
        self.core
            .stream
            .pause()
            .map_err(|e| DeviceError::device(&self.core.format.device, "pause output stream", e))
    }

    /// Restarts a paused stream.
    pub fn resume(&self) -> Result<(), DeviceError> {
        self.core
            .stream
            .play()
            .map_err(|e| DeviceError::device(&self.core.format.device, "start output stream", e))
    }
}

/// A running capture stream. The engine drains it through the ring consumer returned by
/// [`CaptureStream::open`]; dropping it stops the device.
pub struct CaptureStream {
    core: StreamCore,
}

impl CaptureStream {
    /// Opens and starts a capture stream on the selected input device; returns it with the
    /// consumer end of its ring (interleaved `i16` at the stream's rate and channels).
    pub fn open(
        sel: &DeviceSelector,
        fmt: StreamFormat,
    ) -> Result<(CaptureStream, HeapCons<i16>), DeviceError> {
        let (device, format, config) = plan(sel, Direction::Input, &fmt)?;
        let ch = usize::from(format.channels);
        let (prod, cons) = HeapRb::<i16>::new(format.ring_frames * ch).split();
        let counters = Arc::new(Counters::default());
        let last_error = Arc::new(Mutex::new(None));
        let mut state = CaptureState {
            prod,
            channels: ch,
            pend: [0; MAX_CHANNELS],
            pend_len: 0,
            counters: Arc::clone(&counters),
        };
        let err_cb = error_callback(&counters, &last_error);
        let built = match fmt.sample_type {
            SampleType::I16 => device.build_input_stream::<i16, _, _>(
                config,
                move |data: &[i16], _| state.take(data),
                err_cb,
                Some(OPEN_TIMEOUT),
            ),
            SampleType::F32 => device.build_input_stream::<f32, _, _>(
                config,
                move |data: &[f32], _| state.take(data),
                err_cb,
                Some(OPEN_TIMEOUT),
            ),
        };
        let core = StreamCore::start(built, Direction::Input, counters, last_error, format)?;
        Ok((CaptureStream { core }, cons))
    }

    /// The format the stream runs with.
    pub fn format(&self) -> &OpenedFormat {
        &self.core.format
    }

    /// The callback counters now.
    pub fn counters(&self) -> CounterSnapshot {
        self.core.counters.snapshot()
    }

    /// The last error the host reported, if any.
    pub fn last_error(&self) -> Option<String> {
        self.core.last_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playback(ch: usize, cap_frames: usize) -> (PlaybackState, HeapProd<i16>, Arc<Counters>) {
        let (prod, cons) = HeapRb::<i16>::new(cap_frames * ch).split();
        let counters = Arc::new(Counters::default());
        let st = PlaybackState {
            cons,
            channels: ch,
            pend: [0; MAX_CHANNELS],
            pend_pos: 0,
            pend_len: 0,
            counters: Arc::clone(&counters),
        };
        (st, prod, counters)
    }

    fn capture(ch: usize, cap_frames: usize) -> (CaptureState, HeapCons<i16>, Arc<Counters>) {
        let (prod, cons) = HeapRb::<i16>::new(cap_frames * ch).split();
        let counters = Arc::new(Counters::default());
        let st = CaptureState {
            prod,
            channels: ch,
            pend: [0; MAX_CHANNELS],
            pend_len: 0,
            counters: Arc::clone(&counters),
        };
        (st, cons, counters)
    }

    #[test]
    fn playback_passes_samples_through_odd_buffer_sizes() {
        let (mut st, mut prod, counters) = playback(2, 1000);
        let input: Vec<i16> = (0..1000).map(|i| i as i16).collect();
        assert_eq!(prod.push_slice(&input), 1000);
        let mut played = Vec::new();
        for len in [7usize, 1, 2, 333, 3, 100, 54] {
            let mut buf = vec![-1i16; len];
            st.fill(&mut buf);
            played.extend_from_slice(&buf);
        }
        assert_eq!(played.len(), 500);
        assert_eq!(played, input[..500]);
        let c = counters.snapshot();
        assert_eq!(c.callbacks, 7);
        assert_eq!(c.underruns, 0);
    }

    #[test]
    fn playback_underrun_plays_silence_and_keeps_frames_aligned() {
        let (mut st, mut prod, counters) = playback(2, 100);
        prod.push_slice(&[1, 2, 3, 4]);
        let mut buf = [9i16; 9];
        st.fill(&mut buf);
        // Two frames, then silence; the ninth sample starts a (silent) frame.
        assert_eq!(buf, [1, 2, 3, 4, 0, 0, 0, 0, 0]);
        prod.push_slice(&[5, 6]);
        let mut buf = [9i16; 5];
        st.fill(&mut buf);
        // The rest of the silent frame, then the next real frame stays L/R aligned.
        assert_eq!(buf, [0, 5, 6, 0, 0]);
        let c = counters.snapshot();
        assert_eq!(c.underruns, 2);
        assert_eq!(c.frames, 3);
        assert!(c.underrun_frames >= 3, "{c:?}");
    }

    #[test]
    fn playback_converts_to_f32() {
        let (mut st, mut prod, _) = playback(1, 10);
        prod.push_slice(&[i16::MIN, 0, 16384]);
        let mut buf = [1.0f32; 4];
        st.fill(&mut buf);
        assert_eq!(buf, [-1.0, 0.0, 0.5, 0.0]);
    }

    #[test]
    fn capture_keeps_whole_frames_across_buffers_and_counts_overruns() {
        let (mut st, mut cons, counters) = capture(2, 4);
        st.take::<i16>(&[1, 2, 3]);
        st.take::<i16>(&[4, 5, 6, 7]);
        let mut out = [0i16; 8];
        assert_eq!(cons.pop_slice(&mut out), 6);
        assert_eq!(out[..6], [1, 2, 3, 4, 5, 6]);
        // Ring holds 4 frames; deliver 6 (+ the pending sample 7 completes one).
        st.take::<i16>(&[8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
        let c = counters.snapshot();
        assert_eq!(c.overruns, 1);
        assert_eq!(c.overrun_frames, 2);
        let mut out = [0i16; 8];
        assert_eq!(cons.pop_slice(&mut out), 8);
        assert_eq!(out, [7, 8, 9, 10, 11, 12, 13, 14]);
        // Frames after the drop are still aligned.
        st.take::<i16>(&[19, 20]);
        let mut out = [0i16; 2];
        assert_eq!(cons.pop_slice(&mut out), 2);
        assert_eq!(out, [19, 20]);
        assert_eq!(counters.snapshot().frames, 3 + 4 + 1);
    }

    #[test]
    fn capture_converts_and_saturates_f32() {
        let (mut st, mut cons, _) = capture(1, 10);
        st.take::<f32>(&[-1.0, 0.5, 2.0, f32::NAN]);
        let mut out = [7i16; 4];
        assert_eq!(cons.pop_slice(&mut out), 4);
        assert_eq!(out, [i16::MIN, 16384, i16::MAX, 0]);
    }

    #[test]
    fn push_frames_pushes_whole_frames_only() {
        let (mut prod, _cons) = HeapRb::<i16>::new(6).split();
        assert_eq!(push_frames(&mut prod, &[1, 2, 3, 4, 5], 2), 4);
        assert_eq!(push_frames(&mut prod, &[1, 2, 3, 4], 2), 2);
        assert_eq!(push_frames(&mut prod, &[1, 2], 2), 0);
    }
}
