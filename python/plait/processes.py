"""plait.processes: a process pool that survives crashes, enforces timeouts and cancels; and
process-shared queues, locks and counters in shared memory (see ``docs/ipc.md``).

``ProcessPool`` is a ``concurrent.futures.Executor`` (``submit``, ``map``, ``shutdown``, context
manager) with ``multiprocessing.Pool``'s ``imap``, ``imap_unordered`` and ``starmap``. A worker that
dies fails only the task it was running (:class:`~plait.WorkerCrashed`); a task past its timeout
gets :class:`~plait.TaskTimeout` and its worker is replaced; ``pool.cancel_running(future)`` stops
a running task. Functions defined in ``__main__``, lambdas and closures work (they travel by value
with cloudpickle). The dispatcher (task queue, worker supervision, result collection) is Rust.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import functools
import itertools
import os
import pickle
import signal
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import cloudpickle

from . import _plait, _wire
from ._ipc import (
    AtomicInt,
    Barrier,
    BoundedSemaphore,
    Condition,
    Connection,
    Event,
    JoinableQueue,
    Lock,
    Pipe,
    Queue,
    RLock,
    Semaphore,
    SharedArray,
    SimpleQueue,
)
from ._pool import Future
from ._wire import Shared, share
from .exceptions import BrokenProcessPool, RemoteTraceback, TaskTimeout, WorkerCrashed

__all__ = [
    "AtomicInt",
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Connection",
    "Event",
    "JoinableQueue",
    "Lock",
    "Pipe",
    "ProcessPool",
    "Queue",
    "RLock",
    "Semaphore",
    "Shared",
    "SharedArray",
    "SimpleQueue",
    "share",
]

DONE_OK, DONE_ERR, DONE_CRASHED, DONE_TIMED_OUT, DONE_CANCELLED, DONE_BROKEN = _plait.DONE_KINDS
_START_METHODS = ("spawn", "forkserver", "fork")


def _dumps(obj: Any) -> bytes:
    """Pickle (protocol 5); what plain pickle cannot send (lambdas, closures, anything from
    ``__main__``, which workers do not import under that name) goes by value with cloudpickle."""
    try:
        data = pickle.dumps(obj, protocol=5)
        if b"__main__" not in data:
            return data
        return cloudpickle.dumps(obj, protocol=5)
    except (pickle.PicklingError, AttributeError, TypeError):
        try:
            return cloudpickle.dumps(obj, protocol=5)
        except Exception as exc:
            raise TypeError(
                f"cannot send {type(obj).__qualname__} object to a worker process: {exc}"
            ) from exc


def _dumps_function(fn: Callable[..., Any]) -> bytes:
    # Functions of __main__ do not exist under that name in a worker: send them by value.
    if getattr(fn, "__module__", None) == "__main__":
        try:
            return cloudpickle.dumps(fn, protocol=5)
        except Exception as exc:
            raise TypeError(f"cannot send function {fn!r} to a worker process: {exc}") from exc
    return _dumps(fn)


def _fork_worker(fd: int) -> int:
    """start_method="fork": called by the dispatcher with the new worker's socket fd; the child
    serves that socket (a copy of this interpreter, as multiprocessing's fork does) and exits."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            from . import _worker

            signal.signal(signal.SIGINT, signal.SIG_IGN)
            code = _worker.serve(_plait.FrameChannel(fd))
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


_CACHEABLE = (types.FunctionType, types.BuiltinFunctionType)


def _definition(fn: Callable[..., Any]) -> bytes | None:
    """The pickle of a plain function (module-level, ``__main__`` or a lambda without free
    variables), sent once per worker; None for callables that carry state of their own (bound
    methods, partials, closures, callable objects), which travel with every task instead."""
    if type(fn) not in _CACHEABLE or getattr(fn, "__closure__", None):
        return None
    try:
        return _dumps_function(fn)
    except TypeError:
        return None


def _complete(future: Future, kind: int, payload: Any, segments: list[Any] | None = None) -> None:
    """Called on the dispatcher thread with each finished task (see processes.rs); ``segments``
    hold a result's large buffers."""
    if not future.running() and kind != DONE_CANCELLED:
        # Cancelled before it started (or already completed): nothing to report.
        if future.done():
            return
    if kind == DONE_OK:
        future.set_result(_wire.loads(payload, segments))
    elif kind == DONE_ERR:
        exc, tb = pickle.loads(payload)
        exc.__cause__ = RemoteTraceback(f'\n"""\n{tb}"""')
        future.set_exception(exc)
    elif kind == DONE_CRASHED:
        text, code, sig = payload
        future.set_exception(
            WorkerCrashed(
                f"the worker process running this task died ({text}); the pool replaced it",
                exitcode=code,
                signal=sig,
            )
        )
    elif kind == DONE_TIMED_OUT:
        future.set_exception(
            TaskTimeout(
                f"the task ran longer than its timeout of {payload:g} s; its worker was killed and replaced",
                timeout=payload,
            )
        )
    elif kind == DONE_CANCELLED:
        if future.running():
            future.set_exception(concurrent.futures.CancelledError("the task was cancelled while running"))
        else:
            future.cancel()
    elif kind == DONE_BROKEN:
        if not future.done():
            if not future.running():
                future.set_running_or_notify_cancel()
            future.set_exception(BrokenProcessPool(f"the process pool is not usable: {payload}"))


# Every dispatcher still running, with its thread. Held strongly: a pool object may be gone
# (garbage-collected without shutdown) while its dispatcher still runs and calls into Python.
_dispatchers: dict[int, tuple[Any, threading.Thread]] = {}
_pool_ids = itertools.count()


def _run_dispatcher(key: int, core: Any) -> None:
    try:
        core.run_dispatcher()
    finally:
        _dispatchers.pop(key, None)


def _stop_dispatcher(key: int, cancel: bool, wait: bool) -> None:
    entry = _dispatchers.get(key)
    if entry is None:
        return
    core, thread = entry
    core.shutdown(cancel)
    if wait and thread is not threading.current_thread():
        thread.join()
        _dispatchers.pop(key, None)


@atexit.register
def _python_exit() -> None:
    # The dispatcher threads call into Python: stop them before the interpreter goes away.
    for key in list(_dispatchers):
        _stop_dispatcher(key, cancel=True, wait=True)


class _Options:
    """``pool.options(timeout=...)``: the same pool with per-task settings."""

    def __init__(self, pool: ProcessPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._pool._submit(fn, args, kwargs, self._timeout)

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> Iterator[Any]:
        return self._pool._map(fn, iterables, timeout, chunksize, self._timeout)


class ProcessPool(concurrent.futures.Executor):
    """A process pool executor where a crash, a timeout or a cancel affects one task only.

    Example::

        with ProcessPool(max_workers=4, task_timeout=60) as pool:
            results = list(pool.map(simulate, seeds))
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        task_timeout: float | None = None,
        start_method: str | None = None,
    ) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_worker is not None and max_tasks_per_worker < 1:
            raise ValueError("max_tasks_per_worker must be at least 1")
        if task_timeout is not None and not task_timeout > 0:
            raise ValueError("task_timeout must be a positive number of seconds")
        start_method = start_method or "spawn"
        if start_method not in _START_METHODS:
            raise ValueError(f"start_method must be one of {_START_METHODS}, not {start_method!r}")
        if start_method == "forkserver":
            raise NotImplementedError(
                "start_method='forkserver' is not implemented yet; use 'spawn' (the default) or 'fork'"
            )
        hello = {
            "sys_path": list(sys.path),
            "initializer": None if initializer is None else _dumps_function(initializer),
            "initargs": tuple(initargs),
        }
        self._max_workers = max_workers
        self._task_timeout = task_timeout
        self._functions: dict[Any, int] = {}
        self._function_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._core = _plait.ProcessPoolCore(
            max_workers,
            [sys.executable, "-m", "plait._worker"],
            _dumps(hello),
            _complete,
            max_tasks_per_worker,
            _fork_worker if start_method == "fork" else None,
        )
        key = next(_pool_ids)
        self._dispatcher = threading.Thread(
            target=_run_dispatcher, args=(key, self._core), name=f"plait-dispatcher-{key}", daemon=True
        )
        self._key = key
        _dispatchers[key] = (self._core, self._dispatcher)
        self._dispatcher.start()
        # A pool dropped without shutdown() still stops its workers (after the queue drains).
        self._finalizer = weakref.finalize(self, _stop_dispatcher, key, False, False)

    # --- submitting -------------------------------------------------------------------------

    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
    ) -> Future:
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        fid = self._functions.get(fn) if type(fn) in _CACHEABLE else None
        if fid is not None:
            body, segments = _wire.dumps((args, kwargs))
            future, _ = self._core.submit(fid, None, body, timeout, segments)
            return future  # type: ignore[no-any-return]
        definition = _definition(fn)
        if definition is None:
            # Bound methods, partials, closures, callable objects: their state may change between
            # calls, so (as with the stdlib pools) they travel with every task.
            body, segments = _wire.dumps((fn, args, kwargs))
            future, _ = self._core.submit(0, None, body, timeout, segments)
            return future  # type: ignore[no-any-return]
        body, segments = _wire.dumps((args, kwargs))
        # A plain function, sent once per worker. Registering it and queueing
        # the task that carries its definition under one lock keeps any later task from
        # overtaking the definition.
        with self._lock:
            fid = self._functions.get(fn)
            if fid is not None:
                future, _ = self._core.submit(fid, None, body, timeout, segments)
            else:
                fid = next(self._function_ids)
                future, _ = self._core.submit(fid, definition, body, timeout, segments)
                if len(self._functions) < 4096:
                    self._functions[fn] = fid
        return future  # type: ignore[no-any-return]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        """Schedule ``fn(*args, **kwargs)`` in a worker process; returns its future."""
        return self._submit(fn, args, kwargs, self._task_timeout)

    def options(self, *, timeout: float | None = None) -> _Options:
        """Per-task settings that cannot collide with the function's own keyword arguments::

        pool.options(timeout=5).submit(fn, x)
        """
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        return _Options(self, timeout)

    def cancel_running(self, future: concurrent.futures.Future[Any]) -> bool:
        """Stop ``future``'s task: cancel it if queued, else kill its worker (the task then fails
        with ``CancelledError`` and the worker is replaced). Returns whether it was stopped."""
        if future.cancel():
            return True
        task_id = getattr(future, "_task_id", 0)
        if not task_id or future.done():
            return False
        self._core.cancel_running(task_id)
        return True

    # --- mapping ----------------------------------------------------------------------------

    def _chunk_runner(self, fn: Callable[..., Any], unpack: bool) -> Callable[..., Any]:
        """``fn`` bound into the chunk loop that runs in the worker: ``fn(*args)`` per item when
        ``unpack``, else ``fn(item)``. A partial is a stateful callable, so it (and ``fn`` inside
        it) travels with each chunk; a map has few chunks."""
        return functools.partial(_run_chunk if unpack else _run_chunk1, fn)

    def _chunks(self, n_items: int | None, chunksize: int | None) -> int:
        if chunksize is not None:
            if chunksize < 1:
                raise ValueError("chunksize must be >= 1")
            return chunksize
        if n_items is None:
            return 1
        return max(1, min(n_items // (self._max_workers * 4), 100_000)) if n_items else 1

    def _map(
        self,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        timeout: float | None,
        chunksize: int | None,
        task_timeout: float | None,
        star: bool = True,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        # One iterable: items go as they are and the worker calls fn(item). Several: zipped into
        # argument tuples. star=False: the one iterable already holds argument tuples (starmap).
        if star and len(iterables) == 1:
            items: list[Any] = list(iterables[0])
            runner = self._chunk_runner(fn, unpack=False)
        else:
            items = list(zip(*iterables, strict=False)) if star else [tuple(args) for args in iterables[0]]
            runner = self._chunk_runner(fn, unpack=True)
        size = self._chunks(len(items), chunksize)
        futures = [
            self._submit(runner, (items[i : i + size],), {}, task_timeout) for i in range(0, len(items), size)
        ]
        return _ordered(self, futures, timeout, _progress_bar(progress, len(items)))

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,  # type: ignore[override]
        chunksize: int | None = None,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        """Like ``Executor.map``; ``chunksize`` defaults to an automatic size.

        ``progress=True`` shows a progress bar on stderr when it is a terminal (tqdm when
        installed, a built-in bar otherwise); ``progress="always"`` shows it anyway.
        """
        return self._map(fn, iterables, timeout, chunksize, self._task_timeout, progress=progress)

    def starmap(
        self, fn: Callable[..., Any], iterable: Iterable[Iterable[Any]], chunksize: int | None = None
    ) -> list[Any]:
        """Like ``multiprocessing.Pool.starmap``: ``fn(*args)`` for each ``args``, as a list."""
        return list(self._map(fn, (iterable,), None, chunksize, self._task_timeout, star=False))

    def imap(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        """Like ``multiprocessing.Pool.imap``: lazy over the input, results in order."""
        return self._imap(fn, iterable, chunksize or 1, ordered=True, progress=progress)

    def imap_unordered(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        """Like ``multiprocessing.Pool.imap_unordered``: results as they finish."""
        return self._imap(fn, iterable, chunksize or 1, ordered=False, progress=progress)

    def _imap(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int,
        ordered: bool,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        total = len(iterable) if hasattr(iterable, "__len__") else None
        bar = _progress_bar(progress, total)
        window = self._max_workers * 4
        source = iter(iterable)
        runner = self._chunk_runner(fn, unpack=False)
        pending: list[Future] = []

        def fill() -> None:
            while len(pending) < window:
                chunk = list(itertools.islice(source, chunksize))
                if not chunk:
                    return
                pending.append(self._submit(runner, (chunk,), {}, self._task_timeout))

        fill()
        try:
            while pending:
                if ordered:
                    future = pending.pop(0)
                else:
                    done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    future = next(iter(done))
                    pending.remove(future)
                results, error = future.result()
                fill()
                if bar is not None:
                    bar.update(len(results))
                yield from results
                if error is not None:
                    raise error
        finally:
            if bar is not None:
                bar.close()
            self._stop(pending)

    def _stop(self, futures: list[Future]) -> None:
        for f in futures:
            if not f.cancel() and not f.done():
                self.cancel_running(f)

    # --- lifecycle --------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; with ``wait``, return once every worker has exited."""
        _stop_dispatcher(self._key, cancel_futures, wait)


def _run_chunk1(fn: Callable[..., Any], chunk: list[Any]) -> tuple[list[Any], BaseException | None]:
    """Runs in the worker: ``fn(item)`` for each item, stopping at the first exception."""
    results: list[Any] = []
    append = results.append
    try:
        for item in chunk:
            append(fn(item))
    except Exception as exc:
        return results, exc
    return results, None


def _run_chunk(
    fn: Callable[..., Any], chunk: list[tuple[Any, ...]]
) -> tuple[list[Any], BaseException | None]:
    """Runs in the worker: ``fn(*args)`` for each item, stopping at the first exception."""
    results = []
    for args in chunk:
        try:
            results.append(fn(*args))
        except Exception as exc:
            return results, exc
    return results, None


def _ordered(
    pool: ProcessPool, futures: list[Future], timeout: float | None, bar: _Bar | None = None
) -> Iterator[Any]:
    import time

    end = None if timeout is None else time.monotonic() + timeout

    def results() -> Iterator[Any]:
        try:
            for i, future in enumerate(futures):
                remaining = None if end is None else max(0.0, end - time.monotonic())
                chunk, error = future.result(remaining)
                futures[i] = None  # type: ignore[call-overload]
                if bar is not None:
                    bar.update(len(chunk))
                yield from chunk
                if error is not None:
                    raise error
        finally:
            if bar is not None:
                bar.close()
            # Stopped early (an error, a timeout, Ctrl-C, the iterator closed): queued chunks are
            # cancelled and running ones stopped, so their workers are free at once.
            pool._stop([f for f in futures if f is not None])

    return results()


class _Bar:
    """A minimal progress bar on stderr, for when tqdm is not installed."""

    def __init__(self, total: int | None) -> None:
        import time

        self._clock = time.monotonic
        self.total = total
        self.done = 0
        self._start = self._clock()
        self._shown = 0.0
        self._closed = False

    def update(self, n: int) -> None:
        self.done += n
        now = self._clock()
        if now - self._shown >= 0.1 or (self.total is not None and self.done >= self.total):
            self._shown = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * 30)
            line = (
                f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {frac:4.0%} {rate:,.0f}/s"
            )
        else:
            line = f"\r{self.done} done {rate:,.0f}/s"
        sys.stderr.write(line)
        sys.stderr.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._draw(self._clock())
            sys.stderr.write("\n")
            sys.stderr.flush()


def _progress_bar(progress: bool | str, total: int | None) -> Any:
    """The bar for ``progress``: False/None -> none; True -> only when stderr is a terminal;
    "always" -> always. tqdm is used when installed."""
    if progress in (False, None):
        return None
    if progress not in (True, "always"):
        raise ValueError(f"progress must be True, False or 'always', not {progress!r}")
    if progress is True and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return _Bar(total)
    return tqdm(total=total, file=sys.stderr)
