"""Cooperative sockets (gevent's ``gevent.socket``): the standard library's ``socket`` module with
a :class:`socket` whose blocking calls block only the current greenlet.

The socket is the standard library's ``socket.socket`` (a subclass of it: ``isinstance`` checks,
``makefile``, ``ssl`` and ``http.client`` work as usual) whose file descriptor is non-blocking.
Each call tries the system call first and waits on the hub only when it says ``EAGAIN``; the
timeout the program sets (``settimeout``, ``setblocking``, ``socket.setdefaulttimeout``) applies
to each wait and raises ``socket.timeout`` (``TimeoutError``), as it would in a blocking program.

Name lookups (``getaddrinfo``, ``gethostbyname``, ...) run in threads (see
:mod:`plait.green._resolver`), and ``connect``/``sendto`` to a host name resolve it that way too.
Every other public name of the standard library's module is here unchanged, so switching is an
import change::

    from plait.green import socket

    with socket.create_connection(("127.0.0.1", 8080), timeout=5) as conn:
        conn.sendall(b"ping")
        reply = conn.recv(1024)
"""

from __future__ import annotations

import _socket
import os
import socket as _stdsocket
import time
import types
from errno import EAGAIN, EALREADY, EINPROGRESS, EISCONN, EWOULDBLOCK
from typing import Any

from ._hub import get_hub
from ._io import ConcurrentObjectUseError as ConcurrentObjectUseError
from ._io import cancel_wait as cancel_wait
from ._io import cancel_wait_ex as cancel_wait_ex
from ._io import closing_fd, owned_watcher
from ._io import wait_read as wait_read
from ._io import wait_readwrite as wait_readwrite
from ._io import wait_write as wait_write
from ._resolver import get_resolver

# Every public name of the standard library's module; the ones below replace theirs.
_std_names = [n for n in _stdsocket.__all__ if hasattr(_stdsocket, n)]
globals().update({n: getattr(_stdsocket, n) for n in _std_names})

#: The names this module implements cooperatively (the rest are the standard library's).
__implements__ = [
    "SocketType",
    "create_connection",
    "create_server",
    "fromfd",
    "getaddrinfo",
    "getfqdn",
    "gethostbyaddr",
    "gethostbyname",
    "gethostbyname_ex",
    "getnameinfo",
    "socket",
    "socketpair",
]
#: plait.green's (and gevent's) additions.
__extensions__ = [
    "ConcurrentObjectUseError",
    "cancel_wait",
    "cancel_wait_ex",
    "wait_read",
    "wait_readwrite",
    "wait_write",
]
__all__ = sorted(set(_std_names) | set(__implements__) | set(__extensions__))

error = _stdsocket.error
timeout = _stdsocket.timeout
gaierror = _stdsocket.gaierror
AF_INET = _stdsocket.AF_INET
AF_INET6 = _stdsocket.AF_INET6
SOCK_STREAM = _stdsocket.SOCK_STREAM
SOL_SOCKET = _stdsocket.SOL_SOCKET
SO_ERROR = _stdsocket.SO_ERROR

_base = _socket.socket
_recv = _base.recv
_recv_into = _base.recv_into
_recvfrom = _base.recvfrom
_recvfrom_into = _base.recvfrom_into
_send = _base.send
_sendto = _base.sendto
_connect_ex = _base.connect_ex
_fileno_of = _base.fileno
_RESOLVABLE = (AF_INET, AF_INET6)
_WOULD_BLOCK = (EINPROGRESS, EWOULDBLOCK, EALREADY, EAGAIN)


def _deadline_left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


class socket(_stdsocket.socket):
    """A socket whose blocking calls (``accept``, ``connect``, ``recv*``, ``send*``) block only the
    current greenlet; otherwise the standard library's ``socket.socket`` (same constructor,
    methods and errors). The timeout (``settimeout``) bounds each wait and raises
    ``socket.timeout``; ``setblocking(False)`` makes the calls raise ``BlockingIOError`` instead
    of waiting. Two greenlets reading (or writing) one socket at the same time is a
    :class:`ConcurrentObjectUseError`."""

    __slots__ = ("_drained", "_stream", "_timeout", "_watcher")

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> None:
        super().__init__(family, type, proto, fileno)  # the stdlib class, even once patched
        _base.settimeout(self, 0.0)  # the fd is non-blocking; the program's timeout is ours
        self._timeout: float | None = _socket.getdefaulttimeout()
        self._watcher: Any = None
        # A stream socket's read that returned less than asked for emptied the kernel's buffer:
        # the next read waits for readiness first instead of failing with EAGAIN (a system call
        # and an exception per message). The fd stays registered (edge-triggered), so data
        # that came in meanwhile has been reported, or is at the next poll.
        self._stream = self.type == _socket.SOCK_STREAM
        self._drained = False

    # -- timeouts ---------------------------------------------------------------------------

    @property
    def timeout(self) -> float | None:  # type: ignore[override]
        """The timeout of each blocking call (None: none; 0.0: non-blocking)."""
        return self._timeout

    def settimeout(self, value: float | None) -> None:
        """Sets the timeout of each blocking call in seconds (None: wait forever; 0: never
        wait, raise ``BlockingIOError``)."""
        if value is not None:
            try:
                value = float(value.__float__())
            except AttributeError:
                raise TypeError(
                    f"Timeout value must be int, float or None, not {type(value).__name__}"
                ) from None
            if value != value:
                raise ValueError("Invalid value NaN (not a number)")
            if value < 0.0:
                raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self) -> float | None:
        """The timeout set by :meth:`settimeout` (None if there is none)."""
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        """``setblocking(True)`` is ``settimeout(None)``; ``setblocking(False)`` is
        ``settimeout(0.0)``."""
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        """False if the socket is non-blocking (timeout 0.0), else True."""
        return self._timeout != 0.0

    # -- waiting ----------------------------------------------------------------------------

    def _bind_watcher(self) -> Any:
        hub = get_hub()
        w = self._watcher
        if w is None or w.closed or w.hub is not hub:
            fd = _fileno_of(self)
            if fd < 0:
                raise OSError(9, "Bad file descriptor")
            w = self._watcher = owned_watcher(hub, fd, self)
        return w

    def _wait_read(self, timeout: Any = False, timeout_exc: Any = None) -> None:
        w = self._bind_watcher()
        if timeout is False:
            timeout = self._timeout
        if timeout_exc is None:
            w.wait_read(timeout)
        else:
            w.wait_read(timeout, timeout_exc)

    def _wait_write(self, timeout: Any = False, timeout_exc: Any = None) -> None:
        w = self._bind_watcher()
        if timeout is False:
            timeout = self._timeout
        if timeout_exc is None:
            w.wait_write(timeout)
        else:
            w.wait_write(timeout, timeout_exc)

    def _forget(self) -> None:
        """The fd is being closed or detached: unregister it, cancel others' waits on it."""
        w, self._watcher = self._watcher, None
        closing_fd(_fileno_of(self), w)

    # -- life -------------------------------------------------------------------------------

    def _real_close(self, _ss: Any = _base) -> None:
        self._forget()
        _ss.close(self)

    def detach(self) -> int:
        """Closes the socket object without closing its fd, and returns the fd."""
        self._forget()
        return super().detach()

    def shutdown(self, how: int) -> None:
        """Shuts down one or both halves of the connection; greenlets waiting on the closed
        half get ``cancel_wait_ex`` (``EBADF``), as in gevent."""
        w = self._watcher
        if w is not None and not w.closed:
            w.cancel_waits({_stdsocket.SHUT_RD: 1, _stdsocket.SHUT_WR: 2}.get(how, 3))
        _base.shutdown(self, how)

    def accept(self) -> tuple[socket, Any]:
        """Waits for a connection: ``(socket, address)``, the socket cooperative too."""
        while True:
            try:
                fd, addr = self._accept()
                break
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
            self._wait_read()
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        # As the standard library: no default timeout and a listener with one: the new socket
        # blocks (without a timeout).
        if _socket.getdefaulttimeout() is None and self._timeout:
            sock._timeout = None
        return sock, addr

    def _resolve(self, address: Any) -> Any:
        """``address`` with its host name resolved cooperatively (numeric ones as they are)."""
        if not isinstance(address, tuple) or len(address) < 2 or self.family not in _RESOLVABLE:
            return address
        host = address[0]
        if not isinstance(host, (str, bytes)):
            return address
        try:
            _socket.inet_pton(self.family, host)  # type: ignore[arg-type]
            return address
        except (OSError, ValueError, TypeError):
            pass
        if host in ("", b"", "<broadcast>", b"<broadcast>"):
            return address
        found = get_resolver().getaddrinfo(host, None, self.family)
        resolved = found[0][4]
        return (resolved[0], address[1], *resolved[2:])

    def _connect(self, address: Any) -> int:
        """The C ``internal_connect``: 0 or an errno; raises timeouts and address errors."""
        if self._timeout == 0.0:
            return _connect_ex(self, address)
        address = self._resolve(address)
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            err = _connect_ex(self, address)
            if not err or err == EISCONN:
                return 0
            if err not in _WOULD_BLOCK:
                return err
            self._wait_write(_deadline_left(deadline))
            err = self.getsockopt(SOL_SOCKET, SO_ERROR)
            if err:
                return err

    def connect(self, address: Any) -> None:
        """Connects to ``address``, waiting (up to the timeout) for the connection; a host name
        is resolved cooperatively."""
        err = self._connect(address)
        if err:
            raise OSError(err, os.strerror(err))

    def connect_ex(self, address: Any) -> int:
        """Like :meth:`connect`, but returns the error number instead of raising (``EAGAIN``
        on a timeout, as gevent)."""
        try:
            return self._connect(address)
        except timeout:
            return EAGAIN

    # -- reading ----------------------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receives up to ``bufsize`` bytes, waiting for some; b"" at end of stream."""
        if self._drained:
            self._drained = False
            if self._timeout != 0.0:
                self._wait_read()
        while True:
            try:
                data = _recv(self, bufsize, flags)
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
                self._wait_read()
                continue
            if 0 < len(data) < bufsize and not flags and self._stream:
                self._drained = True
            return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receives into ``buffer``, waiting for data; the number of bytes received."""
        if self._drained:
            self._drained = False
            if self._timeout != 0.0:
                self._wait_read()
        while True:
            try:
                n = _recv_into(self, buffer, nbytes, flags)
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
                self._wait_read()
                continue
            # The size asked for: nbytes, or the buffer's (known without a memoryview for the
            # usual bytearray; other buffers only through nbytes).
            asked = nbytes or (len(buffer) if type(buffer) is bytearray else 0)
            if 0 < n < asked and not flags and self._stream:
                self._drained = True
            return n  # type: ignore[no-any-return]

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        """Receives up to ``bufsize`` bytes and the sender's address, waiting for a message."""
        while True:
            try:
                return _recvfrom(self, bufsize, flags)
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
            self._wait_read()

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        """Receives into ``buffer``: ``(nbytes, address)``, waiting for a message."""
        while True:
            try:
                return _recvfrom_into(self, buffer, nbytes, flags)
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
            self._wait_read()

    def recvmsg(self, *args: Any) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]:
        """``recvmsg(bufsize[, ancbufsize[, flags]])``, waiting for data."""
        while True:
            try:
                return _base.recvmsg(self, *args)
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
            self._wait_read()

    def recvmsg_into(self, buffers: Any, *args: Any) -> tuple[int, list[tuple[int, int, bytes]], int, Any]:
        """``recvmsg_into(buffers[, ancbufsize[, flags]])``, waiting for data."""
        while True:
            try:
                return _base.recvmsg_into(self, buffers, *args)
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
            self._wait_read()

    # -- writing ----------------------------------------------------------------------------

    def send(self, data: Any, flags: int = 0) -> int:
        """Sends some of ``data``, waiting until the socket can take some; the number of bytes
        sent."""
        while True:
            try:
                return _send(self, data, flags)
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
            self._wait_write()

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Sends all of ``data``, waiting as needed; the timeout bounds the whole call (as in the
        standard library since 3.5)."""
        timeout_ = self._timeout
        if timeout_ == 0.0:
            _base.sendall(self, data, flags)
            return
        try:
            sent = _send(self, data, flags)
        except BlockingIOError:
            sent = 0
        if sent == len(data) and type(data) in (bytes, bytearray):
            return
        with memoryview(data) as view, view.cast("B") as remaining:
            total = len(remaining)
            deadline = None if timeout_ is None else time.monotonic() + timeout_
            while sent < total:
                self._wait_write(_deadline_left(deadline))
                try:
                    sent += _send(self, remaining[sent:], flags)
                except BlockingIOError:
                    pass

    def sendto(self, data: Any, *args: Any) -> int:
        """``sendto(data[, flags], address)``, waiting until the socket can take the message; a
        host name in ``address`` is resolved cooperatively."""
        if args:
            args = (*args[:-1], self._resolve(args[-1]))
        while True:
            try:
                return _sendto(self, data, *args)
            except BlockingIOError:
                if self._timeout == 0.0:
                    raise
            self._wait_write()

    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None) -> int:
        """``sendmsg(buffers[, ancdata[, flags[, address]]])``, waiting until the socket can take
        the message."""
        extra = () if address is None else (self._resolve(address),)
        while True:
            try:
                return _base.sendmsg(self, buffers, ancdata, flags, *extra)
            except BlockingIOError:
                if self._timeout == 0.0 or flags & getattr(_socket, "MSG_DONTWAIT", 0):
                    raise
            self._wait_write()

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Sends ``file`` (opened in binary mode) until EOF or ``count`` bytes, with cooperative
        ``send`` calls (as gevent: ``os.sendfile`` would need a blocking wait)."""
        return self._sendfile_use_send(file, offset, count)  # type: ignore[no-any-return]


SocketType = socket


# -- DNS --------------------------------------------------------------------------------------


def getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[tuple[Any, Any, int, str, Any]]:
    """``socket.getaddrinfo`` run in a thread (numeric hosts at once): only this greenlet
    waits."""
    found = get_resolver().getaddrinfo(host, port, family, type, proto, flags)
    return [
        (_intenum(af, _stdsocket.AddressFamily), _intenum(kind, _stdsocket.SocketKind), pr, canon, sa)
        for af, kind, pr, canon, sa in found
    ]


def _intenum(value: int, enum: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        return value


def gethostbyname(hostname: str) -> str:
    """``socket.gethostbyname`` run in a thread: only this greenlet waits."""
    return get_resolver().gethostbyname(hostname)


def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    """``socket.gethostbyname_ex`` run in a thread: only this greenlet waits."""
    return get_resolver().gethostbyname_ex(hostname)


def gethostbyaddr(ip_address: str) -> tuple[str, list[str], list[str]]:
    """``socket.gethostbyaddr`` run in a thread: only this greenlet waits."""
    return get_resolver().gethostbyaddr(ip_address)


def getnameinfo(sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
    """``socket.getnameinfo`` run in a thread: only this greenlet waits."""
    return get_resolver().getnameinfo(sockaddr, flags)


# -- the standard library's helpers, on this module's socket and resolver ----------------------
#
# create_connection, create_server, socketpair, fromfd and getfqdn are the standard library's
# own code (so each Python version's details hold), run with this module's names: they make
# this module's sockets and resolve cooperatively.

_namespace = dict(vars(_stdsocket))


def _rebind(function: Any) -> Any:
    made = types.FunctionType(function.__code__, _namespace, function.__name__, function.__defaults__)
    made.__kwdefaults__ = function.__kwdefaults__
    made.__doc__ = function.__doc__
    made.__module__ = __name__
    made.__qualname__ = function.__qualname__
    return made


create_connection = _rebind(_stdsocket.create_connection)
create_server = _rebind(_stdsocket.create_server)
socketpair = _rebind(_stdsocket.socketpair)
fromfd = _rebind(_stdsocket.fromfd)
getfqdn = _rebind(_stdsocket.getfqdn)
_namespace.update(
    socket=socket,
    SocketType=socket,
    getaddrinfo=getaddrinfo,
    gethostbyname=gethostbyname,
    gethostbyname_ex=gethostbyname_ex,
    gethostbyaddr=gethostbyaddr,
    getnameinfo=getnameinfo,
    create_connection=create_connection,
    create_server=create_server,
    socketpair=socketpair,
    fromfd=fromfd,
    getfqdn=getfqdn,
)

del _std_names
