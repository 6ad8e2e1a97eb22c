"""The text form of a report from :mod:`._collect`: what ``plait dump PID`` prints, in the
order a person reads a stuck program: deadlocks first, then every thread with the locks it holds
and waits for above its stack, then asyncio tasks as await trees, greenlets and process pools.
The wording of deadlocks is that of :class:`plait.DeadlockError`."""

from __future__ import annotations

from typing import Any

Report = dict[str, Any]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _thread(names: dict[int, str | None], ident: int | None) -> str:
    if ident is None:
        return "no thread"
    return f"Thread {names.get(ident) or '<unnamed>'!r} ({ident})"


def _stack(frames: list[dict[str, Any]], indent: str) -> list[str]:
    out = []
    for f in frames:
        out.append(f'{indent}File "{f["file"]}", line {f["line"]}, in {f["function"]}')
        if f.get("code"):
            out.append(f"{indent}  {f['code']}")
    return out


def _deadlock(cycle: Report, locks: dict[int, Report], names: dict[int, str | None]) -> list[str]:
    edges = cycle["edges"]
    if cycle["self_wait"]:
        e = edges[0]
        label = locks[e["waits_for"]]["label"]
        return [
            f"Possible deadlock: {_thread(names, e['thread'])} waits for {label}, which it holds itself",
            "  (a deadlock unless another thread releases it).",
        ]
    n = len({e["thread"] for e in edges})
    lines = [f"Found one deadlock ({_plural(n, 'thread')}):", ""]
    for e in edges:
        lock = locks[e["waits_for"]]
        holders = ", ".join(_thread(names, h) for h in e["held_by"])
        lines.append(f"  {_thread(names, e['thread'])}")
        lines.append(f"    waits for {lock['label']}, held by {holders}")
        if lock["acquired_at"]:
            lines.append(f"    {lock['label']} was acquired at {lock['acquired_at']}")
    return lines


def _task(node: Report, indent: str) -> list[str]:
    coro = f" {node['coroutine']}()" if node.get("coroutine") else ""
    head = f"{indent}Task {node['name']!r} ({node['state']}){coro}"
    if node.get("see_above"):
        return [f"{head}: see above"]
    lines = [head]
    lines += _stack(node.get("stack", []), indent + "    ")
    for child in node.get("awaits", []):
        lines.append(f"{indent}  awaits:")
        lines += _task(child, indent + "    ")
    if node.get("awaits_other"):
        lines.append(f"{indent}  awaits {node['awaits_other']}")
    return lines


def text(report: Report) -> str:
    """The report as text (see the module docstring)."""
    threads = report["threads"]
    names = {t["ident"]: t["name"] for t in threads}
    locks = {lock["id"]: lock for lock in report["locks"]}
    py = report["python"]
    argv = " ".join(report.get("argv") or [])
    out = [
        f"plait dump of process {report['pid']} (Python {py['version']}: {argv}) at {report['time']}",
        f"{_plural(len(threads), 'thread')}, {_plural(len(locks), 'plait lock')} held or waited for, "
        f"{_plural(len(report['deadlocks']), 'deadlock')} (deadlock detection: {report['detection']})",
    ]
    for cycle in report["deadlocks"]:
        out.append("")
        out += _deadlock(cycle, locks, names)
    for t in threads:
        extra = []
        if t["native_id"] is not None:
            extra.append(f"native id {t['native_id']}")
        if t["daemon"]:
            extra.append("daemon")
        if t["current"]:
            extra.append("the dumping thread")
        suffix = f" [{', '.join(extra)}]" if extra else ""
        out += ["", f"{_thread(names, t['ident'])}{suffix}"]
        for lock_id in t["holds"]:
            lock = locks[lock_id]
            where = f", acquired at {lock['acquired_at']}" if lock["acquired_at"] else ""
            out.append(f"  holds {lock['label']}{where}")
        wait = t["waits_for"]
        if wait is not None:
            kind = "with a timeout" if wait["timed"] else "without timeout"
            out.append(f"  waits for {locks[wait['lock']]['label']} ({kind}, for {wait['seconds']:.3f}s)")
        if t["stack"]:
            out.append("  Stack (most recent call last):")
            out += _stack(t["stack"], "    ")
        elif t["stack"] is not None:
            out.append("  (no Python frames)")
    for loop in report["asyncio"] or []:
        where = "running" if loop["running"] else "not running"
        if loop["thread"] is not None:
            where += f" in {_thread({loop['thread']: loop['thread_name']}, loop['thread'])}"
        out += ["", f"asyncio loop {loop['loop']} ({where}): {_plural(loop['task_count'], 'task')}"]
        for node in loop["tasks"]:
            out += _task(node, "  ")
    greenlets = report["greenlets"]
    if greenlets:
        out += ["", f"greenlets: {len(greenlets)} alive"]
        for g in greenlets:
            name = f" {g['name']!r}" if g["name"] else ""
            target = f" {g['target']}" if g["target"] else ""
            out.append(f"  {g['type']}{name} at {g['id']:#x}{target} ({g['state']})")
            out += _stack(g["stack"], "      ")
    for pool in report["process_pools"] or []:
        state = ", shut down" if pool["closed"] else ""
        out += ["", f"{pool['pool']}: {_plural(len(pool['workers']), 'worker')}{state}"]
        for w in pool["workers"]:
            task = w["task"]
            if task is None:
                doing = "idle"
            else:
                doing = f"running {task['call']} (task {task['id']}, for {task['seconds']:.3f}s)"
            out.append(f"  worker pid {w['pid']}: {doing}")
    return "\n".join(out) + "\n"
