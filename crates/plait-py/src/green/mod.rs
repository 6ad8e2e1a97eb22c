//! The native parts of `plait.green`: so far the cache of the interpreter's frame-stack chunks
//! ([`stacks`]), which makes a greenlet's first switch cheap.

use pyo3::prelude::*;

pub mod stacks;

/// Adds this model's functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(stacks::cache_frame_stacks, m)?)?;
    m.add_function(wrap_pyfunction!(stacks::frame_stack_cache_info, m)?)?;
    Ok(())
}
