"""Type stubs for plait.threads."""

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from queue import Empty as Empty
from queue import Full as Full
from threading import BrokenBarrierError as BrokenBarrierError
from typing import Any, ParamSpec, TypeVar

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
    "ThreadPool",
    "check_lock_order",
    "dump",
    "get_deadlock_detection",
    "set_deadlock_detection",
]

TIMEOUT_MAX: float

def set_deadlock_detection(mode: str, *, grace: float | None = None) -> None: ...
def get_deadlock_detection() -> str: ...
def check_lock_order(enabled: bool = True) -> None: ...
def dump() -> str: ...

_T = TypeVar("_T")
_P = ParamSpec("_P")

class ThreadPool(Executor):
    """``concurrent.futures.ThreadPoolExecutor``'s signatures; its futures are ``plait._pool.Future``."""

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None: ...
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...
    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[_T]: ...
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...
