"""``Pool``: ``multiprocessing.Pool``'s API on the dispatcher of ``ProcessPool`` (see the package
docstring, :mod:`plait.processes`).

A ``Pool`` drives a ``ProcessPool`` (its workers, dispatcher, completer thread, wire format and
chunk planner) and adds what ``multiprocessing.pool`` has on top: ``AsyncResult`` objects with
callbacks run in the parent, the ``RUN``/``CLOSE``/``TERMINATE`` states and their errors, and
exceptions shaped as ``multiprocessing.pool``'s (a worker's traceback as a
``multiprocessing.pool.RemoteTraceback`` cause, ``MaybeEncodingError`` for a result that cannot be
pickled). A worker that dies fails only its task, with :class:`~plait.WorkerCrashed`, where
``multiprocessing.Pool`` would wait for it forever.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.pool
import os
import threading
import time
import types
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import _plait, exceptions
from .._pool import Future
from ._executor import ProcessPool
from ._planner import TIMED_OUT, Plan, Reader
from ._wire import UNPICKLABLE_RESULT

__all__ = ["AsyncResult", "IMapIterator", "IMapUnorderedIterator", "MapResult", "Pool"]

# multiprocessing.pool's states (its values: code may compare pool._state with them).
INIT, RUN, CLOSE, TERMINATE = "INIT", "RUN", "CLOSE", "TERMINATE"

_MISSING: Any = object()


def _as_pool_error(exc: BaseException) -> BaseException:
    """An exception from the pool's machinery as ``multiprocessing.Pool`` shows it: a task's
    own exception with its worker's traceback as a ``multiprocessing.pool.RemoteTraceback``
    cause; a result that could not be pickled as ``MaybeEncodingError``. plait's own faults
    (``WorkerCrashed``, ``TaskTimeout``) stay as they are."""
    value = getattr(exc, UNPICKLABLE_RESULT, None)
    if value is not None:
        # MaybeEncodingError(exc, value) holds repr(value); the worker sent that repr already.
        error = multiprocessing.pool.MaybeEncodingError.__new__(multiprocessing.pool.MaybeEncodingError)
        Exception.__init__(error, repr(exc), value)
        error.exc, error.value = repr(exc), value
        return error
    cause = exc.__cause__
    if type(cause) is exceptions.RemoteTraceback:
        remote = multiprocessing.pool.RemoteTraceback(cause.tb)
        # The stdlib's RemoteTraceback keeps the text in .tb only: its args stay those of the
        # plait one, so both print the same.
        exc.__cause__ = remote
    return exc


def _outcome(future: concurrent.futures.Future[Any]) -> tuple[bool, Any]:
    if future.cancelled():
        return False, concurrent.futures.CancelledError("the task was cancelled: the pool was terminated")
    exc = future.exception()
    if exc is not None:
        return False, _as_pool_error(exc)
    return True, future.result()


class AsyncResult:
    """The result of ``Pool.apply_async`` (``multiprocessing.pool.AsyncResult``): ``get``,
    ``wait``, ``ready``, ``successful``. Its callback (or error callback) runs in this process
    before it becomes ready."""

    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(
        self,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> None:
        self._event = threading.Event()
        self._callback = callback
        self._error_callback = error_callback
        self._success: bool | None = None
        self._value: Any = None

    def ready(self) -> bool:
        """Whether the call has completed."""
        return self._event.is_set()

    def successful(self) -> bool:
        """Whether the call completed without raising; ``ValueError`` if it is not ready."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return bool(self._success)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the result is available or until ``timeout`` seconds pass."""
        self._event.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """The result when it arrives; its exception if the call raised;
        ``multiprocessing.TimeoutError`` if it does not arrive within ``timeout`` seconds."""
        self.wait(timeout)
        if not self.ready():
            raise multiprocessing.TimeoutError
        if self._success:
            return self._value
        raise self._value

    def _set(self, success: bool, value: Any) -> None:
        # As multiprocessing.pool: the callback runs before the result is ready, so a wait()
        # that returns sees its effects. An exception it raises goes to the future's callback
        # reporting (the result is ready all the same).
        self._success, self._value = success, value
        try:
            if success:
                if self._callback is not None:
                    self._callback(value)
            elif self._error_callback is not None:
                self._error_callback(value)
        finally:
            self._callback = self._error_callback = None
            self._event.set()

    def _on_done(self, future: concurrent.futures.Future[Any]) -> None:
        self._set(*_outcome(future))


ApplyResult = AsyncResult


class MapResult(AsyncResult):
    """The result of ``Pool.map_async`` / ``starmap_async``: a list, in order, once every item
    is done; or the first error of an item (the other items still run, as with
    ``multiprocessing``)."""


class _MapPlan(Plan):
    """The chunks of a ``map_async``: the plan of ``ProcessPool.map``, which completes its
    ``MapResult`` from the completer thread when the last chunk finishes or one fails."""

    def __init__(
        self, pool: ProcessPool, runner: Callable[..., Any], items: Any, chunksize: int | None
    ) -> None:
        self.result: MapResult | None = None
        super().__init__(pool, runner, items, chunksize, None, ordered=True)

    def start(self, result: MapResult) -> None:
        self.result = result
        self._settle(None)

    def _done(self, future: Future) -> None:
        super()._done(future)
        self._settle(future)

    def _settle(self, future: Future | None) -> None:
        with self.cond:
            result = self.result
            if result is None:
                return
            outcome: tuple[bool, Any] | None = None
            if future is not None:
                success, value = _outcome(future)
                if not success:
                    outcome = success, value
                elif value[1] is not None:  # the chunk's function raised
                    outcome = False, _as_pool_error(value[1])
            if outcome is None and self.in_flight == 0 and (self.stopped or not self.more()):
                if self.failure is not None:
                    outcome = False, self.failure
                else:
                    outcome = self._gather()
            if outcome is None:
                return
            self.result = None  # settled once
            self.order.clear()
            self.live.clear()
        result._set(*outcome)

    def _gather(self) -> tuple[bool, Any]:
        """Every chunk's results in order, or the first failure among them (a chunk that
        failed before ``start`` was not reported by ``_done``)."""
        values: list[Any] = []
        for f in self.order:
            success, value = _outcome(f)
            if not success:
                return False, value
            results, error, _ = value
            if error is not None:
                return False, _as_pool_error(error)
            values.extend(_plait.unpack_numbers(*results) if type(results) is tuple else results)
        return True, values


class IMapIterator:
    """The iterator of ``Pool.imap`` (``multiprocessing.pool.IMapIterator``): results in order;
    ``next(timeout)`` raises ``multiprocessing.TimeoutError`` when the next one is not there in
    time (iteration can go on after it). An item's exception is raised in its place, and
    iteration can go on after it too."""

    def __init__(self, plan: Plan) -> None:
        self._reader = Reader(plan)
        self._buffer: deque[Any] = deque()
        self._lock = threading.Lock()

    def __iter__(self) -> IMapIterator:
        return self

    def next(self, timeout: float | None = None) -> Any:
        """The next result; ``multiprocessing.TimeoutError`` if it is not there within
        ``timeout`` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._buffer:
                try:
                    chunk = self._reader.next_chunk(end)
                except BaseException as exc:
                    raise _as_pool_error(exc) from exc.__cause__
                if chunk is None:
                    raise StopIteration
                if chunk is TIMED_OUT:
                    raise multiprocessing.TimeoutError
                self._buffer.extend(chunk)
            return self._buffer.popleft()

    __next__ = next


class IMapUnorderedIterator(IMapIterator):
    """The iterator of ``Pool.imap_unordered``: results as they finish."""


class _Worker:
    """A worker as ``pool._pool`` lists it (``multiprocessing.Pool``'s holds ``Process``
    objects): its ``pid`` and ``is_alive()``, which is all code outside the stdlib reads."""

    __slots__ = ("_pool", "pid")

    def __init__(self, pool: Pool, pid: int) -> None:
        self._pool = pool
        self.pid = pid

    def is_alive(self) -> bool:
        return self.pid in self._pool._executor._core.worker_pids()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<plait worker pid={self.pid} {'alive' if self.is_alive() else 'exited'}>"


def _terminate(executor: ProcessPool, plans: weakref.WeakSet[Plan], pending: set[Future], wait: bool) -> None:
    """Stops every task of a pool (queued ones cancelled, running ones' workers killed), then
    its workers; with ``wait``, returns once they have exited."""
    for plan in list(plans) + list(executor._plans):
        plan.stop()
    executor._stop(list(pending))
    executor.shutdown(wait=wait, cancel_futures=True)


def _check_chunksize(chunksize: int | None) -> None:
    # imap's check and message in multiprocessing; None: sized from the measured task time.
    if chunksize is not None and chunksize < 1:
        raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")


class Pool:
    """``multiprocessing.Pool`` on plait's process pool: same constructor, methods, results,
    states and errors, so switching is an import change::

        from plait.processes import Pool

        with Pool(4) as pool:
            squares = pool.map(square, range(100))

    ``context`` (a ``multiprocessing`` context, else the default one) picks the start method:
    "spawn", "forkserver" or "fork", as ``multiprocessing.Pool`` does. What plait adds: a worker
    that dies (a crash, a signal, ``os._exit``) fails only the task it was running, with
    :class:`~plait.WorkerCrashed`, and is replaced (``multiprocessing.Pool`` loses the task and
    its ``get()`` never returns); functions defined in ``__main__``, lambdas and closures can be
    sent; ``map`` sizes chunks from the measured task time when ``chunksize`` is None, and
    ``imap`` and ``imap_unordered`` accept ``chunksize=None`` to do the same. ``backend``
    (keyword-only) runs the tasks on a cluster, as ``ProcessPool``'s does (see
    :mod:`plait.backends`); ``processes`` is then how many run there at once.
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
        *,
        backend: Any = None,
    ) -> None:
        self._state = INIT  # __del__ may run if this raises
        self._ctx = context or multiprocessing.get_context()
        remote = backend is not None and backend != "local"
        if processes is None and not remote:
            processes = os.cpu_count() or 1
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        # Workers take this process's multiprocessing authkey before they unpickle initargs
        # (Manager proxies need it), as multiprocessing's do.
        self._executor = ProcessPool(
            processes,
            initializer=initializer,
            initargs=initargs,
            max_tasks_per_worker=maxtasksperchild,
            start_method=None if remote else self._ctx.get_start_method(),
            backend=backend,
        )
        self._processes = self._executor._max_workers
        self._lazy_plans: weakref.WeakSet[Plan] = weakref.WeakSet()  # imap over iterators
        self._pending: set[Future] = set()  # apply_async tasks not finished
        # A pool dropped while running is terminated (after the ResourceWarning of __del__).
        self._finalizer = weakref.finalize(
            self, _terminate, self._executor, self._lazy_plans, self._pending, False
        )
        self._state = RUN

    # --- submitting -------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError("Pool not running")

    def apply(
        self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: Mapping[str, Any] = _MISSING
    ) -> Any:
        """``func(*args, **kwds)`` in a worker; blocks until the result is ready."""
        return self.apply_async(func, args, {} if kwds is _MISSING else kwds).get()

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] = _MISSING,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult:
        """``func(*args, **kwds)`` in a worker; returns its :class:`AsyncResult`. ``callback``
        (with the result) or ``error_callback`` (with the exception) runs in this process, on
        the pool's completer thread: it should return quickly."""
        self._check_running()
        result = AsyncResult(callback, error_callback)
        if not callable(func):  # as multiprocessing: the call fails, not the submission
            result._set(False, TypeError(f"{type(func).__name__!r} object is not callable"))
            return result
        future = self._executor._submit(func, tuple(args), {} if kwds is _MISSING else dict(kwds), None)
        pending = self._pending
        pending.add(future)

        def done(f: concurrent.futures.Future[Any]) -> None:
            pending.discard(f)  # type: ignore[arg-type]
            result._on_done(f)

        future.add_done_callback(done)
        return result

    def _map_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        star: bool,
        chunksize: int | None,
        callback: Callable[[Any], object] | None,
        error_callback: Callable[[BaseException], object] | None,
    ) -> MapResult:
        self._check_running()
        if chunksize is not None and chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        result = MapResult(callback, error_callback)
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)  # as multiprocessing: an error of the input raises here
        try:
            if star:
                items: Any = [tuple(args) for args in iterable]
            else:
                items = iterable if type(iterable) in (list, tuple, range) else list(iterable)
        except Exception as exc:
            # An iterable with a length that fails: multiprocessing reports it through the result.
            result._set(False, exc)
            return result
        if not len(items):
            # As multiprocessing: an empty map is ready at once, without calling back.
            result._callback = result._error_callback = None
            result._set(True, [])
            return result
        runner = self._executor._chunk_runner(func, unpack=star)
        _MapPlan(self._executor, runner, items, chunksize).start(result)
        return result

    def map(
        self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None
    ) -> list[Any]:
        """``[func(x) for x in iterable]`` computed in the workers; blocks until done. Without
        ``chunksize``, chunks are sized from the measured duration of the first tasks."""
        return self._map_async(func, iterable, False, chunksize, None, None).get()  # type: ignore[no-any-return]

    def map_async(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult:
        """``map`` without blocking: returns a :class:`MapResult`."""
        return self._map_async(func, iterable, False, chunksize, callback, error_callback)

    def starmap(
        self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]], chunksize: int | None = None
    ) -> list[Any]:
        """``[func(*args) for args in iterable]`` computed in the workers; blocks until done."""
        return self._map_async(func, iterable, True, chunksize, None, None).get()  # type: ignore[no-any-return]

    def starmap_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult:
        """``starmap`` without blocking: returns a :class:`MapResult`."""
        return self._map_async(func, iterable, True, chunksize, callback, error_callback)

    def _imap(
        self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None, ordered: bool
    ) -> Plan:
        self._check_running()
        _check_chunksize(chunksize)
        runner = self._executor._chunk_runner(func, unpack=False)
        plan = Plan(self._executor, runner, iterable, chunksize, None, ordered)
        if not plan.eager:
            self._lazy_plans.add(plan)
        return plan

    def imap(
        self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = 1
    ) -> IMapIterator:
        """Like ``map``, as an iterator of the results in order. A list, tuple or range is
        scheduled at once; another iterable is read as results are consumed (a few chunks per
        worker ahead), and the rest of it at ``close()``."""
        return IMapIterator(self._imap(func, iterable, chunksize, ordered=True))

    def imap_unordered(
        self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = 1
    ) -> IMapIterator:
        """Like ``imap``, with the results in the order they finish."""
        return IMapUnorderedIterator(self._imap(func, iterable, chunksize, ordered=False))

    # --- multiprocessing.Pool's private worker list, emulated ------------------------------

    def _worker_pids(self, timeout: float = 5.0) -> list[int]:
        """Each slot's worker pid once every slot holds a worker (the dispatcher starts and
        replaces them in the background), or whatever it holds after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            pids: list[int] = self._executor._core.worker_pids()  # type: ignore[attr-defined]
            if all(pids) or self._state != RUN or time.monotonic() >= deadline:
                return [pid for pid in pids if pid]
            time.sleep(0.005)

    @property
    def _pool(self) -> list[_Worker]:
        """The workers, as ``multiprocessing.Pool._pool`` lists them (objects with ``pid`` and
        ``is_alive()``); code that reads it for the workers' pids keeps working."""
        return [_Worker(self, pid) for pid in self._worker_pids()]

    def _repopulate_pool(self) -> None:
        """``multiprocessing.Pool``'s refill of exited workers: plait's dispatcher refills its
        slots by itself; this returns once it has."""
        self._worker_pids()

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """No more tasks: the workers exit once every task submitted so far is done."""
        if self._state == RUN:
            self._state = CLOSE
            for plan in list(self._lazy_plans):
                plan.top_up(everything=True)
            self._executor.shutdown(wait=False)

    def terminate(self) -> None:
        """Stop now: queued tasks are dropped, running ones' workers killed; returns once every
        worker has exited. Results not ready by then fail with ``CancelledError``."""
        self._state = TERMINATE
        self._finalizer.detach()
        _terminate(self._executor, self._lazy_plans, self._pending, True)

    def join(self) -> None:
        """Wait for the workers to exit; call ``close()`` or ``terminate()`` first."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        self._executor.shutdown(wait=True)
        self._finalizer.detach()

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.terminate()

    def __reduce__(self) -> Any:
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __repr__(self) -> str:
        name = f"{type(self).__module__.rpartition('.')[0]}.{type(self).__qualname__}"
        return f"<{name} state={self._state} pool_size={getattr(self, '_processes', 0)}>"

    def __del__(self) -> None:
        if self._state == RUN:
            warnings.warn(
                f"unclosed running multiprocessing pool {self!r}", ResourceWarning, stacklevel=1, source=self
            )
