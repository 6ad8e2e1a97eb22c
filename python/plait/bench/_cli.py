"""``plait bench [threads|processes|ipc|aio|green|all] [--quick|--smoke] [--json [PATH]] [--plot PNG]``.

Runs the cases of one model (in this process) or of every model (``all``: each in a child process
of its own, as ``plait bench MODEL``, so that no model's threads, pools or hub meet another's),
plait beside the peers that are installed; a missing peer is named and skipped. It prints, per
case, one line per implementation with its median rate and the ratio to the case's first line,
then a Markdown table of every line, headed by the machine, the date and the versions: ready to
paste into an issue.

``--json`` writes the structured results (see ``_report``) to stdout, the progress then going to
stderr, or to ``PATH``; ``--markdown PATH`` writes the table to a file too (``make bench-results``
puts it in RESULTS.md). ``--plot PNG`` draws bar charts of the ratios with matplotlib (the ``plot``
extra); without it, it says so and draws the bars in the terminal.

``add_parser`` and ``run`` are what ``plait.cli`` calls; ``main`` serves the scripts of
``benchmarks/``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, TextIO

from . import _report
from ._common import add_arguments, check_arguments

MODELS = ("threads", "processes", "ipc", "aio", "green")
HELP = "plait beside the installed peers, same run: ratios, a Markdown table, --json, --plot"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` command to ``sub`` (the ``plait`` parser's subparsers)."""
    p = sub.add_parser(
        "bench",
        help=HELP,
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
    )
    p.add_argument(
        "model",
        nargs="?",
        default="all",
        choices=[*MODELS, "all"],
        help="the model whose cases to run (default: all, each in a child process)",
    )
    add_arguments(p)
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write the results as JSON to PATH, or to stdout (progress then goes to stderr)",
    )
    p.add_argument(
        "--plot",
        metavar="PNG",
        help="bar charts of the ratios, written with matplotlib (`pip install 'plait[plot]'`); "
        "without it, bars in the terminal",
    )
    p.add_argument("--markdown", metavar="PATH", help="also write the Markdown table to PATH")
    p.add_argument("--no-table", action="store_true", help=argparse.SUPPRESS)  # children of `all`
    p.set_defaults(bench_parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``plait bench`` with the arguments ``add_parser`` parsed; the exit status."""
    check_arguments(args.bench_parser, args)
    to_stdout = args.json == "-"
    report: TextIO = sys.stderr if to_stdout else sys.stdout
    models = list(MODELS) if args.model == "all" else [args.model]
    command = " ".join(["plait bench", args.model, *_flags(args)])
    header = _report.run_header(command, _report.mode_of(args.smoke, args.quick), args.repeats)
    if args.model == "all":
        parts, failed = _run_children(models, args, report)
    else:
        with contextlib.redirect_stdout(report):
            parts, failed = [_run_here(args.model, args)], []
    doc = _report.document(header, models, parts)
    if args.json:
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
        if to_stdout:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text)
    table = _report.markdown(doc)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(table)
    if not args.no_table:
        print(file=report)
        print(table, end="", file=report)
    if args.plot:
        why = _report.plot(doc, args.plot)
        if why is None:
            print(f"\nwrote {args.plot}", file=report)
        else:
            print(f"\n--plot {args.plot}: {why}; the ratios as bars instead:\n", file=report)
            print(_report.terminal_chart(doc), end="", file=report)
    report.flush()
    if failed:
        print(f"plait bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``plait bench`` on its own: ``main(["threads", "--quick"])``."""
    parser = argparse.ArgumentParser(prog="plait")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return run(parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)]))


def _flags(args: argparse.Namespace) -> list[str]:
    """The flags a child of ``all`` gets (and the command the header records)."""
    if args.smoke:
        return ["--smoke"]
    flags = ["--quick"] if args.quick else []
    return [*flags, "--repeats", str(args.repeats)]


def _run_here(model: str, args: argparse.Namespace) -> dict[str, Any]:
    module = importlib.import_module(f"{__package__}.{model}")
    bench = module.run(args)
    return _report.model_part(model, bench)


def _run_children(
    models: Sequence[str], args: argparse.Namespace, report: TextIO
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each model in a child ``plait bench MODEL --json FILE``, its output passed through to
    ``report``; a model that fails is named, and the others still run."""
    parts, failed = [], []
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as scratch:
        for model in models:
            print(f"== plait bench {model}", file=report, flush=True)
            out = os.path.join(scratch, f"{model}.json")
            code = subprocess.call(
                [sys.executable, "-m", "plait", "bench", model, *_flags(args), "--json", out, "--no-table"],
                stdout=report,
                env=env,
            )
            if code != 0 or not os.path.exists(out):
                print(f"plait bench {model}: exit status {code}", file=sys.stderr, flush=True)
                failed.append(model)
                continue
            with open(out, encoding="utf-8") as f:
                parts.append(json.load(f))
            print(file=report, flush=True)
    return parts, failed
