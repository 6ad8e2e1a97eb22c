"""``start_method="fork"``: the pool's launcher that forks this process for each worker.

The dispatcher calls :func:`fork_worker` with the new worker's socket; the child serves it with
the worker loop (:mod:`plait.processes._worker`) and exits. At interpreter shutdown, where
Python 3.12+ refuses to fork, it declines and the dispatcher spawns that worker instead. The
fork server (``_forkserver``) is the other launcher that forks; the "spawn" one is the
dispatcher's own (``python -m``).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from .. import _plait
from ._worker import serve_forked

__all__ = ["fork_worker"]


def fork_worker(fd: int, inherited: tuple[Any, tuple[Any, ...]] | None = None) -> int | None:
    """start_method="fork": called by the dispatcher with the new worker's socket fd; the child
    serves that socket (a copy of this interpreter, as multiprocessing's fork does) and exits.
    ``inherited`` is the pool's ``(initializer, initargs)``: the child calls these very objects,
    as a child of ``multiprocessing``'s fork does, so ``initargs`` need not pickle (a
    ``multiprocessing.Queue``, ``Lock`` or ``Value`` is shared by inheritance).

    Returns None where this interpreter refuses to fork: from Python 3.12, once it is shutting
    down (``os.fork`` raises "can't fork at interpreter shutdown" as soon as the main thread is
    done, before the pools' exit hook has run the work still queued). The dispatcher then starts
    that worker as with ``start_method="spawn"``, a fresh interpreter: the queued work still runs
    (functions defined in ``__main__`` travel by value), though it does not see state that the
    parent set up after its imports.
    """
    try:
        pid = os.fork()
    except RuntimeError:
        return None
    if pid == 0:  # pragma: no cover - runs in the child
        serve_forked(fd, lambda: _prepare_child(fd), inherited)
    return pid


def _prepare_child(fd: int) -> None:
    _forget_imports_in_progress()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _close_inherited_segments(fd)


def _forget_imports_in_progress() -> None:
    """In a forked worker: drop the modules that another thread of the pool's process was
    importing at the moment of the fork. The fork runs on the dispatcher thread while the
    caller's threads go on (importing cloudpickle for a first ``submit``, ``multiprocessing``'s
    modules for a ``Manager()``...): such a module is half executed here, and its import lock is
    held by a thread that does not exist in this process, so importing it would block forever.
    Forgotten, it is imported afresh when the worker needs it. Only this thread runs here, so
    every module lock left is stale: they are dropped too."""
    bootstrap = sys.modules.get("_frozen_importlib")  # importlib._bootstrap, always loaded
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if spec is not None and getattr(spec, "_initializing", False):
            del sys.modules[name]
    locks = getattr(bootstrap, "_module_locks", None)
    if isinstance(locks, dict):
        locks.clear()


def _close_inherited_segments(keep: int) -> None:
    """In a forked worker: close the parent's shared-memory segment descriptors (queued tasks',
    ``Shared`` objects'), so their memory is freed when the parent lets go of it, not when this
    worker exits. Other inherited descriptors stay open, as with multiprocessing's fork. The
    inherited segment objects are told first, so that dropping one later cannot close the new
    file (a received segment) that has taken its descriptor's number."""
    _plait._abandon_inherited_segments()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd != keep:
            try:
                if os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:plait-shm"):
                    os.close(fd)
            except OSError:
                pass
