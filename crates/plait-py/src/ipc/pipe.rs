//! `IpcConnection`: one end of `plait.processes.Pipe`.
//!
//! Messages travel through a ring in shared memory (one per direction, see
//! `plait_core::ipc::ring`), encoded as the queues encode them; beside the rings, the two ends
//! share a Unix socket pair that carries one byte per message. The byte is written after the
//! message is committed and read before the message is taken, so the socket is readable
//! exactly when a message (or the end of the stream) is there: `fileno()` works with
//! `select`, `multiprocessing.connection.wait` and event loops, and the kernel reports the end
//! of the stream when every process holding the other end closed it or died, as with
//! `multiprocessing.Pipe`.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use plait_core::ipc::objects::Shared;
use plait_core::ipc::ring::{self, Message, SharedRing};
use plait_core::ipc::socket::{poll_once, wait_fd};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBrokenPipeError, PyEOFError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors::{connection_error, ipc_err};
use crate::ipc::shm::Segment;
use crate::ipc::wire::{self, decode, encode, receive, Received, TAG_RAW};

/// How often a sender blocked on a full ring checks whether the receiver is gone.
const PEER_CHECK: Duration = Duration::from_millis(50);

fn closed_err() -> PyErr {
    PyOSError::new_err("handle is closed")
}

/// One end of a `Pipe`.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcConnection {
    /// The socket, -1 once closed.
    fd: AtomicI32,
    recv: Option<(SharedRing, Py<Segment>)>,
    send: Option<(SharedRing, Py<Segment>)>,
}

impl Drop for IpcConnection {
    fn drop(&mut self) {
        let fd = self.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // Safety: we own this descriptor and nobody uses it after drop.
            unsafe { libc::close(fd) };
        }
    }
}

fn attach(py: Python<'_>, seg: Option<Py<Segment>>) -> PyResult<Option<(SharedRing, Py<Segment>)>> {
    seg.map(|s| {
        let ring = Shared::attach(s.get().shared()).map_err(|e| ipc_err(py, e, None))?;
        Ok((ring, s))
    })
    .transpose()
}

impl IpcConnection {
    fn raw(&self) -> PyResult<RawFd> {
        let fd = self.fd.load(Ordering::Acquire);
        if fd < 0 {
            Err(closed_err())
        } else {
            Ok(fd)
        }
    }

    fn receiver(&self) -> PyResult<(RawFd, &SharedRing)> {
        let fd = self.raw()?;
        let (ring, _) = self
            .recv
            .as_ref()
            .ok_or_else(|| PyOSError::new_err("connection is write-only"))?;
        Ok((fd, ring))
    }

    /// Puts one message and announces it with a byte on the socket.
    fn put(&self, py: Python<'_>, msg: Message<'_>) -> PyResult<()> {
        let fd = self.raw()?;
        let (ring, _) = self
            .send
            .as_ref()
            .ok_or_else(|| PyOSError::new_err("connection is read-only"))?;
        let mut blocker = PyBlocker::new(py);
        loop {
            let step = Some(Instant::now() + PEER_CHECK);
            let n = ring
                .put(&[msg], &mut blocker, step, true)
                .map_err(|e| ipc_err(py, e, Some(&mut blocker)))?;
            if n == 1 {
                break;
            }
            // Full: is anybody still reading?
            if poll_once(fd, 0, 0) & (libc::POLLHUP | libc::POLLERR) != 0 {
                return Err(PyBrokenPipeError::new_err("send: the other end is closed"));
            }
        }
        loop {
            let one = [1u8];
            // Safety: a one-byte buffer valid for the call.
            let rc = unsafe { libc::send(fd, one.as_ptr().cast(), 1, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if rc == 1 {
                return Ok(());
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => {
                    wait_fd(fd, libc::POLLOUT, None, &mut blocker).map_err(|_| blocker.take_err())?;
                }
                _ => return Err(connection_error("send", &std::io::Error::last_os_error())),
            }
        }
    }

    /// The next message, or None at the end of the stream.
    fn take(&self, py: Python<'_>) -> PyResult<Option<Received>> {
        let (fd, ring) = self.receiver()?;
        let mut blocker = PyBlocker::new(py);
        let mut out = None;
        let mut sink = |tag, a: &[u8], b: &[u8]| out = Some(receive(py, tag, a, b));
        let taken = loop {
            wait_fd(fd, libc::POLLIN, None, &mut blocker).map_err(|_| blocker.take_err())?;
            let mut byte = 0u8;
            // Safety: a one-byte buffer valid for the call.
            let rc = unsafe { libc::recv(fd, (&raw mut byte).cast(), 1, libc::MSG_DONTWAIT) };
            if rc == 1 {
                // The message was committed before its byte was sent.
                break ring
                    .get(1, &mut blocker, None, true, &mut sink)
                    .map_err(|e| ipc_err(py, e, Some(&mut blocker)))?;
            }
            if rc == 0 {
                // End of stream; a sender that died between commit and byte left its message.
                break ring
                    .get(1, &mut blocker, None, false, &mut sink)
                    .map_err(|e| ipc_err(py, e, Some(&mut blocker)))?;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR | libc::EAGAIN) => {}
                _ => return Err(connection_error("recv", &std::io::Error::last_os_error())),
            }
        };
        Ok(taken.and_then(|t| {
            ring.delivered(t);
            out
        }))
    }
}

#[pymethods]
impl IpcConnection {
    /// Takes ownership of socket `fd`; `recv_segment`/`send_segment` are the rings this end
    /// reads and writes (None: this end does not).
    #[new]
    #[pyo3(signature = (fd, recv_segment=None, send_segment=None))]
    fn new(
        py: Python<'_>,
        fd: i32,
        recv_segment: Option<Py<Segment>>,
        send_segment: Option<Py<Segment>>,
    ) -> PyResult<Self> {
        if fd < 0 {
            return Err(PyValueError::new_err("fd must be a non-negative file descriptor"));
        }
        let recv = attach(py, recv_segment)?;
        let send = attach(py, send_segment)?;
        Ok(Self {
            fd: AtomicI32::new(fd),
            recv,
            send,
        })
    }

    /// A new ring of at least `capacity` bytes, for `Pipe` to share between two ends.
    #[staticmethod]
    fn _new_ring(py: Python<'_>, capacity: usize) -> PyResult<Py<Segment>> {
        if capacity > ring::MAX_CAPACITY {
            return Err(PyValueError::new_err("capacity must be at most 2**31 bytes"));
        }
        let ring = ring::create(capacity, 0).map_err(|e| ipc_err(py, e, None))?;
        Py::new(py, Segment::from_shared(std::sync::Arc::clone(ring.segment())))
    }

    /// Send an object (pickled here, protocol 5; an unpicklable object raises here).
    fn send(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let enc = encode(obj)?;
        let (tag, parts) = enc.parts()?;
        self.put(py, Message { tag, parts: &parts })
    }

    /// Send bytes from a bytes-like object (`offset` and `size` in bytes).
    #[pyo3(signature = (buf, offset=0, size=None))]
    fn send_bytes(&self, py: Python<'_>, buf: &Bound<'_, PyAny>, offset: isize, size: Option<isize>) -> PyResult<()> {
        let view = PyUntypedBuffer::get(buf)?;
        if !view.is_c_contiguous() {
            return Err(PyValueError::new_err("send_bytes needs a contiguous buffer"));
        }
        let len = view.len_bytes();
        let offset = usize::try_from(offset).map_err(|_| PyValueError::new_err("offset is negative"))?;
        if len < offset {
            return Err(PyValueError::new_err("buffer length < offset"));
        }
        let size = match size {
            None => len - offset,
            Some(s) => usize::try_from(s).map_err(|_| PyValueError::new_err("size is negative"))?,
        };
        if len < offset + size {
            return Err(PyValueError::new_err("buffer length < offset + size"));
        }
        // Safety: a contiguous buffer of `len` bytes, held by `view` for this call.
        let data = unsafe { std::slice::from_raw_parts(view.buf_ptr().cast::<u8>().add(offset), size) };
        self.put(
            py,
            Message {
                tag: TAG_RAW,
                parts: &[data],
            },
        )
    }

    /// Receive an object; `EOFError` when the other end is closed and nothing is left.
    fn recv(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.take(py)? {
            Some(r) => decode(py, r),
            None => Err(PyEOFError::new_err(())),
        }
    }

    /// Receive the bytes of one message (for `send` messages: their pickle).
    #[pyo3(signature = (maxlength=None))]
    fn recv_bytes(&self, py: Python<'_>, maxlength: Option<isize>) -> PyResult<Py<PyBytes>> {
        if maxlength.is_some_and(|m| m < 0) {
            return Err(PyValueError::new_err("negative maxlength"));
        }
        let data = match self.take(py)? {
            None => return Err(PyEOFError::new_err(())),
            Some(Received::Raw(b)) => b,
            Some(other) => {
                let obj = decode(py, other)?;
                let dumps = wire::dumps(py)?;
                dumps.call1((obj,))?.cast_into::<PyBytes>()?.unbind()
            }
        };
        if let Some(max) = maxlength {
            if data.bind(py).as_bytes().len() > max.unsigned_abs() {
                self.close();
                return Err(PyOSError::new_err("bad message length"));
            }
        }
        Ok(data)
    }

    /// Whether a message (or the end of the stream) is ready; waits up to `timeout` seconds
    /// (None: forever).
    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let (fd, _) = self.receiver()?;
        let mut blocker = PyBlocker::new(py);
        let revents =
            wait_fd(fd, libc::POLLIN, optional_deadline(timeout), &mut blocker).map_err(|_| blocker.take_err())?;
        Ok(revents != 0)
    }

    /// The socket's descriptor: readable when a message or the end of the stream is there.
    fn fileno(&self) -> PyResult<i32> {
        self.raw()
    }

    /// Close this end (in this process).
    fn close(&self) {
        let fd = self.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // Safety: the descriptor is ours; no later call uses it (they see -1).
            unsafe { libc::close(fd) };
        }
    }

    #[getter]
    fn closed(&self) -> bool {
        self.fd.load(Ordering::Acquire) < 0
    }

    #[getter]
    fn readable(&self) -> bool {
        self.recv.is_some()
    }

    #[getter]
    fn writable(&self) -> bool {
        self.send.is_some()
    }

    #[getter]
    fn _recv_segment(&self, py: Python<'_>) -> Option<Py<Segment>> {
        self.recv.as_ref().map(|(_, s)| s.clone_ref(py))
    }

    #[getter]
    fn _send_segment(&self, py: Python<'_>) -> Option<Py<Segment>> {
        self.send.as_ref().map(|(_, s)| s.clone_ref(py))
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) {
        self.close();
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<IpcConnection>()?;
    Ok(())
}
