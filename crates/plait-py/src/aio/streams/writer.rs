//! [`WriterCore`]: the stream writer's native base, writing through the transport and answering
//! `drain()` without a coroutine when there is nothing to wait for; [`Ready`], that answer.

use parking_lot::Mutex;
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;
use pyo3::{intern, PyTraverseError, PyVisit};

use super::reader::StreamCore;
use crate::aio::transport::SocketIo;

static READY: PyOnceLock<Py<Ready>> = PyOnceLock::new();
static STREAM_WRITER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

#[derive(Default)]
struct WriterRefs {
    transport: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
    reader: Option<Py<PyAny>>,
    /// The transport is plait's socket transport, whose `_closing` attribute is `is_closing()`.
    native: bool,
    /// The transport writes through `_plait.SocketIo` (its `_io`): `write()` calls it directly.
    /// The `SocketIo` is looked up per write, not kept: a writer held past its connection (a
    /// cycle) must not keep the transport's native half alive.
    native_write: bool,
}

/// The native base of `plait.aio.StreamWriter`: its `_transport`, `_protocol` and `_reader` (as
/// asyncio's `StreamWriter` names them), and a `drain()` that checks natively whether there is
/// anything to wait for, returning a done awaitable when not and asyncio's `drain()` when so.
#[pyclass(module = "plait._plait", frozen, subclass)]
pub struct WriterCore {
    refs: Mutex<WriterRefs>,
}

impl WriterCore {
    /// Whether `drain()` has something to do: writing paused, connection lost, transport
    /// closing, or an exception set on the reader.
    fn must_wait(py: Python<'_>, refs: &WriterRefs) -> PyResult<bool> {
        let mut reader_checked = false;
        if let Some(p) = &refs.protocol {
            let p = p.bind(py);
            if let Ok(core) = p.cast::<StreamCore>() {
                let inner = core.get().inner.lock();
                // plait's streams: the protocol is the reader, one lock answers for both.
                reader_checked = refs.reader.as_ref().is_some_and(|r| r.is(p));
                if inner.writer.paused || inner.writer.lost || (reader_checked && inner.exception.is_some()) {
                    return Ok(true);
                }
            } else if p.getattr(intern!(py, "_paused_writing"))?.is_truthy()?
                || p.getattr(intern!(py, "_connection_lost"))?.is_truthy()?
            {
                return Ok(true);
            }
        }
        if let Some(t) = &refs.transport {
            let t = t.bind(py);
            let closing = if refs.native {
                t.getattr(intern!(py, "_closing"))?
            } else {
                t.call_method0(intern!(py, "is_closing"))?
            };
            if closing.is_truthy()? {
                return Ok(true);
            }
        }
        if let Some(r) = refs
            .reader
            .as_ref()
            .map(|r| r.bind(py))
            .filter(|r| !reader_checked && !r.is_none())
        {
            let failed = match r.cast::<StreamCore>() {
                Ok(core) => core.get().inner.lock().exception.is_some(),
                Err(_) => !r.call_method0(intern!(py, "exception"))?.is_none(),
            };
            if failed {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[pymethods]
impl WriterCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        Self {
            refs: Mutex::new(WriterRefs::default()),
        }
    }

    /// `asyncio.StreamWriter.write`: the transport's `write(data)` (called natively for plait's
    /// socket transport).
    fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = data.py();
        let (transport, native_write) = {
            let refs = self.refs.lock();
            (refs.transport.as_ref().map(|t| t.clone_ref(py)), refs.native_write)
        };
        let Some(t) = transport else {
            return Err(pyo3::exceptions::PyAttributeError::new_err("_transport"));
        };
        let t = t.bind(py);
        if native_write {
            if let Ok(io) = t.getattr(intern!(py, "_io"))?.cast::<SocketIo>() {
                // After connection_lost the transport's own (stdlib) write answers.
                if io.get().attached() {
                    return io.get().write(data);
                }
            }
        }
        t.call_method1(intern!(py, "write"), (data,)).map(drop)
    }

    /// `asyncio.StreamWriter.drain`: a done awaitable when there is nothing to wait for (no
    /// coroutine), else asyncio's `drain()` coroutine, which waits or raises.
    fn drain<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let wait = {
            let refs = slf.get().refs.lock();
            Self::must_wait(py, &refs)?
        };
        if wait {
            let cls = STREAM_WRITER
                .get_or_try_init(py, || py.import("asyncio")?.getattr("StreamWriter").map(Bound::unbind))?;
            return cls.bind(py).getattr(intern!(py, "drain"))?.call1((slf,));
        }
        Ok(READY
            .get_or_try_init(py, || Py::new(py, Ready))?
            .bind(py)
            .clone()
            .into_any())
    }

    #[getter(_transport)]
    fn transport(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.refs.lock().transport.as_ref().map(|t| t.clone_ref(py))
    }

    #[setter(_transport)]
    fn set_transport(&self, value: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut self.refs.lock().transport, value);
        drop(old);
    }

    #[getter(_protocol)]
    fn protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.refs.lock().protocol.as_ref().map(|t| t.clone_ref(py))
    }

    #[setter(_protocol)]
    fn set_protocol(&self, value: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut self.refs.lock().protocol, value);
        drop(old);
    }

    #[getter(_reader)]
    fn reader(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.refs.lock().reader.as_ref().map(|t| t.clone_ref(py))
    }

    #[setter(_reader)]
    fn set_reader(&self, value: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut self.refs.lock().reader, value);
        drop(old);
    }

    /// Whether `_transport` is plait's socket transport (set with it).
    #[getter(_native)]
    fn native(&self) -> bool {
        self.refs.lock().native
    }

    #[setter(_native)]
    fn set_native(&self, value: bool) {
        self.refs.lock().native = value;
    }

    /// Whether `_transport` writes through its `_io` (`_plait.SocketIo`).
    #[getter(_native_write)]
    fn native_write(&self) -> bool {
        self.refs.lock().native_write
    }

    #[setter(_native_write)]
    fn set_native_write(&self, value: bool) {
        self.refs.lock().native_write = value;
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(refs) = self.refs.try_lock() {
            visit.call(refs.transport.as_ref())?;
            visit.call(refs.protocol.as_ref())?;
            visit.call(refs.reader.as_ref())?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let old = std::mem::take(&mut *self.refs.lock());
        drop(old);
    }
}

/// An awaitable that is already done (`await` returns `None` at once): `drain()` when nothing
/// needs to wait, without a coroutine.
#[pyclass(module = "plait._plait", frozen)]
pub struct Ready;

#[pymethods]
impl Ready {
    #[new]
    fn new() -> Self {
        Self
    }

    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Exhausted at once: NULL without an exception, which `await` reads as `StopIteration(None)`.
    #[allow(clippy::unused_self, reason = "a Python method: needs self")]
    fn __next__(&self) -> Option<Py<PyAny>> {
        None
    }

    #[allow(clippy::unused_self, reason = "a Python method: needs self")]
    fn send(&self, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyStopIteration::new_err(()))
    }

    #[allow(clippy::unused_self, reason = "a Python method: needs self")]
    #[pyo3(signature = (typ, val = None, _tb = None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let exc = match val {
            Some(v) if !v.is_none() => v.clone(),
            _ => typ.call0().unwrap_or_else(|_| typ.clone()),
        };
        Err(PyErr::from_value(exc))
    }

    #[allow(clippy::unused_self, reason = "a Python method: needs self")]
    fn close(&self) {}
}
