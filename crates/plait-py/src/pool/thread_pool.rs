//! `ThreadPoolCore`: the native half of `plait.threads.ThreadPool`.
//!
//! The task queue and worker bookkeeping are `plait_core::pool::TaskQueue`; workers are Python
//! `threading.Thread`s (so names, `threading.enumerate()` and interpreter shutdown behave as with
//! `ThreadPoolExecutor`) whose target is a native loop. `map` does not create a future per item:
//! it publishes one job that every worker joins, claiming batches of items whose size shrinks as
//! the job nears its end (guided self-scheduling), and results are yielded in order as they land.
//! Each item is still started individually (an atomic flag), and a worker that runs out of batches
//! steals items not yet started from the others' batches, so an item blocked waiting on a later
//! one never starves it: as with `ThreadPoolExecutor`, items only wait for a free worker.
//! `_starmap` runs the same job over argument tuples. `_submit_timed` queues a call with a
//! per-task timeout: the Python watchdog it names fails the future with `TaskTimeout` if the call
//! outlives it, and the worker drops the late outcome (a thread cannot be stopped).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use plait_core::pool::{Submitted, TaskQueue};
use plait_core::sync::Notifier;
use pyo3::exceptions::{PyRuntimeError, PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors;
use crate::pool::future::{new_future, FutureCore, Outcome};

/// One `submit()` call.
struct Call {
    future: Py<FutureCore>,
    func: Py<PyAny>,
    args: Py<PyTuple>,
    kwargs: Option<Py<PyDict>>,
    /// A per-task timeout: the watchdog (`plait.threads._pool._Watchdog`) and the seconds. The
    /// watchdog is armed when the task starts and disarmed when it returns; if the time runs out
    /// first it fails the future with `TaskTimeout`, and the result computed later is dropped.
    timeout: Option<(Py<PyAny>, f64)>,
}

enum Task {
    Call(Call),
    /// A worker joins a `map` job.
    Job(Arc<MapJob>),
}

enum Slot {
    Pending,
    Ok(Py<PyAny>),
    Err(Py<PyAny>),
    Cancelled,
    Taken,
}

enum Args {
    /// `map(fn, it)`: call `fn(item)`.
    One(Vec<Py<PyAny>>),
    /// `map(fn, it1, it2, ...)`: call `fn(*args)`.
    Many(Vec<Py<PyTuple>>),
}

impl Args {
    fn len(&self) -> usize {
        match self {
            Self::One(v) => v.len(),
            Self::Many(v) => v.len(),
        }
    }
}

/// A `map` call: items, per-item results, and the claim counter workers share.
struct MapJob {
    func: Py<PyAny>,
    args: Args,
    next: AtomicUsize,
    /// Per item: set by the worker that starts it (its batch owner or a thief).
    started: Vec<AtomicBool>,
    /// Items before this index are all started (where thieves resume scanning).
    steal_from: AtomicUsize,
    slots: Vec<Mutex<Slot>>,
    progress: Notifier,
    cancelled: AtomicBool,
    workers: usize,
}

/// Largest batch a worker claims at once.
const MAX_BATCH: usize = 256;

impl MapJob {
    /// Claims the next batch: a share of what is left, so batches shrink towards the end.
    fn claim(&self) -> Option<std::ops::Range<usize>> {
        let n = self.args.len();
        let mut start = self.next.load(Ordering::Relaxed);
        loop {
            if start >= n {
                return None;
            }
            let left = n - start;
            let size = (left / (self.workers * 4)).clamp(1, MAX_BATCH);
            match self
                .next
                .compare_exchange_weak(start, start + size, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(start..start + size),
                Err(s) => start = s,
            }
        }
    }

    /// Runs item `i` unless another worker started it already.
    fn run_item(&self, py: Python<'_>, i: usize) {
        if self.started[i].swap(true, Ordering::AcqRel) {
            return;
        }
        let slot = if self.cancelled.load(Ordering::Relaxed) {
            Slot::Cancelled
        } else {
            let result = match &self.args {
                Args::One(v) => self.func.bind(py).call1((v[i].bind(py),)),
                Args::Many(v) => self.func.bind(py).call1(v[i].bind(py)),
            };
            match result {
                Ok(r) => Slot::Ok(r.unbind()),
                Err(e) => Slot::Err(e.into_value(py).into_any()),
            }
        };
        *self.slots[i].lock() = slot;
        self.progress.notify();
    }

    fn run(&self, py: Python<'_>) {
        while let Some(range) = self.claim() {
            for i in range {
                self.run_item(py, i);
            }
            // Builtin functions never reach the interpreter's switch point: offer the GIL to any
            // thread that asked for it (the consumer, a signal handler in the main thread).
            py.detach(|| ());
        }
        // No batch left: help with items other workers claimed but have not started (one of
        // them may be blocked on an item further along in its own batch).
        let n = self.args.len();
        let mut i = self.steal_from.load(Ordering::Relaxed);
        while i < n {
            if !self.started[i].load(Ordering::Relaxed) {
                self.run_item(py, i);
            }
            i += 1;
            self.steal_from.fetch_max(i, Ordering::Relaxed);
        }
    }

    /// Cancels every item not started yet (workers skip them; their results read as cancelled).
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        let n = self.args.len();
        self.next.store(n, Ordering::Relaxed);
        for i in 0..n {
            if !self.started[i].swap(true, Ordering::AcqRel) {
                *self.slots[i].lock() = Slot::Cancelled;
            }
        }
        self.progress.notify();
    }
}

struct Shared {
    tasks: TaskQueue<Task>,
    initializer: Option<Py<PyAny>>,
    initargs: Py<PyTuple>,
    broken: Mutex<Option<String>>,
}

impl Shared {
    fn check_broken(&self, py: Python<'_>) -> PyResult<()> {
        let broken = self.broken.lock().clone();
        if let Some(msg) = broken {
            return Err(errors::broken_thread_pool(py, &msg));
        }
        Ok(())
    }

    fn run_task(py: Python<'_>, task: Task) {
        match task {
            Task::Call(call) => {
                let future = call.future.bind(py);
                let outcome = match FutureCore::start(future) {
                    Ok(true) if call.timeout.is_some() => Self::run_timed(py, future, &call),
                    Ok(true) => {
                        let result = call
                            .func
                            .bind(py)
                            .call(call.args.bind(py), call.kwargs.as_ref().map(|k| k.bind(py)));
                        match result {
                            Ok(v) => FutureCore::finish(future, Outcome::Ok(v.unbind())),
                            Err(e) => FutureCore::finish(future, Outcome::Err(e.into_value(py).into_any())),
                        }
                    }
                    Ok(false) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = outcome {
                    e.write_unraisable(py, Some(future.as_any()));
                }
            }
            Task::Job(job) => job.run(py),
        }
    }

    /// Runs a call that has a timeout (see [`Call::timeout`]); its future may already have failed
    /// with `TaskTimeout` when it returns, and then its outcome is dropped.
    #[cold]
    fn run_timed(py: Python<'_>, future: &Bound<'_, FutureCore>, call: &Call) -> PyResult<()> {
        let Some((watchdog, seconds)) = &call.timeout else {
            return Ok(());
        };
        let watchdog = watchdog.bind(py);
        let token = match watchdog.call_method1("arm", (future, *seconds)) {
            Ok(token) => token,
            Err(e) => return FutureCore::finish(future, Outcome::Err(e.into_value(py).into_any())),
        };
        let result = call
            .func
            .bind(py)
            .call(call.args.bind(py), call.kwargs.as_ref().map(|k| k.bind(py)));
        let disarmed = watchdog.call_method1("disarm", (token,));
        let outcome = match result {
            Ok(v) => Outcome::Ok(v.unbind()),
            Err(e) => Outcome::Err(e.into_value(py).into_any()),
        };
        FutureCore::finish_unless_done(future, outcome)?;
        disarmed.map(drop)
    }

    /// An initializer failed: the pool is broken, every queued task fails.
    fn break_pool(&self, py: Python<'_>) -> PyResult<()> {
        let msg = "A thread initializer failed, the thread pool is not usable anymore".to_owned();
        *self.broken.lock() = Some(msg.clone());
        while let Some(task) = self.tasks.try_next() {
            match task {
                Task::Call(call) => {
                    let exc = errors::broken_thread_pool(py, &msg).into_value(py).into_any();
                    let future = call.future.bind(py);
                    if FutureCore::start(future)? {
                        FutureCore::finish(future, Outcome::Err(exc))?;
                    }
                }
                Task::Job(job) => job.cancel(),
            }
        }
        Ok(())
    }

    fn worker(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(init) = &self.initializer {
            if let Err(e) = init.bind(py).call1(self.initargs.bind(py)) {
                let logger = py.import("concurrent.futures._base")?.getattr("LOGGER")?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("exc_info", e.into_value(py))?;
                logger.call_method("critical", ("Exception in initializer:",), Some(&kwargs))?;
                self.tasks.worker_exited();
                return self.break_pool(py);
            }
        }
        let mut blocker = PyBlocker::idle_worker(py);
        loop {
            let Ok(Some(task)) = self.tasks.next(&mut blocker) else {
                return Ok(());
            };
            Self::run_task(py, task);
        }
    }
}

/// The callable a worker thread runs.
#[pyclass(module = "plait._pool", frozen)]
pub struct WorkerLoop {
    shared: Arc<Shared>,
}

#[pymethods]
impl WorkerLoop {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.worker(py)
    }
}

/// Ordered results of a `map` call.
#[pyclass(module = "plait._pool", frozen)]
pub struct MapIterator {
    job: Arc<MapJob>,
    pos: AtomicUsize,
    deadline: Option<Instant>,
    /// Whether iteration began. Like `Executor.map`'s generator, an iterator dropped or closed
    /// before its first `next()` lets every item run; after that, the rest is cancelled.
    iterating: AtomicBool,
}

impl Drop for MapIterator {
    fn drop(&mut self) {
        if self.iterating.load(Ordering::Relaxed) {
            self.job.cancel();
        }
    }
}

#[pymethods]
impl MapIterator {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let job = &self.job;
        self.iterating.store(true, Ordering::Relaxed);
        // Claim the position first, so two threads iterating at once never take the same item.
        let i = self.pos.fetch_add(1, Ordering::Relaxed);
        if i >= job.args.len() {
            self.pos.store(job.args.len(), Ordering::Relaxed);
            return Ok(None);
        }
        let ready = || !matches!(*job.slots[i].lock(), Slot::Pending);
        if !ready() {
            let mut blocker = PyBlocker::new(py);
            match job.progress.wait_until(ready, self.deadline, &mut blocker) {
                Ok(true) => {}
                Ok(false) => {
                    self.finish();
                    return Err(PyTimeoutError::new_err(()));
                }
                Err(_) => {
                    self.finish();
                    return Err(blocker.take_err());
                }
            }
        }
        let slot = std::mem::replace(&mut *job.slots[i].lock(), Slot::Taken);
        match slot {
            Slot::Ok(v) => Ok(Some(v)),
            Slot::Err(e) => {
                self.finish();
                Err(PyErr::from_value(e.into_bound(py)))
            }
            Slot::Cancelled => {
                self.finish();
                Err(errors::cancelled(py))
            }
            Slot::Pending | Slot::Taken => Err(PyRuntimeError::new_err("map result taken twice")),
        }
    }

    /// How many items the map has (for a progress bar's total).
    #[getter]
    fn _total(&self) -> usize {
        self.job.args.len()
    }

    /// Stop early: once iteration has begun, items not started yet are cancelled.
    fn close(&self) {
        self.pos.store(self.job.args.len(), Ordering::Relaxed);
        if self.iterating.load(Ordering::Relaxed) {
            self.job.cancel();
        }
    }
}

impl MapIterator {
    /// Ends iteration (after an error or a time-out) and cancels what is left.
    fn finish(&self) {
        self.pos.store(self.job.args.len(), Ordering::Relaxed);
        self.job.cancel();
    }
}

/// Native base of `plait.threads.ThreadPool`.
#[pyclass(module = "plait._pool", frozen, subclass)]
pub struct ThreadPoolCore {
    shared: Arc<Shared>,
}

impl Drop for ThreadPoolCore {
    fn drop(&mut self) {
        // An abandoned pool lets its workers finish the queue and exit, like ThreadPoolExecutor.
        let _ = self.shared.tasks.shutdown(false);
    }
}

/// A map's deadline: `timeout` seconds from now (a negative timeout is already due).
fn deadline_of(timeout: Option<f64>) -> Option<Instant> {
    timeout.map(|t| optional_deadline(Some(t.max(0.0))).unwrap_or_else(Instant::now))
}

fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cpus + 4).min(32)
}

impl ThreadPoolCore {
    fn queue_call(slf: &Bound<'_, Self>, call: Call) -> PyResult<()> {
        match slf.get().shared.tasks.submit(Task::Call(call)) {
            Ok(Submitted::Queued) => Ok(()),
            Ok(Submitted::StartWorker) => Self::start_workers(slf, 1),
            Err(_) => Err(PyRuntimeError::new_err("cannot schedule new futures after shutdown")),
        }
    }

    fn start_job(
        slf: &Bound<'_, Self>,
        func: Py<PyAny>,
        args: Args,
        deadline: Option<Instant>,
    ) -> PyResult<MapIterator> {
        let shared = &slf.get().shared;
        let n = args.len();
        let workers = shared.tasks.max_workers().min(n).max(1);
        let job = Arc::new(MapJob {
            func,
            args,
            next: AtomicUsize::new(0),
            started: (0..n).map(|_| AtomicBool::new(false)).collect(),
            steal_from: AtomicUsize::new(0),
            slots: (0..n).map(|_| Mutex::new(Slot::Pending)).collect(),
            progress: Notifier::new(),
            cancelled: AtomicBool::new(false),
            workers,
        });
        if n > 0 {
            let start = shared
                .tasks
                .submit_many((0..workers).map(|_| Task::Job(Arc::clone(&job))))
                .map_err(|_| PyRuntimeError::new_err("cannot schedule new futures after shutdown"))?;
            Self::start_workers(slf, start)?;
        }
        Ok(MapIterator {
            job,
            pos: AtomicUsize::new(0),
            deadline,
            iterating: AtomicBool::new(false),
        })
    }

    fn start_workers(slf: &Bound<'_, Self>, n: usize) -> PyResult<()> {
        for started in 0..n {
            if let Err(e) = slf.call_method0("_start_worker") {
                // Un-count this worker and every one after it: none of them exists.
                for _ in started..n {
                    slf.get().shared.tasks.worker_exited();
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

#[pymethods]
impl ThreadPoolCore {
    #[new]
    #[pyo3(signature = (max_workers=None, thread_name_prefix="", initializer=None, initargs=None))]
    fn new(
        py: Python<'_>,
        max_workers: Option<i64>,
        thread_name_prefix: &str,
        initializer: Option<Py<PyAny>>,
        initargs: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let _ = thread_name_prefix;
        let max_workers = match max_workers {
            None => default_workers(),
            Some(n) if n <= 0 => return Err(PyValueError::new_err("max_workers must be greater than 0")),
            Some(n) => n as usize,
        };
        let initializer = initializer.filter(|i| !i.is_none(py));
        if let Some(init) = &initializer {
            if !init.bind(py).is_callable() {
                return Err(PyTypeError::new_err("initializer must be a callable"));
            }
        }
        let initargs = match initargs {
            None => PyTuple::empty(py).unbind(),
            Some(a) => PyTuple::new(py, a.try_iter()?.collect::<PyResult<Vec<_>>>()?)?.unbind(),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                tasks: TaskQueue::new(max_workers),
                initializer,
                initargs,
                broken: Mutex::new(None),
            }),
        })
    }

    /// Schedule `fn(*args, **kwargs)`; returns its future.
    #[pyo3(signature = (r#fn, /, *args, **kwargs))]
    fn submit<'py>(
        slf: &Bound<'py, Self>,
        r#fn: Py<PyAny>,
        args: Bound<'py, PyTuple>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, FutureCore>> {
        let py = slf.py();
        let shared = &slf.get().shared;
        shared.check_broken(py)?;
        let future = new_future(py)?;
        let call = Call {
            future: future.clone().unbind(),
            func: r#fn,
            args: args.unbind(),
            kwargs: kwargs.map(Bound::unbind),
            timeout: None,
        };
        Self::queue_call(slf, call)?;
        Ok(future)
    }

    /// `submit` with a per-task timeout enforced by `watchdog` (see `ThreadPool.options`).
    fn _submit_timed<'py>(
        slf: &Bound<'py, Self>,
        r#fn: Py<PyAny>,
        args: Bound<'py, PyTuple>,
        kwargs: Option<Bound<'py, PyDict>>,
        timeout: f64,
        watchdog: Py<PyAny>,
    ) -> PyResult<Bound<'py, FutureCore>> {
        let py = slf.py();
        slf.get().shared.check_broken(py)?;
        let future = new_future(py)?;
        let call = Call {
            future: future.clone().unbind(),
            func: r#fn,
            args: args.unbind(),
            kwargs: kwargs.map(Bound::unbind),
            timeout: Some((watchdog, timeout)),
        };
        Self::queue_call(slf, call)?;
        Ok(future)
    }

    /// `fn` applied to every item (of the zipped iterables), results in order. The iterables are
    /// consumed at once; `timeout` counts from this call. `chunksize` is accepted for
    /// compatibility: batches are sized automatically.
    #[pyo3(signature = (r#fn, *iterables, timeout=None, chunksize=1))]
    fn map(
        slf: &Bound<'_, Self>,
        r#fn: Py<PyAny>,
        iterables: Bound<'_, PyTuple>,
        timeout: Option<f64>,
        chunksize: i64,
    ) -> PyResult<MapIterator> {
        let py = slf.py();
        let _ = chunksize;
        slf.get().shared.check_broken(py)?;
        let deadline = deadline_of(timeout);
        let args = if iterables.len() == 1 {
            Args::One(
                iterables
                    .get_item(0)?
                    .try_iter()?
                    .map(|x| x.map(Bound::unbind))
                    .collect::<PyResult<_>>()?,
            )
        } else {
            let zip = py.import("builtins")?.getattr("zip")?.call1(&iterables)?;
            Args::Many(
                zip.try_iter()?
                    .map(|x| x.and_then(|t| Ok(t.cast_into::<PyTuple>()?.unbind())))
                    .collect::<PyResult<_>>()?,
            )
        };
        Self::start_job(slf, r#fn, args, deadline)
    }

    /// `fn(*args)` for every `args` of `iterable`, results in order (`ThreadPool.starmap`); the
    /// iterable is consumed at once.
    #[pyo3(signature = (r#fn, iterable, timeout=None))]
    fn _starmap(
        slf: &Bound<'_, Self>,
        r#fn: Py<PyAny>,
        iterable: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<MapIterator> {
        slf.get().shared.check_broken(slf.py())?;
        let deadline = deadline_of(timeout);
        let args = Args::Many(
            iterable
                .try_iter()?
                .map(|x| {
                    let x = x?;
                    match x.cast_into::<PyTuple>() {
                        Ok(t) => Ok(t.unbind()),
                        Err(e) => Ok(PyTuple::new(
                            slf.py(),
                            e.into_inner().try_iter()?.collect::<PyResult<Vec<_>>>()?,
                        )?
                        .unbind()),
                    }
                })
                .collect::<PyResult<_>>()?,
        );
        Self::start_job(slf, r#fn, args, deadline)
    }

    /// The target for a new worker thread.
    fn _worker_target(&self) -> WorkerLoop {
        WorkerLoop {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stop accepting work; with `cancel_futures`, cancel what has not started.
    #[pyo3(signature = (cancel_futures=false))]
    fn _shutdown_core(&self, py: Python<'_>, cancel_futures: bool) -> PyResult<()> {
        let mut first_error = None;
        for task in self.shared.tasks.shutdown(cancel_futures) {
            match task {
                // Cancel every one even if a done-callback raises; report the first error after.
                Task::Call(call) => {
                    if let Err(e) = FutureCore::cancel_impl(call.future.bind(py)) {
                        first_error.get_or_insert(e);
                    }
                }
                Task::Job(job) => job.cancel(),
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Most workers this pool will run.
    #[getter]
    fn _max_workers(&self) -> usize {
        self.shared.tasks.max_workers()
    }

    /// Tasks waiting for a worker.
    #[getter]
    fn _pending(&self) -> usize {
        self.shared.tasks.pending()
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ThreadPoolCore>()?;
    m.add_class::<WorkerLoop>()?;
    m.add_class::<MapIterator>()?;
    Ok(())
}
