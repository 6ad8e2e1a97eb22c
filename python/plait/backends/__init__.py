"""plait.backends: run ``ProcessPool`` (and ``plait.processes.Pool``) on a cluster.

::

    from plait.backends import Dask
    from plait.processes import ProcessPool

    with ProcessPool(backend=Dask("tcp://scheduler:8786")) as pool:
        results = list(pool.map(simulate, seeds))

``Dask(client_or_address_or_cluster=None, **cluster_options)`` runs tasks on Dask distributed (a
``Client``, a scheduler address, or a cluster object; none: a ``LocalCluster`` of its own, sized
like the local pool). ``Ray(address=None, **init_options)`` runs them on Ray. The pool's API and
guarantees are those of the local pool: a task that crashes fails alone with ``WorkerCrashed``,
timeouts and ``cancel_running`` stop only their task, maps chunk adaptively and stream lazy
inputs, ``share()`` objects are published once to the cluster. Every task runs in a plait worker
process started inside an engine worker, so the engine's workers never die of a task. See
``docs/distributed.md``, with what each engine forces to differ.

The engines are optional: ``pip install plait[dask]`` or ``plait[ray]``; plait imports them only
when a backend is made.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Dask", "Ray"]


def _require(module: str, extra: str, what: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"plait.backends.{what} needs {module}, which is not installed: pip install plait[{extra}]"
        ) from exc


class Dask:
    """``ProcessPool``'s tasks on Dask distributed.

    ``client_or_address_or_cluster``: a ``distributed.Client`` (used as it is, left open), a
    scheduler address (``"tcp://host:8786"``), or a cluster object (``LocalCluster``,
    dask-jobqueue, dask-kubernetes); None starts a ``LocalCluster`` on loopback for the pool
    (``ProcessPool(max_workers)`` single-threaded worker processes, no dashboard;
    ``cluster_options`` go to it) and closes it at shutdown. The pool's ``max_workers`` is the
    number of tasks it keeps running on the cluster (default: the cluster's threads).

    Example::

        ProcessPool(backend=Dask(client))        # an existing client
        ProcessPool(backend="dask")              # a LocalCluster of its own
    """

    def __init__(self, client_or_address_or_cluster: Any = None, /, **cluster_options: Any) -> None:
        _require("distributed", "dask", "Dask")
        if cluster_options and client_or_address_or_cluster is not None:
            raise TypeError("cluster_options are for the LocalCluster Dask() starts when given no cluster")
        self.target = client_or_address_or_cluster
        self.cluster_options = cluster_options

    def _connect(self, max_workers: int | None, hello: bytes, complete: Any, max_tasks: int | None) -> Any:
        from . import _dask

        return _dask.connect(self.target, self.cluster_options, max_workers, hello, complete, max_tasks)

    def __repr__(self) -> str:
        return f"plait.backends.Dask({self.target!r})"


class Ray:
    """``ProcessPool``'s tasks on Ray.

    ``address``: the cluster's address (``"ray://head:10001"``, ``"auto"``); None uses the Ray
    already initialised in this process, else starts a local one (``ray.init`` with
    ``init_options``; it is shut down with the pool). The pool's ``max_workers`` is the number
    of tasks it keeps running on the cluster (default: the cluster's CPUs). Each Ray worker
    process that ran the pool's tasks stops its plait worker ``idle_timeout`` seconds after its
    last one (Ray offers no way to reach all of them at shutdown).
    """

    def __init__(
        self, address: str | None = None, /, *, idle_timeout: float = 10.0, **init_options: Any
    ) -> None:
        _require("ray", "ray", "Ray")
        if not idle_timeout > 0:
            raise ValueError("idle_timeout must be a positive number of seconds")
        self.address = address
        self.idle_timeout = idle_timeout
        self.init_options = init_options

    def _connect(self, max_workers: int | None, hello: bytes, complete: Any, max_tasks: int | None) -> Any:
        from . import _ray

        return _ray.connect(
            self.address, self.init_options, max_workers, hello, complete, max_tasks, self.idle_timeout
        )

    def __repr__(self) -> str:
        return f"plait.backends.Ray({self.address!r})"


def resolve(backend: Any) -> Dask | Ray:
    """``ProcessPool(backend=...)``'s argument as a backend: ``"dask"``, ``"ray"``, or an
    instance of :class:`Dask` or :class:`Ray` (anything with their ``_connect``)."""
    if backend == "dask":
        return Dask()
    if backend == "ray":
        return Ray()
    expected = "backend must be 'local', 'dask', 'ray' or a plait.backends object"
    if isinstance(backend, str):
        raise ValueError(f"{expected}, not {backend!r}")
    if not callable(getattr(backend, "_connect", None)):
        raise TypeError(f"{expected}, not {type(backend).__qualname__}")
    return backend  # type: ignore[no-any-return]
