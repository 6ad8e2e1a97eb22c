"""plait: one concurrency toolkit for threads, processes, asyncio and green threads.

Each part is a drop-in replacement for what Python programmers already use, implemented in Rust,
faster than its peers, and loud where they are silent: a deadlock raises
:class:`DeadlockError` naming every thread involved instead of hanging.

Modules:

- :mod:`plait.threads`: ``threading``/``queue`` primitives, atomics and ``ThreadPool``.
- :mod:`plait.processes`: ``ProcessPool``, a process pool that survives crashes.
- :mod:`plait.debug`: :func:`dump` (every thread, lock, deadlock, asyncio task, greenlet and pool
  worker of this process) and the channel behind ``plait dump PID``.
"""

from __future__ import annotations

from typing import IO

from . import _plait
from . import exceptions as _exceptions
from .exceptions import (
    DeadlockError,
    DeadlockWarning,
    LockOrderWarning,
    MessageTooLarge,
    OwnerDied,
    PlaitError,
    PlaitWarning,
    SelfDeadlockWarning,
    SharedMemoryCorrupted,
    ShutDown,
    TaskTimeout,
)

__version__ = "0.1.0"


def _load_report() -> object:
    # Imported on the first deadlock or lock-order report only: its imports cost milliseconds.
    from . import _report

    return _report


# The binding raises plait's exceptions and reports deadlocks through the Python code above it:
# both are handed down once, here, before any native object exists (plait._plait is a submodule:
# whoever uses it has imported this package first).
_plait._install(exceptions=_exceptions, report=_load_report)


def dump(file: IO[str] | None = None, *, json: bool = False) -> str:
    """This process's report: every thread with its stack and the plait locks it holds and waits
    for, deadlocks, asyncio tasks as await trees, greenlets and process pool workers, as text (or
    JSON with ``json=True``); with ``file``, also written there. See :mod:`plait.debug`."""
    from . import debug

    return debug.dump(file, json=json)


def __getattr__(name: str) -> object:
    # Defined on first use (see plait.exceptions): importing plait stays fast.
    if name in ("BrokenProcessPool", "BrokenThreadPool", "RemoteTraceback", "WorkerCrashed"):
        from . import exceptions

        return getattr(exceptions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BrokenProcessPool",
    "BrokenThreadPool",
    "DeadlockError",
    "DeadlockWarning",
    "LockOrderWarning",
    "MessageTooLarge",
    "OwnerDied",
    "PlaitError",
    "PlaitWarning",
    "RemoteTraceback",
    "SelfDeadlockWarning",
    "SharedMemoryCorrupted",
    "ShutDown",
    "TaskTimeout",
    "WorkerCrashed",
    "__version__",
    "dump",
]
