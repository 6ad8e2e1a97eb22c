"""plait.processes: a process pool that survives crashes, enforces timeouts and cancels; and
process-shared queues, locks and counters in shared memory (see ``docs/ipc.md``).

``ProcessPool`` is a ``concurrent.futures.Executor`` (``submit``, ``map``, ``shutdown``, context
manager) with ``multiprocessing.Pool``'s ``imap``, ``imap_unordered`` and ``starmap``. A worker that
dies fails only the task it was running (:class:`~plait.WorkerCrashed`); a task past its timeout
gets :class:`~plait.TaskTimeout` and its worker is replaced; ``pool.cancel_running(future)`` stops
a running task. Functions defined in ``__main__``, lambdas and closures work (they travel by value
with cloudpickle). Workers start by "spawn" (the default), "forkserver" or "fork". The dispatcher
(task queue, worker supervision, result collection) is Rust.

The package, by concern (each module imports only the ones below it):

- ``_executor``: ``ProcessPool``, its dispatcher and completer threads;
- ``_planner``: the chunks of maps, and the chunk loop that runs in workers;
- ``_fork`` and ``_forkserver``: the "fork" and "forkserver" launchers;
- ``_worker``: the worker loop (``python -m plait.processes._worker``);
- ``_wire``: how tasks, results and ``Shared`` objects are pickled (buffers in shared memory);
- ``_ipc``: the process-shared objects (``Queue``, ``Lock``, ``Pipe``, ...).

Names are imported on first use: a worker process imports this package to reach ``_worker``,
``_wire`` or ``_planner`` and must not pay for the pool, cloudpickle or ``multiprocessing``.
"""

from __future__ import annotations

import importlib

__all__ = [
    "AtomicInt",
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Connection",
    "Event",
    "JoinableQueue",
    "Lock",
    "Pipe",
    "ProcessPool",
    "Queue",
    "RLock",
    "Semaphore",
    "Shared",
    "SharedArray",
    "SimpleQueue",
    "share",
]

# Where each name is defined (a module relative to this package).
_HOMES = {
    "ProcessPool": "._executor",
    "Shared": "._wire",
    "share": "._wire",
    **dict.fromkeys(
        (
            "AtomicInt",
            "Barrier",
            "BoundedSemaphore",
            "Condition",
            "Connection",
            "Event",
            "JoinableQueue",
            "Lock",
            "Pipe",
            "Queue",
            "RLock",
            "Semaphore",
            "SharedArray",
            "SimpleQueue",
        ),
        "._ipc",
    ),
    # Not in __all__, importable from here before the package split: kept so.
    **dict.fromkeys(("BrokenProcessPool", "RemoteTraceback", "TaskTimeout", "WorkerCrashed"), "..exceptions"),
    **dict.fromkeys(
        (
            "DONE_BROKEN",
            "DONE_CANCELLED",
            "DONE_CRASHED",
            "DONE_ERR",
            "DONE_OK",
            "DONE_TIMED_OUT",
            "DONE_UNSENDABLE",
        ),
        "._executor",
    ),
    "Future": ".._pool",
    "Backend": ".._backend",
    "ForkServer": "._forkserver",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
