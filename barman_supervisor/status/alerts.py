"""Failure and recovery alerts to a webhook, and dead-man's-switch pings around backups.

One alert per state change, never one per check interval: ``AlertTracker`` turns the stream of
readiness verdicts into transitions (pure, tested without a network). Delivery runs on its own
thread with bounded timeouts and a few retries; a receiver that is down costs a log line, never a
backup.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from barman_supervisor import retry
from barman_supervisor.barman.verdicts import BY_DRILL
from barman_supervisor.config import Secret, Settings
from barman_supervisor.log import MASKER, get_logger
from barman_supervisor.status.health import Limits, Problem, server_problems
from barman_supervisor.status.state import FailoverRecord, State

_log = get_logger(__name__)
# A start-up still waiting (usually for PostgreSQL) after this long is worth telling someone.
STARTUP_ALERT_AFTER = 600.0
# The alert state of a backup that failed verification or a restore drill.
BACKUP_UNUSABLE = "backup_unusable"
# Characters of a refusing receiver's answer kept in the log line (masked like all foreign text).
RESPONSE_SHOWN = 200
_DEFAULT_PORTS = {"http": 80, "https": 443}
# The alert state of a promotion the daemon followed (a new timeline of the same cluster).
FAILOVER_FOLLOWED = "failover_followed"


@dataclass(frozen=True)
class Transition:
    server: str
    state: str  # "failing" or "recovered"
    problems: tuple[Problem, ...]
    since: float


class AlertTracker:
    """Whether each server is failing, and since when; emits only the changes.

    A server starts failing once one of its problems has lasted that condition's delay
    (streaming gets a grace, since a PostgreSQL restart interrupts it for seconds) and recovers
    when no problem is left. An outage that trips several conditions at once is one alert, not
    one per condition, and one recovery.
    """

    def __init__(self, delays: Mapping[str, float]) -> None:
        self._delays = dict(delays)
        self._first_seen: dict[tuple[str, str], float] = {}
        self._failing: dict[str, tuple[tuple[Problem, ...], float]] = {}
        self._lock = threading.Lock()

    def observe(self, server: str, problems: list[Problem], now: float) -> Transition | None:
        conditions = {problem.condition for problem in problems}
        with self._lock:
            for key in [k for k in self._first_seen if k[0] == server and k[1] not in conditions]:
                del self._first_seen[key]
            matured = [
                problem
                for problem in problems
                if now - self._first_seen.setdefault((server, problem.condition), now)
                >= self._delays.get(problem.condition, 0.0)
            ]
            if server not in self._failing and matured:
                since = min(self._first_seen[(server, p.condition)] for p in matured)
                self._failing[server] = (tuple(problems), since)
                return Transition(server, "failing", tuple(problems), since)
            if server in self._failing and not problems:
                previous, _since = self._failing.pop(server)
                return Transition(server, "recovered", previous, now)
        return None


class Alerts:
    """The state's health turned into alerts: one log event (and webhook) when a server stops
    being protected and one when it is again, evaluated every ``HEALTH_INTERVAL``."""

    def __init__(
        self,
        settings: Settings,
        state: State,
        limits_for: Callable[[str], Limits],
        notifier: Notifier,
    ) -> None:
        self._webhook = settings.alert_webhook_url
        self._state = state
        self._limits_for = limits_for
        self._notifier = notifier
        self._tracker = AlertTracker(
            {
                "startup": STARTUP_ALERT_AFTER,
                "postgres": settings.alert_streaming_after,
                "streaming": settings.alert_streaming_after,
            }
        )

    def evaluate(self) -> None:
        now = time.time()
        for name, server in self._state.servers().items():
            problems = server_problems(server, now, self._limits_for(name))
            change = self._tracker.observe(name, problems, now)
            if change is None:
                continue
            _log.log(
                logging.WARNING if change.state == "failing" else logging.INFO,
                "alert",
                server=change.server,
                state=change.state,
                problems=[f"{p.condition}: {p.reason}" for p in change.problems],
            )
            if self._webhook is not None:
                self._notifier.post(
                    self._webhook,
                    alert_payload(change, now, hostname()),
                    what=f"alert {change.state} {change.server}",
                )


def alert_payload(transition: Transition, now: float, host: str) -> dict[str, Any]:
    """The webhook body: what changed, for which server, why, and since when."""
    return {
        "source": "barman-supervisor",
        "host": host,
        "server": transition.server,
        "state": transition.state,
        "summary": f"{transition.server}: "
        + ("; ".join(p.reason for p in transition.problems) or transition.state),
        "problems": [asdict(problem) for problem in transition.problems],
        "since": _iso(transition.since),
        "at": _iso(now),
    }


def backup_alert_payload(
    server: str, backup_id: str, by: str, reason: str, now: float, host: str
) -> dict[str, Any]:
    """The webhook body for a backup found unusable (failed verification or drill): one per
    backup, as the verdict is written, since it is an event and not a state that recovers."""
    what = "a restore drill" if by == BY_DRILL else "verification"
    return {
        "source": "barman-supervisor",
        "host": host,
        "server": server,
        "state": BACKUP_UNUSABLE,
        "backup_id": backup_id,
        "summary": f"{server}: backup {backup_id} failed {what}: {reason}; restore, drills and "
        "retention no longer count on it",
        "problems": [{"condition": by, "reason": reason}],
        "since": _iso(now),
        "at": _iso(now),
    }


def alert_backup_unusable(
    settings: Settings, notifier: Notifier | None, server: str, backup_id: str, by: str, reason: str
) -> None:
    """Log the ``alert`` event and post it to ALERT_WEBHOOK_URL when one is set."""
    now = time.time()
    _log.warning(
        "alert",
        server=server,
        state=BACKUP_UNUSABLE,
        backup_id=backup_id,
        problems=[f"{by}: {reason}"],
    )
    if settings.alert_webhook_url is not None and notifier is not None:
        notifier.post(
            settings.alert_webhook_url,
            backup_alert_payload(server, backup_id, by, reason, now, hostname()),
            what=f"alert {BACKUP_UNUSABLE} {server}",
        )


def alert_failover_followed(
    settings: Settings, notifier: Notifier | None, server: str, record: FailoverRecord
) -> None:
    """Log and post the ``failover_followed`` alert: an event (a promotion was followed, maybe
    with WAL lost on the old timeline), told once, not a state that recovers."""
    now = time.time()
    summary = f"{server}: {record.summary()}"
    _log.warning("alert", server=server, state=FAILOVER_FOLLOWED, problems=[summary])
    if settings.alert_webhook_url is None or notifier is None:
        return
    payload = {
        "source": "barman-supervisor",
        "host": hostname(),
        "server": server,
        "state": FAILOVER_FOLLOWED,
        "summary": summary,
        "failover": record.as_dict(),
        "since": _iso(now),
        "at": _iso(now),
    }
    notifier.post(settings.alert_webhook_url, payload, what=f"alert {FAILOVER_FOLLOWED} {server}")


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


@dataclass(frozen=True)
class _Delivery:
    url: Secret
    body: bytes | None
    what: str


class Notifier:
    """Sends webhook posts and pings from one background thread, in order, bounded in time."""

    def __init__(self, timeout: float, attempts: int = 3) -> None:
        self._timeout = timeout
        self._attempts = attempts
        self._queue: queue.Queue[_Delivery | None] = queue.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._deliver_all, name="notifier", daemon=True)
        self.delivered = 0
        self.failed = 0

    def start(self) -> None:
        self._thread.start()

    def post(self, url: Secret, payload: Mapping[str, Any], what: str) -> None:
        """The payload's foreign text (PostgreSQL's and Barman's messages) is masked by pattern
        first, as in the logs: a receiver (a chat room) is read by more people than the logs."""
        self._enqueue(_Delivery(url, json.dumps(MASKER.mask_values(dict(payload))).encode(), what))

    def ping(self, url: Secret, suffix: str, what: str) -> None:
        """healthchecks.io style: ``URL/start``, ``URL`` (success), ``URL/fail``."""
        base = url.reveal().rstrip("/")
        self._enqueue(_Delivery(Secret(f"{base}{suffix}"), None, what))

    def _enqueue(self, delivery: _Delivery) -> None:
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            _log.error("alert_dropped", what=delivery.what, reason="delivery queue full")

    def close(self, timeout: float) -> None:
        """Deliver what is queued (bounded by ``timeout``), then stop the thread."""
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        self._thread.join(timeout)

    def _deliver_all(self) -> None:
        while (delivery := self._queue.get()) is not None:
            try:
                self._deliver(delivery)
            except Exception as exc:  # the thread outlives any delivery error
                self.failed += 1
                _log.error(
                    "alert_delivery_failed",
                    what=delivery.what,
                    error=f"{type(exc).__name__}: {str(exc)[:200]}",
                )

    def _deliver(self, delivery: _Delivery) -> None:
        url, credentials = split_credentials(delivery.url.reveal())
        request = urllib.request.Request(  # noqa: S310 - the URL is validated as http(s) in settings
            url,
            data=delivery.body,
            method="POST" if delivery.body is not None else "GET",
            headers={"Content-Type": "application/json", "User-Agent": "barman-supervisor"},
        )
        # Unredirected: urllib copies the other headers to wherever a redirect points.
        for name, value in credentials.items():
            request.add_unredirected_header(name, value)

        def send() -> None:
            with _OPENER.open(request, timeout=self._timeout) as response:
                response.read(1024)

        # Retries do not stop on shutdown: queued alerts are still worth their bounded time.
        policy = retry.few_times(
            threading.Event(),
            attempts=self._attempts,
            retry_on=(urllib.error.URLError, OSError, TimeoutError),
        )
        try:
            policy(send)
            self.delivered += 1
            _log.info("alert_delivered", what=delivery.what)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            self.failed += 1
            _log.error(
                "alert_delivery_failed",
                what=delivery.what,
                error=str(exc)[:200],
                response=_answer(exc),
            )


def same_origin(url: str, other: str) -> bool:
    """Whether two URLs reach the same scheme, host and port: the only redirect that may carry
    the webhook's credentials (an https to http one would send them in plaintext)."""
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(other)
    return (a.scheme, a.hostname, a.port or _DEFAULT_PORTS.get(a.scheme)) == (
        b.scheme,
        b.hostname,
        b.port or _DEFAULT_PORTS.get(b.scheme),
    )


class SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a receiver's redirect only to its own scheme, host and port, with the
    credentials; a redirect anywhere else is refused (an ``HTTPError``), so neither the
    ``Authorization`` header nor the alert reaches a host the URL did not name."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not same_origin(req.full_url, newurl):
            target = urllib.parse.urlsplit(newurl).hostname or "?"
            raise urllib.error.HTTPError(
                req.full_url, code, f"redirect to another origin ({target}) refused", headers, fp
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        authorization = req.get_header("Authorization")
        if new is not None and authorization is not None:
            new.add_unredirected_header("Authorization", authorization)
        return new


_OPENER = urllib.request.build_opener(SameOriginRedirects)


def _answer(error: BaseException) -> str | None:
    """The start of a refusing receiver's answer (why Slack said 400), masked; None without."""
    if not isinstance(error, urllib.error.HTTPError):
        return None
    try:
        text = error.read(RESPONSE_SHOWN).decode("utf-8", "replace")
    except (OSError, ValueError, AttributeError):
        return None
    return MASKER.mask(text) or None


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``https://user:password@host/path`` as the URL without userinfo and a Basic
    ``Authorization`` header: urllib would otherwise read ``password@host`` as a port and fail
    with an error message that prints the password."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return parts._replace(netloc=netloc).geturl(), {"Authorization": f"Basic {token}"}


def hostname() -> str:
    return socket.gethostname()
