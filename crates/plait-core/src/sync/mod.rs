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

pub use crate::error::SyncError;
