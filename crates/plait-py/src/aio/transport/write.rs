//! The write paths of [`SocketIo`]: `transport.write(data)` (send at once, buffer the rest) and
//! sending the buffer when the socket is writable.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PySlice};

use super::recv::{errno, os_error, would_block};
use super::socket::SocketIo;

impl SocketIo {
    /// `transport.write(data)`: sends at once when nothing is buffered, buffers the rest and
    /// watches for writability, as asyncio's transport does.
    pub(super) fn write_data(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
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

    /// The socket is writable: send what is buffered.
    pub(super) fn send_buffered(&self, py: Python<'_>) -> PyResult<()> {
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

    /// `send(2)` without SIGPIPE; `Ok(bytes sent)` (0 when the socket would block).
    pub(super) fn send(&self, data: &[u8]) -> Result<usize, i32> {
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
