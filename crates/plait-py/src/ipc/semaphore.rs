//! `IpcSemaphore`: the native half of `plait.processes.Semaphore` and `BoundedSemaphore`.

use plait_core::ipc::objects::{self as core, Shared};
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors::ipc_err;
use crate::ipc::open;
use crate::ipc::shm::Segment;

// --- Semaphore ------------------------------------------------------------------------------

/// A counting semaphore shared between processes (bounded when `bounded`).
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcSemaphore {
    sem: Shared<core::Semaphore>,
    seg: Py<Segment>,
    name: Option<String>,
}

#[pymethods]
impl IpcSemaphore {
    #[new]
    #[pyo3(signature = (value=1, bounded=false, *, name=None, _segment=None))]
    fn new(
        py: Python<'_>,
        value: i64,
        bounded: bool,
        name: Option<String>,
        _segment: Option<Py<Segment>>,
    ) -> PyResult<Self> {
        if value < 0 {
            return Err(PyValueError::new_err("semaphore initial value must be >= 0"));
        }
        let v = u32::try_from(value).map_err(|_| PyOverflowError::new_err("semaphore value must be < 2**32"))?;
        let (sem, seg) = open(py, _segment, || {
            Shared::create(0, |s: &core::Semaphore| s.init(v, if bounded { v.max(1) } else { 0 }))
        })?;
        if bounded && v == 0 {
            // A bounded semaphore starting at 0 can never be released: keep the bound honest.
            return Err(PyValueError::new_err("a BoundedSemaphore needs an initial value >= 1"));
        }
        Ok(Self { sem, seg, name })
    }

    /// Decrement the value, waiting while it is 0; False if not acquired.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        if self.sem.try_acquire() {
            return Ok(true);
        }
        if !block {
            return Ok(false);
        }
        let mut blocker = PyBlocker::new(py);
        self.sem
            .acquire(&mut blocker, optional_deadline(timeout))
            .map_err(|_| blocker.take_err())
    }

    /// Increment the value by `n`, waking waiters.
    #[pyo3(signature = (n=1))]
    fn release(&self, py: Python<'_>, n: u32) -> PyResult<()> {
        self.sem.release(n).map_err(|e| ipc_err(py, e, None))
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release(py, 1)
    }

    /// The current value.
    fn get_value(&self) -> u32 {
        self.sem.value()
    }

    /// The bound of a `BoundedSemaphore`, None for a plain one.
    fn _bound(&self) -> Option<u32> {
        Some(self.sem.bound()).filter(|&b| b != 0)
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
