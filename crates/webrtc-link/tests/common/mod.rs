//! What the link tests share: comparing an echo with what was sent by the energy
//! envelope (waveform correlation is a poor judge through Opus).

use media_core::frame::FRAME_SAMPLES;

/// 20 ms RMS envelope in dB.
fn envelope(x: &[i16]) -> Vec<f64> {
    x.chunks_exact(FRAME_SAMPLES)
        .map(|c| {
            let e = c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64;
            20.0 * (e.sqrt() + 1.0).log10()
        })
        .collect()
}

/// Best Pearson correlation of the received envelope with the sent one over lags of
/// 0..=max_lag frames.
pub fn envelope_correlation(sent: &[i16], received: &[i16], max_lag: usize) -> (f64, usize) {
    let s = envelope(sent);
    let r = envelope(received);
    let mut best = (-1.0, 0);
    for lag in 0..=max_lag {
        if lag >= r.len() {
            break;
        }
        let n = (r.len() - lag).min(s.len());
        let (a, b) = (&s[..n], &r[lag..lag + n]);
        let (ma, mb) = (
            a.iter().sum::<f64>() / n as f64,
            b.iter().sum::<f64>() / n as f64,
        );
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        let c = cov / (va.sqrt() * vb.sqrt() + 1e-9);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}
