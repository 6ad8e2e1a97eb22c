"""Native threads for greenlets (gevent's ``gevent.threadpool``): :class:`ThreadPool` runs
functions that block or compute (a C call, a blocking library) in OS threads, and greenlets wait
for their results without blocking the hub, which keeps running the other greenlets meanwhile.

::

    pool = ThreadPool(4)
    result = pool.spawn(hashlib.scrypt, password, salt=salt, n=2**14, r=8, p=1)
    key = result.get()  # only this greenlet waits

:class:`ThreadPoolExecutor` is ``concurrent.futures.ThreadPoolExecutor`` on the same threads: its
futures are real ``concurrent.futures.Future`` objects whose ``result()`` waits cooperatively in
the hub's thread (natively elsewhere) and that ``plait.green.wait``/``iwait`` accept.
:func:`spawn` uses the hub's own pool (:func:`get_threadpool`, 10 threads).

While a job runs, its pool counts as a thread working for the hub (``hub._keepalive``): the hub
does not report :class:`~plait.green.BlockedForever` while greenlets wait for it, and the job's
end wakes the hub through ``call_soon_threadsafe``. A pool's threads are stopped and joined when
its hub is destroyed.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import queue as _pyqueue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import _base as _cf_base
from concurrent.futures import thread as _cf_thread
from typing import Any

from greenlet import getcurrent

from .. import _plait
from . import _native, monkey
from ._hub import Hub, _local, get_hub
from ._hub import _get_ident as _hub_get_ident
from ._linkable import AbstractLinkable, InvalidThreadUseError, schedule
from .event import AsyncResult, Event
from .lock import Semaphore
from .pool import GroupMappingMixin

__all__ = ["ThreadPool", "ThreadPoolExecutor", "get_threadpool", "spawn"]

#: The size of a hub's own pool (:func:`get_threadpool`), as gevent's ``Hub.threadpool_size``.
DEFAULT_SIZE = 10

_STOP: Any = None  # the sentinel that tells one worker thread to exit
# The interpreter's own threads, locks and ids, taken before any patching (see _Workers).
_start_new_thread = _native._start_new_thread
_allocate_lock = _native._allocate_lock
_get_ident = _hub_get_ident
_Empty = _pyqueue.Empty
_patched = monkey.saved  # the standard modules patched so far, by name


def _alive(hub: Hub) -> bool:
    return not hub._destroying and not hub.loop.is_closed()


def _in_hub_thread(hub: Hub) -> bool:
    return hub.thread_ident == _get_ident() and _alive(hub)


class _Thread:
    """One worker OS thread of :class:`_Workers`. Unless ``threading`` is patched, it is a
    ``threading.Thread`` (named, listed by ``threading.enumerate()``); once patched, a thread of
    the interpreter's own ``_thread``, with a lock held while it runs (a join is an acquire)."""

    __slots__ = ("exit_lock", "ident", "name", "thread")

    def __init__(self, name: str) -> None:
        self.name = name
        self.ident: int | None = None
        self.exit_lock = _allocate_lock()
        self.exit_lock.acquire()
        self.thread: threading.Thread | None = None

    def start(self, run: Callable[[_Thread], object]) -> None:
        if "threading" in _patched:
            _start_new_thread(run, (self,))
        else:
            self.thread = threading.Thread(target=run, args=(self,), name=self.name, daemon=True)
            self.thread.start()

    def alive(self) -> bool:
        return self.exit_lock.locked() or (self.thread is not None and self.thread.is_alive())

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
        else:
            self.exit_lock.acquire()
            self.exit_lock.release()

    def __repr__(self) -> str:
        return f"<plait.green.threadpool thread {self.name!r} ident={self.ident}>"


class _Workers:
    """Native threads that run the callables of one queue, started on demand (at most
    ``maxsize`` at once) and stopped by sentinels. Each callable reports its own result; a
    thread tells ``hub`` when it exits (``exited`` is set there), so a greenlet can wait for
    the threads to end without blocking the hub.

    The threads, the lock and the queue are the interpreter's own (``_thread``, taken before
    any patching, and plait's native queue), never ``threading``'s: once ``patch_thread`` made
    ``threading.Thread`` a greenlet, a pool built on it would run each job in the hub's thread,
    and the first blocking call would stop every greenlet."""

    def __init__(
        self,
        hub: Hub,
        name: str,
        maxsize: int,
        idle_timeout: float = -1,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        on_broken: Callable[[], object] | None = None,
    ) -> None:
        self.hub = hub
        self.name = name
        self.maxsize = maxsize
        self.idle_timeout = idle_timeout
        self.initializer = initializer
        self.initargs = initargs
        self.on_broken = on_broken
        # plait's native queue: a worker waits in it without the GIL and wakes without a GIL
        # ping-pong (a job's round trip: 33 us, 64 us with queue.SimpleQueue; gevent's is 31 us).
        self.tasks: Any = _plait.SimpleQueue()
        self.lock = _allocate_lock()
        self.threads: set[_Thread] = set()  # running and not told to stop
        self.started: set[_Thread] = set()  # not joined yet
        self.stopping = 0  # stop sentinels queued and not taken yet
        self.outstanding = 0  # callables queued or running
        self.exited = Event()  # set in the hub when a thread exits
        self._names = itertools.count()

    @property
    def size(self) -> int:
        """Threads running that were not told to stop."""
        return len(self.threads) - self.stopping

    def submit(self, task: Callable[[], object]) -> None:
        """Queues ``task`` (called once in a worker thread), starting a thread if none is free."""
        with self.lock:
            self.outstanding += 1
            self._grow(min(self.maxsize, self.outstanding))
            # Under the lock: a thread leaving idle checks the queue under it, so it sees this
            # task, or this call saw it gone and started another.
            self.tasks.put(task)

    def grow(self, wanted: int) -> None:
        """Starts threads until ``wanted`` run (those told to stop do not count)."""
        with self.lock:
            self._grow(wanted)

    def _grow(self, wanted: int) -> None:
        while len(self.threads) - self.stopping < wanted:
            if len(self.started) > 2 * len(self.threads) + 8:  # forget ended ones
                self.started = {t for t in self.started if t.alive()}
            thread = _Thread(f"{self.name}_{next(self._names)}")
            self.threads.add(thread)
            self.started.add(thread)
            try:
                thread.start(self._run)
            except BaseException:
                self.threads.discard(thread)
                self.started.discard(thread)
                raise

    def shrink(self, target: int) -> None:
        """Tells threads to stop (once the tasks queued before are taken) until ``target``
        run."""
        with self.lock:
            excess = len(self.threads) - self.stopping - target
            for _ in range(excess):
                self.tasks.put(_STOP)
            self.stopping += max(0, excess)

    def drain(self) -> list[Any]:
        """Takes the tasks not started yet off the queue (stop sentinels stay) and returns
        them."""
        taken, stops = [], 0
        while True:
            try:
                task = self.tasks.get_nowait()
            except _Empty:
                break
            if task is _STOP:
                stops += 1
            else:
                taken.append(task)
        for _ in range(stops):
            self.tasks.put(_STOP)
        with self.lock:
            self.outstanding -= len(taken)
        return taken

    def wait_exited(self, size: int, what: str) -> None:
        """In a greenlet of the hub's thread: waits until at most ``size`` threads run (those
        told to stop exit, each after the tasks queued before its sentinel), while the hub runs
        the other greenlets."""
        hub = self.hub
        hub._keepalive += 1  # the exiting threads will wake it
        try:
            while len(self.threads) > size:
                self.exited.clear()
                self.exited._wait_core(None, what)
        finally:
            hub._keepalive -= 1

    def join(self, what: str) -> None:
        """Waits until every thread has exited (all were told to stop): cooperatively in a
        greenlet of the hub's thread, then natively for their last instructions."""
        hub = self.hub
        if _in_hub_thread(hub) and getcurrent() is not hub:
            self.wait_exited(0, what)
        with self.lock:
            threads, self.started = self.started, set()
        me = _get_ident()
        for thread in threads:
            if thread.ident != me:
                thread.join()

    def _run(self, me: _Thread) -> None:
        me.ident = _get_ident()
        get = self.tasks.get
        idle = self.idle_timeout if self.idle_timeout is not None and self.idle_timeout > 0 else None
        try:
            if self.initializer is not None and not self._initialize(me):
                return
            while True:
                try:
                    task = get(timeout=idle) if idle is not None else get()
                except _Empty:
                    with self.lock:  # idle too long: exit, unless work came meanwhile
                        if not self.tasks.empty():
                            continue
                        self.threads.discard(me)
                    return
                if task is _STOP:
                    with self.lock:
                        self.stopping -= 1
                        self.threads.discard(me)
                    return
                try:
                    task()
                finally:
                    del task
                    with self.lock:
                        self.outstanding -= 1
        finally:
            try:
                hub = getattr(_local, "hub", None)
                if hub is not None:  # a job used plait.green in this thread: its hub dies with it
                    hub.destroy()
                schedule(self.hub, self.exited.set)
            finally:
                me.exit_lock.release()

    def _initialize(self, me: _Thread) -> bool:
        try:
            assert self.initializer is not None
            self.initializer(*self.initargs)
        except BaseException:
            _cf_base.LOGGER.critical("Exception in initializer:", exc_info=True)
            with self.lock:
                self.threads.discard(me)
            if self.on_broken is not None:
                self.on_broken()
            return False
        return True


class _Job:
    """A :class:`ThreadPool` job: runs in a worker thread, then delivers its outcome to its
    :class:`~plait.green.event.AsyncResult` in the hub."""

    __slots__ = ("args", "exc", "func", "kwargs", "pool", "result", "value")

    def __init__(
        self, pool: ThreadPool, result: AsyncResult, func: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        self.pool = pool
        self.result = result
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.value: Any = None
        self.exc: BaseException | None = None

    def __call__(self) -> None:  # in a worker thread
        try:
            self.value = self.func(*self.args, **self.kwargs)
        except BaseException as exc:
            self.exc = exc
        finally:
            self.args = self.kwargs = None
        schedule(self.pool.hub, self._deliver)

    def _deliver(self) -> None:  # in the hub
        pool, result, exc, func, value = self.pool, self.result, self.exc, self.func, self.value
        self.exc = self.value = self.func = None
        pool._job_done()
        if exc is not None:
            pool.hub.handle_error((pool, func), exc)
            result.set_exception(exc)
        else:
            result.set(value)

    def cancel(self) -> None:  # never started (the pool was killed or destroyed)
        self.pool._job_done()


class ThreadPool(GroupMappingMixin):
    """A pool of at most ``maxsize`` native threads (gevent's ``ThreadPool``), started on
    demand: :meth:`spawn` runs a function in one and returns an
    :class:`~plait.green.event.AsyncResult` that greenlets wait on (``get``, ``wait``,
    ``plait.green.wait``) while the hub runs the others. It also has a group's ``apply``,
    ``map``, ``imap`` and their variants.

    Use it from the thread of its ``hub`` (the current thread's by default). ``len(pool)`` is
    the number of jobs not finished (a pool is false when it has none).
    ``idle_task_timeout`` (seconds; -1 for never): a thread idle that long exits.

    :raises TypeError: ``maxsize`` is not an integer.
    :raises ValueError: ``maxsize`` is negative.
    """

    _counter = itertools.count(1)

    def __init__(self, maxsize: int, hub: Hub | None = None, idle_task_timeout: float = -1) -> None:
        _check_maxsize(maxsize)
        self._maxsize = maxsize
        self._name = f"plait.green.ThreadPool-{next(self._counter)}"
        self._idle_task_timeout = idle_task_timeout
        self._bind(hub if hub is not None else get_hub())

    def _bind(self, hub: Hub) -> None:
        self.hub = hub
        self._available = Semaphore(self._maxsize)
        self._unfinished = 0
        self._idle = Event()
        self._idle.set()
        self._workers = _Workers(hub, self._name, self._maxsize, self._idle_task_timeout)
        self._registered = False

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} at {id(self):#x} tasks={len(self)} size={self.size} "
            f"maxsize={self.maxsize} hub={self.hub!r}>"
        )

    def __len__(self) -> int:
        return self._unfinished

    # -- size -------------------------------------------------------------------------------

    @property
    def maxsize(self) -> int:
        """The most threads (and jobs at once: :meth:`spawn` waits past it). Settable."""
        return self._maxsize

    @maxsize.setter
    def maxsize(self, maxsize: int) -> None:
        _check_maxsize(maxsize)
        difference = maxsize - self._maxsize
        self._available.counter += difference
        self._maxsize = self._workers.maxsize = maxsize
        self.adjust()
        self._available._start_notify()  # more room: blocked spawns go on

    @property
    def size(self) -> int:
        """The number of threads running. Setting it starts threads now (up to
        :attr:`maxsize`) or stops some (waiting for them, from a greenlet)."""
        return self._workers.size

    @size.setter
    def size(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"Size of the pool cannot be negative: {size!r}")
        if size > self._maxsize:
            raise ValueError(f"Size of the pool cannot be bigger than maxsize: {size!r} > {self._maxsize!r}")
        if size > self._workers.size:
            self._register()
            self._workers.grow(size)
        elif size < self._workers.size:
            self._workers.shrink(size)
            if getcurrent() is not self.hub:
                self._wait_threads(size)

    def adjust(self) -> None:
        """Starts threads for the jobs waiting (up to :attr:`maxsize`); stops those above it."""
        workers = self._workers
        if workers.size > self._maxsize:
            workers.shrink(self._maxsize)
        elif self._unfinished:
            self._register()
            workers.grow(min(self._maxsize, self._unfinished))

    def _wait_threads(self, size: int) -> None:
        if _in_hub_thread(self.hub):
            self._workers.wait_exited(size, f"{type(self).__name__}.kill()")
        elif size == 0:
            self._workers.join(f"{type(self).__name__}.kill()")

    # -- jobs -------------------------------------------------------------------------------

    def spawn(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> AsyncResult:
        """Runs ``func(*args, **kwargs)`` in a thread of the pool; returns an
        :class:`~plait.green.event.AsyncResult` that holds its value or exception (an exception
        is also printed, as gevent does). Waits for a free slot when :attr:`maxsize` jobs run.

        :raises InvalidThreadUseError: called from another thread than the hub's."""
        hub = self.hub
        if hub.thread_ident != _get_ident():
            raise InvalidThreadUseError(
                f"plait.green: {self!r} belongs to the hub of thread {hub.thread_ident}; "
                f"spawn() was called from thread {_get_ident()}"
            )
        if not _alive(hub):  # destroyed (its threads were joined): serve this thread's new hub
            self._bind(get_hub())
            hub = self.hub
        self._available._acquire(True, None, f"{type(self).__name__}.spawn()")
        result = AsyncResult()
        job = _Job(self, result, func, args, kwargs)
        hub._keepalive += 1
        self._unfinished += 1
        self._idle.clear()
        try:
            self._register()
            self._workers.submit(job)
        except BaseException:
            job.cancel()
            raise
        return result

    def _job_done(self) -> None:
        # In the hub, once per spawn: its slot and its keepalive are given back.
        self.hub._keepalive -= 1
        self._unfinished -= 1
        if not self._unfinished:
            self._idle.set()
        self._available.release()

    def join(self) -> None:
        """Waits until every job spawned so far has finished."""
        if self._unfinished:
            self._idle._wait_core(None, f"{type(self).__name__}.join()")

    def kill(self) -> None:
        """Stops the threads (each after the jobs queued before it); from a greenlet, waits for
        them to exit. A later :meth:`spawn` starts threads again."""
        self.size = 0
        if not self._workers.threads:
            self._unregister()

    def _apply_immediately(self) -> bool:
        # apply() from a worker thread (a job that applies): waiting for the pool there could
        # wait for itself.
        return _get_ident() != self.hub.thread_ident

    def _apply_async_cb_spawn(self, callback: Callable[[Any], Any], result: Any) -> None:
        callback(result)

    def _apply_async_use_greenlet(self) -> bool:
        return True  # spawn() can wait

    # -- the hub's lifetime -----------------------------------------------------------------

    def _register(self) -> None:
        if not self._registered:
            self._registered = True
            self.hub.on_destroy.append(self._on_hub_destroy)

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            try:
                self.hub.on_destroy.remove(self._on_hub_destroy)
            except ValueError:
                pass

    def _on_hub_destroy(self) -> None:
        # The loop has stopped: jobs never started are dropped, running ones finish (their
        # results are not delivered), and the threads are joined.
        self._registered = False
        for job in self._workers.drain():
            job.cancel()
        self._workers.shrink(0)
        self._workers.join("ThreadPool.kill()")
        if _default_pools.get(self.hub) is self:
            del _default_pools[self.hub]


def _check_maxsize(maxsize: Any) -> None:
    if not isinstance(maxsize, int):
        raise TypeError(f"maxsize must be integer: {maxsize!r}")
    if maxsize < 0:
        raise ValueError(f"maxsize must not be negative: {maxsize!r}")


_default_pools: weakref.WeakKeyDictionary[Hub, ThreadPool] = weakref.WeakKeyDictionary()


def get_threadpool(hub: Hub | None = None) -> ThreadPool:
    """The hub's own :class:`ThreadPool` (``DEFAULT_SIZE`` threads at most), made on first
    use and stopped with the hub (gevent's ``get_hub().threadpool``)."""
    if hub is None:
        hub = get_hub()
    pool = _default_pools.get(hub)
    if pool is None:
        pool = _default_pools[hub] = ThreadPool(DEFAULT_SIZE, hub)
    return pool


def spawn(func: Callable[..., Any], *args: Any, **kwargs: Any) -> AsyncResult:
    """Runs ``func(*args, **kwargs)`` in the hub's own thread pool (:func:`get_threadpool`);
    returns an :class:`~plait.green.event.AsyncResult` greenlets can wait on."""
    return get_threadpool().spawn(func, *args, **kwargs)


# -- concurrent.futures ---------------------------------------------------------------------


class _GreenFuture(AbstractLinkable, concurrent.futures.Future):  # type: ignore[misc]
    """A ``concurrent.futures.Future`` that greenlets of its hub's thread wait on cooperatively
    (``result``, ``exception``, ``plait.green.wait``/``iwait``); other threads wait natively."""

    def __init__(self, hub: Hub) -> None:
        concurrent.futures.Future.__init__(self)
        AbstractLinkable.__init__(self, hub)
        self._notify_all = True

    def ready(self) -> bool:
        return self.done()

    def _green_wait(self, timeout: float | None, what: str) -> None:
        if self.done() or not _in_hub_thread(self.hub):  # type: ignore[arg-type]
            return
        if not self._wait_core(timeout, what):
            raise concurrent.futures.TimeoutError()

    def result(self, timeout: float | None = None) -> Any:
        """The call's value, or raises its exception: waits up to ``timeout`` seconds (only the
        current greenlet, in the hub's thread).

        :raises concurrent.futures.TimeoutError: not done in time.
        :raises concurrent.futures.CancelledError: it was cancelled."""
        self._green_wait(timeout, "Future.result()")
        return concurrent.futures.Future.result(self, 0 if self.done() else timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:  # type: ignore[override]
        """The call's exception, or None: waits like :meth:`result`."""
        self._green_wait(timeout, "Future.exception()")
        return concurrent.futures.Future.exception(self, 0 if self.done() else timeout)

    def add_done_callback(self, fn: Callable[[concurrent.futures.Future[Any]], object]) -> None:
        """Calls ``fn(future)`` once done: now if it is; else in the hub (from the hub's thread;
        an error it raises is printed) or in the thread that completes it (from another)."""
        if self.done() or not _in_hub_thread(self.hub):  # type: ignore[arg-type]
            concurrent.futures.Future.add_done_callback(self, fn)
            return
        self.rawlink(_DoneCallback(fn))

    def cancel(self) -> bool:
        if not concurrent.futures.Future.cancel(self):
            return False
        self._check_and_notify()
        return True

    def __repr__(self) -> str:
        return concurrent.futures.Future.__repr__(self)


class _DoneCallback:
    """A link that calls a done callback with the future (gevent prints, never raises)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], object]) -> None:
        self.fn = fn

    def __call__(self, future: Any) -> None:
        try:
            self.fn(future)
        except Exception:
            _cf_base.LOGGER.exception("exception calling callback for %r", future)


class _WorkItem:
    """An executor task: runs in a worker thread (unless cancelled first), completes its
    future there, then tells the hub (its keepalive and the future's links)."""

    __slots__ = ("args", "fn", "future", "hub", "kwargs")

    def __init__(
        self, hub: Hub, future: _GreenFuture, fn: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        self.hub = hub  # the hub whose keepalive counts it
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def __call__(self) -> None:
        future = self.future
        try:
            if future.set_running_or_notify_cancel():
                try:
                    result = self.fn(*self.args, **self.kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
        finally:
            self.fn = self.args = self.kwargs = None
            _deliver_future(self.hub, future)

    def fail(self, exc: BaseException | None) -> None:
        """Never run: cancelled (``exc`` None) or failed with ``exc`` (a broken pool)."""
        future = self.future
        if exc is None:
            future.cancel()
        elif future.set_running_or_notify_cancel():
            future.set_exception(exc)
        _deliver_future(self.hub, future)


def _deliver_future(hub: Hub, future: _GreenFuture) -> None:
    schedule(hub, lambda: _future_done(hub, future))


def _future_done(hub: Hub, future: _GreenFuture) -> None:
    hub._keepalive -= 1
    future._check_and_notify()


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """``concurrent.futures.ThreadPoolExecutor`` whose futures greenlets wait on without
    blocking the hub: ``future.result()`` in the hub's thread waits cooperatively, and
    ``plait.green.wait``/``iwait`` accept the futures. In other threads they are ordinary
    futures (``concurrent.futures.wait``/``as_completed`` work there; in the hub's thread
    those block it). ``submit`` never waits; the arguments are the stdlib's.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        super().__init__(max_workers, thread_name_prefix, initializer, initargs)
        # A worker thread takes it when its initializer fails: a green lock (patch_thread)
        # cannot be taken there.
        self._shutdown_lock = _allocate_lock()
        self._hub = get_hub()
        self._green_workers = _Workers(
            self._hub,
            self._thread_name_prefix,
            self._max_workers,
            initializer=initializer,
            initargs=initargs,
            on_broken=self._initializer_failed,
        )
        self._hub.on_destroy.append(self._on_hub_destroy)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """Schedules ``fn(*args, **kwargs)`` and returns its future (it never waits).

        :raises RuntimeError: after :meth:`shutdown`.
        :raises BrokenThreadPool: a thread's initializer failed."""
        with self._shutdown_lock:
            if self._broken:
                from ..exceptions import BrokenThreadPool

                raise BrokenThreadPool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _cf_thread._shutdown:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            hub = self._hub
            future = _GreenFuture(hub)
            if hub.thread_ident == _get_ident():
                hub._keepalive += 1
            else:
                schedule(hub, lambda: _add_keepalive(hub))  # runs before the job's delivery
            self._green_workers.submit(_WorkItem(hub, future, fn, args, kwargs))
            return future

    def _adjust_thread_count(self) -> None:
        pass  # the threads are _Workers'

    def _initializer_failed(self) -> None:
        # In the worker thread whose initializer raised: fail what is queued, refuse new work.
        with self._shutdown_lock:
            self._broken = "A thread initializer failed, the thread pool is not usable anymore"
            from ..exceptions import BrokenThreadPool

            for item in self._green_workers.drain():
                item.fail(BrokenThreadPool(self._broken))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuses new work and stops the threads once the queued tasks ran (``cancel_futures``:
        cancels those not started instead); ``wait`` waits for them (cooperatively in a
        greenlet of the hub's thread)."""
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                for item in self._green_workers.drain():
                    item.fail(None)
        self._green_workers.shrink(0)
        if wait:
            self._green_workers.join("ThreadPoolExecutor.shutdown()")
            try:
                self._hub.on_destroy.remove(self._on_hub_destroy)
            except ValueError:
                pass

    kill = shutdown

    def _on_hub_destroy(self) -> None:
        self.shutdown(wait=True, cancel_futures=True)


def _add_keepalive(hub: Hub) -> None:
    hub._keepalive += 1
