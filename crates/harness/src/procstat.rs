//! Process figures from `/proc` (Linux): CPU time of the process or of chosen threads
//! (the same user+system totals `getrusage` reports) and resident memory.

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on
/// every mainstream Linux configuration).
pub const CLK_TCK: u64 = 100;

fn stat_cpu(path: &str) -> Option<Duration> {
    let s = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / CLK_TCK))
}

/// User + system CPU time of this process.
pub fn process_cpu() -> Option<Duration> {
    stat_cpu("/proc/self/stat")
}

/// User + system CPU time of one thread of this process.
pub fn thread_cpu(tid: u32) -> Option<Duration> {
    stat_cpu(&format!("/proc/self/task/{tid}/stat"))
}

/// Thread ids of this process whose name (`/proc/self/task/*/comm`, at most 15
/// bytes) is `name`.
pub fn threads_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim() == name).then_some(tid)
        })
        .collect()
}

/// User + system CPU time of these threads of this process, together (threads that
/// ended count nothing).
pub fn threads_cpu(tids: &[u32]) -> Duration {
    tids.iter().filter_map(|&t| thread_cpu(t)).sum()
}

pub use transport::thread::{current_thread_cpu, current_tid};

/// Resident set size of this process in bytes (`VmRSS` of `/proc/self/status`).
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc() {
        assert!(process_cpu().is_some());
        assert!(rss_bytes().is_some_and(|b| b > 0));
        let tid = current_tid().expect("tid");
        assert!(thread_cpu(tid).is_some());
        // The thread clock sees 2 ms of work (`/proc`'s 10 ms steps mostly would not).
        let t0 = current_thread_cpu();
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(2) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let used = current_thread_cpu() - t0;
        assert!(used >= Duration::from_millis(1), "{used:?}");
    }
}
