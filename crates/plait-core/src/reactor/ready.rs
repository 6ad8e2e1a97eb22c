//! [`ReadyQueue`]: callbacks ready to run, in order. Any thread may push; the loop thread takes
//! the whole queue once per tick ([`ReadyQueue::take`]), so callbacks scheduled while a tick runs
//! wait for the next tick, as asyncio specifies, and the lock is taken once per tick by the loop.

use parking_lot::Mutex;

/// A multi-producer queue drained whole by one consumer.
pub struct ReadyQueue<T> {
    items: Mutex<Vec<T>>,
}

impl<T> Default for ReadyQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ReadyQueue<T> {
    /// An empty queue.
    #[must_use]
    pub fn new() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
        }
    }

    /// Appends an item.
    pub fn push(&self, item: T) {
        self.items.lock().push(item);
    }

    /// Moves every queued item into `batch` (which must be empty), leaving the queue empty; the
    /// two buffers swap, so steady state allocates nothing.
    pub fn take(&self, batch: &mut Vec<T>) {
        debug_assert!(batch.is_empty());
        std::mem::swap(&mut *self.items.lock(), batch);
    }

    /// Puts `rest` back in front of whatever was queued since (a tick interrupted by an
    /// exception leaves its unrun callbacks first in line, as asyncio does).
    pub fn requeue_front(&self, rest: impl IntoIterator<Item = T>) {
        let mut items = self.items.lock();
        let later = std::mem::take(&mut *items);
        items.extend(rest);
        items.extend(later);
    }

    /// Whether nothing is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.lock().is_empty()
    }

    /// Number of queued items.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.lock().len()
    }

    /// Removes and returns every queued item.
    pub fn drain(&self) -> Vec<T> {
        std::mem::take(&mut *self.items.lock())
    }

    /// Runs `f` on the queued items (for garbage-collector traversal); skipped if the queue is
    /// locked elsewhere.
    pub fn try_for_each(&self, f: impl FnMut(&T)) {
        if let Some(items) = self.items.try_lock() {
            items.iter().for_each(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn take_swaps_whole_queue() {
        let q = ReadyQueue::new();
        q.push(1);
        q.push(2);
        let mut batch = Vec::new();
        q.take(&mut batch);
        assert_eq!(batch, [1, 2]);
        assert!(q.is_empty());
        q.push(3);
        q.requeue_front([10, 11]);
        assert_eq!(q.drain(), [10, 11, 3]);
    }

    #[test]
    fn pushes_from_many_threads_all_arrive() {
        let q = Arc::new(ReadyQueue::new());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let q = Arc::clone(&q);
                crate::testing::spawn(move || (0..1000).for_each(|i| q.push(t * 1000 + i)))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let mut all = q.drain();
        all.sort_unstable();
        assert_eq!(all, (0..4000).collect::<Vec<_>>());
    }

    /// The loop thread takes batches while other threads push: nothing is lost or duplicated,
    /// and each pusher's items come out in the order it pushed them.
    #[test]
    fn batches_taken_while_others_push_lose_nothing() {
        let q = Arc::new(ReadyQueue::new());
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let q = Arc::clone(&q);
                crate::testing::spawn(move || (0..2000).for_each(|i| q.push(t * 2000 + i)))
            })
            .collect();
        let mut all = Vec::new();
        let mut batch = Vec::new();
        let deadline = std::time::Instant::now() + crate::testing::PATIENCE;
        while all.len() < 6000 {
            assert!(std::time::Instant::now() < deadline, "items missing");
            q.take(&mut batch);
            if batch.is_empty() {
                std::thread::yield_now();
            }
            all.append(&mut batch);
        }
        for h in handles {
            h.join().unwrap();
        }
        assert!(q.is_empty());
        for t in 0..3 {
            let mine: Vec<_> = all.iter().filter(|&&v| v / 2000 == t).collect();
            assert!(mine.is_sorted(), "pusher {t}'s items out of order");
        }
        all.sort_unstable();
        assert_eq!(all, (0..6000).collect::<Vec<_>>());
    }
}
