"""``ProcessPool``: the executor, its dispatcher and completer threads, and how tasks and their
outcomes cross to the workers (see the package docstring, :mod:`plait.processes`).

Maps are planned by ``_planner``; workers start by ``python -m plait.processes._worker``
(spawn), by ``_fork`` (fork) or by a ``_forkserver``; tasks and results are encoded by ``_wire``.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import functools
import itertools
import os
import pickle
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import cloudpickle

from .. import _backend, _plait
from .._backend import Backend
from .._pool import Future
from .._progress import progress_bar
from ..exceptions import BrokenProcessPool, RemoteTraceback, TaskTimeout, WorkerCrashed
from . import _setup, _wire
from ._fork import fork_worker
from ._forkserver import ForkServer
from ._planner import Plan, Runner, check_chunksize, results_of, run_chunk, run_chunk1, snapshot
from ._worker import INHERITED_ONLY

__all__ = ["ProcessPool"]

DONE_OK, DONE_ERR, DONE_CRASHED, DONE_TIMED_OUT, DONE_CANCELLED, DONE_BROKEN, DONE_UNSENDABLE = (
    _plait.DONE_KINDS
)
_START_METHODS = ("spawn", "forkserver", "fork")
# What a fork server imports once for all its workers: this module (and with it pickle,
# cloudpickle, the wire format and the chunk loop) and the process-shared objects.
_FORKSERVER_PRELOAD = (__name__, f"{__package__}._ipc")


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


def _fd_limit() -> int:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


_CACHEABLE = (types.FunctionType, types.BuiltinFunctionType, Runner)


def _plain(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` carries no state of its own: a function without free variables (module
    level, ``__main__``, a lambda), or a chunk runner around one."""
    if type(fn) is Runner:
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


def _failed(exc: BaseException) -> Future:
    """The future of a task whose arguments did not pickle: it fails with the pickler's error,
    as with ``ProcessPoolExecutor`` (which pickles them on its feeder thread), and the pool goes
    on."""
    future = Future()
    future.set_running_or_notify_cancel()
    future.set_exception(_wire.pickling_error(exc))
    return future


def _unpickling_failed(what: str, error: BaseException) -> BaseException:
    """A task's result (or exception) that cannot be unpickled here fails that task with
    ``BrokenProcessPool``, the class ``ProcessPoolExecutor`` reports it with (``__cause__``: the
    error); the pool goes on. Ctrl-C stays a ``KeyboardInterrupt``."""
    if isinstance(error, KeyboardInterrupt):
        return error
    broken = BrokenProcessPool(f"the task's {what} could not be unpickled: {error!r}")
    broken.__cause__ = error
    return broken


def _complete(future: Future, kind: int, payload: Any, segments: list[Any] | None = None) -> None:
    """Called on the completer thread with each finished task (see processes.rs); ``segments``
    hold a result's large buffers."""
    if not future.running() and kind != DONE_CANCELLED:
        # Cancelled before it started (or already completed): nothing to report.
        if future.done():
            return
    if kind == DONE_OK:
        try:
            result = _wire.loads(payload, segments)
        except BaseException as exc:
            future.set_exception(_unpickling_failed("result", exc))
        else:
            future.set_result(result)
    elif kind == DONE_ERR:
        try:
            exc, tb = pickle.loads(payload)
        except BaseException as error:
            future.set_exception(_unpickling_failed("exception", error))
            return
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
    # goes away. As with ProcessPoolExecutor, work already submitted runs to the end first
    # (shutdown(cancel_futures=True) is how to drop it).
    for key in list(_dispatchers):
        _stop_dispatcher(key, cancel=False, wait=True)


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


def _cpu_count() -> int:
    # What ProcessPoolExecutor uses: the CPUs this process may run on from 3.13, all before.
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return count or 1


def _start_method_of(mp_context: Any, start_method: str | None) -> tuple[str, Any]:
    """The start method from ``mp_context`` (a ``multiprocessing`` context, as given to
    ``ProcessPoolExecutor``) and/or plait's ``start_method``, with the context the pool reports as
    ``_mp_context``. Neither given: "spawn" (plait's default, whatever ``multiprocessing``'s)."""
    import multiprocessing

    if start_method is not None and start_method not in _START_METHODS:
        raise ValueError(f"start_method must be one of {_START_METHODS}, not {start_method!r}")
    if mp_context is None:
        method = start_method or "spawn"
        return method, multiprocessing.get_context(method)
    get_start_method = getattr(mp_context, "get_start_method", None)
    if not callable(get_start_method):
        raise TypeError(
            f"mp_context must be a multiprocessing context (multiprocessing.get_context(...)), "
            f"not {type(mp_context).__qualname__}"
        )
    method = get_start_method(allow_none=False)
    if method not in _START_METHODS:
        raise ValueError(
            f"mp_context uses the start method {method!r}, which plait's ProcessPool cannot honour: "
            f"use a context of one of {_START_METHODS}"
        )
    if start_method is not None and start_method != method:
        raise TypeError(
            f"mp_context (start method {method!r}) and start_method={start_method!r} disagree: give one"
        )
    return method, mp_context


def _max_tasks(per_child: int | None, per_worker: int | None) -> int | None:
    """``max_tasks_per_child`` (ProcessPoolExecutor's name) and ``max_tasks_per_worker`` (plait's)
    are one option: checked as ProcessPoolExecutor checks it, both given must agree."""
    for name, value in (("max_tasks_per_child", per_child), ("max_tasks_per_worker", per_worker)):
        if value is not None:
            if not isinstance(value, int):
                raise TypeError(f"{name} must be an integer")
            if value <= 0:
                raise ValueError(f"{name} must be >= 1")
    if per_child is not None and per_worker is not None and per_child != per_worker:
        raise TypeError(
            f"max_tasks_per_child={per_child} and max_tasks_per_worker={per_worker} are the same "
            "option with different values: give one"
        )
    return per_worker if per_worker is not None else per_child


class ProcessPool(concurrent.futures.Executor):
    """A process pool executor where a crash, a timeout or a cancel affects one task only.

    Example::

        with ProcessPool(max_workers=4, task_timeout=60) as pool:
            results = list(pool.map(simulate, seeds))

    The positional parameters and ``max_tasks_per_child`` are ``ProcessPoolExecutor``'s, checked
    the same way; plait's own options are keyword-only. ``mp_context`` (a ``multiprocessing``
    context, e.g. ``multiprocessing.get_context("forkserver")``) or ``start_method`` is how
    workers start: ``"spawn"`` (the default, whatever ``multiprocessing``'s default) runs a fresh
    interpreter per worker; ``"forkserver"`` starts one server process per pool (a fresh
    interpreter that imports plait once) which forks every worker, so workers start fast and
    none is a copy of this process; ``"fork"`` forks this process (fastest; it inherits its
    state and threads' locks).
    With any of them, a crashed worker's exit code or signal is reported by ``WorkerCrashed``
    (also a ``concurrent.futures.process.BrokenProcessPool``), for that task only.
    ``max_tasks_per_worker`` (``max_tasks_per_child``) replaces a worker after that many tasks;
    ``task_timeout`` fails a task that runs longer (``TaskTimeout``) and replaces its worker.
    ``backend`` runs the tasks on a cluster instead, with the same API and guarantees:
    ``"dask"`` (a ``LocalCluster`` of the pool's own), ``"ray"``, or ``plait.backends.Dask(...)``
    / ``plait.backends.Ray(...)`` (see ``docs/distributed.md``); ``max_workers`` is then the
    number of tasks kept running there (default: the cluster's size).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_tasks_per_child: int | None = None,
        max_tasks_per_worker: int | None = None,
        task_timeout: float | None = None,
        start_method: str | None = None,
        backend: Any = None,
    ) -> None:
        remote = None
        if backend is not None and backend != "local":
            from ..backends import resolve

            remote = resolve(backend)
            if mp_context is not None or start_method not in (None, "spawn"):
                raise ValueError(
                    "a cluster backend starts its workers itself: give no mp_context or start_method"
                )
        if max_workers is None:
            max_workers = None if remote is not None else _cpu_count()
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        start_method, self._mp_context = _start_method_of(mp_context, start_method)
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        max_tasks_per_worker = _max_tasks(max_tasks_per_child, max_tasks_per_worker)
        if max_tasks_per_child is not None and start_method == "fork":
            raise ValueError(
                "max_tasks_per_child is incompatible with the 'fork' multiprocessing start method "
                "(as with ProcessPoolExecutor); supply a different mp_context, or use plait's "
                "max_tasks_per_worker=, which works with 'fork' too"
            )
        if task_timeout is not None and not task_timeout > 0:
            raise ValueError("task_timeout must be a positive number of seconds")
        initargs = tuple(initargs)
        hello = {
            "sys_path": list(sys.path),
            # multiprocessing's key, as its own children get it: Manager proxies sent to tasks
            # connect with it.
            "authkey": bytes(self._mp_context.current_process().authkey),
            "initializer": None,
            # Unpickled after the worker adopted the key (initargs may hold Manager proxies).
            "initargs": None,
        }
        hello_fds: list[int] = []
        if initializer is not None:
            try:
                hello["initializer"] = _dumps_function(initializer)
                # With the descriptors of what they hold (multiprocessing's and plait's
                # process-shared objects), as ProcessPoolExecutor's workers get them.
                hello["initargs"], hello_fds = _setup.dumps(initargs)
            except (TypeError, RuntimeError):
                # Forked workers call the objects themselves (a "fork" context's
                # multiprocessing.Lock, which multiprocessing shares by inheritance only, as
                # ProcessPoolExecutor's forked workers get it); the others need them pickled.
                if start_method != "fork":
                    raise
                hello["initializer"] = INHERITED_ONLY
                hello_fds = []
        if remote is not None and hello_fds:
            raise TypeError(
                "initargs hold process-shared objects (queues, locks, shared memory of this machine): "
                "they cannot go to a cluster backend's workers"
            )
        self._task_timeout = task_timeout
        self._functions: dict[Any, int] = {}
        # Eager maps still submitting chunks: shutdown() submits the rest of each at once.
        self._plans: weakref.WeakSet[Plan] = weakref.WeakSet()
        # Tasks' shared-memory segments not yet released (each holds a descriptor until its
        # task ends): past the budget, buffers travel in band instead.
        self._segments_out = _plait.AtomicInt(0)
        self._segment_budget = max(16, _fd_limit() // 4)
        self._runners: dict[tuple[Any, bool], Runner] = {}
        self._function_ids = itertools.count(1)
        self._lock = threading.Lock()
        # forkserver: workers are forked by this pool's fork server (started on the dispatcher
        # thread with the first worker), which also reports how they exit.
        self._forkserver = None
        if start_method == "forkserver":
            self._forkserver = ForkServer(sys.executable, _FORKSERVER_PRELOAD)
        launch: Callable[[int], int | None] | None = None
        if start_method == "fork":
            launch = functools.partial(fork_worker, inherited=(initializer, initargs))
        reap: Callable[[int], int] | None = None
        if self._forkserver is not None:
            launch, reap = self._forkserver.launch, self._forkserver.status
        # The backend: where tasks run (see plait._backend for the interface).
        if remote is not None:
            # Tasks run on a cluster (plait.backends): max_workers is how many run there at once.
            core = remote._connect(max_workers, _dumps(hello), _complete, max_tasks_per_worker)
            max_workers = core.slots
        else:
            core = _plait.ProcessPoolCore(
                max_workers,
                [sys.executable, "-m", "plait.processes._worker"],
                _dumps(hello),
                _complete,
                max_tasks_per_worker,
                launch,
                reap,
                hello_fds,
            )
        self._max_workers: int = max_workers  # type: ignore[assignment]
        if remote is not None:
            # A task on a cluster costs milliseconds to send and collect: a map's chunks are
            # at least this long, so that cost stays a few percent of the work.
            self._min_chunk_s = 0.05
        self._core: Backend = _backend.check(core)
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
        self._broken: str | None = None
        try:
            self._dispatcher.start()
            self._completer.start()
        except RuntimeError as exc:
            self._break_at_start(exc)
        # A pool dropped without shutdown() still stops its workers (after the queue drains).
        self._finalizer = weakref.finalize(self, _stop_dispatcher, key, False, False)

    def _break_at_start(self, exc: RuntimeError) -> None:
        """No new thread could start (the interpreter is finalizing, gh-109047): the pool is
        broken, as ``ProcessPoolExecutor`` is then, and every submit raises
        ``BrokenProcessPool``. The thread that did start is stopped."""
        self._broken = f"the process pool could not start its threads: {exc}"
        _dispatchers.pop(self._key, None)
        self._core.shutdown(True)
        if self._dispatcher.ident is not None:
            self._dispatcher.join()  # it closes the fork server
        elif self._forkserver is not None:
            self._forkserver.close()

    # --- submitting -------------------------------------------------------------------------

    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
    ) -> Future:
        if self._broken is not None:
            raise BrokenProcessPool(self._broken)
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        fid = self._functions.get(fn) if type(fn) in _CACHEABLE else None
        if fid is not None:
            if not kwargs and len(args) == 1 and type(args[0]) in _wire.SCALARS:
                # The commonest task, fn(number or string): a plain pickle is all it needs.
                future, _ = self._core.submit(fid, None, pickle.dumps((args, kwargs), protocol=5), timeout)
                return future  # type: ignore[no-any-return]
            try:
                body, segments = self._encode((args, kwargs))
            except Exception as exc:
                return _failed(exc)
            return self._send(fid, None, body, segments, timeout)
        definition = _definition(fn)
        try:
            if definition is None:
                # Bound methods, partials, closures, callable objects: their state may change
                # between calls, so (as with the stdlib pools) they travel with every task.
                body, segments = self._encode((fn, args, kwargs))
                return self._send(0, None, body, segments, timeout)
            body, segments = self._encode((args, kwargs))
        except Exception as exc:
            return _failed(exc)
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
        runner = Runner(run_chunk if unpack else run_chunk1, fn)
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
        check_chunksize(chunksize)
        if star and len(iterables) == 1:
            source = iterables[0]
            # The items as they are now: a list of numbers is packed (cheaper than a copy, and
            # its chunks are ready to send).
            items: Sequence[Any] = source if type(source) is range else snapshot(source)
            runner = self._chunk_runner(fn, unpack=False)
        else:
            items = list(zip(*iterables, strict=False)) if star else [tuple(args) for args in iterables[0]]
            runner = self._chunk_runner(fn, unpack=True)
        plan = Plan(self, runner, items, chunksize, task_timeout, ordered=True)
        return results_of(plan, timeout=timeout, bar=progress_bar(progress, len(items)))

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
        check_chunksize(chunksize)
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        runner = self._chunk_runner(fn, unpack=False)
        plan = Plan(self, runner, iterable, chunksize, self._task_timeout, ordered)
        return results_of(plan, timeout=None, bar=progress_bar(progress, total))

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
