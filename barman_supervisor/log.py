"""Structured logging: one JSON object per line on stdout, readable lines on a terminal.

stdlib logging (APScheduler, tenacity, psycopg) is routed through the same processors, so
``docker logs`` is one stream with one shape. The daemon builds its own events from data that
never holds a secret; only foreign text (Barman's output and log file, exception messages, other
libraries' records) is masked, by pattern and, where that is safe, by literal value.
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

# Foreign text (Barman's output and log file, exception messages, other libraries' records) is
# masked by pattern: a value after password=/PGPASSWORD=/secret keys, URL userinfo, the token of
# an Authorization header, and AWS access key ids (boto3 and barman-cloud quote them).
_PASSWORD_FRAGMENT = re.compile(
    r"((?:\b|_)(?:password|passwd|pgpassword|secret|token|aws_secret_access_key|api_key)"
    r"\s*[=:]\s*)"
    r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,;&'\"]+)",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)([^\s/@]+)(@)")
_AUTHORIZATION = re.compile(
    r"(\bauthorization['\"]?\s*[=:]\s*['\"]?(?:basic\s+|bearer\s+)?)([^\s,;'\"]+)", re.I
)
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
_MASK = "***"
# Event fields whose values are foreign text; everything else an event carries is built by the
# daemon from data that never holds a secret, and is never rewritten.
FOREIGN_FIELDS = frozenset(
    {"line", "message", "example", "error", "reason", "cause", "exception", "output", "problems"}
)
# A literal secret is replaced only when it cannot be an ordinary word, number or name.
LITERAL_MIN_LENGTH = 8
_CHARACTER_CLASSES = (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())


def maskable_literal(secret: str) -> bool:
    """Whether replacing this value wherever it appears cannot corrupt ordinary text.

    Rule: at least ``LITERAL_MIN_LENGTH`` characters, no whitespace, and at least two classes of
    characters (lower case, upper case, digits, others). ``barman``, ``postgres``, ``true``,
    ``2``, ``password`` or ``12345678`` never qualify (patterns still catch them after
    ``password=``); a generated password such as ``Xk3v9qLm`` does.
    """
    if len(secret) < LITERAL_MIN_LENGTH or any(c.isspace() for c in secret):
        return False
    classes = sum(1 for test in _CHARACTER_CLASSES if any(test(c) for c in secret))
    return classes >= 2


class SecretMasker:
    """Masks secrets in foreign text only: by pattern, plus literal values that are safe to
    replace (see ``maskable_literal``). Keys, event names and the daemon's own fields are never
    touched, so an event keeps its shape whatever the password is."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def register(self, secrets: Iterable[str]) -> None:
        safe = {s for s in secrets if maskable_literal(s)}
        self._secrets = tuple(sorted(safe, key=len, reverse=True))

    def mask(self, text: str) -> str:
        """Foreign text with secrets masked."""
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        text = _URL_USERINFO.sub(rf"\1{_MASK}\3", text)
        text = _AUTHORIZATION.sub(rf"\1{_MASK}", text)
        text = _AWS_KEY_ID.sub(_MASK, text)
        return _PASSWORD_FRAGMENT.sub(rf"\1{_MASK}", text)

    def mask_values(self, value: Any) -> Any:
        """Every string value inside ``value`` masked; mapping keys are left as they are."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {key: self.mask_values(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_values(item) for item in value]
        return value

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        """Structlog processor: foreign fields, and the text of other libraries' records."""
        record = event_dict.get("_record")
        foreign_record = record is not None and not record.name.startswith("barman_supervisor")
        for key, value in event_dict.items():
            if key in FOREIGN_FIELDS or (foreign_record and key == "event"):
                event_dict[key] = self.mask_values(value)
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
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if json_output
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[*shared, MASKER, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _add_logger_name, MASKER],
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
    threading.excepthook = _log_thread_crash


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    """A thread that dies logs one event with its (masked) traceback, never raw stderr text."""
    if args.exc_type is SystemExit:
        return
    get_logger().error(
        "thread_crashed",
        thread=args.thread.name if args.thread is not None else None,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )


def get_logger(name: str = "barman_supervisor") -> Any:
    return structlog.stdlib.get_logger(name)


def bind(**fields: Any) -> Any:
    """Context for every event logged in this thread until the returned manager exits."""
    return structlog.contextvars.bound_contextvars(**fields)
