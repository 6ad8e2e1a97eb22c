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

use std::collections::VecDeque;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::aio::transport::{register_sink, DataSink, NativeSink, SocketIo};

static LIMIT_OVERRUN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static INCOMPLETE_READ: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

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
    writer: WriterFlags,
    /// `_loop`, and whether it is plait's (its futures are made directly).
    event_loop: Option<(Py<PyAny>, bool)>,
    /// The separators of the last `readuntil` search that failed, and how many buffered bytes it
    /// had searched: a search for the same separators after more data came resumes near there
    /// (as asyncio's `readuntil` does) instead of starting over.
    scanned: Option<(Vec<Vec<u8>>, usize)>,
}

/// The protocol's state for the connection's writer, read by every `drain()`.
#[derive(Default, Clone, Copy)]
struct WriterFlags {
    /// The transport asked the writer to stop (`pause_writing`): `drain()` has to wait.
    paused: bool,
    /// `connection_lost` ran: `drain()` raises.
    lost: bool,
}

impl Inner {
    /// Removes and returns the first `n` buffered bytes (`n <= size`), handing out the front
    /// chunk itself when it is exactly that.
    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        debug_assert!(n <= self.size);
        if let Some((_, done)) = &mut self.scanned {
            *done = done.saturating_sub(n);
        }
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
    /// length of the separator found there. A failed search is remembered, so the next one for
    /// the same separators only looks at what came since (a long line arriving in many pieces
    /// costs linear, not quadratic, time).
    fn find(&mut self, py: Python<'_>, seps: &[Vec<u8>]) -> Option<(usize, usize)> {
        let from = match &self.scanned {
            Some((old, done)) if old.as_slice() == seps => *done,
            _ => 0,
        };
        // Matches ending in the searched part were seen; one may end in the new bytes, so the
        // search starts up to a separator's length before them. Only the chunks from there on
        // are looked at (walking back from the end), so resuming costs what came since.
        let longest = seps.iter().map(Vec::len).max().unwrap_or(0);
        let start = from.saturating_sub(longest.saturating_sub(1));
        let mut base = self.size;
        let mut parts: Vec<&[u8]> = Vec::new();
        for (i, c) in self.chunks.iter().enumerate().rev() {
            if base <= start {
                break;
            }
            let b = c.bind(py).as_bytes();
            let part = if i == 0 { &b[self.offset..] } else { b };
            base -= part.len();
            parts.push(part);
        }
        parts.reverse();
        let found = seps
            .iter()
            .filter(|sep| !sep.is_empty())
            .filter_map(|sep| {
                let from_sep = from.saturating_sub(sep.len() - 1).saturating_sub(base);
                find_in(&parts, sep, from_sep).map(|end| (base + end, sep.len()))
            })
            .min();
        match (&mut self.scanned, found) {
            (_, Some(_)) => self.scanned = None,
            // Searching the same separators again: only the count moves (no copy of them).
            (Some((old, done)), None) if old.as_slice() == seps => *done = self.size,
            (_, None) => self.scanned = Some((seps.to_vec(), self.size)),
        }
        found
    }
}

/// The end (index just past it) of the first `sep` (not empty) in the concatenation of `parts`
/// that starts at or after `from`.
fn find_in(parts: &[&[u8]], sep: &[u8], from: usize) -> Option<usize> {
    let mut base = 0;
    for (i, part) in parts.iter().enumerate() {
        let end = base + part.len();
        if end <= from {
            base = end;
            continue;
        }
        let lo = from.saturating_sub(base);
        // Whole matches in this part come first, then those starting here and running on.
        if let Some(p) = memchr::memmem::find(&part[lo..], sep) {
            return Some(base + lo + p + sep.len());
        }
        let straddle = lo.max((part.len() + 1).saturating_sub(sep.len()));
        if let Some(q) = (straddle..part.len()).find(|&q| matches_across(&parts[i..], q, sep)) {
            return Some(base + q + sep.len());
        }
        base = end;
    }
    None
}

/// Whether `sep` starts at index `at` of `parts[0]` and runs on through the following parts.
fn matches_across(parts: &[&[u8]], at: usize, sep: &[u8]) -> bool {
    let mut want = sep;
    let mut start = at;
    for part in parts {
        let have = &part[start.min(part.len())..];
        let n = have.len().min(want.len());
        if have[..n] != want[..n] {
            return false;
        }
        want = &want[n..];
        if want.is_empty() {
            return true;
        }
        start = 0;
    }
    false
}

/// What a read found in the buffer without waiting.
enum Took<'py> {
    /// The bytes asked for.
    Data(Bound<'py, PyBytes>),
    /// The stream ended first: what was left (an `IncompleteReadError`).
    Partial(Bound<'py, PyBytes>),
    /// Not there yet.
    Wait,
    /// `readuntil` passed the limit: `LimitOverrunError`, or for `readline` a `ValueError` after
    /// dropping the line (`found`: the separator is in the buffer, `consumed` bytes in).
    Overrun { found: bool, consumed: usize },
}

impl<'py> Took<'py> {
    /// The `_take_*` methods' result: the bytes, `(partial,)` or `None`.
    fn into_py_result(py: Python<'py>, took: Self) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match took {
            Took::Data(b) => Some(b.into_any()),
            Took::Partial(b) => Some(PyTuple::new(py, [b])?.into_any()),
            Took::Wait => None,
            Took::Overrun { found, consumed } => return Err(limit_overrun(py, overrun_message(found), consumed)),
        })
    }
}

fn overrun_message(found: bool) -> &'static str {
    if found {
        "Separator is found, but chunk is longer than limit"
    } else {
        "Separator is not found, and chunk exceed the limit"
    }
}

fn asyncio_attr<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || py.import("asyncio")?.getattr(name).map(Bound::unbind))
        .map(|c| c.bind(py))
}

/// `asyncio.LimitOverrunError(message, consumed)`.
fn limit_overrun(py: Python<'_>, message: &str, consumed: usize) -> PyErr {
    match asyncio_attr(py, &LIMIT_OVERRUN, "LimitOverrunError").and_then(|cls| cls.call1((message, consumed))) {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

/// `asyncio.IncompleteReadError(partial, expected)`.
fn incomplete_read(py: Python<'_>, partial: &Bound<'_, PyBytes>, expected: Option<usize>) -> PyErr {
    match asyncio_attr(py, &INCOMPLETE_READ, "IncompleteReadError").and_then(|cls| cls.call1((partial, expected))) {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
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

impl DataSink for StreamCore {
    fn data_received(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        StreamCore::data_received(self, data)
    }
}

/// `protocol` fed natively by its transport: a `StreamCore` whose subclass keeps
/// `StreamCore.data_received` (the same descriptor).
fn native_sink(protocol: &Bound<'_, PyAny>) -> Option<NativeSink> {
    let py = protocol.py();
    let stream = protocol.cast::<StreamCore>().ok()?;
    let name = intern!(py, "data_received");
    let mine = protocol.get_type().getattr(name);
    let core = py.get_type::<StreamCore>().getattr(name);
    matches!((mine, core), (Ok(a), Ok(b)) if a.is(&b)).then(|| NativeSink::new(stream))
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StreamCore>()?;
    m.add_class::<Ready>()?;
    m.add_class::<StreamRead>()?;
    m.add_class::<WriterCore>()?;
    register_sink(native_sink);
    Ok(())
}
