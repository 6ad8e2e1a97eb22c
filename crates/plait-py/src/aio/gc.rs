//! The collector tricks that keep `call_soon` cheap: a handle the loop queues is taken off the
//! garbage collector's lists while only the loop holds it, and put back when the loop lets go
//! of it while someone else still holds it.
//!
//! A queued handle is alive because the loop holds it, so the collector gains nothing from
//! traversing it, and with many handles queued its passes dominate the cost of `call_soon`.
//! Re-tracking a handle that others still hold keeps a cycle through it collectable. The loop's
//! own traversal ([`visit_queued`]) sees through the handles only it holds.
//!
//! What a queued object must tell these helpers is the [`LoopOwned`] trait ([`Handle`] implements
//! it), so this module knows nothing of handles.
//!
//! [`Handle`]: super::handle::Handle

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::True;
use pyo3::{PyClass, PyTraverseError, PyVisit};

/// An object the loop queues and may take off the collector's lists.
pub(super) trait LoopOwned: PyClass<Frozen = True> + Sync {
    /// A per-object `contextvars.Context` made for it (not one the caller passed): a new object
    /// per `call_soon`, taken off the collector's lists with it.
    fn own_context(&self) -> Option<&Py<PyAny>>;

    /// Visits what the object holds (its callback, arguments and context).
    fn visit_parts(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError>;
}

/// Takes a freshly scheduled object (and its own context) off the collector's lists while the
/// loop holds it; [`release`] puts it back if needed.
pub(super) fn untrack<T: LoopOwned>(h: &Bound<'_, T>) {
    // Safety: both are live, fully initialised GC objects (T implements `__traverse__`,
    // contexts are GC types); untracking an object that `release` re-tracks before anyone else
    // can depend on the collector seeing it is the documented use of PyObject_GC_UnTrack.
    unsafe {
        ffi::PyObject_GC_UnTrack(h.as_ptr().cast());
        if let Some(c) = h.get().own_context() {
            ffi::PyObject_GC_UnTrack(c.as_ptr().cast());
        }
    }
}

/// Puts `ptr` back under the collector if it is not already.
pub(super) fn retrack(ptr: *mut ffi::PyObject) {
    // Safety: `ptr` is alive and fully initialised; IsTracked guards against tracking twice.
    unsafe {
        if ffi::PyObject_GC_IsTracked(ptr) == 0 {
            ffi::PyObject_GC_Track(ptr.cast());
        }
    }
}

/// Drops the loop's reference to a queued object, first re-tracking it (and its own context)
/// if anyone else still holds either, so cycles through them stay collectable.
pub(super) fn release<T: LoopOwned>(h: Py<T>) {
    let ptr = h.as_ptr();
    let ctx = h.get().own_context().map(Py::as_ptr);
    // Safety: `ptr` and `ctx` are alive while we hold the object.
    let shared = unsafe { ffi::Py_REFCNT(ptr) > 1 || ctx.is_some_and(|c| ffi::Py_REFCNT(c) > 1) };
    if shared {
        retrack(ptr);
        if let Some(c) = ctx {
            retrack(c);
        }
    }
    drop(h);
}

/// [`release`]s every object in `items`.
pub(super) fn release_all<T: LoopOwned>(items: impl IntoIterator<Item = Py<T>>) {
    for h in items {
        release(h);
    }
}

/// Lets the collector see through a queued object. One only the loop holds (untracked, see
/// [`untrack`]) is part of the loop: what it holds is visited as the loop's own references, so a
/// cycle through them (a pending `loop.stop`) is still found. One that others hold too is
/// visited as itself (the collector then treats what it holds as reachable, never freeing
/// anything early).
pub(super) fn visit_queued<T: LoopOwned>(visit: &PyVisit<'_>, h: &Py<T>) -> Result<(), PyTraverseError> {
    let ptr = h.as_ptr();
    // Safety: reading the refcount and tracking state of a live object; the collector does not
    // change either while it traverses.
    let exclusive = unsafe { ffi::Py_REFCNT(ptr) == 1 && ffi::PyObject_GC_IsTracked(ptr) == 0 };
    if exclusive {
        h.get().visit_parts(visit)
    } else {
        visit.call(h)
    }
}
