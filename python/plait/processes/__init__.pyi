"""Type stubs for plait.processes: ``ProcessPool`` typed as a ``concurrent.futures.Executor`` with
``multiprocessing.Pool``'s ``starmap``/``imap``/``imap_unordered``; the process-shared objects
typed as their ``multiprocessing`` peers."""

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from multiprocessing.context import BaseContext
from typing import Any, Literal, ParamSpec, Self, TypeVar

from .._plait import (
    IpcAtomicInt,
    IpcBarrier,
    IpcCondition,
    IpcConnection,
    IpcEvent,
    IpcLock,
    IpcQueue,
    IpcRLock,
    IpcSemaphore,
    Segment,
)

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

_T = TypeVar("_T")
_S = TypeVar("_S")
_P = ParamSpec("_P")

_StartMethod = Literal["spawn", "forkserver", "fork"]
_Progress = bool | Literal["always"]

# --- the pool ----------------------------------------------------------------------------------

class _Options:
    """``pool.options(timeout=...)``: the same pool with per-task settings."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...
    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
    ) -> Iterator[_T]: ...

class ProcessPool(Executor):
    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: BaseContext | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_tasks_per_child: int | None = None,
        max_tasks_per_worker: int | None = None,
        task_timeout: float | None = None,
        start_method: _StartMethod | None = None,
    ) -> None: ...
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...
    def options(self, *, timeout: float | None = None) -> _Options: ...
    def cancel_running(self, future: Future[Any]) -> bool: ...
    def map(  # type: ignore[override]  # chunksize None (adaptive) and progress= extend Executor.map
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        progress: _Progress = False,
    ) -> Iterator[_T]: ...
    def starmap(
        self, fn: Callable[..., _T], iterable: Iterable[Iterable[Any]], chunksize: int | None = None
    ) -> list[_T]: ...
    def imap(
        self,
        fn: Callable[[_S], _T],
        iterable: Iterable[_S],
        chunksize: int | None = None,
        progress: _Progress = False,
    ) -> Iterator[_T]: ...
    def imap_unordered(
        self,
        fn: Callable[[_S], _T],
        iterable: Iterable[_S],
        chunksize: int | None = None,
        progress: _Progress = False,
    ) -> Iterator[_T]: ...
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...

# --- shared buffers ----------------------------------------------------------------------------

class Shared:
    def __init__(self, obj: object) -> None: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def value(self) -> Any: ...  # a read-only view whose type follows the shared object's

def share(obj: object) -> Shared: ...

# --- queues ------------------------------------------------------------------------------------

class Queue(IpcQueue):
    def join_thread(self) -> None: ...
    def cancel_join_thread(self) -> None: ...

class SimpleQueue(Queue):
    def __new__(cls, *, capacity: int | None = None, _segment: Segment | None = None) -> Self: ...

class JoinableQueue(Queue):
    def task_done(self) -> None: ...
    def join(self) -> None: ...

# --- locks and friends -------------------------------------------------------------------------

class Lock(IpcLock): ...
class RLock(IpcRLock): ...

class Semaphore(IpcSemaphore):
    def __new__(cls, value: int = 1, *, _segment: Segment | None = None) -> Self: ...

class BoundedSemaphore(Semaphore): ...
class Event(IpcEvent): ...

class Condition(IpcCondition):
    def __new__(cls, lock: Lock | RLock | None = None, *, _segment: Segment | None = None) -> Self: ...
    def acquire(self, block: bool = True, timeout: float | None = None) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *args: object) -> None: ...
    def wait_for(self, predicate: Callable[[], _T], timeout: float | None = None) -> _T: ...

class Barrier(IpcBarrier):
    def __new__(
        cls,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        _segment: Segment | None = None,
    ) -> Self: ...

class AtomicInt(IpcAtomicInt): ...

# --- shared arrays and pipes -------------------------------------------------------------------

class SharedArray:
    shape: tuple[int, ...]
    dtype: Any  # a numpy dtype when numpy is installed, else the struct format given
    def __init__(
        self, shape: int | tuple[int, ...], dtype: Any = "d", *, _segment: Segment | None = None
    ) -> None: ...
    @property
    def array(self) -> Any: ...  # a numpy.ndarray when numpy is installed, else a memoryview
    @property
    def nbytes(self) -> int: ...
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any: ...
    def __getitem__(self, key: Any) -> Any: ...
    def __setitem__(self, key: Any, value: Any) -> None: ...
    def __len__(self) -> int: ...

class Connection(IpcConnection):
    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int: ...

def Pipe(duplex: bool = True, *, capacity: int | None = None) -> tuple[Connection, Connection]: ...
