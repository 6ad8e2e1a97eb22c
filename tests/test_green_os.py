"""plait.green.os: waitpid through pidfds (blocking only the calling greenlet), fork resetting
the child's hub, non-blocking fd helpers, and the stdlib's other names."""

from __future__ import annotations

import os as std_os
import time

import pytest

from plait import green
from plait.green import os


def child_exiting(code, delay=0.0):
    """Forks a child that sleeps ``delay`` then exits with ``code`` (no Python cleanup)."""
    pid = std_os.fork()
    if pid == 0:
        try:
            time.sleep(delay)
        finally:
            std_os._exit(code)
    return pid


def test_stdlib_names_and_gevent_extensions():
    assert os.getpid is std_os.getpid and os.path is std_os.path and os.O_NONBLOCK == std_os.O_NONBLOCK
    for name in ("fork", "waitpid", "make_nonblocking", "nb_read", "nb_write", "tp_read", "tp_write"):
        assert name in os.__all__
    assert "fork" in os.__implements__ and "waitpid" in os.__implements__
    assert os.waitpid is not std_os.waitpid and os.fork is not std_os.fork


def test_waitpid_of_two_children_overlaps():
    # Cooperative waits overlap: both start before either ends (a wait that blocked the thread
    # would end before the other greenlet started).
    pids = [child_exiting(3, 0.3), child_exiting(4, 0.3)]
    events = []

    def wait(pid):
        events.append("start")
        try:
            return os.waitpid(pid, 0)
        finally:
            events.append("end")

    waiters = [green.spawn(wait, pid) for pid in pids]
    green.joinall(waiters, raise_error=True)
    assert [g.value for g in waiters] == [(pids[0], 3 << 8), (pids[1], 4 << 8)]
    assert events == ["start", "start", "end", "end"], "the waits did not overlap"


def test_waitpid_wnohang_and_any_child():
    # "Any child" (-1) needs a process whose only child is the one made here: not the test
    # process, where earlier tests leave long-lived helpers (a fork server, a resource tracker).
    import subprocess
    import sys

    code = """
import os as std_os, time
from plait.green import os
pid = std_os.fork()
if pid == 0:
    time.sleep(0.2)
    std_os._exit(0)
assert os.waitpid(pid, os.WNOHANG) == (0, 0)
assert os.waitpid(-1, 0) == (pid, 0)  # "any child": the polling path
try:
    os.waitpid(-1, 0)
except ChildProcessError:
    print("no more children")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no more children"


def test_waitpid_of_a_process_that_is_not_a_child_raises():
    with pytest.raises(ChildProcessError):
        os.waitpid(1, 0)


def test_killed_waitpid_leaves_nothing_behind():
    pid = child_exiting(7, 0.3)
    waiter = green.spawn(os.waitpid, pid, 0)
    green.sleep(0.05)
    waiter.kill()
    assert waiter.successful()
    assert os.waitpid(pid, 0) == (pid, 7 << 8)


def test_fork_and_watch_calls_back_and_leaves_the_child_to_waitpid():
    seen = []
    pid = os.fork_and_watch(
        lambda watcher: seen.append((watcher.pid, watcher.rstatus)), fork=lambda: child_exiting(5, 0.05)
    )
    assert os.waitpid(pid, 0) == (pid, 5 << 8)
    with green.Timeout(10):
        while not seen:
            green.sleep(0.01)
    assert seen == [(pid, 5 << 8)]


def test_fork_and_watch_still_calls_back_when_waitpid_reaped_the_child_first():
    seen = []
    pid = os.fork_and_watch(
        lambda watcher: seen.append((watcher.pid, watcher.rstatus)), fork=lambda: child_exiting(6, 0)
    )
    # Block the thread (no greenlet runs) until the child has exited, then reap it before its
    # watcher greenlet ever ran.
    std_os.waitid(std_os.P_PID, pid, std_os.WEXITED | std_os.WNOWAIT)
    assert os.waitpid(pid, 0) == (pid, 6 << 8)
    with green.Timeout(10):
        while not seen:
            green.sleep(0.01)
    assert seen == [(pid, 6 << 8)]


def run_in_fork(body):
    """Forks with plait.green.os.fork; the child runs ``body()`` and exits with its result
    (an int) or 99 on an exception. Returns the child's exit code."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = body()
        finally:
            std_os._exit(code)
    return std_os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_fork_gives_the_child_a_new_hub_and_only_the_forking_greenlet():
    parent_hub = green.get_hub()
    ran_in_child = []

    def background():
        green.sleep(0.05)
        ran_in_child.append(std_os.getpid())

    bg = green.spawn(background)
    green.sleep(0)  # bg waits on the parent's hub

    def child():
        hub = green.get_hub()
        if hub is parent_hub or hub.loop is parent_hub.loop:
            return 1
        if green.spawn(lambda: 21 * 2).get(timeout=5) != 42:
            return 2
        green.sleep(0.1)  # bg's timer would have fired by now in the parent's loop
        if ran_in_child:
            return 3
        try:
            bg.join()
        except green.BlockedForever:
            return 0
        return 4

    assert run_in_fork(child) == 0
    bg.join()
    assert ran_in_child == [std_os.getpid()]  # the parent's greenlet ran, in the parent only


def test_fork_from_a_greenlet_reparents_it_to_the_child_hub():
    def forker():
        def child():
            me = green.getcurrent()
            if me.parent is not green.get_hub():
                return 1
            green.sleep(0.01)
            return 0

        return run_in_fork(child)

    assert green.spawn(forker).get(timeout=10) == 0


def test_nb_read_and_nb_write_wait_cooperatively():
    r, w = std_os.pipe()
    try:
        assert os.make_nonblocking(r) is True and os.make_nonblocking(r) is None
        os.make_nonblocking(w)
        reader = green.spawn(os.nb_read, r, 100)
        green.sleep(0.05)
        assert not reader.ready()  # waiting, and the hub ran this greenlet meanwhile
        assert os.nb_write(w, b"hello") == 5
        assert reader.get(timeout=5) == b"hello"

        big = b"x" * (1 << 20)  # more than the pipe holds: nb_write returns what it took
        written = os.nb_write(w, big)
        assert 0 < written < len(big)
        drained = []
        drain = green.spawn(lambda: drained.append(os.nb_read(r, 1 << 20)))
        assert os.nb_write(w, big[written:]) > 0  # waited until the reader made room
        drain.join()
        assert drained and drained[0]
    finally:
        std_os.close(r)
        std_os.close(w)


def test_tp_read_and_tp_write_on_a_regular_file(tmp_path):
    path = tmp_path / "data"
    fd = std_os.open(path, std_os.O_RDWR | std_os.O_CREAT)
    try:
        assert os.tp_write(fd, b"pool") == 4
        std_os.lseek(fd, 0, std_os.SEEK_SET)
        assert os.tp_read(fd, 10) == b"pool"
    finally:
        std_os.close(fd)
