"""The ``plait`` command line: ``plait demo`` runs the tour; ``plait run script.py`` runs a script
that ``plait dump PID`` (or ``kill -QUIT PID``) can then inspect."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m plait`` and the ``plait`` script."""
    from .debug import _cli as debug_cli

    parser = argparse.ArgumentParser(prog="plait", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="a short tour: each concurrency model against its stdlib peer")
    demo.add_argument("--quick", action="store_true", help="smaller work sizes (for tests)")
    debug_cli.add_parsers(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        return run(quick=args.quick)
    if args.command == "dump":
        return debug_cli.dump_main(args)
    if args.command == "run":
        return debug_cli.run_main(args)
    return 2  # pragma: no cover - argparse rejects unknown commands
