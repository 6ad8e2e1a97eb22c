"""Count words in generated documents with a ThreadPool and a bounded Queue pipeline.

A reader thread feeds documents into a bounded plait Queue; a ThreadPool counts words in each;
results come back in order with ``pool.map``. Run: python examples/word_count.py
"""

from __future__ import annotations

import collections
import threading

from plait import threads as pt

WORDS = "the quick brown fox jumps over the lazy dog and keeps running far away".split()


def make_document(i: int) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(200))


def count(doc: str) -> collections.Counter[str]:
    return collections.Counter(doc.split())


def main(n_docs: int = 2_000) -> collections.Counter[str]:
    docs: pt.Queue[str | None] = pt.Queue(maxsize=64)

    def reader() -> None:
        for i in range(n_docs):
            docs.put(make_document(i))
        docs.put(None)

    threading.Thread(target=reader, name="reader").start()
    batch: list[str] = []
    while (doc := docs.get()) is not None:
        batch.append(doc)
    total: collections.Counter[str] = collections.Counter()
    with pt.ThreadPool(max_workers=4, thread_name_prefix="count") as pool:
        for counts in pool.map(count, batch):
            total.update(counts)
    return total


if __name__ == "__main__":
    result = main()
    print(f"{sum(result.values()):,} words; most common: {result.most_common(3)}")
