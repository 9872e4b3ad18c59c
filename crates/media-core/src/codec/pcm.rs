//! Raw `Pcm16K`: 640 little-endian bytes per 20 ms frame, and its packet-loss
//! concealment.
//!
//! # Concealment (after ITU-T G.711 Appendix I)
//! Raw PCM carries no redundancy, so a lost frame is synthesised from the audio before
//! it ([`PcmDecoder::conceal`]):
//!
//! 1. **Pitch.** When an erasure starts, the pitch period `P` is the lag of highest
//!    normalised autocorrelation of the last 30 ms of output, searched over
//!    2.5–15 ms ([`PLC_MIN_PERIOD`]..=[`PLC_MAX_PERIOD`]) by
//!    [`find_period`](crate::jitter::stretch::find_period) on the time-reversed history
//!    (so the most recent 15 ms is the fixed window).
//! 2. **Waveform substitution.** The gap is filled by repeating the last pitch period;
//!    after 10 ms the last two periods, after 20 ms the last three (less buzz on long
//!    gaps). Each cycle's loop point is smoothed by an overlap-add of `P/4` samples
//!    with the samples before the cycle, each change of cycle length is cross-faded
//!    over `P/4` samples, and the jump from the last real sample into the repetition
//!    is removed by an offset that decays over `P/4` samples (no output delay is
//!    added, unlike G.711's 3.75 ms: a clean path stays bit-exact).
//! 3. **Attenuation.** Full level for the first 10 ms, then 20 % less per 10 ms:
//!    silent after 60 ms ([`PLC_FULL_LEVEL_SAMPLES`], [`PLC_FADE_SAMPLES`]).
//! 4. **Comfort noise.** As the repetition fades, white noise at the background level
//!    (the minimum frame power of the last 0.5–1 s, at most -55 dBFS) takes
//!    its place, so a long gap sounds like the line, not like a dropout. A digitally
//!    silent background gives digital silence.
//! 5. **Merge.** The first good frame after an erasure is cross-faded from the
//!    continuing synthetic signal over `P/4` plus 4 ms per 10 ms of erasure beyond the
//!    first 10 ms (at most 10 ms), G.711's rule at 16 kHz.
//! 6. **Bridge.** When the frame after the lost one is already here (the jitter buffer
//!    asks for its "FEC", [`AudioDecoder::decode_fec`]), the lost frame is filled from
//!    both sides: the forward concealment fades (smooth window over the whole frame)
//!    into the next frame's first pitch period repeated backwards, which joins that
//!    frame without a merge.
//!
//! # Realtime safety
//! All state (60 ms of history, the pitch snapshot) lives inline in the decoder,
//! sized at construction; no call allocates. A clean frame costs a copy into the
//! history and one power sum; the first concealed frame of an erasure adds one pitch
//! search (≈ 15,000 integer multiply-adds).

use super::{AudioDecoder, AudioEncoder, Codec, CodecError};
use crate::frame::{FRAME_BYTES, FRAME_SAMPLES};
use crate::jitter::stretch::{MAX_SEARCH, find_period};

/// Shortest pitch period the concealment searches: 2.5 ms (400 Hz).
pub const PLC_MIN_PERIOD: usize = 40;
/// Longest pitch period the concealment searches: 15 ms (66.7 Hz).
pub const PLC_MAX_PERIOD: usize = 240;
/// Concealed samples played at full level before the fade starts (10 ms).
pub const PLC_FULL_LEVEL_SAMPLES: usize = FRAME_SAMPLES / 2;
/// Samples over which the concealment then fades to silence (50 ms: 20 % per 10 ms).
pub const PLC_FADE_SAMPLES: usize = 5 * FRAME_SAMPLES / 2;
/// Output history kept for concealment: 60 ms (three of the longest periods plus the
/// loop-smoothing overlap fit).
const HISTORY: usize = 3 * FRAME_SAMPLES;
/// Longest merge cross-fade into the first good frame (10 ms).
const MAX_MERGE: usize = FRAME_SAMPLES / 2;
/// Merge cross-fade added per 10 ms of erasure beyond the first 10 ms (4 ms).
const MERGE_PER_10MS: usize = 64;
/// Highest comfort-noise level: -55 dBFS RMS, as a mean square of i16 samples.
const CN_MAX_POWER: f32 = 32_768.0 * 32_768.0 * 3.162e-6;
/// Frames per block of the background estimate (0.5 s).
const FLOOR_BLOCK: u32 = 25;

/// Encodes frames as raw little-endian PCM.
#[derive(Debug, Clone, Default)]
pub struct PcmEncoder;

impl PcmEncoder {
    /// A PCM encoder.
    pub fn new() -> Self {
        Self
    }
}

impl AudioEncoder for PcmEncoder {
    fn kind(&self) -> Codec {
        Codec::Pcm16k
    }

    fn encode(
        &mut self,
        frame: &[i16; FRAME_SAMPLES],
        out: &mut [u8],
    ) -> Result<usize, CodecError> {
        let out = out
            .get_mut(..FRAME_BYTES)
            .ok_or(CodecError::BufferTooSmall)?;
        for (b, s) in out.chunks_exact_mut(2).zip(frame.iter()) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        Ok(FRAME_BYTES)
    }
}

/// Decodes raw PCM bit-exactly and conceals lost frames by pitch-period waveform
/// substitution (see the [module documentation](self)). Raw PCM has no FEC.
#[derive(Clone)]
pub struct PcmDecoder {
    /// The most recent output, oldest first.
    history: [i16; HISTORY],
    /// The history as it was when the current erasure started.
    pitch_buf: [i16; HISTORY],
    /// Pitch period of the current erasure.
    period: usize,
    /// Samples concealed so far in the current erasure (0: not concealing).
    erased: usize,
    /// Offset that joins the last real sample to the repetition.
    entry: f32,
    /// Lowest frame power (mean square) of the current block of [`FLOOR_BLOCK`] frames.
    block_min: f32,
    /// Lowest frame power of the previous block.
    prev_min: f32,
    /// Frames in the current block.
    block_frames: u32,
    /// Comfort-noise generator state (xorshift32).
    noise: u32,
    /// The last concealed frame was bridged into the next one ([`AudioDecoder::decode_fec`]):
    /// that frame is played without a merge.
    bridged: bool,
}

impl std::fmt::Debug for PcmDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcmDecoder")
            .field("period", &self.period)
            .field("erased", &self.erased)
            .field("floor", &self.floor())
            .finish_non_exhaustive()
    }
}

impl Default for PcmDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl PcmDecoder {
    /// A PCM decoder (concealment before any good frame is silence).
    pub fn new() -> Self {
        Self {
            history: [0; HISTORY],
            pitch_buf: [0; HISTORY],
            period: PLC_MAX_PERIOD,
            erased: 0,
            entry: 0.0,
            block_min: f32::MAX,
            prev_min: f32::MAX,
            block_frames: 0,
            noise: 0x2545_f491,
            bridged: false,
        }
    }

    /// Appends one output frame to the history.
    fn remember(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        self.history.copy_within(FRAME_SAMPLES.., 0);
        self.history[HISTORY - FRAME_SAMPLES..].copy_from_slice(frame);
    }

    /// Starts an erasure: snapshots the history and finds its pitch.
    fn start_erasure(&mut self) {
        self.pitch_buf = self.history;
        let mut rev = [0i16; MAX_SEARCH];
        for (r, &h) in rev.iter_mut().zip(self.history.iter().rev()) {
            *r = h;
        }
        let (p, _) = find_period(&rev, PLC_MIN_PERIOD, PLC_MAX_PERIOD);
        self.period = p.clamp(PLC_MIN_PERIOD, PLC_MAX_PERIOD);
        let h = &self.pitch_buf;
        self.entry = f32::from(h[HISTORY - 1]) - f32::from(h[HISTORY - self.period - 1]);
    }

    /// Sample `pos` of the cycle of the last `periods` pitch periods, its loop point
    /// smoothed: its last `P/4` samples fade into the samples before the cycle.
    fn cycle(&self, periods: usize, pos: usize) -> f32 {
        let len = periods * self.period;
        let base = HISTORY - len;
        let v = f32::from(self.pitch_buf[base + pos]);
        let ola = self.period / 4;
        if pos + ola < len {
            return v;
        }
        let j = pos + ola - len;
        let w = (j + 1) as f32 / (ola + 1) as f32;
        (1.0 - w) * v + w * f32::from(self.pitch_buf[base - ola + j])
    }

    /// The next white-noise sample with unit variance.
    fn next_noise(&mut self) -> f32 {
        let mut x = self.noise;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.noise = x;
        // Uniform in [-sqrt(3), sqrt(3)): unit variance.
        (x as f32 / 4_294_967_296.0 - 0.5) * 2.0 * 1.732_050_8
    }

    /// Synthesises the next `out.len()` samples of the erasure.
    fn synthesise(&mut self, out: &mut [f32]) {
        let p = self.period;
        let ola = p / 4;
        let cn = self.floor().sqrt();
        let mut pos = [
            0,
            self.erased % p,
            self.erased % (2 * p),
            self.erased % (3 * p),
        ];
        for o in out.iter_mut() {
            let t = self.erased;
            // One period for the first 10 ms, two up to 20 ms, then three.
            let periods = 1 + (t / PLC_FULL_LEVEL_SAMPLES).min(2);
            let mut v = self.cycle(periods, pos[periods]);
            let since = t - (periods - 1) * PLC_FULL_LEVEL_SAMPLES;
            if periods > 1 && since < ola {
                let w = (since + 1) as f32 / (ola + 1) as f32;
                v = w * v + (1.0 - w) * self.cycle(periods - 1, pos[periods - 1]);
            }
            if t < ola {
                v += self.entry * (1.0 - t as f32 / ola as f32);
            }
            let gain = 1.0
                - (t.saturating_sub(PLC_FULL_LEVEL_SAMPLES) as f32 / PLC_FADE_SAMPLES as f32)
                    .min(1.0);
            let noise = if cn > 0.0 {
                cn * self.next_noise()
            } else {
                0.0
            };
            *o = gain * v + (1.0 - gain) * noise;
            for (k, q) in pos.iter_mut().enumerate().skip(1) {
                *q += 1;
                if *q == k * p {
                    *q = 0;
                }
            }
            self.erased += 1;
        }
    }

    /// Cross-fades the start of a good frame from the continuing concealment.
    fn merge(&mut self, out: &mut [i16; FRAME_SAMPLES]) {
        let extra = self.erased.saturating_sub(PLC_FULL_LEVEL_SAMPLES) * MERGE_PER_10MS
            / PLC_FULL_LEVEL_SAMPLES;
        let len = (self.period / 4 + extra).clamp(1, MAX_MERGE);
        let mut synth = [0f32; MAX_MERGE];
        self.synthesise(&mut synth[..len]);
        for (i, (o, &s)) in out.iter_mut().zip(&synth[..len]).enumerate() {
            let w = (i + 1) as f32 / (len + 1) as f32;
            *o = to_i16(w * f32::from(*o) + (1.0 - w) * s);
        }
    }

    /// Tracks the background power: the minimum frame power over the last 0.5–1 s
    /// (two blocks of [`FLOOR_BLOCK`] frames).
    fn track_floor(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        let sum: i64 = frame
            .iter()
            .map(|&s| i64::from(i32::from(s) * i32::from(s)))
            .sum();
        self.block_min = self.block_min.min(sum as f32 / FRAME_SAMPLES as f32);
        self.block_frames += 1;
        if self.block_frames == FLOOR_BLOCK {
            self.prev_min = self.block_min;
            self.block_min = f32::MAX;
            self.block_frames = 0;
        }
    }

    /// The comfort-noise power: the background estimate, at most -55 dBFS (0 before
    /// any frame).
    fn floor(&self) -> f32 {
        let f = self.block_min.min(self.prev_min);
        if f == f32::MAX {
            0.0
        } else {
            f.min(CN_MAX_POWER)
        }
    }
}

fn to_i16(v: f32) -> i16 {
    v.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

impl AudioDecoder for PcmDecoder {
    fn kind(&self) -> Codec {
        Codec::Pcm16k
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError> {
        if payload.len() != FRAME_BYTES {
            return Err(if payload.len().is_multiple_of(2) {
                CodecError::WrongFrameLength {
                    got: payload.len() / 2,
                }
            } else {
                CodecError::InvalidPayload
            });
        }
        for (s, b) in out.iter_mut().zip(payload.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        self.track_floor(out);
        if self.erased > 0 {
            if !self.bridged {
                self.merge(out);
            }
            self.erased = 0;
        }
        self.bridged = false;
        self.remember(out);
        Ok(())
    }

    fn conceal(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Result<(), CodecError> {
        self.bridged = false;
        if self.erased == 0 {
            self.start_erasure();
        }
        let mut synth = [0f32; FRAME_SAMPLES];
        self.synthesise(&mut synth);
        for (o, &s) in out.iter_mut().zip(&synth) {
            *o = to_i16(s);
        }
        self.remember(out);
        Ok(())
    }

    /// Raw PCM carries no FEC, but the frame after the lost one is here: the gap is
    /// bridged from both sides (the forward concealment fading into the next frame's
    /// first pitch period extended backwards), so the next frame needs no merge.
    /// Returns `Ok(false)`: the frame is concealment, not a recovery.
    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        out: &mut [i16; FRAME_SAMPLES],
    ) -> Result<bool, CodecError> {
        if next_payload.len() != FRAME_BYTES {
            self.conceal(out)?;
            return Ok(false);
        }
        let mut next = [0i16; FRAME_SAMPLES];
        for (s, b) in next.iter_mut().zip(next_payload.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        if self.erased == 0 {
            self.start_erasure();
        }
        let mut fwd = [0f32; FRAME_SAMPLES];
        self.synthesise(&mut fwd);
        let (p, _) = find_period(&next, PLC_MIN_PERIOD, FRAME_SAMPLES / 2);
        let p = p.clamp(PLC_MIN_PERIOD, FRAME_SAMPLES / 2);
        let n = FRAME_SAMPLES as f32;
        for (i, (o, &f)) in out.iter_mut().zip(&fwd).enumerate() {
            // The next frame's first period, repeated to the left of it.
            let back = f32::from(next[(p - (FRAME_SAMPLES - i) % p) % p]);
            let t = (i as f32 + 0.5) / n;
            let w = t * t * (3.0 - 2.0 * t);
            *o = to_i16((1.0 - w) * f + w * back);
        }
        self.remember(out);
        self.bridged = true;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_is_exact() {
        let frame: [i16; FRAME_SAMPLES] = std::array::from_fn(|i| (i as i16) * 100 - 16_000);
        let mut buf = [0u8; 700];
        let n = PcmEncoder::new().encode(&frame, &mut buf).expect("fits");
        assert_eq!(n, 640);
        assert_eq!(&buf[..2], &frame[0].to_le_bytes());
        let mut out = [0i16; FRAME_SAMPLES];
        PcmDecoder::new()
            .decode(&buf[..n], &mut out)
            .expect("valid");
        assert_eq!(out, frame);
        assert_eq!(
            PcmEncoder::new().encode(&frame, &mut buf[..639]),
            Err(CodecError::BufferTooSmall)
        );
    }

    fn bytes(frame: &[i16]) -> Vec<u8> {
        frame.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// A voiced-like signal: period `p` samples, two harmonics.
    fn voiced(p: usize, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let ph = (i % p) as f32 / p as f32 * std::f32::consts::TAU;
                (ph.sin() * 9_000.0 + (2.0 * ph).sin() * 3_000.0) as i16
            })
            .collect()
    }

    fn feed(d: &mut PcmDecoder, signal: &[i16]) {
        let mut out = [0i16; FRAME_SAMPLES];
        for f in signal.chunks_exact(FRAME_SAMPLES) {
            d.decode(&bytes(f), &mut out).expect("valid");
            assert_eq!(&out[..], f, "a clean path is bit-exact");
        }
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn concealment_before_any_frame_is_silence() {
        let mut d = PcmDecoder::new();
        let mut out = [1i16; FRAME_SAMPLES];
        for _ in 0..5 {
            d.conceal(&mut out).expect("conceal");
            assert!(out.iter().all(|&s| s == 0));
        }
    }

    #[test]
    fn concealment_continues_the_pitch_period() {
        for p in [45, 97, 160, 230] {
            let signal = voiced(p, 8 * FRAME_SAMPLES);
            let mut d = PcmDecoder::new();
            feed(&mut d, &signal[..6 * FRAME_SAMPLES]);
            let mut out = [0i16; FRAME_SAMPLES];
            d.conceal(&mut out).expect("conceal");
            assert_eq!(
                d.period % p,
                0,
                "pitch of a {p}-sample period: {}",
                d.period
            );
            // The first 10 ms (full level) is the true continuation.
            let truth = &signal[6 * FRAME_SAMPLES..];
            let err: f64 = (0..PLC_FULL_LEVEL_SAMPLES)
                .map(|i| (f64::from(out[i]) - f64::from(truth[i])).powi(2))
                .sum::<f64>()
                / PLC_FULL_LEVEL_SAMPLES as f64;
            let snr =
                10.0 * (rms(&truth[..PLC_FULL_LEVEL_SAMPLES]).powi(2) / err.max(1e-9)).log10();
            assert!(snr > 30.0, "period {p}: SNR {snr:.1} dB");
            // No click: the first sample continues the last one.
            let step = (i32::from(out[0]) - i32::from(signal[6 * FRAME_SAMPLES - 1])).abs();
            assert!(step < 1_500, "period {p}: step {step}");
        }
    }

    #[test]
    fn concealment_fades_to_silence_after_60_ms() {
        let mut signal = voiced(97, 8 * FRAME_SAMPLES);
        signal[..2 * FRAME_SAMPLES].fill(0);
        let mut d = PcmDecoder::new();
        feed(&mut d, &signal);
        let level = rms(&signal[2 * FRAME_SAMPLES..]);
        let mut frames = Vec::new();
        for _ in 0..4 {
            let mut out = [0i16; FRAME_SAMPLES];
            d.conceal(&mut out).expect("conceal");
            frames.push(out);
        }
        let half = FRAME_SAMPLES / 2;
        // 0-10 ms full level, 10-20 ms 100 % → 80 %, 20-40 ms 80 % → 40 %, 40-60 ms → 0.
        assert!(rms(&frames[0][..half]) > 0.9 * level);
        let r1 = rms(&frames[1]);
        assert!(r1 > 0.5 * level && r1 < 0.7 * level, "{r1} vs {level}");
        assert!(rms(&frames[2]) < 0.25 * level);
        assert!(frames[2][FRAME_SAMPLES - 1].abs() < 100);
        // A digitally silent background stays silent: no comfort noise.
        assert!(frames[3].iter().all(|&s| s == 0), "{:?}", &frames[3][..8]);
        assert!(
            !d.decode_fec(&bytes(&signal[..FRAME_SAMPLES]), &mut frames[0])
                .expect("no fec")
        );
    }

    #[test]
    fn long_gaps_get_comfort_noise_at_the_background_level() {
        // Speech with a quiet noisy background (about -60 dBFS) between bursts.
        let mut x = 1u32;
        let mut signal = voiced(97, 30 * FRAME_SAMPLES);
        for (i, s) in signal.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let noise = (x % 64) as i16 - 32;
            if !(i / FRAME_SAMPLES).is_multiple_of(5) {
                *s = noise;
            }
        }
        let mut d = PcmDecoder::new();
        feed(&mut d, &signal);
        let mut out = [0i16; FRAME_SAMPLES];
        for _ in 0..10 {
            d.conceal(&mut out).expect("conceal");
        }
        let (got, want) = (rms(&out), rms(&signal[FRAME_SAMPLES..2 * FRAME_SAMPLES]));
        assert!(got > 0.5 * want && got < 2.0 * want, "{got} vs {want}");
    }

    #[test]
    fn the_first_good_frame_is_merged_without_a_click() {
        let signal = voiced(97, 10 * FRAME_SAMPLES);
        let mut d = PcmDecoder::new();
        feed(&mut d, &signal[..6 * FRAME_SAMPLES]);
        let mut concealed = [0i16; FRAME_SAMPLES];
        d.conceal(&mut concealed).expect("conceal");
        // Packet 8 arrives (7 was lost): its start is a cross-fade, the rest exact.
        let good = &signal[7 * FRAME_SAMPLES..8 * FRAME_SAMPLES];
        let mut out = [0i16; FRAME_SAMPLES];
        d.decode(&bytes(good), &mut out).expect("valid");
        let merge = d.period / 4
            + (FRAME_SAMPLES - PLC_FULL_LEVEL_SAMPLES) * MERGE_PER_10MS / PLC_FULL_LEVEL_SAMPLES;
        assert_eq!(&out[merge..], &good[merge..]);
        let step = (i32::from(out[0]) - i32::from(concealed[FRAME_SAMPLES - 1])).abs();
        assert!(step < 2_000, "step {step}");
        // Back to bit-exact afterwards.
        feed(&mut d, &signal[8 * FRAME_SAMPLES..]);
    }

    #[test]
    fn a_lost_frame_with_its_successor_here_is_bridged_from_both_sides() {
        // A voiced signal whose period changes from 97 to 89 samples at the lost frame:
        // the forward concealment alone keeps the old period; the bridge ends on the
        // next frame's own waveform, which then plays bit-exact (no merge) and joins
        // without a click.
        let mut signal = voiced(97, 7 * FRAME_SAMPLES);
        signal.extend(voiced(89, 3 * FRAME_SAMPLES));
        let lost = &signal[7 * FRAME_SAMPLES..8 * FRAME_SAMPLES];
        let next = &signal[8 * FRAME_SAMPLES..9 * FRAME_SAMPLES];
        let err = |a: &[i16], b: &[i16]| {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum::<f64>()
        };
        let tail = FRAME_SAMPLES / 4..FRAME_SAMPLES;
        let mut fwd = PcmDecoder::new();
        feed(&mut fwd, &signal[..7 * FRAME_SAMPLES]);
        let mut forward = [0i16; FRAME_SAMPLES];
        fwd.conceal(&mut forward).expect("conceal");
        let mut d = PcmDecoder::new();
        feed(&mut d, &signal[..7 * FRAME_SAMPLES]);
        let mut bridged = [0i16; FRAME_SAMPLES];
        assert!(!d.decode_fec(&bytes(next), &mut bridged).expect("bridge"));
        let (e_fwd, e_bridge) = (
            err(&forward[tail.clone()], &lost[tail.clone()]),
            err(&bridged[tail.clone()], &lost[tail]),
        );
        assert!(
            e_bridge < e_fwd / 2.0,
            "bridge {e_bridge} vs forward {e_fwd}"
        );
        let mut out = [0i16; FRAME_SAMPLES];
        d.decode(&bytes(next), &mut out).expect("valid");
        assert_eq!(&out[..], next, "the next frame plays as it came");
        let step = (i32::from(out[0]) - i32::from(bridged[FRAME_SAMPLES - 1])).abs();
        assert!(step < 2_000, "step {step}");
        // A bridge without a decodable successor is plain concealment.
        let mut again = [0i16; FRAME_SAMPLES];
        assert!(!d.decode_fec(&[1, 2, 3], &mut again).expect("conceal"));
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        let mut d = PcmDecoder::new();
        let mut out = [0i16; FRAME_SAMPLES];
        assert_eq!(
            d.decode(&[0; 320], &mut out),
            Err(CodecError::WrongFrameLength { got: 160 })
        );
        assert_eq!(
            d.decode(&[0; 641], &mut out),
            Err(CodecError::InvalidPayload)
        );
        assert_eq!(
            d.decode(&[], &mut out),
            Err(CodecError::WrongFrameLength { got: 0 })
        );
    }

    proptest! {
        #[test]
        fn random_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let mut d = PcmDecoder::new();
            let mut out = [0i16; FRAME_SAMPLES];
            let r = d.decode(&payload, &mut out);
            prop_assert_eq!(r.is_ok(), payload.len() == FRAME_BYTES);
            prop_assert!(d.conceal(&mut out).is_ok());
        }
    }
}
