"""Task functions for benchmarks/processes.py, in an importable module.

Every pool, plait and its peers (multiprocessing, concurrent.futures, loky, mpire, joblib), gets
these same functions: each sends them by reference, its fastest path, and the work on each side
is the same. (processes.py also times plait with a copy defined in ``__main__``, sent by value,
on an informational line.)
"""

from __future__ import annotations

import os
import time
from typing import Any


def ident(x: Any) -> Any:
    return x


def upper(s: str) -> str:
    """A short string in, a short string out."""
    return s.upper()


def rescore(rec: dict[str, Any]) -> dict[str, Any]:
    """A small dict record in, a new small dict record out."""
    return {"id": rec["id"], "name": rec["name"], "score": rec["score"] * 2.0}


def rescore_row(row: tuple[int, str, float]) -> tuple[int, str, float]:
    """A small tuple in, a new small tuple out."""
    return (row[0], row[1], row[2] * 2.0)


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


# -- inputs, built in the parent before any clock starts ------------------------------------------


def ints(n: int) -> list[int]:
    return list(range(n))


def short_strings(n: int) -> list[str]:
    return [f"item-{i:07d}" for i in range(n)]


def dict_records(n: int) -> list[dict[str, Any]]:
    """Rows as a database driver or a JSON API hands them over."""
    return [{"id": i, "name": f"user{i}", "score": i * 0.5} for i in range(n)]


def tuple_rows(n: int) -> list[tuple[int, str, float]]:
    return [(i, f"user{i}", i * 0.5) for i in range(n)]
