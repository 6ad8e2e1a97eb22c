//! `ProcessPoolCore`: the native half of `plait.processes.ProcessPool`.
//!
//! `ProcessPoolCore` wraps `plait_core::supervise::pool::Pool` with the pool's futures as tickets;
//! its sink completes them on the dispatcher thread, turning payloads back into Python objects
//! with two decoders supplied by `plait.processes` (pickle lives in Python). `FrameChannel` is the
//! worker's end of the wire: blocking frame reads and writes on a socket, detached from the
//! interpreter while they wait.

use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use plait_core::supervise::pool::{Config, Outcome, Pool, Runner, Sink};
use plait_core::supervise::{Exit, Reaper};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::blocking::{run_pending, PENDING_SLICE};
use crate::errors::os_error_for;
use crate::ipc::shm::{segments, Segment};
use crate::pool::future::{new_future, FutureCore, Outcome as FutureOutcome};

/// Turns dispatcher outcomes into future completions (on the dispatcher thread).
///
/// Outcomes go to the completer thread (`run_completer`) over a channel: the dispatcher never
/// waits for the interpreter, so it goes on feeding workers while Python code runs.
struct FutureSink {
    done: std::sync::mpsc::Sender<Batch>,
}

/// Finished tasks, as the dispatcher delivers them.
type Batch = Vec<(Py<FutureCore>, Outcome)>;

/// Completes futures with outcomes, on the completer thread (attached to the interpreter).
struct Completer {
    /// `plait.processes._complete(future, kind, payload, segments)`: decodes and completes in
    /// Python.
    complete: Py<PyAny>,
    /// `pickle.loads`, for the common case (a result) handled here.
    loads: Option<Py<PyAny>>,
    /// Whether results may be unpickled here (`loads`); without, every payload goes to
    /// `complete` as bytes (a cluster backend forwards them unread).
    decode: bool,
}

/// What `_complete` receives as `kind`.
const DONE_OK: u8 = 0;
const DONE_ERR: u8 = 1;
const DONE_CRASHED: u8 = 2;
const DONE_TIMED_OUT: u8 = 3;
const DONE_CANCELLED: u8 = 4;
const DONE_BROKEN: u8 = 5;
const DONE_UNSENDABLE: u8 = 6;

impl Sink<Py<FutureCore>> for FutureSink {
    fn start(&mut self, ticket: &Py<FutureCore>) -> bool {
        match ticket.get().try_start_detached() {
            Some(started) => started,
            None => Python::attach(|py| FutureCore::start(ticket.bind(py)).unwrap_or(false)),
        }
    }

    fn finish(&mut self, done: Vec<(Py<FutureCore>, Outcome)>) {
        // Fails only once the completer is gone (interpreter exit): nothing is left to complete.
        let _ = self.done.send(done);
    }
}

impl Completer {
    fn complete_batch(&mut self, done: Vec<(Py<FutureCore>, Outcome)>) {
        Python::attach(|py| {
            let complete = self.complete.bind(py);
            if self.loads.is_none() && self.decode {
                self.loads = py
                    .import("pickle")
                    .and_then(|m| m.getattr("loads"))
                    .ok()
                    .map(Bound::unbind);
            }
            for (future, outcome) in done {
                // The hot path: a running future and its pickled result.
                let outcome = match (outcome, &self.loads) {
                    (Outcome::Ok(bytes, fds), Some(loads)) if fds.is_empty() && future.get().is_running() => {
                        match loads.bind(py).call1((PyBytes::new(py, &bytes),)) {
                            Ok(value) => {
                                if let Err(e) = FutureCore::finish(future.bind(py), FutureOutcome::Ok(value.unbind())) {
                                    e.write_unraisable(py, Some(future.bind(py).as_any()));
                                }
                                continue;
                            }
                            // A result that does not unpickle: the Python side reports it the way
                            // ProcessPoolExecutor does (it unpickles once more, to get the error).
                            Err(_) => Outcome::Ok(bytes, fds),
                        }
                    }
                    (outcome, _) => outcome,
                };
                let mut extra = None;
                let (kind, payload): (u8, Bound<'_, PyAny>) = match outcome {
                    Outcome::Ok(bytes, fds) => {
                        if !fds.is_empty() {
                            // The result's large buffers, in shared memory.
                            match segments(py, fds, false) {
                                Ok(list) => extra = Some(list),
                                Err(e) => {
                                    let value = e.into_value(py).into_any();
                                    if let Err(e2) = FutureCore::finish(future.bind(py), FutureOutcome::Err(value)) {
                                        e2.write_unraisable(py, Some(future.bind(py).as_any()));
                                    }
                                    continue;
                                }
                            }
                        }
                        (DONE_OK, PyBytes::new(py, &bytes).into_any())
                    }
                    Outcome::Err(bytes) => (DONE_ERR, PyBytes::new(py, &bytes).into_any()),
                    Outcome::Crashed(exit) => (
                        DONE_CRASHED,
                        (exit.to_string(), exit_code(exit), exit_signal(exit))
                            .into_pyobject(py)
                            .map_or_else(|_| py.None().into_bound(py), Bound::into_any),
                    ),
                    Outcome::TimedOut(t) => (
                        DONE_TIMED_OUT,
                        t.as_secs_f64()
                            .into_pyobject(py)
                            .map_or_else(|_| py.None().into_bound(py), Bound::into_any),
                    ),
                    Outcome::Cancelled => (DONE_CANCELLED, py.None().into_bound(py)),
                    Outcome::Unsendable(reason) => (
                        DONE_UNSENDABLE,
                        reason
                            .into_pyobject(py)
                            .map_or_else(|_| py.None().into_bound(py), Bound::into_any),
                    ),
                    Outcome::Broken(reason) => (
                        DONE_BROKEN,
                        reason
                            .into_pyobject(py)
                            .map_or_else(|_| py.None().into_bound(py), Bound::into_any),
                    ),
                };
                if let Err(e) = complete.call1((future.bind(py), kind, payload, extra)) {
                    // The decoder itself failed: fail the future rather than leave it pending.
                    let value = e.into_value(py).into_any();
                    if future.get().is_live() {
                        if let Err(e2) = FutureCore::finish(future.bind(py), FutureOutcome::Err(value)) {
                            e2.write_unraisable(py, Some(future.bind(py).as_any()));
                        }
                    }
                }
            }
        });
    }
}

fn exit_code(exit: Exit) -> Option<i32> {
    match exit {
        Exit::Code(c) => Some(c),
        Exit::Signal(_) | Exit::Unknown => None,
    }
}

fn exit_signal(exit: Exit) -> Option<i32> {
    match exit {
        Exit::Signal(s) => Some(s),
        Exit::Code(_) | Exit::Unknown => None,
    }
}

/// Native half of `plait.processes.ProcessPool`.
#[pyclass(module = "plait.processes", frozen)]
pub struct ProcessPoolCore {
    pool: Pool<Py<FutureCore>>,
    runner: Mutex<Option<Runner>>,
    completer: Mutex<Option<(Completer, std::sync::mpsc::Receiver<Batch>)>>,
}

#[pymethods]
impl ProcessPoolCore {
    /// Starts `workers` processes running `command + [fd]`, each sent `hello` first, with
    /// duplicates of `hello_fds` (duplicated here: the caller keeps its own). With `decode`
    /// false, `complete` gets every result as its pickled bytes (none is unpickled here).
    #[new]
    #[pyo3(signature = (workers, command, hello, complete, max_tasks_per_worker=None, fork=None, reap=None, hello_fds=Vec::new(), decode=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        workers: usize,
        command: Vec<std::ffi::OsString>,
        hello: Vec<u8>,
        complete: Py<PyAny>,
        max_tasks_per_worker: Option<u64>,
        fork: Option<Py<PyAny>>,
        reap: Option<Py<PyAny>>,
        hello_fds: Vec<std::os::fd::RawFd>,
        decode: bool,
    ) -> PyResult<Self> {
        if workers == 0 {
            return Err(PyValueError::new_err("max_workers must be greater than 0"));
        }
        if max_tasks_per_worker == Some(0) {
            return Err(PyValueError::new_err("max_tasks_per_worker must be at least 1"));
        }
        // `fork(fd) -> pid` starts a worker by forking this interpreter (start_method="fork"),
        // or returns None when it cannot (then `command` starts it).
        let launch = fork.map(|fork| -> plait_core::supervise::pool::Launch {
            Box::new(move |fd| {
                Python::attach(|py| fork.bind(py).call1((fd,))?.extract::<Option<i32>>())
                    .map_err(|e| std::io::Error::other(e.to_string()))
            })
        });
        if reap.is_some() && launch.is_none() {
            return Err(PyValueError::new_err(
                "reap needs fork: it reaps the workers fork starts",
            ));
        }
        // `reap(pid) -> wait status`: the workers `fork` starts are not our children (a fork
        // server's, start_method="forkserver"), so their parent reports how they ended.
        let reap = reap.map(|reap| -> Reaper {
            Arc::new(move |pid| {
                let status = Python::attach(|py| reap.bind(py).call1((pid,))?.extract::<i32>())
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Exit::from_wait_status(status)
                    .ok_or_else(|| std::io::Error::other(format!("{status} is not the wait status of an exit")))
            })
        });
        if hello_fds.len() > plait_core::ipc::frame::MAX_FDS {
            return Err(PyValueError::new_err(format!(
                "the workers' setup holds {} descriptors, more than the {} one message can carry",
                hello_fds.len(),
                plait_core::ipc::frame::MAX_FDS
            )));
        }
        let hello_fds = hello_fds
            .into_iter()
            .map(|fd| {
                if fd < 0 {
                    return Err(PyValueError::new_err(format!("{fd} is not a file descriptor")));
                }
                // SAFETY: borrowed only for the duplication, while the caller holds it open.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
                    .try_clone_to_owned()
                    .map_err(|e| os_error_for("cannot duplicate a descriptor of the workers' setup", &e))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let config = Config {
            workers,
            launch,
            reap,
            command,
            hello,
            hello_fds,
            max_tasks_per_worker,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let (pool, runner) = Pool::new(config, FutureSink { done: tx })
            .map_err(|e| os_error_for("cannot start the process pool", &e))?;
        Ok(Self {
            pool,
            runner: Mutex::new(Some(runner)),
            completer: Mutex::new(Some((
                Completer {
                    complete,
                    loads: None,
                    decode,
                },
                rx,
            ))),
        })
    }

    /// Queues a task; returns `(future, task_id)`. `definition` is the pickled function the
    /// first time `func` is used; `segments` (shared memory holding the arguments' large
    /// buffers) are sent to the worker with the task.
    #[pyo3(signature = (func, definition, body, timeout=None, segments=None))]
    fn submit<'py>(
        &self,
        py: Python<'py>,
        func: u64,
        definition: Option<Vec<u8>>,
        body: Vec<u8>,
        timeout: Option<f64>,
        segments: Option<Vec<Py<Segment>>>,
    ) -> PyResult<(Bound<'py, FutureCore>, u64)> {
        let timeout = match timeout {
            None => None,
            Some(t) if t > 0.0 && t.is_finite() => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "timeout must be a positive number, not {t}"
                )))
            }
        };
        let fds = segments
            .iter()
            .flatten()
            .map(|s| s.get().dup_fd())
            .collect::<PyResult<Vec<_>>>()?;
        let future = new_future(py)?;
        let ticket = future.clone().unbind();
        match self
            .pool
            .submit(func, definition.map(Arc::new), body, fds, timeout, ticket)
        {
            Ok(id) => {
                future.get().set_task_id(id);
                Ok((future, id))
            }
            Err(_) => Err(PyRuntimeError::new_err("cannot schedule new futures after shutdown")),
        }
    }

    /// Kills the worker running task `task_id`; the task fails with `CancelledError`.
    fn cancel_running(&self, task_id: u64) {
        self.pool.cancel_running(task_id);
    }

    /// Stops accepting tasks; with `cancel`, queued tasks are cancelled.
    #[pyo3(signature = (cancel=false))]
    fn shutdown(&self, cancel: bool) {
        self.pool.shutdown(cancel);
    }

    /// Runs the dispatcher (the target of the pool's dispatcher thread) until the pool has shut
    /// down and every worker has exited.
    fn run_dispatcher(&self, py: Python<'_>) -> PyResult<()> {
        let runner = self
            .runner
            .lock()
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the dispatcher already ran"))?;
        py.detach(|| runner.run());
        self.pool.release();
        Ok(())
    }

    /// Completes the pool's futures (the target of the pool's completer thread) until the
    /// dispatcher has exited and every outcome is delivered.
    fn run_completer(&self, py: Python<'_>) -> PyResult<()> {
        let (mut completer, mut rx) = self
            .completer
            .lock()
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the completer already ran"))?;
        loop {
            // (The receiver is not Sync: it goes into the detached closure and comes back.)
            // Woken now and then to free the results that the program dropped (on a
            // free-threaded build this thread, which made them, must: see `run_pending`).
            let slice = if cfg!(Py_GIL_DISABLED) {
                PENDING_SLICE
            } else {
                Duration::MAX
            };
            let (got, back) = py.detach(move || (rx.recv_timeout(slice), rx));
            rx = back;
            let mut batch = match got {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = run_pending(py) {
                        e.write_unraisable(py, None);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Everything that arrived meanwhile, in one pass with the interpreter.
            while let Ok(more) = rx.try_recv() {
                batch.extend(more);
            }
            completer.complete_batch(batch);
        }
        Ok(())
    }

    /// What each busy worker runs, for dumps: `(pid, task_id, func_id, body, segments,
    /// seconds)`, with the first 64 KiB of the task's body (`segments`: it starts with the
    /// table of its shared-memory segments). Asked of the dispatcher thread, waiting at most
    /// `timeout` seconds.
    #[pyo3(signature = (timeout=1.0))]
    fn running_tasks<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
    ) -> Vec<(i32, u64, u64, Bound<'py, pyo3::types::PyBytes>, bool, f64)> {
        let timeout = Duration::try_from_secs_f64(timeout).unwrap_or(Duration::ZERO);
        let busy = py.detach(|| self.pool.running(timeout));
        busy.into_iter()
            .map(|b| {
                let body = pyo3::types::PyBytes::new(py, &b.body);
                (b.pid, b.task, b.func, body, b.segments, b.running_for.as_secs_f64())
            })
            .collect()
    }

    /// The process id of each worker slot, 0 for an empty one (see `Pool::worker_pids`).
    fn worker_pids(&self) -> Vec<i32> {
        self.pool.worker_pids()
    }

    /// Whether `shutdown` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.pool.is_closed()
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ProcessPoolCore>()?;
    m.add("PROTOCOL", {
        use plait_core::supervise::pool as p;
        (
            p::HELLO,
            p::DEFINE,
            p::TASK,
            p::SHUTDOWN,
            p::READY,
            p::OK,
            p::ERR,
            p::INIT_FAILED,
        )
    })?;
    m.add(
        "DONE_KINDS",
        (
            DONE_OK,
            DONE_ERR,
            DONE_CRASHED,
            DONE_TIMED_OUT,
            DONE_CANCELLED,
            DONE_BROKEN,
            DONE_UNSENDABLE,
        ),
    )?;
    Ok(())
}
