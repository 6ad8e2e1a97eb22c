"""plait.threads against threading / queue / concurrent.futures, measured in the same run.

Run::

    plait bench threads            # full sizes (~1-2 minutes)
    plait bench threads --quick    # tiny sizes: a smoke test

Each case runs the same code shape for both implementations; only the class differs. Every
implementation of a case gets the same warm-up run, then the same number of timed runs
(``--repeats``), interleaved with its peer; the line shows the median rate and the ratio to the
stdlib line of the case. plait's deadlock detection is left at its default (``"raise"``) unless
a line says otherwise.

The pool cases pass what programs pass: lists of ints and of small dict records, built before the
clock starts; ``range`` input is an extra case labelled ``[fast path: range input]``.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from typing import Any

import plait.threads as pt

from ._common import Bench, Impl, Result, clock, fast_path, header

__all__ = ["PEERS", "TITLE", "run"]


def ident(x: Any) -> Any:
    return x


# -- case builders: each returns a run() -> seconds, the same code for stdlib and plait ----------


def queue_pingpong(make_queue: Callable[[], Any], n: int) -> Callable[[], float]:
    """A producer thread puts n ints then a sentinel; this thread gets until the sentinel."""

    def run() -> float:
        q = make_queue()
        put, get = q.put, q.get

        def producer() -> None:
            for i in range(n):
                put(i)
            put(None)

        t = threading.Thread(target=producer)
        t0 = clock()
        t.start()
        count = 0
        while get() is not None:
            count += 1
        dt = clock() - t0
        t.join()
        assert count == n, (count, n)
        return dt

    return run


def lock_acq_rel(lock: Any, n: int) -> Callable[[], float]:
    def run() -> float:
        acq, rel = lock.acquire, lock.release
        t0 = clock()
        for _ in repeat(None, n):
            acq()
            rel()
        return clock() - t0

    return run


def lock_with(lock: Any, n: int) -> Callable[[], float]:
    def run() -> float:
        t0 = clock()
        for _ in repeat(None, n):
            with lock:
                pass
        return clock() - t0

    return run


def with_detection(mode: str, run: Callable[[], float]) -> Callable[[], float]:
    """run() with plait's deadlock detection set to ``mode``, restored afterwards."""

    def wrapped() -> float:
        old = pt.get_deadlock_detection()
        pt.set_deadlock_detection(mode)
        try:
            return run()
        finally:
            pt.set_deadlock_detection(old)

    return wrapped


def run_threads(nthreads: int, body: Callable[[], None]) -> float:
    """Start nthreads running body, release them together, return seconds until all finish."""
    started: list[float] = []
    gate = threading.Barrier(nthreads, action=lambda: started.append(clock()))

    def worker() -> None:
        gate.wait()
        body()

    ts = [threading.Thread(target=worker) for _ in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return clock() - started[0]


def lock_contended(lock: Any, nthreads: int, per_thread: int) -> Callable[[], float]:
    def body() -> None:
        acq, rel = lock.acquire, lock.release
        for _ in repeat(None, per_thread):
            acq()
            rel()

    return lambda: run_threads(nthreads, body)


def pool_submit_result(pool: Any, n: int) -> Callable[[], float]:
    def run() -> float:
        submit = pool.submit
        t0 = clock()
        futs = [submit(ident, i) for i in range(n)]
        results = [f.result() for f in futs]
        dt = clock() - t0
        assert results == list(range(n))
        return dt

    return run


def pool_map(pool: Any, items: Any) -> Callable[[], float]:
    """``list(pool.map(ident, items))``; the results are checked after the clock stops."""
    n, last = len(items), items[-1]

    def run() -> float:
        t0 = clock()
        results = list(pool.map(ident, items))
        dt = clock() - t0
        assert len(results) == n and results[-1] == last
        return dt

    return run


def records(n: int) -> list[dict[str, Any]]:
    """``n`` small dict records, the shape of a row from a database or a JSON API."""
    return [{"id": i, "name": f"user{i}", "score": i * 0.5} for i in range(n)]


def event_pingpong(event_cls: Any, n: int) -> Callable[[], float]:
    def run() -> float:
        ping, pong = event_cls(), event_cls()

        def responder() -> None:
            wait, clear, answer = ping.wait, ping.clear, pong.set
            for _ in repeat(None, n):
                wait()
                clear()
                answer()

        t = threading.Thread(target=responder)
        t.start()
        send, wait, clear = ping.set, pong.wait, pong.clear
        t0 = clock()
        for _ in repeat(None, n):
            send()
            wait()
            clear()
        dt = clock() - t0
        t.join()
        return dt

    return run


def condition_pingpong(cond_cls: Any, n: int) -> Callable[[], float]:
    def run() -> float:
        cond = cond_cls()
        turn = [0]  # 0: main's turn, 1: the responder's

        def responder() -> None:
            with cond:
                for _ in repeat(None, n):
                    while turn[0] != 1:
                        cond.wait()
                    turn[0] = 0
                    cond.notify()

        t = threading.Thread(target=responder)
        t.start()
        t0 = clock()
        with cond:
            for _ in repeat(None, n):
                turn[0] = 1
                cond.notify()
                while turn[0] != 0:
                    cond.wait()
        dt = clock() - t0
        t.join()
        return dt

    return run


def locked_counter(nthreads: int, per_thread: int) -> Callable[[], float]:
    """The fastest correct stdlib shared counter: an int guarded by a threading.Lock, taken with
    bound ``acquire``/``release`` (faster than ``with lock:``).

    Not used, and why: a bare ``n += 1`` is a load, an add and a store, and nothing guarantees
    that no other thread runs between them (CPython may switch threads between bytecodes; a
    free-threaded build runs them in parallel): updates can be lost. ``next(itertools.count())``
    happens to be one step under the GIL, but it only adds 1, cannot read the value without
    advancing it, has no other delta and no compare-and-swap, and its atomicity is an
    implementation detail, documented nowhere. AtomicInt offers all of those, so its peer is the
    lock-protected int.
    """

    def run() -> float:
        lock = threading.Lock()
        box = [0]

        def body() -> None:
            acq, rel = lock.acquire, lock.release
            for _ in repeat(None, per_thread):
                acq()
                box[0] += 1
                rel()

        dt = run_threads(nthreads, body)
        assert box[0] == nthreads * per_thread
        return dt

    return run


def atomic_counter(nthreads: int, per_thread: int) -> Callable[[], float]:
    def run() -> float:
        counter = pt.AtomicInt(0)

        def body() -> None:
            fetch_add = counter.fetch_add
            for _ in repeat(None, per_thread):
                fetch_add(1)

        dt = run_threads(nthreads, body)
        assert counter.load() == nthreads * per_thread
        return dt

    return run


def queue_mpmc(make_queue: Callable[[], Any], pairs: int, per_producer: int) -> Callable[[], float]:
    """``pairs`` producer threads each put ``per_producer`` ints; ``pairs`` consumer threads get
    them all (each stops at its sentinel); every item is checked to arrive exactly once."""

    def run() -> float:
        q = make_queue()
        put, get = q.put, q.get
        sums = [0] * pairs

        def producer() -> None:
            for i in range(per_producer):
                put(i)

        def consumer(slot: int) -> None:
            total = 0
            while (v := get()) is not None:
                total += v
            sums[slot] = total

        producers = [threading.Thread(target=producer) for _ in range(pairs)]
        consumers = [threading.Thread(target=consumer, args=(i,)) for i in range(pairs)]
        t0 = clock()
        for t in consumers + producers:
            t.start()
        for t in producers:
            t.join()
        for _ in consumers:
            put(None)
        for t in consumers:
            t.join()
        dt = clock() - t0
        assert sum(sums) == pairs * per_producer * (per_producer - 1) // 2
        return dt

    return run


def spin(n: int) -> int:
    """CPU-bound pure Python: holds the GIL for all its run on a GIL build."""
    s = 0
    for i in range(n):
        s += i * i
    return s


def pool_map_cpu(make_pool: Callable[[], Any], items: list[int]) -> Callable[[], float]:
    """``pool.map(spin, items)``, the pool made (and its threads started) before the clock."""

    def run() -> float:
        with make_pool() as pool:
            pool.submit(int).result()  # the workers are up
            t0 = clock()
            out = list(pool.map(spin, items))
            dt = clock() - t0
        assert out[0] == spin(items[0])
        return dt

    return run


def kilo(n: int) -> str:
    """``200k``, ``1M``."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


# -- the benchmark --------------------------------------------------------------------------------


TITLE = "plait.threads vs threading / queue / concurrent.futures"
PEERS: tuple[str, ...] = ()  # the stdlib only


def run(args: argparse.Namespace) -> Bench:
    """Every case, printed as it runs; the results and targets are in the returned ``Bench``."""
    quick = args.quick
    N_QUEUE = 20_000 if quick else 200_000
    N_LOCK = 100_000 if quick else 1_000_000
    N_SEM = 20_000 if quick else 200_000
    PER_THREAD = 25_000 if quick else 250_000
    N_SUBMIT = 10_000 if quick else 100_000
    # ThreadPoolExecutor.map makes a future per item (~15-20 us each here): at 200k items a run
    # takes ~4 s, and every implementation gets the same warm-up run and repeats.
    N_MAP = 20_000 if quick else 200_000
    N_PING = 2_000 if quick else 20_000
    N_ATOMIC = 100_000 if quick else 1_000_000
    THREADS = 4
    WORKERS = 4
    PER_THREAD_SCALE = 40_000 if quick else 400_000  # total pairs/increments, split between threads
    N_MPMC = 20_000 if quick else 200_000
    N_CPU, SPIN = (16, 20_000) if quick else (64, 200_000)

    header(
        TITLE,
        args,
        sizes=[
            f"queue {N_QUEUE:,} items",
            f"lock {N_LOCK:,} acquire+release pairs",
            f"contended {THREADS} threads x {PER_THREAD:,}",
            f"pool submit {N_SUBMIT:,} ints / map over lists of {N_MAP:,} ints and dict records, "
            f"{WORKERS} workers",
            f"ping-pong {N_PING:,} round trips",
            f"semaphore {N_SEM:,} pairs",
            f"atomic {N_ATOMIC:,} increments",
            f"scaling: {PER_THREAD_SCALE:,} lock pairs or increments and {N_MPMC:,} MPMC items split "
            f"between the threads, map of {N_CPU} x spin({SPIN:,})",
        ],
        notes=[
            f"plait deadlock detection: {pt.get_deadlock_detection()!r} (the default) "
            "unless a line says otherwise",
            "task function is `def ident(x): return x`; inputs are built before the clock starts; "
            "results are checked after each timed run",
            "AtomicInt's peer is the fastest correct stdlib counter, an int guarded by threading.Lock "
            "(see locked_counter in plait/bench/threads.py for why not itertools.count or a bare +=)",
        ],
    )
    bench = Bench(args, label_width=48, name_width=44)

    # 1. queues
    bench.section("1. queue: producer thread -> consumer thread, ints then a None sentinel")
    label = f"queue ping-pong ({N_QUEUE // 1000}k items, maxsize 1024)"
    r = bench.compare(
        label,
        N_QUEUE,
        "items",
        [
            Impl("queue.Queue", queue_pingpong(lambda: queue.Queue(1024), N_QUEUE)),
            Impl("plait.threads.Queue", queue_pingpong(lambda: pt.Queue(1024), N_QUEUE)),
        ],
    )
    r_queue = r["plait.threads.Queue"]
    bench.compare(
        f"SimpleQueue ping-pong ({N_QUEUE // 1000}k items)",
        N_QUEUE,
        "items",
        [
            Impl("queue.SimpleQueue", queue_pingpong(queue.SimpleQueue, N_QUEUE)),
            Impl("plait.threads.SimpleQueue", queue_pingpong(pt.SimpleQueue, N_QUEUE)),
        ],
    )

    # 2. uncontended locks
    bench.section("2. uncontended lock, one thread")
    k = kilo(N_LOCK)
    r = bench.compare(
        f"Lock acquire()+release() ({k} pairs)",
        N_LOCK,
        "pairs",
        [
            Impl("threading.Lock", lock_acq_rel(threading.Lock(), N_LOCK)),
            Impl("plait.threads.Lock", lock_acq_rel(pt.Lock(), N_LOCK)),
            Impl(
                "plait.threads.Lock [detection off]",
                with_detection("off", lock_acq_rel(pt.Lock(), N_LOCK)),
                note="informational",
            ),
        ],
    )
    r_lock = r["plait.threads.Lock"]
    bench.compare(
        f"Lock `with lock:` ({k} pairs)",
        N_LOCK,
        "pairs",
        [
            Impl("threading.Lock", lock_with(threading.Lock(), N_LOCK)),
            Impl("plait.threads.Lock", lock_with(pt.Lock(), N_LOCK)),
        ],
    )
    bench.compare(
        f"RLock acquire()+release() ({k} pairs)",
        N_LOCK,
        "pairs",
        [
            Impl("threading.RLock", lock_acq_rel(threading.RLock(), N_LOCK)),
            Impl("plait.threads.RLock", lock_acq_rel(pt.RLock(), N_LOCK)),
        ],
    )
    bench.compare(
        f"RLock `with lock:` ({k} pairs)",
        N_LOCK,
        "pairs",
        [
            Impl("threading.RLock", lock_with(threading.RLock(), N_LOCK)),
            Impl("plait.threads.RLock", lock_with(pt.RLock(), N_LOCK)),
        ],
    )

    # 3. contended lock
    bench.section(f"3. contended lock: {THREADS} threads, one lock, total pairs/s")
    r = bench.compare(
        f"Lock contended ({THREADS} thr x {PER_THREAD // 1000}k pairs)",
        THREADS * PER_THREAD,
        "pairs",
        [
            Impl("threading.Lock", lock_contended(threading.Lock(), THREADS, PER_THREAD)),
            Impl("plait.threads.Lock", lock_contended(pt.Lock(), THREADS, PER_THREAD)),
        ],
    )
    r_contended = r["plait.threads.Lock"]

    # 4 + 5. thread pools
    bench.section(f"4-5. thread pool, max_workers={WORKERS}")
    with ThreadPoolExecutor(max_workers=WORKERS) as tpe, pt.ThreadPool(max_workers=WORKERS) as tp:
        r = bench.compare(
            f"submit+result ({N_SUBMIT // 1000}k tasks)",
            N_SUBMIT,
            "tasks",
            [
                Impl("ThreadPoolExecutor.submit", pool_submit_result(tpe, N_SUBMIT)),
                Impl("plait.threads.ThreadPool.submit", pool_submit_result(tp, N_SUBMIT)),
            ],
        )
        r_submit = r["plait.threads.ThreadPool.submit"]
        n_map = kilo(N_MAP)
        ints, recs = list(range(N_MAP)), records(N_MAP)
        r = bench.compare(
            f"map, list of {n_map} ints",
            N_MAP,
            "items",
            [
                Impl("ThreadPoolExecutor.map", pool_map(tpe, ints)),
                Impl("plait.threads.ThreadPool.map", pool_map(tp, ints)),
            ],
        )
        r_map = r["plait.threads.ThreadPool.map"]
        r = bench.compare(
            f"map, {n_map} dict records",
            N_MAP,
            "items",
            [
                Impl("ThreadPoolExecutor.map", pool_map(tpe, recs)),
                Impl("plait.threads.ThreadPool.map", pool_map(tp, recs)),
            ],
        )
        r_map_records = r["plait.threads.ThreadPool.map"]
        bench.compare(
            f"map, range({n_map}) {fast_path('range input')}",
            N_MAP,
            "items",
            [
                Impl("ThreadPoolExecutor.map", pool_map(tpe, range(N_MAP))),
                Impl("plait.threads.ThreadPool.map", pool_map(tp, range(N_MAP))),
            ],
        )

    # 6. other primitives (informational)
    bench.section("6. other primitives (informational)")
    bench.compare(
        f"Event set/wait ping-pong ({N_PING // 1000}k round trips)",
        N_PING,
        "trips",
        [
            Impl("threading.Event", event_pingpong(threading.Event, N_PING)),
            Impl("plait.threads.Event", event_pingpong(pt.Event, N_PING)),
        ],
    )
    bench.compare(
        f"Condition notify/wait ping-pong ({N_PING // 1000}k trips)",
        N_PING,
        "trips",
        [
            Impl("threading.Condition", condition_pingpong(threading.Condition, N_PING)),
            Impl("plait.threads.Condition", condition_pingpong(pt.Condition, N_PING)),
        ],
    )
    bench.compare(
        f"Semaphore(1) acquire()+release() ({N_SEM // 1000}k pairs)",
        N_SEM,
        "pairs",
        [
            Impl("threading.Semaphore", lock_acq_rel(threading.Semaphore(1), N_SEM)),
            Impl("plait.threads.Semaphore", lock_acq_rel(pt.Semaphore(1), N_SEM)),
        ],
    )

    # 7. atomics (informational)
    bench.section(
        "7. shared counter: AtomicInt.fetch_add(1) vs the fastest correct stdlib peer, an int guarded "
        "by threading.Lock: `acq(); n += 1; rel()` (informational)"
    )
    k = kilo(N_ATOMIC)
    bench.compare(
        f"counter, 1 thread ({k} increments)",
        N_ATOMIC,
        "incs",
        [
            Impl("int + threading.Lock [fastest correct peer]", locked_counter(1, N_ATOMIC)),
            Impl("plait.threads.AtomicInt", atomic_counter(1, N_ATOMIC)),
        ],
    )
    per = N_ATOMIC // THREADS
    bench.compare(
        f"counter, {THREADS} threads ({THREADS} x {per // 1000}k increments)",
        THREADS * per,
        "incs",
        [
            Impl("int + threading.Lock [fastest correct peer]", locked_counter(THREADS, per)),
            Impl("plait.threads.AtomicInt", atomic_counter(THREADS, per)),
        ],
    )

    # 8. scaling with threads: the cases a free-threaded build runs in parallel
    free = not getattr(sys, "_is_gil_enabled", lambda: True)()
    gil = "GIL disabled" if free else "GIL enabled"
    bench.section(
        f"8. scaling: 1, 2 and {THREADS} threads ({gil}; os.cpu_count()={os.cpu_count()}); "
        "each thread count is a case, its first line the stdlib"
    )
    counts = sorted({1, 2, THREADS})
    scaled: dict[str, dict[int, Result]] = {}
    for t in counts:
        per = PER_THREAD_SCALE // t
        r = bench.compare(
            f"Lock contended, {t} thr ({t} x {kilo(per)} pairs)",
            t * per,
            "pairs",
            [
                Impl("threading.Lock", lock_contended(threading.Lock(), t, per)),
                Impl("plait.threads.Lock", lock_contended(pt.Lock(), t, per)),
            ],
        )
        scaled.setdefault("lock", {})[t] = r["plait.threads.Lock"]
    for t in counts:
        per = N_MPMC // t
        r = bench.compare(
            f"Queue MPMC, {t} producers + {t} consumers ({kilo(t * per)} items)",
            t * per,
            "items",
            [
                Impl("queue.Queue", queue_mpmc(lambda: queue.Queue(1024), t, per)),
                Impl("plait.threads.Queue", queue_mpmc(lambda: pt.Queue(1024), t, per)),
            ],
        )
        scaled.setdefault("mpmc", {})[t] = r["plait.threads.Queue"]
    for t in counts:
        per = PER_THREAD_SCALE // t
        r = bench.compare(
            f"shared counter, {t} thr ({t} x {kilo(per)} increments)",
            t * per,
            "incs",
            [
                Impl("int + threading.Lock [fastest correct peer]", locked_counter(t, per)),
                Impl("plait.threads.AtomicInt", atomic_counter(t, per)),
            ],
        )
    cpu_items = [SPIN] * N_CPU
    for t in counts:
        r = bench.compare(
            f"map(spin) CPU-bound, {t} worker{'s' if t > 1 else ''} ({N_CPU} x spin({kilo(SPIN)}))",
            N_CPU,
            "calls",
            [
                Impl("ThreadPoolExecutor.map", pool_map_cpu(lambda t=t: ThreadPoolExecutor(t), cpu_items)),
                Impl("plait.threads.ThreadPool.map", pool_map_cpu(lambda t=t: pt.ThreadPool(t), cpu_items)),
            ],
        )
        scaled.setdefault("cpu", {})[t] = r["plait.threads.ThreadPool.map"]
        scaled.setdefault("cpu-tpe", {})[t] = r["ThreadPoolExecutor.map"]
    print()
    print(f"speed-up of map(spin) over 1 worker ({gil}):")
    for name, key in (("ThreadPoolExecutor.map", "cpu-tpe"), ("plait.threads.ThreadPool.map", "cpu")):
        ups = ", ".join(f"{t} workers {scaled[key][t].rate / scaled[key][1].rate:.2f}x" for t in counts[1:])
        print(f"  {name:<30} {ups}")

    bench.target("Queue ping-pong vs queue.Queue", 3, r_queue)
    bench.target("ThreadPool submit+result vs ThreadPoolExecutor", 3, r_submit)
    bench.target(f"ThreadPool map, list of {n_map} ints vs TPE.map", 5, r_map)
    bench.target(f"ThreadPool map, {n_map} dict records vs TPE.map", 5, r_map_records)
    bench.target("Lock uncontended (detection on) vs threading.Lock", 0.8, r_lock)
    bench.target(f"Lock contended by {THREADS} threads vs threading.Lock", 1, r_contended)
    bench.target(f"Queue MPMC, {THREADS}+{THREADS} threads vs queue.Queue", 3, scaled["mpmc"][THREADS])
    if free:  # with the GIL, CPU-bound Python code cannot run on two cores at once
        bench.target(
            "ThreadPool map(spin), 2 workers vs 1 (speed-up, GIL disabled)",
            1.8,
            Bench.relative(scaled["cpu"][2], scaled["cpu"][1]),
        )
    bench.summary()
    return bench
