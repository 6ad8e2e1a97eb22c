"""CPython's own ``Lib/test/test_asyncio`` suites run against ``plait.aio.new_event_loop``.

- ``test_events.EventLoopTestsMixin``: the loop's scheduling, I/O callbacks, connections,
  servers, datagrams, pipes and ptys.
- ``test_sock_lowlevel.BaseSockTestsMixin``: the ``sock_*`` coroutines.
- ``test_buffered_proto.BaseTestBufferedProtocol``: ``BufferedProtocol`` transports.
- ``test_server.BaseStartServer``: ``Server`` objects (``start_server``, ``serve_forever``).
- ``test_events.HandleTests.test_handle_source_traceback``: in debug mode, the handles of
  ``call_soon``, ``call_soon_threadsafe``, ``call_later`` and ``call_at`` record where they were
  scheduled (the policy's loop is plait's there). The other ``HandleTests`` build
  ``asyncio.Handle`` objects on a mock loop: they test asyncio's class, not a loop.

Test bodies are CPython's; only the loop factory changes. A skipped test says why in its reason.
"""

from __future__ import annotations

import asyncio
import unittest

from test.test_asyncio import test_buffered_proto, test_events, test_server, test_sock_lowlevel
from test.test_asyncio import utils as test_utils

from plait import aio

_TLS = "TLS transports belong to the follow-up issue (plait.aio TLS and sendfile)"


class EventLoopTests(test_events.EventLoopTestsMixin, test_utils.TestCase):
    def create_event_loop(self):
        return aio.new_event_loop()


class SockTests(test_sock_lowlevel.BaseSockTestsMixin, test_utils.TestCase):
    def create_event_loop(self):
        return aio.new_event_loop()


class BufferedProtocolTests(test_buffered_proto.BaseTestBufferedProtocol, unittest.TestCase):
    def new_loop(self):
        return aio.new_event_loop()


class StartServerTests(test_server.BaseStartServer, unittest.TestCase):
    def new_loop(self):
        return aio.new_event_loop()

    test_start_unix_server_1 = test_server.SelectorStartServerTests.test_start_unix_server_1


class HandleSourceTracebackTests(test_utils.TestCase):
    """The test asks the policy for its loop: plait's policy is installed around it."""

    test_handle_source_traceback = test_events.HandleTests.test_handle_source_traceback

    def setUp(self):
        super().setUp()
        asyncio.set_event_loop_policy(aio.EventLoopPolicy())
        self.addCleanup(asyncio.set_event_loop_policy, None)
