"""Crontab expressions with the meaning operators know from cron(8), as APScheduler 3 triggers.

APScheduler 3 reads day-of-week 0 as Monday, and when both day-of-month and day-of-week are
restricted it requires both to match. Vixie cron reads 0 and 7 as Sunday and runs when *either*
matches. A backup schedule copied from a crontab must fire when cron would fire it, so both
differences are translated here instead of being documented as surprises.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from barman_supervisor.errors import SupervisorError

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Index is the cron(8) day number; 7 is Sunday again.
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NUMBERS = {name: number for number, name in enumerate(_DAY_NAMES[:7])}
_DOW_ITEM = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")


class CrontabError(SupervisorError, ValueError):
    """The expression is not a valid 5-field crontab (a ValueError too: it is bad input)."""


def _day_number(token: str) -> int:
    """0-7 as written (7 stays 7, so that '5-7' and '7-7' keep their meaning); names 0-6."""
    if token in _DAY_NUMBERS:
        return _DAY_NUMBERS[token]
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    raise CrontabError(f"day of week {token!r} is not 0-7 or sun-sat")


def cron_days_of_week(field: str) -> str:
    """Translate a cron(8) day-of-week field into APScheduler's names, e.g. '0' -> 'sun'.

    Ranges are expanded to explicit days so that a range crossing the week end in APScheduler's
    numbering ('sat-mon', or '0-2' which is sun-tue) still means what it meant in cron.
    """
    field = field.strip().lower()
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        match = _DOW_ITEM.match(item)
        if match is None:
            raise CrontabError(f"day of week {item!r} is not valid")
        span, step = match["range"], int(match["step"] or 1)
        if step < 1:
            raise CrontabError(f"day of week step in {item!r} must be at least 1")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-")
            first, last = _day_number(low), _day_number(high)
            # 'fri-sun' ends on Sunday as 7 to keep the range increasing.
            if last == 0 and first > 0:
                last = 7
            if last < first:
                raise CrontabError(f"day of week range {item!r} runs backwards")
        else:
            first = last = _day_number(span)
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_DAY_NAMES[day] for day in sorted(days))


def parse_crontab(expression: str, timezone: tzinfo) -> BaseTrigger:
    """Build the trigger for a 5-field crontab (or an @macro) in the given time zone."""
    text = _MACROS.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise CrontabError(f"{expression!r} has {len(fields)} fields, a crontab needs 5")
    minute, hour, day, month, day_of_week = fields
    weekdays = cron_days_of_week(day_of_week)
    try:
        # cron(8): a field starting with '*' (also '*/2') is unrestricted and both must match.
        if not day.startswith(("*", "?")) and not day_of_week.startswith(("*", "?")):
            return OrTrigger(
                [
                    CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=timezone),
                    CronTrigger(
                        minute=minute,
                        hour=hour,
                        month=month,
                        day_of_week=weekdays,
                        timezone=timezone,
                    ),
                ]
            )
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=weekdays,
            timezone=timezone,
        )
    except ValueError as exc:
        raise CrontabError(f"{expression!r}: {exc}") from None


def longest_gap(trigger: BaseTrigger, start: datetime, samples: int = 64) -> timedelta:
    """The longest wait between two consecutive fire times over the next ``samples`` fires.

    Readiness derives its default "backup too old" limit from it, so that a weekly schedule
    does not turn red every day and an hourly one does not stay green for a week.
    """
    fires: list[datetime] = []
    previous: datetime | None = None
    moment = start
    for _ in range(samples):
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            break
        fires.append(fire)
        previous, moment = fire, fire + timedelta(seconds=1)
    gaps = [later - earlier for earlier, later in itertools.pairwise(fires)]
    return max(gaps, default=timedelta(days=1))
