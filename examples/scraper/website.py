"""The site the scraper crawls: a local HTTP server on 127.0.0.1 (an ephemeral port), ``N`` pages
linked into a graph, deterministic by seed, every page reachable from ``/page/0``.

Two knobs shape the work of a crawl:

- ``latency_ms``: how long the server waits before it answers each request (a slow backend, a far
  network). The waits overlap across connections: a crawler that keeps several requests in
  flight waits less.
- ``filler``: paragraphs of marked-up text on each page, which the crawler's parser walks through
  with ``html.parser``: the CPU cost of a page (``crawl.py --parse-ms`` picks the number of
  paragraphs that makes parsing a page take that long on this machine).

Run it on its own to browse the site::

    python examples/scraper/website.py --pages 300 --latency-ms 20    # prints its port

It answers until its standard input ends (``crawl.py`` starts it as a child process, so that
its threads do not compete with an in-process crawler's, and closes the pipe to stop it).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/page/"
LINKS_PER_PAGE = 4

_WORDS = (
    "plait threads processes asyncio green loop queue lock pool worker future task socket page "
    "link parse fetch crawl latency core rust python"
).split()


def path_of(i: int) -> str:
    return f"{PREFIX}{i}"


def build_graph(pages: int, seed: int) -> list[list[int]]:
    """Each page's links: a random tree from page 0 (so every page is reachable), plus random
    extra links (back links and cross links, as on a real site), the same for the same seed."""
    rng = random.Random(seed)
    links: list[set[int]] = [set() for _ in range(pages)]
    for i in range(1, pages):
        links[rng.randrange(i)].add(i)
    for i in range(pages):
        while len(links[i]) < LINKS_PER_PAGE and pages > 1:
            j = rng.randrange(pages)
            if j != i:
                links[i].add(j)
    return [sorted(s) for s in links]


def filler_paragraph(i: int, k: int) -> str:
    """One paragraph of text with inline markup: work for the parser, no links."""
    words = [_WORDS[(i * 7 + k * 3 + n) % len(_WORDS)] for n in range(24)]
    return (
        f'<p class="p{k % 5}">{" ".join(words[:8])} <b>{words[8]}</b> {" ".join(words[9:16])} '
        f'<i>{words[16]}</i> <span data-n="{k}">{" ".join(words[17:])}</span></p>\n'
    )


def page_html(i: int, links: list[int], filler: int) -> str:
    """Page ``i``: its links (to other pages of the site, and one external link a crawler of the
    site must not follow), then ``filler`` paragraphs."""
    items = "".join(f'<li><a href="{path_of(j)}">page {j}</a></li>\n' for j in links)
    body = "".join(filler_paragraph(i, k) for k in range(filler))
    return (
        f"<!DOCTYPE html>\n<html><head><title>Page {i}</title></head><body>\n"
        f'<h1>Page {i}</h1>\n<ul>\n{items}<li><a href="https://example.com/elsewhere">elsewhere</a></li>\n'
        f"</ul>\n{body}</body></html>\n"
    )


def build_site(pages: int, seed: int, filler: int) -> dict[str, bytes]:
    """Every page's path and its HTML, built once, before the server answers anything."""
    graph = build_graph(pages, seed)
    return {path_of(i): page_html(i, graph[i], filler).encode() for i in range(pages)}


class Site(ThreadingHTTPServer):
    """A thread per connection; the pages are built before it starts, so that answering costs
    the server little CPU: the crawler's side is what is measured."""

    daemon_threads = True
    request_queue_size = 512  # every crawler's connections at once, no SYN retransmits

    def __init__(self, pages: dict[str, bytes], latency: float) -> None:
        self.pages, self.latency = pages, latency
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Site
    disable_nagle_algorithm = True  # the headers and the body go out at once, no delayed-ACK wait

    def do_GET(self) -> None:
        if self.server.latency:
            time.sleep(self.server.latency)
        body = self.server.pages.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--pages", type=int, default=300)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--filler", type=int, default=50, help="paragraphs of text per page")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    site = Site(build_site(args.pages, args.seed, args.filler), args.latency_ms / 1000)
    serving = threading.Thread(target=site.serve_forever, name="website")
    serving.start()
    print(site.server_address[1], flush=True)
    try:
        for _ in sys.stdin:  # until the parent closes the pipe (or Ctrl-D)
            pass
    except KeyboardInterrupt:
        pass
    finally:
        site.shutdown()
        serving.join()
        site.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
