//! Lists of numbers as blocks of bytes (`pack_numbers` / `unpack_numbers`), and `Flatten`, the
//! iterator that hands a map's results out. These are the per-item paths of `ProcessPool.map`:
//! a chunk of exact ints or floats travels as 8 bytes per number in both directions (packing
//! costs ~4 ns per number, pickle ~10), and the parent gives each result to the consumer
//! without a Python frame per item.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyIterator, PyList};

/// A list of numbers as one block of bytes, when every item is an exact `int` that fits 64
/// bits (`"q"`) or every item an exact `float` (`"d"`); `None` otherwise (it stops at the first
/// item of another kind, so other lists cost one look). Nothing here runs Python code, so the
/// list cannot change while it is read.
#[pyfunction]
pub fn pack_numbers<'py>(py: Python<'py>, items: &Bound<'py, PyList>) -> Option<(char, Bound<'py, PyBytes>)> {
    let first = items.get_item(0).ok()?;
    let kind = if first.is_exact_instance_of::<PyInt>() {
        'q'
    } else if first.is_exact_instance_of::<PyFloat>() {
        'd'
    } else {
        return None;
    };
    let n = items.len();
    let packed = PyBytes::new_with(py, n * 8, |out| {
        let ok = if kind == 'q' {
            pack_ints(items, out)
        } else {
            pack_floats(items, out)
        };
        if ok {
            Ok(())
        } else {
            Err(PyValueError::new_err("not all numbers of one kind"))
        }
    });
    packed.ok().map(|bytes| (kind, bytes))
}

/// Writes each item of `items` (exact ints that fit 64 bits) to `out`; false at the first that is not.
fn pack_ints(items: &Bound<'_, PyList>, out: &mut [u8]) -> bool {
    #[cfg(not(Py_GIL_DISABLED))]
    {
        let list = items.as_ptr();
        // SAFETY: with the GIL held and no Python code run in the loop, the list's size and
        // items stay as they are; borrowed items are only read. `out` holds 8 bytes per item.
        unsafe {
            let int_type = &raw mut pyo3::ffi::PyLong_Type;
            for (i, word) in out.chunks_exact_mut(8).enumerate() {
                #[allow(clippy::cast_possible_wrap)] // i < len(list) <= isize::MAX
                let item = pyo3::ffi::PyList_GET_ITEM(list, i as pyo3::ffi::Py_ssize_t);
                if pyo3::ffi::Py_TYPE(item) != int_type {
                    return false;
                }
                let mut overflow = 0;
                let value = pyo3::ffi::PyLong_AsLongLongAndOverflow(item, &raw mut overflow);
                if overflow != 0 {
                    return false;
                }
                word.copy_from_slice(&value.to_le_bytes());
            }
        }
        true
    }
    #[cfg(Py_GIL_DISABLED)]
    {
        // Another thread may change the list: every item is read through a new reference.
        for (item, word) in items.iter().zip(out.chunks_exact_mut(8)) {
            if !item.is_exact_instance_of::<PyInt>() {
                return false;
            }
            let Ok(value) = item.extract::<i64>() else { return false };
            word.copy_from_slice(&value.to_le_bytes());
        }
        items.len() * 8 == out.len()
    }
}

/// Writes each item of `items` (exact floats) to `out`; false at the first that is not one.
fn pack_floats(items: &Bound<'_, PyList>, out: &mut [u8]) -> bool {
    #[cfg(not(Py_GIL_DISABLED))]
    {
        let list = items.as_ptr();
        // SAFETY: as in `pack_ints`.
        unsafe {
            let float_type = &raw mut pyo3::ffi::PyFloat_Type;
            for (i, word) in out.chunks_exact_mut(8).enumerate() {
                #[allow(clippy::cast_possible_wrap)] // i < len(list) <= isize::MAX
                let item = pyo3::ffi::PyList_GET_ITEM(list, i as pyo3::ffi::Py_ssize_t);
                if pyo3::ffi::Py_TYPE(item) != float_type {
                    return false;
                }
                word.copy_from_slice(&pyo3::ffi::PyFloat_AS_DOUBLE(item).to_le_bytes());
            }
        }
        true
    }
    #[cfg(Py_GIL_DISABLED)]
    {
        for (item, word) in items.iter().zip(out.chunks_exact_mut(8)) {
            let Ok(f) = item.cast_exact::<PyFloat>() else {
                return false;
            };
            word.copy_from_slice(&f.value().to_le_bytes());
        }
        items.len() * 8 == out.len()
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

/// The items of the chunks that `chunks` yields, one by one, as `itertools.chain.from_iterable`
/// gives them: a map's results. A chunk that is a list lets go of each item as it hands it out
/// (the list keeps `None` in its place), so the consumer holds the only reference to a result
/// it has read, as `concurrent.futures`' map guarantees (bpo-14406); other chunks are iterated.
/// Native: per item, it costs a fraction of a generator frame or of `chain` over an iterator.
/// Dropping it drops `chunks` (a generator's `finally` then runs, as with `chain`).
#[pyclass(module = "plait.processes", frozen)]
pub struct Flatten {
    chunks: Py<PyIterator>,
    /// What is being handed out; the lock is never held while Python code runs.
    current: Mutex<Current>,
    /// Items still to come, as far as the creator knew (`__length_hint__`).
    hint: AtomicUsize,
}

enum Current {
    None,
    List(Py<PyList>, usize),
    Other(Py<PyIterator>),
}

#[pymethods]
impl Flatten {
    #[new]
    #[pyo3(signature = (chunks, length_hint = 0))]
    fn new(chunks: &Bound<'_, PyAny>, length_hint: usize) -> PyResult<Self> {
        Ok(Self {
            chunks: chunks.try_iter()?.unbind(),
            current: Mutex::new(Current::None),
            hint: AtomicUsize::new(length_hint),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let item = self.next_item(py)?;
        if item.is_some() {
            // Never below zero, however wrong the hint was.
            let _ = self
                .hint
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        } else {
            self.hint.store(0, Ordering::Relaxed);
        }
        Ok(item)
    }

    fn __length_hint__(&self) -> usize {
        self.hint.load(Ordering::Relaxed)
    }
}

impl Flatten {
    fn next_item(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        loop {
            let done = {
                let mut current = self.current.lock();
                match &mut *current {
                    Current::List(list, next) => {
                        if let Some(item) = take(list.bind(py), *next) {
                            *next += 1;
                            return Ok(Some(item));
                        }
                    }
                    Current::Other(_) | Current::None => {}
                }
                std::mem::replace(&mut *current, Current::None)
            };
            if let Current::Other(other) = &done {
                // Python code runs here (the chunk's iterator): without the lock.
                if let Some(item) = other.bind(py).clone().next() {
                    *self.current.lock() = done;
                    return item.map(|item| Some(item.unbind()));
                }
            }
            drop(done);
            let Some(chunk) = self.chunks.bind(py).clone().next() else {
                return Ok(None);
            };
            let chunk = chunk?;
            let next = match chunk.cast_into_exact::<PyList>() {
                Ok(list) => Current::List(list.unbind(), 0),
                Err(other) => Current::Other(other.into_inner().try_iter()?.unbind()),
            };
            *self.current.lock() = next;
        }
    }
}

/// Item `i` of `list`, its slot set to `None`; `None` past the end. Runs no Python code.
fn take(list: &Bound<'_, PyList>, i: usize) -> Option<Py<PyAny>> {
    #[cfg(not(Py_GIL_DISABLED))]
    {
        let Ok(index) = pyo3::ffi::Py_ssize_t::try_from(i) else {
            return None;
        };
        // SAFETY: with the GIL held, `index` is checked against the list's size and the slot's
        // reference moves to the caller: `None` (a new reference) takes its place.
        unsafe {
            if index >= pyo3::ffi::PyList_GET_SIZE(list.as_ptr()) {
                return None;
            }
            let item = pyo3::ffi::PyList_GET_ITEM(list.as_ptr(), index);
            pyo3::ffi::PyList_SET_ITEM(list.as_ptr(), index, list.py().None().into_ptr());
            Some(Bound::from_owned_ptr(list.py(), item).unbind())
        }
    }
    #[cfg(Py_GIL_DISABLED)]
    {
        // PyList_SetItem's decref of the old item is this same reference's: no Python code runs.
        let item = list.get_item(i).ok()?;
        list.set_item(i, list.py().None()).ok()?;
        Some(item.unbind())
    }
}
