//! The read paths of [`SocketIo`]: one read per readiness, handed to the protocol the way it
//! takes data (`data_received`, a `BufferedProtocol`'s buffer, asyncio's stream reader fed
//! natively, or a native sink).

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyNotImplementedError, PyRuntimeError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

use super::recv::{errno, os_error, recv_append, recv_bytes, recv_with, would_block, COPY_MAX, MAX_READ};
use super::socket::{Sink, SocketIo};

impl SocketIo {
    /// The socket is readable: read once and hand the data to the protocol.
    pub(super) fn read_once(&self, py: Python<'_>) -> PyResult<()> {
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

    /// The reader is edge-triggered (the loop does not re-arm it): after a read that filled the
    /// buffer, more data may be waiting, so ask the loop to report the fd again.
    pub(super) fn rearm(&self, t: &Bound<'_, PyAny>) -> PyResult<()> {
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
}
