"""What ``plait bench`` makes of a run besides the case lines: the structured document that
``--json`` writes (a header, then one record per case and implementation, the targets, and what was
skipped), the Markdown table a user can paste into an issue, and bar charts of the ratios (a PNG
through matplotlib when it is installed, else bars drawn in the terminal).

The document::

    {"format": "plait-bench/1",
     "header": {"date", "command", "mode", "repeats", "machine", "cpu", "cores", "usable_cores",
                "python", "versions": {"plait": "0.1.0", "uvloop": "0.23.0", "loky": null, ...}},
     "models": ["threads", ...],
     "results": [{"model", "case", "implementation", "median", "unit", "ratio", "baseline",
                  "spread", "fast_path", "seconds", "work", "runs", "warmups", "note"}, ...],
     "targets": [{"model", "what", "threshold", "ratio", "met", "detail", "line"}, ...],
     "skipped": [{"model", "what", "kind", "reason"}, ...]}

``median`` is the median rate in ``unit`` (``items/s``: higher is better), ``ratio`` that rate over
the baseline's (the case's first line, its stdlib peer or the reference peer), ``spread`` the
(max - min) / median of the timed runs, ``fast_path`` true for a line that takes a path ordinary
inputs do not (not a headline figure). A peer that is not installed is in ``versions`` as null.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from ._common import Bench, _cpu_model, fmt_rate, package_version

FORMAT = "plait-bench/1"

#: The distributions whose versions the header records: plait and the peers of the ``bench`` extra
#: (pyproject.toml), with what plait's process pool sends functions with.
PACKAGES = (
    "plait",
    "loky",
    "mpire",
    "joblib",
    "numpy",
    "faster-fifo",
    "uvloop",
    "rloop",
    "gevent",
    "greenlet",
    "cloudpickle",
)

BAR_WIDTH = 32  # characters of the longest bar of a case in the terminal chart


def mode_of(smoke: bool, quick: bool) -> str:
    return "smoke" if smoke else "quick" if quick else "full"


def run_header(command: str, mode: str, repeats: int) -> dict[str, Any]:
    """Where, when and how: the machine, the interpreter, the versions of plait and its peers."""
    uname = platform.uname()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gil = getattr(sys, "_is_gil_enabled", None)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    if gil is not None:
        python += ", GIL " + ("enabled" if gil() else "disabled")
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "mode": mode,
        "repeats": repeats,
        "machine": f"{uname.system} {uname.release} {uname.machine}",
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": python,
        "versions": {name: package_version(name) for name in PACKAGES},
    }


def _finite(x: float | None) -> float | None:
    """JSON has no infinity or NaN: such a figure becomes null."""
    return x if x is not None and math.isfinite(x) else None


def model_part(model: str, bench: Bench) -> dict[str, list[dict[str, Any]]]:
    """One model's results, targets and skipped peers or cases, as the document holds them."""
    results = []
    for res in bench.results:
        rec = res.record(model)
        for key in ("median", "ratio", "spread", "seconds"):
            rec[key] = _finite(rec[key])
        results.append(rec)
    targets = [
        {
            "model": model,
            "what": t.what,
            "threshold": t.threshold,
            "ratio": _finite(t.ratio),
            "met": None if t.ratio is None else t.ratio >= t.threshold,
            "detail": t.detail,
            "line": t.line,
        }
        for t in bench.targets
    ]
    skipped = [{"model": model, "what": s.what, "kind": s.kind, "reason": s.reason} for s in bench.skipped]
    return {"results": results, "targets": targets, "skipped": skipped}


def document(
    header: dict[str, Any], models: Sequence[str], parts: Iterable[dict[str, Any]]
) -> dict[str, Any]:
    """The whole run: ``header``, then every model's part, in the order run."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "header": header,
        "models": list(models),
        "results": [],
        "targets": [],
        "skipped": [],
    }
    for part in parts:
        for key in ("results", "targets", "skipped"):
            doc[key].extend(part.get(key, ()))
    return doc


# -- Markdown -------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def header_lines(header: dict[str, Any]) -> list[str]:
    """The run's facts, one Markdown line each (a paragraph once rendered)."""
    versions = ", ".join(
        f"{name} {v}" for name, v in header["versions"].items() if v is not None and name != "plait"
    )
    missing = [name for name, v in header["versions"].items() if v is None]
    runs = header["repeats"]
    smoke = " SMOKE RUN: the figures mean nothing;" if header["mode"] == "smoke" else ""
    return [
        f"`{header['command']}` ({header['mode']} sizes;{smoke} median of {runs} timed run"
        f"{'s' if runs != 1 else ''} after a warm-up; ratio = rate / the case's first line, higher is "
        f"better), {header['date']}",
        f"{header['machine']}, {header['cores']} logical cores ({header['usable_cores']} usable), "
        f"{header['cpu']}; {header['python']}",
        f"plait {header['versions'].get('plait') or '(not installed: run from a checkout)'}"
        + (f"; peers: {versions}" if versions else "")
        + (f"; not installed: {', '.join(missing)}" if missing else ""),
    ]


def markdown(doc: dict[str, Any]) -> str:
    """A table per model (case | implementation | median | ratio), plait's ratios in bold, headed
    by the run's facts and followed by what was skipped: pasteable into an issue as is."""
    out = ["  \n".join(header_lines(doc["header"])), ""]
    several = len(doc["models"]) > 1
    for model in doc["models"]:
        rows = [r for r in doc["results"] if r["model"] == model]
        if several:
            out += [f"**{model}**", ""]
        if not rows:
            out += ["(no results)", ""]
            continue
        out += ["| case | implementation | median | ratio |", "|---|---|---:|---:|"]
        previous = None
        for r in rows:
            case = "" if r["case"] == previous else _cell(r["case"])
            previous = r["case"]
            median = "-" if r["median"] is None else fmt_rate(r["median"], r["unit"].removesuffix("/s"))
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            if r["implementation"].startswith("plait") and r["ratio"] is not None:
                ratio = f"**{ratio}**"
            out.append(f"| {case} | {_cell(r['implementation'])} | {median} | {ratio} |")
        out.append("")
    skipped = doc["skipped"]
    if skipped:
        out.append("Skipped: " + "; ".join(f"{s['what']} ({s['model']}: {s['reason']})" for s in skipped))
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# -- bar charts -----------------------------------------------------------------------------------


def _cases(doc: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(model, case, its lines) in the order run; lines without a ratio are left out."""
    out: list[tuple[str, str, list[dict[str, Any]]]] = []
    for r in doc["results"]:
        if r["ratio"] is None:
            continue
        if not out or out[-1][0] != r["model"] or out[-1][1] != r["case"]:
            out.append((r["model"], r["case"], []))
        out[-1][2].append(r)
    return out


def terminal_chart(doc: dict[str, Any]) -> str:
    """The ratios as bars of block characters, one group per case, scaled to the case's largest."""
    out = []
    width = max((len(r["implementation"]) for r in doc["results"]), default=10)
    for model, case, rows in _cases(doc):
        out.append(f"{model}: {case}")
        top = max(r["ratio"] for r in rows) or 1.0
        for r in rows:
            bar = "█" * max(1, round(BAR_WIDTH * r["ratio"] / top))
            out.append(f"  {r['implementation']:<{width}} {bar} {r['ratio']:.2f}x")
    return "\n".join(out) + "\n"


def plot(doc: dict[str, Any], path: str) -> str | None:
    """Draw the ratios into ``path`` (a chart per model: one bar per line, grouped by case, 1x
    marked); returns None, or why it could not (matplotlib is not installed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return f"matplotlib is not installed ({e}): `pip install 'plait[plot]'` for --plot"
    cases = _cases(doc)
    models = [m for m in doc["models"] if any(c[0] == m for c in cases)]
    if not models:
        return "no results to plot"
    heights = [sum(len(rows) + 1 for m, _, rows in cases if m == model) for model in models]
    fig, axes = plt.subplots(
        len(models),
        1,
        figsize=(10, max(3.0, 0.22 * sum(heights) + 1.2 * len(models))),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, model in zip(axes[:, 0], models, strict=True):
        labels, ratios, colors = [], [], []
        for m, case, rows in cases:
            if m != model:
                continue
            for r in rows:
                labels.append(f"{case[:48]} | {r['implementation'][:40]}")
                ratios.append(r["ratio"])
                plait_line = r["implementation"].startswith("plait")
                colors.append("tab:orange" if plait_line else "tab:gray")
            labels.append("")
            ratios.append(1.0)
            colors.append("white")
        ys = list(range(len(labels)))[::-1]
        # Bars from 1x to the ratio (leftwards when slower), on a log axis: 2x and 0.5x look alike.
        ax.barh(ys, [r - 1.0 for r in ratios], left=1.0, color=colors)
        ax.set_yticks(ys, labels, fontsize=6)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        shown = [r for r, c in zip(ratios, colors, strict=True) if c != "white"]
        ax.set_xlim(min(0.5, min(shown) / 1.25), max(2.0, max(shown) * 1.25))
        ax.set_title(f"plait bench {model}: rate / the case's first line (orange: plait)", fontsize=9)
        ax.set_xlabel("ratio (higher is better)", fontsize=8)
    h = doc["header"]
    fig.suptitle(
        f"{h['machine']}, {h['cores']} cores, {h['python']}; {h['mode']} sizes, {h['date']}", fontsize=8
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
