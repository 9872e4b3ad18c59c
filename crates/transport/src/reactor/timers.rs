//! The deadlines of numbered slots (connections, calls), shared by the QUIC core
//! (connection timers) and the reactor's calls (call ticks).
//!
//! Each slot has at most one deadline, set with [`Deadlines::set`] whenever its owner
//! learns it (after every input). A heap orders them; a deadline that moves adds an
//! entry and leaves the old one stale, and stale entries are dropped when they reach
//! the top, against the compact per-slot table, without touching the owner's state.
//! That matters: a QUIC connection's loss-detection timer moves 20 ms later with each
//! datagram sent, and with hundreds of calls on a thread the owner's state is rarely
//! in cache. [`Deadlines::set`] compacts the heap when stale entries outnumber live
//! ones fourfold.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Deadlines of slots (`index`, with the `id` of the slot's current occupant).
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Per slot: the occupant and its deadline (the one live heap entry).
    slots: Vec<(u64, Option<Instant>)>,
    /// Slots with a deadline.
    live: usize,
}

impl Deadlines {
    /// Slot `index` (occupant `id`) next has work at `at` (`None`: no deadline).
    pub(crate) fn set(&mut self, index: usize, id: u64, at: Option<Instant>) {
        if self.slots.len() <= index {
            self.slots.resize(index + 1, (0, None));
        }
        let slot = &mut self.slots[index];
        if *slot == (id, at) {
            return;
        }
        self.live += usize::from(at.is_some());
        self.live -= usize::from(slot.1.is_some());
        *slot = (id, at);
        if let Some(t) = at {
            self.heap.push(Reverse((t, index, id)));
        }
        if self.heap.len() > 4 * self.live + 1024 {
            let slots = &self.slots;
            self.heap = slots
                .iter()
                .enumerate()
                .filter_map(|(index, &(id, at))| Some(Reverse((at?, index, id))))
                .collect();
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&mut self) -> Option<Instant> {
        self.drop_stale();
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The next slot due at `now`, `(index, id, deadline)`; its deadline is removed
    /// (the owner sets the next one after handling it).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(usize, u64, Instant)> {
        self.drop_stale();
        let &Reverse((t, index, id)) = self.heap.peek()?;
        if t > now {
            return None;
        }
        self.heap.pop();
        self.slots[index].1 = None;
        self.live -= 1;
        Some((index, id, t))
    }

    /// Pops superseded entries off the top.
    fn drop_stale(&mut self) {
        while let Some(&Reverse((t, index, id))) = self.heap.peek() {
            if self.slots.get(index) == Some(&(id, Some(t))) {
                return;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn due_in_order_moved_and_cleared() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.set(1, 7, Some(t0 + ms(20)));
        d.set(2, 8, Some(t0 + ms(10)));
        assert_eq!(d.next(), Some(t0 + ms(10)));
        assert_eq!(d.pop_due(t0), None);
        assert_eq!(d.pop_due(t0 + ms(25)), Some((2, 8, t0 + ms(10))));
        assert_eq!(d.pop_due(t0 + ms(25)), Some((1, 7, t0 + ms(20))));
        assert_eq!(d.pop_due(t0 + ms(25)), None, "popped deadlines are gone");
        // Moved later: the old entry is stale and never comes due.
        d.set(1, 7, Some(t0 + ms(30)));
        d.set(1, 7, Some(t0 + ms(50)));
        assert_eq!(d.next(), Some(t0 + ms(50)));
        assert_eq!(d.pop_due(t0 + ms(40)), None);
        // A new occupant of the slot: the old one's deadline is void.
        d.set(1, 9, Some(t0 + ms(60)));
        assert_eq!(d.pop_due(t0 + ms(100)), Some((1, 9, t0 + ms(60))));
        // Cleared.
        d.set(3, 1, Some(t0));
        d.set(3, 1, None);
        assert_eq!(d.next(), None);
        assert_eq!(d.live, 0);
    }

    #[test]
    fn stale_entries_are_compacted() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        for i in 0..5000u64 {
            d.set(0, 1, Some(t0 + ms(i)));
        }
        assert!(d.heap.len() <= 1029, "{}", d.heap.len());
        assert_eq!(d.next(), Some(t0 + ms(4999)));
    }
}
