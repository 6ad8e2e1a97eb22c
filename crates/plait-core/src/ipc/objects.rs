//! Synchronisation objects that live in a shared-memory segment: locks, semaphores, events,
//! conditions, barriers and atomic integers usable from any process that maps it. Each is a
//! [`Layout`] held by a [`Shared`] handle (see `ipc::shared`, re-exported here).
//!
//! Blocking goes through a [`Blocker`], as in [`crate::sync`]; sleeps are futex waits on words
//! of the segment (see [`futex`]).

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::block::{Blocker, Interrupted};
use crate::ipc::futex::{self, notify, wait_until};
use crate::ipc::process;
use crate::ipc::robust::{Acquired, RobustLock};

pub use crate::error::IpcError;
pub use crate::ipc::shared::{Layout, Shared, OBJECT_OFFSET};

// --- Lock ---------------------------------------------------------------------------------

impl Layout for RobustLock {
    const KIND: u32 = 1;
    const NAME: &'static str = "Lock";
}

// --- RLock --------------------------------------------------------------------------------

/// A recursive robust lock: owned by one thread of one process.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RLock {
    lock: RobustLock,
    /// Owning thread within the holder process.
    thread: AtomicU64,
    count: AtomicU32,
}

impl Layout for RLock {
    const KIND: u32 = 2;
    const NAME: &'static str = "RLock";
}

impl RLock {
    fn mine(&self) -> bool {
        self.lock.holder() == Some(process::pid()) && self.thread.load(Ordering::Relaxed) == crate::thread::current()
    }

    /// Takes the lock (again, if this thread holds it); `Ok(None)` at the deadline.
    ///
    /// # Errors
    /// [`IpcError::Interrupted`]; [`IpcError::Overflow`] past 2^32 - 1 levels.
    pub fn acquire<B: Blocker>(
        &self,
        blocker: &mut B,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<Option<Acquired>, IpcError> {
        if self.mine() {
            let c = self.count.load(Ordering::Relaxed);
            let next = c.checked_add(1).ok_or(IpcError::Overflow {
                max: u64::from(u32::MAX),
            })?;
            self.count.store(next, Ordering::Relaxed);
            return Ok(Some(Acquired::Clean));
        }
        let got = if wait {
            self.lock.lock(blocker, deadline)?
        } else {
            self.lock.try_lock()
        };
        if got.is_some() {
            self.thread.store(crate::thread::current(), Ordering::Relaxed);
            self.count.store(1, Ordering::Relaxed);
        }
        Ok(got)
    }

    /// Releases one level.
    ///
    /// # Errors
    /// [`IpcError::NotOwned`] unless this thread holds it.
    pub fn release(&self) -> Result<(), IpcError> {
        if !self.mine() {
            return Err(IpcError::NotOwned);
        }
        let c = self.count.load(Ordering::Relaxed);
        if c > 1 {
            self.count.store(c - 1, Ordering::Relaxed);
            return Ok(());
        }
        self.count.store(0, Ordering::Relaxed);
        self.thread.store(0, Ordering::Relaxed);
        self.lock.unlock().map_err(|_| IpcError::NotOwned)
    }

    /// Releases every level (for `Condition.wait`); returns the count to restore.
    ///
    /// # Errors
    /// [`IpcError::NotOwned`] unless this thread holds it.
    pub fn release_all(&self) -> Result<u32, IpcError> {
        if !self.mine() {
            return Err(IpcError::NotOwned);
        }
        let c = self.count.swap(0, Ordering::Relaxed);
        self.thread.store(0, Ordering::Relaxed);
        self.lock.unlock().map_err(|_| IpcError::NotOwned)?;
        Ok(c)
    }

    /// Sets the recursion count after a re-acquire by `Condition.wait`.
    pub fn restore(&self, count: u32) {
        self.count.store(count, Ordering::Relaxed);
    }

    /// Whether the calling thread holds it.
    #[must_use]
    pub fn is_owned(&self) -> bool {
        self.mine()
    }

    /// Recursion level of the holder (0 when free).
    #[must_use]
    pub fn count(&self) -> u32 {
        if self.lock.is_locked() {
            self.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// The underlying lock (for its holder).
    #[must_use]
    pub fn raw(&self) -> &RobustLock {
        &self.lock
    }
}

// --- Semaphore ----------------------------------------------------------------------------

/// A counting semaphore; `bound` (0 = none) makes it a `BoundedSemaphore`. Not robust: a
/// semaphore has no owner, so a process that dies between `acquire` and `release` leaves the
/// count lowered (as with POSIX semaphores).
#[repr(C)]
#[derive(Debug, Default)]
pub struct Semaphore {
    value: AtomicU32,
    seq: AtomicU32,
    sleepers: AtomicU32,
    bound: AtomicU32,
}

impl Layout for Semaphore {
    const KIND: u32 = 3;
    const NAME: &'static str = "Semaphore";
}

impl Semaphore {
    /// Sets the initial value (and the bound, 0 for none) of a new semaphore.
    pub fn init(&self, value: u32, bound: u32) {
        self.value.store(value, Ordering::Relaxed);
        self.bound.store(bound, Ordering::Relaxed);
    }

    fn try_take(&self) -> bool {
        self.value
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |v| v.checked_sub(1))
            .is_ok()
    }

    /// Decrements the value, waiting while it is 0; `Ok(false)` at the deadline.
    ///
    /// # Errors
    /// [`Interrupted`] when the blocker asked to stop.
    pub fn acquire<B: Blocker>(&self, blocker: &mut B, deadline: Option<Instant>) -> Result<bool, Interrupted> {
        if self.try_take() {
            return Ok(true);
        }
        wait_until(blocker, deadline, &self.seq, &self.sleepers, || self.try_take())
    }

    /// Non-blocking acquire.
    pub fn try_acquire(&self) -> bool {
        self.try_take()
    }

    /// Adds `n` to the value, waking waiters.
    ///
    /// # Errors
    /// [`IpcError::TooManyReleases`] above the bound; [`IpcError::Overflow`] past 2^32 - 1.
    pub fn release(&self, n: u32) -> Result<(), IpcError> {
        let bound = self.bound.load(Ordering::Relaxed);
        self.value
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |v| {
                let next = v.checked_add(n)?;
                (bound == 0 || next <= bound).then_some(next)
            })
            .map_err(|v| {
                if bound != 0 && v.checked_add(n).is_some_and(|x| x > bound) {
                    IpcError::TooManyReleases
                } else {
                    IpcError::Overflow {
                        max: u64::from(u32::MAX),
                    }
                }
            })?;
        notify(&self.seq, &self.sleepers);
        Ok(())
    }

    /// The current value.
    #[must_use]
    pub fn value(&self) -> u32 {
        self.value.load(Ordering::SeqCst)
    }

    /// The bound (0 for none).
    #[must_use]
    pub fn bound(&self) -> u32 {
        self.bound.load(Ordering::Relaxed)
    }
}

// --- Event --------------------------------------------------------------------------------

/// A flag processes can wait for.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Event {
    flag: AtomicU32,
    seq: AtomicU32,
    sleepers: AtomicU32,
}

impl Layout for Event {
    const KIND: u32 = 4;
    const NAME: &'static str = "Event";
}

impl Event {
    /// Sets the flag and wakes every waiter. The sequence number is bumped even when nobody
    /// sleeps, so a waiter that has not slept yet still sees a `set()` undone by `clear()`.
    pub fn set(&self) {
        self.flag.store(1, Ordering::SeqCst);
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) != 0 && self.sleepers.swap(0, Ordering::SeqCst) != 0 {
            futex::wake_all(&self.seq);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.flag.store(0, Ordering::SeqCst);
    }

    /// Whether the flag is set.
    #[must_use]
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst) != 0
    }

    /// Waits until the flag is set (`Ok(true)`) or the deadline (`Ok(false)`). A `set()` made
    /// during the wait counts even if `clear()` undid it before this waiter woke (as in
    /// `multiprocessing.Event`).
    ///
    /// # Errors
    /// [`Interrupted`] when the blocker asked to stop.
    pub fn wait<B: Blocker>(&self, blocker: &mut B, deadline: Option<Instant>) -> Result<bool, Interrupted> {
        let start = self.seq.load(Ordering::SeqCst);
        if self.is_set() {
            return Ok(true);
        }
        wait_until(blocker, deadline, &self.seq, &self.sleepers, || {
            self.is_set() || self.seq.load(Ordering::SeqCst) != start
        })
    }
}

// --- Condition ----------------------------------------------------------------------------

/// The wait queue of a condition variable (its lock is a separate [`RLock`] or lock object).
/// Waiters sleep on a sequence number that every notify bumps; as with POSIX condition
/// variables, a notify may wake more waiters than asked, so callers re-check their predicate.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Condition {
    /// Futex word: bumped by every notify.
    seq: AtomicU32,
    waiters: AtomicU32,
    /// Wake-ups handed out by `notify` and not yet taken: a woken waiter returns only if it
    /// takes one, so `notify(n)` lets at most `n` waiters through (others sleep on).
    permits: AtomicU32,
}

impl Layout for Condition {
    const KIND: u32 = 5;
    const NAME: &'static str = "Condition";
}

impl Condition {
    /// Call with the lock held, before releasing it: the token to pass to [`Condition::sleep`].
    #[must_use]
    pub fn prepare(&self) -> u32 {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        self.seq.load(Ordering::SeqCst)
    }

    /// Sleeps (lock released) until a notify after [`Condition::prepare`] returned `token`
    /// (`Ok(true)`) or the deadline (`Ok(false)`). Always ends the wait begun by `prepare`.
    ///
    /// # Errors
    /// [`Interrupted`] when the blocker asked to stop.
    pub fn sleep<B: Blocker>(
        &self,
        blocker: &mut B,
        token: u32,
        deadline: Option<Instant>,
    ) -> Result<bool, Interrupted> {
        let mut seen = token;
        let result = loop {
            // Only a notify after this wait began can let it through, and only with a permit.
            if self.seq.load(Ordering::SeqCst) != token && self.take_permit() {
                break Ok(true);
            }
            if crate::block::expired(deadline) {
                break Ok(false);
            }
            let until = crate::block::next_deadline(deadline, blocker.slice());
            blocker.block(|| futex::wait(&self.seq, seen, until));
            seen = self.seq.load(Ordering::SeqCst);
            if seen != token && self.take_permit() {
                break Ok(true);
            }
            if blocker.interrupted() {
                break Err(Interrupted);
            }
        };
        // (Permits are not reset when the last waiter leaves: a new waiter may be notified in
        // that very moment, and losing its permit would lose a wake-up. A permit left by a
        // waiter that timed out can at worst let one extra waiter through, as POSIX allows.)
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn take_permit(&self) -> bool {
        self.permits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| p.checked_sub(1))
            .is_ok()
    }

    /// Wakes up to `n` waiters (call with the lock held).
    pub fn notify(&self, n: u32) {
        let waiters = self.waiters.load(Ordering::SeqCst);
        if waiters > 0 && n > 0 {
            let _ = self.permits.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                Some(p.saturating_add(n).min(waiters))
            });
            self.seq.fetch_add(1, Ordering::SeqCst);
            // Every sleeper wakes and races for the permits; the rest sleep on.
            futex::wake(&self.seq, u32::MAX);
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.notify(u32::MAX);
    }

    /// How many waits are in progress (between [`Condition::prepare`] and the end of
    /// [`Condition::sleep`]).
    #[must_use]
    pub fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::SeqCst)
    }
}

// --- Barrier ------------------------------------------------------------------------------

/// A barrier for a fixed number of parties. A wait that times out (or is interrupted) breaks
/// it for everyone, as `threading.Barrier` does; `reset` mends it.
///
/// The generation, the broken flag, how the previous generation ended and the arrivals share one
/// 64-bit word updated with compare-and-swap, so an arrival always joins the generation it read
/// and a waiter decides its outcome from the word alone: its generation ended by the last
/// arrival (it passes) or by `reset` (it raises), even when the flag was cleared again.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Barrier {
    parties: AtomicU32,
    /// Futex word: bumped on every change waiters must see (the word below is 64 bits).
    seq: AtomicU32,
    sleepers: AtomicU32,
    _pad: u32,
    /// `generation << 32 | PREV_BROKEN | BROKEN | arrivals`.
    state: AtomicU64,
    /// Bit `g % 64` set when generation `g` ended by `reset` (for waiters that wake after more
    /// than one later generation ended: `PREV_BROKEN` only describes the last one).
    reset_gens: AtomicU64,
}

/// The current generation is broken (abort, timeout, interrupt).
const BROKEN: u64 = 1 << 30;
/// The previous generation ended by `reset` (its waiters raise).
const PREV_BROKEN: u64 = 1 << 31;
const ARRIVALS: u64 = BROKEN - 1;

impl Layout for Barrier {
    const KIND: u32 = 6;
    const NAME: &'static str = "Barrier";
}

impl Barrier {
    /// Sets the number of parties of a new barrier.
    pub fn init(&self, parties: u32) {
        self.parties.store(parties, Ordering::Relaxed);
    }

    /// The number of parties.
    #[must_use]
    pub fn parties(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }

    /// Parties waiting in the current generation.
    #[must_use]
    #[allow(clippy::cast_possible_truncation, reason = "masked to 30 bits")]
    pub fn n_waiting(&self) -> u32 {
        (self.state.load(Ordering::SeqCst) & ARRIVALS) as u32
    }

    /// Whether the barrier is broken.
    #[must_use]
    pub fn broken(&self) -> bool {
        self.state.load(Ordering::SeqCst) & BROKEN != 0
    }

    fn wake(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&self.seq);
    }

    /// How generation `generation` ended, seen from `state`: `None` while it runs.
    fn outcome(&self, generation: u64, state: u64) -> Option<Result<(), IpcError>> {
        let now = state >> 32;
        if now == generation {
            return (state & BROKEN != 0).then_some(Err(IpcError::BrokenBarrier));
        }
        let was_reset = if now == (generation + 1) & 0xffff_ffff {
            state & PREV_BROKEN != 0
        } else {
            self.reset_gens.load(Ordering::SeqCst) & (1 << (generation % 64)) != 0
        };
        Some(if was_reset {
            Err(IpcError::BrokenBarrier)
        } else {
            Ok(())
        })
    }

    /// Ends generation `state >> 32` (by the last arrival or a reset) with one CAS.
    fn advance(&self, state: u64, reset: bool) -> bool {
        let generation = state >> 32;
        let next = (((generation + 1) & 0xffff_ffff) << 32) | if reset { PREV_BROKEN } else { 0 };
        // Written before the CAS (only its winner's value matters, and it is re-written after).
        let bit = 1u64 << (generation % 64);
        let record = |reset: bool| {
            if reset {
                self.reset_gens.fetch_or(bit, Ordering::SeqCst);
            } else {
                self.reset_gens.fetch_and(!bit, Ordering::SeqCst);
            }
        };
        record(reset);
        if self
            .state
            .compare_exchange(state, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        record(reset);
        self.wake();
        true
    }

    /// Waits for every party; returns this party's arrival index (0..parties).
    ///
    /// # Errors
    /// [`IpcError::BrokenBarrier`] if the barrier is or becomes broken or is reset, or the
    /// deadline passes (which breaks it); [`IpcError::Interrupted`] (which breaks it too).
    #[allow(clippy::cast_possible_truncation, reason = "arrivals are masked to 30 bits")]
    pub fn wait<B: Blocker>(&self, blocker: &mut B, deadline: Option<Instant>) -> Result<u32, IpcError> {
        let parties = u64::from(self.parties());
        let mut s = self.state.load(Ordering::SeqCst);
        let (generation, index) = loop {
            if s & BROKEN != 0 {
                return Err(IpcError::BrokenBarrier);
            }
            let index = s & ARRIVALS;
            if index + 1 >= parties {
                if self.advance(s, false) {
                    return Ok(index as u32);
                }
                s = self.state.load(Ordering::SeqCst);
                continue;
            }
            match self
                .state
                .compare_exchange(s, s + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break (s >> 32, index as u32),
                Err(now) => s = now,
            }
        };
        let mut result = None;
        let passed = wait_until(blocker, deadline, &self.seq, &self.sleepers, || {
            result = self.outcome(generation, self.state.load(Ordering::SeqCst));
            result.is_some()
        });
        if passed == Ok(true) {
            return result.expect("set when ready").map(|()| index);
        }
        self.break_generation(generation);
        match self.outcome(generation, self.state.load(Ordering::SeqCst)) {
            // The last party arrived after all: this wait passed.
            Some(Ok(())) => Ok(index),
            _ if passed.is_err() => Err(IpcError::Interrupted),
            _ => Err(IpcError::BrokenBarrier),
        }
    }

    /// Breaks generation `generation` if it still runs.
    fn break_generation(&self, generation: u64) {
        let mut s = self.state.load(Ordering::SeqCst);
        while s >> 32 == generation && s & BROKEN == 0 {
            match self
                .state
                .compare_exchange(s, (s & !ARRIVALS) | BROKEN, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    self.wake();
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Breaks the barrier: current and future waiters fail until [`Barrier::reset`].
    pub fn abort(&self) {
        let s = self.state.load(Ordering::SeqCst);
        self.break_generation(s >> 32);
        // A generation that ended meanwhile: break the new one (abort always leaves it broken).
        while !self.broken() {
            self.break_generation(self.state.load(Ordering::SeqCst) >> 32);
        }
    }

    /// Returns the barrier to its initial state: waiters of the current generation fail with
    /// [`IpcError::BrokenBarrier`], later callers start a new generation.
    pub fn reset(&self) {
        loop {
            let s = self.state.load(Ordering::SeqCst);
            if s & (ARRIVALS | BROKEN) == 0 {
                return; // nobody to fail, nothing to mend
            }
            if self.advance(s, true) {
                return;
            }
        }
    }
}

// --- AtomicInt ----------------------------------------------------------------------------

/// A 64-bit signed integer in shared memory, updated with lock-free atomics.
#[repr(C)]
#[derive(Debug, Default)]
pub struct AtomicInt {
    /// The value (sequentially consistent operations).
    pub value: AtomicI64,
}

impl Layout for AtomicInt {
    const KIND: u32 = 7;
    const NAME: &'static str = "AtomicInt";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Plain;
    use crate::ipc::shm::Segment;
    use std::sync::Arc;
    use std::time::Duration;

    fn reattach<T: Layout>(s: &Shared<T>) -> Shared<T> {
        let fd = s.segment().fd().unwrap().try_clone().unwrap();
        Shared::attach(Arc::new(Segment::open(fd, false).unwrap())).unwrap()
    }

    #[test]
    fn kinds_are_checked() {
        let ev = Shared::<Event>::create(0, |_| {}).unwrap();
        let fd = ev.segment().fd().unwrap().try_clone().unwrap();
        let seg = Arc::new(Segment::open(fd, false).unwrap());
        assert!(matches!(
            Shared::<Semaphore>::attach(Arc::clone(&seg)),
            Err(IpcError::WrongKind { expected: "Semaphore" })
        ));
        assert!(Shared::<Event>::attach(seg).is_ok());
    }

    #[test]
    fn event_wakes_a_waiter_through_another_mapping() {
        let ev = Shared::<Event>::create(0, |_| {}).unwrap();
        let other = reattach(&ev);
        let t = crate::testing::spawn(move || other.wait(&mut Plain, crate::testing::patience()).unwrap());
        ev.set();
        assert!(t.join().unwrap());
        ev.clear();
        assert!(!ev
            .wait(&mut Plain, Some(Instant::now() + Duration::from_millis(5)))
            .unwrap());
    }

    #[test]
    fn event_set_then_clear_still_wakes_a_sleeper() {
        let ev = Shared::<Event>::create(0, |_| {}).unwrap();
        let other = reattach(&ev);
        let t = crate::testing::spawn(move || other.wait(&mut Plain, Some(Instant::now() + Duration::from_secs(30))));
        crate::testing::spin_until(&t, "the waiter sleeps", || ev.sleepers.load(Ordering::SeqCst) != 0);
        ev.set();
        ev.clear();
        assert_eq!(t.join().unwrap(), Ok(true));
    }

    #[test]
    fn semaphore_counts_and_bounds() {
        let s = Shared::<Semaphore>::create(0, |s| s.init(1, 1)).unwrap();
        assert!(s.try_acquire());
        assert!(!s.try_acquire());
        let other = reattach(&s);
        let t = crate::testing::spawn(move || other.acquire(&mut Plain, None).unwrap());
        s.release(1).unwrap();
        assert!(t.join().unwrap());
        s.release(1).unwrap();
        assert!(matches!(s.release(1), Err(IpcError::TooManyReleases)));
    }

    #[test]
    fn rlock_recursion_and_ownership() {
        let l = Shared::<RLock>::create(0, |_| {}).unwrap();
        assert_eq!(
            l.acquire(&mut Plain, crate::testing::patience(), true).unwrap(),
            Some(Acquired::Clean)
        );
        assert_eq!(
            l.acquire(&mut Plain, crate::testing::patience(), false).unwrap(),
            Some(Acquired::Clean)
        );
        assert_eq!(l.count(), 2);
        let other = reattach(&l);
        crate::testing::spawn(move || {
            assert!(matches!(other.release(), Err(IpcError::NotOwned)));
            assert_eq!(
                other.acquire(&mut Plain, crate::testing::patience(), false).unwrap(),
                None
            );
        })
        .join()
        .unwrap();
        l.release().unwrap();
        l.release().unwrap();
        assert!(matches!(l.release(), Err(IpcError::NotOwned)));
    }

    #[test]
    fn barrier_releases_every_party_and_breaks_on_timeout() {
        let b = Shared::<Barrier>::create(0, |b| b.init(3)).unwrap();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let other = reattach(&b);
                crate::testing::spawn(move || other.wait(&mut Plain, crate::testing::patience()).unwrap())
            })
            .collect();
        let mine = b.wait(&mut Plain, crate::testing::patience()).unwrap();
        let mut all: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        all.push(mine);
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2]);
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert!(matches!(b.wait(&mut Plain, soon), Err(IpcError::BrokenBarrier)));
        assert!(b.broken());
        b.reset();
        assert!(!b.broken());
    }

    #[test]
    fn barrier_reset_fails_its_waiters_even_when_it_mends_the_barrier() {
        let b = Shared::<Barrier>::create(0, |b| b.init(2)).unwrap();
        let other = reattach(&b);
        let t = crate::testing::spawn(move || other.wait(&mut Plain, crate::testing::patience()));
        crate::testing::spin_until(&t, "the first party waits", || b.n_waiting() != 0);
        b.reset();
        assert!(matches!(t.join().unwrap(), Err(IpcError::BrokenBarrier)));
        assert!(!b.broken());
        assert_eq!(b.n_waiting(), 0);
        // A waiter woken only after later generations ended still learns how its own ended.
        let state = b.state.load(Ordering::SeqCst);
        assert!(matches!(b.outcome(0, state), Some(Err(IpcError::BrokenBarrier))));
        let other = reattach(&b);
        let t = crate::testing::spawn(move || other.wait(&mut Plain, crate::testing::patience()).unwrap());
        b.wait(&mut Plain, crate::testing::patience()).unwrap();
        t.join().unwrap();
        let state = b.state.load(Ordering::SeqCst);
        assert_eq!(state >> 32, 2);
        assert!(matches!(b.outcome(0, state), Some(Err(IpcError::BrokenBarrier))));
        assert!(matches!(b.outcome(1, state), Some(Ok(()))));
        assert!(b.outcome(2, state).is_none());
    }

    #[test]
    fn condition_wakes_after_notify() {
        let c = Shared::<Condition>::create(0, |_| {}).unwrap();
        let flag = Shared::<AtomicInt>::create(0, |_| {}).unwrap();
        let (c2, f2) = (reattach(&c), reattach(&flag));
        let t = crate::testing::spawn(move || loop {
            let token = c2.prepare();
            if f2.value.load(Ordering::SeqCst) == 1 {
                c2.sleep(&mut Plain, token, Some(Instant::now())).unwrap();
                return;
            }
            c2.sleep(&mut Plain, token, crate::testing::patience()).unwrap();
        });
        flag.value.store(1, Ordering::SeqCst);
        c.notify_all();
        t.join().unwrap();
    }

    // The tests below share one mapping between threads (no `reattach`): ThreadSanitizer tracks
    // memory by address, so it can only check the ordering an object provides on one mapping.

    #[test]
    fn semaphore_bounds_the_holders_under_contention() {
        let s = Arc::new(Shared::<Semaphore>::create(0, |s| s.init(2, 2)).unwrap());
        let inside = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (s, inside) = (Arc::clone(&s), Arc::clone(&inside));
                crate::testing::spawn(move || {
                    for _ in 0..1000 {
                        assert_eq!(s.acquire(&mut Plain, crate::testing::patience()), Ok(true));
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 2, "{now} threads hold one of 2 permits");
                        inside.fetch_sub(1, Ordering::SeqCst);
                        s.release(1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.value(), 2);
    }

    #[test]
    fn rlock_excludes_threads_at_every_depth() {
        use crate::testing::Unsynced;
        let l = Arc::new(Shared::<RLock>::create(0, |_| {}).unwrap());
        let counter = Arc::new(Unsynced::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (l, counter) = (Arc::clone(&l), Arc::clone(&counter));
                crate::testing::spawn(move || {
                    let acquire = || l.acquire(&mut Plain, crate::testing::patience(), true).unwrap();
                    for i in 0..1000 {
                        assert_eq!(acquire(), Some(Acquired::Clean));
                        assert_eq!(acquire(), Some(Acquired::Clean));
                        assert_eq!(l.count(), 2);
                        if i % 8 == 0 {
                            // As `Condition.wait` does: every level released, then restored.
                            assert_eq!(l.release_all().unwrap(), 2);
                            assert_eq!(acquire(), Some(Acquired::Clean));
                            l.restore(2);
                        }
                        // Safety: the lock is held.
                        unsafe { counter.with(|c| *c += 1) };
                        l.release().unwrap();
                        l.release().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Safety: every thread that touched it was joined.
        assert_eq!(unsafe { counter.with(|c| *c) }, 4000);
        assert!(!l.raw().is_locked());
    }

    /// A token goes round a ring of threads, each waiting on its own event, clearing it and
    /// setting the next one: no `set()` is lost, and what a thread wrote before `set()` is
    /// visible to the thread its `wait()` released.
    #[test]
    fn a_token_passed_round_a_ring_of_events_is_never_lost() {
        use crate::testing::Unsynced;
        const THREADS: usize = 3;
        const ROUNDS: usize = 300;
        let events: Arc<Vec<Shared<Event>>> = Arc::new(
            (0..THREADS)
                .map(|_| Shared::<Event>::create(0, |_| {}).unwrap())
                .collect(),
        );
        let passes = Arc::new(Unsynced::new(0usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|me| {
                let (events, passes) = (Arc::clone(&events), Arc::clone(&passes));
                crate::testing::spawn(move || {
                    for _ in 0..ROUNDS {
                        assert_eq!(events[me].wait(&mut Plain, crate::testing::patience()), Ok(true));
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

    /// Threads take turns through a condition and a lock in shared memory: each waits for its
    /// turn and wakes the others after taking it. A lost wake-up leaves a thread asleep until
    /// the patience runs out.
    #[test]
    fn condition_turns_pass_between_threads_without_lost_wakeups() {
        use crate::testing::Unsynced;
        const THREADS: usize = 3;
        const TURNS: usize = 200;
        let lock = Arc::new(Shared::<RobustLock>::create(0, |_| {}).unwrap());
        let cond = Arc::new(Shared::<Condition>::create(0, |_| {}).unwrap());
        let turn = Arc::new(Unsynced::new(0usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|me| {
                let (lock, cond, turn) = (Arc::clone(&lock), Arc::clone(&cond), Arc::clone(&turn));
                crate::testing::spawn(move || {
                    let take = || lock.lock(&mut Plain, crate::testing::patience()).unwrap().unwrap();
                    for _ in 0..TURNS {
                        take();
                        // Safety (both reads and the update): the lock is held.
                        while unsafe { turn.with(|t| *t % THREADS) } != me {
                            let token = cond.prepare();
                            lock.unlock().unwrap();
                            assert_eq!(cond.sleep(&mut Plain, token, crate::testing::patience()), Ok(true));
                            take();
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
        assert_eq!(unsafe { turn.with(|t| *t) }, THREADS * TURNS);
        assert_eq!(cond.waiters(), 0);
    }

    /// The same threads pass the barrier generation after generation: nobody passes before every
    /// party arrived, and each generation hands out each index once.
    #[test]
    fn barrier_keeps_the_same_parties_in_step() {
        const PARTIES: u32 = 3;
        const ROUNDS: usize = 200;
        let b = Arc::new(Shared::<Barrier>::create(0, |b| b.init(PARTIES)).unwrap());
        let arrived: Arc<Vec<AtomicU32>> = Arc::new((0..ROUNDS).map(|_| AtomicU32::new(0)).collect());
        let indices: Arc<Vec<AtomicU32>> = Arc::new((0..ROUNDS).map(|_| AtomicU32::new(0)).collect());
        let threads: Vec<_> = (0..PARTIES)
            .map(|_| {
                let (b, arrived, indices) = (Arc::clone(&b), Arc::clone(&arrived), Arc::clone(&indices));
                crate::testing::spawn(move || {
                    for (count, seen) in arrived.iter().zip(indices.iter()) {
                        count.fetch_add(1, Ordering::SeqCst);
                        let index = b.wait(&mut Plain, crate::testing::patience()).unwrap();
                        assert_eq!(count.load(Ordering::SeqCst), PARTIES, "passed before all arrived");
                        let bit = 1 << index;
                        assert_eq!(seen.fetch_or(bit, Ordering::SeqCst) & bit, 0, "index {index} twice");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(indices.iter().all(|s| s.load(Ordering::SeqCst) == (1 << PARTIES) - 1));
        assert!(!b.broken());
    }
}
