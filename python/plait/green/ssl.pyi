"""Type stubs for plait.green.ssl."""

import ssl as _stdssl
from ssl import *  # noqa: F403 - every other name is the standard library's
from typing import Any

from . import socket as _gsocket

__implements__: list[str]
__all__: list[str]

class SSLContext(_stdssl.SSLContext):
    sslsocket_class: Any

class SSLSocket(_stdssl.SSLSocket, _gsocket.socket):
    def do_handshake(self, block: bool = False) -> None: ...
    def read(self, len: int = 1024, buffer: Any = None) -> Any: ...
    def write(self, data: Any) -> int: ...
    def send(self, data: Any, flags: int = 0) -> int: ...
    def unwrap(self) -> Any: ...
    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int: ...

def wrap_socket(
    sock: Any,
    keyfile: str | None = None,
    certfile: str | None = None,
    server_side: bool = False,
    cert_reqs: int = ...,
    ssl_version: int | None = None,
    ca_certs: str | None = None,
    do_handshake_on_connect: bool = True,
    suppress_ragged_eofs: bool = True,
    ciphers: str | None = None,
) -> SSLSocket: ...
def create_default_context(
    purpose: _stdssl.Purpose = ...,
    *,
    cafile: str | None = None,
    capath: str | None = None,
    cadata: str | bytes | None = None,
) -> SSLContext: ...
def get_server_certificate(
    addr: tuple[str, int], ssl_version: int = ..., ca_certs: str | None = None, timeout: float = ...
) -> str: ...
