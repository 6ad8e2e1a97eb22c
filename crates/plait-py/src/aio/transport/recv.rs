//! The system calls and buffers of the receive path: `recv` into a new `bytes`, into the
//! thread's spare buffer, or onto a `bytearray`; errno helpers.

use std::cell::Cell;
use std::os::fd::RawFd;

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

/// The most one read takes (asyncio's `max_size`).
pub(super) const MAX_READ: usize = 256 * 1024;
/// [`MAX_READ`] for the C API.
pub(super) const MAX_READ_SSIZE: pyo3::ffi::Py_ssize_t = 256 * 1024;

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
pub(super) const COPY_MAX: usize = 16 * 1024;

/// The bytes queued on `fd` to read (`FIONREAD`); 0 when the kernel does not say.
pub(super) fn queued(fd: RawFd) -> usize {
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
pub(super) fn recv_bytes(py: Python<'_>, fd: RawFd, want: Option<usize>) -> Result<Bound<'_, PyBytes>, i32> {
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
pub(super) fn recv_with<R>(py: Python<'_>, fd: RawFd, f: impl FnOnce(&[u8]) -> R) -> Result<R, i32> {
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
pub(super) fn recv_append(
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
pub(super) fn take_spare(py: Python<'_>) -> Result<*mut pyo3::ffi::PyObject, i32> {
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
pub(super) unsafe fn put_spare(big: *mut pyo3::ffi::PyObject) {
    let other = SPARE.replace(big);
    if !other.is_null() {
        // Safety: `other` was the slot's own reference; the GIL is held.
        unsafe { pyo3::ffi::Py_DECREF(other) };
    }
}

/// Frees this thread's spare receive buffer (when its loop closes); the next read allocates one.
pub(super) fn free_spare(_py: Python<'_>) {
    let big = SPARE.replace(std::ptr::null_mut());
    if !big.is_null() {
        // Safety: the spare is a bytes object owned by this slot alone; the GIL is held.
        unsafe { pyo3::ffi::Py_DECREF(big) };
    }
}

pub(super) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub(super) fn would_block(e: i32) -> bool {
    e == libc::EAGAIN || e == libc::EWOULDBLOCK || e == libc::EINTR
}

pub(super) use crate::errors::os_error;

pub(super) fn fatal_passthrough(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<PyKeyboardInterrupt>(py) || e.is_instance_of::<PySystemExit>(py)
}
