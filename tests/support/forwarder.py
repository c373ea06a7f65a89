"""A TCP forwarder on 127.0.0.1: the "VIP" of the failover tests and the relay in front of the
S3 server of the off-site tests.

``retarget(port)`` moves it to another server and drops the connections open through it, as a
virtual IP moved to another host does: clients see their sessions break and reconnect to the new
target. ``cut()`` stops listening and drops everything (an outage); ``up()`` listens again on the
same port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.ports import free_port

_CHUNK = 65536


class Forwarder:
    """127.0.0.1:``port`` → 127.0.0.1:``target``; a connection the target refuses is closed."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = target_port
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def retarget(self, target_port: int) -> None:
        """New connections go to ``target_port``; the open ones are dropped."""
        with self._lock:
            self.target = target_port
        self._drop_open()

    def cut(self) -> None:
        """Refused from now on. ``shutdown`` first: a ``close`` alone leaves the accepting
        thread blocked in ``accept()`` on the socket, which then takes one more connection after
        the cut (CI saw a WAL segment reach the store through it during an outage)."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._drop_open()

    def _drop_open(self) -> None:
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                target = self.target
            try:
                upstream = socket.create_connection(("127.0.0.1", target))
            except OSError:
                client.close()
                continue
            with self._lock:
                current = self._listener is listener  # else cut while this one connected
                if current:
                    self._open.update((client, upstream))
            if not current:
                for conn in (client, upstream):
                    conn.close()
                return
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        for conn in (source, sink):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._open.discard(source)


@contextmanager
def forwarder(target_port: int) -> Iterator[Forwarder]:
    """A listening forwarder to ``target_port``, cut on the way out."""
    vip = Forwarder(target_port)
    vip.up()
    try:
        yield vip
    finally:
        vip.cut()
