//! `FrameChannel`: the worker process's end of the wire, over
//! `plait_core::ipc::frame`. Blocking frame reads and writes on a socket, detached from the
//! interpreter while they wait.

use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;

use parking_lot::Mutex;
use plait_core::ipc::fdpass;
use plait_core::ipc::frame::Decoder;
use plait_core::ipc::outbox::Outbox;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::errors::{frame_err, os_error_for};
use crate::ipc::shm::{segments, Segment};

/// The worker's end of the wire: frames over a socket fd it owns.
#[pyclass(module = "plait.processes", frozen)]
pub struct FrameChannel {
    stream: UnixStream,
    decoder: Mutex<Decoder>,
    write: Mutex<Outbox>,
}

#[pymethods]
impl FrameChannel {
    /// Takes ownership of `fd` (a connected Unix stream socket).
    #[new]
    fn new(fd: i32) -> PyResult<Self> {
        if fd < 0 {
            return Err(PyValueError::new_err("fd must be a non-negative file descriptor"));
        }
        // Safety: the caller hands over an open socket fd it will not use again.
        let stream = unsafe { UnixStream::from_raw_fd(fd) };
        Ok(Self {
            stream,
            decoder: Mutex::new(Decoder::default()),
            write: Mutex::new(Outbox::default()),
        })
    }

    /// The next frame as `(kind, id, payload, segments)` (`segments`: None, or the list of
    /// shared-memory segments sent with the frame); `(0, 0, b"", None)` once the peer closed the
    /// socket. Frames queued by `send` go out before this blocks, so replies to a batch of
    /// requests leave in one write.
    #[allow(clippy::type_complexity)]
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<(u8, u64, Bound<'py, PyBytes>, Option<Bound<'py, PyList>>)> {
        let ready = self.decoder.lock().next_frame().map_err(frame_err)?;
        if let Some(f) = ready {
            return frame_tuple(py, f);
        }
        let got = py.detach(|| -> std::io::Result<Option<plait_core::ipc::frame::Frame>> {
            self.flush_pending()?;
            let mut decoder = self.decoder.lock();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if let Some(frame) = decoder.next_frame().map_err(std::io::Error::other)? {
                    return Ok(Some(frame));
                }
                match fdpass::recv(self.stream.as_raw_fd(), &mut buf, decoder.push_fds()) {
                    Ok(0) => return Ok(None),
                    Ok(n) => decoder.feed(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        });
        match got {
            Ok(Some(f)) => frame_tuple(py, f),
            Ok(None) => Ok((0, 0, PyBytes::new(py, b""), None)),
            Err(e) => Err(os_error_for("worker channel: recv", &e)),
        }
    }

    /// Queues one frame, with `segments` (shared memory created here) sent beside it; it is
    /// written by the next `recv` that has to wait, or by `flush`.
    #[pyo3(signature = (kind, id, payload, segments=None))]
    fn send(&self, kind: u8, id: u64, payload: &[u8], segments: Option<Vec<Py<Segment>>>) -> PyResult<()> {
        let fds = segments
            .iter()
            .flatten()
            .map(|s| s.get().dup_fd())
            .collect::<PyResult<Vec<_>>>()?;
        self.write.lock().push(kind, id, payload, fds).map_err(frame_err)
    }

    /// Writes every queued frame now.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.flush_pending())
            .map_err(|e| os_error_for("worker channel: send", &e))
    }
}

impl FrameChannel {
    fn flush_pending(&self) -> std::io::Result<()> {
        // A blocking socket: write_to returns once everything is written.
        while !self.write.lock().write_to(self.stream.as_raw_fd())? {}
        Ok(())
    }
}

#[allow(clippy::type_complexity)]
fn frame_tuple(
    py: Python<'_>,
    f: plait_core::ipc::frame::Frame,
) -> PyResult<(u8, u64, Bound<'_, PyBytes>, Option<Bound<'_, PyList>>)> {
    let segs = if f.fds.is_empty() {
        None
    } else if f.kind == plait_core::supervise::pool::HELLO {
        // The setup's descriptors (shared memory, pipes) as numbers: the worker's setup
        // knows what each one is, and owns them from here.
        let raw: Vec<i32> = f.fds.into_iter().map(std::os::fd::IntoRawFd::into_raw_fd).collect();
        Some(PyList::new(py, raw)?)
    } else {
        // A worker keeps the descriptors: a result may be a view of its arguments, sent back.
        Some(segments(py, f.fds, true)?)
    };
    Ok((f.kind, f.id, PyBytes::new(py, &f.payload), segs))
}
