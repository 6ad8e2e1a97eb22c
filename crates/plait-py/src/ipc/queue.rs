//! Cross-process objects in shared memory: the native halves of `plait.processes.Queue`,
//! `Lock`, `RLock`, `Semaphore`, `Event`, `Condition`, `Barrier` and `AtomicInt`.
//!
//! Each object lives in its own segment (`plait_core::ipc::objects`); the Python classes
//! subclass these to add pickling (a handle that reattaches the segment in a child) and the
//! `multiprocessing` extras. Every blocking wait goes through [`PyBlocker`]: detached from the
//! interpreter, and interruptible by Ctrl-C in the main thread.
//!
//! Queue messages are encoded here, in the caller: `bytes`, `str`, `int` (64-bit), `float`
//! and `None` directly, anything else with `pickle.dumps(obj, protocol=5)` (so an unpicklable
//! object raises at `put`).

#![allow(
    clippy::used_underscore_binding,
    reason = "`_segment` is the private keyword the Python constructors reattach with"
)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use plait_core::ipc::objects::{self as core, IpcError, Layout, Shared};
use plait_core::ipc::process;
use plait_core::ipc::ring::{self, Message, SharedRing};
use plait_core::ipc::robust::{Acquired, RobustLock};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyOSError, PyOverflowError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PySlice, PyString, PyTuple, PyType,
};

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors::class;
use crate::ipc::shm::Segment;

static OWNER_DIED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TOO_LARGE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BROKEN_BARRIER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

pub(crate) fn new_err(
    py: Python<'_>,
    cell: &'static PyOnceLock<Py<PyType>>,
    module: &str,
    name: &str,
    msg: String,
) -> PyErr {
    match class(py, cell, module, name) {
        Ok(cls) => PyErr::from_type(cls.clone(), msg),
        Err(e) => e,
    }
}

/// The one mapping of core errors to Python exceptions for this module.
pub(crate) fn ipc_err(py: Python<'_>, err: IpcError, blocker: Option<&mut PyBlocker<'_, '_>>) -> PyErr {
    match err {
        IpcError::Os(e) => PyOSError::new_err(format!("shared memory: {e}")),
        IpcError::WrongKind { .. } => PyTypeError::new_err(err.to_string()),
        IpcError::NotLocked => PyValueError::new_err("semaphore or lock released too many times"),
        IpcError::NotOwned => PyRuntimeError::new_err(err.to_string()),
        IpcError::TooManyReleases | IpcError::TooManyTaskDone => PyValueError::new_err(err.to_string()),
        IpcError::Overflow { .. } => PyOverflowError::new_err(err.to_string()),
        IpcError::BrokenBarrier => new_err(py, &BROKEN_BARRIER, "threading", "BrokenBarrierError", String::new()),
        IpcError::TooLarge { .. } => new_err(
            py,
            &TOO_LARGE,
            "plait.exceptions",
            "MessageTooLarge",
            format!("{err}: create the queue with a larger capacity= (bytes)"),
        ),
        IpcError::Interrupted => match blocker {
            Some(b) => b.take_err(),
            None => pyo3::exceptions::PyKeyboardInterrupt::new_err(()),
        },
    }
}

fn owner_died(py: Python<'_>, what: &str) -> PyErr {
    new_err(
        py,
        &OWNER_DIED,
        "plait.exceptions",
        "OwnerDied",
        format!(
            "the process that held this {what} died without releasing it; this process holds it now: \
             repair the state it protects, then release it"
        ),
    )
}

/// The object in `segment`, or a new one made by `create`.
fn open<T: Layout>(
    py: Python<'_>,
    segment: Option<Py<Segment>>,
    create: impl FnOnce() -> Result<Shared<T>, IpcError>,
) -> PyResult<(Shared<T>, Py<Segment>)> {
    if let Some(seg) = segment {
        let obj = Shared::<T>::attach(seg.get().shared()).map_err(|e| ipc_err(py, e, None))?;
        return Ok((obj, seg));
    }
    let obj = create().map_err(|e| ipc_err(py, e, None))?;
    let seg = Py::new(py, Segment::from_shared(std::sync::Arc::clone(obj.segment())))?;
    Ok((obj, seg))
}

/// `(block, timeout)` of `multiprocessing` to "wait?" and a deadline (None = forever).
fn deadline(block: bool, timeout: Option<f64>) -> (bool, Option<Instant>) {
    if block {
        (true, optional_deadline(timeout))
    } else {
        (false, None)
    }
}

// --- Lock -----------------------------------------------------------------------------------

/// A lock shared between processes; see `plait.processes.Lock`.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcLock {
    lock: Shared<RobustLock>,
    seg: Py<Segment>,
}

impl IpcLock {
    fn acquire_impl(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let got = if let Some(a) = self.lock.try_lock() {
            Some(a)
        } else if block {
            let mut blocker = PyBlocker::new(py);
            self.lock
                .lock(&mut blocker, optional_deadline(timeout))
                .map_err(|_| blocker.take_err())?
        } else {
            None
        };
        match got {
            None => Ok(false),
            Some(Acquired::Clean) => Ok(true),
            Some(Acquired::OwnerDied) => Err(owner_died(py, "lock")),
        }
    }

    fn release_impl(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.unlock().map_err(|_| ipc_err(py, IpcError::NotLocked, None))
    }
}

#[pymethods]
impl IpcLock {
    #[new]
    #[pyo3(signature = (*, _segment=None))]
    fn new(py: Python<'_>, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let (lock, seg) = open(py, _segment, || Shared::create(0, |_| {}))?;
        Ok(Self { lock, seg })
    }

    /// Acquire the lock; `False` if not acquired (non-blocking, or the timeout passed). Raises
    /// `plait.OwnerDied`, with the lock held, when its holder died holding it.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        self.acquire_impl(py, block, timeout)
    }

    /// Release the lock (any thread of any process may).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_impl(py)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        match self.acquire_impl(py, true, None) {
            Err(e) if e.is_instance(py, class(py, &OWNER_DIED, "plait.exceptions", "OwnerDied")?) => {
                // No `__exit__` runs when `__enter__` raises: release, or the lock would stay
                // held by this (live) process forever.
                self.lock.unlock().ok();
                Err(e)
            }
            other => other,
        }
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_impl(py)
    }

    /// Whether the lock is held (by any process).
    fn locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// The pid of the process holding the lock, or None.
    fn holder(&self) -> Option<u32> {
        self.lock.holder()
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}

// --- RLock ----------------------------------------------------------------------------------

/// A recursive lock shared between processes; see `plait.processes.RLock`.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcRLock {
    lock: Shared<core::RLock>,
    seg: Py<Segment>,
}

impl IpcRLock {
    fn acquire_impl(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let mut blocker = PyBlocker::new(py);
        let got = self
            .lock
            .acquire(&mut blocker, optional_deadline(timeout), block)
            .map_err(|e| ipc_err(py, e, Some(&mut blocker)))?;
        match got {
            None => Ok(false),
            Some(Acquired::Clean) => Ok(true),
            Some(Acquired::OwnerDied) => Err(owner_died(py, "lock")),
        }
    }
}

#[pymethods]
impl IpcRLock {
    #[new]
    #[pyo3(signature = (*, _segment=None))]
    fn new(py: Python<'_>, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let (lock, seg) = open(py, _segment, || Shared::create(0, |_| {}))?;
        Ok(Self { lock, seg })
    }

    /// Acquire the lock (again, if this thread holds it); see `IpcLock.acquire`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        self.acquire_impl(py, block, timeout)
    }

    /// Release one level; only the owning thread may.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.release().map_err(|e| ipc_err(py, e, None))
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        match self.acquire_impl(py, true, None) {
            Err(e) if e.is_instance(py, class(py, &OWNER_DIED, "plait.exceptions", "OwnerDied")?) => {
                self.lock.release().ok();
                Err(e)
            }
            other => other,
        }
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.lock.release().map_err(|e| ipc_err(py, e, None))
    }

    /// Whether the calling thread holds the lock.
    fn _is_owned(&self) -> bool {
        self.lock.is_owned()
    }

    /// Recursion level of the holder (0 when free).
    fn _count(&self) -> u32 {
        self.lock.count()
    }

    /// The pid of the process holding the lock, or None.
    fn holder(&self) -> Option<u32> {
        self.lock.raw().holder()
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}

// --- Semaphore ------------------------------------------------------------------------------

/// A counting semaphore shared between processes (bounded when `bounded`).
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcSemaphore {
    sem: Shared<core::Semaphore>,
    seg: Py<Segment>,
}

#[pymethods]
impl IpcSemaphore {
    #[new]
    #[pyo3(signature = (value=1, bounded=false, *, _segment=None))]
    fn new(py: Python<'_>, value: i64, bounded: bool, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        if value < 0 {
            return Err(PyValueError::new_err("semaphore initial value must be >= 0"));
        }
        let v = u32::try_from(value).map_err(|_| PyOverflowError::new_err("semaphore value must be < 2**32"))?;
        let (sem, seg) = open(py, _segment, || {
            Shared::create(0, |s: &core::Semaphore| s.init(v, if bounded { v.max(1) } else { 0 }))
        })?;
        if bounded && v == 0 {
            // A bounded semaphore starting at 0 can never be released: keep the bound honest.
            return Err(PyValueError::new_err("a BoundedSemaphore needs an initial value >= 1"));
        }
        Ok(Self { sem, seg })
    }

    /// Decrement the value, waiting while it is 0; False if not acquired.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        if self.sem.try_acquire() {
            return Ok(true);
        }
        if !block {
            return Ok(false);
        }
        let mut blocker = PyBlocker::new(py);
        self.sem
            .acquire(&mut blocker, optional_deadline(timeout))
            .map_err(|_| blocker.take_err())
    }

    /// Increment the value by `n`, waking waiters.
    #[pyo3(signature = (n=1))]
    fn release(&self, py: Python<'_>, n: u32) -> PyResult<()> {
        self.sem.release(n).map_err(|e| ipc_err(py, e, None))
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release(py, 1)
    }

    /// The current value.
    fn get_value(&self) -> u32 {
        self.sem.value()
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}

// --- Event ----------------------------------------------------------------------------------

/// An event flag shared between processes.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcEvent {
    ev: Shared<core::Event>,
    seg: Py<Segment>,
}

#[pymethods]
impl IpcEvent {
    #[new]
    #[pyo3(signature = (*, _segment=None))]
    fn new(py: Python<'_>, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let (ev, seg) = open(py, _segment, || Shared::create(0, |_| {}))?;
        Ok(Self { ev, seg })
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.ev.is_set()
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

// --- Condition ------------------------------------------------------------------------------

/// A condition variable shared between processes, over an `IpcLock` or `IpcRLock`.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcCondition {
    cond: Shared<core::Condition>,
    seg: Py<Segment>,
    lock: Py<PyAny>,
}

#[pymethods]
impl IpcCondition {
    #[new]
    #[pyo3(signature = (lock, *, _segment=None))]
    fn new(py: Python<'_>, lock: Bound<'_, PyAny>, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        if !lock.is_instance_of::<IpcLock>() && !lock.is_instance_of::<IpcRLock>() {
            return Err(PyTypeError::new_err(
                "a process-shared Condition needs a plait.processes.Lock or RLock",
            ));
        }
        let (cond, seg) = open(py, _segment, || Shared::create(0, |_| {}))?;
        Ok(Self {
            cond,
            seg,
            lock: lock.unbind(),
        })
    }

    /// Release the lock, wait for a notify (or the timeout), re-acquire the lock. Returns
    /// False on timeout. Raises `OwnerDied` (lock held) if the lock's holder died meanwhile.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let lock = self.lock.bind(py);
        let until = optional_deadline(timeout);
        let mut blocker = PyBlocker::new(py);
        if let Ok(r) = lock.cast::<IpcRLock>() {
            let r = &r.get().lock;
            if !r.is_owned() {
                return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
            }
            let token = self.cond.prepare();
            let count = r.release_all().map_err(|e| ipc_err(py, e, None))?;
            let slept = self.cond.sleep(&mut blocker, token, until);
            let mut again = PyBlocker::uninterruptible(py);
            let got = r.acquire(&mut again, None, true).map_err(|e| ipc_err(py, e, None))?;
            r.restore(count);
            let notified = slept.map_err(|_| blocker.take_err())?;
            return match got {
                Some(Acquired::OwnerDied) => Err(owner_died(py, "condition's lock")),
                _ => Ok(notified),
            };
        }
        let l = &lock.cast::<IpcLock>()?.get().lock;
        if l.holder() != Some(process::pid()) {
            return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
        }
        let token = self.cond.prepare();
        l.unlock().map_err(|_| ipc_err(py, IpcError::NotLocked, None))?;
        let slept = self.cond.sleep(&mut blocker, token, until);
        let mut again = PyBlocker::uninterruptible(py);
        let got = l.lock(&mut again, None).map_err(|_| again.take_err())?;
        let notified = slept.map_err(|_| blocker.take_err())?;
        match got {
            Some(Acquired::OwnerDied) => Err(owner_died(py, "condition's lock")),
            _ => Ok(notified),
        }
    }

    /// Wake up to `n` waiters; `RuntimeError` unless the lock is held.
    #[pyo3(signature = (n=1))]
    fn notify(&self, py: Python<'_>, n: u32) -> PyResult<()> {
        self.check_owned(py)?;
        self.cond.notify(n);
        Ok(())
    }

    /// Wake every waiter.
    fn notify_all(&self, py: Python<'_>) -> PyResult<()> {
        self.check_owned(py)?;
        self.cond.notify_all();
        Ok(())
    }

    #[getter]
    fn _lock(&self, py: Python<'_>) -> Py<PyAny> {
        self.lock.clone_ref(py)
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}

impl IpcCondition {
    /// `RuntimeError` unless this process holds the condition's lock (as `threading` does).
    fn check_owned(&self, py: Python<'_>) -> PyResult<()> {
        let lock = self.lock.bind(py);
        let owned = if let Ok(r) = lock.cast::<IpcRLock>() {
            r.get().lock.is_owned()
        } else {
            lock.cast::<IpcLock>()?.get().lock.holder() == Some(process::pid())
        };
        if owned {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err("cannot notify on un-acquired lock"))
        }
    }
}

// --- Barrier --------------------------------------------------------------------------------

/// A barrier shared between processes.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcBarrier {
    bar: Shared<core::Barrier>,
    seg: Py<Segment>,
}

#[pymethods]
impl IpcBarrier {
    #[new]
    #[pyo3(signature = (parties, *, _segment=None))]
    fn new(py: Python<'_>, parties: i64, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let parties = u32::try_from(parties)
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| PyValueError::new_err("parties must be >= 1"))?;
        let (bar, seg) = open(py, _segment, || Shared::create(0, |b: &core::Barrier| b.init(parties)))?;
        Ok(Self { bar, seg })
    }

    /// Wait for every party; returns this party's index in `range(parties)`.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u32> {
        let mut blocker = PyBlocker::new(py);
        self.bar
            .wait(&mut blocker, optional_deadline(timeout))
            .map_err(|e| ipc_err(py, e, Some(&mut blocker)))
    }

    /// Return the barrier to its initial state; current waiters get `BrokenBarrierError`.
    fn reset(&self) {
        self.bar.reset();
    }

    /// Break the barrier.
    fn abort(&self) {
        self.bar.abort();
    }

    #[getter]
    fn parties(&self) -> u32 {
        self.bar.parties()
    }

    #[getter]
    fn n_waiting(&self) -> u32 {
        self.bar.n_waiting()
    }

    #[getter]
    fn broken(&self) -> bool {
        self.bar.broken()
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}

// --- AtomicInt ------------------------------------------------------------------------------

/// A 64-bit integer in shared memory with lock-free atomic operations.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcAtomicInt {
    int: Shared<core::AtomicInt>,
    seg: Py<Segment>,
}

fn overflow() -> PyErr {
    PyOverflowError::new_err("AtomicInt overflow: the value must fit in a signed 64-bit integer")
}

impl IpcAtomicInt {
    fn update(&self, f: impl Fn(i64) -> Option<i64>) -> PyResult<i64> {
        self.int
            .value
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, f)
            .map_err(|_| overflow())
    }
}

#[pymethods]
impl IpcAtomicInt {
    #[new]
    #[pyo3(signature = (value=0, *, _segment=None))]
    fn new(py: Python<'_>, value: i64, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let (int, seg) = open(py, _segment, || {
            Shared::create(0, |a: &core::AtomicInt| a.value.store(value, Ordering::Relaxed))
        })?;
        Ok(Self { int, seg })
    }

    /// The current value.
    fn load(&self) -> i64 {
        self.int.value.load(Ordering::SeqCst)
    }

    /// Set the value.
    fn store(&self, value: i64) {
        self.int.value.store(value, Ordering::SeqCst);
    }

    /// The value (read/write property, like `multiprocessing.Value.value`).
    #[getter]
    fn get_value(&self) -> i64 {
        self.load()
    }

    #[setter]
    fn set_value(&self, value: i64) {
        self.store(value);
    }

    /// Add `n`; return the previous value.
    #[pyo3(signature = (n=1))]
    fn fetch_add(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_add(n))
    }

    /// Subtract `n`; return the previous value.
    #[pyo3(signature = (n=1))]
    fn fetch_sub(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_sub(n))
    }

    /// Add `n`; return the new value.
    #[pyo3(signature = (n=1))]
    fn add(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_add(n)).map(|old| old + n)
    }

    /// Subtract `n`; return the new value.
    #[pyo3(signature = (n=1))]
    fn sub(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_sub(n)).map(|old| old - n)
    }

    /// Set the value; return the previous one.
    fn swap(&self, value: i64) -> i64 {
        self.int.value.swap(value, Ordering::SeqCst)
    }

    /// If the value equals `expected`, set it to `new`. Returns `(succeeded, previous value)`.
    fn compare_exchange(&self, expected: i64, new: i64) -> (bool, i64) {
        match self
            .int
            .value
            .compare_exchange(expected, new, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(v) => (true, v),
            Err(v) => (false, v),
        }
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}

// --- Queue ----------------------------------------------------------------------------------

const TAG_PICKLE: u32 = 0;
const TAG_BYTES: u32 = 1;
const TAG_INT: u32 = 2;
const TAG_STR: u32 = 3;
const TAG_FLOAT: u32 = 4;
const TAG_NONE: u32 = 5;
/// Pickle with out-of-band buffers: `u32` buffer count, `u32` pickle length, a `u64` length per
/// buffer, the pickle, then each buffer at an offset aligned to [`OOB_ALIGN`].
const TAG_PICKLE_OOB: u32 = 6;
/// Bytes sent with `Connection.send_bytes` (a pickle to `recv`, raw to `recv_bytes`).
pub(crate) const TAG_RAW: u32 = 7;
const OOB_ALIGN: usize = 16;
static ZEROS: [u8; OOB_ALIGN] = [0; OOB_ALIGN];

/// Default data area of a queue's ring.
const DEFAULT_CAPACITY: usize = 1 << 20;

/// A message encoded in the caller, borrowing from Python objects where it can.
pub(crate) enum Encoded<'py> {
    Bytes(Bound<'py, PyBytes>),
    Str(Bound<'py, PyString>),
    Inline(u32, [u8; 8]),
    Pickled(Bound<'py, PyBytes>),
    /// A protocol-5 pickle and its out-of-band buffers, written into the ring where they are.
    Oob {
        header: Vec<u8>,
        pickled: Bound<'py, PyBytes>,
        buffers: Vec<PyUntypedBuffer>,
    },
}

impl Encoded<'_> {
    /// The tag and the payload's parts.
    pub(crate) fn parts(&self) -> PyResult<(u32, Vec<&[u8]>)> {
        Ok(match self {
            Self::Bytes(b) => (TAG_BYTES, vec![b.as_bytes()]),
            Self::Str(s) => (TAG_STR, vec![s.to_str()?.as_bytes()]),
            Self::Inline(TAG_NONE, _) => (TAG_NONE, vec![]),
            Self::Inline(tag, raw) => (*tag, vec![&raw[..]]),
            Self::Pickled(b) => (TAG_PICKLE, vec![b.as_bytes()]),
            Self::Oob {
                header,
                pickled,
                buffers,
            } => {
                let mut parts = Vec::with_capacity(2 + 2 * buffers.len());
                parts.push(&header[..]);
                parts.push(pickled.as_bytes());
                let mut at = header.len() + pickled.as_bytes().len();
                for b in buffers {
                    let pad = at.next_multiple_of(OOB_ALIGN) - at;
                    parts.push(&ZEROS[..pad]);
                    // Safety: a C-contiguous buffer (checked in `encode`) of `len_bytes` bytes,
                    // kept alive and unchanged by the exporter while the view is held.
                    parts.push(unsafe { std::slice::from_raw_parts(b.buf_ptr().cast::<u8>(), b.len_bytes()) });
                    at += pad + b.len_bytes();
                }
                (TAG_PICKLE_OOB, parts)
            }
        })
    }
}

pub(crate) fn encode<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Encoded<'py>> {
    let py = obj.py();
    if let Ok(b) = obj.cast_exact::<PyBytes>() {
        return Ok(Encoded::Bytes(b.clone()));
    }
    if let Ok(i) = obj.cast_exact::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Ok(Encoded::Inline(TAG_INT, v.to_le_bytes()));
        }
    } else if let Ok(s) = obj.cast_exact::<PyString>() {
        if s.to_str().is_ok() {
            return Ok(Encoded::Str(s.clone()));
        }
    } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(Encoded::Inline(TAG_FLOAT, f.value().to_le_bytes()));
    } else if obj.is_none() {
        return Ok(Encoded::Inline(TAG_NONE, [0; 8]));
    }
    let dumps = DUMPS.get_or_try_init(py, || py.import("pickle")?.getattr("dumps").map(Bound::unbind))?;
    let collected = PyList::empty(py);
    let kwargs = PyDict::new(py);
    kwargs.set_item(
        intern!(py, "buffer_callback"),
        collected.getattr(intern!(py, "append"))?,
    )?;
    let data = dumps.bind(py).call((obj, 5), Some(&kwargs))?.cast_into::<PyBytes>()?;
    if collected.is_empty() {
        return Ok(Encoded::Pickled(data));
    }
    let mut buffers = Vec::with_capacity(collected.len());
    for b in &collected {
        let view = PyUntypedBuffer::get(&b)?;
        if !view.is_c_contiguous() {
            // Rare (a strided view): pickle it in band instead.
            let data = dumps.bind(py).call1((obj, 5))?.cast_into::<PyBytes>()?;
            return Ok(Encoded::Pickled(data));
        }
        buffers.push(view);
    }
    let mut header = Vec::with_capacity(8 + 8 * buffers.len());
    header.extend_from_slice(&u32::try_from(buffers.len()).map_err(|_| too_many())?.to_le_bytes());
    header.extend_from_slice(
        &u32::try_from(data.as_bytes().len())
            .map_err(|_| too_many())?
            .to_le_bytes(),
    );
    for b in &buffers {
        header.extend_from_slice(&(b.len_bytes() as u64).to_le_bytes());
    }
    Ok(Encoded::Oob {
        header,
        pickled: data,
        buffers,
    })
}

fn too_many() -> PyErr {
    PyValueError::new_err("object too large for a queue message")
}

/// Unpickles a `TAG_PICKLE_OOB` payload; the buffers are views of `data` (one copy in all).
fn loads_oob(py: Python<'_>, data: &Bound<'_, PyByteArray>) -> PyResult<Py<PyAny>> {
    let corrupt = || PyValueError::new_err("corrupt queue message (out-of-band pickle)");
    // Safety: the bytearray is not resized while we read its header (no Python code runs).
    let (count, plen, lens) = unsafe {
        let raw = data.as_bytes();
        let word = |at: usize| {
            raw.get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
        };
        let count = word(0).ok_or_else(corrupt)? as usize;
        let plen = word(4).ok_or_else(corrupt)? as usize;
        let mut lens = Vec::with_capacity(count);
        for i in 0..count {
            let at = 8 + 8 * i;
            let b = raw.get(at..at + 8).ok_or_else(corrupt)?;
            lens.push(u64::from_le_bytes(b.try_into().expect("8")) as usize);
        }
        (count, plen, lens)
    };
    let whole = PyMemoryView::from(data.as_any())?;
    let slice = |a: usize, b: usize| -> PyResult<Bound<'_, PyAny>> {
        if a > b || b > data.len() {
            return Err(corrupt());
        }
        let (a, b) = (
            isize::try_from(a).map_err(|_| corrupt())?,
            isize::try_from(b).map_err(|_| corrupt())?,
        );
        whole.get_item(PySlice::new(py, a, b, 1))
    };
    let mut at = 8 + 8 * count;
    let pickled = slice(at, at + plen)?;
    at += plen;
    let mut views = Vec::with_capacity(count);
    for len in lens {
        at = at.next_multiple_of(OOB_ALIGN);
        views.push(slice(at, at + len)?);
        at += len;
    }
    let loads = LOADS.get_or_try_init(py, || py.import("pickle")?.getattr("loads").map(Bound::unbind))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item(intern!(py, "buffers"), views)?;
    Ok(loads.bind(py).call((pickled,), Some(&kwargs))?.unbind())
}

/// A message copied out of the ring (under the consumer lock), decoded after it is released.
pub(crate) enum Received {
    Ready(Py<PyAny>),
    Int(i64),
    Float(f64),
    None,
    Pickled(Py<PyBytes>),
    PickledOob(Py<PyByteArray>),
    /// `send_bytes` data: decoded as a pickle by `recv`, returned as is by `recv_bytes`.
    Raw(Py<PyBytes>),
    Failed(PyErr),
}

fn concat_into(buf: &mut [u8], a: &[u8], b: &[u8]) {
    buf[..a.len()].copy_from_slice(a);
    buf[a.len()..].copy_from_slice(b);
}

pub(crate) fn receive(py: Python<'_>, tag: u32, a: &[u8], b: &[u8]) -> Received {
    let len = a.len() + b.len();
    let eight = || {
        let mut raw = [0u8; 8];
        if len == 8 {
            concat_into(&mut raw, a, b);
        }
        raw
    };
    match tag {
        TAG_INT => Received::Int(i64::from_le_bytes(eight())),
        TAG_FLOAT => Received::Float(f64::from_le_bytes(eight())),
        TAG_NONE => Received::None,
        TAG_STR => {
            let text = if b.is_empty() {
                std::str::from_utf8(a).map(|s| PyString::new(py, s))
            } else {
                std::str::from_utf8(&[a, b].concat()).map(|s| PyString::new(py, s))
            };
            match text {
                Ok(s) => Received::Ready(s.into_any().unbind()),
                Err(e) => Received::Failed(PyValueError::new_err(format!("corrupt str message: {e}"))),
            }
        }
        TAG_BYTES | TAG_PICKLE | TAG_RAW => match PyBytes::new_with(py, len, |buf| {
            concat_into(buf, a, b);
            Ok(())
        }) {
            Ok(bytes) if tag == TAG_BYTES => Received::Ready(bytes.into_any().unbind()),
            Ok(bytes) if tag == TAG_RAW => Received::Raw(bytes.unbind()),
            Ok(bytes) => Received::Pickled(bytes.unbind()),
            Err(e) => Received::Failed(e),
        },
        TAG_PICKLE_OOB => match PyByteArray::new_with(py, len, |buf| {
            concat_into(buf, a, b);
            Ok(())
        }) {
            Ok(data) => Received::PickledOob(data.unbind()),
            Err(e) => Received::Failed(e),
        },
        _ => Received::Failed(PyValueError::new_err(format!("unknown message tag {tag}"))),
    }
}

pub(crate) fn decode(py: Python<'_>, r: Received) -> PyResult<Py<PyAny>> {
    Ok(match r {
        Received::Ready(o) => o,
        Received::Int(v) => v.into_pyobject(py)?.into_any().unbind(),
        Received::Float(v) => PyFloat::new(py, v).into_any().unbind(),
        Received::None => py.None(),
        Received::Pickled(data) | Received::Raw(data) => {
            let loads = LOADS.get_or_try_init(py, || py.import("pickle")?.getattr("loads").map(Bound::unbind))?;
            loads.bind(py).call1((data,))?.unbind()
        }
        Received::PickledOob(data) => loads_oob(py, data.bind(py))?,
        Received::Failed(e) => return Err(e),
    })
}

/// The ring behind `plait.processes.Queue`, `SimpleQueue` and `JoinableQueue`.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcQueue {
    ring: SharedRing,
    seg: Py<Segment>,
    closed: AtomicBool,
    /// Items this handle took from the ring but has not returned yet: those after one that
    /// failed to decode in a `get_many` (the error first, then them), served before the ring.
    pending: parking_lot::Mutex<VecDeque<Received>>,
}

impl IpcQueue {
    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PyValueError::new_err("this queue is closed"));
        }
        Ok(())
    }

    fn full_err(py: Python<'_>, msg: String) -> PyErr {
        new_err(py, &FULL, "queue", "Full", msg)
    }

    fn put_encoded(&self, py: Python<'_>, msgs: &[Message<'_>], block: bool, timeout: Option<f64>) -> PyResult<()> {
        let (wait, until) = deadline(block, timeout);
        let mut blocker = PyBlocker::new(py);
        let n = self
            .ring
            .put(msgs, &mut blocker, until, wait)
            .map_err(|e| ipc_err(py, e, Some(&mut blocker)))?;
        if n < msgs.len() {
            let msg = if msgs.len() > 1 {
                format!("{n} of {} items were put before the queue was full", msgs.len())
            } else {
                String::new()
            };
            return Err(Self::full_err(py, msg));
        }
        Ok(())
    }

    /// Up to `max` messages, copied out; call `ring.delivered` with the `Taken` once decoded.
    fn take(
        &self,
        py: Python<'_>,
        max: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<(Vec<Received>, ring::Taken)> {
        let (wait, until) = deadline(block, timeout);
        let mut blocker = PyBlocker::new(py);
        let mut out = Vec::with_capacity(max.min(64));
        let taken = self
            .ring
            .get(max, &mut blocker, until, wait, |tag, a, b| {
                out.push(receive(py, tag, a, b));
            })
            .map_err(|e| ipc_err(py, e, Some(&mut blocker)))?;
        match taken {
            None => Err(new_err(py, &EMPTY, "queue", "Empty", String::new())),
            Some(t) => Ok((out, t)),
        }
    }
}

#[pymethods]
impl IpcQueue {
    #[new]
    #[pyo3(signature = (maxsize=0, *, capacity=None, _segment=None))]
    fn new(py: Python<'_>, maxsize: i64, capacity: Option<usize>, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let maxsize = u64::try_from(maxsize).unwrap_or(0);
        let capacity = capacity.unwrap_or(DEFAULT_CAPACITY);
        if capacity > ring::MAX_CAPACITY {
            return Err(PyValueError::new_err("capacity must be at most 2**31 bytes"));
        }
        let (ring, seg) = open(py, _segment, || ring::create(capacity, maxsize))?;
        Ok(Self {
            ring,
            seg,
            closed: AtomicBool::new(false),
            pending: parking_lot::Mutex::new(VecDeque::new()),
        })
    }

    /// Put `obj` (pickled here, protocol 5), waiting for room if `block`.
    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put(&self, py: Python<'_>, obj: &Bound<'_, PyAny>, block: bool, timeout: Option<f64>) -> PyResult<()> {
        self.check_open()?;
        let enc = encode(obj)?;
        let (tag, parts) = enc.parts()?;
        self.put_encoded(py, &[Message { tag, parts: &parts }], block, timeout)
    }

    /// `put(obj, False)`.
    fn put_nowait(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.put(py, obj, false, None)
    }

    /// Put every item of `items`, in order, with as few synchronisations as room allows.
    #[pyo3(signature = (items, block=true, timeout=None))]
    fn put_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>, block: bool, timeout: Option<f64>) -> PyResult<()> {
        self.check_open()?;
        let encoded = items.try_iter()?.map(|o| encode(&o?)).collect::<PyResult<Vec<_>>>()?;
        let views = encoded.iter().map(Encoded::parts).collect::<PyResult<Vec<_>>>()?;
        let msgs: Vec<Message<'_>> = views.iter().map(|(tag, parts)| Message { tag: *tag, parts }).collect();
        self.put_encoded(py, &msgs, block, timeout)
    }

    /// Remove and return an item, waiting for one if `block`; `queue.Empty` otherwise.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let held = self.pending.lock().pop_front();
        if let Some(r) = held {
            return decode(py, r);
        }
        let (got, taken) = self.take(py, 1, block, timeout)?;
        let result = got.into_iter().next().map_or_else(|| Ok(py.None()), |r| decode(py, r));
        // Only now has the caller the object: a death before this line counts as a loss.
        self.ring.delivered(taken);
        result
    }

    /// `get(False)`.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get(py, false, None)
    }

    /// Up to `max_items` items (at least one, waiting for it if `block`) as a list.
    #[pyo3(signature = (max_items, block=true, timeout=None))]
    fn get_many(&self, py: Python<'_>, max_items: usize, block: bool, timeout: Option<f64>) -> PyResult<Py<PyList>> {
        self.check_open()?;
        if max_items == 0 {
            return Ok(PyList::empty(py).unbind());
        }
        let held: Vec<Received> = {
            let mut pending = self.pending.lock();
            let n = pending.len().min(max_items);
            pending.drain(..n).collect()
        };
        let (got, taken) = if held.is_empty() {
            let (got, taken) = self.take(py, max_items, block, timeout)?;
            (got, Some(taken))
        } else {
            (held, None)
        };
        // Decoded in order up to the first failure; the items after it are kept for the next
        // calls, so one bad item costs only itself.
        let mut items = got.into_iter();
        let mut out = Vec::with_capacity(items.len());
        let mut failed = None;
        for r in items.by_ref() {
            match decode(py, r) {
                Ok(obj) => out.push(obj),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_some() || !items.as_slice().is_empty() {
            let mut pending = self.pending.lock();
            for r in items.rev() {
                pending.push_front(r);
            }
            if let Some(e) = failed {
                if out.is_empty() {
                    drop(pending);
                    if let Some(t) = taken {
                        self.ring.delivered(t);
                    }
                    return Err(e);
                }
                // The good items first; the error is raised by the next get.
                pending.push_front(Received::Failed(e));
            }
        }
        // Only now does this process hold every item (returned or pending).
        if let Some(t) = taken {
            self.ring.delivered(t);
        }
        Ok(PyList::new(py, out)?.unbind())
    }

    /// Approximate number of items in the queue.
    fn qsize(&self) -> u64 {
        self.ring.len() + self.pending.lock().len() as u64
    }

    /// Whether the queue is empty (approximate, as in `multiprocessing`).
    fn empty(&self) -> bool {
        self.ring.is_empty() && self.pending.lock().is_empty()
    }

    /// Whether the queue holds `maxsize` items.
    fn full(&self) -> bool {
        self.ring.is_full()
    }

    /// No more puts or gets through this handle (other handles are unaffected).
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    #[getter]
    fn _closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Items taken by consumers that died before receiving them (counted when detected).
    fn lost(&self, py: Python<'_>) -> PyResult<u64> {
        let mut blocker = PyBlocker::new(py);
        self.ring
            .reap(&mut blocker)
            .map_err(|e| ipc_err(py, e, Some(&mut blocker)))
    }

    /// Bytes of the ring's data area (largest message: this minus 8).
    #[getter]
    fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    #[getter]
    fn _maxsize(&self) -> u64 {
        self.ring.maxsize()
    }

    fn _task_done(&self, py: Python<'_>) -> PyResult<()> {
        self.ring.task_done().map_err(|e| ipc_err(py, e, None))
    }

    #[pyo3(signature = (timeout=None))]
    fn _join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let mut blocker = PyBlocker::new(py);
        self.ring
            .join(&mut blocker, optional_deadline(timeout))
            .map_err(|e| ipc_err(py, e, Some(&mut blocker)))
    }

    fn _unfinished(&self) -> u64 {
        self.ring.unfinished()
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<IpcLock>()?;
    m.add_class::<IpcRLock>()?;
    m.add_class::<IpcSemaphore>()?;
    m.add_class::<IpcEvent>()?;
    m.add_class::<IpcCondition>()?;
    m.add_class::<IpcBarrier>()?;
    m.add_class::<IpcAtomicInt>()?;
    m.add_class::<IpcQueue>()?;
    Ok(())
}
