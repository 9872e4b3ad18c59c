//! Adaptive jitter buffer (NetEQ-like), sans-IO.
//!
//! The [`JitterBuffer`] stores encoded packets, orders them, estimates how much delay the
//! network needs, and each time the player needs 20 ms more audio it says what to do
//! with the next 20 ms of media ([`Playout`]): decode a packet (possibly time-stretched),
//! recover a lost one from the forward error correction of the next packet, or conceal.
//! Decoding and time-stretching happen in [`crate::playout::ReceivePipeline`], which
//! composes this buffer, a decoder and [`stretch`].
//!
//! # What it handles
//! * **Ordering**: packets are kept sorted by timestamp; `u16` sequence numbers and `u32`
//!   timestamps are unwrapped to 64 bits relative to the highest value seen, so
//!   wrap-around is invisible.
//! * **Duplicates** (a 256-packet bitmap of received sequence numbers): counted, dropped.
//! * **Reordering**: counted (a packet older than the newest one received); a reordered
//!   packet is still played if it arrives before its playout.
//! * **Late packets** (timestamp before the playout point): counted, dropped.
//! * **Gaps**: if the packet after the missing one is in the buffer the missing frame is
//!   recovered from its FEC ([`Playout::Fec`]), else concealed ([`Playout::Conceal`]).
//! * **Underruns** (nothing to play): concealment *without* advancing the playout point,
//!   so a packet delayed by a spike is still played when it arrives (the delay grows and
//!   is then brought back down by accelerating). If the packet was really lost, the
//!   concealment already played is credited against the gap when the next packet
//!   arrives, so no extra delay is built up.
//! * **Timestamp jumps and restarts**: a packet whose sequence number and timestamp
//!   disagree with the stream is held; when the next packet confirms it the buffer
//!   resynchronises on the new timeline. A lone inconsistent packet is counted as
//!   malformed.
//! * **Clock drift** (sender ±0.5 %): the playout point is measured against the arrival
//!   times every packet, so the buffer stretches continuously to follow the sender.
//!   A sender whose clock runs slow (at least [`DRIFT_MIN_US_PER_S`], measured over
//!   10 s, see [`delay`]) takes 20 ms of margin every few seconds; once that is
//!   measured it is anticipated [`DRIFT_LOOKAHEAD_S`] ahead: the room it will need is
//!   made in a pause before it is urgent (otherwise the expansion falls wherever the
//!   margin runs out, mostly inside speech), and no delay is given back that the drift
//!   would take again.
//! * **Bounded memory**: a fixed number of packet slots (the maximum delay / 20 ms);
//!   overflow drops the oldest packet and counts it.
//!
//! # Delay control
//! The target delay comes from NetEQ-style estimation: relative delay
//! `max(0, (arrival - arrival_min) - (ts - ts_min))` over a 2 s window, the peak of each
//! 200 ms interval into a histogram (2 ms buckets, forget factor 0.983), target = its 90th
//! percentile ([`JitterConfig::quantile`]), 80 ms before the first measurement. The controlled
//! quantity is the *margin* of the packet being decoded: `now - ts - transit_min`, i.e.
//! how long after the fastest possible arrival the packet is needed. A packet is on time
//! exactly when its relative delay is at most the margin. Because decoding happens on the
//! 20 ms tick, the margin moves in 20 ms steps; the rest of the playout delay is the
//! decoded audio still waiting in the pipeline (`pending`). The rules:
//!
//! * one 20 ms step lower is still safe — margin - 20 ms ≥ target + hysteresis
//!   (0.15 of the target by default, [`JitterConfig::accelerate_hysteresis_fraction`]:
//!   the estimate wanders with the jitter, and following each wander both ways costs
//!   more than the delay it saves), or at
//!   most 0.8 % of the last 500 packets had a relative delay above margin - 20 ms —:
//!   accelerate (one pitch period, or a whole quiet frame); the margin drops by 20 ms
//!   when the pending audio runs out a tick earlier;
//! * the margin is enough (≥ target - tolerance, 0.15 of the target by default,
//!   [`JitterConfig::expand_tolerance_fraction`]; or the recent packets fit it within
//!   the same budget): accelerate by at most `pending` samples (less delay, same margin);
//! * otherwise: preemptive expand (insert up to the 20 ms that raise the margin).
//!
//! The two fractions are a hysteresis around the target: without them a buffer under
//! 12 ms of normal jitter (`cellular`) expanded and accelerated inside speech as its
//! estimate wandered, and scored 0.4 PESQ-WB below a fixed playout delay at the oracle
//! delay (female and ARCTIC inputs, PCM); with them the mean over five inputs is 0.04
//! (PCM) and 0.02 (Opus) below it (BENCHMARKS.md). Under a measured drift they are not
//! applied: those stretches are needed.
//!
//! The late-rate check matters because the margin moves in 20 ms steps: when the
//! quantile estimate sits just above a step, the recent packets decide whether the
//! lower step is really too late.
//!
//! Each request says where the stretch may go ([`Urgency`]). Every stretch inside
//! speech moves the rest of a word against the sender's timing, which listeners (and
//! PESQ) notice more than the delay it saves, so a buffer at most one step above its
//! target accelerates only in a quiet frame ([`Urgency::QuietOnly`]: speech pauses
//! come every few seconds), and after [`PAUSE_WAIT`] frames without one (music, a
//! tone) also where a pitch period repeats cleanly ([`Urgency::Clean`]); further above
//! the target, and whenever the margin is short of it (late packets would follow),
//! a clean period in speech is taken at once. The receive pipeline makes the cut
//! (see [`stretch`]); a frame that does not allow it is played as it is and the next
//! one is asked.
//!
//! # Reliable links
//! A link over TCP (a platform WebSocket) loses nothing but delivers late and in
//! bursts; it says so with [`Delivery::ReliableOrdered`] ([`JitterBuffer::set_delivery`],
//! set by the call from [`MediaLink::delivery`](crate::link::MediaLink::delivery)).
//! The buffer then never declares a packet lost because it is late:
//!
//! * **Waiting.** An underrun conceals (nothing else can be played) without moving the
//!   playout point, however long it lasts; when the packet arrives it is decoded next,
//!   the decoder merges it with the concealment, and the delay the stall added is
//!   brought back to the target by accelerating. Nothing is discarded as late.
//! * **Target from the bursts.** A late packet costs a concealment and an acceleration
//!   instead of a loss, so the target covers every burst seen recently: it is the
//!   largest relative delay of the last 500 packets (10 s), or the histogram quantile
//!   if that is higher, and the late-rate check allows no late packet. After a stall
//!   the target has grown by the stall, so the extra delay the concealment built up is
//!   kept (no second disruption) until 10 s without such a burst let it go.
//! * **Bounded delay.** If the margin exceeds the target by more than
//!   [`JitterConfig::reliable_max_excess`] (a sender that paused and resumed, a stall
//!   longer than the recent bursts), every decoded frame is accelerated urgently
//!   ([`Stretch::Accelerate`] with [`Urgency::Forced`], counted in
//!   [`JitterStats::backlog_accelerations`]); the slots bound what is stored, and an
//!   overflow drops the oldest packet (counted in [`JitterStats::overflow`]).
//!
//! # Realtime safety
//! All storage is allocated by [`JitterBuffer::new`]: packet slots, the sort order, the
//! transit window and the histogram. [`JitterBuffer::handle_packet`] and
//! [`JitterBuffer::poll_playout`] never allocate, lock or block; their errors are small
//! `Copy` values. The cost is a binary search and a short memmove of `u16` indices per
//! packet, and at most two scans of the 500 recent relative delays per decoded frame
//! (measured: 0.13 µs per packet in + frame out, `benches/jitter.rs`).

mod delay;
pub mod stretch;
mod types;

use std::time::{Duration, Instant};

use crate::frame::FRAME_SAMPLES;
use crate::link::Delivery;
use crate::packet::AudioPacket;

use delay::{DelayManager, DelayParams};
pub use types::{Accepted, Discard, JitterConfig, JitterStats, Playout, Stretch, Urgency};

/// Samples per packet (the timestamp step of one 20 ms frame), as `u64`.
const STEP: u64 = FRAME_SAMPLES as u64;
/// Unwrapped sequence numbers and timestamps start at this offset so that packets
/// reordered before the first one stay positive.
const UNWRAP_BASE: u64 = 1 << 32;
/// Microseconds per 20 ms frame.
const FRAME_US: i64 = 20_000;
/// Most packets the buffer can hold whatever the configuration.
pub const MAX_CAPACITY: usize = 256;
/// Relative delays kept for the late-rate check (10 s of packets).
const RECENT: usize = 500;
/// Late-packet budget of the late-rate check: at most 0.8 % of the recent packets may
/// have been later than a candidate margin.
const LATE_BUDGET_PER_MILLE: usize = 8;
/// Decoded frames (2 s) a one-step excess of delay waits for a pause before a clean
/// cut in speech will do (a signal without pauses: music, a tone).
pub const PAUSE_WAIT: u32 = 100;
/// Sender clock drift (µs of transit per second, see [`delay`]) from which the playout
/// anticipates it: 500 ppm, far above real clocks' 10-100 ppm, where the 20 ms steps
/// come seldom enough for the plain rules.
const DRIFT_MIN_US_PER_S: f64 = 500.0;
/// How far ahead a slow sender's drift is anticipated: time enough for a speech pause
/// (one comes every few seconds) to take the stretch.
const DRIFT_LOOKAHEAD_S: f64 = 3.0;
/// Packets (200 ms) that must all fit the margin for it to sit below the target
/// ([`JitterConfig::expand_tolerance_fraction`]).
const TOLERANCE_RECENT: usize = 10;
/// Largest sequence-number distance accepted as the same stream.
const SEQ_WINDOW: i64 = 16_384;

/// Converts 16 kHz samples to microseconds.
fn ts_us(ts: u64) -> i64 {
    (ts as i64).saturating_mul(125) / 2
}

#[derive(Debug, Clone)]
struct Slot {
    packet: AudioPacket,
    ts: u64,
    seq: u64,
    arrival_us: i64,
}

impl Slot {
    fn empty() -> Self {
        Self {
            packet: AudioPacket::empty(crate::codec::Codec::Pcm16k),
            ts: 0,
            seq: 0,
            arrival_us: 0,
        }
    }

    fn fill(&mut self, p: &AudioPacket, ts: u64, seq: u64, arrival_us: i64) {
        self.packet.seq = p.seq;
        self.packet.timestamp = p.timestamp;
        self.packet.codec = p.codec;
        self.packet.silence = p.silence;
        // Cannot fail: the source payload already fits.
        let _ = self.packet.set_payload(p.payload());
        self.ts = ts;
        self.seq = seq;
        self.arrival_us = arrival_us;
    }
}

/// The adaptive jitter buffer. See the [module documentation](self).
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    cap: usize,
    slots: Box<[Slot]>,
    free: Box<[u16]>,
    n_free: usize,
    order: Box<[u16]>,
    len: usize,
    candidate: Slot,
    has_candidate: bool,
    delay: DelayManager,
    base: Option<Instant>,
    last_us: i64,
    have_ref: bool,
    highest_seq: u64,
    highest_ts: u64,
    recv_bits: [u64; 4],
    started: bool,
    next_ts: u64,
    credit: u64,
    concealing: bool,
    max_delay_us: i64,
    hyst_us: i64,
    /// [`JitterConfig::accelerate_hysteresis_fraction`], clamped to 0..=1.
    hyst_fraction: f64,
    /// [`JitterConfig::expand_tolerance_fraction`], clamped to 0..=1.
    tol_fraction: f64,
    tol_us: i64,
    recent: Box<[i32]>,
    recent_len: usize,
    recent_pos: usize,
    delivery: Delivery,
    excess_us: i64,
    accel_waited: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer with all its storage allocated.
    pub fn new(cfg: JitterConfig) -> Self {
        let cap = cfg.capacity();
        let max_delay_us = (cap as i64) * FRAME_US;
        let us = |d: Duration| d.as_micros().min(i64::MAX as u128) as i64;
        let params = DelayParams {
            start_us: us(cfg.start_delay),
            min_us: us(cfg.min_delay).min(max_delay_us),
            max_us: (max_delay_us - FRAME_US).max(FRAME_US),
            bucket_us: us(cfg.bucket).max(100),
            quantile: cfg.quantile.clamp(0.0, 1.0),
            forget_factor: cfg.forget_factor.clamp(0.0, 0.9999),
            interval_us: us(cfg.peak_interval).max(1),
            window_us: us(cfg.window).max(FRAME_US),
        };
        let delay = DelayManager::new(params);
        let stats = JitterStats {
            target_delay_ms: delay.target_us() as f64 / 1000.0,
            ..JitterStats::default()
        };
        Self {
            cfg,
            cap,
            slots: vec![Slot::empty(); cap].into_boxed_slice(),
            free: (0..cap as u16).collect::<Vec<_>>().into_boxed_slice(),
            n_free: cap,
            order: vec![0u16; cap].into_boxed_slice(),
            len: 0,
            candidate: Slot::empty(),
            has_candidate: false,
            delay,
            base: None,
            last_us: 0,
            have_ref: false,
            highest_seq: 0,
            highest_ts: 0,
            recv_bits: [0; 4],
            started: false,
            next_ts: 0,
            credit: 0,
            concealing: false,
            max_delay_us,
            hyst_us: us(cfg.accelerate_hysteresis),
            hyst_fraction: cfg.accelerate_hysteresis_fraction.clamp(0.0, 1.0),
            tol_fraction: cfg.expand_tolerance_fraction.clamp(0.0, 1.0),
            tol_us: us(cfg.expand_tolerance),
            recent: vec![0i32; RECENT].into_boxed_slice(),
            recent_len: 0,
            recent_pos: 0,
            delivery: Delivery::Datagram,
            excess_us: us(cfg.reliable_max_excess).max(FRAME_US),
            accel_waited: 0,
            stats,
        }
    }

    /// Tells the buffer how its link delivers packets (default
    /// [`Delivery::Datagram`]); see the [module documentation](self), "Reliable links".
    pub fn set_delivery(&mut self, delivery: Delivery) {
        self.delivery = delivery;
    }

    /// How the link delivers packets, as last set.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    fn reliable(&self) -> bool {
        self.delivery == Delivery::ReliableOrdered
    }

    /// The target delay in microseconds: the histogram's, or on a reliable link at
    /// least the largest recent relative delay (capped below the maximum delay).
    fn target_us(&self) -> i64 {
        let t = self.delay.target_us();
        if !self.reliable() {
            return t;
        }
        let peak = self.recent[..self.recent_len]
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        t.max(i64::from(peak)).min(self.max_delay_us - FRAME_US)
    }

    /// The configuration.
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// Packets currently stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no packet is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Packet slots (the memory bound): `len() <= capacity()` always holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Current target delay.
    pub fn target_delay(&self) -> Duration {
        Duration::from_micros(self.target_us().max(0) as u64)
    }

    /// True once playout has started (after the first packet reached the target delay).
    pub fn is_playing(&self) -> bool {
        self.started
    }

    /// Statistics so far.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.target_delay_ms = self.target_us() as f64 / 1000.0;
        s
    }

    /// Media time (16 kHz samples since the first packet's timestamp epoch) of an
    /// unwrapped timestamp from [`Playout`].
    pub fn media_samples(timestamp: u64) -> u64 {
        timestamp.saturating_sub(UNWRAP_BASE)
    }

    /// Drops every stored packet and restarts playout on the next packet (the delay
    /// histogram and the statistics are kept).
    pub fn reset(&mut self) {
        self.stats.packets_discarded += self.len as u64;
        self.clear_packets();
        self.has_candidate = false;
        self.have_ref = false;
        self.recv_bits = [0; 4];
        self.started = false;
        self.credit = 0;
        self.concealing = false;
        self.delay.reset_window();
    }

    fn clear_packets(&mut self) {
        for i in 0..self.len {
            self.free[self.n_free] = self.order[i];
            self.n_free += 1;
        }
        self.len = 0;
    }

    /// Monotonic microseconds since the first `now` seen (time going backwards is
    /// treated as no time passing).
    fn clock(&mut self, now: Instant) -> i64 {
        let base = *self.base.get_or_insert(now);
        let us = now
            .saturating_duration_since(base)
            .as_micros()
            .min(i64::MAX as u128) as i64;
        self.last_us = self.last_us.max(us);
        self.last_us
    }

    fn unwrap_seq(&self, seq: u16) -> u64 {
        let d = i64::from(seq.wrapping_sub(self.highest_seq as u16) as i16);
        (self.highest_seq as i64 + d) as u64
    }

    fn unwrap_ts(&self, ts: u32) -> u64 {
        let d = i64::from(ts.wrapping_sub(self.highest_ts as u32) as i32);
        (self.highest_ts as i64 + d) as u64
    }

    fn bit(seq: u64) -> (usize, u64) {
        let i = (seq % 256) as usize;
        (i / 64, 1u64 << (i % 64))
    }

    fn advance_highest_seq(&mut self, seq: u64) {
        if seq <= self.highest_seq {
            return;
        }
        let d = seq - self.highest_seq;
        if d >= 256 {
            self.recv_bits = [0; 4];
        } else {
            for s in self.highest_seq + 1..=seq {
                let (w, m) = Self::bit(s);
                self.recv_bits[w] &= !m;
            }
        }
        self.highest_seq = seq;
    }

    /// Inserts an arriving packet. `now` is the arrival time.
    ///
    /// Errors are counted in the statistics; the caller may ignore them.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: &AudioPacket,
    ) -> Result<Accepted, Discard> {
        let now_us = self.clock(now);
        self.stats.packets_received += 1;
        if packet.payload().is_empty() {
            self.stats.malformed += 1;
            return Err(Discard::Malformed);
        }
        if !self.have_ref {
            self.have_ref = true;
            self.highest_seq = UNWRAP_BASE + u64::from(packet.seq);
            self.highest_ts = UNWRAP_BASE + u64::from(packet.timestamp);
            self.recv_bits = [0; 4];
        }
        let seq = self.unwrap_seq(packet.seq);
        let ts = self.unwrap_ts(packet.timestamp);
        let seq_delta = seq as i64 - self.highest_seq as i64;
        let ts_delta = ts as i64 - self.highest_ts as i64;
        let ts_tol = self.max_delay_us * 2 / 125;
        let consistent =
            seq_delta.abs() < SEQ_WINDOW && (ts_delta - seq_delta * STEP as i64).abs() <= ts_tol;
        if !consistent {
            return self.handle_inconsistent(now_us, packet, seq, ts);
        }
        if self.has_candidate {
            // The held packet was a stray: the stream went on without it.
            self.has_candidate = false;
            self.stats.malformed += 1;
        }
        self.queue(now_us, packet, seq, ts)
    }

    fn handle_inconsistent(
        &mut self,
        now_us: i64,
        packet: &AudioPacket,
        seq: u64,
        ts: u64,
    ) -> Result<Accepted, Discard> {
        if self.has_candidate {
            let c = &self.candidate;
            let sd = i64::from(packet.seq.wrapping_sub(c.packet.seq) as i16);
            let td = i64::from(packet.timestamp.wrapping_sub(c.packet.timestamp) as i32);
            if sd != 0 && sd.abs() <= 8 && (td - sd * STEP as i64).abs() <= STEP as i64 {
                // Confirmed: restart on the candidate's timeline.
                let (c_seq, c_ts, c_arr) = (c.seq, c.ts, c.arrival_us);
                let cand = c.packet.clone();
                self.stats.packets_discarded += self.len as u64;
                self.clear_packets();
                self.has_candidate = false;
                self.started = false;
                self.credit = 0;
                self.delay.reset_window();
                self.recv_bits = [0; 4];
                self.highest_seq = c_seq;
                self.highest_ts = c_ts;
                self.stats.resyncs += 1;
                let _ = self.queue(c_arr, &cand, c_seq, c_ts);
                let seq2 = self.unwrap_seq(packet.seq);
                let ts2 = self.unwrap_ts(packet.timestamp);
                let _ = self.queue(now_us, packet, seq2, ts2);
                return Ok(Accepted::Resynced);
            }
            // The previous candidate was a stray packet.
            self.stats.malformed += 1;
        }
        self.candidate.fill(packet, ts, seq, now_us);
        self.has_candidate = true;
        Ok(Accepted::HeldForResync)
    }

    fn queue(
        &mut self,
        now_us: i64,
        packet: &AudioPacket,
        seq: u64,
        ts: u64,
    ) -> Result<Accepted, Discard> {
        // Duplicates (only knowable within the 256-packet bitmap).
        if seq + 256 > self.highest_seq {
            let (w, m) = Self::bit(seq);
            if seq <= self.highest_seq && self.recv_bits[w] & m != 0 {
                self.stats.duplicate += 1;
                return Err(Discard::Duplicate);
            }
        }
        if seq < self.highest_seq {
            self.stats.reordered += 1;
        }
        self.advance_highest_seq(seq);
        if seq + 256 > self.highest_seq {
            let (w, m) = Self::bit(seq);
            self.recv_bits[w] |= m;
        }
        if ts > self.highest_ts {
            self.highest_ts = ts;
        }
        self.delay.update(now_us, ts_us(ts));
        let rel = self.delay.last_relative_us().min(i64::from(i32::MAX)) as i32;
        self.recent[self.recent_pos] = rel;
        self.recent_pos = (self.recent_pos + 1) % RECENT;
        self.recent_len = (self.recent_len + 1).min(RECENT);

        if self.started && ts + STEP / 2 <= self.next_ts {
            self.stats.late += 1;
            self.stats.packets_discarded += 1;
            return Err(Discard::Late);
        }
        // Sorted position by timestamp.
        let pos = {
            let (mut lo, mut hi) = (0usize, self.len);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if self.slots[self.order[mid] as usize].ts < ts {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        if pos < self.len && self.slots[self.order[pos] as usize].ts == ts {
            // Same media time under another sequence number: a duplicate in effect.
            self.stats.duplicate += 1;
            return Err(Discard::Duplicate);
        }
        let mut pos = pos;
        if self.len == self.cap {
            self.stats.overflow += 1;
            self.stats.packets_discarded += 1;
            if pos == 0 {
                return Err(Discard::Overflow);
            }
            let oldest = self.pop_front();
            let dropped_ts = self.slots[oldest as usize].ts;
            if self.started && dropped_ts + STEP > self.next_ts {
                self.next_ts = dropped_ts + STEP;
                self.credit = 0;
            }
            pos -= 1;
        }
        let Some(slot) = self.take_free() else {
            // Unreachable: len < cap here means a free slot exists.
            self.stats.overflow += 1;
            return Err(Discard::Overflow);
        };
        self.slots[slot as usize].fill(packet, ts, seq, now_us);
        self.order.copy_within(pos..self.len, pos + 1);
        self.order[pos] = slot;
        self.len += 1;
        Ok(Accepted::Queued)
    }

    fn take_free(&mut self) -> Option<u16> {
        if self.n_free == 0 {
            return None;
        }
        self.n_free -= 1;
        Some(self.free[self.n_free])
    }

    /// Removes the oldest packet from the order; its slot goes back to the free list but
    /// keeps its contents until the next insertion.
    fn pop_front(&mut self) -> u16 {
        let idx = self.order[0];
        self.order.copy_within(1..self.len, 0);
        self.len -= 1;
        self.free[self.n_free] = idx;
        self.n_free += 1;
        idx
    }

    fn head(&self) -> Option<&Slot> {
        (self.len > 0).then(|| &self.slots[self.order[0] as usize])
    }

    /// True when at most the late budget of the recent packets had a relative delay
    /// above `margin_us` (they would have been late with that margin). Needs 5 s of
    /// history.
    fn recent_late_ok(&self, margin_us: i64) -> bool {
        if self.recent_len < RECENT / 2 || margin_us < 0 {
            return false;
        }
        let m = margin_us.min(i64::from(i32::MAX)) as i32;
        let late = self.recent[..self.recent_len]
            .iter()
            .filter(|&&r| r > m)
            .count();
        // A reliable link's late packet is not lost but costs a concealment and an
        // acceleration: no late packet is budgeted.
        let budget = if self.reliable() {
            0
        } else {
            LATE_BUDGET_PER_MILLE
        };
        late * 1000 <= budget * self.recent_len
    }

    /// True when the last [`TOLERANCE_RECENT`] packets all fit `margin_us`: only
    /// then may the margin sit below the target (the expand tolerance); packets
    /// arriving later and later (a slow sender not measured yet, a jitter increase)
    /// are expanded for at once.
    fn latest_fit(&self, margin_us: i64) -> bool {
        let n = self.recent_len.min(TOLERANCE_RECENT);
        (1..=n).all(|i| {
            let idx = (self.recent_pos + RECENT - i) % RECENT;
            i64::from(self.recent[idx]) <= margin_us
        })
    }

    /// How much margin a slow sender's clock will have taken within
    /// [`DRIFT_LOOKAHEAD_S`], µs (0 unless the drift is at least [`DRIFT_MIN_US_PER_S`],
    /// or on a reliable link).
    fn drift_fall_us(&self) -> i64 {
        match self.delay.drift_us_per_s() {
            Some(d) if d >= DRIFT_MIN_US_PER_S && !self.reliable() => {
                (d * DRIFT_LOOKAHEAD_S) as i64
            }
            _ => 0,
        }
    }

    fn decide(&mut self, margin_us: i64, pending: usize) -> Stretch {
        let target = self.target_us();
        if self.reliable() && margin_us - target > self.excess_us {
            // The backlog exceeds its bound: bring it down now.
            self.stats.backlog_accelerations += 1;
            return Stretch::Accelerate {
                max_samples: FRAME_SAMPLES,
                urgency: Urgency::Forced,
            };
        }
        // One 20 ms step lower is still safe: by the target, or because the recent
        // packets would (almost) all have made it (the target is a quantile estimate;
        // when it sits just above a 20 ms step, this avoids paying the whole step).
        // A slow sender takes `fall` of the margin within the look-ahead: both the step
        // lower and the margin are judged as they will be then.
        let fall = self.drift_fall_us();
        let lower = margin_us - FRAME_US - fall;
        // The hysteresis both ways grows with the target (its estimate's noise does),
        // except under a measured drift, whose stretches are needed.
        let drifting = self
            .delay
            .drift_us_per_s()
            .is_some_and(|d| d.abs() >= DRIFT_MIN_US_PER_S);
        let (hyst, tol) = if drifting {
            (self.hyst_us, self.tol_us)
        } else {
            let tol = if self.latest_fit(margin_us - fall) {
                self.tol_us.max((target as f64 * self.tol_fraction) as i64)
            } else {
                self.tol_us
            };
            (
                self.hyst_us
                    .max((target as f64 * self.hyst_fraction) as i64),
                tol,
            )
        };
        if lower >= target + hyst || (lower < target && self.recent_late_ok(lower)) {
            // Less delay is only a saving: within one step of the target it waits for
            // a pause; further above, a clean pitch period in speech will do.
            // A signal without pauses (music, a tone) gets a clean cut after
            // PAUSE_WAIT frames.
            self.accel_waited = self.accel_waited.saturating_add(1);
            let urgency = if lower - FRAME_US >= target + hyst || self.accel_waited > PAUSE_WAIT {
                Urgency::Clean
            } else {
                Urgency::QuietOnly
            };
            Stretch::Accelerate {
                max_samples: FRAME_SAMPLES,
                urgency,
            }
        } else if margin_us - fall >= target - tol || self.recent_late_ok(margin_us - fall) {
            self.accel_waited = 0;
            // Under a slow sender the pending audio is kept: it is margin to come.
            if pending >= stretch::MIN_PERIOD && fall == 0 {
                Stretch::Accelerate {
                    max_samples: pending,
                    urgency: Urgency::QuietOnly,
                }
            } else {
                Stretch::None
            }
        } else if fall > 0 && (margin_us >= target - tol || self.recent_late_ok(margin_us)) {
            // Enough margin now, too little once the slow sender has taken `fall`: make
            // room in a pause (extending a pause is inaudible), before it is urgent.
            self.accel_waited = 0;
            Stretch::Expand {
                max_samples: FRAME_SAMPLES.saturating_sub(pending).max(1),
                urgency: Urgency::QuietOnly,
            }
        } else {
            // Too little margin risks late packets: stretch wherever it is clean
            // (waiting for a pause was tried: on a slowly draining buffer it ran dry).
            self.accel_waited = 0;
            Stretch::Expand {
                max_samples: FRAME_SAMPLES.saturating_sub(pending).max(1),
                urgency: Urgency::Clean,
            }
        }
    }

    /// What to play next. Call when the player needs 20 ms more media at `now` (the
    /// tick), with `pending` the decoded samples it still holds ahead of it (`< 320`).
    ///
    /// The returned packet reference is valid until the next call that changes the
    /// buffer.
    pub fn poll_playout(&mut self, now: Instant, pending: usize) -> Playout<'_> {
        let now_us = self.clock(now);
        let tmin = self.delay.min_transit_us().unwrap_or(0);
        if !self.started {
            let Some(head) = self.head() else {
                return Playout::Idle;
            };
            let margin = now_us - ts_us(head.ts) - tmin;
            if margin < self.target_us() && self.len < self.cap / 2 {
                return Playout::Idle;
            }
            self.next_ts = head.ts;
            self.started = true;
            self.credit = 0;
        }
        loop {
            // Packets entirely before the playout point can no longer be played.
            while let Some(h) = self.head() {
                if h.ts + STEP / 2 > self.next_ts {
                    break;
                }
                self.pop_front();
                self.stats.late += 1;
                self.stats.packets_discarded += 1;
            }
            let Some(h) = self.head() else {
                // Underrun: conceal but keep waiting for the missing packet (on a
                // reliable link, however long it takes).
                self.credit += STEP;
                if ts_us(self.credit) > self.max_delay_us {
                    self.credit -= STEP;
                    if !self.reliable() {
                        self.next_ts += STEP;
                    }
                }
                return Playout::Conceal {
                    timestamp: self.next_ts,
                };
            };
            let (h_ts, h_arrival) = (h.ts, h.arrival_us);
            if h_ts < self.next_ts + STEP / 2 {
                let margin = now_us - ts_us(h_ts) - tmin;
                let stretch = self.decide(margin, pending);
                let idx = self.pop_front() as usize;
                self.next_ts = h_ts + STEP;
                self.credit = 0;
                let target_s = self.target_us() as f64 / 1e6;
                let waited_s = (now_us - h_arrival).max(0) as f64 / 1e6;
                self.stats.jitter_buffer_delay += waited_s * FRAME_SAMPLES as f64;
                self.stats.jitter_buffer_target_delay += target_s * FRAME_SAMPLES as f64;
                self.stats.jitter_buffer_emitted_count += STEP;
                return Playout::Decode {
                    packet: &self.slots[idx].packet,
                    timestamp: h_ts,
                    stretch,
                };
            }
            let gap = h_ts - self.next_ts;
            if ts_us(gap) > self.max_delay_us {
                // A hole longer than the buffer: jump to the next packet.
                self.next_ts = h_ts;
                self.credit = 0;
                continue;
            }
            if self.credit >= STEP {
                // Already concealed while waiting: that covered this missing frame.
                self.credit -= STEP;
                self.next_ts += STEP;
                continue;
            }
            let timestamp = self.next_ts;
            self.next_ts += STEP;
            if gap < STEP + STEP / 2 {
                let idx = self.order[0] as usize;
                return Playout::Fec {
                    next: &self.slots[idx].packet,
                    timestamp,
                };
            }
            return Playout::Conceal { timestamp };
        }
    }

    /// Records `samples` of concealment produced by the player (`silent`: the
    /// concealment was silent).
    pub fn record_concealment(&mut self, samples: usize, silent: bool) {
        self.stats.concealed_samples += samples as u64;
        if silent {
            self.stats.silent_concealed_samples += samples as u64;
        }
        if !self.concealing {
            self.stats.concealment_events += 1;
            self.concealing = true;
        }
    }

    /// Records that the player produced decoded (or FEC-recovered) audio, ending any
    /// concealment event.
    pub fn record_decoded(&mut self, fec: bool) {
        self.concealing = false;
        if fec {
            self.stats.fec_recovered += 1;
        }
    }

    /// Records samples removed (accelerate) or inserted (preemptive expand).
    pub fn record_stretch(&mut self, removed: usize, inserted: usize) {
        self.stats.removed_samples_for_acceleration += removed as u64;
        self.stats.inserted_samples_for_deceleration += inserted as u64;
    }

    /// Counts a packet the player rejected before the buffer (wrong codec): received
    /// and malformed.
    pub fn reject_packet(&mut self) {
        self.stats.packets_received += 1;
        self.stats.malformed += 1;
    }

    /// Records a malformed packet detected by the player (undecodable payload).
    pub fn record_malformed(&mut self) {
        self.stats.malformed += 1;
    }

    /// Relative delay of the most recent packet (diagnostics).
    pub fn last_relative_delay(&self) -> Duration {
        Duration::from_micros(self.delay.last_relative_us().max(0) as u64)
    }
}
