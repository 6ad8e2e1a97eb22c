//! [`Semaphore`]: `threading.Semaphore` / `BoundedSemaphore`, with holder tracking for deadlock
//! detection.
//!
//! Holders are the threads that acquired and have not released. Semaphores are often used as
//! signals (released by a thread that never acquired); the first such release turns holder tracking
//! off for good, so the detector never reports through a semaphore whose owner is unknowable.

use std::any::Any;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::deadlock::{next_id, Resource};
use super::SyncError;
use crate::block::{expired, lock, next_deadline, sleep_unlocked, Blocker};
use crate::thread::ThreadId;

#[derive(Debug)]
struct State {
    value: u64,
    holders: Vec<(ThreadId, u64)>,
    signal_style: bool,
}

/// A counting semaphore; bounded when created with a limit.
#[derive(Debug)]
pub struct Semaphore {
    state: Mutex<State>,
    cv: Condvar,
    bound: Option<u64>,
    id: u64,
    name: Option<Box<str>>,
}

impl Semaphore {
    /// A semaphore with `value` permits; `bounded` makes releases above `value` an error.
    #[must_use]
    pub fn new(value: u64, bounded: bool, name: Option<String>) -> Self {
        Self {
            state: Mutex::new(State {
                value,
                holders: Vec::new(),
                signal_style: false,
            }),
            cv: Condvar::new(),
            bound: bounded.then_some(value),
            id: next_id(),
            name: name.map(String::into_boxed_str),
        }
    }

    /// Takes a permit if one is free.
    pub fn try_acquire(&self, me: ThreadId) -> bool {
        let mut st = self.state.lock();
        Self::take(&mut st, me)
    }

    fn take(st: &mut State, me: ThreadId) -> bool {
        if st.value == 0 {
            return false;
        }
        st.value -= 1;
        if !st.signal_style {
            match st.holders.iter_mut().find(|(t, _)| *t == me) {
                Some((_, n)) => *n += 1,
                None => st.holders.push((me, 1)),
            }
        }
        true
    }

    /// Waits until `deadline` for a permit; returns whether one was taken.
    ///
    /// # Errors
    /// [`SyncError::Interrupted`] when the blocker abandons the wait.
    pub fn acquire_slow<B: Blocker>(
        &self,
        me: ThreadId,
        deadline: Option<Instant>,
        blocker: &mut B,
    ) -> Result<bool, SyncError> {
        loop {
            let mut st = lock(&self.state, blocker);
            if Self::take(&mut st, me) {
                return Ok(true);
            }
            if expired(deadline) {
                return Ok(false);
            }
            let until = next_deadline(deadline, blocker.slice());
            sleep_unlocked(&self.cv, st, until, blocker);
            if blocker.slice().is_some() && blocker.interrupted() {
                // A release may have picked this waiter: pass its wake-up on.
                self.cv.notify_one();
                return Err(SyncError::Interrupted);
            }
        }
    }

    /// Adds `n` permits and wakes up to `n` waiters.
    ///
    /// # Errors
    /// [`SyncError::TooManyReleases`] when a bounded semaphore would exceed its initial value
    /// (nothing is changed then).
    pub fn release(&self, me: ThreadId, n: u64) -> Result<(), SyncError> {
        let mut st = self.state.lock();
        let Some(value) = st.value.checked_add(n) else {
            return Err(SyncError::Overflow);
        };
        if self.bound.is_some_and(|bound| value > bound) {
            return Err(SyncError::TooManyReleases);
        }
        st.value = value;
        if !st.signal_style {
            let mut left = n;
            if let Some(pos) = st.holders.iter().position(|(t, _)| *t == me) {
                let held = &mut st.holders[pos].1;
                let k = left.min(*held);
                *held -= k;
                left -= k;
                if *held == 0 {
                    st.holders.swap_remove(pos);
                }
            }
            if left > 0 {
                st.signal_style = true;
                st.holders.clear();
            }
        }
        drop(st);
        for _ in 0..n {
            if !self.cv.notify_one() {
                break;
            }
        }
        Ok(())
    }

    /// Permits currently free.
    pub fn value(&self) -> u64 {
        self.state.lock().value
    }

    /// The limit of a bounded semaphore.
    pub fn bound(&self) -> Option<u64> {
        self.bound
    }
}

impl Resource for Semaphore {
    fn id(&self) -> u64 {
        self.id
    }
    fn kind(&self) -> &'static str {
        if self.bound.is_some() {
            "BoundedSemaphore"
        } else {
            "Semaphore"
        }
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn holders(&self, out: &mut Vec<ThreadId>) {
        let st = self.state.lock();
        if st.value == 0 && !st.signal_style {
            out.extend(st.holders.iter().map(|(t, _)| *t));
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn self_wait_suspect(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Plain;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn counts_and_bounds() {
        let s = Semaphore::new(2, true, None);
        assert!(s.try_acquire(1));
        assert!(s.try_acquire(1));
        assert!(!s.try_acquire(1));
        let mut h = vec![];
        s.holders(&mut h);
        assert_eq!(h, vec![1]);
        s.release(1, 2).unwrap();
        assert_eq!(s.release(1, 1), Err(SyncError::TooManyReleases));
        assert_eq!(s.value(), 2);
    }

    #[test]
    fn release_by_stranger_wakes_waiter_and_disables_tracking() {
        let s = Arc::new(Semaphore::new(0, false, None));
        let s2 = Arc::clone(&s);
        let asleep = crate::testing::Announce::default();
        let mut blocker = asleep.clone();
        let t = crate::testing::spawn(move || s2.acquire_slow(7, crate::testing::patience(), &mut blocker).unwrap());
        asleep.wait_asleep(&t);
        s.release(8, 1).unwrap();
        assert!(t.join().unwrap());
        let mut h = vec![];
        s.holders(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn timed_acquire_gives_up() {
        let s = Semaphore::new(0, false, None);
        let d = Instant::now() + Duration::from_millis(10);
        assert!(!s.acquire_slow(1, Some(d), &mut Plain).unwrap());
    }

    /// Four threads share two permits: never more than two hold one at once, and every permit
    /// comes back.
    #[test]
    fn permits_bound_the_holders_under_contention() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let s = Arc::new(Semaphore::new(2, true, None));
        let inside = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (s, inside) = (Arc::clone(&s), Arc::clone(&inside));
                crate::testing::spawn(move || {
                    let me = crate::thread::current();
                    for _ in 0..2000 {
                        if !s.try_acquire(me) {
                            assert!(s.acquire_slow(me, crate::testing::patience(), &mut Plain).unwrap());
                        }
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 2, "{now} threads hold one of 2 permits");
                        inside.fetch_sub(1, Ordering::SeqCst);
                        s.release(me, 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.value(), 2);
        let st = s.state.lock();
        assert!(
            st.holders.is_empty() && !st.signal_style,
            "each thread released what it took"
        );
    }
}
