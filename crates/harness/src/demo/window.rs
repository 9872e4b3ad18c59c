//! The demo's per-second figures and the echo delay of a recording.

use bot::SessionSnapshot;
use media_core::jitter::JitterStats;

use super::DemoSecond;
use crate::farend::FarEndStats;

/// Mean jitter-buffer delay (ms) of the samples emitted between two cumulative
/// snapshots; `fallback` (the last window's) when none were.
pub(super) fn window_jb_delay_ms(prev: &JitterStats, cur: &JitterStats, fallback: f64) -> f64 {
    let emitted = cur
        .jitter_buffer_emitted_count
        .saturating_sub(prev.jitter_buffer_emitted_count);
    if emitted > 0 {
        (cur.jitter_buffer_delay - prev.jitter_buffer_delay) / emitted as f64 * 1000.0
    } else {
        fallback
    }
}

/// Window figures between two cumulative snapshots.
pub(super) fn window(
    prev: &SessionSnapshot,
    cur: &SessionSnapshot,
    last: &DemoSecond,
) -> (f64, f64, f64) {
    let delay = window_jb_delay_ms(&prev.jitter, &cur.jitter, last.jb_delay_ms);
    let lost = cur.qoe.packets_lost.saturating_sub(prev.qoe.packets_lost);
    let got = cur
        .qoe
        .packets_received
        .saturating_sub(prev.qoe.packets_received);
    let loss = if lost + got > 0 {
        100.0 * lost as f64 / (lost + got) as f64
    } else {
        last.loss_pct
    };
    let frames = cur
        .counters
        .frames_received
        .saturating_sub(prev.counters.frames_received);
    let concealed = cur
        .counters
        .frames_concealed
        .saturating_sub(prev.counters.frames_concealed);
    let conceal = if frames > 0 {
        100.0 * concealed as f64 / frames as f64
    } else {
        0.0
    };
    (delay, loss, conceal)
}

pub(super) fn far_window(prev: &FarEndStats, cur: &FarEndStats, last: &DemoSecond) -> (f64, f64) {
    let delay = window_jb_delay_ms(&prev.jitter, &cur.jitter, last.far_jb_delay_ms);
    let sent = cur.downlink.sent.saturating_sub(prev.downlink.sent);
    let lost = cur.downlink.lost.saturating_sub(prev.downlink.lost);
    let loss = if sent > 0 {
        100.0 * lost as f64 / sent as f64
    } else {
        last.far_loss_pct
    };
    (delay, loss)
}

/// Echo round trip in ms from the 20 ms RMS envelopes of what the far end sent and
/// played out (searched up to 1 s).
pub fn echo_delay_ms(sent: &[i16], received: &[i16]) -> Option<f64> {
    let env = |x: &[i16]| -> Vec<f64> {
        x.chunks_exact(320)
            .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 320.0).sqrt())
            .collect()
    };
    let (a, b) = (env(sent), env(received));
    let n = a.len().min(b.len());
    if n < 100 {
        return None;
    }
    let mut best = (0usize, f64::MIN);
    for lag in 0..50.min(n / 2) {
        let m = n - lag;
        let xa = &a[..m];
        let xb = &b[lag..lag + m];
        let (ma, mb) = (
            xa.iter().sum::<f64>() / m as f64,
            xb.iter().sum::<f64>() / m as f64,
        );
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for i in 0..m {
            let (x, y) = (xa[i] - ma, xb[i] - mb);
            sab += x * y;
            saa += x * x;
            sbb += y * y;
        }
        let c = if saa > 0.0 && sbb > 0.0 {
            sab / (saa * sbb).sqrt()
        } else {
            0.0
        };
        if c > best.1 {
            best = (lag, c);
        }
    }
    (best.1 > 0.5).then_some(best.0 as f64 * 20.0)
}
