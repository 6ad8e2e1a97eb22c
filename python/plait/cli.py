"""The ``plait`` command line: ``plait demo`` runs the tour, ``plait scale`` and ``plait bench``
measure, ``plait run script.py`` runs a script that ``plait dump PID`` (or ``kill -QUIT PID``) can
then inspect."""

from __future__ import annotations

import argparse

from .bench import _cli as bench_cli
from .debug import _cli as debug_cli
from .scaling import _cli as scale_cli


class _OneLineHelp(argparse.HelpFormatter):
    """``plait --help`` lists each command on one line, whatever the terminal's width."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return [" ".join(text.split())]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m plait`` and the ``plait`` script."""
    parser = argparse.ArgumentParser(prog="plait", description=__doc__, formatter_class=_OneLineHelp)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="a short tour: each concurrency model against its stdlib peer")
    demo.add_argument("--quick", action="store_true", help="smaller work sizes (for tests)")
    scale_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    debug_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        return run(quick=args.quick)
    if args.command == "scale":
        return scale_cli.run(args)
    if args.command == "bench":
        return bench_cli.run(args)
    if args.command in ("dump", "run"):
        return debug_cli.run(args)
    return 2  # pragma: no cover - argparse rejects unknown commands
