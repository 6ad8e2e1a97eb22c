//! `ProcessPoolCore` and `FrameChannel`: the native halves of `plait.processes`.
//!
//! `ProcessPoolCore` wraps `plait_core::supervise::pool::Pool` with the pool's futures as tickets;
//! its sink completes them on the dispatcher thread, turning payloads back into Python objects
//! with two decoders supplied by `plait.processes` (pickle lives in Python). `FrameChannel` is the
//! worker's end of the wire: blocking frame reads and writes on a socket, detached from the
//! interpreter while they wait.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use plait_core::ipc::fdpass;
use plait_core::ipc::frame::Decoder;
use plait_core::ipc::outbox::Outbox;
use plait_core::supervise::pool::{Config, Outcome, Pool, Runner, Sink};
use plait_core::supervise::{Exit, Reaper};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList};

use crate::ipc::shm::Segment;
use crate::pool::future::{new_future, FutureCore, Outcome as FutureOutcome};

/// Maps received segment descriptors as a list of `Segment`s (see `Segment::open`).
fn segments(py: Python<'_>, fds: Vec<OwnedFd>, keep_fds: bool) -> PyResult<Bound<'_, PyList>> {
    let mapped = fds
        .into_iter()
        .map(|fd| {
            if keep_fds {
                Segment::open(fd, true)
            } else {
                Segment::open_spare(fd)
            }
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, mapped)
}

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
            if self.loads.is_none() {
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
                        let finished = loads
                            .bind(py)
                            .call1((PyBytes::new(py, &bytes),))
                            .map(Bound::unbind)
                            .map_err(|e| e.into_value(py).into_any())
                            .map_or_else(FutureOutcome::Err, FutureOutcome::Ok);
                        if let Err(e) = FutureCore::finish(future.bind(py), finished) {
                            e.write_unraisable(py, Some(future.bind(py).as_any()));
                        }
                        continue;
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
    /// Starts `workers` processes running `command + [fd]`, each sent `hello` first.
    #[new]
    #[pyo3(signature = (workers, command, hello, complete, max_tasks_per_worker=None, fork=None, reap=None))]
    fn new(
        workers: usize,
        command: Vec<std::ffi::OsString>,
        hello: Vec<u8>,
        complete: Py<PyAny>,
        max_tasks_per_worker: Option<u64>,
        fork: Option<Py<PyAny>>,
        reap: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        if workers == 0 {
            return Err(PyValueError::new_err("max_workers must be greater than 0"));
        }
        if max_tasks_per_worker == Some(0) {
            return Err(PyValueError::new_err("max_tasks_per_worker must be at least 1"));
        }
        // `fork(fd) -> pid` starts a worker by forking this interpreter (start_method="fork").
        let launch = fork.map(|fork| -> plait_core::supervise::pool::Launch {
            Box::new(move |fd| {
                Python::attach(|py| fork.bind(py).call1((fd,))?.extract::<i32>())
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
        let config = Config {
            workers,
            launch,
            reap,
            command,
            hello,
            max_tasks_per_worker,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let (pool, runner) = Pool::new(config, FutureSink { done: tx })
            .map_err(|e| PyOSError::new_err(format!("cannot start the process pool: {e}")))?;
        Ok(Self {
            pool,
            runner: Mutex::new(Some(runner)),
            completer: Mutex::new(Some((Completer { complete, loads: None }, rx))),
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
            let (got, back) = py.detach(move || (rx.recv(), rx));
            rx = back;
            let Ok(mut batch) = got else { break };
            // Everything that arrived meanwhile, in one pass with the interpreter.
            while let Ok(more) = rx.try_recv() {
                batch.extend(more);
            }
            completer.complete_batch(batch);
        }
        Ok(())
    }

    /// Whether `shutdown` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.pool.is_closed()
    }
}

/// The worker's end of the wire: frames over a socket fd it owns.
#[pyclass(module = "plait.processes", frozen)]
pub struct FrameChannel {
    stream: UnixStream,
    decoder: Mutex<Decoder>,
    write: Mutex<Outbox>,
}

#[pymethods]
impl FrameChannel {
    /// Takes ownership of `fd` (a connected Unix stream socket).
    #[new]
    fn new(fd: i32) -> PyResult<Self> {
        if fd < 0 {
            return Err(PyValueError::new_err("fd must be a non-negative file descriptor"));
        }
        // Safety: the caller hands over an open socket fd it will not use again.
        let stream = unsafe { UnixStream::from_raw_fd(fd) };
        Ok(Self {
            stream,
            decoder: Mutex::new(Decoder::default()),
            write: Mutex::new(Outbox::default()),
        })
    }

    /// The next frame as `(kind, id, payload, segments)` (`segments`: None, or the list of
    /// shared-memory segments sent with the frame); `(0, 0, b"", None)` once the peer closed the
    /// socket. Frames queued by `send` go out before this blocks, so replies to a batch of
    /// requests leave in one write.
    #[allow(clippy::type_complexity)]
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<(u8, u64, Bound<'py, PyBytes>, Option<Bound<'py, PyList>>)> {
        let ready = self
            .decoder
            .lock()
            .next_frame()
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        if let Some(f) = ready {
            return frame_tuple(py, f);
        }
        let got = py.detach(|| -> std::io::Result<Option<plait_core::ipc::frame::Frame>> {
            self.flush_pending()?;
            let mut decoder = self.decoder.lock();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if let Some(frame) = decoder.next_frame().map_err(std::io::Error::other)? {
                    return Ok(Some(frame));
                }
                match fdpass::recv(self.stream.as_raw_fd(), &mut buf, decoder.push_fds()) {
                    Ok(0) => return Ok(None),
                    Ok(n) => decoder.feed(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        });
        match got {
            Ok(Some(f)) => frame_tuple(py, f),
            Ok(None) => Ok((0, 0, PyBytes::new(py, b""), None)),
            Err(e) => Err(PyOSError::new_err(e.to_string())),
        }
    }

    /// Queues one frame, with `segments` (shared memory created here) sent beside it; it is
    /// written by the next `recv` that has to wait, or by `flush`.
    #[pyo3(signature = (kind, id, payload, segments=None))]
    fn send(&self, kind: u8, id: u64, payload: &[u8], segments: Option<Vec<Py<Segment>>>) -> PyResult<()> {
        let fds = segments
            .iter()
            .flatten()
            .map(|s| s.get().dup_fd())
            .collect::<PyResult<Vec<_>>>()?;
        self.write
            .lock()
            .push(kind, id, payload, fds)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Writes every queued frame now.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.flush_pending())
            .map_err(|e| PyOSError::new_err(e.to_string()))
    }
}

impl FrameChannel {
    fn flush_pending(&self) -> std::io::Result<()> {
        // A blocking socket: write_to returns once everything is written.
        while !self.write.lock().write_to(self.stream.as_raw_fd())? {}
        Ok(())
    }
}

#[allow(clippy::type_complexity)]
fn frame_tuple(
    py: Python<'_>,
    f: plait_core::ipc::frame::Frame,
) -> PyResult<(u8, u64, Bound<'_, PyBytes>, Option<Bound<'_, PyList>>)> {
    let segs = if f.fds.is_empty() {
        None
    } else {
        // A worker keeps the descriptors: a result may be a view of its arguments, sent back.
        Some(segments(py, f.fds, true)?)
    };
    Ok((f.kind, f.id, PyBytes::new(py, &f.payload), segs))
}

/// A list of numbers as one block of bytes, when every item is an exact `int` that fits 64
/// bits (`"q"`) or every item an exact `float` (`"d"`); `None` otherwise. A map's chunk of
/// results travels this way: packing costs a few ns per item in the worker, and the caller
/// rebuilds the numbers faster than it would unpickle them one by one.
#[pyfunction]
pub fn pack_numbers<'py>(py: Python<'py>, items: &Bound<'py, PyList>) -> Option<(char, Bound<'py, PyBytes>)> {
    let n = items.len();
    let first = items.get_item(0).ok()?;
    let mut out = Vec::with_capacity(n * 8);
    if first.is_exact_instance_of::<PyInt>() {
        for item in items.iter() {
            if !item.is_exact_instance_of::<PyInt>() {
                return None;
            }
            out.extend_from_slice(&item.extract::<i64>().ok()?.to_le_bytes());
        }
        Some(('q', PyBytes::new(py, &out)))
    } else if first.is_exact_instance_of::<PyFloat>() {
        for item in items.iter() {
            let f = item.cast_exact::<PyFloat>().ok()?;
            out.extend_from_slice(&f.value().to_le_bytes());
        }
        Some(('d', PyBytes::new(py, &out)))
    } else {
        None
    }
}

/// The list packed by `pack_numbers`.
#[pyfunction]
pub fn unpack_numbers<'py>(py: Python<'py>, kind: char, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let words = data.chunks_exact(8).map(|c| <[u8; 8]>::try_from(c).expect("8 bytes"));
    match kind {
        'q' => PyList::new(py, words.map(i64::from_le_bytes)),
        'd' => PyList::new(py, words.map(f64::from_le_bytes)),
        _ => Err(PyValueError::new_err(format!("unknown number kind {kind:?}"))),
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pack_numbers, m)?)?;
    m.add_function(wrap_pyfunction!(unpack_numbers, m)?)?;
    m.add_class::<ProcessPoolCore>()?;
    m.add_class::<FrameChannel>()?;
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
