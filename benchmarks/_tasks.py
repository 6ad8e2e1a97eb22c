"""Task functions for benchmarks/processes.py, in an importable module.

The peers (multiprocessing, concurrent.futures, loky, mpire, joblib) get these: every one of them
can then send the function by reference, its fastest path. plait gets identical copies defined in
processes.py itself, which runs as ``__main__`` and whose functions plait sends by value.
"""

from __future__ import annotations

import os
import time
from typing import Any


def ident(x: Any) -> Any:
    return x


def spin(n: int) -> int:
    """A pure-Python loop: CPU-bound work whose length ``n`` is calibrated by the caller."""
    s = 0
    for i in range(n):
        s += i
    return s


def pid_after(seconds: float) -> int:
    """Sleep, then return this worker's pid: warming a pool up until every worker has run a task."""
    time.sleep(seconds)
    return os.getpid()
