//! `Event`, like `threading.Event`.

use std::sync::Arc;

use parking_lot::Mutex;
use plait_core::sync as core;
use plait_core::sync::deadlock::{self, Resource};
use pyo3::prelude::*;

use crate::blocking::{optional_deadline, PyBlocker};
use crate::sync::condition::{Condition, ConditionMarker};
use crate::sync::lock::Lock;
use crate::sync::{addr, class_path};

// ---------------------------------------------------------------------------------------------
// Event

/// An event flag, like `threading.Event`.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Event {
    core: core::Event,
    marker: Arc<dyn Resource>,
    /// `_cond`, created on first use (see the getter).
    cond: Mutex<Option<Py<PyAny>>>,
}

#[pymethods]
impl Event {
    #[new]
    #[pyo3(signature = (*, name=None))]
    fn new(name: Option<String>) -> Self {
        Self {
            core: core::Event::new(),
            marker: Arc::new(ConditionMarker {
                id: deadlock::next_id(),
                name,
            }),
            cond: Mutex::new(None),
        }
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.core.is_set()
    }

    #[pyo3(name = "isSet")]
    fn is_set_alias(&self) -> bool {
        self.core.is_set()
    }

    /// Set the flag and wake every waiter.
    fn set(&self) {
        self.core.set();
    }

    /// Clear the flag.
    fn clear(&self) {
        self.core.clear();
    }

    /// Wait until the flag is set or the timeout passes; returns the flag.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.core.is_set() {
            return Ok(true);
        }
        if timeout.is_some_and(|t| t <= 0.0) {
            return Ok(false);
        }
        let mut blocker = PyBlocker::waiting_on(py, &self.marker, timeout.is_some());
        self.core
            .wait(optional_deadline(timeout), &mut blocker)
            .map_err(|_| blocker.take_err())
    }

    fn _at_fork_reinit(&self, py: Python<'_>) -> PyResult<()> {
        self.core.reset_after_fork();
        let cond = self.cond.lock().as_ref().map(|c| c.clone_ref(py));
        if let Some(cond) = cond {
            cond.bind(py).call_method0("_at_fork_reinit")?;
        }
        Ok(())
    }

    /// `threading.Event`'s private condition, for code that inspects it: a `Condition` over a
    /// non-reentrant `Lock`, created on first use. plait's `Event` is a native flag and its own
    /// methods do not take this condition's lock.
    #[getter]
    fn _cond(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(cond) = &*self.cond.lock() {
            return Ok(cond.clone_ref(py));
        }
        // Built without holding the mutex (building runs Python code); the first one stored wins.
        let lock = py.get_type::<Lock>().call0()?;
        let made = py.get_type::<Condition>().call1((lock,))?.unbind();
        let mut cond = self.cond.lock();
        Ok(cond.get_or_insert(made).clone_ref(py))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let state = if slf.get().core.is_set() { "set" } else { "unset" };
        Ok(format!(
            "<{} at {:#x}: {state}>",
            class_path(slf.as_any())?,
            addr(slf.as_any())
        ))
    }
}
