"""plait.scaling's fits: agreement with R's ``usl`` package (version 3) on its own datasets, the
derived figures (peak, optimal, limit), Amdahl and Gustafson, and each warning.

The reference values are those printed by the tests and documentation of R's ``usl`` package
(Stefan Möding; tests/usl-nlxb.Rout.save, summary.Rout.save, residuals.Rout.save,
efficiency.Rout.save, confint.Rout.save, peak-, optimal- and limit-scalability.R, coef.R), and the
datasets are that package's ``specsdm91`` and ``raytracer``.
"""

from __future__ import annotations

import math
import warnings

import pytest

from plait.exceptions import (
    ExtrapolationWarning,
    InsignificantFitWarning,
    PlaitWarning,
    ScalingWarning,
    SuperlinearWarning,
    TooFewPointsWarning,
)
from plait.scaling import AmdahlFit, GustafsonFit, USLFit, amdahl, gustafson, usl

# R's usl: data(specsdm91) -- SPEC SDM91 on a Sun SPARCcenter 2000 (load = simulated users).
SPEC_LOAD = [1, 18, 36, 72, 108, 144, 216]
SPEC_TPUT = [64.9, 995.9, 1652.4, 1853.2, 1828.9, 1775.0, 1702.2]
# R's usl: data(raytracer) -- ray-geometry intersections/s on an SGI Origin 2000.
RAY_LOAD = [1, 4, 8, 12, 16, 20, 24, 28, 32, 48, 64]
RAY_TPUT = [20, 78, 130, 170, 190, 200, 210, 230, 260, 280, 310]


def sig3(x: float) -> float:
    """``x`` to 3 significant figures, as R's ``signif(x, 3)``."""
    return float(f"{x:.3g}")


def test_usl_specsdm91_coefficients_match_r() -> None:
    # usl-nlxb.Rout.save: alpha 0.0277285, beta 0.0001044, gamma 89.9952330.
    f = usl(SPEC_LOAD, SPEC_TPUT)
    assert (sig3(f.alpha), sig3(f.beta), sig3(f.gamma)) == (0.0277, 0.000104, 90.0)
    assert f.alpha == pytest.approx(0.0277285, rel=1e-4)
    assert f.gamma == pytest.approx(89.9952330, rel=1e-6)


def test_usl_specsdm91_statistics_match_r() -> None:
    # summary.Rout.save: std errors 9.122e-03, 1.988e-05, 1.421e+01; t 3.040, 5.251, 6.332;
    # Pr(>|t|) 0.03841, 0.00629, 0.00318; residual standard error 82.85 on 4 df; R² 0.9896.
    f = usl(SPEC_LOAD, SPEC_TPUT)
    assert [sig3(c.std_error) for c in f.coefficients] == [0.00912, 1.99e-05, 14.2]
    assert [sig3(c.t_value) for c in f.coefficients] == [3.04, 5.25, 6.33]
    assert [sig3(c.p_value) for c in f.coefficients] == [0.0384, 0.00629, 0.00318]
    assert sig3(f.residual_se) == 82.8 and f.df == 4
    assert round(f.r_squared, 4) == 0.9896


def test_usl_specsdm91_residuals_and_efficiency_match_r() -> None:
    # residuals.Rout.save and efficiency.Rout.save.
    f = usl(SPEC_LOAD, SPEC_TPUT)
    assert [round(r, 2) for r in f.residuals] == [-25.10, -81.66, 111.09, 3.05, -49.99, -46.60, 56.00]
    assert [round(e, 4) for e in f.efficiency] == [0.7211, 0.6148, 0.5100, 0.2860, 0.1882, 0.1370, 0.0876]
    assert [round(x) for x in f.fitted] == [90, 1078, 1541, 1850, 1879, 1822, 1646]


def test_usl_specsdm91_peak_optimal_limit_match_r() -> None:
    f = usl(SPEC_LOAD, SPEC_TPUT)
    # peak-scalability.R: signif(peak.scalability(u), 2) == 97; R's N* is not rounded down.
    assert sig3(f.peak().n) == 96.5 and float(f"{f.peak().n:.2g}") == 97
    assert f.peak().x == pytest.approx(f.predict(f.peak().n))
    # optimal-scalability.R: all.equal(optimal.scalability(u), 36.06401, 0.0001).
    assert f.optimal() == pytest.approx(36.06401, rel=1e-4)
    # limit-scalability.R: all.equal(limit.scalability(u), 3245.589, 0.0001).
    assert f.limit() == pytest.approx(3245.589, rel=1e-4)


def test_usl_raytracer_matches_r() -> None:
    # confint.Rout.save: coef alpha 0.0578, beta 0.0000, gamma 21.8488; confint alpha
    # 0.033677..0.081864, gamma 17.868380..25.829306. R's confint takes qt(level, n - 1)
    # standard errors either side (a one-sided 95% quantile with 10 df); plait's intervals are the
    # two-sided t interval with n - p df, so the comparison goes through the standard errors.
    from plait import _plait

    f = usl(RAY_LOAD, RAY_TPUT)
    assert (sig3(f.alpha), f.beta, sig3(f.gamma)) == (0.0578, 0.0, 21.8)
    assert f.gamma == pytest.approx(21.8488, rel=1e-5)
    q = _plait.scaling_t_quantile(0.95, len(RAY_LOAD) - 1)
    r_ci = {"alpha": (0.033677, 0.081864), "gamma": (17.868380, 25.829306)}
    for name, (lo, hi) in r_ci.items():
        c = f[name]
        assert sig3(c.estimate - q * c.std_error) == sig3(lo)
        assert sig3(c.estimate + q * c.std_error) == sig3(hi)
    # beta at its bound: R's interval -0.000214..0.000214.
    assert sig3(q * f["beta"].std_error) == 0.000214


def test_usl_raytracer_predicts_as_r() -> None:
    # The vignette's predict(usl.model, data.frame(processors = c(96, 128))), from the coefficients.
    f = usl(RAY_LOAD, RAY_TPUT)
    assert [round(x, 1) for x in f.predict([96, 128])] == [323.3, 335.5]
    assert math.isinf(f.peak().n)  # beta = 0: throughput rises towards the limit
    assert f.peak().x == f.limit() == pytest.approx(f.gamma / f.alpha)


def test_usl_recovers_r_coef_example() -> None:
    # coef.R: data generated with alpha = beta = 0.02, gamma = 1.
    f = usl([1, 2, 4, 6, 8, 10], [1, 1.8868, 3.0769, 3.5294, 3.5398, 3.3557])
    assert (sig3(f.alpha), sig3(f.beta), sig3(f.gamma)) == (0.02, 0.02, 1.0)


def test_confint_at_another_level_widens() -> None:
    f = usl(SPEC_LOAD, SPEC_TPUT)
    lo95, hi95 = f.confint()["alpha"]
    lo99, hi99 = f.confint(0.99)["alpha"]
    assert lo99 < lo95 < f.alpha < hi95 < hi99
    assert f.confint()["alpha"] == (f["alpha"].ci_lower, f["alpha"].ci_upper)


def test_amdahl_recovers_serial_fraction() -> None:
    load = [1, 2, 3, 4, 6, 8, 12, 16]
    f = amdahl(load, [5 * n / (1 + 0.1 * (n - 1)) * (1 + 0.01 * (-1) ** n) for n in load])
    assert isinstance(f, AmdahlFit)
    assert f.serial_fraction == pytest.approx(0.1, rel=0.05)
    assert f.gamma == pytest.approx(5, rel=0.02)
    assert f.max_speedup() == pytest.approx(1 / f.sigma)
    assert f.limit() == pytest.approx(f.gamma / f.sigma)
    assert set(f.coef) == {"sigma", "gamma"}


def test_amdahl_equals_usl_with_beta_zero() -> None:
    a, u = amdahl(RAY_LOAD, RAY_TPUT), usl(RAY_LOAD, RAY_TPUT)
    assert a.sigma == pytest.approx(u.alpha, rel=1e-6)
    assert a.gamma == pytest.approx(u.gamma, rel=1e-6)


def test_gustafson_recovers_serial_fraction() -> None:
    load = [1, 2, 4, 8, 16, 32]
    f = gustafson(load, [3 * (n - 0.2 * (n - 1)) * (1 + 0.005 * (-1) ** n) for n in load])
    assert isinstance(f, GustafsonFit)
    assert f.serial_fraction == pytest.approx(0.2, abs=0.01)
    assert f.speedup(10) == pytest.approx(10 - f.serial_fraction * 9)
    assert f.predict(10) == pytest.approx(f.gamma * f.speedup(10))


def test_summary_and_repr() -> None:
    f = usl(SPEC_LOAD, SPEC_TPUT)
    text = f.summary()
    for word in ("alpha", "beta", "gamma", "Std. Error", "Pr(>|t|)", "R-squared", "Peak: N* = 96.52"):
        assert word in text
    assert repr(f).startswith("USLFit(alpha=0.02773, beta=0.0001044, gamma=90")
    assert isinstance(f, USLFit)
    d = f.to_dict()
    assert d["model"] == "usl" and d["peak"]["n"] == pytest.approx(96.52, rel=1e-3)


def test_result_is_frozen() -> None:
    f = usl(SPEC_LOAD, SPEC_TPUT)
    with pytest.raises(AttributeError):
        f.rss = 0.0  # type: ignore[misc]
    with pytest.raises(KeyError, match="no coefficient 'kappa'"):
        f["kappa"]


def test_bad_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="at least 3 measurements"):
        usl([1, 2], [1, 2])
    with pytest.raises(ValueError, match="one throughput per load"):
        usl([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"throughput\[1\] is -2"):
        amdahl([1, 2, 3], [1, -2, 3])


def test_warnings_are_plait_and_user_warnings() -> None:
    for cls in (TooFewPointsWarning, SuperlinearWarning, InsignificantFitWarning, ExtrapolationWarning):
        assert issubclass(cls, ScalingWarning)
    assert issubclass(ScalingWarning, PlaitWarning) and issubclass(ScalingWarning, UserWarning)


def test_too_few_points_warns() -> None:
    load = [1, 2, 4, 8]
    with pytest.warns(TooFewPointsWarning, match="4 measurements for 3 coefficients"):
        usl(load, [10 * n / (1 + 0.1 * (n - 1) + 0.01 * n * (n - 1)) for n in load])


def test_superlinear_warns() -> None:
    load = [1, 2, 4, 8, 16, 32]
    # The law cannot follow such data, so the fit is poor too: only the superlinear warning matters.
    with pytest.warns(ScalingWarning) as record:
        usl(load, [10 * n * (1 + 0.02 * n) for n in load])
    superlinear = [w for w in record if w.category is SuperlinearWarning]
    assert len(superlinear) == 1
    assert "N=32" in str(superlinear[0].message) and "cache effects" in str(superlinear[0].message)


def test_insignificant_fit_warns() -> None:
    # Noise much larger than the curvature: alpha and beta are not determined.
    load = [1, 2, 3, 4, 5, 6, 7, 8]
    noise = [0.0, -6.0, 8.0, -10.0, 6.0, -8.0, 10.0, -4.0]
    with pytest.warns(InsignificantFitWarning, match=r"alpha=0.00292 \(p=0.9\), beta=") as record:
        usl(load, [100 * n / (1 + 0.01 * (n - 1)) + e for n, e in zip(load, noise, strict=True)])
    assert record[0].filename == __file__  # points at the caller


def test_extrapolation_warns() -> None:
    f = usl(SPEC_LOAD, SPEC_TPUT)
    with pytest.warns(ExtrapolationWarning, match="N=1000"):
        f.predict(1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f.predict(2 * max(SPEC_LOAD))  # twice the data: still no warning


def test_warn_false_silences() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        usl([1, 2, 4], [1, 2, 3.5], warn=False)


def test_peak_below_one_worker_gives_gamma() -> None:
    # alpha at its bound 1 with beta > 0: R's N* = sqrt(0 / beta) = 0; no throughput beyond gamma.
    load = [1, 2, 3, 4, 6, 8]
    f = usl(load, [10.0 / (1 + 0.2 * (n - 1)) for n in load], warn=False)
    assert f.alpha == 1.0 and f.beta > 0
    assert f.peak() == (0.0, f.gamma)
