"""Type stubs for plait.green.threading."""

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
