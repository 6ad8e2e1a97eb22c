"""plait.green.subprocess: Popen, run and friends block only the calling greenlet (wait on the
child's pidfd, pipes through the hub's loop), with the stdlib's semantics and names."""

from __future__ import annotations

import subprocess as std_subprocess
import sys

import pytest

from plait import green
from plait.green import subprocess


def ticker(stop, ticks):
    """Counts loop turns until ``stop`` is set: proof that the hub kept running."""
    while not stop:
        ticks.append(1)
        green.sleep(0.01)


def test_names_are_the_stdlibs_where_not_cooperative():
    assert subprocess.PIPE is std_subprocess.PIPE
    assert subprocess.STDOUT is std_subprocess.STDOUT
    assert subprocess.DEVNULL is std_subprocess.DEVNULL
    assert subprocess.TimeoutExpired is std_subprocess.TimeoutExpired
    assert subprocess.CalledProcessError is std_subprocess.CalledProcessError
    assert subprocess.CompletedProcess is std_subprocess.CompletedProcess
    assert issubclass(subprocess.Popen, std_subprocess.Popen)
    assert subprocess.Popen is not std_subprocess.Popen
    for name in ("run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        assert callable(getattr(subprocess, name)) and name in subprocess.__all__


def test_two_greenlets_waiting_on_children_overlap():
    # Cooperative waits overlap: both start before either ends (a wait that blocked the thread
    # would end before the other greenlet started).
    events = []

    def wait_child():
        with subprocess.Popen(["sleep", "0.3"]) as proc:
            events.append("start")
            try:
                return proc.wait()
            finally:
                events.append("end")

    waiters = [green.spawn(wait_child) for _ in range(2)]
    green.joinall(waiters, raise_error=True)
    assert [g.value for g in waiters] == [0, 0]
    assert events == ["start", "start", "end", "end"], "the two waits did not overlap"


def test_wait_timeout_raises_and_the_hub_keeps_running():
    stop, ticks = [], []
    tick = green.spawn(ticker, stop, ticks)
    proc = subprocess.Popen(["sleep", "10"])
    try:
        with pytest.raises(subprocess.TimeoutExpired) as info:
            proc.wait(timeout=0.2)
        assert info.value.timeout == 0.2 and info.value.cmd == ["sleep", "10"]
        assert len(ticks) >= 3, "the hub did not run other greenlets while wait() waited"
        assert proc.poll() is None
    finally:
        proc.kill()
        assert proc.wait() == -9
        stop.append(True)
        tick.join()


def test_communicate_large_input_and_output():
    data = b"0123456789abcdef" * 40_000  # far more than a pipe holds: both directions interleave
    proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, err = proc.communicate(data)
    assert out == data and err is None and proc.returncode == 0


def test_communicate_timeout_keeps_partial_output_for_the_next_call():
    script = "import sys, time; print('first', flush=True); time.sleep(0.4); print('second')"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.communicate(timeout=0.2)
    out, _ = proc.communicate()
    assert out == "first\nsecond\n" and proc.returncode == 0


def test_run_check_output_call_and_friends():
    done = subprocess.run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert subprocess.check_output(["sh", "-c", "echo a; echo b >&2"], stderr=subprocess.STDOUT) == b"a\nb\n"
    assert subprocess.call(["sh", "-c", "exit 4"]) == 4
    assert subprocess.check_call(["true"]) == 0
    with pytest.raises(subprocess.CalledProcessError) as info:
        subprocess.check_call(["sh", "-c", "exit 5"])
    assert info.value.returncode == 5
    assert subprocess.getstatusoutput("echo hi; exit 2") == (2, "hi")
    assert subprocess.getoutput("echo there") == "there"
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(["sleep", "10"], timeout=0.1)


def test_stdout_read_line_by_line_while_other_greenlets_run():
    stop, ticks = [], []
    tick = green.spawn(ticker, stop, ticks)
    script = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.1)"
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as proc:
        lines = [line.strip() for line in proc.stdout]
    stop.append(True)
    tick.join()
    assert lines == ["0", "1", "2"]
    assert len(ticks) >= 5, "reading the pipe blocked the hub"


def test_pipeline_pipes_stay_blocking_for_the_next_child():
    # p1.stdout goes on to p2 as its stdin: it must not have been turned non-blocking.
    p1 = subprocess.Popen(["sh", "-c", "sleep 0.1; echo piped"], stdout=subprocess.PIPE)
    p2 = subprocess.Popen(["cat"], stdin=p1.stdout, stdout=subprocess.PIPE)
    p1.stdout.close()
    out, _ = p2.communicate()
    assert out == b"piped\n"
    assert p1.wait() == 0 and p2.returncode == 0


def test_writes_to_a_child_that_exited_raise_broken_pipe():
    proc = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    proc.wait()
    with pytest.raises(BrokenPipeError):
        proc.stdin.write(b"x" * 200_000)
        proc.stdin.flush()
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass  # a partly buffered write is flushed (and fails) on close
    assert proc.stdin.closed


def test_killing_a_waiting_greenlet_leaves_the_popen_usable():
    proc = subprocess.Popen(["sleep", "10"])
    waiter = green.spawn(proc.wait)
    green.sleep(0.05)
    waiter.kill()
    assert waiter.dead and isinstance(waiter.value, green.GreenletExit)
    proc.terminate()
    assert proc.wait(timeout=5) == -15  # the killed wait left nothing behind that steals this one


def test_many_greenlets_wait_on_one_popen():
    proc = subprocess.Popen(["sleep", "0.1"])
    waiters = [green.spawn(proc.wait) for _ in range(3)]
    green.joinall(waiters, raise_error=True)
    assert [g.value for g in waiters] == [0, 0, 0]
