//! Device hand-off: lock-free single-producer single-consumer sample rings between a
//! real-time audio-device callback thread and the pipeline tick.
//!
//! * [`CaptureRing`]: the device callback pushes captured samples
//!   ([`CaptureProducer`]), the send pipeline pops them ([`CaptureConsumer`]). When the
//!   ring is full the newest samples are dropped and counted as an *overrun*.
//! * [`PlaybackRing`]: the receive pipeline pushes samples to play
//!   ([`PlaybackProducer`]), the device callback pops them ([`PlaybackConsumer`]). When
//!   the ring runs dry the callback's buffer is completed with silence and counted as
//!   an *underrun*.
//!
//! Both ends see the same [`RingStats`] counters.
//!
//! ```
//! use media_core::ring::PlaybackRing;
//!
//! let (mut pipeline, mut device) = PlaybackRing::with_capacity(1_920);
//! assert_eq!(pipeline.push(&[5; 100]), 100);
//! let mut callback_buf = [1i16; 160];
//! assert_eq!(device.fill(&mut callback_buf), 100); // 60 samples of silence
//! assert_eq!(callback_buf[100..], [0; 60]);
//! assert_eq!(device.stats().underrun_samples, 60);
//! ```
//!
//! # Realtime safety
//! The ring storage and the shared counters are allocated by `with_capacity`. `push`, `pop`,
//! `fill` and `stats` are wait-free: atomic loads and stores plus a copy, with no
//! allocation, lock, system call or logging. Each end is `Send` and belongs to one
//! thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Counters shared by both ends of a ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Samples accepted into the ring.
    pub pushed_samples: u64,
    /// Samples taken out of the ring.
    pub popped_samples: u64,
    /// Samples dropped because the ring was full.
    pub overrun_samples: u64,
    /// Push calls that dropped at least one sample.
    pub overrun_events: u64,
    /// Silence samples the device was given because the ring was empty (playback).
    pub underrun_samples: u64,
    /// Device callbacks that got at least one sample of silence (playback).
    pub underrun_events: u64,
}

#[derive(Debug, Default)]
struct Counters {
    pushed: AtomicU64,
    popped: AtomicU64,
    overrun_samples: AtomicU64,
    overrun_events: AtomicU64,
    underrun_samples: AtomicU64,
    underrun_events: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RingStats {
        RingStats {
            pushed_samples: self.pushed.load(Ordering::Relaxed),
            popped_samples: self.popped.load(Ordering::Relaxed),
            overrun_samples: self.overrun_samples.load(Ordering::Relaxed),
            overrun_events: self.overrun_events.load(Ordering::Relaxed),
            underrun_samples: self.underrun_samples.load(Ordering::Relaxed),
            underrun_events: self.underrun_events.load(Ordering::Relaxed),
        }
    }

    fn push(&self, prod: &mut HeapProd<i16>, samples: &[i16]) -> usize {
        let n = prod.push_slice(samples);
        self.pushed.fetch_add(n as u64, Ordering::Relaxed);
        let dropped = samples.len() - n;
        if dropped > 0 {
            self.overrun_samples
                .fetch_add(dropped as u64, Ordering::Relaxed);
            self.overrun_events.fetch_add(1, Ordering::Relaxed);
        }
        n
    }

    fn pop(&self, cons: &mut HeapCons<i16>, out: &mut [i16]) -> usize {
        let n = cons.pop_slice(out);
        self.popped.fetch_add(n as u64, Ordering::Relaxed);
        n
    }
}

/// Constructor of the capture ring (device → pipeline).
#[derive(Debug)]
pub struct CaptureRing;

impl CaptureRing {
    /// A ring holding `capacity` samples (interleaved values), split into the
    /// device-callback end and the pipeline end.
    ///
    /// # Panics
    /// If `capacity` is zero.
    pub fn with_capacity(capacity: usize) -> (CaptureProducer, CaptureConsumer) {
        assert!(capacity > 0, "ring capacity must be positive");
        let (prod, cons) = HeapRb::<i16>::new(capacity).split();
        let counters = Arc::new(Counters::default());
        (
            CaptureProducer {
                prod,
                counters: Arc::clone(&counters),
            },
            CaptureConsumer { cons, counters },
        )
    }
}

/// The device-callback end of a capture ring.
pub struct CaptureProducer {
    prod: HeapProd<i16>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for CaptureProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureProducer")
            .field("stats", &self.stats())
            .finish()
    }
}

impl CaptureProducer {
    /// Pushes captured samples; returns how many fit. The rest are dropped and
    /// counted as an overrun (the pipeline is not keeping up).
    pub fn push(&mut self, samples: &[i16]) -> usize {
        self.counters.push(&mut self.prod, samples)
    }

    /// Free space in samples.
    pub fn vacant(&self) -> usize {
        self.prod.vacant_len()
    }

    /// The shared counters.
    pub fn stats(&self) -> RingStats {
        self.counters.snapshot()
    }
}

/// The pipeline end of a capture ring.
pub struct CaptureConsumer {
    cons: HeapCons<i16>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for CaptureConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureConsumer")
            .field("stats", &self.stats())
            .finish()
    }
}

impl CaptureConsumer {
    /// Pops up to `out.len()` samples; returns how many.
    pub fn pop(&mut self, out: &mut [i16]) -> usize {
        self.counters.pop(&mut self.cons, out)
    }

    /// Samples waiting.
    pub fn available(&self) -> usize {
        self.cons.occupied_len()
    }

    /// The shared counters.
    pub fn stats(&self) -> RingStats {
        self.counters.snapshot()
    }
}

/// Constructor of the playback ring (pipeline → device).
#[derive(Debug)]
pub struct PlaybackRing;

impl PlaybackRing {
    /// A ring holding `capacity` samples (interleaved values), split into the
    /// pipeline end and the device-callback end.
    ///
    /// # Panics
    /// If `capacity` is zero.
    pub fn with_capacity(capacity: usize) -> (PlaybackProducer, PlaybackConsumer) {
        assert!(capacity > 0, "ring capacity must be positive");
        let (prod, cons) = HeapRb::<i16>::new(capacity).split();
        let counters = Arc::new(Counters::default());
        (
            PlaybackProducer {
                prod,
                counters: Arc::clone(&counters),
            },
            PlaybackConsumer { cons, counters },
        )
    }
}

/// The pipeline end of a playback ring.
pub struct PlaybackProducer {
    prod: HeapProd<i16>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for PlaybackProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackProducer")
            .field("stats", &self.stats())
            .finish()
    }
}

impl PlaybackProducer {
    /// Pushes samples to play; returns how many fit (the rest are dropped and
    /// counted as an overrun: the device is consuming slower than the pipeline
    /// produces).
    pub fn push(&mut self, samples: &[i16]) -> usize {
        self.counters.push(&mut self.prod, samples)
    }

    /// Samples queued for the device: the playout latency the ring adds. Feed it to
    /// a drift-following resampler to keep it steady.
    pub fn queued(&self) -> usize {
        self.prod.occupied_len()
    }

    /// Free space in samples.
    pub fn vacant(&self) -> usize {
        self.prod.vacant_len()
    }

    /// The shared counters.
    pub fn stats(&self) -> RingStats {
        self.counters.snapshot()
    }
}

/// The device-callback end of a playback ring.
pub struct PlaybackConsumer {
    cons: HeapCons<i16>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for PlaybackConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackConsumer")
            .field("stats", &self.stats())
            .finish()
    }
}

impl PlaybackConsumer {
    /// Fills the device buffer completely: queued samples first, then silence
    /// (counted as an underrun). Returns how many real samples were written.
    pub fn fill(&mut self, out: &mut [i16]) -> usize {
        let n = self.counters.pop(&mut self.cons, out);
        let missing = out.len() - n;
        if missing > 0 {
            out[n..].fill(0);
            self.counters
                .underrun_samples
                .fetch_add(missing as u64, Ordering::Relaxed);
            self.counters
                .underrun_events
                .fetch_add(1, Ordering::Relaxed);
        }
        n
    }

    /// Samples waiting.
    pub fn available(&self) -> usize {
        self.cons.occupied_len()
    }

    /// The shared counters.
    pub fn stats(&self) -> RingStats {
        self.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn capture_overrun_drops_newest_and_counts() {
        let (mut dev, mut pipe) = CaptureRing::with_capacity(500);
        assert_eq!(dev.push(&[1; 300]), 300);
        assert_eq!(dev.push(&[2; 300]), 200);
        let s = pipe.stats();
        assert_eq!(
            (s.pushed_samples, s.overrun_samples, s.overrun_events),
            (500, 100, 1)
        );
        let mut out = [0i16; 600];
        assert_eq!(pipe.pop(&mut out), 500);
        assert_eq!(out[299], 1);
        assert_eq!(out[300], 2);
        assert_eq!(pipe.available(), 0);
        assert_eq!(dev.vacant(), 500);
    }

    /// A real device-like thread pushes 10 ms chunks of a counting sequence while the
    /// pipeline thread pops 20 ms frames: nothing lost, nothing reordered.
    #[test]
    fn two_threads_capture_is_lossless() {
        const TOTAL: usize = 480 * 2_000;
        let (mut dev, mut pipe) = CaptureRing::with_capacity(48_000);
        let producer = thread::spawn(move || {
            let mut next = 0usize;
            let mut chunk = [0i16; 480];
            while next < TOTAL {
                for (i, s) in chunk.iter_mut().enumerate() {
                    *s = ((next + i) % 32_768) as i16;
                }
                if dev.vacant() >= chunk.len() {
                    assert_eq!(dev.push(&chunk), chunk.len());
                    next += chunk.len();
                } else {
                    thread::yield_now();
                }
            }
            dev
        });
        let mut got = 0usize;
        let mut frame = [0i16; 960];
        while got < TOTAL {
            let n = pipe.pop(&mut frame);
            for (i, &s) in frame[..n].iter().enumerate() {
                assert_eq!(s, ((got + i) % 32_768) as i16);
            }
            got += n;
            if n == 0 {
                thread::yield_now();
            }
        }
        let dev = producer.join().expect("producer thread");
        let s = dev.stats();
        assert_eq!(
            (s.pushed_samples, s.popped_samples, s.overrun_samples),
            (TOTAL as u64, TOTAL as u64, 0)
        );
    }

    /// The pipeline pushes 20 ms frames from one thread while a "device" thread pulls
    /// 5 ms callbacks; when the pipeline stops, the device gets silence.
    #[test]
    fn two_threads_playback_underrun_fills_silence() {
        const FRAMES: usize = 200;
        let (mut pipe, mut dev) = PlaybackRing::with_capacity(3_200);
        let producer = thread::spawn(move || {
            let mut sent = 0;
            while sent < FRAMES {
                if pipe.vacant() >= 320 {
                    assert_eq!(pipe.push(&[1000; 320]), 320);
                    sent += 1;
                } else {
                    thread::yield_now();
                }
            }
            pipe
        });
        let mut real = 0usize;
        let mut buf = [0i16; 80];
        while real < FRAMES * 320 {
            let n = dev.fill(&mut buf);
            assert!(buf[..n].iter().all(|&s| s == 1000));
            assert!(buf[n..].iter().all(|&s| s == 0));
            real += n;
        }
        let pipe = producer.join().expect("producer thread");
        assert_eq!(dev.fill(&mut buf), 0);
        assert_eq!(buf, [0; 80]);
        let s = pipe.stats();
        assert_eq!(s.popped_samples, (FRAMES * 320) as u64);
        assert_eq!(s.overrun_samples, 0);
        assert!(s.underrun_events >= 1);
        assert_eq!(pipe.queued(), 0);
    }
}
