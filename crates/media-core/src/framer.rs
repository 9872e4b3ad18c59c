//! Framing: chunks of any size (device callbacks, resampler output) into exact frames,
//! and frames back into chunks of any size.
//!
//! A [`Framer`] accepts samples in whatever chunk sizes they arrive and hands out
//! exact frames (320 samples = 20 ms at 16 kHz by default, or any frame length for
//! other rates). A [`Deframer`] accepts whole frames and hands out chunks of any
//! requested size, filling with silence on underrun when asked to. Both are lossless:
//! every sample pushed comes out once, in order, whatever the chunking on either side.
//!
//! ```
//! use media_core::framer::Framer;
//! use media_core::frame::FRAME_SAMPLES;
//!
//! let mut framer = Framer::pcm16k(4); // room for 4 frames
//! framer.push(&[1; 100]);
//! framer.push(&[2; 300]);
//! let mut frame = [0i16; FRAME_SAMPLES];
//! assert!(framer.pop_frame(&mut frame));
//! assert_eq!(frame[99], 1);
//! assert_eq!(frame[100], 2);
//! assert!(!framer.pop_frame(&mut frame)); // 80 samples left, not a whole frame
//! assert_eq!(framer.buffered(), 80);
//! ```
//!
//! # Realtime safety
//! The sample storage is allocated once by the constructor. `push`, `pop_frame`,
//! `push_frame`, `pop`, `pop_or_silence` and `push_with` never allocate, lock or
//! block; each costs a copy of the samples moved.

use crate::frame::FRAME_SAMPLES;

/// A fixed-capacity FIFO of samples (a ring over one boxed slice).
#[derive(Debug, Clone)]
struct SampleFifo {
    buf: Box<[i16]>,
    /// Index of the oldest sample.
    head: usize,
    /// Samples stored.
    len: usize,
}

impl SampleFifo {
    /// Room for `capacity_frames` frames of `frame_len` samples.
    ///
    /// # Panics
    /// If `frame_len` or `capacity_frames` is zero (a configuration error).
    fn for_frames(frame_len: usize, capacity_frames: usize) -> Self {
        assert!(frame_len > 0, "frame length must be positive");
        assert!(capacity_frames > 0, "capacity must hold at least one frame");
        Self {
            buf: vec![0; frame_len * capacity_frames].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.buf.len()
    }

    fn vacant(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Appends as many samples as fit; returns how many were taken.
    fn push(&mut self, samples: &[i16]) -> usize {
        let n = samples.len().min(self.vacant());
        let cap = self.buf.len();
        if n == 0 {
            return 0;
        }
        let tail = (self.head + self.len) % cap;
        let first = n.min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&samples[..first]);
        self.buf[..n - first].copy_from_slice(&samples[first..n]);
        self.len += n;
        n
    }

    /// Removes up to `out.len()` samples into `out`; returns how many.
    fn pop(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(self.len);
        let cap = self.buf.len();
        if n == 0 {
            return 0;
        }
        let first = n.min(cap - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        self.head = (self.head + n) % cap;
        self.len -= n;
        n
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

/// Chunks of any size in, exact frames out.
///
/// Holds up to `capacity_frames` frames of samples; samples that do not fit are
/// refused (the count of accepted samples is returned and the refusal is counted in
/// [`Framer::overflowed`]).
#[derive(Debug, Clone)]
pub struct Framer {
    fifo: SampleFifo,
    frame_len: usize,
    overflowed: u64,
}

impl Framer {
    /// A framer producing frames of `frame_len` samples, buffering up to
    /// `capacity_frames` whole frames.
    ///
    /// # Panics
    /// If `frame_len` or `capacity_frames` is zero (a configuration error).
    pub fn new(frame_len: usize, capacity_frames: usize) -> Self {
        Self {
            fifo: SampleFifo::for_frames(frame_len, capacity_frames),
            frame_len,
            overflowed: 0,
        }
    }

    /// A framer of 20 ms `Pcm16K` frames (320 samples).
    ///
    /// # Panics
    /// If `capacity_frames` is zero.
    pub fn pcm16k(capacity_frames: usize) -> Self {
        Self::new(FRAME_SAMPLES, capacity_frames)
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Samples currently buffered (whole frames plus a partial one).
    pub fn buffered(&self) -> usize {
        self.fifo.len
    }

    /// Whole frames ready to pop.
    pub fn frames_ready(&self) -> usize {
        self.fifo.len / self.frame_len
    }

    /// Room left, in samples.
    pub fn vacant(&self) -> usize {
        self.fifo.vacant()
    }

    /// Capacity in samples.
    pub fn capacity(&self) -> usize {
        self.fifo.capacity()
    }

    /// Samples refused so far because the framer was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Appends samples; returns how many were accepted (all of them unless full).
    pub fn push(&mut self, samples: &[i16]) -> usize {
        let n = self.fifo.push(samples);
        self.overflowed += (samples.len() - n) as u64;
        n
    }

    /// Pops one whole frame into `out` (which must be exactly `frame_len` long).
    /// Returns `false`, leaving `out` untouched, when no whole frame is buffered or
    /// `out` has the wrong length.
    pub fn pop_frame(&mut self, out: &mut [i16]) -> bool {
        if out.len() != self.frame_len || self.fifo.len < self.frame_len {
            return false;
        }
        self.fifo.pop(out);
        true
    }

    /// Appends samples and hands every frame completed by them to `on_frame`,
    /// without keeping them. Frames already buffered are delivered first. Use this
    /// when the consumer runs inline; use [`Framer::push`] and
    /// [`Framer::pop_frame`] when it runs later. `scratch` must be `frame_len`
    /// long (returns `false` and does nothing otherwise).
    pub fn push_with(
        &mut self,
        mut samples: &[i16],
        scratch: &mut [i16],
        mut on_frame: impl FnMut(&[i16]),
    ) -> bool {
        if scratch.len() != self.frame_len {
            return false;
        }
        loop {
            while self.pop_frame(scratch) {
                on_frame(scratch);
            }
            if samples.is_empty() {
                return true;
            }
            // The FIFO holds less than a frame now and its capacity is at least one
            // frame, so this always makes progress.
            let n = self.fifo.push(samples);
            samples = &samples[n..];
        }
    }

    /// Drops everything buffered.
    pub fn clear(&mut self) {
        self.fifo.clear();
    }
}

/// Whole frames in, chunks of any size out.
#[derive(Debug, Clone)]
pub struct Deframer {
    fifo: SampleFifo,
    frame_len: usize,
    underrun_samples: u64,
}

/// The deframer had no room for a whole frame; nothing was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeframerFull;

impl std::fmt::Display for DeframerFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deframer is full: pop samples before pushing another frame")
    }
}

impl std::error::Error for DeframerFull {}

impl Deframer {
    /// A deframer taking frames of `frame_len` samples, buffering up to
    /// `capacity_frames` of them.
    ///
    /// # Panics
    /// If `frame_len` or `capacity_frames` is zero.
    pub fn new(frame_len: usize, capacity_frames: usize) -> Self {
        Self {
            fifo: SampleFifo::for_frames(frame_len, capacity_frames),
            frame_len,
            underrun_samples: 0,
        }
    }

    /// A deframer of 20 ms `Pcm16K` frames.
    ///
    /// # Panics
    /// If `capacity_frames` is zero.
    pub fn pcm16k(capacity_frames: usize) -> Self {
        Self::new(FRAME_SAMPLES, capacity_frames)
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Samples buffered.
    pub fn buffered(&self) -> usize {
        self.fifo.len
    }

    /// Room left, in samples.
    pub fn vacant(&self) -> usize {
        self.fifo.vacant()
    }

    /// Silence samples produced by [`Deframer::pop_or_silence`] so far.
    pub fn underrun_samples(&self) -> u64 {
        self.underrun_samples
    }

    /// Appends one frame (exactly `frame_len` samples). When it does not fit, or has
    /// the wrong length, nothing is taken.
    pub fn push_frame(&mut self, frame: &[i16]) -> Result<(), DeframerFull> {
        if frame.len() != self.frame_len || self.fifo.vacant() < frame.len() {
            return Err(DeframerFull);
        }
        self.fifo.push(frame);
        Ok(())
    }

    /// Pops up to `out.len()` samples; returns how many were written.
    pub fn pop(&mut self, out: &mut [i16]) -> usize {
        self.fifo.pop(out)
    }

    /// Fills `out` completely only if enough samples are buffered; returns whether it
    /// did (nothing is taken otherwise).
    pub fn pop_exact(&mut self, out: &mut [i16]) -> bool {
        if self.fifo.len < out.len() {
            return false;
        }
        self.fifo.pop(out);
        true
    }

    /// Fills `out` completely: buffered samples first, then silence. Returns how many
    /// real samples were written; the silence is counted in
    /// [`Deframer::underrun_samples`].
    pub fn pop_or_silence(&mut self, out: &mut [i16]) -> usize {
        let n = self.fifo.pop(out);
        out[n..].fill(0);
        self.underrun_samples += (out.len() - n) as u64;
        n
    }

    /// Drops everything buffered.
    pub fn clear(&mut self) {
        self.fifo.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ramp(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (i as i32 % 65_536 - 32_768) as i16)
            .collect()
    }

    #[test]
    fn frames_come_out_whole_and_in_order() {
        let mut f = Framer::pcm16k(3);
        let input = ramp(1000);
        assert_eq!(f.push(&input[..500]), 500);
        assert_eq!(f.frames_ready(), 1);
        assert_eq!(f.push(&input[500..]), 460, "capacity is 960");
        assert_eq!(f.overflowed(), 40);
        let mut out = [0i16; FRAME_SAMPLES];
        for k in 0..3 {
            assert!(f.pop_frame(&mut out));
            assert_eq!(&out[..], &input[k * 320..(k + 1) * 320]);
        }
        assert!(!f.pop_frame(&mut out));
        let mut wrong = [0i16; 10];
        assert!(!f.pop_frame(&mut wrong));
    }

    #[test]
    fn push_with_delivers_inline_even_for_huge_chunks() {
        let mut f = Framer::new(160, 1);
        let input = ramp(1000);
        let mut scratch = [0i16; 160];
        let mut got = Vec::new();
        assert!(f.push_with(&input, &mut scratch, |fr| got.extend_from_slice(fr)));
        assert_eq!(got, &input[..960]);
        assert_eq!(f.buffered(), 40);
        assert_eq!(f.overflowed(), 0);
        assert!(!f.push_with(&input, &mut [0i16; 3], |_| {}));
    }

    #[test]
    fn deframer_underrun_fills_silence() {
        let mut d = Deframer::pcm16k(2);
        let frame = ramp(320);
        d.push_frame(&frame).expect("room");
        d.push_frame(&frame).expect("room");
        assert_eq!(d.push_frame(&frame), Err(DeframerFull));
        assert_eq!(d.push_frame(&frame[..10]), Err(DeframerFull));
        let mut out = vec![7i16; 700];
        assert!(!d.pop_exact(&mut out));
        assert_eq!(d.pop_or_silence(&mut out), 640);
        assert_eq!(&out[..320], &frame[..]);
        assert!(out[640..].iter().all(|&s| s == 0));
        assert_eq!(d.underrun_samples(), 60);
    }

    fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(0usize..700, 1..40)
    }

    proptest! {
        /// Any chunking of a stream yields the same frames as feeding it whole.
        #[test]
        fn any_chunking_yields_the_same_frames(
            chunks in chunk_sizes(),
            frame_len in prop::sample::select(vec![80usize, 160, 320, 441, 960]),
        ) {
            let total: usize = chunks.iter().sum();
            let input = ramp(total);
            let mut f = Framer::new(frame_len, 4);
            let mut out = vec![0i16; frame_len];
            let mut frames = Vec::new();
            let mut pos = 0;
            for &c in &chunks {
                let mut rest = &input[pos..pos + c];
                // Drain as we go, like a pipeline tick: nothing may be lost.
                while !rest.is_empty() {
                    let room = rest.len().min(f.vacant());
                    let n = f.push(&rest[..room]);
                    rest = &rest[n..];
                    while f.pop_frame(&mut out) {
                        frames.extend_from_slice(&out);
                    }
                }
                pos += c;
            }
            prop_assert_eq!(f.overflowed(), 0);
            let whole = total / frame_len * frame_len;
            prop_assert_eq!(&frames[..], &input[..whole]);
            prop_assert_eq!(f.buffered(), total - whole);

            // The inline variant agrees.
            let mut g = Framer::new(frame_len, 1);
            let mut inline = Vec::new();
            let mut pos = 0;
            for &c in &chunks {
                prop_assert!(g.push_with(&input[pos..pos + c], &mut out, |fr| inline.extend_from_slice(fr)));
                pos += c;
            }
            prop_assert_eq!(inline, frames);
        }

        /// A deframer yields any requested chunk sizes losslessly.
        #[test]
        fn deframer_yields_any_chunk_sizes(
            frames in 1usize..30,
            chunks in chunk_sizes(),
        ) {
            let input = ramp(frames * 320);
            let mut d = Deframer::pcm16k(3);
            let mut fed = 0;
            let mut got = Vec::new();
            let mut buf = vec![0i16; 700];
            let mut ci = 0;
            while got.len() < input.len() {
                while fed < frames && d.push_frame(&input[fed * 320..(fed + 1) * 320]).is_ok() {
                    fed += 1;
                }
                let want = chunks[ci % chunks.len()].max(1);
                ci += 1;
                let n = d.pop(&mut buf[..want]);
                got.extend_from_slice(&buf[..n]);
            }
            prop_assert_eq!(got, input);
            prop_assert_eq!(d.underrun_samples(), 0);
        }
    }
}
