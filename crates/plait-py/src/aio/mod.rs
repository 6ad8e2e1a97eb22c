//! The native half of `plait.aio`: the event loop, its socket transports and its streams.
//!
//! Layers, each depending only on the ones before it:
//! - the loop ([`event_loop`]): ready queue, timers, fd table and the poll/dispatch cycle, with
//!   its [`Handle`](event_loop::Handle)s;
//! - transports ([`transport`]): the per-packet paths of socket and datagram transports;
//! - streams ([`streams`]): `plait.aio`'s stream reader and writer.

mod event_loop;
mod streams;
mod transport;

use pyo3::prelude::*;

/// Adds the loop, transport and stream classes to the extension module.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    event_loop::init(m)?;
    transport::init(m)?;
    streams::init(m)?;
    Ok(())
}
