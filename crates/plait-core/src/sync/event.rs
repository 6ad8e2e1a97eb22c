//! [`Event`]: `threading.Event` as one atomic word (flag bit plus a generation counter).
//!
//! `set()` bumps the generation, so a waiter woken by `set()` returns `true` even if `clear()` ran
//! before it was scheduled (`CPython` issue 13502), without re-checking the flag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot_core::{ParkResult, DEFAULT_PARK_TOKEN, DEFAULT_UNPARK_TOKEN};

use crate::block::{wait_loop, Blocker, Interrupted};

const FLAG: u64 = 1;
const GENERATION: u64 = 2;

/// A one-bit flag threads can wait for.
#[derive(Debug, Default)]
pub struct Event {
    state: AtomicU64,
}

impl Event {
    /// A new, unset event.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
        }
    }

    /// Whether the flag is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) & FLAG != 0
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & FLAG != 0 {
                return;
            }
            let next = (state & !FLAG).wrapping_add(GENERATION) | FLAG;
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(s) => state = s,
            }
        }
        // Safety: no callback here re-enters the parking lot.
        unsafe {
            parking_lot_core::unpark_all(self.addr(), DEFAULT_UNPARK_TOKEN);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.state.fetch_and(!FLAG, Ordering::Relaxed);
    }

    /// Waits until the flag is set or `deadline` passes; returns whether it was set (or a `set()`
    /// happened during the wait).
    ///
    /// # Errors
    /// [`Interrupted`] when the blocker abandons the wait.
    pub fn wait<B: Blocker>(&self, deadline: Option<Instant>, blocker: &mut B) -> Result<bool, Interrupted> {
        let start = self.state.load(Ordering::Acquire);
        if start & FLAG != 0 {
            return Ok(true);
        }
        let woken = |s: u64| s & FLAG != 0 || (s & !FLAG) != (start & !FLAG);
        wait_loop(blocker, deadline, |until| {
            let validate = || self.state.load(Ordering::Relaxed) == start;
            // Safety: the callbacks neither panic nor re-enter the parking lot.
            let result =
                unsafe { parking_lot_core::park(self.addr(), validate, || {}, |_, _| {}, DEFAULT_PARK_TOKEN, until) };
            let _: ParkResult = result;
            woken(self.state.load(Ordering::Acquire))
        })
    }

    /// Clears without waking anyone: for the child after `fork()`.
    pub fn reset_after_fork(&self) {
        self.state.store(0, Ordering::Relaxed);
    }

    fn addr(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Plain;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn set_wakes_waiters_even_if_cleared_right_after() {
        let ev = Arc::new(Event::new());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let ev = Arc::clone(&ev);
                let asleep = crate::testing::Announce::default();
                let mut blocker = asleep.clone();
                let t = crate::testing::spawn(move || ev.wait(crate::testing::patience(), &mut blocker).unwrap());
                (t, asleep)
            })
            .collect();
        for (t, asleep) in &waiters {
            asleep.wait_asleep(t);
        }
        ev.set();
        ev.clear();
        for (w, _) in waiters {
            assert!(w.join().unwrap());
        }
        assert!(!ev.is_set());
    }

    #[test]
    fn wait_times_out_unset() {
        let ev = Event::new();
        let t0 = Instant::now();
        assert!(!ev.wait(Some(t0 + Duration::from_millis(15)), &mut Plain).unwrap());
        assert!(t0.elapsed() >= Duration::from_millis(15));
    }

    /// A token goes round a ring of threads, each waiting on its own event, clearing it and
    /// setting the next one: no `set()` is lost, and what a thread wrote before `set()` is
    /// visible to the thread its `wait()` released.
    #[test]
    fn a_token_passed_round_a_ring_of_events_is_never_lost() {
        use crate::testing::Unsynced;
        const THREADS: usize = 3;
        const ROUNDS: usize = 500;
        let events: Arc<Vec<Event>> = Arc::new((0..THREADS).map(|_| Event::new()).collect());
        let passes = Arc::new(Unsynced::new(0usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|me| {
                let (events, passes) = (Arc::clone(&events), Arc::clone(&passes));
                crate::testing::spawn(move || {
                    for _ in 0..ROUNDS {
                        assert_eq!(events[me].wait(crate::testing::patience(), &mut Plain), Ok(true));
                        events[me].clear();
                        // Safety: only the token's holder touches it; the token moves by set/wait.
                        unsafe { passes.with(|p| *p += 1) };
                        events[(me + 1) % THREADS].set();
                    }
                })
            })
            .collect();
        events[0].set();
        for t in threads {
            t.join().unwrap();
        }
        // Safety: every thread that touched it was joined.
        assert_eq!(unsafe { passes.with(|p| *p) }, THREADS * ROUNDS);
        assert!(events[0].is_set(), "the token is back at the start");
    }
}
