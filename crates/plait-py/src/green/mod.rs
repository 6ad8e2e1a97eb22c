//! The native parts of `plait.green`: the cache of the interpreter's frame-stack chunks
//! ([`stacks`]), which makes a greenlet's first switch cheap, and `sleep(0)` ([`yielders`]).

use pyo3::prelude::*;

pub mod stacks;
pub mod yielders;

/// Adds this model's functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(stacks::cache_frame_stacks, m)?)?;
    m.add_function(wrap_pyfunction!(stacks::frame_stack_cache_info, m)?)?;
    m.add_class::<yielders::Yielders>()?;
    m.add_function(wrap_pyfunction!(yielders::green_init, m)?)?;
    m.add_function(wrap_pyfunction!(yielders::green_sleep0, m)?)?;
    Ok(())
}
