"""Shared helpers for the cases of ``plait bench`` (threads.py, processes.py, aio.py, ...).

Every case compares plait with its stdlib peer (and the third-party peers installed) *in the same
run*, on this machine:

- ``add_arguments`` / ``check_arguments`` give every model the same flags (``--quick`` for tiny
  sizes, ``--repeats``, ``--smoke``). ``--smoke`` (or ``PLAIT_BENCH_SMOKE=1`` in the environment,
  which is how ``make bench-smoke`` runs every model) is the smallest run that still goes through
  every case: ``--quick`` sizes, one warm-up and one timed run per implementation, whatever a case
  asks for. It only checks that the cases still run; its figures mean nothing.
- ``header`` states the machine, the Python version, the peers' versions and the work sizes
  before anything is timed.
- ``Bench.compare`` gives every implementation of a case the same treatment: the same number of
  untimed warm-up runs (one by default), then the same number of timed runs, interleaved (run 1
  of each, run 2 of each, ...) so that drift in machine load hits every implementation alike,
  and the same statistic, the median. It prints one line per implementation: the case label,
  the implementation, its median throughput and the ratio to the first (the baseline), and keeps
  each as a ``Result`` (``Result.record()`` is the structured form ``plait bench --json`` dumps).
  A case that needs more or fewer runs (say, a noisy CPU-bound case) sets ``repeats`` for the
  whole case, never for one implementation; there is no way to give one side a different warm-up.
- Case labels name the input (``list of 1M ints``, ``200k dict records``); the headline cases
  use the inputs programs pass. A case or line that takes a path ordinary inputs do not (a
  ``range`` input, messages that skip pickle) carries ``fast_path("...")`` in its label or
  name, ``[fast path: range input]``, so that no such line is quoted as a headline figure
  (``Result.fast_path`` is true for it).
  README and docs figures name the exact line (case label and implementation) they come from.
- ``Bench.peer`` imports an optional peer; one that is missing is named and skipped
  (``Bench.skipped`` keeps why, as does ``Bench.skip`` for a case that cannot run here).
- ``Bench.target`` records a goal (``ratio >= x``) and ``Bench.summary`` prints them as a table,
  MET / NOT MET, with the measured ratio.

A run callable does one full unit of work and returns the seconds it took, timed with
``time.perf_counter`` (see ``clock``) around the part that is measured, so setup such as
starting threads or building inputs can stay outside the timed region. ``timed`` wraps a
callable whose whole body is the measured work.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

__all__ = [
    "Bench",
    "Impl",
    "Result",
    "add_arguments",
    "check_arguments",
    "clock",
    "fast_path",
    "fmt_rate",
    "header",
    "machine_summary",
    "median",
    "package_version",
    "timed",
]

clock = time.perf_counter

DEFAULT_REPEATS = 5
QUICK_REPEATS = 3
SMOKE_ENV = "PLAIT_BENCH_SMOKE"
NOISY_SPREAD = 0.25  # flag a line whose timed runs differ by more than this fraction of the median


def smoke_from_env() -> bool:  # benchmarks/_results.py has a copy (it does not import plait)
    """True when ``PLAIT_BENCH_SMOKE`` is set to anything but ``""``, ``0``, ``no`` or ``false``."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "no", "false")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The common flags: ``--quick`` (tiny sizes, fewer repeats), ``--repeats N`` and ``--smoke``
    (also ``PLAIT_BENCH_SMOKE=1``: quick sizes, one run each; implies ``--quick``)."""
    p.add_argument("--quick", action="store_true", help="tiny work sizes: a smoke test, not a measurement")
    p.add_argument(
        "--smoke",
        action="store_true",
        default=smoke_from_env(),
        help=f"the smallest run through every case ({SMOKE_ENV}=1 does the same): --quick sizes, "
        "one warm-up and one timed run per implementation; checks that the cases run, measures nothing",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed runs per implementation, median reported (default {DEFAULT_REPEATS}, "
        f"{QUICK_REPEATS} with --quick)",
    )


def check_arguments(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Settle the flags of ``add_arguments``: ``--smoke`` implies ``--quick`` and one run; the
    default ``--repeats`` follows ``--quick``. Errors go through ``p.error`` (exit status 2)."""
    if args.smoke:
        if args.repeats not in (None, 1):
            p.error("--smoke runs each implementation once: drop --repeats")
        args.quick = True
        args.repeats = 1
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else DEFAULT_REPEATS
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def package_version(name: str) -> str | None:
    """The installed version of the distribution ``name``, or None."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


FAST_PATH_TAG = "[fast path:"


def fast_path(what: str) -> str:
    """The tag of a case or line that takes a path ordinary inputs do not: ``[fast path: what]``."""
    return f"{FAST_PATH_TAG} {what}]"


def median(xs: Iterable[float]) -> float:
    return statistics.median(list(xs))


def timed(fn: Callable[..., object], *args: object) -> float:
    """Seconds taken by ``fn(*args)``."""
    t0 = clock()
    fn(*args)
    return clock() - t0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary() -> list[str]:
    impl = platform.python_implementation()
    gil = ""
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if is_gil_enabled is not None:
        gil = ", GIL " + ("enabled" if is_gil_enabled() else "disabled")
    return [
        f"machine: {platform.system()} {platform.release()} {platform.machine()}, "
        f"os.cpu_count()={os.cpu_count()}, {_cpu_model()}",
        f"python:  {impl} {platform.python_version()}{gil}, "
        f"switchinterval={sys.getswitchinterval() * 1e3:g} ms",
    ]


def header(
    title: str,
    args: argparse.Namespace,
    sizes: Iterable[str] = (),
    notes: Iterable[str] = (),
    packages: Iterable[str] = (),
) -> None:
    """Print what is measured, where, and how, before any timing; ``packages`` are the peers'
    distributions whose versions the header states (plait's always)."""
    print(title)
    for line in machine_summary():
        print(line)
    versions = []
    for name in ("plait", *packages):
        v = package_version(name)
        versions.append(f"{name} {v}" if v else f"{name} not installed")
    print("versions: " + ", ".join(versions))
    if getattr(args, "smoke", False):
        mode = "SMOKE (quick sizes, one run each: checks the script runs, measures nothing)"
    elif args.quick:
        mode = "QUICK (tiny sizes, smoke test only)"
    else:
        mode = "full"
    print(
        f"method:  {mode}; every implementation of a case gets the same untimed warm-up run(s), then "
        f"the same number of timed runs ({args.repeats} unless a case line says otherwise), "
        "interleaved; median reported; ratio = rate / rate of the case's first line (higher is better)"
    )
    sizes = list(sizes)
    if sizes:
        print("work:    " + "; ".join(sizes))
    for n in notes:
        print("note:    " + n)
    sys.stdout.flush()


def fmt_rate(rate: float, unit: str) -> str:
    """``707k items/s``, ``2.50M items/s``."""
    if rate >= 1e9:
        s = f"{rate / 1e9:.2f}G"
    elif rate >= 1e6:
        s = f"{rate / 1e6:.2f}M"
    elif rate >= 1e4:
        s = f"{rate / 1e3:.0f}k"
    elif rate >= 1e3:
        s = f"{rate / 1e3:.1f}k"
    else:
        s = f"{rate:.0f}"
    return f"{s} {unit}/s"


@dataclass
class Impl:
    """One implementation in a comparison.

    ``run()`` does the work once and returns the elapsed seconds; the warm-up runs are calls of
    the same ``run``, untimed. Warm-ups and repeats are the case's (see ``Bench.compare``), the
    same for every implementation.
    """

    name: str
    run: Callable[[], float]
    note: str = ""


@dataclass
class Result:
    """One implementation's line of a case: ``rate`` is ``work / seconds`` in ``unit`` per second,
    ``seconds`` the median of the timed runs, ``ratio`` the rate over the baseline's (the case's
    first line, named by ``baseline``, unless ``Bench.relative`` says otherwise)."""

    label: str
    name: str
    seconds: float
    rate: float
    ratio: float
    runs: int
    spread: float  # (max - min) / median of the timed runs
    warmups: int = 1
    unit: str = ""  # what one unit of work is: "items", "tasks", "round trips"
    work: int = 0  # units of work per run
    baseline: str = ""
    note: str = ""

    @property
    def fast_path(self) -> bool:
        """True for a case or line labelled ``fast_path(...)``: not a headline figure."""
        return FAST_PATH_TAG in self.label or FAST_PATH_TAG in self.name

    def record(self, model: str = "") -> dict[str, Any]:
        """The structured form (``plait bench --json``): ``median`` is the median rate, in
        ``unit`` (``items/s``)."""
        return {
            "model": model,
            "case": self.label,
            "implementation": self.name,
            "median": self.rate,
            "unit": f"{self.unit}/s",
            "ratio": self.ratio,
            "baseline": self.baseline,
            "spread": self.spread,
            "fast_path": self.fast_path,
            "seconds": self.seconds,
            "work": self.work,
            "runs": self.runs,
            "warmups": self.warmups,
            "note": self.note,
        }


@dataclass
class _Target:
    what: str
    threshold: float
    ratio: float | None
    detail: str = ""
    line: str = ""  # the case line the ratio comes from


@dataclass
class Skipped:
    """A peer that is not installed, or a case that cannot run here, and why."""

    what: str
    reason: str
    kind: str = "peer"  # or "case"


@dataclass
class Bench:
    args: argparse.Namespace
    label_width: int = 46
    name_width: int = 30
    results: list[Result] = field(default_factory=list)
    targets: list[_Target] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def peer(self, name: str, *submodules: str) -> ModuleType | None:
        """Import the optional peer ``name`` (and ``name.sub`` for each of ``submodules``), or name
        it on stderr, record it as skipped and return None."""
        try:
            mod = importlib.import_module(name)
            for sub in submodules:
                importlib.import_module(f"{name}.{sub}")
        except ImportError as e:
            self.skip(name, f"not installed ({e}); `pip install 'plait[bench]'` installs the peers")
            return None
        return mod

    def skip(self, what: str, reason: str, kind: str = "peer") -> None:
        """Record and print (stderr) that ``what`` (a peer, or a case with ``kind="case"``) is
        skipped, and why."""
        self.skipped.append(Skipped(what, reason, kind))
        print(f"{kind} {what}: {reason}; skipped", file=sys.stderr, flush=True)

    def compare(
        self,
        label: str,
        n: int,
        unit: str,
        impls: Sequence[Impl],
        *,
        repeats: int | None = None,
        warmups: int = 1,
    ) -> dict[str, Result]:
        """Time ``impls`` (the first is the baseline), print one line each, return them by name.

        ``n`` is the number of ``unit`` of work one run does; the rate is ``n / median(seconds)``.
        Every implementation gets ``warmups`` untimed runs, then ``repeats`` timed runs (the
        script's ``--repeats`` by default), interleaved; smoke runs do one of each.
        """
        names = [impl.name for impl in impls]
        if len(set(names)) != len(names):
            raise ValueError(f"{label}: two implementations share a name: {names}")
        smoke = getattr(self.args, "smoke", False)
        if smoke:
            warmups, reps = min(warmups, 1), 1
        elif self.args.quick:
            reps = self.args.repeats
        else:
            reps = repeats or self.args.repeats
        for _ in range(warmups):  # imports, thread starts, caches, the allocator: every impl alike
            for impl in impls:
                gc.collect()
                impl.run()
        times: dict[str, list[float]] = {impl.name: [] for impl in impls}
        for _ in range(reps):
            for impl in impls:
                gc.collect()
                times[impl.name].append(impl.run())
        out: dict[str, Result] = {}
        base_rate: float | None = None
        for impl in impls:
            ts = times[impl.name]
            med = median(ts)
            rate = n / med if med > 0 else float("inf")
            if base_rate is None:
                base_rate = rate
            res = Result(
                label=label,
                name=impl.name,
                seconds=med,
                rate=rate,
                ratio=rate / base_rate,
                runs=len(ts),
                spread=(max(ts) - min(ts)) / med if med > 0 else 0.0,
                warmups=warmups,
                unit=unit,
                work=n,
                baseline=impls[0].name,
                note=impl.note,
            )
            self.results.append(res)
            out[impl.name] = res
            self._print(res, unit, impl.note)
        sys.stdout.flush()
        return out

    def _print(self, res: Result, unit: str, note: str) -> None:
        extra = []
        if res.runs != self.args.repeats:
            extra.append(f"median of {res.runs} run" + ("s" if res.runs != 1 else ""))
        if res.warmups != 1:
            extra.append(f"{res.warmups} warm-up runs")
        if note:
            extra.append(note)
        if res.runs > 1 and res.spread > NOISY_SPREAD:
            extra.append(f"noisy: runs spread {res.spread:.0%} of median")
        tail = f"   ({'; '.join(extra)})" if extra else ""
        print(
            f"{res.label:<{self.label_width}} {res.name:<{self.name_width}} "
            f"{fmt_rate(res.rate, unit):>16} {res.ratio:6.2f}x{tail}"
        )

    def section(self, title: str) -> None:
        print()
        print(f"-- {title}")

    def target(self, what: str, threshold: float, result: Result | None, detail: str = "") -> None:
        """Record a goal: ``result.ratio >= threshold`` (see ``relative`` for a ratio to another
        line than the case's first)."""
        line = "" if result is None else f"{result.label} | {result.name}"
        self.targets.append(_Target(what, threshold, None if result is None else result.ratio, detail, line))

    @staticmethod
    def relative(result: Result, base: Result) -> Result:
        """``result`` with its ratio taken to ``base`` (another line of the same case) instead of
        the case's first line."""
        return dataclasses.replace(
            result, ratio=result.rate / base.rate, name=f"{result.name} / {base.name}", baseline=base.name
        )

    def summary(self) -> None:
        if not self.targets:
            return
        print()
        print("targets" + (" (QUICK sizes: indicative only)" if self.args.quick else ""))
        w = max(len(t.what) for t in self.targets)
        for t in self.targets:
            if t.ratio is None:
                status, measured = "NOT RUN", "   -  "
            else:
                status = "MET" if t.ratio >= t.threshold else "NOT MET"
                measured = f"{t.ratio:5.2f}x"
            detail = f"  {t.detail}" if t.detail else ""
            need = f">= {t.threshold:g}x"
            print(f"  {t.what:<{w}}  {need:>8}  measured {measured:>7}  {status}{detail}")
            if t.line:
                print(f"  {'':<{w}}  line: {t.line}")
        met = sum(1 for t in self.targets if t.ratio is not None and t.ratio >= t.threshold)
        print(f"  {met}/{len(self.targets)} met")
        sys.stdout.flush()
