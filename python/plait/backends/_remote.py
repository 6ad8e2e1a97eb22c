"""What plait's cluster backends share: both sides of a pool whose tasks run on an engine (Dask
distributed, Ray) instead of local worker processes.

- :class:`RemoteCore`, in the pool's process, is the backend seam (``plait._backend``) over an
  :class:`Engine`: it queues tasks, hands them to the engine a window at a time (so a future
  stays cancellable until its task leaves this process, and lazy maps stay bounded), collects
  outcomes in batches on the pool's completer thread, and completes the futures through the
  pool's ``_complete``, exactly as the local dispatcher does. The completer looks at the tasks
  in flight (``Engine.finished``) every ``POLL_MIN`` seconds after a completion, less often
  while none comes (up to a twentieth of the mean task duration, at most ``POLL_MAX``): a
  done-callback per task costs the engines' event loops more (with Dask's in-process
  scheduler, a third of the pool's overhead per task).
- :class:`WorkerSide`, in each of the engine's worker processes, runs the tasks it receives in
  plait worker processes of its own (a ``ProcessPoolCore``, the local pool's Rust dispatcher,
  with as many workers as the engine runs tasks there at once). A task that crashes kills a
  plait worker, never the engine's: the engine sees an ordinary return value (the outcome), so
  it neither retries the task nor loses the tasks queued beside it. Timeouts and
  ``cancel_running`` kill that plait worker, which the core replaces.

Payloads are the local pool's: a task is ``(fid, definition, body, timeout, blobs)`` where
``body`` is made by ``_wire.dumps`` and ``blobs`` carry its shared-memory segments as bytes (a
``Shared`` object's segment goes once per cluster, as an engine reference); an outcome is
``(kind, payload, buffers, seconds)`` with one of ``_plait.DONE_KINDS`` and, for a result with
large buffers, those buffers as bytes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import logging
import math
import pickle
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from .. import _plait
from .._pool import Future
from ..processes import _wire

__all__ = ["Engine", "RemoteCore", "RemoteFuture", "WorkerSide"]

DONE_OK, DONE_ERR, DONE_CRASHED, DONE_TIMED_OUT, DONE_CANCELLED, DONE_BROKEN, DONE_UNSENDABLE = (
    _plait.DONE_KINDS
)

log = logging.getLogger("plait.backends")

#: A task's outcome as the worker side returns it: (kind, payload, result buffers, seconds).
Outcome = tuple[int, Any, "list[bytes] | None", float]


class Engine(Protocol):
    """What :class:`RemoteCore` needs of a cluster engine (see ``_dask`` and ``_ray``)."""

    #: Tasks the cluster runs at once (its worker threads or CPUs).
    slots: int

    def submit(self, key: str, task: tuple[Any, ...]) -> Any:
        """Run ``task`` on the cluster under ``key``; returns the engine's handle."""

    def finished(self, handles: list[Any]) -> list[int]:
        """The indexes of the handles whose task is done (a cheap look, no round trip)."""

    def fetch(self, handles: list[Any]) -> list[Outcome]:
        """The outcomes of finished tasks, in one round trip where the engine allows."""

    def cancel(self, key: str, handle: Any) -> None:
        """Stop a task: drop it if queued, kill its plait worker if running."""

    def publish(self, data: bytes, everywhere: bool) -> Any:
        """Place ``data`` on the cluster once (on every worker if ``everywhere``); returns a
        reference tasks can carry."""

    def close(self) -> None:
        """Release what the engine holds for this pool (and what it started)."""


class RemoteFuture(Future):
    """A pool future whose task runs on a cluster (its task id is the remote core's)."""

    _task_id = 0  # set per instance: the native property has no setter


class _Task:
    __slots__ = ("blobs", "body", "cancelling", "fid", "future", "handle", "id", "timeout")

    def __init__(
        self, ident: int, fid: int, body: bytes, timeout: float | None, blobs: list[Any] | None
    ) -> None:
        self.id = ident
        self.future = RemoteFuture()
        self.future._task_id = ident
        self.fid = fid
        self.body = body
        self.timeout = timeout
        self.blobs = blobs
        self.handle: Any = None
        self.cancelling = False


#: Per-task buffers at least this large are published to the cluster on their own (the task
#: carries a reference) rather than inside the task (engines warn about large task graphs).
_BLOB_INLINE_MAX = 1 << 20


class RemoteCore:
    """The backend seam (see ``plait._backend``) over a cluster :class:`Engine`.

    Tasks wait here until the engine has room: ``slots`` tasks at first, and ``PREFETCH`` more
    per slot once tasks are known to be short (under ``SHORT`` seconds), so the cluster never
    waits on a round trip to this process. A task waiting here can still be cancelled with
    ``future.cancel()``; a task on the cluster is stopped by ``cancel_running``.
    """

    PREFETCH = 32
    SHORT = 0.05
    POLL_MIN = 0.002
    POLL_MAX = 0.05

    def __init__(self, engine: Engine, complete: Callable[..., None], token: str) -> None:
        self._engine = engine
        self._complete = complete
        self._token = token
        self.slots = max(1, int(engine.slots))
        self._window = self.slots
        self._lock = threading.Lock()
        self._queued: collections.deque[_Task] = collections.deque()
        self._flight: dict[int, _Task] = {}
        # Wake-ups of the completer: None (a shutdown, a first task in flight) or a task that
        # failed before reaching the engine, (task id, kind, payload).
        self._done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._definitions: dict[int, bytes] = {}
        # Shared objects published to the cluster, each once, for as long as the object lives.
        self._published: weakref.WeakKeyDictionary[_wire.Shared, Any] = weakref.WeakKeyDictionary()
        self._ids = itertools.count(1)
        self._closing = False
        self._finished = threading.Event()
        self._mean: float | None = None

    # --- the seam -------------------------------------------------------------------------------

    def submit(
        self,
        func: int,
        definition: bytes | None,
        body: bytes,
        timeout: float | None = None,
        segments: list[Any] | None = None,
    ) -> tuple[Future, int]:
        if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number, not {timeout}")
        blobs = self._blobs(segments) if segments else None
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if definition is not None:
                self._definitions[func] = definition
            task = _Task(next(self._ids), func, body, timeout, blobs)
            self._queued.append(task)
        self._pump()
        return task.future, task.id

    def cancel_running(self, task_id: int) -> None:
        with self._lock:
            task = self._flight.get(task_id)
            if task is None or task.cancelling:
                return
            task.cancelling = True
            handle = task.handle
        if handle is not None:  # else _pump cancels it once it has its handle
            self._cancel(task, handle)

    def shutdown(self, cancel: bool = False) -> None:
        with self._lock:
            self._closing = True
            dropped = list(self._queued) if cancel else []
            if cancel:
                self._queued.clear()
        for task in dropped:
            task.future.cancel()
        self._done.put(None)  # the completer checks whether everything is delivered

    def run_dispatcher(self) -> None:
        """The engine does the dispatching: this thread waits for the last outcome, then
        releases what the engine holds for the pool (its worker plugin, a cluster it started)."""
        self._finished.wait()
        try:
            self._engine.close()
        except Exception:
            log.exception("plait: closing the %s backend failed", type(self._engine).__name__)

    def run_completer(self) -> None:
        """Collects finished tasks in batches (one engine round trip per batch), completes their
        futures, and hands the engine the next tasks; ends after shutdown, once every task that
        left this process has its outcome."""
        interval = self.POLL_MIN
        try:
            while not self._ended():
                with self._lock:
                    busy = bool(self._flight)
                items = []
                try:
                    items.append(self._done.get(timeout=interval if busy else None))
                    while True:
                        items.append(self._done.get_nowait())
                except queue.Empty:
                    pass
                for item in items:
                    if item is not None:
                        self._finish(item[0], item[1], item[2], None, 0.0)
                with self._lock:
                    flying = [t for t in self._flight.values() if t.handle is not None]
                done = self._engine.finished([t.handle for t in flying]) if flying else []
                ready = [flying[i] for i in done]
                if ready:
                    try:
                        outcomes = self._engine.fetch([t.handle for t in ready])
                    except Exception as exc:  # the engine itself failed (a lost scheduler)
                        lost = (DONE_BROKEN, f"the cluster did not answer: {exc!r}", None, 0.0)
                        outcomes = [lost] * len(ready)
                    for task, outcome in zip(ready, outcomes, strict=True):
                        self._finish(task.id, *outcome)
                    interval = self.POLL_MIN
                else:
                    # Up to a twentieth of a task's mean duration: the wait for a result stays
                    # a few percent of the task.
                    mean = self._mean if self._mean is not None else 0.0
                    interval = min(interval * 2, max(self.POLL_MIN, min(self.POLL_MAX, mean / 20)))
                self._pump()
        finally:
            self._finished.set()

    def worker_pids(self) -> list[int]:
        """The local pool's view of its workers (``Pool._pool``): none here, they are remote."""
        return []

    # --- internals --------------------------------------------------------------------------

    def _ended(self) -> bool:
        with self._lock:
            return self._closing and not self._queued and not self._flight

    def _blobs(self, segments: list[Any]) -> list[Any]:
        """A task's shared-memory segments as the cluster gets them: a ``Shared`` object's as a
        reference published once, the task's own as bytes (large ones published alone)."""
        blobs: list[tuple[Any, Any]] = []
        for segment in segments:
            shared = _wire.shared_of(segment)
            if shared is not None:
                ref = self._published.get(shared)
                if ref is None:
                    data = bytes(memoryview(segment))
                    ref = self._published.setdefault(shared, self._engine.publish(data, everywhere=True))
                blobs.append((shared._key, ref))
                continue
            data = bytes(memoryview(segment))
            if len(data) >= _BLOB_INLINE_MAX:
                data = self._engine.publish(data, everywhere=False)
            blobs.append((None, data))
        return blobs

    def _pump(self) -> None:
        """Hands queued tasks to the engine while it has room."""
        while True:
            with self._lock:
                if not self._queued or len(self._flight) >= self._window:
                    return
                task = self._queued.popleft()
                if not task.future.set_running_or_notify_cancel():
                    continue  # cancelled while it waited here
                self._flight[task.id] = task
                definition = self._definitions.get(task.fid) if task.fid else None
            work = (task.fid, definition, task.body, task.timeout, task.blobs)
            try:
                handle = self._engine.submit(f"{self._token}-{task.id}", work)
            except Exception as exc:
                self._done.put((task.id, DONE_UNSENDABLE, f"the cluster refused it: {exc!r}"))
                continue
            with self._lock:
                task.handle = handle
                cancel = task.cancelling
                first = len(self._flight) == 1
            if first:
                self._done.put(None)  # the completer may be waiting with nothing in flight
            if cancel:
                self._cancel(task, handle)

    def _cancel(self, task: _Task, handle: Any) -> None:
        try:
            self._engine.cancel(f"{self._token}-{task.id}", handle)
        except Exception:
            log.exception("plait: cancelling task %d on the cluster failed", task.id)

    def _finish(
        self, task_id: int, kind: int, payload: Any, buffers: list[bytes] | None, seconds: float
    ) -> None:
        with self._lock:
            task = self._flight.pop(task_id, None)
            if task is None:
                return
            if kind in (DONE_OK, DONE_ERR):
                self._mean = seconds if self._mean is None else (self._mean * 3 + seconds) / 4
                short = self._mean < self.SHORT
                self._window = self.slots * (1 + self.PREFETCH) if short else self.slots
        if task.cancelling:
            # cancel_running said it stopped the task: whatever the engine made of it (a kill, a
            # cancel, or a result that won the race), it ends cancelled, as on the local pool.
            kind, payload, buffers = DONE_CANCELLED, None, None
        try:
            self._complete(task.future, kind, payload, buffers)
        except BaseException:
            log.exception("plait: completing task %d failed", task_id)


# --- the worker side ------------------------------------------------------------------------


def _deliver(future: Any, kind: int, payload: Any, segments: list[Any] | None) -> None:
    """The local core's completion callback in an engine's worker: the outcome goes to the
    engine's thread waiting for it, unpickled by no one here."""
    if future.done():
        return
    if not future.running():
        future.set_running_or_notify_cancel()
    future.set_result((kind, payload, segments))


_CANCELLED_MAX = 4096
_SEGMENTS_MAX = 32


class WorkerSide:
    """One pool's tasks in one engine worker process: a local ``ProcessPoolCore`` with
    ``slots`` plait workers (started with the first task), and the tasks it runs by key, so that
    a cancel from the pool finds its task's plait worker and kills it."""

    def __init__(self, hello: bytes, slots: int, max_tasks: int | None) -> None:
        self._hello = hello
        self._slots = max(1, slots)
        self._max_tasks = max_tasks
        self._lock = threading.Lock()
        self._core: Any = None
        self._threads: list[threading.Thread] = []
        self._known: set[int] = set()  # functions the core has the definition of
        self._running: dict[str, int] = {}  # task key -> the core's task id
        # Keys cancelled before they ran here (a cancel reaches every worker).
        self._cancelled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._shared: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._closed = False

    def _start(self) -> Any:
        if self._core is None:
            hello = pickle.loads(self._hello)
            # This machine's import path first, then the pool process's (a local cluster shares it).
            hello["sys_path"] = list(sys.path) + [p for p in hello["sys_path"] if p not in sys.path]
            self._core = _plait.ProcessPoolCore(
                self._slots,
                [sys.executable, "-m", "plait.processes._worker"],
                pickle.dumps(hello, protocol=5),
                _deliver,
                self._max_tasks,
                None,
                None,
                [],
                decode=False,  # results go on as the worker pickled them
            )
            for name in ("dispatcher", "completer"):
                target = getattr(self._core, f"run_{name}")
                thread = threading.Thread(target=target, name=f"plait-remote-{name}", daemon=True)
                thread.start()
                self._threads.append(thread)
        return self._core

    def _segment(self, skey: Any, data: Any) -> Any:
        if skey is None:
            return _plait.Segment.pack([memoryview(data)])[0]
        segment = self._shared.get(skey)
        if segment is None:
            segment = self._shared[skey] = _plait.Segment.pack([memoryview(data)])[0]
            if len(self._shared) > _SEGMENTS_MAX:
                self._shared.popitem(last=False)
        else:
            self._shared.move_to_end(skey)
        return segment

    def run(
        self,
        key: str,
        fid: int,
        definition: bytes | None,
        body: bytes,
        timeout: float | None,
        blobs: list[Any] | None,
    ) -> Outcome:
        """Runs one task in a plait worker and returns its outcome (never raises for what the
        task does: a crash, a timeout, a cancel are outcomes)."""
        start = time.perf_counter()
        with self._lock:
            if key in self._cancelled or self._closed:
                return (DONE_CANCELLED, None, None, 0.0)
            segments = [self._segment(skey, data) for skey, data in blobs] if blobs else None
            core = self._start()
            if fid and fid in self._known:
                definition = None
            future, inner = core.submit(fid, definition, body, timeout, segments)
            if fid:
                self._known.add(fid)
            self._running[key] = inner
        try:
            kind, payload, out = future.result()
        except concurrent.futures.CancelledError:
            kind, payload, out = DONE_CANCELLED, None, None
        finally:
            with self._lock:
                self._running.pop(key, None)
        buffers = [bytes(memoryview(s)) for s in out] if out else None
        if type(payload) is memoryview:
            payload = bytes(payload)
        return (kind, payload, buffers, time.perf_counter() - start)

    def cancel(self, key: str) -> None:
        """Kills the plait worker running ``key``; a key not running here yet never will."""
        with self._lock:
            inner = self._running.get(key)
            if inner is None:
                self._cancelled[key] = None
                if len(self._cancelled) > _CANCELLED_MAX:
                    self._cancelled.popitem(last=False)
                return
            core = self._core
        core.cancel_running(inner)

    def close(self) -> None:
        """Stops this pool's plait workers here (tasks still running end cancelled)."""
        with self._lock:
            self._closed = True
            core, threads = self._core, self._threads
            self._core, self._threads = None, []
        if core is not None:
            core.shutdown(True)
            for thread in threads:
                thread.join(10)
