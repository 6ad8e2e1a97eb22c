//! `plait.scaling`'s solver: [`fit`] over `plait_core::scaling`, returning the statistics as a
//! dict for the Python result classes, and Student's t quantile for their prediction intervals.

use plait_core::scaling::{self, Model};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::scaling_err;

/// `fit(model, load, throughput, level)`: fits `"usl"`, `"amdahl"` or `"gustafson"` by bounded
/// least squares; returns a dict of the coefficients' names, estimates, standard errors, t and p
/// values, confidence intervals, covariance (row-major), fitted values, residuals, rss, df,
/// sigma and `r_squared`. Runs detached from the interpreter.
#[pyfunction]
#[pyo3(signature = (model, load, throughput, level = 0.95))]
fn fit<'py>(
    py: Python<'py>,
    model: &str,
    load: Vec<f64>,
    throughput: Vec<f64>,
    level: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let which = Model::from_name(model)
        .ok_or_else(|| PyValueError::new_err(format!("unknown model {model:?}: use 'usl', 'amdahl' or 'gustafson'")))?;
    if !(level > 0.0 && level < 1.0) {
        return Err(PyValueError::new_err(format!(
            "level must be between 0 and 1, got {level}"
        )));
    }
    let f = py
        .detach(|| scaling::fit(which, &load, &throughput, level))
        .map_err(scaling_err)?;
    let d = PyDict::new(py);
    d.set_item("names", which.coefficients().to_vec())?;
    d.set_item("coefficients", f.coefficients)?;
    d.set_item("std_errors", f.std_errors)?;
    d.set_item("t_values", f.t_values)?;
    d.set_item("p_values", f.p_values)?;
    d.set_item("ci_lower", f.ci_lower)?;
    d.set_item("ci_upper", f.ci_upper)?;
    d.set_item("level", f.level)?;
    d.set_item("covariance", f.covariance)?;
    d.set_item("fitted", f.fitted)?;
    d.set_item("residuals", f.residuals)?;
    d.set_item("rss", f.rss)?;
    d.set_item("df", f.df)?;
    d.set_item("sigma", f.sigma)?;
    d.set_item("r_squared", f.r_squared)?;
    Ok(d)
}

/// `t_quantile(p, df)`: the `p` quantile of Student's t with `df` degrees of freedom (NaN when
/// undefined).
#[pyfunction]
fn t_quantile(p: f64, df: f64) -> f64 {
    scaling::t_quantile(p, df)
}

/// Adds `scaling_fit` and `scaling_t_quantile` to the module.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let fit = wrap_pyfunction!(fit, m)?;
    m.add("scaling_fit", fit)?;
    let tq = wrap_pyfunction!(t_quantile, m)?;
    m.add("scaling_t_quantile", tq)?;
    Ok(())
}
