"""The same crawl five ways: serially, with plait.threads, plait.processes, plait.aio and plait.green.

A local site (``website.py``: N pages linked into a graph, a configurable latency per response and
a configurable parsing cost per page) is crawled from ``/page/0`` until no new page turns up, once
per mode, each mode in a child process of its own (plait.green's monkey patching must come before
anything else imports ``socket``). Every mode must find every page; the table compares their times::

    python examples/scraper/crawl.py                    # I/O-bound: 20 ms per response
    python examples/scraper/crawl.py --preset cpu       # CPU-bound: 10 ms of parsing per page
    python examples/scraper/crawl.py --pages 30 --latency-ms 1 --parse-ms 0.2 --plot crawl.png

- serial: one page at a time (``urllib.request``).
- threads: ``plait.threads.ThreadPool`` running fetch + parse, ``--workers`` at a time.
- processes: ``plait.processes.ProcessPool`` running fetch + parse in ``--process-workers`` worker
  processes (one per core by default): parsing runs in parallel, on every core.
- aio: ``plait.aio``'s loop, raw HTTP/1.1 over ``asyncio.open_connection``, at most ``--workers``
  requests in flight; pages are parsed on the loop.
- green: ``plait.green.monkey.patch_all()``, then ``urllib.request`` in a ``plait.green.pool.Pool``
  of ``--workers`` greenlets.

``parse_page`` is the CPU part: ``plait scale examples.scraper.crawl:parse_page`` shows how it
scales with workers (see README.md).
"""

from __future__ import annotations

import sys

# The green child patches the standard library before anything imports socket, ssl or threading.
if __name__ == "__main__" and sys.argv[1:3] == ["--child", "green"]:
    from plait.green import monkey

    monkey.patch_all()

import argparse
import json
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from typing import Any

MODES = ("serial", "threads", "processes", "aio", "green")
PREFIX = "/page/"
ROOT = PREFIX + "0"
PRESETS = {"io": {"latency_ms": 20.0, "parse_ms": 0.5}, "cpu": {"latency_ms": 0.0, "parse_ms": 10.0}}
SAMPLE_FILLER = 50


# -- parsing: the CPU part ---------------------------------------------------------------------------


class LinkParser(HTMLParser):
    """The site's links (``href`` of ``<a>`` under ``/page/``) in a page, in order, once each."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            for name, value in attrs:
                if name == "href" and value and value.startswith(PREFIX) and value not in self.links:
                    self.links.append(value)


def extract_links(html: str) -> list[str]:
    parser = LinkParser()
    parser.feed(html)
    parser.close()
    return parser.links


def sample_page(filler: int = SAMPLE_FILLER) -> str:
    """A page of the site as ``website.py`` serves it, with ``filler`` paragraphs."""
    try:
        from . import website  # imported as examples.scraper.crawl
    except ImportError:
        import website  # run as a script: its folder is on sys.path
    return website.page_html(1, [2, 3, 4, 5], filler)


def parse_page(html: str | None = None) -> list[str]:
    """The links of a page (by default a sample page of ``SAMPLE_FILLER`` paragraphs): the
    crawl's CPU-bound step, pure Python, holding the GIL."""
    return extract_links(sample_page() if html is None else html)


def calibrate_filler(parse_ms: float) -> int:
    """Paragraphs per page for which parsing a page takes about ``parse_ms`` here."""
    if parse_ms <= 0:
        return 0
    page = sample_page(SAMPLE_FILLER)
    best = min(_timed(extract_links, page) for _ in range(5))
    empty = min(_timed(extract_links, sample_page(0)) for _ in range(5))
    per_paragraph = max(best - empty, 1e-9) / SAMPLE_FILLER
    return max(1, round(parse_ms / 1000 / per_paragraph))


def _timed(fn: Callable[[str], object], arg: str) -> float:
    t0 = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t0


# -- fetching: the I/O part --------------------------------------------------------------------------


def fetch(url: str) -> str:
    import urllib.request  # here, not at the top: the green child patches socket first

    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read().decode()


def fetch_parse(base: str, path: str) -> list[str]:
    """One step of a crawl: get ``path`` from the site at ``base``, return the links on it."""
    return extract_links(fetch(base + path))


# -- the five crawlers: each returns the set of paths found ------------------------------------------


def crawl_serial(base: str, workers: int) -> set[str]:
    seen, todo = {ROOT}, deque([ROOT])
    while todo:
        for link in fetch_parse(base, todo.popleft()):
            if link not in seen:
                seen.add(link)
                todo.append(link)
    return seen


def crawl_executor(pool: Any, base: str) -> set[str]:
    """The crawl on a ``concurrent.futures``-style pool: each page is a task; new links become
    tasks as soon as their page is parsed."""
    from concurrent.futures import FIRST_COMPLETED, wait

    seen = {ROOT}
    pending = {pool.submit(fetch_parse, base, ROOT)}
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            for link in future.result():
                if link not in seen:
                    seen.add(link)
                    pending.add(pool.submit(fetch_parse, base, link))
    return seen


def crawl_threads(base: str, workers: int) -> set[str]:
    from plait.threads import ThreadPool

    with ThreadPool(max_workers=workers) as pool:
        return crawl_executor(pool, base)


def crawl_processes(base: str, workers: int) -> set[str]:
    from plait.processes import ProcessPool

    with ProcessPool(workers) as pool:
        return crawl_executor(pool, base)


def crawl_aio(base: str, workers: int) -> set[str]:
    import asyncio
    from urllib.parse import urlsplit

    import plait.aio

    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    async def get(path: str) -> str:
        """HTTP/1.1 by hand: one request per connection, the body read to the end."""
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            response = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
        head, _, body = response.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            raise OSError(f"GET {path}: {status.decode(errors='replace')}")
        return body.decode()

    async def main() -> set[str]:
        gate = asyncio.Semaphore(workers)

        async def visit(path: str) -> list[str]:
            async with gate:
                html = await get(path)
            return extract_links(html)

        seen = {ROOT}
        pending = {asyncio.ensure_future(visit(ROOT))}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                for link in task.result():
                    if link not in seen:
                        seen.add(link)
                        pending.add(asyncio.ensure_future(visit(link)))
        return seen

    return plait.aio.run(main())


def crawl_green(base: str, workers: int) -> set[str]:
    from plait.green.pool import Pool
    from plait.green.queue import Queue

    pool = Pool(workers)
    results: Queue[tuple[list[str] | None, BaseException | None]] = Queue()

    def visit(path: str) -> None:
        try:
            results.put((fetch_parse(base, path), None))  # urllib.request, on patched sockets
        except BaseException as e:
            results.put((None, e))

    seen, outstanding = {ROOT}, 1
    pool.spawn(visit, ROOT)
    while outstanding:
        links, error = results.get()
        outstanding -= 1
        if error is not None:
            raise error
        for link in links or ():
            if link not in seen:
                seen.add(link)
                outstanding += 1
                pool.spawn(visit, link)  # waits for a free greenlet when all are busy
    pool.join()
    return seen


CRAWLERS: dict[str, Callable[[str, int], set[str]]] = {
    "serial": crawl_serial,
    "threads": crawl_threads,
    "processes": crawl_processes,
    "aio": crawl_aio,
    "green": crawl_green,
}


def child(mode: str, base: str, workers: int) -> int:
    """One mode in this process: crawl, then print the pages found and the seconds, as JSON."""
    t0 = time.perf_counter()
    found = CRAWLERS[mode](base, workers)
    seconds = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "seconds": seconds, "found": sorted(found)}), flush=True)
    return 0


# -- the comparison ----------------------------------------------------------------------------------


class Website:
    """``website.py`` in a child process, answering until ``close``."""

    def __init__(self, pages: int, latency_ms: float, filler: int, seed: int) -> None:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "website.py")
        flags = [f"--pages={pages}", f"--latency-ms={latency_ms}", f"--filler={filler}", f"--seed={seed}"]
        self.proc = subprocess.Popen(
            [sys.executable, script, *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"website.py did not start (it printed {line!r})")
        self.base = f"http://127.0.0.1:{int(line)}"

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def run_mode(mode: str, base: str, workers: int, timeout: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", mode, base, str(workers)],
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def table(rows: Iterable[dict[str, Any]], pages: int) -> list[str]:
    rows = list(rows)
    serial = next((r["seconds"] for r in rows if r["mode"] == "serial"), None)
    lines = [f"{'mode':<10} {'pages':>6} {'seconds':>8} {'pages/s':>8} {'speed-up':>9}  check"]
    for r in rows:
        found = len(r["found"])
        speedup = f"{serial / r['seconds']:8.2f}x" if serial else "       -"
        check = f"all {pages} pages" if r["complete"] else f"MISSING {pages - found} pages"
        rate = found / r["seconds"]
        lines.append(f"{r['mode']:<10} {found:>6} {r['seconds']:>8.2f} {rate:>8.0f} {speedup:>9}  {check}")
    return lines


def plot(rows: list[dict[str, Any]], path: str, title: str) -> str:
    """Pages per second by mode: a PNG with matplotlib, else bars in the terminal."""
    rates = [(r["mode"], len(r["found"]) / r["seconds"]) for r in rows]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        top = max(rate for _, rate in rates)
        bars = [
            f"{mode:<10} {'█' * max(1, round(40 * rate / top))} {rate:.0f} pages/s" for mode, rate in rates
        ]
        return "matplotlib is not installed (pip install matplotlib): pages/s as bars\n" + "\n".join(bars)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(
        [m for m, _ in rates],
        [r for _, r in rates],
        color=["gray", "tab:blue", "tab:red", "tab:green", "tab:olive"],
    )
    ax.set_ylabel("pages per second (higher is better)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"wrote {path}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _, mode, base, workers = argv
        return child(mode, base, int(workers))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default="io", help="io (default) or cpu: see README.md"
    )
    p.add_argument("--pages", type=int, default=300)
    p.add_argument("--latency-ms", type=float, help="the server's delay per response (preset io: 20, cpu: 0)")
    p.add_argument("--parse-ms", type=float, help="parsing time per page on this machine (io: 0.5, cpu: 10)")
    p.add_argument("--workers", type=int, default=16, help="requests in flight: threads, aio, green")
    p.add_argument(
        "--process-workers", type=int, default=os.cpu_count() or 1, help="processes: worker processes"
    )
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {','.join(MODES)}")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plot", metavar="PNG", help="a bar chart of pages/s (matplotlib; else in the terminal)")
    args = p.parse_args(argv)
    preset = PRESETS[args.preset]
    latency = preset["latency_ms"] if args.latency_ms is None else args.latency_ms
    parse_ms = preset["parse_ms"] if args.parse_ms is None else args.parse_ms
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        p.error(f"unknown mode(s) {', '.join(unknown)}: choose from {', '.join(MODES)}")
    from plait._freethreading import GREEN_UNSAFE_REASON, green_unsafe

    if "green" in modes and green_unsafe():
        print(f"green: skipped ({GREEN_UNSAFE_REASON})", flush=True)
        modes.remove("green")
    filler = calibrate_filler(parse_ms)

    from website import path_of  # run as a script: its folder is on sys.path

    expected = {path_of(i) for i in range(args.pages)}
    title = (
        f"{args.pages} pages, {latency:g} ms latency per response, ~{parse_ms:g} ms parsing per page "
        f"({filler} paragraphs); threads/aio/green {args.workers} at a time, {args.process_workers} "
        f"worker processes; {os.cpu_count()} cores"
    )
    print(title, flush=True)
    site = Website(args.pages, latency, filler, args.seed)
    rows = []
    try:
        for mode in modes:
            workers = args.process_workers if mode == "processes" else args.workers
            row = run_mode(
                mode, site.base, workers, timeout=max(120.0, args.pages * (latency + parse_ms) / 100)
            )
            row["complete"] = set(row["found"]) == expected
            rows.append(row)
            print(f"  {mode}: {len(row['found'])} pages in {row['seconds']:.2f} s", flush=True)
    finally:
        site.close()
    print()
    print("\n".join(table(rows, args.pages)))
    if args.plot:
        print()
        print(plot(rows, args.plot, title))
    return 0 if all(r["complete"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
