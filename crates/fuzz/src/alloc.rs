//! A counting global allocator: how many bytes one case made a parser hold at its peak.
//!
//! [`CountingAllocator`] wraps [`System`] and keeps, per thread, the bytes allocated
//! and not yet freed and their high-water mark. A test binary installs it with
//! `#[global_allocator]`; [`measure`] then runs a closure and returns the peak number
//! of bytes it held on this thread above what was held before it started. Other
//! threads (a key server, other tests) do not disturb the count.
//!
//! `realloc` is counted as the new block allocated before the old one is freed, so the
//! peak is an upper bound of what the parser really held.

// A global allocator is `unsafe` by contract; this module is the crate's only unsafe code.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread (may go below zero when a
    /// thread frees what another allocated).
    static CURRENT: Cell<i64> = const { Cell::new(0) };
    /// Highest `CURRENT` since the last reset.
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn add(bytes: usize, transient: usize) {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    let transient = i64::try_from(transient).unwrap_or(i64::MAX);
    // `try_with`: never panic inside the allocator, even while a thread is torn down.
    let _ = CURRENT.try_with(|c| {
        let now = c.get().saturating_add(bytes);
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now.saturating_add(transient))));
    });
}

fn sub(bytes: usize) {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    let _ = CURRENT.try_with(|c| c.set(c.get().saturating_sub(bytes)));
}

/// The system allocator with per-thread byte counts; install with
/// `#[global_allocator] static ALLOC: CountingAllocator = CountingAllocator;`.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAllocator;

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged;
// the bookkeeping touches only const-initialised thread-locals without destructors,
// which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size(), 0);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size(), 0);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this wrapper) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is checked by the caller.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Both blocks may exist for a moment: count the old one as transient.
            add(new_size, layout.size());
            sub(layout.size());
        }
        p
    }
}

/// Runs `f` and returns its result with the peak number of bytes it held on this
/// thread, above what the thread held when `f` started. Zero unless a
/// [`CountingAllocator`] is the global allocator (see [`is_counting`]).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (
        result,
        usize::try_from(peak.saturating_sub(start)).unwrap_or(0),
    )
}

/// True when allocations on this thread are being counted (a [`CountingAllocator`]
/// is installed).
pub fn is_counting() -> bool {
    let ((), peak) = measure(|| drop(std::hint::black_box(vec![0u8; 4096])));
    peak >= 4096
}
