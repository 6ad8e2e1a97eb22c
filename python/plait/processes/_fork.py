"""``start_method="fork"``: the pool's launcher that forks this process for each worker.

The dispatcher calls :func:`fork_worker` with the new worker's socket; the child serves it with
the worker loop (:mod:`plait.processes._worker`) and exits. The fork server (``_forkserver``) is
the other launcher that forks; the "spawn" one is the dispatcher's own (``python -m``).
"""

from __future__ import annotations

import os
import signal
import sys

from .. import _plait

__all__ = ["fork_worker"]


def fork_worker(fd: int) -> int:
    """start_method="fork": called by the dispatcher with the new worker's socket fd; the child
    serves that socket (a copy of this interpreter, as multiprocessing's fork does) and exits."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            from ._worker import serve  # in the child only: the pool itself never serves

            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _close_inherited_segments(fd)
            code = serve(_plait.FrameChannel(fd))
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


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
