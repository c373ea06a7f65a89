"""Clients that tie up an HTTP server the way strangers do: connections that never send a byte
(a port scanner, a load balancer's idle pool) and connections that trickle a request a byte a
second (slowloris). Each is opened again as soon as the server closes it, so the pressure holds
for as long as the ``SlowClients`` context lasts. One thread drives them all (``selectors``),
so thousands cost the test process no threads.

Idle connections are opened without waiting (non-blocking connect): against a server whose
listen backlog is full they stay half-open, as a stranger's would.
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

# A request that never ends within a deadline: each trickling client sends one byte of it a tick.
_TRICKLE_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"a" * 4096
TRICKLE_INTERVAL_S = 1.0
# File descriptors this process needs beside the slow clients (pytest, PostgreSQL clients, logs).
_SPARE_FDS = 512
_CONNECT_TIMEOUT_S = 5.0


@dataclass
class _Trickler:
    sock: socket.socket
    sent: int = 0


@dataclass
class SlowClients:
    """``idle`` silent connections and ``trickling`` byte-a-second ones to ``port``; with a
    ``context``, the trickling ones speak TLS (the idle ones never even start a handshake)."""

    port: int
    idle: int
    trickling: int
    context: ssl.SSLContext | None = None
    reopened: int = 0
    _selector: selectors.DefaultSelector = field(default_factory=selectors.DefaultSelector)
    _tricklers: list[_Trickler] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SlowClients:
        _room_for(self.idle + self.trickling)
        # Tricklers first: each waits for its connection (and handshake), which a server whose
        # backlog the idle ones filled would never grant.
        self._tricklers = [_Trickler(self._open_trickling()) for _ in range(self.trickling)]
        for _ in range(self.idle):
            self._open_idle()
        self._thread = threading.Thread(target=self._drive, name="slow-clients", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()
        for trickler in self._tricklers:
            trickler.sock.close()

    def _open_idle(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        result = sock.connect_ex(("127.0.0.1", self.port))
        if result not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(result, f"cannot connect to 127.0.0.1:{self.port}")
        self._selector.register(sock, selectors.EVENT_READ)

    def _open_trickling(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=_CONNECT_TIMEOUT_S)
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_hostname="localhost")
        sock.setblocking(False)
        return sock

    def _drive(self) -> None:
        """Reopen what the server closed; send the tricklers their next byte every tick."""
        next_tick = time.monotonic()
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if _closed(sock):
                    self._selector.unregister(sock)
                    sock.close()
                    self._open_idle()
                    self.reopened += 1
            if time.monotonic() >= next_tick:
                next_tick += TRICKLE_INTERVAL_S
                for trickler in self._tricklers:
                    self._trickle(trickler)

    def _trickle(self, trickler: _Trickler) -> None:
        try:
            trickler.sock.send(_TRICKLE_REQUEST[trickler.sent : trickler.sent + 1])
            trickler.sent = (trickler.sent + 1) % len(_TRICKLE_REQUEST)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return
        except OSError:
            trickler.sock.close()
            try:
                trickler.sock = self._open_trickling()
            except OSError:
                return  # the server is busy; tried again next tick
            trickler.sent = 0
            self.reopened += 1


def _closed(sock: socket.socket) -> bool:
    """A readable idle connection: the server closed it (it never sends anything else)."""
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _room_for(connections: int) -> None:
    """Raise this process's file-descriptor limit for the connections (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + _SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
