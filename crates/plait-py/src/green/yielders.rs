//! `sleep(0)` natively: the greenlets that yielded to their hub this loop iteration, resumed in
//! order by one loop callback per iteration.
//!
//! A yield is the hottest path of green code (a polling loop, a fair scheduler, `idle()`): in
//! Python it was a list per entry, a method lookup, a `try` block and a Python loop on the
//! resuming side, about 40% of a yield's cost beside the greenlet switch itself. Here a yield is
//! one native call that records the greenlet and switches to the hub, and the loop's callback
//! switches back to each in a Rust loop.
//!
//! A greenlet can be woken otherwise while it waits here (killed, a `Timeout`): its switch to
//! the hub then raises, and its slot is emptied before the error goes on, so the resume never
//! switches into it later. A slot is named by the batch it is in (a generation number) and its
//! index: the batch being filled, or the one being resumed.

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{intern, PyTraverseError, PyVisit};

/// `greenlet.getcurrent` and the `Hub` class, set once by `plait.green._hub`.
static STATICS: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();

#[derive(Default)]
struct Batches {
    /// Greenlets that yielded since the resume callback was scheduled.
    pending: Vec<Option<Py<PyAny>>>,
    pending_gen: u64,
    /// The batch the callback is resuming now.
    running: Vec<Option<Py<PyAny>>>,
    running_gen: u64,
    /// Whether the resume callback is scheduled (`pending` is not empty).
    scheduled: bool,
}

/// One hub's greenlets waiting in `sleep(0)` (`hub._yielders`).
#[pyclass(frozen, module = "plait._plait")]
pub struct Yielders {
    batches: Mutex<Batches>,
    /// `loop.call_soon` of the hub's loop.
    call_soon: Mutex<Option<Py<PyAny>>>,
    /// `hub.handle_error`, for a raw greenlet's error while resumed.
    handle_error: Mutex<Option<Py<PyAny>>>,
}

impl Yielders {
    /// Records `current` and switches to `hub`; returns when resumed. An error raised into
    /// `current` meanwhile (it was woken otherwise) empties its slot, then goes on.
    fn park(slf: &Bound<'_, Self>, current: &Bound<'_, PyAny>, hub: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (generation, index, first) = {
            let mut b = this.batches.lock();
            b.pending.push(Some(current.clone().unbind()));
            let first = !b.scheduled;
            b.scheduled = true;
            (b.pending_gen, b.pending.len() - 1, first)
        };
        if first {
            let scheduled = match this.call_soon.lock().as_ref() {
                Some(call_soon) => call_soon
                    .bind(py)
                    .call1((slf.getattr(intern!(py, "resume"))?,))
                    .map(drop),
                None => Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "plait.green: this hub's loop is gone",
                )),
            };
            if let Err(e) = scheduled {
                this.forget(generation, index);
                this.batches.lock().scheduled = false;
                return Err(e);
            }
        }
        match hub.call_method0(intern!(py, "switch")) {
            Ok(_) => Ok(()),
            Err(e) => {
                this.forget(generation, index);
                Err(e)
            }
        }
    }

    fn forget(&self, generation: u64, index: usize) {
        let mut b = self.batches.lock();
        let slot = if generation == b.pending_gen {
            b.pending.get_mut(index)
        } else if generation == b.running_gen {
            b.running.get_mut(index)
        } else {
            None
        };
        // Taken out of the lock before it is dropped: a decref can run Python code.
        let old = slot.and_then(Option::take);
        drop(b);
        drop(old);
    }
}

#[pymethods]
impl Yielders {
    #[new]
    fn new(call_soon: Py<PyAny>, handle_error: Py<PyAny>) -> Self {
        Self {
            batches: Mutex::new(Batches {
                pending_gen: 1,
                ..Batches::default()
            }),
            call_soon: Mutex::new(Some(call_soon)),
            handle_error: Mutex::new(Some(handle_error)),
        }
    }

    /// Records `current` (a greenlet of this hub's thread, not the hub) and switches to `hub`;
    /// returns once resumed: `sleep(0)` for any greenlet.
    #[pyo3(name = "park")]
    fn py_park(slf: &Bound<'_, Self>, current: &Bound<'_, PyAny>, hub: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::park(slf, current, hub)
    }

    /// The loop callback: switches to each greenlet of the batch, in the order they yielded.
    fn resume(&self, py: Python<'_>) -> PyResult<()> {
        let count = {
            let mut b = self.batches.lock();
            let b = &mut *b;
            std::mem::swap(&mut b.running, &mut b.pending);
            b.pending.clear(); // empty already: the batch before was drained
            b.running_gen = b.pending_gen;
            b.pending_gen += 1;
            b.scheduled = false;
            b.running.len()
        };
        for index in 0..count {
            let entry = self.batches.lock().running.get_mut(index).and_then(Option::take);
            let Some(g) = entry else { continue };
            let g = g.into_bound(py);
            // A greenlet that ended meanwhile (it cannot while it waits here: defensive).
            if !g.is_truthy()? {
                continue;
            }
            if let Err(err) = g.call_method0(intern!(py, "switch")) {
                // A raw greenlet's error: the others still resume.
                let handler = self.handle_error.lock().as_ref().map(|h| h.clone_ref(py));
                if let Some(handler) = handler {
                    handler.bind(py).call1((g, err.into_value(py)))?;
                }
            }
        }
        let mut b = self.batches.lock();
        let done = std::mem::take(&mut b.running);
        drop(b);
        drop(done);
        Ok(())
    }

    /// How many greenlets wait to be resumed.
    fn __len__(&self) -> usize {
        let b = self.batches.lock();
        b.pending.iter().chain(b.running.iter()).filter(|s| s.is_some()).count()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(b) = self.batches.try_lock() {
            for g in b.pending.iter().chain(b.running.iter()).flatten() {
                visit.call(g)?;
            }
        }
        for cell in [&self.call_soon, &self.handle_error] {
            if let Some(guard) = cell.try_lock() {
                if let Some(obj) = guard.as_ref() {
                    visit.call(obj)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let batches = std::mem::take(&mut *self.batches.lock());
        let call_soon = self.call_soon.lock().take();
        let handle_error = self.handle_error.lock().take();
        drop((batches, call_soon, handle_error));
    }
}

/// Gives the native `sleep(0)` `greenlet.getcurrent` and the `Hub` class.
#[pyfunction]
pub fn green_init(py: Python<'_>, getcurrent: Py<PyAny>, hub_type: Py<PyAny>) {
    let _ = STATICS.set(py, (getcurrent, hub_type));
}

/// `sleep(0)` of a greenlet spawned on a hub: yields to the hub and returns True once resumed.
/// False, without yielding, when the current greenlet's parent is not a hub (the main greenlet,
/// the hub itself, a raw greenlet with another parent): the caller takes the general path.
#[pyfunction]
pub fn green_sleep0(py: Python<'_>) -> PyResult<bool> {
    let Some((getcurrent, hub_type)) = STATICS.get(py) else {
        return Ok(false);
    };
    let current = getcurrent.bind(py).call0()?;
    let hub = current.getattr(intern!(py, "parent"))?;
    if !hub.get_type().is(hub_type.bind(py)) {
        return Ok(false);
    }
    let yielders = hub.getattr(intern!(py, "_yielders"))?;
    let Ok(yielders) = yielders.cast::<Yielders>() else {
        return Ok(false);
    };
    Yielders::park(yielders, &current, &hub)?;
    Ok(true)
}
