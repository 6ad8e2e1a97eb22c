//! `IpcCondition`: the native half of `plait.processes.Condition`, over any process-shared lock.

use plait_core::ipc::objects::{self as core, IpcError, Shared};
use plait_core::ipc::process;
use plait_core::ipc::robust::Acquired;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors::{ipc_err, owner_died};
use crate::ipc::lock::{IpcLock, IpcRLock};
use crate::ipc::open;
use crate::ipc::shm::Segment;

// --- Condition ------------------------------------------------------------------------------

/// A condition variable shared between processes, over an `IpcLock` or `IpcRLock`.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcCondition {
    cond: Shared<core::Condition>,
    seg: Py<Segment>,
    lock: Py<PyAny>,
    name: Option<String>,
}

#[pymethods]
impl IpcCondition {
    #[new]
    #[pyo3(signature = (lock, *, name=None, _segment=None))]
    fn new(
        py: Python<'_>,
        lock: Bound<'_, PyAny>,
        name: Option<String>,
        _segment: Option<Py<Segment>>,
    ) -> PyResult<Self> {
        if !lock.is_instance_of::<IpcLock>() && !lock.is_instance_of::<IpcRLock>() {
            return Err(PyTypeError::new_err(
                "a process-shared Condition needs a plait.processes.Lock or RLock",
            ));
        }
        let (cond, seg) = open(py, _segment, || Shared::create(0, |_| {}))?;
        Ok(Self {
            cond,
            seg,
            lock: lock.unbind(),
            name,
        })
    }

    /// Release the lock, wait for a notify (or the timeout), re-acquire the lock. Returns
    /// False on timeout. Raises `OwnerDied` (lock held) if the lock's holder died meanwhile.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let lock = self.lock.bind(py);
        let until = optional_deadline(timeout);
        let mut blocker = PyBlocker::new(py);
        if let Ok(r) = lock.cast::<IpcRLock>() {
            let r = &r.get().lock;
            if !r.is_owned() {
                return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
            }
            let token = self.cond.prepare();
            let count = r.release_all().map_err(|e| ipc_err(py, e, None))?;
            let slept = self.cond.sleep(&mut blocker, token, until);
            let mut again = PyBlocker::uninterruptible(py);
            let got = r.acquire(&mut again, None, true).map_err(|e| ipc_err(py, e, None))?;
            r.restore(count);
            let notified = slept.map_err(|_| blocker.take_err())?;
            return match got {
                Some(Acquired::OwnerDied) => Err(owner_died(py, "condition's lock")),
                _ => Ok(notified),
            };
        }
        let l = &lock.cast::<IpcLock>()?.get().lock;
        if l.holder() != Some(process::pid()) {
            return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
        }
        let token = self.cond.prepare();
        l.unlock().map_err(|_| ipc_err(py, IpcError::NotLocked, None))?;
        let slept = self.cond.sleep(&mut blocker, token, until);
        let mut again = PyBlocker::uninterruptible(py);
        let got = l.lock(&mut again, None).map_err(|_| again.take_err())?;
        let notified = slept.map_err(|_| blocker.take_err())?;
        match got {
            Some(Acquired::OwnerDied) => Err(owner_died(py, "condition's lock")),
            _ => Ok(notified),
        }
    }

    /// Wake up to `n` waiters; `RuntimeError` unless the lock is held.
    #[pyo3(signature = (n=1))]
    fn notify(&self, py: Python<'_>, n: u32) -> PyResult<()> {
        self.check_owned(py)?;
        self.cond.notify(n);
        Ok(())
    }

    /// Wake every waiter.
    fn notify_all(&self, py: Python<'_>) -> PyResult<()> {
        self.check_owned(py)?;
        self.cond.notify_all();
        Ok(())
    }

    /// `notify_all` (`threading.Condition`'s old spelling).
    #[pyo3(name = "notifyAll")]
    fn notify_all_alias(&self, py: Python<'_>) -> PyResult<()> {
        self.notify_all(py)
    }

    /// How many processes' threads wait on the condition now.
    fn _waiters(&self) -> u32 {
        self.cond.waiters()
    }

    /// The name given at creation, or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    #[getter]
    fn _lock(&self, py: Python<'_>) -> Py<PyAny> {
        self.lock.clone_ref(py)
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}

impl IpcCondition {
    /// `RuntimeError` unless this process holds the condition's lock (as `threading` does).
    fn check_owned(&self, py: Python<'_>) -> PyResult<()> {
        let lock = self.lock.bind(py);
        let owned = if let Ok(r) = lock.cast::<IpcRLock>() {
            r.get().lock.is_owned()
        } else {
            lock.cast::<IpcLock>()?.get().lock.holder() == Some(process::pid())
        };
        if owned {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err("cannot notify on un-acquired lock"))
        }
    }
}
