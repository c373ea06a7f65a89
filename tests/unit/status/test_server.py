"""The event-driven transport: whole requests before a worker, limits, the deadline, the cap."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from barman_supervisor.status import server as server_module
from barman_supervisor.status.access import Logins
from barman_supervisor.status.server import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    EventServer,
    Reply,
    connection_cap,
)
from tests.support.poll import wait_until
from tests.support.webconfig import get

# Short enough for a test, long enough for a loaded machine to send a request in.
TEST_DEADLINE = 1.0


def echo(path: str, authorized: bool) -> Reply:
    return Reply(200, f"{path} {authorized}".encode(), "text/plain", (("X-Test", "1"),))


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, EventServer]]:
    monkeypatch.setattr(server_module, "REQUEST_DEADLINE", TEST_DEADLINE)
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 8)
    sock = socket.create_server(("127.0.0.1", 0))
    server = EventServer(sock, echo, logins=Logins({}), allowed_hosts=("barman.example",))
    server.start()
    yield sock.getsockname()[1], server
    server.stop()


def raw(port: int, data: bytes) -> bytes:
    """Send ``data`` and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def closed_by_server(sock: socket.socket) -> bool:
    """The server closed it (FIN or reset); a timeout fails the test."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_whole_request_reaches_the_responder(served: tuple[int, EventServer]) -> None:
    port, _ = served
    code, headers, body = get(port, "/status/?x=1")

    assert (code, body) == (200, b"/status True")
    assert headers["X-Test"] == "1" and headers["Connection"] == "close"
    assert headers["Cache-Control"] == "no-store" and headers["Server"] == "barman-supervisor"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n", 431),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1)
            + b"a" * (MAX_BODY_BYTES + 1),
            413,
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", 421),
        (b"GET / HTTP/1.0\r\n\r\n", 421),  # no Host while the allow-list is set
    ],
)
def test_requests_beyond_the_limits_are_refused_with_their_status(
    served: tuple[int, EventServer], request_bytes: bytes, status: int
) -> None:
    port, _ = served
    answer = raw(port, request_bytes)

    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:80]


def test_a_client_trickling_its_request_is_closed_at_the_deadline(
    served: tuple[int, EventServer],
) -> None:
    """A byte every tenth of a second never completes the request before the deadline; the
    connection is closed then, and probes are answered all along."""
    port, _ = served
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
        request = b"GET /healthz HTTP/1.1\r\nHost: barman.example\r\n" + b"X: y\r\n" * 100
        closed = False
        for byte in request:
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            assert get(port, "/healthz", headers={"Host": "barman.example"})[0] == 200
            time.sleep(0.1)
        assert closed or closed_by_server(slow)
    assert time.monotonic() - started < TEST_DEADLINE + 3


def test_past_the_cap_the_oldest_waiting_connection_is_closed(
    served: tuple[int, EventServer],
) -> None:
    port, server = served
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(8)]
    try:
        wait_until(lambda: server.open_connections == 8, 5, what="8 connections open")
        code, _, _ = get(port, "/healthz", headers={"Host": "barman.example"})

        assert code == 200
        assert closed_by_server(idle[0])  # the oldest made room for the probe
        assert server.open_connections <= 8
    finally:
        for sock in idle:
            sock.close()


class _Limits:
    """A stand-in for ``resource``: the process's file-descriptor limits."""

    RLIMIT_NOFILE = 7
    RLIM_INFINITY = -1

    def __init__(self, soft: int, hard: int) -> None:
        self.limits = (soft, hard)

    def getrlimit(self, _which: int) -> tuple[int, int]:
        return self.limits

    def setrlimit(self, _which: int, limits: tuple[int, int]) -> None:
        self.limits = limits


@pytest.mark.parametrize(
    ("soft", "hard", "raised_to", "cap"),
    [
        (1024, 1_048_576, 4096 + 512, 4096),  # Docker's usual: raised, full cap
        (1024, 2048, 2048, 2048 - 512),  # a low hard limit: raised to it, a smaller cap
        (65536, 65536, 65536, 4096),  # already enough: left alone
    ],
)
def test_the_fd_limit_is_raised_to_hold_the_connections(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, raised_to: int, cap: int
) -> None:
    limits = _Limits(soft, hard)
    monkeypatch.setattr(server_module, "resource", limits)

    assert connection_cap() == cap
    assert limits.limits == (raised_to, hard)
