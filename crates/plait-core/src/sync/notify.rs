//! [`Notifier`]: "something changed" broadcasts for waiters that re-check their own condition.
//!
//! A sequence number bumped on every notify; a waiter samples it, checks its condition, and parks
//! only while the number is unchanged, so a notify between the check and the park is never lost.
//! Notifying costs one atomic add when nobody waits.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot_core::{DEFAULT_PARK_TOKEN, DEFAULT_UNPARK_TOKEN};

use crate::block::{wait_loop, Blocker, Interrupted};

/// See the module docs.
#[derive(Debug, Default)]
pub struct Notifier {
    seq: AtomicU64,
    waiters: AtomicUsize,
}

impl Notifier {
    /// A notifier nobody waits on.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
        }
    }

    /// Wakes every current waiter so it re-checks its condition.
    pub fn notify(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            // Safety: no callback re-enters the parking lot.
            unsafe {
                parking_lot_core::unpark_all(self.addr(), DEFAULT_UNPARK_TOKEN);
            }
        }
    }

    /// Waits until `ready()` holds or `deadline` passes; returns the last value of `ready()`.
    ///
    /// # Errors
    /// [`Interrupted`] when the blocker abandons the wait.
    pub fn wait_until<B: Blocker>(
        &self,
        ready: impl Fn() -> bool + Sync,
        deadline: Option<Instant>,
        blocker: &mut B,
    ) -> Result<bool, Interrupted> {
        if ready() {
            return Ok(true);
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = wait_loop(blocker, deadline, |until| {
            let seq = self.seq.load(Ordering::SeqCst);
            if ready() {
                return true;
            }
            let validate = || self.seq.load(Ordering::SeqCst) == seq;
            // Safety: the callbacks neither panic nor re-enter the parking lot.
            unsafe {
                parking_lot_core::park(self.addr(), validate, || {}, |_, _| {}, DEFAULT_PARK_TOKEN, until);
            }
            ready()
        });
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn addr(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Plain;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn waiter_sees_the_change() {
        let n = Arc::new(Notifier::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (n2, f2) = (Arc::clone(&n), Arc::clone(&flag));
        let asleep = crate::testing::Announce::default();
        let mut blocker = asleep.clone();
        let t = crate::testing::spawn(move || {
            n2.wait_until(|| f2.load(Ordering::SeqCst), crate::testing::patience(), &mut blocker)
        });
        asleep.wait_asleep(&t);
        flag.store(true, Ordering::SeqCst);
        n.notify();
        assert_eq!(t.join().unwrap(), Ok(true));
        let d = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(n.wait_until(|| false, d, &mut Plain), Ok(false));
    }

    /// Threads take turns, each waiting on one notifier until the shared turn is its own: a
    /// notify lost between a waiter's check and its sleep would leave it asleep.
    #[test]
    fn turns_pass_between_threads_without_lost_wakeups() {
        use std::sync::atomic::AtomicUsize;
        const THREADS: usize = 3;
        const TURNS: usize = 500;
        let n = Arc::new(Notifier::new());
        let turn = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|me| {
                let (n, turn) = (Arc::clone(&n), Arc::clone(&turn));
                crate::testing::spawn(move || {
                    for _ in 0..TURNS {
                        let mine = || turn.load(Ordering::SeqCst) % THREADS == me;
                        assert_eq!(n.wait_until(mine, crate::testing::patience(), &mut Plain), Ok(true));
                        turn.fetch_add(1, Ordering::SeqCst);
                        n.notify();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(turn.load(Ordering::SeqCst), THREADS * TURNS);
        assert_eq!(n.waiters.load(Ordering::SeqCst), 0);
    }
}
