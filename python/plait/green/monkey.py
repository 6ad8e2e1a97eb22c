"""Makes the standard library cooperative, in place (gevent's ``gevent.monkey``): the blocking
functions and classes of ``socket``, ``ssl``, ``select``/``selectors``, ``time``, ``os``,
``signal``, ``subprocess``, ``queue``, ``_thread``/``threading`` are replaced by plait.green's,
so code written for threads and blocking I/O runs on greenlets without changes.

Patch first, in the main module, before other imports::

    from plait.green import monkey
    monkey.patch_all()

or run a program patched: ``python -m plait.green.monkey script.py args...``.

Every replaced object is kept: :func:`get_original` returns it, :func:`is_module_patched` and
:func:`is_object_patched` say what was replaced, and ``saved`` maps each module name to its
``{attribute: original}``. Patching again does nothing; patching more only adds.

Where gevent is silent, this module warns (:class:`PatchedTooLateWarning`): a module that
imported blocking names by value (``from ssl import SSLContext``, ``from socket import
create_connection``) before patching keeps the originals, silently blocking (or, for ``ssl``,
failing later with a ``RecursionError``); the warning names each such module.

How a plait.green module tells what it replaces (gevent's protocol): its ``__implements__``
lists the names to copy into the standard module (``__target__`` names that module when it is
not the same name, as ``thread`` for ``_thread``), ``__dns__`` (``socket``) the resolver names,
``__removed__`` (``select``) blocking names removed by ``aggressive`` patching.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from typing import Any

from ..exceptions import MonkeyPatchWarning, PatchedTooLateWarning

__all__ = [
    "MonkeyPatchWarning",
    "PatchedTooLateWarning",
    "get_original",
    "is_anything_patched",
    "is_module_patched",
    "is_object_patched",
    "main",
    "patch_all",
    "patch_builtins",
    "patch_contextvars",
    "patch_dns",
    "patch_item",
    "patch_module",
    "patch_os",
    "patch_queue",
    "patch_select",
    "patch_selectors",
    "patch_signal",
    "patch_socket",
    "patch_ssl",
    "patch_subprocess",
    "patch_sys",
    "patch_thread",
    "patch_time",
    "remove_item",
    "saved",
]


#: ``{module name: {attribute: original}}`` for every patched attribute (also removed ones).
saved: dict[str, dict[str, Any]] = {}

_NONE: Any = object()

# gevent's lists, used when a plait.green module does not say (__implements__ and friends).
_DEFAULT_ITEMS = {
    "socket": [
        "SocketType",
        "create_connection",
        "fromfd",
        "getaddrinfo",
        "getfqdn",
        "gethostbyaddr",
        "gethostbyname",
        "gethostbyname_ex",
        "getnameinfo",
        "socket",
        "socketpair",
    ],
    "ssl": ["SSLContext", "SSLSocket", "get_server_certificate", "wrap_socket"],
    "select": ["poll", "select"],
    "selectors": ["DefaultSelector"],
    "queue": ["LifoQueue", "PriorityQueue", "Queue", "SimpleQueue"],
}
_DEFAULT_DNS = ["getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "getfqdn"]
_AGGRESSIVE_REMOVALS = {
    "select": ["epoll", "kqueue", "kevent", "devpoll"],
    "selectors": ["EpollSelector", "KqueueSelector", "DevpollSelector"],
}


# -- querying -------------------------------------------------------------------------------


def is_module_patched(mod_name: str) -> bool:
    """Whether anything of the standard module ``mod_name`` (``"socket"``) was replaced."""
    return mod_name in saved


def is_object_patched(mod_name: str, item_name: str) -> bool:
    """Whether ``mod_name``'s attribute ``item_name`` was replaced (or removed)."""
    return mod_name in saved and item_name in saved[mod_name]


def is_anything_patched() -> bool:
    """Whether anything was patched in this process."""
    return bool(saved)


def get_original(mod_name: str | Iterable[str], item_name: str | Iterable[str]) -> Any:
    """The original object(s) of a standard module, patched or not.

    ``mod_name`` is a module name or a sequence of names to try (``("thread", "_thread")``: the
    first importable one supplies every item); ``item_name`` is a name (the object is returned)
    or a sequence of names (a list is returned, in order)."""
    mod_names = [mod_name] if isinstance(mod_name, str) else list(mod_name)
    single = isinstance(item_name, str)
    items = [item_name] if single else list(item_name)  # type: ignore[list-item]
    for mod in mod_names:
        try:
            values = _get_original(mod, items)
        except ImportError:
            if mod is mod_names[-1]:
                raise
        else:
            return values[0] if single else values
    raise ImportError(f"none of {mod_names!r} could be imported")


def _get_original(name: str, items: list[str]) -> list[Any]:
    originals = saved.get(name, {})
    module = None
    values = []
    for item in items:
        if item in originals:
            values.append(originals[item])
        else:
            if module is None:
                module = importlib.import_module(name)
            values.append(getattr(module, item))
    return values


# -- patching primitives ----------------------------------------------------------------------


def patch_item(module: Any, attr: str, newitem: Any) -> None:
    """Sets ``module.attr`` to ``newitem``, keeping the first original in ``saved``."""
    olditem = getattr(module, attr, _NONE)
    if olditem is not _NONE:
        saved.setdefault(module.__name__, {}).setdefault(attr, olditem)
    setattr(module, attr, newitem)


def remove_item(module: Any, attr: str) -> None:
    """Deletes ``module.attr`` (blocking, with no cooperative replacement), keeping it in
    ``saved``."""
    olditem = getattr(module, attr, _NONE)
    if olditem is _NONE:
        return
    saved.setdefault(module.__name__, {}).setdefault(attr, olditem)
    delattr(module, attr)


def patch_module(target_module: Any, source_module: Any, items: Iterable[str] | None = None) -> bool:
    """Replaces ``target_module``'s attributes named ``items`` (default: ``source_module``'s
    ``__implements__``) with ``source_module``'s. Hooks ``_plait_will_monkey_patch(target,
    items, warn)`` and ``_plait_did_monkey_patch(target, items, warn)`` of ``source_module`` run
    before and after, if it defines them. Returns True."""
    if items is None:
        items = getattr(source_module, "__implements__", None)
        if items is None:
            raise AttributeError(f"module {source_module!r} has a bad or missing value for __implements__")
    items = list(items)
    _call_hook(source_module, "will", target_module, items)
    for attr in items:
        patch_item(target_module, attr, getattr(source_module, attr))
    _call_hook(source_module, "did", target_module, items)
    return True


def _call_hook(source: Any, when: str, target: Any, items: list[str]) -> None:
    hook = getattr(source, f"_plait_{when}_monkey_patch", None)
    if hook is not None:
        hook(target, items, lambda message: _warn(message, MonkeyPatchWarning))


def _plait_module(name: str) -> Any:
    """``plait.green.<name>``, with an ImportError that says what is missing."""
    try:
        return importlib.import_module(f"plait.green.{name}")
    except ImportError as exc:
        if exc.name == f"plait.green.{name}":
            raise ImportError(
                f"plait.green.monkey: cannot patch {name}: plait.green has no {name} module",
                name=exc.name,
            ) from exc
        raise


#: plait.green's modules, imported before anything is patched (see _import_plait_modules).
_PLAIT_MODULES = (
    "_linkable",
    "event",
    "lock",
    "local",
    "queue",
    "pool",
    "threadpool",
    "_io",
    "_resolver",
    "socket",
    "ssl",
    "select",
    "selectors",
    "os",
    "signal",
    "subprocess",
    "time",
    "thread",
    "threading",
)


def _import_plait_modules() -> None:
    """Imports plait.green's modules (those present) before patching: a module imported later
    would take the patched objects where it means the stdlib's (a native thread ident, a real
    lock, an unpatched socket class) at import."""
    for name in _PLAIT_MODULES:
        try:
            importlib.import_module(f"plait.green.{name}")
        except ImportError as exc:
            # A module this build lacks (or one it needs): the patch that uses it says so.
            if not (exc.name or "").startswith("plait.green."):
                raise


def _items_of(source: Any, target_name: str) -> list[str]:
    items = getattr(source, "__implements__", None)
    if items is None:
        items = [n for n in _DEFAULT_ITEMS.get(target_name, ()) if hasattr(source, n)]
    return list(items)


def _patch_module(name: str, items: Iterable[str] | None = None) -> tuple[Any, Any]:
    source = _plait_module(name)
    target_name = getattr(source, "__target__", name)
    target = importlib.import_module(target_name)
    patch_module(target, source, items=_items_of(source, target_name) if items is None else items)
    return source, target


# -- the patches ------------------------------------------------------------------------------


def patch_os() -> None:
    """Replaces ``os.fork`` (the child gets a new hub; see :mod:`plait.green.os`) and
    ``os.waitpid`` (waits through a pidfd on the hub's loop, no ``SIGCHLD`` handler)."""
    _patch_module("os")


def patch_time() -> None:
    """Replaces ``time.sleep`` with :func:`plait.green.sleep`."""
    _patch_module("time")


def patch_thread(
    threading: bool = True,
    _threading_local: bool = True,
    Event: bool = True,  # gevent's keyword
    logging: bool = True,
    existing_locks: bool = True,
    _warnings: list[tuple[str, type[Warning]]] | None = None,
) -> None:
    """Replaces ``_thread`` (and, with ``threading``, ``threading``) so that threads are
    greenlets: ``Thread.start()`` spawns one, locks, conditions, semaphores and events block
    only the current greenlet, ``get_ident()`` is the greenlet's, ``current_thread()`` and
    ``main_thread()`` answer in greenlets. ``_threading_local``: ``threading.local`` becomes
    greenlet-local; ``Event``: ``threading.Event`` becomes :class:`plait.green.event.Event`;
    ``logging``: the locks of ``logging`` (if imported) become green; ``existing_locks``: locks
    taken before patching can be released after.

    Patch on the main thread, while it is the only one."""
    from ._patch_thread import patch

    patch(
        threading=threading,
        threading_local=_threading_local,
        event=Event,
        logging=logging,
        existing_locks=existing_locks,
        warnings_=_warnings,
    )


def patch_socket(dns: bool = True, aggressive: bool = True) -> None:
    """Replaces ``socket.socket`` and the functions that make or connect sockets with
    :mod:`plait.green.socket`'s; with ``dns``, the resolver functions too."""
    source = _plait_module("socket")
    items = _items_of(source, "socket")
    if not dns:
        dns_items = set(getattr(source, "__dns__", _DEFAULT_DNS))
        items = [i for i in items if i not in dns_items]
    _patch_module("socket", items=items)


def patch_dns() -> None:
    """Replaces only the resolver functions of ``socket`` (``getaddrinfo``, ...)."""
    source = _plait_module("socket")
    _patch_module("socket", items=[n for n in getattr(source, "__dns__", _DEFAULT_DNS) if hasattr(source, n)])


def patch_ssl(_warnings: list[tuple[str, type[Warning]]] | None = None, _first_time: bool = True) -> None:
    """Replaces ``ssl.SSLContext``, ``SSLSocket`` and the wrapping functions with
    :mod:`plait.green.ssl`'s. Warns (:class:`PatchedTooLateWarning`) naming the modules that
    imported names of ``ssl`` or ``socket`` by value before."""
    _patch_module("ssl")
    if _first_time:
        _check_early_imports(("ssl", "socket"), _warnings)


def patch_select(aggressive: bool = True) -> None:
    """Replaces ``select.select`` and ``select.poll`` with :mod:`plait.green.select`'s; with
    ``aggressive``, removes the other blocking pollers (``epoll``, ``kqueue``, ``kevent``,
    ``devpoll``)."""
    source, target = _patch_module("select")
    if aggressive:
        _remove_blocking(source, target, "select")


def patch_selectors(aggressive: bool = True) -> None:
    """Replaces ``selectors.DefaultSelector`` with :mod:`plait.green.selectors`'; with
    ``aggressive``, removes the selectors built on blocking pollers (``EpollSelector``, ...).
    :func:`patch_all`'s ``select`` does this and :func:`patch_select`."""
    source, target = _patch_module("selectors")
    if aggressive:
        _remove_blocking(source, target, "selectors")


def _remove_blocking(source: Any, target: Any, name: str) -> None:
    implemented = set(_items_of(source, name))
    for attr in getattr(source, "__removed__", _AGGRESSIVE_REMOVALS[name]):
        if attr not in implemented:
            remove_item(target, attr)


def patch_subprocess() -> None:
    """Replaces ``subprocess.Popen``, ``call``, ``check_call``, ``check_output`` and ``run``
    with :mod:`plait.green.subprocess`'s."""
    _patch_module("subprocess")


def patch_signal() -> None:
    """Replaces ``signal.signal`` and ``signal.getsignal``: a handler that the signal reaches
    while the hub runs runs in a new greenlet, so it may block (:mod:`plait.green.signal`)."""
    _patch_module("signal")


def patch_queue() -> None:
    """Replaces ``queue.SimpleQueue``, ``Queue``, ``PriorityQueue`` and ``LifoQueue`` with
    :mod:`plait.green.queue`'s (``Empty``, ``Full`` stay the stdlib's)."""
    _patch_module("queue")


def patch_sys(stdin: bool = True, stdout: bool = True, stderr: bool = True) -> None:
    """Does nothing, as in gevent (it made ``sys.std*`` cooperative on Python 2)."""


def patch_builtins() -> None:
    """Does nothing, as in gevent (Python 3's import locks are already per module)."""


def patch_contextvars() -> None:
    """Does nothing, as in gevent: greenlet switches ``contextvars`` contexts natively."""


def patch_all(
    socket: bool = True,
    dns: bool = True,
    time: bool = True,
    select: bool = True,
    thread: bool = True,
    os: bool = True,
    ssl: bool = True,
    subprocess: bool = True,
    sys: bool = False,
    aggressive: bool = True,
    Event: bool = True,  # gevent's keyword
    builtins: bool = True,
    signal: bool = True,
    queue: bool = True,
    contextvars: bool = True,
    **kwargs: Any,
) -> bool | None:
    """Applies every patch (or those whose argument is true), in gevent's order; returns True,
    or None when everything asked for was patched already. Calling it again with other
    arguments only adds patches (with a warning), never removes any."""
    settings = {k: v for k, v in locals().items() if k != "kwargs"}
    warnings_: list[tuple[str, type[Warning]]] = []
    current = saved.setdefault("_plait_patch_all_settings", {})
    first_time = not current
    if not first_time and current != settings:
        warnings_.append(
            (
                "Patching more than once will result in the union of all True parameters being patched",
                MonkeyPatchWarning,
            )
        )
    to_patch = {}
    for key, value in settings.items():
        if key not in current or (value and not current[key]):
            to_patch[key] = current[key] = value
    if not any(v for k, v in to_patch.items() if k not in ("dns", "aggressive")):
        _emit(warnings_)
        return None
    if to_patch.get("signal") and not settings["os"]:
        warnings_.append(
            ("Patching signal but not os: os.waitpid stays blocking in greenlets", MonkeyPatchWarning)
        )
    _import_plait_modules()
    # The order matters (gevent's): os and thread first; time after thread.
    if to_patch.get("os"):
        patch_os()
    if to_patch.get("thread"):
        patch_thread(Event=Event, _warnings=warnings_)
    if to_patch.get("time"):
        patch_time()
    if to_patch.get("socket"):
        patch_socket(dns=dns, aggressive=aggressive)
    if to_patch.get("select"):
        patch_select(aggressive=aggressive)
        patch_selectors(aggressive=aggressive)
    if to_patch.get("ssl"):
        patch_ssl(_warnings=warnings_, _first_time=first_time)
    elif to_patch.get("socket") and first_time:
        _check_early_imports(("socket",), warnings_)
    if to_patch.get("subprocess"):
        patch_subprocess()
    if to_patch.get("signal"):
        patch_signal()
    if to_patch.get("queue"):
        patch_queue()
    _emit(warnings_)
    return True


# -- modules imported too early ---------------------------------------------------------------


def _is_exempt(module_name: str) -> bool:
    """Modules whose by-value references do not matter: the patched ones themselves, the C
    modules under them, plait's own, and ``ssl`` (plait imports it, through asyncio, before any
    patching; :func:`patch_ssl` replaces what of it holds ``socket``'s originals)."""
    return (
        module_name in saved
        or module_name in ("_socket", "_ssl", "ssl")
        or module_name == "plait"
        or module_name.startswith("plait.")
    )


def _early_imports(module_names: Iterable[str]) -> dict[str, set[str]]:
    """``{module: {"ssl.SSLContext", ...}}``: modules (and classes) that hold, by value, an
    original that patching replaced in one of ``module_names``."""
    import gc
    import types

    found: dict[str, set[str]] = {}
    for module_name in module_names:
        for attr, original in saved.get(module_name, {}).items():
            if not callable(original):
                continue
            label = f"{module_name}.{attr}"
            for referrer in gc.get_referrers(original):
                if isinstance(referrer, dict) and isinstance(referrer.get("__name__"), str):
                    name = referrer["__name__"]
                    holds = any(v is original for v in referrer.values())
                    if holds and not _is_exempt(name) and isinstance(sys.modules.get(name), types.ModuleType):
                        if vars(sys.modules[name]) is referrer:
                            found.setdefault(name, set()).add(label)
                elif isinstance(referrer, tuple) and isinstance(original, type):
                    for cls in gc.get_referrers(referrer):
                        if (
                            isinstance(cls, type)
                            and cls.__bases__ is referrer
                            and not _is_exempt(cls.__module__)
                        ):
                            found.setdefault(f"{cls.__module__}.{cls.__qualname__}", set()).add(
                                f"subclass of {label}"
                            )
    return found


def _check_early_imports(
    module_names: Iterable[str], warnings_: list[tuple[str, type[Warning]]] | None
) -> None:
    found = _early_imports(module_names)
    if not found:
        return
    names = ", ".join(f"{name} ({', '.join(sorted(what))})" for name, what in sorted(found.items()))
    message = (
        f"plait.green.monkey: these modules were imported before patching and keep blocking "
        f"objects they imported by value, which patching cannot replace: {names}. Patch first: "
        f"call plait.green.monkey.patch_all() before importing them (first thing in the main "
        f"module), or run the program with python -m plait.green.monkey."
    )
    _warn(message, PatchedTooLateWarning, warnings_)


def _warn(
    message: str, category: type[Warning], warnings_: list[tuple[str, type[Warning]]] | None = None
) -> None:
    if warnings_ is None:
        _emit([(message, category)])
    else:
        warnings_.append((message, category))


def _emit(warnings_: list[tuple[str, type[Warning]]]) -> None:
    import warnings

    for message, category in warnings_:
        warnings.warn(message, category, stacklevel=3)


# -- python -m plait.green.monkey -------------------------------------------------------------

_PATCH_OPTIONS = (
    "socket",
    "dns",
    "time",
    "select",
    "thread",
    "os",
    "ssl",
    "subprocess",
    "sys",
    "aggressive",
    "Event",
    "builtins",
    "signal",
    "queue",
    "contextvars",
)
_MODULE_OPTIONS = ("socket", "time", "select", "thread", "os", "ssl", "subprocess", "sys", "signal", "queue")

_USAGE = f"""\
plait.green.monkey: runs a program with the standard library patched for plait.green.

usage: python -m plait.green.monkey [--verbose] [--[no-]MODULE ...] [--module] (script | module) [args...]

Without options, patches everything, as patch_all(). --no-MODULE leaves MODULE out; --MODULE
patches only the modules named so. --module runs a module (as python -m does), not a script.

MODULE: {", ".join(_MODULE_OPTIONS)}; also --[no-]dns, --[no-]aggressive, --[no-]Event.
"""


def main(argv: list[str] | None = None) -> Any:
    """``python -m plait.green.monkey [options] script.py args...``: patches (as
    :func:`patch_all`, with ``--no-MODULE``/``--MODULE`` options), then runs the script (or,
    with ``--module``, the module) as ``__main__`` with ``sys.argv`` set to it and its
    arguments, as ``python script.py args...`` would."""
    import runpy

    args = list(sys.argv[1:] if argv is None else argv)
    options: dict[str, bool] = {}
    verbose = False
    run_module = False
    while args and args[0].startswith("--"):
        option = args.pop(0)[2:]
        if option == "":
            break
        if option == "verbose":
            verbose = True
        elif option == "module":
            run_module = True
        elif option.startswith("no-") and option[3:] in _PATCH_OPTIONS:
            options[option[3:]] = False
        elif option in _PATCH_OPTIONS:
            options[option] = True
            if option in _MODULE_OPTIONS:
                for module in _MODULE_OPTIONS:
                    options.setdefault(module, False)
        else:
            sys.exit(f"{_USAGE}\nplait.green.monkey: cannot patch {option!r}")
    if not args:
        print(_USAGE)
        return None
    if verbose:
        rendered = ", ".join(f"{k}={v}" for k, v in options.items())
        print(f"plait.green.monkey.patch_all({rendered})", file=sys.stderr)
    patch_all(**options)
    sys.argv[:] = args
    if run_module:
        return runpy.run_module(args[0], run_name="__main__", alter_sys=True)
    import os

    if os.path.isfile(args[0]):  # as `python script.py`: the script's directory comes first
        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
    return runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    # Run as `python -m plait.green.monkey`: this copy is __main__; the state (`saved`) must be
    # the one of `plait.green.monkey`, which patched code and get_original() import.
    from plait.green import monkey as _monkey

    _monkey.main()
