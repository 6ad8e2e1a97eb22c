"""``ProcessPool`` on Ray (see :class:`plait.backends.Ray` and ``docs/distributed.md``).

Each plait task is one Ray task (``_run``, one CPU) that hands the task's
payload to the pool's :class:`~plait.backends._remote.WorkerSide` in that Ray worker process (one
plait worker there, started with the pool's first task on that process). The Ray task returns
the outcome as a value, so a task that crashes or times out never costs Ray a worker. A Ray
worker that dies all the same (its node, Ray's memory monitor, a kill from outside) is no
task's doing: Ray reruns its task (``max_retries=3``, as Dask's ``allowed-failures``), which also
covers tasks sent to a worker that had just died; then ``WorkerCrashed``.
``cancel_running`` is ``ray.cancel(force=True)``: Ray kills the worker process running the task,
and with it the plait worker it started. Ray cannot reach every worker process of a pool at
shutdown: each stops its plait worker once the pool sent it nothing for ``idle_timeout`` seconds.
"""

from __future__ import annotations

import atexit
import threading
import time
import uuid
from typing import Any

import ray

from ..processes import _executor
from ._remote import DONE_BROKEN, DONE_CANCELLED, DONE_CRASHED, Outcome, RemoteCore, WorkerSide

__all__ = ["RayEngine", "connect"]


# --- in a Ray worker process ------------------------------------------------------------------

# token -> (side, [last use, tasks running, idle timeout])
_sides: dict[str, tuple[WorkerSide, list[float]]] = {}
_sides_lock = threading.Lock()
_reaper: threading.Thread | None = None


def _reap() -> None:
    """Stops the plait workers of pools that sent this process nothing for their idle timeout."""
    while True:
        time.sleep(0.1)
        now = time.monotonic()
        with _sides_lock:
            stale = [t for t, (_, use) in _sides.items() if not use[1] and now - use[0] > use[2]]
            sides = [_sides.pop(t)[0] for t in stale]
        for side in sides:
            side.close()


def _side(token: str, hello: bytes, max_tasks: int | None, idle: float) -> tuple[WorkerSide, list[float]]:
    global _reaper
    with _sides_lock:
        entry = _sides.get(token)
        if entry is None:
            entry = _sides[token] = (WorkerSide(hello, 1, max_tasks), [time.monotonic(), 0, idle])
        if _reaper is None:
            _reaper = threading.Thread(target=_reap, name="plait-reaper", daemon=True)
            _reaper.start()
        entry[1][1] += 1
    return entry


def _run(
    token: str, hello: bytes, max_tasks: int | None, idle: float, key: str, task: tuple[Any, ...]
) -> Outcome:
    """The Ray task of every plait task: runs it in this process's plait worker for the pool."""
    side, use = _side(token, hello, max_tasks, idle)
    fid, definition, body, timeout, blobs = task
    try:
        if blobs:  # references inside an argument are not resolved by Ray: here, once per task
            blobs = [(k, ray.get(d) if isinstance(d, ray.ObjectRef) else d) for k, d in blobs]
        return side.run(key, fid, definition, body, timeout, blobs)
    finally:
        with _sides_lock:
            use[0] = time.monotonic()
            use[1] -= 1


# --- in the pool's process --------------------------------------------------------------------

_exit_hooked = False
#: Reruns of a task whose Ray worker died (as ``distributed.scheduler.allowed-failures``).
_RETRIES = 3


def _hook_exit() -> None:
    """At exit, pools on Ray finish the work already submitted (as local pools do) before the
    thread pools of this process refuse work (concurrent.futures' hook, run by threading at
    shutdown, last registered first)."""
    global _exit_hooked
    _exit_hooked = True
    threading._register_atexit(_executor._python_exit)  # type: ignore[attr-defined]


def _failure(ref: Any) -> Outcome:
    try:
        ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return (DONE_CANCELLED, None, None, 0.0)
    except (
        ray.exceptions.WorkerCrashedError,
        ray.exceptions.NodeDiedError,
        ray.exceptions.OutOfMemoryError,
    ) as exc:
        # The Ray worker itself died (its node, Ray's memory monitor, a kill from outside):
        # plait's own workers never take it down.
        return (DONE_CRASHED, (f"its Ray worker was lost: {type(exc).__name__}", None, None), None, 0.0)
    except Exception as exc:
        return (DONE_BROKEN, f"the Ray cluster could not run the task: {exc!r}", None, 0.0)
    return (DONE_BROKEN, "the Ray task returned no outcome", None, 0.0)


class RayEngine:
    """The :class:`~plait.backends._remote.Engine` of Ray; starts (and owns) a local Ray when
    this process has none and no address is given."""

    def __init__(
        self, address: str | None, options: dict[str, Any], max_workers: int | None, idle: float
    ) -> None:
        self._own = False
        if not ray.is_initialized():
            settings = {"include_dashboard": False, "log_to_driver": False, **options}
            if address is None:
                settings.setdefault("num_cpus", max_workers or _executor._cpu_count())
            ray.init(address=address, **settings)
            self._own = True
            # ray.init registered ray.shutdown at exit: pools on it finish their work first
            # (atexit runs the last registered first; see _dask for threading's hook).
            atexit.register(_executor._python_exit)
        if not _exit_hooked:
            _hook_exit()
        self.slots = max_workers or int(ray.cluster_resources().get("CPU", 1)) or 1
        self.token = f"plait-{uuid.uuid4().hex[:12]}"
        self._idle = idle
        # Only infrastructure kills a Ray worker here (plait's workers take the crashes); a
        # force-cancelled task is never retried.
        self._task = ray.remote(max_retries=_RETRIES, num_cpus=1)(_run)

    def register(self, hello: bytes, max_tasks: int | None) -> None:
        self._hello = ray.put(hello)
        self._max_tasks = max_tasks

    def submit(self, key: str, task: tuple[Any, ...]) -> Any:
        return self._task.remote(self.token, self._hello, self._max_tasks, self._idle, key, task)

    def finished(self, handles: list[Any]) -> list[int]:
        ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0, fetch_local=False)
        done = set(ready)
        return [i for i, ref in enumerate(handles) if ref in done]

    def fetch(self, handles: list[Any]) -> list[Outcome]:
        try:
            return list(ray.get(handles))
        except Exception:  # one of them failed: one by one
            outcomes = []
            for ref in handles:
                try:
                    outcomes.append(ray.get(ref))
                except Exception:
                    outcomes.append(_failure(ref))
            return outcomes

    def cancel(self, key: str, handle: Any) -> None:
        ray.cancel(handle, force=True)

    def publish(self, data: bytes, everywhere: bool) -> Any:
        return ray.put(data)  # in the object store: each node fetches it once

    def close(self) -> None:
        if self._own:
            ray.shutdown()


def connect(
    address: str | None,
    options: dict[str, Any],
    max_workers: int | None,
    hello: bytes,
    complete: Any,
    max_tasks: int | None,
    idle: float,
) -> RemoteCore:
    """A pool's backend on Ray: the engine and the remote core over it."""
    engine = RayEngine(address, options, max_workers, idle)
    try:
        engine.register(hello, max_tasks)
    except BaseException:
        engine.close()
        raise
    return RemoteCore(engine, complete, engine.token)
