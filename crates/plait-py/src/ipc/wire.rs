//! The wire encoding of queue and pipe messages, done in the caller: `bytes`, `str`, `int`
//! (64-bit), `float` and `None` directly, anything else with `pickle.dumps(obj, protocol=5)` (so an
//! unpicklable object raises at `put`), large out-of-band buffers written into the ring where they
//! are.

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PySlice, PyString};

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `pickle.dumps`, looked up once.
pub(crate) fn dumps(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    DUMPS
        .get_or_try_init(py, || py.import("pickle")?.getattr("dumps").map(Bound::unbind))
        .map(|f| f.bind(py))
}

/// `pickle.loads`, looked up once.
fn loads(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    LOADS
        .get_or_try_init(py, || py.import("pickle")?.getattr("loads").map(Bound::unbind))
        .map(|f| f.bind(py))
}

// --- Message tags ---------------------------------------------------------------------------

const TAG_PICKLE: u32 = 0;
const TAG_BYTES: u32 = 1;
const TAG_INT: u32 = 2;
const TAG_STR: u32 = 3;
const TAG_FLOAT: u32 = 4;
const TAG_NONE: u32 = 5;
/// Pickle with out-of-band buffers: `u32` buffer count, `u32` pickle length, a `u64` length per
/// buffer, the pickle, then each buffer at an offset aligned to [`OOB_ALIGN`].
const TAG_PICKLE_OOB: u32 = 6;
/// Bytes sent with `Connection.send_bytes` (a pickle to `recv`, raw to `recv_bytes`).
pub(crate) const TAG_RAW: u32 = 7;
const OOB_ALIGN: usize = 16;
static ZEROS: [u8; OOB_ALIGN] = [0; OOB_ALIGN];

/// A message encoded in the caller, borrowing from Python objects where it can.
pub(crate) enum Encoded<'py> {
    Bytes(Bound<'py, PyBytes>),
    Str(Bound<'py, PyString>),
    Inline(u32, [u8; 8]),
    Pickled(Bound<'py, PyBytes>),
    /// A protocol-5 pickle and its out-of-band buffers, written into the ring where they are.
    Oob {
        header: Vec<u8>,
        pickled: Bound<'py, PyBytes>,
        buffers: Vec<PyUntypedBuffer>,
    },
}

impl Encoded<'_> {
    /// The tag and the payload's parts.
    pub(crate) fn parts(&self) -> PyResult<(u32, Vec<&[u8]>)> {
        Ok(match self {
            Self::Bytes(b) => (TAG_BYTES, vec![b.as_bytes()]),
            Self::Str(s) => (TAG_STR, vec![s.to_str()?.as_bytes()]),
            Self::Inline(TAG_NONE, _) => (TAG_NONE, vec![]),
            Self::Inline(tag, raw) => (*tag, vec![&raw[..]]),
            Self::Pickled(b) => (TAG_PICKLE, vec![b.as_bytes()]),
            Self::Oob {
                header,
                pickled,
                buffers,
            } => {
                let mut parts = Vec::with_capacity(2 + 2 * buffers.len());
                parts.push(&header[..]);
                parts.push(pickled.as_bytes());
                let mut at = header.len() + pickled.as_bytes().len();
                for b in buffers {
                    let pad = at.next_multiple_of(OOB_ALIGN) - at;
                    parts.push(&ZEROS[..pad]);
                    // Safety: a C-contiguous buffer (checked in `encode`) of `len_bytes` bytes,
                    // kept alive and unchanged by the exporter while the view is held.
                    parts.push(unsafe { std::slice::from_raw_parts(b.buf_ptr().cast::<u8>(), b.len_bytes()) });
                    at += pad + b.len_bytes();
                }
                (TAG_PICKLE_OOB, parts)
            }
        })
    }
}

pub(crate) fn encode<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Encoded<'py>> {
    let py = obj.py();
    if let Ok(b) = obj.cast_exact::<PyBytes>() {
        return Ok(Encoded::Bytes(b.clone()));
    }
    if let Ok(i) = obj.cast_exact::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Ok(Encoded::Inline(TAG_INT, v.to_le_bytes()));
        }
    } else if let Ok(s) = obj.cast_exact::<PyString>() {
        if s.to_str().is_ok() {
            return Ok(Encoded::Str(s.clone()));
        }
    } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(Encoded::Inline(TAG_FLOAT, f.value().to_le_bytes()));
    } else if obj.is_none() {
        return Ok(Encoded::Inline(TAG_NONE, [0; 8]));
    }
    let dumps = dumps(py)?;
    let collected = PyList::empty(py);
    let kwargs = PyDict::new(py);
    kwargs.set_item(
        intern!(py, "buffer_callback"),
        collected.getattr(intern!(py, "append"))?,
    )?;
    let data = dumps.call((obj, 5), Some(&kwargs))?.cast_into::<PyBytes>()?;
    if collected.is_empty() {
        return Ok(Encoded::Pickled(data));
    }
    let mut buffers = Vec::with_capacity(collected.len());
    for b in &collected {
        let view = PyUntypedBuffer::get(&b)?;
        if !view.is_c_contiguous() {
            // Rare (a strided view): pickle it in band instead.
            let data = dumps.call1((obj, 5))?.cast_into::<PyBytes>()?;
            return Ok(Encoded::Pickled(data));
        }
        buffers.push(view);
    }
    let mut header = Vec::with_capacity(8 + 8 * buffers.len());
    header.extend_from_slice(&u32::try_from(buffers.len()).map_err(|_| too_many())?.to_le_bytes());
    header.extend_from_slice(
        &u32::try_from(data.as_bytes().len())
            .map_err(|_| too_many())?
            .to_le_bytes(),
    );
    for b in &buffers {
        header.extend_from_slice(&(b.len_bytes() as u64).to_le_bytes());
    }
    Ok(Encoded::Oob {
        header,
        pickled: data,
        buffers,
    })
}

fn too_many() -> PyErr {
    PyValueError::new_err("object too large for a queue message")
}

/// Unpickles a `TAG_PICKLE_OOB` payload; the buffers are views of `data` (one copy in all).
fn loads_oob(py: Python<'_>, data: &Bound<'_, PyByteArray>) -> PyResult<Py<PyAny>> {
    let corrupt = || PyValueError::new_err("corrupt queue message (out-of-band pickle)");
    // Safety: the bytearray is not resized while we read its header (no Python code runs).
    let (count, plen, lens) = unsafe {
        let raw = data.as_bytes();
        let word = |at: usize| {
            raw.get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
        };
        let count = word(0).ok_or_else(corrupt)? as usize;
        let plen = word(4).ok_or_else(corrupt)? as usize;
        let mut lens = Vec::with_capacity(count);
        for i in 0..count {
            let at = 8 + 8 * i;
            let b = raw.get(at..at + 8).ok_or_else(corrupt)?;
            lens.push(u64::from_le_bytes(b.try_into().expect("8")) as usize);
        }
        (count, plen, lens)
    };
    let whole = PyMemoryView::from(data.as_any())?;
    let slice = |a: usize, b: usize| -> PyResult<Bound<'_, PyAny>> {
        if a > b || b > data.len() {
            return Err(corrupt());
        }
        let (a, b) = (
            isize::try_from(a).map_err(|_| corrupt())?,
            isize::try_from(b).map_err(|_| corrupt())?,
        );
        whole.get_item(PySlice::new(py, a, b, 1))
    };
    let mut at = 8 + 8 * count;
    let pickled = slice(at, at + plen)?;
    at += plen;
    let mut views = Vec::with_capacity(count);
    for len in lens {
        at = at.next_multiple_of(OOB_ALIGN);
        views.push(slice(at, at + len)?);
        at += len;
    }
    let loads = loads(py)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item(intern!(py, "buffers"), views)?;
    Ok(loads.call((pickled,), Some(&kwargs))?.unbind())
}

/// A message copied out of the ring (under the consumer lock), decoded after it is released.
pub(crate) enum Received {
    Ready(Py<PyAny>),
    Int(i64),
    Float(f64),
    None,
    Pickled(Py<PyBytes>),
    PickledOob(Py<PyByteArray>),
    /// `send_bytes` data: decoded as a pickle by `recv`, returned as is by `recv_bytes`.
    Raw(Py<PyBytes>),
    Failed(PyErr),
}

fn concat_into(buf: &mut [u8], a: &[u8], b: &[u8]) {
    buf[..a.len()].copy_from_slice(a);
    buf[a.len()..].copy_from_slice(b);
}

pub(crate) fn receive(py: Python<'_>, tag: u32, a: &[u8], b: &[u8]) -> Received {
    let len = a.len() + b.len();
    let eight = || {
        let mut raw = [0u8; 8];
        if len == 8 {
            concat_into(&mut raw, a, b);
        }
        raw
    };
    match tag {
        TAG_INT => Received::Int(i64::from_le_bytes(eight())),
        TAG_FLOAT => Received::Float(f64::from_le_bytes(eight())),
        TAG_NONE => Received::None,
        TAG_STR => {
            let text = if b.is_empty() {
                std::str::from_utf8(a).map(|s| PyString::new(py, s))
            } else {
                std::str::from_utf8(&[a, b].concat()).map(|s| PyString::new(py, s))
            };
            match text {
                Ok(s) => Received::Ready(s.into_any().unbind()),
                Err(e) => Received::Failed(PyValueError::new_err(format!("corrupt str message: {e}"))),
            }
        }
        TAG_BYTES | TAG_PICKLE | TAG_RAW => match PyBytes::new_with(py, len, |buf| {
            concat_into(buf, a, b);
            Ok(())
        }) {
            Ok(bytes) if tag == TAG_BYTES => Received::Ready(bytes.into_any().unbind()),
            Ok(bytes) if tag == TAG_RAW => Received::Raw(bytes.unbind()),
            Ok(bytes) => Received::Pickled(bytes.unbind()),
            Err(e) => Received::Failed(e),
        },
        TAG_PICKLE_OOB => match PyByteArray::new_with(py, len, |buf| {
            concat_into(buf, a, b);
            Ok(())
        }) {
            Ok(data) => Received::PickledOob(data.unbind()),
            Err(e) => Received::Failed(e),
        },
        _ => Received::Failed(PyValueError::new_err(format!("unknown message tag {tag}"))),
    }
}

pub(crate) fn decode(py: Python<'_>, r: Received) -> PyResult<Py<PyAny>> {
    Ok(match r {
        Received::Ready(o) => o,
        Received::Int(v) => v.into_pyobject(py)?.into_any().unbind(),
        Received::Float(v) => PyFloat::new(py, v).into_any().unbind(),
        Received::None => py.None(),
        Received::Pickled(data) | Received::Raw(data) => {
            let loads = loads(py)?;
            loads.call1((data,))?.unbind()
        }
        Received::PickledOob(data) => loads_oob(py, data.bind(py))?,
        Received::Failed(e) => return Err(e),
    })
}
