"""Draft (to fold into benchmarks/green.py): plait.green's StreamServer against gevent's, same run.

Run::

    .venv/bin/python benchmarks/_green_echo_draft.py            # full sizes
    .venv/bin/python benchmarks/_green_echo_draft.py --quick    # tiny sizes: a smoke test

Case: an echo server, ``StreamServer(("127.0.0.1", 0), handle)`` whose ``handle(sock, address)``
loops ``sock.recv(65536)`` / ``sock.sendall(data)``, runs in a child process (plait.green's, or
gevent's with the same handler; each with its default ``spawn``). The native client
``plait-loadgen`` (benchmarks/loadgen; the binary built by ``benchmarks/aio.py``, or
``$PLAIT_LOADGEN``) keeps one 1 KiB message in flight on each of 10 connections over loopback
and reports the seconds from its first send to its last echo. Reported: round trips per second
(median of the timed runs, interleaved, after one warm-up run each) and the server's CPU time
per round trip, since on 2 cores the client competes with the server for CPU. gevent is the
baseline (ratio 1.00).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from typing import Any

from _common import Bench, Impl, header, parse_args

IMPLS = ("gevent", "plait.green")


def find_loadgen() -> str:
    """The plait-loadgen binary: ``$PLAIT_LOADGEN``, the workspace's release build, or built by
    ``benchmarks/aio.py``'s helper (cargo)."""
    given = os.environ.get("PLAIT_LOADGEN")
    if given:
        return given
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, "..", "target", "release", "plait-loadgen")
    if os.path.exists(built):
        return os.path.abspath(built)
    from aio import build_loadgen

    return build_loadgen()


def echo_load(loadgen: str, port: int, conns: int, size: int, round_trips: int) -> tuple[int, float]:
    out = subprocess.run(
        [loadgen, "127.0.0.1", str(port), str(conns), str(size), str(round_trips), "120"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    done, seconds = out.split()
    return int(done), float(seconds)


def serve(impl: str) -> None:
    """Child process: an echo StreamServer on a loopback port (printed); answers ``cpu`` lines on
    stdin with this process's CPU seconds; exits at the end of its input."""
    if impl == "gevent":
        import gevent
        from gevent.server import StreamServer

        hub_sleep = gevent.sleep
    else:
        from plait import green
        from plait.green.server import StreamServer  # type: ignore[assignment]

        hub_sleep = green.sleep

    def handle(sock: Any, address: Any) -> None:
        recv, sendall = sock.recv, sock.sendall
        while data := recv(65536):
            sendall(data)

    server = StreamServer(("127.0.0.1", 0), handle)
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


class EchoServer:
    def __init__(self, impl: str, loadgen: str) -> None:
        self.loadgen = loadgen
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", impl], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
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
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
        return
    args = parse_args(__doc__ or "")
    n_echo = 2_000 if args.quick else 60_000
    header(
        "plait.green StreamServer vs gevent StreamServer",
        args,
        sizes=[f"echo: 10 connections, {n_echo} round trips of 1 KiB"],
        notes=["server in a child process, native (Rust) client plait-loadgen; cpu/rt = server CPU"],
    )
    loadgen = find_loadgen()
    bench = Bench(args)
    label = "StreamServer echo 1 KiB"
    bench.section(label)
    servers = {name: EchoServer(name, loadgen) for name in IMPLS}
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
        print(f"    {name:<12} server CPU per round trip {timed_runs[len(timed_runs) // 2] * 1e6:6.1f} us")
    bench.target(f"{label}: plait.green / gevent", 1.0, res.get("plait.green"))
    bench.summary()


if __name__ == "__main__":
    main()
