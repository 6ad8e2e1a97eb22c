//! [`NativeSink`]: how a transport hands received bytes to a protocol implemented in Rust by a
//! layer above it (plait's stream reader), without knowing that protocol's type.
//!
//! The layer above implements [`DataSink`] and registers, once at init, a function that
//! recognises its protocols ([`register_sink`]). A transport asks it once per `set_protocol`
//! ([`native_sink`]); per packet it makes one indirect call ([`NativeSink::feed`]).

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::True;
use pyo3::PyClass;

/// A protocol that takes received data natively.
pub trait DataSink: PyClass<Frozen = True> + Sync {
    /// What `protocol.data_received(data)` does.
    ///
    /// # Errors
    /// What the protocol raises (the transport treats it as `data_received` raising).
    fn data_received(&self, data: &Bound<'_, PyAny>) -> PyResult<()>;
}

/// A recognised [`DataSink`]: the protocol and how to feed it.
pub struct NativeSink {
    protocol: Py<PyAny>,
    feed: fn(&Bound<'_, PyAny>, &Bound<'_, PyAny>) -> PyResult<()>,
}

/// [`NativeSink::feed`] for protocols of type `S`.
fn feed_as<S: DataSink>(protocol: &Bound<'_, PyAny>, data: &Bound<'_, PyAny>) -> PyResult<()> {
    // Safety: a `NativeSink` with this function holds a `Py<S>` (see `NativeSink::new`).
    unsafe { protocol.cast_unchecked::<S>() }.get().data_received(data)
}

impl NativeSink {
    /// Feeds `protocol` natively.
    pub fn new<S: DataSink>(protocol: &Bound<'_, S>) -> Self {
        Self {
            protocol: protocol.clone().into_any().unbind(),
            feed: feed_as::<S>,
        }
    }

    /// Hands `data` to the protocol.
    ///
    /// # Errors
    /// What the protocol raises.
    #[inline]
    pub fn feed(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        (self.feed)(self.protocol.bind(data.py()), data)
    }

    /// The protocol (for the collector's traversal).
    pub fn protocol(&self) -> &Py<PyAny> {
        &self.protocol
    }

    /// A new reference to the same sink.
    pub fn clone_ref(&self, py: Python<'_>) -> Self {
        Self {
            protocol: self.protocol.clone_ref(py),
            feed: self.feed,
        }
    }
}

/// Recognises a protocol that a layer above feeds natively.
pub type Recognise = fn(&Bound<'_, PyAny>) -> Option<NativeSink>;

static RECOGNISE: OnceLock<Recognise> = OnceLock::new();

/// Registers the function that recognises native protocols (the streams' init; the first one
/// registered stays).
pub fn register_sink(recognise: Recognise) {
    // A second module init (subinterpreter) registers the same function: nothing to do.
    let _ = RECOGNISE.set(recognise);
}

/// `protocol` as a native sink, if a registered layer recognises it.
pub(super) fn native_sink(protocol: &Bound<'_, PyAny>) -> Option<NativeSink> {
    RECOGNISE.get().and_then(|f| f(protocol))
}
