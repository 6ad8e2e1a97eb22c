"""``ProcessPool`` on Dask distributed (see :class:`plait.backends.Dask` and ``docs/distributed.md``).

Each plait task is one Dask task (``_run``) that hands the task's payload to the pool's
:class:`~plait.backends._remote.WorkerSide` in that Dask worker, held by a worker plugin
(``_Plugin``, registered for the pool's lifetime: current and future workers get it, and
unregistering it stops the pool's plait workers everywhere). The Dask task returns the outcome as
a value, so a task that crashes, times out or is cancelled never costs Dask a worker: no
``KilledWorker``, no retries, no lost neighbours. A cancel reaches every worker with
``Client.run`` (``_cancel``); ``share()`` objects are scattered once with ``broadcast=True``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
import uuid
from typing import Any

from distributed import Client, LocalCluster, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from ..processes import _executor
from ._remote import DONE_BROKEN, DONE_CANCELLED, DONE_CRASHED, Outcome, RemoteCore, WorkerSide

__all__ = ["DaskEngine", "connect"]

# At exit, pools on Dask finish the work already submitted (as local pools do) while the client
# can still run: before the thread pools it relies on refuse work (concurrent.futures' hook,
# run by threading at shutdown, last registered first) and before distributed's atexit closes
# its clients and clusters (atexit too runs the last registered first).
threading._register_atexit(_executor._python_exit)  # type: ignore[attr-defined]
atexit.register(_executor._python_exit)


class _Plugin(WorkerPlugin):  # type: ignore[misc]
    """A pool's presence in every Dask worker: its :class:`WorkerSide` (plait workers there,
    started with the first task), stopped when the pool unregisters it or the worker closes."""

    def __init__(self, hello: bytes, max_tasks: int | None) -> None:
        self.hello = hello
        self.max_tasks = max_tasks
        self.side: WorkerSide | None = None

    def setup(self, worker: Any) -> None:
        nthreads = getattr(worker, "nthreads", None) or worker.state.nthreads
        self.side = WorkerSide(self.hello, nthreads, self.max_tasks)

    def teardown(self, worker: Any) -> None:
        if self.side is not None:
            self.side.close()


def _side(name: str, worker: Any) -> WorkerSide:
    plugin = worker.plugins.get(name)
    if plugin is None or plugin.side is None:
        raise RuntimeError(f"this Dask worker has no plait pool {name!r} (was the pool shut down?)")
    return plugin.side  # type: ignore[no-any-return]


def _run(name: str, key: str, task: tuple[Any, ...]) -> Outcome:
    """The Dask task of every plait task: runs it in one of the pool's plait workers here."""
    return _side(name, get_worker()).run(key, *task)


def _cancel(name: str, key: str, dask_worker: Any = None) -> None:
    """Run on every Dask worker by ``Client.run``: stop ``key`` wherever it runs or would run."""
    plugin = dask_worker.plugins.get(name) if dask_worker is not None else None
    if plugin is not None and plugin.side is not None:
        plugin.side.cancel(key)


def _failure(future: Any) -> Outcome:
    """The outcome of a Dask future that did not return one: cancelled, or lost with its worker."""
    if future.status == "cancelled":
        return (DONE_CANCELLED, None, None, 0.0)
    try:
        exc = future.exception()
    except Exception as error:  # cancelled meanwhile, or the scheduler is gone
        exc = error
    if isinstance(exc, concurrent.futures.CancelledError | asyncio.CancelledError):
        return (DONE_CANCELLED, None, None, 0.0)
    if type(exc).__name__ == "KilledWorker":
        # The Dask worker itself died (its machine, the OOM killer, a kill from outside): plait's
        # own workers never take it down.
        return (DONE_CRASHED, (f"its Dask worker was lost: {exc}", None, None), None, 0.0)
    return (DONE_BROKEN, f"the Dask cluster could not run the task: {exc!r}", None, 0.0)


class DaskEngine:
    """The :class:`~plait.backends._remote.Engine` of a Dask client; starts a ``LocalCluster``
    (and owns it) when given no client, address or cluster."""

    def __init__(self, target: Any, options: dict[str, Any], max_workers: int | None) -> None:
        self._cluster: Any = None
        self._own_client = True
        if target is None:
            workers = max_workers or _executor._cpu_count()
            settings: dict[str, Any] = {"n_workers": workers, "threads_per_worker": 1, "processes": True}
            # Loopback only; its HTTP server (health checks, and the dashboard when bokeh is
            # installed) on a free port: the default, 8787, collides with any other cluster.
            settings |= {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0", **options}
            self._cluster = LocalCluster(**settings)
            try:
                self.client = Client(self._cluster)
            except BaseException:
                self._cluster.close()
                raise
        elif isinstance(target, Client):
            self.client, self._own_client = target, False
        else:  # an address, or a cluster object (LocalCluster, a dask-jobqueue or Kubernetes one)
            self.client = Client(target)
        self.slots = max_workers or sum(self.client.nthreads().values()) or 1
        # Results straight from the workers (the scheduler, in this process with a LocalCluster,
        # is spared a hop per batch: ~25% of the pool's time on tiny tasks), unless the client
        # was told not to, or the workers turn out to be out of this process's reach.
        self._direct = self.client.direct_to_workers is not False
        self.name = f"plait-{uuid.uuid4().hex[:12]}"

    def register(self, hello: bytes, max_tasks: int | None) -> None:
        self.client.register_plugin(_Plugin(hello, max_tasks), name=self.name)

    def submit(self, key: str, task: tuple[Any, ...]) -> Any:
        return self.client.submit(_run, self.name, key, task, key=key, pure=False)

    def finished(self, handles: list[Any]) -> list[int]:
        return [i for i, future in enumerate(handles) if future.status != "pending"]

    def fetch(self, handles: list[Any]) -> list[Outcome]:
        outcomes: list[Any] = [None] * len(handles)
        finished = [i for i, f in enumerate(handles) if f.status == "finished"]
        if finished:
            try:
                values = self._gather([handles[i] for i in finished])
            except Exception:  # one of them was lost meanwhile: one by one
                values = [_value(handles[i]) for i in finished]
            for i, value in zip(finished, values, strict=True):
                outcomes[i] = value
        for i, future in enumerate(handles):
            if outcomes[i] is None:
                outcomes[i] = _failure(future)
        return outcomes

    def _gather(self, futures: list[Any]) -> list[Any]:
        if self._direct:
            try:
                return self.client.gather(futures, direct=True)  # type: ignore[no-any-return]
            except OSError:  # no route to the workers from here: through the scheduler
                self._direct = False
        return self.client.gather(futures)  # type: ignore[no-any-return]

    def cancel(self, key: str, handle: Any) -> None:
        self.client.run(_cancel, self.name, key)
        handle.cancel()

    def publish(self, data: bytes, everywhere: bool) -> Any:
        return self.client.scatter(data, broadcast=everywhere, hash=False)

    def close(self) -> None:
        try:
            if self.client.status == "running":
                self.client.unregister_worker_plugin(self.name)
        finally:
            if self._own_client:
                self.client.close()
            if self._cluster is not None:
                self._cluster.close()


def _value(future: Any) -> Outcome:
    try:
        return future.result()  # type: ignore[no-any-return]
    except Exception:
        return _failure(future)


def connect(
    target: Any,
    options: dict[str, Any],
    max_workers: int | None,
    hello: bytes,
    complete: Any,
    max_tasks: int | None,
) -> RemoteCore:
    """A pool's backend on Dask: the engine, its worker plugin, and the remote core over it."""
    engine = DaskEngine(target, options, max_workers)
    try:
        engine.register(hello, max_tasks)
    except BaseException:
        engine.close()
        raise
    return RemoteCore(engine, complete, engine.name)
