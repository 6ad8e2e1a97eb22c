"""Progress bars for maps (``ProcessPool.map(..., progress=True)``; other models' maps to come).

:func:`progress_bar` returns tqdm's bar when tqdm is installed, else :class:`Bar`, a minimal
one on stderr; both are :class:`Progress`.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol

__all__ = ["Bar", "Progress", "progress_bar"]


class Progress(Protocol):
    """What a map does with its bar: tqdm's ``update`` and ``close``."""

    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


class Bar:
    """A minimal progress bar on stderr, for when tqdm is not installed."""

    def __init__(self, total: int | None) -> None:
        self._clock = time.monotonic
        self.total = total
        self.done = 0
        self._start = self._clock()
        self._shown = 0.0
        self._closed = False

    def update(self, n: int) -> None:
        self.done += n
        now = self._clock()
        if now - self._shown >= 0.1 or (self.total is not None and self.done >= self.total):
            self._shown = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * 30)
            line = (
                f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {frac:4.0%} {rate:,.0f}/s"
            )
        else:
            line = f"\r{self.done} done {rate:,.0f}/s"
        sys.stderr.write(line)
        sys.stderr.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._draw(self._clock())
            sys.stderr.write("\n")
            sys.stderr.flush()


def progress_bar(progress: bool | str | None, total: int | None) -> Progress | None:
    """The bar for ``progress``: False/None -> none; True -> only when stderr is a terminal;
    "always" -> always. tqdm is used when installed."""
    if progress in (False, None):
        return None
    if progress not in (True, "always"):
        raise ValueError(f"progress must be True, False or 'always', not {progress!r}")
    if progress is True and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return Bar(total)
    return tqdm(total=total, file=sys.stderr)
