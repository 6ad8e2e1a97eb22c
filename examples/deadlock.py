"""Two threads take two locks in opposite orders: with threading this hangs forever.

With plait, the acquire that would close the cycle raises DeadlockError, naming both threads,
both locks, who holds them and where they were acquired. Run: python examples/deadlock.py
"""

from __future__ import annotations

import threading

from plait import DeadlockError
from plait import threads as pt

accounts = pt.Lock(name="accounts")
ledger = pt.Lock(name="ledger")
both_hold = threading.Barrier(2)


def transfer() -> None:
    with accounts:
        both_hold.wait()
        try:
            with ledger:
                pass
        except DeadlockError as err:
            print(f"transfer() was stopped:\n{err}\n")


def audit() -> None:
    with ledger:
        both_hold.wait()
        try:
            with accounts:
                pass
        except DeadlockError as err:
            print(f"audit() was stopped:\n{err}\n")


if __name__ == "__main__":
    threads = [
        threading.Thread(target=transfer, name="transfer"),
        threading.Thread(target=audit, name="audit"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("Both threads finished: one of them got DeadlockError, the other then completed.")
