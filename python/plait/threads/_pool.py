"""``ThreadPool``: ``concurrent.futures.ThreadPoolExecutor`` compatible, with the hot paths in Rust
(``_plait.ThreadPoolCore``); its futures are :class:`plait._pool.Future`.

Beyond the executor's API it has ``ProcessPool``'s conveniences: ``starmap``, ``imap``,
``imap_unordered``, ``progress=`` on every map, and per-task timeouts (``options(timeout=)``,
enforced by a :class:`_Watchdog`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import heapq
import itertools
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .. import _plait
from .._pool import Future
from .._progress import Progress, progress_bar
from ..exceptions import TaskTimeout

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


def _check_chunksize(chunksize: int | None) -> None:
    if chunksize is not None and chunksize < 1:
        raise ValueError("chunksize must be >= 1")


def _check_progress(progress: bool | str | None) -> None:
    """Rejects a bad ``progress`` before any work is scheduled (as ``progress_bar`` would)."""
    if progress not in (False, None, True, "always"):
        raise ValueError(f"progress must be True, False or 'always', not {progress!r}")


class _Armed:
    """One running task with a timeout: its future until it returns (or times out)."""

    __slots__ = ("future", "timeout")

    def __init__(self, future: Future | None, timeout: float) -> None:
        self.future = future
        self.timeout = timeout


class _Watchdog:
    """Fails the future of a task that runs longer than its timeout with :class:`TaskTimeout`.

    A thread cannot be stopped from outside, so the task runs on in its worker; when it returns,
    its result (or exception) is discarded. Armed by the worker as the task starts and disarmed
    as it returns (see ``thread_pool.rs``); one thread per pool, running only while a timed task
    runs.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Armed]] = []
        self._seq = itertools.count()
        self._running = False
        self._thread: threading.Thread | None = None

    def arm(self, future: Future, timeout: float) -> _Armed:
        entry = _Armed(future, timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._seq), entry))
            if not self._running:
                self._running = True
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is entry:
                self._cond.notify()
        return entry

    def disarm(self, entry: _Armed) -> None:
        with self._cond:
            entry.future = None
            if self._heap and self._heap[0][2] is entry:
                self._cond.notify()  # the next deadline changed (or none is left: exit)

    def _expired(self) -> list[tuple[Future, float]] | None:
        """Waits for the next deadline; the futures whose time ran out, or None to exit."""
        with self._cond:
            while True:
                heap = self._heap
                while heap and heap[0][2].future is None:
                    heapq.heappop(heap)  # disarmed: its task returned in time
                if not heap:
                    self._running = False
                    return None
                delay = heap[0][0] - time.monotonic()
                if delay <= 0:
                    break
                self._cond.wait(delay)
            now = time.monotonic()
            expired = []
            while heap and heap[0][0] <= now:
                entry = heapq.heappop(heap)[2]
                if entry.future is not None:
                    expired.append((entry.future, entry.timeout))
                    entry.future = None
            return expired

    def _run(self) -> None:
        while (expired := self._expired()) is not None:
            for future, timeout in expired:
                exc = TaskTimeout(
                    f"the task ran longer than its timeout of {timeout:g} s; a thread cannot be "
                    "stopped, so it runs on in its worker and its result will be discarded",
                    timeout=timeout,
                )
                try:
                    future.set_exception(exc)
                except concurrent.futures.InvalidStateError:
                    pass  # it finished (or was cancelled) just now

    def join(self) -> None:
        """Waits for the watchdog thread to exit (once no timed task runs)."""
        with self._cond:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()


class _Options:
    """``pool.options(timeout=...)``: the same pool with per-task settings."""

    def __init__(self, pool: ThreadPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """``pool.submit``, each task failing with :class:`~plait.TaskTimeout` past the timeout."""
        return self._pool._submit(fn, args, kwargs, self._timeout)

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> Iterator[Any]:
        """``pool.map``, each call failing with :class:`~plait.TaskTimeout` past the timeout."""
        _check_chunksize(chunksize)
        if self._timeout is None:
            return self._pool.map(fn, *iterables, timeout=timeout)
        end = None if timeout is None else time.monotonic() + timeout
        futures = [self._pool._submit(fn, args, {}, self._timeout) for args in zip(*iterables, strict=False)]
        return _in_order(futures, end, None)


def _in_order(futures: list[Future], end: float | None, bar: Progress | None) -> Iterator[Any]:
    """The results of ``futures`` in order, like ``Executor.map``'s iterator: the first exception
    (or a time-out at ``end``) ends it and cancels the futures not started."""
    futures.reverse()
    try:
        while futures:
            future = futures[-1]
            result = future.result() if end is None else future.result(max(0.0, end - time.monotonic()))
            futures.pop()
            if bar is not None:
                bar.update(1)
            yield result
    finally:
        if bar is not None:
            bar.close()
        for future in futures:
            future.cancel()


def _with_bar(results: Iterator[Any], bar: Progress | None) -> Iterator[Any]:
    """``results``, counting each item on ``bar`` (closed at the end, or when stopped early)."""
    if bar is None:
        yield from results
        return
    try:
        for result in results:
            bar.update(1)
            yield result
    finally:
        bar.close()
        close = getattr(results, "close", None)
        if close is not None:
            close()  # stopped early: the items not started are cancelled


class ThreadPool(_plait.ThreadPoolCore, concurrent.futures.Executor):  # type: ignore[misc]
    """A thread pool executor, drop-in for ``concurrent.futures.ThreadPoolExecutor``.

    ``submit`` and ``map`` are the native methods of ``ThreadPoolCore``. ``submit`` returns a
    :class:`Future` that works with ``concurrent.futures.wait``, ``as_completed`` and
    ``asyncio.wrap_future``; a task's exception re-raises from ``result()`` with the worker's
    traceback. ``map`` runs without a future per item and yields results in order.

    Like :class:`plait.processes.ProcessPool`, it also has ``starmap``, ``imap``,
    ``imap_unordered``, ``progress=`` on every map, and per-task timeouts with
    ``pool.options(timeout=...)``.

    Example::

        with ThreadPool(max_workers=8) as pool:
            sizes = list(pool.map(len, pages, progress=True))
            pages = pool.options(timeout=30).submit(fetch, url)
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
        self._watchdog: _Watchdog | None = None
        _live_pools.add(self)

    def _start_worker(self) -> None:
        if _exiting:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        with self._threads_lock:
            name = f"{self._thread_name_prefix}_{len(self._threads)}"
            thread = threading.Thread(name=name, target=self._worker_target())
            thread.start()
            self._threads.append(thread)

    # --- per-task timeouts ------------------------------------------------------------------

    def options(self, *, timeout: float | None = None) -> _Options:
        """Per-task settings that cannot collide with the function's own keyword arguments::

            pool.options(timeout=5).submit(fn, x)

        ``timeout`` counts from when the task starts running. Past it, the task's future fails
        with :class:`~plait.TaskTimeout` (a ``TimeoutError``). A thread cannot be killed: the
        task runs on in its worker thread (which stays busy until it returns) and its result is
        discarded; ``shutdown(wait=True)`` still waits for it.
        """
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        return _Options(self, timeout)

    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
    ) -> Future:
        if timeout is None:
            return self.submit(fn, *args, **kwargs)  # type: ignore[no-any-return]
        with self._threads_lock:
            if self._watchdog is None:
                self._watchdog = _Watchdog(f"{self._thread_name_prefix}_watchdog")
            watchdog = self._watchdog
        return self._submit_timed(fn, args, kwargs or None, timeout, watchdog)  # type: ignore[no-any-return]

    # --- maps -------------------------------------------------------------------------------

    def map(  # type: ignore[override]
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        """Like ``Executor.map``: every item is scheduled now, results come in order.

        No future is created per item: the workers share one job. ``chunksize`` is accepted
        and ignored, as by ``ThreadPoolExecutor``. ``progress=True`` shows a progress bar on
        stderr when it is a terminal (tqdm when installed, a built-in bar otherwise);
        ``progress="always"`` shows it anyway.
        """
        if progress is False:
            return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)  # type: ignore[no-any-return]
        _check_progress(progress)
        results = super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)
        return _with_bar(results, progress_bar(progress, results._total))

    def starmap(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        progress: bool | str = False,
    ) -> list[Any]:
        """Like ``multiprocessing.Pool.starmap``: ``fn(*args)`` for each ``args``, as a list.
        ``chunksize`` is accepted and ignored (batches are sized automatically)."""
        _check_chunksize(chunksize)
        _check_progress(progress)
        results = self._starmap(fn, iterable)
        return list(_with_bar(results, progress_bar(progress, results._total)))

    def imap(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        """Like ``multiprocessing.Pool.imap``: results in order. A list, tuple or range is
        scheduled at once; another iterable is read as results are consumed (two items per
        worker ahead). The first exception is raised at its item, and the rest is cancelled.
        ``chunksize`` is accepted and ignored."""
        _check_chunksize(chunksize)
        _check_progress(progress)
        if isinstance(iterable, (list, tuple, range)):
            results = super().map(fn, iterable)
            return _with_bar(results, progress_bar(progress, results._total))
        return self._lazy(fn, iterable, ordered=True, bar=progress_bar(progress, None))

    def imap_unordered(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        """Like ``multiprocessing.Pool.imap_unordered``: results as they finish (see ``imap``)."""
        _check_chunksize(chunksize)
        _check_progress(progress)
        total = len(iterable) if isinstance(iterable, (list, tuple, range)) else None
        return self._lazy(fn, iterable, ordered=False, bar=progress_bar(progress, total), window=total)

    def _lazy(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        ordered: bool,
        bar: Progress | None,
        window: int | None = None,
    ) -> Iterator[Any]:
        """``fn(item)`` for each item, with at most ``window`` (default: two per worker) submitted
        and not yet consumed; the input is read on the consumer's thread. An exception from the
        input is raised after the results of the items before it."""
        source = iter(iterable)
        window = max(1, window if window is not None else 2 * self._max_workers)
        order: collections.deque[Future] = collections.deque()
        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
        live: set[Future] = set()
        failure: BaseException | None = None
        exhausted = False
        try:
            while True:
                while not exhausted and len(live) < window:
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    except BaseException as exc:  # the input itself raised
                        failure, exhausted = exc, True
                        break
                    future = self.submit(fn, item)
                    live.add(future)
                    if ordered:
                        order.append(future)
                    else:
                        future.add_done_callback(finished.put)
                if not live:
                    if failure is not None:
                        raise failure
                    return
                future = order.popleft() if ordered else finished.get()
                result = future.result()
                live.discard(future)
                if bar is not None:
                    bar.update(1)
                yield result
        finally:
            if bar is not None:
                bar.close()
            for future in live:
                future.cancel()

    # --- lifecycle --------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; with ``wait``, join the workers after the queue drains.

        ``cancel_futures=True`` cancels every task that has not started.
        """
        self._shutdown = True
        self._shutdown_core(cancel_futures)
        if wait:
            with self._threads_lock:
                threads = list(self._threads)
                watchdog = self._watchdog
            for t in threads:
                if t is not threading.current_thread():
                    t.join()
            if watchdog is not None:
                watchdog.join()
