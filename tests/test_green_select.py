"""plait.green.select and plait.green.selectors: select, poll and the selectors block only the
current greenlet, and report exactly what the kernel says is ready."""

from __future__ import annotations

import os
import select as stdselect
import selectors as stdselectors
import time

import pytest

from plait import green
from plait.green import select, selectors, socket


def watched() -> list[int]:
    loop = green.get_hub().loop
    own = loop._ssock.fileno()
    return [fd for fd in loop._fds() if fd != own]


def later(seconds, function, *args):
    return green.spawn_later(seconds, function, *args)


def test_the_module_has_the_standard_librarys_names_but_no_epoll():
    for name in ("POLLIN", "POLLOUT", "POLLHUP", "POLLNVAL", "error", "PIPE_BUF"):
        assert getattr(select, name) == getattr(stdselect, name)
    for name in ("epoll", "kqueue", "kevent", "devpoll"):
        assert not hasattr(select, name)
    assert "epoll" not in select.__all__ and "select" in select.__all__


def test_select_returns_ready_objects_at_once():
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"x")
        r, w, x = select.select([a], [a, b], [], 5)
        assert r == [a] and sorted(w, key=id) == sorted([a, b], key=id) and x == []


def test_select_waits_cooperatively_for_data():
    a, b = socket.socketpair()
    with a, b:
        writer = later(0.02, b.sendall, b"x")
        r, w, x = select.select([a], [], [], 5)
        assert r == [a] and w == [] and x == []
        assert writer.dead


def test_select_timeout_and_errors():
    r, w = os.pipe()
    try:
        t0 = time.monotonic()
        assert select.select([r], [], [], 0.05) == ([], [], [])
        assert time.monotonic() - t0 >= 0.04
        assert select.select([r], [], [], 0) == ([], [], [])
        assert watched() == []  # a raw fd is never left registered
        with pytest.raises(ValueError):
            select.select([r], [], [], -1)
        with pytest.raises(ValueError):
            select.select([-1], [], [])
    finally:
        os.close(r)
        os.close(w)


def test_select_sees_data_left_unread():
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"abc")
        assert select.select([a], [], [], 5)[0] == [a]
        assert a.recv(1) == b"a"
        # Still readable: level-triggered, as the standard library.
        assert select.select([a], [], [], 5)[0] == [a]


def test_select_in_many_greenlets_at_once():
    pairs = [socket.socketpair() for _ in range(10)]
    try:
        waiters = [green.spawn(select.select, [a], [], [], 5) for a, _ in pairs]
        green.sleep(0)
        for _, b in reversed(pairs):
            b.sendall(b"x")
        green.joinall(waiters, timeout=5)
        assert [w.get()[0] for w in waiters] == [[a] for a, _ in pairs]
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_poll_register_modify_unregister():
    a, b = socket.socketpair()
    with a, b:
        p = select.poll()
        p.register(a, select.POLLIN)
        assert p.poll(0) == []
        writer = later(0.02, b.sendall, b"x")
        assert p.poll(5000) == [(a.fileno(), select.POLLIN)]
        assert writer.dead
        p.modify(a.fileno(), select.POLLOUT)
        assert p.poll() == [(a.fileno(), select.POLLOUT)]
        p.unregister(a)
        with pytest.raises(KeyError):
            p.unregister(a)
        with pytest.raises(FileNotFoundError):
            p.modify(a, select.POLLIN)
        t0 = time.monotonic()
        p.register(b, select.POLLIN)
        assert p.poll(50) == []
        assert time.monotonic() - t0 >= 0.04


def test_poll_reports_hang_up_and_closed_fds():
    r, w = os.pipe()
    p = select.poll()
    p.register(r, select.POLLIN)
    closer = later(0.02, os.close, w)
    events = p.poll(5000)
    assert closer.dead
    assert events == [(r, select.POLLHUP)]
    os.close(r)
    assert p.poll(0) == [(r, select.POLLNVAL)]


def test_default_selector_is_cooperative_and_exact():
    assert selectors.DefaultSelector is selectors.GeventSelector
    a, b = socket.socketpair()
    with a, b, selectors.DefaultSelector() as sel:
        key = sel.register(a, selectors.EVENT_READ, data="a")
        assert isinstance(key, stdselectors.SelectorKey)
        assert sel.select(0) == []
        writer = later(0.02, b.sendall, b"xy")
        ready = sel.select(5)
        assert writer.dead
        assert [(k.fileobj, k.data, ev) for k, ev in ready] == [(a, "a", selectors.EVENT_READ)]
        assert a.recv(1) == b"x"
        assert [k.fileobj for k, _ in sel.select(5)] == [a]  # one byte left: still ready
        sel.modify(a, selectors.EVENT_WRITE, data="w")
        assert [(k.data, ev) for k, ev in sel.select(5)] == [("w", selectors.EVENT_WRITE)]
        sel.unregister(a)
        t0 = time.monotonic()
        assert sel.select(0.05) == []
        assert time.monotonic() - t0 >= 0.04
        with pytest.raises(KeyError):
            sel.unregister(a)
    assert watched() == []
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with selectors.DefaultSelector() as sel, pytest.raises(ValueError):
        sel.register(r, selectors.EVENT_READ)


def test_poll_and_select_selectors_use_the_cooperative_calls():
    for cls in (selectors.PollSelector, selectors.SelectSelector):
        a, b = socket.socketpair()
        with a, b, cls() as sel:
            sel.register(a, selectors.EVENT_READ)
            ticks: list[int] = []

            def ticker(ticks=ticks):
                while True:
                    ticks.append(1)
                    green.sleep(0.005)

            t = green.spawn(ticker)
            writer = later(0.1, b.sendall, b"x")
            ready = sel.select(5)
            t.kill()
            assert writer.dead
            assert [k.fileobj for k, _ in ready] == [a]
            assert len(ticks) >= 5, cls  # the hub ran other greenlets meanwhile


def test_the_standard_library_names_of_selectors_are_there():
    for name in ("BaseSelector", "SelectorKey", "EVENT_READ", "EVENT_WRITE"):
        assert getattr(selectors, name) is getattr(stdselectors, name)
    assert not hasattr(selectors, "EpollSelector")
