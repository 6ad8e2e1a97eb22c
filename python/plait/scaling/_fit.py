"""Fitted scaling laws: :func:`usl`, :func:`amdahl`, :func:`gustafson` and their result objects.

The solver and the statistics are native (``plait._plait.scaling_fit``: bounded Levenberg-Marquardt,
standard errors from the Jacobian, Student's t); this module shapes them into result objects,
adds the derived figures R's ``usl`` package defines (peak, optimal load, limit, efficiency) and
emits the warnings a user needs (:mod:`plait.exceptions`' ``ScalingWarning`` family).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from .. import _plait
from ..exceptions import (
    ExtrapolationWarning,
    InsignificantFitWarning,
    SuperlinearWarning,
    TooFewPointsWarning,
)

# A prediction past this multiple of the largest load measured warns (ExtrapolationWarning).
EXTRAPOLATION_FACTOR = 2.0
# Per-worker throughput this much above the smallest load's counts as superlinear (noise aside).
SUPERLINEAR_TOLERANCE = 0.05


@dataclass(frozen=True)
class Coefficient:
    """One estimated coefficient: estimate, standard error, t and p value, confidence interval."""

    name: str
    estimate: float
    std_error: float
    t_value: float
    p_value: float
    ci_lower: float
    ci_upper: float

    def __float__(self) -> float:
        return self.estimate


class Peak(NamedTuple):
    """Where throughput stops growing: the load ``n`` and the throughput ``x`` there."""

    n: float
    x: float


@dataclass(frozen=True, repr=False)
class Fit:
    """A scaling law fitted to measurements; the base of :class:`USLFit`, :class:`AmdahlFit` and
    :class:`GustafsonFit`. Sequences indexed by measurement follow ``load``."""

    load: tuple[float, ...]
    throughput: tuple[float, ...]
    coefficients: tuple[Coefficient, ...]
    level: float
    covariance: tuple[tuple[float, ...], ...]
    fitted: tuple[float, ...]
    residuals: tuple[float, ...]
    rss: float
    df: int
    residual_se: float
    r_squared: float

    model: ClassVar[str] = ""
    formula: ClassVar[str] = ""

    def __getitem__(self, name: str) -> Coefficient:
        for c in self.coefficients:
            if c.name == name:
                return c
        raise KeyError(f"{type(self).__name__} has no coefficient {name!r}: it has {list(self.coef)}")

    @property
    def coef(self) -> dict[str, float]:
        """The estimates by name, e.g. ``{"alpha": 0.028, "beta": 0.0001, "gamma": 90.0}``."""
        return {c.name: c.estimate for c in self.coefficients}

    @property
    def gamma(self) -> float:
        """The throughput of one worker (fitted, not the measurement at ``N = 1``)."""
        return self["gamma"].estimate

    @property
    def efficiency(self) -> tuple[float, ...]:
        """Measured throughput per worker relative to ``gamma``, ``X(N) / (gamma * N)``, as R's
        ``efficiency()``: 1.0 is linear scaling."""
        return tuple(x / (self.gamma * n) for n, x in zip(self.load, self.throughput, strict=True))

    @property
    def adj_r_squared(self) -> float:
        """R² adjusted for the number of coefficients, ``1 - (1 - R²)(n - 1)/(n - p)``."""
        n = len(self.load)
        return 1.0 - (1.0 - self.r_squared) * (n - 1) / self.df if self.df > 0 else math.nan

    def _curve(self, n: float) -> float:
        raise NotImplementedError

    def predict(self, n: float | Iterable[float]) -> Any:
        """The fitted throughput at load ``n`` (a number or an iterable of numbers: a list back).
        Warns :class:`~plait.exceptions.ExtrapolationWarning` past twice the largest load measured.

        >>> fit.predict(128)            # doctest: +SKIP
        """
        values = [float(n)] if isinstance(n, int | float) else [float(v) for v in n]
        top = max(self.load)
        far = [v for v in values if v > EXTRAPOLATION_FACTOR * top]
        if far:
            warnings.warn(
                f"{self.model}: predicting at N={_num(max(far))}, {max(far) / top:.3g}x the largest load "
                f"measured ({_num(top)}): the fit only knows the data's range; measure closer to it "
                "(plait scale --from takes measurements from a bigger machine)",
                ExtrapolationWarning,
                stacklevel=2,
            )
        out = [self._curve(v) for v in values]
        return out[0] if isinstance(n, int | float) else out

    def confint(self, level: float | None = None) -> dict[str, tuple[float, float]]:
        """Confidence intervals ``{name: (lower, upper)}``: estimate ± ``t(1 - (1-level)/2, n-p)``
        standard errors (``level`` defaults to the fit's). R's ``usl::confint`` differs: it takes
        ``qt(level, n - 1)`` standard errors either side."""
        if level is None or level == self.level:
            return {c.name: (c.ci_lower, c.ci_upper) for c in self.coefficients}
        q = _plait.scaling_t_quantile(1.0 - (1.0 - level) / 2.0, float(self.df))
        return {
            c.name: (c.estimate - q * c.std_error, c.estimate + q * c.std_error) for c in self.coefficients
        }

    def _figures(self) -> list[str]:
        return []

    def summary(self) -> str:
        """A report in the layout of R's ``summary()``: formula, efficiency and residual
        quartiles, the coefficient table, residual standard error and R²."""
        lines = [f"{type(self).__name__}: {self.formula}", ""]
        lines.append("Efficiency:    " + _quartiles(self.efficiency))
        lines.append("Residuals:     " + _quartiles(self.residuals))
        lines.append("")
        pct = f"{100 * self.level:g}%"
        lines.append(
            f"{'':7}{'Estimate':>12}{'Std. Error':>12}{'t value':>9}{'Pr(>|t|)':>10}   {pct} interval"
        )
        for c in self.coefficients:
            lines.append(
                f"{c.name:7}{c.estimate:12.4g}{c.std_error:12.4g}{c.t_value:9.3g}{c.p_value:10.3g}"
                f"   [{c.ci_lower:.4g}, {c.ci_upper:.4g}]"
            )
        lines.append("")
        lines.append(f"Residual standard error: {self.residual_se:.4g} on {self.df} degrees of freedom")
        lines.append(f"R-squared: {self.r_squared:.4f}, adjusted: {self.adj_r_squared:.4f}")
        lines.extend(self._figures())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: model, coefficients (with statistics), R², residuals, efficiency."""
        return {
            "model": self.model,
            "coefficients": {
                c.name: {
                    "estimate": c.estimate,
                    "std_error": _finite(c.std_error),
                    "p_value": _finite(c.p_value),
                    "ci": [_finite(c.ci_lower), _finite(c.ci_upper)],
                }
                for c in self.coefficients
            },
            "level": self.level,
            "r_squared": _finite(self.r_squared),
            "residual_se": _finite(self.residual_se),
            "df": self.df,
            "residuals": list(self.residuals),
            "efficiency": list(self.efficiency),
        }

    def __repr__(self) -> str:
        coefs = ", ".join(f"{c.name}={c.estimate:.4g}" for c in self.coefficients)
        return f"{type(self).__name__}({coefs}, r_squared={self.r_squared:.4f}, n={len(self.load)})"


@dataclass(frozen=True, repr=False)
class USLFit(Fit):
    """The Universal Scalability Law fitted: ``X(N) = gamma*N / (1 + alpha*(N-1) + beta*N*(N-1))``.

    >>> f = usl([1, 18, 36, 72, 108, 144, 216], [64.9, 995.9, 1652.4, 1853.2, 1828.9, 1775.0, 1702.2])
    >>> round(f.alpha, 4), round(f.beta, 7), round(f.gamma, 2)
    (0.0277, 0.0001044, 90.0)
    >>> round(f.peak().n)
    97
    """

    model: ClassVar[str] = "usl"
    formula: ClassVar[str] = "X(N) = gamma*N / (1 + alpha*(N-1) + beta*N*(N-1))"

    @property
    def alpha(self) -> float:
        """Contention: the serial share of the work (queueing for a shared resource)."""
        return self["alpha"].estimate

    @property
    def beta(self) -> float:
        """Coherency: the cost of every pair of workers agreeing (crosstalk)."""
        return self["beta"].estimate

    def _curve(self, n: float) -> float:
        return self.gamma * n / (1.0 + self.alpha * (n - 1.0) + self.beta * n * (n - 1.0))

    def peak(self) -> Peak:
        """The load of peak throughput, ``N* = sqrt((1 - alpha) / beta)`` (R's
        ``peak.scalability``, not rounded), and the throughput there. ``N*`` is infinite when
        ``beta`` is 0: throughput then rises towards :meth:`limit`; below 1 (``alpha`` near 1)
        throughput falls from the first worker on, and the throughput given is ``gamma``."""
        if self.beta <= 0.0:
            return Peak(math.inf, self.limit())
        n = math.sqrt((1.0 - self.alpha) / self.beta)
        # Below one worker (alpha near 1) the formula has no throughput to give: one worker's is
        # the most there is.
        return Peak(n, self._curve(n) if n >= 1.0 else self.gamma)

    def optimal(self) -> float:
        """The load of optimal scalability, ``1 / alpha`` (R's ``optimal.scalability``): where the
        linear bound meets the Amdahl asymptote; below it capacity is underused, past it returns
        diminish. Infinite when ``alpha`` is 0."""
        return 1.0 / self.alpha if self.alpha > 0.0 else math.inf

    def limit(self) -> float:
        """The throughput limit ``gamma / alpha`` (R's ``limit.scalability``): the Amdahl
        asymptote, what no load exceeds even with ``beta = 0``. Infinite when ``alpha`` is 0."""
        return self.gamma / self.alpha if self.alpha > 0.0 else math.inf

    def _figures(self) -> list[str]:
        peak = self.peak()
        return [
            f"Peak: N* = {_num(peak.n)}, X(N*) = {_num(peak.x)}; optimal N = {_num(self.optimal())}; "
            f"limit X = {_num(self.limit())}"
        ]

    def to_dict(self) -> dict[str, Any]:
        peak = self.peak()
        d = super().to_dict()
        d.update(
            peak={"n": _finite(peak.n), "x": _finite(peak.x)},
            optimal=_finite(self.optimal()),
            limit=_finite(self.limit()),
        )
        return d


@dataclass(frozen=True, repr=False)
class AmdahlFit(Fit):
    """Amdahl's law fitted: ``X(N) = gamma*N / (1 + sigma*(N-1))``, serial fraction ``sigma``
    (the USL with ``beta = 0``)."""

    model: ClassVar[str] = "amdahl"
    formula: ClassVar[str] = "X(N) = gamma*N / (1 + sigma*(N-1))"

    @property
    def sigma(self) -> float:
        """The serial fraction (Gunther's sigma; the USL's alpha when beta is 0)."""
        return self["sigma"].estimate

    @property
    def serial_fraction(self) -> float:
        """The serial fraction, ``sigma``."""
        return self["sigma"].estimate

    def _curve(self, n: float) -> float:
        s = self["sigma"].estimate
        return self.gamma * n / (1.0 + s * (n - 1.0))

    def max_speedup(self) -> float:
        """The speedup no load exceeds, ``1 / sigma``."""
        s = self["sigma"].estimate
        return 1.0 / s if s > 0.0 else math.inf

    def limit(self) -> float:
        """The throughput limit, ``gamma / sigma``."""
        return self.gamma * self.max_speedup()

    def _figures(self) -> list[str]:
        return [f"Serial fraction {self.serial_fraction:.4g}: speedup at most {_num(self.max_speedup())}x"]

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.update(max_speedup=_finite(self.max_speedup()), limit=_finite(self.limit()))
        return d


@dataclass(frozen=True, repr=False)
class GustafsonFit(Fit):
    """Gustafson's law fitted: scaled speedup ``S(N) = N - s*(N-1)``, throughput
    ``X(N) = gamma*S(N)``: the work grows with the workers, a serial fraction ``s`` of it stays
    serial."""

    model: ClassVar[str] = "gustafson"
    formula: ClassVar[str] = "X(N) = gamma*(N - s*(N-1))"

    @property
    def serial_fraction(self) -> float:
        """The serial fraction ``s`` of the scaled workload."""
        return self["s"].estimate

    def _curve(self, n: float) -> float:
        return self.gamma * (n - self.serial_fraction * (n - 1.0))

    def speedup(self, n: float) -> float:
        """The scaled speedup at load ``n``, ``n - s*(n-1)``."""
        return n - self.serial_fraction * (n - 1.0)


_CLASSES: dict[str, type[Fit]] = {"usl": USLFit, "amdahl": AmdahlFit, "gustafson": GustafsonFit}


def _num(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.4g}"


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _quartiles(values: Sequence[float]) -> str:
    s = sorted(values)

    def q(p: float) -> float:  # R's default (type 7) quantile
        h = (len(s) - 1) * p
        lo = math.floor(h)
        return s[lo] + (h - lo) * (s[min(lo + 1, len(s) - 1)] - s[lo])

    return "  ".join(
        f"{name} {q(p):.4g}"
        for name, p in (("min", 0), ("1Q", 0.25), ("median", 0.5), ("3Q", 0.75), ("max", 1))
    )


def _fit(model: str, load: Iterable[float], throughput: Iterable[float], level: float, warn: bool) -> Any:
    ns = [float(v) for v in load]
    xs = [float(v) for v in throughput]
    raw = _plait.scaling_fit(model, ns, xs, level)
    p = len(raw["names"])
    cov = raw["covariance"]
    fit = _CLASSES[model](
        load=tuple(ns),
        throughput=tuple(xs),
        coefficients=tuple(
            Coefficient(*row)
            for row in zip(
                raw["names"],
                raw["coefficients"],
                raw["std_errors"],
                raw["t_values"],
                raw["p_values"],
                raw["ci_lower"],
                raw["ci_upper"],
                strict=True,
            )
        ),
        level=raw["level"],
        covariance=tuple(tuple(cov[i * p : (i + 1) * p]) for i in range(p)),
        fitted=tuple(raw["fitted"]),
        residuals=tuple(raw["residuals"]),
        rss=raw["rss"],
        df=raw["df"],
        residual_se=raw["sigma"],
        r_squared=raw["r_squared"],
    )
    if warn:
        _check(fit)
    return fit


def _check(fit: Fit) -> None:
    """Emits the warnings a user of ``fit`` needs; each says what to do."""
    name, n, p = fit.model, len(fit.load), len(fit.coefficients)
    if n < 2 * p:
        warnings.warn(
            f"{name}: {n} measurements for {p} coefficients: the fit is barely determined and its "
            f"statistics mean little; measure at {2 * p} loads or more",
            TooFewPointsWarning,
            stacklevel=4,
        )
    base_n, base_x = min(zip(fit.load, fit.throughput, strict=True))
    per_worker = base_x / base_n
    superlinear = [
        (ld, x / ld / per_worker)
        for ld, x in zip(fit.load, fit.throughput, strict=True)
        if x / ld > per_worker * (1.0 + SUPERLINEAR_TOLERANCE)
    ]
    if superlinear:
        ld, eff = max(superlinear, key=lambda t: t[1])
        warnings.warn(
            f"{name}: superlinear scaling: at N={_num(ld)} each worker does {eff:.3g}x the work it "
            f"does at N={_num(base_n)}: a measurement error (warm-up, too short a run, a changing "
            "workload) or cache effects; the laws assume efficiency at most 1, so check the "
            "measurements before trusting the fit",
            SuperlinearWarning,
            stacklevel=4,
        )
    if fit.df > 0:
        # A fraction held at a bound (0 or 1) was not estimated freely: its p value says nothing.
        weak = [
            c
            for c in fit.coefficients
            if (c.name == "gamma" or 0.0 < c.estimate < 1.0) and not c.p_value < 1.0 - fit.level
        ]
        if weak:
            names = ", ".join(f"{c.name}={c.estimate:.3g} (p={c.p_value:.2g})" for c in weak)
            warnings.warn(
                f"{name}: coefficients not significant at the {100 * fit.level:g}% level: {names}; "
                "their intervals include 0: the data do not pin them down (too few or too noisy "
                "points, or the law does not describe the data)",
                InsignificantFitWarning,
                stacklevel=4,
            )


def usl(
    load: Iterable[float], throughput: Iterable[float], *, level: float = 0.95, warn: bool = True
) -> USLFit:
    """Fits the Universal Scalability Law ``X(N) = gamma*N / (1 + alpha*(N-1) + beta*N*(N-1))``
    to ``throughput`` measured at each ``load`` (workers, users, processors), as R's ``usl``
    package (version 3) does: non-linear least squares with ``alpha`` and ``beta`` in [0, 1],
    ``gamma`` (one worker's throughput) fitted too. Intervals at confidence ``level``. Warns
    (``warn=False`` silences) when the points are too few, scaling is superlinear or a coefficient
    is not significant.

    >>> f = usl([1, 2, 4, 8], [100, 190, 340, 560])        # doctest: +SKIP
    >>> f.alpha, f.beta, f.peak(), f.predict(16)           # doctest: +SKIP
    """
    return _fit("usl", load, throughput, level, warn)  # type: ignore[no-any-return]


def amdahl(
    load: Iterable[float], throughput: Iterable[float], *, level: float = 0.95, warn: bool = True
) -> AmdahlFit:
    """Fits Amdahl's law ``X(N) = gamma*N / (1 + sigma*(N-1))``: ``sigma`` is the serial
    fraction (``fit.serial_fraction``), ``1/sigma`` the largest speedup. Same statistics and
    warnings as :func:`usl`.

    >>> amdahl([1, 2, 4, 8], [10, 18, 30, 45]).serial_fraction   # doctest: +SKIP
    """
    return _fit("amdahl", load, throughput, level, warn)  # type: ignore[no-any-return]


def gustafson(
    load: Iterable[float], throughput: Iterable[float], *, level: float = 0.95, warn: bool = True
) -> GustafsonFit:
    """Fits Gustafson's law, scaled speedup ``S(N) = N - s*(N-1)`` (throughput
    ``gamma*S(N)``), for weak scaling: the work per run grows with the workers. Same statistics
    and warnings as :func:`usl`."""
    return _fit("gustafson", load, throughput, level, warn)  # type: ignore[no-any-return]
