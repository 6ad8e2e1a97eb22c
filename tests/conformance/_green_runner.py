"""Child side of ``test_green_stdlib.py``: runs one CPython test module under
``plait.green.monkey.patch_all()``, as gevent's own test runner does, and prints a JSON summary.

``python _green_runner.py SPEC`` where SPEC is JSON::

    {"module": "test.test_queue",          # CPython's test module
     "classes": ["PyQueueTest", ...],      # the TestCase classes to run
     "detach": ["CreationTestCase"],       # run without the module's setUpModule/tearDownModule
     "attrs": {"PyQueueTest": {"queue": "module:queue"}},   # class attributes to set
     "skip": {"PyQueueTest.test_x": "why", "*.test_y": "why"},   # tests left out (fnmatch)
     "patch": {"thread": false}}           # patch_all() arguments

Nothing but the stdlib is imported before patching (a module imported first would keep blocking
objects). Resources are off (``test.support.use_resources = []``): every test that needs the
network (remote hosts) is skipped; the ones kept use 127.0.0.1 and ::1 only.
"""

import json
import sys

spec = json.loads(sys.argv[1])

from plait.green import monkey  # noqa: E402 - the first import: patch before the suite loads

monkey.patch_all(**spec.get("patch", {}))

# The hub (its epoll fd and waker) exists before any test opens an fd. Some tests close an fd
# they do not own on purpose (test_subprocess's _test_bufsize_equal_one closes p.stdin's fd, then
# lets p.stdin.close() close that number again): a hub created in between would take that number
# and lose its epoll fd to the second close, and every later wait would fail. gevent's hub has the
# same exposure; a program that closes fds twice is wrong with or without green threads.
from plait.green import get_hub  # noqa: E402

get_hub()

import faulthandler  # noqa: E402
import fnmatch  # noqa: E402
import importlib  # noqa: E402
import unittest  # noqa: E402

from test import support  # noqa: E402

support.use_resources = []  # no remote network: only local tests run
support.verbose = False  # the suites print progress when verbose
# The suites assert on timings with generous margins meant for loaded buildbots; a greenlet
# switch is well within them. Verbose output names each test as it runs (for the report).
module = importlib.import_module(spec["module"])


def resolve(value):
    if isinstance(value, str) and value.startswith("module:"):
        return importlib.import_module(value[len("module:") :])
    return value


suite = unittest.TestSuite()
loader = unittest.TestLoader()
for name in spec["classes"]:
    cls = getattr(module, name)
    attrs = {k: resolve(v) for k, v in spec.get("attrs", {}).get(name, {}).items()}
    for method in loader.getTestCaseNames(cls):
        # "Class.test" or a pattern ("*.test_x": in every class); tests of another CPython
        # version's suite that this one lacks are no error.
        for pattern, reason in spec.get("skip", {}).items():
            if fnmatch.fnmatchcase(f"{name}.{method}", pattern):
                attrs[method] = unittest.skip(reason)(getattr(cls, method))
                break
    if attrs or name in spec.get("detach", ()):
        # A subclass: the original class stays as CPython wrote it. Detached classes live in
        # another module, so the test module's setUpModule (a network check, say) is not run.
        module_name = "plait_green_runner" if name in spec.get("detach", ()) else cls.__module__
        attrs.setdefault("__module__", module_name)
        attrs["__qualname__"] = cls.__qualname__
        cls = type(name, (cls,), attrs)
    suite.addTests(loader.loadTestsFromTestCase(cls))


class _Result(unittest.TextTestResult):
    """Dumps every thread's stack and exits when one test runs longer than ``test_timeout``
    seconds: a hang names its test instead of eating the whole run's timeout."""

    def startTest(self, test):
        faulthandler.dump_traceback_later(spec.get("test_timeout", 60), exit=True)
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        faulthandler.cancel_dump_traceback_later()

    # A failure's traceback is printed when it happens, not only at the end: a later test
    # that kills the process (a signal left behind by an earlier failure) keeps the first cause.
    def addError(self, test, err):
        super().addError(test, err)
        self.stream.writeln(self.errors[-1][1])

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.stream.writeln(self.failures[-1][1])


result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=_Result).run(suite)
print(
    json.dumps(
        {
            "run": result.testsRun,
            "failures": [test.id() for test, _ in result.failures],
            "errors": [test.id() for test, _ in result.errors],
            "skipped": len(result.skipped),
            "unexpected_successes": [test.id() for test in result.unexpectedSuccesses],
        }
    ),
    flush=True,
)
sys.exit(0 if result.wasSuccessful() else 1)
