//! Futex wait and wake on words in *shared* mappings.
//!
//! The operations are the process-shared ones (no `FUTEX_PRIVATE_FLAG`): the kernel keys a
//! waiter by the page and offset of the word, so a process waiting on a word in a `memfd`
//! segment is woken by a `wake` from any other process that maps the same segment, wherever it
//! is mapped. Waits are bounded by an optional deadline; a signal (`EINTR`) or a spurious wake
//! simply returns, and callers re-check their condition in a loop.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::block::{expired, next_deadline, Blocker, Interrupted};

/// How a [`wait`] ended. Every outcome means "re-check the condition".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// Woken by [`wake`], or the word no longer held `expected` (`EAGAIN`), or a signal arrived.
    Maybe,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `word` holds `expected`, until woken, a signal, or `until`.
#[must_use = "re-check the awaited condition"]
pub fn wait(word: &AtomicU32, expected: u32, until: Option<Instant>) -> Woke {
    let timeout = match until {
        None => None,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Woke::TimedOut;
            }
            Some(libc::timespec {
                tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(left.subsec_nanos()),
            })
        }
    };
    let ts = timeout.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // Safety: FUTEX_WAIT reads the aligned u32 behind `word` (valid for the call) and an
    // optional relative timespec that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
        Woke::TimedOut
    } else {
        Woke::Maybe
    }
}

/// Wakes up to `n` waiters of `word` (in any process); returns how many were woken.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    // Safety: FUTEX_WAKE only uses the address of `word` as a key.
    let rc = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    usize::try_from(rc).unwrap_or(0)
}

/// Wakes every waiter of `word`.
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, u32::MAX)
}

/// Spins on `ready` for a moment, then sleeps on `word` until `ready()` holds, `deadline`
/// passes (returns `Ok(false)`) or the blocker reports an interrupt.
///
/// The protocol with the waker: a waiter raises the `sleepers` flag, reads `word`, re-checks
/// `ready()` and sleeps only if `word` is unchanged; a waker changes the state that `ready()`
/// reads, then (all with sequentially consistent ordering) clears the flag and, if it was
/// raised, bumps `word` and wakes every sleeper (see [`notify`]); sleepers that find nothing
/// for them raise the flag again. Either the waiter sees the new state or the waker sees the
/// flag. A flag rather than a count, so a waiter killed in its sleep costs one wasted wake, not
/// a system call on every later notify. A deadline already past skips the spin.
///
/// # Errors
/// [`Interrupted`] when the blocker asked to stop.
pub fn wait_until<B: Blocker>(
    blocker: &mut B,
    deadline: Option<Instant>,
    word: &AtomicU32,
    sleepers: &AtomicU32,
    mut ready: impl FnMut() -> bool + Send,
) -> Result<bool, Interrupted> {
    let spins = if expired(deadline) { 0 } else { SPINS };
    for i in 0..spins {
        if ready() {
            return Ok(true);
        }
        if i % 16 == 15 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    loop {
        if ready() {
            return Ok(true);
        }
        if expired(deadline) {
            return Ok(false);
        }
        sleepers.store(1, Ordering::SeqCst);
        let seen = word.load(Ordering::SeqCst);
        if ready() {
            // The flag stays raised: at worst one later notify wakes nobody.
            return Ok(true);
        }
        let until = next_deadline(deadline, blocker.slice());
        blocker.block(|| wait(word, seen, until));
        if blocker.interrupted() {
            return Err(Interrupted);
        }
    }
}

/// The waker's half of [`wait_until`]: call after changing the awaited state (with a
/// sequentially consistent store or read-modify-write).
pub fn notify(word: &AtomicU32, sleepers: &AtomicU32) {
    if sleepers.load(Ordering::SeqCst) != 0 && sleepers.swap(0, Ordering::SeqCst) != 0 {
        word.fetch_add(1, Ordering::SeqCst);
        wake_all(word);
    }
}

/// Polls of the awaited condition before a waiter sleeps: a message or a lock hand-off between
/// two busy processes usually arrives within these few microseconds, and a futex round trip
/// costs more than that.
const SPINS: u32 = 200;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn wait_returns_at_once_when_the_word_differs() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None), Woke::Maybe);
    }

    #[test]
    fn a_dead_sleeper_costs_one_wake_not_one_per_notify() {
        let (word, sleepers) = (AtomicU32::new(0), AtomicU32::new(1)); // raised by a waiter since killed
        notify(&word, &sleepers);
        assert_eq!((word.load(Ordering::SeqCst), sleepers.load(Ordering::SeqCst)), (1, 0));
        notify(&word, &sleepers);
        assert_eq!(word.load(Ordering::SeqCst), 1, "no sleeper left: no wake");
    }

    #[test]
    fn wait_until_is_woken_by_notify_and_times_out_otherwise() {
        use crate::block::Plain;
        let (word, sleepers, ready) = (
            AtomicU32::new(0),
            AtomicU32::new(0),
            std::sync::atomic::AtomicBool::new(false),
        );
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(
            wait_until(&mut Plain, soon, &word, &sleepers, || ready.load(Ordering::SeqCst)),
            Ok(false)
        );
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                wait_until(&mut Plain, crate::testing::patience(), &word, &sleepers, || {
                    ready.load(Ordering::SeqCst)
                })
            });
            ready.store(true, Ordering::SeqCst);
            notify(&word, &sleepers);
            assert_eq!(t.join().unwrap(), Ok(true));
        });
    }

    #[test]
    fn wait_times_out() {
        let w = AtomicU32::new(0);
        assert_eq!(
            wait(&w, 0, Some(Instant::now() + Duration::from_millis(5))),
            Woke::TimedOut
        );
        assert_eq!(wait(&w, 0, Some(Instant::now())), Woke::TimedOut);
    }

    #[test]
    #[allow(clippy::cast_ptr_alignment, reason = "mappings are page aligned")]
    fn wake_reaches_a_waiter_through_a_second_mapping() {
        let seg = crate::ipc::shm::Segment::create(4096).unwrap();
        let other = crate::ipc::shm::Segment::open(seg.fd().unwrap().try_clone().unwrap(), false).unwrap();
        // Safety: both mappings are 4096 bytes, page aligned; u32 atomics at offset 0.
        let (a, b) = unsafe {
            (
                &*seg.as_ptr().unwrap().cast::<AtomicU32>(),
                &*other.as_ptr().unwrap().cast::<AtomicU32>(),
            )
        };
        assert_ne!(std::ptr::from_ref(a), std::ptr::from_ref(b));
        let other = Arc::new(other);
        let waiter = {
            let other = Arc::clone(&other);
            crate::testing::spawn(move || {
                // Safety: as above; `other` keeps the mapping alive.
                let b = unsafe { &*other.as_ptr().unwrap().cast::<AtomicU32>() };
                while b.load(Ordering::SeqCst) == 0 {
                    let _ = wait(b, 0, Some(Instant::now() + Duration::from_secs(10)));
                }
            })
        };
        a.store(1, Ordering::SeqCst);
        wake_all(a);
        waiter.join().unwrap();
    }
}
