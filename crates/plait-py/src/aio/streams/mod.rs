//! `plait.aio`'s streams, above the transports: the reader (protocol and buffer in one object,
//! fed natively by its transport through [`DataSink`](crate::aio::transport::DataSink)), its
//! read awaitables, and the writer's native base.

mod buffer;
mod reader;
mod writer;

use pyo3::prelude::*;

pub use reader::{StreamCore, StreamRead};
pub use writer::{Ready, WriterCore};

/// Adds the stream classes to the extension module and registers the reader as a native sink.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StreamCore>()?;
    m.add_class::<Ready>()?;
    m.add_class::<StreamRead>()?;
    m.add_class::<WriterCore>()?;
    crate::aio::transport::register_sink(reader::native_sink);
    Ok(())
}
