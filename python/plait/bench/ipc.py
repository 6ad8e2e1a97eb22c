"""plait.processes queues, locks and atomics against multiprocessing and faster-fifo, same run.

Run::

    plait bench ipc            # full sizes (a few minutes)
    plait bench ipc --quick    # tiny sizes: a smoke test

Queues: one producer process to one consumer (this process). The producer is a forked child
that stays up across runs and sends its list of messages on command; a timed run covers the
first message sent to the last one received, and the last message is checked after the clock
stops. The messages are built before any clock starts, the same list for every implementation.
The headline cases send what programs send: small dict records and small tuples, which every
implementation pickles. Messages that plait sends without pickle (ints, ``bytes``) are extra
cases labelled ``[fast path: ...]``. faster-fifo and plait get the same 1 MiB ring (faster-fifo's
default is 200 kB; more room only helps it); faster-fifo is optional (``make bench`` installs it)
and is skipped with a line saying so when it cannot be imported.

Pipes: the same one-way transfer between the two ends of a pipe.

Locks and atomics: this process and a forked child each do ``n`` operations on one shared
object, contending; the rate is operations per second over both. plait's lock-free
``AtomicInt`` is compared with the fastest correct peer, a ``multiprocessing.RawValue`` guarded
by one ``multiprocessing.Lock`` (``Value``'s own synchronized wrapper takes its lock again inside
every ``.value`` read and write: that common idiom is an extra line).

Every implementation of a case gets the same warm-up run and the same number of timed runs,
interleaved; the median is reported.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.connection
from collections.abc import Callable, Sequence
from typing import Any

import plait.processes as pp

from ._common import Bench, Impl, Result, clock, fast_path, header
from ._tasks import dict_records, ints, tuple_rows

__all__ = ["PEERS", "TITLE", "run"]

CAPACITY = 1 << 20
BATCH = 256
ctx = multiprocessing.get_context("fork")

Half = Callable[[Any], object]


class Pair:
    """A forked child running ``child(obj)`` on each command, while this process runs
    ``parent(obj)``; a run times both halves (from the command to the end of both), then calls
    ``check(obj, parent's result)``, untimed."""

    def __init__(
        self, obj: Any, child: Half, parent: Half, check: Callable[[Any, Any], None] | None = None
    ) -> None:
        self.obj, self.parent, self.check = obj, parent, check
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(theirs, obj, child), daemon=True)
        self.proc.start()
        theirs.close()

    def run(self) -> float:
        t0 = clock()
        self.conn.send(True)
        out = self.parent(self.obj)
        self.conn.recv()
        dt = clock() - t0
        if self.check is not None:
            self.check(self.obj, out)
        return dt

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join()
        self.conn.close()


def _serve(conn: multiprocessing.connection.Connection, obj: Any, child: Half) -> None:
    while conn.recv() is not None:
        child(obj)
        conn.send(True)


# -- queue halves: the producer gets its messages, the consumer their count; both built before ---


def put_each(msgs: Sequence[Any]) -> Half:
    def half(q: Any) -> None:
        put = q.put
        for m in msgs:
            put(m)

    return half


def get_each(n: int) -> Half:
    def half(q: Any) -> Any:
        get = q.get
        m = None
        for _ in range(n):
            m = get()
        return m

    return half


def put_batches(msgs: Sequence[Any]) -> Half:
    batches = [list(msgs[i : i + BATCH]) for i in range(0, len(msgs), BATCH)]

    def half(q: Any) -> None:
        put_many = q.put_many
        for batch in batches:
            put_many(batch)

    return half


def get_batches_plait(n: int) -> Half:
    def half(q: Any) -> Any:
        get_many = q.get_many
        got, batch = 0, []
        while got < n:
            batch = get_many(BATCH)
            got += len(batch)
        return batch[-1]

    return half


def get_batches_ff(n: int) -> Half:
    def half(q: Any) -> Any:
        get_many = q.get_many
        got, batch = 0, []
        while got < n:
            batch = get_many(max_messages_to_get=BATCH)
            got += len(batch)
        return batch[-1]

    return half


def pipe_send(msgs: Sequence[Any]) -> Half:
    def half(ends: Any) -> None:
        send = ends[0].send
        for m in msgs:
            send(m)

    return half


def pipe_recv(n: int) -> Half:
    def half(ends: Any) -> Any:
        recv = ends[1].recv
        m = None
        for _ in range(n):
            m = recv()
        return m

    return half


def pipe_send_bytes(payload: bytes, n: int) -> Half:
    def half(ends: Any) -> None:
        send = ends[0].send_bytes
        for _ in range(n):
            send(payload)

    return half


def pipe_recv_bytes(n: int) -> Half:
    def half(ends: Any) -> Any:
        recv = ends[1].recv_bytes
        m = None
        for _ in range(n):
            m = recv()
        return m

    return half


# -- lock and counter halves -----------------------------------------------------------------------


def lock_loop(n: int) -> Half:
    def half(lock: Any) -> None:
        for _ in range(n):
            with lock:
                pass

    return half


def raw_value_loop(n: int) -> Half:
    """The fastest correct multiprocessing counter: a RawValue and one Lock, taken once per
    increment (bound acquire/release)."""

    def half(obj: Any) -> None:
        raw, lock = obj
        acq, rel = lock.acquire, lock.release
        for _ in range(n):
            acq()
            raw.value += 1
            rel()

    return half


def value_loop(n: int) -> Half:
    """The common idiom: ``with v.get_lock(): v.value += 1`` (the wrapper's ``.value`` takes the
    same recursive lock again for the read and for the write)."""

    def half(v: Any) -> None:
        lock = v.get_lock()
        for _ in range(n):
            with lock:
                v.value += 1

    return half


def atomic_loop(n: int) -> Half:
    def half(a: Any) -> None:
        add = a.fetch_add
        for _ in range(n):
            add(1)

    return half


def counts_up(read: Callable[[Any], int], step: int) -> Callable[[Any, Any], None]:
    """A check that the shared counter (from 0) grew by exactly ``step`` in each run: no lost update."""
    runs = [0]

    def check(obj: Any, _: Any) -> None:
        runs[0] += 1
        assert read(obj) == runs[0] * step, (read(obj), runs[0], step)

    return check


def last_is(want: Any) -> Callable[[Any, Any], None]:
    def check(_: Any, got: Any) -> None:
        assert got == want, (got, want)

    return check


TITLE = "plait.processes IPC vs multiprocessing and faster-fifo"
PEERS = ("faster-fifo",)


def run(args: argparse.Namespace) -> Bench:
    """Every case, printed as it runs; the results and targets are in the returned ``Bench``."""
    quick = args.quick
    n_records = 5_000 if quick else 100_000
    n_ints = 20_000 if quick else 300_000
    n_big = 2_000 if quick else 30_000
    n_lock = 20_000 if quick else 300_000
    bench = Bench(args, label_width=44, name_width=50)
    faster_fifo = bench.peer("faster_fifo")
    header(
        TITLE,
        args,
        sizes=[
            f"records: {n_records:,} small dicts {{'id': int, 'name': str, 'score': float}}",
            f"tuples: {n_records:,} small tuples (int, str, float)",
            f"ints: {n_ints:,} ints (fast path)",
            f"large: {n_big:,} x 64 KiB bytes (fast path)",
            f"lock/counter: {n_lock:,} ops per process, 2 processes",
        ],
        notes=[
            *([] if faster_fifo else ["faster-fifo not importable: its lines are skipped"]),
            "start method fork for every implementation (the producer stays up across runs)",
            "messages are built before the clock starts; the last one received is checked after it stops",
            "plait sends int, float, str, None and bytes without pickle; every other message is pickled "
            "(protocol 5) by every implementation",
        ],
        packages=PEERS,
    )
    pairs: list[Pair] = []

    def impl(name: str, obj: Any, child: Half, parent: Half, check: Any = None, note: str = "") -> Impl:
        pair = Pair(obj, child, parent, check)
        pairs.append(pair)
        return Impl(name, pair.run, note=note)

    def ff_queue() -> Any:
        return faster_fifo.Queue(max_size_bytes=CAPACITY)

    def queue_case(label: str, msgs: list[Any]) -> dict[str, Result]:
        """One producer process -> this one, every queue, with and without batches."""
        n, check = len(msgs), last_is(msgs[-1])
        impls = [
            impl("multiprocessing.Queue", ctx.Queue(), put_each(msgs), get_each(n), check),
            impl("multiprocessing.SimpleQueue", ctx.SimpleQueue(), put_each(msgs), get_each(n), check),
        ]
        if faster_fifo is not None:
            impls.append(impl("faster_fifo.Queue put/get", ff_queue(), put_each(msgs), get_each(n), check))
            impls.append(
                impl(
                    f"faster_fifo put_many/get_many({BATCH})",
                    ff_queue(),
                    put_batches(msgs),
                    get_batches_ff(n),
                    check,
                )
            )
        impls.append(
            impl("plait Queue put/get", pp.Queue(capacity=CAPACITY), put_each(msgs), get_each(n), check)
        )
        impls.append(
            impl(
                f"plait put_many/get_many({BATCH})",
                pp.Queue(capacity=CAPACITY),
                put_batches(msgs),
                get_batches_plait(n),
                check,
            )
        )
        return bench.compare(label, n, "msgs", impls)

    try:
        bench.section("1. small dict records, one producer process -> one consumer")
        records = queue_case(f"{n_records:,} dict records", dict_records(n_records))

        bench.section("2. small tuples, one producer process -> one consumer")
        tuples = queue_case(f"{n_records:,} tuples", tuple_rows(n_records))

        bench.section(f"3. one int per message {fast_path('ints skip pickle in plait')}")
        small = queue_case(f"{n_ints:,} ints {fast_path('ints')}", ints(n_ints))

        bench.section(f"4. 64 KiB bytes messages {fast_path('bytes skip pickle in plait')}")
        payload = bytes(range(256)) * 256
        blobs = [payload] * n_big
        check = last_is(payload)
        impls = [impl("multiprocessing.Queue", ctx.Queue(), put_each(blobs), get_each(n_big), check)]
        if faster_fifo is not None:
            impls.append(
                impl("faster_fifo.Queue put/get", ff_queue(), put_each(blobs), get_each(n_big), check)
            )
        impls.append(
            impl("plait Queue put/get", pp.Queue(capacity=CAPACITY), put_each(blobs), get_each(n_big), check)
        )
        big = bench.compare(f"{n_big:,} x 64 KiB {fast_path('bytes')}", n_big, "msgs", impls)
        print(f"  (plait: {big['plait Queue put/get'].rate * 65536 / 1e9:.2f} GB/s)")

        bench.section("5. Pipe, one way: send in one process, recv in the other")
        recs = dict_records(n_records)
        pipes = bench.compare(
            f"Pipe, {n_records:,} dict records",
            n_records,
            "msgs",
            [
                impl(
                    "multiprocessing.Pipe send/recv",
                    ctx.Pipe(),
                    pipe_send(recs),
                    pipe_recv(n_records),
                    last_is(recs[-1]),
                ),
                impl(
                    "plait Pipe send/recv",
                    pp.Pipe(capacity=CAPACITY),
                    pipe_send(recs),
                    pipe_recv(n_records),
                    last_is(recs[-1]),
                ),
            ],
        )
        nums = ints(n_ints)
        bench.compare(
            f"Pipe, {n_ints:,} ints {fast_path('ints')}",
            n_ints,
            "msgs",
            [
                impl(
                    "multiprocessing.Pipe send/recv",
                    ctx.Pipe(),
                    pipe_send(nums),
                    pipe_recv(n_ints),
                    last_is(nums[-1]),
                ),
                impl(
                    "plait Pipe send/recv",
                    pp.Pipe(capacity=CAPACITY),
                    pipe_send(nums),
                    pipe_recv(n_ints),
                    last_is(nums[-1]),
                ),
            ],
        )
        pipes_big = bench.compare(
            f"Pipe, {n_big:,} x 64 KiB send_bytes",
            n_big,
            "msgs",
            [
                impl(
                    "multiprocessing.Pipe send_bytes/recv_bytes",
                    ctx.Pipe(),
                    pipe_send_bytes(payload, n_big),
                    pipe_recv_bytes(n_big),
                    check,
                ),
                impl(
                    "plait Pipe send_bytes/recv_bytes",
                    pp.Pipe(capacity=CAPACITY),
                    pipe_send_bytes(payload, n_big),
                    pipe_recv_bytes(n_big),
                    check,
                ),
            ],
        )

        bench.section("6. a lock contended by 2 processes: acquire + release")
        locks = bench.compare(
            "Lock acquire/release",
            2 * n_lock,
            "ops",
            [
                impl("multiprocessing.Lock", ctx.Lock(), lock_loop(n_lock), lock_loop(n_lock)),
                impl("plait Lock", pp.Lock(), lock_loop(n_lock), lock_loop(n_lock)),
            ],
        )

        bench.section(
            "7. a shared counter incremented by 2 processes: plait's lock-free AtomicInt vs the fastest "
            "correct multiprocessing counter, a RawValue guarded by one Lock"
        )
        step = 2 * n_lock
        counters = bench.compare(
            "counter += 1",
            2 * n_lock,
            "ops",
            [
                impl(
                    "mp.RawValue('q') + mp.Lock [fastest correct peer]",
                    (ctx.RawValue("q", 0), ctx.Lock()),
                    raw_value_loop(n_lock),
                    raw_value_loop(n_lock),
                    counts_up(lambda obj: obj[0].value, step),
                ),
                impl(
                    "multiprocessing.Value('q') with its lock",
                    ctx.Value("q", 0),
                    value_loop(n_lock),
                    value_loop(n_lock),
                    counts_up(lambda v: v.value, step),
                    note="common idiom: the lock is taken 3 times per increment",
                ),
                impl(
                    "plait AtomicInt.fetch_add",
                    pp.AtomicInt(),
                    atomic_loop(n_lock),
                    atomic_loop(n_lock),
                    counts_up(lambda a: a.load(), step),
                ),
            ],
        )
    finally:
        for pair in pairs:
            pair.close()

    rel = Bench.relative
    for res, what in ((records, "dict records"), (tuples, "tuples"), (small, f"ints {fast_path('ints')}")):
        plait_one = res["plait Queue put/get"]
        bench.target(f"{what} vs multiprocessing.Queue", 5, plait_one)
        if faster_fifo is not None:
            bench.target(
                f"{what} vs faster-fifo put/get", 3, rel(plait_one, res["faster_fifo.Queue put/get"])
            )
            bench.target(
                f"{what}, put_many/get_many vs faster-fifo's",
                3,
                rel(res[f"plait put_many/get_many({BATCH})"], res[f"faster_fifo put_many/get_many({BATCH})"]),
            )
        else:
            bench.target(f"{what} vs faster-fifo put/get", 3, None, detail="faster-fifo not installed")
    if faster_fifo is not None:
        bench.target(
            f"64 KiB messages vs faster-fifo {fast_path('bytes')}",
            1.5,
            rel(big["plait Queue put/get"], big["faster_fifo.Queue put/get"]),
        )
    else:
        bench.target("64 KiB messages vs faster-fifo", 1.5, None, detail="faster-fifo not installed")
    bench.target("Pipe, dict records vs multiprocessing.Pipe", 1, pipes["plait Pipe send/recv"])
    bench.target("Pipe, 64 KiB vs multiprocessing.Pipe", 1, pipes_big["plait Pipe send_bytes/recv_bytes"])
    bench.target("Lock hand-off vs multiprocessing.Lock", 1, locks["plait Lock"])
    bench.target("AtomicInt.fetch_add vs mp.RawValue + mp.Lock", 1, counters["plait AtomicInt.fetch_add"])
    bench.summary()
    return bench
