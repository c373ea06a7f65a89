"""The page for people at ``/``: the ``/status`` document rendered as HTML.

One source: the page renders the very dictionary ``/status`` returns (already masked), so it can
never say something ``/status`` does not, and it computes nothing the daemon decides (readiness,
problems, ages and lags all come from the document); here are only words, units and layout.

Jinja2 renders it with autoescaping on for every value: Barman's messages, reasons and names are
foreign text, and none may become markup. The page has no JavaScript at all: it refreshes itself
with a meta refresh, and its stylesheet fits a phone's width.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from barman_supervisor.status.health import age_text

# The page reloads itself this often; the daemon's own probes run every HEALTH_INTERVAL.
REFRESH_S = 30
CONTENT_TYPE = "text/html; charset=utf-8"
# No script may run, nothing may load from elsewhere: the page is its HTML and inline style.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
# The scheduled jobs a person plans around, in the order shown; the monitor and archiver run
# every few seconds and would only flicker.
PLANNED_JOBS = ("backup", "incremental-backup", "drill", "check", "offsite-backup", "offsite-wal")
UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
KIB = 1024.0
VERSION_10 = 100000

# What a person does about each /readyz condition (docs/operations.md has the whole table).
WHAT_TO_DO = {
    "startup": "Wait: start-up is under way. If it stays, the log's startup_step events say "
    "which step it waits on.",
    "startup_failed": "Change what the reason names and start the daemon again; it exits after "
    "alerting.",
    "postgres": "Check that PostgreSQL runs and that PG_HOST and PG_PORT reach it from here; "
    "streaming resumes by itself once it answers.",
    "postgres_login": "A new login was refused: put back the password, LOGIN, grant or "
    "pg_hba.conf line the reason names; the next probe's login clears it.",
    "streaming": "Usually heals by itself once PostgreSQL answers (streaming_restart in the "
    "log); if it stays, look for the reason there.",
    "check": "Run barman check for this server to see the failing check; it clears at the next "
    "check once fixed.",
    "backup": "Look at the last backup attempt and its backup_finished event; a completed "
    "backup clears it.",
    "backup_job": "Fix what the reason names; the next backup that succeeds clears it.",
    "wal": "Streaming is behind: check the network and receive-wal; it clears when streaming "
    "catches up.",
    "slot": "The primary is dropping WAL for Barman (max_slot_wal_keep_size): get streaming "
    "going; a lost slot must be dropped and recreated.",
    "failover": "A promotion of the same cluster is followed by itself (docs/failover.md); "
    "this is another cluster or a timeline that does not descend from Barman's: a person must "
    "act, see Self-healing in docs/operations.md.",
    "wal_gap": "A backup was started at once; this clears when it is DONE. Point-in-time "
    "recovery into the gap stays impossible.",
    "disk": "Free space on the Barman volume or grow it; no restart is needed.",
    "drill": "Restore the named backup by hand to see why; the next drill that passes clears it.",
    "offsite": "Check the store's address and keys (the reason says which); the next round "
    "copies the backlog.",
}
DEFAULT_WHAT_TO_DO = "See the health model in docs/operations.md."


def _moment(value: str | float | None) -> datetime | None:
    """A moment of the document: an ISO-8601 string (``now``, next runs) or epoch seconds (a
    drill's ``started_at``)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def duration(seconds: float | None) -> str:
    return "—" if seconds is None else age_text(seconds)


def pg_version(number: int) -> str:
    """``server_version_num`` as people write it: 150018 is 15.18 (9.6.24 before 10)."""
    if number >= VERSION_10:
        return f"{number // 10000}.{number % 10000}"
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def size(count: float | None) -> str:
    """Bytes in binary units, one decimal: what ``du -h`` would say."""
    if count is None:
        return "—"
    value, unit = float(count), UNITS[0]
    for unit in UNITS:
        if abs(value) < KIB or unit == UNITS[-1]:
            break
        value /= KIB
    return f"{value:.0f} {unit}" if unit == UNITS[0] else f"{value:.1f} {unit}"


class _Clock:
    """Moments worded against the document's ``now``, so the page and ``/status`` agree."""

    def __init__(self, now: str) -> None:
        self.now = _moment(now) or datetime.now(UTC)

    @staticmethod
    def _utc(value: str | float | None, pattern: str) -> str:
        moment = _moment(value)
        return "—" if moment is None else moment.astimezone(UTC).strftime(pattern)

    def at(self, value: str | float | None) -> str:
        """A moment in UTC to the minute, e.g. ``2026-12-05 03:00 UTC``."""
        return self._utc(value, "%Y-%m-%d %H:%M UTC")

    def stamp(self, value: str | float | None) -> str:
        """A moment to the second, so a person sees the page refresh."""
        return self._utc(value, "%Y-%m-%d %H:%M:%S UTC")

    def ago(self, value: str | float | None) -> str:
        moment = _moment(value)
        if moment is None:
            return "never"
        return f"{age_text((self.now - moment).total_seconds())} ago"

    def until(self, value: str | float | None) -> str:
        moment = _moment(value)
        if moment is None:
            return "not scheduled"
        ahead = (moment - self.now).total_seconds()
        return "due now" if ahead <= 0 else f"in {age_text(ahead)}"


def newest_verification(backups: Mapping[str, Any]) -> dict[str, str]:
    """What is known of the newest backup's verification, as ``state`` (``verified``,
    ``failed``, ``pending``, ``skipped`` or ``unknown``) and ``reason``: its verdict when the
    document keeps one per backup (``backups.verification``), else the last verification when it
    was of that backup."""
    newest = backups.get("newest") or {}
    verdict = (backups.get("verification") or {}).get(newest.get("id"))
    if verdict is not None:
        return {"state": str(verdict.get("verdict")), "reason": verdict.get("reason") or ""}
    last = backups.get("last_verification") or {}
    if not last or last.get("backup_id") != newest.get("id"):
        return {"state": "unknown", "reason": ""}
    state = "skipped" if last.get("skipped") else "verified" if last.get("ok") else "failed"
    return {"state": state, "reason": last.get("reason") or ""}


_ENVIRONMENT = Environment(
    loader=PackageLoader("barman_supervisor.status", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    lstrip_blocks=True,
)
_ENVIRONMENT.filters.update(duration=duration, size=size, pg_version=pg_version)
_ENVIRONMENT.globals.update(
    planned_jobs=PLANNED_JOBS,
    refresh_s=REFRESH_S,
    what_to_do=lambda condition: WHAT_TO_DO.get(condition, DEFAULT_WHAT_TO_DO),
    newest_verification=newest_verification,
)


def render(document: Mapping[str, Any]) -> str:
    """The ``/status`` document as the page; values are escaped by the template engine."""
    return _ENVIRONMENT.get_template("page.html").render(
        status=document, clock=_Clock(document["now"])
    )
