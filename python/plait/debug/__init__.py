"""plait.debug: see what a running program is doing, and why it is stuck.

- :func:`dump` (also ``plait.dump``): this process's report: every thread with its stack and the
  plait locks it holds and waits for (with the site of each acquisition), deadlocks (worded as
  :class:`plait.DeadlockError` words them), asyncio tasks of every event loop as await trees,
  greenlets, and the workers of each ``ProcessPool``.
- :func:`enable` / :func:`disable`: the debug channel, through which ``plait dump PID`` reads
  another process's report and ``kill -QUIT PID`` prints it to stderr. ``python -m plait run
  script.py`` runs a script with the channel on.

Example::

    import sys, plait
    plait.dump(sys.stderr)                 # the report as text, to stderr
    data = json.loads(plait.dump(json=True))
"""

from __future__ import annotations

from typing import IO

from ._channel import disable, enable, enabled

__all__ = ["disable", "dump", "enable", "enabled"]


def dump(file: IO[str] | None = None, *, json: bool = False) -> str:
    """Return this process's report (see the module docstring) as text, or as a JSON document
    with ``json=True``; with ``file``, also write it there.

    The calling thread's stack ends at the call of ``dump``.
    """
    from . import _collect, _format

    report = _collect.collect()
    if json:
        from ._channel import _to_json

        text = _to_json(report)
    else:
        text = _format.text(report)
    if file is not None:
        file.write(text)
        file.flush()
    return text
