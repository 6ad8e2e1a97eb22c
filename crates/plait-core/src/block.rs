//! How a primitive blocks: the [`Blocker`] hook.
//!
//! Core algorithms never sleep directly. They hand every potentially long wait to a `Blocker`, which
//! decides how to block (the Python binding detaches from the interpreter first), how long one sleep
//! may last before the caller wants control back, and whether the wait must stop early (a signal
//! handler raised `KeyboardInterrupt`).

use std::time::{Duration, Instant};

/// Strategy for blocking waits; see the module docs.
pub trait Blocker {
    /// Runs `f`, which may block for a long time, in a state where blocking is allowed.
    fn block<R: Send, F: FnOnce() -> R + Send>(&mut self, f: F) -> R;

    /// Longest single sleep before [`Blocker::interrupted`] is consulted; `None` sleeps until the deadline.
    fn slice(&self) -> Option<Duration>;

    /// Called between sleeps; returning `true` abandons the wait with [`Interrupted`].
    fn interrupted(&mut self) -> bool;
}

pub use crate::error::Interrupted;

/// A blocker for plain Rust threads: sleeps straight to the deadline and is never interrupted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Plain;

impl Blocker for Plain {
    fn block<R: Send, F: FnOnce() -> R + Send>(&mut self, f: F) -> R {
        f()
    }

    fn slice(&self) -> Option<Duration> {
        None
    }

    fn interrupted(&mut self) -> bool {
        false
    }
}

/// The deadline of the next sleep: the overall `deadline`, cut short to one `slice` when the blocker
/// wants periodic control.
#[must_use]
pub fn next_deadline(deadline: Option<Instant>, slice: Option<Duration>) -> Option<Instant> {
    match (deadline, slice) {
        (d, None) => d,
        (None, Some(s)) => Some(Instant::now() + s),
        (Some(d), Some(s)) => Some(d.min(Instant::now() + s)),
    }
}

/// Whether `deadline` has passed.
#[must_use]
pub fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Repeats `attempt` (one bounded sleep) until it succeeds, the deadline passes, or the blocker
/// reports an interrupt.
///
/// `attempt` receives the deadline of one sleep and returns `true` when the awaited condition holds.
///
/// # Errors
/// [`Interrupted`] when the blocker asked to stop.
pub fn wait_loop<B: Blocker>(
    blocker: &mut B,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(Option<Instant>) -> bool + Send,
) -> Result<bool, Interrupted> {
    loop {
        let until = next_deadline(deadline, blocker.slice());
        if blocker.block(|| attempt(until)) {
            return Ok(true);
        }
        if expired(deadline) {
            return Ok(false);
        }
        if blocker.interrupted() {
            return Err(Interrupted);
        }
    }
}

/// Sleeps on `cv` (releasing `guard`'s mutex) until notified or `until`, then unlocks before
/// returning: the mutex is never held while the caller resumes, so a binding that must re-acquire
/// an interpreter lock after blocking cannot deadlock against a thread that holds that interpreter
/// lock and wants the mutex. Returns whether the sleep timed out; the caller re-locks.
pub fn sleep_unlocked<T: Send, B: Blocker>(
    cv: &parking_lot::Condvar,
    guard: parking_lot::MutexGuard<'_, T>,
    until: Option<Instant>,
    blocker: &mut B,
) -> bool {
    blocker.block(move || {
        let mut guard = guard;
        let timed_out = if let Some(d) = until {
            cv.wait_until(&mut guard, d).timed_out()
        } else {
            cv.wait(&mut guard);
            false
        };
        drop(guard);
        timed_out
    })
}

/// Locks `mutex`, blocking through `blocker` only while it is contended, and taking it only in
/// the caller's own state (for the binding: attached to the interpreter).
///
/// The blocking part only waits for the mutex to be free; the mutex is then taken with
/// `try_lock` after `block` returns. So a thread never holds one of these mutexes while it waits
/// to re-attach to the interpreter, and a thread that holds the interpreter can take the mutex
/// with a plain `lock()` without risking a deadlock. Holders that run interpreter code under the
/// mutex (a priority queue comparing items) are safe as long as every other taker uses this
/// function.
pub fn lock<'a, T: Send, B: Blocker>(
    mutex: &'a parking_lot::Mutex<T>,
    blocker: &mut B,
) -> parking_lot::MutexGuard<'a, T> {
    loop {
        if let Some(g) = mutex.try_lock() {
            return g;
        }
        blocker.block(|| drop(mutex.lock()));
    }
}
