//! `IpcLock` and `IpcRLock`: the native halves of `plait.processes.Lock` and `RLock`, robust
//! futex locks in shared memory (a holder's death is reported as `OwnerDied`, never a hang).

use plait_core::ipc::objects::{self as core, IpcError, Shared};
use plait_core::ipc::robust::{Acquired, RobustLock};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors::{self, ipc_err, owner_died};
use crate::ipc::open;
use crate::ipc::shm::Segment;

// --- Lock -----------------------------------------------------------------------------------

/// A lock shared between processes; see `plait.processes.Lock`.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcLock {
    pub(crate) lock: Shared<RobustLock>,
    seg: Py<Segment>,
    name: Option<String>,
}

impl IpcLock {
    fn acquire_impl(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let got = if let Some(a) = self.lock.try_lock() {
            Some(a)
        } else if block {
            let mut blocker = PyBlocker::new(py);
            self.lock
                .lock(&mut blocker, optional_deadline(timeout))
                .map_err(|_| blocker.take_err())?
        } else {
            None
        };
        match got {
            None => Ok(false),
            Some(Acquired::Clean) => Ok(true),
            Some(Acquired::OwnerDied) => Err(owner_died(py, "lock")),
        }
    }

    fn release_impl(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.unlock().map_err(|_| ipc_err(py, IpcError::NotLocked, None))
    }
}

#[pymethods]
impl IpcLock {
    #[new]
    #[pyo3(signature = (*, name=None, _segment=None))]
    fn new(py: Python<'_>, name: Option<String>, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let (lock, seg) = open(py, _segment, || Shared::create(0, |_| {}))?;
        Ok(Self { lock, seg, name })
    }

    /// Acquire the lock; `False` if not acquired (non-blocking, or the timeout passed). Raises
    /// `plait.OwnerDied`, with the lock held, when its holder died holding it.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        self.acquire_impl(py, block, timeout)
    }

    /// Release the lock (any thread of any process may).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_impl(py)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        match self.acquire_impl(py, true, None) {
            Err(e) if e.is_instance(py, errors::plait_class(py, errors::Plait::OwnerDied)?) => {
                // No `__exit__` runs when `__enter__` raises: release, or the lock would stay
                // held by this (live) process forever.
                self.lock.unlock().ok();
                Err(e)
            }
            other => other,
        }
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_impl(py)
    }

    /// Whether the lock is held (by any process).
    fn locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// The pid of the process holding the lock, or None.
    fn holder(&self) -> Option<u32> {
        self.lock.holder()
    }

    /// The name given at creation, or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}

// --- RLock ----------------------------------------------------------------------------------

/// A recursive lock shared between processes; see `plait.processes.RLock`.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcRLock {
    pub(crate) lock: Shared<core::RLock>,
    seg: Py<Segment>,
    name: Option<String>,
}

impl IpcRLock {
    fn acquire_impl(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let mut blocker = PyBlocker::new(py);
        let got = self
            .lock
            .acquire(&mut blocker, optional_deadline(timeout), block)
            .map_err(|e| ipc_err(py, e, Some(&mut blocker)))?;
        match got {
            None => Ok(false),
            Some(Acquired::Clean) => Ok(true),
            Some(Acquired::OwnerDied) => Err(owner_died(py, "lock")),
        }
    }
}

#[pymethods]
impl IpcRLock {
    #[new]
    #[pyo3(signature = (*, name=None, _segment=None))]
    fn new(py: Python<'_>, name: Option<String>, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let (lock, seg) = open(py, _segment, || Shared::create(0, |_| {}))?;
        Ok(Self { lock, seg, name })
    }

    /// Acquire the lock (again, if this thread holds it); see `IpcLock.acquire`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        self.acquire_impl(py, block, timeout)
    }

    /// Release one level; only the owning thread may.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.release().map_err(|e| ipc_err(py, e, None))
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        match self.acquire_impl(py, true, None) {
            Err(e) if e.is_instance(py, errors::plait_class(py, errors::Plait::OwnerDied)?) => {
                self.lock.release().ok();
                Err(e)
            }
            other => other,
        }
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.lock.release().map_err(|e| ipc_err(py, e, None))
    }

    /// Whether the calling thread holds the lock.
    fn _is_owned(&self) -> bool {
        self.lock.is_owned()
    }

    /// Recursion level of the holder (0 when free).
    fn _count(&self) -> u32 {
        self.lock.count()
    }

    /// The pid of the process holding the lock, or None.
    fn holder(&self) -> Option<u32> {
        self.lock.raw().holder()
    }

    /// Whether some thread of some process holds the lock.
    fn locked(&self) -> bool {
        self.lock.raw().is_locked()
    }

    /// The name given at creation, or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}
