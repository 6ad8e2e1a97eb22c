//! [`StreamCore`]: the buffer, protocol callbacks and reads behind `plait.aio`'s streams
//! (`plait.aio.start_server` / `open_connection`).
//!
//! One object is the connection's protocol *and* its reader's buffer: the transport hands each
//! received `bytes` to [`StreamCore::data_received`], which queues it (no copy) and wakes the
//! reader waiting for data. The reads (`read`, `readexactly`, `readuntil`, `readline`) return a
//! [`StreamRead`], a native awaitable that passes for the coroutine asyncio's reader returns: it
//! takes whole chunks when it can, else yields a waiter future to the task, with no Python frame.
//! [`WriterCore`], the writer's native base, writes through the transport and answers `drain()`
//! without a coroutine when there is nothing to wait for. The Python subclasses add what runs once
//! per connection (`connection_made`, `connection_lost`, flow control for writers).

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

use super::buffer::{overrun_message, Inner, Took};
use crate::aio::transport::{DataSink, NativeSink};
use crate::errors::{incomplete_read, limit_overrun};

/// The protocol and read buffer of one stream connection; see the module docs.
#[pyclass(module = "plait._plait", frozen, subclass)]
pub struct StreamCore {
    pub(super) inner: Mutex<Inner>,
    pub(super) limit: usize,
}

impl StreamCore {
    fn wake(py: Python<'_>, waiter: Option<Py<PyAny>>, exc: Option<&Py<PyAny>>) -> PyResult<()> {
        let Some(w) = waiter else { return Ok(()) };
        let w = w.bind(py);
        // Set it, and check whether it was done (cancelled) only if that failed: one call per wake.
        let set = match exc {
            Some(e) => w.call_method1(intern!(py, "set_exception"), (e,)),
            None => w.call_method1(intern!(py, "set_result"), (py.None(),)),
        };
        match set {
            Err(e) if !w.call_method0(intern!(py, "done"))?.is_truthy()? => Err(e),
            _ => Ok(()),
        }
    }

    /// After data was consumed: resume a transport paused for a full buffer.
    fn maybe_resume(&self, py: Python<'_>, inner: &mut Inner) -> Option<Py<PyAny>> {
        if inner.paused && inner.size <= self.limit {
            inner.paused = false;
            return inner.transport.as_ref().map(|t| t.clone_ref(py));
        }
        None
    }

    /// `read(n)` without waiting: up to `n` bytes (all if `n < 0`, only at end of stream), or
    /// `None` when it has to wait. `b""` at end of stream.
    fn take_read<'py>(&self, py: Python<'py>, n: isize) -> PyResult<Option<Bound<'py, PyBytes>>> {
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
        let want = n.unsigned_abs().min(front);
        let out = inner.take(py, want);
        let resume = self.maybe_resume(py, &mut inner);
        drop(inner);
        Self::resume(py, resume)?;
        Ok(Some(out))
    }

    /// `readexactly(n)` without waiting.
    fn take_exactly<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Took<'py>> {
        let mut inner = self.inner.lock();
        if let Some(e) = &inner.exception {
            return Err(PyErr::from_value(e.bind(py).clone()));
        }
        if inner.size >= n {
            let out = inner.take(py, n);
            let resume = self.maybe_resume(py, &mut inner);
            drop(inner);
            Self::resume(py, resume)?;
            return Ok(Took::Data(out));
        }
        if inner.eof {
            let all = inner.size;
            return Ok(Took::Partial(inner.take(py, all)));
        }
        Ok(Took::Wait)
    }

    /// `readuntil(seps)` without waiting.
    fn take_until<'py>(&self, py: Python<'py>, seps: &[Vec<u8>]) -> PyResult<Took<'py>> {
        let mut inner = self.inner.lock();
        if let Some(e) = &inner.exception {
            return Err(PyErr::from_value(e.bind(py).clone()));
        }
        match inner.find(py, seps) {
            Some((end, seplen)) if end - seplen > self.limit => {
                drop(inner);
                Ok(Took::Overrun {
                    found: true,
                    consumed: end - seplen,
                })
            }
            Some((end, _)) => {
                let out = inner.take(py, end);
                let resume = self.maybe_resume(py, &mut inner);
                drop(inner);
                Self::resume(py, resume)?;
                Ok(Took::Data(out))
            }
            // asyncio reports the bytes that cannot start a separator any more.
            None if inner.size > self.limit => Ok(Took::Overrun {
                found: false,
                consumed: (inner.size + 1).saturating_sub(seps.iter().map(Vec::len).max().unwrap_or(1)),
            }),
            None if inner.eof => {
                let all = inner.size;
                Ok(Took::Partial(inner.take(py, all)))
            }
            None => Ok(Took::Wait),
        }
    }

    /// Drops `n` buffered bytes and resumes a paused transport.
    fn discard(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        let mut inner = self.inner.lock();
        let n = n.min(inner.size);
        let gone = inner.take(py, n);
        let resume = self.maybe_resume(py, &mut inner);
        drop(inner);
        drop(gone);
        Self::resume(py, resume)
    }

    /// A new waiter future, registered as the one the next data wakes: what `await`ing for data
    /// yields to the task. Raises the stream's exception, or `RuntimeError` if another reader is
    /// waiting; lets a transport paused for a full buffer read again.
    fn new_waiter<'py>(slf: &Bound<'py, Self>, func: &str) -> PyResult<Bound<'py, PyAny>> {
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
        let event_loop = this
            .inner
            .lock()
            .event_loop
            .as_ref()
            .map(|(l, native)| (l.clone_ref(py), *native));
        let fut = match event_loop {
            Some((l, true)) => crate::aio::futures::new_future(l.bind(py))?,
            Some((l, false)) => l.bind(py).call_method0(intern!(py, "create_future"))?,
            None => crate::aio::event_loop::create_future_on(&slf.getattr(intern!(py, "_loop"))?)?,
        };
        this.inner.lock().waiter = Some(fut.clone().unbind());
        Ok(fut)
    }

    /// Forgets the waiter if it is still `fut` (another reader may have set its own since).
    fn clear_waiter_if(&self, fut: &Py<PyAny>) {
        let mut inner = self.inner.lock();
        if inner.waiter.as_ref().is_some_and(|w| w.is(fut)) {
            let old = inner.waiter.take();
            drop(inner);
            drop(old);
        }
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
        // A bad limit is reported by `__init__` (ValueError, as asyncio does). asyncio accepts
        // floats and huge ints: truncate a float, saturate what does not fit.
        let limit = limit.map_or(65536, |l| {
            l.extract::<i64>()
                .or_else(|_| l.extract::<f64>().map(|f| if f.is_nan() { 1 } else { f as i64 }))
                .unwrap_or(i64::MAX)
        });
        let limit = limit.max(1);
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
    pub(crate) fn data_received(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
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

    /// `asyncio.StreamReader.read`: an awaitable (a native coroutine-like object, accepted by
    /// `asyncio.create_task`) giving up to `n` bytes, or all of them to the end if `n < 0`.
    #[pyo3(signature = (n = -1), text_signature = "($self, n=-1)")]
    fn read(slf: &Bound<'_, Self>, n: isize) -> StreamRead {
        StreamRead::new(slf, ReadKind::Read(n))
    }

    /// `asyncio.StreamReader.readexactly`: an awaitable giving exactly `n` bytes, or raising
    /// `IncompleteReadError` if the stream ends first.
    fn readexactly(slf: &Bound<'_, Self>, n: isize) -> StreamRead {
        let kind = match usize::try_from(n) {
            Ok(n) => ReadKind::Exactly(n),
            Err(_) => ReadKind::Fail(PyValueError::new_err("readexactly size can not be less than zero")),
        };
        StreamRead::new(slf, kind)
    }

    /// `asyncio.StreamReader.readuntil`: an awaitable giving the data up to and including
    /// `separator` (or, as on 3.13, the first of a tuple of separators to end in the data).
    #[pyo3(signature = (separator = None))]
    fn readuntil(slf: &Bound<'_, Self>, separator: Option<&Bound<'_, PyAny>>) -> StreamRead {
        let kind = match separator.map_or_else(|| Ok(vec![b"\n".to_vec()]), separators) {
            Ok(seps) => ReadKind::Until(seps),
            Err(e) => ReadKind::Fail(e),
        };
        StreamRead::new(slf, kind)
    }

    /// `asyncio.StreamReader.readline`: an awaitable giving one line, with its `\n` (without it
    /// at the end of the stream).
    fn readline(slf: &Bound<'_, Self>) -> StreamRead {
        StreamRead::new(slf, ReadKind::Line)
    }

    /// The event loop (asyncio's `StreamReader._loop`).
    #[getter(_loop)]
    fn event_loop(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.inner.lock().event_loop.as_ref().map_or_else(
            || Err(pyo3::exceptions::PyAttributeError::new_err("_loop")),
            |(l, _)| Ok(l.clone_ref(py)),
        )
    }

    #[setter(_loop)]
    fn set_event_loop(&self, value: Option<Bound<'_, PyAny>>) {
        let new = value.map(|l| {
            let native = l.is_instance_of::<crate::aio::event_loop::LoopCore>();
            (l.unbind(), native)
        });
        let old = std::mem::replace(&mut self.inner.lock().event_loop, new);
        drop(old);
    }

    #[getter(_paused_writing)]
    fn paused_writing(&self) -> bool {
        self.inner.lock().writer.paused
    }

    #[setter(_paused_writing)]
    fn set_paused_writing(&self, value: bool) {
        self.inner.lock().writer.paused = value;
    }

    #[getter(_connection_lost)]
    fn connection_lost_flag(&self) -> bool {
        self.inner.lock().writer.lost
    }

    #[setter(_connection_lost)]
    fn set_connection_lost_flag(&self, value: bool) {
        self.inner.lock().writer.lost = value;
    }

    /// `read(n)` without waiting: up to `n` bytes (all if `n < 0`, only at end of stream), or
    /// `None` when it has to wait. `b""` at end of stream.
    fn _take<'py>(&self, py: Python<'py>, n: isize) -> PyResult<Option<Bound<'py, PyBytes>>> {
        self.take_read(py, n)
    }

    /// `readexactly(n)` without waiting: the bytes, or `None` to wait; at end of stream with
    /// too few bytes, `(partial,)` (the caller raises `IncompleteReadError`).
    fn _take_exactly<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Option<Bound<'py, PyAny>>> {
        Took::into_py_result(py, self.take_exactly(py, n)?)
    }

    /// `readuntil(seps)` without waiting: the bytes up to and including the first of `seps` found,
    /// `None` to wait,
    /// `(partial,)` at end of stream; raises `LimitOverrunError` as asyncio does.
    fn _take_until<'py>(&self, py: Python<'py>, seps: Vec<Vec<u8>>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Took::into_py_result(py, self.take_until(py, &seps)?)
    }

    /// Drops `n` buffered bytes (after a `LimitOverrunError`, as `readline` does).
    fn _discard(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        self.discard(py, n)
    }

    /// A future that completes when data (or the end, or an error) arrives; the reader awaits it.
    /// Raises the stream's exception, or `RuntimeError` if another reader is waiting.
    fn _wait<'py>(slf: &Bound<'py, Self>, func: &str) -> PyResult<Bound<'py, PyAny>> {
        Self::new_waiter(slf, func)
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
            visit.call(inner.event_loop.as_ref().map(|(l, _)| l))?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let old = std::mem::take(&mut *self.inner.lock());
        drop(old);
    }
}

/// `readuntil`'s `separator`: one bytes-like object or an iterable of them, each non-empty.
fn separators(separator: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u8>>> {
    let py = separator.py();
    let one = |o: &Bound<'_, PyAny>| pyo3::buffer::PyBuffer::<u8>::get(o).and_then(|b| b.to_vec(py));
    let seps = if let Ok(sep) = one(separator) {
        vec![sep]
    } else {
        let seps = separator.try_iter()?.map(|o| one(&o?)).collect::<PyResult<Vec<_>>>()?;
        if seps.is_empty() {
            return Err(PyValueError::new_err("Separator should contain at least one element"));
        }
        seps
    };
    if seps.iter().any(Vec::is_empty) {
        return Err(PyValueError::new_err("Separator should be at least one-byte string"));
    }
    Ok(seps)
}

/// Which read a [`StreamRead`] does.
enum ReadKind {
    Read(isize),
    Exactly(usize),
    Until(Vec<Vec<u8>>),
    Line,
    /// Bad arguments: raised when awaited, as the `async def` it replaces does.
    Fail(PyErr),
}

impl ReadKind {
    /// The name the "another coroutine is already waiting" error gives (asyncio's).
    fn name(&self) -> &'static str {
        match self {
            Self::Read(_) => "read",
            Self::Exactly(_) => "readexactly",
            Self::Until(_) | Self::Line | Self::Fail(_) => "readuntil",
        }
    }
}

enum ReadState {
    /// Not stepped yet.
    Fresh,
    /// Yielded this waiter to the task, which resumes the read when the waiter is done.
    Waiting(Py<PyAny>),
    /// Returned or raised.
    Done,
}

/// One `read`/`readexactly`/`readuntil`/`readline` of a [`StreamCore`]: what the `async def` of
/// `asyncio.StreamReader` is, without a Python frame. It behaves as a coroutine (`send`, `throw`,
/// `close`, `__await__`, so `asyncio.iscoroutine` accepts it and `create_task` runs it): each step
/// takes the buffered data and returns it (`StopIteration`), or registers a waiter future and
/// yields it to the task, as `await future` would.
#[pyclass(module = "plait._plait", frozen, freelist = 16)]
pub struct StreamRead {
    core: Py<StreamCore>,
    kind: ReadKind,
    state: Mutex<ReadState>,
}

impl StreamRead {
    fn new(core: &Bound<'_, StreamCore>, kind: ReadKind) -> Self {
        Self {
            core: core.clone().unbind(),
            kind,
            state: Mutex::new(ReadState::Fresh),
        }
    }

    /// The result if the buffer has it (or the end or an error decides it), `None` to wait.
    fn attempt<'py>(&self, core: &Bound<'py, StreamCore>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = core.py();
        let c = core.get();
        let took = match &self.kind {
            ReadKind::Read(n) => return Ok(c.take_read(py, *n)?.map(Bound::into_any)),
            ReadKind::Fail(e) => return Err(e.clone_ref(py)),
            ReadKind::Exactly(n) => c.take_exactly(py, *n)?,
            ReadKind::Until(seps) => c.take_until(py, seps)?,
            ReadKind::Line => c.take_until(py, &[b"\n".to_vec()])?,
        };
        match (took, &self.kind) {
            (Took::Wait, _) => Ok(None),
            (Took::Data(b), _) | (Took::Partial(b), ReadKind::Line) => Ok(Some(b.into_any())),
            (Took::Partial(b), ReadKind::Exactly(n)) => Err(incomplete_read(py, &b, Some(*n))),
            (Took::Partial(b), _) => Err(incomplete_read(py, &b, None)),
            (Took::Overrun { found, consumed }, ReadKind::Line) => {
                // asyncio's readline drops the too-long line (or all it has) and raises ValueError.
                let n = if found { consumed + 1 } else { c.inner.lock().size };
                c.discard(py, n)?;
                Err(PyValueError::new_err(overrun_message(found)))
            }
            (Took::Overrun { found, consumed }, _) => Err(limit_overrun(py, overrun_message(found), consumed)),
        }
    }

    /// One step: forget the waiter of the last one, then finish or yield a new waiter.
    fn step<'py>(&self, py: Python<'py>) -> PyResult<Step<'py>> {
        let prev = std::mem::replace(&mut *self.state.lock(), ReadState::Done);
        let core = self.core.bind(py);
        match prev {
            ReadState::Done => return Err(PyRuntimeError::new_err("cannot reuse already awaited coroutine")),
            ReadState::Waiting(fut) => core.get().clear_waiter_if(&fut),
            ReadState::Fresh => {}
        }
        if let Some(out) = self.attempt(core)? {
            return Ok(Step::Return(out));
        }
        let fut = StreamCore::new_waiter(core, self.kind.name())?;
        // What `Future.__iter__` sets before yielding: the task then waits for the future.
        fut.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
        *self.state.lock() = ReadState::Waiting(fut.clone().unbind());
        Ok(Step::Yield(fut))
    }

    /// Leaves the read: forgets its waiter (cancelling it when `cancel`).
    fn finish(&self, py: Python<'_>, cancel: bool) -> PyResult<()> {
        let prev = std::mem::replace(&mut *self.state.lock(), ReadState::Done);
        if let ReadState::Waiting(fut) = prev {
            self.core.get().clear_waiter_if(&fut);
            let fut = fut.bind(py);
            if cancel && !fut.call_method0(intern!(py, "done"))?.is_truthy()? {
                fut.call_method0(intern!(py, "cancel"))?;
            }
        }
        Ok(())
    }
}

/// What a step of a [`StreamRead`] gives.
enum Step<'py> {
    /// The waiter to yield to the task.
    Yield(Bound<'py, PyAny>),
    /// The result (`StopIteration(value)`).
    Return(Bound<'py, PyAny>),
}

/// Ends `__next__` (`tp_iternext`) with `StopIteration(value)` the cheap way: sets the exception
/// with `value` unnormalised (no exception object is made; the interpreter's `SEND` and
/// `PyIter_Send` take the value as it is) and returns `Ok(None)`, which the `tp_iternext` wrapper
/// turns into `NULL`.
fn stop_with(value: &Bound<'_, PyAny>) -> Option<Py<PyAny>> {
    // Safety: attached to Python (`value` is bound); PyErr_SetObject takes new references to
    // both objects. A tuple value is normalised by CPython before use, so any value is correct.
    unsafe { pyo3::ffi::PyErr_SetObject(pyo3::ffi::PyExc_StopIteration, value.as_ptr()) };
    None
}

/// The exception `throw(typ, val, tb)` raises, as for a generator.
fn thrown(typ: &Bound<'_, PyAny>, val: Option<&Bound<'_, PyAny>>, tb: Option<&Bound<'_, PyAny>>) -> PyErr {
    let py = typ.py();
    let val = val.filter(|v| !v.is_none());
    let exc = if typ.is_instance_of::<pyo3::exceptions::PyBaseException>() {
        if val.is_some() {
            return PyTypeError::new_err("instance exception may not have a separate value");
        }
        Ok(typ.clone())
    } else if typ
        .cast::<pyo3::types::PyType>()
        .is_ok_and(|t| t.is_subclass_of::<pyo3::exceptions::PyBaseException>().unwrap_or(false))
    {
        match val {
            None => typ.call0(),
            Some(v) if v.is_instance(typ).unwrap_or(false) => Ok(v.clone()),
            Some(v) => match v.cast::<PyTuple>() {
                Ok(args) => typ.call1(args),
                Err(_) => typ.call1((v,)),
            },
        }
    } else {
        return PyTypeError::new_err(format!(
            "exceptions must be classes or instances deriving from BaseException, not {}",
            typ.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string())
        ));
    };
    match exc {
        Ok(e) => {
            if let Some(tb) = tb.filter(|t| !t.is_none()) {
                if let Err(err) = e.setattr(intern!(py, "__traceback__"), tb) {
                    return err;
                }
            }
            PyErr::from_value(e)
        }
        Err(e) => e,
    }
}

#[pymethods]
impl StreamRead {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.step(py)? {
            Step::Yield(fut) => Ok(Some(fut.unbind())),
            Step::Return(out) => Ok(stop_with(&out)),
        }
    }

    /// Resumes the read (the value sent is ignored, as a future's result is by `await`).
    fn send<'py>(&self, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match self.step(value.py())? {
            Step::Yield(fut) => Ok(fut),
            Step::Return(out) => Err(PyStopIteration::new_err((out.unbind(),))),
        }
    }

    /// Raises `typ` (or `val`) in the read: it forgets and cancels its waiter, and ends.
    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.finish(typ.py(), true)?;
        Err(thrown(typ, val, tb))
    }

    /// Ends the read, forgetting its waiter.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, false)
    }

    fn __repr__(&self) -> String {
        format!("<plait StreamRead {}()>", self.kind.name())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.core)?;
        if let Some(state) = self.state.try_lock() {
            if let ReadState::Waiting(fut) = &*state {
                visit.call(fut)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let old = std::mem::replace(&mut *self.state.lock(), ReadState::Done);
        drop(old);
    }
}

impl DataSink for StreamCore {
    fn data_received(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        StreamCore::data_received(self, data)
    }
}

/// `protocol` fed natively by its transport: a `StreamCore` whose subclass keeps
/// `StreamCore.data_received` (the same descriptor).
pub(super) fn native_sink(protocol: &Bound<'_, PyAny>) -> Option<NativeSink> {
    let py = protocol.py();
    let stream = protocol.cast::<StreamCore>().ok()?;
    let name = intern!(py, "data_received");
    let mine = protocol.get_type().getattr(name);
    let core = py.get_type::<StreamCore>().getattr(name);
    matches!((mine, core), (Ok(a), Ok(b)) if a.is(&b)).then(|| NativeSink::new(stream))
}
