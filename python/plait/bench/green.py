"""plait.green against gevent, same run.

Run::

    plait bench green            # full sizes
    plait bench green --quick    # tiny sizes: a smoke test

Cases (gevent is the baseline; both run the same Python code in this process, each on its own
hub; every implementation gets the same warm-up run and the same number of timed runs,
interleaved, median reported):

- spawn + join: ``n`` greenlets of a function that returns at once, spawned one by one, then
  ``joinall``: the cost of a greenlet's whole life. Most of it is greenlet's own (a new
  greenlet's first switch allocates its frame stack: ~8 us here with greenlet alone), the same
  for both.
- switches: 1,000 greenlets each doing 100 ``sleep(0)``: the cost of a yield to the hub and back.
- Event ping-pong and Queue hand-off between two greenlets (informational).
- echo: ``StreamServer(("127.0.0.1", 0), handle)`` whose ``handle(sock, address)`` loops
  ``sock.recv(65536)`` / ``sock.sendall(data)``, in a child process (gevent's, plait.green's, each
  with its default ``spawn``), and beside them ``plait.aio``'s ``asyncio.Protocol`` echo server
  (plait/bench/aio.py's), the same native client for all: ``plait-loadgen`` keeps one 1 KiB message
  in flight on each of 10 connections over loopback. Reported: round trips per second and the
  server's CPU time per round trip (on 2 cores the client competes with the server for CPU).
  Without ``plait-loadgen`` (see plait/bench/aio.py) this case is skipped with a line saying why.

gevent comes from the ``bench`` extra (``make bench`` installs it); without it, each case prints
plait's line alone, with a line saying so.
"""

from __future__ import annotations

import argparse
import importlib
import resource
import subprocess
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from plait import green

from . import aio
from ._common import Bench, Impl, clock, header

__all__ = ["PEERS", "TITLE", "run"]

TITLE = "plait.green vs gevent"
PEERS = ("gevent", "greenlet")


def nothing() -> None:
    return None


def spawn_join(mod: Any, n: int) -> Callable[[], float]:
    spawn, joinall = mod.spawn, mod.joinall

    def run() -> float:
        t0 = clock()
        gs = [spawn(nothing) for _ in range(n)]
        joinall(gs)
        elapsed = clock() - t0
        assert all(g.dead for g in gs)
        return elapsed

    return run


def switches(mod: Any, greenlets: int, each: int) -> Callable[[], float]:
    sleep, spawn, joinall = mod.sleep, mod.spawn, mod.joinall

    def worker() -> int:
        for _ in range(each):
            sleep(0)
        return each

    def run() -> float:
        t0 = clock()
        gs = [spawn(worker) for _ in range(greenlets)]
        joinall(gs)
        elapsed = clock() - t0
        assert all(g.value == each for g in gs)
        return elapsed

    return run


def event_pingpong(mod: Any, event_cls: Any, n: int) -> Callable[[], float]:
    def run() -> float:
        ping, pong = event_cls(), event_cls()

        def other() -> None:
            for _ in range(n):
                ping.wait()
                ping.clear()
                pong.set()

        g = mod.spawn(other)
        t0 = clock()
        for _ in range(n):
            ping.set()
            pong.wait()
            pong.clear()
        elapsed = clock() - t0
        g.join()
        return elapsed

    return run


def queue_handoff(mod: Any, queue_cls: Any, n: int) -> Callable[[], float]:
    items = list(range(n))

    def run() -> float:
        q = queue_cls()
        got: list[int] = []

        def consumer() -> None:
            while True:
                item = q.get()
                if item is None:
                    return
                got.append(item)

        g = mod.spawn(consumer)
        t0 = clock()
        for item in items:
            q.put(item)
        q.put(None)
        g.join()
        elapsed = clock() - t0
        assert got == items
        return elapsed

    return run


def serve(impl: str) -> None:
    """Child process: an echo StreamServer on a loopback port (printed); answers ``cpu`` lines on
    stdin with this process's CPU seconds; exits at the end of its input."""
    if impl == "gevent":
        gevent = importlib.import_module("gevent")
        stream_server = importlib.import_module("gevent.server").StreamServer
        hub_sleep = gevent.sleep
    else:
        from plait.green.server import StreamServer as stream_server

        hub_sleep = green.sleep

    def handle(sock: Any, address: Any) -> None:
        recv, sendall = sock.recv, sock.sendall
        while data := recv(65536):
            sendall(data)

    server = stream_server(("127.0.0.1", 0), handle)
    server.start()
    print(server.server_port, flush=True)
    done = threading.Event()

    def control() -> None:
        for _ in sys.stdin:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            print(ru.ru_utime + ru.ru_stime, flush=True)
        done.set()

    threading.Thread(target=control, daemon=True).start()
    while not done.is_set():
        hub_sleep(0.05)  # the hub serves meanwhile; the flag is checked 20 times a second
    server.stop()


#: The child's command line (``python -c``: the child does not run the parent's ``__main__``).
SERVE = "import sys; from plait.bench.green import serve; serve(*sys.argv[1:])"


class GreenEchoServer(aio.EchoServer):
    """plait/bench/aio.py's echo server driver, with this module's green server as the child."""

    def __init__(self, impl: str, loadgen: str) -> None:
        self.loadgen = loadgen
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, impl],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.cpu_per_rt: list[float] = []


def echo_section(bench: Bench, args: Any, have_gevent: bool, n_echo: int) -> None:
    loadgen, why = aio.find_loadgen()
    if loadgen is None:
        bench.skip("StreamServer echo", why, kind="case")
        return
    label = "StreamServer echo 1 KiB, 10 conns"
    names = (["gevent"] if have_gevent else []) + ["plait.green"]
    servers: dict[str, aio.EchoServer] = {name: GreenEchoServer(name, loadgen) for name in names}
    servers["plait.aio Protocol"] = aio.EchoServer("plait.aio", "protocol", loadgen)
    try:
        res = bench.compare(
            label,
            n_echo,
            "round trips",
            [Impl(name, lambda s=s: s.run(1024, n_echo)) for name, s in servers.items()],
            repeats=max(3, args.repeats - 2),
        )
    finally:
        for s in servers.values():
            s.close()
    for name, s in servers.items():
        timed_runs = sorted(s.cpu_per_rt[-res[name].runs :])  # the warm-up run left out
        print(f"    {name:<20} server CPU per round trip {timed_runs[len(timed_runs) // 2] * 1e6:6.1f} us")
    if have_gevent:
        bench.target("StreamServer echo vs gevent", 1.3, res["plait.green"])
    green_vs_aio = Bench.relative(res["plait.green"], res["plait.aio Protocol"])
    bench.target("green echo vs plait.aio Protocol echo", 0.8, green_vs_aio, "(within 20%)")


def run(args: argparse.Namespace) -> Bench:
    """Every case, printed as it runs; the results and targets are in the returned ``Bench``."""
    quick = args.quick
    n_spawn = 10_000 if quick else 100_000
    n_greenlets, n_each = (100, 100) if quick else (1_000, 100)
    n_ping = 2_000 if quick else 20_000
    n_echo = 2_000 if quick else 60_000
    bench = Bench(args, label_width=44, name_width=20)
    gevent = bench.peer("gevent", "event", "queue")
    header(
        TITLE,
        args,
        sizes=[
            f"spawn+join {n_spawn:,} greenlets",
            f"switches {n_greenlets:,} greenlets x {n_each} sleep(0)",
            f"ping-pong {n_ping:,} round trips",
            f"echo: 10 connections, {n_echo:,} round trips of 1 KiB",
        ],
        notes=["both in this process, each on its own hub; gevent is the baseline (1.00x)"],
        packages=PEERS,
    )

    def impls(make: Callable[[Any, Any], Callable[[], float]]) -> list[Impl]:
        out = []
        if gevent is not None:
            out.append(Impl("gevent", make(gevent, "gevent")))
        out.append(Impl("plait.green", make(green, "plait")))
        return out

    bench.section("1. greenlets")
    r = bench.compare(
        f"spawn + join ({n_spawn // 1000}k greenlets)",
        n_spawn,
        "greenlets",
        impls(lambda mod, _: spawn_join(mod, n_spawn)),
    )
    bench.target("spawn+join vs gevent", 2.0, r.get("plait.green") if gevent is not None else None)
    r = bench.compare(
        f"sleep(0) switches ({n_greenlets} x {n_each})",
        n_greenlets * n_each,
        "switches",
        impls(lambda mod, _: switches(mod, n_greenlets, n_each)),
    )
    bench.target("switches vs gevent", 1.5, r.get("plait.green") if gevent is not None else None)

    bench.section("2. synchronisation between two greenlets (informational)")
    if hasattr(green, "Event") or _has(green, "event"):
        import plait.green.event as pge
        import plait.green.queue as pgq

        def event_of(mod: Any, name: str) -> Any:
            return pge.Event if name == "plait" else mod.event.Event

        def queue_of(mod: Any, name: str) -> Any:
            return pgq.Queue if name == "plait" else mod.queue.Queue

        bench.compare(
            f"Event ping-pong ({n_ping // 1000}k round trips)",
            n_ping,
            "trips",
            impls(lambda mod, name: event_pingpong(mod, event_of(mod, name), n_ping)),
        )
        bench.compare(
            f"Queue hand-off ({n_ping // 1000}k ints)",
            n_ping,
            "items",
            impls(lambda mod, name: queue_handoff(mod, queue_of(mod, name), n_ping)),
        )
    bench.section("3. StreamServer echo (server in a child process, native client plait-loadgen)")
    echo_section(bench, args, gevent is not None, n_echo)
    bench.summary()
    green.get_hub().destroy()
    return bench


def _has(package: ModuleType, name: str) -> bool:
    try:
        importlib.import_module(f"{package.__name__}.{name}")
    except ImportError:
        return False
    return True
