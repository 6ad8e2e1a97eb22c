//! Sets `PyO3`'s configuration flags (`Py_GIL_DISABLED` on a free-threaded Python) for `#[cfg]`.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
