//! A robust process-shared lock: a futex word holding the owner's pid.
//!
//! The word is 0 when free, else the holder's pid (30 bits) with [`WAITERS`] set once some
//! process sleeps on it. Beside it, `owner` records the holder's pid and start time (see
//! [`crate::ipc::process::key`]) so a pid reused after the holder died is not taken for it.
//!
//! An acquirer that finds the lock held checks, before it first sleeps and each time a sleep
//! ends without a wake (at least every [`LIVENESS_CHECK`]), whether the holder still lives. If
//! it died (killed, crashed, exited without releasing), the acquirer takes the lock over with
//! one compare-and-swap on the word and is told [`Acquired::OwnerDied`]: exactly one process
//! learns that the data the lock protects may be half-updated, as with a pthread robust mutex's
//! `EOWNERDEAD`. A lock held by another thread of the same process is never taken over.
//!
//! The lock is not recursive and not owned by a thread: any thread of any process may release
//! it (as `threading.Lock` and `multiprocessing.Lock`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::block::{Blocker, Interrupted};
use crate::ipc::{futex, process};

/// Set in the word while some process may be sleeping on it.
pub const WAITERS: u32 = 1 << 31;
/// The holder's pid (Linux pids are below 2^22).
pub const PID_MASK: u32 = (1 << 30) - 1;
/// Longest sleep between two checks of whether the holder still lives.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(50);

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// From a live holder, or free.
    Clean,
    /// Taken over from a holder that died holding it: the protected state may be inconsistent.
    OwnerDied,
}

/// The lock's words, laid out in shared memory (`#[repr(C)]`, all zero = free).
#[repr(C)]
#[derive(Debug, Default)]
pub struct RobustLock {
    word: AtomicU32,
    _pad: u32,
    owner: AtomicU64,
}

pub use crate::error::NotLocked;

impl RobustLock {
    /// Takes the lock if it is free or its holder died; never sleeps.
    pub fn try_lock(&self) -> Option<Acquired> {
        let me = process::pid();
        if self
            .word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.owner.store(process::key(), Ordering::Relaxed);
            return Some(Acquired::Clean);
        }
        let v = self.word.load(Ordering::Relaxed);
        if v & PID_MASK == 0 {
            return self
                .word
                .compare_exchange(v, me | (v & WAITERS), Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
                .then(|| {
                    self.owner.store(process::key(), Ordering::Relaxed);
                    Acquired::Clean
                });
        }
        self.take_over_if_dead(v)
    }

    /// Whether the lock is held (by anyone).
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & PID_MASK != 0
    }

    /// The holder's pid, if held.
    pub fn holder(&self) -> Option<u32> {
        Some(self.word.load(Ordering::Relaxed) & PID_MASK).filter(|&p| p != 0)
    }

    /// If `seen` (a value of the word) names a dead holder, takes the lock over.
    fn take_over_if_dead(&self, seen: u32) -> Option<Acquired> {
        let pid = seen & PID_MASK;
        if pid == 0 || pid == process::pid() {
            return None;
        }
        let owner = self.owner.load(Ordering::Relaxed);
        // The start time beside the word belongs to this holder only if it names the same pid
        // (the holder may have died between taking the word and recording itself).
        let start = if owner as u32 == pid { (owner >> 32) as u32 } else { 0 };
        if process::is_alive(pid, start) {
            return None;
        }
        let me = process::pid();
        self.word
            .compare_exchange(seen, me | (seen & WAITERS), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            .then(|| {
                self.owner.store(process::key(), Ordering::Relaxed);
                Acquired::OwnerDied
            })
    }

    /// Takes the lock, sleeping until it is free, its holder is found dead, or `deadline`
    /// (`Ok(None)`).
    ///
    /// # Errors
    /// [`Interrupted`] when the blocker asked to stop.
    pub fn lock<B: Blocker>(
        &self,
        blocker: &mut B,
        deadline: Option<Instant>,
    ) -> Result<Option<Acquired>, Interrupted> {
        let me = process::pid();
        if self
            .word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.owner.store(process::key(), Ordering::Relaxed);
            return Ok(Some(Acquired::Clean));
        }
        // A short spin: a holder in another process usually releases within microseconds.
        for _ in 0..100 {
            std::hint::spin_loop();
            if self.word.load(Ordering::Relaxed) == 0
                && self
                    .word
                    .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                self.owner.store(process::key(), Ordering::Relaxed);
                return Ok(Some(Acquired::Clean));
            }
        }
        let mut check_owner = true;
        loop {
            let v = self.word.load(Ordering::Relaxed);
            if v & PID_MASK == 0 {
                // Others may sleep too: keep the flag so our release wakes them.
                if self
                    .word
                    .compare_exchange(v, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.owner.store(process::key(), Ordering::Relaxed);
                    return Ok(Some(Acquired::Clean));
                }
                continue;
            }
            if check_owner {
                if let Some(a) = self.take_over_if_dead(v) {
                    return Ok(Some(a));
                }
            }
            if crate::block::expired(deadline) {
                return Ok(None);
            }
            if v & WAITERS == 0
                && self
                    .word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let mut until = crate::block::next_deadline(deadline, blocker.slice());
            let cap = Instant::now() + LIVENESS_CHECK;
            until = Some(until.map_or(cap, |u| u.min(cap)));
            let woke = blocker.block(|| futex::wait(&self.word, v | WAITERS, until));
            check_owner = woke == futex::Woke::TimedOut;
            if blocker.interrupted() {
                return Err(Interrupted);
            }
        }
    }

    /// Releases the lock (held by any thread of any process).
    ///
    /// # Errors
    /// [`NotLocked`] if it was free.
    pub fn unlock(&self) -> Result<(), NotLocked> {
        let v = self.word.swap(0, Ordering::Release);
        if v & PID_MASK == 0 {
            return Err(NotLocked);
        }
        if v & WAITERS != 0 {
            futex::wake(&self.word, 1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Plain;

    #[test]
    fn lock_unlock_and_misuse() {
        let l = RobustLock::default();
        assert_eq!(l.try_lock(), Some(Acquired::Clean));
        assert!(l.is_locked());
        assert_eq!(l.holder(), Some(process::pid()));
        assert_eq!(l.try_lock(), None); // held by this process: never taken over
        let soon = Some(Instant::now() + Duration::from_millis(20));
        assert_eq!(l.lock(&mut Plain, soon), Ok(None));
        l.unlock().unwrap();
        assert_eq!(l.unlock(), Err(NotLocked));
        assert_eq!(
            l.lock(&mut Plain, crate::testing::patience()),
            Ok(Some(Acquired::Clean))
        );
        l.unlock().unwrap();
    }

    #[test]
    fn a_dead_holder_is_taken_over_once() {
        let l = RobustLock::default();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        // As if the child had taken the lock and died (with a sleeper flagged).
        l.word.store(dead | WAITERS, Ordering::SeqCst);
        l.owner.store(u64::from(dead), Ordering::SeqCst);
        assert_eq!(
            l.lock(&mut Plain, crate::testing::patience()),
            Ok(Some(Acquired::OwnerDied))
        );
        assert_eq!(l.holder(), Some(process::pid()));
        assert_eq!(l.try_lock(), None);
        l.unlock().unwrap();
        assert_eq!(l.try_lock(), Some(Acquired::Clean));
        l.unlock().unwrap();
    }

    #[test]
    fn threads_exclude_each_other() {
        use std::sync::Arc;
        let l = Arc::new(RobustLock::default());
        let counter = Arc::new(crate::testing::Unsynced::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (l, counter) = (Arc::clone(&l), Arc::clone(&counter));
                crate::testing::spawn(move || {
                    for _ in 0..2000 {
                        l.lock(&mut Plain, crate::testing::patience()).unwrap().unwrap();
                        // A plain read-modify-write, protected by the lock (see `Unsynced`).
                        // Safety: the lock is held.
                        unsafe { counter.with(|c| *c += 1) };
                        l.unlock().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Safety: every thread that touched it was joined.
        assert_eq!(unsafe { counter.with(|c| *c) }, 8000);
    }
}
