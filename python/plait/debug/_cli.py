"""The ``plait dump`` and ``plait run`` commands (added to ``plait``'s parser by
:func:`add_parser`).

``plait dump PID`` asks the process's debug channel for its report. The channel is an abstract
Unix socket named after the process's user and pid; before trusting the answer, the client
checks that the socket is served by that very process (``SO_PEERCRED``), since any local user
can bind a name in the abstract namespace. A process without a channel is shown through
``py-spy dump`` when py-spy is installed (``pip install 'plait[debug]'``): Python stacks only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys

_DUMP_HELP = "report a running process's threads, locks and tasks"
_RUN_HELP = "run a script with the debug channel on (see dump)"

_NO_CHANNEL = (
    "process {pid} has no plait debug channel (start it with `python -m plait run script.py`, or "
    "call plait.debug.enable() in it)"
)


class DumpError(Exception):
    """``plait dump`` cannot get a report: the message says why and what to do."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``dump`` and ``run`` to the ``plait`` command's subparsers."""
    dump = sub.add_parser("dump", help=_DUMP_HELP, description=__doc__)
    dump.add_argument("pid", type=int, help="the process to report on")
    dump.add_argument("--json", action="store_true", help="one JSON document, for programs")
    dump.add_argument(
        "--timeout", type=float, default=40.0, help="seconds to wait for the answer (default 40)"
    )
    run = sub.add_parser(
        "run",
        help=_RUN_HELP,
        description="Run a Python script as __main__ (or a module, with -m) with plait's debug channel on: "
        "`plait dump PID` prints its state, and so does kill -QUIT PID (to its stderr).",
    )
    run.add_argument("-m", dest="module", help="run this module as __main__, as python -m does")
    run.add_argument("target", nargs="?", help="the script (or the module's first argument)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")


def channel_name(uid: int, pid: int) -> str:
    """The abstract socket name of process ``pid`` run by ``uid`` (see ``plait.debug.enable``)."""
    return f"\0plait-{uid}-{pid}"


def _owner(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        raise DumpError(f"no process {pid}") from None


def request(pid: int, *, as_json: bool = False, timeout: float = 40.0) -> str | None:
    """The report of process ``pid`` through its debug channel, or None when it has none.

    Raises :class:`DumpError` when the channel refuses (another user) or answers from another
    process."""
    uid = _owner(pid)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(channel_name(uid, pid))
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        server_pid, server_uid, _ = struct.unpack("3i", creds)
        if server_pid != pid or server_uid != uid:
            raise DumpError(
                f"the socket {channel_name(uid, pid)[1:]!r} is served by process {server_pid} (uid "
                f"{server_uid}), not by process {pid}: its answer is not trusted"
            )
        sock.sendall(b"DUMP JSON\n" if as_json else b"DUMP\n")
        chunks = []
        try:
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
        except ConnectionResetError:
            if not chunks:  # the answer came whole before the reset (refused requests)
                raise
    text = b"".join(chunks).decode("utf-8", "replace")
    if text.startswith("ERROR "):
        hint = ""
        if "permission denied" in text and os.geteuid() != uid:
            hint = f" (run it as the process's user: sudo -u '#{uid}' plait dump {pid})"
        raise DumpError(f"process {pid} refused: {text[6:].strip()}{hint}")
    return text


def _py_spy(pid: int, as_json: bool) -> int:
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")  # an unactivated venv
    exe = shutil.which("py-spy") or (beside if os.access(beside, os.X_OK) else None)
    print(_NO_CHANNEL.format(pid=pid) + ".", file=sys.stderr, flush=True)
    if exe is None:
        print(
            "Without it, its Python stacks can be read by py-spy, which is not installed "
            "(pip install 'plait[debug]').",
            file=sys.stderr,
        )
        return 1
    print(
        "Showing py-spy's view instead: Python stacks only; not shown: plait locks and deadlocks, "
        "asyncio tasks, greenlets, process pool workers.",
        file=sys.stderr,
        flush=True,
    )
    cmd = [exe, "dump", "--pid", str(pid)]
    if as_json:
        cmd.append("--json")
    return subprocess.run(cmd, check=False).returncode


def run(args: argparse.Namespace) -> int:
    """Run the ``dump`` or ``run`` command parsed into ``args``."""
    return dump_main(args) if args.command == "dump" else run_main(args)


def dump_main(args: argparse.Namespace) -> int:
    """``plait dump PID``."""
    try:
        text = request(args.pid, as_json=args.json, timeout=args.timeout)
    except DumpError as exc:
        print(f"plait dump: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"plait dump: process {args.pid} did not answer within {args.timeout:g} s", file=sys.stderr)
        return 1
    if text is None:
        return _py_spy(args.pid, args.json)
    sys.stdout.write(text)
    return 0


def run_main(args: argparse.Namespace) -> int:
    """``plait run script.py [args]`` / ``plait run -m module [args]``."""
    import runpy

    from . import enable

    rest = list(args.args)
    if args.module is None and args.target is None:
        print("plait run: a script or -m module is required", file=sys.stderr)
        return 2
    enable()
    if args.module is not None:
        sys.argv = [args.module, *([args.target] if args.target is not None else []), *rest]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        return 0
    script = args.target
    sys.argv = [script, *rest]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
    return 0
