"""Type stubs for plait.bench.ipc: the cases of `plait bench ipc`."""

import argparse

from ._common import Bench

__all__ = ["PEERS", "TITLE", "run"]

TITLE: str
PEERS: tuple[str, ...]

def run(args: argparse.Namespace) -> Bench: ...
