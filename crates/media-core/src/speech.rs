//! A deterministic speech-like test signal ([`speech_like`], [`SpeechLike`]): a synthetic
//! talker for tests, benchmarks, load runs and demos, 16 kHz mono, the same for a seed
//! on every machine. It has what real speech has and tones lack: a pitch that never
//! repeats exactly (a cross-correlation finds one clear delay), formants that glide,
//! fricatives, and pauses between words (the VAD and the jitter buffer's time-stretching
//! see silence).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::frame::PCM16K_RATE;

/// A two-pole resonator (formant filter) with unity gain at its peak.
#[derive(Debug, Clone, Copy, Default)]
struct Resonator {
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn run(&mut self, x: f32, freq: f32, bw: f32) -> f32 {
        let fs = PCM16K_RATE as f32;
        let r = (-std::f32::consts::PI * bw / fs).exp();
        let a1 = 2.0 * r * (std::f32::consts::TAU * freq / fs).cos();
        let a2 = -r * r;
        let y = (1.0 - r) * x + a1 * self.y1 + a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// (F1, F2, F3) of a few vowels, Hz.
const VOWELS: [(f32, f32, f32); 6] = [
    (730.0, 1090.0, 2440.0),
    (270.0, 2290.0, 3010.0),
    (530.0, 1840.0, 2480.0),
    (570.0, 840.0, 2410.0),
    (300.0, 870.0, 2240.0),
    (660.0, 1720.0, 2410.0),
];

/// What [`SpeechLike`] is in the middle of.
#[derive(Debug, Clone, Copy)]
enum Segment {
    /// Fricative / stop noise before a syllable: sample `i` of `n`, centred on `f` Hz.
    Burst { i: usize, n: usize, f: f32 },
    /// A voiced syllable: sample `i` of `n`, gliding from the `start` formants to the
    /// `target` vowel, pitch from `f0_a` to `f0_b`.
    Voiced {
        i: usize,
        n: usize,
        start: (f32, f32, f32),
        target: (f32, f32, f32),
        f0_a: f32,
        f0_b: f32,
    },
    /// The pause after a word: `left` samples of a very low noise floor.
    Pause { left: usize },
}

/// The endless source behind [`speech_like`], one sample at a time and before its peak
/// normalisation: words of 1-4 syllables (voiced: a glottal pulse train with a moving
/// pitch contour, 85-230 Hz, through three formant resonators that glide between vowel
/// targets; short fricative noise between syllables) separated by pauses of 150-700 ms.
/// The pitch never repeats exactly, so a cross-correlation finds one clear delay.
/// Deterministic for a seed.
#[derive(Debug, Clone)]
pub struct SpeechLike {
    rng: ChaCha8Rng,
    res: [Resonator; 4],
    formants: (f32, f32, f32),
    phase: f32,
    glottal: (f32, f32),
    last: f32,
    speaker_f0: f32,
    syllables: i32,
    syllable: i32,
    segment: Segment,
}

impl SpeechLike {
    /// The talker for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5BEE_C400);
        let speaker_f0 = rng.random_range(95.0..150.0f32);
        Self {
            rng,
            res: [Resonator::default(); 4],
            formants: VOWELS[0],
            phase: 0.0,
            glottal: (0.0, 0.0),
            last: 0.0,
            speaker_f0,
            syllables: 0,
            syllable: 0,
            // An empty pause: the first sample starts the first word.
            segment: Segment::Pause { left: 0 },
        }
    }

    /// Starts syllable `self.syllable`: a burst before some, then the voiced part.
    fn start_syllable(&mut self) -> Segment {
        let fs = PCM16K_RATE as f32;
        if self.rng.random_bool(0.4) {
            let n = (self.rng.random_range(0.03..0.08f32) * fs) as usize;
            let f = self.rng.random_range(3000.0..6000.0f32);
            Segment::Burst { i: 0, n, f }
        } else {
            self.start_voiced()
        }
    }

    fn start_voiced(&mut self) -> Segment {
        let fs = PCM16K_RATE as f32;
        let target = VOWELS[self.rng.random_range(0..VOWELS.len())];
        let n = (self.rng.random_range(0.12..0.28f32) * fs) as usize;
        let f0_a = self.speaker_f0
            * self.rng.random_range(0.85..1.35f32)
            * (1.0 - 0.05 * self.syllable as f32);
        let f0_b = f0_a * self.rng.random_range(0.75..1.1f32);
        Segment::Voiced {
            i: 0,
            n,
            start: self.formants,
            target,
            f0_a,
            f0_b,
        }
    }

    /// The next sample (16 kHz; full scale before [`speech_like`]'s normalisation).
    pub fn next_sample(&mut self) -> i16 {
        let fs = PCM16K_RATE as f32;
        loop {
            match &mut self.segment {
                Segment::Burst { i, n, f } if *i < *n => {
                    let env = (std::f32::consts::PI * *i as f32 / *n as f32).sin();
                    let f = *f;
                    *i += 1;
                    let noise: f32 = self.rng.random_range(-1.0..1.0);
                    let y = self.res[3].run(noise, f, 1800.0) * env * 0.5;
                    return (y * 32767.0).clamp(-32768.0, 32767.0) as i16;
                }
                Segment::Burst { .. } => self.segment = self.start_voiced(),
                &mut Segment::Voiced {
                    ref mut i,
                    n,
                    start,
                    target,
                    f0_a,
                    f0_b,
                } if *i < n => {
                    let t = *i as f32 / n as f32;
                    *i += 1;
                    return self.voiced_sample(t, start, target, f0_a, f0_b);
                }
                Segment::Voiced { .. } => {
                    self.syllable += 1;
                    self.segment = if self.syllable < self.syllables {
                        self.start_syllable()
                    } else {
                        // Pause between words, with a very low noise floor.
                        let n = (self.rng.random_range(0.15..0.7f32) * fs) as usize;
                        Segment::Pause { left: n }
                    };
                }
                Segment::Pause { left } if *left > 0 => {
                    *left -= 1;
                    return self.rng.random_range(-3..=3);
                }
                Segment::Pause { .. } => {
                    self.syllables = self.rng.random_range(1..=4);
                    self.syllable = 0;
                    self.segment = self.start_syllable();
                }
            }
        }
    }

    /// One voiced sample at position `t` (0..1) of its syllable.
    fn voiced_sample(
        &mut self,
        t: f32,
        start: (f32, f32, f32),
        target: (f32, f32, f32),
        f0_a: f32,
        f0_b: f32,
    ) -> i16 {
        let fs = PCM16K_RATE as f32;
        // Formants glide to the vowel over the first 30 % of the syllable.
        let g = (t / 0.3).min(1.0);
        let formants = (
            start.0 + (target.0 - start.0) * g,
            start.1 + (target.1 - start.1) * g,
            start.2 + (target.2 - start.2) * g,
        );
        self.formants = formants;
        let f0 = f0_a + (f0_b - f0_a) * t;
        self.phase += f0 / fs;
        let mut e = 0.0;
        if self.phase >= 1.0 {
            self.phase -= 1.0;
            e = 1.0;
        }
        // Glottal shaping: two leaky integrators, then lip radiation.
        self.glottal.0 = 0.96 * self.glottal.0 + e;
        self.glottal.1 = 0.9 * self.glottal.1 + self.glottal.0;
        let src = self.glottal.1 - self.last;
        self.last = self.glottal.1;
        let v = self.res[0].run(src, formants.0, 90.0) * 1.0
            + self.res[1].run(src, formants.1, 110.0) * 0.6
            + self.res[2].run(src, formants.2, 170.0) * 0.35;
        // Syllable envelope: raised-cosine attack and release.
        let env = if t < 0.15 {
            0.5 - 0.5 * (std::f32::consts::PI * t / 0.15).cos()
        } else if t > 0.75 {
            0.5 + 0.5 * (std::f32::consts::PI * (t - 0.75) / 0.25).cos()
        } else {
            1.0
        };
        let y = v * env * 0.9;
        (y * 32767.0).clamp(-32768.0, 32767.0) as i16
    }
}

impl Iterator for SpeechLike {
    type Item = i16;

    fn next(&mut self) -> Option<i16> {
        Some(self.next_sample())
    }
}

/// A deterministic speech-like test signal, 16 kHz mono: `samples` of [`SpeechLike`]
/// with the peak normalised to -3 dBFS. Level about -20 dBFS RMS while talking.
pub fn speech_like(samples: usize, seed: u64) -> Vec<i16> {
    let mut out: Vec<i16> = SpeechLike::new(seed).take(samples).collect();
    // Normalise the peak to -3 dBFS.
    let peak = out
        .iter()
        .map(|&s| i32::from(s).abs())
        .max()
        .unwrap_or(1)
        .max(1);
    let g = 23_197.0 / peak as f32;
    for s in out.iter_mut() {
        *s = (f32::from(*s) * g).clamp(-32768.0, 32767.0) as i16;
    }
    out
}
