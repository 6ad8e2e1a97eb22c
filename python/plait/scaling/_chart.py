"""Charts of a :class:`ScaleReport`: throughput and efficiency against workers, the measured
points and the fitted USL curves. :func:`text_chart` draws them in the terminal with no
dependency; :func:`plot` writes an image with matplotlib (the ``plot`` extra:
``pip install plait[plot]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ._report import ModelResult, ScaleReport


def _marker(model: str, taken: set[str]) -> str:
    for ch in model + "abcdefghijklmnopqrstuvwxyz":
        if ch.isalpha() and ch.lower() not in taken:
            taken.add(ch.lower())
            return ch.lower()
    return "?"  # pragma: no cover - more than 26 models


def _efficiency(m: ModelResult) -> tuple[list[tuple[float, float]], Callable[[float], float] | None]:
    """Points and curve of throughput per worker relative to one worker (the fewest measured)."""
    base = min(m.points, key=lambda p: p.workers)
    unit = base.throughput / base.workers
    pts = [(p.workers, p.throughput / p.workers / unit) for p in m.points]
    u = m.usl
    if u is None:
        return pts, None
    one = u.predict(1.0) if u.gamma > 0 else math.nan
    return pts, (lambda n: u._curve(n) / n / one)


def _panel(
    title: str,
    series: list[tuple[str, list[tuple[float, float]], Callable[[float], float] | None]],
    x_max: float,
    width: int,
    height: int,
    y_label: Callable[[float], str],
) -> list[str]:
    ys = [y for _, pts, _ in series for _, y in pts]
    curves = [(mk, f) for mk, _, f in series if f is not None]
    xs = [1.0 + (x_max - 1.0) * i / (width - 1) for i in range(width)]
    for _, f in curves:
        ys.extend(v for v in (f(x) for x in xs) if math.isfinite(v))
    y_top = max(ys) * 1.05 if ys else 1.0
    grid = [[" "] * width for _ in range(height)]

    def put(x: float, y: float, ch: str) -> None:
        col = round((x - 1.0) / (x_max - 1.0) * (width - 1)) if x_max > 1 else 0
        row = height - 1 - round(y / y_top * (height - 1)) if y_top > 0 else height - 1
        if 0 <= col < width and 0 <= row < height:
            grid[row][col] = ch

    for mk, f in curves:
        for x in xs:
            v = f(x)
            if math.isfinite(v):
                put(x, v, "·" if len(curves) == 1 else mk)
    for mk, pts, _ in series:
        for x, y in pts:
            put(x, y, mk.upper())
    label_w = max(len(y_label(y_top)), len(y_label(0.0)))
    out = [title]
    for i, row in enumerate(grid):
        y = y_top * (height - 1 - i) / (height - 1)
        label = y_label(y) if i in (0, height // 2, height - 1) else ""
        out.append(f"{label:>{label_w}} |{''.join(row)}")
    out.append(" " * label_w + " +" + "-" * width)
    left, right = "1", f"{x_max:g}"
    out.append(" " * (label_w + 2) + left + " " * (width - len(left) - len(right)) + right + "  workers")
    return out


def text_chart(report: ScaleReport, *, width: int = 60, height: int = 12) -> str:
    """Throughput and efficiency against workers as text: each model's points as its capital
    letter, its fitted USL curve in the small letter (``·`` when there is one model)."""
    measured = [m for m in report.models if m.points]
    if not measured:
        return "(no points to chart)"
    taken: set[str] = set()
    marks = {m.name: _marker(m.name, taken) for m in measured}
    x_max = float(max(p.workers for m in measured for p in m.points))
    tput = [
        (
            marks[m.name],
            [(float(p.workers), p.throughput) for p in m.points],
            (m.usl._curve if m.usl else None),
        )
        for m in measured
    ]
    eff = []
    for m in measured:
        pts, curve = _efficiency(m)
        eff.append((marks[m.name], pts, curve))
    legend = "  ".join(f"{marks[m.name].upper()}={m.name}" for m in measured)
    lines = _panel("throughput (calls/s) vs workers", tput, x_max, width, height, lambda y: f"{y:.3g}")
    lines.append("")
    lines += _panel(
        "efficiency (per worker, 1 = linear) vs workers",
        eff,
        x_max,
        width,
        height // 2 + 2,
        lambda y: f"{y:.2f}",
    )
    lines.append(f"points: {legend}; lines: fitted USL")
    return "\n".join(lines)


def plot(report: ScaleReport, path: str, *, title: str | None = None) -> None:
    """Writes throughput and efficiency against workers to ``path`` (PNG, SVG, PDF: by its
    suffix): points with their spread, fitted USL (solid) and Amdahl (dashed) curves.

    Raises ``ModuleNotFoundError`` naming the ``plot`` extra when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "plotting needs matplotlib: pip install 'plait[plot]' (or drop --plot for the terminal chart)",
            name=e.name,
        ) from None
    measured = [m for m in report.models if m.points]
    fig, (ax_x, ax_e) = plt.subplots(1, 2, figsize=(10, 4))
    x_max = max(p.workers for m in measured for p in m.points)
    grid = [1 + (x_max - 1) * i / 199 for i in range(200)]
    # One marker per interpreter (a report of several, from --python): its models share it.
    shapes: dict[str, str] = {}
    for m in measured:
        shape = shapes.setdefault(m.python.label if m.python else "", "os^Dv"[len(shapes) % 5])
        ws = [p.workers for p in m.points]
        xs = [p.throughput for p in m.points]
        err = [[p.throughput - p.low for p in m.points], [p.high - p.throughput for p in m.points]]
        line: Any = ax_x.errorbar(ws, xs, yerr=err, fmt=shape, capsize=3, label=m.name)
        color = line[0].get_color()
        if m.usl is not None:
            ax_x.plot(grid, [m.usl._curve(n) for n in grid], "-", color=color, linewidth=1)
        if m.amdahl is not None:
            ax_x.plot(grid, [m.amdahl._curve(n) for n in grid], "--", color=color, linewidth=0.8, alpha=0.7)
        pts, curve = _efficiency(m)
        ax_e.plot([x for x, _ in pts], [y for _, y in pts], shape, color=color, label=m.name)
        if curve is not None:
            ax_e.plot(grid, [curve(n) for n in grid], "-", color=color, linewidth=1)
    ax_x.set(xlabel="workers", ylabel="throughput (calls/s)", title="throughput (USL solid, Amdahl dashed)")
    ax_e.set(
        xlabel="workers", ylabel="efficiency (per worker, 1 = linear)", title="efficiency", ylim=(0, None)
    )
    ax_e.axhline(1.0, color="grey", linewidth=0.5)
    ax_x.set_ylim(bottom=0)
    ax_x.legend()
    fig.suptitle(title or f"plait scale: {report.target} ({report.cores} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
