"""Type stubs for plait.aio: ``EventLoop`` is an ``asyncio`` selector event loop (every method of
``asyncio.AbstractEventLoop`` with asyncio's types); the streams are asyncio's."""

import asyncio
import ssl
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from _typeshed import StrPath

__all__ = [
    "EventLoop",
    "EventLoopPolicy",
    "StreamReader",
    "StreamWriter",
    "install",
    "new_event_loop",
    "open_connection",
    "open_unix_connection",
    "run",
    "start_server",
    "start_unix_server",
]

_T = TypeVar("_T")

_ClientConnectedCallback = Callable[[StreamReader, StreamWriter], Awaitable[None] | None]

class EventLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None: ...

class EventLoopPolicy(asyncio.DefaultEventLoopPolicy): ...

def new_event_loop() -> EventLoop: ...
def install() -> None: ...
def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T: ...

class StreamReader(asyncio.StreamReader):
    def __init__(
        self,
        limit: int = 65536,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        client_connected_cb: _ClientConnectedCallback | None = None,
    ) -> None: ...
    # It is its connection's protocol too (asyncio.StreamReaderProtocol's part).
    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
    def connection_lost(self, exc: BaseException | None) -> None: ...
    def eof_received(self) -> bool: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def __del__(self) -> None: ...

class StreamWriter(asyncio.StreamWriter):
    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: asyncio.BaseProtocol,
        reader: StreamReader | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None: ...
    if sys.version_info >= (3, 12):
        async def start_tls(
            self,
            sslcontext: ssl.SSLContext,
            *,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
        ) -> None: ...
    else:
        async def start_tls(
            self,
            sslcontext: ssl.SSLContext,
            *,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
        ) -> None: ...

async def open_connection(
    host: str | None = None, port: int | str | None = None, *, limit: int = 65536, **kwds: Any
) -> tuple[StreamReader, StreamWriter]: ...
async def start_server(
    client_connected_cb: _ClientConnectedCallback,
    host: str | list[str] | None = None,
    port: int | str | None = None,
    *,
    limit: int = 65536,
    **kwds: Any,
) -> asyncio.Server: ...
async def open_unix_connection(
    path: StrPath | None = None, *, limit: int = 65536, **kwds: Any
) -> tuple[StreamReader, StreamWriter]: ...
async def start_unix_server(
    client_connected_cb: _ClientConnectedCallback,
    path: StrPath | None = None,
    *,
    limit: int = 65536,
    **kwds: Any,
) -> asyncio.Server: ...
