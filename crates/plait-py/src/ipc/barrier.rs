//! `IpcBarrier`: the native half of `plait.processes.Barrier`.

use plait_core::ipc::objects::{self as core, Shared};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors::ipc_err;
use crate::ipc::open;
use crate::ipc::shm::Segment;

// --- Barrier --------------------------------------------------------------------------------

/// A barrier shared between processes.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcBarrier {
    bar: Shared<core::Barrier>,
    seg: Py<Segment>,
    name: Option<String>,
}

#[pymethods]
impl IpcBarrier {
    #[new]
    #[pyo3(signature = (parties, *, name=None, _segment=None))]
    fn new(py: Python<'_>, parties: i64, name: Option<String>, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let parties = u32::try_from(parties)
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| PyValueError::new_err("parties must be >= 1"))?;
        let (bar, seg) = open(py, _segment, || Shared::create(0, |b: &core::Barrier| b.init(parties)))?;
        Ok(Self { bar, seg, name })
    }

    /// Wait for every party; returns this party's index in `range(parties)`.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u32> {
        let mut blocker = PyBlocker::new(py);
        self.bar
            .wait(&mut blocker, optional_deadline(timeout))
            .map_err(|e| ipc_err(py, e, Some(&mut blocker)))
    }

    /// Return the barrier to its initial state; current waiters get `BrokenBarrierError`.
    fn reset(&self) {
        self.bar.reset();
    }

    /// Break the barrier.
    fn abort(&self) {
        self.bar.abort();
    }

    #[getter]
    fn parties(&self) -> u32 {
        self.bar.parties()
    }

    #[getter]
    fn n_waiting(&self) -> u32 {
        self.bar.n_waiting()
    }

    #[getter]
    fn broken(&self) -> bool {
        self.bar.broken()
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
