"""The HTTP transport: one event loop reads every request whole before a worker sees it.

A thread per connection let idle or slow clients (a port scanner, a load balancer's idle pool,
a client trickling a byte a second) hold every handler while ``/healthz`` waited: Docker and
Kubernetes then restart a healthy daemon mid-backup. Here one asyncio loop (thread ``http``)
holds all connections; a connection costs a socket and a few kilobytes, never a thread. h11
parses HTTP/1.1 (header size bounded), a whole-request deadline runs from the accept (the TLS
handshake included) to the last byte of the request, and only a complete request is passed to a
small pool of worker threads that compute the answer. Logins (bcrypt, slow on purpose) run in a
pool of their own, so guessing passwords never delays a probe.

Connections are capped (below the file-descriptor limit, which is raised as far as the hard
limit allows): past the cap the oldest connection still waiting for its request is closed, so a
flood of idle connections cannot lock out a probe either. Every answer closes its connection
(no keep-alive), as the server before this one did.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

import h11

from barman_supervisor.config import host_allowed
from barman_supervisor.errors import SupervisorError
from barman_supervisor.log import get_logger
from barman_supervisor.status.access import Logins

_log = get_logger(__name__)
# Open connections at most; the file-descriptor limit is raised to hold them and the daemon's
# own files (Barman's pipes, PostgreSQL connections, logs).
MAX_CONNECTIONS = 4096
# Connections the kernel completes before the loop accepts them. Probes from Docker, Kubernetes
# and Prometheus arrive together, and a stranger's pool of idle connections reopens all at once
# when the request deadline closes it: a full backlog drops a probe's SYN, which waits 1 s for
# its retransmit (measured with 128: one probe in 7,000 took 1.06 s). The kernel caps it at
# net.core.somaxconn (4096 by default).
LISTEN_BACKLOG = MAX_CONNECTIONS
# From the accept to a complete request (TLS handshake, headers, any body); then the connection
# is closed. Idle connections cost no worker now; this bounds what they cost in sockets.
REQUEST_DEADLINE = 10.0
# Writing an answer to a client that does not read it.
SEND_DEADLINE = 10.0
# Request line and headers together (h11 answers 431 beyond); a probe sends a few hundred bytes.
MAX_HEADER_BYTES = 16 * 1024
# A GET carries no body; one that does is read (and dropped) up to this size, then refused (413).
MAX_BODY_BYTES = 16 * 1024
READ_CHUNK = 64 * 1024
# File descriptors kept for the daemon itself beside the connections.
RESERVED_FDS = 512
# Threads that compute answers from the state (each answer takes milliseconds).
ANSWER_WORKERS = 4
# Threads that check bcrypt hashes (~70 ms each): one, so guesses queue among themselves.
LOGIN_WORKERS = 1
# How long ``stop`` waits for the loop to close every connection.
STOP_TIMEOUT = 5.0
SERVER_NAME = "barman-supervisor"


@dataclass(frozen=True)
class Request:
    """A complete request, as the answer needs it."""

    method: str
    path: str
    host: str | None
    authorization: str | None


@dataclass(frozen=True)
class Reply:
    """What is sent back: status, body, content type and extra headers."""

    code: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


# (request path, authorized) -> the reply; runs in a worker thread.
Responder = Callable[[str, bool], Reply]


def error_reply(code: HTTPStatus, *headers: tuple[str, str]) -> Reply:
    """A refusal decided by the transport (before any route), as JSON like every route."""
    body = f'{{"error": "{code.phrase.lower()}"}}\n'.encode()
    return Reply(int(code), body, "application/json", headers)


def connection_cap() -> int:
    """How many connections may be open: ``MAX_CONNECTIONS``, with the soft file-descriptor
    limit raised to hold them (up to the hard limit); fewer when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - RESERVED_FDS))


class EventServer:
    """Serves ``respond``'s replies on a bound socket from an event loop in its own thread."""

    def __init__(
        self,
        sock: socket.socket,
        respond: Responder,
        *,
        logins: Logins,
        allowed_hosts: tuple[str, ...] = (),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._sock = sock
        self._respond = respond
        self._logins = logins
        self._allowed_hosts = allowed_hosts
        self._tls = tls
        self._cap = connection_cap()
        self._open: set[asyncio.StreamWriter] = set()
        # Connections still reading their request, oldest first: the ones the cap closes.
        self._waiting: OrderedDict[asyncio.StreamWriter, None] = OrderedDict()
        self._answers = ThreadPoolExecutor(ANSWER_WORKERS, thread_name_prefix="http-answer")
        self._login_pool = ThreadPoolExecutor(LOGIN_WORKERS, thread_name_prefix="http-login")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        """Close the listening socket and every connection; bounded by ``STOP_TIMEOUT``."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(STOP_TIMEOUT)
        self._answers.shutdown(wait=False, cancel_futures=True)
        self._login_pool.shutdown(wait=False, cancel_futures=True)
        self._sock.close()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(
            self._connection, sock=self._sock, backlog=LISTEN_BACKLOG, limit=READ_CHUNK
        )
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for writer in list(self._open):
                writer.transport.abort()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        self._waiting[writer] = None
        while len(self._open) > self._cap and self._waiting:
            oldest, _ = self._waiting.popitem(last=False)
            self._open.discard(oldest)  # counted out now: its task ends on a later turn
            oldest.transport.abort()
        try:
            reply = await self._read_and_answer(reader, writer)
            if reply is not None:
                await self._send(writer, reply)
        finally:
            self._waiting.pop(writer, None)
            self._open.discard(writer)
            writer.close()

    async def _read_and_answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Reply | None:
        """The reply to the connection's request; None when it never sent one in time."""
        try:
            async with asyncio.timeout(REQUEST_DEADLINE):
                if self._tls is not None:
                    await writer.start_tls(self._tls)
                request = await _read_request(reader)
        except h11.RemoteProtocolError as exc:
            return error_reply(HTTPStatus(exc.error_status_hint))
        except _TooLarge as exc:
            return error_reply(exc.status)
        except (TimeoutError, OSError, ssl.SSLError):
            return None  # idle, slow, gone or not speaking TLS: closed without a word
        self._waiting.pop(writer, None)
        return await self._answer(request)

    async def _answer(self, request: Request) -> Reply:
        if request.method != "GET":
            return error_reply(HTTPStatus.NOT_IMPLEMENTED)
        if not host_allowed(request.host, self._allowed_hosts):
            # 421: this server will not answer for that name (RFC 9110 15.5.20); a browser led
            # here by DNS rebinding gets nothing to read.
            return error_reply(HTTPStatus.MISDIRECTED_REQUEST)
        loop = asyncio.get_running_loop()
        authorized = self._logins.cached(request.authorization)
        if authorized is None and request.authorization:
            authorized = await loop.run_in_executor(
                self._login_pool, self._logins.verify, request.authorization
            )
        try:
            return await loop.run_in_executor(
                self._answers, self._respond, request.path, bool(authorized)
            )
        except Exception:
            _log.exception("http_answer_failed", path=request.path)
            return error_reply(HTTPStatus.INTERNAL_SERVER_ERROR)

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        writer.write(_wire(reply))
        try:
            async with asyncio.timeout(SEND_DEADLINE):
                await writer.drain()
        except (TimeoutError, OSError):
            writer.transport.abort()


class _TooLarge(SupervisorError):
    """Headers beyond ``MAX_HEADER_BYTES`` or a body beyond ``MAX_BODY_BYTES``."""

    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


async def _read_request(reader: asyncio.StreamReader) -> Request:
    """One whole request (line, headers, any body) through h11; OSError when the peer leaves."""
    parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
    head: h11.Request | None = None
    received = body_bytes = 0
    while True:
        event = parser.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(READ_CHUNK)
            received += len(data)
            parser.receive_data(data)
        elif isinstance(event, h11.Request):
            # h11 bounds a head still arriving; one that came whole in a read is measured here.
            if received - len(parser.trailing_data[0]) > MAX_HEADER_BYTES:
                raise _TooLarge(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            head = event
        elif isinstance(event, h11.Data):
            body_bytes += len(event.data)
            if body_bytes > MAX_BODY_BYTES:
                raise _TooLarge(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            headers = {name.decode("latin-1"): value for name, value in head.headers}
            return Request(
                method=head.method.decode("latin-1"),
                path=head.target.decode("latin-1").split("?", 1)[0].rstrip("/") or "/",
                host=_header(headers.get("host")),
                authorization=_header(headers.get("authorization")),
            )
        else:  # ConnectionClosed, or PAUSED after an answer
            raise ConnectionResetError("closed before a complete request")


def _header(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _wire(reply: Reply) -> bytes:
    """The answer as bytes; every answer closes its connection."""
    status = HTTPStatus(reply.code)
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Server: {SERVER_NAME}",
        f"Date: {formatdate(time.time(), usegmt=True)}",
        f"Content-Type: {reply.content_type}",
        f"Content-Length: {len(reply.body)}",
        "Cache-Control: no-store",
        "Connection: close",
        *(f"{name}: {value}" for name, value in reply.headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body
