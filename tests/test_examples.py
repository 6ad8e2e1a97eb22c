"""The programs in examples/ run and print what they promise."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run(name: str) -> str:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120, check=True
    ).stdout


def test_deadlock_example_reports_the_cycle():
    out = run("deadlock.py")
    assert out.count("was stopped") == 1
    assert "Found one deadlock (2 threads)" in out


def test_word_count_example():
    out = run("word_count.py")
    assert out.startswith("400,000 words")
