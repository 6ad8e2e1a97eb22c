//! Deadlock and lock-order reports: acquisition sites, the deadlock check before a wait, and the
//! snapshot behind `plait.threads.dump()`. Messages are formatted in Python (the report formatter
//! handed down at import, see `errors::report`); this file gathers the data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plait_core::sync::deadlock::{self, Deadlock, Mode, Resource, Verdict, WaitGuard};
use plait_core::thread::{self, ThreadId};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::errors;
use crate::sync::tracked::{site_of, SiteCell, Tracked};

/// `(ident, label, kind, name, id, code, lasti)` for one resource held by `holder`.
fn resource_tuple<'py>(py: Python<'py>, res: &dyn Resource) -> PyResult<Bound<'py, PyTuple>> {
    let (code, lasti) = match site_of(res) {
        Some(site) => site.get(py),
        None => (py.None(), -1),
    };
    (res.label(), res.kind(), res.name(), res.id(), code, lasti).into_pyobject(py)
}

fn edge_list<'py>(py: Python<'py>, found: &Deadlock) -> PyResult<Bound<'py, PyList>> {
    let edges = PyList::empty(py);
    for edge in &found.edges {
        let res = resource_tuple(py, edge.waits_for.as_ref())?;
        edges.append((edge.thread, res, edge.holders.clone()))?;
    }
    Ok(edges)
}

fn deadlock_error<'py>(py: Python<'py>, found: &Deadlock) -> PyResult<Bound<'py, PyAny>> {
    errors::report(py)?.call_method1("deadlock_error", (edge_list(py, found)?, thread::current()))
}

/// What [`before_wait`] found: the recorded wait, and whether the caller re-acquires a `Lock` it
/// holds itself (then wait with [`wait_for_own_release`]).
pub struct Before {
    /// Unrecords the wait when dropped.
    #[allow(dead_code, reason = "held for its Drop, which unrecords the wait")]
    pub guard: WaitGuard,
    /// The caller waits, without a timeout, for a `Lock` it holds ([`Verdict::SelfWait`]).
    pub self_wait: bool,
}

/// Records that the caller is about to sleep on `resource` and checks for a deadlock. In raise
/// mode a deadlock becomes `DeadlockError`; in warn mode a `DeadlockWarning` is emitted and the
/// caller goes on to wait.
pub fn before_wait(py: Python<'_>, resource: Arc<dyn Resource>, timed: bool) -> PyResult<Before> {
    let mode = deadlock::mode();
    if mode == Mode::Off {
        return Ok(Before {
            guard: WaitGuard::none(),
            self_wait: false,
        });
    }
    let (guard, verdict) = deadlock::begin_wait(thread::current(), resource, timed);
    let found = match verdict {
        Verdict::Clear => {
            return Ok(Before {
                guard,
                self_wait: false,
            })
        }
        Verdict::SelfWait => return Ok(Before { guard, self_wait: true }),
        Verdict::Deadlock(found) => found,
    };
    let err = deadlock_error(py, &found)?;
    if mode == Mode::Raise {
        drop(guard);
        return Err(PyErr::from_value(err));
    }
    errors::report(py)?.call_method1("warn_deadlock", (err,))?;
    Ok(Before {
        guard,
        self_wait: false,
    })
}

/// Longest sleep between two checks of a self-wait (see [`wait_for_own_release`]).
const SELF_WAIT_MAX_CHECK: Duration = Duration::from_secs(1);

/// Waits for a `Lock` the caller holds itself to be released by another thread (the lock-as-signal
/// idiom), keeping an accidental self-deadlock loud. `attempt(until)` waits for the lock until
/// `until` and returns whether it was taken.
///
/// The wait is certainly a deadlock when no other thread can ever release the lock: every other
/// live thread has exited or is itself stuck behind the caller (`deadlock::self_wait_stuck`, fed
/// with the threads `plait._report.other_threads` lists; unknown threads count as able to
/// release). That is checked before the first sleep and again at growing intervals (up to 1 s),
/// since the other threads may exit meanwhile. When it holds, raise mode raises `DeadlockError`
/// and warn mode warns `DeadlockWarning` once and goes on waiting. When it cannot be decided and
/// the wait lasts longer than `deadlock::grace()`, `SelfDeadlockWarning` is emitted once with the
/// full report, and the wait goes on (still checked: the other threads may exit later).
///
/// # Errors
/// `DeadlockError`, a warning raised as an error, or what `attempt` returns.
pub fn wait_for_own_release(
    py: Python<'_>,
    resource: &Arc<dyn Resource>,
    mut attempt: impl FnMut(Option<Instant>) -> PyResult<bool>,
) -> PyResult<()> {
    let me = thread::current();
    let start = Instant::now();
    let mut interval = Duration::from_millis(50);
    let mut grace_warned = false;
    loop {
        let mode = deadlock::mode();
        if mode == Mode::Off {
            // Detection turned off meanwhile: wait as the stdlib does.
            return attempt(None).map(drop);
        }
        if let Some(found) = certain_self_deadlock(py, me, resource)? {
            let err = errors::report(py)?.call_method1("deadlock_error", (edge_list(py, &found)?, me, true))?;
            if mode == Mode::Raise {
                return Err(PyErr::from_value(err));
            }
            // Warn mode: reported once; from here on, wait as the stdlib does.
            errors::report(py)?.call_method1("warn_deadlock", (err,))?;
            return attempt(None).map(drop);
        }
        let now = Instant::now();
        let warn_at = start + deadlock::grace();
        if !grace_warned && now >= warn_at {
            let own = Deadlock {
                edges: vec![deadlock::Edge {
                    thread: me,
                    waits_for: Arc::clone(resource),
                    holders: vec![me],
                }],
            };
            let waited = now.duration_since(start).as_secs_f64();
            let grace = deadlock::grace().as_secs_f64();
            errors::report(py)?.call_method1("warn_self_wait", (edge_list(py, &own)?, me, waited, grace))?;
            grace_warned = true;
        }
        let mut until = now + interval;
        if !grace_warned {
            until = until.min(warn_at);
        }
        if attempt(Some(until))? {
            return Ok(());
        }
        interval = (interval * 2).min(SELF_WAIT_MAX_CHECK);
    }
}

/// The proof that `me`, re-acquiring `resource` which it holds, can never wake, if there is one.
fn certain_self_deadlock(py: Python<'_>, me: ThreadId, resource: &Arc<dyn Resource>) -> PyResult<Option<Deadlock>> {
    let others = errors::report(py)?.call_method1("other_threads", (me,))?;
    if others.is_none() {
        return Ok(None); // a thread unknown to Python exists: it might release the lock
    }
    let others: Vec<ThreadId> = others.extract()?;
    Ok(deadlock::self_wait_stuck(me, resource, &others))
}

/// The deadlock check for re-taking a condition's lock at the end of `Condition.wait`. It never
/// raises: `wait()` must return holding the lock (the caller's `with` block releases it), so a
/// deadlock found here is reported as a `DeadlockWarning` (or an unraisable error if warnings
/// are errors) and the thread goes on waiting.
pub fn before_wait_reacquire(py: Python<'_>, resource: Arc<dyn Resource>) -> WaitGuard {
    if deadlock::mode() == Mode::Off {
        return WaitGuard::none();
    }
    let (guard, verdict) = deadlock::begin_wait(thread::current(), resource, false);
    if let Verdict::Deadlock(found) = verdict {
        let reported = deadlock_error(py, &found)
            .and_then(|err| errors::report(py)?.call_method1("warn_deadlock", (err,)).map(drop));
        if let Err(e) = reported {
            e.write_unraisable(py, None);
        }
    }
    guard
}

// The acquire bookkeeping of a tracked primitive lives here, beside the checks it runs, so that
// `tracked.rs` needs nothing from this file.
impl<T: Resource> Tracked<T> {
    /// Bookkeeping after a fresh acquire (site, lock order). If it fails (a lock-order warning
    /// turned into an error), `undo` gives back what was taken, so the failed acquire leaves
    /// nothing held.
    pub fn acquired(&self, py: Python<'_>, me: ThreadId, undo: impl FnOnce(&T)) -> PyResult<()> {
        after_acquire(py, me, self, &self.site).inspect_err(|_| {
            undo(&self.core);
            after_release(me, self);
        })
    }
}

/// Called after a successful outermost acquire: records the site and checks the lock order.
#[inline]
pub fn after_acquire(py: Python<'_>, me: ThreadId, res: &dyn Resource, site: &SiteCell) -> PyResult<()> {
    if deadlock::mode() != Mode::Off {
        site.record(py);
    }
    if deadlock::order_checking() {
        check_order(py, me, res)?;
    }
    Ok(())
}

#[cold]
fn check_order(py: Python<'_>, me: ThreadId, res: &dyn Resource) -> PyResult<()> {
    for inv in deadlock::order_acquired(me, res) {
        errors::report(py)?.call_method1("warn_lock_order", (inv.acquiring, inv.held, inv.earlier))?;
    }
    Ok(())
}

/// Called after a full release.
#[inline]
pub fn after_release(me: ThreadId, res: &dyn Resource) {
    if deadlock::order_checking() {
        deadlock::order_released(me, res.id());
    }
}

/// `set_deadlock_detection("raise" | "warn" | "off", *, grace=None)`.
#[pyfunction]
#[pyo3(signature = (mode, *, grace=None))]
fn set_deadlock_detection(mode: &str, grace: Option<f64>) -> PyResult<()> {
    let mode = match mode {
        "raise" => Mode::Raise,
        "warn" => Mode::Warn,
        "off" => Mode::Off,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "deadlock detection mode must be 'raise', 'warn' or 'off', not {other:?}"
            )))
        }
    };
    if let Some(grace) = grace {
        let grace = Duration::try_from_secs_f64(grace).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "grace must be a non-negative number of seconds, not {grace}"
            ))
        })?;
        deadlock::set_grace(grace);
    }
    deadlock::set_mode(mode);
    Ok(())
}

/// The self-wait grace period in seconds (see `set_deadlock_detection`).
#[pyfunction]
fn deadlock_grace() -> f64 {
    deadlock::grace().as_secs_f64()
}

/// The current mode as a string.
#[pyfunction]
fn get_deadlock_detection() -> &'static str {
    match deadlock::mode() {
        Mode::Raise => "raise",
        Mode::Warn => "warn",
        Mode::Off => "off",
    }
}

/// `check_lock_order(enabled)`.
#[pyfunction]
fn check_lock_order(enabled: bool) {
    deadlock::set_order_checking(enabled);
}

/// Whether lock-order checking is on.
#[pyfunction]
fn lock_order_checking() -> bool {
    deadlock::order_checking()
}

/// `(held, waits)`: every live primitive's holders as `(ident, resource)` and every recorded
/// wait as `(ident, resource, timed, seconds)`.
#[pyfunction]
fn snapshot(py: Python<'_>) -> PyResult<(Bound<'_, PyList>, Bound<'_, PyList>)> {
    let held = PyList::empty(py);
    let mut holders = Vec::new();
    for res in deadlock::live_resources() {
        holders.clear();
        res.holders(&mut holders);
        holders.sort_unstable();
        holders.dedup();
        for &h in &holders {
            held.append((h, resource_tuple(py, res.as_ref())?))?;
        }
    }
    let waits = PyList::empty(py);
    for (t, w) in deadlock::waits() {
        waits.append((
            t,
            resource_tuple(py, w.resource.as_ref())?,
            w.timed,
            w.since.elapsed().as_secs_f64(),
        ))?;
    }
    Ok((held, waits))
}

/// Every deadlock among the recorded waits, for dumps: a list of `(self_wait, edges)`, with
/// edges as in `plait._report.deadlock_error`. `self_wait`: a thread waiting for a `Lock` it
/// alone holds (a deadlock unless another thread releases it).
#[pyfunction]
fn deadlocks(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for found in deadlock::deadlocks() {
        out.append((false, edge_list(py, &found)?))?;
    }
    for edge in deadlock::self_waits() {
        out.append((true, edge_list(py, &Deadlock { edges: vec![edge] })?))?;
    }
    Ok(out)
}

/// Called in the child after `os.fork()` (registered by `plait.threads`).
#[pyfunction]
fn _after_fork_in_child() {
    deadlock::after_fork_in_child(thread::current());
    // The forking thread is the child's main thread: it is the one that gets signals now.
    crate::blocking::set_main_thread(thread::current());
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(set_deadlock_detection, m)?)?;
    m.add_function(wrap_pyfunction!(get_deadlock_detection, m)?)?;
    m.add_function(wrap_pyfunction!(deadlock_grace, m)?)?;
    m.add_function(wrap_pyfunction!(check_lock_order, m)?)?;
    m.add_function(wrap_pyfunction!(lock_order_checking, m)?)?;
    m.add_function(wrap_pyfunction!(snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(deadlocks, m)?)?;
    Ok(())
}
