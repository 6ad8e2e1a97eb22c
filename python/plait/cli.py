"""The ``plait`` command line: ``plait demo`` runs the tour; ``plait dump-demo`` shows ``dump()``."""

from __future__ import annotations

import argparse

from .bench import _cli as bench_cli
from .scaling import _cli as scale_cli


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m plait`` and the ``plait`` script."""
    parser = argparse.ArgumentParser(prog="plait", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="a short tour: each concurrency model against its stdlib peer")
    demo.add_argument("--quick", action="store_true", help="smaller work sizes (for tests)")
    scale_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        return run(quick=args.quick)
    if args.command == "scale":
        return scale_cli.run(args)
    if args.command == "bench":
        return bench_cli.run(args)
    return 2  # pragma: no cover - argparse rejects unknown commands
