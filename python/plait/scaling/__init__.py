"""plait.scaling: how a workload scales with workers, and why.

Fit measurements to the scaling laws, with the statistics to judge the fit:

- :func:`usl`: the Universal Scalability Law, ``X(N) = gamma*N / (1 + alpha*(N-1) + beta*N*(N-1))``
  (contention ``alpha``, coherency ``beta``, one worker's throughput ``gamma``), fitted as R's
  ``usl`` package (version 3) fits it; ``peak()``, ``optimal()``, ``limit()``, ``predict()``.
- :func:`amdahl`: Amdahl's law, serial fraction ``sigma``; :func:`gustafson`: Gustafson's law.

Each returns a frozen result with the coefficients (estimate, standard error, t and p value,
confidence interval), fitted values, residuals, R², efficiency and a ``summary()``. Fits warn
(:class:`plait.exceptions.ScalingWarning`) when the points are too few, scaling is superlinear, a
coefficient is not significant, or a prediction lies far past the data.

Measure a function under each of plait's models with :func:`run_sweep` (``plait scale
MODULE:FUNC`` on the command line), or read measurements from elsewhere with :func:`read_csv`
(``plait scale --from data.csv``). :func:`merge` puts sweeps taken under several interpreters
(``plait scale --python PATH``) into one report, each model labelled with its
:class:`Interpreter` (``threads [3.11]``, ``threads [3.13t, GIL disabled]``).

>>> from plait.scaling import usl
>>> fit = usl([1, 18, 36, 72, 108, 144, 216], [64.9, 995.9, 1652.4, 1853.2, 1828.9, 1775.0, 1702.2])
>>> round(fit.peak().n, 1), round(fit.optimal(), 2), round(fit.limit())
(96.5, 36.06, 3246)
"""

from __future__ import annotations

from ._chart import plot, text_chart
from ._fit import AmdahlFit, Coefficient, Fit, GustafsonFit, Peak, USLFit, amdahl, gustafson, usl
from ._interp import Interpreter
from ._report import ModelResult, ScaleReport, cpu_count, fit_points, merge, read_csv, run_sweep, verdict
from ._sweep import MODELS, Point, Skipped, measure

__all__ = [
    "MODELS",
    "AmdahlFit",
    "Coefficient",
    "Fit",
    "GustafsonFit",
    "Interpreter",
    "ModelResult",
    "Peak",
    "Point",
    "ScaleReport",
    "Skipped",
    "USLFit",
    "amdahl",
    "cpu_count",
    "fit_points",
    "gustafson",
    "measure",
    "merge",
    "plot",
    "read_csv",
    "run_sweep",
    "text_chart",
    "usl",
    "verdict",
]
