//! Sans-IO token bucket used to cap the inbound datagram rate per stream.

use std::time::{Duration, Instant};

/// Rate limit settings: `per_second` tokens are added per second, up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained datagrams per second (0 disables limiting).
    pub per_second: u32,
    /// Bucket depth: datagrams accepted back to back after an idle period.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 200 datagrams/s per stream (4x the nominal 50/s) with a burst of 100 (2 s of
    /// audio after a stall).
    fn default() -> Self {
        RateLimit {
            per_second: 200,
            burst: 100,
        }
    }
}

/// A token bucket. Time is an argument: call [`TokenBucket::try_take`] with the
/// arrival instant; it never reads the clock.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    /// Tokens scaled by 1e9 (nano-tokens) to stay in integers.
    nano_tokens: u128,
    last: Option<Instant>,
}

const NANOS: u128 = 1_000_000_000;

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Self {
        TokenBucket {
            limit,
            nano_tokens: u128::from(limit.burst) * NANOS,
            last: None,
        }
    }

    /// Takes one token if available at `now`. Returns false if the datagram should
    /// be dropped. Instants earlier than the last one are treated as "no time passed".
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.limit.per_second == 0 {
            return true;
        }
        let elapsed = match self.last {
            Some(last) => now.checked_duration_since(last).unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        };
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
        let cap = u128::from(self.limit.burst.max(1)) * NANOS;
        let refill = elapsed
            .as_nanos()
            .saturating_mul(u128::from(self.limit.per_second));
        self.nano_tokens = self.nano_tokens.saturating_add(refill).min(cap);
        if self.nano_tokens >= NANOS {
            self.nano_tokens -= NANOS;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(RateLimit {
            per_second: 100,
            burst: 10,
        });
        let t0 = Instant::now();
        assert_eq!((0..20).filter(|_| b.try_take(t0)).count(), 10);
        // 100 ms later: 10 more tokens.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!((0..20).filter(|_| b.try_take(t1)).count(), 10);
        // Paced at exactly the rate: all pass.
        let mut t = t1;
        for _ in 0..1000 {
            t += Duration::from_millis(10);
            assert!(b.try_take(t));
        }
        // Time going backwards does not mint tokens.
        assert_eq!((0..20).filter(|_| b.try_take(t0)).count(), 0);
    }

    #[test]
    fn unlimited() {
        let mut b = TokenBucket::new(RateLimit {
            per_second: 0,
            burst: 0,
        });
        let t0 = Instant::now();
        assert!((0..1000).all(|_| b.try_take(t0)));
    }
}
