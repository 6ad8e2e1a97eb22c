"""Type stubs for plait.green.threading."""

import sys
import threading as _threading
from typing import Any

from .local import local as local
from .lock import RLock as RLock
from .thread import LockType
from .thread import get_ident as get_ident

__implements__: list[str]

Lock = LockType
_CRLock: None

_allocate_lock = LockType

def _start_new_thread(
    function: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
) -> int: ...
def _set_sentinel() -> LockType: ...

if sys.version_info >= (3, 13):
    from .thread import _make_thread_handle as _make_thread_handle
    from .thread import _ThreadHandle as _ThreadHandle
    def _start_joinable_thread(
        function: Any, handle: _ThreadHandle | None = None, daemon: bool = True
    ) -> _ThreadHandle: ...

class Thread(_threading.Thread): ...
class Timer(Thread, _threading.Timer): ...
class _DummyThread(_threading._DummyThread): ...  # type: ignore[name-defined,misc]

def main_native_thread() -> _threading.Thread: ...

__all__ = [
    "Lock",
    "RLock",
    "Thread",
    "Timer",
    "_CRLock",
    "_DummyThread",
    "_allocate_lock",
    "_set_sentinel",
    "_start_new_thread",
    "get_ident",
    "local",
    "main_native_thread",
]
