//! Audio device I/O for the media engine.
//!
//! The engine works in 20 ms ticks of 16 kHz mono PCM; sound cards (and PulseAudio sinks and
//! sources) run on their own clock, at their own rate and channel count, and call back on
//! their own realtime thread. This crate opens those devices through cpal (PulseAudio host
//! preferred, ALSA as a fallback), and hands audio to and from the engine as interleaved
//! `i16` at the **device's** rate and channel count through lock-free SPSC rings (ringbuf).
//! Rate and channel conversion to the engine's format is the engine's job (media-core's
//! resampler), not this crate's.
//!
//! ```text
//!  playback:  engine tick --push_frames--> [SPSC ring i16] --pop--> device callback --> sink
//!             (every 20 ms)                 (PlaybackStream's)      (silence + count on
//!                                                                    underrun)
//!  capture:   source --> device callback --push--> [SPSC ring i16] --pop_slice--> engine tick
//!                        (drop + count on overrun)  (CaptureStream's)             (every 20 ms)
//! ```
//!
//! The callbacks only move samples between the device buffer and the ring: no allocation, no
//! locks, no logging (see [`stream`]'s "Realtime safety"). Counters (callbacks, frames,
//! underruns, overruns, errors) are atomics readable from the stream handles.
//!
//! WAV files stand in for devices ([`WavSource`], [`WavSink`]): they and the devices
//! ([`DeviceSource`], [`DeviceSink`]) implement [`SampleSource`] / [`SampleSink`].
//! [`loopback`] measures round-trip latency and fidelity through a real output and input
//! (a PulseAudio null sink and its monitor; `scripts/start-pulse.sh` starts one).
//!
//! [`DeviceBridge`] ([`bridge`]) binds one call's audio to a playback and a capture device
//! (or WAV files): it takes the call's received 20 ms frames (media-core's
//! [`AudioFrame`](media_core::call::AudioFrame)s) to the output device's format, captured
//! audio to 16 kHz mono frames for the call's [`AudioSender`](media_core::call::AudioSender),
//! on a thread of its own ticking every 20 ms, and holds both rings' levels against the
//! devices' drifting clocks.
//!
//! # Example
//!
//! ```no_run
//! use devices::{CaptureStream, DeviceSelector, PlaybackStream, StreamFormat, push_frames};
//! use devices::ringbuf::traits::{Consumer, Observer};
//!
//! # fn main() -> Result<(), devices::DeviceError> {
//! // The default output and input (on a test machine: the null sink `loop` and its monitor),
//! // at the engine's own format: 16 kHz mono, 20 ms callbacks.
//! let format = StreamFormat { prefill_ms: 40, ..StreamFormat::pcm16k_mono() };
//! let (playback, mut to_device) = PlaybackStream::open(&DeviceSelector::default(), format)?;
//! let (capture, mut from_device) =
//!     CaptureStream::open(&"pulseaudio:loop.monitor".parse().expect("infallible"), format)?;
//! let mut frame = [0i16; 320];
//! for _tick in 0..50 {
//!     push_frames(&mut to_device, &frame, 1); // one 20 ms frame out
//!     if from_device.occupied_len() >= frame.len() {
//!         from_device.pop_slice(&mut frame); // one 20 ms frame in
//!     }
//!     std::thread::sleep(std::time::Duration::from_millis(20));
//! }
//! println!("{:?} {:?}", playback.counters(), capture.counters());
//! # Ok(())
//! # }
//! ```
//!
//! WAV files need no device:
//!
//! ```
//! use devices::{SampleSink, SampleSource, WavSink, WavSource};
//! # fn main() -> Result<(), devices::DeviceError> {
//! let path = std::env::temp_dir().join(format!("devices-doc-{}.wav", std::process::id()));
//! let mut sink = WavSink::create(&path, 16_000, 1)?;
//! sink.write(&[0, 1000, -1000, 0])?;
//! sink.finalize()?;
//! let mut source = WavSource::open(&path, false)?;
//! let mut buf = [0i16; 8];
//! assert_eq!(source.read(&mut buf), 4);
//! assert_eq!(buf[..4], [0, 1000, -1000, 0]);
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

pub mod bridge;
mod error;
mod host;
mod io;
pub mod loopback;
pub mod stream;
pub mod testing;

pub use bridge::{
    BridgeBuilder, BridgeConfig, BridgeError, BridgeStats, CaptureEnd, CaptureStats,
    ControllerSettings, DeviceBridge, FillController, FrameInput, PlaybackEnd, PlaybackStats,
};
pub use error::DeviceError;
pub use host::{
    Backend, DefaultConfig, DeviceInfo, DeviceSelector, Direction, HostKind, list_devices,
    list_host_devices,
};
pub use io::{DeviceSink, DeviceSource, SampleSink, SampleSource, WavSink, WavSource};
pub use loopback::{LoopbackConfig, LoopbackReport, run_loopback};
pub use stream::{
    CaptureStream, CounterSnapshot, OpenedFormat, PlaybackStream, SampleType, StreamFormat,
    push_frames,
};

/// The ring crate, for its traits (`ringbuf::traits::{Consumer, Producer, Observer}`).
pub use ringbuf;
/// The ring types the streams hand out.
pub use ringbuf::{HeapCons, HeapProd};
