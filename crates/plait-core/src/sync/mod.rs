//! Thread synchronisation primitives with the semantics of Python's `threading` module.
//!
//! Each primitive is a [`deadlock::Resource`], so blocking on it takes part in deadlock detection.
//! Blocking goes through a [`Blocker`](crate::block::Blocker) supplied by the caller.

pub mod barrier;
pub mod condition;
pub mod deadlock;
pub mod event;
pub mod lock;
pub mod notify;
pub mod raw;
pub mod semaphore;

pub use barrier::Barrier;
pub use condition::WaitQueue;
pub use event::Event;
pub use lock::{Lock, RLock};
pub use notify::Notifier;
pub use raw::RawLock;
pub use semaphore::Semaphore;

/// Errors from misusing a primitive; each maps to one Python exception in the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Releasing a `Lock` that is not locked (`RuntimeError` in Python).
    #[error("release unlocked lock")]
    NotLocked,
    /// Releasing an `RLock` the caller does not own (`RuntimeError`).
    #[error("cannot release un-acquired lock")]
    NotOwned,
    /// Releasing a bounded semaphore above its initial value (`ValueError`).
    #[error("Semaphore released too many times")]
    TooManyReleases,
    /// A count would exceed 64 bits (`OverflowError`).
    #[error("semaphore value would exceed 2**64 - 1")]
    Overflow,
    /// The barrier is broken (`threading.BrokenBarrierError`).
    #[error("barrier is broken")]
    BrokenBarrier,
    /// The wait was interrupted by the blocker (a pending signal in Python).
    #[error("wait interrupted")]
    Interrupted,
}

impl From<crate::block::Interrupted> for SyncError {
    fn from(_: crate::block::Interrupted) -> Self {
        Self::Interrupted
    }
}
