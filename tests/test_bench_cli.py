"""``plait bench``: the command runs a model's cases at smoke sizes and reports them as JSON records,
a Markdown table and bar charts; a missing peer is named and skipped; an unknown model is an error.

The commands run in child processes (as a user runs them); the report's formats are also checked
on a document built by hand, in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plait.bench import _report

RECORD_FIELDS = {"model", "case", "implementation", "median", "unit", "ratio", "spread", "fast_path"}
TABLE_HEAD = "| case | implementation | median | ratio |"


def plait(
    *args: str, extra_path: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m plait ARGS`` with this interpreter and this checkout's plait."""
    import plait as pkg

    paths = [extra_path, str(Path(pkg.__file__).parent.parent), os.environ.get("PYTHONPATH", "")]
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **(env or {})}
    full_env.pop("PLAIT_BENCH_SMOKE", None)
    return subprocess.run(
        [sys.executable, "-m", "plait", *args], capture_output=True, text=True, timeout=90, env=full_env
    )


@pytest.fixture(scope="module")
def threads_smoke() -> subprocess.CompletedProcess[str]:
    return plait("bench", "threads", "--smoke", "--json")


def test_json_holds_a_header_and_a_record_per_line(threads_smoke):
    assert threads_smoke.returncode == 0, threads_smoke.stderr
    doc = json.loads(threads_smoke.stdout)  # stdout is the document alone
    assert doc["format"] == "plait-bench/1" and doc["models"] == ["threads"]
    header = doc["header"]
    assert header["mode"] == "smoke" and header["repeats"] == 1
    assert header["cores"] == os.cpu_count() and header["python"].startswith("CPython")
    assert {"plait", "loky", "uvloop", "gevent"} <= set(header["versions"])
    assert header["command"] == "plait bench threads --smoke"
    results = doc["results"]
    assert len(results) >= 20
    for rec in results:
        assert RECORD_FIELDS <= set(rec), rec
        assert rec["model"] == "threads" and rec["unit"].endswith("/s") and rec["median"] > 0
    # The first line of each case is its baseline, at 1.00x.
    first = {}
    for rec in results:
        first.setdefault(rec["case"], rec)
    assert all(rec["ratio"] == 1.0 and rec["baseline"] == rec["implementation"] for rec in first.values())
    assert first["map, list of 20k ints"]["implementation"] == "ThreadPoolExecutor.map"
    fast = {rec["case"] for rec in results if rec["fast_path"]}
    assert fast == {"map, range(20k) [fast path: range input]"}
    assert {t["what"] for t in doc["targets"]} >= {"Queue ping-pong vs queue.Queue"}


def test_progress_and_the_markdown_table_go_to_stderr_with_json_on_stdout(threads_smoke):
    err = threads_smoke.stderr
    assert "queue ping-pong (20k items, maxsize 1024)" in err  # the case lines, as they run
    table = err[err.index(TABLE_HEAD) :].splitlines()
    assert table[1] == "|---|---|---:|---:|"
    assert any(line.startswith("|  | plait.threads.Queue | ") and line.endswith("x** |") for line in table)
    assert "`plait bench threads --smoke` (smoke sizes; SMOKE RUN" in err


def test_a_missing_peer_and_a_missing_client_are_named_and_skipped(tmp_path):
    (tmp_path / "rloop.py").write_text("raise ImportError('hidden by the test')\n")
    proc = plait(
        "bench",
        "aio",
        "--smoke",
        "--json",
        extra_path=str(tmp_path),
        env={"PLAIT_LOADGEN": str(tmp_path / "no-such-loadgen")},
    )
    assert proc.returncode == 0, proc.stderr
    assert "peer rloop: not installed (hidden by the test)" in proc.stderr
    assert "case echo: PLAIT_LOADGEN=" in proc.stderr
    doc = json.loads(proc.stdout)
    skipped = {(s["kind"], s["what"]) for s in doc["skipped"]}
    # The aio peers this environment lacks (the bench extra is not a test dependency) are
    # skipped too, each named.
    absent = {("peer", name) for name in ("uvloop",) if importlib.util.find_spec(name) is None}
    assert skipped == {("peer", "rloop"), ("case", "echo")} | absent
    impls = {rec["implementation"] for rec in doc["results"]}
    assert "rloop" not in impls and {"asyncio", "plait.aio"} <= impls
    assert not any(rec["case"].startswith("echo") for rec in doc["results"])


def test_an_unknown_model_is_an_error_naming_the_choices():
    proc = plait("bench", "nope")
    assert proc.returncode == 2
    assert "invalid choice: 'nope'" in proc.stderr and "threads" in proc.stderr and "all" in proc.stderr


def test_help_lists_every_command_on_one_line():
    out = plait("--help").stdout
    lines = out.splitlines()
    for command in ("demo", "bench"):
        (line,) = [x for x in lines if x.strip().startswith(command + " ")]
        assert len(line.split(None, 1)) == 2, line  # the command and its help on the same line


# -- the report's formats, on a document built by hand ----------------------------------------


def sample_doc() -> dict[str, Any]:
    header = _report.run_header("plait bench threads", "full", 5)
    header["versions"]["loky"] = None

    def rec(case: str, impl: str, rate: float, ratio: float) -> dict[str, Any]:
        return {
            "model": "threads",
            "case": case,
            "implementation": impl,
            "median": rate,
            "unit": "items/s",
            "ratio": ratio,
            "spread": 0.01,
            "fast_path": "[fast path:" in case,
        }

    results = [
        rec("queue a|b", "queue.Queue", 1e6, 1.0),
        rec("queue a|b", "plait.threads.Queue", 4e6, 4.0),
        rec("map, range(1k) [fast path: range input]", "ThreadPoolExecutor.map", 5e4, 1.0),
        rec("map, range(1k) [fast path: range input]", "plait.threads.ThreadPool.map", 1e7, 200.0),
    ]
    skipped = [{"model": "threads", "what": "gevent", "kind": "peer", "reason": "not installed"}]
    return _report.document(header, ["threads"], [{"results": results, "targets": [], "skipped": skipped}])


def test_markdown_table_escapes_cells_bolds_plait_and_names_what_was_skipped():
    text = _report.markdown(sample_doc())
    lines = text.splitlines()
    assert "`plait bench threads` (full sizes; median of 5 timed runs" in lines[0]
    assert "not installed: loky" in text
    start = lines.index(TABLE_HEAD)
    assert lines[start + 1 : start + 6] == [
        "|---|---|---:|---:|",
        "| queue a\\|b | queue.Queue | 1.00M items/s | 1.00x |",
        "|  | plait.threads.Queue | 4.00M items/s | **4.00x** |",
        "| map, range(1k) [fast path: range input] | ThreadPoolExecutor.map | 50k items/s | 1.00x |",
        "|  | plait.threads.ThreadPool.map | 10.00M items/s | **200.00x** |",
    ]
    assert lines[-1] == "Skipped: gevent (threads: not installed)"


def test_plot_without_matplotlib_says_so_and_the_terminal_chart_draws_the_ratios(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    why = _report.plot(sample_doc(), str(tmp_path / "out.png"))
    assert why is not None and "matplotlib is not installed" in why and "plait[plot]" in why
    assert not (tmp_path / "out.png").exists()
    chart = _report.terminal_chart(sample_doc()).splitlines()
    assert chart[0] == "threads: queue a|b"
    assert chart[2].split()[-2:] == ["█" * _report.BAR_WIDTH, "4.00x"]
    assert chart[1].split()[-2:] == ["█" * round(_report.BAR_WIDTH / 4), "1.00x"]


def test_plot_writes_a_png_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the `plot` extra) is not installed")
    (tmp_path / "doc.json").write_text(json.dumps(sample_doc()))
    out = tmp_path / "ratios.png"
    # In a child: matplotlib keeps font files open once it has drawn.
    code = (
        "import json, sys; from plait.bench import _report; "
        "print(_report.plot(json.load(open(sys.argv[1])), sys.argv[2]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "doc.json"), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout == "None\n", proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
