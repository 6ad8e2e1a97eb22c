//! [`RawLock`]: a one-byte lock that parks waiters in `parking_lot_core`.
//!
//! The same design as `parking_lot::RawMutex` (a locked bit and a parked bit; waiters sleep in the
//! global parking lot keyed by the lock's address; eventual fairness by direct hand-off), with two
//! differences that Python's `threading.Lock` semantics need: any thread may release it, and an
//! acquire takes a deadline so callers can sleep in slices and check for signals between them.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use parking_lot_core::{ParkResult, SpinWait, UnparkResult, UnparkToken, DEFAULT_PARK_TOKEN};

const LOCKED: u8 = 1;
const SPIN_YIELDS: u32 = 40;
const PARKED: u8 = 2;

/// The lock was handed directly to the woken thread.
const TOKEN_HANDOFF: UnparkToken = UnparkToken(1);
/// The woken thread must compete for the lock again.
const TOKEN_NORMAL: UnparkToken = UnparkToken(0);

/// A lock without owner: any thread may release it. See the module docs.
#[derive(Debug, Default)]
pub struct RawLock {
    state: AtomicU8,
}

pub use crate::error::NotLocked;

impl RawLock {
    /// A new, unlocked lock.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(0),
        }
    }

    /// Takes the lock if it is free, without waiting.
    #[inline]
    pub fn try_lock(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED != 0 {
                return false;
            }
            match self
                .state
                .compare_exchange_weak(state, state | LOCKED, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(s) => state = s,
            }
        }
    }

    /// Takes the lock if it becomes free within a short spin (a few busy waits, then a few
    /// yields of the processor), without sleeping. Gives up at once when a thread already sleeps
    /// on the lock (the lock is not about to be free, and spinning would jump the queue).
    ///
    /// For a caller whose sleep is expensive to prepare (the binding records each sleeping wait
    /// for deadlock detection): most contended waits for a short critical section end here.
    pub fn try_lock_spinning(&self) -> bool {
        let mut yields = 0;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            if state & LOCKED == 0 {
                if self
                    .state
                    .compare_exchange_weak(state, state | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if state & PARKED != 0 || yields == SPIN_YIELDS {
                return false;
            }
            yields += 1;
            std::thread::yield_now();
        }
    }

    /// Takes the lock, waiting until `deadline` at most (`None`: forever). Returns whether it was taken.
    pub fn lock_until(&self, deadline: Option<Instant>) -> bool {
        self.try_lock() || self.lock_slow(deadline)
    }

    /// Whether the lock is held by some thread.
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// Releases the lock and wakes one waiter if there is one.
    ///
    /// # Errors
    /// [`NotLocked`] when the lock was not held.
    #[inline]
    pub fn unlock(&self) -> Result<(), NotLocked> {
        match self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => Ok(()),
            Err(state) if state & LOCKED == 0 => Err(NotLocked),
            Err(_) => {
                self.unlock_slow();
                Ok(())
            }
        }
    }

    /// Forgets every holder and waiter: the state after `fork()` in the child, where no other thread
    /// survives.
    pub fn reset(&self) {
        self.state.store(0, Ordering::Relaxed);
    }

    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>) -> bool {
        let mut spin = SpinWait::new();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED == 0 {
                match self
                    .state
                    .compare_exchange_weak(state, state | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => return true,
                    Err(s) => state = s,
                }
                continue;
            }
            if state & PARKED == 0 && spin.spin() {
                state = self.state.load(Ordering::Relaxed);
                continue;
            }
            if state & PARKED == 0 {
                if let Err(s) =
                    self.state
                        .compare_exchange_weak(state, state | PARKED, Ordering::Relaxed, Ordering::Relaxed)
                {
                    state = s;
                    continue;
                }
            }
            let addr = self.addr();
            let validate = || self.state.load(Ordering::Relaxed) == LOCKED | PARKED;
            let before_sleep = || {};
            let timed_out = |_, was_last_thread| {
                if was_last_thread {
                    self.state.fetch_and(!PARKED, Ordering::Relaxed);
                }
            };
            // Safety: the callbacks neither panic nor call into the parking lot, as `park` requires.
            match unsafe {
                parking_lot_core::park(addr, validate, before_sleep, timed_out, DEFAULT_PARK_TOKEN, deadline)
            } {
                ParkResult::Unparked(TOKEN_HANDOFF) => return true,
                ParkResult::TimedOut => return false,
                ParkResult::Unparked(_) | ParkResult::Invalid => {}
            }
            spin.reset();
            state = self.state.load(Ordering::Relaxed);
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let callback = |result: UnparkResult| {
            if result.unparked_threads != 0 && result.be_fair {
                if !result.have_more_threads {
                    self.state.store(LOCKED, Ordering::Relaxed);
                }
                return TOKEN_HANDOFF;
            }
            let state = if result.have_more_threads { PARKED } else { 0 };
            self.state.store(state, Ordering::Release);
            TOKEN_NORMAL
        };
        // Safety: the callback neither panics nor calls into the parking lot.
        unsafe {
            parking_lot_core::unpark_one(self.addr(), callback);
        }
    }

    fn addr(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn lock_unlock_and_double_release() {
        let lock = RawLock::new();
        assert!(lock.try_lock());
        assert!(!lock.try_lock());
        assert!(lock.is_locked());
        assert_eq!(lock.unlock(), Ok(()));
        assert_eq!(lock.unlock(), Err(NotLocked));
    }

    #[test]
    fn timed_lock_times_out() {
        let lock = RawLock::new();
        assert!(lock.try_lock());
        let start = Instant::now();
        assert!(!lock.lock_until(Some(start + Duration::from_millis(20))));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn release_from_other_thread_wakes_waiter() {
        let lock = Arc::new(RawLock::new());
        assert!(lock.try_lock());
        let l2 = Arc::clone(&lock);
        let t = crate::testing::spawn(move || l2.lock_until(Some(Instant::now() + crate::testing::PATIENCE)));
        crate::testing::spin_until(&t, "the waiter parked", || {
            lock.state.load(Ordering::SeqCst) & PARKED != 0
        });
        lock.unlock().unwrap();
        assert!(t.join().unwrap());
        assert!(lock.is_locked());
    }

    #[test]
    fn mutual_exclusion_under_contention() {
        let lock = Arc::new(RawLock::new());
        let counter = Arc::new(crate::testing::Unsynced::new(0usize));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, counter) = (Arc::clone(&lock), Arc::clone(&counter));
                crate::testing::spawn(move || {
                    for _ in 0..10_000 {
                        assert!(lock.lock_until(None));
                        // A plain read-modify-write: lost updates would show a missing exclusion,
                        // and ThreadSanitizer a missing acquire or release.
                        // Safety: the lock is held.
                        unsafe { counter.with(|c| *c += 1) };
                        lock.unlock().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Safety: every thread that touched it was joined.
        assert_eq!(unsafe { counter.with(|c| *c) }, 40_000);
    }

    #[test]
    fn spinning_try_takes_a_free_lock_and_gives_up_on_a_held_one() {
        let lock = Arc::new(RawLock::new());
        assert!(lock.try_lock_spinning());
        // Held and never released: the spin ends without sleeping.
        assert!(!lock.try_lock_spinning());
        // A waiter sleeps on it: the spin gives up at once (no queue jumping).
        let l2 = Arc::clone(&lock);
        let t = crate::testing::spawn(move || l2.lock_until(Some(Instant::now() + crate::testing::PATIENCE)));
        crate::testing::spin_until(&t, "the waiter parked", || {
            lock.state.load(Ordering::SeqCst) & PARKED != 0
        });
        assert!(!lock.try_lock_spinning());
        lock.unlock().unwrap();
        assert!(t.join().unwrap());
        lock.unlock().unwrap();
    }

    #[test]
    fn spinning_and_sleeping_acquires_exclude_each_other() {
        let lock = Arc::new(RawLock::new());
        let counter = Arc::new(crate::testing::Unsynced::new(0usize));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (lock, counter) = (Arc::clone(&lock), Arc::clone(&counter));
                crate::testing::spawn(move || {
                    for _ in 0..5_000 {
                        // Half the threads spin first, as the free-threaded binding does.
                        if i % 2 == 1 || !lock.try_lock_spinning() {
                            assert!(lock.lock_until(None));
                        }
                        // Safety: the lock is held.
                        unsafe { counter.with(|c| *c += 1) };
                        lock.unlock().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Safety: every thread that touched it was joined.
        assert_eq!(unsafe { counter.with(|c| *c) }, 20_000);
    }
}
