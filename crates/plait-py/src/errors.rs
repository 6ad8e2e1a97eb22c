//! The one place where core errors become Python exceptions.
//!
//! Every exception class the binding raises is looked up here, once, and cached in a
//! [`PyOnceLock`]: the stdlib's (`queue.Empty`, `threading.BrokenBarrierError`,
//! `concurrent.futures.CancelledError`) by module name; plait's own ([`Plait`]) from the
//! `plait.exceptions` module, which lives above this binding and is handed down once at import
//! by [`_install`] (called from `plait/__init__.py`), so the binding never imports the Python API.
//! The deadlock report formatter (`plait._report`) is handed down the same way.
//!
//! One helper per job: [`sync_err`], [`queue_err`], [`ipc_err`] map the core's error enums;
//! [`os_error_for`] builds an `OSError` that keeps its errno.

use std::io;

use plait_core::ipc::frame::FrameError;
use plait_core::ipc::objects::IpcError;
use plait_core::queue::QueueError;
use plait_core::scaling::ScalingError;
use plait_core::sync::SyncError;
use pyo3::exceptions::{
    PyBrokenPipeError, PyKeyboardInterrupt, PyOSError, PyOverflowError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::blocking::PyBlocker;

// --- Installation -----------------------------------------------------------------------------

/// `plait.exceptions`, as handed down by [`_install`].
static EXCEPTIONS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// The zero-argument callable that returns the report formatter (`plait._report`); called on
/// the first report only, so `import plait` does not pay for the formatter's imports.
static REPORT_LOADER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// What [`REPORT_LOADER`] returned.
static REPORT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Hands the Python layer's pieces down to the binding; `plait/__init__.py` calls it once.
///
/// `exceptions` is an object with plait's exception classes as attributes (`plait.exceptions`);
/// `report` a zero-argument callable returning an object with `deadlock_error`, `warn_deadlock`
/// and `warn_lock_order` (`plait._report`), called on the first report. Later calls are ignored:
/// the classes handed out first stay the ones raised.
#[pyfunction]
#[pyo3(signature = (*, exceptions, report))]
fn _install(py: Python<'_>, exceptions: Py<PyAny>, report: Py<PyAny>) {
    // An error here means "already installed": keep the first.
    let _ = EXCEPTIONS.set(py, exceptions);
    let _ = REPORT_LOADER.set(py, report);
}

#[cold]
fn not_installed(what: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "plait._plait needs {what}, which `import plait` installs (plait._plait._install); \
         it was used before the plait package finished importing"
    ))
}

/// The report formatter (`plait._report`), loaded on first use.
///
/// # Errors
/// `RuntimeError` before [`_install`]; whatever the loader raises.
pub fn report(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    REPORT
        .get_or_try_init(py, || {
            let loader = REPORT_LOADER
                .get(py)
                .ok_or_else(|| not_installed("the report formatter"))?;
            loader.bind(py).call0().map(Bound::unbind)
        })
        .map(|r| r.bind(py))
}

// --- Class lookups ----------------------------------------------------------------------------

/// plait's own exception classes, defined in `plait.exceptions`.
#[derive(Clone, Copy)]
pub enum Plait {
    /// `put`/`get` on a queue that was shut down.
    ShutDown,
    /// A process died holding a process-shared lock.
    OwnerDied,
    /// A message larger than a process-shared queue's ring.
    MessageTooLarge,
    /// A thread pool whose initializer failed.
    BrokenThreadPool,
    /// A process-shared object whose words in shared memory hold values no plait process writes.
    SharedMemoryCorrupted,
}

impl Plait {
    const COUNT: usize = 5;

    fn name(self) -> &'static str {
        match self {
            Self::ShutDown => "ShutDown",
            Self::OwnerDied => "OwnerDied",
            Self::MessageTooLarge => "MessageTooLarge",
            Self::BrokenThreadPool => "BrokenThreadPool",
            Self::SharedMemoryCorrupted => "SharedMemoryCorrupted",
        }
    }
}

#[allow(
    clippy::declare_interior_mutable_const,
    reason = "only the initialiser of the array below: each element is its own cell"
)]
const EMPTY_CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static PLAIT: [PyOnceLock<Py<PyType>>; Plait::COUNT] = [EMPTY_CELL; Plait::COUNT];

/// One of plait's classes, read from the installed `plait.exceptions` on first use (a lazily
/// created class such as `BrokenThreadPool` is created then, not at `import plait`).
///
/// # Errors
/// `RuntimeError` before [`_install`]; `AttributeError`/`TypeError` if the module lacks the class.
pub fn plait_class(py: Python<'_>, which: Plait) -> PyResult<&Bound<'_, PyType>> {
    PLAIT[which as usize]
        .get_or_try_init(py, || {
            let module = EXCEPTIONS.get(py).ok_or_else(|| not_installed("plait.exceptions"))?;
            Ok::<_, PyErr>(module.bind(py).getattr(which.name())?.cast_into::<PyType>()?.unbind())
        })
        .map(|c| c.bind(py))
}

static BROKEN_BARRIER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CANCELLED: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A stdlib class by module and name, looked up once into `cell` (kept with this signature for
/// the asyncio errors of `plait.aio`).
///
/// # Errors
/// The import's or the attribute lookup's error.
pub fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    module: &str,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, module, name)
}

/// An instance of `cls(msg)` as a `PyErr` (or the error of finding the class).
fn raise<A: pyo3::PyErrArguments + Send + Sync + 'static>(cls: PyResult<&Bound<'_, PyType>>, args: A) -> PyErr {
    match cls {
        Ok(cls) => PyErr::from_type(cls.clone(), args),
        Err(e) => e,
    }
}

/// One of plait's exceptions with a message.
pub fn plait_err(py: Python<'_>, which: Plait, msg: String) -> PyErr {
    raise(plait_class(py, which), msg)
}

/// `threading.BrokenBarrierError('')`.
pub fn broken_barrier(py: Python<'_>) -> PyErr {
    raise(class(py, &BROKEN_BARRIER, "threading", "BrokenBarrierError"), "")
}

/// `queue.Empty('')`.
pub fn queue_empty(py: Python<'_>) -> PyErr {
    raise(class(py, &EMPTY, "queue", "Empty"), "")
}

/// `queue.Full(msg)`.
pub fn queue_full(py: Python<'_>, msg: String) -> PyErr {
    raise(class(py, &FULL, "queue", "Full"), msg)
}

/// `concurrent.futures.CancelledError()`.
pub fn cancelled(py: Python<'_>) -> PyErr {
    raise(class(py, &CANCELLED, "concurrent.futures", "CancelledError"), ())
}

/// `BrokenThreadPool(msg)`.
pub fn broken_thread_pool(py: Python<'_>, msg: &str) -> PyErr {
    plait_err(py, Plait::BrokenThreadPool, msg.to_owned())
}

/// `OwnerDied`: the process that held a process-shared `what` died holding it.
pub fn owner_died(py: Python<'_>, what: &str) -> PyErr {
    plait_err(
        py,
        Plait::OwnerDied,
        format!(
            "the process that held this {what} died without releasing it; this process holds it now: \
             repair the state it protects, then release it"
        ),
    )
}

// --- Builtin exceptions -----------------------------------------------------------------------

/// An `OSError` built as Python builds its own, `OSError(errno, strerror)`, so it keeps `errno`
/// (and becomes the matching subclass, e.g. `FileNotFoundError`); `what` names the object and
/// the operation. An error without an errno gives a plain `OSError(message)`.
pub fn os_error_for(what: &str, err: &io::Error) -> PyErr {
    match err.raw_os_error() {
        Some(errno) => {
            let strerror = io::Error::from_raw_os_error(errno).to_string();
            // `io::Error`'s text ends with " (os error N)": Python shows the errno itself.
            let strerror = strerror.rsplit_once(" (os error").map_or(strerror.as_str(), |(s, _)| s);
            PyOSError::new_err((errno, format!("{what}: {strerror}")))
        }
        None => PyOSError::new_err(format!("{what}: {err}")),
    }
}

/// The `OSError` of a failed send or receive on a connection: `BrokenPipeError` when the peer
/// is gone (`EPIPE` or `ECONNRESET`), else [`os_error_for`].
pub fn connection_error(what: &str, err: &io::Error) -> PyErr {
    match err.raw_os_error() {
        Some(libc::EPIPE | libc::ECONNRESET) => PyBrokenPipeError::new_err(format!("{what}: the other end is closed")),
        _ => os_error_for(what, err),
    }
}

/// The overflow of an atomic integer (thread or process-shared).
pub fn atomic_overflow() -> PyErr {
    PyOverflowError::new_err("AtomicInt overflow: the value must fit in a signed 64-bit integer")
}

// --- Core error enums -------------------------------------------------------------------------

/// Maps a scaling-law fit error: bad measurements are a `ValueError`, no solution within the
/// bounds a `RuntimeError`.
pub fn scaling_err(err: ScalingError) -> PyErr {
    match err {
        ScalingError::NoFit { .. } => PyRuntimeError::new_err(err.to_string()),
        _ => PyValueError::new_err(err.to_string()),
    }
}

/// `Interrupted`: the blocker's pending error (the signal handler's exception), or
/// `KeyboardInterrupt` when no blocker saw it.
fn interrupted(blocker: Option<&mut PyBlocker<'_, '_>>) -> PyErr {
    match blocker {
        Some(b) => b.take_err(),
        None => PyKeyboardInterrupt::new_err(()),
    }
}

/// Maps a synchronisation error; `Interrupted` takes the blocker's pending error.
pub fn sync_err(py: Python<'_>, err: SyncError, blocker: Option<&mut PyBlocker<'_, '_>>) -> PyErr {
    match err {
        SyncError::NotLocked | SyncError::NotOwned => PyRuntimeError::new_err(err.to_string()),
        SyncError::TooManyReleases => PyValueError::new_err(err.to_string()),
        SyncError::Overflow => PyOverflowError::new_err(err.to_string()),
        SyncError::BrokenBarrier => broken_barrier(py),
        SyncError::Interrupted => interrupted(blocker),
    }
}

/// Maps a queue error; `Store` errors carry the Python exception already.
pub fn queue_err(py: Python<'_>, err: QueueError<PyErr>, blocker: &mut PyBlocker<'_, '_>) -> PyErr {
    match err {
        QueueError::Empty => queue_empty(py),
        QueueError::Full => queue_full(py, String::new()),
        QueueError::ShutDown => plait_err(py, Plait::ShutDown, String::new()),
        QueueError::TooManyTaskDone => PyValueError::new_err("task_done() called too many times"),
        QueueError::Interrupted => blocker.take_err(),
        QueueError::Store(e) => e,
    }
}

/// Maps an error of a process-shared object; `Interrupted` takes the blocker's pending error.
pub fn ipc_err(py: Python<'_>, err: IpcError, blocker: Option<&mut PyBlocker<'_, '_>>) -> PyErr {
    match err {
        IpcError::Os(e) => os_error_for("shared memory", &e),
        IpcError::WrongKind { .. } => PyTypeError::new_err(err.to_string()),
        IpcError::NotLocked => PyValueError::new_err("semaphore or lock released too many times"),
        IpcError::NotOwned => PyRuntimeError::new_err(err.to_string()),
        IpcError::TooManyReleases | IpcError::TooManyTaskDone => PyValueError::new_err(err.to_string()),
        IpcError::Overflow { .. } => PyOverflowError::new_err(err.to_string()),
        IpcError::BrokenBarrier => broken_barrier(py),
        IpcError::TooLarge { .. } => plait_err(
            py,
            Plait::MessageTooLarge,
            format!("{err}: create the queue with a larger capacity= (bytes)"),
        ),
        IpcError::Corrupt { .. } => plait_err(
            py,
            Plait::SharedMemoryCorrupted,
            format!(
                "{err}: another process wrote into its segment; the object cannot be used any more: \
                 create a new one"
            ),
        ),
        IpcError::Interrupted => interrupted(blocker),
    }
}

/// Maps a framing error: a frame that cannot be sent (too large, too many descriptors) is the
/// caller's `ValueError`; a corrupt stream received is an `OSError`.
pub fn frame_err(err: FrameError) -> PyErr {
    match err {
        FrameError::TooLarge { .. } | FrameError::TooManyFds(_) => PyValueError::new_err(err.to_string()),
        FrameError::Oversized { .. } | FrameError::MissingFds { .. } => PyOSError::new_err(err.to_string()),
    }
}

/// Adds `_install` to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_install, m)?)?;
    Ok(())
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
