"""plait's ProcessPool on Dask distributed against Dask's own API, and against the local pool, same run.

Run::

    .venv/bin/python benchmarks/dask_backend.py            # full sizes (a few minutes)
    .venv/bin/python benchmarks/dask_backend.py --quick    # tiny sizes: a smoke test

(Not ``distributed.py``: run as a script from ``benchmarks/``, that name would shadow the
``distributed`` package, here and in the cluster's spawned workers.)

One ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` on loopback serves every
Dask line: Dask's own ``Client.submit``/``Client.map`` (the baseline of each case, at their best
documented settings: ``pure=False`` so no argument is hashed, results collected with one
``Client.gather``) and ``ProcessPool(backend=Dask(client))`` on the same client. The local
``ProcessPool(2)`` runs the same work on the same machine: the cost of the cluster. Every pool
runs the task functions of ``plait.bench._tasks`` (importable: sent by reference by everyone) on inputs
built before the clock; each implementation gets the same warm-up run and the same number of
timed runs, interleaved, median reported. Without dask installed the script prints a line and
exits.

This module's top level runs again in the cluster's worker processes (spawned, as
``__mp_main__``), so it stays light: dask and plait's pools are imported in ``main()``.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from typing import Any

from plait.bench import _tasks
from plait.bench._common import Bench, Impl, add_arguments, check_arguments, clock, header

WORKERS = 2
TASK_S = 0.010


def submit_dask(client: Any, n: int) -> Callable[[], float]:
    def run() -> float:
        t0 = clock()
        futures = [client.submit(_tasks.ident, i, pure=False) for i in range(n)]
        results = client.gather(futures, direct=True)
        dt = clock() - t0
        assert results == list(range(n))
        return dt

    return run


def submit_plait(pool: Any, n: int) -> Callable[[], float]:
    def run() -> float:
        t0 = clock()
        futures = [pool.submit(_tasks.ident, i) for i in range(n)]
        results = [f.result() for f in futures]
        dt = clock() - t0
        assert results == list(range(n))
        return dt

    return run


def map_dask(client: Any, fn: Callable[[Any], Any], items: list[Any]) -> Callable[[], float]:
    def run() -> float:
        t0 = clock()
        results = client.gather(client.map(fn, items, pure=False), direct=True)
        dt = clock() - t0
        assert len(results) == len(items)
        return dt

    return run


def map_plait(pool: Any, fn: Callable[[Any], Any], items: list[Any]) -> Callable[[], float]:
    def run() -> float:
        t0 = clock()
        results = list(pool.map(fn, items))
        dt = clock() - t0
        assert len(results) == len(items)
        return dt

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    # benchmarks/_results.py asks every script for its Markdown table; this one prints its lines
    # only (the generator then records none for it).
    parser.add_argument("--markdown", metavar="PATH", help=argparse.SUPPRESS)
    args = check_arguments(parser, parser.parse_args())
    quick = args.quick
    n_submit = 200 if quick else 2_000
    n_map = 500 if quick else 5_000
    n_sleep = 20 if quick else 400
    header(
        "plait ProcessPool on Dask distributed vs Dask's own API (and vs the local ProcessPool)",
        args,
        sizes=[
            f"LocalCluster: {WORKERS} worker processes x 1 thread, loopback; local pool: {WORKERS} workers",
            f"submit+result of {n_submit:,} tiny tasks",
            f"map over a list of {n_map:,} ints (tiny tasks)",
            f"map over {n_sleep} tasks of {TASK_S * 1e3:g} ms (time.sleep)",
        ],
        notes=[
            "plait on Dask runs each task in a plait worker process inside a Dask worker (crash "
            "isolation, timeouts): one more local hop per task than Dask's own API",
        ],
    )
    if importlib.util.find_spec("distributed") is None:
        print("dask distributed is not installed (pip install plait[dask]): nothing to compare, skipped")
        return 0

    import distributed

    from plait.backends import Dask
    from plait.processes import ProcessPool

    cluster = distributed.LocalCluster(
        n_workers=WORKERS,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    client = distributed.Client(cluster)
    dask_pool = ProcessPool(backend=Dask(client))
    local_pool = ProcessPool(WORKERS)
    bench = Bench(args, label_width=34, name_width=44)
    try:
        for pool in (dask_pool, local_pool):  # every worker started (and plait's inner ones)
            list(pool.map(_tasks.pid_after, [0.05] * 4 * WORKERS, chunksize=1))
        client.gather(client.map(_tasks.pid_after, [0.05] * 4 * WORKERS, pure=False))

        def case(label: str, n: int, unit: str, dask: Impl, on_dask: Impl, local: Impl, goal: float) -> None:
            r = bench.compare(label, n, unit, [dask, on_dask, local], repeats=3)
            cost = Bench.relative(r[on_dask.name], r[local.name])
            pad = " " * bench.label_width
            print(f"{pad} the cluster's cost: the local pool runs this {1 / cost.ratio:.1f}x as fast")
            bench.target(f"{label}: plait on Dask vs Dask's own API", goal, r[on_dask.name])

        bench.section(f"1. submit+result of {n_submit:,} tiny tasks")
        case(
            f"submit+result ({n_submit:,} tasks)",
            n_submit,
            "tasks",
            Impl("dask Client.submit + gather", submit_dask(client, n_submit)),
            Impl("plait ProcessPool(backend=Dask).submit", submit_plait(dask_pool, n_submit)),
            Impl("plait ProcessPool (local).submit", submit_plait(local_pool, n_submit)),
            0.9,
        )
        ints = _tasks.ints(n_map)
        bench.section(f"2. map over a list of {n_map:,} ints: tiny tasks (plait chunks them adaptively)")
        case(
            f"map, list of {n_map:,} ints",
            n_map,
            "items",
            Impl("dask Client.map + gather", map_dask(client, _tasks.ident, ints)),
            Impl("plait ProcessPool(backend=Dask).map", map_plait(dask_pool, _tasks.ident, ints)),
            Impl("plait ProcessPool (local).map", map_plait(local_pool, _tasks.ident, ints)),
            1.0,
        )
        sleeps = [TASK_S] * n_sleep
        bench.section(f"3. map over {n_sleep} tasks of {TASK_S * 1e3:g} ms")
        case(
            f"map, {n_sleep} x {TASK_S * 1e3:g} ms tasks",
            n_sleep,
            "tasks",
            Impl("dask Client.map + gather", map_dask(client, _tasks.pid_after, sleeps)),
            Impl("plait ProcessPool(backend=Dask).map", map_plait(dask_pool, _tasks.pid_after, sleeps)),
            Impl("plait ProcessPool (local).map", map_plait(local_pool, _tasks.pid_after, sleeps)),
            1.0,
        )
        bench.summary()
    finally:
        dask_pool.shutdown()
        local_pool.shutdown()
        client.close()
        cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
