//! [`Queue`]: the blocking queue behind `queue.Queue`, `LifoQueue`, `PriorityQueue` and
//! `SimpleQueue`, including Python 3.13's `shutdown(immediate)`.
//!
//! The container is a [`Store`] so the ordering policy (FIFO, LIFO, heap) is pluggable; a heap's
//! comparisons may be fallible (Python `__lt__`), hence `Store::Error`. Items are never dropped
//! while the queue's mutex is held: removed items are handed back to the caller, whose drop may run
//! arbitrary code (Python `__del__`) that could re-enter the queue.

use std::collections::VecDeque;
use std::time::Instant;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::block::{expired, lock, next_deadline, sleep_unlocked, Blocker};

/// A container with an ordering policy.
pub trait Store: Send {
    /// Item type.
    type Item: Send;
    /// Error from a fallible comparison.
    type Error;
    /// Number of items.
    fn len(&self) -> usize;
    /// Whether the store is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Adds an item.
    ///
    /// # Errors
    /// When ordering the item fails; the item may or may not have been kept, as with `heapq`.
    fn push(&mut self, item: Self::Item) -> Result<(), Self::Error>;
    /// Removes the next item (the store is not empty).
    ///
    /// # Errors
    /// When re-ordering the remaining items fails.
    fn pop(&mut self) -> Result<Self::Item, Self::Error>;
}

/// First in, first out.
#[derive(Debug)]
pub struct Fifo<T>(pub VecDeque<T>);

impl<T: Send> Store for Fifo<T> {
    type Item = T;
    type Error = std::convert::Infallible;
    fn len(&self) -> usize {
        self.0.len()
    }
    fn push(&mut self, item: T) -> Result<(), Self::Error> {
        self.0.push_back(item);
        Ok(())
    }
    fn pop(&mut self) -> Result<T, Self::Error> {
        Ok(self.0.pop_front().expect("pop from a non-empty store"))
    }
}

pub use crate::error::QueueError;

#[derive(Debug)]
struct State<S> {
    store: S,
    maxsize: usize,
    unfinished: u64,
    shutdown: bool,
}

/// A blocking, optionally bounded MPMC queue; see the module docs.
#[derive(Debug)]
pub struct Queue<S> {
    state: Mutex<State<S>>,
    not_empty: Condvar,
    not_full: Condvar,
    all_done: Condvar,
}

/// A failed put: the item when it was not kept, and why.
pub type PutError<S> = (Option<<S as Store>::Item>, QueueError<<S as Store>::Error>);

/// How long a put or get may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail at once rather than wait.
    No,
    /// Wait until the deadline (`None`: forever).
    Until(Option<Instant>),
}

impl<S: Store> Queue<S> {
    /// A queue over `store`, bounded to `maxsize` items (0: unbounded).
    pub fn new(store: S, maxsize: usize) -> Self {
        Self {
            state: Mutex::new(State {
                store,
                maxsize,
                unfinished: 0,
                shutdown: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            all_done: Condvar::new(),
        }
    }

    fn lock<B: Blocker>(&self, blocker: &mut B) -> MutexGuard<'_, State<S>> {
        lock(&self.state, blocker)
    }

    /// Sleeps on `cv` once (up to one slice) and re-locks; `Err` when interrupted.
    fn sleep<'a, B: Blocker>(
        &'a self,
        cv: &Condvar,
        st: MutexGuard<'a, State<S>>,
        deadline: Option<Instant>,
        blocker: &mut B,
    ) -> Result<MutexGuard<'a, State<S>>, ()> {
        let until = next_deadline(deadline, blocker.slice());
        sleep_unlocked(cv, st, until, blocker);
        if blocker.slice().is_some() && blocker.interrupted() {
            // A put or get may have picked this waiter: pass its wake-up on.
            cv.notify_one();
            return Err(());
        }
        Ok(self.lock(blocker))
    }

    /// Puts `item`, waiting for room as `wait` allows.
    ///
    /// # Errors
    /// `Full` (the item is handed back), `ShutDown`, `Interrupted`, or `Store` when ordering failed.
    pub fn put<B: Blocker>(&self, item: S::Item, wait: Wait, blocker: &mut B) -> Result<(), PutError<S>> {
        let mut st = self.lock(blocker);
        loop {
            if st.shutdown {
                return Err((Some(item), QueueError::ShutDown));
            }
            if st.maxsize == 0 || st.store.len() < st.maxsize {
                break;
            }
            let deadline = match wait {
                Wait::No => return Err((Some(item), QueueError::Full)),
                Wait::Until(d) => d,
            };
            if expired(deadline) {
                return Err((Some(item), QueueError::Full));
            }
            st = match self.sleep(&self.not_full, st, deadline, blocker) {
                Ok(g) => g,
                Err(()) => return Err((Some(item), QueueError::Interrupted)),
            };
        }
        st.store.push(item).map_err(|e| (None, QueueError::Store(e)))?;
        st.unfinished += 1;
        drop(st);
        self.not_empty.notify_one();
        Ok(())
    }

    /// Puts every item of `items` without waiting for room (for unbounded queues and batches).
    ///
    /// # Errors
    /// `ShutDown` (nothing is put) or `Store` when ordering failed.
    pub fn put_all<B: Blocker>(
        &self,
        items: impl IntoIterator<Item = S::Item>,
        blocker: &mut B,
    ) -> Result<usize, QueueError<S::Error>> {
        let mut st = self.lock(blocker);
        if st.shutdown {
            return Err(QueueError::ShutDown);
        }
        let mut n = 0;
        for item in items {
            st.store.push(item).map_err(QueueError::Store)?;
            st.unfinished += 1;
            n += 1;
        }
        drop(st);
        for _ in 0..n {
            if !self.not_empty.notify_one() {
                break;
            }
        }
        Ok(n)
    }

    /// Gets the next item, waiting as `wait` allows.
    ///
    /// # Errors
    /// `Empty`, `ShutDown` (shut down and empty), `Interrupted`, or `Store`.
    pub fn get<B: Blocker>(&self, wait: Wait, blocker: &mut B) -> Result<S::Item, QueueError<S::Error>> {
        let mut st = self.lock(blocker);
        loop {
            if !st.store.is_empty() {
                break;
            }
            if st.shutdown {
                return Err(QueueError::ShutDown);
            }
            let deadline = match wait {
                Wait::No => return Err(QueueError::Empty),
                Wait::Until(d) => d,
            };
            if expired(deadline) {
                return Err(QueueError::Empty);
            }
            st = match self.sleep(&self.not_empty, st, deadline, blocker) {
                Ok(g) => g,
                Err(()) => return Err(QueueError::Interrupted),
            };
        }
        let item = st.store.pop().map_err(QueueError::Store)?;
        let bounded = st.maxsize > 0;
        drop(st);
        if bounded {
            self.not_full.notify_one();
        }
        Ok(item)
    }

    /// The next item if one is there and the lock is free right now: the uncontended fast path
    /// of a blocking `get` (which falls back to [`Queue::get`] on `None`).
    #[inline]
    pub fn try_get_fast(&self) -> Option<S::Item> {
        let mut st = self.state.try_lock()?;
        if st.store.is_empty() {
            return None;
        }
        let item = st.store.pop().ok()?;
        let bounded = st.maxsize > 0;
        drop(st);
        if bounded {
            self.not_full.notify_one();
        }
        Some(item)
    }

    /// Puts `item` if the lock is free right now and there is room; hands it back otherwise
    /// (the caller then takes the general path).
    #[inline]
    pub fn try_put_fast(&self, item: S::Item) -> Result<(), S::Item> {
        let Some(mut st) = self.state.try_lock() else {
            return Err(item);
        };
        if st.shutdown || (st.maxsize > 0 && st.store.len() >= st.maxsize) {
            return Err(item);
        }
        if st.store.push(item).is_err() {
            // Only fallible stores (a heap) can fail, and they do not use this path.
            return Ok(());
        }
        st.unfinished += 1;
        drop(st);
        self.not_empty.notify_one();
        Ok(())
    }

    /// Marks one item as processed.
    ///
    /// # Errors
    /// `TooManyTaskDone` when there is no unfinished item.
    pub fn task_done<B: Blocker>(&self, blocker: &mut B) -> Result<(), QueueError<S::Error>> {
        let mut st = self.lock(blocker);
        if st.unfinished == 0 {
            return Err(QueueError::TooManyTaskDone);
        }
        st.unfinished -= 1;
        if st.unfinished == 0 {
            self.all_done.notify_all();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done.
    ///
    /// # Errors
    /// `Interrupted` when the blocker abandons the wait.
    pub fn join<B: Blocker>(&self, blocker: &mut B) -> Result<(), QueueError<S::Error>> {
        let mut st = self.lock(blocker);
        while st.unfinished > 0 {
            st = match self.sleep(&self.all_done, st, None, blocker) {
                Ok(g) => g,
                Err(()) => return Err(QueueError::Interrupted),
            };
        }
        Ok(())
    }

    /// Shuts the queue down: puts fail from now on, gets fail once it is empty. With `immediate`,
    /// the queue is emptied and `join()` released; the removed items are returned for the caller to
    /// drop outside the lock.
    pub fn shutdown<B: Blocker>(&self, immediate: bool, blocker: &mut B) -> Vec<S::Item> {
        let mut st = self.lock(blocker);
        st.shutdown = true;
        let mut drained = Vec::new();
        if immediate {
            while !st.store.is_empty() {
                match st.store.pop() {
                    Ok(item) => drained.push(item),
                    Err(_) => break,
                }
                st.unfinished = st.unfinished.saturating_sub(1);
            }
            self.all_done.notify_all();
        }
        drop(st);
        self.not_empty.notify_all();
        self.not_full.notify_all();
        drained
    }

    /// Number of items.
    pub fn len<B: Blocker>(&self, blocker: &mut B) -> usize {
        self.lock(blocker).store.len()
    }

    /// Whether the queue holds no item.
    pub fn is_empty<B: Blocker>(&self, blocker: &mut B) -> bool {
        self.len(blocker) == 0
    }

    /// Whether a bounded queue is at capacity.
    pub fn is_full<B: Blocker>(&self, blocker: &mut B) -> bool {
        let st = self.lock(blocker);
        st.maxsize > 0 && st.store.len() >= st.maxsize
    }

    /// The bound (0: unbounded).
    pub fn maxsize<B: Blocker>(&self, blocker: &mut B) -> usize {
        self.lock(blocker).maxsize
    }

    /// Changes the bound; waiting putters re-check.
    pub fn set_maxsize<B: Blocker>(&self, maxsize: usize, blocker: &mut B) {
        self.lock(blocker).maxsize = maxsize;
        self.not_full.notify_all();
    }

    /// Items put and not yet marked done.
    pub fn unfinished<B: Blocker>(&self, blocker: &mut B) -> u64 {
        self.lock(blocker).unfinished
    }

    /// Whether `shutdown` was called.
    pub fn is_shutdown<B: Blocker>(&self, blocker: &mut B) -> bool {
        self.lock(blocker).shutdown
    }

    /// Runs `f` on the store if the lock is free right now (for garbage-collector traversal,
    /// which must never block).
    pub fn try_with_store<R>(&self, f: impl FnOnce(&S) -> R) -> Option<R> {
        self.state.try_lock().map(|st| f(&st.store))
    }

    /// Removes every item (for breaking reference cycles); returned for dropping outside the lock.
    pub fn take_all<B: Blocker>(&self, blocker: &mut B) -> Vec<S::Item> {
        let mut st = self.lock(blocker);
        let mut out = Vec::with_capacity(st.store.len());
        while !st.store.is_empty() {
            match st.store.pop() {
                Ok(item) => out.push(item),
                Err(_) => break,
            }
        }
        out
    }

    /// Runs `f` on the store under the lock (for snapshots).
    pub fn with_store<R, B: Blocker>(&self, blocker: &mut B, f: impl FnOnce(&S) -> R) -> R {
        f(&self.lock(blocker).store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Plain;
    use std::sync::Arc;
    use std::time::Duration;

    fn fifo(maxsize: usize) -> Queue<Fifo<u32>> {
        Queue::new(Fifo(VecDeque::new()), maxsize)
    }

    #[test]
    fn bounded_put_get_order_and_errors() {
        let q = fifo(2);
        q.put(1, Wait::No, &mut Plain).unwrap();
        q.put(2, Wait::No, &mut Plain).unwrap();
        assert!(matches!(
            q.put(3, Wait::No, &mut Plain),
            Err((Some(3), QueueError::Full))
        ));
        assert_eq!(q.get(Wait::No, &mut Plain), Ok(1));
        assert_eq!(q.get(Wait::No, &mut Plain), Ok(2));
        assert_eq!(q.get(Wait::No, &mut Plain), Err(QueueError::Empty));
        let d = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(q.get(Wait::Until(d), &mut Plain), Err(QueueError::Empty));
    }

    #[test]
    fn task_done_and_join() {
        let q = Arc::new(fifo(0));
        q.put(1, Wait::No, &mut Plain).unwrap();
        assert_eq!(q.unfinished(&mut Plain), 1);
        let q2 = Arc::clone(&q);
        let t = crate::testing::spawn(move || q2.join(&mut Plain));
        q.get(Wait::No, &mut Plain).unwrap();
        q.task_done(&mut Plain).unwrap();
        t.join().unwrap().unwrap();
        assert_eq!(q.task_done(&mut Plain), Err(QueueError::TooManyTaskDone));
    }

    #[test]
    fn shutdown_wakes_getters_and_drains_when_immediate() {
        let q = Arc::new(fifo(0));
        let q2 = Arc::clone(&q);
        let asleep = crate::testing::Announce::default();
        let mut blocker = asleep.clone();
        let t = crate::testing::spawn(move || q2.get(Wait::Until(crate::testing::patience()), &mut blocker));
        asleep.wait_asleep(&t);
        assert!(q.shutdown(false, &mut Plain).is_empty());
        assert_eq!(t.join().unwrap(), Err(QueueError::ShutDown));
        let q = fifo(0);
        q.put_all([1, 2, 3], &mut Plain).unwrap();
        assert_eq!(q.shutdown(true, &mut Plain), vec![1, 2, 3]);
        assert_eq!(q.unfinished(&mut Plain), 0);
        assert!(matches!(q.put(4, Wait::No, &mut Plain), Err((_, QueueError::ShutDown))));
    }

    #[test]
    fn producer_consumer_delivers_everything_once() {
        let q = Arc::new(fifo(16));
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let q = Arc::clone(&q);
                crate::testing::spawn(move || {
                    for i in 0..1000 {
                        q.put(p * 1000 + i, Wait::Until(crate::testing::patience()), &mut Plain)
                            .unwrap();
                    }
                })
            })
            .collect();
        let mut seen = vec![false; 3000];
        for _ in 0..3000 {
            let v = q.get(Wait::Until(crate::testing::patience()), &mut Plain).unwrap() as usize;
            assert!(!seen[v]);
            seen[v] = true;
        }
        for p in producers {
            p.join().unwrap();
        }
        assert!(seen.iter().all(|&s| s));
    }

    /// Producers and consumers, each trying the fast path first, on a small bounded queue: every
    /// item arrives once, in its producer's order, `join` returns once every item is done, and
    /// `shutdown` releases the idle consumers.
    #[test]
    fn producers_and_consumers_with_fast_paths_deliver_each_item_once() {
        const PRODUCERS: u32 = 3;
        const ITEMS: u32 = 1000;
        let q = Arc::new(fifo(8));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let q = Arc::clone(&q);
                crate::testing::spawn(move || {
                    for i in 0..ITEMS {
                        if let Err(item) = q.try_put_fast(p * ITEMS + i) {
                            q.put(item, Wait::Until(crate::testing::patience()), &mut Plain)
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let q = Arc::clone(&q);
                crate::testing::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        let item = match q.try_get_fast() {
                            Some(item) => item,
                            None => match q.get(Wait::Until(crate::testing::patience()), &mut Plain) {
                                Ok(item) => item,
                                Err(QueueError::ShutDown) => return got,
                                Err(e) => panic!("get failed: {e:?}"),
                            },
                        };
                        got.push(item);
                        q.task_done(&mut Plain).unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        q.join(&mut Plain).unwrap();
        assert!(q.shutdown(false, &mut Plain).is_empty());
        let mut all = Vec::new();
        for c in consumers {
            let got = c.join().unwrap();
            for p in 0..PRODUCERS {
                let mine: Vec<_> = got.iter().filter(|&&v| v / ITEMS == p).collect();
                assert!(mine.is_sorted(), "producer {p}'s items out of order");
            }
            all.extend(got);
        }
        all.sort_unstable();
        assert_eq!(all, (0..PRODUCERS * ITEMS).collect::<Vec<_>>());
        assert_eq!(q.unfinished(&mut Plain), 0);
    }
}
