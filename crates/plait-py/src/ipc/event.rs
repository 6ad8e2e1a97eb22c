//! `IpcEvent`: the native half of `plait.processes.Event`.

use plait_core::ipc::objects::{self as core, Shared};
use pyo3::prelude::*;

use crate::blocking::{optional_deadline, PyBlocker};
use crate::ipc::open;
use crate::ipc::shm::Segment;

// --- Event ----------------------------------------------------------------------------------

/// An event flag shared between processes.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcEvent {
    ev: Shared<core::Event>,
    seg: Py<Segment>,
    name: Option<String>,
}

#[pymethods]
impl IpcEvent {
    #[new]
    #[pyo3(signature = (*, name=None, _segment=None))]
    fn new(py: Python<'_>, name: Option<String>, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let (ev, seg) = open(py, _segment, || Shared::create(0, |_| {}))?;
        Ok(Self { ev, seg, name })
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.ev.is_set()
    }

    /// Whether the flag is set (`threading.Event`'s old spelling).
    #[pyo3(name = "isSet")]
    fn is_set_alias(&self) -> bool {
        self.ev.is_set()
    }

    /// The name given at creation, or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Set the flag, waking every waiter in every process.
    fn set(&self) {
        self.ev.set();
    }

    /// Clear the flag.
    fn clear(&self) {
        self.ev.clear();
    }

    /// Wait until the flag is set; returns the flag (False after a timeout).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.ev.is_set() {
            return Ok(true);
        }
        let mut blocker = PyBlocker::new(py);
        self.ev
            .wait(&mut blocker, optional_deadline(timeout))
            .map_err(|_| blocker.take_err())
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}
