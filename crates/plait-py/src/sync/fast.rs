//! Native entry points for `Lock`'s four hottest methods (`acquire`, `release`, `__enter__`,
//! `__exit__`), installed over `PyO3`'s wrappers when the module is made ([`install`]).
//!
//! A `PyO3` method pays for its generality on every call: the trampoline (a thread-local counter,
//! panic catching), argument extraction, the receiver's type check. For a lock pair that is a
//! quarter of the time, and without the GIL, where `threading.Lock` is a bare `PyMutex`, it is
//! the difference between being faster and slower. These functions are plain `METH_NOARGS` /
//! `METH_FASTCALL` C functions that handle only the common case, and hand every other call to the
//! `PyO3` method they replace (kept from the type's dictionary), so there is one implementation
//! of the semantics:
//!
//! - `acquire()` with no arguments, or `__enter__()`: the lock is free (or, without the GIL,
//!   becomes free within the short spin of a blocking acquire), lock-order checking is off, and
//!   the acquisition site is in the code object already recorded
//!   ([`SiteCell::peek`](super::tracked::SiteCell::peek)). Anything else (arguments, a wait, a
//!   new site) goes to the `PyO3` method.
//! - `release()` / `__exit__(...)`: the caller may release (the lock is held) and lock-order
//!   checking is off. A failed release changes nothing, so the `PyO3` method raises the error.
//!
//! The fast paths cannot fail or panic (no unwinding crosses the C boundary); every error comes
//! from the `PyO3` method.

use std::cell::UnsafeCell;
use std::ffi::{c_int, CStr};
use std::ptr;

use plait_core::sync::deadlock::{self, Mode};
use plait_core::thread;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::lock::{Lock, SPIN_FIRST};
use super::report::after_release;
use super::tracked::Peek;

/// A `PyMethodDef` in a static: `CPython` keeps a pointer to it for the method descriptor's life.
struct MethodDef(UnsafeCell<ffi::PyMethodDef>);

// Safety: written once, by `install` during module initialisation, before the method descriptor
// that points to it exists; from then on only read (by `CPython`).
unsafe impl Sync for MethodDef {}

impl MethodDef {
    const fn new(name: &'static CStr, meth: ffi::PyMethodDefPointer, flags: c_int) -> Self {
        Self(UnsafeCell::new(ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            ml_meth: meth,
            ml_flags: flags,
            ml_doc: ptr::null(),
        }))
    }
}

static ACQUIRE: MethodDef = MethodDef::new(
    c"acquire",
    ffi::PyMethodDefPointer {
        PyCFunctionFastWithKeywords: acquire,
    },
    ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
);
static ENTER: MethodDef = MethodDef::new(
    c"__enter__",
    ffi::PyMethodDefPointer { PyCFunction: enter },
    ffi::METH_NOARGS,
);
static RELEASE: MethodDef = MethodDef::new(
    c"release",
    ffi::PyMethodDefPointer { PyCFunction: release },
    ffi::METH_NOARGS,
);
static EXIT: MethodDef = MethodDef::new(
    c"__exit__",
    ffi::PyMethodDefPointer { PyCFunctionFast: exit },
    ffi::METH_FASTCALL,
);

/// The `PyO3` methods replaced, in the order acquire, `__enter__`, release, `__exit__`.
static ORIGINAL: PyOnceLock<[Py<PyAny>; 4]> = PyOnceLock::new();
const ORIG_ACQUIRE: usize = 0;
const ORIG_ENTER: usize = 1;
const ORIG_RELEASE: usize = 2;
const ORIG_EXIT: usize = 3;

/// Replaces `Lock`'s four methods in its type dictionary by the native ones, each keeping the
/// docstring of the method it replaces.
///
/// # Errors
/// A failure to read or write the type's dictionary.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<Lock>();
    let defs = [
        (&ACQUIRE, c"acquire"),
        (&ENTER, c"__enter__"),
        (&RELEASE, c"release"),
        (&EXIT, c"__exit__"),
    ];
    let mut originals = Vec::with_capacity(defs.len());
    for (def, name) in defs {
        let name = name.to_str().expect("ASCII method names");
        let original = ty.getattr(name)?;
        // The docstring with the text signature in front, as `CPython` keeps it (so
        // `inspect.signature` reads the same signature); it must outlive the type: leaked once per
        // method, at import.
        let doc: Option<String> = original.getattr("__doc__")?.extract()?;
        let signature: Option<String> = original.getattr("__text_signature__")?.extract()?;
        let doc = match signature {
            Some(sig) => format!("{name}{sig}\n--\n\n{}", doc.unwrap_or_default()),
            None => doc.unwrap_or_default(),
        };
        let doc = std::ffi::CString::new(doc).map_or(ptr::null(), |c| c.into_raw().cast_const());
        // Safety: the def is a static; the type is a live heap type whose dictionary we own
        // through the type (written before any instance is used, at module initialisation);
        // PyType_Modified drops the method caches that may hold the old entry.
        unsafe {
            (*def.0.get()).ml_doc = doc;
            let descr = ffi::PyDescr_NewMethod(ty.as_type_ptr(), def.0.get());
            let descr = Bound::from_owned_ptr_or_err(py, descr)?;
            let dict = (*ty.as_type_ptr()).tp_dict;
            if dict.is_null() {
                return Err(pyo3::exceptions::PyRuntimeError::new_err("Lock has no type dictionary"));
            }
            let key = pyo3::types::PyString::new(py, name);
            if ffi::PyDict_SetItem(dict, key.as_ptr(), descr.as_ptr()) < 0 {
                return Err(PyErr::fetch(py));
            }
            ffi::PyType_Modified(ty.as_type_ptr());
        }
        originals.push(original.unbind());
    }
    let originals: [Py<PyAny>; 4] = originals.try_into().expect("four methods");
    ORIGINAL
        .set(py, originals)
        .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("Lock's native methods installed twice"))
}

/// The `Lock` that `slf` is.
///
/// # Safety
/// Attached; `slf` is an instance of `Lock` or a subclass (the method descriptor checks that
/// before calling).
unsafe fn lock_of<'a>(slf: *mut ffi::PyObject) -> &'a Lock {
    // Safety: as the caller promises; the reference lives as long as the call's borrow of `slf`.
    unsafe {
        let py = Python::assume_attached();
        let any = pyo3::Borrowed::from_ptr(py, slf);
        let lock: pyo3::Borrowed<'_, '_, Lock> = any.cast_unchecked::<Lock>();
        &*ptr::from_ref(lock.get())
    }
}

/// Takes the lock if the fast path applies (see the module docs).
#[inline]
fn try_fast_acquire(lock: &Lock) -> bool {
    if deadlock::order_checking() {
        return false;
    }
    // The site is read before the lock is taken, and only stored once it is held: the lock is
    // held for less time.
    let site = &lock.inner.site;
    let peek = if deadlock::mode() == Mode::Off {
        Peek::NoFrame
    } else {
        site.peek()
    };
    if matches!(peek, Peek::New) {
        return false; // a site not recorded yet: the PyO3 method records it
    }
    let me = thread::current();
    let core = &lock.inner.core;
    if !(core.try_acquire(me) || SPIN_FIRST && core.try_acquire_spinning(me)) {
        return false;
    }
    if let Peek::Same(same) = peek {
        if !site.store_same(same) {
            // Another holder recorded a new code object meanwhile: record the general way.
            Python::attach(|py| site.record(py));
        }
    }
    true
}

/// Releases the lock if the fast path applies (see the module docs).
#[inline]
fn try_fast_release(lock: &Lock) -> bool {
    if deadlock::order_checking() {
        return false;
    }
    let me = thread::current();
    if lock.inner.core.release(me).is_err() {
        return false;
    }
    after_release(me, lock.inner.as_ref());
    true
}

/// Calls the `PyO3` method `which` with `slf` and the call's arguments.
///
/// # Safety
/// Attached; `args` holds `nargs` objects; `kwnames` is NULL or a tuple of names for the
/// arguments after them.
#[cold]
unsafe fn call_original(
    which: usize,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // Safety: attached, as the caller promises.
    let py = unsafe { Python::assume_attached() };
    let Some(originals) = ORIGINAL.get(py) else {
        // Safety: attached.
        unsafe {
            ffi::PyErr_SetString(
                ffi::PyExc_RuntimeError,
                c"plait: Lock's methods are not installed".as_ptr(),
            );
        }
        return ptr::null_mut();
    };
    let positional = usize::try_from(nargs).unwrap_or(0);
    let keywords = if kwnames.is_null() {
        0
    } else {
        // Safety: a tuple, as the caller promises.
        usize::try_from(unsafe { ffi::PyTuple_GET_SIZE(kwnames) }).unwrap_or(0)
    };
    let mut all = Vec::with_capacity(1 + positional + keywords);
    all.push(slf);
    if !args.is_null() {
        // Safety: `args` holds the positional arguments followed by the keyword values.
        all.extend_from_slice(unsafe { std::slice::from_raw_parts(args, positional + keywords) });
    }
    // Safety: `all` holds borrowed references that outlive the call.
    unsafe { ffi::PyObject_Vectorcall(originals[which].as_ptr(), all.as_ptr(), 1 + positional, kwnames) }
}

/// A new reference to `obj`, an immortal object from 3.12 on, whose count needs no increment
/// (what `Py_RETURN_TRUE` does there); 3.11 counts it.
#[inline]
fn new_ref_immortal(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    #[cfg(not(Py_3_12))]
    // Safety: a live object.
    unsafe {
        ffi::Py_IncRef(obj);
    }
    obj
}

fn py_true() -> *mut ffi::PyObject {
    // Safety: the True singleton.
    new_ref_immortal(unsafe { ffi::Py_True() })
}

fn py_none() -> *mut ffi::PyObject {
    // Safety: the None singleton.
    new_ref_immortal(unsafe { ffi::Py_None() })
}

unsafe extern "C" fn acquire(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // Safety: called by the method descriptor, attached, on a Lock.
    if nargs == 0 && kwnames.is_null() && try_fast_acquire(unsafe { lock_of(slf) }) {
        return py_true();
    }
    // Safety: the arguments as `CPython` passed them.
    unsafe { call_original(ORIG_ACQUIRE, slf, args, nargs, kwnames) }
}

unsafe extern "C" fn enter(slf: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // Safety: called by the method descriptor, attached, on a Lock.
    if try_fast_acquire(unsafe { lock_of(slf) }) {
        return py_true();
    }
    // Safety: no arguments.
    unsafe { call_original(ORIG_ENTER, slf, ptr::null(), 0, ptr::null_mut()) }
}

unsafe extern "C" fn release(slf: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // Safety: called by the method descriptor, attached, on a Lock.
    if try_fast_release(unsafe { lock_of(slf) }) {
        return py_none();
    }
    // Safety: no arguments.
    unsafe { call_original(ORIG_RELEASE, slf, ptr::null(), 0, ptr::null_mut()) }
}

unsafe extern "C" fn exit(
    slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // Safety: called by the method descriptor, attached, on a Lock.
    if try_fast_release(unsafe { lock_of(slf) }) {
        return py_none();
    }
    // Safety: the arguments as `CPython` passed them.
    unsafe { call_original(ORIG_EXIT, slf, args.cast_const(), nargs, ptr::null_mut()) }
}
