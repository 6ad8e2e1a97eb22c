"""Type stubs for plait.green.select."""

from collections.abc import Iterable
from select import PIPE_BUF as PIPE_BUF
from select import POLLERR as POLLERR
from select import POLLHUP as POLLHUP
from select import POLLIN as POLLIN
from select import POLLMSG as POLLMSG
from select import POLLNVAL as POLLNVAL
from select import POLLOUT as POLLOUT
from select import POLLPRI as POLLPRI
from select import POLLRDBAND as POLLRDBAND
from select import POLLRDHUP as POLLRDHUP
from select import POLLRDNORM as POLLRDNORM
from select import POLLWRBAND as POLLWRBAND
from select import POLLWRNORM as POLLWRNORM
from select import error as error
from typing import Any

__implements__: list[str]
__removed__: list[str]
__all__: list[str]

def select(
    rlist: Iterable[Any], wlist: Iterable[Any], xlist: Iterable[Any], timeout: float | None = None
) -> Any: ...

class poll:
    def __init__(self) -> None: ...
    def register(self, fd: Any, eventmask: int = ...) -> None: ...
    def modify(self, fd: Any, eventmask: int) -> None: ...
    def unregister(self, fd: Any) -> None: ...
    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]: ...
