//! [`WaitQueue`]: the waiter list behind `Condition`.
//!
//! Each waiter owns a one-shot [`Signal`]; `notify(n)` pops `n` signals in FIFO order and fires them,
//! so exactly `n` waiters wake and none spuriously. Releasing and re-taking the condition's lock is
//! the caller's job (the lock may be any lock object in Python).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use parking_lot_core::{DEFAULT_PARK_TOKEN, DEFAULT_UNPARK_TOKEN};

use crate::block::{wait_loop, Blocker, Interrupted};

/// A one-shot wake-up for one waiter.
#[derive(Debug, Default)]
pub struct Signal {
    fired: AtomicBool,
}

impl Signal {
    /// Whether the signal fired.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        // Safety: no callback re-enters the parking lot.
        unsafe {
            parking_lot_core::unpark_all(self.addr(), DEFAULT_UNPARK_TOKEN);
        }
    }

    fn addr(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

/// FIFO list of condition waiters.
#[derive(Debug, Default)]
pub struct WaitQueue {
    waiters: Mutex<VecDeque<Arc<Signal>>>,
}

impl WaitQueue {
    /// An empty queue.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a waiter; call before releasing the condition's lock so no notify is missed.
    pub fn enqueue(&self) -> Arc<Signal> {
        let signal = Arc::new(Signal::default());
        self.waiters.lock().push_back(Arc::clone(&signal));
        signal
    }

    /// Sleeps until `signal` fires or `deadline` passes. On time-out or interrupt the waiter is
    /// removed; if a notify raced with the time-out, the wake-up is kept (returns `true`).
    ///
    /// # Errors
    /// [`Interrupted`] when the blocker abandons the wait (the waiter is removed first).
    pub fn wait<B: Blocker>(
        &self,
        signal: &Arc<Signal>,
        deadline: Option<Instant>,
        blocker: &mut B,
    ) -> Result<bool, Interrupted> {
        let result = wait_loop(blocker, deadline, |until| {
            let validate = || !signal.fired.load(Ordering::Relaxed);
            // Safety: the callbacks neither panic nor re-enter the parking lot.
            unsafe {
                parking_lot_core::park(signal.addr(), validate, || {}, |_, _| {}, DEFAULT_PARK_TOKEN, until);
            }
            signal.fired()
        });
        match result {
            Ok(true) => Ok(true),
            Ok(false) => Ok(!self.cancel(signal)),
            Err(e) => {
                if !self.cancel(signal) {
                    // Notified while being interrupted: pass the wake-up on rather than lose it.
                    self.notify(1);
                }
                Err(e)
            }
        }
    }

    /// Removes `signal` if still queued; returns whether it was (i.e. not notified).
    pub fn cancel(&self, signal: &Arc<Signal>) -> bool {
        let mut waiters = self.waiters.lock();
        match waiters.iter().position(|s| Arc::ptr_eq(s, signal)) {
            Some(pos) => {
                waiters.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Wakes up to `n` waiters, oldest first; returns how many.
    pub fn notify(&self, n: usize) -> usize {
        let woken: Vec<_> = {
            let mut waiters = self.waiters.lock();
            let k = n.min(waiters.len());
            waiters.drain(..k).collect()
        };
        for s in &woken {
            s.fire();
        }
        woken.len()
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) -> usize {
        self.notify(usize::MAX)
    }

    /// Number of waiters.
    pub fn len(&self) -> usize {
        self.waiters.lock().len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Plain;
    use std::time::Duration;

    #[test]
    fn notify_wakes_exactly_n() {
        let q = Arc::new(WaitQueue::new());
        let woke = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (q, woke) = (Arc::clone(&q), Arc::clone(&woke));
                let s = q.enqueue();
                crate::testing::spawn(move || {
                    let got = q
                        .wait(&s, Some(Instant::now() + Duration::from_millis(300)), &mut Plain)
                        .unwrap();
                    if got {
                        woke.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        assert_eq!(q.notify(3), 3);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(woke.load(Ordering::SeqCst), 3);
        assert!(q.is_empty());
    }

    /// Threads take turns through a condition (the pattern of Python's `Condition`: enqueue with
    /// the lock held, release, wait, re-take): each waits for its turn and wakes the others after
    /// taking it. A lost wake-up leaves a thread asleep until the patience runs out.
    #[test]
    fn turns_pass_between_threads_without_lost_wakeups() {
        use crate::sync::RawLock;
        use crate::testing::Unsynced;
        const THREADS: usize = 3;
        const TURNS: usize = 300;
        let shared = Arc::new((RawLock::new(), WaitQueue::new(), Unsynced::new(0usize)));
        let threads: Vec<_> = (0..THREADS)
            .map(|me| {
                let shared = Arc::clone(&shared);
                crate::testing::spawn(move || {
                    let (lock, cond, turn) = &*shared;
                    for _ in 0..TURNS {
                        assert!(lock.lock_until(None));
                        // Safety (both reads and the update): the lock is held.
                        while unsafe { turn.with(|t| *t % THREADS) } != me {
                            let signal = cond.enqueue();
                            lock.unlock().unwrap();
                            assert_eq!(cond.wait(&signal, crate::testing::patience(), &mut Plain), Ok(true));
                            assert!(lock.lock_until(None));
                        }
                        unsafe { turn.with(|t| *t += 1) };
                        cond.notify_all();
                        lock.unlock().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Safety: every thread that touched it was joined.
        assert_eq!(unsafe { shared.2.with(|t| *t) }, THREADS * TURNS);
        assert!(shared.1.is_empty());
    }
}
