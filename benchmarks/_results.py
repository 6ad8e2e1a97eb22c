"""Run the benchmark scripts and write their output, verbatim, to a Markdown file (RESULTS.md).

``make bench-results`` runs it on every ``benchmarks/*.py`` and writes ``benchmarks/RESULTS.md``;
``make bench-smoke`` runs it at smoke sizes into a temporary file (so the generator cannot rot)::

    .venv/bin/python benchmarks/_results.py --out benchmarks/RESULTS.md benchmarks/threads.py ...

The file states where and how the figures were taken: the machine (CPU, cores, memory, kernel),
the date, the load average before and after, Python and the peers' versions, the git commit; then
each script's output (stdout and stderr, as the terminal shows them) in a code block, with its
exit status and duration. The output is also streamed to the terminal while it runs.

Each script gets ``--markdown FILE`` (the scripts of ``benchmarks/`` are ``plait bench MODEL``):
a script that writes the Markdown table of its lines there has it rendered after its code block,
and left out of the block (where it would be the same table again, unrendered).

A script that fails stops the run and nothing is written (a partial RESULTS.md would be quoted as
if complete). ``PLAIT_BENCH_SMOKE=1`` in the environment runs the scripts at smoke sizes and the
file says, at the top, that its figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE_ENV = "PLAIT_BENCH_SMOKE"  # as plait.bench reads it (this file does not import plait)

#: The distributions whose versions the file records: plait, the peers of the ``bench`` extra
#: (pyproject.toml), what plait's process pool sends functions with, and the engine of
#: ``dask_backend.py``.
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
    "dask",
    "distributed",
)


@dataclass
class ScriptRun:
    script: str
    output: str
    returncode: int
    seconds: float
    table: str = ""  # the Markdown table the script wrote (--markdown), if any


def smoke_from_env() -> bool:
    """True when ``PLAIT_BENCH_SMOKE`` is set to anything but ``""``, ``0``, ``no`` or ``false``."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "no", "false")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _cpuinfo() -> tuple[str, int | None]:
    """The CPU model and the number of physical cores (None when /proc/cpuinfo does not say)."""
    model, cores, phys = "", set(), ""
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and not model:
            model = value
        elif key == "physical id":
            phys = value
        elif key == "core id":
            cores.add((phys, value))
    return model or platform.processor() or platform.machine(), len(cores) or None


def _memory() -> str:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            kib = int(line.split()[1])
            return f"{kib / (1 << 20):.1f} GiB"
    return "unknown"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _tool_version(*cmd: str) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return "not found"
    return out.stdout.strip() or "unknown"


def _package_versions() -> list[str]:
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name}: not installed")
    return out


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def environment() -> list[tuple[str, str]]:
    """The facts the file starts with, as (name, value) rows; the date and load are added by
    ``render`` (they belong to the run)."""
    model, physical = _cpuinfo()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = f"{os.cpu_count()} logical" + (f", {physical} physical" if physical else "")
    cores += f", {affinity} usable by this process"
    commit = _git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    if commit and _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    uname = platform.uname()
    return [
        ("CPU", model),
        ("cores", cores),
        ("memory", _memory()),
        ("kernel", f"{uname.system} {uname.release} ({uname.version}) {uname.machine}"),
        ("Python", f"{platform.python_implementation()} {sys.version.splitlines()[0]} ({sys.executable})"),
        ("packages", ", ".join(_package_versions())),
        ("rustc", _tool_version("rustc", "--version")),
        ("git commit", commit + (f" on branch {branch}" if branch else "")),
    ]


def run_script(script: str, env: dict[str, str]) -> ScriptRun:
    """Run ``script`` with this interpreter, stream its output to the terminal and keep it, with
    the Markdown table it writes to ``--markdown FILE`` (scripts that write none ignore it)."""
    with tempfile.TemporaryDirectory(prefix="plait-results-") as scratch:
        table_file = Path(scratch) / "table.md"
        run = _run_script(script, env, table_file)
        if table_file.exists():
            run.table = table_file.read_text(encoding="utf-8")
    return run


def _run_script(script: str, env: dict[str, str], table_file: Path) -> ScriptRun:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(script), "--markdown", str(table_file)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    proc.stdout.close()
    returncode = proc.wait()
    path = Path(script).resolve()
    shown = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else script
    return ScriptRun(shown, "".join(lines), returncode, time.monotonic() - t0)


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def render(
    runs: Sequence[ScriptRun],
    env_rows: Sequence[tuple[str, str]],
    started: datetime.datetime,
    load_before: str,
    load_after: str,
    smoke: bool,
) -> str:
    out = ["# Benchmark results", ""]
    if smoke:
        out += [
            "**SMOKE RUN** (`PLAIT_BENCH_SMOKE=1`): tiny sizes, one run each. It checks that the",
            "scripts and this generator run; its figures mean nothing. Do not quote them.",
            "",
        ]
    out += [
        "The output of `make bench-results`: every script of `benchmarks/` run once, in this order,",
        "on the machine below; each script's output is reproduced verbatim. README and docs figures",
        "name the case line (case label, then implementation) they are taken from.",
        "",
        "| | |",
        "|---|---|",
        f"| date | {started.strftime('%Y-%m-%d %H:%M UTC')} |",
    ]
    out += [f"| {name} | {value.replace('|', '/')} |" for name, value in env_rows]
    out += [
        f"| load average (1, 5, 15 min) | before {load_before}; after {load_after} |",
        f"| mode | {'SMOKE (PLAIT_BENCH_SMOKE=1)' if smoke else 'full sizes'} |",
        "",
    ]
    for run in runs:
        out += [
            f"## {run.script}",
            "",
            f"`{Path(sys.executable).name} {run.script}`: exit status {run.returncode}, {run.seconds:.0f} s",
            "",
        ]
        output = run.output.rstrip("\n")
        table = run.table.strip("\n")
        if table and output.endswith(table):
            output = output[: -len(table)].rstrip("\n")
        fence = _fence(output)
        out += [fence, output, fence, ""]
        if table:
            out += [table, ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="the Markdown file to write (replaced only on success)")
    p.add_argument("scripts", nargs="+", help="benchmark scripts, run in this order")
    args = p.parse_args(argv)
    smoke = smoke_from_env()
    # Unbuffered: stdout and stderr lines interleave in the file as on a terminal.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env_rows = environment()
    started = datetime.datetime.now(datetime.UTC)
    load_before = _load()
    runs = []
    for script in args.scripts:
        print(f"== {script}" + (" (smoke)" if smoke else ""), flush=True)
        run = run_script(script, env)
        if run.returncode != 0:
            print(f"{script} failed (exit status {run.returncode}): {args.out} not written", file=sys.stderr)
            return 1
        runs.append(run)
    text = render(runs, env_rows, started, load_before, _load(), smoke)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
