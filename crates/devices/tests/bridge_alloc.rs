//! The bridge's tick allocates nothing in steady state: a counting global allocator sees
//! no allocation on any thread while a bridge runs both sides for two seconds (frames in
//! through a ring, resampled to 48 kHz stereo into a sink; a 48 kHz stereo source
//! resampled to 16 kHz frames into a send queue), with its stats read meanwhile.
//!
//! A test binary of its own, with one test: nothing else runs while the counter is armed.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use devices::ringbuf::traits::Producer;
use devices::{
    BridgeConfig, CaptureEnd, DeviceBridge, DeviceError, FrameInput, PlaybackEnd, SampleSink,
    SampleSource,
};
use media_core::call::{AudioSender, FrameSource};
use media_core::frame::Pcm16kFrame;

/// Counts allocations while armed.
struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A 48 kHz stereo sink that keeps nothing.
struct NullSink;

impl SampleSink for NullSink {
    fn sample_rate(&self) -> u32 {
        48_000
    }
    fn channels(&self) -> u16 {
        2
    }
    fn write(&mut self, samples: &[i16]) -> Result<usize, DeviceError> {
        Ok(samples.len())
    }
}

/// A 48 kHz stereo 440 Hz tone that never ends.
struct Tone(u64);

impl SampleSource for Tone {
    fn sample_rate(&self) -> u32 {
        48_000
    }
    fn channels(&self) -> u16 {
        2
    }
    fn read(&mut self, out: &mut [i16]) -> usize {
        for pair in out.chunks_exact_mut(2) {
            let t = self.0 as f64 / 48_000.0;
            let s = (8_000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
            pair.fill(s);
            self.0 += 1;
        }
        out.len() / 2 * 2
    }
}

#[test]
fn a_running_bridge_allocates_nothing() {
    let (mut frames_in, input) = FrameInput::ring(64);
    let (sender, mut queue) = AudioSender::new(8);
    let bridge = DeviceBridge::builder(BridgeConfig::default())
        .playback(
            PlaybackEnd::sink(Box::new(NullSink), "null").unwrap(),
            input,
        )
        .capture(
            CaptureEnd::source(Box::new(Tone(0)), "tone").unwrap(),
            sender,
        )
        .start()
        .unwrap();

    // The call's side, 50 frames a second each way: a frame received, a frame sent.
    let stop = Arc::new(AtomicBool::new(false));
    let call = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut frame = Pcm16kFrame::new([1_000; 320]);
            let mut next = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let _ = frames_in.try_push(frame);
                queue.next_frame(&mut frame);
                next += Duration::from_millis(20);
                if let Some(d) = next.checked_duration_since(std::time::Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        })
    };

    // Past start-up (threads, first ticks), then count.
    std::thread::sleep(Duration::from_millis(1_500));
    let before = bridge.stats();
    ARMED.store(true, Ordering::SeqCst);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let _ = bridge.stats();
    }
    ARMED.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    let after = bridge.stats();
    stop.store(true, Ordering::Relaxed);
    call.join().unwrap();
    let stats = bridge.stop().unwrap();

    let (p0, p1) = (before.playback.unwrap(), after.playback.unwrap());
    let (c0, c1) = (before.capture.unwrap(), after.capture.unwrap());
    println!(
        "in 2 s: {} ticks, {} frames played, {} frames sent, {allocations} allocations; \
         final {stats:?}",
        after.ticks - before.ticks,
        p1.frames_played - p0.frames_played,
        c1.frames_sent - c0.frames_sent,
    );
    // It did run: about 100 ticks, frames through both sides.
    assert!(after.ticks - before.ticks >= 90, "{before:?} {after:?}");
    assert!(p1.frames_played - p0.frames_played >= 90, "{p1:?}");
    assert!(c1.frames_sent - c0.frames_sent >= 90, "{c1:?}");
    assert_eq!(p1.errors + c1.errors, 0, "{stats:?}");
    assert_eq!(allocations, 0, "the bridge allocated in steady state");
}
