//! The three scaling laws as functions of the load `N` (workers, users, processors) and their
//! coefficients. Every law gives throughput, scaled by `gamma`, the throughput of one worker:
//!
//! - USL: `X(N) = γN / (1 + α(N−1) + βN(N−1))`, contention `α`, coherency `β`.
//! - Amdahl: `X(N) = γN / (1 + σ(N−1))`, serial fraction `σ` (the USL with `β = 0`).
//! - Gustafson: `X(N) = γ(N − s(N−1))`, serial fraction `s` of the scaled workload.

/// One of the scaling laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// The Universal Scalability Law, coefficients `alpha`, `beta`, `gamma`.
    Usl,
    /// Amdahl's law, coefficients `sigma`, `gamma`.
    Amdahl,
    /// Gustafson's law, coefficients `s`, `gamma`.
    Gustafson,
}

impl Model {
    /// The model named `name` (`"usl"`, `"amdahl"`, `"gustafson"`), if there is one.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "usl" => Some(Self::Usl),
            "amdahl" => Some(Self::Amdahl),
            "gustafson" => Some(Self::Gustafson),
            _ => None,
        }
    }

    /// The model's name, as [`Model::from_name`] takes it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Usl => "usl",
            Self::Amdahl => "amdahl",
            Self::Gustafson => "gustafson",
        }
    }

    /// The coefficients' names, in the order of every coefficient slice.
    #[must_use]
    pub fn coefficients(self) -> &'static [&'static str] {
        match self {
            Self::Usl => &["alpha", "beta", "gamma"],
            Self::Amdahl => &["sigma", "gamma"],
            Self::Gustafson => &["s", "gamma"],
        }
    }

    /// How many coefficients the model has.
    #[must_use]
    pub fn len(self) -> usize {
        self.coefficients().len()
    }

    /// Whether the model has no coefficient (never: every law has `gamma`).
    #[must_use]
    pub fn is_empty(self) -> bool {
        false
    }

    /// The bounds `(lower, upper)` of each coefficient: fractions in `[0, 1]`, `gamma >= 0`.
    #[must_use]
    pub fn bounds(self) -> &'static [(f64, f64)] {
        const FRACTION: (f64, f64) = (0.0, 1.0);
        const SCALE: (f64, f64) = (0.0, f64::INFINITY);
        match self {
            Self::Usl => &[FRACTION, FRACTION, SCALE],
            Self::Amdahl | Self::Gustafson => &[FRACTION, SCALE],
        }
    }

    /// R's start values: `gamma = max(X/N)`, contention 0.01, coherency 0.0001.
    #[must_use]
    pub fn start(self, load: &[f64], throughput: &[f64]) -> Vec<f64> {
        let gamma = load.iter().zip(throughput).map(|(n, x)| x / n).fold(f64::MIN, f64::max);
        match self {
            Self::Usl => vec![0.01, 0.0001, gamma],
            Self::Amdahl | Self::Gustafson => vec![0.01, gamma],
        }
    }

    /// The throughput the model predicts at load `n`.
    #[must_use]
    pub fn eval(self, c: &[f64], n: f64) -> f64 {
        match self {
            Self::Usl => c[2] * n / (1.0 + c[0] * (n - 1.0) + c[1] * n * (n - 1.0)),
            Self::Amdahl => c[1] * n / (1.0 + c[0] * (n - 1.0)),
            Self::Gustafson => c[1] * (n - c[0] * (n - 1.0)),
        }
    }

    /// The partial derivatives of [`Model::eval`] at load `n` by each coefficient, into `out`.
    pub fn gradient(self, c: &[f64], n: f64, out: &mut [f64]) {
        match self {
            Self::Usl => {
                let d = 1.0 + c[0] * (n - 1.0) + c[1] * n * (n - 1.0);
                let x = c[2] * n / (d * d);
                out[0] = -x * (n - 1.0);
                out[1] = -x * n * (n - 1.0);
                out[2] = n / d;
            }
            Self::Amdahl => {
                let d = 1.0 + c[0] * (n - 1.0);
                out[0] = -c[1] * n * (n - 1.0) / (d * d);
                out[1] = n / d;
            }
            Self::Gustafson => {
                out[0] = -c[1] * (n - 1.0);
                out[1] = n - c[0] * (n - 1.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Model;

    /// Each analytic gradient agrees with a central difference.
    #[test]
    fn gradients_match_finite_differences() {
        for (model, c) in [
            (Model::Usl, vec![0.03, 0.0001, 90.0]),
            (Model::Amdahl, vec![0.05, 20.0]),
            (Model::Gustafson, vec![0.2, 5.0]),
        ] {
            for n in [1.0, 3.0, 17.0, 200.0] {
                let mut grad = vec![0.0; model.len()];
                model.gradient(&c, n, &mut grad);
                for i in 0..model.len() {
                    let h = 1e-6 * c[i].abs().max(1e-6);
                    let (mut up, mut down) = (c.clone(), c.clone());
                    up[i] += h;
                    down[i] -= h;
                    let numeric = (model.eval(&up, n) - model.eval(&down, n)) / (2.0 * h);
                    let scale = numeric.abs().max(1e-9);
                    assert!((grad[i] - numeric).abs() / scale < 1e-5, "{model:?} n={n} c{i}");
                }
            }
        }
    }

    /// At one worker every law gives `gamma`.
    #[test]
    fn one_worker_gives_gamma() {
        assert!((Model::Usl.eval(&[0.3, 0.1, 7.0], 1.0) - 7.0).abs() < 1e-12);
        assert!((Model::Amdahl.eval(&[0.3, 7.0], 1.0) - 7.0).abs() < 1e-12);
        assert!((Model::Gustafson.eval(&[0.3, 7.0], 1.0) - 7.0).abs() < 1e-12);
    }
}
