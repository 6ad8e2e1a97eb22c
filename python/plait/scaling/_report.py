"""The outcome of a scaling study: per concurrency model, the points measured (or read from a CSV
file), Amdahl's and the USL's fits, the warnings they raised, and a verdict in plain words.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ScalingWarning, SuperlinearWarning
from ._fit import AmdahlFit, USLFit, amdahl, usl
from ._sweep import MODELS, Point, Skipped, check_model, measure


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ModelResult:
    """One concurrency model's points, fits and notes (warnings, or why it was skipped)."""

    model: str
    points: tuple[Point, ...] = ()
    amdahl: AmdahlFit | None = None
    usl: USLFit | None = None
    notes: tuple[str, ...] = ()
    skipped: str | None = None

    @property
    def speedup(self) -> float:
        """Throughput at the most workers over throughput at the fewest (measured)."""
        if not self.points:
            return math.nan
        lo = min(self.points, key=lambda p: p.workers)
        hi = max(self.points, key=lambda p: p.workers)
        return hi.throughput / lo.throughput

    @property
    def best(self) -> Point | None:
        """The point of highest throughput."""
        return max(self.points, key=lambda p: p.throughput, default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "skipped": self.skipped,
            "points": [
                {
                    "workers": p.workers,
                    "throughput": p.throughput,
                    "low": p.low,
                    "high": p.high,
                    "calls": p.calls,
                }
                for p in self.points
            ],
            "speedup": None if math.isnan(self.speedup) else self.speedup,
            "amdahl": self.amdahl.to_dict() if self.amdahl else None,
            "usl": self.usl.to_dict() if self.usl else None,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ScaleReport:
    """The result of ``plait scale``: a :class:`ModelResult` per model, the machine's core count,
    and where the data came from (``"sweep"`` or the CSV file)."""

    target: str
    models: tuple[ModelResult, ...]
    cores: int = field(default_factory=cpu_count)
    source: str = "sweep"

    def __getitem__(self, model: str) -> ModelResult:
        for m in self.models:
            if m.model == model:
                return m
        raise KeyError(model)

    def verdict(self) -> str:
        """The finding in plain words; see :func:`verdict`."""
        return verdict(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "target": self.target,
            "source": self.source,
            "cores": self.cores,
            "models": {m.model: m.to_dict() for m in self.models},
            "verdict": self.verdict(),
        }


def fit_points(model: str, points: Sequence[Point]) -> ModelResult:
    """Fits Amdahl's law and the USL to one model's points; the warnings become notes."""
    points = tuple(sorted(points, key=lambda p: p.workers))
    load = [p.workers for p in points]
    tput = [p.throughput for p in points]
    notes: list[str] = []
    fits: dict[str, Any] = {}
    for name, fitter in (("amdahl", amdahl), ("usl", usl)):
        if len(points) < (2 if name == "amdahl" else 3):
            notes.append(f"{name}: not fitted, {len(points)} point(s) are too few")
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ScalingWarning)
            try:
                fits[name] = fitter(load, tput)
            except (ValueError, RuntimeError) as e:
                notes.append(f"{name}: not fitted: {e}")
        for w in caught:
            # The data's own faults (superlinear points) show in every fit: say it once.
            if issubclass(w.category, SuperlinearWarning) and any("superlinear" in n for n in notes):
                continue
            if issubclass(w.category, ScalingWarning):
                notes.append(str(w.message))
    return ModelResult(model, points, fits.get("amdahl"), fits.get("usl"), tuple(dict.fromkeys(notes)))


def run_sweep(
    func: Callable[..., Any],
    args: Sequence[tuple[Any, ...]] = (),
    *,
    target: str = "",
    models: Iterable[str] = MODELS,
    workers: Iterable[int] = (1, 2, 4, 8),
    duration: float = 5.0,
    repeats: int = 3,
    progress: Callable[[str], None] | None = None,
) -> ScaleReport:
    """Measures ``func`` under each model at each worker count (see :func:`measure`) and fits the
    laws: the body of ``plait scale``. ``progress`` gets a line per point."""
    results = []
    counts = sorted(set(workers))
    for model in models:
        try:
            check_model(func, model)
        except Skipped as e:
            results.append(ModelResult(model, skipped=str(e)))
            continue
        points = []
        for n in counts:
            p = measure(func, model, n, args, duration=duration, repeats=repeats)
            if progress:
                progress(f"{model:>9} x{n:<3} {p.throughput:12.4g} calls/s  ({p.low:.4g}..{p.high:.4g})")
            points.append(p)
        results.append(fit_points(model, points))
    return ScaleReport(target or getattr(func, "__qualname__", repr(func)), tuple(results))


def read_csv(path: str, *, default_model: str = "data") -> ScaleReport:
    """Reads measurements taken elsewhere: a CSV file with a header naming the columns
    ``workers`` (or ``load``, ``n``, ``processors``, ``users``), ``throughput`` (or ``x``,
    ``tput``) and optionally ``model``. Rows of one model at one load are repeats: their median
    is the point, their min and max its spread."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(
            f"{path}: no rows: give a header line (workers,throughput[,model]) and one row per measurement"
        )
    header = {k.strip().lower(): k for k in rows[0] if k}

    def column(names: tuple[str, ...], required: bool = True) -> str | None:
        for n in names:
            if n in header:
                return header[n]
        if required:
            raise ValueError(f"{path}: no column named {' or '.join(names)} (the header has {list(header)})")
        return None

    wcol = column(("workers", "load", "n", "processors", "users", "threads"))
    xcol = column(("throughput", "x", "tput"))
    mcol = column(("model",), required=False)
    groups: dict[str, dict[float, list[float]]] = {}
    for lineno, row in enumerate(rows, start=2):
        try:
            n = float(row[wcol])  # type: ignore[index]
            x = float(row[xcol])  # type: ignore[index]
        except (TypeError, ValueError):
            raise ValueError(f"{path}:{lineno}: workers and throughput must be numbers, got {row}") from None
        model = (row.get(mcol) or "").strip() if mcol else ""
        groups.setdefault(model or default_model, {}).setdefault(n, []).append(x)
    results = []
    for model, by_load in groups.items():
        points = [
            Point(
                model,
                int(n) if n == int(n) else n,
                statistics.median(xs),
                min(xs),
                max(xs),
                len(xs),
                tuple(xs),
            )  # type: ignore[arg-type]
            for n, xs in sorted(by_load.items())
        ]
        results.append(fit_points(model, points))
    return ScaleReport(os.path.basename(path), tuple(results), source=path)


def _x(v: float) -> str:
    return f"{v:.1f}x" if v < 10 else f"{v:.0f}x"


_KINDS = {
    "io": ("I/O-bound", "threads scale past the cores: each call waits rather than computes"),
    "gil": (
        "GIL-bound",
        "pure Python holds the GIL: threads and green threads take turns, only processes run in parallel",
    ),
    "native": (
        "releases the GIL",
        "threads scale like processes, without pickling: native code runs outside the GIL",
    ),
    "mixed": ("mixed", "part of each call holds the GIL: threads scale partly, processes further"),
}


def _kind(report: ScaleReport) -> str | None:
    """Which of :data:`_KINDS` the threads and processes points show, if any."""
    by = {m.model: m for m in report.models if m.points}
    threads, procs = by.get("threads"), by.get("processes")
    if not threads:
        return None
    top = max(p.workers for p in threads.points)
    t = threads.speedup
    if t > max(1.5, min(report.cores, top) * 1.3):
        return "io"
    if procs is None or procs.speedup < 1.4:
        return None
    if t < 1.25:
        return "gil"
    return "native" if t >= 0.75 * procs.speedup else "mixed"


def verdict(report: ScaleReport) -> str:
    """The finding in plain words: the kind of workload (from a sweep), each model's speedup at
    its most workers, the model that scales best with its USL peak and coefficients, and a note
    when the machine has too few cores to show the curve's shape."""
    measured = [m for m in report.models if m.points]
    skipped = [m for m in report.models if m.skipped]
    if not measured:
        return "Nothing measured: " + "; ".join(f"{m.model} skipped ({m.skipped})" for m in skipped)
    kind = _kind(report) if report.source == "sweep" else None
    label, why = _KINDS[kind] if kind else ("", "")
    speedups = ", ".join(
        f"{m.model} {'reach ' if i == 0 else ''}{_x(m.speedup)} at {max(p.workers for p in m.points)} workers"
        for i, m in enumerate(measured)
    )
    on = f" on {report.cores} cores" if report.source == "sweep" else ""
    best = max(measured, key=lambda m: m.best.throughput if m.best else 0.0)
    bp = best.best
    assert bp is not None
    first = f"{label}: " if label else ""
    lines = [f"{first}{speedups}{on}{usl_clause(best)}."]
    if why:
        lines.append(f"Why: {why}.")
    lines.append(f"Best: {best.model}, {bp.throughput:.4g} calls/s at {bp.workers} workers.")
    for m in skipped:
        lines.append(f"Skipped {m.model}: {m.skipped}.")
    if report.source == "sweep":
        top = max(p.workers for m in measured for p in m.points)
        if report.cores <= 4 or top > report.cores:
            lines.append(
                f"This machine has {report.cores} cores: past {report.cores} workers CPU-bound work "
                "competes for cores, so the fitted curve describes the machine more than the code; to "
                "see the curve's shape, measure on more cores and fit with `plait scale --from data.csv`."
            )
    return "\n".join(lines)


def usl_clause(m: ModelResult) -> str:
    """ "; USL peak for M at N=..., contention alpha=..., coherency beta=..." (or Amdahl's serial
    fraction when the USL was not fitted)."""
    u = m.usl
    if u is None:
        if m.amdahl is None:
            return ""
        return f"; Amdahl serial fraction for {m.model} {m.amdahl.serial_fraction:.3g}"
    peak = u.peak()
    top = max(p.workers for p in m.points)
    if math.isinf(peak.n):
        where = f"no USL peak for {m.model} (beta=0: throughput approaches {u.limit():.4g})"
    else:
        past = f", {peak.n / top:.2g}x past the data" if peak.n > 2 * top else ""
        where = f"USL peak for {m.model} at N={peak.n:.3g} ({peak.x:.4g} calls/s{past})"
    return f"; {where}, contention alpha={u.alpha:.3g}, coherency beta={u.beta:.3g}"
