//! Helpers for the core's tests (compiled for tests only), so that no test depends on how the
//! threads are scheduled:
//!
//! - [`Announce`]: a blocker that tells the test when its thread is about to sleep, so the test
//!   acts on a waiter that is really waiting instead of sleeping "long enough" first;
//! - [`patience`]: the deadline for waits that a correct program always ends (a wake-up that
//!   must come): far beyond what a loaded machine needs, so reaching it is a lost wake-up,
//!   reported as a failure of the test (with its name) instead of a hang;
//! - [`spin_until`]: waits for a condition another thread makes true, failing the test if that
//!   thread ended (panicked) first or the patience ran out;
//! - [`spawn`]: `std::thread::spawn` with a thread named after the test, so a panic in a helper
//!   thread names the test it belongs to even when the test itself is stuck elsewhere;
//! - [`Unsynced`]: data that the primitive under test must order, so the thread sanitizer (`make
//!   tsan`) checks the primitive's acquire and release, not only its counts.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::block::Blocker;

/// Spawns a helper thread named `<test name>/helper` (the harness names each test's thread after
/// the test).
///
/// # Panics
/// When the thread cannot be created.
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let test = std::thread::current().name().unwrap_or("test").to_owned();
    std::thread::Builder::new()
        .name(format!("{test}/helper"))
        .spawn(f)
        .expect("spawn a test thread")
}

/// The longest a test waits for something that must happen.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A deadline [`PATIENCE`] from now.
#[allow(clippy::unnecessary_wraps, reason = "the primitives take an optional deadline")]
pub fn patience() -> Option<Instant> {
    Some(Instant::now() + PATIENCE)
}

/// Waits until `done()` holds. Fails the test if `thread` (the one expected to make it hold)
/// ended first, or after [`PATIENCE`].
pub fn spin_until<T>(thread: &JoinHandle<T>, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(!thread.is_finished(), "the other thread ended before {what}");
        assert!(Instant::now() < deadline, "{what} did not happen within {PATIENCE:?}");
        std::thread::yield_now();
    }
}

/// A blocker (otherwise like [`Plain`](crate::block::Plain)) that records that its thread went
/// to sleep; clones share the record.
#[derive(Debug, Clone, Default)]
pub struct Announce(Arc<AtomicBool>);

impl Announce {
    /// Waits until the thread using this blocker is about to sleep (see [`spin_until`]).
    pub fn wait_asleep<T>(&self, thread: &JoinHandle<T>) {
        spin_until(thread, "the waiter slept", || self.0.load(Ordering::SeqCst));
    }
}

impl Blocker for Announce {
    fn block<R: Send, F: FnOnce() -> R + Send>(&mut self, f: F) -> R {
        self.0.store(true, Ordering::SeqCst);
        f()
    }

    fn slice(&self) -> Option<Duration> {
        None
    }

    fn interrupted(&mut self) -> bool {
        false
    }
}

/// A value with no synchronisation of its own, shared by threads that take turns through the
/// primitive under test (a lock, a token passed through events, ...). Its accesses are plain
/// memory accesses: a lost update shows a broken exclusion, and the thread sanitizer reports an
/// access that the primitive failed to order (a missing acquire or release), which a counter
/// made of atomics would hide.
#[derive(Debug, Default)]
pub struct Unsynced<T>(UnsafeCell<T>);

// Safety: the value is only reached through `Unsynced::with`, whose callers guarantee that no
// other thread accesses it at the same time.
unsafe impl<T: Send> Sync for Unsynced<T> {}

impl<T> Unsynced<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// Runs `f` on the value.
    ///
    /// # Safety
    /// Every other access to the value happens before or after this call, ordered by the
    /// primitive under test (or by joining the threads that made them).
    pub unsafe fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // Safety: exclusive for the duration of the call, per the contract.
        f(unsafe { &mut *self.0.get() })
    }
}
