"""benchmarks/_results.py, the generator of benchmarks/RESULTS.md (``make bench-results``), on two
stand-in scripts: the file records where and how, holds each output verbatim, and is not written
when a script fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "benchmarks" / "_results.py"


def generate(tmp_path: Path, *scripts: Path, smoke: bool = False) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PLAIT_BENCH_SMOKE": "1" if smoke else "0"}
    return subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path / "RESULTS.md"), *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_results_hold_the_environment_and_each_output_verbatim(tmp_path):
    first = script(
        tmp_path,
        "first.py",
        "import sys\nprint('map, list of 1M ints   plait ProcessPool.map   2.00M items/s   2.00x')\n"
        "print('a peer is missing', file=sys.stderr)\nprint('```')\n",
    )
    second = script(tmp_path, "second.py", "print('second script ran')\n")
    proc = generate(tmp_path, first, second)
    assert proc.returncode == 0, proc.stderr
    assert "second script ran" in proc.stdout  # streamed to the terminal too
    text = (tmp_path / "RESULTS.md").read_text()
    for row in (
        "| date |",
        "| CPU |",
        "| cores |",
        "| kernel |",
        "| Python |",
        "| packages |",
        "| git commit |",
    ):
        assert row in text, row
    assert "plait" in text.split("| packages |")[1].splitlines()[0]
    assert "| mode | full sizes |" in text and "SMOKE RUN" not in text
    # Each output in its own code block, in the order given, stderr included, lines unchanged; a
    # fence longer than the backticks inside the output.
    assert text.index(str(first)) < text.index(str(second))
    line = "map, list of 1M ints   plait ProcessPool.map   2.00M items/s   2.00x"
    block = f"````\n{line}\na peer is missing\n```\n````"
    assert block in text
    assert "```\nsecond script ran\n```" in text


def test_a_smoke_run_says_its_figures_mean_nothing(tmp_path):
    proc = generate(tmp_path, script(tmp_path, "one.py", "print('ok')\n"), smoke=True)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    assert "SMOKE RUN" in text and "| mode | SMOKE" in text


def test_a_failing_script_writes_nothing(tmp_path):
    (tmp_path / "RESULTS.md").write_text("previous results\n")
    ok = script(tmp_path, "ok.py", "print('fine')\n")
    bad = script(tmp_path, "bad.py", "raise SystemExit(3)\n")
    proc = generate(tmp_path, ok, bad)
    assert proc.returncode == 1
    assert "bad.py failed (exit status 3)" in proc.stderr
    assert (tmp_path / "RESULTS.md").read_text() == "previous results\n"
    assert not (tmp_path / "RESULTS.md.tmp").exists()


def test_a_markdown_table_the_script_writes_is_rendered_after_its_block(tmp_path):
    table = "| case | implementation | median | ratio |\n|---|---|---:|---:|\n| c | plait | 1 x/s | 1.00x |\n"
    body = (
        "import sys\n"
        "path = sys.argv[sys.argv.index('--markdown') + 1]\n"
        f"table = {table!r}\n"
        "open(path, 'w').write(table)\n"
        "print('case line')\n"
        "print()\n"
        "print(table, end='')\n"
    )
    proc = generate(tmp_path, script(tmp_path, "bench.py", body))
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "RESULTS.md").read_text()
    assert f"```\ncase line\n```\n\n{table}" in text
    assert text.count("| case | implementation |") == 1
