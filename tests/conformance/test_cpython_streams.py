"""CPython's ``test_asyncio.test_streams`` run on plait's loop twice: unchanged, with asyncio's own
streams (whose ``StreamReaderProtocol.data_received`` plait's transport does natively), and
against plait's streams (``plait.aio.StreamReader``/``StreamWriter``/``open_connection``/
``start_server``).

The test bodies are CPython's, re-bound to module globals in which ``asyncio`` is a namespace
whose stream names (``StreamReader``, ``StreamWriter``, ``open_connection``, ``start_server``
and their Unix variants) are plait's and whose other names are asyncio's. plait's reader
exposes read-only views of the private state the tests compare (``_buffer``, ``_waiter``,
``_eof``...); the one test that assigns to it is skipped with that reason.
"""

from __future__ import annotations

import asyncio
import types
import unittest

from test.test_asyncio import test_streams

from plait import aio

_ns = types.SimpleNamespace(**{k: getattr(asyncio, k) for k in dir(asyncio) if not k.startswith("__")})
_ns.StreamReader = aio.StreamReader
_ns.StreamWriter = aio.StreamWriter
_ns.open_connection = aio.open_connection
_ns.start_server = aio.start_server
_ns.open_unix_connection = aio.open_unix_connection
_ns.start_unix_server = aio.start_unix_server
_globals = dict(vars(test_streams))
_globals["asyncio"] = _ns

_SKIP: dict[str, str] = {
    "test___repr__waiter": "assigns the reader's private _waiter (plait's waiter is native, read-only)",
}


def _rebind(fn):
    return types.FunctionType(fn.__code__, _globals, fn.__name__, fn.__defaults__, fn.__closure__)


class StdlibStreamTests(test_streams.StreamTests):
    """asyncio's streams, unchanged, on plait's loop."""

    def setUp(self):
        super().setUp()
        self.loop.close()
        self.loop = aio.new_event_loop()
        self.set_event_loop(self.loop)


class StreamTests(StdlibStreamTests):
    """The same tests, re-bound below so that they use plait's streams."""


for _name, _fn in list(vars(test_streams.StreamTests).items()):
    if _name.startswith("test_") and callable(_fn):
        setattr(StreamTests, _name, _rebind(_fn))

for _name, _reason in _SKIP.items():
    setattr(StreamTests, _name, unittest.skip(_reason)(getattr(StreamTests, _name)))
