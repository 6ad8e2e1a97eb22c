//! The native half of `plait.aio`: the event loop, its socket transports and its streams.
//!
//! Layers, each depending only on the ones above it in this list (never the other way):
//! - the loop: [`gc`] (collector tricks), [`futures`], [`handle`] ([`Handle`](handle::Handle),
//!   [`TimerHandle`](handle::TimerHandle)), [`source`] (the [`IoSource`](source::IoSource) trait
//!   through which the loop calls native readiness callbacks), [`event_loop`] (`LoopCore`) and
//!   [`run`] (one iteration of it);
//! - transports ([`transport`]): the per-packet paths of socket and datagram transports, which
//!   implement `IoSource`;
//! - streams ([`streams`]): `plait.aio`'s stream reader and writer, fed by transports through a
//!   trait the transport layer defines.

mod event_loop;
mod futures;
mod gc;
mod handle;
mod run;
mod source;
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
