//! The solver: bounded non-linear least squares over a [`Model`].
//!
//! The `levenberg-marquardt` crate (a port of MINPACK's `lmder`) minimises without bounds, and R's
//! `usl` bounds `alpha` and `beta` to `[0, 1]` (`nls(algorithm = "port")`). With two or three
//! coefficients the bounded problem is solved exactly by its active sets: each bounded coefficient
//! is either free or held at one of its bounds, every combination is solved for the free ones,
//! and the solution with the least residual sum of squares among those within all bounds wins.
//! That is at most nine small solves; a coefficient the data push below zero (the raytracer
//! dataset's `beta`) ends at its bound, as with R.

use levenberg_marquardt::{LeastSquaresProblem, LevenbergMarquardt};
use nalgebra::{DMatrix, DVector, Dyn, Owned};

use super::model::Model;
use super::stats::Fit;
use crate::error::ScalingError;

/// How far outside a bound a free coefficient may end and still count as within it (the solver's
/// own tolerance).
const BOUND_SLACK: f64 = 1e-9;

/// The problem the solver sees: the free coefficients of `model`, the others held fixed.
struct Problem<'a> {
    model: Model,
    load: &'a [f64],
    throughput: &'a [f64],
    /// Every coefficient; the free ones are overwritten by `set_params`.
    coefficients: Vec<f64>,
    free: Vec<usize>,
}

impl LeastSquaresProblem<f64, Dyn, Dyn> for Problem<'_> {
    type ResidualStorage = Owned<f64, Dyn>;
    type JacobianStorage = Owned<f64, Dyn, Dyn>;
    type ParameterStorage = Owned<f64, Dyn>;

    fn set_params(&mut self, x: &DVector<f64>) {
        for (slot, &i) in self.free.iter().enumerate() {
            self.coefficients[i] = x[slot];
        }
    }

    fn params(&self) -> DVector<f64> {
        DVector::from_iterator(self.free.len(), self.free.iter().map(|&i| self.coefficients[i]))
    }

    fn residuals(&self) -> Option<DVector<f64>> {
        let r = DVector::from_iterator(
            self.load.len(),
            self.load
                .iter()
                .zip(self.throughput)
                .map(|(&n, &x)| self.model.eval(&self.coefficients, n) - x),
        );
        r.iter().all(|v| v.is_finite()).then_some(r)
    }

    fn jacobian(&self) -> Option<DMatrix<f64>> {
        let mut grad = vec![0.0; self.model.len()];
        let mut jac = DMatrix::zeros(self.load.len(), self.free.len());
        for (row, &n) in self.load.iter().enumerate() {
            self.model.gradient(&self.coefficients, n, &mut grad);
            for (col, &i) in self.free.iter().enumerate() {
                jac[(row, col)] = grad[i];
            }
        }
        jac.iter().all(|v| v.is_finite()).then_some(jac)
    }
}

/// Where a bounded coefficient is held in one active set.
#[derive(Clone, Copy)]
enum Hold {
    Free,
    Lower,
    Upper,
}

/// Checks the measurements: equal lengths, finite values above zero, at least as many as the
/// model has coefficients.
fn validate(model: Model, load: &[f64], throughput: &[f64]) -> Result<(), ScalingError> {
    if load.len() != throughput.len() {
        return Err(ScalingError::LengthMismatch {
            load: load.len(),
            throughput: throughput.len(),
        });
    }
    for (what, values) in [("load", load), ("throughput", throughput)] {
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
            return Err(ScalingError::InvalidValue { what, index, value });
        }
    }
    if load.len() < model.len() {
        return Err(ScalingError::TooFewPoints {
            model: model.name(),
            points: load.len(),
            needed: model.len(),
        });
    }
    Ok(())
}

/// Solves one active set: the coefficients `holds` marks free, from R's start values, with the
/// others at their bounds. Returns every coefficient and the residual sum of squares, or `None`
/// if the solution leaves the bounds or is not finite.
fn solve(model: Model, load: &[f64], throughput: &[f64], holds: &[Hold]) -> Option<(Vec<f64>, f64)> {
    let bounds = model.bounds();
    let mut coefficients = model.start(load, throughput);
    let mut free = Vec::new();
    for (i, hold) in holds.iter().enumerate() {
        match hold {
            Hold::Free => free.push(i),
            Hold::Lower => coefficients[i] = bounds[i].0,
            Hold::Upper => coefficients[i] = bounds[i].1,
        }
    }
    let problem = Problem {
        model,
        load,
        throughput,
        coefficients,
        free,
    };
    let solver = LevenbergMarquardt::new()
        .with_ftol(1e-14)
        .with_xtol(1e-14)
        .with_gtol(0.0)
        .with_patience(400);
    let (problem, report) = if problem.free.is_empty() {
        (problem, None)
    } else {
        let (problem, report) = solver.minimize(problem);
        (problem, Some(report))
    };
    if report.as_ref().is_some_and(|r| r.termination.was_usage_issue()) {
        return None;
    }
    let within = problem
        .coefficients
        .iter()
        .zip(bounds)
        .all(|(&c, &(lo, hi))| c.is_finite() && c >= lo - BOUND_SLACK && c <= hi + BOUND_SLACK);
    if !within {
        return None;
    }
    // Clamp what the slack let through, so every coefficient reported lies within its bounds.
    let coefficients: Vec<f64> = problem
        .coefficients
        .iter()
        .zip(bounds)
        .map(|(&c, &(lo, hi))| c.clamp(lo, hi))
        .collect();
    let rss: f64 = load
        .iter()
        .zip(throughput)
        .map(|(&n, &x)| (model.eval(&coefficients, n) - x).powi(2))
        .sum();
    rss.is_finite().then_some((coefficients, rss))
}

/// Every active set of `model`: each coefficient with a finite upper bound free, at its lower or
/// at its upper bound; `gamma` (no upper bound) always free.
fn active_sets(model: Model) -> Vec<Vec<Hold>> {
    let mut sets: Vec<Vec<Hold>> = vec![Vec::new()];
    for &(_, hi) in model.bounds() {
        let choices: &[Hold] = if hi.is_finite() {
            &[Hold::Free, Hold::Lower, Hold::Upper]
        } else {
            &[Hold::Free]
        };
        sets = sets
            .into_iter()
            .flat_map(|set| {
                choices.iter().map(move |&c| {
                    let mut next = set.clone();
                    next.push(c);
                    next
                })
            })
            .collect();
    }
    sets
}

/// Fits `model` to the measurements (`throughput[i]` at `load[i]`) and computes the statistics
/// of the fit, intervals at confidence `level` (e.g. 0.95).
///
/// # Errors
/// [`ScalingError`] for unequal lengths, a value that is not finite and positive, fewer
/// measurements than coefficients, or no solution within the bounds.
pub fn fit(model: Model, load: &[f64], throughput: &[f64], level: f64) -> Result<Fit, ScalingError> {
    validate(model, load, throughput)?;
    let best = active_sets(model)
        .iter()
        .filter_map(|holds| solve(model, load, throughput, holds))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or(ScalingError::NoFit { model: model.name() })?;
    Ok(Fit::new(model, best.0, load, throughput, level))
}

#[cfg(test)]
mod tests {
    use super::{fit, Model, ScalingError};

    /// R's `specsdm91` dataset (SPEC SDM91 on a Sun `SPARCcenter` 2000).
    const SPEC_LOAD: [f64; 7] = [1.0, 18.0, 36.0, 72.0, 108.0, 144.0, 216.0];
    const SPEC_TPUT: [f64; 7] = [64.9, 995.9, 1652.4, 1853.2, 1828.9, 1775.0, 1702.2];

    fn close(actual: f64, expected: f64, rel: f64) -> bool {
        (actual - expected).abs() <= rel * expected.abs()
    }

    /// The USL fit of `specsdm91` agrees with R's `usl` 3 (its tests print
    /// alpha 0.0277285, beta 0.0001044, gamma 89.9952330 and the standard errors).
    #[test]
    fn usl_matches_r_on_specsdm91() {
        let f = fit(Model::Usl, &SPEC_LOAD, &SPEC_TPUT, 0.95).unwrap();
        assert!(close(f.coefficients[0], 0.027_728_5, 1e-4), "{:?}", f.coefficients);
        assert!(close(f.coefficients[1], 0.000_104_4, 1e-3), "{:?}", f.coefficients);
        assert!(close(f.coefficients[2], 89.995_233, 1e-5), "{:?}", f.coefficients);
        assert!(close(f.std_errors[0], 0.009_121_7, 1e-3), "{:?}", f.std_errors);
        assert!(close(f.std_errors[2], 14.213_489_4, 1e-3), "{:?}", f.std_errors);
        assert!(close(f.sigma, 82.85, 1e-3), "{}", f.sigma);
        assert_eq!(f.df, 4);
    }

    /// R's `raytracer` dataset: R's `usl` 3 gives alpha 0.0578, beta 0 (at its bound), gamma
    /// 21.8488, and `confint` prints alpha 0.033677..0.081864: R's interval is `qt(level, n - 1)`
    /// standard errors either side, so the standard error is 0.0132932.
    #[test]
    fn usl_matches_r_on_raytracer() {
        let load = [1.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0, 32.0, 48.0, 64.0];
        let tput = [
            20.0, 78.0, 130.0, 170.0, 190.0, 200.0, 210.0, 230.0, 260.0, 280.0, 310.0,
        ];
        let f = fit(Model::Usl, &load, &tput, 0.95).unwrap();
        assert!(close(f.coefficients[0], 0.057_77, 1e-3), "{:?}", f.coefficients);
        assert!(f.coefficients[1] == 0.0, "{:?}", f.coefficients);
        assert!(close(f.coefficients[2], 21.848_8, 1e-5), "{:?}", f.coefficients);
        let r_half_width = (0.081_864 - 0.033_677) / 2.0;
        let q = super::super::t_quantile(0.95, 10.0);
        assert!(close(f.std_errors[0] * q, r_half_width, 1e-3), "{:?}", f.std_errors);
    }

    /// A law fits its own curve exactly.
    #[test]
    fn recovers_exact_curves() {
        let load: Vec<f64> = (1..=12).map(f64::from).collect();
        for (model, c) in [
            (Model::Usl, [0.05, 0.002, 40.0].as_slice()),
            (Model::Amdahl, &[0.1, 3.0]),
            (Model::Gustafson, &[0.3, 8.0]),
        ] {
            let tput: Vec<f64> = load.iter().map(|&n| model.eval(c, n)).collect();
            let f = fit(model, &load, &tput, 0.95).unwrap();
            for (got, want) in f.coefficients.iter().zip(c) {
                assert!(close(*got, *want, 1e-6), "{model:?}: {:?}", f.coefficients);
            }
        }
    }

    /// Data that would need a negative coherency end with `beta` at its bound 0.
    #[test]
    fn negative_coefficient_ends_at_its_bound() {
        let load = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0];
        let tput: Vec<f64> = load
            .iter()
            .map(|&n| 10.0 * n / (1.0 + 0.05 * (n - 1.0)) * (1.0 + 0.001 * n))
            .collect();
        let f = fit(Model::Usl, &load, &tput, 0.95).unwrap();
        assert!(f.coefficients[1] == 0.0, "{:?}", f.coefficients);
        assert!(f.coefficients.iter().all(|c| *c >= 0.0));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            fit(Model::Usl, &[1.0, 2.0], &[1.0, 2.0], 0.95).unwrap_err(),
            ScalingError::TooFewPoints {
                model: "usl",
                points: 2,
                needed: 3
            }
        );
        assert!(matches!(
            fit(Model::Amdahl, &[1.0, 2.0], &[1.0], 0.95),
            Err(ScalingError::LengthMismatch { load: 2, throughput: 1 })
        ));
        assert!(matches!(
            fit(Model::Amdahl, &[1.0, 2.0, 3.0], &[1.0, f64::NAN, 2.0], 0.95),
            Err(ScalingError::InvalidValue {
                what: "throughput",
                index: 1,
                ..
            })
        ));
    }
}
