"""CPython's own test suites run against the standard library patched by
``plait.green.monkey.patch_all()``, as gevent's test runner does: one child process per suite
(``_green_runner.py``), which patches first, then loads the suite from this interpreter's
``Lib/test`` and runs the classes listed here. The pytest process itself is never patched.

For each suite: the classes that run, the tests left out with the reason, and the classes left
out with the reason. Resources are off in the child (``test.support.use_resources = []``), so
tests that need remote hosts skip themselves; everything kept uses 127.0.0.1, ::1 and Unix
sockets. A test the suite skips by itself (a Windows-only one, a missing feature) counts as
skipped, not as left out.

Every suite needs the whole of ``patch_all()`` (socket, ssl, select, selectors, queue and the
green locks, events and locals that ``threading`` becomes): a checkout without one of those
plait.green modules skips the suites.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import pytest

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_green_runner.py")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
PATCH_ALL_NEEDS = (
    "socket",
    "ssl",
    "select",
    "selectors",
    "queue",
    "lock",
    "event",
    "local",
    "thread",
    "threading",
)

# The reasons shared by several suites.
SHARES_OS_THREAD = "green threads share their OS thread: one native id, one OS thread state"
PYTHON_CLASS = "plait.green's replacement is a Python class (gevent's too): it can be instantiated"
CLOSES_OVER_MODULE = (
    "replaces socket.socket with a mock, then calls create_connection: plait.green.socket's "
    "create_connection builds its own socket class (gevent's too)"
)


@dataclasses.dataclass
class Suite:
    module: str
    classes: list[str]
    #: ``"Class.test": reason`` for each test left out (an fnmatch pattern: ``"*.test_x"``); a
    #: test that this Python's suite lacks is ignored.
    skip: dict[str, str] = dataclasses.field(default_factory=dict)
    #: ``"Class": reason`` for each class of the suite that is not run (documentation).
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Class attributes set on a subclass (``"module:queue"`` is the patched module).
    attrs: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    #: Classes run outside their module (without its setUpModule).
    detach: list[str] = dataclasses.field(default_factory=list)
    #: At least this many tests must run (not skip): a suite that silently skips fails.
    min_run: int = 1
    timeout: int = 600


PATCHED_QUEUE = {"queue": "module:queue"}

SUITES = {
    "test_queue": Suite(
        "test.test_queue",
        # Py*: the stdlib's pure-Python queues over the patched threading (green locks and
        # conditions). C*: with `queue` set to the patched module, plait.green.queue's classes.
        classes=[
            "PyQueueTest",
            "PyLifoQueueTest",
            "PyPriorityQueueTest",
            "PyFailingQueueTest",
            "PySimpleQueueTest",
            "CQueueTest",
            "CLifoQueueTest",
            "CPriorityQueueTest",
            "CFailingQueueTest",
            "CSimpleQueueTest",
        ],
        attrs={
            name: PATCHED_QUEUE
            for name in (
                "CQueueTest",
                "CLifoQueueTest",
                "CPriorityQueueTest",
                "CFailingQueueTest",
                "CSimpleQueueTest",
            )
        },
        skip={
            "*.test_shutdown_*all_methods_in_many_threads": (
                "(3.13) reader threads busy-wait on get(block=False): green threads are not "
                "preempted, so a loop that never blocks starves the writers (gevent's alike)"
            ),
            "CSimpleQueueTest.test_negative_timeout_raises_exception": (
                "plait.green.queue.SimpleQueue.get returns an item already there without checking "
                "the timeout, as gevent's does; CPython's C SimpleQueue rejects timeout=-1 first"
            ),
        },
        min_run=50,
    ),
    "test_select": Suite(
        "test.test_select",
        classes=["SelectTestCase"],
        skip={"SelectTestCase.test_disallow_instantiation": f"select.poll: {PYTHON_CLASS}"},
        min_run=4,
    ),
    "test_selectors": Suite(
        "test.test_selectors",
        # EpollSelectorTestCase skips itself: aggressive patching removes selectors.EpollSelector.
        classes=[
            "DefaultSelectorTestCase",
            "SelectSelectorTestCase",
            "PollSelectorTestCase",
            "EpollSelectorTestCase",
        ],
        left_out={
            "KqueueSelectorTestCase": "BSD and macOS only",
            "DevpollSelectorTestCase": "Solaris only",
        },
        min_run=30,
    ),
    "test_socket": Suite(
        "test.test_socket",
        classes=[
            "GeneralModuleTests",
            "BasicTCPTest",
            "BasicTCPTest2",
            "BasicUDPTest",
            "CmsgMacroTests",
            "SendmsgUDPTest",
            "RecvmsgUDPTest",
            "RecvmsgIntoUDPTest",
            "SendmsgUDP6Test",
            "RecvmsgUDP6Test",
            "RecvmsgIntoUDP6Test",
            "RecvmsgRFC3542AncillaryUDP6Test",
            "RecvmsgIntoRFC3542AncillaryUDP6Test",
            "SendmsgTCPTest",
            "RecvmsgTCPTest",
            "RecvmsgIntoTCPTest",
            "SendmsgUnixStreamTest",
            "RecvmsgUnixStreamTest",
            "RecvmsgIntoUnixStreamTest",
            "RecvmsgSCMRightsStreamTest",
            "RecvmsgIntoSCMRightsStreamTest",
            "InterruptedRecvTimeoutTest",
            "InterruptedSendTimeoutTest",
            "TCPCloserTest",
            "BasicSocketPairTest",
            "NonBlockingTCPTests",
            "FileObjectClassTestCase",
            "UnbufferedFileObjectClassTestCase",
            "LineBufferedFileObjectClassTestCase",
            "SmallBufferedFileObjectClassTestCase",
            "UnicodeReadFileObjectClassTestCase",
            "UnicodeWriteFileObjectClassTestCase",
            "UnicodeReadWriteFileObjectClassTestCase",
            "NetworkConnectionNoServer",
            "NetworkConnectionAttributesTest",
            "NetworkConnectionBehaviourTest",
            "TCPTimeoutTest",
            "UDPTimeoutTest",
            "TestExceptions",
            "TestLinuxAbstractNamespace",
            "TestUnixDomain",
            "BufferIOTest",
            "ContextManagersTest",
            "InheritanceTest",
            "NonblockConstantTest",
            "SendfileUsingSendTest",
            "SendfileUsingSendfileTest",
            "CreateServerTest",
            "CreateServerFunctionalTest",
            "SendRecvFdsTests",
        ],
        skip={
            "GeneralModuleTests.testRefCountGetNameInfo": (
                "counts references across a failing call: the Python getnameinfo's traceback holds "
                "one (gevent leaves it out for the same reason)"
            ),
            "GeneralModuleTests.test_SocketType_is_socketobject": (
                "asserts socket.SocketType is _socket.socket: patching makes it plait.green's"
            ),
            "NetworkConnectionNoServer.test_create_connection_timeout": CLOSES_OVER_MODULE,
            "NonBlockingTCPTests.testInitNonBlocking": (
                "SOCK_NONBLOCK at creation: a green socket keeps its fd non-blocking and emulates "
                "the timeout, so gettimeout() is None (gevent does not handle it either)"
            ),
            "NonblockConstantTest.test_SOCK_NONBLOCK": "SOCK_NONBLOCK at creation (see testInitNonBlocking)",
            "NonBlockingTCPTests.testSetBlocking": (
                "checks that setblocking(True) makes the fd blocking: a green socket's fd stays "
                "non-blocking, blocking is emulated (gevent's too)"
            ),
            "NonBlockingTCPTests.testSetBlocking_overflow": "checks the fd's O_NONBLOCK (as testSetBlocking)",
            "TestExceptions.test_setblocking_invalidfd": (
                "expects setblocking() on a closed fd to fail: a green socket's setblocking() does "
                "not touch the fd (gevent's neither)"
            ),
        },
        left_out={
            "BasicCANTest, CANTest, ISOTPTest, J1939Test": "AF_CAN: an unusual address family",
            "BasicRDSTest, RDSTest": "AF_RDS: an unusual address family",
            "BasicQIPCRTRTest": "AF_QIPCRTR: an unusual address family",
            "BasicVSOCKTest, ThreadedVSOCKSocketStreamTest": "AF_VSOCK: an unusual address family",
            "BasicBluetoothTest": "AF_BLUETOOTH: an unusual address family",
            "TIPCTest, TIPCThreadableTest": "AF_TIPC: an unusual address family",
            "LinuxKernelCryptoAPI": "AF_ALG: an unusual address family",
            "*UDPLITE*": "UDP-Lite: an unusual protocol (its classes mirror the UDP ones, which run)",
            "*SCTPStream*": "SCTP: an unusual protocol",
            "TestSocketSharing, TestMSWindowsTCPFlags": "Windows only",
            "TestMacOSTCPFlags": "macOS only",
        },
        min_run=450,
    ),
    "test_ssl": Suite(
        "test.test_ssl",
        classes=[
            "BasicSocketTests",
            "ContextTests",
            "SSLErrorTests",
            "MemoryBIOTests",
            "SSLObjectTests",
            "SimpleBackgroundTests",
            "ThreadedTests",
            "TestPostHandshakeAuth",
            "TestSSLDebug",
            "TestPreHandshakeClose",
            "TestEnumerations",
        ],
        left_out={"NetworkedTests": "connects to remote hosts (the 'network' resource)"},
        min_run=150,
    ),
    "test_subprocess": Suite(
        "test.test_subprocess",
        # Each suite runs in its own child process: the process-wide state some POSIX tests
        # change (signal dispositions, umask, rlimits) stays there.
        classes=[
            "ProcessTestCase",
            "ProcessTestCaseNoPoll",
            "POSIXProcessTestCase",
            "RunFuncTestCase",
            "MiscTests",
            "ContextManagerTests",
            "CommandsWithSpaces",
        ],
        left_out={"Win32ProcessTestCase": "Windows only"},
        min_run=250,
    ),
    "test_threading": Suite(
        "test.test_threading",
        classes=[
            "ThreadTests",
            "ThreadJoinOnShutdown",
            "ThreadingExceptionTests",
            "TimerTests",
            "LockTests",
            "PyRLockTests",
            "EventTests",
            "ConditionAsRLockTests",
            "ConditionTests",
            "SemaphoreTests",
            "BoundedSemaphoreTests",
            "BarrierTests",
            "MiscTestCase",
            "InterruptMainTests",
            "ExceptHookTests",
        ],
        skip={
            "ThreadTests.test_PyThreadState_SetAsyncExc": (
                "raises into a thread through its OS thread state (ctypes, by ident): "
                f"{SHARES_OS_THREAD}; the target never gets it"
            ),
            "ThreadTests.test_various_ops": f"counts distinct native thread ids: {SHARES_OS_THREAD}",
            "ThreadTests.test_various_ops_small_stack": "test_various_ops with another stack size",
            "ThreadTests.test_various_ops_large_stack": "test_various_ops with another stack size",
            "ThreadTests.test_disallow_instantiation": f"threading.Lock's type: {PYTHON_CLASS}",
            "ThreadTests.test_old_threading_api": (
                "expects Event.isSet() to warn (DeprecationWarning): threading.Event is "
                "plait.green.event.Event, whose isSet does not warn"
            ),
            "EventTests.test_at_fork_reinit": "inspects threading.Event's private _cond",
            "EventTests.test_repr": "threading.Event's repr format: plait.green.event.Event has its own",
            "MiscTestCase.test__all__": (
                "finds threading's names by their __module__: the patched ones are plait.green's"
            ),
            "InterruptMainTests.test_can_interrupt_tight_loops": (
                "a thread interrupts a busy loop of the main thread: a green thread only runs when "
                "the main greenlet yields, which a busy loop never does"
            ),
            "ExceptHookTests.test_excepthook_thread_None": (
                "the C excepthook prints the OS thread ident, the test expects threading.get_ident(): "
                "a greenlet's"
            ),
        },
        left_out={
            "SubinterpThreadingTests": "subinterpreters: patching applies to this interpreter only",
            "CRLockTests": "the C RLock: patching makes threading.RLock the Python one (_CRLock is None)",
            "AtexitTests": "runs unpatched child interpreters only: nothing of plait.green is exercised",
        },
        min_run=150,
    ),
    "test_timeout": Suite(
        "test.test_timeout",
        # Detached: the module's setUpModule requires the 'network' resource for all of it.
        classes=["CreationTestCase", "UDPTimeoutTestCase"],
        detach=["CreationTestCase", "UDPTimeoutTestCase"],
        left_out={"TCPTimeoutTestCase": "its setUp resolves www.python.org (remote network)"},
        min_run=8,
    ),
}


def _missing_plait_modules() -> list[str]:
    return [m for m in PATCH_ALL_NEEDS if importlib.util.find_spec(f"plait.green.{m}") is None]


@pytest.mark.parametrize("name", sorted(SUITES))
def test_cpython_suite_under_patch_all(name):
    suite = SUITES[name]
    missing = _missing_plait_modules()
    if missing:
        pytest.skip(f"patch_all() needs plait.green.{', plait.green.'.join(missing)} (not in this checkout)")
    if importlib.util.find_spec(suite.module) is None:
        pytest.skip(f"this interpreter's Lib/test has no {suite.module}")
    spec = {
        "module": suite.module,
        "classes": suite.classes,
        "skip": suite.skip,
        "attrs": suite.attrs,
        "detach": suite.detach,
        "test_timeout": 120,
    }
    done = subprocess.run(
        [sys.executable, RUNNER, json.dumps(spec)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=suite.timeout,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"{suite.module} under patch_all() died (exit {done.returncode}):\n{done.stderr[-6000:]}"
    summary = json.loads(lines[-1])
    problems = summary["failures"] + summary["errors"] + summary["unexpected_successes"]
    assert not problems and done.returncode == 0, (
        f"{suite.module} under patch_all(): {len(problems)} failing:\n  " + "\n  ".join(problems) + "\n\n"
        f"{done.stderr[-12000:]}"
    )
    ran = summary["run"] - summary["skipped"]
    assert ran >= suite.min_run, f"{suite.module}: only {ran} tests ran (skipped {summary['skipped']})"


pytestmark = pytest.mark.timeout(900)
