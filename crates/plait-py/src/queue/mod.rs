//! `Queue`, `LifoQueue`, `PriorityQueue` and `SimpleQueue` over `plait_core::queue`.
//!
//! Items are Python objects; the priority heap compares them with Python's `<`, using the same
//! sift algorithm as `heapq` so equal priorities come out in the same order as with the stdlib.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;

use plait_core::queue::{Queue as CoreQueue, Store, Wait};
use plait_core::sync::deadlock::{self, Resource};
use plait_core::thread::ThreadId;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::blocking::{deadline_after, far_future, truthy, PyBlocker};
use crate::errors::queue_err;

/// The three orderings of the stdlib's queue classes.
pub enum PyStore {
    Fifo(VecDeque<Py<PyAny>>),
    Lifo(Vec<Py<PyAny>>),
    Heap(Vec<Py<PyAny>>),
}

fn less(a: &Py<PyAny>, b: &Py<PyAny>) -> PyResult<bool> {
    Python::attach(|py| a.bind(py).lt(b.bind(py)))
}

/// `heapq._siftdown`, with swaps so a failing comparison never loses an item.
fn sift_down(heap: &mut [Py<PyAny>], start: usize, mut pos: usize) -> PyResult<()> {
    while pos > start {
        let parent = (pos - 1) >> 1;
        if less(&heap[pos], &heap[parent])? {
            heap.swap(pos, parent);
            pos = parent;
        } else {
            break;
        }
    }
    Ok(())
}

/// `heapq._siftup`.
fn sift_up(heap: &mut [Py<PyAny>], mut pos: usize) -> PyResult<()> {
    let end = heap.len();
    let start = pos;
    let mut child = 2 * pos + 1;
    while child < end {
        let right = child + 1;
        if right < end && !less(&heap[child], &heap[right])? {
            child = right;
        }
        heap.swap(pos, child);
        pos = child;
        child = 2 * pos + 1;
    }
    sift_down(heap, start, pos)
}

impl Store for PyStore {
    type Item = Py<PyAny>;
    type Error = PyErr;

    fn len(&self) -> usize {
        match self {
            Self::Fifo(q) => q.len(),
            Self::Lifo(v) | Self::Heap(v) => v.len(),
        }
    }

    fn push(&mut self, item: Py<PyAny>) -> PyResult<()> {
        match self {
            Self::Fifo(q) => q.push_back(item),
            Self::Lifo(v) => v.push(item),
            Self::Heap(v) => {
                v.push(item);
                let last = v.len() - 1;
                sift_down(v, 0, last)?;
            }
        }
        Ok(())
    }

    fn pop(&mut self) -> PyResult<Py<PyAny>> {
        match self {
            Self::Fifo(q) => Ok(q.pop_front().expect("pop from a non-empty queue")),
            Self::Lifo(v) => Ok(v.pop().expect("pop from a non-empty queue")),
            Self::Heap(v) => {
                let last = v.pop().expect("pop from a non-empty queue");
                if v.is_empty() {
                    return Ok(last);
                }
                let top = std::mem::replace(&mut v[0], last);
                sift_up(v, 0)?;
                Ok(top)
            }
        }
    }
}

impl PyStore {
    /// Reports every item to the cycle collector.
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Self::Fifo(q) => q.iter().try_for_each(|x| visit.call(x)),
            Self::Lifo(v) | Self::Heap(v) => v.iter().try_for_each(|x| visit.call(x)),
        }
    }
}

fn traverse_queue(core: &CoreQueue<PyStore>, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
    // Never block in the collector: a busy queue is simply not traversed this round.
    core.try_with_store(|s| s.traverse(visit)).unwrap_or(Ok(()))
}

/// A queue's identity in `dump()` reports (queues have no owner, so they never close a cycle).
struct QueueMarker {
    id: u64,
    kind: &'static str,
}

impl Resource for QueueMarker {
    fn id(&self) -> u64 {
        self.id
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn name(&self) -> Option<&str> {
        None
    }
    fn holders(&self, _out: &mut Vec<ThreadId>) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn marker(kind: &'static str) -> Arc<dyn Resource> {
    Arc::new(QueueMarker {
        id: deadlock::next_id(),
        kind,
    })
}

/// `queue`-style `(block, timeout)`: `None` timeout = forever, negative = `ValueError`.
fn parse_wait(block: bool, timeout: Option<f64>) -> PyResult<Wait> {
    if !block {
        return Ok(Wait::No);
    }
    match timeout {
        None => Ok(Wait::Until(None)),
        Some(t) if t < 0.0 || t.is_nan() => Err(PyValueError::new_err("'timeout' must be a non-negative number")),
        Some(t) => Ok(Wait::Until(Some(deadline_after(t).unwrap_or_else(far_future)))),
    }
}

fn maxsize_of(maxsize: i64) -> usize {
    usize::try_from(maxsize).unwrap_or(0)
}

/// A FIFO queue, like `queue.Queue`, with 3.13's `shutdown()`.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Queue {
    core: CoreQueue<PyStore>,
    marker: Arc<dyn Resource>,
    /// FIFO and LIFO stores never fail, so they may use the lock-free-when-uncontended fast paths.
    fast: bool,
}

impl Queue {
    fn with_store(store: PyStore, maxsize: i64, kind: &'static str) -> Self {
        let fast = !matches!(store, PyStore::Heap(_));
        Self {
            fast,
            core: CoreQueue::new(store, maxsize_of(maxsize)),
            marker: marker(kind),
        }
    }

    fn put_impl(&self, py: Python<'_>, item: Py<PyAny>, wait: Wait) -> PyResult<()> {
        let item = if self.fast {
            match self.core.try_put_fast(item) {
                Ok(()) => return Ok(()),
                Err(item) => item,
            }
        } else {
            item
        };
        let mut blocker = PyBlocker::waiting_on(py, &self.marker, wait != Wait::Until(None));
        match self.core.put(item, wait, &mut blocker) {
            Ok(()) => Ok(()),
            Err((_item, e)) => Err(queue_err(py, e, &mut blocker)),
        }
    }

    fn get_impl(&self, py: Python<'_>, wait: Wait) -> PyResult<Py<PyAny>> {
        if self.fast {
            if let Some(item) = self.core.try_get_fast() {
                return Ok(item);
            }
        }
        let mut blocker = PyBlocker::waiting_on(py, &self.marker, wait != Wait::Until(None));
        self.core
            .get(wait, &mut blocker)
            .map_err(|e| queue_err(py, e, &mut blocker))
    }
}

#[pymethods]
impl Queue {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        traverse_queue(&self.core, &visit)
    }

    fn __clear__(&self) {
        let items = Python::attach(|py| self.core.take_all(&mut PyBlocker::new(py)));
        drop(items);
    }

    #[new]
    #[pyo3(signature = (maxsize=0))]
    fn new(maxsize: i64) -> Self {
        Self::with_store(PyStore::Fifo(VecDeque::new()), maxsize, "Queue")
    }

    /// Put an item, waiting (up to `timeout`) for a free slot if `block`.
    #[pyo3(signature = (item, block=None, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        item: Py<PyAny>,
        block: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let wait = parse_wait(truthy(block, true)?, timeout)?;
        self.put_impl(py, item, wait)
    }

    /// Put an item without blocking; raises `queue.Full` if there is no room.
    fn put_nowait(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        self.put_impl(py, item, Wait::No)
    }

    /// Remove and return an item, waiting (up to `timeout`) if `block`.
    #[pyo3(signature = (block=None, timeout=None))]
    fn get(&self, py: Python<'_>, block: Option<&Bound<'_, PyAny>>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let wait = parse_wait(truthy(block, true)?, timeout)?;
        self.get_impl(py, wait)
    }

    /// Remove and return an item without blocking; raises `queue.Empty` if there is none.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get_impl(py, Wait::No)
    }

    /// Mark one item taken with `get()` as processed.
    fn task_done(&self, py: Python<'_>) -> PyResult<()> {
        let mut blocker = PyBlocker::new(py);
        self.core
            .task_done(&mut blocker)
            .map_err(|e| queue_err(py, e, &mut blocker))
    }

    /// Wait until every item put has been marked done.
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let mut blocker = PyBlocker::waiting_on(py, &self.marker, false);
        self.core.join(&mut blocker).map_err(|e| queue_err(py, e, &mut blocker))
    }

    /// Shut the queue down: `put` raises `ShutDown` from now on, `get` once the queue is empty.
    /// With `immediate=True` the queue is emptied first and `join()` callers are released.
    #[pyo3(signature = (immediate=false))]
    fn shutdown(&self, py: Python<'_>, immediate: bool) {
        let mut blocker = PyBlocker::new(py);
        let drained = self.core.shutdown(immediate, &mut blocker);
        drop(drained);
    }

    /// Whether `shutdown()` was called.
    #[getter]
    fn is_shutdown(&self, py: Python<'_>) -> bool {
        self.core.is_shutdown(&mut PyBlocker::new(py))
    }

    /// Number of items (approximate while other threads run).
    fn qsize(&self, py: Python<'_>) -> usize {
        self.core.len(&mut PyBlocker::new(py))
    }

    /// Whether the queue is empty (approximate).
    fn empty(&self, py: Python<'_>) -> bool {
        self.core.is_empty(&mut PyBlocker::new(py))
    }

    /// Whether the queue is full (approximate).
    fn full(&self, py: Python<'_>) -> bool {
        self.core.is_full(&mut PyBlocker::new(py))
    }

    /// Capacity; 0 or less means unbounded. Assigning it takes effect for the next `put`.
    #[getter]
    fn get_maxsize(&self, py: Python<'_>) -> usize {
        self.core.maxsize(&mut PyBlocker::new(py))
    }

    #[setter]
    fn set_maxsize(&self, py: Python<'_>, maxsize: i64) {
        self.core.set_maxsize(maxsize_of(maxsize), &mut PyBlocker::new(py));
    }

    /// Items put and not yet marked done.
    #[getter]
    fn unfinished_tasks(&self, py: Python<'_>) -> u64 {
        self.core.unfinished(&mut PyBlocker::new(py))
    }

    /// A snapshot of the items in the order `get()` would see them (FIFO/LIFO) or heap order.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<Py<PyAny>> = self.core.with_store(&mut PyBlocker::new(py), |s| match s {
            PyStore::Fifo(q) => q.iter().map(|x| x.clone_ref(py)).collect(),
            PyStore::Lifo(v) => v.iter().rev().map(|x| x.clone_ref(py)).collect(),
            PyStore::Heap(v) => v.iter().map(|x| x.clone_ref(py)).collect(),
        });
        PyList::new(py, items)
    }

    #[classmethod]
    fn __class_getitem__(cls: &Bound<'_, PyType>, item: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        generic_alias(cls, item)
    }
}

fn generic_alias(cls: &Bound<'_, PyType>, item: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let py = cls.py();
    Ok(py
        .import("types")?
        .getattr("GenericAlias")?
        .call1((cls, item))?
        .unbind())
}

/// A LIFO queue (a stack), like `queue.LifoQueue`.
#[pyclass(module = "plait.threads", extends = Queue, frozen, subclass)]
pub struct LifoQueue;

#[pymethods]
impl LifoQueue {
    #[new]
    #[pyo3(signature = (maxsize=0))]
    fn new(maxsize: i64) -> PyClassInitializer<Self> {
        PyClassInitializer::from(Queue::with_store(PyStore::Lifo(Vec::new()), maxsize, "LifoQueue")).add_subclass(Self)
    }
}

/// A priority queue (lowest first), like `queue.PriorityQueue`.
#[pyclass(module = "plait.threads", extends = Queue, frozen, subclass)]
pub struct PriorityQueue;

#[pymethods]
impl PriorityQueue {
    #[new]
    #[pyo3(signature = (maxsize=0))]
    fn new(maxsize: i64) -> PyClassInitializer<Self> {
        PyClassInitializer::from(Queue::with_store(PyStore::Heap(Vec::new()), maxsize, "PriorityQueue"))
            .add_subclass(Self)
    }
}

/// An unbounded FIFO queue without task tracking, like `queue.SimpleQueue`.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct SimpleQueue {
    core: CoreQueue<PyStore>,
    marker: Arc<dyn Resource>,
}

#[pymethods]
impl SimpleQueue {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        traverse_queue(&self.core, &visit)
    }

    fn __clear__(&self) {
        let items = Python::attach(|py| self.core.take_all(&mut PyBlocker::new(py)));
        drop(items);
    }

    #[new]
    fn new() -> Self {
        Self {
            core: CoreQueue::new(PyStore::Fifo(VecDeque::new()), 0),
            marker: marker("SimpleQueue"),
        }
    }

    /// Put an item; never blocks (`block` and `timeout` exist for compatibility).
    #[pyo3(signature = (item, block=None, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        item: Py<PyAny>,
        block: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let _ = (block, timeout);
        let Err(item) = self.core.try_put_fast(item) else {
            return Ok(());
        };
        let mut blocker = PyBlocker::new(py);
        self.core
            .put(item, Wait::No, &mut blocker)
            .map_err(|(_, e)| queue_err(py, e, &mut blocker))
    }

    /// Same as `put(item)`.
    fn put_nowait(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        self.put(py, item, None, None)
    }

    /// Remove and return an item, waiting (up to `timeout`) if `block`.
    #[pyo3(signature = (block=None, timeout=None))]
    fn get(&self, py: Python<'_>, block: Option<&Bound<'_, PyAny>>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        if block.is_none() && timeout.is_none() {
            if let Some(item) = self.core.try_get_fast() {
                return Ok(item);
            }
        }
        let wait = parse_wait(truthy(block, true)?, timeout)?;
        let mut blocker = PyBlocker::waiting_on(py, &self.marker, wait != Wait::Until(None));
        self.core
            .get(wait, &mut blocker)
            .map_err(|e| queue_err(py, e, &mut blocker))
    }

    /// Remove and return an item without blocking.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut blocker = PyBlocker::new(py);
        self.core
            .get(Wait::No, &mut blocker)
            .map_err(|e| queue_err(py, e, &mut blocker))
    }

    /// Whether the queue is empty (approximate).
    fn empty(&self, py: Python<'_>) -> bool {
        self.core.is_empty(&mut PyBlocker::new(py))
    }

    /// Number of items (approximate).
    fn qsize(&self, py: Python<'_>) -> usize {
        self.core.len(&mut PyBlocker::new(py))
    }

    #[classmethod]
    fn __class_getitem__(cls: &Bound<'_, PyType>, item: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        generic_alias(cls, item)
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Queue>()?;
    m.add_class::<LifoQueue>()?;
    m.add_class::<PriorityQueue>()?;
    m.add_class::<SimpleQueue>()?;
    Ok(())
}
