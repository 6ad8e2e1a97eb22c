//! `Condition`, like `threading.Condition`; its lock may be a plait lock or any lock object.

use std::sync::Arc;

use plait_core::sync::deadlock::{self, Resource};
use plait_core::sync::{self as core, SyncError};
use plait_core::thread::{self, ThreadId};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors::sync_err;
use crate::sync::report::{after_acquire, before_wait_reacquire};
use std::any::Any;

use plait_core::sync::lock::RLockState;
use pyo3::{PyTraverseError, PyVisit};

use crate::sync::lock::{Lock, RLock};

// ---------------------------------------------------------------------------------------------
// Condition

enum CondLock {
    Lock(Py<Lock>),
    RLock(Py<RLock>),
    /// Any object with `acquire`/`release` (e.g. a `threading.Lock`), used through Python calls.
    Foreign,
}

/// What `release_save` handed out, for `acquire_restore`.
enum Saved {
    Lock,
    RLock(RLockState),
    Foreign(Py<PyAny>),
}

/// A condition variable, like `threading.Condition`; the lock may be any lock object.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Condition {
    lock: Py<PyAny>,
    kind: CondLock,
    waiters: core::WaitQueue,
    /// Stands for this condition in `dump()` while threads wait on it.
    marker: Arc<dyn Resource>,
}

/// Stands for a condition (or an `Event`/`Barrier` waiting on one) in `dump()`.
pub(crate) struct ConditionMarker {
    pub(crate) id: u64,
    pub(crate) name: Option<String>,
}

impl Resource for ConditionMarker {
    fn id(&self) -> u64 {
        self.id
    }
    fn kind(&self) -> &'static str {
        "Condition"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn holders(&self, _out: &mut Vec<ThreadId>) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Condition {
    pub fn with_lock(py: Python<'_>, lock: Option<Bound<'_, PyAny>>, name: Option<String>) -> PyResult<Self> {
        let lock = match lock {
            Some(l) if !l.is_none() => l,
            _ => Bound::new(py, RLock::new(None))?.into_any(),
        };
        let kind = if let Ok(l) = lock.cast::<Lock>() {
            CondLock::Lock(l.clone().unbind())
        } else if let Ok(l) = lock.cast::<RLock>() {
            CondLock::RLock(l.clone().unbind())
        } else {
            CondLock::Foreign
        };
        Ok(Self {
            lock: lock.unbind(),
            kind,
            waiters: core::WaitQueue::new(),
            marker: Arc::new(ConditionMarker {
                id: deadlock::next_id(),
                name,
            }),
        })
    }

    fn is_owned(&self, py: Python<'_>) -> PyResult<bool> {
        match &self.kind {
            CondLock::Lock(l) => Ok(l.get().is_locked()),
            CondLock::RLock(l) => Ok(l.get().is_owned()),
            CondLock::Foreign => {
                let lock = self.lock.bind(py);
                if let Ok(f) = lock.getattr("_is_owned") {
                    return f.call0()?.is_truthy();
                }
                if lock.call_method1("acquire", (false,))?.is_truthy()? {
                    lock.call_method0("release")?;
                    Ok(false)
                } else {
                    Ok(true)
                }
            }
        }
    }

    fn release_save(&self, py: Python<'_>) -> PyResult<Saved> {
        match &self.kind {
            CondLock::Lock(l) => l.get().release_impl(py).map(|()| Saved::Lock),
            CondLock::RLock(l) => l.get().release_save_impl(py).map(Saved::RLock),
            CondLock::Foreign => {
                let lock = self.lock.bind(py);
                if let Ok(f) = lock.getattr("_release_save") {
                    return Ok(Saved::Foreign(f.call0()?.unbind()));
                }
                lock.call_method0("release")?;
                Ok(Saved::Foreign(py.None()))
            }
        }
    }

    fn acquire_restore(&self, py: Python<'_>, saved: Saved) -> PyResult<()> {
        match (&self.kind, saved) {
            (CondLock::Lock(l), _) => {
                let l = l.get();
                let me = thread::current();
                if !l.inner.core.try_acquire(me) {
                    let guard = before_wait_reacquire(py, l.inner.clone());
                    let mut blocker = PyBlocker::uninterruptible(py);
                    let got = l.inner.core.acquire_slow(me, None, &mut blocker);
                    drop(guard);
                    got.map_err(|e| sync_err(py, e, Some(&mut blocker)))?;
                }
                // Held again: an error from here on (a warning raised as error) leaves it held,
                // so `with cond:` releases exactly what it owns.
                after_acquire(py, me, l.inner.as_ref(), &l.inner.site)
            }
            (CondLock::RLock(l), Saved::RLock(state)) => l.get().acquire_restore_impl(py, state),
            (_, Saved::Foreign(state)) => {
                let lock = self.lock.bind(py);
                if let Ok(f) = lock.getattr("_acquire_restore") {
                    f.call1((state,))?;
                } else {
                    lock.call_method0("acquire")?;
                }
                Ok(())
            }
            _ => Err(PyRuntimeError::new_err("condition lock state mismatch")),
        }
    }

    pub fn wait_impl(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if !self.is_owned(py)? {
            return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
        }
        let signal = self.waiters.enqueue();
        let saved = match self.release_save(py) {
            Ok(s) => s,
            Err(e) => {
                self.waiters.cancel(&signal);
                return Err(e);
            }
        };
        let deadline = optional_deadline(timeout);
        let mut blocker = PyBlocker::waiting_on(py, &self.marker, deadline.is_some());
        let result = self.waiters.wait(&signal, deadline, &mut blocker);
        let err = result.is_err().then(|| blocker.take_err());
        drop(blocker);
        self.acquire_restore(py, saved)?;
        match (result, err) {
            (Ok(notified), _) => Ok(notified),
            (Err(_), Some(e)) => Err(e),
            (Err(_), None) => Err(sync_err(py, SyncError::Interrupted, None)),
        }
    }

    pub fn notify_impl(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        if !self.is_owned(py)? {
            return Err(PyRuntimeError::new_err("cannot notify on un-acquired lock"));
        }
        self.waiters.notify(n);
        Ok(())
    }

    pub fn acquire_impl(&self, py: Python<'_>) -> PyResult<bool> {
        match &self.kind {
            CondLock::Lock(l) => l.get().acquire_impl(py, true, -1.0),
            CondLock::RLock(l) => l.get().acquire_impl(py, true, -1.0),
            CondLock::Foreign => self.lock.bind(py).call_method0("acquire")?.is_truthy(),
        }
    }

    pub fn release_impl(&self, py: Python<'_>) -> PyResult<()> {
        match &self.kind {
            CondLock::Lock(l) => l.get().release_impl(py),
            CondLock::RLock(l) => l.get().release_impl(py),
            CondLock::Foreign => self.lock.bind(py).call_method0("release").map(drop),
        }
    }
}

#[pymethods]
impl Condition {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.lock)?;
        match &self.kind {
            CondLock::Lock(l) => visit.call(l),
            CondLock::RLock(l) => visit.call(l),
            CondLock::Foreign => Ok(()),
        }
    }

    #[new]
    #[pyo3(signature = (lock=None, *, name=None))]
    fn new(py: Python<'_>, lock: Option<Bound<'_, PyAny>>, name: Option<String>) -> PyResult<Self> {
        Self::with_lock(py, lock, name)
    }

    /// Acquire the underlying lock (same arguments as its `acquire`).
    #[pyo3(signature = (*args, **kwargs))]
    fn acquire(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        if args.is_empty() && kwargs.is_none() {
            return self
                .acquire_impl(py)
                .map(|b| b.into_pyobject(py).unwrap().to_owned().into_any().unbind());
        }
        Ok(self.lock.bind(py).call_method("acquire", args, kwargs)?.unbind())
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_impl(py)
    }

    /// Release the underlying lock.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_impl(py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_impl(py)
    }

    /// Wait until notified or until the timeout; returns False on timeout.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.wait_impl(py, timeout)
    }

    /// Wait until `predicate()` is true or the timeout passes; returns the last predicate value.
    #[pyo3(signature = (predicate, timeout=None))]
    fn wait_for(&self, py: Python<'_>, predicate: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let mut end: Option<std::time::Instant> = None;
        let mut waittime = timeout;
        let mut result = predicate.call0()?;
        while !result.is_truthy()? {
            if let Some(total) = timeout {
                match end {
                    None => {
                        end = Some(crate::blocking::deadline_after(total).unwrap_or_else(crate::blocking::far_future));
                    }
                    Some(e) => {
                        waittime = Some(e.saturating_duration_since(std::time::Instant::now()).as_secs_f64());
                        if waittime.is_some_and(|w| w <= 0.0) {
                            break;
                        }
                    }
                }
            }
            self.wait_impl(py, waittime)?;
            result = predicate.call0()?;
        }
        Ok(result.unbind())
    }

    /// Wake up to `n` waiting threads.
    #[pyo3(signature = (n=1))]
    fn notify(&self, py: Python<'_>, n: isize) -> PyResult<()> {
        self.notify_impl(py, n.max(0) as usize)
    }

    /// Wake every waiting thread.
    fn notify_all(&self, py: Python<'_>) -> PyResult<()> {
        self.notify_impl(py, usize::MAX)
    }

    #[pyo3(name = "notifyAll")]
    fn notify_all_alias(&self, py: Python<'_>) -> PyResult<()> {
        self.notify_impl(py, usize::MAX)
    }

    fn _is_owned(&self, py: Python<'_>) -> PyResult<bool> {
        self.is_owned(py)
    }

    fn _at_fork_reinit(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.bind(py).call_method0("_at_fork_reinit")?;
        self.waiters.notify_all();
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<Condition({}, {})>",
            self.lock.bind(py).repr()?,
            self.waiters.len()
        ))
    }
}
