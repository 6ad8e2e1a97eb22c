"""The programs in examples/ run and print what they promise."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run(name: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=120, check=True
    ).stdout


def test_deadlock_example_reports_the_cycle():
    out = run("deadlock.py")
    assert out.count("was stopped") == 1
    assert "Found one deadlock (2 threads)" in out


def test_word_count_example():
    out = run("word_count.py")
    assert out.startswith("400,000 words")


def test_scraper_finds_every_page_five_ways():
    out = run("scraper/crawl.py", "--pages", "30", "--latency-ms", "1", "--parse-ms", "0.2", "--workers", "4")
    table = out[out.index("mode ") :].splitlines()
    assert table[0].split() == ["mode", "pages", "seconds", "pages/s", "speed-up", "check"]
    rows = {line.split()[0]: line for line in table[1:]}
    from plait._freethreading import green_unsafe

    assert list(rows) == ["serial", "threads", "processes", "aio"] + ([] if green_unsafe() else ["green"])
    for mode, line in rows.items():
        assert line.split()[1] == "30" and line.endswith("all 30 pages"), (mode, line)
    assert rows["serial"].split()[4] == "1.00x"
