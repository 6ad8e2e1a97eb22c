//! Blocking from Python: [`PyBlocker`] detaches from the interpreter around every wait and, in the
//! main thread, wakes every 50 ms to run signal handlers so Ctrl-C interrupts any wait. Also the
//! timeout conventions of `threading` (`-1` = forever) and `queue` (`None` = forever).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plait_core::block::Blocker;
pub use plait_core::queue::Wait;
use plait_core::sync::deadlock::{self, Resource, WaitGuard};
use plait_core::thread;
use pyo3::exceptions::{PyKeyboardInterrupt, PyOverflowError, PyValueError};
use pyo3::prelude::*;

/// The thread that runs Python's signal handlers; 0 until known (see [`main_thread`]).
static MAIN_THREAD: AtomicU64 = AtomicU64::new(0);

/// `threading.TIMEOUT_MAX` on 64-bit Linux.
pub const TIMEOUT_MAX: f64 = 9_223_372_036.0;

/// How often the main thread wakes from a wait to run signal handlers.
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// How often a thread that plait keeps waiting in Rust (a pool's idle worker, the process pool's
/// completer) runs its pending work on a free-threaded build (see [`run_pending`]).
pub const PENDING_SLICE: Duration = Duration::from_millis(100);

/// Runs the calling thread's pending interpreter work.
///
/// On a free-threaded build each object is owned by the thread that made it, and when another
/// thread drops the last reference the object is queued for its owner to free (biased reference
/// counting); the owner does that the next time it runs Python code. A thread that plait keeps
/// waiting in Rust never would, so what it made (a pool's results, their shared-memory segments)
/// would stay alive until a garbage collection, and each collection frees only one level of a
/// nested object. Calling a Python function that does nothing runs that work: its first
/// instruction checks the thread's pending events. With the GIL, this does nothing.
///
/// # Errors
/// What the pending work raised (an asynchronous exception set on this thread).
#[allow(
    clippy::unnecessary_wraps,
    reason = "only a free-threaded build runs Python code here"
)]
pub fn run_pending(py: Python<'_>) -> PyResult<()> {
    #[cfg(Py_GIL_DISABLED)]
    {
        static NOOP: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
        let noop = NOOP.get_or_try_init(py, || py.eval(c"lambda: None", None, None).map(Bound::unbind))?;
        noop.bind(py).call0()?;
    }
    let _ = py;
    Ok(())
}

/// A [`Blocker`] for calls from Python; see the module docs.
pub struct PyBlocker<'py, 'r> {
    py: Python<'py>,
    main: bool,
    /// Whether `interrupted` runs signal handlers (false for waits that must complete).
    signals: bool,
    err: Option<PyErr>,
    /// Recorded as this thread's wait (for `dump()`) the first time the call really sleeps.
    wait_on: Option<(&'r Arc<dyn Resource>, bool)>,
    guard: Option<WaitGuard>,
    /// Whether to wake now and then to run this thread's pending work ([`run_pending`]).
    pending: bool,
}

impl<'py, 'r> PyBlocker<'py, 'r> {
    /// A blocker for the calling thread.
    pub fn new(py: Python<'py>) -> Self {
        Self {
            py,
            main: thread::current() == main_thread(py),
            signals: true,
            err: None,
            wait_on: None,
            guard: None,
            pending: false,
        }
    }

    /// A blocker that records the wait on `resource` when it first sleeps (for reports);
    /// `timed` says whether the wait has a deadline.
    pub fn waiting_on(py: Python<'py>, resource: &'r Arc<dyn Resource>, timed: bool) -> Self {
        let mut b = Self::new(py);
        if deadlock::mode() != deadlock::Mode::Off {
            b.wait_on = Some((resource, timed));
        }
        b
    }

    /// A blocker that never wakes for signals and never runs their handlers (for waits that must
    /// complete, such as re-taking a condition's lock): a core loop that polls
    /// [`Blocker::interrupted`] for its own reasons (a lock checking its holder's liveness) is
    /// never told to stop. Signals that arrive meanwhile stay pending and their handlers run
    /// once the caller is back in Python.
    pub fn uninterruptible(py: Python<'py>) -> Self {
        let mut b = Self::new(py);
        b.main = false;
        b.signals = false;
        b
    }

    /// The blocker of a thread plait keeps waiting between jobs (a pool's idle worker): like
    /// [`PyBlocker::uninterruptible`], and on a free-threaded build it wakes every
    /// [`PENDING_SLICE`] to free what other threads dropped ([`run_pending`]).
    pub fn idle_worker(py: Python<'py>) -> Self {
        let mut b = Self::uninterruptible(py);
        b.pending = cfg!(Py_GIL_DISABLED);
        b
    }

    /// The error that interrupted the wait (`KeyboardInterrupt` if the handler left none).
    pub fn take_err(&mut self) -> PyErr {
        self.err
            .take()
            .unwrap_or_else(|| PyKeyboardInterrupt::new_err("wait interrupted"))
    }
}

impl Blocker for PyBlocker<'_, '_> {
    fn block<R: Send, F: FnOnce() -> R + Send>(&mut self, f: F) -> R {
        if let Some((resource, timed)) = self.wait_on.take() {
            let (guard, _) = deadlock::begin_wait(thread::current(), Arc::clone(resource), timed);
            self.guard = Some(guard);
        }
        self.py.detach(f)
    }

    fn slice(&self) -> Option<Duration> {
        if self.main {
            Some(SIGNAL_SLICE)
        } else {
            self.pending.then_some(PENDING_SLICE)
        }
    }

    fn interrupted(&mut self) -> bool {
        if self.pending {
            if let Err(e) = run_pending(self.py) {
                e.write_unraisable(self.py, None);
            }
        }
        if !self.signals {
            return false;
        }
        match self.py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                self.err = Some(e);
                true
            }
        }
    }
}

/// Records which thread runs Python's signal handlers (the main thread; after `fork()`, the
/// thread that forked).
pub fn set_main_thread(thread: u64) {
    MAIN_THREAD.store(thread, Ordering::Relaxed);
}

/// `Instant::now() + secs`, or `None` (forever) when that is beyond the clock's range.
pub fn deadline_after(secs: f64) -> Option<Instant> {
    let secs = secs.max(0.0);
    Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| Instant::now().checked_add(d))
}

/// Parses `threading`-style `(blocking, timeout)` (`-1` = forever).
///
/// # Errors
/// `ValueError` for a timeout on a non-blocking call or a negative timeout other than -1;
/// `OverflowError` above `TIMEOUT_MAX`.
#[allow(clippy::float_cmp, reason = "-1 is threading's exact sentinel for 'no timeout'")]
pub fn lock_deadline(blocking: bool, timeout: f64) -> PyResult<Wait> {
    if !blocking {
        if timeout != -1.0 {
            return Err(PyValueError::new_err("can't specify a timeout for a non-blocking call"));
        }
        return Ok(Wait::No);
    }
    if timeout == -1.0 {
        return Ok(Wait::Until(None));
    }
    if timeout == 0.0 {
        // Nothing to wait for: a try, which takes no part in deadlock detection.
        return Ok(Wait::No);
    }
    if timeout < 0.0 || timeout.is_nan() {
        return Err(PyValueError::new_err("timeout value must be a non-negative number"));
    }
    if timeout > TIMEOUT_MAX {
        return Err(PyOverflowError::new_err("timeout value is too large"));
    }
    Ok(Wait::Until(deadline_after(timeout)))
}

/// Parses an optional timeout in seconds where `None` means forever and a negative value means
/// "do not wait" (`threading.Event.wait`, `Condition.wait`, `Semaphore.acquire`).
pub fn optional_deadline(timeout: Option<f64>) -> Option<Instant> {
    timeout.map(|t| deadline_after(t).unwrap_or_else(far_future))
}

/// An instant so far ahead that it never comes (for timeouts beyond the clock's range).
pub fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// Whether the object is truthy, with a fast path for `None` (default: `default`).
pub fn truthy(obj: Option<&Bound<'_, PyAny>>, default: bool) -> PyResult<bool> {
    match obj {
        None => Ok(default),
        Some(o) => o.is_truthy(),
    }
}

/// The main thread's id: `threading.main_thread().ident`, asked the first time it is needed
/// (a blocking wait), so that `import plait` does not import `threading`; 0 if `threading` cannot
/// say (the caller is then not taken for the main thread, and asks again next time).
fn main_thread(py: Python<'_>) -> u64 {
    let known = MAIN_THREAD.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    let asked = py
        .import("threading")
        .and_then(|t| t.call_method0("main_thread")?.getattr("ident")?.extract::<u64>())
        .unwrap_or(0);
    // A `set_main_thread` after a fork may have won the race: keep its answer.
    match MAIN_THREAD.compare_exchange(0, asked, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => asked,
        Err(current) => current,
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // `threading` is imported by the first blocking wait (see `main_thread`), not here.
    m.add("TIMEOUT_MAX", TIMEOUT_MAX)?;
    Ok(())
}
