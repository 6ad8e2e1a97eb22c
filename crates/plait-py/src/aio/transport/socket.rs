//! [`SocketIo`]: the per-packet paths of `plait.aio`'s stream transport, in Rust.
//!
//! `plait.aio._SocketTransport` subclasses asyncio's own selector socket transport, so the
//! per-connection logic (close, abort, EOF, flow control, errors, `get_extra_info`) is the
//! stdlib's, and every `isinstance` check holds. What runs once per packet is here: reading
//! (`recv` straight into a new `bytes`, then `protocol.data_received(bytes)`, or `recv_into` the
//! buffer of a `BufferedProtocol`), and `write`/`_write_ready` (`send` straight from the caller's
//! buffer). The transport's state stays in its Python attributes (`_conn_lost`, `_buffer`...), read
//! here by interned name, so both halves always agree.
//!
//! The transport talks to the loop only through the loop's `_add_writer`/`_remove_writer`, as the
//! stdlib's transport does: nothing here knows the reactor.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{
    PyAttributeError, PyKeyboardInterrupt, PyNotImplementedError, PyRuntimeError, PySystemExit, PyTypeError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PySlice};
use pyo3::{intern, PyTraverseError, PyVisit};

use super::sink::{native_sink, NativeSink};
use crate::aio::event_loop;
use crate::aio::source::{IoSource, NativeCallback};

/// The most one read takes (asyncio's `max_size`).
const MAX_READ: usize = 256 * 1024;
/// [`MAX_READ`] for the C API.
const MAX_READ_SSIZE: pyo3::ffi::Py_ssize_t = 256 * 1024;

static BUFFERED_PROTOCOL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

extern "C" {
    /// The interpreter's own resize of a fresh bytes object (as `socket.recv` uses); not in `pyo3-ffi`'s
    /// public surface.
    fn _PyBytes_Resize(bytes: *mut *mut pyo3::ffi::PyObject, newsize: pyo3::ffi::Py_ssize_t) -> std::ffi::c_int;
}

thread_local! {
    /// A `bytes` object of `MAX_READ` bytes that reads land in, reused while reads are small.
    /// Never shown to Python code while it sits here. Freed when a loop closes on this thread
    /// ([`free_spare`]); left alone at thread exit (the interpreter may be gone by then).
    static SPARE: Cell<*mut pyo3::ffi::PyObject> = const { Cell::new(std::ptr::null_mut()) };
}

/// A read longer than this marks the connection as one that moves large messages: its next read
/// asks the kernel how much is queued (`FIONREAD`) and receives straight into a `bytes` (or the
/// stream's `bytearray`) of that size, with no copy; shorter reads land in the thread's spare
/// buffer and are copied out. Handing the spare itself over (shrunk with `mremap`) cost an
/// `mmap` and a `munmap` per read, which measured 75 us of kernel time per 64 KiB echo round trip
/// on this machine (against 20 us now; copying: 23 us).
const COPY_MAX: usize = 16 * 1024;

/// The bytes queued on `fd` to read (`FIONREAD`); 0 when the kernel does not say.
fn queued(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // Safety: FIONREAD writes one int through the pointer.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &raw mut n) };
    if r < 0 {
        0
    } else {
        usize::try_from(n).unwrap_or(0)
    }
}

/// One `recv` into a new `bytes` (empty at EOF): of `want` bytes when a large read is expected
/// (see [`SocketIo::large_read`]), shrunk to what came; else through the thread's spare buffer,
/// copied out. A fresh 256 KiB allocation per read would cost `mmap`, `mremap` and `munmap`
/// system calls (glibc serves that size from `mmap`, measured with strace).
fn recv_bytes(py: Python<'_>, fd: RawFd, want: Option<usize>) -> Result<Bound<'_, PyBytes>, i32> {
    use pyo3::ffi;
    let Some(want) = want else {
        // Safety: `data` is initialised; PyBytes_FromStringAndSize copies it (NULL with an
        // exception set when out of memory).
        let out = recv_with(py, fd, |data| unsafe {
            ffi::PyBytes_FromStringAndSize(data.as_ptr().cast(), ffi::Py_ssize_t::try_from(data.len()).unwrap_or(0))
        })?;
        if out.is_null() {
            drop(PyErr::fetch(py));
            return Err(libc::ENOMEM);
        }
        // Safety: a new reference to a bytes object.
        return Ok(unsafe { Bound::from_owned_ptr(py, out).cast_into_unchecked() });
    };
    // Safety: a NULL source makes an uninitialised bytes object of `want` (<= MAX_READ) bytes,
    // refcount 1 and ours alone; `recv` writes at most `want` bytes into it and only the first
    // `n` are kept. _PyBytes_Resize is only called on that object (refcount 1), as it requires;
    // on failure it frees the object and sets NULL.
    unsafe {
        let size = ffi::Py_ssize_t::try_from(want).unwrap_or(MAX_READ_SSIZE);
        let mut out = ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
        if out.is_null() {
            drop(PyErr::fetch(py));
            return Err(libc::ENOMEM);
        }
        let n = libc::recv(fd, ffi::PyBytes_AsString(out).cast(), want, 0);
        if n < 0 {
            let e = errno();
            ffi::Py_DECREF(out);
            return Err(e);
        }
        if (n as usize) < want && _PyBytes_Resize(&raw mut out, n) < 0 {
            drop(PyErr::fetch(py));
            return Err(libc::ENOMEM);
        }
        Ok(Bound::from_owned_ptr(py, out).cast_into_unchecked())
    }
}

/// One `recv` into the thread's spare buffer; `f` gets the bytes read (empty at EOF) while the
/// spare is held, and its result is returned. `Err(errno)` when `recv` fails.
fn recv_with<R>(py: Python<'_>, fd: RawFd, f: impl FnOnce(&[u8]) -> R) -> Result<R, i32> {
    // Safety: the spare is ours alone (see `take_spare`), MAX_READ bytes long, and only its
    // first `n` initialised bytes are shown to `f`.
    unsafe {
        let big = take_spare(py)?;
        let base = pyo3::ffi::PyBytes_AsString(big).cast::<u8>();
        let n = libc::recv(fd, base.cast(), MAX_READ, 0);
        if n < 0 {
            let e = errno();
            put_spare(big);
            return Err(e);
        }
        let out = f(std::slice::from_raw_parts(base, n as usize));
        put_spare(big);
        Ok(out)
    }
}

/// One `recv` of up to `want` bytes straight onto the end of `buffer` (grown, then shrunk to
/// what came), for a connection that moves large messages (see [`COPY_MAX`]). The result has
/// [`recv_with`]'s shape: `Ok(Ok(n))` bytes appended (0 at EOF), `Err(errno)` when `recv` fails.
fn recv_append(
    py: Python<'_>,
    fd: RawFd,
    buffer: &Bound<'_, PyByteArray>,
    want: usize,
) -> Result<PyResult<usize>, i32> {
    use pyo3::ffi;
    let old = buffer.len();
    let grown = ffi::Py_ssize_t::try_from(old + want).unwrap_or(ffi::Py_ssize_t::MAX);
    // Safety: `buffer` is a bytearray; after a successful resize it holds `old + want` bytes,
    // `recv` writes at most `want` of them past `old`, and the resize back keeps only the first
    // `old + n` (all initialised). No Python code runs in between.
    unsafe {
        if ffi::PyByteArray_Resize(buffer.as_ptr(), grown) < 0 {
            return Ok(Err(PyErr::fetch(py)));
        }
        let dst = ffi::PyByteArray_AsString(buffer.as_ptr()).cast::<u8>().add(old);
        let n = libc::recv(fd, dst.cast(), want, 0);
        let e = errno();
        let kept = if n < 0 { old } else { old + n as usize };
        if ffi::PyByteArray_Resize(buffer.as_ptr(), ffi::Py_ssize_t::try_from(kept).unwrap_or(grown)) < 0 {
            // Out of memory while shrinking: the buffer is still `old + want` long; what `recv`
            // did not write must not show uninitialised memory.
            std::ptr::write_bytes(dst.add(kept - old), 0, old + want - kept);
            return Ok(Err(PyErr::fetch(py)));
        }
        if n < 0 {
            return Err(e);
        }
        Ok(Ok(n as usize))
    }
}

/// Takes this thread's spare (a `bytes` of `MAX_READ` bytes, refcount 1, never seen by Python
/// code) out of its slot, or makes one; `Err(ENOMEM)` when that fails.
/// The caller owns the returned reference: it goes back with [`put_spare`] or is handed over.
fn take_spare(py: Python<'_>) -> Result<*mut pyo3::ffi::PyObject, i32> {
    let big = SPARE.replace(std::ptr::null_mut());
    if !big.is_null() {
        return Ok(big);
    }
    // Safety: the GIL is held (`py`); a NULL source makes an uninitialised bytes object.
    let big = unsafe { pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), MAX_READ_SSIZE) };
    if big.is_null() {
        drop(PyErr::fetch(py));
        return Err(libc::ENOMEM);
    }
    Ok(big)
}

/// Puts a spare taken with [`take_spare`] back (or frees it, if a nested read left another).
///
/// # Safety
/// `big` comes from `take_spare` and is not used afterwards; the GIL is held.
unsafe fn put_spare(big: *mut pyo3::ffi::PyObject) {
    let other = SPARE.replace(big);
    if !other.is_null() {
        // Safety: `other` was the slot's own reference; the GIL is held.
        unsafe { pyo3::ffi::Py_DECREF(other) };
    }
}

/// Frees this thread's spare receive buffer (when its loop closes); the next read allocates one.
pub fn free_spare(_py: Python<'_>) {
    let big = SPARE.replace(std::ptr::null_mut());
    if !big.is_null() {
        // Safety: the spare is a bytes object owned by this slot alone; the GIL is held.
        unsafe { pyo3::ffi::Py_DECREF(big) };
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn would_block(e: i32) -> bool {
    e == libc::EAGAIN || e == libc::EWOULDBLOCK || e == libc::EINTR
}

fn os_error(e: i32) -> PyErr {
    std::io::Error::from_raw_os_error(e).into()
}

fn fatal_passthrough(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<PyKeyboardInterrupt>(py) || e.is_instance_of::<PySystemExit>(py)
}

/// How the protocol takes data.
enum Sink {
    /// `protocol.data_received(bytes)`.
    Data(Py<PyAny>),
    /// A protocol without `data_received` when set (asyncio accepts a `BaseProtocol` that only
    /// writes): the method is looked up at each read.
    Late(Py<PyAny>),
    /// plait's stream protocol (`StreamCore`, `data_received` not overridden): called natively.
    Stream(NativeSink),
    /// `protocol.get_buffer(-1)` then `protocol.buffer_updated(n)`.
    Buffered {
        get_buffer: Py<PyAny>,
        buffer_updated: Py<PyAny>,
    },
    /// asyncio's own `StreamReaderProtocol`, unmodified: what its `data_received` does with a
    /// `StreamReader` of exactly `reader_cls` (append to `_buffer`, wake `_waiter`, pause past
    /// twice `_limit`) is done here, with no Python frame and no intermediate `bytes`. Any other
    /// reader goes through `data_received`.
    StdStream {
        protocol: Py<PyAny>,
        reader_cls: Py<PyAny>,
        data_received: Py<PyAny>,
    },
}

impl Sink {
    fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Sink::Data(f) => Sink::Data(f.clone_ref(py)),
            Sink::Late(p) => Sink::Late(p.clone_ref(py)),
            Sink::Stream(s) => Sink::Stream(s.clone_ref(py)),
            Sink::Buffered {
                get_buffer,
                buffer_updated,
            } => Sink::Buffered {
                get_buffer: get_buffer.clone_ref(py),
                buffer_updated: buffer_updated.clone_ref(py),
            },
            Sink::StdStream {
                protocol,
                reader_cls,
                data_received,
            } => Sink::StdStream {
                protocol: protocol.clone_ref(py),
                reader_cls: reader_cls.clone_ref(py),
                data_received: data_received.clone_ref(py),
            },
        }
    }
}

/// The native half of one socket transport; see the module docs.
#[pyclass(module = "plait._plait", frozen)]
pub struct SocketIo {
    transport: Mutex<Option<Py<PyAny>>>,
    fd: RawFd,
    sink: Mutex<Option<Sink>>,
    /// The last read was longer than [`COPY_MAX`]: size the next one with `FIONREAD`.
    big: AtomicBool,
}

impl SocketIo {
    /// After a read above [`COPY_MAX`]: the bytes queued now (`FIONREAD`, at most `MAX_READ`),
    /// when they are many too, to receive straight into place. `None` reads through the spare.
    fn large_read(&self) -> Option<usize> {
        if !self.big.load(Ordering::Relaxed) {
            return None;
        }
        let want = queued(self.fd).min(MAX_READ);
        (want > COPY_MAX).then_some(want)
    }

    /// Whether the transport is still attached (not yet past `connection_lost`).
    pub fn attached(&self) -> bool {
        self.transport.lock().is_some()
    }

    fn transport<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.transport.lock().as_ref().map(|t| t.bind(py).clone())
    }

    fn fatal(t: &Bound<'_, PyAny>, err: PyErr, message: &str) -> PyResult<()> {
        let py = t.py();
        if fatal_passthrough(py, &err) {
            return Err(err);
        }
        t.call_method1(intern!(py, "_fatal_error"), (err.value(py), message))?;
        Ok(())
    }

    /// The reader is edge-triggered (the loop does not re-arm it): after a read that filled the
    /// buffer, more data may be waiting, so ask the loop to report the fd again.
    fn rearm(&self, t: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = t.py();
        t.getattr(intern!(py, "_loop"))?
            .call_method1(intern!(py, "_rearm"), (self.fd,))?;
        Ok(())
    }

    fn read_data(
        &self,
        t: &Bound<'_, PyAny>,
        data_received: impl FnOnce(&Bound<'_, PyBytes>) -> PyResult<()>,
    ) -> PyResult<()> {
        let py = t.py();
        let read = recv_bytes(py, self.fd, self.large_read());
        let data = match read {
            Ok(d) => d,
            Err(e) if e == libc::EINTR => return self.rearm(t),
            Err(e) if would_block(e) => return Ok(()),
            Err(e) => return Self::fatal(t, os_error(e), "Fatal read error on socket transport"),
        };
        let n = data.as_bytes().len();
        self.big.store(n > COPY_MAX, Ordering::Relaxed);
        if n == 0 {
            t.call_method0(intern!(py, "_read_ready__on_eof"))?;
            return Ok(());
        }
        if n == MAX_READ {
            self.rearm(t)?;
        }
        if let Err(e) = data_received(&data) {
            return Self::fatal(t, e, "Fatal error: protocol.data_received() call failed.");
        }
        Ok(())
    }

    /// [`Self::read_data`] for a protocol that had no `data_received` when it was set: looked
    /// up now, as asyncio's transport does at each read (a failure is fatal to the connection).
    fn read_data_late(&self, t: &Bound<'_, PyAny>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = t.py();
        match protocol.getattr(intern!(py, "data_received")) {
            Ok(f) => self.read_data(t, |data| f.call1((data,)).map(drop)),
            Err(e) => {
                let read = recv_with(py, self.fd, <[u8]>::is_empty);
                match read {
                    Err(e) if would_block(e) => Ok(()),
                    Ok(true) => t.call_method0(intern!(py, "_read_ready__on_eof")).map(drop),
                    _ => Self::fatal(t, e, "Fatal error: protocol.data_received() call failed."),
                }
            }
        }
    }

    /// The reader that an unmodified `StreamReaderProtocol` would feed, when the native feed
    /// does the same: exactly `reader_cls`, not at EOF (the stdlib asserts), with a `bytearray`
    /// buffer. `None` sends the data through `data_received` instead.
    fn stock_reader<'py>(
        protocol: &Bound<'py, PyAny>,
        reader_cls: &Bound<'py, PyAny>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyByteArray>)>> {
        let py = protocol.py();
        let wr = protocol.getattr(intern!(py, "_stream_reader_wr"))?;
        if wr.is_none() {
            return Ok(None);
        }
        let reader = wr.call0()?;
        if !reader.get_type().is(reader_cls) || reader.getattr(intern!(py, "_eof"))?.is_truthy()? {
            return Ok(None);
        }
        let Ok(buffer) = reader.getattr(intern!(py, "_buffer"))?.cast_into_exact::<PyByteArray>() else {
            return Ok(None);
        };
        Ok(Some((reader, buffer)))
    }

    /// `StreamReaderProtocol.data_received` for a stock reader, natively: `recv` lands in the
    /// spare buffer and is appended to the reader's `bytearray`; then what `feed_data` does
    /// after its `extend` (wake the waiting read, pause reading past twice the limit).
    fn read_stream(
        &self,
        t: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        reader_cls: &Bound<'_, PyAny>,
        data_received: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        const FAILED: &str = "Fatal error: protocol.data_received() call failed.";
        let py = t.py();
        let (reader, buffer) = match Self::stock_reader(protocol, reader_cls) {
            Ok(Some(r)) => r,
            Ok(None) => return self.read_data(t, |data| data_received.call1((data,)).map(drop)),
            Err(e) => return Self::fatal(t, e, FAILED),
        };
        let read = if let Some(want) = self.large_read() {
            recv_append(py, self.fd, &buffer, want)
        } else {
            recv_with(py, self.fd, |data| {
                let old = buffer.len();
                // Safety: `buffer` is a bytearray; after a successful resize it holds `old + len`
                // bytes, the last `len` of which are overwritten here from `data` (a distinct buffer).
                unsafe {
                    let new_len =
                        pyo3::ffi::Py_ssize_t::try_from(old + data.len()).unwrap_or(pyo3::ffi::Py_ssize_t::MAX);
                    if pyo3::ffi::PyByteArray_Resize(buffer.as_ptr(), new_len) < 0 {
                        return Err(PyErr::fetch(py));
                    }
                    let dst = pyo3::ffi::PyByteArray_AsString(buffer.as_ptr()).cast::<u8>().add(old);
                    std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
                }
                Ok(data.len())
            })
        };
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Self::fatal(t, e, FAILED),
            Err(e) if e == libc::EINTR => return self.rearm(t),
            Err(e) if would_block(e) => return Ok(()),
            Err(e) => return Self::fatal(t, os_error(e), "Fatal read error on socket transport"),
        };
        self.big.store(n > COPY_MAX, Ordering::Relaxed);
        if n == 0 {
            t.call_method0(intern!(py, "_read_ready__on_eof"))?;
            return Ok(());
        }
        if n == MAX_READ {
            self.rearm(t)?;
        }
        if let Err(e) = Self::after_feed(&reader, &buffer) {
            return Self::fatal(t, e, FAILED);
        }
        Ok(())
    }

    /// `StreamReader.feed_data` after its `extend`: `_wakeup_waiter()`, then pause the transport
    /// when more than twice `_limit` is buffered.
    fn after_feed(reader: &Bound<'_, PyAny>, buffer: &Bound<'_, PyByteArray>) -> PyResult<()> {
        let py = reader.py();
        let waiter = reader.getattr(intern!(py, "_waiter"))?;
        if !waiter.is_none() {
            reader.setattr(intern!(py, "_waiter"), py.None())?;
            if !waiter.call_method0(intern!(py, "cancelled"))?.is_truthy()? {
                waiter.call_method1(intern!(py, "set_result"), (py.None(),))?;
            }
        }
        let transport = reader.getattr(intern!(py, "_transport"))?;
        if transport.is_none() || reader.getattr(intern!(py, "_paused"))?.is_truthy()? {
            return Ok(());
        }
        let limit = reader.getattr(intern!(py, "_limit"))?;
        let over = match limit.extract::<i64>() {
            Ok(l) => i64::try_from(buffer.len()).unwrap_or(i64::MAX) > l.saturating_mul(2),
            Err(_) => buffer.len().into_pyobject(py)?.gt(limit.mul(2)?)?,
        };
        if over {
            match transport.call_method0(intern!(py, "pause_reading")) {
                Ok(_) => reader.setattr(intern!(py, "_paused"), true)?,
                Err(e) if e.is_instance_of::<PyNotImplementedError>(py) => {
                    reader.setattr(intern!(py, "_transport"), py.None())?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read_buffered(
        &self,
        t: &Bound<'_, PyAny>,
        fd: RawFd,
        get_buffer: &Bound<'_, PyAny>,
        buffer_updated: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = t.py();
        let buf = match get_buffer.call1((-1,)).and_then(|b| {
            let view = PyBuffer::<u8>::get(&b)?;
            if view.readonly() {
                return Err(PyTypeError::new_err("get_buffer() returned a read-only buffer"));
            }
            if view.len_bytes() == 0 {
                return Err(PyRuntimeError::new_err("get_buffer() returned an empty buffer"));
            }
            if !view.is_c_contiguous() {
                return Err(PyTypeError::new_err("get_buffer() returned a non-contiguous buffer"));
            }
            Ok(view)
        }) {
            Ok(b) => b,
            Err(e) => return Self::fatal(t, e, "Fatal error: protocol.get_buffer() call failed."),
        };
        // Safety: the view is writable, C-contiguous and `len_bytes()` long; it stays alive (and
        // the exporter's buffer pinned) until `buf` is dropped after the call.
        let n = unsafe { libc::recv(fd, buf.buf_ptr(), buf.len_bytes(), 0) };
        // Read before the view is released (its exporter may free memory, which can set errno).
        let e = if n < 0 { errno() } else { 0 };
        let full = n > 0 && n as usize == buf.len_bytes();
        drop(buf);
        if n < 0 {
            if e == libc::EINTR {
                return self.rearm(t);
            }
            if would_block(e) {
                return Ok(());
            }
            return Self::fatal(t, os_error(e), "Fatal read error on socket transport");
        }
        if n == 0 {
            t.call_method0(intern!(py, "_read_ready__on_eof"))?;
            return Ok(());
        }
        if full {
            self.rearm(t)?;
        }
        if let Err(e) = buffer_updated.call1((n,)) {
            return Self::fatal(t, e, "Fatal error: protocol.buffer_updated() call failed.");
        }
        Ok(())
    }

    /// `send(2)` without SIGPIPE; `Ok(bytes sent)` (0 when the socket would block).
    fn send(&self, data: &[u8]) -> Result<usize, i32> {
        // Safety: `data` is a valid readable region.
        let n = unsafe { libc::send(self.fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = errno();
            if would_block(e) {
                Ok(0)
            } else {
                Err(e)
            }
        } else {
            Ok(n as usize)
        }
    }
}

#[pymethods]
impl SocketIo {
    #[new]
    fn new(transport: Py<PyAny>, fd: RawFd) -> Self {
        Self {
            transport: Mutex::new(Some(transport)),
            fd,
            sink: Mutex::new(None),
            big: AtomicBool::new(false),
        }
    }

    /// Caches how `protocol` takes data (called by the transport's `set_protocol`).
    /// `stream_reader` is asyncio's `StreamReader` class when `protocol` is asyncio's own,
    /// unmodified `StreamReaderProtocol` (the caller checks), else `None`.
    #[pyo3(signature = (protocol, stream_reader=None))]
    fn set_protocol(&self, protocol: &Bound<'_, PyAny>, stream_reader: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = protocol.py();
        let buffered_cls = BUFFERED_PROTOCOL
            .get_or_try_init(py, || {
                py.import("asyncio")?.getattr("BufferedProtocol").map(Bound::unbind)
            })?
            .bind(py);
        let sink = if let Some(reader_cls) = stream_reader {
            Sink::StdStream {
                protocol: protocol.clone().unbind(),
                reader_cls: reader_cls.unbind(),
                data_received: protocol.getattr(intern!(py, "data_received"))?.unbind(),
            }
        } else if protocol.is_instance(buffered_cls)? {
            Sink::Buffered {
                get_buffer: protocol.getattr(intern!(py, "get_buffer"))?.unbind(),
                buffer_updated: protocol.getattr(intern!(py, "buffer_updated"))?.unbind(),
            }
        } else if let Some(sink) = native_sink(protocol) {
            Sink::Stream(sink)
        } else {
            match protocol.getattr(intern!(py, "data_received")) {
                Ok(f) => Sink::Data(f.unbind()),
                Err(e) if e.is_instance_of::<PyAttributeError>(py) => Sink::Late(protocol.clone().unbind()),
                Err(e) => return Err(e),
            }
        };
        let old = self.sink.lock().replace(sink);
        drop(old);
        Ok(())
    }

    /// `transport.write(data)`: sends at once when nothing is buffered, buffers the rest and
    /// watches for writability, as asyncio's transport does.
    pub(crate) fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = data.py();
        let Some(t) = self.transport(py) else { return Ok(()) };
        // `bytes` (the common case) is read in place; other bytes-like objects through a buffer
        // view (which pyo3 allocates), kept alive while the slice is used.
        let mut view = None;
        let bytes: &[u8] = if let Ok(b) = data.cast_exact::<PyBytes>() {
            b.as_bytes()
        } else {
            match PyBuffer::<u8>::get(data) {
                Ok(v) if v.is_c_contiguous() => {
                    let v = view.insert(v);
                    // Safety: the view is C-contiguous and `len_bytes()` long; it lives in `view`
                    // until dropped below, after the last use of the slice.
                    unsafe { std::slice::from_raw_parts(v.buf_ptr().cast::<u8>(), v.len_bytes()) }
                }
                _ => {
                    // Not bytes-like (or not contiguous): the stdlib's checks and messages.
                    return t.call_method1(intern!(py, "_write_slow"), (data,)).map(drop);
                }
            }
        };
        if t.getattr(intern!(py, "_eof"))?.is_truthy()? {
            return Err(PyRuntimeError::new_err("Cannot call write() after write_eof()"));
        }
        if !t.getattr(intern!(py, "_empty_waiter"))?.is_none() {
            return Err(PyRuntimeError::new_err("unable to write; sendfile is in progress"));
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let conn_lost: usize = t.getattr(intern!(py, "_conn_lost"))?.extract()?;
        if conn_lost > 0 {
            return t.call_method1(intern!(py, "_write_slow"), (data,)).map(drop);
        }
        let buffer = t.getattr(intern!(py, "_buffer"))?;
        let mut start = 0;
        if buffer.len()? == 0 {
            match self.send(bytes) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(n) => start = n,
                Err(e) => return Self::fatal(&t, os_error(e), "Fatal write error on socket transport"),
            }
            let lp = t.getattr(intern!(py, "_loop"))?;
            lp.call_method1(
                intern!(py, "_add_writer"),
                (self.fd, t.getattr(intern!(py, "_write_ready"))?),
            )?;
        }
        let rest = PyBytes::new(py, &bytes[start..]);
        drop(view);
        buffer.call_method1(intern!(py, "extend"), (rest,))?;
        t.call_method0(intern!(py, "_maybe_pause_protocol"))?;
        Ok(())
    }

    /// The loop's reader callback for this socket (native; callable from Python too).
    #[getter]
    fn read_ready(slf: &Bound<'_, Self>) -> PyResult<Py<NativeCallback>> {
        Self::reader(slf)
    }

    /// The loop's writer callback for this socket (native; callable from Python too).
    #[getter]
    fn write_ready(slf: &Bound<'_, Self>) -> PyResult<Py<NativeCallback>> {
        Self::writer(slf)
    }

    /// `transport.is_closing()` (its `_closing` flag) without a Python frame; true once the
    /// transport is gone.
    fn is_closing(&self, py: Python<'_>) -> PyResult<bool> {
        match self.transport(py) {
            Some(t) => t.getattr(intern!(py, "_closing"))?.is_truthy(),
            None => Ok(true),
        }
    }

    /// Drops the references to the transport and protocol (after `connection_lost`).
    fn detach(&self) {
        let t = self.transport.lock().take();
        let s = self.sink.lock().take();
        drop((t, s));
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(t) = self.transport.try_lock() {
            visit.call(t.as_ref())?;
        }
        if let Some(s) = self.sink.try_lock() {
            match s.as_ref() {
                Some(Sink::Data(f) | Sink::Late(f)) => visit.call(f)?,
                Some(Sink::Stream(s)) => visit.call(s.protocol())?,
                Some(Sink::Buffered {
                    get_buffer,
                    buffer_updated,
                }) => {
                    visit.call(get_buffer)?;
                    visit.call(buffer_updated)?;
                }
                Some(Sink::StdStream {
                    protocol,
                    reader_cls,
                    data_received,
                }) => {
                    visit.call(protocol)?;
                    visit.call(reader_cls)?;
                    visit.call(data_received)?;
                }
                None => {}
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        self.detach();
    }
}

impl IoSource for SocketIo {
    /// The socket is readable: read once and hand the data to the protocol.
    fn on_readable(&self, py: Python<'_>) -> PyResult<()> {
        let Some(t) = self.transport(py) else { return Ok(()) };
        if t.getattr(intern!(py, "_conn_lost"))?.is_truthy()? {
            return Ok(());
        }
        let Some(sink) = self.sink.lock().as_ref().map(|s| s.clone_ref(py)) else {
            return Ok(());
        };
        match sink {
            Sink::Data(f) => self.read_data(&t, |data| f.bind(py).call1((data,)).map(drop)),
            Sink::Late(p) => self.read_data_late(&t, p.bind(py)),
            Sink::Stream(s) => self.read_data(&t, |data| s.feed(data.as_any())),
            Sink::Buffered {
                get_buffer,
                buffer_updated,
            } => self.read_buffered(&t, self.fd, get_buffer.bind(py), buffer_updated.bind(py)),
            Sink::StdStream {
                protocol,
                reader_cls,
                data_received,
            } => self.read_stream(&t, protocol.bind(py), reader_cls.bind(py), data_received.bind(py)),
        }
    }

    /// The socket is writable: send what is buffered.
    fn on_writable(&self, py: Python<'_>) -> PyResult<()> {
        let Some(t) = self.transport(py) else { return Ok(()) };
        if t.getattr(intern!(py, "_conn_lost"))?.is_truthy()? {
            return Ok(());
        }
        let buffer = t.getattr(intern!(py, "_buffer"))?;
        let buf = buffer.cast::<PyByteArray>()?;
        // Safety: the bytearray is not resized while the slice is in use (no Python code runs
        // between taking the slice and the end of `send`).
        let attempted = buf.len();
        let sent = self.send(unsafe { buf.as_bytes() });
        let lp = t.getattr(intern!(py, "_loop"))?;
        match sent {
            Err(e) => {
                lp.call_method1(intern!(py, "_remove_writer"), (self.fd,))?;
                buffer.call_method0(intern!(py, "clear"))?;
                let exc = os_error(e);
                let value = exc.value(py).clone();
                Self::fatal(&t, exc, "Fatal write error on socket transport")?;
                let waiter = t.getattr(intern!(py, "_empty_waiter"))?;
                if !waiter.is_none() {
                    waiter.call_method1(intern!(py, "set_exception"), (value,))?;
                }
            }
            Ok(n) => {
                if n > 0 {
                    buffer.del_item(PySlice::new(py, 0, isize::try_from(n).unwrap_or(isize::MAX), 1))?;
                }
                t.call_method0(intern!(py, "_maybe_resume_protocol"))?;
                let left = buffer.len()?;
                if left > 0 && n == attempted {
                    // All sent, then the protocol wrote more: no new edge will announce room.
                    self.rearm(&t)?;
                }
                if left == 0 {
                    lp.call_method1(intern!(py, "_remove_writer"), (self.fd,))?;
                    let waiter = t.getattr(intern!(py, "_empty_waiter"))?;
                    if !waiter.is_none() {
                        waiter.call_method1(intern!(py, "set_result"), (py.None(),))?;
                    }
                    if t.getattr(intern!(py, "_closing"))?.is_truthy()? {
                        t.call_method1(intern!(py, "_call_connection_lost"), (py.None(),))?;
                    } else if t.getattr(intern!(py, "_eof"))?.is_truthy()? {
                        t.getattr(intern!(py, "_sock"))?
                            .call_method1(intern!(py, "shutdown"), (libc::SHUT_WR,))?;
                    }
                }
            }
        }
        Ok(())
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SocketIo>()?;
    event_loop::on_close(free_spare);
    m.add_class::<DatagramIo>()?;
    Ok(())
}

thread_local! {
    /// Datagrams are received here and copied out at their size.
    static DGRAM_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; MAX_READ]);
}

/// The peer address of a received datagram, as `socket.recvfrom` gives it.
fn sockaddr_to_py<'py>(py: Python<'py>, sa: &libc::sockaddr_storage) -> PyResult<Bound<'py, PyAny>> {
    match i32::from(sa.ss_family) {
        libc::AF_INET => {
            // Safety: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*std::ptr::from_ref(sa).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok((ip.to_string(), u16::from_be(sin.sin_port))
                .into_pyobject(py)?
                .into_any())
        }
        libc::AF_INET6 => {
            // Safety: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*std::ptr::from_ref(sa).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok((
                ip.to_string(),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )
                .into_pyobject(py)?
                .into_any())
        }
        other => Err(pyo3::exceptions::PyOSError::new_err(format!(
            "unexpected address family {other}"
        ))),
    }
}

/// The per-packet receive path of a UDP datagram transport (IPv4 and IPv6): one `recvfrom`,
/// then `protocol.datagram_received(data, addr)`, as asyncio's `_read_ready` does.
#[pyclass(module = "plait._plait", frozen)]
pub struct DatagramIo {
    transport: Mutex<Option<Py<PyAny>>>,
    fd: RawFd,
}

#[pymethods]
impl DatagramIo {
    #[new]
    fn new(transport: Py<PyAny>, fd: RawFd) -> Self {
        Self {
            transport: Mutex::new(Some(transport)),
            fd,
        }
    }

    /// The socket is readable: receive one datagram.
    fn read_ready(&self, py: Python<'_>) -> PyResult<()> {
        let Some(t) = self.transport.lock().as_ref().map(|t| t.bind(py).clone()) else {
            return Ok(());
        };
        if t.getattr(intern!(py, "_conn_lost"))?.is_truthy()? {
            return Ok(());
        }
        // Safety: an all-zero sockaddr_storage is a valid value.
        let mut sa: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let received = DGRAM_BUF.with_borrow_mut(|buf| {
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // Safety: `buf` and `sa` are valid writable regions of the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&raw mut sa).cast(),
                    &raw mut len,
                )
            };
            if n < 0 {
                Err(errno())
            } else {
                Ok(PyBytes::new(py, &buf[..n as usize]))
            }
        });
        let protocol = t.getattr(intern!(py, "_protocol"))?;
        match received {
            Err(e) if would_block(e) => Ok(()),
            Err(e) => {
                protocol.call_method1(intern!(py, "error_received"), (os_error(e).value(py),))?;
                Ok(())
            }
            Ok(data) => {
                let addr = sockaddr_to_py(py, &sa)?;
                // As asyncio's: an exception goes to the loop's exception handler (through the
                // reader's handle); the endpoint stays open.
                protocol.call_method1(intern!(py, "datagram_received"), (data, addr))?;
                Ok(())
            }
        }
    }

    /// Drops the reference to the transport (after `connection_lost`).
    fn detach(&self) {
        let t = self.transport.lock().take();
        drop(t);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(t) = self.transport.try_lock() {
            visit.call(t.as_ref())?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        self.detach();
    }
}
