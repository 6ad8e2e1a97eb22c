"""The pool's ``initargs`` on their way to every worker it starts, descriptors included.

``ProcessPoolExecutor`` hands ``initargs`` to each worker as ``multiprocessing`` starts it, so
they may hold what ``multiprocessing`` shares with a child only as it starts: its ``Queue``,
``Lock``, ``Value``, ``Array`` (of a context other than "fork"), and plait's own process-shared
objects. plait pickles ``initargs`` once, the same way: with ``multiprocessing``'s
``ForkingPickler`` while a stand-in for the child being started (:class:`_Starting`) collects
the descriptors those objects hand over. The dispatcher sends duplicates of them with each
worker's setup message; in the worker, :func:`loads` gives each object its descriptor back
(:class:`SetupFd`). Named semaphores travel by name, as with "spawn". A pool that forks hands
its workers the objects themselves instead (``_fork``).
"""

from __future__ import annotations

import io
import os
import pickle

# Not `typing.TYPE_CHECKING`: the worker imports this module, and typing costs milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["SetupFd", "dumps", "loads"]

# In a worker, while its setup is unpickled: the descriptors that came with it.
_received: list[int] = []


class SetupFd:
    """Stands in for ``multiprocessing.reduction.DupFd`` in a pool's setup: the descriptor with
    this index among those sent with it. ``detach()`` returns a descriptor of its own. (No
    ``__slots__``: plait's objects note the segment they made of it on the object.)"""

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[type[SetupFd], tuple[int]]:
        return SetupFd, (self.index,)

    def detach(self) -> int:
        return os.dup(_received[self.index])


class _Starting:
    """What ``multiprocessing`` consults (``get_spawning_popen()``) while it pickles objects for
    a child being started: they hand their descriptors to :meth:`duplicate_for_child`."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def duplicate_for_child(self, fd: int) -> int:
        self.fds.append(fd)
        return len(self.fds) - 1

    def DupFd(self, index: int) -> SetupFd:  # multiprocessing calls it by this name
        return SetupFd(index)


def dumps(obj: Any) -> tuple[bytes, list[int]]:
    """``obj`` pickled for the workers' setup, and the descriptors to send with it (still owned
    by the objects in ``obj``: the dispatcher duplicates them at once). What plain pickling
    cannot send (lambdas, functions of ``__main__``) goes by value with cloudpickle.
    Raises what ``multiprocessing`` raises for objects it cannot hand to a new child (a "fork"
    context's lock: ``RuntimeError``), and ``TypeError`` for the rest."""
    from multiprocessing import context, reduction

    starting = _Starting()
    previous = context.get_spawning_popen()
    context.set_spawning_popen(starting)
    try:
        buffer = io.BytesIO()
        try:
            reduction.ForkingPickler(buffer, protocol=5).dump(obj)
            data = buffer.getvalue()
            if b"__main__" in data:
                raise pickle.PicklingError("refers to __main__")
        except (pickle.PicklingError, AttributeError, TypeError):
            starting.fds.clear()
            data = _cloudpickle(obj, reduction.ForkingPickler)
    finally:
        context.set_spawning_popen(previous)
    return data, starting.fds


def _cloudpickle(obj: Any, forking: Any) -> bytes:
    import collections

    import cloudpickle

    class Pickler(cloudpickle.Pickler):  # type: ignore[misc]
        # multiprocessing's reducers (connections, sockets, arenas) before cloudpickle's.
        dispatch_table = collections.ChainMap(forking._extra_reducers, cloudpickle.Pickler.dispatch_table)

    buffer = io.BytesIO()
    try:
        Pickler(buffer, protocol=5).dump(obj)
    except Exception as exc:
        if isinstance(exc, RuntimeError):
            raise
        raise TypeError(f"cannot send {type(obj).__qualname__} object to a worker process: {exc}") from exc
    return buffer.getvalue()


def loads(data: bytes, fds: list[int]) -> Any:
    """In a worker: the object :func:`dumps` pickled, given the descriptors that came with it.
    Takes them (``fds`` is left empty) and closes them: each object took a duplicate."""
    _received[:] = fds
    fds.clear()
    try:
        return pickle.loads(data)
    finally:
        for fd in _received:
            os.close(fd)
        _received.clear()
