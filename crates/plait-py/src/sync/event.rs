//! `Event`, like `threading.Event`.

use std::sync::Arc;

use plait_core::sync as core;
use plait_core::sync::deadlock::{self, Resource};
use pyo3::prelude::*;

use crate::blocking::{optional_deadline, PyBlocker};
use crate::sync::condition::ConditionMarker;
use crate::sync::{addr, class_path};

// ---------------------------------------------------------------------------------------------
// Event

/// An event flag, like `threading.Event`.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Event {
    core: core::Event,
    marker: Arc<dyn Resource>,
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

    fn _at_fork_reinit(&self) {
        self.core.reset_after_fork();
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
