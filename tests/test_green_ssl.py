"""plait.green.ssl: TLS over cooperative sockets (handshake, reads and writes wait on the hub),
with the certificate CPython's own test suite ships."""

from __future__ import annotations

import os
import ssl as stdssl
import sysconfig

import pytest

from plait import green
from plait.green import socket, ssl


def _keycert() -> str | None:
    test_dir = os.path.join(sysconfig.get_paths()["stdlib"], "test")
    for path in (os.path.join(test_dir, "certdata", "keycert.pem"), os.path.join(test_dir, "keycert.pem")):
        if os.path.exists(path):
            return path
    return None


KEYCERT = _keycert()
pytestmark = pytest.mark.skipif(
    KEYCERT is None, reason="CPython's test certificate (Lib/test/certdata/keycert.pem) is not installed"
)


def server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(KEYCERT)
    return context


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=KEYCERT)  # the certificate is for "localhost"
    return context


def tls_echo_server(listener, context, count=1):
    def serve():
        handlers = []
        for _ in range(count):
            raw, _ = listener.accept()
            handlers.append(green.spawn(handle, raw))
        green.joinall(handlers, raise_error=True)

    def handle(raw):
        with context.wrap_socket(raw, server_side=True) as tls:
            while data := tls.recv(65536):
                tls.sendall(data)

    return green.spawn(serve)


def test_names_and_types():
    assert issubclass(ssl.SSLContext, stdssl.SSLContext)
    assert issubclass(ssl.SSLSocket, stdssl.SSLSocket) and issubclass(ssl.SSLSocket, socket.socket)
    assert isinstance(ssl.create_default_context(), ssl.SSLContext)
    assert isinstance(ssl._create_default_https_context(), ssl.SSLContext)
    for name in (
        "PROTOCOL_TLS_CLIENT",
        "CERT_REQUIRED",
        "SSLError",
        "SSLWantReadError",
        "Purpose",
        "TLSVersion",
    ):
        assert getattr(ssl, name) is getattr(stdssl, name)
    with pytest.raises(TypeError):
        ssl.SSLSocket()


def test_tls_echo_with_certificate_verification():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = tls_echo_server(listener, server_context())
        raw = socket.create_connection(listener.getsockname(), timeout=5)
        with client_context().wrap_socket(raw, server_hostname="localhost") as tls:
            assert isinstance(tls, ssl.SSLSocket)
            assert tls.version() is not None and tls.getpeercert()["subject"]
            tls.sendall(b"hello over tls")
            assert tls.recv(100) == b"hello over tls"
            big = os.urandom(1 << 20)  # more than the buffers: writes wait while reads go on
            got = bytearray()

            def read_all():
                while len(got) < len(big):
                    got.extend(tls.recv(65536))

            reader = green.spawn(read_all)
            tls.sendall(big)
            reader.get(timeout=10)
            assert bytes(got) == big
        server.join(timeout=5)


def test_many_tls_clients_at_once():
    n = 10
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = tls_echo_server(listener, server_context(), count=n)
        context = client_context()

        def client(i):
            raw = socket.create_connection(listener.getsockname(), timeout=5)
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"client %d" % i)
                return tls.recv(100)

        clients = [green.spawn(client, i) for i in range(n)]
        green.joinall(clients, timeout=20)
        server.join(timeout=5)
    assert [c.get() for c in clients] == [b"client %d" % i for i in range(n)]


def test_a_wrong_host_name_fails_the_handshake():
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve():
            raw, _ = listener.accept()
            with raw:
                try:
                    server_context().wrap_socket(raw, server_side=True).close()
                except (ssl.SSLError, OSError):
                    pass

        server = green.spawn(serve)
        raw = socket.create_connection(listener.getsockname(), timeout=5)
        with pytest.raises(ssl.SSLCertVerificationError):
            client_context().wrap_socket(raw, server_hostname="not-localhost")
        raw.close()
        server.join(timeout=5)


def test_read_timeout_and_handshake_timeout():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = tls_echo_server(listener, server_context())
        raw = socket.create_connection(listener.getsockname(), timeout=5)
        with client_context().wrap_socket(raw, server_hostname="localhost") as tls:
            tls.settimeout(0.05)
            with pytest.raises(socket.timeout, match="read operation timed out"):
                tls.recv(10)
        server.join(timeout=5)
        # A server that never answers the handshake.
        silent = socket.create_connection(listener.getsockname(), timeout=0.05)
        with silent, pytest.raises(socket.timeout, match="handshake operation timed out"):
            client_context().wrap_socket(silent, server_hostname="localhost")
        conn, _ = listener.accept()
        conn.close()


def test_unwrap_returns_to_plain_text():
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve():
            raw, _ = listener.accept()
            tls = server_context().wrap_socket(raw, server_side=True)
            assert tls.recv(100) == b"secret"
            plain = tls.unwrap()
            with plain:
                plain.sendall(b"plain " + plain.recv(100))

        server = green.spawn(serve)
        raw = socket.create_connection(listener.getsockname(), timeout=5)
        tls = client_context().wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"secret")
        plain = tls.unwrap()
        with plain:
            plain.sendall(b"text")
            assert plain.recv(100) == b"plain text"
        server.get(timeout=5)


def test_module_wrap_socket_and_get_server_certificate():
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve():
            raw, _ = listener.accept()
            with ssl.wrap_socket(raw, certfile=KEYCERT, server_side=True) as tls:
                tls.sendall(tls.recv(100).upper())
            raw, _ = listener.accept()
            with raw:
                try:
                    with ssl.wrap_socket(raw, certfile=KEYCERT, server_side=True) as tls:
                        tls.recv(1)
                except (ssl.SSLError, OSError):
                    pass

        server = green.spawn(serve)
        raw = socket.create_connection(listener.getsockname(), timeout=5)
        with ssl.wrap_socket(raw) as tls:
            tls.sendall(b"module")
            assert tls.recv(100) == b"MODULE"
        pem = ssl.get_server_certificate(listener.getsockname())
        assert pem.startswith("-----BEGIN CERTIFICATE-----")
        server.join(timeout=5)
    with socket.socket() as s, pytest.raises(ValueError):
        ssl.wrap_socket(s, server_side=True)
