"""plait.dump() in process, and `plait dump PID` through the debug channel of another process:
threads, locks and their sites, deadlocks, asyncio await trees, greenlets, process pool workers;
a process stuck in a C call; the channel's refusals; SIGQUIT; `plait run`; `plait --help`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import plait
import plait.debug
from plait import _plait, threads
from plait.debug import _cli

pytestmark = pytest.mark.timeout(60)


def _wait_for(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class Child:
    """A Python child process running ``source`` (with ``plait run`` or plainly), which prints
    ``ready`` when it is where the test wants it."""

    def __init__(self, tmp_path: Path, source: str, *, run: bool = True, name: str = "child.py") -> None:
        self.script = tmp_path / name
        self.script.write_text(textwrap.dedent(source))
        cmd = (
            [sys.executable, "-m", "plait", "run", str(self.script)]
            if run
            else [sys.executable, str(self.script)]
        )
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if line.strip() != "ready":
            self.stop()
            raise AssertionError(f"child did not get ready: {line!r} {self.stderr}")
        self.pid = self.proc.pid

    stderr = ""

    def dump(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "plait", "dump", *args, str(self.pid)],
            capture_output=True,
            text=True,
            timeout=50,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        _, self.stderr = self.proc.communicate(timeout=20)


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    made: list[Child] = []

    def make(source: str, **kwargs: object) -> Child:
        c = Child(tmp_path, source, **kwargs)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


DEADLOCK = """\
    import threading
    import plait.threads as pt
    from plait import _plait

    pt.set_deadlock_detection("warn")
    accounts = pt.Lock(name="accounts")
    ledger = pt.Lock(name="ledger")
    barrier = threading.Barrier(2)

    def transfer():
        with accounts:  # transfer takes accounts
            barrier.wait()
            with ledger:
                pass

    def audit():
        with ledger:  # audit takes ledger
            barrier.wait()
            with accounts:
                pass

    t1 = threading.Thread(target=transfer, name="transfer", daemon=True)
    t2 = threading.Thread(target=audit, name="audit", daemon=True)
    t1.start()
    t2.start()
    while not _plait.deadlocks():
        threading.Event().wait(0.01)
    print("ready", flush=True)
    t1.join()
"""


# The interpreter did not pick the request up within 1 s, or (when the request came just as the
# child entered the C call) it picked it up and stalled midway.
UNAVAILABLE = (
    r"Python stacks unavailable: the interpreter (did not respond within 1 s|started the report but "
    r"did not finish it within 10 s)"
)


def test_in_process_dump_shows_threads_held_locks_sites_and_waits():
    db = threads.Lock(name="db")
    db.acquire()  # the site: this line
    site_line = sys._getframe().f_lineno - 1
    waiter = threading.Thread(target=lambda: db.acquire() and db.release(), name="waiter")
    waiter.start()
    try:
        _wait_for(lambda: _plait.snapshot()[1], "the waiter to block")
        text = plait.dump()
        report = json.loads(plait.dump(json=True))
    finally:
        db.release()
        waiter.join()
    assert f"holds Lock 'db', acquired at {__file__}:{site_line} (in test_in_process_dump" in text
    assert "Thread 'waiter'" in text and "waits for Lock 'db' (without timeout" in text
    me = next(t for t in report["threads"] if t["current"])
    assert me["stack"][-1]["function"] == "test_in_process_dump_shows_threads_held_locks_sites_and_waits"
    (lock,) = [lock for lock in report["locks"] if lock["name"] == "db"]
    assert lock["holders"] == [me["ident"]] and lock["acquired_at"].endswith(
        f":{site_line} (in {me['stack'][-1]['function']})"
    )
    other = next(t for t in report["threads"] if t["name"] == "waiter")
    assert other["waits_for"]["lock"] == lock["id"] and not other["waits_for"]["timed"]


def test_deadlocked_child_dumped_from_outside_shows_both_threads_locks_sites_and_the_cycle(child):
    c = child(DEADLOCK)
    out = c.dump()
    assert out.returncode == 0, out.stderr
    text = out.stdout
    script = str(c.script)
    assert "Found one deadlock (2 threads):" in text
    assert "Thread 'transfer'" in text and "Thread 'audit'" in text
    assert "waits for Lock 'ledger', held by Thread 'audit'" in text
    assert "waits for Lock 'accounts', held by Thread 'transfer'" in text
    assert f"Lock 'accounts' was acquired at {script}:11 (in transfer)" in text
    assert f"Lock 'ledger' was acquired at {script}:17 (in audit)" in text
    assert f"holds Lock 'accounts', acquired at {script}:11 (in transfer)" in text
    report = json.loads(c.dump("--json").stdout)
    (cycle,) = report["deadlocks"]
    names = {t["ident"]: t["name"] for t in report["threads"]}
    assert sorted(names[e["thread"]] for e in cycle["edges"]) == ["audit", "transfer"]
    assert report["python"]["available"] and report["source"] == "python"


def test_asyncio_program_shows_its_await_tree(child):
    c = child(
        """\
        import asyncio
        import functools
        import plait.aio

        async def inner():
            fut = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(functools.partial(print, "ready", flush=True))
            await fut

        async def leaf():
            await asyncio.create_task(inner(), name="inner")

        async def middle():
            await leaf()

        async def outer():
            await middle()

        async def main():
            await asyncio.create_task(outer(), name="outer")

        plait.aio.run(main())
        """
    )
    report = json.loads(c.dump("--json").stdout)
    (loop,) = [lp for lp in report["asyncio"] if lp["task_count"] == 3]
    assert loop["loop"] == "plait.aio._loop.EventLoop" and loop["running"]
    (root,) = loop["tasks"]
    assert root["coroutine"] == "main" and [f["function"] for f in root["stack"]] == ["main"]
    (outer,) = root["awaits"]
    assert outer["name"] == "outer"
    assert [f["function"] for f in outer["stack"]] == ["outer", "middle", "leaf"]
    (inner,) = outer["awaits"]
    assert inner["name"] == "inner" and inner["awaits"] == [] and inner["awaits_other"] == "<Future pending>"
    text = c.dump().stdout
    assert "Task 'outer' (pending) outer()" in text and "Task 'inner' (pending) inner()" in text


def test_process_stuck_in_a_c_call_still_reports_the_lock_graph(child):
    c = child(
        """\
        import ctypes, threading
        import plait.debug, plait.threads as pt
        from plait import _plait

        db = pt.Lock(name="db")
        db.acquire()
        threading.Thread(target=db.acquire, name="waiter", daemon=True).start()
        while not _plait.snapshot()[1]:
            threading.Event().wait(0.01)
        print("ready", flush=True)
        ctypes.PyDLL(None).sleep(60)  # PyDLL keeps the GIL for the call
        """
    )
    out = c.dump()
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert re.search(UNAVAILABLE, text), text
    assert f"holds Lock 'db', acquired at {c.script}:6 (in <module>)" in text
    assert "waits for Lock 'db' (without timeout" in text
    report = json.loads(c.dump("--json").stdout)
    assert report["source"] == "native" and not report["python"]["available"]
    assert [lock["label"] for lock in report["locks"]] == ["Lock 'db'"]
    assert report["asyncio"] is None


IDLE = """\
    import threading
    print("ready", flush=True)
    threading.Event().wait(60)
"""


def _ask(pid: int, data: bytes, uid: int | None = None) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(_cli.channel_name(os.getuid() if uid is None else uid, pid))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_and_oversized_requests_get_an_error_and_the_target_lives_on(child):
    c = child(IDLE)
    assert _ask(c.pid, b"EVAL __import__('os').system('id')\n").startswith(b"ERROR unknown request")
    assert _ask(c.pid, b"\xff\xfe\n").startswith(b"ERROR unknown request")
    assert _ask(c.pid, b"D" * 100_000).startswith(b"ERROR request too long")
    assert _ask(c.pid, b"DUM").startswith(b"ERROR incomplete request")
    assert c.proc.poll() is None
    assert _ask(c.pid, b"DUMP\n").startswith(f"plait dump of process {c.pid}".encode())


@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to connect as another user (check_peer is unit-tested in Rust)"
)
def test_another_user_is_refused(child):
    c = child(IDLE)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, _ask(c.pid, b"DUMP\n", uid=0)[:200])
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        answer = f.read()
    os.waitpid(pid, 0)
    assert answer.startswith(
        b"ERROR permission denied: this process (uid 0) answers its own user only, not uid 65534"
    )
    assert c.proc.poll() is None


def test_no_channel_without_enable(child):
    c = child(IDLE, run=False)
    assert _cli.request(c.pid) is None
    out = c.dump()
    assert out.returncode in (0, 1)
    assert f"process {c.pid} has no plait debug channel" in out.stderr


def _py_spy() -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return shutil.which("py-spy") or (beside if os.access(beside, os.X_OK) else None)


@pytest.mark.skipif(_py_spy() is None, reason="py-spy is not installed (the `debug` extra)")
@pytest.mark.skipif(
    bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    reason="py-spy (0.4) reads no frames of a free-threaded interpreter: it lists the threads only",
)
def test_without_a_channel_py_spy_shows_the_stacks_and_says_what_it_cannot_see(child):
    c = child(IDLE, run=False)
    out = c.dump()
    if "Permission denied" in out.stderr or "ptrace" in out.stderr.lower():
        pytest.skip(f"py-spy may not trace here: {out.stderr.strip()[-200:]}")
    assert out.returncode == 0, out.stderr
    assert "not shown: plait locks and deadlocks, asyncio tasks, greenlets" in out.stderr
    assert '"MainThread"' in out.stdout and f"{c.script.name}:3" in out.stdout


def test_an_answer_from_another_process_is_not_trusted(child):
    c = child(IDLE, run=False)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as squatter:
        squatter.bind(_cli.channel_name(os.getuid(), c.pid))  # as any local user could
        squatter.listen()
        with pytest.raises(_cli.DumpError, match=f"served by process {os.getpid()} .*not by process {c.pid}"):
            _cli.request(c.pid)


def test_sigquit_prints_the_dump_to_stderr(child):
    c = child(IDLE)
    os.kill(c.pid, signal.SIGQUIT)
    assert c.proc.stderr is not None
    lines = []
    for line in c.proc.stderr:
        lines.append(line)
        if line.startswith("Thread 'MainThread'"):
            break
    assert lines[0].startswith(f"plait dump of process {c.pid}"), lines
    assert c.proc.poll() is None, "SIGQUIT no longer kills the process"


def test_sigquit_answers_while_a_c_call_holds_the_gil(child):
    c = child(
        """\
        import re
        import plait.debug, plait.threads as pt

        db = pt.Lock(name="db")
        db.acquire()
        slow = re.compile(r"(a+)+$")
        print("ready", flush=True)
        slow.match("a" * 64 + "b")  # backtracks for ages, holding the GIL
        """
    )
    os.kill(c.pid, signal.SIGQUIT)
    assert c.proc.stderr is not None
    lines = []
    for line in c.proc.stderr:
        lines.append(line)
        if line.startswith("  holds Lock 'db'"):
            break
    text = "".join(lines)
    assert f"plait dump of process {c.pid} (from plait's native channel thread)" in text
    assert re.search(UNAVAILABLE, text), text
    assert f"holds Lock 'db', acquired at {c.script}:5 (in <module>)" in text


def test_in_process_channel_answers_and_leaves_nothing_behind():
    name = plait.debug.enable(sigquit=False)
    try:
        assert plait.debug.enabled() and name == f"plait-{os.getuid()}-{os.getpid()}"
        assert plait.debug.enable() == name, "enable() is idempotent"
        text = _cli.request(os.getpid())
    finally:
        plait.debug.disable()
    assert text is not None and text.startswith(f"plait dump of process {os.getpid()}")
    assert "plait-debug-channel" not in text, "the channel's helper is not reported"
    assert not plait.debug.enabled() and _cli.request(os.getpid()) is None


def test_the_channel_threads_do_not_hide_a_self_deadlock(tmp_path):
    script = tmp_path / "self.py"
    script.write_text(
        "import plait, plait.debug, plait.threads as pt\n"
        "plait.debug.enable()\n"
        "lock = pt.Lock()\n"
        "lock.acquire()\n"
        "try:\n"
        "    lock.acquire()\n"
        "except plait.DeadlockError:\n"
        "    print('raised')\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50)
    assert out.stdout == "raised\n", out.stderr


def test_a_forked_child_has_no_channel_and_the_parent_keeps_its_own(child):
    c = child(
        """\
        import os
        import threading
        import plait.debug
        from plait.debug import _cli

        pid = os.fork()
        if pid == 0:
            os._exit(0 if not plait.debug.enabled() and _cli.request(os.getpid()) is None else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        print("ready", flush=True)
        threading.Event().wait(60)
        """
    )
    assert _ask(c.pid, b"DUMP\n").startswith(f"plait dump of process {c.pid}".encode())


def test_greenlets_are_listed():
    from plait import green
    from plait.green.event import Event

    ev = Event()
    g = green.spawn(ev.wait)
    g.name = "sleeper"
    green.sleep(0)
    try:
        report = json.loads(plait.dump(json=True))
        text = plait.dump()
    finally:
        ev.set()
        g.join()
    (mine,) = [x for x in report["greenlets"] if x["name"] == "sleeper"]
    assert mine["state"] == "suspended" and mine["target"] == "Event.wait"
    assert [f["function"] for f in mine["stack"]][1] == "wait"
    assert "Greenlet 'sleeper'" in text


def test_process_pool_workers_show_their_current_task():
    from plait.processes import ProcessPool

    with ProcessPool(1) as pool:
        fut = pool.submit(time.sleep, 30)

        def busy() -> bool:
            pools = json.loads(plait.dump(json=True))["process_pools"]
            return any(w["task"] for p in pools for w in p["workers"])

        _wait_for(busy, "the worker to start the task", timeout=30)
        report = json.loads(plait.dump(json=True))
        text = plait.dump()
        pool.cancel_running(fut)
    (worker,) = [w for p in report["process_pools"] for w in p["workers"] if w["task"]]
    assert worker["task"]["function"] == "sleep" and worker["task"]["call"] == "sleep(30)"
    assert f"worker pid {worker['pid']}: running sleep(30)" in text


def test_plait_run_runs_the_script_as_main(tmp_path):
    script = tmp_path / "show.py"
    script.write_text("import sys, plait.debug\nprint(__name__, sys.argv[1:], plait.debug.enabled())\n")
    out = subprocess.run(
        [sys.executable, "-m", "plait", "run", str(script), "a", "--b"],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    )
    assert out.stdout == "__main__ ['a', '--b'] True\n"


def test_help_lists_every_command_on_one_line():
    out = subprocess.run(
        [sys.executable, "-m", "plait", "--help"],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
        env={**os.environ, "COLUMNS": "80"},
    ).stdout
    lines = out.splitlines()
    start = lines.index("  COMMAND") + 1
    commands = [line.split()[0] for line in lines[start:] if line.startswith("    ") and line.split()]
    assert {"demo", "scale", "bench", "dump", "run"} <= set(commands)
    for line in lines[start:]:
        if not line.strip():
            break
        assert line.startswith("    ") and not line.startswith("      "), f"a help line wraps: {line!r}"
