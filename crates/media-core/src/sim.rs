//! Seeded, deterministic network simulation kit: impairments, sender clock drift and a
//! virtual clock. Sans-IO, shaped like str0m's `netem`.
//!
//! ```text
//!  send(now, pkt) ─► loss (random | Gilbert-Elliott) ─► delay = base + jitter
//!                    (uniform | normal | pareto) + reorder + spike ─► duplicate
//!                    ─► time-ordered queue ─► poll(now) -> Option<pkt>
//! ```
//!
//! The same profile and seed always give the same trace. Time is an argument: drive an
//! [`Impairment`] with a [`VirtualClock`] and a whole call runs in milliseconds.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use media_core::sim::{Impairment, Profile, VirtualClock};
//!
//! let profile = Profile::named("loss5-jitter40").expect("known profile");
//! let mut net = Impairment::new(profile, 7);
//! let mut clock = VirtualClock::new(Instant::now());
//! for k in 0..100u32 {
//!     net.send(clock.now(), k);
//!     clock.advance(Duration::from_millis(20));
//!     while net.poll(clock.now()).is_some() {}
//! }
//! assert_eq!(net.stats().sent, 100);
//! ```
//!
//! # Realtime safety
//! Not for the real-time path: the queue grows with the packets in flight. It is a test
//! and evaluation tool.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Pareto};
use serde::Serialize;

use crate::frame::FRAME_MS;

/// Delay variation added to the base delay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum DelayJitter {
    /// No variation.
    None,
    /// Uniform in `[-max, +max]` around the base delay (netem `delay B J`).
    Uniform {
        /// Half-width.
        max: Duration,
    },
    /// Normal with standard deviation `sigma` around the base delay.
    Normal {
        /// Standard deviation.
        sigma: Duration,
    },
    /// Pareto (heavy tail) added on top of the base delay: `Pareto(scale, shape) - scale`,
    /// capped at 1 s.
    Pareto {
        /// Scale (`x_m`).
        scale: Duration,
        /// Shape (`alpha`); smaller is heavier.
        shape: f64,
    },
}

/// Packet loss model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum LossModel {
    /// No loss.
    None,
    /// Independent loss with probability `p`.
    Random {
        /// Loss probability.
        p: f64,
    },
    /// Two-state Gilbert-Elliott bursts.
    GilbertElliott {
        /// Probability to go from the good to the bad state, per packet.
        p_good_to_bad: f64,
        /// Probability to go from the bad to the good state, per packet.
        p_bad_to_good: f64,
        /// Loss probability in the good state.
        loss_good: f64,
        /// Loss probability in the bad state.
        loss_bad: f64,
    },
}

/// A link stall: packets sent during `[at, at + duration)` (measured from the first
/// send) are held until its end, so their delay grows by up to `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DelaySpike {
    /// Start, relative to the first packet sent.
    pub at: Duration,
    /// Length of the stall.
    pub duration: Duration,
}

/// A named set of impairments.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Profile {
    /// Name (see [`Profile::NAMES`]).
    pub name: &'static str,
    /// Fixed one-way delay.
    pub base_delay: Duration,
    /// Delay variation.
    pub jitter: DelayJitter,
    /// Loss.
    pub loss: LossModel,
    /// Probability that a packet is held back by an extra delay of `reorder_extra / 3 ..
    /// reorder_extra` (it then arrives after later packets).
    pub reorder: f64,
    /// Largest extra delay of a reordered packet.
    pub reorder_extra: Duration,
    /// Probability that a packet is delivered twice (the copy has its own delay).
    pub duplicate: f64,
    /// Optional link stall.
    pub spike: Option<DelaySpike>,
    /// Sender clock drift in parts per million: the sender's 20 ms ticks last
    /// `20 ms × (1 + ppm / 10^6)` of real time (+5000 = the sender is 0.5 % slow).
    pub drift_ppm: i32,
}

const fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Profile {
    /// Names of the built-in profiles.
    pub const NAMES: [&'static str; 8] = [
        "clean",
        "wifi",
        "cellular",
        "loss5-jitter40",
        "bursty",
        "spike200",
        "drift+",
        "drift-",
    ];

    /// No impairment at all but a base delay.
    pub const fn ideal(name: &'static str, base_delay: Duration) -> Self {
        Self {
            name,
            base_delay,
            jitter: DelayJitter::None,
            loss: LossModel::None,
            reorder: 0.0,
            reorder_extra: ms(60),
            duplicate: 0.0,
            spike: None,
            drift_ppm: 0,
        }
    }

    /// A built-in profile by name:
    ///
    /// | name | delay | jitter | loss | other |
    /// |---|---|---|---|---|
    /// | `clean` | 40 ms | none | none | |
    /// | `wifi` | 15 ms | pareto (4 ms, α 2) | 1 % random | 0.2 % duplicates |
    /// | `cellular` | 60 ms | normal σ 12 ms | Gilbert-Elliott (1 %→bad, 40 %→good, 50 % in bad) | 0.5 % duplicates, 1 % reordered |
    /// | `loss5-jitter40` | 60 ms | uniform ±40 ms | 5 % random | |
    /// | `bursty` | 40 ms | normal σ 4 ms | Gilbert-Elliott (4 %→bad, 30 %→good, 75 % in bad) | |
    /// | `spike200` | 40 ms | normal σ 3 ms | none | 200 ms stall at 5 s |
    /// | `drift+` | 40 ms | normal σ 2 ms | none | sender clock +0.5 % |
    /// | `drift-` | 40 ms | normal σ 2 ms | none | sender clock -0.5 % |
    pub fn named(name: &str) -> Option<Self> {
        let p = match name {
            "clean" => Self::ideal("clean", ms(40)),
            "wifi" => Self {
                jitter: DelayJitter::Pareto {
                    scale: ms(4),
                    shape: 2.0,
                },
                loss: LossModel::Random { p: 0.01 },
                duplicate: 0.002,
                ..Self::ideal("wifi", ms(15))
            },
            "cellular" => Self {
                jitter: DelayJitter::Normal { sigma: ms(12) },
                loss: LossModel::GilbertElliott {
                    p_good_to_bad: 0.01,
                    p_bad_to_good: 0.4,
                    loss_good: 0.0,
                    loss_bad: 0.5,
                },
                duplicate: 0.005,
                reorder: 0.01,
                ..Self::ideal("cellular", ms(60))
            },
            "loss5-jitter40" => Self {
                jitter: DelayJitter::Uniform { max: ms(40) },
                loss: LossModel::Random { p: 0.05 },
                ..Self::ideal("loss5-jitter40", ms(60))
            },
            "bursty" => Self {
                jitter: DelayJitter::Normal { sigma: ms(4) },
                loss: LossModel::GilbertElliott {
                    p_good_to_bad: 0.04,
                    p_bad_to_good: 0.3,
                    loss_good: 0.0,
                    loss_bad: 0.75,
                },
                ..Self::ideal("bursty", ms(40))
            },
            "spike200" => Self {
                jitter: DelayJitter::Normal { sigma: ms(3) },
                spike: Some(DelaySpike {
                    at: ms(5_000),
                    duration: ms(200),
                }),
                ..Self::ideal("spike200", ms(40))
            },
            "drift+" => Self {
                jitter: DelayJitter::Normal { sigma: ms(2) },
                drift_ppm: 5_000,
                ..Self::ideal("drift+", ms(40))
            },
            "drift-" => Self {
                jitter: DelayJitter::Normal { sigma: ms(2) },
                drift_ppm: -5_000,
                ..Self::ideal("drift-", ms(40))
            },
            _ => return None,
        };
        Some(p)
    }

    /// Every built-in profile, in [`Profile::NAMES`] order.
    pub fn all() -> Vec<Self> {
        Self::NAMES.iter().filter_map(|n| Self::named(n)).collect()
    }

    /// Real duration of one sender 20 ms tick under this profile's clock drift.
    pub fn sender_frame_period(&self) -> Duration {
        let nominal = u64::from(FRAME_MS) * 1_000_000;
        let scaled = nominal as i128 * (1_000_000 + i128::from(self.drift_ppm)) / 1_000_000;
        Duration::from_nanos(scaled.max(1) as u64)
    }

    /// A sender clock starting at `start` with this profile's drift.
    pub fn sender_clock(&self, start: Instant) -> SenderClock {
        SenderClock {
            start,
            period: self.sender_frame_period(),
        }
    }
}

/// When a (possibly drifting) sender emits its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderClock {
    start: Instant,
    period: Duration,
}

impl SenderClock {
    /// Real time of the sender's `k`-th 20 ms tick (frame `k` is sent then).
    pub fn tick(&self, k: u64) -> Instant {
        let nanos = self.period.as_nanos().saturating_mul(u128::from(k));
        self.start + Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
    }

    /// Real duration of one tick.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// A virtual clock for tests and evaluations: starts at a given instant, moves only
/// when told, never backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualClock {
    start: Instant,
    now: Instant,
}

impl VirtualClock {
    /// A clock reading `start`.
    pub fn new(start: Instant) -> Self {
        Self { start, now: start }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves forward by `d`.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Moves to `t` if it is later than now.
    pub fn advance_to(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
        }
    }
}

/// Counters of what the network did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImpairmentStats {
    /// Packets handed to [`Impairment::send`].
    pub sent: u64,
    /// Packets dropped by the loss model.
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Packets held back by the reorder model.
    pub reordered: u64,
    /// Packets returned by [`Impairment::poll`] (copies included).
    pub delivered: u64,
}

struct InFlight<T> {
    at: Instant,
    id: u64,
    packet: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.id == other.id
    }
}
impl<T> Eq for InFlight<T> {}
impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for InFlight<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        other.at.cmp(&self.at).then(other.id.cmp(&self.id))
    }
}

/// A seeded impaired network link. See the [module documentation](self).
pub struct Impairment<T> {
    profile: Profile,
    rng: ChaCha8Rng,
    queue: BinaryHeap<InFlight<T>>,
    next_id: u64,
    first_send: Option<Instant>,
    ge_bad: bool,
    stats: ImpairmentStats,
}

impl<T> std::fmt::Debug for Impairment<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Impairment")
            .field("profile", &self.profile.name)
            .field("in_flight", &self.queue.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<T: Clone> Impairment<T> {
    /// A link with `profile`; the same `seed` always gives the same trace.
    pub fn new(profile: Profile, seed: u64) -> Self {
        Self {
            profile,
            rng: ChaCha8Rng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            next_id: 0,
            first_send: None,
            ge_bad: false,
            stats: ImpairmentStats::default(),
        }
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Counters so far.
    pub fn stats(&self) -> ImpairmentStats {
        self.stats
    }

    /// Changes the loss model from now on (loss that appears or goes mid-call).
    pub fn set_loss(&mut self, loss: LossModel) {
        self.profile.loss = loss;
        self.ge_bad = false;
    }

    fn lost(&mut self) -> bool {
        match self.profile.loss {
            LossModel::None => false,
            LossModel::Random { p } => self.rng.random::<f64>() < p,
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let u: f64 = self.rng.random();
                if self.ge_bad {
                    if u < p_bad_to_good {
                        self.ge_bad = false;
                    }
                } else if u < p_good_to_bad {
                    self.ge_bad = true;
                }
                let p = if self.ge_bad { loss_bad } else { loss_good };
                self.rng.random::<f64>() < p
            }
        }
    }

    fn delay(&mut self, sent_at: Instant) -> Duration {
        let base = self.profile.base_delay.as_secs_f64();
        let jitter = match self.profile.jitter {
            DelayJitter::None => 0.0,
            DelayJitter::Uniform { max } => {
                let m = max.as_secs_f64();
                if m > 0.0 {
                    self.rng.random_range(-m..=m)
                } else {
                    0.0
                }
            }
            DelayJitter::Normal { sigma } => Normal::new(0.0, sigma.as_secs_f64())
                .map(|d| d.sample(&mut self.rng))
                .unwrap_or(0.0),
            DelayJitter::Pareto { scale, shape } => {
                let s = scale.as_secs_f64();
                Pareto::new(s, shape)
                    .map(|d| (d.sample(&mut self.rng) - s).min(1.0))
                    .unwrap_or(0.0)
            }
        };
        let mut d = (base + jitter).max(0.0);
        if self.profile.reorder > 0.0 && self.rng.random::<f64>() < self.profile.reorder {
            self.stats.reordered += 1;
            let e = self.profile.reorder_extra.as_secs_f64();
            d += self.rng.random_range(e / 3.0..=e.max(e / 3.0));
        }
        let mut delay = Duration::from_secs_f64(d);
        if let (Some(spike), Some(first)) = (self.profile.spike, self.first_send) {
            let since = sent_at.saturating_duration_since(first);
            if since >= spike.at && since < spike.at + spike.duration {
                let held = spike.at + spike.duration - since + self.profile.base_delay;
                delay = delay.max(held);
            }
        }
        delay
    }

    fn enqueue(&mut self, at: Instant, packet: T) {
        self.queue.push(InFlight {
            at,
            id: self.next_id,
            packet,
        });
        self.next_id += 1;
    }

    /// Sends `packet` at `now`.
    pub fn send(&mut self, now: Instant, packet: T) {
        self.first_send.get_or_insert(now);
        self.stats.sent += 1;
        if self.lost() {
            self.stats.lost += 1;
            return;
        }
        let dup = self.profile.duplicate > 0.0 && self.rng.random::<f64>() < self.profile.duplicate;
        if dup {
            self.stats.duplicated += 1;
            let d2 = self.delay(now);
            self.enqueue(now + d2, packet.clone());
        }
        let d = self.delay(now);
        self.enqueue(now + d, packet);
    }

    /// The next packet due at or before `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        if self.queue.peek().is_some_and(|p| p.at <= now) {
            self.stats.delivered += 1;
            return self.queue.pop().map(|p| p.packet);
        }
        None
    }

    /// When the next packet is due (None when nothing is in flight).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|p| p.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(name: &str, seed: u64, n: u64) -> Vec<(u64, Duration)> {
        let p = Profile::named(name).expect("profile");
        let mut net = Impairment::new(p, seed);
        let t0 = Instant::now();
        let sender = p.sender_clock(t0);
        let mut clock = VirtualClock::new(t0);
        let mut out = Vec::new();
        let mut k = 0;
        loop {
            let next_send = (k < n).then(|| sender.tick(k));
            let next = match (next_send, net.poll_timeout()) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            clock.advance_to(next);
            if next_send == Some(clock.now()) {
                net.send(clock.now(), k);
                k += 1;
            }
            while let Some(id) = net.poll(clock.now()) {
                out.push((id, clock.now() - sender.tick(id)));
            }
        }
        out
    }

    #[test]
    fn same_seed_same_trace_and_profiles_do_what_they_say() {
        for name in Profile::NAMES {
            assert_eq!(trace(name, 3, 300), trace(name, 3, 300), "{name}");
        }
        let clean = trace("clean", 1, 200);
        assert_eq!(clean.len(), 200);
        assert!(clean.iter().all(|&(_, d)| d == ms(40)));
        let lossy = trace("loss5-jitter40", 1, 4000);
        let loss = 1.0 - lossy.len() as f64 / 4000.0;
        assert!((0.035..0.065).contains(&loss), "loss {loss}");
        assert!(lossy.iter().all(|&(_, d)| d >= ms(20) && d <= ms(100)));
        assert!(lossy.windows(2).any(|w| w[1].0 < w[0].0), "jitter reorders");
        let spike = trace("spike200", 1, 400);
        let max = spike.iter().map(|&(_, d)| d).max().expect("packets");
        assert!(max >= ms(230), "spike {max:?}");
    }

    #[test]
    fn drift_scales_the_sender_ticks() {
        let t0 = Instant::now();
        let plus = Profile::named("drift+").expect("profile").sender_clock(t0);
        let minus = Profile::named("drift-").expect("profile").sender_clock(t0);
        assert_eq!(plus.tick(1000) - t0, Duration::from_millis(20_100));
        assert_eq!(minus.tick(1000) - t0, Duration::from_millis(19_900));
    }

    #[test]
    fn gilbert_elliott_losses_come_in_bursts() {
        let p = Profile::named("bursty").expect("profile");
        let mut net = Impairment::new(p, 9);
        let t0 = Instant::now();
        let mut lost = Vec::new();
        for k in 0..20_000u32 {
            let before = net.stats().lost;
            net.send(t0, k);
            lost.push(net.stats().lost > before);
        }
        let n = lost.iter().filter(|&&l| l).count() as f64;
        let pairs = lost.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        // P(loss | previous lost) is far above the mean loss rate.
        assert!(pairs / n > 3.0 * n / 20_000.0, "{pairs} {n}");
    }
}

/// A [`MediaLink`](crate::link::MediaLink) in memory with a fixed pattern of trouble,
/// for tests that drive a call's media without a network: every `lose_every`-th packet
/// sent is lost, every `swap_every`-th is held back and delivered right after its
/// successor (0: never). Sent packets wait in a queue reserved at construction until
/// [`MemoryLink::pop`]; control messages are counted; `stats` report a fixed 1 ms RTT.
#[derive(Debug)]
pub struct MemoryLink {
    queue: std::collections::VecDeque<crate::packet::AudioPacket>,
    held: Option<crate::packet::AudioPacket>,
    sent: u64,
    lose_every: u64,
    swap_every: u64,
    /// Control messages sent.
    pub controls: u64,
    /// The reason given to `close`, once it was called.
    pub closed: Option<String>,
}

impl MemoryLink {
    /// A link losing every `lose_every`-th and swapping every `swap_every`-th packet.
    pub fn new(lose_every: u64, swap_every: u64) -> Self {
        MemoryLink {
            queue: std::collections::VecDeque::with_capacity(16),
            held: None,
            sent: 0,
            lose_every,
            swap_every,
            controls: 0,
            closed: None,
        }
    }

    /// The next packet that came through, in delivery order.
    pub fn pop(&mut self) -> Option<crate::packet::AudioPacket> {
        self.queue.pop_front()
    }
}

impl crate::link::MediaLink for MemoryLink {
    fn send_packet(
        &mut self,
        packet: &crate::packet::AudioPacket,
    ) -> Result<(), crate::link::LinkError> {
        self.sent += 1;
        let every = |n: u64| n > 0 && self.sent.is_multiple_of(n);
        if every(self.lose_every) {
            return Ok(());
        }
        if every(self.swap_every) {
            self.held = Some(packet.clone());
            return Ok(());
        }
        self.queue.push_back(packet.clone());
        if let Some(h) = self.held.take() {
            self.queue.push_back(h);
        }
        Ok(())
    }

    fn send_control(&mut self, _: &crate::control::Control) -> Result<(), crate::link::LinkError> {
        self.controls += 1;
        Ok(())
    }

    fn close(&mut self, reason: &str) {
        self.closed = Some(reason.to_owned());
    }

    fn stats(&mut self) -> crate::link::LinkStats {
        crate::link::LinkStats {
            rtt: Some(Duration::from_millis(1)),
            ..crate::link::LinkStats::default()
        }
    }
}
