//! The calling thread's kernel id and CPU clock (Linux), for the reactor's stall
//! counters and the load tool's CPU accounting.

use std::time::Duration;

/// CPU time of the calling thread, with nanosecond resolution
/// (`CLOCK_THREAD_CPUTIME_ID`; `/proc`'s figures step by 10 ms).
pub fn current_thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The calling thread's kernel id (from `/proc/thread-self`).
pub fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}
