"""Type stubs for plait.green.select."""

from collections.abc import Iterable
from select import EPOLL_CLOEXEC as EPOLL_CLOEXEC
from select import EPOLLERR as EPOLLERR
from select import EPOLLET as EPOLLET
from select import EPOLLEXCLUSIVE as EPOLLEXCLUSIVE
from select import EPOLLHUP as EPOLLHUP
from select import EPOLLIN as EPOLLIN
from select import EPOLLMSG as EPOLLMSG
from select import EPOLLONESHOT as EPOLLONESHOT
from select import EPOLLOUT as EPOLLOUT
from select import EPOLLPRI as EPOLLPRI
from select import EPOLLRDBAND as EPOLLRDBAND
from select import EPOLLRDHUP as EPOLLRDHUP
from select import EPOLLRDNORM as EPOLLRDNORM
from select import EPOLLWRBAND as EPOLLWRBAND
from select import EPOLLWRNORM as EPOLLWRNORM
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
__all__ = [
    "EPOLLERR",
    "EPOLLET",
    "EPOLLEXCLUSIVE",
    "EPOLLHUP",
    "EPOLLIN",
    "EPOLLMSG",
    "EPOLLONESHOT",
    "EPOLLOUT",
    "EPOLLPRI",
    "EPOLLRDBAND",
    "EPOLLRDHUP",
    "EPOLLRDNORM",
    "EPOLLWRBAND",
    "EPOLLWRNORM",
    "EPOLL_CLOEXEC",
    "PIPE_BUF",
    "POLLERR",
    "POLLHUP",
    "POLLIN",
    "POLLMSG",
    "POLLNVAL",
    "POLLOUT",
    "POLLPRI",
    "POLLRDBAND",
    "POLLRDHUP",
    "POLLRDNORM",
    "POLLWRBAND",
    "POLLWRNORM",
    "error",
    "poll",
    "select",
]

def select(
    rlist: Iterable[Any], wlist: Iterable[Any], xlist: Iterable[Any], timeout: float | None = None
) -> Any: ...

class poll:
    def __init__(self) -> None: ...
    def register(self, fd: Any, eventmask: int = ...) -> None: ...
    def modify(self, fd: Any, eventmask: int) -> None: ...
    def unregister(self, fd: Any) -> None: ...
    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]: ...
