"""``ThreadPool``: ``concurrent.futures.ThreadPoolExecutor`` compatible, with the hot paths in Rust
(``_plait.ThreadPoolCore``); its futures are :class:`plait._pool.Future`."""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .. import _plait
from .._pool import Future  # noqa: F401 - imported, it registers the type of futures

__all__ = ["ThreadPool"]

_live_pools: weakref.WeakSet[ThreadPool] = weakref.WeakSet()
_exiting = False


def _python_exit() -> None:
    """At interpreter exit, let every pool finish its queued work, as ThreadPoolExecutor does."""
    global _exiting
    _exiting = True
    for pool in list(_live_pools):
        pool.shutdown(wait=True)


threading._register_atexit(_python_exit)  # type: ignore[attr-defined]


class ThreadPool(_plait.ThreadPoolCore, concurrent.futures.Executor):  # type: ignore[misc]
    """A thread pool executor, drop-in for ``concurrent.futures.ThreadPoolExecutor``.

    ``submit`` and ``map`` are the native methods of ``ThreadPoolCore``. ``submit`` returns a
    :class:`Future` that works with ``concurrent.futures.wait``, ``as_completed`` and
    ``asyncio.wrap_future``; a task's exception re-raises from ``result()`` with the worker's
    traceback. ``map`` runs without a future per item and yields results in order.

    Example::

        with ThreadPool(max_workers=8) as pool:
            sizes = list(pool.map(len, pages))
    """

    _counter = itertools.count().__next__

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        # Arguments were validated by the native __new__.
        self._thread_name_prefix = thread_name_prefix or f"ThreadPool-{self._counter()}"
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._shutdown = False
        _live_pools.add(self)

    def _start_worker(self) -> None:
        if _exiting:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        with self._threads_lock:
            name = f"{self._thread_name_prefix}_{len(self._threads)}"
            thread = threading.Thread(name=name, target=self._worker_target())
            thread.start()
            self._threads.append(thread)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; with ``wait``, join the workers after the queue drains.

        ``cancel_futures=True`` cancels every task that has not started.
        """
        self._shutdown = True
        self._shutdown_core(cancel_futures)
        if wait:
            with self._threads_lock:
                threads = list(self._threads)
            for t in threads:
                if t is not threading.current_thread():
                    t.join()
