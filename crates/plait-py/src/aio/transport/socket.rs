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
//! The transport talks to the loop through the loop's `_add_reader`/`_add_writer`, as the
//! stdlib's transport does, handing it native callbacks ([`IoSource`]): nothing here knows the
//! reactor. The read paths are in `read.rs`, the write paths in `write.rs`, the system calls
//! and receive buffers in `recv.rs`.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{intern, PyTraverseError, PyVisit};

use super::recv::{fatal_passthrough, free_spare, queued, COPY_MAX, MAX_READ};
use super::sink::{native_sink, NativeSink};
use crate::aio::event_loop;
use crate::aio::source::{IoSource, NativeCallback};

static BUFFERED_PROTOCOL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// How the protocol takes data.
pub(super) enum Sink {
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
    pub(super) fn clone_ref(&self, py: Python<'_>) -> Self {
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
    pub(super) transport: Mutex<Option<Py<PyAny>>>,
    pub(super) fd: RawFd,
    pub(super) sink: Mutex<Option<Sink>>,
    /// The last read was longer than [`COPY_MAX`]: size the next one with `FIONREAD`.
    pub(super) big: AtomicBool,
}

impl SocketIo {
    /// After a read above [`COPY_MAX`]: the bytes queued now (`FIONREAD`, at most `MAX_READ`),
    /// when they are many too, to receive straight into place. `None` reads through the spare.
    pub(super) fn large_read(&self) -> Option<usize> {
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

    pub(super) fn transport<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.transport.lock().as_ref().map(|t| t.bind(py).clone())
    }

    pub(super) fn fatal(t: &Bound<'_, PyAny>, err: PyErr, message: &str) -> PyResult<()> {
        let py = t.py();
        if fatal_passthrough(py, &err) {
            return Err(err);
        }
        t.call_method1(intern!(py, "_fatal_error"), (err.value(py), message))?;
        Ok(())
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
        self.write_data(data)
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
    #[inline]
    fn on_readable(&self, py: Python<'_>) -> PyResult<()> {
        self.read_once(py)
    }

    #[inline]
    fn on_writable(&self, py: Python<'_>) -> PyResult<()> {
        self.send_buffered(py)
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SocketIo>()?;
    event_loop::on_close(free_spare);
    m.add_class::<super::DatagramIo>()?;
    Ok(())
}
