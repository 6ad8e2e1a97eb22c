"""plait.aio's event loop against asyncio's, uvloop and rloop, same run.

Run::

    plait bench aio            # full sizes (a few minutes)
    plait bench aio --quick    # tiny sizes: a smoke test

Cases (each loop runs the same Python code; asyncio's own loop is the baseline; every loop gets
the same warm-up run and the same number of timed runs, interleaved, median reported):

- ``call_soon``: one callback schedules ``n`` no-op callbacks, then the loop runs them all.
- ``timers``: the same with ``call_later(0, ...)``.
- ``tasks``: one coroutine creates and awaits ``n`` trivial tasks, one after another.
- echo: a server (``asyncio.Protocol``, or asyncio streams through ``asyncio.start_server``, or
  plait's own streams through ``plait.aio.start_server`` on plait's loop) in a child
  process running the loop under test; a native (Rust, mio) client, ``plait-loadgen`` (the
  workspace crate in ``benchmarks/loadgen`` of the repository, not in the wheel: ``make loadgen``
  builds it), keeps one message in flight on each of 10 connections over loopback and reports the
  seconds from its first send to its last echo. Reported: round trips per second
  and the server's CPU time per round trip (``getrusage`` in the server process; the median of
  the timed runs, the warm-up left out), because on 2 cores the client competes with the server
  for CPU. The client is found through ``PLAIT_LOADGEN`` (a path), then in the repository's
  ``target/release``, then on ``PATH``; without it the echo cases are skipped with a line saying
  why (a client written in Python would measure itself, not the servers).

uvloop and rloop come from the ``bench`` extra (``make bench`` installs them); a peer that cannot
be imported is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import resource
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import plait.aio

from ._common import Bench, Impl, clock, header

__all__ = ["PEERS", "TITLE", "run"]

TITLE = "plait.aio event loop vs asyncio, uvloop, rloop"
PEERS = ("uvloop", "rloop")
PLAIT_STREAMS = "plait.aio.start_server"


def loop_factories(bench: Bench | None = None) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """asyncio's, each peer's that imports (``bench`` names the others) and plait's."""
    out: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    for name in PEERS:
        mod: Any
        if bench is not None:
            mod = bench.peer(name)
        else:
            try:
                mod = importlib.import_module(name)
            except ImportError:
                mod = None
        if mod is not None:
            out[name] = mod.new_event_loop
    out["plait.aio"] = plait.aio.new_event_loop
    return out


def kilo(n: int) -> str:
    """``300k``, ``2k``."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


# --- callbacks, timers, tasks (in this process) ------------------------------------------------


def run_call_soon(factory: Callable[[], asyncio.AbstractEventLoop], n: int) -> float:
    loop = factory()
    try:

        def noop() -> None:
            pass

        def start() -> None:
            cs = loop.call_soon
            for _ in range(n):
                cs(noop)
            cs(loop.stop)

        loop.call_soon(start)
        t0 = clock()
        loop.run_forever()
        return clock() - t0
    finally:
        loop.close()


def run_timers(factory: Callable[[], asyncio.AbstractEventLoop], n: int) -> float:
    loop = factory()
    try:

        def noop() -> None:
            pass

        done = loop.create_future()

        def start() -> None:
            cl = loop.call_later
            for _ in range(n):
                cl(0, noop)
            cl(0, done.set_result, None)

        loop.call_soon(start)
        t0 = clock()
        loop.run_until_complete(done)
        return clock() - t0
    finally:
        loop.close()


def run_tasks(factory: Callable[[], asyncio.AbstractEventLoop], n: int) -> float:
    loop = factory()
    try:

        async def leaf() -> int:
            return 1

        async def main() -> None:
            create = loop.create_task
            for _ in range(n):
                await create(leaf())

        t0 = clock()
        loop.run_until_complete(main())
        return clock() - t0
    finally:
        loop.close()


# --- the native echo client (benchmarks/loadgen) -------------------------------------------------

LOADGEN = "plait-loadgen"
LOADGEN_ENV = "PLAIT_LOADGEN"


def find_loadgen() -> tuple[str | None, str]:
    """The echo client's path, or None and why: ``PLAIT_LOADGEN``, else the repository's
    ``target/release/plait-loadgen`` (a checkout where plait runs from ``python/``), else ``PATH``."""
    given = os.environ.get(LOADGEN_ENV)
    if given:
        if os.path.isfile(given) and os.access(given, os.X_OK):
            return given, ""
        return None, f"{LOADGEN_ENV}={given} is not an executable file"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    built = os.path.join(root, "target", "release", LOADGEN)
    if os.path.isfile(built) and os.access(built, os.X_OK):
        return built, ""
    found = shutil.which(LOADGEN)
    if found:
        return found, ""
    return None, (
        f"the native echo client {LOADGEN} was not found (it is not in the wheel: `make loadgen` builds "
        f"it in a checkout of the repository; or set {LOADGEN_ENV}=/path/to/{LOADGEN})"
    )


def echo_load(loadgen: str, port: int, conns: int, size: int, round_trips: int) -> tuple[int, float]:
    """Run ``plait-loadgen`` against ``127.0.0.1:port``: (round trips done, seconds it timed)."""
    out = subprocess.run(
        [loadgen, "127.0.0.1", str(port), str(conns), str(size), str(round_trips), "120"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    done, seconds = out.split()
    return int(done), float(seconds)


# --- echo servers (child processes) ------------------------------------------------------------


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def serve(impl: str, kind: str) -> None:
    """Child process: serve echo on a loopback port, print it, and answer ``cpu`` lines on stdin
    with this process's CPU seconds; exit at end of input."""
    factory = loop_factories()[impl]
    loop = factory()

    async def start() -> Any:
        if kind == "protocol":
            return await loop.create_server(EchoProtocol, "127.0.0.1", 0)
        if kind == "plait-streams":
            return await plait.aio.start_server(echo_stream, "127.0.0.1", 0)
        return await asyncio.start_server(echo_stream, "127.0.0.1", 0)

    server = loop.run_until_complete(start())
    print(server.sockets[0].getsockname()[1], flush=True)

    def control() -> None:
        for _ in sys.stdin:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            print(ru.ru_utime + ru.ru_stime, flush=True)
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=control, daemon=True)
    t.start()
    loop.run_forever()
    server.close()
    loop.close()


#: The child's command line: the server of ``serve`` (``python -c``, so the child does not run the
#: parent's ``__main__``).
SERVE = "import sys; from plait.bench.aio import serve; serve(*sys.argv[1:])"


class EchoServer:
    def __init__(self, impl: str, kind: str, loadgen: str) -> None:
        self.loadgen = loadgen
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, impl, kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.port = int(self.proc.stdout.readline())
        self.cpu_per_rt: list[float] = []

    def cpu(self) -> float:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write("cpu\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def run(self, size: int, n: int) -> float:
        c0 = self.cpu()
        done, seconds = echo_load(self.loadgen, self.port, 10, size, n)
        self.cpu_per_rt.append((self.cpu() - c0) / done)
        return seconds

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def run(args: argparse.Namespace) -> Bench:
    """Every case, printed as it runs; the results and targets are in the returned ``Bench``."""
    q = args.quick
    n_soon = 20_000 if q else 300_000
    n_timers = 10_000 if q else 200_000
    n_tasks = 5_000 if q else 100_000
    n_echo = 2_000 if q else 60_000
    n_echo_big = 500 if q else 10_000
    bench = Bench(args)
    factories = loop_factories(bench)
    loadgen, why = find_loadgen()
    if loadgen is None:
        bench.skip("echo", why, kind="case")
    header(
        TITLE,
        args,
        sizes=[
            f"call_soon {n_soon}",
            f"timers {n_timers}",
            f"tasks {n_tasks}",
            f"echo: 10 connections, {n_echo} round trips of 1 KiB, {n_echo_big} of 64 KiB",
        ],
        notes=[
            "echo: server in a child process, native (Rust) client plait-loadgen; cpu/rt = server CPU"
            if loadgen
            else "echo: skipped (plait-loadgen not found)"
        ],
        packages=PEERS,
    )

    def impls(fn: Callable[[Callable[[], asyncio.AbstractEventLoop], int], float], n: int) -> list[Impl]:
        return [Impl(name, lambda f=f: fn(f, n)) for name, f in factories.items()]

    results: dict[str, dict[str, Any]] = {}
    bench.section("scheduling")
    results["call_soon"] = bench.compare(
        f"call_soon + run ({kilo(n_soon)} callbacks)", n_soon, "callbacks", impls(run_call_soon, n_soon)
    )
    results["timers"] = bench.compare(
        f"call_later(0) + run ({kilo(n_timers)} timers)", n_timers, "timers", impls(run_timers, n_timers)
    )
    results["tasks"] = bench.compare(
        f"create_task + await ({kilo(n_tasks)} tasks)", n_tasks, "tasks", impls(run_tasks, n_tasks)
    )

    # An echo run takes seconds and its servers are up for the whole case: fewer runs, the same
    # for every loop.
    echo_repeats = max(3, args.repeats - 2)
    cpu: dict[tuple[str, str], float] = {}
    echo_cases = (
        ("echo Protocol 1 KiB", "protocol", 1024, n_echo),
        ("echo Protocol 64 KiB", "protocol", 65536, n_echo_big),
        ("echo streams (start_server) 1 KiB", "streams", 1024, n_echo),
    )
    for label, kind, size, n in echo_cases if loadgen else ():
        bench.section(label)
        servers = {name: EchoServer(name, kind, loadgen) for name in factories}
        if kind == "streams":
            servers[PLAIT_STREAMS] = EchoServer("plait.aio", "plait-streams", loadgen)
        try:
            res = bench.compare(
                label,
                n,
                "round trips",
                [Impl(name, lambda s=s, size=size, n=n: s.run(size, n)) for name, s in servers.items()],
                repeats=echo_repeats,
            )
        finally:
            for s in servers.values():
                s.close()
        results[label] = res
        for name, s in servers.items():
            timed_runs = sorted(s.cpu_per_rt[-res[name].runs :])  # the warm-up run left out
            per = timed_runs[len(timed_runs) // 2]
            cpu[(label, name)] = per
            print(f"    {name:<12} server CPU per round trip {per * 1e6:6.1f} us")

    def ratio(case: str, a: str, b: str) -> Any:
        r = results.get(case, {})
        if a not in r or b not in r:
            return None
        return Bench.relative(r[a], r[b])

    for case, peer, need in (
        ("call_soon", "rloop", 1.0),
        ("timers", "rloop", 1.0),
        ("tasks", "uvloop", 1.3),
        ("echo Protocol 1 KiB", "uvloop", 1.0),
        ("echo Protocol 1 KiB", "rloop", 1.0),
        ("echo Protocol 64 KiB", "uvloop", 1.0),
        ("echo Protocol 64 KiB", "rloop", 1.0),
        ("echo streams (start_server) 1 KiB", "uvloop", 1.15),
        ("echo streams (start_server) 1 KiB", "rloop", 1.05),
    ):
        bench.target(f"{case}: plait.aio / {peer}", need, ratio(case, "plait.aio", peer))
    bench.target(
        "echo streams 1 KiB: plait.aio.start_server / uvloop + asyncio.start_server",
        1.4,
        ratio("echo streams (start_server) 1 KiB", PLAIT_STREAMS, "uvloop"),
    )
    bench.summary()
    if cpu:
        print()
        print("server CPU per round trip (lower is better):")
        for (label, name), per in cpu.items():
            print(f"  {label:<36} {name:<12} {per * 1e6:6.1f} us")
    return bench
