//! `Barrier`, like `threading.Barrier`.

use std::sync::Arc;

use plait_core::sync as core;
use plait_core::sync::deadlock::{self, Resource};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors::sync_err;
use crate::sync::condition::ConditionMarker;
use crate::sync::{addr, class_path};
use plait_core::sync::barrier::Arrival;
use pyo3::{PyTraverseError, PyVisit};

// ---------------------------------------------------------------------------------------------
// Barrier

/// A barrier for a fixed number of threads, like `threading.Barrier`.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Barrier {
    core: core::Barrier,
    action: Option<Py<PyAny>>,
    timeout: Option<f64>,
    marker: Arc<dyn Resource>,
}

#[pymethods]
impl Barrier {
    /// The action is often a bound method of an object that holds the barrier: a cycle.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(self.action.as_ref())
    }

    #[new]
    #[pyo3(signature = (parties, action=None, timeout=None, *, name=None))]
    fn new(parties: i64, action: Option<Py<PyAny>>, timeout: Option<f64>, name: Option<String>) -> PyResult<Self> {
        if parties < 1 {
            return Err(PyValueError::new_err("parties must be >= 1"));
        }
        let action = action.filter(|a| Python::attach(|py| !a.is_none(py)));
        Ok(Self {
            core: core::Barrier::new(parties as usize, action.is_some()),
            action,
            timeout,
            marker: Arc::new(ConditionMarker {
                id: deadlock::next_id(),
                name,
            }),
        })
    }

    /// Wait for all parties; returns this thread's arrival index (0 to parties-1).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<usize> {
        let timeout = timeout.or(self.timeout);
        let deadline = optional_deadline(timeout);
        let mut blocker = PyBlocker::waiting_on(py, &self.marker, deadline.is_some());
        match self.core.arrive(deadline, &mut blocker) {
            Ok(Arrival::Passed(i)) => Ok(i),
            Ok(Arrival::RunAction(i)) => {
                drop(blocker);
                let outcome = match &self.action {
                    Some(action) => action.bind(py).call0().map(drop),
                    None => Ok(()),
                };
                self.core.finish_action(outcome.is_ok());
                outcome.map(|()| i)
            }
            Err(e) => Err(sync_err(py, e, Some(&mut blocker))),
        }
    }

    /// Return the barrier to its initial state; threads waiting get `BrokenBarrierError`.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        let mut blocker = PyBlocker::new(py);
        self.core
            .reset(&mut blocker)
            .map_err(|e| sync_err(py, e, Some(&mut blocker)))
    }

    /// Break the barrier: current and future waiters get `BrokenBarrierError`.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let mut blocker = PyBlocker::new(py);
        self.core
            .abort(&mut blocker)
            .map_err(|e| sync_err(py, e, Some(&mut blocker)))
    }

    #[getter]
    fn parties(&self) -> usize {
        self.core.parties()
    }

    #[getter]
    fn n_waiting(&self) -> usize {
        self.core.n_waiting()
    }

    #[getter]
    fn broken(&self) -> bool {
        self.core.broken()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let core = &slf.get().core;
        let path = class_path(slf.as_any())?;
        let at = addr(slf.as_any());
        if core.broken() {
            return Ok(format!("<{path} at {at:#x}: broken>"));
        }
        Ok(format!(
            "<{path} at {at:#x}: waiters={}/{}>",
            core.n_waiting(),
            core.parties()
        ))
    }
}
