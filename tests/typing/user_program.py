"""A small user program over every public module, type-checked by ``mypy --strict`` (see
``test_typing.py``): the stubs must give precise types, not ``Any``. Never run, only checked."""

from __future__ import annotations

import asyncio
import concurrent.futures

import plait
from plait import aio, exceptions, processes, threads
from plait.backends import Dask, Ray


def square(x: int) -> int:
    return x * x


def add(x: int, y: int) -> int:
    return x + y


def use_threads() -> int:
    lock = threads.Lock()
    with lock:
        pass
    q: threads.Queue[int] = threads.Queue(maxsize=4)
    q.put(1)
    event = threads.Event()
    event.set()
    with threads.ThreadPool(max_workers=2) as pool:
        future = pool.submit(square, 3)
        doubled = list(pool.map(square, [1, 2, 3]))
    return future.result() + sum(doubled)


def use_processes() -> int:
    with processes.ProcessPool(max_workers=2, task_timeout=10.0, start_method="forkserver") as pool:
        future: concurrent.futures.Future[int] = pool.submit(add, 1, 2)
        squares: list[int] = list(pool.map(square, range(10), chunksize=2))
        pairs: list[int] = pool.starmap(add, [(1, 2), (3, 4)])
        lazy: list[int] = list(pool.imap_unordered(square, iter(range(5)), progress="always"))
        timed: int = pool.options(timeout=1.0).submit(square, 4).result()
        pool.cancel_running(future)
    q = processes.Queue(maxsize=8)
    q.put(b"x")
    lock = processes.Lock(name="jobs")
    with lock:
        pass
    counter = processes.AtomicInt(0)
    counter.fetch_add(2 + len(lock.name or ""))
    counter += 1
    counter.store([0, 1, 2, 3, 4, 5, 6, 7][counter] - int(counter))
    condition = processes.Condition(lock)
    ready: bool = condition.wait_for(lambda: True, timeout=0.1)
    left, right = processes.Pipe()
    left.send(1)
    right.close()
    shared = processes.share(b"abc")
    n: int = shared.nbytes
    return future.result() + sum(squares) + sum(pairs) + sum(lazy) + timed + counter.load() + n + ready


def use_backends() -> int:
    with processes.ProcessPool(backend=Dask("tcp://127.0.0.1:8786"), task_timeout=5.0) as pool:
        total: int = sum(pool.map(square, range(10)))
    with processes.ProcessPool(2, backend="dask") as pool:
        total += pool.submit(add, 1, 2).result()
    with processes.Pool(2, backend=Ray(idle_timeout=1.0)) as mp_pool:
        total += sum(mp_pool.map(square, range(3)))
    return total


def use_mp_pool() -> int:
    # multiprocessing.Pool's API, and multiprocessing's names through plait.processes.
    with processes.Pool(2, context=processes.get_context("spawn")) as pool:
        one: int = pool.apply(square, (3,))
        result: processes.AsyncResult[int] = pool.apply_async(square, (4,), callback=print)
        later: int = result.get(timeout=1.0)
        ready: bool = result.ready() and result.successful()
        squares: list[int] = pool.map(square, range(10))
        mapped: processes.MapResult[int] = pool.map_async(square, [1, 2])
        pairs: list[int] = pool.starmap(add, [(1, 2)]) + pool.starmap_async(add, [(3, 4)]).get()
        it = pool.imap(square, iter(range(5)), chunksize=None)
        first: int = it.next(timeout=1.0)
        rest: list[int] = list(it) + list(pool.imap_unordered(square, [1]))
    pool.join()
    cores: int = processes.cpu_count()
    try:
        mapped.get(0.1)
    except processes.TimeoutError:
        pass
    return one + later + ready + sum(squares) + sum(pairs) + first + sum(rest) + cores


async def echo(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
    data: bytes = await reader.read(100)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main() -> int:
    server = await aio.start_server(echo, "127.0.0.1", 0)
    reader, writer = await aio.open_connection("127.0.0.1", 8888)
    writer.write(b"ping")
    line: bytes = await reader.readline()
    server.close()
    loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
    handle: asyncio.TimerHandle = loop.call_later(1.0, print, "late")
    handle.cancel()
    return len(line)


def use_aio() -> int:
    result: int = aio.run(main())
    loop: aio.EventLoop = aio.new_event_loop()
    with asyncio.Runner(loop_factory=aio.new_event_loop) as runner:
        result += runner.run(main())
    loop.close()
    return result


def use_exceptions() -> str:
    try:
        use_threads()
    except plait.DeadlockError as err:
        return err.cycle[0].waits_for.label
    except exceptions.TaskTimeout as err:
        return str(err.timeout)
    except plait.WorkerCrashed as err:
        return f"{err.exitcode} {err.signal}"
    except plait.BrokenProcessPool:
        return "broken"
    return plait.__version__
