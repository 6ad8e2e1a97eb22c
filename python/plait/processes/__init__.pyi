"""Type stubs for plait.processes: ``ProcessPool`` typed as a ``concurrent.futures.Executor`` with
``multiprocessing.Pool``'s ``starmap``/``imap``/``imap_unordered``; the process-shared objects
typed as their ``multiprocessing`` peers."""

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future
from multiprocessing import Array as Array
from multiprocessing import AuthenticationError as AuthenticationError
from multiprocessing import BufferTooShort as BufferTooShort
from multiprocessing import Manager as Manager
from multiprocessing import Process as Process
from multiprocessing import ProcessError as ProcessError
from multiprocessing import RawArray as RawArray
from multiprocessing import RawValue as RawValue
from multiprocessing import TimeoutError as TimeoutError
from multiprocessing import Value as Value
from multiprocessing import active_children as active_children
from multiprocessing import allow_connection_pickling as allow_connection_pickling
from multiprocessing import cpu_count as cpu_count
from multiprocessing import current_process as current_process
from multiprocessing import freeze_support as freeze_support
from multiprocessing import get_all_start_methods as get_all_start_methods
from multiprocessing import get_context as get_context
from multiprocessing import get_logger as get_logger
from multiprocessing import get_start_method as get_start_method
from multiprocessing import log_to_stderr as log_to_stderr
from multiprocessing import parent_process as parent_process
from multiprocessing import set_executable as set_executable
from multiprocessing import set_forkserver_preload as set_forkserver_preload
from multiprocessing import set_start_method as set_start_method
from multiprocessing.context import BaseContext
from types import GenericAlias
from typing import Any, Generic, Literal, ParamSpec, Self, TypeVar

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
from ..backends import Dask, Ray

__all__ = [
    "Array",
    "AsyncResult",
    "AtomicInt",
    "AuthenticationError",
    "Barrier",
    "BoundedSemaphore",
    "BufferTooShort",
    "Condition",
    "Connection",
    "Event",
    "JoinableQueue",
    "Lock",
    "Manager",
    "MapResult",
    "Pipe",
    "Pool",
    "Process",
    "ProcessError",
    "ProcessPool",
    "Queue",
    "RLock",
    "RawArray",
    "RawValue",
    "Semaphore",
    "Shared",
    "SharedArray",
    "SimpleQueue",
    "TimeoutError",
    "Value",
    "active_children",
    "allow_connection_pickling",
    "cpu_count",
    "current_process",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_logger",
    "get_start_method",
    "log_to_stderr",
    "parent_process",
    "set_executable",
    "set_forkserver_preload",
    "set_start_method",
    "share",
]

_T = TypeVar("_T")
_S = TypeVar("_S")
_P = ParamSpec("_P")

_StartMethod = Literal["spawn", "forkserver", "fork"]
_Backend = Literal["local", "dask", "ray"] | Dask | Ray | None
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
        backend: _Backend = None,
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

# --- multiprocessing.Pool ---------------------------------------------------------------------

class AsyncResult(Generic[_T]):
    def __init__(
        self,
        callback: Callable[[_T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> None: ...
    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...
    def ready(self) -> bool: ...
    def successful(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> None: ...
    def get(self, timeout: float | None = None) -> _T: ...

class MapResult(AsyncResult[list[_T]]): ...

class _IMapIterator(Iterator[_T]):
    def __iter__(self) -> Self: ...
    def next(self, timeout: float | None = None) -> _T: ...
    def __next__(self) -> _T: ...

class Pool:
    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
        *,
        backend: _Backend = None,
    ) -> None: ...
    def apply(
        self, func: Callable[..., _T], args: Iterable[Any] = (), kwds: Mapping[str, Any] = ...
    ) -> _T: ...
    def apply_async(
        self,
        func: Callable[..., _T],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] = ...,
        callback: Callable[[_T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult[_T]: ...
    def map(
        self, func: Callable[[_S], _T], iterable: Iterable[_S], chunksize: int | None = None
    ) -> list[_T]: ...
    def map_async(
        self,
        func: Callable[[_S], _T],
        iterable: Iterable[_S],
        chunksize: int | None = None,
        callback: Callable[[list[_T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult[_T]: ...
    def starmap(
        self, func: Callable[..., _T], iterable: Iterable[Iterable[Any]], chunksize: int | None = None
    ) -> list[_T]: ...
    def starmap_async(
        self,
        func: Callable[..., _T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[_T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult[_T]: ...
    def imap(
        self, func: Callable[[_S], _T], iterable: Iterable[_S], chunksize: int | None = 1
    ) -> _IMapIterator[_T]: ...
    def imap_unordered(
        self, func: Callable[[_S], _T], iterable: Iterable[_S], chunksize: int | None = 1
    ) -> _IMapIterator[_T]: ...
    def close(self) -> None: ...
    def terminate(self) -> None: ...
    def join(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc_info: object) -> None: ...
    def __reduce__(self) -> Any: ...
    def __del__(self) -> None: ...

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
    @property
    def maxsize(self) -> int: ...

class SimpleQueue(Queue):
    def __new__(cls, *, capacity: int | None = None, _segment: Segment | None = None) -> Self: ...

class JoinableQueue(Queue):
    def task_done(self) -> None: ...
    def join(self) -> None: ...

# --- locks and friends -------------------------------------------------------------------------

class Lock(IpcLock): ...
class RLock(IpcRLock): ...

class Semaphore(IpcSemaphore):
    def __new__(cls, value: int = 1, *, name: str | None = None, _segment: Segment | None = None) -> Self: ...

class BoundedSemaphore(Semaphore): ...
class Event(IpcEvent): ...

class Condition(IpcCondition):
    def __new__(
        cls, lock: Lock | RLock | None = None, *, name: str | None = None, _segment: Segment | None = None
    ) -> Self: ...
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
        name: str | None = None,
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
