"""The partition proxy itself: bytes pass while a link is healed and stop, both ways, once it is cut."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
from netproxy import Link, NetProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(5)


def roundtrip(port: int, payload: bytes) -> bytes:
    """What comes back through the proxy for `payload`; b"" if the connection was refused or reset."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return exchange(sock, payload)


def exchange(sock: socket.socket, payload: bytes) -> bytes:
    try:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got
    except (ConnectionResetError, BrokenPipeError):
        return b""


def test_cut_stops_bytes_and_heal_restores_them(echo_port: int) -> None:
    with NetProxy() as proxy:
        link = Link("a", "b")
        port = proxy.add(link, echo_port)
        big = bytes(range(256)) * 1024  # larger than one read, so forwarding loops
        assert roundtrip(port, big) == big
        assert proxy.forwarded(link) == 2 * len(big)

        held = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            assert exchange(held, b"before the cut") == b"before the cut"
            proxy.cut(link)
            assert exchange(held, b"after the cut") == b""  # the open connection was reset
        finally:
            held.close()
        assert roundtrip(port, b"new connection while cut") == b""
        assert proxy.is_cut(link)

        proxy.heal(link)
        assert roundtrip(port, b"healed") == b"healed"


def test_partition_cuts_exactly_the_links_between_groups(echo_port: int) -> None:
    with NetProxy() as proxy:
        nodes = ["a", "b", "c", "d"]
        ports = {Link(x, y): proxy.add(Link(x, y), echo_port) for x in nodes for y in nodes if x != y}
        proxy.partition([{"a", "b"}, {"c"}, {"d"}])
        for link, port in ports.items():
            together = {link.dialer, link.target} <= {"a", "b"}
            assert proxy.is_cut(link) is not together
            assert roundtrip(port, b"ping") == (b"ping" if together else b"")
        proxy.heal_pair("c", "d")
        assert roundtrip(ports[Link("c", "d")], b"x") == b"x"
        assert roundtrip(ports[Link("d", "c")], b"y") == b"y"
        assert roundtrip(ports[Link("a", "c")], b"z") == b""
        proxy.heal_all()
        assert all(roundtrip(port, b"ok") == b"ok" for port in ports.values())
