"""CPython's own ``Lib/test/lock_tests.py`` run against plait.threads.

Each lock suite runs twice: with deadlock detection in its default ``"raise"`` mode and with it
``"off"``. The runs differ in two ``Lock`` tests that acquire a non-reentrant lock from the
thread that already holds it (``test_reacquire`` then relies on another thread to release it,
``test_state_after_timeout`` expects the timed acquire to time out). That is exactly the
self-deadlock plait reports by default, so in ``"raise"`` mode they are skipped, and the
``...DetectionOff`` classes run them unchanged.
"""

from __future__ import annotations

import unittest

from test import lock_tests

from plait import threads


class _Mode:
    mode = "raise"

    def setUp(self):
        self._saved_mode = threads.get_deadlock_detection()
        threads.set_deadlock_detection(self.mode)
        super().setUp()

    def tearDown(self):
        super().tearDown()
        threads.set_deadlock_detection(self._saved_mode)


SELF_ACQUIRE = (
    "re-acquires a non-reentrant Lock from the thread holding it: plait's default deadlock "
    "detection raises DeadlockError there (by design); TestLockDetectionOff runs this test"
)


class TestLock(_Mode, lock_tests.LockTests):
    locktype = staticmethod(threads.Lock)

    @unittest.skip(SELF_ACQUIRE)
    def test_reacquire(self):
        pass

    @unittest.skip(SELF_ACQUIRE)
    def test_state_after_timeout(self):
        pass


class TestLockDetectionOff(TestLock):
    mode = "off"
    test_reacquire = lock_tests.LockTests.test_reacquire
    test_state_after_timeout = lock_tests.LockTests.test_state_after_timeout


class TestRLock(_Mode, lock_tests.RLockTests):
    locktype = staticmethod(threads.RLock)


class TestRLockDetectionOff(TestRLock):
    mode = "off"


class TestEvent(_Mode, lock_tests.EventTests):
    eventtype = staticmethod(threads.Event)

    @unittest.skip(
        "inspects threading.Event's private Condition (_cond); plait.Event is a native flag "
        "with no Python-level condition. Its _at_fork_reinit is tested in tests/test_threads.py"
    )
    def test_at_fork_reinit(self):
        pass


class TestCondition(_Mode, lock_tests.ConditionTests):
    condtype = staticmethod(threads.Condition)


class TestConditionDetectionOff(TestCondition):
    mode = "off"


class TestSemaphore(_Mode, lock_tests.SemaphoreTests):
    semtype = staticmethod(threads.Semaphore)


class TestSemaphoreDetectionOff(TestSemaphore):
    mode = "off"


class TestBoundedSemaphore(_Mode, lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(threads.BoundedSemaphore)


class TestBarrier(_Mode, lock_tests.BarrierTests):
    barriertype = staticmethod(threads.Barrier)
