"""Four workloads for ``plait scale`` (docs/guide.md, "Which model when"), one per kind of work:

- ``squares``: pure Python arithmetic: holds the GIL the whole call.
- ``wait`` / ``wait_async``: an I/O-bound call: sleeps 5 ms (a stand-in for a network round trip).
- ``sort``: numpy sorting 200,000 floats: the work runs in C with the GIL released.
- ``mixed``: half of each: a Python loop, then a numpy sort.

Run one from the repository root, e.g.::

    python -m plait scale examples.scale_workloads:squares --workers 1,2,4,8 --duration 1s
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

_RNG = np.random.default_rng(42)
_BIG = _RNG.random(200_000)
_HALF = _RNG.random(100_000)


def squares(n: int = 60_000) -> int:
    """Sum of squares in a Python loop (~3 ms): GIL-bound."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def wait(seconds: float = 0.005) -> None:
    """Blocks without computing, as a network call does."""
    time.sleep(seconds)


async def wait_async(seconds: float = 0.005) -> None:
    """The same wait for an event loop."""
    await asyncio.sleep(seconds)


def sort() -> float:
    """numpy sorts a copy of 200,000 floats (~10 ms) with the GIL released."""
    a = _BIG.copy()
    a.sort()
    return float(a[0])


def mixed() -> float:
    """A Python loop (~1.5 ms, GIL held), then a numpy sort of 100,000 floats (GIL released)."""
    squares(30_000)
    a = _HALF.copy()
    a.sort()
    return float(a[0])


if __name__ == "__main__":
    for f in (squares, wait, sort, mixed):
        start = time.perf_counter()
        f()
        print(f"{f.__name__}: {1000 * (time.perf_counter() - start):.1f} ms per call")
