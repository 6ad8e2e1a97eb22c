//! `IpcQueue`: the ring behind `plait.processes.Queue`, `SimpleQueue` and `JoinableQueue`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use plait_core::ipc::ring::{self, Message, SharedRing};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors::{self, ipc_err};
use crate::ipc::shm::Segment;
use crate::ipc::wire::{decode, encode, receive, Encoded, Received};
use crate::ipc::{deadline, open};

/// Default data area of a queue's ring.
const DEFAULT_CAPACITY: usize = 1 << 20;

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
        errors::queue_full(py, msg)
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
            None => Err(errors::queue_empty(py)),
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
