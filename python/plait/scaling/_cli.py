"""``plait scale``: measure a function under each concurrency model (or read measurements from a
CSV file), fit Amdahl's law and the USL per model, print a chart, the fits and a verdict.

With ``--python PATH`` (repeatable) the same sweep also runs under each of those interpreters, one
after another, and their models join the report labelled with their interpreter, e.g. a GIL build
and a free-threaded build side by side.

Kept apart from ``plait.cli``, which only registers the command (:func:`add_parser`) and calls
:func:`run`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from typing import Any

from ._sweep import MODELS, normalize_args

HELP = "measure FUNC's throughput under threads, processes, aio and green; fit Amdahl and USL; verdict"


def parse_duration(text: str) -> float:
    """``"5s"``, ``"500ms"``, ``"2m"`` or plain seconds (``"1.5"``) as seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|min)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 5s, 500ms, 1m)")
    value = float(m.group(1)) * {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0}[m.group(2)]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the duration must be above 0, got {text!r}")
    return value


def _workers(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--workers takes counts separated by commas, e.g. 1,2,4,8: {text!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--workers needs counts of at least 1: {text!r}")
    return counts


def _models(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in MODELS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown model(s) {bad}: choose from {','.join(MODELS)}")
    return names


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Adds the ``scale`` command to ``plait``'s subparsers."""
    p: argparse.ArgumentParser = sub.add_parser("scale", help=HELP, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "target", nargs="?", metavar="MODULE:FUNC", help="the function to measure (not with --from)"
    )
    p.add_argument(
        "--args-from",
        metavar="MODULE:GEN",
        help="a generator function yielding argument tuples (or single arguments); default: FUNC()",
    )
    p.add_argument("--models", type=_models, default=list(MODELS), help="models to measure (default: all)")
    p.add_argument("--workers", type=_workers, default=[1, 2, 4, 8], help="worker counts (default: 1,2,4,8)")
    p.add_argument(
        "--duration", type=parse_duration, default=5.0, help="time per point, e.g. 5s, 500ms (default 5s)"
    )
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per point (default 3)")
    p.add_argument(
        "--from",
        dest="from_csv",
        metavar="DATA.CSV",
        help="fit measurements taken elsewhere: columns workers,throughput[,model]",
    )
    p.add_argument(
        "--plot", metavar="OUT.PNG", help="write throughput and efficiency charts (needs matplotlib)"
    )
    p.add_argument(
        "--python",
        dest="pythons",
        action="append",
        default=[],
        metavar="PATH",
        help="also run the same sweep under this interpreter (it needs plait), one after another; "
        "repeatable; each model is labelled with its interpreter, e.g. 'threads [3.13t, GIL disabled]'",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON only")
    # For the children of --python: progress lines on stderr even with --json.
    p.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--summary", action="store_true", help="print each fit's full summary (R's layout)")
    return p


def _resolve(spec: str, what: str) -> Any:
    module, sep, attr = spec.partition(":")
    if not (module and sep and attr):
        raise SystemExit(f"plait scale: {what} must be MODULE:NAME, got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: modules beside the caller import
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise SystemExit(f"plait scale: cannot import {module!r} for {what}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"plait scale: {module!r} has no {attr!r} ({what})") from None
    return obj


def brief(fit: Any) -> str:
    """One line: each coefficient ± its standard error, and R²."""
    coefs = ", ".join(f"{c.name}={c.estimate:.3g}±{c.std_error:.2g}" for c in fit.coefficients)
    return f"{coefs}, R²={fit.r_squared:.3f}"


def _seconds(value: float) -> str:
    """A duration as ``parse_duration`` reads it back (no exponent)."""
    return f"{value:.9f}".rstrip("0").rstrip(".")


def child_argv(args: argparse.Namespace, *, progress: bool) -> list[str]:
    """The arguments of ``plait scale`` for a ``--python`` child: the same sweep, as JSON."""
    argv = [args.target, "--json", "--models", ",".join(args.models)]
    argv += ["--workers", ",".join(map(str, args.workers)), "--duration", _seconds(args.duration)]
    argv += ["--repeats", str(args.repeats)]
    if args.args_from:
        argv += ["--args-from", args.args_from]
    return argv + (["--progress"] if progress else [])


def run(args: argparse.Namespace) -> int:
    """Runs ``plait scale`` with parsed arguments; returns the exit status."""
    from . import _child
    from ._chart import plot, text_chart
    from ._interp import Interpreter
    from ._report import merge, read_csv, run_sweep

    if args.from_csv:
        if args.target:
            print("plait scale: give MODULE:FUNC or --from, not both", file=sys.stderr)
            return 2
        if args.pythons:
            print(
                "plait scale: --python measures MODULE:FUNC under another interpreter; --from reads "
                "measurements already taken: give one or the other",
                file=sys.stderr,
            )
            return 2
        try:
            report = read_csv(args.from_csv)
        except (OSError, ValueError) as e:
            print(f"plait scale: {e}", file=sys.stderr)
            return 2
    else:
        if not args.target:
            print("plait scale: give MODULE:FUNC to measure, or --from DATA.CSV", file=sys.stderr)
            return 2
        func = _resolve(args.target, "MODULE:FUNC")
        fn_args: list[tuple[Any, ...]] = []
        if args.args_from:
            gen = _resolve(args.args_from, "--args-from")
            fn_args = normalize_args(gen() if callable(gen) else gen)
        show = args.progress or not args.json
        progress = _child.progress_to_stderr if show else None
        # Each interpreter is checked before any measuring: a sweep can take minutes.
        others = []
        for python in args.pythons:
            try:
                others.append((python, _child.probe(python)))
            except _child.ChildFailed as e:
                print(f"plait scale: {e}", file=sys.stderr)
                return 2
        if progress and others:
            progress(f"-- {sys.executable} ({Interpreter.current().label})")
        report = run_sweep(
            func,
            fn_args,
            target=args.target,
            models=args.models,
            workers=args.workers,
            duration=args.duration,
            repeats=args.repeats,
            progress=progress,
        )
        if others:
            reports = [report]
            for python, info in others:
                if progress:
                    progress(f"-- {python} ({info.label})")
                try:
                    reports.append(_child.sweep(python, child_argv(args, progress=show), progress))
                except _child.ChildFailed as e:
                    print(f"plait scale: {e}", file=sys.stderr)
                    return 2
            report = merge(reports)
    status = 0
    if args.plot:
        try:
            plot(report, args.plot)
        except ModuleNotFoundError as e:
            print(f"plait scale: {e}", file=sys.stderr)
            status = 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, allow_nan=False))
        return status
    print(text_chart(report))
    for m in report.models:
        if m.skipped:
            continue
        print(f"\n== {m.name}: " + ", ".join(f"{p.workers}: {p.throughput:.4g}/s" for p in m.points))
        for fit in (m.amdahl, m.usl):
            if fit is None:
                continue
            if args.summary:
                print(fit.summary() + "\n")
            else:
                print(f"   {fit.model:7} " + brief(fit))
        for note in m.notes:
            print(f"   note: {note}")
    print("\n" + report.verdict())
    if args.plot and status == 0:
        print(f"\nplot written to {args.plot}")
    return status
