"""plait.green.monkey: each patch runs in a child process (the pytest process is never
patched), which reports what it saw as JSON on its last line of output.

Patches that need plait.green modules this checkout may lack (socket, ssl, select, queue, the
thread locks) are skipped with ``pytest.importorskip``; the others always run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
PRELUDE = "import json, sys, warnings\nwarnings.simplefilter('error')\n"

# The plait.green modules each patch needs besides the core (patch name -> modules).
NEEDS = {
    "socket": ["socket"],
    "dns": ["socket"],
    "ssl": ["ssl", "socket"],
    "select": ["select", "selectors"],
    "thread": ["lock", "local", "event"],
    "queue": ["queue"],
}


def available(patch):
    return all(importlib.util.find_spec(f"plait.green.{m}") is not None for m in NEEDS.get(patch, ()))


def need(*patches):
    for patch in patches:
        for module in NEEDS.get(patch, ()):
            reason = f"plait.green.{module} is not in this checkout"
            pytest.importorskip(f"plait.green.{module}", reason=reason)


def missing_options():
    """``--no-X`` for the patches whose modules this checkout lacks."""
    return [f"--no-{p}" for p in ("socket", "ssl", "select", "thread", "queue") if not available(p)]


def patch_all_kwargs():
    return ", ".join(f"{p}=False" for p in ("socket", "ssl", "select", "thread", "queue") if not available(p))


def run_child(code, *args, timeout=60, cwd=None):
    """Runs ``code`` in a new interpreter; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def report(code, *args, **kwargs):
    """Runs ``code`` in a child, which must exit 0 and print JSON last; returns that."""
    done = run_child(code, *args, **kwargs)
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- one patch at a time ----------------------------------------------------------------------


def test_patch_time_os_signal_subprocess_replace_and_keep_originals():
    seen = report(
        """
        import os, signal, subprocess, time
        originals = {"sleep": time.sleep, "fork": os.fork, "waitpid": os.waitpid,
                     "signal": signal.signal, "Popen": subprocess.Popen, "run": subprocess.run}
        from plait.green import monkey
        import plait.green.os, plait.green.signal, plait.green.subprocess, plait.green.time
        assert not monkey.is_anything_patched() and not monkey.is_module_patched("time")
        monkey.patch_time(); monkey.patch_os(); monkey.patch_signal(); monkey.patch_subprocess()
        print(json.dumps({
            "sleep": time.sleep is plait.green.time.sleep,
            "fork": os.fork is plait.green.os.fork,
            "waitpid": os.waitpid is plait.green.os.waitpid,
            "signal": signal.signal is plait.green.signal.signal,
            "Popen": subprocess.Popen is plait.green.subprocess.Popen,
            "run": subprocess.run is plait.green.subprocess.run,
            "originals": all(monkey.get_original(mod, name) is originals[name]
                             for mod, name in [("time", "sleep"), ("os", "fork"), ("os", "waitpid"),
                                               ("signal", "signal"), ("subprocess", "Popen"),
                                               ("subprocess", "run")]),
            "list": monkey.get_original("os", ["fork", "getpid"]) == [originals["fork"], os.getpid],
            "alternatives": monkey.get_original(("no_such_module", "time"), "sleep") is originals["sleep"],
            "queries": [monkey.is_module_patched("time"), monkey.is_object_patched("os", "waitpid"),
                        monkey.is_object_patched("os", "getpid"), monkey.is_module_patched("socket")],
            "saved": sorted(monkey.saved["subprocess"]),
        }))
        """
    )
    assert all(seen[k] for k in ("sleep", "fork", "waitpid", "signal", "Popen", "run", "originals"))
    assert seen["list"] and seen["alternatives"]
    assert seen["queries"] == [True, True, False, False]
    assert seen["saved"] == ["Popen", "call", "check_call", "check_output", "run"]


def test_patch_item_remove_item_and_patch_module():
    seen = report(
        """
        import types
        from plait.green import monkey
        target = types.ModuleType("fake_target"); target.a = 1; target.b = 2; target.gone = 3
        source = types.ModuleType("fake_source"); source.__implements__ = ["a"]; source.a = 10
        monkey.patch_module(target, source)
        monkey.patch_item(target, "b", 20)
        monkey.patch_item(target, "b", 200)  # the first original stays saved
        monkey.remove_item(target, "gone")
        print(json.dumps({"a": target.a, "b": target.b, "gone": hasattr(target, "gone"),
                          "saved": monkey.saved["fake_target"],
                          "patched": monkey.is_object_patched("fake_target", "gone")}))
        """
    )
    assert seen == {"a": 10, "b": 200, "gone": False, "saved": {"a": 1, "b": 2, "gone": 3}, "patched": True}


def test_patch_thread_makes_threads_greenlets():
    need("thread")
    seen = report(
        """
        import time
        from plait.green import monkey
        monkey.patch_thread(); monkey.patch_time()
        import threading, _thread
        import greenlet
        from plait.green import Greenlet
        from plait.green.thread import LockType
        seen = {}
        main = threading.main_thread()
        seen["main_is_current"] = threading.current_thread() is main
        def work(i):
            me = threading.current_thread()
            seen.setdefault("kinds", []).append(type(greenlet.getcurrent()).__name__)
            seen.setdefault("names", []).append(me.name)
            seen["main_seen_from_thread"] = threading.main_thread() is main and me is not main
            with lock:
                seen.setdefault("idents", set()).add(threading.get_ident())
            seen.setdefault("order", []).append("start")
            time.sleep(0.3)  # cooperative: the threads' sleeps overlap
            seen["order"].append("end")
        lock = threading.Lock()
        threads = [threading.Thread(target=work, args=(i,), name=f"t{i}") for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen["alive"] = [t.is_alive() for t in threads]
        seen["idents"] = len(seen["idents"])
        seen["lock_type"] = isinstance(lock, LockType) and isinstance(_thread.allocate_lock(), LockType)
        seen["rlock"] = type(threading.RLock()).__name__
        seen["event"] = type(threading.Event()).__module__
        c = threading.Condition()
        def waiter():
            with c:
                seen["notified"] = c.wait(5)
        t = threading.Thread(target=waiter); t.start()
        time.sleep(0.05)
        with c:
            c.notify()
        t.join()
        g = Greenlet.spawn(threading.current_thread)
        dummy = g.get()
        seen["dummy"] = type(dummy).__name__
        time.sleep(0.01)
        seen["dummies_dropped"] = dummy.ident == id(g) and dummy not in threading.enumerate()
        seen["originals"] = monkey.get_original("_thread", "allocate_lock") is not _thread.allocate_lock
        print(json.dumps(seen), flush=True)
        """
    )
    assert seen["main_is_current"] and seen["main_seen_from_thread"]
    assert seen["kinds"] == ["Greenlet"] * 3 and seen["names"] == ["t0", "t1", "t2"]
    assert seen["idents"] == 3 and seen["alive"] == [False] * 3
    assert seen["order"] == ["start"] * 3 + ["end"] * 3, "the threads' sleeps did not overlap"
    assert seen["lock_type"] and seen["rlock"] == "_RLock" and seen["event"] == "plait.green.event"
    assert seen["notified"] is True and seen["dummy"] == "_DummyThread" and seen["dummies_dropped"]
    assert seen["originals"]


def test_non_daemon_green_thread_is_joined_at_exit():
    need("thread")
    done = run_child(
        """
        from plait.green import monkey
        monkey.patch_thread(); monkey.patch_time()
        import threading, time
        def late():
            time.sleep(0.1)
            print("joined", flush=True)
        threading.Thread(target=late).start()
        print("main done", flush=True)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["main", "done", "joined"]


def test_patch_queue_uses_green_queues():
    need("queue", "thread")
    seen = report(
        """
        from plait.green import monkey
        monkey.patch_thread(); monkey.patch_time(); monkey.patch_queue()
        import queue, threading, time
        import plait.green.queue as gq
        q = queue.Queue()
        threading.Thread(target=lambda: (time.sleep(0.05), q.put("item"))).start()
        got = q.get(timeout=5)
        try:
            queue.SimpleQueue().get(timeout=0.01)
            empty = False
        except queue.Empty:
            empty = True
        print(json.dumps({"types": [queue.Queue is gq.Queue, queue.SimpleQueue is gq.SimpleQueue,
                                    queue.LifoQueue is gq.LifoQueue, queue.PriorityQueue is gq.PriorityQueue],
                          "got": got, "empty": empty}))
        """
    )
    assert seen == {"types": [True] * 4, "got": "item", "empty": True}


def test_patch_all_replaces_everything_and_is_idempotent():
    need("socket", "ssl", "select", "thread", "queue")
    seen = report(
        """
        import select, selectors, socket, ssl
        originals = {"socket": socket.socket, "SSLContext": ssl.SSLContext, "select": select.select,
                     "epoll": select.epoll, "EpollSelector": selectors.EpollSelector}
        from plait.green import monkey
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = monkey.patch_all()
            again = monkey.patch_all()
            more = monkey.patch_all(sys=True)
        import plait.green.socket as gs, plait.green.ssl as gssl, plait.green.select as gsel
        print(json.dumps({
            "first": first, "again": again, "more": more,
            "warnings": [type(w.message).__name__ for w in caught],
            "socket": socket.socket is gs.socket, "ssl": ssl.SSLContext is gssl.SSLContext,
            "select": select.select is gsel.select,
            "removed": [hasattr(select, "epoll"), hasattr(selectors, "EpollSelector")],
            "originals": all(monkey.get_original(m, n) is originals[n] for m, n in
                             [("socket", "socket"), ("ssl", "SSLContext"), ("select", "select"),
                              ("select", "epoll"), ("selectors", "EpollSelector")]),
            "modules": sorted(m for m in monkey.saved if not m.startswith("_plait")),
        }))
        """
    )
    assert seen["first"] is True and seen["again"] is None and seen["more"] is True
    assert seen["warnings"] == ["MonkeyPatchWarning"]  # patching more than once, with other arguments
    assert seen["socket"] and seen["ssl"] and seen["select"] and seen["originals"]
    assert seen["removed"] == [False, False]
    patched = ("os", "queue", "select", "selectors", "signal", "socket", "ssl", "subprocess", "threading")
    assert set(patched) <= set(seen["modules"])


# -- imported too early -----------------------------------------------------------------------


EARLY_USER = """\
from socket import create_connection
from ssl import SSLContext
import socket

class MySocket(socket.socket):
    pass
"""


def test_too_late_warning_names_each_module_imported_before(tmp_path):
    need("socket", "ssl", "select", "thread", "queue")
    (tmp_path / "early_user.py").write_text(EARLY_USER)
    (tmp_path / "early_other.py").write_text("from socket import socketpair\n")
    seen = report(
        """
        sys.path.insert(0, sys.argv[1])
        import early_user, early_other
        from plait.green import monkey
        from plait.exceptions import PlaitWarning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            monkey.patch_all()
        late = [w for w in caught if issubclass(w.category, monkey.PatchedTooLateWarning)]
        print(json.dumps({"count": len(late), "message": str(late[0].message) if late else "",
                          "plait": all(issubclass(w.category, PlaitWarning) for w in late)}))
        """,
        str(tmp_path),
    )
    assert seen["count"] == 1 and seen["plait"]
    message = seen["message"]
    assert "early_user (socket.create_connection, ssl.SSLContext)" in message
    assert "early_other (socket.socketpair)" in message
    assert "early_user.MySocket (subclass of socket.socket)" in message
    assert "python -m plait.green.monkey" in message


def test_too_late_warning_mechanism_with_a_stand_in_ssl_module(tmp_path):
    # The same check against a stand-in plait.green.ssl: runs whatever this checkout has.
    (tmp_path / "early_ssl_user.py").write_text("from ssl import SSLContext\n")
    seen = report(
        """
        import ssl, types
        sys.path.insert(0, sys.argv[1])
        import early_ssl_user
        stand_in = types.ModuleType("plait.green.ssl")
        stand_in.__implements__ = ["SSLContext"]
        stand_in.SSLContext = type("SSLContext", (ssl.SSLContext,), {"__module__": "plait.green.ssl"})
        sys.modules["plait.green.ssl"] = stand_in
        from plait.green import monkey
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            monkey.patch_ssl()
            monkey.patch_ssl(_first_time=False)
        print(json.dumps({"messages": [str(w.message) for w in caught],
                          "category": [w.category.__name__ for w in caught],
                          "patched": ssl.SSLContext is stand_in.SSLContext}))
        """,
        str(tmp_path),
    )
    assert seen["patched"] and seen["category"] == ["PatchedTooLateWarning"]
    assert "early_ssl_user (ssl.SSLContext)" in seen["messages"][0]
    assert "plait.green" not in seen["messages"][0].split(":", 1)[1].split(". Patch first")[0]


def test_patching_first_warns_about_nothing():
    seen = report(
        f"""
        from plait.green import monkey
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            monkey.patch_all({patch_all_kwargs()})
        print(json.dumps([f"{{w.category.__name__}}: {{w.message}}" for w in caught]))
        """
    )
    assert seen == []


# -- python -m plait.green.monkey --------------------------------------------------------------


SCRIPT = """\
import json, sys, time
from plait.green import monkey
import plait.green.time
print(json.dumps({"argv": sys.argv, "name": __name__, "patched": time.sleep is plait.green.time.sleep,
                  "original": monkey.get_original("time", "sleep") is not plait.green.time.sleep,
                  "path0": sys.path[0]}))
sys.exit(int(sys.argv[-1]))
"""


def test_run_a_script_patched_with_argv_and_exit_code(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, "-m", "plait.green.monkey", *missing_options(), str(script), "a", "b", "3"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "argv": [str(script), "a", "b", "3"],
        "name": "__main__",
        "patched": True,
        "original": True,
        "path0": str(tmp_path),
    }


def test_run_a_module_patched_and_options(tmp_path):
    (tmp_path / "runnable.py").write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, "-m", "plait.green.monkey", "--time", "--module", "runnable", "x", "0"],
        env={**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), ENV["PYTHONPATH"]])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["argv"][1:] == ["x", "0"] and seen["name"] == "__main__" and seen["patched"]


def test_usage_and_unknown_option():
    done = subprocess.run(
        [sys.executable, "-m", "plait.green.monkey", "--frobnicate", "x.py"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "cannot patch 'frobnicate'" in done.stderr and "usage:" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "plait.green.monkey"], env=ENV, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "usage:" in done.stdout


# -- patched programs: cooperative, Ctrl-C, nothing left behind -------------------------------


def test_patched_subprocess_os_and_time_are_cooperative():
    # Two greenlets each make one blocking call: cooperative calls overlap (both start before
    # either ends); a call that blocked the thread would end before the other greenlet starts.
    seen = report(
        f"""
        from plait.green import monkey
        monkey.patch_all({patch_all_kwargs()})
        import os, subprocess, time
        from plait import green
        def order(fn, n=2):
            events = []
            def one(i):
                events.append(f"start {{i}}")
                fn()
                events.append(f"end {{i}}")
            green.joinall([green.spawn(one, i) for i in range(n)], raise_error=True)
            return events
        def run_child():
            assert subprocess.run(["sleep", "0.3"]).returncode == 0
        def fork_child():
            pid = os.fork()
            if pid == 0:
                time.sleep(0.3)
                os._exit(0)
            assert os.waitpid(pid, 0) == (pid, 0)
        def sleeper():
            time.sleep(0.3)
        children = open(f"/proc/self/task/{{os.getpid()}}/children").read().split()
        print(json.dumps({{"subprocess": order(run_child), "fork": order(fork_child), "sleep": order(sleeper),
                          "children_left": children}}))
        """
    )
    for what in ("subprocess", "fork", "sleep"):
        assert sorted(seen[what][:2]) == ["start 0", "start 1"], f"{what} blocked the thread: {seen[what]}"
        assert sorted(seen[what][2:]) == ["end 0", "end 1"]
    assert seen["children_left"] == []


def test_ctrl_c_raises_keyboard_interrupt_in_the_main_greenlet():
    code = f"""
        from plait.green import monkey
        monkey.patch_all({patch_all_kwargs()})
        import time
        import greenlet
        from plait import green
        workers = [green.spawn(time.sleep, 30) for _ in range(2)]
        print("ready", flush=True)
        try:
            time.sleep(30)  # the main greenlet waits; the hub polls
            print(json.dumps({{"interrupted": False}}))
        except KeyboardInterrupt:
            main = greenlet.getcurrent().parent is None
            green.killall(workers)
            print(json.dumps({{"interrupted": True, "in_main": main}}), flush=True)
        """
    proc = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # let the hub reach its poll
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"interrupted": True, "in_main": True}


def test_patched_signal_handler_may_block():
    seen = report(
        f"""
        from plait.green import monkey
        monkey.patch_all({patch_all_kwargs()})
        import os, signal, time
        got = []
        def handler(signum, frame):
            time.sleep(0.01)  # blocking in a handler: fine, it runs in a greenlet
            got.append(signum)
        signal.signal(signal.SIGUSR1, handler)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.1)
        print(json.dumps({{"got": got, "getsignal": signal.getsignal(signal.SIGUSR1) is handler}}))
        """
    )
    assert seen == {"got": [signal.SIGUSR1], "getsignal": True}


def test_real_http_clients_under_patch_all_overlap_their_waits():
    # A local http.server (its threads are greenlets once patched) whose every response takes
    # 0.2 s; 200 downloads at once through urllib.request, http.client and requests overlap: the
    # server sees many requests in flight at once (one at a time if a client blocked).
    pytest.importorskip("requests")
    seen = report(
        """
        from plait.green import monkey
        monkey.patch_all()
        import http.client, http.server, threading, time, urllib.request
        import requests
        from plait import green

        in_flight, most = [0], [0]

        class Slow(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
                time.sleep(0.2)
                in_flight[0] -= 1
                body = self.path.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024

        server = Server(("127.0.0.1", 0), Slow)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def by_urllib(i):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/u{i}", timeout=30) as r:
                return r.read().decode()

        def by_http_client(i):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", f"/h{i}")
            body = conn.getresponse().read().decode()
            conn.close()
            return body

        def by_requests(i):
            with requests.get(f"http://127.0.0.1:{port}/r{i}", timeout=30) as r:
                return r.text

        clients = (by_urllib, by_http_client, by_requests)
        jobs = [green.spawn(fn, i) for i in range(67) for fn in clients][:200]
        green.joinall(jobs, raise_error=True)
        bodies = sorted(job.value for job in jobs)
        server.shutdown()
        server.server_close()
        print(json.dumps({"most_in_flight": most[0], "bodies": bodies, "n": len(jobs)}))
        """,
        timeout=120,
    )
    expected = sorted([f"/{kind}{i}" for i in range(67) for kind in "uhr"][:200])
    assert seen["n"] == 200 and seen["bodies"] == expected
    assert seen["most_in_flight"] >= 10, (
        f"the downloads did not overlap: {seen['most_in_flight']} at most at once"
    )


def test_threadpool_and_asyncio_default_executor_use_os_threads_under_patch_all():
    # A job blocks its thread on a native lock that a greenlet releases: in an OS thread the
    # hub keeps running and releases it; a job run as a greenlet would block the hub's thread
    # (and time out). The same through asyncio's default executor on the hub's loop.
    seen = report(
        f"""
        from plait.green import monkey
        monkey.patch_all({patch_all_kwargs()})
        import asyncio
        from plait import green
        from plait.green import threadpool
        allocate_lock = monkey.get_original("_thread", "allocate_lock")
        get_ident = monkey.get_original("_thread", "get_ident")

        def job(lock):
            released = lock.acquire(timeout=10)
            return released, get_ident()

        def run(submit):
            lock = allocate_lock()
            lock.acquire()
            outcome = submit(lock)
            green.spawn(lock.release).join()
            return outcome()

        def with_pool(lock):
            return threadpool.ThreadPool(2).spawn(job, lock).get

        def with_asyncio(lock):
            async def main():
                return await asyncio.get_running_loop().run_in_executor(None, job, lock)
            task = green.spawn(green.await_, main())
            return task.get

        def with_hub_pool(lock):
            return threadpool.spawn(job, lock).get

        main_ident = get_ident()
        out = {{}}
        for name, submit in (("pool", with_pool), ("asyncio", with_asyncio), ("hub_pool", with_hub_pool)):
            released, ident = run(submit)
            out[name] = [released, ident != main_ident]
        print(json.dumps(out))
        """
    )
    assert seen == {"pool": [True, True], "asyncio": [True, True], "hub_pool": [True, True]}
