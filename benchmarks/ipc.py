"""plait.processes queues, locks and atomics against multiprocessing and faster-fifo, same run.

Run::

    .venv/bin/python benchmarks/ipc.py            # full sizes (about a minute)
    .venv/bin/python benchmarks/ipc.py --quick    # tiny sizes: a smoke test

Queues: one producer process to one consumer (this process). The producer is a forked child
that stays up across runs and produces ``n`` messages on command; a timed run covers the first
message sent to the last one received. Messages are ints (small case) or one 64 KiB ``bytes``
object (large case). faster-fifo and plait get the same 1 MiB ring (faster-fifo's default is
200 kB; more room only helps it); faster-fifo is optional (``make bench`` installs it) and is
skipped with a line saying so when it cannot be imported.

Pipes: the same one-way transfer between the two ends of a pipe.

Locks and atomics: this process and a forked child each do ``n`` operations on one shared
object, contending; the rate is operations per second over both.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.connection
from collections.abc import Callable
from typing import Any

from _common import Bench, Impl, clock, header, parse_args

import plait.processes as pp

CAPACITY = 1 << 20
BATCH = 256
ctx = multiprocessing.get_context("fork")


class Pair:
    """A forked child running ``child(obj, n)`` on each command, while this process runs
    ``parent(obj, n)``; a run times both halves (from the command to the end of both)."""

    def __init__(self, obj: Any, child: Callable[[Any, int], object], parent: Callable[[Any, int], object]):
        self.obj, self.parent = obj, parent
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(theirs, obj, child), daemon=True)
        self.proc.start()
        theirs.close()

    def run(self, n: int) -> float:
        t0 = clock()
        self.conn.send(n)
        self.parent(self.obj, n)
        self.conn.recv()
        return clock() - t0

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join()
        self.conn.close()


def _serve(
    conn: multiprocessing.connection.Connection, obj: Any, child: Callable[[Any, int], object]
) -> None:
    while (n := conn.recv()) is not None:
        child(obj, n)
        conn.send(True)


# -- queue halves ------------------------------------------------------------------------------


def put_each(q: Any, n: int, item: Any = 0) -> None:
    put = q.put
    for i in range(n):
        put(i if item == 0 else item)


def get_each(q: Any, n: int) -> None:
    get = q.get
    for _ in range(n):
        get()


def put_batches(q: Any, n: int, item: Any = 0) -> None:
    for i in range(0, n, BATCH):
        q.put_many(list(range(i, min(i + BATCH, n))) if item == 0 else [item] * min(BATCH, n - i))


def get_batches_plait(q: Any, n: int) -> None:
    got = 0
    while got < n:
        got += len(q.get_many(BATCH))


def get_batches_ff(q: Any, n: int) -> None:
    got = 0
    while got < n:
        got += len(q.get_many(max_messages_to_get=BATCH))


def bytes_half(fn: Callable[..., None], payload: bytes) -> Callable[[Any, int], None]:
    return lambda q, n: fn(q, n, payload)


def pipe_send(ends: Any, n: int) -> None:
    send = ends[0].send
    for i in range(n):
        send(i)


def pipe_recv(ends: Any, n: int) -> None:
    recv = ends[1].recv
    for _ in range(n):
        recv()


def pipe_send_bytes(payload: bytes) -> Callable[[Any, int], None]:
    def run(ends: Any, n: int) -> None:
        send = ends[0].send_bytes
        for _ in range(n):
            send(payload)

    return run


def pipe_recv_bytes(ends: Any, n: int) -> None:
    recv = ends[1].recv_bytes
    for _ in range(n):
        recv()


# -- lock and atomic halves --------------------------------------------------------------------


def lock_loop(lock: Any, n: int) -> None:
    for _ in range(n):
        with lock:
            pass


def value_loop(v: Any, n: int) -> None:
    lock = v.get_lock()
    for _ in range(n):
        with lock:
            v.value += 1


def atomic_loop(a: Any, n: int) -> None:
    add = a.fetch_add
    for _ in range(n):
        add(1)


def main() -> int:
    args = parse_args(__doc__ or "")
    quick = args.quick
    n_small = 20_000 if quick else 300_000
    n_big = 2_000 if quick else 30_000
    n_lock = 20_000 if quick else 300_000
    try:
        from importlib.metadata import version

        import faster_fifo

        ff_note = f"faster-fifo {version('faster-fifo')}"
    except ImportError as exc:  # pragma: no cover - depends on the environment
        faster_fifo = None
        ff_note = f"faster-fifo not importable ({exc}): skipped"
    header(
        "plait.processes IPC vs multiprocessing and faster-fifo",
        args,
        sizes=[
            f"small: {n_small:,} ints",
            f"large: {n_big:,} x 64 KiB bytes",
            f"lock/atomic: {n_lock:,} ops per process, 2 processes",
        ],
        notes=[ff_note, "start method fork for every implementation (the producer stays up across runs)"],
    )
    bench = Bench(args, name_width=40)
    pairs: list[Pair] = []

    def impl(
        name: str,
        obj: Any,
        child: Callable[[Any, int], object],
        parent: Callable[[Any, int], object],
        n: int,
        note: str = "",
    ) -> Impl:
        pair = Pair(obj, child, parent)
        pairs.append(pair)
        return Impl(name, lambda: pair.run(n), note=note)

    def ff_queue() -> Any:
        return faster_fifo.Queue(max_size_bytes=CAPACITY)

    def vs(res: Any, base: Any) -> Any:
        return dataclasses.replace(res, ratio=res.rate / base.rate)

    try:
        bench.section("1. small messages: one int per message, one producer process -> one consumer")
        impls = [
            impl("multiprocessing.Queue", ctx.Queue(), put_each, get_each, n_small),
            impl("multiprocessing.SimpleQueue", ctx.SimpleQueue(), put_each, get_each, n_small),
        ]
        if faster_fifo is not None:
            impls.append(impl("faster_fifo.Queue put/get", ff_queue(), put_each, get_each, n_small))
            impls.append(
                impl(
                    f"faster_fifo put_many/get_many({BATCH})",
                    ff_queue(),
                    put_batches,
                    get_batches_ff,
                    n_small,
                )
            )
        impls.append(impl("plait Queue put/get", pp.Queue(capacity=CAPACITY), put_each, get_each, n_small))
        impls.append(
            impl(
                f"plait put_many/get_many({BATCH})",
                pp.Queue(capacity=CAPACITY),
                put_batches,
                get_batches_plait,
                n_small,
            )
        )
        small = bench.compare(f"{n_small:,} ints", n_small, "msgs", impls)

        bench.section("2. 64 KiB bytes messages, one producer process -> one consumer")
        payload = bytes(range(256)) * 256
        impls = [impl("multiprocessing.Queue", ctx.Queue(), bytes_half(put_each, payload), get_each, n_big)]
        if faster_fifo is not None:
            impls.append(
                impl("faster_fifo.Queue put/get", ff_queue(), bytes_half(put_each, payload), get_each, n_big)
            )
        impls.append(
            impl(
                "plait Queue put/get",
                pp.Queue(capacity=CAPACITY),
                bytes_half(put_each, payload),
                get_each,
                n_big,
            )
        )
        big = bench.compare(f"{n_big:,} x 64 KiB", n_big, "msgs", impls)
        print(f"  (plait: {big['plait Queue put/get'].rate * 65536 / 1e9:.2f} GB/s)")

        bench.section("3. Pipe, one way: send in one process, recv in the other")
        pipes = bench.compare(
            f"{n_small:,} ints",
            n_small,
            "msgs",
            [
                impl("multiprocessing.Pipe send/recv", ctx.Pipe(), pipe_send, pipe_recv, n_small),
                impl("plait Pipe send/recv", pp.Pipe(capacity=CAPACITY), pipe_send, pipe_recv, n_small),
            ],
        )
        pipes_big = bench.compare(
            f"{n_big:,} x 64 KiB",
            n_big,
            "msgs",
            [
                impl(
                    "multiprocessing.Pipe send_bytes/recv_bytes",
                    ctx.Pipe(),
                    pipe_send_bytes(payload),
                    pipe_recv_bytes,
                    n_big,
                ),
                impl(
                    "plait Pipe send_bytes/recv_bytes",
                    pp.Pipe(capacity=CAPACITY),
                    pipe_send_bytes(payload),
                    pipe_recv_bytes,
                    n_big,
                ),
            ],
        )

        bench.section("4. a lock contended by 2 processes: acquire + release")
        locks = bench.compare(
            "Lock acquire/release",
            2 * n_lock,
            "ops",
            [
                impl("multiprocessing.Lock", ctx.Lock(), lock_loop, lock_loop, n_lock),
                impl("plait Lock", pp.Lock(), lock_loop, lock_loop, n_lock),
            ],
        )

        bench.section("5. a shared counter incremented by 2 processes")
        counters = bench.compare(
            "counter += 1",
            2 * n_lock,
            "ops",
            [
                impl(
                    "multiprocessing.Value('q') with its lock",
                    ctx.Value("q", 0),
                    value_loop,
                    value_loop,
                    n_lock,
                ),
                impl("plait AtomicInt.fetch_add", pp.AtomicInt(), atomic_loop, atomic_loop, n_lock),
            ],
        )
    finally:
        for pair in pairs:
            pair.close()

    plait_small = small["plait Queue put/get"]
    bench.target("small messages vs multiprocessing.Queue", 5, plait_small)
    if faster_fifo is not None:
        bench.target(
            "small messages vs faster-fifo put/get", 3, vs(plait_small, small["faster_fifo.Queue put/get"])
        )
        bench.target(
            "small, put_many/get_many vs faster-fifo's",
            3,
            vs(small[f"plait put_many/get_many({BATCH})"], small[f"faster_fifo put_many/get_many({BATCH})"]),
        )
        bench.target(
            "64 KiB messages vs faster-fifo",
            1.5,
            vs(big["plait Queue put/get"], big["faster_fifo.Queue put/get"]),
        )
    else:
        bench.target("small messages vs faster-fifo put/get", 3, None, detail="faster-fifo not installed")
        bench.target("64 KiB messages vs faster-fifo", 1.5, None, detail="faster-fifo not installed")
    bench.target("Pipe, small messages vs multiprocessing.Pipe", 1, pipes["plait Pipe send/recv"])
    bench.target("Pipe, 64 KiB vs multiprocessing.Pipe", 1, pipes_big["plait Pipe send_bytes/recv_bytes"])
    bench.target("Lock hand-off vs multiprocessing.Lock", 1, locks["plait Lock"])
    bench.target(
        "AtomicInt.fetch_add vs multiprocessing.Value + lock", 1, counters["plait AtomicInt.fetch_add"]
    )
    bench.summary()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
