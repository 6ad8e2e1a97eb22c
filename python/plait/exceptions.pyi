"""Type stubs for plait.exceptions."""

import sys
from concurrent.futures.process import BrokenProcessPool as _BrokenProcessPool
from concurrent.futures.process import _RemoteTraceback
from concurrent.futures.thread import BrokenThreadPool as _BrokenThreadPool
from typing import Any

__all__ = [
    "BlockedForever",
    "BlockingSwitchOutError",
    "BrokenProcessPool",
    "BrokenThreadPool",
    "ConcurrentObjectUseError",
    "DeadlockEdge",
    "DeadlockError",
    "DeadlockWarning",
    "ExtrapolationWarning",
    "InsignificantFitWarning",
    "InvalidThreadUseError",
    "LockInfo",
    "LockOrderWarning",
    "MessageTooLarge",
    "MonkeyPatchWarning",
    "OwnerDied",
    "PatchedTooLateWarning",
    "PlaitError",
    "PlaitWarning",
    "RemoteTraceback",
    "ScalingWarning",
    "SelfDeadlockWarning",
    "SharedMemoryCorrupted",
    "ShutDown",
    "SuperlinearWarning",
    "TaskTimeout",
    "TooFewPointsWarning",
    "WorkerCrashed",
]

TYPE_CHECKING: bool  # the module's own cheap stand-in for typing.TYPE_CHECKING

class PlaitError(Exception): ...

class _Record:
    def __init__(self, **values: Any) -> None: ...
    def __setattr__(self, name: str, value: Any) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class LockInfo(_Record):
    label: str
    kind: str
    name: str | None
    id: int
    acquired_at: str | None
    def __init__(
        self, *, label: str, kind: str, name: str | None, id: int, acquired_at: str | None
    ) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...

class DeadlockEdge(_Record):
    thread_ident: int
    thread_name: str
    waits_for: LockInfo
    held_by: tuple[tuple[int, str], ...]
    stack: list[str]
    def __init__(
        self,
        *,
        thread_ident: int,
        thread_name: str,
        waits_for: LockInfo,
        held_by: tuple[tuple[int, str], ...],
        stack: list[str] = ...,
    ) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...

class DeadlockError(PlaitError, RuntimeError):
    cycle: list[DeadlockEdge]
    def __init__(self, message: str, cycle: list[DeadlockEdge] | None = None) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...

class PlaitWarning(Warning): ...
class DeadlockWarning(PlaitWarning, RuntimeWarning): ...

class SelfDeadlockWarning(DeadlockWarning):
    cycle: list[DeadlockEdge]
    def __init__(self, message: str, cycle: list[DeadlockEdge] | None = None) -> None: ...

class LockOrderWarning(PlaitWarning, RuntimeWarning): ...
class ScalingWarning(PlaitWarning, UserWarning): ...
class TooFewPointsWarning(ScalingWarning): ...
class SuperlinearWarning(ScalingWarning): ...
class InsignificantFitWarning(ScalingWarning): ...
class ExtrapolationWarning(ScalingWarning): ...

if sys.version_info >= (3, 13):
    import queue

    class ShutDown(PlaitError, queue.ShutDown): ...

else:
    class ShutDown(PlaitError): ...

class BrokenThreadPool(PlaitError, _BrokenThreadPool): ...
class BrokenProcessPool(PlaitError, _BrokenProcessPool): ...

class WorkerCrashed(BrokenProcessPool):
    exitcode: int | None
    signal: int | None
    def __init__(self, message: str, exitcode: int | None = None, signal: int | None = None) -> None: ...

class TaskTimeout(PlaitError, TimeoutError):
    timeout: float | None
    def __init__(self, message: str, timeout: float | None = None) -> None: ...

# Also a multiprocessing.pool.RemoteTraceback at runtime (that class is not in typeshed).
class RemoteTraceback(_RemoteTraceback):
    tb: str
    def __init__(self, tb: str) -> None: ...

class OwnerDied(PlaitError, RuntimeError): ...
class MessageTooLarge(PlaitError, ValueError): ...
class SharedMemoryCorrupted(PlaitError, RuntimeError): ...

class BlockedForever(PlaitError):
    waiting: list[tuple[Any, str, str]]
    def __init__(self, message: str, waiting: list[tuple[Any, str, str]] | None = None) -> None: ...

class BlockingSwitchOutError(PlaitError, AssertionError): ...
class InvalidThreadUseError(PlaitError, RuntimeError): ...
class ConcurrentObjectUseError(PlaitError, AssertionError): ...
class MonkeyPatchWarning(PlaitWarning, RuntimeWarning): ...
class PatchedTooLateWarning(MonkeyPatchWarning): ...
