"""One webhook receiver for every test that needs alerts or dead-man's pings delivered.

It listens on 127.0.0.1, records each request (method, path, JSON body) and its
``Authorization`` header, answers 500 on paths under ``/broken`` so that retries can be counted,
and 302 on paths under ``/redirect`` to ``redirect_to`` followed by the rest of the path.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Request = tuple[str, str, Any]


class WebhookReceiver:
    def __init__(self) -> None:
        requests: list[Request] = []
        authorizations: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                requests.append((self.command, self.path, body))
                authorizations.append(self.headers.get("Authorization"))
                if self.path.startswith("/redirect") and receiver.redirect_to:
                    self.send_response(HTTPStatus.FOUND)
                    self.send_header(
                        "Location", receiver.redirect_to + self.path.removeprefix("/redirect")
                    )
                    self.end_headers()
                    return
                broken = self.path.startswith("/broken")
                self.send_response(HTTPStatus.INTERNAL_SERVER_ERROR if broken else HTTPStatus.OK)
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.requests = requests
        self.authorizations = authorizations
        self.redirect_to = ""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = f"{self.base_url}/hook"

    @property
    def received(self) -> list[Any]:
        """The JSON bodies posted so far, in order."""
        return [body for method, _path, body in list(self.requests) if method == "POST"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()
