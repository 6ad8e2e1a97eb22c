//! The statistics of a solution, computed as R's `usl` computes them (after `nls`): residuals,
//! the residual standard error, standard errors from the Jacobian of all coefficients (bounded ones
//! included), t and p values, confidence intervals from Student's t, and R².

use nalgebra::DMatrix;
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::model::Model;

/// A fitted scaling law and its statistics. Slices indexed by coefficient follow
/// [`Model::coefficients`]; slices indexed by measurement follow the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The law fitted.
    pub model: Model,
    /// The estimates.
    pub coefficients: Vec<f64>,
    /// Their standard errors (NaN with no degree of freedom left, or a singular Jacobian).
    pub std_errors: Vec<f64>,
    /// `estimate / std_error`.
    pub t_values: Vec<f64>,
    /// Two-sided p values of the t values.
    pub p_values: Vec<f64>,
    /// Lower ends of the confidence intervals.
    pub ci_lower: Vec<f64>,
    /// Upper ends of the confidence intervals.
    pub ci_upper: Vec<f64>,
    /// The confidence level of the intervals.
    pub level: f64,
    /// The covariance matrix of the estimates, row-major (`p × p`).
    pub covariance: Vec<f64>,
    /// The fitted throughput at each load.
    pub fitted: Vec<f64>,
    /// Measured minus fitted throughput.
    pub residuals: Vec<f64>,
    /// The residual sum of squares.
    pub rss: f64,
    /// Residual degrees of freedom, `n - p`.
    pub df: usize,
    /// The residual standard error, `sqrt(rss / df)`.
    pub sigma: f64,
    /// `1 - rss / tss`.
    pub r_squared: f64,
}

/// The `p` quantile of Student's t with `df` degrees of freedom (NaN for `df == 0` or `p` outside
/// `(0, 1)`).
#[must_use]
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |t| t.inverse_cdf(p))
}

/// `P(|T| > |t|)` for Student's t with `df` degrees of freedom.
fn two_sided_p(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return if t.is_nan() { f64::NAN } else { 0.0 };
    }
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |d| 2.0 * d.sf(t.abs()))
}

/// `(JᵀJ)⁻¹` of the model at `coefficients`, row-major; NaNs if it is singular.
fn inverse_information(model: Model, coefficients: &[f64], load: &[f64]) -> Vec<f64> {
    let p = model.len();
    let mut grad = vec![0.0; p];
    let mut jac = DMatrix::zeros(load.len(), p);
    for (row, &n) in load.iter().enumerate() {
        model.gradient(coefficients, n, &mut grad);
        for (col, g) in grad.iter().enumerate() {
            jac[(row, col)] = *g;
        }
    }
    match (jac.transpose() * &jac).try_inverse() {
        Some(inv) => (0..p * p).map(|k| inv[(k / p, k % p)]).collect(),
        None => vec![f64::NAN; p * p],
    }
}

impl Fit {
    /// The statistics of `coefficients` for the measurements, intervals at `level`.
    #[must_use]
    pub fn new(model: Model, coefficients: Vec<f64>, load: &[f64], throughput: &[f64], level: f64) -> Self {
        let p = model.len();
        let fitted: Vec<f64> = load.iter().map(|&n| model.eval(&coefficients, n)).collect();
        let residuals: Vec<f64> = throughput.iter().zip(&fitted).map(|(x, f)| x - f).collect();
        let rss: f64 = residuals.iter().map(|r| r * r).sum();
        let df = load.len() - p;
        let variance = if df == 0 { f64::NAN } else { rss / df as f64 };
        let mean = throughput.iter().sum::<f64>() / throughput.len() as f64;
        let tss: f64 = throughput.iter().map(|x| (x - mean).powi(2)).sum();
        let inverse = inverse_information(model, &coefficients, load);
        let covariance: Vec<f64> = inverse.iter().map(|v| v * variance).collect();
        let std_errors: Vec<f64> = (0..p).map(|i| covariance[i * p + i].sqrt()).collect();
        let t_values: Vec<f64> = coefficients.iter().zip(&std_errors).map(|(c, s)| c / s).collect();
        let df_f = df as f64;
        let p_values = t_values.iter().map(|&t| two_sided_p(t, df_f)).collect();
        let q = t_quantile(1.0 - (1.0 - level) / 2.0, df_f);
        let ci_lower = coefficients.iter().zip(&std_errors).map(|(c, s)| c - q * s).collect();
        let ci_upper = coefficients.iter().zip(&std_errors).map(|(c, s)| c + q * s).collect();
        Self {
            model,
            coefficients,
            std_errors,
            t_values,
            p_values,
            ci_lower,
            ci_upper,
            level,
            covariance,
            fitted,
            residuals,
            rss,
            df,
            sigma: variance.sqrt(),
            r_squared: if tss > 0.0 { 1.0 - rss / tss } else { f64::NAN },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{t_quantile, two_sided_p};

    /// Quantiles as R's `qt` prints them.
    #[test]
    fn t_quantiles_match_r() {
        assert!((t_quantile(0.975, 4.0) - 2.776_445).abs() < 1e-5);
        assert!((t_quantile(0.975, 8.0) - 2.306_004).abs() < 1e-5);
        assert!((t_quantile(0.025, 8.0) + 2.306_004).abs() < 1e-5);
        assert!(t_quantile(0.975, 0.0).is_nan());
    }

    /// R's summary of specsdm91: t 3.040 on 4 df gives p 0.03841.
    #[test]
    fn p_values_match_r() {
        assert!((two_sided_p(3.040, 4.0) - 0.038_41).abs() < 1e-4);
    }
}
