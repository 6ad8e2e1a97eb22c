//! [`IoSource`]: how the loop calls native code when an fd is ready, without knowing its type.
//!
//! A transport (or anything native that watches an fd) implements [`IoSource`] and hands the
//! loop a [`NativeCallback`] (`IoSource::reader`/`writer`) where asyncio code passes a reader or
//! writer callback (`loop._add_reader(fd, transport._read_ready)`). The loop recognises the
//! callback's type and calls [`NativeCallback::fire`]: one indirect call into the source, no
//! Python call machinery on the per-packet path. From Python the callback is an ordinary
//! callable, so the stdlib code that calls `transport._read_ready()` itself keeps working.
//!
//! This is the seam between the reactor and what it drives: the loop layer owns it, and
//! transports sit above it. It is also where an `io_uring` backend (completions delivered to
//! the same sources) and the green-thread hub (greenlets woken by readiness on the same
//! reactor) plug in.

use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::True;
use pyo3::{PyClass, PyTraverseError, PyVisit};

/// A native object that the loop notifies when its fd is readable or writable.
pub trait IoSource: PyClass<Frozen = True> + Sync {
    /// The fd is readable (or at end of stream, or in error).
    ///
    /// # Errors
    /// What the source raises; the loop reports it like a callback's exception.
    fn on_readable(&self, py: Python<'_>) -> PyResult<()>;

    /// The fd is writable.
    ///
    /// # Errors
    /// What the source raises; the loop reports it like a callback's exception.
    fn on_writable(&self, py: Python<'_>) -> PyResult<()>;

    /// The callback to register for reading.
    ///
    /// # Errors
    /// A failed allocation.
    fn reader(slf: &Bound<'_, Self>) -> PyResult<Py<NativeCallback>> {
        NativeCallback::new(slf, false)
    }

    /// The callback to register for writing.
    ///
    /// # Errors
    /// A failed allocation.
    fn writer(slf: &Bound<'_, Self>) -> PyResult<Py<NativeCallback>> {
        NativeCallback::new(slf, true)
    }
}

/// One side (read or write) of an [`IoSource`], as a callable the loop can run natively.
#[pyclass(module = "plait._plait", frozen)]
pub struct NativeCallback {
    source: Py<PyAny>,
    /// Calls `on_readable`/`on_writable` of `source`, whose concrete type it was made for.
    fire: fn(&Bound<'_, PyAny>, bool) -> PyResult<()>,
    write: bool,
}

/// [`NativeCallback::fire`] for sources of type `S`.
fn fire_as<S: IoSource>(source: &Bound<'_, PyAny>, write: bool) -> PyResult<()> {
    // Safety: a `NativeCallback` with this function holds a `Py<S>` (see `NativeCallback::new`).
    let s = unsafe { source.cast_unchecked::<S>() }.get();
    if write {
        s.on_writable(source.py())
    } else {
        s.on_readable(source.py())
    }
}

impl NativeCallback {
    fn new<S: IoSource>(source: &Bound<'_, S>, write: bool) -> PyResult<Py<Self>> {
        Py::new(
            source.py(),
            Self {
                source: source.clone().into_any().unbind(),
                fire: fire_as::<S>,
                write,
            },
        )
    }

    /// Runs the source's side this callback stands for.
    ///
    /// # Errors
    /// What the source raises.
    #[inline]
    pub fn fire(&self, py: Python<'_>) -> PyResult<()> {
        (self.fire)(self.source.bind(py), self.write)
    }
}

#[pymethods]
impl NativeCallback {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        self.fire(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let side = if self.write { "writable" } else { "readable" };
        Ok(format!("<native {side} callback of {}>", self.source.bind(py).repr()?))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.source)
    }
}
