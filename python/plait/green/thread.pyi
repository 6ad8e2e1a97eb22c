"""Type stubs for plait.green.thread."""

import sys
from _thread import TIMEOUT_MAX as TIMEOUT_MAX
from _thread import RLock as RLock
from _thread import error as error
from _thread import get_native_id as get_native_id
from _thread import interrupt_main as interrupt_main
from collections.abc import Callable
from typing import Any, final

from greenlet import greenlet

from .local import local
from .lock import BoundedSemaphore

_local = local
__target__: str
__implements__: list[str]

def get_ident(gr: greenlet | None = None) -> int: ...
def start_new_thread(
    function: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
) -> int: ...

start_new = start_new_thread

@final
class LockType(BoundedSemaphore):
    def __init__(self) -> None: ...
    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...  # type: ignore[override]
    def release(self) -> None: ...  # type: ignore[override]
    def __enter__(self) -> bool: ...  # type: ignore[override]
    def acquire_lock(self, blocking: bool = True, timeout: float = -1) -> bool: ...
    def release_lock(self) -> None: ...
    def locked_lock(self) -> bool: ...

allocate_lock = LockType
allocate = LockType

class _ThreadHandle:
    def __init__(self, *_args: Any, **_kwargs: Any) -> None: ...
    @property
    def ident(self) -> int | None: ...
    def is_done(self) -> bool: ...
    def join(self, timeout: float | None = None) -> None: ...
    def _set_done(self) -> None: ...

def _make_thread_handle(*_args: Any) -> _ThreadHandle: ...

if sys.version_info >= (3, 13):
    def start_joinable_thread(
        function: Callable[..., Any], handle: _ThreadHandle | None = None, daemon: bool = True
    ) -> _ThreadHandle: ...
    lock = LockType

def exit() -> None: ...

exit_thread = exit

def stack_size(size: int | None = None) -> int: ...

__all__ = [
    "TIMEOUT_MAX",
    "LockType",
    "RLock",
    "allocate_lock",
    "error",
    "exit",
    "get_ident",
    "get_native_id",
    "interrupt_main",
    "stack_size",
    "start_new",
    "start_new_thread",
]
