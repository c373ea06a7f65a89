"""Structured logging: one JSON object per line on stdout, readable lines on a terminal.

stdlib logging (APScheduler, tenacity, psycopg) is routed through the same processors, so
``docker logs`` is one stream with one shape. Known secrets and ``password=`` fragments are
masked in every event as a last line of defence; the code is expected not to log them at all.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor

_PASSWORD_FRAGMENT = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_MASK = "***"


class SecretMasker:
    """Replaces known secret values and ``password=...`` fragments in every string of an event."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def register(self, secrets: Iterable[str]) -> None:
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return _PASSWORD_FRAGMENT.sub(rf"\1{_MASK}", text)

    def _mask_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {key: self._mask_value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._mask_value(item) for item in value]
        return value

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            event_dict[key] = self._mask_value(value)
        return event_dict


MASKER = SecretMasker()


class RepeatFilter:
    """Lets the first few of a kind of line through per window, then counts the rest.

    Barman logs "No xlog segments found from streaming" about ten times a second while it waits
    for WAL; lines that differ only in numbers count as one kind.
    """

    def __init__(
        self, burst: int = 3, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ):
        self._burst = burst
        self._window = window
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def kind(text: str) -> str:
        """Numbers, and hexadecimal runs such as WAL segment names, do not make a new kind."""
        return re.sub(r"\b[0-9A-F]{8,}\b|\d+", "#", text)

    def admit(self, text: str) -> tuple[bool, int]:
        """Whether to log this line, and how many of its kind were held back before it."""
        key, now = self.kind(text), self._clock()
        with self._lock:
            started, count = self._seen.get(key, (now, 0))
            if now - started >= self._window:
                held_back = max(0, count - self._burst)
                self._seen[key] = (now, 1)
                return True, held_back
            self._seen[key] = (started, count + 1)
            return count < self._burst, 0

    def expired(self) -> list[tuple[str, int]]:
        """Kinds whose window ended with lines held back; forgets them."""
        now = self._clock()
        with self._lock:
            done = [
                (key, count - self._burst)
                for key, (started, count) in self._seen.items()
                if now - started >= self._window
            ]
            for key, _ in done:
                del self._seen[key]
        return [(key, held) for key, held in done if held > 0]


def _add_logger_name(logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    if record is not None and record.name not in ("barman_supervisor",):
        event_dict.setdefault("logger", record.name)
    return event_dict


def _drop_color_message(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)
    return event_dict


def configure(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog and route stdlib logging through it; safe to call again with new values."""
    stream = stream or sys.stdout
    json_output = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
        MASKER,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if json_output
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler announces every run at INFO and every skipped run at WARNING; the daemon logs
    # its own richer job events (job_finished, job_skipped_still_running).
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("apscheduler.scheduler").setLevel(max(logging.ERROR, root.level))


def get_logger(name: str = "barman_supervisor") -> Any:
    return structlog.stdlib.get_logger(name)


def bind(**fields: Any) -> Any:
    """Context for every event logged in this thread until the returned manager exits."""
    return structlog.contextvars.bound_contextvars(**fields)
