"""``plait scale`` and the sweep behind it: fitting measurements from a CSV file, JSON output,
a real (tiny, short) sweep under each model, the verdict, and the charts; ``--python``: the same
sweep in a child interpreter, merged into one report. No test asserts a timing: only structure and
sanity."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait.cli import main
from plait.scaling import (
    Interpreter,
    ScaleReport,
    fit_points,
    measure,
    merge,
    read_csv,
    run_sweep,
    text_chart,
)
from plait.scaling import Point as ScalePoint

SPEC = [(1, 64.9), (18, 995.9), (36, 1652.4), (72, 1853.2), (108, 1828.9), (144, 1775.0), (216, 1702.2)]
RAY_LOAD = [1, 4, 8, 12, 16, 20, 24, 28, 32, 48, 64]
RAY = list(zip(RAY_LOAD, [20, 78, 130, 170, 190, 200, 210, 230, 260, 280, 310], strict=True))


def tiny(n: int = 200) -> int:
    """A small CPU-bound call (holds the GIL)."""
    return sum(i * i for i in range(n))


def tiny_args():
    """An --args-from generator: single arguments and tuples."""
    yield 100
    yield (150,)


async def tiny_async() -> None:
    await asyncio.sleep(0)


@pytest.fixture
def spec_csv(tmp_path: Path) -> Path:
    path = tmp_path / "sdm.csv"
    lines = ["model,workers,throughput"]
    lines += [f"specsdm91,{n},{x}" for n, x in SPEC] + [f"raytracer,{n},{x}" for n, x in RAY]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_from_csv_fits_each_model(spec_csv: Path) -> None:
    report = read_csv(str(spec_csv))
    assert [m.model for m in report.models] == ["specsdm91", "raytracer"]
    spec = report["specsdm91"]
    assert spec.usl is not None and spec.amdahl is not None
    assert float(f"{spec.usl.alpha:.3g}") == 0.0277 and float(f"{spec.usl.gamma:.3g}") == 90.0
    assert [p.workers for p in spec.points] == [1, 18, 36, 72, 108, 144, 216]


def test_from_csv_repeats_become_spread(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("load,tput\n1,10\n1,12\n1,11\n2,19\n2,21\n4,30\n8,40\n16,45\n")
    report = read_csv(str(path))
    (m,) = report.models
    first = m.points[0]
    assert (first.workers, first.throughput, first.low, first.high, first.calls) == (1, 11, 10, 12, 3)


def test_from_csv_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("cores,speed\n1,2\n")
    assert main(["scale", "--from", str(path)]) == 2
    assert "no column named workers or load" in capsys.readouterr().err


def test_cli_from_csv_prints_fits_and_verdict(spec_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scale", "--from", str(spec_csv)]) == 0
    out = capsys.readouterr().out
    assert "throughput (calls/s) vs workers" in out
    assert "== specsdm91" in out and "alpha=0.0277" in out
    assert "Best: specsdm91" in out
    assert "USL peak for specsdm91 at N=96.5" in out
    assert "contention alpha=0.0277, coherency beta=0.000104" in out


def test_cli_from_csv_json(spec_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scale", "--from", str(spec_csv), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    usl = data["models"]["specsdm91"]["usl"]
    assert usl["coefficients"]["alpha"]["estimate"] == pytest.approx(0.0277285, rel=1e-4)
    assert usl["coefficients"]["beta"]["std_error"] == pytest.approx(1.988e-05, rel=1e-3)
    assert usl["peak"]["n"] == pytest.approx(96.52, rel=1e-3)
    assert usl["optimal"] == pytest.approx(36.06401, rel=1e-4)
    assert usl["limit"] == pytest.approx(3245.589, rel=1e-4)
    ray = data["models"]["raytracer"]["usl"]
    assert ray["peak"]["n"] is None  # beta = 0: no peak (infinite, not JSON)
    assert isinstance(data["verdict"], str) and data["source"] == str(spec_csv)


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str], spec_csv: Path) -> None:
    assert main(["scale"]) == 2
    assert "give MODULE:FUNC" in capsys.readouterr().err
    assert main(["scale", "x:y", "--from", str(spec_csv)]) == 2
    with pytest.raises(SystemExit, match="cannot import 'no_such_module_xyz'"):
        main(["scale", "no_such_module_xyz:f"])
    with pytest.raises(SystemExit):
        main(["scale", "m:f", "--duration", "soon"])
    with pytest.raises(SystemExit):
        main(["scale", "m:f", "--models", "fibers"])


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None, reason="matplotlib is installed")
def test_plot_without_matplotlib_says_what_to_install(
    spec_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_png = tmp_path / "out.png"
    assert main(["scale", "--from", str(spec_csv), "--plot", str(out_png)]) == 1
    captured = capsys.readouterr()
    assert "pip install 'plait[plot]'" in captured.err
    assert "throughput (calls/s) vs workers" in captured.out  # the terminal chart instead
    assert not out_png.exists()


def test_text_chart_renders_points_and_curves() -> None:
    points = [ScalePoint("threads", n, x, x, x, 1) for n, x in SPEC]
    report = ScaleReport("sdm", (fit_points("threads", points),), cores=2, source="x.csv")
    chart = text_chart(report, width=40, height=10)
    lines = chart.splitlines()
    assert lines[0] == "throughput (calls/s) vs workers"
    assert sum(line.count("T") for line in lines) >= 5  # the points (some may share a cell)
    assert any("·" in line for line in lines)  # the fitted curve
    assert "T=threads" in chart and "efficiency" in chart
    assert all(len(line) <= 40 + 20 for line in lines)


def test_measure_one_point_each_model() -> None:
    for model in ("threads", "processes", "green"):
        p = measure(tiny, model, 2, [(50,)], duration=0.15, repeats=2)
        assert p.model == model and p.workers == 2
        assert p.throughput > 0 and p.low <= p.throughput <= p.high and len(p.repeats) == 2
        assert p.calls >= 2
    p = measure(tiny_async, "aio", 2, duration=0.1, repeats=1)
    assert p.model == "aio" and p.throughput > 0


def test_run_sweep_structure_and_verdict() -> None:
    lines: list[str] = []
    report = run_sweep(tiny, [(50,)], target="t:tiny", workers=[1, 2], duration=0.1, repeats=1,
                       progress=lines.append)  # fmt: skip
    assert [m.model for m in report.models] == ["threads", "processes", "aio", "green"]
    assert report["aio"].skipped and "coroutine function" in report["aio"].skipped
    for name in ("threads", "processes", "green"):
        m = report[name]
        assert [p.workers for p in m.points] == [1, 2]
        assert m.amdahl is not None  # 2 points: Amdahl (2 coefficients) only
        assert m.usl is None and any("too few" in n for n in m.notes)
        assert math.isfinite(m.speedup) and m.speedup > 0
    assert len(lines) == 6
    text = report.verdict()
    assert "threads reach" in text and f"on {report.cores} cores" in text and "Best:" in text
    assert "Skipped aio" in text
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["models"]["aio"]["skipped"]


def test_coroutine_function_runs_under_aio_only() -> None:
    report = run_sweep(tiny_async, workers=[1, 2], duration=0.05, repeats=1)
    assert [m.model for m in report.models if m.points] == ["aio"]
    assert "only aio runs it" in (report["threads"].skipped or "")


def test_cli_sweep_with_args_from(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scale", "test_cli_scale:tiny", "--args-from", "test_cli_scale:tiny_args", "--models", "threads",
            "--workers", "1,2,3", "--duration", "60ms", "--repeats", "1"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "threads x1" in captured.err  # progress
    assert "== threads" in captured.out and "threads reach" in captured.out


@pytest.fixture(scope="module")
def warm_matplotlib(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Draws one plot before the test's leak check starts: matplotlib keeps a font file open for
    the life of the process after its first drawing."""
    from plait.scaling import plot

    points = [ScalePoint("t", n, x, x, x, 1) for n, x in SPEC]
    plot(ScaleReport("warm", (fit_points("t", points),)), str(tmp_path_factory.mktemp("mpl") / "w.png"))


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_plot_writes_an_image(
    warm_matplotlib: None, spec_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_png = tmp_path / "out.png"
    assert main(["scale", "--from", str(spec_csv), "--plot", str(out_png)]) == 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot written to {out_png}" in capsys.readouterr().out


# --- --python: the same sweep under other interpreters, merged into one report ---

PY = Interpreter.current()
GIL = Interpreter((3, 11, 9))
NO_GIL = Interpreter((3, 13, 5), free_threaded=True, gil_enabled=False)

TARGET = """
import os

if os.environ.get("SCALE_TARGET_FAIL"):
    raise ImportError("made to fail in the child")


def work(n: int = 2000) -> int:
    return sum(i * i for i in range(n))
"""

# The tiniest sweep: threads only, 1 and 2 workers, 50 ms a point.
SWEEP = ["scale", "scale_target:work", "--models", "threads", "--workers", "1,2", "--duration", "50ms",
         "--repeats", "1"]  # fmt: skip


@pytest.fixture
def target_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module to measure in a fresh working directory (not on the parent's path before the run:
    the parent and the child both find it through the working directory)."""
    (tmp_path / "scale_target.py").write_text(TARGET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop("scale_target", None)
    yield tmp_path
    sys.modules.pop("scale_target", None)


def wrapper(path: Path, line: str) -> str:
    """An executable script standing in for an interpreter."""
    path.write_text(f"#!/bin/sh\n{line}\n")
    path.chmod(0o755)
    return str(path)


def pts(model: str, *rates: float) -> list[ScalePoint]:
    return [ScalePoint(model, n, x, x, x, 1) for n, x in enumerate(rates, start=1)]


def swept(python: Interpreter, threads: tuple[float, float], procs: tuple[float, float]) -> ScaleReport:
    """A sweep of threads and processes at 1 and 2 workers on 2 cores, under ``python``."""
    models = [fit_points(m, pts(m, *rates)) for m, rates in (("threads", threads), ("processes", procs))]
    return ScaleReport("m:f", tuple(models), cores=2, python=python)


def merged_gil_and_no_gil() -> ScaleReport:
    """Pure Python under a GIL build (threads flat) and a free-threaded one (threads scale)."""
    return merge([swept(GIL, (100, 98), (95, 180)), swept(NO_GIL, (90, 171), (92, 178))])


def test_interpreter_labels() -> None:
    assert GIL.label == "3.11" and NO_GIL.label == "3.13t, GIL disabled" and NO_GIL.short == "3.13t"
    assert Interpreter((3, 13, 5), free_threaded=True).label == "3.13t, GIL enabled"
    assert Interpreter.from_dict(NO_GIL.to_dict()) == NO_GIL
    assert PY.version == tuple(sys.version_info[:3]) and PY.executable == sys.executable


def test_merge_labels_each_model_with_its_interpreter() -> None:
    report = merged_gil_and_no_gil()
    free = "3.13t, GIL disabled"
    names = ["threads [3.11]", "processes [3.11]", f"threads [{free}]", f"processes [{free}]"]
    assert [m.name for m in report.models] == names
    assert report["threads [3.13t, GIL disabled]"].model == "threads"
    twice = merge([ScaleReport("m:f", (fit_points("threads", pts("threads", 1, 2)),), python=GIL)] * 2)
    assert [m.name for m in twice.models] == ["threads [3.11]", "threads [3.11 #2]"]
    with pytest.raises(ValueError, match="does not name its interpreter"):
        merge([ScaleReport("x.csv", (), source="x.csv")])


def test_verdict_compares_interpreters_and_keeps_the_gil_kind() -> None:
    text = merged_gil_and_no_gil().verdict()
    assert text.startswith("GIL-bound: threads [3.11] reach 1.0x at 2 workers")
    assert "Why (3.11): pure Python holds the GIL" in text
    lines = text.splitlines()
    free, gil = "with the GIL disabled (3.13t)", "with the GIL (3.11)"
    assert f"threads: 1.9x at 2 workers {free} against 1.0x {gil}." in lines
    # The best speed-up first (178/92 > 180/95).
    assert f"processes: 1.9x at 2 workers {free} against 1.9x at 2 workers {gil}." in lines


def test_verdict_without_the_gil_does_not_say_native_code() -> None:
    text = swept(NO_GIL, (90, 171), (92, 178)).verdict()
    assert text.startswith("parallel threads: ") and "Why: the GIL is disabled" in text
    assert "native code" not in text and "releases the GIL" not in text


def test_merged_report_charts_and_json() -> None:
    report = merged_gil_and_no_gil()
    chart = text_chart(report)
    assert "T=threads [3.11]" in chart and "=threads [3.13t, GIL disabled]" in chart
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["models"]["threads [3.13t, GIL disabled]"]["python"]["gil_enabled"] is False
    assert data["python"] is None  # each model names its own
    again = ScaleReport.from_dict(data)
    assert again.to_dict() == report.to_dict()


def test_json_names_the_interpreter() -> None:
    report = run_sweep(tiny, [(50,)], models=["threads"], workers=[1, 2], duration=0.05, repeats=1)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    python = data["python"]
    assert python["version_info"] == list(sys.version_info[:3]) and python["label"] == PY.label
    assert python["Py_GIL_DISABLED"] == PY.free_threaded and python["gil_enabled"] == PY.gil_enabled
    assert len(data["models"]["threads"]["points"][0]["repeats"]) == 1
    assert ScaleReport.from_dict(data).to_dict() == report.to_dict()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_plot_of_a_merged_report(warm_matplotlib: None, tmp_path: Path) -> None:
    from plait.scaling import plot

    plot(merged_gil_and_no_gil(), str(tmp_path / "m.png"))
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.timeout(30)
def test_cli_python_side_by_side(target_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SWEEP, "--python", sys.executable]) == 0
    captured = capsys.readouterr()
    assert f"== threads [{PY.label}]: 1: " in captured.out
    assert f"== threads [{PY.short} #2" in captured.out
    assert re.search(rf"^threads: [0-9.]+x.* with the GIL[a-z ]* \({re.escape(PY.short)}( #2)?\) against ",
                     captured.out, re.M)  # fmt: skip
    assert captured.err.count("threads x1") == 2  # the child's progress too
    assert f"-- {sys.executable} ({PY.label})" in captured.err


@pytest.mark.timeout(30)
def test_cli_python_json(target_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SWEEP, "--python", sys.executable, "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    names = [f"threads [{PY.label}]", f"threads [{PY.short} #2{PY.label[len(PY.short) :]}]"]
    assert list(data["models"]) == names
    assert [data["models"][n]["python"]["tag"] for n in names] == ["", "#2"]
    assert all(data["models"][n]["python"]["executable"] == sys.executable for n in names)
    assert "threads: " in data["verdict"] and captured.err == ""


@pytest.mark.timeout(30)
def test_cli_python_bad_path(target_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = target_dir / "no-such-python"
    assert main([*SWEEP, "--python", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"plait scale: --python {missing}: cannot run it: No such file or directory\n"


@pytest.mark.timeout(30)
def test_cli_python_without_plait(target_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = wrapper(target_dir / "bare-python", f'exec "{sys.executable}" -I -S "$@"')
    assert main([*SWEEP, "--python", bare]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"plait scale: --python {bare}: cannot import plait.scaling (install")
    assert err.rstrip().endswith("No module named 'plait'") and err.count("\n") == 1


@pytest.mark.timeout(30)
def test_cli_python_child_fails(target_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failing = wrapper(target_dir / "failing-python", f'SCALE_TARGET_FAIL=1 exec "{sys.executable}" "$@"')
    assert main([*SWEEP, "--python", failing]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"plait scale: --python {failing}: plait scale failed (exit status 1): ")
    assert last.endswith("made to fail in the child")


def test_cli_python_with_from_is_an_error(spec_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scale", "--from", str(spec_csv), "--python", sys.executable]) == 2
    assert "--python measures MODULE:FUNC under another interpreter; --from reads" in capsys.readouterr().err
