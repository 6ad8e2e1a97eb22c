//! The one place where core errors become Python exceptions.
//!
//! `plait`'s own exception classes are defined in Python (`plait.exceptions`) and looked up once.

use plait_core::queue::QueueError;
use plait_core::sync::SyncError;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::blocking::PyBlocker;

static BROKEN_BARRIER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SHUTDOWN: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A cached class from a module.
pub fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    module: &str,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, module, name)
}

/// Builds an instance of `class` with `args` as a `PyErr`.
fn raise(py: Python<'_>, cell: &'static PyOnceLock<Py<PyType>>, module: &str, name: &str, msg: &str) -> PyErr {
    match class(py, cell, module, name) {
        Ok(cls) => PyErr::from_type(cls.clone(), msg.to_owned()),
        Err(e) => e,
    }
}

/// Maps a synchronisation error; `Interrupted` takes the blocker's pending error.
pub fn sync_err(py: Python<'_>, err: SyncError, blocker: Option<&mut PyBlocker<'_, '_>>) -> PyErr {
    match err {
        SyncError::NotLocked | SyncError::NotOwned => PyRuntimeError::new_err(err.to_string()),
        SyncError::TooManyReleases => PyValueError::new_err(err.to_string()),
        SyncError::Overflow => pyo3::exceptions::PyOverflowError::new_err(err.to_string()),
        SyncError::BrokenBarrier => raise(py, &BROKEN_BARRIER, "threading", "BrokenBarrierError", ""),
        SyncError::Interrupted => match blocker {
            Some(b) => b.take_err(),
            None => pyo3::exceptions::PyKeyboardInterrupt::new_err(()),
        },
    }
}

/// Maps a queue error; `Store` errors carry the Python exception already.
pub fn queue_err(py: Python<'_>, err: QueueError<PyErr>, blocker: &mut PyBlocker<'_, '_>) -> PyErr {
    match err {
        QueueError::Empty => raise(py, &EMPTY, "queue", "Empty", ""),
        QueueError::Full => raise(py, &FULL, "queue", "Full", ""),
        QueueError::ShutDown => raise(py, &SHUTDOWN, "plait.exceptions", "ShutDown", ""),
        QueueError::TooManyTaskDone => PyValueError::new_err("task_done() called too many times"),
        QueueError::Interrupted => blocker.take_err(),
        QueueError::Store(e) => e,
    }
}
