//! The event queue of the discrete-event simulation.
//!
//! Events are ordered by simulated time and then by the order in which they
//! were scheduled, so that two runs with the same inputs process events in the
//! same order.
//!
//! The queue is a radix heap: simulated time never goes back, so an event is
//! filed in the bucket of the highest bit in which its time differs from the
//! time of the last event taken out. Taking out an event touches only the
//! first non-empty bucket, where a binary heap of a large fleet's events
//! would follow a path through memory at every step.

use std::cell::Cell;
use std::collections::VecDeque;

/// Simulated time in milliseconds since the start of the run.
pub type SimTime = u64;

struct Entry<E> {
    time: SimTime,
    sequence: u64,
    event: E,
}

/// A priority queue of events keyed by `(time, sequence)`.
pub struct EventQueue<E> {
    /// Events at the time of the last one taken out, in schedule order.
    current: VecDeque<Entry<E>>,
    /// Bucket `i` contains events whose time differs from `last` first in bit
    /// `i` (counting from 0 at the lowest bit).
    buckets: Vec<Vec<Entry<E>>>,
    /// Time of the last event taken out.
    last: SimTime,
    /// The earliest time in the buckets, once looked up, until the next pop.
    earliest: Cell<Option<SimTime>>,
    len: usize,
    next_sequence: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// Creates an empty queue.
    pub fn new() -> Self {
        Self {
            current: VecDeque::new(),
            buckets: (0..SimTime::BITS).map(|_| Vec::new()).collect(),
            last: 0,
            earliest: Cell::new(None),
            len: 0,
            next_sequence: 0,
        }
    }

    /// Schedules `event` at `time`. An event scheduled before the time of
    /// the last one taken out comes out next, after those already due.
    pub fn push(&mut self, time: SimTime, event: E) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.len += 1;
        let entry = Entry {
            time,
            sequence,
            event,
        };
        match self.bucket_of(time) {
            None => self.current.push_back(entry),
            Some(bucket) => {
                self.buckets[bucket].push(entry);
                if let Some(earliest) = self.earliest.get() {
                    self.earliest.set(Some(earliest.min(time)));
                }
            }
        }
    }

    /// Removes and returns the earliest event.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        self.earliest.set(None);
        if self.current.is_empty() {
            self.refill();
        }
        let entry = self.current.pop_front()?;
        self.len -= 1;
        Some((entry.time, entry.event))
    }

    /// Returns the time of the earliest event.
    pub fn peek_time(&self) -> Option<SimTime> {
        if let Some(entry) = self.current.front() {
            return Some(entry.time);
        }
        if let Some(earliest) = self.earliest.get() {
            return Some(earliest);
        }
        let earliest = self
            .buckets
            .iter()
            .find(|bucket| !bucket.is_empty())
            .and_then(|bucket| bucket.iter().map(|entry| entry.time).min());
        self.earliest.set(earliest);
        earliest
    }

    /// Returns the number of scheduled events.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` when no event is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the bucket for an event at `time`, or `None` for the current
    /// time (and, defensively, for a time already past).
    fn bucket_of(&self, time: SimTime) -> Option<usize> {
        if time <= self.last {
            return None;
        }
        Some((SimTime::BITS - 1 - (time ^ self.last).leading_zeros()) as usize)
    }

    /// Moves the earliest events into `current`: the first non-empty bucket
    /// is spread over the buckets below it, relative to its smallest time.
    fn refill(&mut self) {
        let Some(index) = self.buckets.iter().position(|bucket| !bucket.is_empty()) else {
            return;
        };
        let entries = std::mem::take(&mut self.buckets[index]);
        let Some(earliest) = entries.iter().map(|entry| entry.time).min() else {
            return;
        };
        self.last = earliest;
        let mut due = Vec::new();
        for entry in entries {
            match self.bucket_of(entry.time) {
                None => due.push(entry),
                Some(bucket) => self.buckets[bucket].push(entry),
            }
        }
        // Events at one time can reach `current` from different buckets, so
        // restore their schedule order.
        due.sort_unstable_by_key(|entry| entry.sequence);
        self.current.extend(due);
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::BinaryHeap;

    use super::*;

    #[test]
    fn equal_times_pop_in_schedule_order() {
        // Proves the tie-break that makes runs deterministic: same time, first scheduled first.
        let mut queue = EventQueue::new();
        queue.push(20, 'c');
        queue.push(10, 'a');
        queue.push(20, 'd');
        queue.push(10, 'b');
        let order: Vec<char> = std::iter::from_fn(|| queue.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec!['a', 'b', 'c', 'd']);
        assert!(queue.is_empty());
    }

    #[test]
    fn same_order_as_a_binary_heap() {
        // Proves that a simulation's pattern of use (events scheduled at or
        // after the current time, many at equal times, pops in between) gives
        // exactly the (time, sequence) order of a binary heap.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut queue = EventQueue::new();
        let mut reference = BinaryHeap::new();
        let mut sequence = 0u64;
        let mut now = 0;
        for _ in 0..20_000 {
            for _ in 0..rng.gen_range(0..4) {
                let time = now + [0, 1, 80, rng.gen_range(0..900_000)][rng.gen_range(0..4)];
                queue.push(time, sequence);
                reference.push(std::cmp::Reverse((time, sequence)));
                sequence += 1;
            }
            assert_eq!(queue.len(), reference.len());
            assert_eq!(
                queue.peek_time(),
                reference.peek().map(|std::cmp::Reverse((time, _))| *time)
            );
            if let Some(std::cmp::Reverse((time, id))) = reference.pop() {
                assert_eq!(queue.pop(), Some((time, id)));
                now = time;
            }
        }
        while let Some(std::cmp::Reverse((time, id))) = reference.pop() {
            assert_eq!(queue.pop(), Some((time, id)));
        }
        assert_eq!(queue.pop(), None);
    }
}
