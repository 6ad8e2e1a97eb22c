"""The command line and the demo tour run end to end (small sizes)."""

from __future__ import annotations

import subprocess
import sys


def test_demo_quick_runs_the_tour():
    out = subprocess.run(
        [sys.executable, "-m", "plait", "demo", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "1. Threads" in out
    assert "Found one deadlock (2 threads)" in out
    assert "Lock 'accounts'" in out and "Lock 'ledger'" in out
    assert "4. Processes" in out
    assert "victim: WorkerCrashed" in out
    assert "5. Processes: parse -> transform -> aggregate" in out
    assert "raised OwnerDied" in out and "balance is 100 again" in out
    assert "6. asyncio: concurrent downloads" in out and "plait.aio:" in out


def test_unknown_command_is_rejected():
    proc = subprocess.run([sys.executable, "-m", "plait", "nope"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
