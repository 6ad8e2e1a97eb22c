"""plait.threads: drop-in replacements for ``threading`` and ``queue``, implemented in Rust.

Switching is an import change::

    from plait.threads import Lock, RLock, Condition, Semaphore, Event, Barrier, Queue

Every blocking call releases the GIL while it waits and is interrupted by Ctrl-C. Locks,
RLocks, semaphores and the lock re-taken after a condition wait are tracked in a wait-for graph:
an acquire that would deadlock raises :class:`~plait.DeadlockError` naming every thread, the lock
it waits for, who holds it and where that lock was acquired. See
:func:`set_deadlock_detection`, :func:`check_lock_order` and :func:`dump`.
"""

from __future__ import annotations

import os as _os

from .. import _plait, _report
from ..exceptions import BrokenThreadPool, DeadlockError, LockOrderWarning, ShutDown
from ._pool import ThreadPool

__all__ = [
    "AtomicFlag",
    "AtomicInt",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "BrokenThreadPool",
    "Condition",
    "DeadlockError",
    "Event",
    "LifoQueue",
    "Lock",
    "LockOrderWarning",
    "PriorityQueue",
    "Queue",
    "RLock",
    "Semaphore",
    "ShutDown",
    "SimpleQueue",
    "ThreadPool",
    "check_lock_order",
    "dump",
    "get_deadlock_detection",
    "set_deadlock_detection",
]

from queue import Empty, Full
from threading import BrokenBarrierError

Lock = _plait.Lock
RLock = _plait.RLock
Condition = _plait.Condition
Semaphore = _plait.Semaphore
BoundedSemaphore = _plait.BoundedSemaphore
Event = _plait.Event
Barrier = _plait.Barrier
Queue = _plait.Queue
LifoQueue = _plait.LifoQueue
PriorityQueue = _plait.PriorityQueue
SimpleQueue = _plait.SimpleQueue
AtomicInt = _plait.AtomicInt
AtomicFlag = _plait.AtomicFlag
TIMEOUT_MAX: float = _plait.TIMEOUT_MAX

# After fork() only the forking thread exists: forget the waits and held locks of the others.
_os.register_at_fork(after_in_child=_plait._after_fork_in_child)

__all__ += ["TIMEOUT_MAX", "Empty", "Full"]


def set_deadlock_detection(mode: str) -> None:
    """Choose what a blocking call that would deadlock does, process-wide.

    ``"raise"`` (the default) raises :class:`~plait.DeadlockError` from the call that would close
    the cycle; ``"warn"`` emits :class:`~plait.DeadlockWarning` and then blocks like the stdlib;
    ``"off"`` tracks nothing (the fastest; :func:`dump` then shows no waits or sites).
    """
    _plait.set_deadlock_detection(mode)


def get_deadlock_detection() -> str:
    """The current mode: ``"raise"``, ``"warn"`` or ``"off"``."""
    return _plait.get_deadlock_detection()


def check_lock_order(enabled: bool = True) -> None:
    """Turn lockdep-style lock-order checking on or off.

    While on, plait records the order in which each thread takes locks and warns
    :class:`~plait.LockOrderWarning` the first time two locks are taken in both orders, even if
    this run did not deadlock. Turning it off forgets what was recorded.
    """
    _plait.check_lock_order(bool(enabled))


def dump() -> str:
    """A report of every thread's Python stack with the plait locks it holds and waits for."""
    return _report.dump()
