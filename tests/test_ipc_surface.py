"""The process-shared primitives (``plait.processes``) have the surface of the thread ones
(``plait.threads``): the same public methods and attributes, signatures, operators, ``name=`` and
repr format. Each difference is listed here with its reason (the stdlib peers differ the same way:
``threading``/``queue`` against ``multiprocessing``), so the two cannot drift apart unnoticed."""

from __future__ import annotations

import inspect
import multiprocessing
import multiprocessing.resource_tracker
import os
import re
import threading

import pytest

from plait import processes as pp
from plait import threads as pt

pytestmark = pytest.mark.timeout(60)

WAIT = 30


@pytest.fixture(scope="module", autouse=True)
def _mp_helpers():
    """multiprocessing starts its resource tracker on the first spawn and keeps it: start it
    before the per-test leak check takes its snapshot."""
    multiprocessing.resource_tracker.ensure_running()


# How to make one of each (the same arguments on both sides).
ARGS = {"Semaphore": (2,), "BoundedSemaphore": (2,), "Barrier": (2,)}
PAIRS = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier", "AtomicInt"]
QUEUES = ["Queue", "SimpleQueue"]

# Operators and protocols a class may define; compared when either side defines one.
OPERATORS = {
    "__int__", "__index__", "__bool__", "__float__", "__iadd__", "__isub__", "__add__", "__sub__",
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__len__", "__iter__",
    "__enter__", "__exit__", "__repr__",
}  # fmt: skip

_MP = "multiprocessing's peer has it (plait.processes is a drop-in for multiprocessing)"
_RING = "the shared-memory ring's own API"
# Public names only one side has, with the reason.
THREAD_ONLY: dict[str, dict[str, str]] = {
    "Queue": {
        "join": "multiprocessing.Queue has none: JoinableQueue has join/task_done",
        "task_done": "multiprocessing.Queue has none: JoinableQueue has join/task_done",
        "unfinished_tasks": "multiprocessing.Queue has none: JoinableQueue has join/task_done",
        "shutdown": "queue.Queue's (3.13); multiprocessing.Queue has close() instead",
        "is_shutdown": "queue.Queue's (3.13); multiprocessing.Queue has close() instead",
        "snapshot": "a thread queue's items are in one process; a process queue's are in flight",
    },
}
_NAME = "plait.threads' Condition, Event and Barrier take name= but do not show it (yet)"
PROCESS_ONLY: dict[str, dict[str, str]] = {
    "Condition": {"name": _NAME},
    "Event": {"name": _NAME},
    "Barrier": {"name": _NAME},
    "Lock": {"holder": "the pid holding it: a process-shared lock survives its holder's death"},
    "RLock": {"holder": "the pid holding it: a process-shared lock survives its holder's death"},
    "Semaphore": {"get_value": _MP},
    "BoundedSemaphore": {"get_value": _MP},
    "Queue": {
        "close": _MP,
        "join_thread": _MP,
        "cancel_join_thread": _MP,
        "put_many": _RING,
        "get_many": _RING,
        "lost": _RING,
        "capacity": _RING,
        "__repr__": "names maxsize (the thread queue keeps object's repr, as queue.Queue does)",
    },
    "SimpleQueue": {
        "close": _MP,
        "join_thread": _MP,
        "cancel_join_thread": _MP,
        "put_many": _RING,
        "get_many": _RING,
        "lost": _RING,
        "capacity": _RING,
        "full": "a SimpleQueue over a ring can be full (its capacity)",
        "maxsize": "plait.processes.SimpleQueue is a Queue (maxsize 0)",
        "__repr__": "names maxsize (the thread queue keeps object's repr, as queue.Queue does)",
    },
}
# Signatures that differ because the peers' do: the process side has multiprocessing's.
_MP_ACQUIRE = "(block=True, timeout=None)"  # threading's: (blocking=True, timeout=-1)
PEER_SIGNATURES = {
    ("Lock", "acquire"): _MP_ACQUIRE,
    ("RLock", "acquire"): _MP_ACQUIRE,
    ("Semaphore", "acquire"): _MP_ACQUIRE,
    ("BoundedSemaphore", "acquire"): _MP_ACQUIRE,
    ("Condition", "acquire"): _MP_ACQUIRE,  # threading's forwards any arguments to its lock
    ("Queue", "put"): "(obj, block=True, timeout=None)",  # queue.Queue.put(item, ...)
    ("Queue", "put_nowait"): "(obj)",
    ("Queue", "get"): "(block=True, timeout=None)",
    ("SimpleQueue", "put"): "(obj, block=True, timeout=None)",
    ("SimpleQueue", "put_nowait"): "(obj)",
    ("SimpleQueue", "get"): "(block=True, timeout=None)",
}
# Constructor parameters only the process side has.
PROCESS_ONLY_PARAMS = {"Queue": {"capacity": _RING}, "SimpleQueue": {"capacity": _RING}}


def _make(module, name):
    return getattr(module, name)(*ARGS.get(name, ()))


def _defines(cls, attr):
    """Whether ``cls`` (or a base other than ``object``) defines ``attr``."""
    return any(attr in vars(c) for c in cls.__mro__[:-1])


def _surface(cls):
    public = {a for a in dir(cls) if not a.startswith("_")}
    return public | {a for a in OPERATORS if _defines(cls, a)}


def _params(sig):
    """The public parameters as ``(name, kind, default)``, annotations left out."""
    return [(p.name, p.kind, p.default) for p in sig.parameters.values() if not p.name.startswith("_")]


def _plain(sig):
    """A signature as text, without annotations or private parameters."""
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    params = [p for p in params if not p.name.startswith("_")]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


@pytest.mark.parametrize("name", PAIRS + QUEUES)
def test_public_names_match_except_the_listed_peer_differences(name):
    thread, process = _surface(getattr(pt, name)), _surface(getattr(pp, name))
    assert thread - process == set(THREAD_ONLY.get(name, {})), "thread-only names"
    assert process - thread == set(PROCESS_ONLY.get(name, {})), "process-only names"


@pytest.mark.parametrize("name", PAIRS + QUEUES)
def test_method_signatures_match_except_the_listed_peer_differences(name):
    t, p = _make(pt, name), _make(pp, name)
    common = sorted(_surface(type(t)) & _surface(type(p)))
    checked = 0
    for attr in common:
        tv, pv = getattr(t, attr), getattr(p, attr)
        if not callable(pv) or attr in OPERATORS:
            continue
        expected = PEER_SIGNATURES.get((name, attr))
        if expected is not None:
            assert _plain(inspect.signature(pv)) == expected, attr
        else:
            assert _params(inspect.signature(pv)) == _params(inspect.signature(tv)), attr
        checked += 1
    assert checked >= 1
    assert {k for (n, k) in PEER_SIGNATURES if n == name} <= set(common)


@pytest.mark.parametrize("name", PAIRS + QUEUES)
def test_constructors_take_the_same_arguments(name):
    thread = _params(inspect.signature(getattr(pt, name)))
    process = _params(inspect.signature(getattr(pp, name)))
    extra = set(PROCESS_ONLY_PARAMS.get(name, {}))
    assert [p for p in process if p[0] not in extra] == thread
    assert {p[0] for p in process} - {p[0] for p in thread} == extra


@pytest.mark.parametrize("name", [n for n in PAIRS if n != "AtomicInt"])
def test_every_primitive_takes_a_name(name):
    for module in (pt, pp):
        obj = getattr(module, name)(*ARGS.get(name, ()), name="jobs")
        if module is pp or hasattr(obj, "name"):
            assert obj.name == "jobs"
    assert getattr(pp, name)(*ARGS.get(name, ())).name is None


def _name_of(obj, out):
    out.put((type(obj).__name__, obj.name))


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_the_name_travels_with_the_object_to_a_child(method):
    objs = [pp.Lock(name="a"), pp.RLock(name="b"), pp.Semaphore(name="c"), pp.BoundedSemaphore(name="d")]
    objs += [pp.Event(name="e"), pp.Condition(name="f"), pp.Barrier(2, name="g")]
    out = pp.Queue()
    ctx = multiprocessing.get_context(method)
    for obj in objs:
        p = ctx.Process(target=_name_of, args=(obj, out))
        p.start()
        p.join(WAIT)
        assert p.exitcode == 0
    assert [out.get(timeout=WAIT) for _ in objs] == [(type(o).__name__, o.name) for o in objs]


# --- reprs ------------------------------------------------------------------------------------


def _norm(r):
    """The format: the hex address and the package name (threads/processes) left out."""
    return re.sub(r"0x[0-9a-f]+", "ADDR", r).replace("threads.", "PKG.").replace("processes.", "PKG.")


def _both(cls_name, **kwargs):
    args = ARGS.get(cls_name, ())
    return getattr(pt, cls_name)(*args, **kwargs), getattr(pp, cls_name)(*args, **kwargs)


def test_lock_reprs_have_the_thread_format_plus_the_holding_pid():
    t, p = _both("Lock", name="x")
    assert _norm(repr(p)) == _norm(repr(t)) == "<unlocked PKG.Lock object name='x' at ADDR>"
    with t, p:
        assert _norm(repr(t)) == "<locked PKG.Lock object name='x' at ADDR>"
        assert _norm(repr(p)) == f"<locked PKG.Lock object name='x' owner={os.getpid()} at ADDR>"
    t, p = _both("RLock")
    assert _norm(repr(p)) == _norm(repr(t)) == "<unlocked PKG.RLock object owner=0 count=0 at ADDR>"
    with t, t, p, p:
        # The thread one's owner is the thread's ident, the process one's the pid.
        assert _norm(repr(t)) == f"<locked PKG.RLock object owner={threading.get_ident()} count=2 at ADDR>"
        assert _norm(repr(p)) == f"<locked PKG.RLock object owner={os.getpid()} count=2 at ADDR>"
    assert repr(p).startswith("<unlocked processes.RLock object ")


def test_semaphore_event_barrier_atomic_reprs_match():
    for name in ("Semaphore", "BoundedSemaphore"):
        t, p = _both(name)
        assert _norm(repr(p)) == _norm(repr(t))
        t.acquire()
        p.acquire()
        assert _norm(repr(p)) == _norm(repr(t))
        assert ": value=1" in repr(p)
    assert repr(pp.BoundedSemaphore(2)).endswith(": value=2/2>")
    t, p = _both("Event")
    assert _norm(repr(p)) == _norm(repr(t)) == "<PKG.Event at ADDR: unset>"
    t.set()
    p.set()
    assert _norm(repr(p)) == _norm(repr(t)) == "<PKG.Event at ADDR: set>"
    t, p = _both("Barrier")
    assert _norm(repr(p)) == _norm(repr(t)) == "<PKG.Barrier at ADDR: waiters=0/2>"
    t.abort()
    p.abort()
    assert _norm(repr(p)) == _norm(repr(t)) == "<PKG.Barrier at ADDR: broken>"
    t, p = pt.AtomicInt(-5), pp.AtomicInt(-5)
    assert repr(p) == repr(t) == "AtomicInt(-5)"


def test_condition_repr_shows_its_lock_and_waiters():
    t, p = _both("Condition")
    assert (
        _norm(repr(p))
        == _norm(repr(t))
        == "<Condition(<unlocked PKG.RLock object owner=0 count=0 at ADDR>, 0)>"
    )
    ready = threading.Barrier(3)

    def waiter(cond):
        with cond:
            ready.wait(WAIT)
            cond.wait(WAIT)

    threads = [threading.Thread(target=waiter, args=(c,)) for c in (t, p)]
    for th in threads:
        th.start()
    ready.wait(WAIT)
    # Both waiters hold their lock until wait() releases it: once the lock is ours, they wait.
    with t, p:
        # The same format; the lock's owner is a thread ident on one side and a pid on the other.
        owner = re.compile(r"owner=\d+")
        assert owner.sub("owner=N", _norm(repr(p))) == owner.sub("owner=N", _norm(repr(t)))
        assert repr(p).endswith(", 1)>")
        t.notify()
        p.notify()
    for th in threads:
        th.join(WAIT)
    assert repr(p).endswith(", 0)>")


# --- behaviour of what the process side gained -------------------------------------------------


def test_atomic_int_operators_behave_like_the_thread_one():
    for a in (pt.AtomicInt(5), pp.AtomicInt(5)):
        same = a
        a += 3
        assert a is same and a.load() == 8
        a -= 10
        assert a is same and a.load() == -2
        assert int(a) == -2 and operator_index(a) == -2
        assert [10, 20, 30][pp.AtomicInt(1)] == 20
        assert bool(a) and not bool(type(a)(0))
        big = type(a)(2**63 - 1)
        with pytest.raises(OverflowError):
            big += 1
        assert big.load() == 2**63 - 1
        with pytest.raises(TypeError):
            a += 1.5


def operator_index(x):
    import operator

    return operator.index(x)


def _increment(a, n):
    for _ in range(n):
        a += 1


def test_atomic_int_in_place_add_is_atomic_across_processes():
    a = pp.AtomicInt()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_increment, args=(a, 2000)) for _ in range(3)]
    for p in procs:
        p.start()
    _increment(a, 2000)
    for p in procs:
        p.join(WAIT)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert a.load() == 8000


def test_rlock_locked_event_isset_condition_notifyall():
    rl = pp.RLock()
    assert not rl.locked()
    with rl:
        assert rl.locked()
        seen = []
        t = threading.Thread(target=lambda: seen.append(rl.locked()))
        t.start()
        t.join(WAIT)
        assert seen == [True]  # held by someone, whoever asks
    assert not rl.locked()
    ev = pp.Event()
    assert ev.isSet() is False
    ev.set()
    assert ev.isSet() is True
    cond, ready, woke = pp.Condition(), threading.Barrier(2), []

    def waiter():
        with cond:
            ready.wait(WAIT)
            woke.append(cond.wait(WAIT))

    t = threading.Thread(target=waiter)
    t.start()
    ready.wait(WAIT)
    with pytest.raises(RuntimeError):
        cond.notifyAll()
    with cond:
        cond.notifyAll()
    t.join(WAIT)
    assert woke == [True]
