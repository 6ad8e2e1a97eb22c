"""Type stubs for plait.threads."""

import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from queue import Empty as Empty
from queue import Full as Full
from threading import BrokenBarrierError as BrokenBarrierError
from threading import ExceptHookArgs as ExceptHookArgs
from threading import Thread as Thread
from threading import ThreadError as ThreadError
from threading import Timer as Timer
from threading import active_count as active_count
from threading import activeCount as activeCount
from threading import current_thread as current_thread
from threading import currentThread as currentThread
from threading import enumerate as enumerate
from threading import excepthook as excepthook
from threading import get_ident as get_ident
from threading import get_native_id as get_native_id
from threading import getprofile as getprofile
from threading import gettrace as gettrace
from threading import local as local
from threading import main_thread as main_thread
from threading import setprofile as setprofile
from threading import settrace as settrace
from threading import stack_size as stack_size
from typing import Any, Literal, ParamSpec, TypeVar

from .._plait import AtomicFlag as AtomicFlag
from .._plait import AtomicInt as AtomicInt
from .._plait import Barrier as Barrier
from .._plait import BoundedSemaphore as BoundedSemaphore
from .._plait import Condition as Condition
from .._plait import Event as Event
from .._plait import LifoQueue as LifoQueue
from .._plait import Lock as Lock
from .._plait import PriorityQueue as PriorityQueue
from .._plait import Queue as Queue
from .._plait import RLock as RLock
from .._plait import Semaphore as Semaphore
from .._plait import SimpleQueue as SimpleQueue
from ..exceptions import BrokenThreadPool as BrokenThreadPool
from ..exceptions import DeadlockError as DeadlockError
from ..exceptions import LockOrderWarning as LockOrderWarning
from ..exceptions import ShutDown as ShutDown

__all__ = [
    "TIMEOUT_MAX",
    "AtomicFlag",
    "AtomicInt",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "BrokenThreadPool",
    "Condition",
    "DeadlockError",
    "Empty",
    "Event",
    "ExceptHookArgs",
    "Full",
    "LifoQueue",
    "Lock",
    "LockOrderWarning",
    "PriorityQueue",
    "Queue",
    "RLock",
    "Semaphore",
    "ShutDown",
    "SimpleQueue",
    "Thread",
    "ThreadError",
    "ThreadPool",
    "Timer",
    "active_count",
    "check_lock_order",
    "current_thread",
    "dump",
    "enumerate",
    "excepthook",
    "get_deadlock_detection",
    "get_ident",
    "get_native_id",
    "getprofile",
    "gettrace",
    "local",
    "main_thread",
    "set_deadlock_detection",
    "setprofile",
    "settrace",
    "stack_size",
]

if sys.version_info >= (3, 12):
    from threading import setprofile_all_threads as setprofile_all_threads
    from threading import settrace_all_threads as settrace_all_threads

    __all__ += ["setprofile_all_threads", "settrace_all_threads"]

TIMEOUT_MAX: float

def set_deadlock_detection(mode: str, *, grace: float | None = None) -> None: ...
def get_deadlock_detection() -> str: ...
def check_lock_order(enabled: bool = True) -> None: ...
def dump() -> str: ...

_T = TypeVar("_T")
_S = TypeVar("_S")
_P = ParamSpec("_P")
_Progress = bool | Literal["always"]

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

class ThreadPool(Executor):
    """``concurrent.futures.ThreadPoolExecutor``'s signatures; its futures are ``plait._pool.Future``.
    Also ``ProcessPool``'s ``starmap``, ``imap``, ``imap_unordered``, ``progress=`` and
    ``options(timeout=)``."""

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None: ...
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...
    def options(self, *, timeout: float | None = None) -> _Options: ...
    def map(  # type: ignore[override]  # progress= extends Executor.map
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        progress: _Progress = False,
    ) -> Iterator[_T]: ...
    def starmap(
        self,
        fn: Callable[..., _T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        progress: _Progress = False,
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
