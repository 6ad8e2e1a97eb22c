//! [`Barrier`]: `threading.Barrier`'s state machine.
//!
//! The same states as `CPython` (filling, draining, resetting, broken) plus one more, *action*:
//! the last thread to arrive runs the action outside of any Rust lock (it is Python code) and
//! reports back with [`Barrier::finish_action`]; meanwhile newcomers, `reset` and `abort` wait, as
//! they would on `CPython`'s condition lock.

use std::time::Instant;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::SyncError;
use crate::block::{expired, next_deadline, sleep_unlocked, Blocker};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Filling,
    Action,
    Draining,
    Resetting,
    Broken,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    count: usize,
}

/// How a thread passed [`Barrier::arrive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Released with this arrival index.
    Passed(usize),
    /// Last to arrive, with this index: run the action, then call [`Barrier::finish_action`].
    RunAction(usize),
}

/// A barrier for a fixed number of parties.
#[derive(Debug)]
pub struct Barrier {
    state: Mutex<State>,
    cv: Condvar,
    parties: usize,
    has_action: bool,
}

impl Barrier {
    /// A barrier for `parties` threads; `has_action` makes the last arrival run an action.
    #[must_use]
    pub fn new(parties: usize, has_action: bool) -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Filling,
                count: 0,
            }),
            cv: Condvar::new(),
            parties,
            has_action,
        }
    }

    /// Number of parties.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// Threads waiting in the filling phase.
    pub fn n_waiting(&self) -> usize {
        let st = self.state.lock();
        if st.phase == Phase::Filling {
            st.count
        } else {
            0
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.state.lock().phase == Phase::Broken
    }

    fn lock<B: Blocker>(&self, blocker: &mut B) -> MutexGuard<'_, State> {
        crate::block::lock(&self.state, blocker)
    }

    /// Sleeps on the condvar until `done(state)` or the deadline; `Ok(false)` on time-out.
    fn wait_until<'a, B: Blocker>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        deadline: Option<Instant>,
        blocker: &mut B,
        done: impl Fn(&State) -> bool,
    ) -> (MutexGuard<'a, State>, Result<bool, SyncError>) {
        while !done(&st) {
            if expired(deadline) {
                return (st, Ok(false));
            }
            let until = next_deadline(deadline, blocker.slice());
            sleep_unlocked(&self.cv, st, until, blocker);
            if blocker.slice().is_some() && blocker.interrupted() {
                return (self.lock(blocker), Err(SyncError::Interrupted));
            }
            st = self.lock(blocker);
        }
        (st, Ok(true))
    }

    /// Arrives at the barrier and waits for the other parties until `deadline`.
    ///
    /// # Errors
    /// [`SyncError::BrokenBarrier`] when the barrier is or becomes broken, or this wait times out
    /// (which breaks it); [`SyncError::Interrupted`] when the blocker abandons the wait.
    pub fn arrive<B: Blocker>(&self, deadline: Option<Instant>, blocker: &mut B) -> Result<Arrival, SyncError> {
        let st = self.lock(blocker);
        // Wait while a previous cycle drains, resets or runs its action.
        let (mut st, entered) =
            self.wait_until(st, None, blocker, |s| matches!(s.phase, Phase::Filling | Phase::Broken));
        entered?;
        if st.phase == Phase::Broken {
            return Err(SyncError::BrokenBarrier);
        }
        let index = st.count;
        st.count += 1;
        if index + 1 == self.parties {
            if self.has_action {
                st.phase = Phase::Action;
                return Ok(Arrival::RunAction(index));
            }
            st.phase = Phase::Draining;
            self.cv.notify_all();
            self.leave(&mut st);
            return Ok(Arrival::Passed(index));
        }
        let (st, result) = self.wait_until(st, deadline, blocker, |s| {
            !matches!(s.phase, Phase::Filling | Phase::Action)
        });
        // A timeout while the last party runs the action does not count: in CPython the action
        // runs under the barrier's lock, so no waiter can time out meanwhile.
        let (mut st, result) = if result == Ok(false) && st.phase == Phase::Action {
            self.wait_until(st, None, blocker, |s| s.phase != Phase::Action)
        } else {
            (st, result)
        };
        let result = match result {
            Ok(true) if st.phase == Phase::Draining => Ok(Arrival::Passed(index)),
            Ok(true) => Err(SyncError::BrokenBarrier),
            Ok(false) => {
                self.break_locked(&mut st);
                Err(SyncError::BrokenBarrier)
            }
            Err(e) => Err(e),
        };
        self.leave(&mut st);
        result
    }

    /// Reports the outcome of the action run by the last arrival: `ok` releases the parties,
    /// otherwise the barrier breaks.
    pub fn finish_action(&self, ok: bool) {
        let mut st = self.state.lock();
        if st.phase == Phase::Action {
            if ok {
                st.phase = Phase::Draining;
                self.cv.notify_all();
            } else {
                self.break_locked(&mut st);
            }
        }
        self.leave(&mut st);
    }

    fn leave(&self, st: &mut State) {
        st.count -= 1;
        if st.count == 0 && matches!(st.phase, Phase::Draining | Phase::Resetting) {
            st.phase = Phase::Filling;
            self.cv.notify_all();
        }
    }

    fn break_locked(&self, st: &mut State) {
        st.phase = Phase::Broken;
        self.cv.notify_all();
    }

    /// Puts the barrier back to its initial state; current waiters get
    /// [`SyncError::BrokenBarrier`].
    ///
    /// # Errors
    /// [`SyncError::Interrupted`] when the blocker abandons the wait for a running action.
    pub fn reset<B: Blocker>(&self, blocker: &mut B) -> Result<(), SyncError> {
        let st = self.lock(blocker);
        let (mut st, waited) = self.wait_until(st, None, blocker, |s| s.phase != Phase::Action);
        waited?;
        if st.count > 0 {
            if matches!(st.phase, Phase::Filling | Phase::Broken) {
                st.phase = Phase::Resetting;
            }
        } else {
            st.phase = Phase::Filling;
        }
        self.cv.notify_all();
        Ok(())
    }

    /// Breaks the barrier: current and future waiters get [`SyncError::BrokenBarrier`].
    ///
    /// # Errors
    /// [`SyncError::Interrupted`] when the blocker abandons the wait for a running action.
    pub fn abort<B: Blocker>(&self, blocker: &mut B) -> Result<(), SyncError> {
        let st = self.lock(blocker);
        let (mut st, waited) = self.wait_until(st, None, blocker, |s| s.phase != Phase::Action);
        waited?;
        self.break_locked(&mut st);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Plain;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn parties_pass_with_unique_indices_repeatedly() {
        let b = Arc::new(Barrier::new(3, false));
        for _ in 0..3 {
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let b = Arc::clone(&b);
                    crate::testing::spawn(
                        move || match b.arrive(crate::testing::patience(), &mut Plain).unwrap() {
                            Arrival::Passed(i) | Arrival::RunAction(i) => i,
                        },
                    )
                })
                .collect();
            let mut idx: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            idx.sort_unstable();
            assert_eq!(idx, vec![0, 1, 2]);
        }
    }

    #[test]
    fn timeout_breaks_the_barrier() {
        let b = Barrier::new(2, false);
        let d = Some(Instant::now() + Duration::from_millis(10));
        assert_eq!(b.arrive(d, &mut Plain), Err(SyncError::BrokenBarrier));
        assert!(b.broken());
        assert_eq!(
            b.arrive(crate::testing::patience(), &mut Plain),
            Err(SyncError::BrokenBarrier)
        );
        b.reset(&mut Plain).unwrap();
        assert!(!b.broken());
    }

    #[test]
    fn failed_action_breaks() {
        let b = Arc::new(Barrier::new(2, true));
        let b2 = Arc::clone(&b);
        let t = crate::testing::spawn(move || b2.arrive(crate::testing::patience(), &mut Plain));
        crate::testing::spin_until(&t, "the first party waits", || b.n_waiting() == 1);
        assert_eq!(
            b.arrive(crate::testing::patience(), &mut Plain),
            Ok(Arrival::RunAction(1))
        );
        b.finish_action(false);
        assert_eq!(t.join().unwrap(), Err(SyncError::BrokenBarrier));
    }

    /// The same threads pass the barrier generation after generation: nobody passes before every
    /// party arrived, the last arrival runs the action exactly once per generation, and everyone
    /// sees the action done when released.
    #[test]
    fn the_same_parties_pass_many_generations_in_step() {
        use crate::testing::Unsynced;
        use std::sync::atomic::{AtomicUsize, Ordering};
        const PARTIES: usize = 3;
        const ROUNDS: usize = 200;
        let b = Arc::new(Barrier::new(PARTIES, true));
        let arrived: Arc<Vec<AtomicUsize>> = Arc::new((0..ROUNDS).map(|_| AtomicUsize::new(0)).collect());
        let actions = Arc::new(Unsynced::new(0usize));
        let threads: Vec<_> = (0..PARTIES)
            .map(|_| {
                let (b, arrived, actions) = (Arc::clone(&b), Arc::clone(&arrived), Arc::clone(&actions));
                crate::testing::spawn(move || {
                    for (round, count) in arrived.iter().enumerate() {
                        count.fetch_add(1, Ordering::SeqCst);
                        match b.arrive(crate::testing::patience(), &mut Plain).unwrap() {
                            Arrival::RunAction(i) => {
                                assert_eq!(i, PARTIES - 1);
                                // Safety: the others wait until `finish_action`; the next action
                                // runs after they arrive at the next generation.
                                unsafe { actions.with(|a| *a += 1) };
                                b.finish_action(true);
                            }
                            Arrival::Passed(i) => assert!(i < PARTIES - 1),
                        }
                        assert_eq!(count.load(Ordering::SeqCst), PARTIES, "passed before all arrived");
                        // Safety: read after this generation's action and before this thread
                        // arrives at the next one (whose action comes after that arrival).
                        assert_eq!(unsafe { actions.with(|a| *a) }, round + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!b.broken());
        assert_eq!(b.n_waiting(), 0);
    }
}
