"""``monitor()``: an opt-in watchdog that reports a greenlet keeping the hub from running.

Cooperative scheduling fails silently when one greenlet computes (or calls a blocking C
function) for long without switching: every other greenlet, timer and socket waits. gevent's
``monitor_thread`` option reports that as "a greenlet blocked the hub"; this is plait's.

A thread watches one hub's thread: ``greenlet.settrace`` records each switch (its time and the
greenlet switched to); when a greenlet other than the hub has run longer than the threshold
since the last switch, the watchdog writes that greenlet's name and current stack (taken from the
running thread with ``sys._current_frames``) once per offence. The trace function costs a little
on every switch, which is why the monitor is off by default.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Any, TextIO

import greenlet as _greenlet

from ._hub import Hub, _name_of, get_hub

__all__ = ["Monitor", "monitor"]


class Monitor:
    """The watchdog of one hub (see :func:`monitor`). ``reports`` lists what it found, as
    ``(greenlet name, milliseconds so far, stack text)``; :meth:`stop` ends it."""

    def __init__(self, hub: Hub, threshold_ms: float, file: TextIO | None) -> None:
        if threshold_ms <= 0:
            raise ValueError(f"threshold_ms must be > 0, not {threshold_ms!r}")
        self.hub = hub
        self.threshold = threshold_ms / 1000.0
        self.file = file
        self.reports: list[tuple[str, float, str]] = []
        self._thread_id = threading.get_ident()
        self._switched_at = time.monotonic()
        self._running: Any = None  # the greenlet switched to last (None: the hub or unknown)
        self._reported: Any = None  # the switch time already reported
        self._stop = threading.Event()
        self._previous_trace = _greenlet.settrace(self._trace)
        self._watchdog = threading.Thread(target=self._watch, name="plait-green-monitor", daemon=True)
        self._watchdog.start()
        hub.on_destroy.append(self.stop)

    def _trace(self, event: str, args: Any) -> None:
        if event in ("switch", "throw"):
            target = args[1]
            self._running = None if target is self.hub else target
            self._switched_at = time.monotonic()
        previous = self._previous_trace
        if previous is not None:
            previous(event, args)

    def _watch(self) -> None:
        step = self.threshold / 4
        while not self._stop.wait(step):
            running, since = self._running, self._switched_at
            if running is None or since == self._reported:
                continue
            held = time.monotonic() - since
            if held < self.threshold:
                continue
            frame = sys._current_frames().get(self._thread_id)
            if frame is None or self._switched_at != since:
                continue  # the thread ended, or it switched meanwhile
            self._reported = since
            stack = "".join(traceback.format_stack(frame))
            self._report(_name_of(running), held * 1000.0, stack)

    def _report(self, name: str, ms: float, stack: str) -> None:
        self.reports.append((name, ms, stack))
        out = self.file if self.file is not None else sys.stderr
        out.write(
            f"plait.green monitor: {name} has kept the hub from running for {ms:.0f} ms "
            f"(threshold {self.threshold * 1000:.0f} ms); it is at:\n{stack}\n"
        )
        out.flush()

    def stop(self) -> None:
        """Ends the watchdog and removes the trace function (call from the hub's thread)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._watchdog.join()
        if threading.get_ident() == self._thread_id and _greenlet.gettrace() == self._trace:
            _greenlet.settrace(self._previous_trace)
        try:
            self.hub.on_destroy.remove(self.stop)
        except ValueError:
            pass

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def monitor(threshold_ms: float = 100.0, file: TextIO | None = None) -> Monitor:
    """Starts watching this thread's hub: a greenlet that runs ``threshold_ms`` or longer without
    switching (so nothing else runs: no other greenlet, timer or socket) is reported once, with
    its name and stack, to ``file`` (stderr by default). Off unless called; returns the
    :class:`Monitor` (``stop()`` it, or use it as a context manager; the hub's ``destroy()``
    stops it too). Each switch costs a little more while it runs."""
    return Monitor(get_hub(), threshold_ms, file)
