"""The stubs as a user sees them: ``mypy --strict`` on a program using every public module."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

mypy = pytest.importorskip("mypy", reason="mypy is a lint dependency (make install)")

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.timeout(300)
def test_strict_mypy_finds_precise_types() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            os.path.join(HERE, "user_program.py"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
