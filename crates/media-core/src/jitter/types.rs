//! The jitter buffer's public types: its configuration, what it says about a packet,
//! its per-tick playout decisions and its statistics.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::packet::AudioPacket;

use super::{FRAME_US, MAX_CAPACITY};

/// Configuration of the [`JitterBuffer`](super::JitterBuffer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    /// Largest delay the buffer holds (default 1 s). Sets the number of packet slots
    /// (`max_delay / 20 ms`, at most [`MAX_CAPACITY`]) and caps the target delay.
    pub max_delay: Duration,
    /// Target delay before anything has been measured (default 80 ms).
    pub start_delay: Duration,
    /// Smallest target delay (default 0).
    pub min_delay: Duration,
    /// Histogram bucket width (default 2 ms; NetEQ uses 20 ms).
    pub bucket: Duration,
    /// Quantile of the peak relative delays used as target (default 0.9).
    ///
    /// With independent packet delays, the `q` quantile of the peak of `n` packets is the
    /// `q^(1/n)` quantile of single packets. NetEQ (25 packets per 500 ms, 0.95) aims at
    /// about 0.2 % late packets; the default (10 packets per 200 ms, 0.9 = `0.99^10`) aims
    /// at 1 %, the budget of the evaluation (`media-processor jb-eval`). Taking peaks
    /// keeps a single spike or burst (one interval) from moving the target much.
    pub quantile: f64,
    /// Histogram forget factor per peak interval (default 0.983: a memory of about 60
    /// intervals, 12 s).
    pub forget_factor: f64,
    /// The histogram is fed the largest relative delay of each interval (default 200 ms;
    /// NetEQ uses 500 ms: the shorter interval gives 2.5 times as many samples, so the
    /// estimate settles faster after the start and follows a sustained change of the
    /// jitter within about 3 s).
    pub peak_interval: Duration,
    /// Sliding window for the minimum transit time (default 2 s).
    pub window: Duration,
    /// Extra margin above target + 20 ms before accelerating (default 0); avoids
    /// flapping when the target moves slightly.
    pub accelerate_hysteresis: Duration,
    /// Hysteresis as a fraction of the target delay (default 0.15), used where it is
    /// larger than [`accelerate_hysteresis`](Self::accelerate_hysteresis). The target
    /// is a quantile estimate whose noise grows with the jitter: under 12 ms of normal
    /// jitter (target ≈ 80 ms) it wanders by ±10 ms, and a buffer that accelerates
    /// whenever it dips and expands when it rises stretches the speech back and forth
    /// (each stretch moves the rest of a word, which PESQ charges more than the delay
    /// saved). Not applied while a sender's clock drift is measured: its stretches are
    /// needed.
    pub accelerate_hysteresis_fraction: f64,
    /// How far below the target the margin may be before expanding (default 0). A
    /// small tolerance stops flapping between two 20 ms steps when the target sits right
    /// on one, at the price of slightly more late packets.
    pub expand_tolerance: Duration,
    /// Expand tolerance as a fraction of the target delay (default 0.15), used where it
    /// is larger than [`expand_tolerance`](Self::expand_tolerance): the other half of
    /// the hysteresis around a wandering target (under 12 ms of normal jitter it turns
    /// every expansion inside speech into none, for 0.5 % late packets). Not applied
    /// while a sender's clock drift is measured.
    pub expand_tolerance_fraction: f64,
    /// On a reliable link ([`Delivery::ReliableOrdered`](crate::link::Delivery)), how
    /// far the margin may exceed the target before every decoded frame is accelerated
    /// urgently (default 200 ms): the bound of the delay a stall or a paused sender
    /// leaves behind.
    pub reliable_max_excess: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            max_delay: Duration::from_secs(1),
            start_delay: Duration::from_millis(80),
            min_delay: Duration::ZERO,
            bucket: Duration::from_millis(2),
            quantile: 0.9,
            forget_factor: 0.983,
            peak_interval: Duration::from_millis(200),
            window: Duration::from_secs(2),
            accelerate_hysteresis: Duration::ZERO,
            accelerate_hysteresis_fraction: 0.15,
            expand_tolerance: Duration::ZERO,
            expand_tolerance_fraction: 0.15,
            reliable_max_excess: Duration::from_millis(200),
        }
    }
}

impl JitterConfig {
    /// Number of packet slots this configuration gives.
    pub fn capacity(&self) -> usize {
        let frames = self.max_delay.as_micros().div_ceil(FRAME_US as u128) as usize;
        frames.clamp(4, MAX_CAPACITY)
    }
}

/// Why a packet was not queued. Small and `Copy`; every case is also counted in
/// [`JitterStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Discard {
    /// The same sequence number was already received (the network duplicated it).
    Duplicate,
    /// The packet arrived after its playout time.
    Late,
    /// The packet does not fit the stream (sequence number or timestamp absurd, wrong
    /// codec, empty payload): the sender's fault.
    Malformed,
    /// The buffer was full and this packet was the oldest.
    Overflow,
}

impl fmt::Display for Discard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Duplicate => "duplicate packet dropped",
            Self::Late => "packet arrived after its playout time and was dropped",
            Self::Malformed => "malformed packet (does not fit the stream) dropped",
            Self::Overflow => "jitter buffer full: oldest packet dropped",
        })
    }
}

impl std::error::Error for Discard {}

/// What happened to an accepted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored for playout.
    Queued,
    /// Inconsistent with the stream; held until the next packet confirms a new timeline.
    HeldForResync,
    /// Confirmed a held packet: the buffer was flushed and restarted on the new timeline.
    Resynced,
}

/// Time-stretch request attached to a decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stretch {
    /// Play the frame as decoded.
    None,
    /// Shorten the frame by at most `max_samples` (320 or more: a whole quiet frame may
    /// be dropped).
    Accelerate {
        /// Most samples to remove.
        max_samples: usize,
        /// Where the frame may be shortened.
        urgency: Urgency,
    },
    /// Lengthen the frame by up to `max_samples` (a pitch period may exceed it).
    Expand {
        /// Samples that would raise the margin by one frame.
        max_samples: usize,
        /// Where the frame may be lengthened.
        urgency: Urgency,
    },
}

/// Where a requested time-stretch may be applied. A stretch the frame does not allow
/// is not made; the buffer asks again on the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// Only in a quiet frame (a pause, or a frame the sender flagged silent): the delay
    /// is off its target by less than one 20 ms step and can wait for a pause, where a
    /// stretch is inaudible and moves no word against the next.
    QuietOnly,
    /// Also in active speech where a pitch period repeats cleanly: normalised
    /// correlation of at least
    /// [`ReceiveConfig::min_correlation`](crate::playout::ReceiveConfig::min_correlation)
    /// between two periods of similar energy.
    Clean,
    /// Anywhere: a reliable link's backlog exceeds its bound, so the best period is cut
    /// even where it does not repeat cleanly.
    Forced,
}

/// What to play for the next 20 ms of media.
#[derive(Debug)]
pub enum Playout<'a> {
    /// The stream has not started (no packet yet, or waiting to reach the target delay
    /// after the first packet or a resync): play silence, not counted as concealment.
    Idle,
    /// Decode `packet`, then apply `stretch`.
    Decode {
        /// The packet.
        packet: &'a AudioPacket,
        /// Its unwrapped timestamp (16 kHz samples).
        timestamp: u64,
        /// Time-stretch to apply to the decoded frame.
        stretch: Stretch,
    },
    /// The frame at `timestamp` is lost but the next packet is here: recover it from
    /// the next packet's FEC (conceal if it has none). `next` stays in the buffer.
    Fec {
        /// The packet following the lost one.
        next: &'a AudioPacket,
        /// Unwrapped timestamp of the lost frame.
        timestamp: u64,
    },
    /// Conceal one frame (packet lost, or not arrived yet).
    Conceal {
        /// Unwrapped timestamp of the concealed position.
        timestamp: u64,
    },
}

/// Receive-side statistics, named after the W3C webrtc-stats `RTCInboundRtpStreamStats`
/// members (`serde` uses the W3C camelCase names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitterStats {
    /// Packets handed to the buffer (all of them, before any check).
    pub packets_received: u64,
    /// Sum over emitted (decoded) samples of the time from their packet's arrival to
    /// their decoding, in seconds (W3C `jitterBufferDelay`).
    pub jitter_buffer_delay: f64,
    /// Sum over emitted samples of the target delay at emission, in seconds
    /// (W3C `jitterBufferTargetDelay`).
    pub jitter_buffer_target_delay: f64,
    /// Samples decoded from packets (W3C `jitterBufferEmittedCount`).
    pub jitter_buffer_emitted_count: u64,
    /// Samples produced by concealment, FEC excluded (W3C `concealedSamples`).
    pub concealed_samples: u64,
    /// Concealed samples that were silent (W3C `silentConcealedSamples`).
    pub silent_concealed_samples: u64,
    /// Runs of consecutive concealed frames (W3C `concealmentEvents`).
    pub concealment_events: u64,
    /// Samples inserted by preemptive expand (W3C `insertedSamplesForDeceleration`).
    pub inserted_samples_for_deceleration: u64,
    /// Samples removed by accelerate (W3C `removedSamplesForAcceleration`).
    pub removed_samples_for_acceleration: u64,
    /// Packets dropped by the buffer: late, overflow, flushed on resync
    /// (W3C `packetsDiscarded`).
    pub packets_discarded: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    /// Duplicated packets.
    pub duplicate: u64,
    /// Malformed packets (inconsistent sequence/timestamp, wrong codec, undecodable).
    pub malformed: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
    /// Lost frames recovered from the next packet's FEC.
    pub fec_recovered: u64,
    /// Resynchronisations on a new timeline (timestamp jump or sender restart).
    pub resyncs: u64,
    /// Frames accelerated urgently because a reliable link's backlog exceeded
    /// [`JitterConfig::reliable_max_excess`].
    #[serde(default)]
    pub backlog_accelerations: u64,
    /// Current target delay in milliseconds.
    pub target_delay_ms: f64,
}
