//! Lists of numbers as blocks of bytes (`pack_numbers` / `unpack_numbers`), and `Drain`, the
//! iterator that hands a map's results out. These are the per-item paths of `ProcessPool.map`:
//! a chunk of exact ints or floats travels as 8 bytes per number in both directions (packing
//! costs a few ns per number, pickle ~10), and the parent gives each result to the consumer
//! without a Python frame per item.

use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList};

/// A list of numbers as one block of bytes, when every item is an exact `int` that fits 64
/// bits (`"q"`) or every item an exact `float` (`"d"`); `None` otherwise (it stops at the first
/// item of another kind, so other lists cost one look).
#[pyfunction]
pub fn pack_numbers<'py>(py: Python<'py>, items: &Bound<'py, PyList>) -> Option<(char, Bound<'py, PyBytes>)> {
    let n = items.len();
    let first = items.get_item(0).ok()?;
    let mut out = Vec::with_capacity(n * 8);
    if first.is_exact_instance_of::<PyInt>() {
        for item in items.iter() {
            if !item.is_exact_instance_of::<PyInt>() {
                return None;
            }
            out.extend_from_slice(&item.extract::<i64>().ok()?.to_le_bytes());
        }
        Some(('q', PyBytes::new(py, &out)))
    } else if first.is_exact_instance_of::<PyFloat>() {
        for item in items.iter() {
            let f = item.cast_exact::<PyFloat>().ok()?;
            out.extend_from_slice(&f.value().to_le_bytes());
        }
        Some(('d', PyBytes::new(py, &out)))
    } else {
        None
    }
}

/// The list packed by `pack_numbers`.
#[pyfunction]
pub fn unpack_numbers<'py>(py: Python<'py>, kind: char, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
    if data.len() % 8 != 0 {
        return Err(PyValueError::new_err(format!(
            "packed numbers are 8 bytes each, not {} bytes in all",
            data.len()
        )));
    }
    let words = data.chunks_exact(8).map(|c| <[u8; 8]>::try_from(c).expect("8 bytes"));
    match kind {
        // SAFETY: the constructors return new references or NULL with an exception set.
        'q' => new_list(
            py,
            words.map(|w| unsafe { pyo3::ffi::PyLong_FromLongLong(i64::from_le_bytes(w)) }),
        ),
        'd' => new_list(
            py,
            words.map(|w| unsafe { pyo3::ffi::PyFloat_FromDouble(f64::from_le_bytes(w)) }),
        ),
        _ => Err(PyValueError::new_err(format!("unknown number kind {kind:?}"))),
    }
}

/// A list filled straight from `items` (new references, or NULL on error): what
/// `memoryview.tolist()` does, without `PyO3`'s conversion per item (a third of the time here).
fn new_list(
    py: Python<'_>,
    items: impl ExactSizeIterator<Item = *mut pyo3::ffi::PyObject>,
) -> PyResult<Bound<'_, PyList>> {
    let n = pyo3::ffi::Py_ssize_t::try_from(items.len()).map_err(|_| PyValueError::new_err("too many numbers"))?;
    // SAFETY: a new list of n NULL slots, owned here; each slot is set once with a new
    // reference (the list steals it). A list dropped with NULL slots left (an error midway)
    // is valid: list deallocation skips them.
    unsafe {
        let list = Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyList_New(n))?.cast_into_unchecked::<PyList>();
        for (i, item) in (0..n).zip(items) {
            if item.is_null() {
                return Err(PyErr::fetch(py));
            }
            pyo3::ffi::PyList_SET_ITEM(list.as_ptr(), i, item);
        }
        Ok(list)
    }
}

/// Iterates over a list and lets go of each item as it hands it out (the list keeps `None`
/// in its place): a map's consumer then holds the only reference to a result it has read, as
/// `concurrent.futures`' map guarantees (bpo-14406), at the cost of a C iterator rather than a
/// Python generator per item.
#[pyclass(module = "plait.processes", frozen)]
pub struct Drain {
    list: Py<PyList>,
    next: AtomicUsize,
}

#[pymethods]
impl Drain {
    #[new]
    fn new(list: Bound<'_, PyList>) -> Self {
        Self {
            list: list.unbind(),
            next: AtomicUsize::new(0),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let list = self.list.bind(py);
        // Each call takes its own index, whatever the thread.
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i >= list.len() {
            self.next.store(list.len(), Ordering::Relaxed); // no wrap-around, however long it is polled
            return None;
        }
        let item = list.get_item(i).ok()?;
        list.set_item(i, py.None()).ok()?;
        Some(item.unbind())
    }

    fn __length_hint__(&self, py: Python<'_>) -> usize {
        self.list
            .bind(py)
            .len()
            .saturating_sub(self.next.load(Ordering::Relaxed))
    }
}
