//! A deadline heap keyed by slot and id, shared by the QUIC core (connection timers)
//! and the reactor's shell (call ticks).
//!
//! Re-arming a slot earlier pushes a new entry; the superseded one stays until its
//! time and is skipped then (the owner keeps the instant it expects per slot).
//! [`Deadlines::compact`] bounds the stale entries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Deadlines of slots (`index`, with the `id` of the slot's current occupant).
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

impl Deadlines {
    /// Slot `index` (occupant `id`) has work at `at`.
    pub(crate) fn schedule(&mut self, at: Instant, index: usize, id: u64) {
        self.heap.push(Reverse((at, index, id)));
    }

    /// The earliest deadline (possibly a stale one: waking for it is harmless).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The next entry due at `now`: `(index, id, deadline)`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(usize, u64, Instant)> {
        let &Reverse((t, index, id)) = self.heap.peek()?;
        if t > now {
            return None;
        }
        self.heap.pop();
        Some((index, id, t))
    }

    /// Rebuilds the heap from `current()` (the live `(deadline, index, id)`s) once
    /// stale entries outnumber live slots (`live`) fourfold.
    pub(crate) fn compact<I>(&mut self, live: usize, current: impl FnOnce() -> I)
    where
        I: Iterator<Item = (Instant, usize, u64)>,
    {
        if self.heap.len() > 4 * live + 1024 {
            self.heap = current().map(Reverse).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_in_order_and_compacted() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.schedule(t0 + Duration::from_millis(20), 1, 7);
        d.schedule(t0 + Duration::from_millis(10), 2, 8);
        assert_eq!(d.next(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(d.pop_due(t0), None);
        assert_eq!(
            d.pop_due(t0 + Duration::from_millis(25)),
            Some((2, 8, t0 + Duration::from_millis(10)))
        );
        for i in 0..2000 {
            d.schedule(t0, 3, i);
        }
        d.compact(1, || std::iter::once((t0, 1, 7)));
        assert_eq!(d.heap.len(), 1);
    }
}
