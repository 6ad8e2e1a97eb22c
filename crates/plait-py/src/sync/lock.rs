//! `Lock` and `RLock`, like `threading`'s, with deadlock detection on every blocking wait.

use std::sync::Arc;

use plait_core::sync::lock::RLockState;

use plait_core::sync as core;
use plait_core::sync::deadlock::{self, Resource};
use plait_core::thread::{self, ThreadId};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::blocking::{lock_deadline, truthy, PyBlocker, Wait};
use crate::errors::sync_err;
use crate::sync::report::{after_acquire, after_release, before_wait, before_wait_reacquire, wait_for_own_release};
use crate::sync::tracked::{tracked, Tracked};
use crate::sync::{addr, class_path, name_suffix};

/// Whether a blocking acquire spins briefly before it sleeps. Without the GIL the holder runs on
/// another core and a critical section is often over within the spin, sparing the sleep and its
/// bookkeeping (the wait recorded for deadlock detection, detaching, parking and the wake-up), as
/// `CPython`'s own lock does on a free-threaded build. With the GIL the holder cannot run while this
/// thread spins attached, so the spin could only waste the time slice.
pub(crate) const SPIN_FIRST: bool = cfg!(Py_GIL_DISABLED);

// ---------------------------------------------------------------------------------------------
// Lock

/// A primitive lock, like `threading.Lock`, with deadlock detection.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Lock {
    pub(crate) inner: Arc<Tracked<core::Lock>>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        deadlock::unregister(self.inner.core.id());
    }
}

impl Lock {
    pub fn acquire_impl(&self, py: Python<'_>, blocking: bool, timeout: f64) -> PyResult<bool> {
        let deadline = lock_deadline(blocking, timeout)?;
        let me = thread::current();
        if self.inner.core.try_acquire(me) {
            self.acquired(py, me)?;
            return Ok(true);
        }
        let Wait::Until(deadline) = deadline else {
            return Ok(false);
        };
        self.acquire_slow(py, me, deadline)
    }

    #[cold]
    fn acquire_slow(&self, py: Python<'_>, me: ThreadId, deadline: Option<std::time::Instant>) -> PyResult<bool> {
        if SPIN_FIRST && self.inner.core.try_acquire_spinning(me) {
            self.acquired(py, me)?;
            return Ok(true);
        }
        let before = before_wait(py, self.inner.clone(), deadline.is_some())?;
        if before.self_wait {
            // Re-acquiring a Lock this thread holds: valid if another thread releases it.
            let resource = self.resource();
            let waited = wait_for_own_release(py, &resource, |until| {
                let mut blocker = PyBlocker::new(py);
                self.inner
                    .core
                    .acquire_slow(me, until, &mut blocker)
                    .map_err(|e| sync_err(py, e, Some(&mut blocker)))
            });
            drop(before);
            waited?;
            self.acquired(py, me)?;
            return Ok(true);
        }
        let mut blocker = PyBlocker::new(py);
        let got = self.inner.core.acquire_slow(me, deadline, &mut blocker);
        drop(before);
        match got {
            Ok(true) => {
                self.acquired(py, me)?;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => Err(sync_err(py, e, Some(&mut blocker))),
        }
    }

    fn acquired(&self, py: Python<'_>, me: ThreadId) -> PyResult<()> {
        self.inner.acquired(py, me, |lock| {
            let _ = lock.release(me);
        })
    }

    pub fn release_impl(&self, py: Python<'_>) -> PyResult<()> {
        let me = thread::current();
        self.inner.core.release(me).map_err(|e| sync_err(py, e, None))?;
        after_release(me, self.inner.as_ref());
        Ok(())
    }

    pub fn resource(&self) -> Arc<dyn Resource> {
        self.inner.clone()
    }

    pub fn is_locked(&self) -> bool {
        self.inner.core.locked()
    }
}

#[pymethods]
impl Lock {
    #[new]
    #[pyo3(signature = (*, name=None))]
    fn new(name: Option<String>) -> Self {
        Self {
            inner: tracked(core::Lock::new(name)),
        }
    }

    /// Acquire the lock, blocking or non-blocking, with an optional timeout.
    #[pyo3(signature = (blocking=None, timeout=-1.0))]
    fn acquire(&self, py: Python<'_>, blocking: Option<&Bound<'_, PyAny>>, timeout: f64) -> PyResult<bool> {
        self.acquire_impl(py, truthy(blocking, true)?, timeout)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_impl(py, true, -1.0)
    }

    /// Release the lock; any thread may release it.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_impl(py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_impl(py)
    }

    /// Whether the lock is held.
    fn locked(&self) -> bool {
        self.inner.core.locked()
    }

    /// The name given at creation, or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.core.name()
    }

    fn _at_fork_reinit(&self) {
        self.inner.core.reset_after_fork();
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let me = slf.get();
        let state = if me.inner.core.locked() { "locked" } else { "unlocked" };
        Ok(format!(
            "<{state} {} object {}at {:#x}>",
            class_path(slf.as_any())?,
            name_suffix(me.inner.core.name()),
            addr(slf.as_any())
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// RLock

/// A reentrant lock, like `threading.RLock`, with deadlock detection.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct RLock {
    pub(crate) inner: Arc<Tracked<core::RLock>>,
}

impl Drop for RLock {
    fn drop(&mut self) {
        deadlock::unregister(self.inner.core.id());
    }
}

impl RLock {
    pub fn acquire_impl(&self, py: Python<'_>, blocking: bool, timeout: f64) -> PyResult<bool> {
        let deadline = lock_deadline(blocking, timeout)?;
        let me = thread::current();
        match self.inner.core.try_acquire(me) {
            Some(true) => {
                self.acquired(py, me)?;
                return Ok(true);
            }
            Some(false) => return Ok(true),
            None => {}
        }
        let Wait::Until(deadline) = deadline else {
            return Ok(false);
        };
        if SPIN_FIRST && self.inner.core.try_acquire_spinning(me) {
            self.acquired(py, me)?;
            return Ok(true);
        }
        self.wait_for(py, me, deadline, PyBlocker::new(py))
    }

    #[cold]
    fn wait_for(
        &self,
        py: Python<'_>,
        me: ThreadId,
        deadline: Option<std::time::Instant>,
        mut blocker: PyBlocker<'_, '_>,
    ) -> PyResult<bool> {
        let before = before_wait(py, self.inner.clone(), deadline.is_some())?;
        let got = self.inner.core.acquire_slow(me, deadline, &mut blocker);
        drop(before);
        match got {
            Ok(true) => {
                self.acquired(py, me)?;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => Err(sync_err(py, e, Some(&mut blocker))),
        }
    }

    fn acquired(&self, py: Python<'_>, me: ThreadId) -> PyResult<()> {
        self.inner.acquired(py, me, |lock| {
            let _ = lock.release(me);
        })
    }

    pub fn release_impl(&self, py: Python<'_>) -> PyResult<()> {
        let me = thread::current();
        if self.inner.core.release(me).map_err(|e| sync_err(py, e, None))? {
            after_release(me, self.inner.as_ref());
        }
        Ok(())
    }

    pub fn release_save_impl(&self, py: Python<'_>) -> PyResult<RLockState> {
        let me = thread::current();
        let state = self.inner.core.release_save(me).map_err(|e| sync_err(py, e, None))?;
        after_release(me, self.inner.as_ref());
        Ok(state)
    }

    /// Re-takes the lock after a condition wait; not interruptible, so the caller always leaves
    /// `Condition.wait` holding the lock as documented.
    pub fn acquire_restore_impl(&self, py: Python<'_>, state: RLockState) -> PyResult<()> {
        let me = thread::current();
        if self.inner.core.try_acquire(me) != Some(true) {
            let guard = before_wait_reacquire(py, self.inner.clone());
            let got = self
                .inner
                .core
                .acquire_slow(me, None, &mut PyBlocker::uninterruptible(py));
            drop(guard);
            got.map_err(|e| sync_err(py, e, None))?;
        }
        self.inner.core.restore(state);
        // Held again, at its old depth: an error from here on leaves it held, so the caller's
        // `with` block releases exactly what it owns.
        after_acquire(py, me, self.inner.as_ref(), &self.inner.site)
    }

    pub fn is_owned(&self) -> bool {
        self.inner.core.is_owned_by(thread::current())
    }

    pub fn resource(&self) -> Arc<dyn Resource> {
        self.inner.clone()
    }
}

#[pymethods]
impl RLock {
    #[new]
    #[pyo3(signature = (*, name=None))]
    pub(crate) fn new(name: Option<String>) -> Self {
        Self {
            inner: tracked(core::RLock::new(name)),
        }
    }

    /// Acquire the lock; a thread that owns it may acquire it again.
    #[pyo3(signature = (blocking=None, timeout=-1.0))]
    fn acquire(&self, py: Python<'_>, blocking: Option<&Bound<'_, PyAny>>, timeout: f64) -> PyResult<bool> {
        self.acquire_impl(py, truthy(blocking, true)?, timeout)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_impl(py, true, -1.0)
    }

    /// Release one level; only the owner may release.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_impl(py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_impl(py)
    }

    /// Whether some thread holds the lock.
    fn locked(&self) -> bool {
        self.inner.core.locked()
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.core.name()
    }

    fn _is_owned(&self) -> bool {
        self.is_owned()
    }

    fn _recursion_count(&self) -> u64 {
        self.inner.core.recursion_count(thread::current())
    }

    fn _release_save(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
        let s = self.release_save_impl(py)?;
        Ok((s.count, s.owner))
    }

    fn _acquire_restore(&self, py: Python<'_>, state: (u64, u64)) -> PyResult<()> {
        self.acquire_restore_impl(
            py,
            RLockState {
                count: state.0,
                owner: state.1,
            },
        )
    }

    fn _at_fork_reinit(&self) {
        self.inner.core.reset_after_fork();
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let me = slf.get();
        let core = &me.inner.core;
        let state = if core.locked() { "locked" } else { "unlocked" };
        let owner = core.owner();
        let count = if owner == 0 { 0 } else { core.recursion_count(owner) };
        Ok(format!(
            "<{state} {} object {}owner={owner} count={count} at {:#x}>",
            class_path(slf.as_any())?,
            name_suffix(core.name()),
            addr(slf.as_any())
        ))
    }
}
