"""plait.processes: a process pool that survives crashes, enforces timeouts and cancels; and
process-shared queues, locks and counters in shared memory (see ``docs/ipc.md``).

``Pool`` is ``multiprocessing.Pool`` on the same dispatcher (``_mp_pool``), and the
``multiprocessing`` names plait does not reimplement (``Process``, ``get_context``,
``cpu_count``, ``Manager``, ...) are re-exported as they are: ``import plait.processes as
multiprocessing`` works for ordinary programs.

``ProcessPool`` is a ``concurrent.futures.Executor`` (``submit``, ``map``, ``shutdown``, context
manager) with ``multiprocessing.Pool``'s ``imap``, ``imap_unordered`` and ``starmap``. A worker that
dies fails only the task it was running (:class:`~plait.WorkerCrashed`); a task past its timeout
gets :class:`~plait.TaskTimeout` and its worker is replaced; ``pool.cancel_running(future)`` stops
a running task. Functions defined in ``__main__``, lambdas and closures work (they travel by value
with cloudpickle). Workers start by "spawn" (the default), "forkserver" or "fork". The dispatcher
(task queue, worker supervision, result collection) is Rust.

The package, by concern (each module imports only the ones below it):

- ``_mp_pool``: ``Pool`` (``multiprocessing.Pool``'s API) driving a ``ProcessPool``;
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

# multiprocessing's names that plait does not reimplement, re-exported as they are (the same
# objects), so that ``import plait.processes as multiprocessing`` works for ordinary programs.
# ``Value``/``Array``/``RawValue``/``RawArray`` are multiprocessing's ctypes in shared memory:
# they go to ``Process`` children (as in multiprocessing), not to pool tasks; plait's
# ``AtomicInt`` and ``SharedArray`` go anywhere.
_MULTIPROCESSING = (
    "Array",
    "AuthenticationError",
    "BufferTooShort",
    "Manager",
    "Process",
    "ProcessError",
    "RawArray",
    "RawValue",
    "TimeoutError",
    "Value",
    "active_children",
    "allow_connection_pickling",
    "cpu_count",
    "current_process",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_logger",
    "get_start_method",
    "log_to_stderr",
    "parent_process",
    "set_executable",
    "set_forkserver_preload",
    "set_start_method",
)

__all__ = [
    "AsyncResult",
    "AtomicInt",
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Connection",
    "Event",
    "JoinableQueue",
    "Lock",
    "MapResult",
    "Pipe",
    "Pool",
    "ProcessPool",
    "Queue",
    "RLock",
    "Semaphore",
    "Shared",
    "SharedArray",
    "SimpleQueue",
    "share",
    *_MULTIPROCESSING,
]

# Where each name is defined (a module relative to this package).
_HOMES = {
    "ProcessPool": "._executor",
    **dict.fromkeys(("AsyncResult", "MapResult", "Pool"), "._mp_pool"),
    **dict.fromkeys(_MULTIPROCESSING, "multiprocessing"),
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
