"""plait.green.server: StreamServer (greenlet per connection, TLS, pools, stop with a timeout)
and DatagramServer."""

from __future__ import annotations

import os
import socket as stdsocket
import sysconfig
import time

import pytest

from plait import green
from plait.green import socket, ssl
from plait.green.server import DatagramServer, StreamServer, parse_address


def watched() -> list[int]:
    loop = green.get_hub().loop
    own = loop._ssock.fileno()
    return [fd for fd in loop._fds() if fd != own]


def echo(sock, address):
    while data := sock.recv(1024):
        sock.sendall(data)


def talk(address, message, timeout=5):
    with socket.create_connection(address, timeout=timeout) as c:
        c.sendall(message)
        return c.recv(1024)


def test_stream_server_echo_and_its_properties():
    server = StreamServer(("127.0.0.1", 0), echo, spawn=100)  # a pool: stop() waits for handlers
    assert not server.started
    server.start()
    try:
        assert server.started
        assert server.server_host == "127.0.0.1" and server.server_port > 0
        assert server.address == (server.server_host, server.server_port)
        assert isinstance(server.socket, socket.socket)
        clients = [green.spawn(talk, server.address, b"msg %d" % i) for i in range(50)]
        green.joinall(clients, timeout=10)
        assert [c.get() for c in clients] == [b"msg %d" % i for i in range(50)]
        assert "StreamServer" in repr(server) and "address=127.0.0.1:" in str(server)
    finally:
        server.stop()
    assert server.closed and not server.started


def test_handler_connections_are_closed_when_it_returns():
    seen = []

    def handle(sock, address):
        seen.append((type(sock), address))
        sock.sendall(b"bye")

    with StreamServer(("127.0.0.1", 0), handle) as server:
        server.start()
        with socket.create_connection(server.address, timeout=5) as c:
            assert c.recv(100) == b"bye"
            assert c.recv(100) == b""  # the server closed its side
            assert seen == [(socket.socket, c.getsockname())]


def test_a_subclass_handle_method_and_an_existing_listener():
    class Upper(StreamServer):
        def handle(self, sock, address):
            sock.sendall(sock.recv(100).upper())

    listener = socket.create_server(("127.0.0.1", 0))
    server = Upper(listener)
    server.start()
    try:
        assert talk(listener.getsockname(), b"abc") == b"ABC"
    finally:
        server.stop()
    assert listener.fileno() == -1  # the server closed it


def test_a_standard_library_listener_is_taken_over():
    listener = stdsocket.create_server(("127.0.0.1", 0))
    address = listener.getsockname()
    server = StreamServer(listener, echo, spawn=10)
    server.start()
    try:
        assert listener.fileno() == -1 and isinstance(server.socket, socket.socket)
        assert talk(address, b"taken") == b"taken"
    finally:
        server.stop()


def test_serve_forever_until_stopped_from_another_greenlet():
    server = StreamServer(("127.0.0.1", 0), echo, spawn=10)
    runner = green.spawn(server.serve_forever)
    green.sleep(0)
    assert server.started
    assert talk(server.address, b"forever") == b"forever"
    server.stop()
    runner.join(timeout=5)
    assert runner.successful() and server.closed


def test_stop_timeout_kills_handlers_and_closes_their_connections():
    started = []

    def stuck(sock, address):
        started.append(address)
        sock.recv(1024)  # the client never sends: waits until killed

    server = StreamServer(("127.0.0.1", 0), stuck, spawn=10)
    server.start()
    clients = [socket.create_connection(server.address, timeout=5) for _ in range(3)]
    try:
        while len(started) < 3:
            green.sleep(0.001)
        t0 = time.monotonic()
        server.stop(timeout=0.1)
        assert time.monotonic() - t0 < 5
        for c in clients:
            assert c.recv(10) == b""  # the handler was killed and its connection closed
        assert len(server.pool) == 0
    finally:
        for c in clients:
            c.close()
    assert watched() == []


def test_a_full_pool_stops_accepting_until_a_handler_finishes():
    active = []
    peak = []

    def handle(sock, address):
        active.append(1)
        peak.append(len(active))
        green.sleep(0.02)
        sock.sendall(b"done")
        active.pop()

    server = StreamServer(("127.0.0.1", 0), handle, spawn=2)
    server.start()
    try:
        clients = [green.spawn(talk, server.address, b"") for _ in range(6)]
        green.joinall(clients, timeout=10)
        assert [c.get() for c in clients] == [b"done"] * 6
        assert max(peak) == 2
    finally:
        server.stop()


def test_spawn_none_runs_the_handler_in_the_hub():
    def handle(sock, address):
        sock.send(b"from the hub")  # must not block

    server = StreamServer(("127.0.0.1", 0), handle, spawn=None)
    server.start()
    try:
        with socket.create_connection(server.address, timeout=5) as c:
            assert c.recv(100) == b"from the hub"
    finally:
        server.stop()


def _keycert() -> str | None:
    test_dir = os.path.join(sysconfig.get_paths()["stdlib"], "test")
    for path in (os.path.join(test_dir, "certdata", "keycert.pem"), os.path.join(test_dir, "keycert.pem")):
        if os.path.exists(path):
            return path
    return None


KEYCERT = _keycert()
needs_cert = pytest.mark.skipif(
    KEYCERT is None, reason="CPython's test certificate (Lib/test/certdata/keycert.pem) is not installed"
)


@needs_cert
def test_stream_server_with_an_ssl_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(KEYCERT)
    server = StreamServer(("127.0.0.1", 0), echo, spawn=10, ssl_context=context)
    assert server.ssl_enabled
    server.start()
    try:
        client_context = ssl.create_default_context(cafile=KEYCERT)

        def client(i):
            raw = socket.create_connection(server.address, timeout=5)
            with client_context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"secure %d" % i)
                return tls.recv(100)

        clients = [green.spawn(client, i) for i in range(5)]
        green.joinall(clients, timeout=20)
        assert [c.get() for c in clients] == [b"secure %d" % i for i in range(5)]
    finally:
        server.stop()


@needs_cert
def test_stream_server_with_ssl_keyword_arguments():
    server = StreamServer(("127.0.0.1", 0), echo, spawn=10, certfile=KEYCERT)
    server.start()
    try:
        raw = socket.create_connection(server.address, timeout=5)
        with ssl.wrap_socket(raw) as tls:
            tls.sendall(b"keywords")
            assert tls.recv(100) == b"keywords"
    finally:
        server.stop()


def test_datagram_server():
    class Upper(DatagramServer):
        def handle(self, data, address):
            self.sendto(data.upper(), address)

    server = Upper("127.0.0.1:0")
    server.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(5)
            for i in range(20):
                c.sendto(b"datagram %d" % i, server.address)
            replies = sorted(c.recvfrom(100)[0] for _ in range(20))
        assert replies == sorted(b"DATAGRAM %d" % i for i in range(20))
    finally:
        server.stop()
    assert server.closed


def test_datagram_server_with_a_handle_function():
    got = []
    server = DatagramServer(("127.0.0.1", 0), lambda data, address: got.append(data))
    server.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"one", server.address)
            while not got:
                green.sleep(0.001)
        assert got == [b"one"]
    finally:
        server.stop()


def test_parse_address():
    assert parse_address(("127.0.0.1", 80)) == (socket.AF_INET, ("127.0.0.1", 80))
    assert parse_address("127.0.0.1:80") == (socket.AF_INET, ("127.0.0.1", 80))
    assert parse_address("[::1]:80") == (socket.AF_INET6, ("::1", 80))
    assert parse_address(":80") == (socket.AF_INET, ("", 80))
    assert parse_address(8080) == (socket.AF_INET6, ("", 8080))
    assert parse_address("*:80") == (socket.AF_INET, ("", 80))
    with pytest.raises(ValueError):
        parse_address("host:port")


def test_a_missing_handler_is_an_error():
    with pytest.raises(TypeError, match="'handle' must be provided"):
        StreamServer(("127.0.0.1", 0))
