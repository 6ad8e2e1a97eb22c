"""plait.green's core: the hub, Greenlet (spawn, join, get, kill, links), sleep, Timeout, waiting
on many (joinall, killall, wait, iwait), BlockedForever, and asyncio on the hub's loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from plait import green
from plait.exceptions import PlaitError


def double(x):
    green.sleep(0.001)
    return 2 * x


def test_spawn_join_and_values():
    gs = [green.spawn(double, i) for i in range(10)]
    done = green.joinall(gs, timeout=5)
    assert sorted(done, key=gs.index) == gs
    assert [g.value for g in gs] == [2 * i for i in range(10)]
    assert all(g.ready() and g.successful() and g.dead and g.exception is None for g in gs)


def test_greenlet_is_current_inside_and_has_a_name():
    seen = []
    g = green.spawn(lambda: seen.append(green.getcurrent()))
    g.join()
    assert seen == [g]
    assert g.name.startswith("Greenlet-")
    g.name = "worker"
    assert "worker" in repr(g)


def test_args_kwargs_and_subclass_run():
    class Adder(green.Greenlet):
        def _run(self, a, b=0):
            return a + b

    g = Adder(None, 1, b=2)  # gevent's signature: run first
    assert not g.started
    g.start()
    assert g.get(timeout=5) == 3
    assert green.Greenlet.spawn(lambda *a, **k: (a, k), 1, x=2).get() == ((1,), {"x": 2})


def test_exception_is_kept_reported_once_and_raised_by_get(capsys):
    def boom():
        raise ValueError("boom")

    g = green.spawn(boom)
    g.join()
    assert not g.successful() and isinstance(g.exception, ValueError)
    err = capsys.readouterr().err
    assert err.count("ValueError: boom") == 1 and "failed with ValueError" in err
    with pytest.raises(ValueError, match="boom"):
        g.get()


def test_get_timeout_and_non_blocking():
    g = green.spawn(green.sleep, 5)
    with pytest.raises(green.Timeout):
        g.get(block=False)
    with pytest.raises(green.Timeout):
        g.get(timeout=0.01)
    g.kill()
    assert g.dead


def test_kill_delivers_greenlet_exit_where_it_waits():
    events = []

    def sleeper():
        try:
            green.sleep(10)
        except green.GreenletExit:
            events.append("exit")
            raise

    g = green.spawn(sleeper)
    green.sleep(0)
    g.kill(timeout=5)
    assert events == ["exit"] and g.dead and g.successful()
    assert isinstance(g.value, green.GreenletExit)


def test_kill_with_an_exception_and_before_start():
    g = green.spawn(green.sleep, 10)
    green.sleep(0)
    g.kill(KeyError("k"), block=True)
    assert isinstance(g.exception, KeyError)
    ran = []
    h = green.spawn(ran.append, 1)
    h.kill()
    green.sleep(0.01)
    assert ran == [] and h.dead and h.ready() and isinstance(h.value, green.GreenletExit)


def test_links_run_in_order_and_by_kind():
    calls = []
    ok = green.spawn(lambda: 1)
    ok.link(lambda g: calls.append(("link", g.value)))
    ok.link_value(lambda g: calls.append(("value", g.value)))
    ok.link_exception(lambda g: calls.append(("exception", g)))
    ok.rawlink(lambda g: calls.append(("raw", g.value)))
    ok.join()
    green.sleep(0.01)
    # A rawlink runs in the hub at once; link() callbacks each in a new greenlet, later.
    assert calls == [("raw", 1), ("link", 1), ("value", 1)]
    failed = green.spawn(lambda: 1 / 0)
    got = []
    failed.link_exception(lambda g: got.append(type(g.exception)))
    failed.join()
    green.sleep(0.01)
    assert got == [ZeroDivisionError]


def test_rawlinks_run_in_the_order_linked():
    order = []
    g = green.spawn(green.sleep, 0)
    for i in range(5):
        g.rawlink(lambda _g, i=i: order.append(i))
    g.join()
    green.sleep(0)
    assert order == list(range(5))


def test_sleep_zero_lets_others_run():
    order = []

    def worker(name):
        for i in range(3):
            order.append((name, i))
            green.sleep(0)

    green.joinall([green.spawn(worker, "a"), green.spawn(worker, "b")])
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_sleep_runs_greenlets_concurrently():
    start = time.monotonic()
    green.joinall([green.spawn(green.sleep, 0.2) for _ in range(50)], timeout=10)
    assert time.monotonic() - start < 5  # 50 sleeps of 0.2 s overlap (a bound, not a timing)


def test_spawn_later_and_spawn_raw():
    out = []
    g = green.spawn_later(0.01, out.append, "later")
    raw = green.spawn_raw(lambda x, y=0: out.append(("raw", x, y)), 1, y=2)
    g.join()
    green.sleep(0.01)
    assert "later" in out and ("raw", 1, 2) in out and raw.dead


def test_timeout_interrupts_a_wait_and_can_be_silent():
    with pytest.raises(green.Timeout) as info:
        with green.Timeout(0.01):
            green.sleep(5)
    assert "0.01 second" in str(info.value)
    with green.Timeout(0.01, False):
        green.sleep(5)
    with pytest.raises(KeyError):
        with green.Timeout(0.01, KeyError("x")):
            green.sleep(5)
    t = green.Timeout.start_new(5)
    assert t.pending
    t.cancel()
    assert not t.pending
    assert not issubclass(green.Timeout, Exception)


def test_timeout_that_did_not_fire_is_harmless():
    with green.Timeout(5):
        green.sleep(0)
    green.sleep(0.01)


def test_with_timeout():
    assert green.with_timeout(5, lambda: 7) == 7
    assert green.with_timeout(0.01, green.sleep, 5, timeout_value="late") == "late"
    with pytest.raises(green.Timeout):
        green.with_timeout(0.01, green.sleep, 5)


def test_joinall_count_timeout_and_raise_error():
    fast = green.spawn(lambda: "fast")
    slow = green.spawn(green.sleep, 5)
    assert green.joinall([fast, slow], count=1) == [fast]
    assert green.joinall([slow], timeout=0.01) == []
    bad = green.spawn(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        green.joinall([bad, slow], raise_error=True)
    green.killall([slow], timeout=5)
    assert slow.dead


def test_iwait_yields_as_they_finish():
    gs = [green.spawn(green.sleep, d) for d in (0.05, 0.01, 0.03)]
    assert list(green.iwait(gs, timeout=5)) == [gs[1], gs[2], gs[0]]
    assert list(green.iwait([green.spawn(green.sleep, 5)], timeout=0.01)) == []


def test_wait_without_objects_runs_everything():
    done = []
    for i in range(5):
        green.spawn(lambda i=i: (green.sleep(0.001 * i), done.append(i)))
    assert green.wait() is True
    assert sorted(done) == list(range(5))


def test_blocked_forever_names_who_waits_on_what_and_where():
    never = green.Greenlet(lambda: None)  # never started

    def waiter():
        never.join()

    w = green.spawn(waiter)
    w.name = "the-waiter"
    with pytest.raises(green.BlockedForever) as info:
        w.join()
    exc = info.value
    assert isinstance(exc, PlaitError) and green.LoopExit is green.BlockedForever
    text = str(exc)
    assert "'the-waiter' waits on join of" in text and "not started" in text
    assert "test_green.py" in text and "in waiter" in text
    assert "the main greenlet waits on join of" in text
    assert len(exc.waiting) == 2


def test_a_blocking_call_in_a_loop_callback_is_an_error():
    hub = green.get_hub()
    errors = []

    def callback():
        try:
            green.sleep(0.1)
        except green.BlockingSwitchOutError as exc:
            errors.append(exc)

    hub.loop.call_soon(callback)
    green.sleep(0.01)
    assert len(errors) == 1


def test_await_runs_a_coroutine_on_the_hub_loop():
    async def answer(x):
        await asyncio.sleep(0.01)
        return x + 1

    assert green.run(lambda: green.await_(answer(41))) == 42

    async def fails():
        raise KeyError("k")

    with pytest.raises(KeyError):
        green.await_(fails())


def test_coroutine_awaits_a_greenlet():
    async def main():
        g = green.spawn(double, 21)
        return await green.wait_greenlet(g), await green.spawn(double, 1)

    assert green.await_(main()) == (42, 2)


def test_killing_a_greenlet_that_awaits_cancels_the_task():
    cancelled = []

    async def forever():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    g = green.spawn(green.await_, forever())
    green.sleep(0.01)
    g.kill(timeout=5)
    green.sleep(0.01)
    assert cancelled == [True]


def test_each_thread_has_its_own_hub():
    hubs = []

    def in_thread():
        hubs.append(green.get_hub())
        green.spawn(green.sleep, 0).join()
        green.get_hub().destroy()

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(10)
    assert hubs and hubs[0] is not green.get_hub()


def test_destroyed_hub_is_replaced():
    hub = green.get_hub()
    green.sleep(0)
    hub.destroy()
    assert hub.loop.is_closed()
    assert green.get_hub() is not hub
    green.sleep(0)


def test_greenlets_in_an_asyncio_program_share_its_plait_loop():
    import plait.aio

    async def main():
        loop = asyncio.get_running_loop()
        seen = []

        def worker(i):
            green.sleep(0.01)
            seen.append(asyncio.get_running_loop() is loop)  # the same loop, inside greenlets
            return green.await_(asyncio.sleep(0.001, result=i))  # and coroutines from them

        gs = [green.spawn(worker, i) for i in range(5)]
        results = [await g for g in gs]
        assert green.get_hub().loop is loop
        with pytest.raises(green.BlockingSwitchOutError):
            green.sleep(0)  # a coroutine cannot block the loop it runs on
        return results, seen

    results, seen = plait.aio.run(main())
    assert results == list(range(5)) and seen == [True] * 5


def test_greenlets_in_a_foreign_asyncio_loop_are_refused_with_the_way_out():
    async def main():
        with pytest.raises(RuntimeError, match=r"plait\.aio\.run"):
            green.spawn(lambda: None)

    asyncio.run(main())


def test_frame_stacks_of_finished_greenlets_are_reused():
    from plait import _plait

    installed, _, hits_before, _ = _plait.frame_stack_cache_info()
    assert installed  # importing plait.green installs it
    assert green.joinall([green.spawn(lambda i=i: i * i) for i in range(200)]) is not None
    results = [green.spawn(lambda i=i: sum(range(i))) for i in range(200)]
    green.joinall(results)
    assert [g.value for g in results] == [sum(range(i)) for i in range(200)]
    _, kept, hits_after, _ = _plait.frame_stack_cache_info()
    assert hits_after > hits_before and kept <= 128


def deep(n):
    return 0 if n == 0 else 1 + deep(n - 1)


def test_deep_recursion_in_greenlets_still_works_with_the_cache():
    # Frames past a 16 KiB chunk take bigger chunks: cached by size, never handed out wrong.
    gs = [green.spawn(deep, 400 + i) for i in range(20)]
    green.joinall(gs)
    assert [g.value for g in gs] == [400 + i for i in range(20)]


def test_a_cancelled_timer_does_not_hide_a_greenlet_blocked_forever():
    g = green.spawn(lambda: 1)
    assert g.get(timeout=30) == 1  # leaves a cancelled 30 s timer in the loop's heap
    never = green.Greenlet(lambda: None)
    with pytest.raises(green.BlockedForever, match="join"):
        never.join()


def busy(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass  # computes without switching: nothing else on the hub runs meanwhile


def test_monitor_reports_a_greenlet_that_keeps_the_hub_from_running():
    import io

    out = io.StringIO()
    with green.monitor(threshold_ms=50, file=out) as mon:
        hog = green.spawn(busy, 0.3)
        hog.name = "the-hog"
        polite = green.spawn(lambda: [green.sleep(0.001) for _ in range(20)])
        green.joinall([hog, polite])
    assert [name for name, _, _ in mon.reports] == ["Greenlet 'the-hog'"]
    _, ms, stack = mon.reports[0]
    assert ms >= 50 and "in busy" in stack
    assert "the-hog" in out.getvalue() and "kept the hub from running" in out.getvalue()


def test_monitor_is_quiet_for_greenlets_that_switch_and_rejects_bad_thresholds():
    with green.monitor(threshold_ms=200) as mon:
        green.joinall([green.spawn(lambda: [green.sleep(0.001) for _ in range(50)]) for _ in range(5)])
    assert mon.reports == []
    with pytest.raises(ValueError):
        green.monitor(threshold_ms=0)


def test_plait_without_green_never_imports_greenlet():
    # greenlet may need the GIL on free-threaded builds: only plait.green may import it.
    import subprocess
    import sys

    code = "import sys, plait, plait.threads, plait.processes, plait.aio; print('greenlet' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_yielding_greenlets_resume_in_order_and_a_killed_one_ends_there():
    steps = []

    def yielder(name, times):
        try:
            for i in range(times):
                green.sleep(0)
                steps.append((name, i))
        except green.GreenletExit:
            steps.append((name, "killed"))
            raise

    a, b = green.spawn(yielder, "a", 3), green.spawn(yielder, "b", 100)
    green.sleep(0)
    green.sleep(0)
    b.kill(timeout=5)  # b yields again and again: the kill reaches it at a sleep(0)
    a.join(timeout=5)
    assert a.successful() and b.dead and b.successful()  # a kill ends it successfully
    assert [s for s in steps if s[0] == "a"] == [("a", 0), ("a", 1), ("a", 2)]
    assert ("b", "killed") in steps and len([s for s in steps if s[0] == "b"]) < 100
