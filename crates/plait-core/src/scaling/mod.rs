//! Scaling laws fitted to throughput measurements: the Universal Scalability Law (USL), Amdahl's
//! law and Gustafson's law, by bounded non-linear least squares.
//!
//! The fit follows R's `usl` package (version 3, by Stefan Möding), which the Python layer
//! (`plait.scaling`) is tested against: all coefficients are estimated, `gamma` (the throughput of
//! one worker) included, from the start values R uses, with `alpha` and `beta` bounded to `[0, 1]`
//! and `gamma` to `gamma >= 0`; standard errors come from the Jacobian at the solution,
//! `sqrt(diag((JᵀJ)⁻¹) · RSS / (n - p))`, and intervals from Student's t with `n - p` degrees of
//! freedom.
//!
//! - [`model`]: the three laws, their coefficients, bounds, start values and gradients.
//! - [`fit`]: the solver (the `levenberg-marquardt` crate, MINPACK's algorithm) and the bounds.
//! - [`stats`]: what is computed from a solution: residuals, standard errors, t and p values,
//!   confidence intervals, R².

pub mod fit;
pub mod model;
pub mod stats;

pub use crate::error::ScalingError;
pub use fit::fit;
pub use model::Model;
pub use stats::{t_quantile, Fit};
