//! [`StreamCore`]: the buffer and protocol callbacks behind `plait.aio`'s streams
//! (`plait.aio.start_server` / `open_connection`).
//!
//! One object is the connection's protocol *and* its reader's buffer: the transport hands each
//! received `bytes` to [`StreamCore::data_received`], which queues it (no copy) and wakes the
//! reader waiting for data. The reader's coroutines (`read`, `readexactly`, `readuntil`...) are
//! thin Python over the `_take*` methods here, which hand out whole chunks when they can. The
//! Python subclass adds what runs once per connection (`connection_made`, `connection_lost`,
//! flow control for writers).

use std::collections::VecDeque;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

static LIMIT_OVERRUN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

#[derive(Default)]
struct Inner {
    chunks: VecDeque<Py<PyBytes>>,
    /// Bytes of the front chunk already consumed.
    offset: usize,
    size: usize,
    eof: bool,
    exception: Option<Py<PyAny>>,
    waiter: Option<Py<PyAny>>,
    transport: Option<Py<PyAny>>,
    paused: bool,
}

impl Inner {
    /// Removes and returns the first `n` buffered bytes (`n <= size`), handing out the front
    /// chunk itself when it is exactly that.
    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        debug_assert!(n <= self.size);
        if let Some(front) = self.chunks.front() {
            let len = front.bind(py).as_bytes().len();
            if self.offset == 0 && len == n {
                self.size -= n;
                return self.chunks.pop_front().expect("front").into_bound(py);
            }
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let front = self.chunks.front().expect("size counts these bytes").bind(py);
            let bytes = &front.as_bytes()[self.offset..];
            let want = (n - out.len()).min(bytes.len());
            out.extend_from_slice(&bytes[..want]);
            if want == bytes.len() {
                self.chunks.pop_front();
                self.offset = 0;
            } else {
                self.offset += want;
            }
        }
        self.size -= n;
        PyBytes::new(py, &out)
    }

    /// The earliest end (index just past the separator) of any of `seps` in the buffer, with the
    /// length of the separator found there.
    fn find(&self, py: Python<'_>, seps: &[Vec<u8>]) -> Option<(usize, usize)> {
        let search = |hay: &[u8]| {
            seps.iter()
                .filter(|sep| !sep.is_empty())
                .filter_map(|sep| {
                    hay.windows(sep.len())
                        .position(|w| w == &sep[..])
                        .map(|p| (p + sep.len(), sep.len()))
                })
                .min()
        };
        if self.chunks.len() == 1 {
            return search(&self.chunks[0].bind(py).as_bytes()[self.offset..]);
        }
        // A separator may straddle chunks: search them as one sequence.
        let mut all = Vec::with_capacity(self.size);
        for (i, c) in self.chunks.iter().enumerate() {
            let b = c.bind(py).as_bytes();
            all.extend_from_slice(if i == 0 { &b[self.offset..] } else { b });
        }
        search(&all)
    }
}

/// The protocol and read buffer of one stream connection; see the module docs.
#[pyclass(module = "plait._plait", frozen, subclass)]
pub struct StreamCore {
    inner: Mutex<Inner>,
    limit: usize,
}

impl StreamCore {
    fn wake(py: Python<'_>, waiter: Option<Py<PyAny>>, exc: Option<&Py<PyAny>>) -> PyResult<()> {
        let Some(w) = waiter else { return Ok(()) };
        let w = w.bind(py);
        if w.call_method0(intern!(py, "done"))?.is_truthy()? {
            return Ok(());
        }
        match exc {
            Some(e) => w.call_method1(intern!(py, "set_exception"), (e,))?,
            None => w.call_method1(intern!(py, "set_result"), (py.None(),))?,
        };
        Ok(())
    }

    /// After data was consumed: resume a transport paused for a full buffer.
    fn maybe_resume(&self, py: Python<'_>, inner: &mut Inner) -> Option<Py<PyAny>> {
        if inner.paused && inner.size <= self.limit {
            inner.paused = false;
            return inner.transport.as_ref().map(|t| t.clone_ref(py));
        }
        None
    }

    fn resume(py: Python<'_>, transport: Option<Py<PyAny>>) -> PyResult<()> {
        if let Some(t) = transport {
            t.bind(py).call_method0(intern!(py, "resume_reading"))?;
        }
        Ok(())
    }
}

#[pymethods]
impl StreamCore {
    #[new]
    #[pyo3(signature = (limit = None, *_args, **_kwargs))]
    fn new(limit: Option<&Bound<'_, PyAny>>, _args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        // A bad limit is reported by `__init__` (ValueError, as asyncio does).
        let limit = limit.map_or(65536, |l| l.extract::<i64>().unwrap_or(1)).max(1);
        Self {
            inner: Mutex::new(Inner::default()),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }

    #[getter]
    fn _limit(&self) -> usize {
        self.limit
    }

    /// The transport this stream reads from (set by `connection_made`).
    fn _set_transport(&self, transport: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut self.inner.lock().transport, transport);
        drop(old);
    }

    /// Queues received data and wakes the reader; pauses the transport past twice the limit.
    fn data_received(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = data.py();
        let bytes = match data.cast::<PyBytes>() {
            Ok(b) => b.clone(),
            Err(_) => PyBytes::new(py, &pyo3::buffer::PyBuffer::<u8>::get(data)?.to_vec(py)?),
        };
        let len = bytes.as_bytes().len();
        if len == 0 {
            return Ok(());
        }
        let (waiter, pause) = {
            let mut inner = self.inner.lock();
            inner.chunks.push_back(bytes.unbind());
            inner.size += len;
            let pause = if !inner.paused && inner.size > 2 * self.limit {
                inner.transport.as_ref().map(|t| t.clone_ref(py))
            } else {
                None
            };
            if pause.is_some() {
                inner.paused = true;
            }
            (inner.waiter.take(), pause)
        };
        Self::wake(py, waiter, None)?;
        if let Some(t) = pause {
            if let Err(e) = t.bind(py).call_method0(intern!(py, "pause_reading")) {
                if !e.is_instance_of::<pyo3::exceptions::PyNotImplementedError>(py) {
                    return Err(e);
                }
                self.inner.lock().paused = false;
            }
        }
        Ok(())
    }

    /// `StreamReader.feed_data`.
    fn feed_data(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.data_received(data)
    }

    /// Marks the end of the stream and wakes the reader.
    fn feed_eof(&self, py: Python<'_>) -> PyResult<()> {
        let waiter = {
            let mut inner = self.inner.lock();
            inner.eof = true;
            inner.waiter.take()
        };
        Self::wake(py, waiter, None)
    }

    /// Whether the stream ended and everything was read.
    fn at_eof(&self) -> bool {
        let inner = self.inner.lock();
        inner.eof && inner.size == 0
    }

    /// The exception set on the stream, if any.
    fn exception(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.inner.lock().exception.as_ref().map(|e| e.clone_ref(py))
    }

    /// Sets an exception that the reader's next wait raises; wakes the reader with it.
    fn set_exception(&self, py: Python<'_>, exc: Py<PyAny>) -> PyResult<()> {
        let waiter = {
            let mut inner = self.inner.lock();
            inner.exception = Some(exc.clone_ref(py));
            inner.waiter.take()
        };
        if let Some(w) = waiter {
            let w = w.bind(py);
            if !w.call_method0(intern!(py, "cancelled"))?.is_truthy()? {
                Self::wake(py, Some(w.clone().unbind()), Some(&exc))?;
            }
        }
        Ok(())
    }

    /// Number of buffered bytes.
    fn _buffered(&self) -> usize {
        self.inner.lock().size
    }

    /// A copy of the buffered bytes (what `asyncio.StreamReader._buffer` holds).
    #[getter]
    fn _buffer<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyByteArray> {
        let inner = self.inner.lock();
        let mut all = Vec::with_capacity(inner.size);
        for (i, c) in inner.chunks.iter().enumerate() {
            let b = c.bind(py).as_bytes();
            all.extend_from_slice(if i == 0 { &b[inner.offset..] } else { b });
        }
        pyo3::types::PyByteArray::new(py, &all)
    }

    #[getter]
    fn _eof(&self) -> bool {
        self.inner.lock().eof
    }

    #[getter]
    fn _paused(&self) -> bool {
        self.inner.lock().paused
    }

    #[getter]
    fn _waiter(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.inner.lock().waiter.as_ref().map(|w| w.clone_ref(py))
    }

    #[getter]
    fn _exception(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.inner.lock().exception.as_ref().map(|e| e.clone_ref(py))
    }

    /// `read(n)` without waiting: up to `n` bytes (all if `n < 0`, only at end of stream), or
    /// `None` when it has to wait. `b""` at end of stream.
    fn _take<'py>(&self, py: Python<'py>, n: isize) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut inner = self.inner.lock();
        if let Some(e) = &inner.exception {
            return Err(PyErr::from_value(e.bind(py).clone()));
        }
        if n == 0 {
            return Ok(Some(PyBytes::new(py, b"")));
        }
        if n < 0 {
            if !inner.eof {
                return Ok(None);
            }
            let all = inner.size;
            let out = inner.take(py, all);
            return Ok(Some(out));
        }
        if inner.size == 0 {
            return Ok(inner.eof.then(|| PyBytes::new(py, b"")));
        }
        // Up to n bytes: the front chunk alone when it fits (no copy).
        let front = inner.chunks.front().expect("size > 0").bind(py).as_bytes().len() - inner.offset;
        let want = (n as usize).min(front);
        let out = inner.take(py, want);
        let resume = self.maybe_resume(py, &mut inner);
        drop(inner);
        Self::resume(py, resume)?;
        Ok(Some(out))
    }

    /// `readexactly(n)` without waiting: the bytes, or `None` to wait; at end of stream with
    /// too few bytes, `(partial,)` (the caller raises `IncompleteReadError`).
    fn _take_exactly<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut inner = self.inner.lock();
        if let Some(e) = &inner.exception {
            return Err(PyErr::from_value(e.bind(py).clone()));
        }
        if inner.size >= n {
            let out = inner.take(py, n);
            let resume = self.maybe_resume(py, &mut inner);
            drop(inner);
            Self::resume(py, resume)?;
            return Ok(Some(out.into_any()));
        }
        if inner.eof {
            let all = inner.size;
            let out = inner.take(py, all);
            return Ok(Some(PyTuple::new(py, [out])?.into_any()));
        }
        Ok(None)
    }

    /// `readuntil(seps)` without waiting: the bytes up to and including the first of `seps` found,
    /// `None` to wait,
    /// `(partial,)` at end of stream; raises `LimitOverrunError` as asyncio does.
    fn _take_until<'py>(&self, py: Python<'py>, seps: Vec<Vec<u8>>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut inner = self.inner.lock();
        if let Some(e) = &inner.exception {
            return Err(PyErr::from_value(e.bind(py).clone()));
        }
        match inner.find(py, &seps) {
            Some((end, seplen)) if end - seplen > self.limit => {
                drop(inner);
                let cls = LIMIT_OVERRUN.get_or_try_init(py, || {
                    py.import("asyncio")?.getattr("LimitOverrunError").map(Bound::unbind)
                })?;
                Err(PyErr::from_value(cls.bind(py).call1((
                    "Separator is found, but chunk is longer than limit",
                    end - seplen,
                ))?))
            }
            Some((end, _)) => {
                let out = inner.take(py, end);
                let resume = self.maybe_resume(py, &mut inner);
                drop(inner);
                Self::resume(py, resume)?;
                Ok(Some(out.into_any()))
            }
            None if inner.size > self.limit => {
                let size = inner.size;
                drop(inner);
                let cls = LIMIT_OVERRUN.get_or_try_init(py, || {
                    py.import("asyncio")?.getattr("LimitOverrunError").map(Bound::unbind)
                })?;
                Err(PyErr::from_value(
                    cls.bind(py)
                        .call1(("Separator is not found, and chunk exceed the limit", size))?,
                ))
            }
            None if inner.eof => {
                let all = inner.size;
                let out = inner.take(py, all);
                Ok(Some(PyTuple::new(py, [out])?.into_any()))
            }
            None => Ok(None),
        }
    }

    /// Drops `n` buffered bytes (after a `LimitOverrunError`, as `readline` does).
    fn _discard(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        let mut inner = self.inner.lock();
        let n = n.min(inner.size);
        let gone = inner.take(py, n);
        let resume = self.maybe_resume(py, &mut inner);
        drop(inner);
        drop(gone);
        Self::resume(py, resume)
    }

    /// A future that completes when data (or the end, or an error) arrives; the reader awaits it.
    /// Raises the stream's exception, or `RuntimeError` if another reader is waiting.
    fn _wait(slf: &Bound<'_, Self>, func: &str) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let resume = {
            let inner = this.inner.lock();
            if let Some(e) = &inner.exception {
                return Err(PyErr::from_value(e.bind(py).clone()));
            }
            if inner.waiter.is_some() {
                return Err(PyRuntimeError::new_err(format!(
                    "{func}() called while another coroutine is already waiting for incoming data"
                )));
            }
            if inner.paused {
                inner.transport.as_ref().map(|t| t.clone_ref(py))
            } else {
                None
            }
        };
        if resume.is_some() {
            // The buffer is full but the reader needs more (a long line): let data in again.
            this.inner.lock().paused = false;
            Self::resume(py, resume)?;
        }
        let fut = slf
            .getattr(intern!(py, "_loop"))?
            .call_method0(intern!(py, "create_future"))?
            .unbind();
        this.inner.lock().waiter = Some(fut.clone_ref(py));
        Ok(fut)
    }

    /// Forgets the waiter (after a wait, or when it was cancelled).
    fn _clear_waiter(&self) {
        let old = self.inner.lock().waiter.take();
        drop(old);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(inner) = self.inner.try_lock() {
            visit.call(inner.exception.as_ref())?;
            visit.call(inner.waiter.as_ref())?;
            visit.call(inner.transport.as_ref())?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let old = std::mem::take(&mut *self.inner.lock());
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

    #[allow(clippy::unused_self, reason = "a Python method: needs self")]
    fn __next__(&self) -> PyResult<()> {
        Err(PyStopIteration::new_err(()))
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

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StreamCore>()?;
    m.add_class::<Ready>()?;
    Ok(())
}
