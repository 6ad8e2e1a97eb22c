"""Loads CPython's ``test_concurrent_futures`` and re-binds its test bodies to plait's pools.

Used by ``test_cpython_futures.py`` (thread pool, futures) and ``test_cpython_futures_process.py``
(process pool). CPython ships the suite as one file up to 3.11 and as a package from 3.12
(``test/test_concurrent_futures/``: ``util``, ``executor``, ``test_process_pool``, ``test_wait``,
...). :func:`load` handles both layouts and returns a :class:`Suite`: the suite's modules, with
every name of any of them readable as an attribute (``suite.ThreadPoolExecutorTest``,
``suite.support``), whichever module defines it.

Where the suite comes from, in order:

1. the running interpreter's own ``test.test_concurrent_futures``;
2. ``$PLAIT_CPYTHON_CF_TESTS``: a ``test_concurrent_futures.py`` file or a
   ``test_concurrent_futures/`` package directory;
3. another CPython's ``Lib/test`` on this machine (pyenv's siblings of the running interpreter,
   Debian's ``/usr/lib/python3.X``): the same minor version first, then older ones (newest
   first), then newer ones (oldest first). An older suite only asserts behaviour that the newer
   stdlib kept; a newer one can use ``test.support`` helpers this interpreter lacks.

Some builds (this machine's 3.11.7 and 3.12.1 among them) ship ``Lib/test`` without the suite.
When no copy is found, the test modules are skipped with a message saying so.
"""

from __future__ import annotations

import glob
import importlib
import os
import re
import sys
import types
import unittest

# The package's modules, in dependency order (each imports only the ones before it).
_PACKAGE_MODULES = (
    "util",
    "executor",
    "test_future",
    "test_init",
    "test_shutdown",
    "test_wait",
    "test_as_completed",
    "test_thread_pool",
    "test_process_pool",
    "test_deadlock",
)
_TOP_LEVEL_NAME = "test_concurrent_futures"


class Suite:
    """CPython's suite: its modules, and every name any of them defines as an attribute."""

    def __init__(self, modules: list[types.ModuleType], origin: str) -> None:
        self.modules = modules
        self.origin = origin
        self._globals = {id(vars(m)) for m in modules}

    def __getattr__(self, name: str) -> object:
        for module in self.__dict__.get("modules", ()):
            if name in vars(module):
                return vars(module)[name]
        raise AttributeError(
            f"CPython's test_concurrent_futures ({self.__dict__.get('origin')}) has no {name!r}"
        )

    def owns(self, globals_: dict) -> bool:
        """Whether ``globals_`` are one of the suite's modules' globals."""
        return id(globals_) in self._globals

    def rebind(self, **overrides: object):
        """Class decorator: copy every inherited CPython test method with its module's globals
        updated by ``overrides`` (e.g. ``futures=`` a ``concurrent.futures`` whose
        ``ProcessPoolExecutor`` is plait's). Without that, a test that names
        ``futures.ProcessPoolExecutor`` or ``Future()`` directly would quietly test the stdlib.
        Helpers and ``setUp`` keep CPython's globals; methods the subclass defines stay as
        written."""
        rebound: dict[int, dict] = {}

        def globals_for(original: dict) -> dict:
            key = id(original)
            if key not in rebound:
                rebound[key] = {**original, **overrides}
            return rebound[key]

        def decorate(cls):
            for name in dir(cls):
                if not name.startswith("test") or name in cls.__dict__:
                    continue
                func = getattr(cls, name)
                if not isinstance(func, types.FunctionType) or not self.owns(func.__globals__):
                    continue
                copy = types.FunctionType(
                    func.__code__,
                    globals_for(func.__globals__),
                    func.__name__,
                    func.__defaults__,
                    func.__closure__,
                )
                copy.__kwdefaults__ = func.__kwdefaults__
                copy.__qualname__ = func.__qualname__
                copy.__dict__.update(func.__dict__)  # unittest's skip markers
                setattr(cls, name, copy)
            return cls

        return decorate


def _from_package(name: str, directory: str) -> Suite:
    """The package's modules, imported as ``name.<module>``."""
    importlib.import_module(name)
    modules = [
        importlib.import_module(f"{name}.{module}")
        for module in _PACKAGE_MODULES
        if os.path.isfile(os.path.join(directory, f"{module}.py"))
    ]
    return Suite(modules, directory)


def _from_path(path: str) -> Suite:
    """A copy from another install: imported as the top-level ``test_concurrent_futures``, its
    directory appended to ``sys.path`` (after the stdlib), so that worker processes, which get
    this ``sys.path``, import the test functions they are sent by the same name."""
    path = os.path.abspath(path.rstrip(os.sep))
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.append(directory)
    if os.path.isdir(path):
        return _from_package(_TOP_LEVEL_NAME, path)
    return Suite([importlib.import_module(_TOP_LEVEL_NAME)], path)


def _other_installs() -> list[str]:
    """Other CPythons' copies of the suite, in the order of preference described above."""
    here = sys.version_info[:2]
    roots = [os.path.dirname(sys.base_prefix), "/usr/lib"]  # e.g. ~/.pyenv/versions
    found: dict[tuple[int, int], str] = {}
    for root in roots:
        patterns = (
            os.path.join(root, "3.*", "lib", "python3.*", "test", "test_concurrent_futures"),
            os.path.join(root, "3.*", "lib", "python3.*", "test", "test_concurrent_futures.py"),
            os.path.join(root, "python3.*", "test", "test_concurrent_futures"),
            os.path.join(root, "python3.*", "test", "test_concurrent_futures.py"),
        )
        for pattern in patterns:
            for path in sorted(glob.glob(pattern)):
                match = re.search(r"python3\.(\d+)", path)
                is_package = os.path.isfile(os.path.join(path, "__init__.py"))
                if match and (is_package or os.path.isfile(path)):
                    version = (3, int(match.group(1)))
                    if version >= (3, 10):  # older suites lack helpers the classes here use
                        found.setdefault(version, path)

    def preference(version: tuple[int, int]) -> tuple[int, int]:
        if version == here:
            return (0, 0)
        if version < here:
            return (1, -version[1])
        return (2, version[1])

    return [found[v] for v in sorted(found, key=preference)]


def load() -> Suite:
    """CPython's suite (see the module docstring), or ``unittest.SkipTest``."""
    try:
        from test import test_concurrent_futures as own
    except ImportError:
        pass
    else:
        if hasattr(own, "__path__"):
            return _from_package(own.__name__, os.path.dirname(own.__file__))
        return Suite([own], own.__file__)
    override = os.environ.get("PLAIT_CPYTHON_CF_TESTS", "")
    if override:
        return _from_path(override)
    for path in _other_installs():
        return _from_path(path)
    raise unittest.SkipTest(
        "CPython's test_concurrent_futures is not installed (this interpreter's Lib/test lacks it, "
        "and no other CPython >= 3.10 on this machine has it); set PLAIT_CPYTHON_CF_TESTS to a copy "
        "(test_concurrent_futures.py, or the test_concurrent_futures/ package directory)"
    )


_suite: Suite | None = None


def suite() -> Suite:
    """:func:`load`, once per process (both test modules share the loaded suite)."""
    global _suite
    if _suite is None:
        _suite = load()
    return _suite


class FuturesNamespace(types.ModuleType):
    """``concurrent.futures`` (or, with :meth:`of`, another module) with some names replaced
    (``ThreadPoolExecutor=ThreadPool``...); every other name is the module's own."""

    def __init__(self, **replacements: object) -> None:
        super().__init__("concurrent.futures")
        vars(self).update(replacements)

    @classmethod
    def of(cls, module: types.ModuleType, **replacements: object) -> FuturesNamespace:
        namespace = cls(**replacements)
        namespace.__name__ = module.__name__
        vars(namespace)["_module"] = module
        return namespace

    def __getattr__(self, name: str) -> object:
        module = vars(self).get("_module")
        if module is None:
            import concurrent.futures as module
        return getattr(module, name)
