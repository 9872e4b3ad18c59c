//! A counting global allocator: the tool behind the zero-allocation tests.
//!
//! A test binary installs [`CountingAllocator`] as its global allocator and wraps the
//! steady-state part of a hot path in [`count`] (or between [`start`] and
//! [`Watch::stop`]); every allocation the *calling thread* makes meanwhile is counted
//! (other threads — the test harness, runtimes — are not).
//!
//! ```
//! use media_core::alloc_count::{self, AllocCounts, CountingAllocator};
//!
//! #[global_allocator]
//! static GLOBAL: CountingAllocator = CountingAllocator;
//!
//! fn main() {
//!     let mut buf = [0i16; 320];
//!     let (counts, ()) = alloc_count::count(|| buf.fill(7)); // the hot path
//!     assert_eq!(counts, AllocCounts::ZERO);
//!     let (counts, _) = alloc_count::count(|| drop(std::hint::black_box(Box::new(7u64))));
//!     assert_eq!((counts.allocations, counts.deallocations), (1, 1));
//! }
//! ```
//!
//! It forwards to [`System`] and sees only Rust allocations: C libraries (libopus)
//! that call `malloc` themselves are invisible to it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting allocations and deallocations made by threads that
/// are inside [`count`] (or between [`start`] and [`Watch::stop`]).
///
/// Install it with `#[global_allocator]` in a test binary; without it the counts stay
/// zero, which [`start`] detects.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

thread_local! {
    // Only the measuring thread counts (the test harness may allocate on others), and
    // each thread into its own counters, so tests running in parallel do not mix.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static DEALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

fn bump(counter: &'static std::thread::LocalKey<Cell<usize>>) {
    if counting() {
        let _ = counter.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters
// and the flag are const-initialised thread-local `Cell`s without a destructor, so
// touching them neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump(&DEALLOCS);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump(&ALLOCS);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What the calling thread allocated while it was watched (a `realloc` counts as one
/// allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocCounts {
    /// Allocations and reallocations.
    pub allocations: usize,
    /// Deallocations.
    pub deallocations: usize,
}

impl AllocCounts {
    /// No allocation and no deallocation: what a real-time path must show.
    pub const ZERO: Self = Self {
        allocations: 0,
        deallocations: 0,
    };

    fn now() -> Self {
        Self {
            allocations: ALLOCS.with(Cell::get),
            deallocations: DEALLOCS.with(Cell::get),
        }
    }
}

/// Counting in progress on this thread; [`Watch::stop`] ends it and returns the counts.
#[derive(Debug)]
#[must_use = "stop() returns the counts"]
pub struct Watch {
    start: AllocCounts,
}

/// Starts counting the calling thread's allocations.
///
/// # Panics
/// If [`CountingAllocator`] is not the global allocator (a probe allocation made here
/// is not counted), so a test that forgot to install it fails instead of passing.
pub fn start() -> Watch {
    let before = AllocCounts::now();
    COUNTING.with(|c| c.set(true));
    drop(std::hint::black_box(Box::new(0u64)));
    let start = AllocCounts::now();
    assert!(
        start.allocations > before.allocations && start.deallocations > before.deallocations,
        "alloc_count: install `#[global_allocator] static A: CountingAllocator = CountingAllocator;`"
    );
    Watch { start }
}

impl Watch {
    /// Stops counting and returns what the calling thread allocated since [`start`].
    pub fn stop(self) -> AllocCounts {
        COUNTING.with(|c| c.set(false));
        let end = AllocCounts::now();
        AllocCounts {
            allocations: end.allocations - self.start.allocations,
            deallocations: end.deallocations - self.start.deallocations,
        }
    }
}

/// Runs `f` with counting on; returns what it allocated on this thread and its result.
///
/// # Panics
/// As [`start`].
pub fn count<R>(f: impl FnOnce() -> R) -> (AllocCounts, R) {
    let watch = start();
    let r = f();
    (watch.stop(), r)
}
