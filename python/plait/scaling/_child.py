"""``plait scale --python PATH``: the same sweep in another interpreter, ``PATH -m plait scale ...
--json`` in a child process, read back as a :class:`ScaleReport`.

The child runs in the parent's working directory with that directory first on its ``PYTHONPATH``,
so ``MODULE:FUNC`` resolves to the same file as in the parent; the rest of the environment passes
through unchanged (``PYTHON_GIL`` included). The caller runs one child at a time, never beside
its own sweep: they measure speed.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence

from ..exceptions import PlaitError
from ._interp import Interpreter
from ._report import ScaleReport

# What the probe runs: the interpreter's own Interpreter.current(), which also shows that it has a
# plait recent enough to label its sweep.
_PROBE = (
    "import json; from plait.scaling import Interpreter; print(json.dumps(Interpreter.current().to_dict()))"
)


class ChildFailed(PlaitError, RuntimeError):
    """An interpreter given with ``--python`` that could not run the sweep; the message is one
    line naming it, what failed and the end of its stderr."""


def child_env() -> dict[str, str]:
    """This environment with the working directory first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH")) if p)
    return env


def _tail(stderr: str) -> str:
    """The last line the child wrote to stderr (a traceback's exception, a usage error)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "(nothing on stderr)"
    last = lines[-1]
    return last if len(last) <= 400 else last[:397] + "..."


def _hint(stderr: str) -> str:
    if "No module named 'plait'" in stderr or "cannot import name 'Interpreter'" in stderr:
        return " (install this version of plait in that interpreter's environment)"
    return ""


def probe(python: str) -> Interpreter:
    """Checks that ``python`` runs and has plait; returns what it is (version, GIL).

    Raises :class:`ChildFailed` when it cannot be run or cannot import ``plait.scaling``."""
    argv = [python, "-c", _PROBE]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, cwd=os.getcwd(), env=child_env(), stdin=subprocess.DEVNULL
        )
    except OSError as e:
        raise ChildFailed(f"--python {python}: cannot run it: {e.strerror or e}") from None
    if done.returncode != 0:
        raise ChildFailed(
            f"--python {python}: cannot import plait.scaling{_hint(done.stderr)}: {_tail(done.stderr)}"
        )
    try:
        return Interpreter.from_dict(json.loads(done.stdout))
    except (ValueError, KeyError, TypeError) as e:
        answer = done.stdout[:200]
        raise ChildFailed(f"--python {python}: unexpected answer to the probe ({e}): {answer!r}") from None


def sweep(python: str, argv: Sequence[str], progress: Callable[[str], None] | None = None) -> ScaleReport:
    """Runs ``python -m plait scale *argv`` (which must include ``--json``) and reads its report.
    Each line the child writes to stderr goes to ``progress`` as it comes (None: kept for an error
    message only).

    Raises :class:`ChildFailed` when the child cannot be run, exits with an error, or prints no
    report naming its interpreter."""
    cmd = [python, "-m", "plait", "scale", *argv]
    tail: collections.deque[str] = collections.deque(maxlen=20)
    with tempfile.TemporaryFile("w+") as out:
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                cwd=os.getcwd(),
                env=child_env(),
            )
        except OSError as e:
            raise ChildFailed(f"--python {python}: cannot run it: {e.strerror or e}") from None
        with proc:
            assert proc.stderr is not None
            for line in proc.stderr:
                tail.append(line)
                if progress is not None:
                    progress(line.rstrip("\n"))
        status = proc.wait()
        out.seek(0)
        text = out.read()
    stderr = "".join(tail)
    if status != 0:
        raise ChildFailed(
            f"--python {python}: plait scale failed (exit status {status}){_hint(stderr)}: {_tail(stderr)}"
        )
    try:
        data = json.loads(text)
        report = ScaleReport.from_dict(data)
    except (ValueError, KeyError, TypeError) as e:
        raise ChildFailed(
            f"--python {python}: plait scale printed no report ({e}): {_tail(stderr)}"
        ) from None
    if report.python is None:
        raise ChildFailed(
            f"--python {python}: its plait does not say which interpreter measured "
            "(install this version of plait in that interpreter's environment)"
        )
    return report


def progress_to_stderr(line: str) -> None:
    """A progress line on stderr, flushed (the parent's and the children's alike)."""
    print(line, file=sys.stderr, flush=True)
