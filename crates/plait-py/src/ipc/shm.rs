//! `Segment`: a shared-memory segment (`plait_core::ipc::shm`) as a Python buffer.
//!
//! `plait.processes` packs the large out-of-band buffers of a pickle (protocol 5) into one
//! segment, sends its descriptor beside the message, and the receiver unpickles with views of
//! the mapping as the buffers: the data is copied once, into the segment, and never through a
//! pipe. The memory is freed when the last mapping and descriptor of it are gone, in every
//! process.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use plait_core::ipc::shm;
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::errors::os_error_for;

/// Maps received segment descriptors as a list of `Segment`s (see `Segment::open`).
pub fn segments(py: Python<'_>, fds: Vec<OwnedFd>, keep_fds: bool) -> PyResult<Bound<'_, PyList>> {
    let mapped = fds
        .into_iter()
        .map(|fd| {
            if keep_fds {
                Segment::open(fd, true)
            } else {
                Segment::open_spare(fd)
            }
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, mapped)
}

/// Offsets of packed buffers are aligned to this (a cache line; enough for any dtype).
const ALIGN: usize = 64;

/// A mapped shared-memory segment; supports the buffer protocol (read-write).
#[pyclass(module = "plait.processes", frozen)]
pub struct Segment {
    inner: Arc<shm::Segment>,
    /// Buffer exports alive (memoryviews of it, and everything built on them).
    exports: AtomicUsize,
    /// A received segment's descriptor, kept until the receiver knows whether the segment must
    /// be passed on (an IPC object in a task's result claims it) or not (the descriptor closes).
    spare: parking_lot::Mutex<Option<OwnedFd>>,
    claimed: AtomicBool,
    /// `shm::generation()` when made: the spare of an older generation was inherited through
    /// fork and closed by number (see `shm::abandon_inherited`).
    generation: u64,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.inherited() {
            std::mem::forget(self.spare.get_mut().take());
        }
    }
}

impl Segment {
    /// Maps a segment received from another process; `keep_fd` keeps its descriptor so the
    /// segment can be sent back (a worker returning a view of its arguments), else it is closed
    /// once mapped.
    pub fn open(fd: OwnedFd, keep_fd: bool) -> PyResult<Self> {
        shm::Segment::open(fd, keep_fd)
            .map(Self::wrap)
            .map_err(|e| os_error_for("cannot map a shared-memory segment", &e))
    }

    fn wrap(inner: shm::Segment) -> Self {
        Self::from_shared(Arc::new(inner))
    }

    /// Wraps a core segment (one made for a shared-memory object).
    pub fn from_shared(inner: Arc<shm::Segment>) -> Self {
        Self {
            inner,
            exports: AtomicUsize::new(0),
            spare: parking_lot::Mutex::new(None),
            claimed: AtomicBool::new(false),
            generation: shm::generation(),
        }
    }

    /// Maps a segment received with a task's result, keeping a spare descriptor until
    /// `release_spare` (see the `spare` field).
    pub fn open_spare(fd: OwnedFd) -> PyResult<Self> {
        let spare = fd
            .try_clone()
            .map_err(|e| os_error_for("cannot duplicate a segment descriptor", &e))?;
        let segment = Self::open(fd, false)?;
        *segment.spare.lock() = Some(spare);
        Ok(segment)
    }

    /// Made before this (forked) process abandoned its inherited segments: the spare
    /// descriptor's number was closed there and may belong to another file now.
    fn inherited(&self) -> bool {
        self.generation != shm::generation()
    }

    /// The spare descriptor, unless it was inherited through fork (and closed there).
    fn live<'a>(&self, spare: Option<&'a OwnedFd>) -> Option<&'a OwnedFd> {
        spare.filter(|_| !self.inherited())
    }

    /// The core segment, shared.
    pub fn shared(&self) -> Arc<shm::Segment> {
        Arc::clone(&self.inner)
    }

    /// A duplicate of the descriptor, to send the segment to another process.
    pub fn dup_fd(&self) -> PyResult<OwnedFd> {
        let spare = self.spare.lock();
        let fd = self.inner.fd().or(self.live(spare.as_ref())).ok_or_else(|| {
            PyValueError::new_err("this segment was received, not created here: it cannot be sent on")
        })?;
        fd.try_clone()
            .map_err(|e| os_error_for("cannot duplicate a segment descriptor", &e))
    }
}

fn create(size: usize) -> PyResult<shm::Segment> {
    shm::Segment::create(size)
        .map_err(|e| os_error_for(&format!("cannot create a shared-memory segment of {size} bytes"), &e))
}

#[pymethods]
impl Segment {
    /// A new zero-filled segment of `size` bytes.
    #[new]
    fn new(size: usize) -> PyResult<Self> {
        Ok(Self::wrap(create(size)?))
    }

    /// Takes ownership of descriptor `fd` (a segment received from another process, e.g.
    /// through `multiprocessing.reduction.DupFd`) and maps it, keeping the descriptor so the
    /// segment can be passed on.
    #[staticmethod]
    fn from_fd(fd: i32) -> PyResult<Self> {
        if fd < 0 {
            return Err(PyValueError::new_err("fd must be a non-negative file descriptor"));
        }
        // Safety: the caller hands over an open descriptor it will not use again.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Self::open(owned, true)
    }

    /// The descriptor number (to duplicate for a child process); `ValueError` when the segment
    /// was mapped without keeping it.
    fn fileno(&self) -> PyResult<i32> {
        let spare = self.spare.lock();
        self.inner
            .fd()
            .or(self.live(spare.as_ref()))
            .map(AsRawFd::as_raw_fd)
            .ok_or_else(|| PyValueError::new_err("this segment has no descriptor left to share"))
    }

    /// Keeps the spare descriptor of a received segment: an object that may be passed on to
    /// another process lives in it.
    fn claim(&self) {
        self.claimed.store(true, Ordering::Relaxed);
    }

    /// Closes the spare descriptor unless the segment was claimed (called once the message it
    /// came with is unpickled).
    fn release_spare(&self) {
        if !self.claimed.load(Ordering::Relaxed) {
            let spare = self.spare.lock().take();
            if self.inherited() {
                std::mem::forget(spare);
            } else {
                drop(spare);
            }
        }
    }

    /// Copies `buffers` (contiguous buffer objects) into one new segment; returns the segment
    /// and each buffer's `(offset, length)` in it. The copy runs detached from the interpreter.
    #[staticmethod]
    fn pack(py: Python<'_>, buffers: Vec<Bound<'_, PyAny>>) -> PyResult<(Self, Vec<(usize, usize)>)> {
        let mut views = Vec::with_capacity(buffers.len());
        let mut places = Vec::with_capacity(buffers.len());
        let mut end = 0usize;
        for b in &buffers {
            let view = PyUntypedBuffer::get(b)?;
            if !view.is_c_contiguous() && !view.is_fortran_contiguous() {
                return Err(PyValueError::new_err("only contiguous buffers can be packed"));
            }
            let len = view.len_bytes();
            let at = end.next_multiple_of(ALIGN);
            end = at + len;
            places.push((at, len));
            views.push(view);
        }
        let inner = create(end)?;
        py.detach(|| -> std::io::Result<()> {
            for (view, &(at, len)) in views.iter().zip(&places) {
                // Safety: the exporter keeps `len` contiguous bytes at `buf_ptr` while the view
                // is held; the objects are kept alive by `buffers`.
                let data = unsafe { std::slice::from_raw_parts(view.buf_ptr().cast::<u8>(), len) };
                inner.write_at(at, data)?;
            }
            Ok(())
        })
        .map_err(|e| os_error_for("cannot fill a shared-memory segment", &e))?;
        Ok((Self::wrap(inner), places))
    }

    /// The offset of `buffer` in this segment if its memory lies entirely inside the mapping
    /// (a view of it, e.g. an array a task received and returns), else None.
    fn locate(&self, buffer: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
        if !self.inner.is_mapped() {
            return Ok(None); // nothing here can point into it
        }
        let view = PyUntypedBuffer::get(buffer)?;
        let start = self
            .inner
            .as_ptr()
            .map_err(|e| os_error_for("cannot map a shared-memory segment", &e))? as usize;
        let at = view.buf_ptr() as usize;
        let fits = at >= start && at - start + view.len_bytes() <= self.inner.len() && !self.inner.is_empty();
        Ok(fits.then(|| at - start))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("<plait Segment of {} bytes>", self.inner.len())
    }

    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut pyo3::ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        let this = slf.get();
        let base = this
            .inner
            .as_ptr()
            .map_err(|e| os_error_for("cannot map a shared-memory segment", &e))?;
        let len = pyo3::ffi::Py_ssize_t::try_from(this.inner.len())
            .map_err(|_| PyValueError::new_err("segment too large for a buffer"))?;
        // Safety: `view` is the caller's Py_buffer; the mapping stays valid while `slf` (made
        // the view's owner, with a new reference) lives.
        let rc = unsafe { pyo3::ffi::PyBuffer_FillInfo(view, slf.as_ptr(), base.cast(), len, 0, flags) };
        if rc == 0 {
            this.exports.fetch_add(1, Ordering::Relaxed);
            Ok(())
        } else {
            Err(PyErr::fetch(slf.py()))
        }
    }

    unsafe fn __releasebuffer__(slf: Bound<'_, Self>, _view: *mut pyo3::ffi::Py_buffer) {
        slf.get().exports.fetch_sub(1, Ordering::Relaxed);
    }

    /// Buffer exports alive: memoryviews of this segment, and whatever was built on them (a
    /// worker checks it before sending a view of a task's argument back without a copy).
    #[getter]
    fn exports(&self) -> usize {
        self.exports.load(Ordering::Relaxed)
    }
}

/// In a forked worker, after it closed the segment descriptors it inherited: inherited
/// segments stop using (and closing) those descriptor numbers, which new files may now hold.
#[pyfunction]
fn _abandon_inherited_segments() {
    shm::abandon_inherited();
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Segment>()?;
    m.add_function(wrap_pyfunction!(_abandon_inherited_segments, m)?)?;
    Ok(())
}
