//! [`TimerHeap`]: scheduled callbacks ordered by deadline, then by the order they were added, so
//! timers with equal deadlines (or deadlines in the past) run in the order they were scheduled.
//!
//! Cancellation is lazy, as in asyncio: a cancelled timer stays in the heap until it reaches the
//! top or the owner compacts the heap with [`TimerHeap::retain`].

use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Entry<T> {
    when: f64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    // Reversed: `BinaryHeap` is a max-heap and the earliest deadline must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.when.total_cmp(&self.when).then_with(|| other.seq.cmp(&self.seq))
    }
}

/// A min-heap of `(deadline, item)`.
pub struct TimerHeap<T> {
    heap: BinaryHeap<Entry<T>>,
    seq: u64,
}

impl<T> Default for TimerHeap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerHeap<T> {
    /// An empty heap.
    #[must_use]
    pub fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Schedules `item` at `when` (seconds on the loop's clock).
    pub fn push(&mut self, when: f64, item: T) {
        self.seq += 1;
        self.heap.push(Entry {
            when,
            seq: self.seq,
            item,
        });
    }

    /// The earliest deadline, if any.
    #[must_use]
    pub fn next_deadline(&self) -> Option<f64> {
        self.heap.peek().map(|e| e.when)
    }

    /// The item with the earliest deadline, if any.
    #[must_use]
    pub fn peek(&self) -> Option<&T> {
        self.heap.peek().map(|e| &e.item)
    }

    /// Removes and returns the earliest item.
    pub fn pop(&mut self) -> Option<T> {
        self.heap.pop().map(|e| e.item)
    }

    /// Removes and returns the earliest item if its deadline is before `end`.
    pub fn pop_before(&mut self, end: f64) -> Option<T> {
        if self.heap.peek()?.when < end {
            self.pop()
        } else {
            None
        }
    }

    /// Removes and returns the items for which `remove` is true, keeping the others in their
    /// order (compaction after many cancellations; the removed items are dropped by the caller,
    /// outside any lock).
    pub fn remove_where(&mut self, mut remove: impl FnMut(&T) -> bool) -> Vec<T> {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .partition(|e| remove(&e.item));
        self.heap = BinaryHeap::from(kept);
        gone.into_iter().map(|e| e.item).collect()
    }

    /// Removes every item.
    pub fn drain(&mut self) -> Vec<T> {
        self.heap.drain().map(|e| e.item).collect()
    }

    /// Number of scheduled items (cancelled ones included until removed).
    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is scheduled.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Visits every item (for garbage-collector traversal).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.heap.iter().map(|e| &e.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_insertion_order() {
        let mut h = TimerHeap::new();
        h.push(2.0, "c");
        h.push(1.0, "a");
        h.push(1.0, "b");
        h.push(-5.0, "neg1");
        h.push(-5.0, "neg2");
        let order: Vec<_> = std::iter::from_fn(|| h.pop()).collect();
        assert_eq!(order, ["neg1", "neg2", "a", "b", "c"]);
    }

    #[test]
    fn pop_before_stops_at_deadline() {
        let mut h = TimerHeap::new();
        h.push(1.0, 1);
        h.push(3.0, 3);
        assert_eq!(h.pop_before(2.0), Some(1));
        assert_eq!(h.pop_before(2.0), None);
        assert_eq!(h.next_deadline(), Some(3.0));
    }

    #[test]
    fn retain_compacts() {
        let mut h = TimerHeap::new();
        for i in 0..100 {
            h.push(f64::from(i), i);
        }
        let gone = h.remove_where(|i| i % 10 != 0);
        assert_eq!(gone.len(), 90);
        assert_eq!(h.len(), 10);
        assert_eq!(h.pop(), Some(0));
        assert_eq!(h.pop(), Some(10));
    }

    #[test]
    fn many_equal_deadlines_keep_order() {
        let mut h = TimerHeap::new();
        for i in 0..1000 {
            h.push(0.5, i);
        }
        let order: Vec<_> = std::iter::from_fn(|| h.pop()).collect();
        assert_eq!(order, (0..1000).collect::<Vec<_>>());
    }
}
