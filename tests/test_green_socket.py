"""plait.green.socket: the cooperative socket (echo, timeouts, makefile, accept/connect,
socketpair, close and kill while waiting), DNS in threads, wait_read/wait_write, and the
standard library's http.client/urllib over it."""

from __future__ import annotations

import errno
import http.client
import http.server
import os
import socket as stdsocket
import time
import urllib.request

import pytest

from plait import green
from plait.green import socket
from plait.green._io import ConcurrentObjectUseError


def watched() -> list[int]:
    """The fds the hub's loop watches, other than its own self-pipe."""
    loop = green.get_hub().loop
    own = loop._ssock.fileno()
    return [fd for fd in loop._fds() if fd != own]


def echo_once(listener):
    conn, _ = listener.accept()
    with conn:
        while data := conn.recv(1024):
            conn.sendall(data)


def test_the_socket_is_the_standard_librarys_with_every_name_re_exported():
    with socket.socket() as s:
        assert isinstance(s, stdsocket.socket)
        assert s.gettimeout() is None and s.getblocking() and s.timeout is None
        assert os.get_blocking(s.fileno()) is False  # the fd itself never blocks
    for name in stdsocket.__all__:
        assert hasattr(socket, name), name
    assert socket.AF_INET == stdsocket.AF_INET and socket.timeout is TimeoutError
    assert socket.inet_aton is stdsocket.inet_aton
    assert socket.SocketType is socket.socket


def test_echo_between_greenlets():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = green.spawn(echo_once, listener)
        with socket.create_connection(listener.getsockname(), timeout=5) as conn:
            conn.sendall(b"hello")
            assert conn.recv(1024) == b"hello"
            big = os.urandom(1 << 20)  # more than the socket buffers: sendall must wait
            got = bytearray()

            def read_all():
                while len(got) < len(big):
                    got.extend(conn.recv(65536))

            g = green.spawn(read_all)
            conn.sendall(big)
            g.join(timeout=10)
            assert bytes(got) == big
        server.join(timeout=5)
        assert server.successful()
    assert watched() == []


def test_recv_timeout_raises_socket_timeout_and_leaves_nothing_registered():
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(0.05)
        t0 = time.monotonic()
        with pytest.raises(socket.timeout, match="timed out"):
            a.recv(10)
        assert time.monotonic() - t0 >= 0.04
        assert watched() == []
        b.sendall(b"x")
        assert a.recv(10) == b"x"  # the socket still works after a timeout


def test_non_blocking_socket_raises_instead_of_waiting():
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        assert a.gettimeout() == 0.0 and not a.getblocking()
        with pytest.raises(BlockingIOError):
            a.recv(10)
        with pytest.raises(ValueError):
            a.settimeout(-1)
        with pytest.raises(TypeError):
            a.settimeout("1")


def test_default_timeout_applies_to_new_sockets():
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(0.05)
    try:
        a, b = socket.socketpair()
    finally:
        socket.setdefaulttimeout(before)
    with a, b:
        assert a.gettimeout() == 0.05
        with pytest.raises(TimeoutError):
            a.recv(1)


def test_makefile_lines_both_ways():
    a, b = socket.socketpair()
    with a, b:
        wa, rb = a.makefile("w"), b.makefile("r")

        def writer():
            for i in range(100):
                wa.write(f"line {i}\n")
            wa.flush()
            wa.close()

        g = green.spawn(writer)
        lines = [rb.readline() for _ in range(100)]
        rb.close()
        g.join()
        assert lines == [f"line {i}\n" for i in range(100)]


def test_makefile_read_timeout():
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(0.05)
        f = a.makefile("rb")
        with pytest.raises(TimeoutError):
            f.read(1)
        f.close()


def test_socketpair_fromfd_dup_and_detach():
    a, b = socket.socketpair()
    with a, b:
        c = socket.fromfd(a.fileno(), a.family, a.type)
        d = b.dup()
        assert isinstance(c, socket.socket) and isinstance(d, socket.socket)
        with c, d:
            c.sendall(b"via dup")
            assert d.recv(100) == b"via dup"
        fd = a.detach()
        assert a.fileno() == -1
        raw = socket.socket(fileno=fd)
        with raw:
            raw.sendall(b"detached")
            assert b.recv(100) == b"detached"


def test_accept_gives_cooperative_sockets_and_connect_ex_reports_errors():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = socket.socket()
        connecting = green.spawn(client.connect, ("127.0.0.1", port))
        conn, addr = listener.accept()
        connecting.get(timeout=5)
        with client, conn:
            assert isinstance(conn, socket.socket) and conn.gettimeout() is None
            assert addr == client.getsockname()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED


def test_connect_refused_raises():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_two_greenlets_reading_one_socket_is_an_error():
    a, b = socket.socketpair()
    with a, b:
        first = green.spawn(a.recv, 10)
        green.sleep(0)
        second = green.spawn(a.recv, 10)
        second.join(timeout=5)
        assert isinstance(second.exception, ConcurrentObjectUseError)
        assert isinstance(second.exception, AssertionError)
        b.sendall(b"ok")
        assert first.get(timeout=5) == b"ok"


def test_killing_a_greenlet_blocked_in_recv_leaves_nothing_registered():
    a, b = socket.socketpair()
    with a, b:
        g = green.spawn(a.recv, 10)
        green.sleep(0)
        assert watched() == [a.fileno()]
        g.kill()
        assert g.dead and isinstance(g.value, green.GreenletExit)
        assert watched() == []
        b.sendall(b"later")  # nothing left to switch into the dead greenlet
        assert a.recv(10) == b"later"


def test_timeout_class_interrupts_a_recv():
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(green.Timeout):
            with green.Timeout(0.05):
                a.recv(10)
        assert watched() == []


def test_closing_a_socket_wakes_its_waiters_with_ebadf():
    a, b = socket.socketpair()
    with b:
        g = green.spawn(a.recv, 10)
        green.sleep(0)
        a.close()
        g.join(timeout=5)
        assert isinstance(g.exception, socket.cancel_wait_ex)
        assert g.exception.errno == errno.EBADF
        assert watched() == []


def test_a_reader_stays_registered_between_waits_until_the_socket_closes():
    a, b = socket.socketpair()
    with b:
        g = green.spawn(a.recv, 10)
        green.sleep(0)
        b.sendall(b"1")
        assert g.get(timeout=5) == b"1"
        # The reader is parked for the next wait (no epoll_ctl per wait) ...
        assert watched() == [a.fileno()]
        a.close()
        # ... and goes with the socket.
        assert watched() == []


def test_two_hundred_concurrent_clients_finish_concurrently():
    def handle(conn):
        with conn:
            data = conn.recv(100)
            green.sleep(0.2)  # each request takes 0.2 s: 200 in series would take 40 s
            conn.sendall(data.upper())

    def serve(listener):
        while True:
            conn, _ = listener.accept()
            green.spawn(handle, conn)

    def client(port, i):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"hello %d" % i)
            return c.recv(100)

    with socket.create_server(("127.0.0.1", 0), backlog=512) as listener:
        server = green.spawn(serve, listener)
        port = listener.getsockname()[1]
        t0 = time.monotonic()
        clients = [green.spawn(client, port, i) for i in range(200)]
        done = green.joinall(clients, timeout=30)
        elapsed = time.monotonic() - t0
        server.kill()
    assert len(done) == 200
    assert [c.get() for c in clients] == [b"HELLO %d" % i for i in range(200)]
    assert elapsed < 10


def test_wait_read_and_wait_write_on_raw_fds():
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        with pytest.raises(socket.timeout):
            socket.wait_read(r, timeout=0.02)
        with pytest.raises(KeyError):
            socket.wait_read(r, timeout=0.02, timeout_exc=KeyError("custom"))
        socket.wait_write(w, timeout=5)  # a pipe with room is writable at once
        g = green.spawn(socket.wait_read, r, 5)
        green.sleep(0)
        os.write(w, b"x")
        g.get(timeout=5)
        # Already readable (data left unread): a new wait returns at once (level semantics).
        socket.wait_read(r, timeout=5)
        socket.wait_readwrite(w, timeout=5)
        assert watched() == []
    finally:
        os.close(r)
        os.close(w)


def test_wait_read_in_a_callback_is_an_error():
    a, b = socket.socketpair()
    with a, b:
        errors = []

        def callback():
            try:
                socket.wait_read(a.fileno())
            except green.BlockingSwitchOutError as exc:
                errors.append(exc)

        green.get_hub().loop.call_soon(callback)
        green.sleep(0.01)
        assert len(errors) == 1


def test_dns_of_localhost_runs_in_a_thread_without_blocking_the_hub(monkeypatch):
    import _socket

    real = _socket.getaddrinfo

    def slow_getaddrinfo(*args):
        time.sleep(0.3)  # in the resolver's thread: the hub goes on meanwhile
        return real(*args)

    ticks = []

    def ticker():
        while True:
            ticks.append(time.monotonic())
            green.sleep(0.01)

    t = green.spawn(ticker)
    monkeypatch.setattr(_socket, "getaddrinfo", slow_getaddrinfo)
    found = socket.getaddrinfo("localhost", 80, socket.AF_INET, socket.SOCK_STREAM)
    monkeypatch.undo()
    t.kill()
    assert found and found[0][0] is socket.AF_INET and found[0][4][0] == "127.0.0.1"
    assert len(ticks) >= 5  # the ticker ran while the name was being looked up
    assert green.get_hub()._keepalive == 0


def test_dns_functions():
    assert socket.gethostbyname("localhost") == "127.0.0.1"
    assert socket.gethostbyname("127.0.0.1") == "127.0.0.1"
    _name, _aliases, addresses = socket.gethostbyname_ex("localhost")
    assert "127.0.0.1" in addresses
    assert isinstance(socket.gethostbyaddr("127.0.0.1")[0], str)
    assert socket.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV) == (
        "127.0.0.1",
        "80",
    )
    assert isinstance(socket.getfqdn(), str)
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("name.that.does.not.exist.invalid", 80)


def test_killing_a_greenlet_during_a_lookup_does_not_wake_it_later(monkeypatch):
    import _socket

    real = _socket.getaddrinfo

    def slow_getaddrinfo(*args):
        time.sleep(0.1)
        return real(*args)

    monkeypatch.setattr(_socket, "getaddrinfo", slow_getaddrinfo)
    g = green.spawn(socket.getaddrinfo, "localhost", 80)
    green.sleep(0.01)
    g.kill()
    assert g.dead
    green.sleep(0.2)  # the thread finishes and hands its result to nobody
    monkeypatch.undo()
    assert green.get_hub()._keepalive == 0


def test_connect_to_a_host_name_resolves_cooperatively():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = green.spawn(echo_once, listener)
        with socket.socket() as c:
            c.settimeout(5)
            c.connect(("localhost", listener.getsockname()[1]))
            c.sendall(b"named")
            assert c.recv(100) == b"named"
        server.join(timeout=5)


def test_udp_sendto_recvfrom():
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
    ):
        a.bind(("127.0.0.1", 0))
        g = green.spawn(a.recvfrom, 100)
        green.sleep(0)
        b.sendto(b"datagram", ("localhost", a.getsockname()[1]))
        data, addr = g.get(timeout=5)
        assert data == b"datagram" and addr[1] == b.getsockname()[1]
        buf = bytearray(100)
        b.sendto(b"into", a.getsockname())
        n, _ = a.recvfrom_into(buf)
        assert bytes(buf[:n]) == b"into"


def test_recvmsg_and_sendmsg():
    a, b = socket.socketpair()
    with a, b:
        g = green.spawn(a.recvmsg, 100)
        green.sleep(0)
        b.sendmsg([b"part1-", b"part2"])
        data, ancdata, _flags, _ = g.get(timeout=5)
        assert data == b"part1-part2" and ancdata == []


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _http_server():
    """A cooperative HTTP server: http.server's handler on a green accept loop."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            conn, addr = listener.accept()
            green.spawn(_handle_http, conn, addr)

    return listener, green.spawn(serve)


def _handle_http(conn, addr):
    with conn:
        _Hello(conn, addr, None)


def test_http_client_over_the_cooperative_socket():
    listener, server = _http_server()
    with listener:
        port = listener.getsockname()[1]

        def fetch(i):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn._create_connection = socket.create_connection
            try:
                conn.request("GET", f"/{i}")
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        fetches = [green.spawn(fetch, i) for i in range(20)]
        green.joinall(fetches, timeout=10)
        server.kill()
    assert [f.get() for f in fetches] == [(200, f"hello /{i}".encode()) for i in range(20)]


def test_urllib_request_with_the_cooperative_create_connection(monkeypatch):
    listener, server = _http_server()
    with listener:
        port = listener.getsockname()[1]
        monkeypatch.setattr(stdsocket, "create_connection", socket.create_connection)
        with urllib.request.urlopen(f"http://localhost:{port}/page", timeout=5) as response:
            body = response.read()
        server.kill()
    assert body == b"hello /page"


def test_a_parked_reader_does_not_hide_a_greenlet_blocked_forever():
    a, b = socket.socketpair()
    with a, b:
        g = green.spawn(a.recv, 10)
        green.sleep(0)
        b.sendall(b"x")
        assert g.get() == b"x"  # (no timeout: a cancelled timer would keep the loop polling)
        assert watched() == [a.fileno()]  # parked: registered, nobody waiting
        never = green.Greenlet(lambda: None)  # never started: joining it waits forever
        with pytest.raises(green.BlockedForever):
            never.join()


def test_a_socket_used_by_another_thread_then_this_one():
    import threading

    a, b = socket.socketpair()
    with a, b:
        got = []

        def in_thread():
            try:
                got.append(green.spawn(a.recv, 10).get())
            finally:
                green.get_hub().destroy()

        t = threading.Thread(target=in_thread)
        t.start()
        b.sendall(b"there")
        t.join(timeout=10)
        assert got == [b"there"]
        g = green.spawn(a.recv, 10)  # this thread's hub watches it now
        green.sleep(0)
        b.sendall(b"here")
        assert g.get(timeout=5) == b"here"


@pytest.mark.parametrize("into", [False, True])
def test_a_short_read_waits_first_and_misses_nothing(into):
    # A read that returns less than asked for emptied the kernel's buffer: the next read waits
    # for readiness instead of trying (and failing with EAGAIN). Data sent while nobody waits,
    # data sent while a reader waits, and the end of stream must all still arrive.
    a, b = socket.socketpair()
    got: list[bytes] = []

    def read(n: int = 100) -> bytes:
        if not into:
            return b.recv(n)
        buf = bytearray(n)
        k = b.recv_into(buf)
        return bytes(buf[:k])

    def reader():
        while data := read():
            got.append(data)

    with a, b:
        a.sendall(b"one")
        assert read() == b"one" and b._drained  # short: the next read waits first
        a.sendall(b"two")  # arrives while nobody waits
        assert read() == b"two"
        g = green.spawn(reader)
        green.sleep(0)  # the reader now waits
        a.sendall(b"three")
        green.sleep(0.01)
        a.sendall(b"x" * 250)  # more than one read's worth: not short, then short
        green.sleep(0.01)
        a.shutdown(stdsocket.SHUT_WR)
        g.join(timeout=10)
    assert g.dead and b"".join(got) == b"three" + b"x" * 250


def test_a_short_datagram_read_does_not_mark_the_socket_drained():
    # A datagram socket's short read is one message of several queued: the next one is there.
    a, b = (
        socket.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM),
        socket.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM),
    )
    with a, b:
        b.bind(("127.0.0.1", 0))
        a.sendto(b"1", b.getsockname())
        a.sendto(b"2", b.getsockname())
        assert b.recv(100) == b"1" and not b._drained
        assert b.recv(100) == b"2"
