"""The tour behind ``make demo``: each concurrency model against its stdlib peer, timed here.

Section 7 runs green threads (``plait.green``) in child processes, patched and not.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import os
import platform
import queue
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from . import DeadlockError
from . import threads as pt


def _timed(fn: Callable[[], object]) -> Callable[[], float]:
    """``fn`` as a callable that returns the seconds one call took."""

    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return run


def _measure(runs: dict[str, Callable[[], float]], repeat: int, warmup: bool = True) -> dict[str, float]:
    """The median seconds of each of ``runs`` (callables returning the seconds they timed), with
    the same treatment for every one: an untimed warm-up run each (unless ``warmup`` is False,
    for cases that warm themselves up before their clock starts), then ``repeat`` timed runs,
    interleaved (run 1 of each, run 2 of each, ...) so that a change in machine load hits all."""
    if warmup:
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            times[name].append(run())
    return {name: statistics.median(ts) for name, ts in times.items()}


def _row(label: str, stdlib: float, plait: float, unit: str, n: int) -> None:
    print(
        f"  {label:<44} stdlib {n / stdlib:>12,.0f} {unit}/s   plait {n / plait:>12,.0f} {unit}/s   "
        f"{stdlib / plait:5.1f}x"
    )


def _pipeline(make_queue: Callable[[int], object], n: int) -> None:
    """Two-stage pipeline: producer -> transformer -> consumer over bounded queues."""
    q1 = make_queue(1024)
    q2 = make_queue(1024)
    stop = object()

    def produce() -> None:
        put = q1.put  # type: ignore[attr-defined]
        for i in range(n):
            put(i)
        put(stop)

    def transform() -> None:
        get, put = q1.get, q2.put  # type: ignore[attr-defined]
        while (item := get()) is not stop:
            put(item * 2)
        put(stop)

    threads = [threading.Thread(target=produce), threading.Thread(target=transform)]
    for t in threads:
        t.start()
    get = q2.get  # type: ignore[attr-defined]
    total = 0
    while (item := get()) is not stop:
        total += item
    for t in threads:
        t.join()
    assert total == n * (n - 1)


def _tiny(x: int) -> int:
    return x


def _submit_all(pool: concurrent.futures.Executor, n: int) -> None:
    futures = [pool.submit(_tiny, i) for i in range(n)]
    assert sum(f.result() for f in futures) == n * (n - 1) // 2


def _map_all(pool: concurrent.futures.Executor, items: list[int]) -> None:
    n = len(items)
    assert sum(pool.map(_tiny, items)) == n * (n - 1) // 2


def _deadlock() -> None:
    accounts = pt.Lock(name="accounts")
    ledger = pt.Lock(name="ledger")
    a_ready, b_ready = threading.Event(), threading.Event()
    caught: list[DeadlockError] = []

    def transfer() -> None:  # takes accounts, then ledger
        with accounts:
            a_ready.set()
            b_ready.wait()
            with ledger:
                pass

    def audit() -> None:  # takes ledger, then accounts: the classic inversion
        with ledger:
            b_ready.set()
            a_ready.wait()
            # Let transfer() block on the ledger first, so the audit closes the cycle.
            while not any(ident == t1.ident for ident, *_ in pt._plait.snapshot()[1]):
                time.sleep(0.001)
            try:
                with accounts:
                    pass
            except DeadlockError as e:
                caught.append(e)

    t1 = threading.Thread(target=transfer, name="transfer")
    t2 = threading.Thread(target=audit, name="audit")
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    err = caught[0]
    print("  Two threads take two locks in opposite orders. threading would hang forever;")
    print("  plait raises DeadlockError in the thread that closes the cycle:\n")
    for line in str(err).splitlines():
        print("    | " + line)
    print(
        f"\n  err.cycle holds the same data for tools: "
        f"{[(e.thread_name, e.waits_for.label) for e in err.cycle]}"
    )


def _count_primes(limit: int) -> int:
    """Deliberately naive CPU-bound work."""
    count = 0
    for n in range(2, limit):
        for d in range(2, int(n**0.5) + 1):
            if n % d == 0:
                break
        else:
            count += 1
    return count


def _die_now() -> None:
    os.kill(os.getpid(), 9)


def _echo(x: object) -> object:
    return x


def _big_buffer(mb: int) -> object:
    """``mb`` MB of data: a numpy array when numpy is installed, else a memoryview."""
    try:
        import numpy
    except ImportError:
        return memoryview(bytearray(mb * 1_000_000))
    return numpy.ones(mb * 1_000_000 // 8)


def _zero_copy_demo(pool: object, quick: bool, repeat: int) -> None:
    import multiprocessing

    mb = 8 if quick else 100
    big = _big_buffer(mb)
    print(f"\n  A {mb} MB array to 2 tasks that return it (plait: through shared memory, no copies):")

    def both(submit: Callable[[object], Callable[[], object]]) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            getters = [submit(big) for _ in range(2)]
            for get in getters:
                get()
            return time.perf_counter() - t0

        return run

    with multiprocessing.get_context("spawn").Pool(2) as mp_pool:
        mp_pool.apply(_echo, (0,))
        t = _measure(
            {
                "mp": both(lambda b: mp_pool.apply_async(_echo, (b,)).get),
                "plait": both(lambda b: pool.submit(_echo, b).result),  # type: ignore[attr-defined]
            },
            repeat,
        )
    t_mp, t_plait = t["mp"], t["plait"]
    print(
        f"    multiprocessing.Pool {t_mp * 1e3:.0f} ms, plait {t_plait * 1e3:.0f} ms ({t_mp / t_plait:.1f}x)"
    )


def _processes_demo(quick: bool, repeat: int) -> None:
    from . import WorkerCrashed
    from .processes import ProcessPool

    jobs = [20_000 if quick else 100_000] * 8
    workers = os.cpu_count() or 1
    with pt.ThreadPool(workers) as tp, ProcessPool(workers) as pool:
        # Let every worker of both pools start before any clock does (spawning interpreters takes
        # ~50 ms each); then serial, threads and processes get the same runs, interleaved.
        list(tp.map(time.sleep, [0.05] * workers))
        list(pool.map(time.sleep, [0.05] * workers, chunksize=1))
        serial = [_count_primes(n) for n in jobs]
        assert list(tp.map(_count_primes, jobs)) == serial
        assert list(pool.map(_count_primes, jobs, chunksize=1)) == serial
        t = _measure(
            {
                "serial": _timed(lambda: [_count_primes(n) for n in jobs]),
                "threads": _timed(lambda: list(tp.map(_count_primes, jobs))),
                "processes": _timed(lambda: list(pool.map(_count_primes, jobs, chunksize=1))),
            },
            repeat,
            warmup=False,  # the checked runs above were the warm-up
        )
        t_serial, t_threads, t_procs = t["serial"], t["threads"], t["processes"]
        print(
            f"  {len(jobs)} jobs: serial {t_serial:.2f} s, {workers} threads {t_threads:.2f} s "
            f"(the GIL: {t_serial / t_threads:.1f}x), {workers} processes {t_procs:.2f} s "
            f"({t_serial / t_procs:.1f}x)"
        )
        print("\n  A worker is killed (SIGKILL) mid-run. Only its task fails; the rest complete:")
        futures = [pool.submit(_count_primes, 5_000) for _ in range(3)]
        victim = pool.submit(_die_now)
        futures += [pool.submit(_count_primes, 5_000) for _ in range(3)]
        try:
            victim.result()
        except WorkerCrashed as err:
            print(f"    victim: WorkerCrashed: {err}")
        print(f"    the other {len(futures)} tasks: {[f.result() for f in futures]}")
        _zero_copy_demo(pool, quick, repeat)


def _parse(inbox: object, outbox: object) -> None:
    """Pipeline stage 1 (a process): "key=value" lines -> (key, int)."""
    get, put = inbox.get, outbox.put  # type: ignore[attr-defined]
    while (line := get()) is not None:
        key, _, value = line.partition("=")
        put((key, int(value)))
    put(None)


def _transform(inbox: object, outbox: object) -> None:
    """Pipeline stage 2 (a process): (key, n) -> n * n."""
    get, put = inbox.get, outbox.put  # type: ignore[attr-defined]
    while (item := get()) is not None:
        put(item[1] * item[1])
    put(None)


def _process_pipeline(make_queue: Callable[[], object], n: int) -> float:
    """parse -> transform -> aggregate (here) over queues between 3 processes; seconds from the
    first line fed to the total (the stage processes are started before the clock)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    lines, parsed, squares = make_queue(), make_queue(), make_queue()
    stages = [
        ctx.Process(target=_parse, args=(lines, parsed)),
        ctx.Process(target=_transform, args=(parsed, squares)),
    ]
    for p in stages:
        p.start()
    lines.put("warm=0")  # type: ignore[attr-defined]
    assert squares.get() == 0  # type: ignore[attr-defined]
    t0 = time.perf_counter()

    def feed() -> None:
        put = lines.put  # type: ignore[attr-defined]
        for i in range(n):
            put(f"k{i}={i}")
        put(None)

    feeder = threading.Thread(target=feed)
    feeder.start()
    get = squares.get  # type: ignore[attr-defined]
    total = 0
    while (x := get()) is not None:
        total += x
    elapsed = time.perf_counter() - t0
    feeder.join()
    for p in stages:
        p.join()
    assert total == sum(i * i for i in range(n))
    return elapsed


def _hold_and_die(lock: object, balance: object) -> None:
    """Takes the shared lock, half-updates the shared state, and is killed."""
    lock.acquire()  # type: ignore[attr-defined]
    balance.store(-1)  # type: ignore[attr-defined]  # inconsistent until the second half
    os.kill(os.getpid(), 9)


def _ipc_demo(quick: bool, repeat: int) -> None:
    import multiprocessing

    from . import OwnerDied
    from . import processes as pp

    n = 20_000 if quick else 200_000
    t = _measure(
        {
            "std": lambda: _process_pipeline(multiprocessing.get_context("spawn").Queue, n),
            "plait": lambda: _process_pipeline(pp.Queue, n),
        },
        repeat,
        warmup=False,  # each run starts its stages and passes one item through before its clock
    )
    _row(f"pipeline, {n:,} items, 3 processes", t["std"], t["plait"], "items", n)

    print("\n  A process is killed (SIGKILL) while holding a shared lock, mid-update:")
    ctx = multiprocessing.get_context("fork")
    mp_lock = ctx.Lock()
    p = ctx.Process(target=_hold_and_die, args=(mp_lock, pp.AtomicInt()))
    p.start()
    p.join()
    took = mp_lock.acquire(timeout=1.0)
    print(f"    multiprocessing.Lock: acquire(timeout=1) -> {took}; without a timeout, every process hangs")
    lock, balance = pp.Lock(), pp.AtomicInt(100)
    p = ctx.Process(target=_hold_and_die, args=(lock, balance))
    p.start()
    p.join()
    try:
        lock.acquire()
    except OwnerDied:
        print(
            f"    plait Lock: acquire() raised OwnerDied, lock held; balance {balance.load()}: half-updated"
        )
        balance.store(100)  # repair
    lock.release()
    print(f"    repaired under the lock: balance is {balance.load()} again; the lock works as before")


async def _http_downloads(n: int, concurrency: int, size: int, streams: Any = None) -> int:
    """A tiny HTTP/1.0 server on asyncio streams (or on ``streams``' ``start_server`` and
    ``open_connection``: plait.aio's), and ``n`` downloads of ``size`` bytes from it,
    ``concurrency`` at a time, all on the running loop. Returns the bytes received."""
    import asyncio

    streams = streams or asyncio

    body = b"x" * size
    head = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % size

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head)
        writer.write(body)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await streams.start_server(handle, "127.0.0.1", 0, backlog=concurrency * 2)
    port = server.sockets[0].getsockname()[1]
    sem = asyncio.Semaphore(concurrency)

    async def download(i: int) -> int:
        async with sem:
            reader, writer = await streams.open_connection("127.0.0.1", port)
            writer.write(b"GET /file/%d HTTP/1.0\r\nHost: localhost\r\n\r\n" % i)
            headers = await reader.readuntil(b"\r\n\r\n")
            length = int(headers.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            data = await reader.readexactly(length)
            writer.close()
            await writer.wait_closed()
            return len(data)

    async with server:
        got = await asyncio.gather(*(download(i) for i in range(n)))
    return sum(got)


def _aio_demo(quick: bool, repeat: int) -> None:
    import asyncio

    from . import aio

    n, concurrency, size = (200, 50, 16_384) if quick else (5_000, 200, 65_536)

    def on(factory: Callable[[], asyncio.AbstractEventLoop], streams: Any = None) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            with asyncio.Runner(loop_factory=factory) as runner:
                total = runner.run(_http_downloads(n, concurrency, size, streams))
            assert total == n * size
            return time.perf_counter() - t0

        return run

    t = _measure(
        {
            "asyncio": on(asyncio.new_event_loop),
            "plait.aio": on(aio.new_event_loop),
            "plait.aio streams": on(aio.new_event_loop, aio),
        },
        repeat,
    )
    std, ours, native = t["asyncio"], t["plait.aio"], t["plait.aio streams"]
    _row(f"{n:,} HTTP downloads of {size // 1024} KiB, {concurrency} at a time", std, ours, "downloads", n)
    print(f"    asyncio's loop: {std:.2f} s; plait.aio: {ours:.2f} s (same asyncio streams code on both)")
    print(
        f"    plait.aio with its own streams (plait.aio.start_server/open_connection): {native:.2f} s "
        f"({std / native:.1f}x asyncio)"
    )


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Serves any path after the server's ``delay``."""

    server: _SlowServer

    def do_GET(self) -> None:
        time.sleep(self.server.delay)
        body = (self.path * 64).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


class _SlowServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # socketserver's default backlog, 5, drops concurrent connects
    delay = 0.0


class _SlowPages:
    """A local site whose pages each take ``delay`` seconds to serve (a far-away server, on
    loopback): served by a thread per request, so many requests overlap."""

    def __init__(self, delay: float) -> None:
        self.server = _SlowServer(("127.0.0.1", 0), _SlowHandler)
        self.server.delay = delay
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def crawl(port: int, pages: int, concurrency: int) -> int:
    """Fetches ``pages`` pages of the local site with ``urllib.request`` (the same code either
    way): one after another, or ``concurrency`` at a time in a ``plait.green`` pool (which only
    overlaps them when the socket module is patched). Returns the bytes read."""
    import urllib.request

    def fetch(i: int) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/page/{i}", timeout=30) as response:
            return len(response.read())

    if concurrency == 1:
        return sum(fetch(i) for i in range(pages))
    from .green.pool import Pool

    return sum(Pool(concurrency).imap(fetch, range(pages)))


_CRAWLER = """
import sys, time
port, pages, concurrency = map(int, sys.argv[1:4])
if concurrency > 1:
    from plait.green import monkey
    monkey.patch_all()
from plait.demo import crawl
t0 = time.perf_counter()
size = crawl(port, pages, concurrency)
print(time.perf_counter() - t0, size)
"""


def _crawl_in_child(port: int, pages: int, concurrency: int) -> float:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _CRAWLER, str(port), str(pages), str(concurrency)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.split()
    return float(out[0])


def _green_demo(quick: bool, repeat: int) -> None:
    from . import green

    pages, delay, concurrency = (20, 0.02, 20) if quick else (100, 0.02, 50)
    site = _SlowPages(delay)
    try:
        t = _measure(
            {
                "serial": lambda: _crawl_in_child(site.port, pages, 1),
                "green": lambda: _crawl_in_child(site.port, pages, concurrency),
            },
            repeat,
            warmup=False,  # each run is a fresh process: nothing to warm
        )
    finally:
        site.close()
    print(
        f"  {pages} pages, {delay * 1000:.0f} ms each, urllib.request: serial {t['serial']:.2f} s; "
        f"the same code patched (plait.green.monkey.patch_all), {concurrency} greenlets: "
        f"{t['green']:.2f} s ({t['serial'] / t['green']:.1f}x)"
    )

    print("\n  Two greenlets wait for each other. gevent says 'This operation would block forever';")
    print("  plait names who waits on what, and where:\n")
    ping, pong = green.Event(), green.Event()

    def player(mine: Any, theirs: Any) -> None:
        mine.wait()  # each waits for the other to go first
        theirs.set()

    players = [green.spawn(player, ping, pong), green.spawn(player, pong, ping)]
    try:
        green.joinall(players, raise_error=True)
    except green.BlockedForever as exc:
        print("    " + str(exc).replace("\n", "\n    "))
    finally:
        green.killall(players)
        green.get_hub().destroy()


def run(quick: bool = False) -> int:
    """Run the tour; ``quick`` shrinks the work sizes (used by the test suite)."""
    scale = 0.05 if quick else 1.0
    repeat = 1 if quick else 3
    print(
        f"plait tour on {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores\n"
    )

    print(
        f"Every figure: the median of {repeat} timed run(s) of each side, interleaved, after the same\n"
        "warm-up for each; the ratio is stdlib time / plait time. `make bench` measures more cases.\n"
    )
    print("1. Threads: producer -> transformer -> consumer over bounded queues")
    n = int(200_000 * scale)
    t = _measure(
        {
            "std": _timed(lambda: _pipeline(queue.Queue, n)),
            "plait": _timed(lambda: _pipeline(pt.Queue, n)),
        },
        repeat,
    )
    _row(f"pipeline, {n:,} items, 2 hops", t["std"], t["plait"], "items", n)

    print("\n2. Threads: a pool of 4 workers, tiny tasks")
    n = int(50_000 * scale)
    with concurrent.futures.ThreadPoolExecutor(4) as a, pt.ThreadPool(4) as b:
        t = _measure(
            {"std": _timed(lambda: _submit_all(a, n)), "plait": _timed(lambda: _submit_all(b, n))}, repeat
        )
        _row(f"submit + result, {n:,} tasks", t["std"], t["plait"], "tasks", n)
        items = list(range(int(200_000 * scale)))
        t = _measure(
            {"std": _timed(lambda: _map_all(a, items)), "plait": _timed(lambda: _map_all(b, items))}, repeat
        )
        _row(f"map over a list of {len(items):,} ints", t["std"], t["plait"], "items", len(items))

    print("\n3. Threads: a deadlock, named instead of silent\n")
    _deadlock()
    print("\n4. Processes: counting primes, CPU-bound")
    _processes_demo(quick, repeat)
    print("\n5. Processes: parse -> transform -> aggregate, connected by queues")
    _ipc_demo(quick, repeat)
    print("\n6. asyncio: concurrent downloads from a local HTTP server, asyncio streams")
    _aio_demo(quick, repeat)
    print("\n7. Green threads: a crawler of a slow local site, serial vs patched with plait.green\n")
    from ._freethreading import GREEN_UNSAFE_REASON, green_unsafe

    if green_unsafe():
        print(f"  skipped: {GREEN_UNSAFE_REASON}")
    else:
        _green_demo(quick, repeat)
    print("\nDone. `make bench` measures every case against all peers.")
    return 0
