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

// asyncio ---------------------------------------------------------------------------------------
// The errors of `plait.aio` (the loop, its transports and streams), as asyncio raises them.

static LIMIT_OVERRUN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static INCOMPLETE_READ: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// An instance of `asyncio.<name>(*args)` as a `PyErr` (or the error of making it).
fn asyncio_error<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyErr {
    match class(py, cell, "asyncio", name).and_then(|cls| cls.call1(args)) {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

/// `asyncio.LimitOverrunError(message, consumed)`.
pub fn limit_overrun(py: Python<'_>, message: &str, consumed: usize) -> PyErr {
    asyncio_error(py, &LIMIT_OVERRUN, "LimitOverrunError", (message, consumed))
}

/// `asyncio.IncompleteReadError(partial, expected)`.
pub fn incomplete_read(py: Python<'_>, partial: &Bound<'_, pyo3::types::PyBytes>, expected: Option<usize>) -> PyErr {
    asyncio_error(py, &INCOMPLETE_READ, "IncompleteReadError", (partial, expected))
}

/// `RuntimeError("Event loop is closed")`, as asyncio's loop raises it.
pub fn loop_closed() -> PyErr {
    PyRuntimeError::new_err("Event loop is closed")
}

/// The poller's error as the `OSError` (errno kept) it carries.
pub fn poll_err(e: plait_core::reactor::poller::PollError) -> PyErr {
    use plait_core::reactor::poller::PollError;
    match e {
        PollError::Create(e) | PollError::Poll(e) | PollError::Register { source: e, .. } => e.into(),
    }
}

/// `OSError` for an errno from a socket call.
pub fn os_error(errno: i32) -> PyErr {
    std::io::Error::from_raw_os_error(errno).into()
}
