"""The outcome of a scaling study: per concurrency model, the points measured (or read from a CSV
file), Amdahl's and the USL's fits, the warnings they raised, and a verdict in plain words.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import statistics
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ScalingWarning, SuperlinearWarning
from ._fit import AmdahlFit, USLFit, amdahl, usl
from ._interp import Interpreter
from ._sweep import MODELS, Point, Skipped, check_model, measure


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ModelResult:
    """One concurrency model's points, fits and notes (warnings, or why it was skipped).

    ``python`` is set in a report that holds several interpreters' sweeps (see :func:`merge`):
    the interpreter that measured this model, whose label is part of :attr:`name`."""

    model: str
    points: tuple[Point, ...] = ()
    amdahl: AmdahlFit | None = None
    usl: USLFit | None = None
    notes: tuple[str, ...] = ()
    skipped: str | None = None
    python: Interpreter | None = None

    @property
    def name(self) -> str:
        """The model, labelled with its interpreter when it has one: ``"threads [3.13t, GIL disabled]"``."""
        return f"{self.model} [{self.python.label}]" if self.python else self.model

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
                    "repeats": list(p.repeats),
                }
                for p in self.points
            ],
            "speedup": None if math.isnan(self.speedup) else self.speedup,
            "amdahl": self.amdahl.to_dict() if self.amdahl else None,
            "usl": self.usl.to_dict() if self.usl else None,
            "notes": list(self.notes),
            "python": self.python.to_dict() if self.python else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelResult:
        """The inverse of :meth:`to_dict`: the points, fitted again (the fits are not read back)."""
        model = str(data["model"])
        python = Interpreter.from_dict(data["python"]) if data.get("python") else None
        if data.get("skipped"):
            return cls(model, skipped=str(data["skipped"]), python=python)
        points = [
            Point(
                model,
                p["workers"],
                float(p["throughput"]),
                float(p["low"]),
                float(p["high"]),
                int(p["calls"]),
                tuple(float(r) for r in p.get("repeats", ())),
            )
            for p in data["points"]
        ]
        return dataclasses.replace(fit_points(model, points), python=python)


@dataclass(frozen=True)
class ScaleReport:
    """The result of ``plait scale``: a :class:`ModelResult` per model, the machine's core count,
    where the data came from (``"sweep"`` or the CSV file), and the interpreter that took the
    sweep (``None`` for a CSV file, and for a :func:`merge` of several: each model has its own)."""

    target: str
    models: tuple[ModelResult, ...]
    cores: int = field(default_factory=cpu_count)
    source: str = "sweep"
    python: Interpreter | None = None

    def __getitem__(self, name: str) -> ModelResult:
        """The model of that :attr:`ModelResult.name` (``"threads [3.11]"`` in a merged report)."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def verdict(self) -> str:
        """The finding in plain words; see :func:`verdict`."""
        return verdict(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "target": self.target,
            "source": self.source,
            "cores": self.cores,
            "models": {m.name: m.to_dict() for m in self.models},
            "verdict": self.verdict(),
            "python": self.python.to_dict() if self.python else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScaleReport:
        """The inverse of :meth:`to_dict` (``plait scale --json``'s output): each model's points,
        fitted again."""
        return cls(
            str(data["target"]),
            tuple(ModelResult.from_dict(m) for m in data["models"].values()),
            cores=int(data["cores"]),
            source=str(data["source"]),
            python=Interpreter.from_dict(data["python"]) if data.get("python") else None,
        )


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
    # Read after the sweep: importing an extension that is not declared safe without the GIL
    # enables it again on a free-threaded build.
    python = Interpreter.current()
    return ScaleReport(target or getattr(func, "__qualname__", repr(func)), tuple(results), python=python)


def merge(reports: Sequence[ScaleReport]) -> ScaleReport:
    """One report of the same function swept under several interpreters (``plait scale
    --python``): each model keeps its points and fits, labelled with the interpreter of its report
    (``threads [3.11]``, ``threads [3.13t, GIL disabled]``; a second interpreter of the same label
    gets ``#2``). The target and core count are the first report's.

    Raises ``ValueError`` for a report that does not name its interpreter (one read from CSV)."""
    if not reports:
        raise ValueError("merge needs at least one report")
    models: list[ModelResult] = []
    seen: dict[str, int] = {}
    for r in reports:
        if r.python is None:
            raise ValueError(f"the report of {r.target!r} from {r.source} does not name its interpreter")
        python = r.python
        seen[python.label] = seen.get(python.label, 0) + 1
        if seen[python.label] > 1:
            python = dataclasses.replace(python, tag=f"#{seen[python.label]}")
        models.extend(dataclasses.replace(m, python=python) for m in r.models)
    first = reports[0]
    return ScaleReport(first.target, tuple(models), cores=first.cores, source=first.source)


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

# The same shapes measured with the GIL disabled (a free-threaded build): threads that take turns
# are held back by something else, and threads that scale need not be running native code.
_KINDS_NO_GIL = {
    "io": _KINDS["io"],
    "gil": (
        "serialised",
        "the GIL is disabled, yet threads take turns: a lock or a shared object serialises the calls; "
        "only processes run in parallel",
    ),
    "native": (
        "parallel threads",
        "the GIL is disabled: threads run Python in parallel and scale like processes, without pickling",
    ),
    "mixed": (
        "partly serialised",
        "the GIL is disabled, yet part of each call serialises threads (a lock, a shared object): "
        "threads scale partly, processes further",
    ),
}


def _kind(models: Sequence[ModelResult], cores: int) -> str | None:
    """Which of :data:`_KINDS` the threads and processes points of one interpreter show, if any."""
    by = {m.model: m for m in models if m.points}
    threads, procs = by.get("threads"), by.get("processes")
    if not threads:
        return None
    top = max(p.workers for p in threads.points)
    t = threads.speedup
    if t > max(1.5, min(cores, top) * 1.3):
        return "io"
    if procs is None or procs.speedup < 1.4:
        return None
    if t < 1.25:
        return "gil"
    return "native" if t >= 0.75 * procs.speedup else "mixed"


def _by_interpreter(report: ScaleReport) -> list[tuple[Interpreter | None, list[ModelResult]]]:
    """The measured models grouped by interpreter (the report's own when a model has none), in
    the report's order."""
    groups: dict[str, tuple[Interpreter | None, list[ModelResult]]] = {}
    for m in report.models:
        if not m.points:
            continue
        python = m.python or report.python
        groups.setdefault(python.label if python else "", (python, []))[1].append(m)
    return list(groups.values())


def _best_gain(m: ModelResult) -> tuple[float, Point, Point]:
    """The best speed-up over the fewest workers measured (one, in a sweep), its point and the base."""
    base = min(m.points, key=lambda p: p.workers)
    best = max(m.points, key=lambda p: p.throughput)
    return best.throughput / base.throughput, best, base


def _compare(report: ScaleReport) -> list[str]:
    """A line per model measured under several interpreters: each one's best speed-up over one
    worker, the best first ("threads: 1.9x at 2 workers with the GIL disabled (3.13t) against
    1.0x with the GIL (3.11).")."""
    same: dict[str, list[ModelResult]] = {}
    for m in report.models:
        if m.points and m.python is not None:
            same.setdefault(m.model, []).append(m)
    lines = []
    for model, ms in same.items():
        if len({m.name for m in ms}) < 2:
            continue
        parts = []
        for m in sorted(ms, key=lambda m: -_best_gain(m)[0]):
            gain, best, base = _best_gain(m)
            assert m.python is not None
            at = f" at {best.workers} workers" if best.workers != base.workers else ""
            gil = "with the GIL" if m.python.gil_enabled else "with the GIL disabled"
            parts.append(f"{_x(gain)}{at} {gil} ({m.python.short})")
        lines.append(f"{model}: {parts[0]} against {' and '.join(parts[1:])}.")
    return lines


def verdict(report: ScaleReport) -> str:
    """The finding in plain words: the kind of workload (from a sweep), each model's speedup at
    its most workers, the model that scales best with its USL peak and coefficients, and a note
    when the machine has too few cores to show the curve's shape.

    In a report of several interpreters (:func:`merge`) the kind is read from the first one with
    the GIL enabled (from the first one when none has it), and a line per model measured under
    more than one compares their best speed-ups."""
    measured = [m for m in report.models if m.points]
    skipped = [m for m in report.models if m.skipped]
    if not measured:
        return "Nothing measured: " + "; ".join(f"{m.name} skipped ({m.skipped})" for m in skipped)
    kind, kinds, why_of = None, _KINDS, ""
    if report.source == "sweep":
        groups = _by_interpreter(report)
        python, models = next(((py, ms) for py, ms in groups if py is None or py.gil_enabled), groups[0])
        kind = _kind(models, report.cores)
        if python is not None and not python.gil_enabled:
            kinds = _KINDS_NO_GIL
        if len(groups) > 1 and python is not None:
            why_of = f" ({python.label})"
    label, why = kinds[kind] if kind else ("", "")
    speedups = ", ".join(
        f"{m.name} {'reach ' if i == 0 else ''}{_x(m.speedup)} at {max(p.workers for p in m.points)} workers"
        for i, m in enumerate(measured)
    )
    on = f" on {report.cores} cores" if report.source == "sweep" else ""
    best = max(measured, key=lambda m: m.best.throughput if m.best else 0.0)
    bp = best.best
    assert bp is not None
    first = f"{label}: " if label else ""
    lines = [f"{first}{speedups}{on}{usl_clause(best)}."]
    if why:
        lines.append(f"Why{why_of}: {why}.")
    lines.extend(_compare(report))
    lines.append(f"Best: {best.name}, {bp.throughput:.4g} calls/s at {bp.workers} workers.")
    for m in skipped:
        lines.append(f"Skipped {m.name}: {m.skipped}.")
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
        return f"; Amdahl serial fraction for {m.name} {m.amdahl.serial_fraction:.3g}"
    peak = u.peak()
    top = max(p.workers for p in m.points)
    if math.isinf(peak.n):
        where = f"no USL peak for {m.name} (beta=0: throughput approaches {u.limit():.4g})"
    else:
        past = f", {peak.n / top:.2g}x past the data" if peak.n > 2 * top else ""
        where = f"USL peak for {m.name} at N={peak.n:.3g} ({peak.x:.4g} calls/s{past})"
    return f"; {where}, contention alpha={u.alpha:.3g}, coherency beta={u.beta:.3g}"
