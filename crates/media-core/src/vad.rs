//! Voice activity: an energy detector with an adaptive noise floor and hangover,
//! one decision per 20 ms frame. It sets the `silence` flag of outgoing packets.
//!
//! A frame is *active* when its level is both `threshold_db` above the tracked
//! noise floor and above `min_speech_dbfs`. The floor follows quieter frames quickly
//! and louder ones slowly (`floor_rise_db_per_frame`), so steady noise stops counting
//! as speech after a few seconds while speech pauses keep pulling it back down. After
//! the last active frame, `hangover_frames` more frames are still reported as speech
//! so word endings and short pauses are not clipped.
//!
//! ```
//! use media_core::vad::{Activity, Vad, VadConfig};
//!
//! let mut vad = Vad::new(VadConfig::default());
//! assert_eq!(vad.process(&[0; 320]), Activity::Silence);
//! let loud: [i16; 320] = std::array::from_fn(|i| if i % 16 < 8 { 3_000 } else { -3_000 });
//! assert_eq!(vad.process(&loud), Activity::Speech);
//! assert_eq!(vad.process(&[0; 320]), Activity::Hangover);
//! ```
//!
//! # Realtime safety
//! A few floats of state; `process` does one pass over the frame and never
//! allocates, locks or blocks.

use crate::frame::FRAME_SAMPLES;

/// Level used for digital silence (whose true level is minus infinity), in dBFS.
const FLOOR_MIN_DBFS: f32 = -120.0;
/// The noise floor is never tracked above this level, in dBFS: louder steady sound
/// keeps counting as activity.
const FLOOR_MAX_DBFS: f32 = -20.0;

/// Voice activity detector settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// How far above the noise floor a frame must be to count as speech, in dB.
    pub threshold_db: f32,
    /// Frames quieter than this are never speech, in dBFS.
    pub min_speech_dbfs: f32,
    /// Frames still reported as speech after the last active one (10 = 200 ms).
    pub hangover_frames: u16,
    /// How fast the noise floor rises towards louder frames, in dB per frame.
    pub floor_rise_db_per_frame: f32,
    /// Fraction of the gap the floor closes per frame towards quieter frames.
    pub floor_fall: f32,
    /// The noise floor assumed before the first frame, in dBFS.
    pub initial_floor_dbfs: f32,
}

impl Default for VadConfig {
    /// 9 dB over the floor, at least -60 dBFS, 200 ms hangover, floor rising
    /// 5 dB/s and falling fast, starting at -70 dBFS.
    fn default() -> Self {
        Self {
            threshold_db: 9.0,
            min_speech_dbfs: -60.0,
            hangover_frames: 10,
            floor_rise_db_per_frame: 0.1,
            floor_fall: 0.3,
            initial_floor_dbfs: -70.0,
        }
    }
}

/// The detector's verdict on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// The frame is active.
    Speech,
    /// The frame is quiet but within the hangover after speech: treat as speech.
    Hangover,
    /// The frame is silence (or steady background noise).
    Silence,
}

impl Activity {
    /// Whether the frame should be flagged as silence.
    pub fn is_silence(self) -> bool {
        self == Self::Silence
    }
}

/// Energy-based voice activity detector.
#[derive(Debug, Clone)]
pub struct Vad {
    config: VadConfig,
    floor_db: f32,
    level_db: f32,
    hang: u16,
}

impl Vad {
    /// A detector with `config`.
    pub fn new(config: VadConfig) -> Self {
        Self {
            config,
            floor_db: config
                .initial_floor_dbfs
                .clamp(FLOOR_MIN_DBFS, FLOOR_MAX_DBFS),
            level_db: FLOOR_MIN_DBFS,
            hang: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// The tracked noise floor, in dBFS.
    pub fn noise_floor_dbfs(&self) -> f32 {
        self.floor_db
    }

    /// The level of the last frame, in dBFS (-120 for digital silence).
    pub fn last_level_dbfs(&self) -> f32 {
        self.level_db
    }

    /// Judges one frame and updates the noise floor.
    pub fn process(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Activity {
        let level = level_dbfs(frame);
        self.level_db = level;
        let c = &self.config;
        let active = level > self.floor_db + c.threshold_db && level > c.min_speech_dbfs;
        if level < self.floor_db {
            self.floor_db += c.floor_fall * (level - self.floor_db);
        } else {
            self.floor_db = (self.floor_db + c.floor_rise_db_per_frame).min(level);
        }
        self.floor_db = self.floor_db.clamp(FLOOR_MIN_DBFS, FLOOR_MAX_DBFS);
        if active {
            self.hang = c.hangover_frames;
            Activity::Speech
        } else if self.hang > 0 {
            self.hang -= 1;
            Activity::Hangover
        } else {
            Activity::Silence
        }
    }

    /// Forgets the noise floor and any hangover.
    pub fn reset(&mut self) {
        *self = Self::new(self.config);
    }
}

/// Mean power of a frame in dBFS, floored at -120 (integer accumulation: exact and
/// cheap).
fn level_dbfs(frame: &[i16; FRAME_SAMPLES]) -> f32 {
    let sum: i64 = frame.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    if sum == 0 {
        return FLOOR_MIN_DBFS;
    }
    let ms = sum as f64 / (FRAME_SAMPLES as f64 * 32_768.0 * 32_768.0);
    ((10.0 * ms.log10()) as f32).max(FLOOR_MIN_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn tone(k: usize, amp: f64) -> [i16; FRAME_SAMPLES] {
        std::array::from_fn(|i| {
            let t = (k * FRAME_SAMPLES + i) as f64 / 16_000.0;
            (amp * 32_767.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16
        })
    }

    fn noise(rng: &mut ChaCha8Rng, amp: i16) -> [i16; FRAME_SAMPLES] {
        std::array::from_fn(|_| rng.random_range(-amp..=amp))
    }

    #[test]
    fn level_matches_the_frame_helper() {
        let f = tone(0, 0.5);
        let a = level_dbfs(&f);
        let b = crate::frame::rms_dbfs(&f);
        assert!((a - b).abs() < 0.01, "{a} vs {b}");
        assert_eq!(level_dbfs(&[0; FRAME_SAMPLES]), -120.0);
    }

    #[test]
    fn speech_then_hangover_then_silence() {
        let mut vad = Vad::new(VadConfig::default());
        for _ in 0..5 {
            assert!(vad.process(&[0; FRAME_SAMPLES]).is_silence());
        }
        for k in 0..20 {
            assert_eq!(vad.process(&tone(k, 0.3)), Activity::Speech);
        }
        for _ in 0..10 {
            assert_eq!(vad.process(&[0; FRAME_SAMPLES]), Activity::Hangover);
        }
        assert_eq!(vad.process(&[0; FRAME_SAMPLES]), Activity::Silence);
    }

    #[test]
    fn steady_noise_becomes_silence_and_speech_over_it_is_detected() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut vad = Vad::new(VadConfig::default());
        // About -45 dBFS of white noise: above the initial floor, so it starts as
        // "speech" and must be learned as background within a few seconds.
        let mut silent_after = None;
        for k in 0..300 {
            if vad.process(&noise(&mut rng, 300)).is_silence() && silent_after.is_none() {
                silent_after = Some(k);
            }
        }
        let k = silent_after.expect("noise learned");
        assert!(k < 250, "took {k} frames");
        assert!(
            (vad.noise_floor_dbfs() - -45.0).abs() < 3.0,
            "{}",
            vad.noise_floor_dbfs()
        );
        for k in 0..50 {
            assert!(vad.process(&noise(&mut rng, 300)).is_silence(), "frame {k}");
        }
        // Speech 20 dB over the noise.
        let mut f = tone(0, 0.05);
        for (s, n) in f.iter_mut().zip(noise(&mut rng, 300)) {
            *s = s.saturating_add(n);
        }
        assert_eq!(vad.process(&f), Activity::Speech);
    }

    #[test]
    fn quiet_sounds_below_the_absolute_minimum_are_silence() {
        let mut vad = Vad::new(VadConfig::default());
        for _ in 0..50 {
            vad.process(&[0; FRAME_SAMPLES]);
        }
        // -70 dBFS: far above digital silence but below -60 dBFS.
        assert!(vad.process(&tone(0, 0.0004)).is_silence());
        vad.reset();
        assert_eq!(vad.noise_floor_dbfs(), -70.0);
    }
}
