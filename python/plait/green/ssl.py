"""Cooperative TLS (gevent's ``gevent.ssl``): the standard library's ``ssl`` module whose
:class:`SSLContext` wraps sockets into a cooperative :class:`SSLSocket`.

:class:`SSLSocket` is the standard library's ``ssl.SSLSocket`` over a cooperative
:class:`plait.green.socket.socket`: the handshake, reads and writes wait on the hub whenever
OpenSSL wants the socket to be readable or writable (``SSLWantReadError``/``SSLWantWriteError``),
with the socket's timeout raising ``socket.timeout`` ("The read operation timed out", ...).
Contexts made by :func:`create_default_context` (and the ``https`` default context) are this
module's :class:`SSLContext`. Every other public name of the standard library's module is here
unchanged::

    from plait.green import socket, ssl

    context = ssl.create_default_context()
    with socket.create_connection((host, 443)) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
"""

from __future__ import annotations

import socket as _stdsocket
import ssl as _stdssl
import types
from typing import Any

from . import socket as _gsocket

# Every public name of the standard library's module (it has no __all__): the ones below replace
# theirs.
_std_names = [
    n for n, v in vars(_stdssl).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
]
globals().update({n: getattr(_stdssl, n) for n in _std_names})

#: The names this module implements cooperatively (the rest are the standard library's).
# Not SSLSocket: the stdlib's SSLSocket._create calls super(SSLSocket, self) with the module's
# global, which must stay the stdlib class (patched, it would reach the stdlib's constructor that
# refuses to be called). Patched SSLContexts still make this module's SSLSocket.
__implements__ = [
    "SSLContext",
    "create_default_context",
    "get_server_certificate",
    "wrap_socket",
]
__all__ = sorted((set(_std_names) - {"socket", "namedtuple", "create_connection"}) | set(__implements__))

SSLError = _stdssl.SSLError
SSLWantReadError = _stdssl.SSLWantReadError
SSLWantWriteError = _stdssl.SSLWantWriteError
SSLEOFError = _stdssl.SSLEOFError
SSLZeroReturnError = _stdssl.SSLZeroReturnError
SSL_ERROR_EOF = _stdssl.SSL_ERROR_EOF
CERT_NONE = _stdssl.CERT_NONE
PROTOCOL_TLS_CLIENT = _stdssl.PROTOCOL_TLS_CLIENT
PROTOCOL_TLS_SERVER = _stdssl.PROTOCOL_TLS_SERVER

_orig_SSLContext = _stdssl.SSLContext
_timeout = _stdsocket.timeout


def _read_timeout() -> BaseException:
    return _timeout("The read operation timed out")


def _write_timeout() -> BaseException:
    return _timeout("The write operation timed out")


def _handshake_timeout() -> BaseException:
    return _timeout("The handshake operation timed out")


class SSLContext(_orig_SSLContext):
    """The standard library's ``ssl.SSLContext`` whose ``wrap_socket`` gives a cooperative
    :class:`SSLSocket` (pass it a :class:`plait.green.socket.socket`)."""

    sslsocket_class: Any = None  # SSLSocket, set below

    # The standard library's setters reach the base class through ``super(SSLContext,
    # SSLContext)``, naming the module's SSLContext: once a program replaces that with this class
    # (monkey-patching), they would recurse. Name the base here instead (gevent does the same).
    @_orig_SSLContext.options.setter  # type: ignore[attr-defined,untyped-decorator]
    def options(self, value: Any) -> None:
        super(_orig_SSLContext, _orig_SSLContext).options.__set__(self, value)  # type: ignore[attr-defined]

    @_orig_SSLContext.verify_flags.setter  # type: ignore[attr-defined,untyped-decorator]
    def verify_flags(self, value: Any) -> None:
        super(_orig_SSLContext, _orig_SSLContext).verify_flags.__set__(self, value)  # type: ignore[attr-defined]

    @_orig_SSLContext.verify_mode.setter  # type: ignore[attr-defined,untyped-decorator]
    def verify_mode(self, value: Any) -> None:
        super(_orig_SSLContext, _orig_SSLContext).verify_mode.__set__(self, value)  # type: ignore[attr-defined]

    @_orig_SSLContext.minimum_version.setter  # type: ignore[attr-defined,untyped-decorator]
    def minimum_version(self, value: Any) -> None:
        super(_orig_SSLContext, _orig_SSLContext).minimum_version.__set__(self, value)  # type: ignore[attr-defined]

    @_orig_SSLContext.maximum_version.setter  # type: ignore[attr-defined,untyped-decorator]
    def maximum_version(self, value: Any) -> None:
        super(_orig_SSLContext, _orig_SSLContext).maximum_version.__set__(self, value)  # type: ignore[attr-defined]

    @_orig_SSLContext._msg_callback.setter  # type: ignore[attr-defined,untyped-decorator]
    def _msg_callback(self, callback: Any) -> None:
        # The standard library's setter, with the base named here (see above).
        if callback is None:
            super(_orig_SSLContext, _orig_SSLContext)._msg_callback.__set__(self, None)  # type: ignore[attr-defined]
            return
        if not callable(callback):
            raise TypeError(f"{callback} is not callable.")

        def inner(
            conn: Any, direction: Any, version: Any, content_type: Any, msg_type: Any, data: Any
        ) -> Any:
            try:
                version = _stdssl.TLSVersion(version)
            except ValueError:
                pass
            try:
                content_type = _stdssl._TLSContentType(content_type)  # type: ignore[attr-defined]
            except ValueError:
                pass
            if content_type == _stdssl._TLSContentType.HEADER:  # type: ignore[attr-defined]
                msg_enum = _stdssl._TLSContentType  # type: ignore[attr-defined]
            elif content_type == _stdssl._TLSContentType.ALERT:  # type: ignore[attr-defined]
                msg_enum = _stdssl._TLSAlertType  # type: ignore[attr-defined]
            else:
                msg_enum = _stdssl._TLSMessageType  # type: ignore[attr-defined]
            try:
                msg_type = msg_enum(msg_type)
            except ValueError:
                pass
            return callback(conn, direction, version, content_type, msg_type, data)

        inner.user_function = callback  # type: ignore[attr-defined]
        super(_orig_SSLContext, _orig_SSLContext)._msg_callback.__set__(self, inner)  # type: ignore[attr-defined]


class SSLSocket(_stdssl.SSLSocket, _gsocket.socket):
    """The standard library's ``ssl.SSLSocket`` over a cooperative socket: made by
    :meth:`SSLContext.wrap_socket` (the constructor is private, as in the standard library).
    ``do_handshake``, ``read``/``recv*``, ``write``/``send*``, ``accept``, ``connect`` and
    ``unwrap`` block only the current greenlet; a timeout raises ``socket.timeout``."""

    def _wait_for(self, exc: BaseException, make_timeout: Any) -> None:
        if self._timeout == 0.0:
            raise exc
        if isinstance(exc, SSLWantWriteError):
            self._wait_write(False, make_timeout())
        else:
            self._wait_read(False, make_timeout())

    def do_handshake(self, block: bool = False) -> None:
        """Performs the TLS handshake, waiting cooperatively (up to the timeout per wait)."""
        self._check_connected()
        while True:
            try:
                self._sslobj.do_handshake()  # type: ignore[union-attr]
                return
            except (SSLWantReadError, SSLWantWriteError) as exc:
                self._wait_for(exc, _handshake_timeout)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        """Reads up to ``len`` bytes (into ``buffer`` if given: then the count), waiting for
        data; b"" (or 0) at the end of the stream."""
        self._checkClosed()
        if self._sslobj is None:
            raise ValueError("Read on closed or unwrapped SSL socket.")
        while True:
            try:
                if buffer is not None:
                    return self._sslobj.read(len, buffer)
                return self._sslobj.read(len)
            except (SSLWantReadError, SSLWantWriteError) as exc:
                self._wait_for(exc, _read_timeout)
            except SSLError as exc:
                if exc.args[0] == SSL_ERROR_EOF and self.suppress_ragged_eofs:
                    return b"" if buffer is None else 0
                raise

    def write(self, data: Any) -> int:
        """Writes ``data`` to the TLS channel, waiting as needed; the number of bytes written."""
        self._checkClosed()
        if self._sslobj is None:
            raise ValueError("Write on closed or unwrapped SSL socket.")
        while True:
            try:
                return self._sslobj.write(data)
            except (SSLWantReadError, SSLWantWriteError) as exc:
                self._wait_for(exc, _write_timeout)

    def send(self, data: Any, flags: int = 0) -> int:
        """Sends ``data`` through TLS (``flags`` must be 0), waiting as needed."""
        self._checkClosed()
        if self._sslobj is None:
            return _gsocket.socket.send(self, data, flags)
        if flags != 0:
            raise ValueError(f"non-zero flags not allowed in calls to send() on {self.__class__}")
        return self.write(data)

    def unwrap(self) -> Any:
        """Shuts TLS down (waiting for the peer's answer) and returns the plain socket."""
        if self._sslobj is None:
            raise ValueError(f"No SSL wrapper around {self}")
        while True:
            try:
                sock = self._sslobj.shutdown()
                break
            except (SSLWantReadError, SSLWantWriteError) as exc:
                self._wait_for(exc, _read_timeout)
            except (SSLEOFError, SSLZeroReturnError):
                sock = self
                break
            except OSError as exc:
                if exc.errno == 0:  # the peer closed without answering
                    sock = self
                    break
                raise
        self._sslobj = None
        return sock

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Sends ``file`` through TLS with cooperative ``send`` calls."""
        return self._sendfile_use_send(file, offset, count)  # type: ignore[no-any-return]


SSLContext.sslsocket_class = SSLSocket


def wrap_socket(
    sock: Any,
    keyfile: str | None = None,
    certfile: str | None = None,
    server_side: bool = False,
    cert_reqs: int = CERT_NONE,
    ssl_version: int | None = None,
    ca_certs: str | None = None,
    do_handshake_on_connect: bool = True,
    suppress_ragged_eofs: bool = True,
    ciphers: str | None = None,
) -> SSLSocket:
    """gevent's (and Python < 3.12's) module-level ``wrap_socket``: a new :class:`SSLContext`
    set from the arguments wraps ``sock``. Without ``ssl_version``, the context is
    ``PROTOCOL_TLS_SERVER`` or ``PROTOCOL_TLS_CLIENT`` by ``server_side`` (the deprecated
    ``PROTOCOL_TLS`` would warn); certificates are checked only as ``cert_reqs`` says, with no
    host name check (as the old function)."""
    if server_side and not certfile:
        raise ValueError("certfile must be specified for server-side operations")
    if keyfile and not certfile:
        raise ValueError("certfile must be specified")
    if ssl_version is None:
        ssl_version = PROTOCOL_TLS_SERVER if server_side else PROTOCOL_TLS_CLIENT
    context = SSLContext(ssl_version)
    if context.check_hostname:
        context.check_hostname = False
    context.verify_mode = cert_reqs  # type: ignore[assignment]
    if ca_certs:
        context.load_verify_locations(ca_certs)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    if ciphers:
        context.set_ciphers(ciphers)
    return context.wrap_socket(  # type: ignore[no-any-return]
        sock=sock,
        server_side=server_side,
        do_handshake_on_connect=do_handshake_on_connect,
        suppress_ragged_eofs=suppress_ragged_eofs,
    )


# The standard library's context helpers are its own code run with this module's names, so the
# contexts they make are this module's SSLContext and their connections cooperative.
_namespace = dict(vars(_stdssl))
_namespace.update(
    SSLContext=SSLContext, SSLSocket=SSLSocket, socket=_gsocket, create_connection=_gsocket.create_connection
)


def _rebind(function: Any) -> Any:
    made = types.FunctionType(function.__code__, _namespace, function.__name__, function.__defaults__)
    made.__kwdefaults__ = function.__kwdefaults__
    made.__doc__ = function.__doc__
    made.__module__ = __name__
    made.__qualname__ = function.__qualname__
    _namespace[function.__name__] = made
    return made


create_default_context = _rebind(_stdssl.create_default_context)
_create_unverified_context = _rebind(_stdssl._create_unverified_context)
_create_stdlib_context = _create_unverified_context
_create_default_https_context = create_default_context
get_server_certificate = _rebind(_stdssl.get_server_certificate)
_namespace.update(
    _create_stdlib_context=_create_stdlib_context,
    _create_default_https_context=_create_default_https_context,
    wrap_socket=wrap_socket,
)

del _std_names
