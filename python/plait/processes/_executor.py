"""plait.processes: a process pool that survives crashes, enforces timeouts and cancels; and
process-shared queues, locks and counters in shared memory (see ``docs/ipc.md``).

``ProcessPool`` is a ``concurrent.futures.Executor`` (``submit``, ``map``, ``shutdown``, context
manager) with ``multiprocessing.Pool``'s ``imap``, ``imap_unordered`` and ``starmap``. A worker that
dies fails only the task it was running (:class:`~plait.WorkerCrashed`); a task past its timeout
gets :class:`~plait.TaskTimeout` and its worker is replaced; ``pool.cancel_running(future)`` stops
a running task. Functions defined in ``__main__``, lambdas and closures work (they travel by value
with cloudpickle). Workers start by "spawn" (the default), "forkserver" or "fork". The dispatcher
(task queue, worker supervision, result collection) is Rust.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import functools
import itertools
import os
import pickle
import signal
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import cloudpickle

from .. import _backend, _plait
from . import _wire
from .._backend import Backend
from ._forkserver import ForkServer
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
from .._pool import Future
from ._wire import Shared, share
from ..exceptions import BrokenProcessPool, RemoteTraceback, TaskTimeout, WorkerCrashed

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

DONE_OK, DONE_ERR, DONE_CRASHED, DONE_TIMED_OUT, DONE_CANCELLED, DONE_BROKEN, DONE_UNSENDABLE = (
    _plait.DONE_KINDS
)
_START_METHODS = ("spawn", "forkserver", "fork")


def _dumps(obj: Any) -> bytes:
    """One message for a worker with every buffer in band (the pool's hello, function
    definitions): ``_wire.dumps``, pickle then cloudpickle for what plain pickle cannot send.
    Objects that travel with a descriptor (IPC objects, ``Shared``) cannot go this way."""
    try:
        data, segments = _wire.dumps(obj, inband=True)
    except TypeError as exc:
        raise TypeError(f"cannot send {type(obj).__qualname__} object to a worker process: {exc}") from exc
    if segments:
        raise TypeError(
            f"cannot send {type(obj).__qualname__} object to a worker process: it holds shared "
            "memory (pass such objects as task arguments)"
        )
    return data


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
            _close_inherited_segments(fd)
            code = _worker.serve(_plait.FrameChannel(fd))
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def _fd_limit() -> int:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


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


class _Runner(functools.partial):  # type: ignore[type-arg]
    """A map's chunk loop bound to its function (see ``ProcessPool._chunk_runner``): as
    stateless as that function, so it is sent once per worker when the function is plain."""

    __slots__ = ()


_CACHEABLE = (types.FunctionType, types.BuiltinFunctionType, _Runner)


def _plain(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` carries no state of its own: a function without free variables (module
    level, ``__main__``, a lambda), or a chunk runner around one."""
    if type(fn) is _Runner:
        fn = fn.args[0]  # type: ignore[attr-defined]
    return type(fn) in _CACHEABLE and not getattr(fn, "__closure__", None)


def _definition(fn: Callable[..., Any]) -> bytes | None:
    """The pickle of a plain function (see ``_plain``), sent once per worker; None for callables
    that carry state of their own (bound methods, partials, closures, callable objects), which
    travel with every task instead."""
    if not _plain(fn):
        return None
    try:
        return _dumps_function(fn)
    except TypeError:
        return None


def _complete(future: Future, kind: int, payload: Any, segments: list[Any] | None = None) -> None:
    """Called on the completer thread with each finished task (see processes.rs); ``segments``
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
    elif kind == DONE_UNSENDABLE:
        if not future.done():
            if not future.running():
                future.set_running_or_notify_cancel()
            future.set_exception(OSError(f"the task could not be sent to a worker: {payload}"))
    elif kind == DONE_BROKEN:
        if not future.done():
            if not future.running():
                future.set_running_or_notify_cancel()
            future.set_exception(BrokenProcessPool(f"the process pool is not usable: {payload}"))


# Every dispatcher still running, with its thread. Held strongly: a pool object may be gone
# (garbage-collected without shutdown) while its dispatcher still runs and calls into Python.
_dispatchers: dict[int, tuple[Any, threading.Thread, threading.Thread]] = {}
_pool_ids = itertools.count()


def _run_dispatcher(key: int, core: Any, forkserver: ForkServer | None) -> None:
    """The dispatcher thread: feeds and supervises the workers (Rust, detached from Python)."""
    try:
        core.run_dispatcher()
    finally:
        # Every worker has exited: the fork server goes too, before the thread ends, so
        # shutdown(wait=True) returns with no process of the pool left.
        if forkserver is not None:
            forkserver.close()


def _run_completer(key: int, core: Any) -> None:
    """The completer thread: completes futures (and runs their done-callbacks) as outcomes
    arrive from the dispatcher; it ends after the dispatcher, once every outcome is delivered."""
    try:
        core.run_completer()
    finally:
        _dispatchers.pop(key, None)


def _stop_dispatcher(key: int, cancel: bool, wait: bool) -> None:
    entry = _dispatchers.get(key)
    if entry is None:
        return
    core, dispatcher, completer = entry
    core.shutdown(cancel)
    if wait:
        # A done-callback may call shutdown(): never join the calling thread itself.
        for thread in (dispatcher, completer):
            if thread is not threading.current_thread():
                thread.join()


@atexit.register
def _python_exit() -> None:
    # The dispatcher and completer threads call into Python: stop them before the interpreter
    # goes away.
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

    ``start_method`` is how workers start: ``"spawn"`` (the default) runs a fresh interpreter per
    worker; ``"forkserver"`` starts one server process per pool (a fresh interpreter that imports
    plait once) which forks every worker, so workers start fast and none is a copy of this
    process; ``"fork"`` forks this process (fastest; it inherits its state and threads' locks).
    With any of them, a crashed worker's exit code or signal is reported by ``WorkerCrashed``.
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
        hello = {
            "sys_path": list(sys.path),
            "initializer": None if initializer is None else _dumps_function(initializer),
            "initargs": tuple(initargs),
        }
        self._max_workers = max_workers
        self._task_timeout = task_timeout
        self._functions: dict[Any, int] = {}
        # Eager maps still submitting chunks: shutdown() submits the rest of each at once.
        self._plans: weakref.WeakSet[_Plan] = weakref.WeakSet()
        # Tasks' shared-memory segments not yet released (each holds a descriptor until its
        # task ends): past the budget, buffers travel in band instead.
        self._segments_out = _plait.AtomicInt(0)
        self._segment_budget = max(16, _fd_limit() // 4)
        self._runners: dict[tuple[Any, bool], _Runner] = {}
        self._function_ids = itertools.count(1)
        self._lock = threading.Lock()
        # forkserver: workers are forked by this pool's fork server (started on the dispatcher
        # thread with the first worker), which also reports how they exit.
        self._forkserver = ForkServer(sys.executable) if start_method == "forkserver" else None
        launch: Callable[[int], int] | None = _fork_worker if start_method == "fork" else None
        reap: Callable[[int], int] | None = None
        if self._forkserver is not None:
            launch, reap = self._forkserver.launch, self._forkserver.status
        # The backend: where tasks run (see plait._backend for the interface).
        self._core: Backend = _backend.check(
            _plait.ProcessPoolCore(
                max_workers,
                [sys.executable, "-m", "plait.processes._worker"],
                _dumps(hello),
                _complete,
                max_tasks_per_worker,
                launch,
                reap,
            )
        )
        key = next(_pool_ids)
        self._dispatcher = threading.Thread(
            target=_run_dispatcher,
            args=(key, self._core, self._forkserver),
            name=f"plait-dispatcher-{key}",
            daemon=True,
        )
        self._completer = threading.Thread(
            target=_run_completer, args=(key, self._core), name=f"plait-completer-{key}", daemon=True
        )
        self._key = key
        _dispatchers[key] = (self._core, self._dispatcher, self._completer)
        self._completer.start()
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
            if not kwargs and len(args) == 1 and type(args[0]) in _wire.SCALARS:
                # The commonest task, fn(number or string): a plain pickle is all it needs.
                future, _ = self._core.submit(fid, None, pickle.dumps((args, kwargs), protocol=5), timeout)
                return future  # type: ignore[no-any-return]
            body, segments = self._encode((args, kwargs))
            return self._send(fid, None, body, segments, timeout)
        definition = _definition(fn)
        if definition is None:
            # Bound methods, partials, closures, callable objects: their state may change between
            # calls, so (as with the stdlib pools) they travel with every task.
            body, segments = self._encode((fn, args, kwargs))
            return self._send(0, None, body, segments, timeout)
        body, segments = self._encode((args, kwargs))
        # A plain function, sent once per worker. Registering it and queueing
        # the task that carries its definition under one lock keeps any later task from
        # overtaking the definition.
        with self._lock:
            fid = self._functions.get(fn)
            if fid is not None:
                return self._send(fid, None, body, segments, timeout)
            fid = next(self._function_ids)
            future = self._send(fid, definition, body, segments, timeout)
            if len(self._functions) < 4096:
                self._functions[fn] = fid
        return future

    def _encode(self, obj: Any) -> tuple[bytes, list[Any] | None]:
        # Each queued task holds a descriptor per segment: past the budget, in band instead.
        return _wire.dumps(obj, inband=self._segments_out.load() >= self._segment_budget)

    def _send(
        self,
        fid: int,
        definition: bytes | None,
        body: bytes,
        segments: list[Any] | None,
        timeout: float | None,
    ) -> Future:
        future, _ = self._core.submit(fid, definition, body, timeout, segments)
        if segments:
            count, out = len(segments), self._segments_out
            out.add(count)
            future.add_done_callback(lambda _: out.add(-count))
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
        ``unpack``, else ``fn(item)``. For a plain function the same runner object serves every
        map, so it is sent to each worker once; around a stateful callable it travels with each
        chunk, as the callable would."""
        runner = _Runner(_run_chunk if unpack else _run_chunk1, fn)
        if not _plain(fn):
            return runner
        with self._lock:
            cached = self._runners.setdefault((fn, unpack), runner)
            if len(self._runners) > 4096:
                self._runners.clear()
        return cached

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
        # A range is never materialised: its chunks are ranges too.
        _check_chunksize(chunksize)
        if star and len(iterables) == 1:
            source = iterables[0]
            items: Sequence[Any] = source if type(source) is range else list(source)
            runner = self._chunk_runner(fn, unpack=False)
        else:
            items = list(zip(*iterables, strict=False)) if star else [tuple(args) for args in iterables[0]]
            runner = self._chunk_runner(fn, unpack=True)
        plan = _Plan(self, runner, items, chunksize, task_timeout, ordered=True)
        return _results(plan, timeout=timeout, bar=_progress_bar(progress, len(items)))

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,  # type: ignore[override]
        chunksize: int | None = None,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        """Like ``Executor.map``: every item is scheduled now, results come in order.

        Items travel in chunks. Without ``chunksize``, chunks are sized from the measured
        duration of the first tasks (each chunk about 2-200 ms of work, at least a few per
        worker), and submitted as earlier ones finish. ``progress=True`` shows a progress bar
        on stderr when it is a terminal (tqdm when installed, a built-in bar otherwise);
        ``progress="always"`` shows it anyway.
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
        """Like ``multiprocessing.Pool.imap``: results in order. A list, tuple or range is
        scheduled at once; another iterable is read as results are consumed (a few chunks per
        worker ahead). Chunk sizes adapt to the measured task duration unless ``chunksize``."""
        return self._imap(fn, iterable, chunksize, ordered=True, progress=progress)

    def imap_unordered(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        """Like ``multiprocessing.Pool.imap_unordered``: results as they finish (see ``imap``)."""
        return self._imap(fn, iterable, chunksize, ordered=False, progress=progress)

    def _imap(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None,
        ordered: bool,
        progress: bool | str = False,
    ) -> Iterator[Any]:
        _check_chunksize(chunksize)
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        runner = self._chunk_runner(fn, unpack=False)
        plan = _Plan(self, runner, iterable, chunksize, self._task_timeout, ordered)
        return _results(plan, timeout=None, bar=_progress_bar(progress, total))

    def _stop(self, futures: list[Future]) -> None:
        for f in futures:
            if not f.cancel() and not f.done():
                self.cancel_running(f)

    # --- lifecycle --------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; with ``wait``, return once every worker has exited. Maps
        already started are scheduled to the end (unless ``cancel_futures``), as with
        ``concurrent.futures``."""
        for plan in list(self._plans):
            if cancel_futures:
                plan.stop()
            else:
                plan.top_up(everything=True)
        _stop_dispatcher(self._key, cancel_futures, wait)


def _run_chunk1(
    fn: Callable[..., Any], chunk: Iterable[Any]
) -> tuple[list[Any], BaseException | None, float]:
    """Runs in the worker: ``fn(item)`` for each item, stopping at the first exception; also
    returns the time it took (chunk sizes adapt to it)."""
    results: list[Any] = []
    start = time.perf_counter()
    try:
        results.extend(map(fn, chunk))  # keeps the results before an exception
    except Exception as exc:
        return results, exc, time.perf_counter() - start
    return _compact(results), None, time.perf_counter() - start


def _run_chunk(
    fn: Callable[..., Any], chunk: list[tuple[Any, ...]]
) -> tuple[list[Any], BaseException | None, float]:
    """Runs in the worker: ``fn(*args)`` for each item, stopping at the first exception."""
    results: list[Any] = []
    start = time.perf_counter()
    try:
        results.extend(itertools.starmap(fn, chunk))  # keeps the results before an exception
    except Exception as exc:
        return results, exc, time.perf_counter() - start
    return _compact(results), None, time.perf_counter() - start


def _compact(results: list[Any]) -> Any:
    """A long list of exact ints (64-bit) or exact floats as ``(kind, bytes)`` (see
    ``_plait.pack_numbers``): one block of bytes to pickle, and the caller rebuilds the numbers
    several times faster than it would unpickle them one by one; other lists as they are."""
    if len(results) >= 256:
        return _plait.pack_numbers(results) or results
    return results


def _count(results: Any) -> int:
    return len(results[1]) // 8 if type(results) is tuple else len(results)


def _check_chunksize(chunksize: int | None) -> None:
    if chunksize is not None and chunksize < 1:
        raise ValueError("chunksize must be >= 1")


class _Plan:
    """The chunks of one map: sized from the measured task time, kept a few per worker in flight.

    A sequence (list, tuple, range) is scheduled eagerly: each finished chunk submits the next
    from the completer thread (so the work goes on whether or not results are being read), and
    ``shutdown()`` submits whatever is left at once. Any other iterable is read lazily, a window
    of chunks ahead of the consumer, on the consumer's thread only and never under the plan's
    lock (user generators never run on the pool's threads, nor block them).
    """

    #: Target duration of one chunk: a few ms at least (the per-chunk cost is ~10 us), at most
    #: this much (so a Ctrl-C or a timeout kills little work, and the end of a map balances).
    MIN_CHUNK_S = 0.002
    MAX_CHUNK_S = 0.2
    #: Largest probe (a chunk sized before any duration is measured) of an eager map.
    MAX_PROBE = 16

    def __init__(
        self,
        pool: ProcessPool,
        runner: Callable[..., Any],
        items: Iterable[Any],
        chunksize: int | None,
        task_timeout: float | None,
        ordered: bool,
    ) -> None:
        self.pool = pool
        self.ordered = ordered
        self.runner = runner
        self.fixed = chunksize
        self.task_timeout = task_timeout
        self.workers = pool._max_workers
        self.window = 2 * self.workers
        self.eager = isinstance(items, (list, tuple, range))
        self.items: Any = items if self.eager else None
        self.source = None if self.eager else iter(items)
        self.n: int | None = len(items) if self.eager else None  # type: ignore[arg-type]
        self.taken = 0  # items handed to chunks
        self.submitted = 0  # chunks
        self.exhausted = False
        self.per_item: float | None = None  # seconds, smoothed
        self.order: collections.deque[Future] = collections.deque()  # submitted, not yet consumed
        self.finished: collections.deque[Future] = collections.deque()  # done, in completion order
        self.live: set[Future] = set()  # not yet consumed
        self.in_flight = 0
        self.cond = threading.Condition(threading.RLock())  # callbacks may run inside submit
        self.stopped = False
        self.failure: BaseException | None = None  # raised after the results submitted before it
        if self.eager:
            pool._plans.add(self)
        self.top_up()

    def _size(self, everything: bool = False) -> int:
        if self.fixed is not None:
            return self.fixed
        remaining = self.n - self.taken if self.n is not None else None
        if self.per_item is None:
            if remaining is None:
                return 1  # a lazy probe: its duration sizes every later chunk
            if everything:  # shutdown() with nothing measured: multiprocessing's default
                return max(1, -(-remaining // (self.workers * 4)))
            # Probes of 1, 2, 4, ... items, never more than a small share of the map.
            size = min(1 << min(self.submitted, 8), self.MAX_PROBE)
            return max(1, min(size, remaining // (self.workers * 8)))
        if remaining is None:
            target = self.MAX_CHUNK_S / 4
        else:
            spread = remaining * self.per_item / self.workers / 8
            target = min(self.MAX_CHUNK_S, max(self.MIN_CHUNK_S, spread))
        per_item = max(self.per_item, 1e-9)
        size = max(1, int(target / per_item))
        if remaining is not None:
            size = min(size, -(-remaining // self.workers))  # every worker gets a share
            if remaining - size < self.MIN_CHUNK_S / per_item:
                size = remaining  # the rest is too little to split further
        return size

    def more(self) -> bool:
        """Whether items are left to submit."""
        if self.n is not None:
            return self.taken < self.n
        return not self.exhausted

    def _room(self, everything: bool) -> bool:
        if self.stopped or not self.more():
            return False
        if everything:
            return True
        # Eager: chunks in flight (finished ones make room at once). Lazy: chunks not yet
        # consumed, so a slow consumer holds the reading back.
        return (self.in_flight if self.eager else len(self.live)) < self.window

    def _submit(self, chunk: Any) -> Future | None:
        """Submits one chunk (with ``cond`` held, so chunks queue in order)."""
        try:
            future = self.pool._submit(self.runner, (chunk,), {}, self.task_timeout)
        except BaseException as exc:
            self.failure = exc
            self.stopped = True
            return None
        self.in_flight += 1
        self.submitted += 1
        self.order.append(future)
        self.live.add(future)
        return future

    def top_up(self, everything: bool = False) -> None:
        """Submits chunks until the window is full (``everything``: all that is left). Called
        without ``cond`` held."""
        while True:
            if self.eager:
                with self.cond:
                    if not self._room(everything):
                        break
                    size = self._size(everything)
                    chunk = self.items[self.taken : self.taken + size]
                    self.taken += len(chunk)
                    future = self._submit(chunk)
            else:
                with self.cond:
                    if not self._room(False):
                        break
                    size = self._size()
                try:
                    chunk = list(itertools.islice(self.source, size))  # type: ignore[arg-type]
                except BaseException as exc:  # the input itself raised: after the results before it
                    with self.cond:
                        self.failure = exc
                        self.exhausted = True
                    break
                with self.cond:
                    self.taken += len(chunk)
                    if len(chunk) < size:
                        self.exhausted = True
                    future = self._submit(chunk) if chunk else None
            if future is None:
                break
            future.add_done_callback(self._done)
        with self.cond:
            self.cond.notify_all()

    def _done(self, future: Future) -> None:
        with self.cond:
            self.in_flight -= 1
            if not self.ordered:
                self.finished.append(future)
            if not future.cancelled() and future.exception() is None:
                results, error, elapsed = future.result()
                count = _count(results) + (error is not None)
                if count and self.fixed is None:
                    per = elapsed / count
                    self.per_item = per if self.per_item is None else (self.per_item + per) / 2
            self.cond.notify_all()
        if self.eager:
            self.top_up()

    def stop(self) -> None:
        """No more chunks; queued ones are cancelled and running ones' workers stopped."""
        with self.cond:
            self.stopped = True
            pending = [f for f in self.live if not f.done()]
        self.pool._stop(pending)


def _results(plan: _Plan, timeout: float | None, bar: Any) -> Iterator[Any]:
    """The items of ``plan``'s results, in order or as finished; a chunk's error is raised after
    the results it produced before it. ``timeout`` counts from now (the call to ``map``)."""
    end = None if timeout is None else time.monotonic() + timeout
    return itertools.chain.from_iterable(_chunks(plan, end, bar))


def _chunks(plan: _Plan, end: float | None, bar: Any) -> Iterator[list[Any]]:
    ordered = plan.ordered
    try:
        while True:
            if not plan.eager:
                plan.top_up()  # read the next items here, on the consumer's thread
            with plan.cond:
                while True:
                    future: Future | None
                    if ordered and plan.order:
                        future = plan.order[0]
                        break
                    if not ordered and plan.finished:
                        future = plan.finished.popleft()
                        break
                    if not plan.live:
                        if plan.failure is not None:
                            raise plan.failure
                        if not plan.more():
                            return
                    if not plan.eager and plan._room(False):
                        future = None  # room to read more input
                        break
                    remaining = None if end is None else end - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError
                    plan.cond.wait(remaining)
            if future is None:
                continue
            remaining = None if end is None else max(0.0, end - time.monotonic())
            results, error, _ = future.result(remaining)
            if type(results) is tuple:
                results = _plait.unpack_numbers(*results)
            # Consumed: the plan forgets it (a long map keeps no results it already gave).
            with plan.cond:
                if ordered:
                    plan.order.popleft()
                plan.live.discard(future)
            if bar is not None:
                bar.update(len(results))
            yield results
            if error is not None:
                raise error
    finally:
        if bar is not None:
            bar.close()
        # Stopped early (an error, a timeout, Ctrl-C, the iterator closed): queued chunks are
        # cancelled and running ones stopped, so their workers are free at once.
        plan.stop()


class _Bar:
    """A minimal progress bar on stderr, for when tqdm is not installed."""

    def __init__(self, total: int | None) -> None:
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
