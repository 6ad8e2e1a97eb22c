"""CPython's own ``Lib/test/test_queue.py`` run against plait.threads' queues."""

from __future__ import annotations

import queue
import types
import unittest

from test import test_queue

from plait import threads

plait_queue = types.SimpleNamespace(
    Queue=threads.Queue,
    LifoQueue=threads.LifoQueue,
    PriorityQueue=threads.PriorityQueue,
    SimpleQueue=threads.SimpleQueue,
    Empty=queue.Empty,
    Full=queue.Full,
    ShutDown=threads.ShutDown,  # 3.13's suite tests shutdown(); plait's is a queue.ShutDown there
)


class TestQueue(test_queue.QueueTest, unittest.TestCase):
    queue = plait_queue


class TestLifoQueue(test_queue.LifoQueueTest, unittest.TestCase):
    queue = plait_queue


class TestPriorityQueue(test_queue.PriorityQueueTest, unittest.TestCase):
    queue = plait_queue


class TestSimpleQueue(test_queue.BaseSimpleQueueTest, unittest.TestCase):
    queue = plait_queue

    def setUp(self):
        self.type2test = self.queue.SimpleQueue
        super().setUp()

    # From CSimpleQueueTest: the C SimpleQueue's extra guarantees, which plait's native one shares.
    test_is_default = None  # checks that queue.SimpleQueue is the C class: not about plait
    test_reentrancy = test_queue.CSimpleQueueTest.test_reentrancy
