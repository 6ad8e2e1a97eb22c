"""plait.processes.ProcessPool against multiprocessing, concurrent.futures, loky, mpire and joblib, same run.

Run::

    plait bench processes            # full sizes (a few minutes)
    plait bench processes --quick    # tiny sizes: a smoke test

Every pool has 2 workers. The stdlib pools and mpire use the "spawn" start method, as plait does;
loky and joblib (whose default backend is loky) start workers with loky's own fork+exec, which is
spawn-like. Pools are created, and warmed up with one task, before anything is timed; then every
implementation of a case gets the same warm-up run of the case and the same number of timed
runs, interleaved, median reported. A timed run covers the work only, except in case 4, which
times pool creation up to the first result.

Every pool runs the same task functions, those of ``plait/bench/_tasks.py`` (importable, so each sends them by
reference, its fastest path), on the same inputs: lists of ints, of short strings, of small dict
records and of small tuples, built before the clock starts. Lines that take a path ordinary
inputs do not are labelled ``[fast path: ...]`` (plait over a ``range``, which it sends as
ranges). loky, mpire and joblib are optional: a peer that is not installed is skipped, with a
line saying so (``make bench`` installs them).

The pools' workers import this module by name (its task functions live in ``_tasks.py``); with
the spawn start method they also run the parent's ``__main__`` again (as ``__mp_main__``), which
``plait``'s command line and the scripts of ``benchmarks/`` guard.
"""

from __future__ import annotations

import argparse
import multiprocessing
import types
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from typing import Any

from . import _tasks
from ._common import Bench, Impl, clock, fast_path, header, timed

__all__ = ["PEERS", "TITLE", "run"]

WORKERS = 2


def _ident(x: Any) -> Any:
    return x


#: A copy of ``_tasks.ident`` that belongs to ``__main__`` (its globals say so): plait sends it by
#: value (cloudpickle, once per worker), the way a function defined in a user's script travels.
#: Informational.
ident = types.FunctionType(_ident.__code__, {"__name__": "__main__"}, "ident")


# -- case builders: each returns a run() -> seconds --------------------------------------------------


def futures_submit(pool: Any, fn: Callable[[Any], Any], n: int) -> Callable[[], float]:
    """``pool.submit(fn, i)`` for each i, then ``.result()`` of each (concurrent.futures style)."""

    def run() -> float:
        submit = pool.submit
        t0 = clock()
        futs = [submit(fn, i) for i in range(n)]
        results = [f.result() for f in futs]
        dt = clock() - t0
        assert results == list(range(n))
        return dt

    return run


def apply_async(pool: Any, fn: Callable[[Any], Any], n: int) -> Callable[[], float]:
    """``pool.apply_async(fn, (i,))`` for each i, then ``.get()`` of each (multiprocessing style)."""

    def run() -> float:
        apply = pool.apply_async
        t0 = clock()
        handles = [apply(fn, (i,)) for i in range(n)]
        results = [h.get() for h in handles]
        dt = clock() - t0
        assert results == list(range(n))
        return dt

    return run


def collect(produce: Callable[[], Iterable[Any]], n: int, last: Any) -> Callable[[], float]:
    """Time ``list(produce())``; check it has ``n`` results ending with ``last``."""

    def run() -> float:
        t0 = clock()
        results = list(produce())
        dt = clock() - t0
        assert len(results) == n and results[-1] == last, (len(results), results[-1:])
        return dt

    return run


def start_to_first_result(
    make: Callable[[], Any], first: Callable[[Any], Any], close: Callable[[Any], object]
) -> Callable[[], float]:
    """Create a pool and get one task's result, timed; close the pool after the clock stops."""

    def run() -> float:
        t0 = clock()
        pool = make()
        result = first(pool)
        dt = clock() - t0
        close(pool)
        assert result == 1
        return dt

    return run


def fresh_pool_map(
    make: Callable[[], Any],
    close: Callable[[Any], object],
    fn: Callable[[int], Any],
    work: list[int],
    last: Any,
) -> Callable[[], float]:
    """``list(pool.map(fn, work))`` on a new pool each run, timed. The pool is created, and warmed up
    until every worker has run a task, before the clock starts, and closed after it stops."""

    def run() -> float:
        pool = make()
        try:
            pids: set[int] = set()
            while len(pids) < WORKERS:
                pids.update(pool.map(_tasks.pid_after, [0.02] * WORKERS))
            t0 = clock()
            results = list(pool.map(fn, work))
            dt = clock() - t0
        finally:
            close(pool)
        assert len(results) == len(work) and results[-1] == last, (len(results), results[-1:])
        return dt

    return run


class FreshJoblib:
    """``joblib.Parallel`` as a pool with ``map`` and ``close``, on loky workers of its own: joblib
    otherwise reuses one process-wide executor, and case 3 gives every implementation a fresh pool
    per run. ``close`` shuts that executor down, so the next instance starts new workers."""

    def __init__(self, joblib: Any) -> None:
        self.joblib = joblib
        self.par = joblib.Parallel(n_jobs=WORKERS)
        self.par.__enter__()

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        delayed = self.joblib.delayed(fn)
        return list(self.par(delayed(x) for x in items))

    def close(self) -> None:
        self.par.__exit__(None, None, None)
        from joblib.externals.loky import reusable_executor

        executor = reusable_executor._executor
        if executor is not None:
            executor.shutdown(wait=True)


def stop_forkserver() -> None:
    """Stop multiprocessing's fork server (one per process, started on first use), so that the
    next forkserver pool starts its own inside the timed region, as plait's pools do."""
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # type: ignore[attr-defined]


def calibrate_spin(seconds: float) -> int:
    """The loop length ``n`` for which ``spin(n)`` takes about ``seconds`` here."""
    n = 10_000
    while True:
        t = min(timed(_tasks.spin, n) for _ in range(5))
        if t >= 0.02:
            break
        n *= 2
    return max(1, round(n * seconds / t))


def impls(*candidates: Impl | None) -> list[Impl]:
    """The implementations whose peer is installed (a missing peer's entry is None)."""
    return [impl for impl in candidates if impl is not None]


def kilo(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def big_arrays(bench: Bench, quick: bool, loky: Any, joblib: Any) -> Any:
    """Case 5: a large numpy array to 2 tasks (one per worker) that return it, and 2 tasks that
    each return a new array of that size. Returns plait's result of the first, or None."""
    mb = 8 if quick else 100
    bench.section(f"5. a {mb} MB numpy array to 2 tasks and back (plait: through shared memory)")
    np = bench.peer("numpy")
    if np is None:
        return None
    from plait.processes import ProcessPool

    big = np.ones(mb * 1_000_000 // 8)
    n = big.shape[0]

    def futures(pool: Any, fn: Any, arg: Any) -> Callable[[], list[Any]]:
        return lambda: [f.result() for f in [pool.submit(fn, arg) for _ in range(2)]]

    def handles(pool: Any, fn: Any, arg: Any) -> Callable[[], list[Any]]:
        return lambda: [h.get() for h in [pool.apply_async(fn, (arg,)) for _ in range(2)]]

    spawn = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        mp_pool = spawn.Pool(WORKERS)
        stack.callback(mp_pool.join)
        stack.callback(mp_pool.close)
        ppe = stack.enter_context(ProcessPoolExecutor(WORKERS, mp_context=spawn))
        plait = stack.enter_context(ProcessPool(WORKERS))
        runs = {
            "multiprocessing.Pool.apply_async": handles(mp_pool, _tasks.ident, big),
            "ProcessPoolExecutor.submit": futures(ppe, _tasks.ident, big),
        }
        if loky is not None:
            loky_ex = loky.get_reusable_executor(max_workers=WORKERS, timeout=3600)
            stack.callback(loky_ex.shutdown)
            runs["loky reusable executor .submit"] = futures(loky_ex, _tasks.ident, big)
        if joblib is not None:
            par = stack.enter_context(joblib.Parallel(n_jobs=WORKERS, idle_worker_timeout=3600))
            delayed = joblib.delayed(_tasks.ident)
            runs["joblib.Parallel (memmaps large arrays)"] = lambda: par(delayed(big) for _ in range(2))
        runs["plait ProcessPool.submit"] = futures(plait, _tasks.ident, big)
        r = bench.compare(
            f"{mb} MB array to 2 tasks and back",
            2,
            "tasks",
            [Impl(name, collect_arrays(run, big)) for name, run in runs.items()],
        )
        bench.compare(
            f"new {mb} MB array from 2 tasks",
            2,
            "tasks",
            [
                Impl("multiprocessing.Pool.apply_async", collect_arrays(handles(mp_pool, np.ones, n), big)),
                Impl("ProcessPoolExecutor.submit", collect_arrays(futures(ppe, np.ones, n), big)),
                Impl(
                    "plait ProcessPool.submit",
                    collect_arrays(futures(plait, np.ones, n), big),
                    note="informational",
                ),
            ],
        )
    return r["plait ProcessPool.submit"]


def collect_arrays(produce: Callable[[], list[Any]], like: Any) -> Callable[[], float]:
    """Time ``produce()`` (2 arrays); check them after the clock stops."""

    def run() -> float:
        t0 = clock()
        results = produce()
        dt = clock() - t0
        assert len(results) == 2 and all(r.shape == like.shape and r[-1] == 1 for r in results)
        return dt

    return run


# -- the benchmark -----------------------------------------------------------------------------------


TITLE = "plait.processes.ProcessPool vs multiprocessing.Pool / ProcessPoolExecutor / loky / mpire / joblib"
PEERS = ("loky", "mpire", "joblib", "numpy", "cloudpickle")


def run(args: argparse.Namespace) -> Bench:
    """Every case, printed as it runs; the results and targets are in the returned ``Bench``."""
    quick = args.quick
    N_SUBMIT = 500 if quick else 20_000
    N_MAP = 20_000 if quick else 1_000_000  # list of ints
    N_MAP_SMALL = 5_000 if quick else 200_000  # dict records, short strings, tuples
    N_MAP_DEFAULT = 2_000 if quick else 20_000  # map at each peer's *default* chunksize (1 for PPE/loky)
    CPU_TASKS = 16 if quick else 64
    CPU_TASK_S = 0.002 if quick else 0.010
    CPU_REPEATS = 9  # ~0.35 s a run; a 3% target wants a steadier median (every implementation)
    START_REPEATS = 9
    CHUNK = 10_000

    from plait.processes import ProcessPool

    bench = Bench(args, label_width=40, name_width=48)
    loky = bench.peer("loky")
    mpire = bench.peer("mpire")
    joblib = bench.peer("joblib")
    missing = [name for name, mod in (("loky", loky), ("mpire", mpire), ("joblib", joblib)) if mod is None]

    spin_n = calibrate_spin(CPU_TASK_S)
    t_spin = min(timed(_tasks.spin, spin_n) for _ in range(5))

    header(
        TITLE,
        args,
        sizes=[
            f"submit+result {N_SUBMIT:,} tiny tasks",
            f"map over a list of {N_MAP:,} ints, and over {N_MAP_SMALL:,} dict records / short strings / "
            f"tuples (and {N_MAP_DEFAULT:,} ints at default chunksizes)",
            f"CPU-bound map {CPU_TASKS} tasks x spin({spin_n:,}) = {t_spin * 1e3:.1f} ms each here",
            "pool start to first result",
        ],
        notes=[
            f"{WORKERS} workers everywhere; start method spawn for multiprocessing, ProcessPoolExecutor, "
            "mpire and plait; loky's own (fork+exec) for loky and joblib; case 4 adds a forkserver "
            "pair (multiprocessing.Pool vs plait), informational",
            "pools are created and warmed up (one task) before timing; every pool runs the same "
            "functions of plait/bench/_tasks.py (by reference) on the same inputs, built before the "
            "clock starts; results are checked after each timed run",
            "mpire unpacks a tuple or dict item into arguments: its dict and tuple items are wrapped "
            "in 1-tuples (built before the clock starts), as its docs say",
            *[f"{name} skipped: not installed (`make bench` installs it)" for name in missing],
        ],
        packages=PEERS,
    )

    def skipped() -> None:
        for name in missing:
            print(f"{'':<{bench.label_width}} {name + ':':<{bench.name_width}} skipped (not installed)")

    spawn = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        # -- the pools, created and warmed up before anything is timed --
        mp_pool = spawn.Pool(WORKERS)
        stack.callback(mp_pool.join)
        stack.callback(mp_pool.close)
        ppe = stack.enter_context(ProcessPoolExecutor(WORKERS, mp_context=spawn))
        plait = stack.enter_context(ProcessPool(WORKERS))
        warm = [
            mp_pool.apply_async(_tasks.ident, (0,)).get(),
            ppe.submit(_tasks.ident, 0).result(),
            plait.submit(_tasks.ident, 0).result(),
        ]
        loky_ex = mpire_apply = mpire_pool = par = None
        if loky is not None:
            # timeout: idle workers would otherwise exit after 10 s, e.g. while other pools are timed.
            loky_ex = loky.get_reusable_executor(max_workers=WORKERS, timeout=3600)
            stack.callback(loky_ex.shutdown)
            warm.append(loky_ex.submit(_tasks.ident, 0).result())
        if mpire is not None:
            # keep_alive: the workers survive from one map to the next, as a pool's do. A pool that
            # ran apply_async then calls map's function with (index, item): one pool for each.
            mpire_apply = mpire.WorkerPool(n_jobs=WORKERS, start_method="spawn", keep_alive=True)
            stack.callback(mpire_apply.terminate)
            warm.append(mpire_apply.apply_async(_tasks.ident, (0,)).get())
            mpire_pool = mpire.WorkerPool(n_jobs=WORKERS, start_method="spawn", keep_alive=True)
            stack.callback(mpire_pool.terminate)
            warm.extend(mpire_pool.map(_tasks.ident, range(1)))
        if joblib is not None:
            par = stack.enter_context(joblib.Parallel(n_jobs=WORKERS, idle_worker_timeout=3600))
            warm.extend(par(joblib.delayed(_tasks.ident)(i) for i in range(1)))
        assert warm == [0] * len(warm), warm

        # 1. submit + result
        bench.section(
            f"1. submit+result of {N_SUBMIT:,} tiny tasks (an int in, the int back), one result per task"
        )
        label = f"submit+result ({kilo(N_SUBMIT)} tasks)"
        r = bench.compare(
            label,
            N_SUBMIT,
            "tasks",
            impls(
                Impl("multiprocessing.Pool.apply_async", apply_async(mp_pool, _tasks.ident, N_SUBMIT)),
                Impl("ProcessPoolExecutor.submit", futures_submit(ppe, _tasks.ident, N_SUBMIT)),
                loky_ex
                and Impl("loky reusable executor .submit", futures_submit(loky_ex, _tasks.ident, N_SUBMIT)),
                mpire_apply
                and Impl("mpire.WorkerPool.apply_async", apply_async(mpire_apply, _tasks.ident, N_SUBMIT)),
                par
                and Impl(
                    "joblib.Parallel(delayed(ident)(i) ...)",
                    collect(
                        lambda: par(joblib.delayed(_tasks.ident)(i) for i in range(N_SUBMIT)),
                        N_SUBMIT,
                        N_SUBMIT - 1,
                    ),
                    note="batches tasks itself",
                ),
                Impl("plait ProcessPool.submit", futures_submit(plait, _tasks.ident, N_SUBMIT)),
                Impl(
                    "plait ProcessPool.submit [fn from __main__]",
                    futures_submit(plait, ident, N_SUBMIT),
                    note="informational: sent by value",
                ),
            ),
        )
        skipped()
        r_submit = r["plait ProcessPool.submit"]

        # 2. map over lists of small items
        bench.section(
            "2. map over lists of small items (each peer at its best documented chunksize): ints -> ints, "
            "dict records -> dicts, short strings -> strings, tuples -> tuples"
        )

        def map_case(
            label: str, fn: Callable[[Any], Any], items: Sequence[Any], *extra: Impl
        ) -> dict[str, Any]:
            """``fn`` over ``items`` on every pool, plus ``extra`` lines; returns the results."""
            n, last = len(items), fn(items[-1])
            # mpire calls fn(*item) for a tuple item and fn(**item) for a dict item.
            mpire_items = [(x,) for x in items] if isinstance(items[0], (tuple, dict)) else items
            out = bench.compare(
                label,
                n,
                "items",
                impls(
                    Impl(
                        "multiprocessing.Pool.map",
                        collect(lambda: mp_pool.map(fn, items), n, last),
                        note="default chunksize: n/(4*workers)",
                    ),
                    Impl(
                        f"ProcessPoolExecutor.map(chunksize={CHUNK:,})",
                        collect(lambda: ppe.map(fn, items, chunksize=CHUNK), n, last),
                    ),
                    loky_ex
                    and Impl(
                        f"loky .map(chunksize={CHUNK:,})",
                        collect(lambda: loky_ex.map(fn, items, chunksize=CHUNK), n, last),
                    ),
                    mpire_pool
                    and Impl(
                        "mpire.WorkerPool.map",
                        collect(lambda: mpire_pool.map(fn, mpire_items), n, last),
                        note="default chunk_size: n/(4*workers)",
                    ),
                    par
                    and Impl(
                        "joblib.Parallel(delayed(f)(x) ...)",
                        collect(lambda: par(joblib.delayed(fn)(x) for x in items), n, last),
                        note="batch_size='auto'",
                    ),
                    Impl("plait ProcessPool.map", collect(lambda: plait.map(fn, items), n, last)),
                    *extra,
                ),
            )
            skipped()
            return out

        n = N_MAP
        r_map = map_case(
            f"map, list of {kilo(n)} ints",
            _tasks.ident,
            _tasks.ints(n),
            Impl(
                f"plait ProcessPool.map {fast_path('range input')}",
                collect(lambda: plait.map(_tasks.ident, range(n)), n, n - 1),
                note="range(n) instead of the list: sent as ranges",
            ),
        )["plait ProcessPool.map"]
        m = N_MAP_SMALL
        r_records = map_case(f"map, {kilo(m)} dict records", _tasks.rescore, _tasks.dict_records(m))[
            "plait ProcessPool.map"
        ]
        map_case(f"map, {kilo(m)} short strings", _tasks.upper, _tasks.short_strings(m))
        map_case(f"map, {kilo(m)} tuples (int, str, float)", _tasks.rescore_row, _tasks.tuple_rows(m))

        d = N_MAP_DEFAULT
        items = _tasks.ints(d)
        bench.compare(
            f"map, list of {kilo(d)} ints, default chunksize",
            d,
            "items",
            impls(
                Impl("multiprocessing.Pool.map", collect(lambda: mp_pool.map(_tasks.ident, items), d, d - 1)),
                Impl(
                    "ProcessPoolExecutor.map",
                    collect(lambda: ppe.map(_tasks.ident, items), d, d - 1),
                    note="chunksize=1",
                ),
                loky_ex
                and Impl(
                    "loky .map",
                    collect(lambda: loky_ex.map(_tasks.ident, items), d, d - 1),
                    note="chunksize=1",
                ),
                Impl("plait ProcessPool.map", collect(lambda: plait.map(_tasks.ident, items), d, d - 1)),
            ),
        )

    # 3. CPU-bound map, after the pools above are shut down. The same pure-Python loop ran 8.3 to
    # 11 ms here depending on the fresh process it landed in (whatever the pool), so a pool kept for
    # every run would measure its two workers' luck: each run gets a fresh pool instead.
    bench.section(
        f"3. CPU-bound map: {CPU_TASKS} tasks of ~{CPU_TASK_S * 1e3:g} ms each (pure-Python loop), default "
        "chunksizes; a fresh pool per run (joblib too: its loky executor is shut down after each run), "
        "warmed (every worker ran a task) before the clock starts"
    )
    k, c = spin_n, CPU_TASKS
    want = _tasks.spin(k)
    work = [k] * c

    def cpu(name: str, make: Callable[[], Any], close: Callable[[Any], object]) -> Impl:
        return Impl(name, fresh_pool_map(make, close, _tasks.spin, work, want))

    r = bench.compare(
        f"CPU-bound map ({c} x {CPU_TASK_S * 1e3:g} ms)",
        c,
        "tasks",
        impls(
            cpu("multiprocessing.Pool.map", lambda: spawn.Pool(WORKERS), lambda p: (p.close(), p.join())),
            cpu(
                "ProcessPoolExecutor.map",
                lambda: ProcessPoolExecutor(WORKERS, mp_context=spawn),
                lambda p: p.shutdown(),
            ),
            loky
            and cpu(
                "loky.ProcessPoolExecutor.map",
                lambda: loky.ProcessPoolExecutor(max_workers=WORKERS),
                lambda p: p.shutdown(),
            ),
            mpire
            and cpu(
                "mpire.WorkerPool.map",
                lambda: mpire.WorkerPool(n_jobs=WORKERS, start_method="spawn", keep_alive=True),
                lambda p: p.terminate(),
            ),
            joblib
            and cpu(
                "joblib.Parallel(delayed(spin)(n) ...)", lambda: FreshJoblib(joblib), lambda p: p.close()
            ),
            cpu("plait ProcessPool.map", lambda: ProcessPool(WORKERS), lambda p: p.shutdown()),
        ),
        repeats=CPU_REPEATS,
    )
    skipped()
    r_cpu = r["plait ProcessPool.map"]
    best = max((res for name, res in r.items() if not name.startswith("plait")), key=lambda res: res.rate)
    r_cpu_best = Bench.relative(r_cpu, best)
    print(f"plait vs the best peer ({best.name}): {r_cpu_best.ratio:.3f}x")

    # 4. start to first result
    bench.section("4. pool start to first result: create the pool, submit one task, get its result")
    r = bench.compare(
        "start -> first result",
        1,
        "starts",
        [
            Impl(
                "multiprocessing.Pool(spawn)",
                start_to_first_result(
                    lambda: spawn.Pool(WORKERS),
                    lambda p: p.apply_async(_tasks.ident, (1,)).get(),
                    lambda p: (p.close(), p.join()),
                ),
            ),
            Impl(
                "ProcessPoolExecutor(spawn)",
                start_to_first_result(
                    lambda: ProcessPoolExecutor(WORKERS, mp_context=spawn),
                    lambda p: p.submit(_tasks.ident, 1).result(),
                    lambda p: p.shutdown(),
                ),
                note="informational",
            ),
            Impl(
                "plait ProcessPool",
                start_to_first_result(
                    lambda: ProcessPool(WORKERS),
                    lambda p: p.submit(_tasks.ident, 1).result(),
                    lambda p: p.shutdown(),
                ),
            ),
        ],
        repeats=START_REPEATS,
    )
    print("(shutdown and joining the workers happen after the clock stops, for every pool)")
    r_start = r["plait ProcessPool"]
    forkserver = multiprocessing.get_context("forkserver")
    bench.compare(
        "start -> first result, forkserver",
        1,
        "starts",
        [
            Impl(
                "multiprocessing.Pool(forkserver)",
                start_to_first_result(
                    lambda: forkserver.Pool(WORKERS),
                    lambda p: p.apply_async(_tasks.ident, (1,)).get(),
                    lambda p: (p.close(), p.join(), stop_forkserver()),
                ),
                note="informational",
            ),
            Impl(
                "plait ProcessPool(forkserver)",
                start_to_first_result(
                    lambda: ProcessPool(WORKERS, start_method="forkserver"),
                    lambda p: p.submit(_tasks.ident, 1).result(),
                    lambda p: p.shutdown(),
                ),
                note="informational",
            ),
        ],
        repeats=START_REPEATS,
    )
    print(
        "(both start their fork server inside the timed region: multiprocessing's, one per process,"
        " is stopped after each run)"
    )

    # 5. large numpy arrays
    r_big = big_arrays(bench, quick, loky, joblib)

    bench.target(f"submit+result of {kilo(N_SUBMIT)} tasks vs multiprocessing.Pool", 5, r_submit)
    bench.target(f"map over a list of {kilo(N_MAP)} ints vs multiprocessing.Pool.map", 2, r_map)
    bench.target(f"map over {kilo(N_MAP_SMALL)} dict records vs multiprocessing.Pool.map", 1.25, r_records)
    bench.target("CPU-bound map vs the best peer", 0.97, r_cpu_best, detail=f"best peer: {best.name}")
    bench.target("pool start to first result vs multiprocessing.Pool", 1, r_start)
    bench.target("100 MB array to 2 tasks and back vs multiprocessing.Pool", 5, r_big)
    bench.summary()
    return bench
