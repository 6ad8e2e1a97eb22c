"""plait's exceptions and warnings.

Every error plait raises on its own account derives from :class:`PlaitError`, and also from the
builtin it refines, so existing ``except RuntimeError`` / ``except TimeoutError`` clauses keep
working when code switches to plait.
"""

from __future__ import annotations

import queue as _queue
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BrokenThreadPool",
    "DeadlockEdge",
    "DeadlockError",
    "DeadlockWarning",
    "LockInfo",
    "LockOrderWarning",
    "MessageTooLarge",
    "OwnerDied",
    "PlaitError",
    "ShutDown",
]


class PlaitError(Exception):
    """Base class of every exception raised by plait itself."""


@dataclass(frozen=True)
class LockInfo:
    """A lock (or other primitive) as it appears in a deadlock report."""

    label: str
    """``Lock 'db'`` or ``Lock #12``."""
    kind: str
    """``Lock``, ``RLock``, ``Semaphore``, ..."""
    name: str | None
    id: int
    """Process-unique id of the primitive."""
    acquired_at: str | None
    """``file:line (function)`` where its current holder acquired it, when known."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "name": self.name,
            "id": self.id,
            "acquired_at": self.acquired_at,
        }


@dataclass(frozen=True)
class DeadlockEdge:
    """One thread of a deadlock: it waits for ``waits_for``, which ``held_by`` hold."""

    thread_ident: int
    thread_name: str
    waits_for: LockInfo
    held_by: tuple[tuple[int, str], ...]
    """``(ident, name)`` of each holder."""
    stack: list[str] = field(default_factory=list)
    """The thread's Python stack at the time of the report, formatted like a traceback."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_ident": self.thread_ident,
            "thread_name": self.thread_name,
            "waits_for": self.waits_for.to_dict(),
            "held_by": [{"ident": i, "name": n} for i, n in self.held_by],
            "stack": list(self.stack),
        }


class DeadlockError(PlaitError, RuntimeError):
    """A blocking call would never return: the threads in :attr:`cycle` wait for each other.

    Raised by the call that would have closed the cycle, instead of hanging. The message lists
    every thread, the lock it waits for, who holds it and where it was acquired, plus each
    thread's stack. The same data is in :attr:`cycle` (see :meth:`to_dict` for JSON).
    """

    def __init__(self, message: str, cycle: list[DeadlockEdge] | None = None) -> None:
        super().__init__(message)
        self.cycle: list[DeadlockEdge] = list(cycle or [])

    def to_dict(self) -> dict[str, Any]:
        return {"message": str(self), "cycle": [e.to_dict() for e in self.cycle]}


class DeadlockWarning(RuntimeWarning):
    """Emitted instead of :class:`DeadlockError` in ``set_deadlock_detection("warn")`` mode."""


class LockOrderWarning(RuntimeWarning):
    """Two locks were taken in both orders: a deadlock is possible even if none happened yet."""


if hasattr(_queue, "ShutDown"):  # Python 3.13+: catchable as queue.ShutDown too.

    class ShutDown(PlaitError, _queue.ShutDown):  # type: ignore[name-defined,misc]
        """Raised by ``put``/``get`` on a queue that was shut down."""

else:

    class ShutDown(PlaitError):  # type: ignore[no-redef]
        """Raised by ``put``/``get`` on a queue that was shut down (as ``queue.ShutDown`` in 3.13)."""


try:
    from concurrent.futures.thread import BrokenThreadPool as _BrokenThreadPool
except ImportError:  # pragma: no cover - always present on 3.11+
    _BrokenThreadPool = RuntimeError  # type: ignore[misc,assignment]


class BrokenThreadPool(PlaitError, _BrokenThreadPool):
    """A worker's initializer failed; the pool cannot run tasks any more."""


from concurrent.futures.process import BrokenProcessPool as _BrokenProcessPool  # noqa: E402


class BrokenProcessPool(PlaitError, _BrokenProcessPool):
    """The process pool cannot run tasks: its workers fail to start or its initializer failed."""


class WorkerCrashed(PlaitError, RuntimeError):
    """The worker process running a task died (crash, signal, ``os._exit``, OOM kill).

    Only that task fails; the pool starts a replacement worker and goes on.
    """

    def __init__(self, message: str, exitcode: int | None = None, signal: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode
        """The worker's exit code, if it exited."""
        self.signal = signal
        """The signal that killed the worker, if one did."""


class TaskTimeout(PlaitError, TimeoutError):
    """A task ran longer than its timeout; its worker was killed and replaced."""

    def __init__(self, message: str, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class RemoteTraceback(Exception):
    """Attached as ``__cause__`` of an exception raised in a worker: the worker's traceback."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class OwnerDied(PlaitError, RuntimeError):
    """A process died while holding a process-shared lock; the caller now holds it.

    Raised by ``acquire()`` of :class:`plait.processes.Lock` / ``RLock`` (and by
    ``Condition.wait`` re-acquiring its lock) to exactly one process: the next one to acquire
    after the holder died. Like a pthread robust mutex's ``EOWNERDEAD``, it means that the state
    the lock protects may be half-updated. The caller **holds the lock** when ``acquire()``
    raises this: repair the state, then ``release()``. In a ``with`` statement the lock is
    released again before this propagates (no ``__exit__`` runs when ``__enter__`` raises), so
    use ``acquire()`` explicitly where the repair must happen under the lock.
    """


class MessageTooLarge(PlaitError, ValueError):
    """A message does not fit a process-shared queue's ring even when the ring is empty.

    Raised by ``put`` before anything is written. Create the queue with a larger
    ``capacity=`` (bytes), or send large data another way (``plait.processes.share``).
    """
