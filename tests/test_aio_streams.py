"""plait.aio's streams: the native read awaitables (``read``, ``readexactly``, ``readuntil``,
``readline``) must pass for the coroutines of ``asyncio.StreamReader``, and ``drain`` must
answer as asyncio's does."""

from __future__ import annotations

import asyncio
import collections.abc
import random
import socket

import pytest

from plait import aio


def reader_on(loop) -> aio.StreamReader:
    return aio.StreamReader(loop=loop)


def test_read_is_a_coroutine(loop):
    reader = reader_on(loop)
    op = reader.read(10)
    try:
        assert asyncio.iscoroutine(op)
        assert isinstance(op, collections.abc.Coroutine)
    finally:
        op.close()


def test_read_returns_buffered_data_at_once(loop):
    reader = reader_on(loop)
    reader.feed_data(b"hello")
    assert loop.run_until_complete(reader.read(3)) == b"hel"
    assert loop.run_until_complete(reader.read(10)) == b"lo"


def test_read_waits_for_data(loop):
    reader = reader_on(loop)

    async def main():
        task = asyncio.create_task(reader.read(100))
        await asyncio.sleep(0)
        assert not task.done()
        assert reader._waiter is not None
        reader.feed_data(b"late")
        return await task

    assert loop.run_until_complete(main()) == b"late"
    assert reader._waiter is None


def test_read_under_create_task_ensure_future_and_wait_for(loop):
    reader = reader_on(loop)

    async def main():
        reader.feed_data(b"abc")
        a = await asyncio.create_task(reader.read(1))
        b = await asyncio.ensure_future(reader.read(1))
        c = await asyncio.wait_for(reader.read(1), 5)
        return a, b, c

    assert loop.run_until_complete(main()) == (b"a", b"b", b"c")


def test_wait_for_timeout_clears_the_waiter(loop):
    reader = reader_on(loop)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(10), 0.01)
        assert reader._waiter is None
        reader.feed_data(b"x")
        return await reader.read(10)

    assert loop.run_until_complete(main()) == b"x"


def test_cancelled_read_clears_the_waiter_and_a_later_read_works(loop):
    reader = reader_on(loop)

    async def main():
        task = asyncio.create_task(reader.read(10))
        await asyncio.sleep(0)
        waiter = reader._waiter
        assert waiter is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reader._waiter is None
        assert waiter.cancelled()
        reader.feed_data(b"after")
        return await reader.read(10)

    assert loop.run_until_complete(main()) == b"after"


def test_second_concurrent_read_raises_runtime_error(loop):
    reader = reader_on(loop)

    async def main():
        first = asyncio.create_task(reader.read(10))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="read\\(\\) called while another coroutine"):
            await reader.read(10)
        reader.feed_data(b"one")
        return await first

    assert loop.run_until_complete(main()) == b"one"


def test_read_raises_the_exception_set_while_waiting(loop):
    reader = reader_on(loop)
    exc = ValueError("boom")

    async def main():
        task = asyncio.create_task(reader.read(10))
        await asyncio.sleep(0)
        reader.set_exception(exc)
        with pytest.raises(ValueError) as info:
            await task
        return info.value

    assert loop.run_until_complete(main()) is exc


def test_read_after_set_exception_raises_it(loop):
    reader = reader_on(loop)
    reader.feed_data(b"data")
    reader.set_exception(ConnectionResetError("gone"))
    with pytest.raises(ConnectionResetError, match="gone"):
        loop.run_until_complete(reader.read(10))


def test_read_at_eof(loop):
    reader = reader_on(loop)
    reader.feed_data(b"tail")
    reader.feed_eof()
    assert loop.run_until_complete(reader.read()) == b"tail"
    assert loop.run_until_complete(reader.read(10)) == b""


def test_read_to_eof_waits_for_the_end(loop):
    reader = reader_on(loop)

    async def main():
        task = asyncio.create_task(reader.read())
        reader.feed_data(b"a")
        await asyncio.sleep(0)
        reader.feed_data(b"b")
        await asyncio.sleep(0)
        assert not task.done()
        reader.feed_eof()
        return await task

    assert loop.run_until_complete(main()) == b"ab"


def test_read_awaited_twice_raises(loop):
    reader = reader_on(loop)
    reader.feed_data(b"x")

    async def main():
        op = reader.read(1)
        assert await op == b"x"
        with pytest.raises(RuntimeError, match="cannot reuse"):
            await op

    loop.run_until_complete(main())


def test_throw_into_a_waiting_read(loop):
    reader = reader_on(loop)
    op = reader.read(5)
    fut = op.send(None)
    assert isinstance(fut, asyncio.Future)
    assert reader._waiter is fut
    with pytest.raises(KeyError):
        op.throw(KeyError("k"))
    assert reader._waiter is None
    assert fut.cancelled()


def test_close_a_waiting_read(loop):
    reader = reader_on(loop)
    op = reader.read(5)
    fut = op.send(None)
    op.close()
    assert reader._waiter is None
    fut.cancel()


def test_readexactly(loop):
    reader = reader_on(loop)

    async def main():
        task = asyncio.create_task(reader.readexactly(4))
        reader.feed_data(b"ab")
        await asyncio.sleep(0)
        assert not task.done()
        reader.feed_data(b"cdef")
        return await task

    assert loop.run_until_complete(main()) == b"abcd"


def test_readexactly_incomplete_and_negative(loop):
    reader = reader_on(loop)
    reader.feed_data(b"ab")
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError) as info:
        loop.run_until_complete(reader.readexactly(4))
    assert (info.value.partial, info.value.expected) == (b"ab", 4)
    op = reader.readexactly(-1)  # raises when awaited, as the coroutine does
    with pytest.raises(ValueError, match="less than zero"):
        loop.run_until_complete(op)


def test_readuntil_and_readline(loop):
    reader = reader_on(loop)
    reader.feed_data(b"one\ntwo||three")
    assert loop.run_until_complete(reader.readline()) == b"one\n"
    assert loop.run_until_complete(reader.readuntil(b"||")) == b"two||"
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError) as info:
        loop.run_until_complete(reader.readuntil(b"\n"))
    assert info.value.partial == b"three"
    assert loop.run_until_complete(reader.readline()) == b""


@pytest.mark.parametrize("sep", [b"\n", b"\r\n\r\n", b"abcabd"])
def test_readuntil_across_many_small_pieces_matches_asyncio(loop, sep):
    """Data arriving in pieces (1 to 7 bytes, so a separator straddles several) while readuntil
    waits: the same records as asyncio's reader, the search resuming where it stopped."""
    rng = random.Random(7)
    alphabet = b"abcd\r\n"
    data = bytes(rng.choice(alphabet) for _ in range(20_000)) + sep
    pieces = []
    i = 0
    while i < len(data):
        n = rng.randint(1, 7)
        pieces.append(data[i : i + n])
        i += n

    async def records(reader):
        async def feed():
            for p in pieces:
                reader.feed_data(p)
                await asyncio.sleep(0)
            reader.feed_eof()

        feeder = asyncio.ensure_future(feed())
        out = []
        while True:
            try:
                out.append(await reader.readuntil(sep))
            except asyncio.IncompleteReadError as e:
                out.append(("partial", e.partial))
                break
        await feeder
        return out

    mine = loop.run_until_complete(records(aio.StreamReader(limit=1 << 20, loop=loop)))
    std_loop = asyncio.new_event_loop()
    try:
        theirs = std_loop.run_until_complete(records(asyncio.StreamReader(limit=1 << 20, loop=std_loop)))
    finally:
        std_loop.close()
    assert mine == theirs
    assert b"".join(r for r in mine if isinstance(r, bytes)) == data


def test_readuntil_overrun_without_separator_reports_what_asyncio_does(loop):
    """LimitOverrunError.consumed when no separator is found: the bytes that can no longer start
    one (asyncio: buffer length + 1 - separator length)."""

    def consumed(reader, lp):
        reader.feed_data(b"x" * 20)
        with pytest.raises(asyncio.LimitOverrunError) as info:
            lp.run_until_complete(reader.readuntil(b"\r\n\r\n"))
        return info.value.consumed

    std_loop = asyncio.new_event_loop()
    try:
        theirs = consumed(asyncio.StreamReader(limit=8, loop=std_loop), std_loop)
    finally:
        std_loop.close()
    assert consumed(aio.StreamReader(limit=8, loop=loop), loop) == theirs == 17


def test_a_long_line_in_many_pieces(loop):
    """A 4 MiB line fed in 4 KiB pieces while readline waits (linear work per piece)."""
    reader = aio.StreamReader(limit=8 << 20, loop=loop)
    line = b"x" * (4 << 20) + b"\n"

    async def main():
        async def feed():
            for i in range(0, len(line), 4096):
                reader.feed_data(line[i : i + 4096])
                await asyncio.sleep(0)

        feeder = asyncio.ensure_future(feed())
        got = await reader.readline()
        await feeder
        return got

    assert loop.run_until_complete(main()) == line


def test_readuntil_bad_separator_raises_when_awaited(loop):
    reader = reader_on(loop)
    op = reader.readuntil(b"")
    with pytest.raises(ValueError, match="at least one-byte"):
        loop.run_until_complete(op)


def test_readline_over_the_limit(loop):
    reader = aio.StreamReader(limit=4, loop=loop)
    reader.feed_data(b"toolong\nok\n")
    with pytest.raises(ValueError, match="chunk is longer than limit"):
        loop.run_until_complete(reader.readline())
    assert loop.run_until_complete(reader.readline()) == b"ok\n"


def test_drain_over_a_connection(loop):
    async def handle(reader, writer):
        while data := await reader.read(100):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main():
        server = await aio.start_server(handle, "127.0.0.1", 0)
        async with server:
            reader, writer = await aio.open_connection(*server.sockets[0].getsockname())
            writer.write(b"ping")
            assert await writer.drain() is None
            assert await reader.readexactly(4) == b"ping"
            writer.close()
            await writer.wait_closed()
            # After the connection is lost, drain raises as asyncio's does.
            with pytest.raises(ConnectionResetError):
                await writer.drain()

    loop.run_until_complete(main())


def test_drain_raises_the_reader_exception(loop):
    async def main():
        server = await aio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        async with server:
            reader, writer = await aio.open_connection(*server.sockets[0].getsockname())
            reader.set_exception(OSError("broken"))
            with pytest.raises(OSError, match="broken"):
                await writer.drain()
            writer.close()
            await writer.wait_closed()

    loop.run_until_complete(main())


def test_drain_waits_while_writing_is_paused(loop):
    async def main():
        server = await aio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        async with server:
            reader, writer = await aio.open_connection(*server.sockets[0].getsockname())
            reader.pause_writing()
            assert reader._paused_writing
            task = asyncio.create_task(writer.drain())
            await asyncio.sleep(0)
            assert not task.done()
            reader.resume_writing()
            await task
            writer.close()
            await writer.wait_closed()

    loop.run_until_complete(main())


def test_a_subclass_data_received_is_still_called(loop):
    """The transport hands data to StreamCore natively only when data_received is not overridden."""
    seen = []

    class Recording(aio.StreamReader):
        def data_received(self, data):
            seen.append(data)
            super().data_received(data)

    async def main():
        rsock, wsock = socket.socketpair()
        with wsock:
            reader = Recording(loop=loop)
            transport, _ = await loop.connect_accepted_socket(lambda: reader, rsock)
            wsock.sendall(b"hi")
            data = await reader.read(10)
            transport.close()
            await asyncio.sleep(0)
        return data

    assert loop.run_until_complete(main()) == b"hi"
    assert seen == [b"hi"]


def test_float_and_huge_limits_are_kept_like_asyncio():
    from plait import aio

    async def main():
        loop = asyncio.get_running_loop()
        return [aio.StreamReader(limit=lim, loop=loop)._limit for lim in (1e6, 2**70, 100)]

    limits = aio.run(main())
    assert limits[0] == 1_000_000
    assert limits[1] >= 2**62
    assert limits[2] == 100


def test_stream_writer_methods_take_asyncio_parameters():
    """Every public method plait's StreamWriter overrides takes the parameters of this Python's
    asyncio.StreamWriter method (3.12 added ``ssl_shutdown_timeout`` to ``start_tls``)."""
    import inspect

    overridden = [
        name
        for name, value in vars(aio.StreamWriter).items()
        if callable(value) and not name.startswith("_") and hasattr(asyncio.StreamWriter, name)
    ]
    assert "start_tls" in overridden
    for name in overridden:
        ours = inspect.signature(getattr(aio.StreamWriter, name)).parameters
        theirs = inspect.signature(getattr(asyncio.StreamWriter, name)).parameters
        assert list(ours) == list(theirs), name
        for p in theirs.values():
            assert (ours[p.name].kind, ours[p.name].default) == (p.kind, p.default), (name, p.name)


def test_start_tls_upgrades_both_ends_of_a_stream_connection(loop):
    """``StreamWriter.start_tls`` on plait's streams, server and client side: the reader follows
    the new TLS transport (3.13 calls ``_replace_transport``, earlier versions ``_replace_writer``)
    and the connection carries data both ways after the upgrade."""
    from test.test_asyncio import utils as test_utils

    server_ctx = test_utils.simple_server_sslcontext()
    client_ctx = test_utils.simple_client_sslcontext()
    seen = {}

    async def handle(reader, writer):
        try:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"OK\n")
            await writer.drain()
            await writer.start_tls(server_ctx)
            seen["server_tls"] = writer.get_extra_info("sslcontext") is not None
            seen["server_reader_follows"] = reader._transport is writer.transport
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    async def main():
        server = await aio.start_server(handle, "127.0.0.1", 0)
        async with server:
            reader, writer = await aio.open_connection(*server.sockets[0].getsockname())
            try:
                writer.write(b"STARTTLS\n")
                assert await reader.readline() == b"OK\n"
                await writer.start_tls(client_ctx, server_hostname="")
                assert writer.get_extra_info("sslcontext") is client_ctx
                assert reader._transport is writer.transport
                writer.write(b"over tls\n")
                await writer.drain()
                assert await reader.readline() == b"OVER TLS\n"
                assert await reader.read() == b""
            finally:
                writer.close()
                await writer.wait_closed()

    loop.run_until_complete(asyncio.wait_for(main(), 60))
    assert seen == {"server_tls": True, "server_reader_follows": True}
