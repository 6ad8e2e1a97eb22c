//! [`Lock`] and [`RLock`]: `threading.Lock` and `threading.RLock` semantics with owner tracking.
//!
//! The owner is recorded with a relaxed store after the lock is taken; the deadlock detector only
//! reads it, and treats a momentarily missing owner as "no holder", which can hide a deadlock for an
//! instant but never invent one.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::deadlock::{next_id, Resource};
use super::raw::RawLock;
use super::SyncError;
use crate::block::{wait_loop, Blocker};
use crate::thread::ThreadId;

/// A non-reentrant lock that any thread may release, like `threading.Lock`.
#[derive(Debug)]
pub struct Lock {
    raw: RawLock,
    owner: AtomicU64,
    /// Set once a thread other than the owner released the lock: from then on it is used as a
    /// signal and ownership means nothing, so deadlock detection ignores it.
    signal_style: AtomicBool,
    id: u64,
    name: Option<Box<str>>,
}

impl Lock {
    /// A new unlocked lock with an optional name for reports.
    #[must_use]
    pub fn new(name: Option<String>) -> Self {
        Self {
            raw: RawLock::new(),
            owner: AtomicU64::new(0),
            signal_style: AtomicBool::new(false),
            id: next_id(),
            name: name.map(String::into_boxed_str),
        }
    }

    /// Takes the lock if free.
    #[inline]
    pub fn try_acquire(&self, me: ThreadId) -> bool {
        if self.raw.try_lock() {
            self.owner.store(me, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Takes the lock if it becomes free within a short spin, without sleeping (see
    /// [`RawLock::try_lock_spinning`]).
    pub fn try_acquire_spinning(&self, me: ThreadId) -> bool {
        if self.raw.try_lock_spinning() {
            self.owner.store(me, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Waits for the lock until `deadline`; returns whether it was taken.
    ///
    /// # Errors
    /// [`SyncError::Interrupted`] when the blocker abandons the wait.
    pub fn acquire_slow<B: Blocker>(
        &self,
        me: ThreadId,
        deadline: Option<Instant>,
        blocker: &mut B,
    ) -> Result<bool, SyncError> {
        let got = wait_loop(blocker, deadline, |until| self.raw.lock_until(until))?;
        if got {
            self.owner.store(me, Ordering::Relaxed);
        }
        Ok(got)
    }

    /// Releases the lock (from any thread).
    ///
    /// # Errors
    /// [`SyncError::NotLocked`] when it was not locked.
    #[inline]
    pub fn release(&self, me: ThreadId) -> Result<(), SyncError> {
        if !self.raw.is_locked() {
            return Err(SyncError::NotLocked);
        }
        // A load and a store, not a swap: the owner is only read by reports, and a plain store
        // spares a locked instruction on every release.
        let owner = self.owner.load(Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
        if owner != me {
            self.signal_style.store(true, Ordering::Relaxed);
        }
        self.raw.unlock().map_err(|_| SyncError::NotLocked)
    }

    /// Whether the lock is held.
    #[inline]
    pub fn locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The thread that acquired it (0 when unlocked).
    #[inline]
    pub fn owner(&self) -> ThreadId {
        self.owner.load(Ordering::Relaxed)
    }

    /// Resets to unlocked without waking anyone: for the child after `fork()`.
    pub fn reset_after_fork(&self) {
        self.owner.store(0, Ordering::Relaxed);
        self.raw.reset();
    }
}

impl Resource for Lock {
    fn id(&self) -> u64 {
        self.id
    }
    fn kind(&self) -> &'static str {
        "Lock"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn holders(&self, out: &mut Vec<ThreadId>) {
        if self.signal_style.load(Ordering::Relaxed) || !self.raw.is_locked() {
            return;
        }
        let owner = self.owner();
        if owner != 0 {
            out.push(owner);
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A reentrant lock owned by one thread at a time, like `threading.RLock`.
#[derive(Debug)]
pub struct RLock {
    raw: RawLock,
    owner: AtomicU64,
    /// Recursion depth; only the owner reads or writes it.
    count: AtomicU64,
    id: u64,
    name: Option<Box<str>>,
}

/// What [`RLock::release_save`] returns and [`RLock::restore`] puts back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RLockState {
    /// Recursion depth at the time of saving.
    pub count: u64,
    /// Owner at the time of saving.
    pub owner: ThreadId,
}

impl RLock {
    /// A new unlocked reentrant lock.
    #[must_use]
    pub fn new(name: Option<String>) -> Self {
        Self {
            raw: RawLock::new(),
            owner: AtomicU64::new(0),
            count: AtomicU64::new(0),
            id: next_id(),
            name: name.map(String::into_boxed_str),
        }
    }

    /// Re-enters if `me` owns it, or takes it if free. Returns `Some(first)` on success where
    /// `first` says whether this was the outermost acquire, `None` if it must wait.
    #[inline]
    pub fn try_acquire(&self, me: ThreadId) -> Option<bool> {
        if self.owner.load(Ordering::Relaxed) == me {
            self.count.fetch_add(1, Ordering::Relaxed);
            return Some(false);
        }
        if self.raw.try_lock() {
            self.owner.store(me, Ordering::Relaxed);
            self.count.store(1, Ordering::Relaxed);
            return Some(true);
        }
        None
    }

    /// Takes the lock if it becomes free within a short spin, without sleeping (the caller does
    /// not own it; see [`RawLock::try_lock_spinning`]).
    pub fn try_acquire_spinning(&self, me: ThreadId) -> bool {
        if self.raw.try_lock_spinning() {
            self.owner.store(me, Ordering::Relaxed);
            self.count.store(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Waits until `deadline` for the lock (the caller does not own it).
    ///
    /// # Errors
    /// [`SyncError::Interrupted`] when the blocker abandons the wait.
    pub fn acquire_slow<B: Blocker>(
        &self,
        me: ThreadId,
        deadline: Option<Instant>,
        blocker: &mut B,
    ) -> Result<bool, SyncError> {
        let got = wait_loop(blocker, deadline, |until| self.raw.lock_until(until))?;
        if got {
            self.owner.store(me, Ordering::Relaxed);
            self.count.store(1, Ordering::Relaxed);
        }
        Ok(got)
    }

    /// Leaves one level; returns `true` when the lock became free.
    ///
    /// # Errors
    /// [`SyncError::NotOwned`] when `me` does not own it.
    #[inline]
    pub fn release(&self, me: ThreadId) -> Result<bool, SyncError> {
        if self.owner.load(Ordering::Relaxed) != me || me == 0 {
            return Err(SyncError::NotOwned);
        }
        if self.count.fetch_sub(1, Ordering::Relaxed) > 1 {
            return Ok(false);
        }
        self.owner.store(0, Ordering::Relaxed);
        self.raw.unlock().map_err(|_| SyncError::NotOwned)?;
        Ok(true)
    }

    /// Releases every level at once (for `Condition.wait`).
    ///
    /// # Errors
    /// [`SyncError::NotOwned`] when `me` does not own it.
    pub fn release_save(&self, me: ThreadId) -> Result<RLockState, SyncError> {
        if self.owner.load(Ordering::Relaxed) != me || me == 0 {
            return Err(SyncError::NotOwned);
        }
        let state = RLockState {
            count: self.count.swap(0, Ordering::Relaxed),
            owner: me,
        };
        self.owner.store(0, Ordering::Relaxed);
        self.raw.unlock().map_err(|_| SyncError::NotOwned)?;
        Ok(state)
    }

    /// Sets the recursion depth after re-taking the lock with [`RLock::try_acquire`] or
    /// [`RLock::acquire_slow`] (which leave it at 1).
    pub fn restore(&self, state: RLockState) {
        self.owner.store(state.owner, Ordering::Relaxed);
        self.count.store(state.count, Ordering::Relaxed);
    }

    /// Whether `me` owns the lock.
    #[inline]
    pub fn is_owned_by(&self, me: ThreadId) -> bool {
        self.owner.load(Ordering::Relaxed) == me
    }

    /// Recursion depth as seen by `me` (0 when another thread owns it).
    pub fn recursion_count(&self, me: ThreadId) -> u64 {
        if self.is_owned_by(me) {
            self.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Whether some thread holds the lock.
    pub fn locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The owning thread (0 when free).
    pub fn owner(&self) -> ThreadId {
        self.owner.load(Ordering::Relaxed)
    }

    /// Resets to unlocked: for the child after `fork()`.
    pub fn reset_after_fork(&self) {
        self.owner.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.raw.reset();
    }
}

impl Resource for RLock {
    fn id(&self) -> u64 {
        self.id
    }
    fn kind(&self) -> &'static str {
        "RLock"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn holders(&self, out: &mut Vec<ThreadId>) {
        let owner = self.owner();
        if owner != 0 && self.raw.is_locked() {
            out.push(owner);
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Plain;
    use crate::thread::current;

    #[test]
    fn lock_tracks_owner_and_cross_thread_release() {
        let lock = Lock::new(Some("db".into()));
        let me = current();
        assert!(lock.try_acquire(me));
        let mut h = vec![];
        lock.holders(&mut h);
        assert_eq!(h, vec![me]);
        assert_eq!(lock.label(), "Lock 'db'");
        assert_eq!(lock.release(me), Ok(()));
        assert_eq!(lock.release(me), Err(SyncError::NotLocked));
        assert!(lock.try_acquire(me));
        lock.release(me + 1).unwrap();
        assert!(lock.try_acquire(me));
        h.clear();
        lock.holders(&mut h);
        assert!(h.is_empty(), "a lock released by a non-owner is a signal: no holders");
    }

    #[test]
    fn rlock_recursion_and_save_restore() {
        let lock = RLock::new(None);
        let me = current();
        assert_eq!(lock.try_acquire(me), Some(true));
        assert_eq!(lock.try_acquire(me), Some(false));
        assert_eq!(lock.recursion_count(me), 2);
        assert_eq!(lock.release(me + 1), Err(SyncError::NotOwned));
        let saved = lock.release_save(me).unwrap();
        assert_eq!(saved.count, 2);
        assert!(!lock.locked());
        assert!(lock.acquire_slow(me, crate::testing::patience(), &mut Plain).unwrap());
        lock.restore(saved);
        assert_eq!(lock.release(me), Ok(false));
        assert_eq!(lock.release(me), Ok(true));
        assert_eq!(lock.release(me), Err(SyncError::NotOwned));
    }

    /// Several threads take the lock (the fast path, or the slow one when it is held) and
    /// update plain data under it.
    #[test]
    fn lock_excludes_threads_and_records_each_owner() {
        use crate::testing::Unsynced;
        use std::sync::Arc;
        let lock = Arc::new(Lock::new(None));
        let counter = Arc::new(Unsynced::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, counter) = (Arc::clone(&lock), Arc::clone(&counter));
                crate::testing::spawn(move || {
                    let me = current();
                    for _ in 0..2000 {
                        if !lock.try_acquire(me) {
                            assert!(lock.acquire_slow(me, crate::testing::patience(), &mut Plain).unwrap());
                        }
                        assert_eq!(lock.owner(), me);
                        // Safety: the lock is held.
                        unsafe { counter.with(|c| *c += 1) };
                        lock.release(me).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Safety: every thread that touched it was joined.
        assert_eq!(unsafe { counter.with(|c| *c) }, 8000);
        assert!(!lock.locked());
        assert!(lock.try_acquire(current()));
        let mut h = vec![];
        lock.holders(&mut h);
        assert_eq!(
            h,
            vec![current()],
            "only owners released it: it still tracks its holder"
        );
    }

    /// Several threads take the reentrant lock twice, and sometimes release every level at once
    /// and restore it (as `Condition.wait` does), updating plain data under it.
    #[test]
    fn rlock_excludes_threads_and_keeps_each_depth() {
        use crate::testing::Unsynced;
        use std::sync::Arc;
        let lock = Arc::new(RLock::new(None));
        let counter = Arc::new(Unsynced::new(0u64));
        let acquire = |lock: &RLock, me| {
            if lock.try_acquire(me).is_none() {
                assert!(lock.acquire_slow(me, crate::testing::patience(), &mut Plain).unwrap());
            }
        };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, counter) = (Arc::clone(&lock), Arc::clone(&counter));
                crate::testing::spawn(move || {
                    let me = current();
                    for i in 0..1000 {
                        acquire(&lock, me);
                        assert_eq!(lock.try_acquire(me), Some(false));
                        assert_eq!(lock.recursion_count(me), 2);
                        if i % 8 == 0 {
                            let saved = lock.release_save(me).unwrap();
                            assert_eq!(saved.count, 2);
                            acquire(&lock, me);
                            lock.restore(saved);
                        }
                        // Safety: the lock is held.
                        unsafe { counter.with(|c| *c += 1) };
                        assert_eq!(lock.release(me), Ok(false));
                        assert_eq!(lock.release(me), Ok(true));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Safety: every thread that touched it was joined.
        assert_eq!(unsafe { counter.with(|c| *c) }, 4000);
        assert!(!lock.locked());
        assert_eq!(lock.owner(), 0);
    }
}
