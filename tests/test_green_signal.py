"""plait.green.signal: signal_handler (a new greenlet per delivery, cancel restores), and
signal()/getsignal() whose handlers may block when the signal arrives while the hub runs."""

from __future__ import annotations

import _thread
import os
import signal as std_signal
import threading

import pytest

from plait import green
from plait.green import signal


def deliver(signum):
    """Sends ``signum`` to this process and lets the hub run until it was handled."""
    os.kill(os.getpid(), signum)
    green.sleep(0.05)


def test_signal_handler_runs_in_a_new_greenlet_that_may_block():
    seen = []

    def handler(tag, *, extra):
        green.sleep(0.01)  # blocking is fine: this is a greenlet, not the hub
        seen.append((tag, extra, green.getcurrent() is not green.get_hub()))

    before = std_signal.getsignal(std_signal.SIGUSR1)
    watcher = signal.signal_handler(std_signal.SIGUSR1, handler, "usr1", extra=1)
    try:
        deliver(std_signal.SIGUSR1)
        deliver(std_signal.SIGUSR1)
        assert seen == [("usr1", 1, True), ("usr1", 1, True)]
    finally:
        watcher.cancel()
    watcher.cancel()  # twice: nothing
    assert std_signal.getsignal(std_signal.SIGUSR1) == before


def test_two_watchers_on_one_signal_and_cancelling_one():
    calls = []
    first = signal.signal_handler(std_signal.SIGUSR2, calls.append, "first")
    second = signal.signal_handler(std_signal.SIGUSR2, calls.append, "second")
    try:
        deliver(std_signal.SIGUSR2)
        assert sorted(calls) == ["first", "second"]
        first.cancel()
        calls.clear()
        deliver(std_signal.SIGUSR2)
        assert calls == ["second"]
    finally:
        first.cancel()
        second.cancel()


def test_signal_handler_error_is_reported_and_raised_in_the_main_greenlet(capsys):
    def broken():
        raise ValueError("handler failed")

    watcher = signal.signal_handler(std_signal.SIGUSR1, broken)
    try:
        with pytest.raises(ValueError, match="handler failed"):  # as gevent: where main waits
            deliver(std_signal.SIGUSR1)
        assert green.spawn(lambda: "still running").get(timeout=5) == "still running"
    finally:
        watcher.cancel()
    assert "ValueError: handler failed" in capsys.readouterr().err


def test_cooperative_handler_error_interrupts_the_main_greenlets_wait():
    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    previous = signal.signal(std_signal.SIGALRM, handler)
    try:
        std_signal.setitimer(std_signal.ITIMER_REAL, 0.05)
        with pytest.raises(Interrupted):  # the stdlib raises it in the main thread's wait
            green.sleep(10)
    finally:
        std_signal.setitimer(std_signal.ITIMER_REAL, 0)
        signal.signal(std_signal.SIGALRM, previous)
    assert green.spawn(lambda: "hub alive").get(timeout=5) == "hub alive"


def test_signal_handler_rejects_non_callables_and_other_threads():
    with pytest.raises(TypeError):
        signal.signal_handler(std_signal.SIGUSR1, "not callable")
    errors = []

    def in_thread():
        try:
            signal.signal_handler(std_signal.SIGUSR1, print)
        except ValueError as exc:
            errors.append(exc)
        finally:
            green.get_hub().destroy()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])


def test_cooperative_signal_handler_blocks_in_a_greenlet_when_the_hub_runs():
    seen = []

    def handler(signum, frame):
        green.sleep(0.01)  # would raise BlockingSwitchOutError if run in the hub itself
        seen.append(signum)

    previous = signal.signal(std_signal.SIGUSR1, handler)
    try:
        assert signal.getsignal(std_signal.SIGUSR1) is handler
        assert std_signal.getsignal(std_signal.SIGUSR1) is not handler  # the wrapper is installed
        deliver(std_signal.SIGUSR1)  # arrives while the main greenlet sleeps: the hub runs
        assert seen == [std_signal.SIGUSR1]
    finally:
        assert signal.signal(std_signal.SIGUSR1, previous) is handler
    assert std_signal.getsignal(std_signal.SIGUSR1) == previous


def test_cooperative_signal_handler_runs_in_place_in_a_greenlet():
    def handler(signum, frame):
        raise LookupError(signum)

    previous = signal.signal(std_signal.SIGUSR2, handler)
    try:
        with pytest.raises(LookupError):  # raised where the greenlet runs, as the stdlib does
            os.kill(os.getpid(), std_signal.SIGUSR2)
            for _ in range(1000):
                pass
    finally:
        signal.signal(std_signal.SIGUSR2, previous)


def test_ctrl_c_noticed_in_a_greenlet_reaches_the_main_greenlet():
    previous = signal.signal(std_signal.SIGINT, std_signal.default_int_handler)
    try:
        assert signal.getsignal(std_signal.SIGINT) is std_signal.default_int_handler
        interrupter = green.spawn(_thread.interrupt_main)  # "Ctrl-C", noticed in that greenlet
        with pytest.raises(KeyboardInterrupt):
            green.sleep(1)  # the main greenlet gets it, where it waits
        interrupter.join(timeout=5)
        assert interrupter.successful()  # the greenlet that noticed it went on
    finally:
        std_signal.signal(std_signal.SIGINT, previous)


def test_stdlib_names():
    assert signal.SIGINT is std_signal.SIGINT and signal.SIG_DFL is std_signal.SIG_DFL
    assert signal.default_int_handler is std_signal.default_int_handler
    assert signal.signal is not std_signal.signal and "signal_handler" in signal.__all__
