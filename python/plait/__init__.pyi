"""Type stubs for plait."""

from typing import IO

from .exceptions import BrokenProcessPool as BrokenProcessPool
from .exceptions import BrokenThreadPool as BrokenThreadPool
from .exceptions import DeadlockError as DeadlockError
from .exceptions import DeadlockWarning as DeadlockWarning
from .exceptions import LockOrderWarning as LockOrderWarning
from .exceptions import MessageTooLarge as MessageTooLarge
from .exceptions import OwnerDied as OwnerDied
from .exceptions import PlaitError as PlaitError
from .exceptions import PlaitWarning as PlaitWarning
from .exceptions import RemoteTraceback as RemoteTraceback
from .exceptions import SelfDeadlockWarning as SelfDeadlockWarning
from .exceptions import SharedMemoryCorrupted as SharedMemoryCorrupted
from .exceptions import ShutDown as ShutDown
from .exceptions import TaskTimeout as TaskTimeout
from .exceptions import WorkerCrashed as WorkerCrashed

__all__ = [
    "BrokenProcessPool",
    "BrokenThreadPool",
    "DeadlockError",
    "DeadlockWarning",
    "LockOrderWarning",
    "MessageTooLarge",
    "OwnerDied",
    "PlaitError",
    "PlaitWarning",
    "RemoteTraceback",
    "SelfDeadlockWarning",
    "SharedMemoryCorrupted",
    "ShutDown",
    "TaskTimeout",
    "WorkerCrashed",
    "__version__",
    "dump",
]

__version__: str

def dump(file: IO[str] | None = None, *, json: bool = False) -> str: ...
