//! asyncio objects the loop and the streams make natively: `asyncio.Future(loop=...)` and
//! `asyncio.Task(coro, loop=...)` as one vectorcall each, with the classes looked up once.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

pub(super) static TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `module.name`, imported once into `cell`.
///
/// # Errors
/// The import's or the attribute lookup's.
pub(crate) fn imported<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || py.import(module)?.getattr(name).map(Bound::unbind))
        .map(|f| f.bind(py))
}

/// `("loop",)`: the keyword names of `asyncio.Future(loop=...)` and `asyncio.Task(coro, loop=...)`.
static LOOP_KWNAMES: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

/// `asyncio.Future(loop=loop)`, called with vectorcall (no keyword dict to build and parse).
pub(crate) fn new_future<'py>(loop_: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    call_with_loop(imported(loop_.py(), &FUTURE, "asyncio", "Future")?, None, loop_)
}

/// `cls(arg, loop=loop_)` (or `cls(loop=loop_)`) as one vectorcall.
pub(super) fn call_with_loop<'py>(
    cls: &Bound<'py, PyAny>,
    arg: Option<&Bound<'py, PyAny>>,
    loop_: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    let kwnames = LOOP_KWNAMES.get_or_try_init(py, || PyTuple::new(py, ["loop"]).map(Bound::unbind))?;
    let args = [arg.map_or(std::ptr::null_mut(), Bound::as_ptr), loop_.as_ptr()];
    let (start, nargs) = if arg.is_some() { (0, 1) } else { (1, 0) };
    // Safety: attached to Python; `args[start..]` holds `nargs` positional arguments then the
    // keyword argument named by the one-element `kwnames` tuple, all borrowed and alive for the
    // call; CPython only reads them. The result is a new reference or NULL with an exception set.
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyObject_Vectorcall(cls.as_ptr(), args[start..].as_ptr(), nargs, kwnames.as_ptr()),
        )
    }
}
