"""The test relay itself (``tests/support/forwarder.py``): an outage the off-site and failover
tests stage with ``cut()`` must refuse every connection, the first one after it included."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.support.forwarder import forwarder

TIMEOUT_S = 5


def _echo_once(server: socket.socket) -> None:
    connection, _ = server.accept()
    with connection:
        connection.sendall(connection.recv(1))


def test_nothing_connects_through_a_cut_relay_until_it_is_up_again() -> None:
    with socket.create_server(("127.0.0.1", 0)) as target:
        threading.Thread(target=_echo_once, args=(target,), daemon=True).start()
        with forwarder(target.getsockname()[1]) as relay:
            # A round trip through the relay: its accepting thread is past this connection and
            # waiting in accept() for the next one when the cut comes.
            with socket.create_connection(("127.0.0.1", relay.port), timeout=TIMEOUT_S) as conn:
                conn.sendall(b"x")
                assert conn.recv(1) == b"x"
            relay.cut()
            for _ in range(2):  # a close alone let the first one after the cut through
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", relay.port), timeout=TIMEOUT_S)
            relay.up()
            socket.create_connection(("127.0.0.1", relay.port), timeout=TIMEOUT_S).close()
