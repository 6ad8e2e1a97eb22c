"""CPython's own ``Lib/test/lock_tests.py`` run against plait.threads, unmodified and with no skips.

Each lock suite runs twice: with deadlock detection in its default ``"raise"`` mode and with it
``"off"``. Two ``Lock`` tests acquire a non-reentrant lock from the thread that already holds it:
``test_reacquire`` relies on another thread to release it (the lock-as-signal idiom) and
``test_state_after_timeout`` expects the timed acquire to time out. Both are valid Python, and
pass in the default mode: plait only reports such a wait when no other thread can release the
lock, or (as a warning) after a grace period (see docs/threads.md).
"""

from __future__ import annotations

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


class TestLock(_Mode, lock_tests.LockTests):
    locktype = staticmethod(threads.Lock)


class TestLockDetectionOff(TestLock):
    mode = "off"


class TestRLock(_Mode, lock_tests.RLockTests):
    locktype = staticmethod(threads.RLock)


class TestRLockDetectionOff(TestRLock):
    mode = "off"


class TestEvent(_Mode, lock_tests.EventTests):
    eventtype = staticmethod(threads.Event)


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
